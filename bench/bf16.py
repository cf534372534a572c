"""bfloat16 mixed precision vs float32: speed and accuracy of the classifier train step, both sides.

    python bench/bf16.py                          # this CPU: batches 8, 32
    python bench/bf16.py --device gpu --batches 8,256 --json bf16_gpu.json

stepjax's option is ``train.compute_dtype='bfloat16'`` (``classifier_train_step(compute_dtype=...)``: float32
master weights, optimizer and BN statistics; forward and backward in bfloat16; the temporal DFT kept in
float32). PyTorch's counterpart is ``torch.autocast(dtype=torch.bfloat16)`` around the forward pass. The model
is the official classifier (kernel 75, bench/run.py's workload), the step the same Adam + coupled L2.

Printed, all measured in this run:

* the matmul rate in float32 (no TF32) and with bfloat16 operands (float32 accumulation) on both sides;
* per batch size the train step's median time, four contenders interleaved (torch f32, torch bf16, stepjax f32,
  stepjax bf16; torch bf16 only on GPUs unless ``--torch-bf16 on``), and each side's bf16 speed-up;
* accuracy of one step's numbers in bf16 against the same side's float32, same parameters and batch:
  relative L2 error of the eval-mode logits and of the loss gradient (all parameters together).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402  (bench/run.py: shared reference pieces; sets torch's float32 flags)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402

from stepjax.data.pipeline import Arrays  # noqa: E402
from stepjax.losses import classification_loss  # noqa: E402
from stepjax.training.loop import cast_floating  # noqa: E402


def rel_err(a, b) -> float:
    """``||a - b|| / ||b||`` over all leaves of two pytrees (float64 on the host)."""
    la = [np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(a)]
    lb = [np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(b)]
    a_, b_ = np.concatenate(la), np.concatenate(lb)
    return float(np.linalg.norm(a_ - b_) / np.linalg.norm(b_))


def matmul_rates(quick: bool, torch_bf16: bool) -> dict:
    """GFLOP/s of an n^3 matmul, float32 ('highest', no TF32) and bf16 operands with a float32 result."""
    n = 8192 if R.TDEV.type == "cuda" else 2048
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, n), np.float32) for _ in range(2))
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    jbx, jby = jx.astype(jnp.bfloat16), jy.astype(jnp.bfloat16)
    f32 = jax.jit(functools.partial(jnp.dot, precision="highest"))
    bf16 = jax.jit(functools.partial(jnp.dot, preferred_element_type=jnp.float32))
    tx, ty = torch.from_numpy(x).to(R.TDEV), torch.from_numpy(y).to(R.TDEV)
    tbx, tby = tx.bfloat16(), ty.bfloat16()

    def torch_mm(a, b):
        def f():
            out = torch.mm(a, b)
            R.torch_sync()
            return out
        return f

    fns = {"torch f32": torch_mm(tx, ty), "torch bf16": torch_mm(tbx, tby),
           "jax f32": lambda: R.jax_sync(f32(jx, jy)), "jax bf16": lambda: R.jax_sync(bf16(jbx, jby))}
    if not torch_bf16:
        del fns["torch bf16"]
    r = R.interleaved(fns, 3 if quick else 10)
    return {k: 2 * n ** 3 / v["median_s"] / 1e9 for k, v in r.items()} | {"n": n}


def jax_accuracy(model, batch: Arrays) -> dict:
    """bf16 vs float32 relative errors of stepjax's eval logits and loss gradient (initial parameters)."""
    state = R.jax_classifier_step(model, batch)[1]["s"]

    @functools.partial(jax.jit, static_argnums=0)
    def logits_and_grads(dtype, params, batch_stats, gaits, labels):
        def forward(p, train):
            p, g = cast_floating((p, gaits), dtype)
            out, _ = model.apply({"params": p, "batch_stats": batch_stats}, g, None, train=train,
                                 mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(3)})
            return out[0].astype(jnp.float32)

        grads = jax.grad(lambda p: classification_loss(forward(p, True), labels))(params)
        return forward(params, False), grads

    run = {d: logits_and_grads(d, state.params, state.batch_stats, batch.gaits, batch.labels)
           for d in (jnp.float32, jnp.bfloat16)}
    return {"logits": rel_err(run[jnp.bfloat16][0], run[jnp.float32][0]),
            "grads": rel_err(run[jnp.bfloat16][1], run[jnp.float32][1])}


def torch_accuracy(g: np.ndarray, y: np.ndarray, enabled: bool = True) -> dict:
    """The same for the PyTorch reference under ``torch.autocast(bfloat16)`` (NaN where not ``enabled``)."""
    if not enabled:
        return {"logits": float("nan"), "grads": float("nan")}
    tm = R.torch_classifier()
    tx, ty, ce = R.to_torch_layout(g), torch.from_numpy(y).to(R.TDEV), torch.nn.CrossEntropyLoss()
    logits, grads = {}, {}
    tm.eval()  # both eval passes first: a train-mode pass updates the BN running statistics
    for bf in (False, True):
        with torch.no_grad(), torch.autocast(R.TDEV.type, dtype=torch.bfloat16, enabled=bf):
            tm(tx)
        logits[bf] = tm.pre_softmax.float().cpu().numpy()  # the fcn layer's output (before the softmax)
    tm.train()
    for bf in (False, True):
        tm.zero_grad()
        torch.manual_seed(3)  # same dropout mask in both passes
        with torch.autocast(R.TDEV.type, dtype=torch.bfloat16, enabled=bf):
            tm(tx)
        ce(tm.pre_softmax.float(), ty).backward()
        grads[bf] = [p.grad.detach().cpu().numpy() for p in tm.parameters() if p.grad is not None]
    return {"logits": rel_err(logits[True], logits[False]), "grads": rel_err(grads[True], grads[False])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--batches", default="8,32", help="train-step batch sizes, comma-separated")
    p.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    p.add_argument("--torch-bf16", choices=("auto", "on", "off"), default="auto",
                   help="time PyTorch under autocast(bfloat16) too (auto: on GPUs only; on this CPU, with oneDNN "
                        "off as bench/run.py needs it, that step ran 5.9x slower than float32 and its bf16 matmul "
                        "under 1 GFLOP/s)")
    p.add_argument("--json", help="write the numbers here")
    a = p.parse_args()
    if a.device == "gpu":
        if jax.default_backend() != "gpu" or not torch.cuda.is_available():
            p.error(f"--device gpu: JAX backend {jax.default_backend()!r}, torch cuda {torch.cuda.is_available()}")
        R.TDEV = torch.device("cuda")
    else:
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
    where = (jax.devices()[0].device_kind if a.device == "gpu" else f"{R.cpu_model()} ({os.cpu_count()} cores)")
    res = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": where,
           "jax": jax.__version__, "torch": torch.__version__, "batches": {}}
    torch_bf16 = a.torch_bf16 == "on" or (a.torch_bf16 == "auto" and a.device == "gpu")
    res["matmul_gflops"] = mm = matmul_rates(a.quick, torch_bf16)
    R.log(f"matmul {mm['n']}^3 GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in mm.items() if k != "n"))
    model = R.official_classifier()
    for b in (int(x) for x in a.batches.split(",")):
        g, y = R.classifier_batch(b)
        batch = Arrays(jnp.asarray(g), jnp.zeros((b, 0), jnp.float32), jnp.asarray(y, jnp.int32))
        fns = {"torch f32": R.torch_classifier_step(g, y)[0]}
        if torch_bf16:
            fns["torch bf16"] = R.torch_classifier_step(g, y, autocast_bf16=True)[0]
        fns["stepjax f32"] = R.jax_classifier_step(model, batch)[0]
        fns["stepjax bf16"] = R.jax_classifier_step(model, batch, compute_dtype="bfloat16")[0]
        compiles = {k: R.compile_time(f) for k, f in fns.items()}
        t = R.interleaved(fns, 3 if a.quick else 7, warmup=False)
        ms = {k: v["median_s"] * 1e3 for k, v in t.items()}
        acc = {"stepjax": jax_accuracy(model, batch), "torch": torch_accuracy(g, y, torch_bf16)}
        res["batches"][b] = {"ms": ms, "first_call_s": compiles, "rel_err_bf16_vs_f32": acc}
        R.log(f"batch {b}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
    print(f"\n# bf16 mixed precision vs float32, classifier train step (official, kernel 75), {res['date']}, "
          f"{where}, jax {res['jax']}, torch {res['torch']}\n")
    tmm = f"{mm['torch bf16']:.0f}" if "torch bf16" in mm else "not timed"
    print(f"matmul {mm['n']}^3: torch f32 {mm['torch f32']:.0f}, torch bf16 {tmm}, "
          f"jnp f32 {mm['jax f32']:.0f}, jnp bf16 (f32 accumulate) {mm['jax bf16']:.0f} GFLOP/s\n")
    print("| batch | torch f32 | torch bf16 (autocast) | torch bf16 speed-up | stepjax f32 | stepjax bf16 | "
          "stepjax bf16 speed-up | stepjax bf16 vs torch bf16 | rel. err. logits / grads, torch | stepjax |")
    print("|---" * 10 + "|")
    for b, r in res["batches"].items():
        ms, e = r["ms"], r["rel_err_bf16_vs_f32"]
        tb = ms.get("torch bf16")
        ratio = (lambda x, y: f"{x / y:.2f}x" if x and y else "n/a")
        err = (lambda d: "n/a" if d["logits"] != d["logits"] else f"{d['logits']:.1e} / {d['grads']:.1e}")
        print(f"| {b} | {R.fmt_ms(ms['torch f32'] / 1e3)} | {R.fmt_ms(tb / 1e3) if tb else 'not timed'} | "
              f"{ratio(ms['torch f32'], tb)} | {R.fmt_ms(ms['stepjax f32'] / 1e3)} | "
              f"{R.fmt_ms(ms['stepjax bf16'] / 1e3)} | {ratio(ms['stepjax f32'], ms['stepjax bf16'])} | "
              f"{ratio(tb, ms['stepjax bf16'])} | {err(e['torch'])} | {err(e['stepjax'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
