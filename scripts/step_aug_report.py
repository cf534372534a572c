"""STEP+Aug without leakage vs real-only, over several seeds, on the built-in walkers.

    python scripts/step_aug_report.py --seeds 0 1 2 [--workdir runs/step_aug_report] [--out docs/step_aug.md]
        [--num-gaits 480] [--frames 32] [--width 0.5] [--epochs 25] [--classifier-epochs 30]
        [--synthetic-fraction 0.25 | --per-class N] [--num-affective 0]

For every seed ``s`` (model init, shuffling, latent samples **and** the stratified subject-grouped split,
``data.split_seed = s``) two arms are trained with the same classifier config:

* ``real``: the classifier on the real training split (``aug.per_class = 0``);
* ``aug``: :func:`stepjax.training.augment.fit_step_aug`: STEP-Gen trained on that training split only,
  ``per_class`` synthetic gaits per class added to the training split only.

Both select on the real validation split and are tested on the held-out real test split. The report
gives mean +- sample std (ddof 1) over seeds of test accuracy, balanced accuracy and macro-F1 for both
arms and of the paired difference. Every run is resumable under ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
import gen_report  # noqa: E402  (shared small-budget settings; puts configs/ on sys.path)

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
ARMS = {"real": "real only", "aug": "real + synthetic (STEP+Aug, N(0, I) prior)",
        "aug_fitted": "real + synthetic (STEP+Aug, fitted per-class prior)"}
GENERATOR_DIR = "generator"


def step_aug_config(args, seed: int, per_class: int):
    import step_aug

    cfg = step_aug.get_config()
    cls = gen_report.classifier_config(args, seed)
    gen = gen_report.generator_config(args, "step_gen", seed)
    cfg.seed = seed
    cfg.data = cls.data
    cfg.preprocess = cls.preprocess
    cfg.model = cls.model
    cfg.train = cls.train
    for key in ("preprocess", "model", "loss", "train", "generate"):
        cfg.generator[key] = gen[key]
    cfg.aug.per_class = per_class
    cfg.aug.seed = seed
    return cfg


def _mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workdir", default="runs/step_aug_report")
    p.add_argument("--out", default=os.path.join(gen_report.PROJECT_ROOT, "docs", "step_aug.md"))
    p.add_argument("--synthetic-fraction", type=float, default=0.25,
                   help="synthetic gaits as a fraction of the real training split (the paper: ~1,000 on ~3,800)")
    p.add_argument("--per-class", type=int, default=None, help="synthetic gaits per class (overrides the fraction)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                   help="real = real only; aug = STEP+Aug, N(0, I) prior; aug_fitted = STEP+Aug with the same "
                        "generator sampled from the per-class Gaussian fitted to the training posteriors")
    gen_report.add_common_flags(p)
    args = p.parse_args(argv)

    from absl import logging

    from stepjax.utils import enable_compilation_cache

    logging.set_verbosity(logging.WARNING)
    enable_compilation_cache()
    from stepjax.data import pipeline
    from stepjax.training.augment import fit_step_aug

    runs = []
    for seed in args.seeds:
        cfg = step_aug_config(args, seed, 0)
        split = pipeline.split_dataset(pipeline.load_source(cfg.data), cfg.data)
        per_class = args.per_class if args.per_class is not None else \
            max(1, int(round(args.synthetic_fraction * len(split.train) / 4)))
        row = {"seed": seed, "num_real_train": int(len(split.train)), "per_class": per_class}
        for arm in [a for a in ARMS if a in args.arms]:  # 'aug' before 'aug_fitted', which reuses its generator
            t0 = time.time()
            cfg = step_aug_config(args, seed, 0 if arm == "real" else per_class)
            workdir = os.path.join(args.workdir, arm, f"seed{seed}")
            if arm == "aug_fitted":  # the same trained generator as the 'aug' arm, sampled with the fitted prior
                cfg.generator.generate.prior = "fitted"
                shared = os.path.join(args.workdir, "aug", f"seed{seed}", GENERATOR_DIR)
                if os.path.isdir(shared):  # always the aug arm's current generator (fit_step_aug then only resumes it)
                    shutil.rmtree(os.path.join(workdir, GENERATOR_DIR), ignore_errors=True)
                    shutil.copytree(shared, os.path.join(workdir, GENERATOR_DIR))
            out = fit_step_aug(cfg, workdir, progress=False, log=print)
            test = out["classifier"]["test"]
            row[arm] = {k: test[k] for k in METRICS}
            row[arm]["num_test"] = test["num_gaits"]
            row[arm]["seconds"] = round(time.time() - t0, 1)
            if arm != "real":
                row["generator_val"] = out["generator"]["val"]
                row["generator_num_train"] = int(out["generator"]["num_train"])
            print(f"seed {seed} {arm}: " + "  ".join(f"{k} {test[k]:.4f}" for k in METRICS), flush=True)
        runs.append(row)
        with open(os.path.join(args.workdir, "report.json"), "w") as f:
            json.dump(runs, f, indent=2)
    text = gen_report.keep_notes(render(args, runs), args.out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


def render(args, runs) -> str:
    trained = [f"{r['generator_num_train']}/{r['num_real_train']}" for r in runs if "generator_num_train" in r]
    lines = ["# STEP+Aug without leakage vs real-only (built-in walkers)", "",
             f"Generated by `python scripts/step_aug_report.py {' '.join(sys.argv[1:])}`. Seeds "
             f"{', '.join(str(r['seed']) for r in runs)}: each seed changes the subject-grouped stratified split, "
             f"the initialisations, the shuffling and the latent samples; both arms of a seed share the split "
             f"and the classifier seed. The generator sees only the real training split (it trains on part of it, "
             f"{', '.join(trained) or 'n/a'} gaits per seed, and picks its checkpoint on the rest: "
             f"aug.generator_val_fraction of the subjects); synthetic gaits join "
             f"the training split only; model selection on the real validation split; test on held-out real "
             f"gaits only (stepjax.training.augment).", "", "Budgets (CPU):", ""]
    lines += gen_report.budget_lines(args)
    arms = [a for a in ARMS if a in runs[0]]
    lines += [f"* synthetic gaits: {runs[0]['per_class']} per class "
              f"({4 * runs[0]['per_class']} with {runs[0]['num_real_train']} real training gaits for seed "
              f"{runs[0]['seed']}), STEP-Gen config as in docs/generator.md; N(0, I) prior ('aug') or the "
              f"per-class Gaussian fitted to the posteriors of the generator's training gaits ('aug_fitted', same "
              f"generator)", "",
              "| arm | test accuracy | balanced accuracy | macro-F1 |", "|---|---|---|---|"]
    for arm in arms:
        cells = [("%.4f +- %.4f" % _mean_std([r[arm][k] for r in runs])) for k in METRICS]
        lines.append(f"| {ARMS[arm]} | " + " | ".join(cells) + " |")
    for arm in (a for a in arms if a != "real" and "real" in arms):
        diffs = [("%+.4f +- %.4f" % _mean_std([r[arm][k] - r["real"][k] for r in runs])) for k in METRICS]
        lines.append(f"| difference ({arm} - real, paired) | " + " | ".join(diffs) + " |")
    lines += ["", f"mean +- sample std (ddof 1) over {len(runs)} seeds; test sets of "
              f"{', '.join(str(r[arms[0]]['num_test']) for r in runs)} real gaits.", "", "Per seed (test accuracy, "
              "balanced accuracy, macro-F1 per arm):", "",
              "| seed | " + " | ".join(f"{a} {k}" for a in arms for k in ("acc", "bal. acc", "macro-F1")) + " |",
              "|---|" + "---|" * (3 * len(arms))]
    for r in runs:
        lines.append(f"| {r['seed']} | " + " | ".join(f"{r[a][k]:.4f}" for a in arms for k in METRICS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
