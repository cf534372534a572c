"""Generation time of the official and the default (phase-aware) STEP-Gen decoders, interleaved.

    python bench/generation.py                       # 4,000 gaits, T = 75, generate's chunk 'auto' (32 on CPU)
    python bench/generation.py --num 4000 --chunk 128 --rounds 5

``stepjax.generation.generate`` (N(0, I) prior, output to numpy) for ``STEPGenCVAE(**OFFICIAL_OPTIONS)`` (the
architecture of the PyTorch reference and of the issue's 2 s target; its first block sees a time-constant input)
and ``STEPGenCVAE()`` (configs/step_gen.py's model: modulated frame code, so a time-varying first block, and a
64 -> 64 last block plus a Dense to 3). Random weights (the speed does not depend on them). Prints the median and
every round per model, with XLA's FLOP count per gait of one decoder call on ``--chunk`` gaits.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from stepjax.generation import generate, resolve_chunk
from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=4000, help="gaits per call")
    p.add_argument("--frames", type=int, default=75)
    p.add_argument("--chunk", default="auto", help="generate's chunk (gaits per decoder call; 'auto': 32 on CPU)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    args.chunk = resolve_chunk(args.chunk if args.chunk == "auto" else int(args.chunk))
    models = {"official": STEPGenCVAE(**OFFICIAL_OPTIONS), "default": STEPGenCVAE()}
    labels = jnp.asarray(np.arange(args.num) % 4)
    x, y = jnp.zeros((1, args.frames, 16, 3)), jnp.zeros((1, 4))
    variables, mflop = {}, {}
    for name, m in models.items():
        variables[name] = jax.jit(lambda k, m=m: m.init({"params": k, "sample": k}, x, y))(jax.random.PRNGKey(0))
        decode = jax.jit(lambda v, z, c, m=m: m.apply(v, z, c, args.frames, method="decode"))
        cost = decode.lower(variables[name], jnp.zeros((args.chunk, m.latent_dim)),
                            jnp.zeros((args.chunk, 4))).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        mflop[name] = cost["flops"] / args.chunk / 1e6
    run = lambda name: np.asarray(generate(models[name], variables[name], labels, jax.random.PRNGKey(0),  # noqa: E731
                                           args.frames, chunk=args.chunk))
    for name in models:
        run(name)  # compile
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name in models:
            t0 = time.perf_counter()
            run(name)
            times[name].append(time.perf_counter() - t0)
    print(f"{args.num} gaits, T = {args.frames}, chunks of {args.chunk}, {jax.devices()[0].platform}")
    for name, ts in times.items():
        print(f"{name:9s} median {np.median(ts):.2f} s  rounds {[round(t, 2) for t in ts]}  "
              f"XLA {mflop[name]:.1f} MFLOP per gait")


if __name__ == "__main__":
    main()
