"""Evaluate a STEP-Gen generator checkpoint with a trained classifier (see :mod:`stepjax.gen_metrics`).

    python -m stepjax.gen_eval --workdir runs/gen --classifier runs/baseline_step [--per-class 250]
                               [--seed 0] [--official-sampler] [--json out.json]

Generates ``per_class`` gaits of every class from the generator's best checkpoint and compares them,
on the classifier's pooled deep features, with the *real* gaits of the generator's data:

* ``fid_train``: generated vs the real training split (the gaits the generator learnt from; in STEP+Aug the
  inner training part of the classifier's training split);
* ``fid_test``: generated vs the held-out real test split (of the data's split, which a STEP+Aug generator
  never saw);
* ``fid_real_train_vs_test``: real training vs real test split, the floor a perfect generator would
  reach given these set sizes (FID is biased upwards for small sets);
* diversity / multimodality of generated and of real test gaits (ACTOR reports the real values as the
  target), recognition accuracy of generated gaits (and the classifier's accuracy on real test gaits);
* motion statistics (root-relative joint speed and pose spread over time) of generated and real gaits;
* ``generated_fitted_prior``: the same metrics for latents drawn from a Gaussian per class fitted to the
  training split's posteriors (:func:`stepjax.generation.fit_latent_prior`) instead of N(0, I);
* ``reconstructed_test``: the real test gaits encoded (mu) and decoded: the decoder apart from the prior;
* ``loss_curves``: the run's per-epoch train / validation loss components (reconstruction, push = collapse,
  pull = drift, KL) from ``metrics.jsonl``; ``eval.py --png`` plots them.

The classifier should be trained on the same data config as the generator (so its training split is
the generator's); ``same_split`` in the report says whether it is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

from stepjax.data import pipeline
from stepjax.gen_metrics import classifier_outputs, fid, motion_statistics, set_metrics
from stepjax.generation import (decode_latents, encode_gaits, fit_latent_prior_on, generate_per_class,
                                make_generate_fn, restore_generator)
from stepjax.inference import make_predict_fn, restore_classifier
from stepjax.nn import with_impls
from stepjax.training import provenance
from stepjax.training.checkpoint import ConfigMismatchError, config_to_json
from stepjax.training.progress import read_metrics, run_split
from stepjax.utils import is_integer, write_json


def evaluate_generator(gen_workdir: str, classifier_workdir: str, num_per_class: int = 250, seed: int = 0, *,
                       official_sampler: bool | None = None, which: str = "best", classifier_which: str = "best",
                       diversity_pairs: int = 200, multimodality_pairs: int = 20, fitted_prior: bool = True) -> dict:
    """Generator metrics (FID, diversity, multimodality, recognition accuracy) as a JSON-ready dict.

    Args:
      gen_workdir: a generator run (``train.py --config configs/step_gen.py``; for a STEP+Aug run pass
        ``<workdir>/generator``).
      classifier_workdir: a classifier run whose pooled features and predictions are used
        (recommended: Baseline-STEP on the same data config).
      num_per_class: generated gaits per class.
      seed: seed of the latent samples and of the random pairs.
      official_sampler: ``None`` = the generator config's choice (N(0, I) unless set).
      which, classifier_which: the generator's and the classifier's checkpoint, ``'best'`` (lowest validation
        loss / best validation score) or ``'latest'``.
      fitted_prior: also sample a Gaussian per class fitted to the training split's posteriors
        (:func:`stepjax.generation.fit_latent_prior`) and report those gaits under ``generated_fitted_prior``
        (its own ``fid_train`` / ``fid_test``, recognition, diversity, motion).
    """
    if not is_integer(num_per_class) or num_per_class < 2:
        raise ValueError(f"num_per_class (--per-class) must be an integer >= 2 (FID and diversity compare "
                         f"several gaits per class), got {num_per_class!r}")
    t0 = time.time()
    gen_cfg, gen_model, gen_vars, gen_prep = restore_generator(gen_workdir, which)
    frames = pipeline.trained_num_frames(gen_cfg)
    generate_fn = make_generate_fn(with_impls(gen_model, "auto", "auto"), frames,
                                   bool(gen_cfg.get("generate", {}).get("official_sampler", False)))
    cls_cfg, cls_model, cls_vars = restore_classifier(classifier_workdir, classifier_which)
    predict_fn = make_predict_fn(cls_model)
    if pipeline.trained_num_frames(cls_cfg) != frames:
        raise ValueError(f"generator makes {frames}-frame gaits but the classifier was trained on "
                         f"{pipeline.trained_num_frames(cls_cfg)} frames")
    if int(cls_cfg.preprocess.get("num_affective", 0)):
        warnings.warn(f"{classifier_workdir} is a STEP model with affective features: generated gaits are in the "
                      "CVAE's aligned frame and raw real gaits are not, so their hand-made features are not on one "
                      "scale; use a Baseline-STEP classifier (configs/baseline_step.py) for FID and recognition",
                      stacklevel=2)
    raw = pipeline.load_source(gen_cfg.data)
    # the gaits it learnt from, and the held-out real test part of the data's split (a STEP+Aug generator's own
    # split has no test part: it never saw those gaits, evaluating against them afterwards is reporting only);
    # checked against the run's record before the sampling
    split = run_split(gen_workdir, raw, gen_cfg.data, hint="retrain the generator")
    if not len(split.test):
        split = split._replace(test=pipeline.outer_split(raw, gen_cfg.data).test)
    if np.intersect1d(split.test, np.concatenate([split.train, split.val])).size:
        raise ConfigMismatchError(f"the data's test part as split now holds gaits {gen_workdir} trained or was "
                                  "selected on (the splitting changed since it was trained): retrain the generator")
    gaits, labels = generate_per_class(generate_fn, gen_vars, num_per_class, seed, official_sampler)
    t_gen = time.time() - t0
    outputs = {"generated": classifier_outputs(predict_fn, cls_vars, gaits)}
    real_labels = {}
    for name in ("train", "test"):
        idx = getattr(split, name)
        if len(idx) >= 2:
            outputs[name] = classifier_outputs(predict_fn, cls_vars, raw.gaits[idx], lengths=raw.lengths_at(idx))
            real_labels[name] = raw.labels[idx]
    gen_feats = outputs["generated"][0]
    report: dict[str, Any] = {
        "generator": os.fspath(gen_workdir), "classifier": os.fspath(classifier_workdir), "checkpoint": which,
        "classifier_checkpoint": classifier_which,
        "trained_with": provenance.run_start(gen_workdir),
        "num_per_class": int(num_per_class), "seed": int(seed),
        "official_sampler": bool(gen_cfg.get("generate", {}).get("official_sampler", False)
                                 if official_sampler is None else official_sampler),
        "same_split": _same_split(gen_cfg, cls_cfg),
        "feature_dim": int(gen_feats.shape[1]),
        "generated": set_metrics(gen_feats, labels, outputs["generated"][1], diversity_pairs,
                                 multimodality_pairs, seed),
    }
    report["generated"].update(motion_statistics(gaits))
    for name in real_labels:
        report[f"fid_{name}"] = fid(gen_feats, outputs[name][0])
        report[f"real_{name}"] = set_metrics(outputs[name][0], real_labels[name], outputs[name][1],
                                             diversity_pairs, multimodality_pairs, seed)
        idx = getattr(split, name)
        report[f"real_{name}"].update(motion_statistics(raw.gaits[idx], raw.lengths_at(idx)))
    if len(real_labels) == 2:
        report["fid_real_train_vs_test"] = fid(outputs["train"][0], outputs["test"][0])
    if len(split.train) and fitted_prior:  # class-faithful sampling: a Gaussian per class fitted on the training split
        prior = fit_latent_prior_on(gen_model, gen_vars, gen_prep, raw.gaits[split.train], raw.labels[split.train])
        fitted, fitted_labels = generate_per_class(generate_fn, gen_vars, num_per_class, seed, False, prior)
        feats, logits = classifier_outputs(predict_fn, cls_vars, fitted)
        block = set_metrics(feats, fitted_labels, logits, diversity_pairs, multimodality_pairs, seed)
        block.update(motion_statistics(fitted))
        for name in real_labels:  # (fid_train is optimistic here: the prior was fitted on those very gaits)
            block[f"fid_{name}"] = fid(feats, outputs[name][0])
        report["generated_fitted_prior"] = block
    if "test" in real_labels:  # decoder quality apart from the prior: real test gaits encoded (mu) and decoded
        recon = reconstruct(gen_model, gen_vars, gen_prep, raw.gaits[split.test], real_labels["test"])
        test_lengths = raw.lengths_at(split.test)  # the reconstruction of a tiled gait is read like the gait
        feats, logits = classifier_outputs(predict_fn, cls_vars, recon, lengths=test_lengths)
        squared = (recon - np.asarray(gen_prep.gaits(jnp.asarray(raw.gaits[split.test])))) ** 2  # (N, T, V, 3)
        real = np.ones(squared.shape[:2], bool) if test_lengths is None else \
            np.arange(squared.shape[1]) < test_lengths[:, None]  # over each gait's real frames
        report["reconstructed_test"] = {"fid_test": fid(feats, outputs["test"][0]),
                                        "recognition_accuracy": float(np.mean(logits.argmax(-1) == real_labels["test"])),
                                        "rec_mse": float(squared[real].mean())}
        report["reconstructed_test"].update(motion_statistics(recon, test_lengths))
    report["loss_curves"] = loss_curves(gen_workdir)
    report["seconds"] = {"load_and_generate": round(t_gen, 2), "total": round(time.time() - t0, 2)}
    return report


def loss_curves(gen_workdir: str) -> dict[str, list[float | None]]:
    """Per-epoch train / validation loss components of a generator run (``metrics.jsonl``): ``{'epoch': [...],
    'train_rec': [...], 'val_drift': [...], ...}`` (the push = collapse, pull = drift and KL curves)."""
    records = read_metrics(gen_workdir)
    keys = [k for k in records[0] if k == "epoch" or k.startswith(("train_", "val_"))] if records else []
    return {k: [r.get(k) for r in records] for k in keys}


def reconstruct(model, variables, prep, raw_gaits: np.ndarray, labels: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``decode(mu(x, y), y)`` of raw gaits ``(N, T, 16, 3)`` after the generator's preprocessing (alignment):
    the CVAE's deterministic reconstructions, in the generator's output space."""
    gaits = np.asarray(prep.gaits(jnp.asarray(raw_gaits, jnp.float32)))
    mu, _ = encode_gaits(model, variables, gaits, labels, chunk)
    return decode_latents(model, variables, mu, labels, raw_gaits.shape[1], chunk)


def _same_split(gen_cfg, cls_cfg) -> bool:
    keys = ("source", "num_gaits", "seed", "difficulty", "num_frames", "path", "labels_path", "split",
            "split_seed", "group_by_subject", "length_policy", "hop", "contents")
    a, b = config_to_json(gen_cfg.data), config_to_json(cls_cfg.data)
    return all(a.get(k) == b.get(k) for k in keys)


def format_report(r: dict) -> str:
    g = r["generated"]
    lines = [f"generator {r['generator']} ({r['checkpoint']} checkpoint; {r['num_per_class']} per class, seed "
             f"{r['seed']}, {'official sampler' if r['official_sampler'] else 'N(0, I) prior'}); features: "
             f"{r['classifier']} ({r['classifier_checkpoint']} checkpoint)"
             + ("" if r["same_split"] else "  [WARNING: classifier trained on other data/split]"),
             f"  generator trained with {provenance.summary(r.get('trained_with'))}"]
    for k in ("fid_train", "fid_test", "fid_real_train_vs_test"):
        if k in r:
            lines.append(f"  {k:24s} {r[k]:.4g}")
    lines.append(f"  generated: diversity {g['diversity']:.4g}  multimodality {g['multimodality']:.4g}  "
                 f"recognition accuracy {g['recognition_accuracy']:.4g}  joint speed {g['joint_speed']:.4g}")
    if "generated_fitted_prior" in r:
        f = r["generated_fitted_prior"]
        lines.append(f"  fitted per-class prior: FID train {f.get('fid_train', float('nan')):.4g}  FID test "
                     f"{f.get('fid_test', float('nan')):.4g}  diversity {f['diversity']:.4g}  recognition accuracy "
                     f"{f['recognition_accuracy']:.4g}  joint speed {f['joint_speed']:.4g}")
    if "reconstructed_test" in r:
        c = r["reconstructed_test"]
        lines.append(f"  reconstructed real test (decode(mu)): FID {c['fid_test']:.4g}  recognition accuracy "
                     f"{c['recognition_accuracy']:.4g}  joint speed {c['joint_speed']:.4g}  MSE {c['rec_mse']:.5f}")
    curves = r.get("loss_curves") or {}
    if curves.get("epoch"):
        best = int(np.argmin(curves["val_total"])) if curves.get("val_total") else -1
        parts = [f"{c} {curves[f'val_{c}'][0]:.4g} -> {curves[f'val_{c}'][best]:.4g}"
                 for c in ("rec", "collapse", "drift", "kl") if f"val_{c}" in curves]
        lines.append(f"  validation loss, epoch 0 -> best ({curves['epoch'][best]}): " + ", ".join(parts))
    if "real_test" in r:
        t = r["real_test"]
        lines.append(f"  real test: diversity {t['diversity']:.4g}  multimodality {t['multimodality']:.4g}  "
                     f"classifier accuracy {t['recognition_accuracy']:.4g}  joint speed {t['joint_speed']:.4g}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m stepjax.gen_eval", description="Generator metrics (FID etc.).")
    p.add_argument("--workdir", required=True, help="generator workdir")
    p.add_argument("--classifier", required=True, help="classifier workdir (e.g. Baseline-STEP on the same data)")
    p.add_argument("--per-class", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--official-sampler", action="store_true", default=None)
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best", help="the generator's checkpoint")
    p.add_argument("--classifier-checkpoint", choices=("best", "latest"), default="best",
                   help="the classifier's checkpoint")
    p.add_argument("--json", default=None, help="write the report here")
    args = p.parse_args(argv)
    from absl import logging

    from stepjax.utils import check_output_dir, cli_errors, enable_compilation_cache

    logging.set_verbosity(logging.WARNING)
    enable_compilation_cache()
    with cli_errors("python -m stepjax.gen_eval"):
        check_output_dir(args.json)
        report = evaluate_generator(args.workdir, args.classifier, args.per_class, args.seed,
                                    official_sampler=args.official_sampler, which=args.checkpoint,
                                    classifier_which=args.classifier_checkpoint)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
