"""S seeds of a classifier as ONE vmapped training program vs S sequential runs, same process, same work.

    python bench/seeds.py                       # 8 seeds, configs/step.py on 600 walkers, 4 epochs
    python bench/seeds.py --seeds 8 --epochs 4 --num-gaits 600 --json out.json

Both arms train configs/step.py (STEP hybrid, kernel 9, batch 32) on the same split with seeds 0..S-1 and
the same number of epochs; the sequential arm calls ``fit_classifier`` S times in this process (what a
user's loop does: the first call compiles, later calls hit the in-process and persistent compilation
caches), the vmapped arm calls ``fit_classifier_runs`` once (``runs.mode='seeds'``). Wall time includes
data preparation, compilation, every epoch, validation and the final test evaluation. The vmapped arm
runs first. Also printed: mean +- std test accuracy of both arms (they should agree statistically: the
runs are the same computations, shuffles and inits differ between the two code paths).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "configs"))


def config(args):
    import ml_collections
    import step

    cfg = step.get_config()
    cfg.data.num_gaits = args.num_gaits
    cfg.train.epochs = args.epochs
    cfg.runs = ml_collections.ConfigDict(dict(mode="seeds", num_seeds=args.seeds, folds=5, repeats=1,
                                              val_fraction=0.2))
    return cfg


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--num-gaits", type=int, default=600)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from absl import logging

    from stepjax.training.fit import fit_classifier
    from stepjax.training.multirun import fit_classifier_runs

    logging.set_verbosity(logging.WARNING)
    load0 = os.getloadavg()
    cfg = config(args)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        vm = fit_classifier_runs(cfg, os.path.join(tmp, "vmapped"), progress=False, log=lambda *a: None)
        t_vmap = time.perf_counter() - t0
        vm_acc = [r["accuracy"] for r in vm["runs"]]
        t0 = time.perf_counter()
        seq_acc = []
        for s in range(args.seeds):
            c = config(args)
            c.task = "classifier"
            c.seed = s
            r = fit_classifier(c, os.path.join(tmp, f"seq{s}"), progress=False, log=lambda *a: None)
            seq_acc.append(r["test"]["accuracy"])
        t_seq = time.perf_counter() - t0
    out = {"seeds": args.seeds, "epochs": args.epochs, "num_gaits": args.num_gaits, "vmapped_s": t_vmap,
           "sequential_s": t_seq, "speedup": t_seq / t_vmap, "sequential_test_accuracy": seq_acc,
           "vmapped_test_accuracy": vm_acc, "vmapped_train_loop_s": vm["train_time_s"], "load_before": load0,
           "load_after": os.getloadavg()}
    print(f"{args.seeds} seeds x {args.epochs} epochs, configs/step.py on {args.num_gaits} walkers "
          f"(load {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}):")
    print("| arm | wall time | per run | test accuracy |\n|---|---|---|---|")
    fmt = lambda a: f"{np.mean(a):.3f} +- {np.std(a, ddof=1):.3f}"
    print(f"| {args.seeds} sequential fit_classifier calls | {t_seq:.1f} s | {t_seq / args.seeds:.1f} s | {fmt(seq_acc)} |")
    print(f"| one vmapped fit_classifier_runs | {t_vmap:.1f} s | {t_vmap / args.seeds:.1f} s | {fmt(vm_acc)} |")
    print(f"speed-up {t_seq / t_vmap:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)


if __name__ == "__main__":
    main()
