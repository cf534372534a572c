"""STEP+Aug without leakage: generator on the training fold only, synthetic gaits join the training split only.

``fit_step_aug(cfg, workdir)`` (``train.py --config configs/step_aug.py``):

1. splits the real data with :func:`stepjax.data.pipeline.split_dataset` (``cfg.data``; the split a
   classifier with the same data config uses);
2. trains the STEP-Gen CVAE on the **training fold only** (``<workdir>/generator``, resumable): an inner
   stratified split of the training fold (``aug.generator_val_fraction``, 15 % by default) selects its
   checkpoint by the validation loss, so the generator never sees the classifier's validation or test gaits;
   checks that its training and validation indices together are exactly the classifier's training split;
3. samples ``cfg.aug.per_class`` gaits per class from the best generator checkpoint (N(0, I) prior, or
   with ``generator.generate.prior = 'fitted'`` a Gaussian per class fitted to the posteriors of the gaits
   the generator trained on) and stores them in ``<workdir>/synthetic.h5`` (``synthetic_fitted_prior.h5``; E-Gait
   layout, keys ``00001_Happy``; reused on resume);
4. trains the classifier (``<workdir>/classifier``) with
   ``fit_classifier(..., extra_train=(synthetic_gaits, labels))``: the synthetic gaits join the
   training split only; model selection on the real validation split; test on held-out real gaits only.

The official STEP+Aug (``classifier_stgcn_real_and_synth``) instead splits real + synthetic *together*,
so its test set contains synthetic gaits, and its generator saw the whole dataset (STEP_REFERENCE 6, 7.12).
``cfg.aug.per_class = 0`` trains the same classifier on real gaits only (the control arm).
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from stepjax import NUM_CLASSES
from stepjax.data import pipeline
from stepjax.utils import is_integer, write_json

GENERATOR_DIR = "generator"
CLASSIFIER_DIR = "classifier"
SYNTHETIC_FILE = "synthetic.h5"


def generator_config(cfg) -> ml_collections.ConfigDict:
    """The generator run of a ``step_aug`` config: same seed and data, restricted to the training part of the
    data's split (``data.within_training_split``: an inner train / validation split of it, ``inner_val_fraction
    = aug.generator_val_fraction``, no test part), and the ``cfg.generator`` parts."""
    g = ml_collections.ConfigDict()
    g.task = "generator"
    g.seed = cfg.seed
    g.checkpoint_every = cfg.get("checkpoint_every", 1)
    g.eval = ml_collections.ConfigDict(cfg.eval.to_dict()) if "eval" in cfg else ml_collections.ConfigDict()
    g.data = ml_collections.ConfigDict(cfg.data.to_dict())
    g.data.within_training_split = True
    g.data.inner_val_fraction = cfg.aug.get("generator_val_fraction", pipeline.DEFAULT_INNER_VAL_FRACTION)
    for key in ("preprocess", "model", "loss", "train", "generate"):
        g[key] = ml_collections.ConfigDict(cfg.generator[key].to_dict())
    return g


def synthetic_seed(cfg) -> int:
    """The seed of the synthetic gaits' latents: ``aug.seed``, or the run's ``seed`` when it is ``None``."""
    seed = cfg.aug.get("seed")
    return cfg.seed if seed is None else seed


def classifier_config(cfg) -> ml_collections.ConfigDict:
    """The classifier run of a ``step_aug`` config (``task='classifier'``; ``aug`` kept as a record)."""
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.task = "classifier"
    del c["generator"]
    return c


def _load_synthetic(path: str, provenance: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The synthetic gaits of an earlier (interrupted) run of the same STEP+Aug, or ``None`` when there are none
    or they were sampled otherwise (another generator checkpoint, seed, count or prior: ``<path>.json``)."""
    if not (os.path.exists(path) and os.path.exists(path + ".json")):
        return None
    with open(path + ".json") as f:
        if json.load(f) != provenance:
            return None
    from stepjax.data.egait import read_egait

    from stepjax.generation import class_major_labels, official_keys

    data = read_egait(path)
    # the file's keys come back sorted (00001_Angry, 00001_Happy, ...); training takes them in the order they
    # were sampled (generate_per_class), as an uninterrupted run does: another order of the training array would
    # shuffle every epoch differently
    sampled = official_keys(class_major_labels(provenance["per_class"]))
    if sorted(sampled) != list(data.keys):
        return None
    position = {k: i for i, k in enumerate(data.keys)}
    order = [position[k] for k in sampled]
    return np.stack(data.gaits)[order].astype(np.float32), data.labels[order]


PRIORS = ("standard", "fitted")


def synthesize(gen_workdir: str, per_class: int, seed: int, out_path: str | None = None, prior: str = "standard"
               ) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` gaits of every class from a generator's best checkpoint (written to ``out_path``).

    ``prior``: ``'standard'`` samples z ~ N(0, I); ``'fitted'`` a Gaussian per class fitted to the posteriors of
    the generator's own training split (:func:`stepjax.generation.fit_latent_prior_from_run`; in STEP+Aug the
    inner training part of the classifier's training fold, so nothing leaks)."""
    from stepjax.data.egait import write_egait_arrays
    from stepjax.generation import fit_latent_prior_from_run, generate_per_class, load_generator, official_keys

    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {PRIORS}")
    generate_fn, variables = load_generator(gen_workdir, "best", temporal_impl="auto", graph_impl="auto")
    latent_prior = fit_latent_prior_from_run(gen_workdir) if prior == "fitted" else None
    gaits, labels = generate_per_class(generate_fn, variables, per_class, seed, prior=latent_prior)
    if out_path is not None:  # the writer is atomic: an interrupted run never leaves a truncated file
        write_egait_arrays(out_path, None, gaits, labels, official_keys(labels))
    return gaits.astype(np.float32), labels


def fit_step_aug(cfg, workdir: str, *, progress: bool = True, log=print) -> dict:
    """Generator on the training fold -> synthetic gaits -> classifier on real train + synthetic.

    Returns ``{'classifier': fit_classifier result (val/test on real gaits only), 'generator': {...},
    'num_synthetic', 'num_real_train', 'generator_train_indices', 'generator_val_indices'}`` (the real gaits the
    generator trained and was selected on, together the classifier's training split); also written to
    ``<workdir>/results.json`` (without the index arrays).
    """
    from stepjax.training.fit import classifier_run_config, fit_classifier
    from stepjax.training.fit_generator import fit_generator, generator_run_config
    from stepjax.training.progress import read_split

    per_class = cfg.aug.per_class
    if not is_integer(per_class) or per_class < 0:
        raise ValueError(f"aug.per_class must be an integer >= 0 (0: the real-only control), got {per_class!r}")
    prior = str(cfg.generator.get("generate", {}).get("prior", "standard"))
    if prior not in PRIORS:  # before the generator trains, not after
        raise ValueError(f"unknown generator.generate.prior {prior!r}; choose one of {PRIORS}")
    pipeline.check_fraction(cfg.aug.get("generator_val_fraction", pipeline.DEFAULT_INNER_VAL_FRACTION),
                            "aug.generator_val_fraction (the share of the training fold that selects the generator)")
    os.makedirs(workdir, exist_ok=True)
    cls_cfg = classifier_config(cfg)
    # both sub-runs' configs (train and loss options, dropout rates, data-parallel batch sizes) and checkpoints
    # checked before any data is loaded or any generator trained
    classifier_run_config(cls_cfg, os.path.join(workdir, CLASSIFIER_DIR))
    if per_class > 0:
        generator_run_config(generator_config(cfg), os.path.join(workdir, GENERATOR_DIR))
    raw = pipeline.load_source(cls_cfg.data)
    split = pipeline.split_dataset(raw, cls_cfg.data)
    result: dict = {"num_real_train": int(len(split.train)), "num_val": int(len(split.val)),
                    "num_test": int(len(split.test)), "num_synthetic": NUM_CLASSES * per_class}
    extra = None
    if per_class > 0:
        gen_dir = os.path.join(workdir, GENERATOR_DIR)
        log(f"STEP+Aug: training the generator inside the {len(split.train)} real training gaits ({gen_dir})")
        gen = fit_generator(generator_config(cfg), gen_dir, progress=progress, log=log)
        seen = np.concatenate([gen["train_indices"], gen["val_indices"]])
        if len(seen) != len(split.train) or not np.array_equal(np.sort(seen), split.train):  # no leakage
            raise AssertionError("the generator's training and validation gaits are not exactly the classifier's "
                                 "training split")
        log(f"STEP+Aug: the generator trained on {len(gen['train_indices'])} and was selected on "
            f"{len(gen['val_indices'])} of the {len(split.train)} real training gaits")
        result["generator"] = {k: gen[k] for k in ("best_epoch", "val", "num_train") if k in gen}
        result["generator_train_indices"] = gen["train_indices"]
        result["generator_val_indices"] = gen["val_indices"]
        path = os.path.join(workdir, SYNTHETIC_FILE if prior == "standard" else f"synthetic_{prior}_prior.h5")
        provenance = {"generator_best_epoch": int(gen["best_epoch"]),
                      "generator_val_total": float(gen["val"]["total"]),  # tells a retrained generator apart
                      "seed": int(synthetic_seed(cfg)), "per_class": per_class, "prior": prior}
        extra = _load_synthetic(path, provenance)
        if extra is None:
            log(f"STEP+Aug: sampling {per_class} gaits per class ({prior} prior) -> {path}")
            extra = synthesize(gen_dir, per_class, provenance["seed"], path, prior)
            write_json(path + ".json", provenance)
    cls = fit_classifier(cls_cfg, os.path.join(workdir, CLASSIFIER_DIR), progress=progress, log=log,
                         extra_train=extra)
    used = read_split(os.path.join(workdir, CLASSIFIER_DIR))
    for name in ("train", "val", "test"):  # real training gaits beside the synthetic ones; selection and test on
        if not np.array_equal(used[name], getattr(split, name)):  # held-out real gaits only
            raise AssertionError(f"the classifier's {name} split is not the real {name} split")
    result["classifier"] = cls
    write_json(os.path.join(workdir, "results.json"),
               {k: v for k, v in result.items() if k not in ("generator_train_indices", "generator_val_indices")})
    return result
