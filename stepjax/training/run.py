"""Dispatch from a config's ``task`` to its training loop; prints the final line of train.py."""

from __future__ import annotations

import os

from stepjax.metrics import format_aggregate, format_confusion


def train_from_config(cfg, workdir: str, *, progress: bool = True) -> dict:
    """Trains ``cfg.task`` into ``workdir`` (resuming what is there), holding the workdir's lock
    (:func:`~stepjax.training.checkpoint.workdir_lock`) throughout; returns the run's results."""
    from stepjax.training.checkpoint import workdir_lock
    from stepjax.training.progress import check_checkpoint_every
    from stepjax.training.state import check_train_config

    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise NotADirectoryError(f"--workdir {workdir} is a file, not a run directory")
    check_checkpoint_every(cfg.get("checkpoint_every", 1))  # before any work, not after the first epoch
    if "train" in cfg:
        check_train_config(cfg.train)
    if "generator" in cfg and "train" in cfg.generator:
        check_train_config(cfg.generator.train, "generator.train")
    with workdir_lock(workdir):
        return _train(cfg, workdir, progress)


def _train(cfg, workdir: str, progress: bool) -> dict:
    if cfg.task == "classifier":
        from stepjax.training.fit import fit_classifier

        result = fit_classifier(cfg, workdir, progress=progress)
        _print_classifier_report(result)
        return result
    if cfg.task == "classifier_runs":
        from stepjax.training.multirun import fit_classifier_runs

        result = fit_classifier_runs(cfg, workdir, progress=progress)
        agg = result["aggregate"]
        print(f"{result['num_runs']} runs ({cfg.runs.mode}) trained in {result['train_time_s']:.1f} s; test, mean +- "
              "sample std (ddof=1) over runs: " + format_aggregate(agg))
        return result
    if cfg.task == "generator":
        from stepjax.training.fit_generator import fit_generator

        result = fit_generator(cfg, workdir, progress=progress)
        parts = ("rec", "drift", "collapse", "kl", "total")
        for name in ("val", "test"):
            if name in result:
                print(f"{name} loss (best-val epoch {result['best_epoch']}): "
                      + "  ".join(f"{k} {result[name][k]:.5g}" for k in parts))
        return result
    if cfg.task == "step_aug":
        from stepjax.training.augment import fit_step_aug

        result = fit_step_aug(cfg, workdir, progress=progress)
        _print_classifier_report(result["classifier"], "STEP+Aug ", f"; trained on {result['num_real_train']} real "
                                 f"+ {result['num_synthetic']} synthetic", "real gaits only")
        return result
    raise ValueError(f"unknown task {cfg.task!r}")


def _print_classifier_report(result: dict, prefix: str = "", context: str = "", test_note: str = "") -> None:
    """The test report of a classifier run (confusion matrix and summary line), or, for a run without a test
    set (``data.split`` with a test fraction of 0), its validation report, labelled as such. ``prefix`` starts
    the line, ``context`` ends its parenthesis, ``test_note`` follows "test" (e.g. "real gaits only")."""
    if "test" in result:
        r, label = result["test"], "test" + (f", {test_note}" if test_note else "")
        print(format_confusion(r["confusion_matrix"]))
    else:
        r, label = result["val"], "no test set; validation"
    print(f"{prefix}{label} (best-val epoch {result['best_epoch']}{context}): accuracy {r['accuracy']:.4f}  "
          f"balanced_accuracy {r['balanced_accuracy']:.4f}  macro_f1 {r['macro_f1']:.4f}  n={r['num_gaits']}")
