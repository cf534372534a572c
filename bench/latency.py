"""One-gait latency of the official classifier (Kt = 75), frozen (`stepjax.inference.freeze`), per formulation.

    python bench/latency.py                                   # both cores (XLA's default thread pool)
    taskset -c 0 python bench/latency.py                      # the process pinned to one core
    python bench/latency.py --impls dft dft_2x2 --graphs joints_batched joints_first --calls 3

Each entry ``temporal_impl:graph_impl`` is compiled once with the weights as constants; the entries are then
timed interleaved (``--calls`` back-to-back calls per entry per round, ``--rounds`` rounds), output to numpy,
and the median / p10 / p90 per call are printed with each program's XLA FLOP count. The bench-only
formulations of bench/temporal_conv.py (dft_2x2, dft_4mm, dft_sym, fft, ...) can be named too.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import temporal_conv as tc  # noqa: E402

from stepjax.inference import freeze  # noqa: E402
from stepjax.models.classifier import OFFICIAL_OPTIONS, TRUNKS, STEPClassifier  # noqa: E402


def frozen_classifier(impl: str, graph: str, x: jax.Array):
    model = STEPClassifier(channels=(32, 64, 64), kernel_size=75, temporal_impl=impl, graph_impl=graph,
                           **OFFICIAL_OPTIONS, **TRUNKS["real_only"])
    variables = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.PRNGKey(0))
    f = freeze(lambda v, g: model.apply(v, g, train=False)[0], variables)
    out = np.asarray(f(x))  # compiles
    cost = f.lower(x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return (lambda: np.asarray(f(x))), out, float(cost.get("flops", float("nan")))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impls", nargs="+", default=["dft", "dft_2x2", "dft_sym"])
    p.add_argument("--graphs", nargs="+", default=["joints_batched", "joints_first"])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--calls", type=int, default=3)
    a = p.parse_args(argv)
    tc.register_extra()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 75, 16, 3)), jnp.float32)
    fns, flops, ref = {}, {}, None
    for impl, graph in itertools.product(a.impls, a.graphs):
        name = f"{impl}:{graph}"
        fns[name], out, flops[name] = frozen_classifier(impl, graph, x)
        ref = out if ref is None else ref
        err = float(np.max(np.abs(out - ref)))
        if err > 1e-4 * max(1.0, float(np.max(np.abs(ref)))):
            raise SystemExit(f"{name} disagrees with {next(iter(fns))}: max abs diff {err:.2e}")
        for _ in range(20):
            fns[name]()
    times = {k: [] for k in fns}
    for _ in range(a.rounds):
        for k, f in fns.items():
            for _ in range(a.calls):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    print(f"one-gait frozen latency, {len(os.sched_getaffinity(0))} core(s) in the affinity mask, "
          f"{a.rounds} x {a.calls} calls per entry, load {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| temporal:graph | median ms | p10 | p90 | XLA MFLOP |\n|---|---|---|---|---|")
    for k, t in times.items():
        t = np.asarray(t) * 1e3
        print(f"| {k} | {np.median(t):.2f} | {np.percentile(t, 10):.2f} | {np.percentile(t, 90):.2f} | "
              f"{flops[k] / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
