"""Side-by-side speed benchmark: official-style PyTorch STEP (bench/torch_reference.py) vs stepjax, on this CPU
(or on a GPU: both sides on the GPU, float32 without TF32).

    python bench/run.py                 # full run (~10 min on 2 cores)
    python bench/run.py --quick         # smoke run (fewer repeats, 1 repeat of the slow references)
    python bench/run.py --only classifier --json out.json
    python bench/run.py --device gpu --batches 8,32,256 --impls default,dft,toeplitz --json gpu.json

Every workload times its contenders in the same process, interleaved (ref, stepjax, ref, stepjax, ...), after a
warm-up call (JIT compilation is excluded and reported separately), and reports medians. ``os.getloadavg()`` is
printed before and after each workload: the machine has 2 cores and other jobs make numbers noisy.
Bench-only dependency: ``pip install torch==2.13.0`` (CPU wheel). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

torch.backends.mkldnn.enabled = False  # oneDNN conv backward crashes on 75-tap kernels over T=38 (spec section 9)
torch.set_num_threads(len(os.sched_getaffinity(0)))  # 2 here; 1 in the one-core child run
# float32 on both sides: no TF32 in cuBLAS / cuDNN (stepjax's models compute with precision='highest')
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
TDEV = torch.device("cpu")  # the reference's device; main() sets cuda for --device gpu

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402

from stepjax.affective import affective_features  # noqa: E402
from stepjax.data.pipeline import Arrays  # noqa: E402
from stepjax.data.preprocess import align_to_reference  # noqa: E402
from stepjax.generation import generate, resolve_chunk  # noqa: E402
from stepjax.losses import generator_loss  # noqa: E402
from stepjax.inference import freeze  # noqa: E402
from stepjax.models.classifier import OFFICIAL_OPTIONS as OFFICIAL_CLASSIFIER_OPTIONS  # noqa: E402
from stepjax.models.classifier import TRUNKS, STEPClassifier  # noqa: E402
from stepjax.models.cvae import OFFICIAL_OPTIONS as OFFICIAL_CVAE_OPTIONS, STEPGenCVAE  # noqa: E402
from stepjax.training.loop import classifier_train_step, epoch_fn  # noqa: E402
from stepjax.training.state import TrainState, create_train_state, make_optimizer  # noqa: E402

T, V, C, K, KT = 75, 16, 3, 3, 75
HUGETLB = "glibc.malloc.hugetlb=1"  # --malloc hugepages
WORKLOADS = ("matmul", "classifier", "cvae", "inference", "inference_one_core", "generation", "preprocess")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def read_sysfs(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "n/a"


def cpu_model() -> str:
    """The host CPU's model name (``lscpu``), e.g. 'AMD EPYC' or 'Intel(R) Xeon(R) Processor'."""
    try:
        return next(line.split(":", 1)[1].strip() for line in
                    subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                    if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        return platform.processor()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- timing


def interleaved(fns: dict, reps: dict | int, warmup: bool = True) -> dict:
    """Median wall seconds per call of each ``fns[name]()`` (each call must finish its work, device sync included).

    Calls are interleaved round-robin; ``reps`` may differ per contender (slow references get fewer): a contender
    simply drops out of the rotation once it has its repeats.
    """
    reps = {k: reps for k in fns} if isinstance(reps, int) else reps
    if warmup:
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    while any(len(times[k]) < reps[k] for k in fns):
        for k, fn in fns.items():
            if len(times[k]) < reps[k]:
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "n": len(v), "all_s": v} for k, v in times.items()}


def fmt_ms(seconds: float) -> str:
    """'448 ms', '6.23 ms': whole milliseconds from 100 ms up, three significant digits below."""
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def compile_time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- FLOP counts (analytic)


def _valid_taps(t_in: int, stride: int, kt: int = KT) -> int:
    """Sum over output frames of the temporal taps that hit real (non-padded) input frames."""
    pad = (kt - 1) // 2
    t_out = (t_in + 2 * pad - kt) // stride + 1
    s = np.arange(t_in)[:, None] - np.arange(t_out)[None, :] * stride + pad
    return int(np.sum((s >= 0) & (s < kt)))


def stgcn_fwd_flops(cin: int, cout: int, t_in: int, stride: int, res_proj: bool) -> tuple[int, int]:
    """Forward FLOPs (2 per MAC) of one st_gcn block on one gait: (useful, nominal). 'Useful' counts only temporal
    taps on real frames (the zero padding of a 75-tap kernel over 75 or 38 frames is 25-50 % of the nominal taps)."""
    t_out = (t_in - 1) // stride + 1
    gcn = 2 * t_in * V * cin * K * cout + 2 * K * t_in * V * V * cout
    res = 2 * t_out * V * cin * cout if res_proj else 0
    tcn_useful = 2 * _valid_taps(t_in, stride) * V * cout * cout
    tcn_nominal = 2 * t_out * KT * V * cout * cout
    return gcn + res + tcn_useful, gcn + res + tcn_nominal


def classifier_fwd_flops() -> tuple[int, int]:
    blocks = [(3, 32, 75, 1, True), (32, 64, 75, 2, True), (64, 64, 38, 1, False)]
    u = n = 0
    for b in blocks:
        a, c = stgcn_fwd_flops(*b)
        u, n = u + a, n + c
    return u, n


def cvae_fwd_flops() -> tuple[tuple[int, int], tuple[int, int]]:
    """(encoder, decoder) forward FLOPs per gait, (useful, nominal)."""
    enc = [(7, 64, 75, 1, True), (64, 32, 75, 1, True), (32, 32, 75, 1, False)]
    dec = [(32, 32, 75, 1, False), (32, 64, 75, 1, True), (64, 3, 75, 1, True)]
    out = []
    for blocks in (enc, dec):
        u = n = 0
        for b in blocks:
            a, c = stgcn_fwd_flops(*b)
            u, n = u + a, n + c
        out.append((u, n))
    return tuple(out)


# ----------------------------------------------------------------------------- data and models


def fake_gaits(n: int, seed: int = 0) -> np.ndarray:
    """Walking-like random gaits (N, T, 16, 3): a fixed pose plus smooth per-joint oscillations and noise."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 0.3, (1, 1, V, C))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, V, C))
    amp = rng.uniform(0.01, 0.1, (n, 1, V, C))
    t = np.arange(T)[None, :, None, None] / 30.0
    g = pose + amp * np.sin(2 * np.pi * t + phase) + rng.normal(0, 0.005, (n, T, V, C))
    g[:, :, 0] += np.linspace(0, 1.0, T)[None, :, None] * rng.normal(0, 1, (n, 1, C))  # root trajectory
    return g.astype(np.float32)


def to_torch_layout(g: np.ndarray) -> torch.Tensor:
    """(N, T, V, C) -> official (N, C, T, V, 1)."""
    return torch.from_numpy(np.ascontiguousarray(g.transpose(0, 3, 1, 2)[..., None])).to(TDEV)


def official_classifier(temporal_impl: str | None = None) -> STEPClassifier:
    kw = dict(channels=(32, 64, 64), kernel_size=75, num_affective=0, **OFFICIAL_CLASSIFIER_OPTIONS,
              **TRUNKS["real_only"])
    if temporal_impl is not None:
        kw["temporal_impl"] = temporal_impl
    return STEPClassifier(**kw)


def adam_l2(lr: float, wd: float):
    cfg = ml_collections.ConfigDict(dict(optimizer="adam_l2", lr=lr, weight_decay=wd, schedule="constant",
                                         milestones=(), grad_clip=0.0))
    return make_optimizer(cfg, 1)


def torch_classifier(seed: int = 0) -> tr.Classifier:
    torch.manual_seed(seed)
    m = tr.Classifier()
    m.apply(tr.weights_init)
    return m.to(TDEV)


def torch_cvae(seed: int = 0) -> tr.CVAE:
    torch.manual_seed(seed)
    m = tr.CVAE()
    m.apply(tr.weights_init)
    return m.to(TDEV)


def jax_sync(x):
    return jax.block_until_ready(x)


def torch_sync() -> None:
    if TDEV.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- workloads
# Each returns a list of row dicts: workload, ref_s, jax_s, ref_str, jax_str, flops (per call, useful), target, note.


CLASSIFIER_STEP = functools.partial(classifier_train_step, official_double_softmax=True)  # as the official code


def classifier_batch(batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The classifier workload's fixed batch: fake gaits ``(B, T, V, C)`` and random labels ``(B,)``."""
    return fake_gaits(batch, seed=batch), np.random.default_rng(1).integers(0, 4, batch)


def torch_classifier_step(g: np.ndarray, y: np.ndarray, autocast_bf16: bool = False):
    """The reference train step on one fixed batch: official module, Adam(weight_decay) = coupled L2,
    CrossEntropy on the softmax output (official bug). ``autocast_bf16``: forward under
    ``torch.autocast(dtype=bfloat16)`` (PyTorch's mixed precision). Returns ``(step() -> loss, torch model)``."""
    tm = torch_classifier()
    tm.train()
    topt = torch.optim.Adam(tm.parameters(), lr=1e-3, weight_decay=1e-4)
    tx, ty, ce = to_torch_layout(g), torch.from_numpy(y).to(TDEV), torch.nn.CrossEntropyLoss()

    def ref_step():
        topt.zero_grad()
        with torch.autocast(TDEV.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            out = tm(tx)[0]
        loss = ce(out.float(), ty)
        loss.backward()
        topt.step()
        return float(loss.detach())

    return ref_step, tm


def jax_classifier_step(model: STEPClassifier, batch_arr: Arrays, compute_dtype: str | None = None):
    """stepjax's jitted train step on one fixed batch, same optimizer as the reference (``compute_dtype``:
    the library's mixed-precision option). Returns ``(step() -> loss, holder with the state under 's', the
    jitted step)``."""
    holder = {"s": create_train_state(model, adam_l2(1e-3, 1e-4), jax.random.PRNGKey(0), batch_arr.gaits)}
    jstep = jax.jit(functools.partial(CLASSIFIER_STEP, compute_dtype=compute_dtype))
    key = jax.random.PRNGKey(1)

    def jax_step():
        holder["s"], m = jstep(holder["s"], batch_arr, key)
        return jax_sync(m["loss"])

    return jax_step, holder, jstep


def w_matmul(a) -> list[dict]:
    n = 8192 if TDEV.type == "cuda" else 2048
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n), np.float32)
    y = rng.standard_normal((n, n), np.float32)
    jx, jy = jnp.asarray(x), jnp.asarray(y)
    dot = jax.jit(functools.partial(jnp.dot, precision="highest"))
    tx, ty = torch.from_numpy(x).to(TDEV), torch.from_numpy(y).to(TDEV)

    def ref():
        out = torch.mm(tx, ty)
        torch_sync()
        return out

    r = interleaved({"ref": ref, "jax": lambda: jax_sync(dot(jx, jy))}, 3 if a.quick else 10)
    flops = 2 * n ** 3
    ref_gf, jax_gf = flops / r["ref"]["median_s"] / 1e9, flops / r["jax"]["median_s"] / 1e9
    a.peak_gflops = max(ref_gf, jax_gf)
    return [dict(workload=f"fp32 matmul {n}^3 (torch.mm vs jnp.dot) = machine peak",
                 ref_s=r["ref"]["median_s"], jax_s=r["jax"]["median_s"],
                 ref_str=f"{ref_gf:.0f} GFLOP/s", jax_str=f"{jax_gf:.0f} GFLOP/s", flops=flops, target="",
                 note=f"peak = max of the two = {a.peak_gflops:.0f} GFLOP/s", raw=r)]


def _classifier_rows(a, batch: int, impls: tuple[str, ...]) -> list[dict]:
    g, y = classifier_batch(batch)
    ref_step, _ = torch_classifier_step(g, y)
    fns = {"ref": ref_step}
    compiles = {}
    batch_arr = Arrays(jnp.asarray(g), jnp.zeros((batch, 0), jnp.float32), jnp.asarray(y, jnp.int32))
    step_fn = CLASSIFIER_STEP
    nb = 2 if a.quick else 4  # batches per scanned epoch
    data = Arrays(jnp.asarray(fake_gaits(batch * nb, seed=7)), jnp.zeros((batch * nb, 0), jnp.float32),
                  jnp.asarray(np.random.default_rng(2).integers(0, 4, batch * nb), jnp.int32))
    xla_flops = {}
    for impl in impls:
        model = official_classifier(None if impl == "default" else impl)
        name = model.temporal_impl if impl == "default" else impl
        tx = adam_l2(1e-3, 1e-4)
        jax_step, holder, jstep = jax_classifier_step(model, batch_arr)
        key = jax.random.PRNGKey(1)
        compiles[f"step[{name}]"] = compile_time(jax_step)
        log(f"  step[{name}] batch {batch}: compile+first call {compiles[f'step[{name}]']:.1f} s; "
            f"second call {compile_time(jax_step):.2f} s")
        try:
            ca = jstep.lower(holder["s"], batch_arr, key).compile().cost_analysis()
            ca = ca[0] if isinstance(ca, (list, tuple)) else ca
            xla_flops[name] = float(ca.get("flops", float("nan")))
        except Exception:  # noqa: BLE001
            xla_flops[name] = float("nan")
        fns[f"step[{name}]"] = jax_step
        if not a.no_scan and (name != "conv" or a.scan_conv):
            ep = epoch_fn(step_fn, batch)
            sh = {"s": create_train_state(model, tx, jax.random.PRNGKey(0), batch_arr.gaits)}

            def jax_epoch(sh=sh, ep=ep):
                sh["s"], m = ep(sh["s"], data, key)
                return jax_sync(m["loss"])

            compiles[f"scan[{name}]"] = compile_time(jax_epoch)
            log(f"  scan[{name}] batch {batch}: compile+first epoch {compiles[f'scan[{name}]']:.1f} s")
            fns[f"scan[{name}]"] = jax_epoch
    reps = {k: (3 if a.quick else 7) for k in fns}
    r = interleaved(fns, reps, warmup=False)  # every stepjax function already ran once (compile)
    u, nominal = classifier_fwd_flops()
    flops = 3 * u * batch  # train ~ forward + input grad + weight grad
    rows = []
    for k in fns:
        if k == "ref":
            continue
        per_it = r[k]["median_s"] / (nb if k.startswith("scan") else 1)
        what = "jit step" if k.startswith("step") else f"per iteration inside lax.scan epoch ({nb} its)"
        impl = k[k.index("[") + 1:-1]
        rows.append(dict(
            workload=f"classifier train, batch {batch}, {what}, temporal_impl={impl}",
            ref_s=r["ref"]["median_s"], jax_s=per_it,
            ref_str=f"{fmt_ms(r['ref']['median_s'])} ({batch / r['ref']['median_s']:.1f} gaits/s)",
            jax_str=f"{fmt_ms(per_it)} ({batch / per_it:.1f} gaits/s)", flops=flops, target="",
            note=f"compile {compiles[k]:.1f} s; XLA cost_analysis flops {xla_flops.get(impl, float('nan')) / 1e9:.1f} G"
                 f" vs analytic useful {flops / 1e9:.1f} G (nominal {3 * nominal * batch / 1e9:.1f} G)",
            raw={"ref": r["ref"], k: r[k]}))
    return rows


def w_classifier(a) -> list[dict]:
    impls = a.impls
    rows = []
    for b in a.batches:
        log(f"classifier batch {b}")
        rows += _classifier_rows(a, b, impls)
    return rows


def w_cvae(a) -> list[dict]:
    batch = 8
    g = fake_gaits(batch, seed=3)
    y = np.random.default_rng(3).integers(0, 4, batch)
    onehot = np.eye(4, dtype=np.float32)[y]
    # reference: official CVAE + vae_loss with the literal-loop between_frame_loss, Adam lr 0.1 wd 5e-4 (coupled L2)
    tm = torch_cvae()
    tm.train()
    topt = torch.optim.Adam(tm.parameters(), lr=0.1, weight_decay=5e-4)
    tx_, tl = to_torch_layout(g), torch.from_numpy(onehot).to(TDEV)
    parts = {"fwd": [], "loss": [], "bwd": []}

    def ref_step():
        t0 = time.perf_counter()
        topt.zero_grad()
        x_out, mean, lsig, _ = tm(tx_, tl, tl)
        torch_sync()
        t1 = time.perf_counter()
        loss = tr.vae_loss(tx_, x_out, mean, lsig)
        torch_sync()
        t2 = time.perf_counter()
        loss.backward()
        topt.step()
        torch_sync()
        t3 = time.perf_counter()
        parts["fwd"].append(t1 - t0)
        parts["loss"].append(t2 - t1)
        parts["bwd"].append(t3 - t2)
        return float(loss.detach())

    fns = {"ref": ref_step}
    compiles = {}
    jg, jy = jnp.asarray(g), jnp.asarray(onehot)
    for impl in a.impls:
        model = STEPGenCVAE(**OFFICIAL_CVAE_OPTIONS) if impl == "default" else \
            STEPGenCVAE(**OFFICIAL_CVAE_OPTIONS, temporal_impl=impl)
        name = model.temporal_impl
        variables = jax.jit(lambda k, model=model: model.init({"params": k, "sample": k}, jg, jy, train=False))(
            jax.random.PRNGKey(0))
        state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=adam_l2(0.1, 5e-4),
                                  batch_stats=variables["batch_stats"])

        @jax.jit
        def cvae_step(state, x, labels, rng):
            def loss_fn(params):
                (x_hat, mu, logvar), upd = state.apply_fn(
                    {"params": params, "batch_stats": state.batch_stats}, x, labels, train=True,
                    mutable=["batch_stats"], rngs={"sample": rng})
                loss, _ = generator_loss(x, x_hat, mu, logvar, official=True)
                return loss, upd["batch_stats"]

            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            return state.apply_gradients(grads=grads, batch_stats=stats), loss

        holder = {"s": state}
        key = jax.random.PRNGKey(5)

        def jax_step(holder=holder, cvae_step=cvae_step):
            holder["s"], loss = cvae_step(holder["s"], jg, jy, key)
            return jax_sync(loss)

        compiles[name] = compile_time(jax_step)
        log(f"  cvae step[{name}]: compile+first call {compiles[name]:.1f} s; second {compile_time(jax_step):.2f} s")
        fns[name] = jax_step
    reps = {k: (3 if a.quick else 7) for k in fns}
    reps["ref"] = 1 if a.quick else a.cvae_ref_reps
    r = interleaved(fns, reps, warmup=False)
    (eu, _), (du, _) = cvae_fwd_flops()
    flops = 3 * (eu + du) * batch
    med = {k: statistics.median(v) for k, v in parts.items()}
    rows = []
    for k in fns:
        if k == "ref":
            continue
        rows.append(dict(
            workload=f"STEP-Gen CVAE train step, batch 8, official push-pull loss, temporal_impl={k}",
            ref_s=r["ref"]["median_s"], jax_s=r[k]["median_s"],
            ref_str=f"{r['ref']['median_s']:.2f} s (n={r['ref']['n']})", jax_str=fmt_ms(r[k]["median_s"]),
            flops=flops, target="",
            note=f"compile {compiles[k]:.1f} s; reference split: model fwd {med['fwd']:.2f} s, loss loop fwd "
                 f"{med['loss']:.2f} s, bwd+step {med['bwd']:.2f} s",
            raw={"ref": r["ref"], k: r[k], "ref_parts": parts}))
    return rows


def _inference_rows(a, batches, where: str = "") -> list[dict]:
    return [row for impl in a.infer_impls for row in _inference_rows_impl(a, batches, where, impl)]


def _inference_rows_impl(a, batches, where: str, impl: str) -> list[dict]:
    rows = []
    tm = torch_classifier()
    tm.eval()
    model = official_classifier(None if impl == "default" else impl)
    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, T, V, C)), train=False))(jax.random.PRNGKey(0))
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
    u, _ = classifier_fwd_flops()
    for batch, reps in batches:
        target = "<= 3 ms" if batch == 1 else ""
        g = fake_gaits(batch, seed=11)
        jx, tx_ = jnp.asarray(g), to_torch_layout(g)

        def ref():
            with torch.no_grad():
                return tm(tx_)[0].cpu().numpy()

        def jx_fn():
            return np.asarray(fwd(variables, jx))

        comp = compile_time(jx_fn)
        r = interleaved({"ref": ref, "jax": jx_fn}, reps)
        rs, js = r["ref"]["median_s"], r["jax"]["median_s"]
        if batch == 1:
            rstr, jstr = f"{rs * 1e3:.2f} ms", f"{js * 1e3:.2f} ms"
        else:
            rstr, jstr = f"{batch / rs:.0f} gaits/s", f"{batch / js:.0f} gaits/s"
        rows.append(dict(workload=f"classifier inference (eval), batch {batch}, jit, output to numpy{where}", ref_s=rs,
                         jax_s=js, ref_str=rstr, jax_str=jstr, flops=u * batch, target=target,
                         note=f"compile {comp:.1f} s; temporal_impl={model.temporal_impl}", raw=r))
        if batch == 1:  # serving: weights as compile-time constants (stepjax.inference.freeze)
            frozen = freeze(lambda v, x: model.apply(v, x, train=False)[0], variables)

            def frozen_fn():
                return np.asarray(frozen(jx))

            comp = compile_time(frozen_fn)
            r = interleaved({"ref": ref, "jax": frozen_fn}, reps)
            rs, js = r["ref"]["median_s"], r["jax"]["median_s"]
            rows.append(dict(workload=f"classifier inference (eval), batch 1, `inference.freeze` (weights as constants)"
                             f"{where}", ref_s=rs, jax_s=js, ref_str=f"{rs * 1e3:.2f} ms", jax_str=f"{js * 1e3:.2f} ms",
                             flops=u, target=target, note=f"compile {comp:.1f} s; temporal_impl={model.temporal_impl}; "
                             f"XLA folds the weight-only work (frequency-domain kernels, BN scales)", raw=r))
    return rows


def w_inference(a) -> list[dict]:
    return _inference_rows(a, ((1, 10 if a.quick else 200), (256, 2 if a.quick else 5)))


def w_inference_one_core(a) -> list[dict]:
    """One-gait latency with the process pinned to one core, both sides (a latency-serving setup: torch runs 1
    thread, XLA sizes its thread pool from the affinity mask). Runs in a child process started with the affinity
    set, because XLA's thread pool is created once per process."""
    if len(os.sched_getaffinity(0)) == 1:
        return _inference_rows(a, ((1, 10 if a.quick else 200),), where=", process pinned to 1 core")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "one_core.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--only", "inference_one_core", "--json", out,
               "--device", "cpu", "--infer-impls", ",".join(a.infer_impls)]
        subprocess.run(cmd + (["--quick"] if a.quick else []), check=True, stdout=subprocess.DEVNULL,
                       preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
        with open(out) as f:
            child = json.load(f)
    for row in child["rows"][1:]:  # [0] = the child's (one-core) matmul peak, not this run's
        row["note"] += f"; one-core matmul peak {child['peak_gflops']:.0f} GFLOP/s"
    return child["rows"][1:]


def w_generation(a) -> list[dict]:
    return [row for impl in a.infer_impls for row in _generation_rows(a, impl)]


def _generation_rows(a, impl: str) -> list[dict]:
    n, chunk = 4000, a.gen_chunk
    jax_chunk = resolve_chunk({"auto": "auto", "none": None}.get(a.jax_gen_chunk) if a.jax_gen_chunk in ("auto", "none")
                              else int(a.jax_gen_chunk))
    labels = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
    tm = torch_cvae()
    tm.eval()
    model = STEPGenCVAE(**OFFICIAL_CVAE_OPTIONS, **({} if impl == "default" else {"temporal_impl": impl}))
    variables = jax.jit(lambda k: model.init({"params": k, "sample": k}, jnp.zeros((1, T, V, C)),
                                             jnp.zeros((1, 4)), train=False))(jax.random.PRNGKey(0))

    jl = jnp.asarray(labels)
    tl = torch.from_numpy(labels).to(TDEV)

    def ref():
        out = []
        with torch.no_grad():
            for i in range(0, n, chunk):
                z = torch.randn(min(chunk, n - i), 32, device=TDEV)
                out.append(tm.decoder(z, tl[i:i + chunk], T, V).cpu().numpy())
        return np.concatenate(out)

    def jx_fn():
        return np.asarray(generate(model, variables, jl, jax.random.PRNGKey(0), T, chunk=jax_chunk))

    comp = compile_time(jx_fn)
    # stepjax gets 5 rounds against the reference's 2 (2 minutes each on 2 cores): its median is then not only of
    # calls made right after PyTorch's (session 19: 1.85-1.97 s vs 1.96-2.18 s right after it)
    r = interleaved({"ref": ref, "jax": jx_fn}, {"ref": 1 if a.quick else 2, "jax": 1 if a.quick else 5},
                    warmup=False)
    _, (du, _) = cvae_fwd_flops()
    rs, js = r["ref"]["median_s"], r["jax"]["median_s"]
    return [dict(workload=f"generate {n} gaits (decoder, N(0,I), T=75, chunks of {chunk} / {jax_chunk or n}) incl. to "
                          f"numpy",
                 ref_s=rs, jax_s=js, ref_str=f"{rs:.2f} s", jax_str=f"{js:.2f} s", flops=du * n, target="<= 2 s",
                 note=f"compile {comp:.1f} s; temporal_impl={model.temporal_impl}; reference warm-up skipped (first "
                      f"call included in median); % peak counts the direct form's FLOPs of all 16 joints (stepjax "
                      f"decodes 10 mirror cells through DFTs)", raw=r)]


# -- preprocessing reference: literal official get_transformation (spec 1.4) in a Python loop


def get_transformation(X, Y):
    """Official ``get_transformation`` (ralign): X, Y are 3 x 16; returns R, c, t with Y ~ c R X + t."""
    m, n = X.shape
    mx = X.mean(1)
    my = Y.mean(1)
    Xc = X - np.tile(mx, (n, 1)).T
    Yc = Y - np.tile(my, (n, 1)).T
    sx = np.mean(np.sum(Xc * Xc, 0))
    Sxy = np.dot(Yc, Xc.T) / n
    U, D, V_ = np.linalg.svd(Sxy, full_matrices=True, compute_uv=True)
    V_ = V_.T.copy()
    r = np.linalg.matrix_rank(Sxy)
    S = np.eye(m)
    if r < (m - 1):
        return np.eye(2), 1.0, np.zeros(2)  # the latent bug of the official code (never hit)
    if r > m - 1:
        if np.linalg.det(Sxy) < 0:
            S[m - 1, m - 1] = -1
    elif r == m - 1:
        if np.linalg.det(U) * np.linalg.det(V_) < 0:
            S[m - 1, m - 1] = -1
    R = np.dot(np.dot(U, S), V_.T)
    c = np.trace(np.dot(np.diag(D), S)) / sx
    t = my - c * np.dot(R, mx)
    return R, c, t


def align_loop(gaits: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per gait: root-centre each frame, fit (R, c, t) on frame 0, apply to every frame (Python loops)."""
    out = np.empty_like(gaits)
    Y = (reference - reference[0]).T
    for s in range(gaits.shape[0]):
        centred = np.empty_like(gaits[s])
        for t in range(gaits.shape[1]):
            centred[t] = gaits[s, t] - gaits[s, t, 0]
        R, c, tr_ = get_transformation(centred[0].T, Y)
        for t in range(gaits.shape[1]):
            out[s, t] = (c * np.dot(R, centred[t].T) + tr_[:, None]).T
    return out


def w_preprocess(a) -> list[dict]:
    n = 2177
    g = fake_gaits(n, seed=21)
    reference = g[0, 0]
    jg = jnp.asarray(g)
    align = jax.jit(align_to_reference)
    aff = jax.jit(functools.partial(affective_features, official=False))

    def jx_align():
        return np.asarray(align(jg, reference))

    def ref_align():
        return align_loop(g, reference)

    comp = compile_time(jx_align)
    r = interleaved({"ref": ref_align, "jax": jx_align}, {"ref": 1 if a.quick else 3, "jax": 5 if a.quick else 20},
                    warmup=False)
    diff = float(np.max(np.abs(ref_align() - jx_align())))
    rows = [dict(workload=f"align {n} gaits (T=75) to a reference pose, output to numpy",
                 ref_s=r["ref"]["median_s"], jax_s=r["jax"]["median_s"],
                 ref_str=f"{r['ref']['median_s']:.2f} s", jax_str=f"{r['jax']['median_s'] * 1e3:.1f} ms",
                 flops=None, target="<= 0.1 s",
                 note=f"compile {comp:.1f} s; max abs(loop - stepjax) = {diff:.1e}; reference = numpy loop of official "
                      f"get_transformation (float64 SVD per gait, per-frame application)", raw=r)]

    def jx_aff():
        return np.asarray(aff(jg))

    comp = compile_time(jx_aff)
    r = interleaved({"jax": jx_aff}, 5 if a.quick else 20, warmup=False)
    rows.append(dict(workload=f"29 affective features of {n} gaits (T=75), output to numpy", ref_s=None,
                     jax_s=r["jax"]["median_s"], ref_str="n/a (not written)",
                     jax_str=f"{r['jax']['median_s'] * 1e3:.1f} ms", flops=None, target="<= 0.2 s",
                     note=f"compile {comp:.1f} s", raw=r))
    return rows


# ----------------------------------------------------------------------------- table


def fmt_table(rows: list[dict], peak: float | None) -> str:
    out = ["| workload | reference (PyTorch / numpy) | stepjax | ratio ref/stepjax | % fp32 peak ref / stepjax "
           "| target | notes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ref_s'] / r['jax_s']:.2f}x" if r.get("ref_s") and r.get("jax_s") else "n/a"
        pct = ""
        if r.get("flops") and peak and not r["workload"].startswith("fp32 matmul"):
            rp = f"{100 * r['flops'] / r['ref_s'] / 1e9 / peak:.0f}%" if r.get("ref_s") else "n/a"
            jp = f"{100 * r['flops'] / r['jax_s'] / 1e9 / peak:.0f}%"
            pct = f"{rp} / {jp}"
        met = ""
        if r.get("target"):
            lim = float(r["target"].split()[1]) * (1e-3 if r["target"].endswith("ms") else 1.0)
            met = f"{r['target']} ({'met' if r['jax_s'] <= lim else 'NOT met'})"
        out.append(f"| {r['workload']} | {r['ref_str']} | {r['jax_str']} | {ratio} | {pct} | {met} | {r['note']} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fast smoke run: few repeats, 1 repeat of slow references")
    p.add_argument("--only", action="append", choices=WORKLOADS, help="run only this workload (repeatable); "
                   "the matmul peak always runs first")
    p.add_argument("--json", help="write all raw timings here")
    p.add_argument("--no-scan", action="store_true", help="skip the lax.scan epoch variants of the classifier")
    p.add_argument("--scan-conv", action="store_true", help="also time the lax.scan epoch with temporal_impl=conv "
                   "(a quick trial did not finish in 10 min on a loaded machine: lax.conv inside scan is very slow on "
                   "XLA:CPU)")
    p.add_argument("--cvae-ref-reps", type=int, default=3, help="repeats of the ~16 s reference CVAE step")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="where both sides run (auto: gpu when JAX's default backend is one and torch has CUDA)")
    p.add_argument("--batches", default="8,32", help="classifier training batch sizes, comma-separated")
    p.add_argument("--impls", default="default,toeplitz",
                   help="temporal_impl values timed in the training workloads ('default' = the model's 'auto')")
    p.add_argument("--infer-impls", default="default", help="temporal_impl values timed in inference and generation")
    p.add_argument("--gen-chunk", type=int, default=500,
                   help="gaits per PyTorch decoder call in the generation workload")
    p.add_argument("--jax-gen-chunk", default="auto",
                   help="stepjax's chunk in the generation workload (generate's chunk; 'auto': 32 on CPU, 256 on GPU; "
                   "'none': one decoder call)")
    p.add_argument("--malloc", choices=("default", "hugepages"), default="default",
                   help="hugepages: re-run this script with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc >= 2.35), so "
                   "that both sides' large buffers are backed by transparent huge pages (bench/NOTES.md, session 8); "
                   "default: glibc's default (re-runs without that tunable if the environment has it)")
    a = p.parse_args()
    tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
    if (a.malloc == "hugepages") != (HUGETLB in tunables):  # glibc reads its tunables at process start only:
        tunables = [t for t in tunables if t != HUGETLB] + ([HUGETLB] if a.malloc == "hugepages" else [])
        env = dict(os.environ, GLIBC_TUNABLES=":".join(tunables))  # start again with them (and the same
        sys.stdout.flush()                                          # interpreter flags, sys.orig_argv)
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    a.infer_impls = tuple(a.infer_impls.split(","))
    a.batches = tuple(int(b) for b in a.batches.split(","))
    a.impls = tuple(a.impls.split(","))
    a.peak_gflops = None
    global TDEV
    if a.device == "auto":  # same device on both sides: the GPU only where JAX and torch both have one
        a.device = "gpu" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    gpu = a.device == "gpu"
    if gpu:
        if jax.default_backend() != "gpu" or not torch.cuda.is_available():
            p.error(f"--device gpu: JAX backend is {jax.default_backend()!r}, torch.cuda.is_available() = "
                    f"{torch.cuda.is_available()}")
        TDEV = torch.device("cuda")
    else:
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
    chosen = ["matmul"] + [w for w in WORKLOADS[1:] if (not a.only or w in a.only)
                           and not (gpu and w == "inference_one_core")]
    info = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), python=platform.python_version(),
                jax=jax.__version__, torch=torch.__version__, torch_threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.enabled, jax_devices=str(jax.devices()), quick=a.quick)
    info["cpu"] = cpu_model()
    info["nproc"] = os.cpu_count()
    info["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
    info["libc"] = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else "n/a"
    info["thp"] = read_sysfs("/sys/kernel/mm/transparent_hugepage/enabled")
    if gpu:
        info["gpu"] = f"{jax.devices()[0].device_kind} (torch: {torch.cuda.get_device_name()})"
    info["load_start"] = os.getloadavg()
    rows, loads = [], {}
    for w in chosen:
        log(f"workload {w}")
        before = os.getloadavg()
        try:
            rows += globals()[f"w_{w}"](a)
        except Exception as e:  # noqa: BLE001  (report and go on with the other workloads)
            log(f"workload {w} FAILED: {e!r}")
            rows.append(dict(workload=f"{w}: FAILED", ref_s=None, jax_s=None, ref_str="", jax_str="", flops=None,
                             target="", note=repr(e)[:200]))
        loads[w] = {"before": before, "after": os.getloadavg()}
        log(f"done {w}")
        if a.json:  # after every workload, so that a run stopped part-way keeps what it measured
            with open(a.json, "w") as f:
                json.dump({"info": info, "loads": loads, "peak_gflops": a.peak_gflops, "rows": rows,
                           "table": fmt_table(rows, a.peak_gflops)}, f, indent=1, default=float)
    info["load_end"] = os.getloadavg()
    table = fmt_table(rows, a.peak_gflops)
    where = f"{info['gpu']}, host " if gpu else ""
    print(f"\n# stepjax vs official-style PyTorch, {info['date']}, {where}{info['cpu']} ({info['nproc']} cores), "
          f"jax {info['jax']}, torch {info['torch']} ({info['torch_threads']} threads, mkldnn off)"
          f"{', QUICK' if a.quick else ''}; {info['libc']}, GLIBC_TUNABLES={info['glibc_tunables'] or '(unset)'}, "
          f"THP {info['thp']}\n")
    print(table)
    print("\nload average (1/5/15 min) per workload, before -> after: " + "; ".join(
        f"{w}: {'/'.join(f'{x:.2f}' for x in v['before'])} -> {'/'.join(f'{x:.2f}' for x in v['after'])}"
        for w, v in loads.items()))
    print(f"os.getloadavg() at start {info['load_start']}, at end {info['load_end']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "loads": loads, "peak_gflops": a.peak_gflops, "rows": rows, "table": table},
                      f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
