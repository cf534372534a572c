"""STEP-Gen vs Baseline-CVAE, and the official decoder input vs a sinusoidal temporal code (walkers or Bandai).

    python scripts/gen_report.py [--data walkers|bandai] [--workdir runs/gen_report] [--out docs/generator.md]
                                 [--num-gaits 480] [--frames 32] [--width 0.5] [--epochs 100]
                                 [--classifier-epochs 30] [--per-class 100] [--num-affective 0]
                                 [--variants step_gen baseline_cvae ...]

Trains (resumably, under ``--workdir``) one feature classifier and one generator per variant on the same
built-in walker (or Bandai) data and split, evaluates every generator with :func:`stepjax.gen_eval.evaluate_generator`
(FID vs the real training / test split on the classifier's pooled deep features, diversity,
multimodality, recognition accuracy, motion statistics) and writes a markdown report. Defaults are
CPU-sized (a few minutes per model on 2 cores); the budgets are printed in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(PROJECT_ROOT, "configs"))

#: name -> (description, loss, overrides of configs/step_gen.py as {"section.key": value}); 'full' = the
#: kernel that spans the clip (configs/step_gen.py's 75 taps at T = 75, like the official CVAE)
OFFICIAL_INPUT_AND_POOLING = {"model.temporal_code": "none", "model.temporal_pooling": "mean",
                              "model.joint_embedding": False}
VARIANTS = {
    "step_gen": ("STEP-Gen (configs/step_gen.py: phase-aware, joint embedding, loss warm-up)", "push-pull", {}),
    "baseline_cvae": ("Baseline-CVAE (same net and recipe)", "L_o + KL", {}),
    "step_gen_no_warmup": ("STEP-Gen without the loss warm-up", "push-pull", {"loss.warmup_epochs": 0.0}),
    "step_gen_additive": ("STEP-Gen, mean pooling + additive sinusoidal decoder code", "push-pull",
                          {"model.temporal_code": "sinusoidal", "model.temporal_pooling": "mean"}),
    "step_gen_official_form": ("STEP-Gen, official form (mean pooling, constant decoder input)", "push-pull",
                               OFFICIAL_INPUT_AND_POOLING),
    "baseline_cvae_official_form": ("Baseline-CVAE, official form", "L_o + KL", OFFICIAL_INPUT_AND_POOLING),
    "step_gen_mirror_tied": ("STEP-Gen without the joint embedding (mirror-tied limbs, as officially)", "push-pull",
                             {"model.joint_embedding": False}),
}


def full_kernel(frames: int) -> int:
    """The odd kernel that spans the clip, as the official 75 taps do at T = 75."""
    return frames if frames % 2 else frames - 1


def scaled(channels, width: float):
    """Channels scaled by ``width`` (the last decoder channel, 3 coordinates, is kept)."""
    return tuple(c if c == 3 else max(4, int(round(c * width))) for c in channels)


def data_overrides(cfg, args, seed: int = 0) -> None:
    if getattr(args, "data", "walkers") == "bandai":  # real mocap windows, split grouped by clip (configs/bandai.py)
        import bandai

        cfg.data = bandai.bandai_data(args.frames, args.hop)
        if args.bandai_dir:
            cfg.data.path = args.bandai_dir
    else:
        cfg.data.num_gaits = args.num_gaits
        cfg.data.num_frames = args.frames
    cfg.data.split_seed = seed
    cfg.seed = seed


def generator_config(args, variant: str = "step_gen", seed: int = 0):
    """A small STEP-Gen / Baseline-CVAE config for the reports."""
    import step_gen

    _, loss, overrides = VARIANTS[variant]
    cfg = step_gen.get_config()
    data_overrides(cfg, args, seed)
    cfg.model.encoder_channels = scaled(cfg.model.encoder_channels, args.width)
    cfg.model.decoder_channels = scaled(cfg.model.decoder_channels, args.width)
    cfg.model.kernel_size = min(cfg.model.kernel_size, full_kernel(args.frames))
    cfg.loss.warmup_epochs = float(args.warmup_epochs)
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    if loss != "push-pull":
        cfg.loss.lambda_collapse = cfg.loss.lambda_drift = 0.0
    cfg.train.epochs = args.epochs
    if args.batch_size:
        cfg.train.batch_size = args.batch_size
    return cfg


def classifier_config(args, seed: int = 0):
    """The feature classifier: Baseline-STEP (``--num-affective 0``) or STEP (29)."""
    import baseline_step
    import step

    cfg = (baseline_step if args.num_affective == 0 else step).get_config()
    data_overrides(cfg, args, seed)
    cfg.train.epochs = args.classifier_epochs
    return cfg


def training_seconds(workdir: str) -> float | None:
    """Sum of the epoch times in a run's metrics.jsonl (survives resumes, unlike a wall clock around the call)."""
    from stepjax.training.progress import read_metrics

    return sum(r.get("time_s", 0.0) for r in read_metrics(workdir)) or None


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", choices=("walkers", "bandai"), default="walkers",
                   help="built-in walkers, or the Bandai emotion walks (real mocap, configs/bandai.py)")
    p.add_argument("--bandai-dir", default="", help="Bandai dataset folder (default: configs/bandai.py's)")
    p.add_argument("--hop", type=int, default=8, help="Bandai: frames between window starts (configs/bandai.py: "
                   "15 for its 75-frame windows; 8 suits the 32-frame report windows)")
    p.add_argument("--num-gaits", type=int, default=480, help="built-in walkers (split 70/15/15 by subject)")
    p.add_argument("--frames", type=int, default=32, help="frames per gait")
    p.add_argument("--width", type=float, default=0.5, help="generator channel multiplier (1 = official 64/32/32)")
    p.add_argument("--epochs", type=int, default=100, help="generator epochs")
    p.add_argument("--warmup-epochs", type=float, default=50.0,
                   help="loss warm-up epochs (50 x 10 steps here ~ configs/step_gen.py's 20 x 26 steps)")
    p.add_argument("--batch-size", type=int, default=0, help="generator batch size (0: the config's, 32)")
    p.add_argument("--classifier-epochs", type=int, default=30)
    p.add_argument("--num-affective", type=int, choices=(0, 29), default=0,
                   help="classifier: 0 = Baseline-STEP (deep features only), 29 = STEP hybrid")


def budget_lines(args) -> list[str]:
    cfg = generator_config(args)
    t, l = cfg.train, cfg.loss
    data = (f"* data: Bandai emotion walks (20 real mocap clips, configs/bandai.py), {args.frames}-frame windows every "
            f"{args.hop} frames, split {'/'.join(str(round(100 * f)) for f in cfg.data.split)} grouped by clip"
            if args.data == "bandai" else
            f"* data: {args.num_gaits} built-in walkers (`make_walkers`, seed 0), {args.frames} frames, split "
            f"70/15/15 grouped by subject")
    if getattr(args, "data_seed", None) is not None:  # this script's runs (step_aug_report.py runs many seeds)
        data += f", split and training seed {args.data_seed}"
    return [data,
            f"* generators: configs/step_gen.py with channel width x{args.width} (encoder "
            f"{tuple(cfg.model.encoder_channels)}, decoder {tuple(cfg.model.decoder_channels)}, z = "
            f"{cfg.model.latent_dim}), temporal kernel {cfg.model.kernel_size} (spans the clip), {t.epochs} epochs, "
            f"batch {t.batch_size}, AdamW lr {t.lr:g} {t.schedule}, per-element loss means with lambda_collapse "
            f"{l.lambda_collapse:g}, lambda_drift {l.lambda_drift:g}, beta {l.beta:g}, push-pull/KL warm-up over "
            f"{l.warmup_epochs:g} epochs (unless stated); selection on the validation loss",
            f"* classifier: {'Baseline-STEP' if args.num_affective == 0 else 'STEP (hybrid, 29 affective)'} "
            f"(configs/{'baseline_step' if args.num_affective == 0 else 'step'}.py), {args.classifier_epochs} epochs"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=None, help="default: runs/gen_report (walkers), runs/gen_bandai (Bandai)")
    p.add_argument("--out", default=None,
                   help="default: docs/generator.md (walkers), docs/generator_bandai.md (Bandai): tracked files")
    p.add_argument("--per-class", type=int, default=100, help="generated gaits per class for the metrics")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled latents and metric pairs")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of the split and of the classifier's and generators' training (cfg.seed)")
    add_common_flags(p)
    args = p.parse_args(argv)
    bandai = args.data == "bandai"
    args.workdir = args.workdir or ("runs/gen_bandai" if bandai else "runs/gen_report")
    args.out = args.out or os.path.join(PROJECT_ROOT, "docs", "generator_bandai.md" if bandai else "generator.md")

    from absl import logging

    from stepjax.utils import enable_compilation_cache

    logging.set_verbosity(logging.WARNING)
    enable_compilation_cache()
    from stepjax.gen_eval import evaluate_generator
    from stepjax.training.fit import fit_classifier
    from stepjax.training.fit_generator import fit_generator

    os.makedirs(args.workdir, exist_ok=True)
    cls_dir = os.path.join(args.workdir, "classifier")
    t0 = time.time()
    cls = fit_classifier(classifier_config(args, args.data_seed), cls_dir, progress=False, log=print)
    print(f"classifier: test accuracy {cls['test']['accuracy']:.4f} ({time.time() - t0:.0f} s)", flush=True)
    rows = {}
    for name in args.variants:
        t0 = time.time()
        gen = fit_generator(generator_config(args, name, args.data_seed), os.path.join(args.workdir, name),
                            progress=False, log=print)
        train_s = time.time() - t0
        rep = evaluate_generator(os.path.join(args.workdir, name), cls_dir, args.per_class, args.seed)
        rep["val_loss"] = gen["val"]
        rep["best_epoch"] = gen["best_epoch"]
        rep["train_seconds"] = round(training_seconds(os.path.join(args.workdir, name)) or train_s, 1)
        rows[name] = rep
        print(f"{name}: FID train {rep['fid_train']:.3f} test {rep['fid_test']:.3f} recognition "
              f"{rep['generated']['recognition_accuracy']:.3f} ({train_s:.0f} s)", flush=True)
        with open(os.path.join(args.workdir, "report.json"), "w") as f:
            json.dump({"classifier": cls["test"], "variants": rows}, f, indent=2)
    text = keep_notes(render(args, cls, rows), args.out)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


NOTES_MARKER = "<!-- notes: everything below this line is kept when the script rewrites the file -->"


def keep_notes(text: str, path: str) -> str:
    """``text`` plus the hand-written notes below :data:`NOTES_MARKER` of the existing ``path``."""
    notes = ""
    if os.path.exists(path):
        old = open(path).read()
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) + len(NOTES_MARKER):]
    return text + "\n" + NOTES_MARKER + (notes if notes else "\n")


def render(args, cls, rows) -> str:
    first = next(iter(rows.values()))
    real = first["real_test"]
    where = "the Bandai emotion walks (real motion capture)" if args.data == "bandai" else "the built-in walkers"
    lines = [f"# STEP-Gen vs Baseline-CVAE on {where}", "",
             f"Generated by `python scripts/gen_report.py` ({' '.join(sys.argv[1:]) or 'defaults'}). Small CPU budgets:", ""]
    lines += budget_lines(args)
    lines += [f"* metrics: {args.per_class} generated gaits per class (N(0, I) prior, seed {args.seed}); FID on the "
              f"classifier's pooled {first['feature_dim']}-d deep features vs the real training split "
              f"({first['real_train']['num_gaits']} gaits) and the held-out real test split "
              f"({real['num_gaits']} gaits); diversity over 200 random pairs, multimodality over 20 pairs per "
              f"class (Action2Motion / ACTOR); recognition = classifier accuracy on generated gaits w.r.t. the "
              f"conditioning label; joint speed = mean root-relative joint displacement per frame; fitted prior = the same number of "
              f"latents drawn from a Gaussian per class fitted to the training split's posteriors (ex-post density "
              f"estimation, `stepjax.generation.fit_latent_prior`) instead of N(0, I); recon. = the real "
              f"test gaits encoded to mu and decoded (the decoder's quality apart from the prior)", "",
             "| generator | loss | val rec (MSE) | FID train | FID test | diversity | multimodality | recognition acc | "
             "joint speed | fitted prior: FID test | fitted prior: diversity | fitted prior: recognition | "
             "fitted prior: joint speed | recon. FID test | recon. recognition | recon. joint speed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        g, c, f = r["generated"], r.get("reconstructed_test", {}), r.get("generated_fitted_prior", {})
        recon = (f"{c['fid_test']:.2f} | {c['recognition_accuracy']:.3f} | {c['joint_speed']:.4f}" if c else " | | ")
        fitted = (f"{f['fid_test']:.2f} | {f['diversity']:.3f} | {f['recognition_accuracy']:.3f} | "
                  f"{f['joint_speed']:.4f}" if f else " | | | ")
        lines.append(f"| {VARIANTS[name][0]} | {VARIANTS[name][1]} | {r['val_loss']['rec']:.4f} | "
                     f"{r['fid_train']:.2f} | {r['fid_test']:.2f} | {g['diversity']:.3f} | {g['multimodality']:.3f} | "
                     f"{g['recognition_accuracy']:.3f} | {g['joint_speed']:.4f} | {fitted} | {recon} |")
    lines.append(f"| *real test gaits (reference)* | | | *{first['fid_real_train_vs_test']:.2f}* (train vs test) | | "
                 f"*{real['diversity']:.3f}* | *{real['multimodality']:.3f}* | *{real['recognition_accuracy']:.3f}* | "
                 f"*{real['joint_speed']:.4f}* | | *{real['diversity']:.3f}* | *{real['recognition_accuracy']:.3f}* | "
                 f"*{real['joint_speed']:.4f}* | *0* | *{real['recognition_accuracy']:.3f}* | *{real['joint_speed']:.4f}* |")
    lines += ["", f"Classifier used for the features: test accuracy {cls['test']['accuracy']:.3f}, balanced "
              f"{cls['test']['balanced_accuracy']:.3f} (n = {cls['test']['num_gaits']}). Generator training times (s, sum of "
              f"the epoch times in metrics.jsonl): "
              + ", ".join(f"{n} {r['train_seconds']:.0f}" for n, r in rows.items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
