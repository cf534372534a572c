"""Dispatch from a config's ``task`` to its training loop; prints the final line of train.py."""

from __future__ import annotations

import json

from stepjax.metrics import format_confusion


def train_from_config(cfg, workdir: str, *, progress: bool = True) -> dict:
    """Trains ``cfg.task`` into ``workdir`` (resuming what is there), holding the workdir's lock
    (:func:`~stepjax.training.checkpoint.workdir_lock`) throughout; returns the run's results."""
    from stepjax.training.checkpoint import workdir_lock
    from stepjax.training.state import check_train_config

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
        if "test" in result:
            t = result["test"]
            print(format_confusion(t["confusion_matrix"]))
            print(f"test (best-val epoch {result['best_epoch']}): accuracy {t['accuracy']:.4f}  "
                  f"balanced_accuracy {t['balanced_accuracy']:.4f}  macro_f1 {t['macro_f1']:.4f}  "
                  f"n={t['num_gaits']}")
        else:
            print(json.dumps(result["val"]))
        return result
    if cfg.task == "classifier_runs":
        from stepjax.training.multirun import fit_classifier_runs

        result = fit_classifier_runs(cfg, workdir, progress=progress)
        agg = result["aggregate"]
        print(f"{result['num_runs']} runs ({cfg.runs.mode}) trained in {result['train_time_s']:.1f} s; test: " + "  ".join(
            f"{k} {agg[k]['mean']:.4f} +- {agg[k]['std']:.4f}" for k in ("accuracy", "balanced_accuracy", "macro_f1")))
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
        c = result["classifier"]
        if "test" in c:
            t = c["test"]
            print(format_confusion(t["confusion_matrix"]))
            print(f"STEP+Aug test, real gaits only (best-val epoch {c['best_epoch']}; trained on "
                  f"{result['num_real_train']} real + {result['num_synthetic']} synthetic): accuracy "
                  f"{t['accuracy']:.4f}  balanced_accuracy {t['balanced_accuracy']:.4f}  macro_f1 "
                  f"{t['macro_f1']:.4f}  n={t['num_gaits']}")
        else:
            print(json.dumps(c["val"]))
        return result
    raise ValueError(f"unknown task {cfg.task!r}")
