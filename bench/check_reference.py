"""Correctness check of the PyTorch reference used by the benchmark (needs torch; not a pytest test).

1. Official real_only e395 weights -> ``torch_reference.Classifier`` (strict key match), eval mode, on the golden
   ``model_input``: ``pre_softmax`` must match the golden values (atol 1e-4).
2. Official CVAE e105 weights load strictly into ``torch_reference.CVAE`` (keys and shapes).
3. The literal-loop ``between_frame_loss`` matches the golden official value on two pairs (T=30 and T=75; rtol 1e-4).

Run: ``python bench/check_reference.py`` (exit status 0 = all good).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402

GOLDEN = os.environ.get("STEP_GOLDEN", "/work/shared/golden/official-step")


def main() -> int:
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = False
    ok = True

    model = tr.Classifier()
    tr.load_npz_state_dict(model, os.path.join(GOLDEN, "official_classifier_real_only_e395.npz"))
    model.eval()
    io = np.load(os.path.join(GOLDEN, "classifier_io.npz"))
    with torch.no_grad():
        probs, feats = model(torch.from_numpy(io["model_input"]))
    err = float(np.max(np.abs(model.pre_softmax.numpy() - io["pre_softmax"])))
    perr = float(np.max(np.abs(probs.numpy() - io["probs"])))
    ferr = float(np.max(np.abs(feats.numpy() - io["features"])))
    good = err <= 1e-4
    ok &= good
    print(f"classifier pre_softmax max|diff| = {err:.2e} (atol 1e-4) probs {perr:.2e} features {ferr:.2e}: "
          f"{'OK' if good else 'FAIL'}")

    cvae = tr.CVAE()
    try:
        tr.load_npz_state_dict(cvae, os.path.join(GOLDEN, "official_cvae_e105.npz"))
        n_params = sum(p.numel() for p in cvae.parameters() if p.requires_grad)
        good = n_params == 876484
        print(f"CVAE e105 state_dict loads strictly; trainable params {n_params} (official 876484): "
              f"{'OK' if good else 'FAIL'}")
    except Exception as e:  # noqa: BLE001
        good = False
        print(f"CVAE e105 state_dict does not load: {e}")
    ok &= good

    losses = np.load(os.path.join(GOLDEN, "losses.npz"))
    for k in (4, 0):
        x_in = torch.from_numpy(losses[f"x_in_{k}"])
        x_out = torch.from_numpy(losses[f"x_out_{k}"])
        t0 = time.perf_counter()
        with torch.no_grad():
            val = float(tr.between_frame_loss(x_in, x_out))
        ref = float(losses["between_frame_loss"][k])
        rel = abs(val - ref) / abs(ref)
        good = rel <= 1e-4
        ok &= good
        print(f"between_frame_loss pair {k} (T={x_in.shape[2]}): loop {val:.6g} vs official {ref:.6g}, "
              f"rel {rel:.1e} ({time.perf_counter() - t0:.1f} s): {'OK' if good else 'FAIL'}")
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
