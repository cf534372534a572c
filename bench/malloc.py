"""What glibc's allocator costs both sides: 4 KiB pages (the default) vs transparent huge pages for malloc'd buffers.

    python bench/malloc.py                  # 4 rounds, each: one child process per setting, in alternating order
    python bench/malloc.py --rounds 6 --batches 8 32 --gen

glibc serves a request above its mmap threshold (and, in a thread's arena, anything above 64 MiB) with a fresh
``mmap`` and returns it with ``munmap`` when freed, so every call of a jitted train step (its temporary buffer) and
every large PyTorch tensor is page-faulted in again, one 4 KiB page at a time. With
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35, transparent huge pages in 'madvise' or 'always' mode)
those buffers are backed by 2 MiB pages (a jitted op's fresh 154 MB output: 37,501 -> 709 faults here). glibc reads
its tunables at process start only, so each setting runs in its own child process; the children alternate (A B, B
A, ...) because this machine's speed drifts between minutes. Each child times the official classifier's train step
called once per batch (stepjax jit, PyTorch reference, as in bench/run.py) and optionally generation of 4,000
gaits, and reports medians and the minor page faults per call. It also reports the faults of a jitted op's fresh
154 MB output (the check that the setting took effect) and a sha256 of each side's parameters after its steps (the
check that the allocator changes no number). ``bench/run.py --malloc hugepages`` runs the whole table under the
tunable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SETTINGS = {"4 KiB pages (default)": "", "huge pages (glibc.malloc.hugetlb=1)": "glibc.malloc.hugetlb=1"}


def timed(fn, reps: int) -> tuple[float, float]:
    """(median seconds, median minor page faults) of ``reps`` calls after one warm-up call."""
    fn()
    ts, faults = [], []
    for _ in range(reps):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return float(np.median(ts)), float(np.median(faults))


def sha256_of(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def fresh_array_faults() -> int:
    """Minor page faults of one jitted element-wise op writing a fresh 154 MB output (XLA allocates it with
    glibc's malloc): ~37,500 with 4 KiB pages, ~700 with huge pages. (Not a numpy array: numpy madvises its
    large allocations for huge pages itself.)"""
    import jax
    import jax.numpy as jnp

    x = jnp.ones(500 * 75 * 16 * 64, jnp.float32)
    scale = jax.jit(lambda x: x * 1.5)
    scale(x).block_until_ready()  # compile; the timed call below allocates its own output
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    scale(x).block_until_ready()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def child(batches: list[int], gen: bool, reps: int) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import jax
    import jax.numpy as jnp

    import run as B  # bench/run.py: the same models, optimizers and fake gaits as the full table

    out, hashes = {}, {}
    for batch in batches:
        g, y = B.classifier_batch(batch)
        ref_step, tm = B.torch_classifier_step(g, y)
        arrays = B.Arrays(jnp.asarray(g), jnp.zeros((batch, 0), jnp.float32), jnp.asarray(y, jnp.int32))
        jax_step, holder, _ = B.jax_classifier_step(B.official_classifier(None), arrays)
        out[f"classifier train step b{batch}, PyTorch"] = timed(ref_step, reps)
        out[f"classifier train step b{batch}, stepjax"] = timed(jax_step, reps)
        hashes[f"b{batch} PyTorch"] = sha256_of(p.detach().numpy() for p in tm.parameters())
        hashes[f"b{batch} stepjax"] = sha256_of(map(np.asarray, jax.tree_util.tree_leaves(
            (holder["s"].params, holder["s"].batch_stats))))
    if gen:
        from stepjax.generation import generate
        from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE

        n, t = 4000, 75
        labels = jnp.asarray(np.eye(4, dtype=np.float32)[np.arange(n) % 4])
        model = STEPGenCVAE(**OFFICIAL_OPTIONS)
        variables = jax.jit(lambda k: model.init({"params": k, "sample": k}, jnp.zeros((1, t, 16, 3)),
                                                 jnp.zeros((1, 4)), train=False))(jax.random.PRNGKey(0))
        out["generate 4,000 gaits, stepjax"] = timed(
            lambda: np.asarray(generate(model, variables, labels, jax.random.PRNGKey(0), t, chunk=500)), reps)
    return {"timings": out, "hashes": hashes, "fresh_array_faults": fresh_array_faults()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    p.add_argument("--gen", action="store_true", help="also time generating 4,000 gaits (stepjax only)")
    p.add_argument("--reps", type=int, default=5, help="timed calls per workload per child")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.batches, a.gen, a.reps)))
        return 0
    results: dict[str, dict[str, list]] = {s: {} for s in SETTINGS}
    hashes: dict[str, list[str]] = {}  # parameters after the steps -> the children that ended with them
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--reps", str(a.reps), "--batches",
           *map(str, a.batches)] + (["--gen"] if a.gen else [])
    for r in range(a.rounds):
        order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
        for setting in order:
            env = dict(os.environ)
            env.pop("GLIBC_TUNABLES", None)
            if SETTINGS[setting]:
                env["GLIBC_TUNABLES"] = SETTINGS[setting]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"child ({setting}) failed:\n{proc.stderr[-3000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            for k, v in res["timings"].items():
                results[setting].setdefault(k, []).append(v)
            hashes.setdefault(json.dumps(res["hashes"], sort_keys=True), []).append(setting)
            print(f"round {r + 1}/{a.rounds}, {setting}: fresh 154 MB array {res['fresh_array_faults']} faults; " +
                  "; ".join(f"{k} {v[0] * 1e3:.0f} ms" for k, v in res["timings"].items()), flush=True)
    base, huge = list(SETTINGS)
    print(f"\n{a.rounds} rounds, alternating child processes; per cell: median over the rounds of each child's "
          f"median ({a.reps} calls), minor page faults per call")
    print("parameters after the steps: " + ("identical in every child (sha256)" if len(hashes) == 1 else
                                            f"DIFFER between children: {hashes}") + "\n")
    print(f"| workload | {base} | {huge} | speed-up |\n|---|---|---|---|")
    for k in results[base]:
        tb, th = (float(np.median([v[0] for v in results[s][k]])) for s in (base, huge))
        fb, fh = (float(np.median([v[1] for v in results[s][k]])) for s in (base, huge))
        print(f"| {k} | {tb * 1e3:.1f} ms ({fb:.0f} faults) | {th * 1e3:.1f} ms ({fh:.0f} faults) | {tb / th:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
