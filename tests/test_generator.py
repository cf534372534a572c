"""STEP-Gen training, sampling, the E-Gait CLI, generator metrics and STEP+Aug without leakage.

One tiny STEP+Aug run (generator on the training fold -> synthetic gaits -> classifier) is shared by
the whole module; its generator is the trained generator of every other test.
"""

import glob
import json
import os
import re
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import PROJECT_ROOT
from stepjax.data import pipeline
from stepjax.training import checkpoint as ckpt_lib
from stepjax.training.augment import (CLASSIFIER_DIR, GENERATOR_DIR, SYNTHETIC_FILE, classifier_config, fit_step_aug,
                                      generator_config)
from stepjax.training.fit_generator import COMPONENTS, fit_generator
from stepjax.training.progress import read_split

sys.path.insert(0, str(PROJECT_ROOT / "configs"))
import step_aug as step_aug_config  # noqa: E402
import step_gen as step_gen_config  # noqa: E402

PER_CLASS = 8
QUIET = dict(progress=False, log=lambda *a: None)


def tiny_generator_config(epochs=4):
    """STEP-Gen on 240 walkers of 32 frames, narrow channels, kernel 5: trains in seconds on 2 cores."""
    cfg = step_gen_config.get_config()
    cfg.data.num_gaits = 240
    cfg.data.num_frames = 32
    cfg.model.update(dict(encoder_channels=(16, 8, 8), decoder_channels=(8, 16, 3), kernel_size=5, latent_dim=8))
    cfg.train.update(dict(epochs=epochs, batch_size=16, lr=1e-2))
    return cfg


def tiny_step_aug_config():
    gen = tiny_generator_config()
    cfg = step_aug_config.get_config()
    cfg.data = gen.data
    cfg.preprocess.num_affective = 29  # the classifier of tests/test_training.py
    cfg.model.update(dict(channels=(8, 16, 16), kernel_size=5, hidden=32))
    cfg.train.update(dict(epochs=3, batch_size=16, lr=1e-2))
    for key in ("preprocess", "model", "loss", "train", "generate"):
        cfg.generator[key] = gen[key]
    cfg.aug.per_class = PER_CLASS
    return cfg


@pytest.fixture(scope="module")
def aug(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("aug"))
    cfg = tiny_step_aug_config()
    result = fit_step_aug(cfg, workdir, **QUIET)
    return cfg, workdir, result


@pytest.fixture(scope="module")
def generator(aug):
    from stepjax.generation import load_generator, restore_generator

    workdir = os.path.join(aug[1], GENERATOR_DIR)
    cfg, model, variables, prep = restore_generator(workdir)
    return workdir, model, variables, load_generator(workdir)


def test_generator_training_lowers_the_validation_loss_and_logs_every_component(aug):
    gen_dir = os.path.join(aug[1], GENERATOR_DIR)
    lines = [json.loads(l) for l in open(os.path.join(gen_dir, "metrics.jsonl"))]
    assert [l["epoch"] for l in lines] == list(range(4))
    for split in ("train", "val"):
        assert all(np.isfinite(l[f"{split}_{k}"]) for l in lines for k in COMPONENTS)
    val = [l["val_total"] for l in lines]
    assert min(val[1:]) < val[0] and lines[-1]["train_total"] < lines[0]["train_total"]
    assert aug[2]["generator"]["best_epoch"] == int(np.argmin(val))
    saved = json.load(open(os.path.join(gen_dir, "results.json")))
    assert saved["val"]["total"] == pytest.approx(min(val), rel=1e-5)  # the best checkpoint is the one restored
    assert set(saved["val"]) == set(COMPONENTS) and "test" not in saved  # STEP+Aug's generator has no test part


def test_resumed_generator_equals_uninterrupted_run(aug, tmp_path, capsys):
    from stepjax.generation import restore_generator
    from stepjax.training.run import train_from_config

    gen_dir = os.path.join(aug[1], GENERATOR_DIR)
    cfg = generator_config(tiny_step_aug_config())  # the STEP+Aug fixture's generator run, interrupted here
    resumed = str(tmp_path / "resumed")
    assert fit_generator(cfg, resumed, stop_after=2, **QUIET) is None
    assert ckpt_lib.RunCheckpoints(resumed).latest_epoch() == 1
    result = train_from_config(cfg, resumed, progress=False)  # train.py's dispatch; resumes at epoch 2
    assert "val loss (best-val epoch" in capsys.readouterr().out
    a, b = restore_generator(gen_dir, "latest")[2], restore_generator(resumed, "latest")[2]
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
    assert result["val"] == aug[2]["generator"]["val"]
    assert [json.loads(l)["epoch"] for l in open(os.path.join(resumed, "metrics.jsonl"))] == [0, 1, 2, 3]
    other = generator_config(tiny_step_aug_config())
    other.loss.lambda_drift = 0.0
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"loss\.lambda_drift"):
        fit_generator(other, resumed, **QUIET)


def test_a_resumed_step_aug_trains_as_the_uninterrupted_one(aug, tmp_path):
    """A STEP+Aug run interrupted after its generator and synthetic.h5 were written resumes by reading the gaits
    back; the reader sorts the keys (00001_Angry, 00001_Happy, ...), so they must be put back in the order they
    were sampled (class-major), or every epoch of the classifier shuffles another array: the resumed classifier
    equals the uninterrupted one bit for bit."""
    from stepjax.inference import restore_classifier
    from stepjax.training.augment import _load_synthetic, synthesize, synthetic_seed

    cfg, workdir, result = aug
    path = os.path.join(workdir, SYNTHETIC_FILE)
    with open(path + ".json") as f:
        reloaded = _load_synthetic(path, json.load(f))
    fresh = synthesize(os.path.join(workdir, GENERATOR_DIR), cfg.aug.per_class, synthetic_seed(cfg), None)
    np.testing.assert_array_equal(reloaded[1], fresh[1])
    np.testing.assert_array_equal(reloaded[0], fresh[0])
    resumed = str(tmp_path / "aug")
    shutil.copytree(workdir, resumed)
    shutil.rmtree(os.path.join(resumed, CLASSIFIER_DIR))  # interrupted before the classifier's first checkpoint
    again = fit_step_aug(tiny_step_aug_config(), resumed, **QUIET)
    assert again["classifier"]["test"] == result["classifier"]["test"]
    a, b = (restore_classifier(os.path.join(w, CLASSIFIER_DIR))[2] for w in (workdir, resumed))
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_saved_runs_keep_their_model_when_defaults_change(aug, tmp_path):
    """Both sub-runs of STEP+Aug store every model field; a stored config without ``official_adjacency`` (as
    written before the default became False) restores (both) and resumes (the generator; the check is shared)
    as the official adjacency it meant."""
    from stepjax.generation import restore_generator
    from stepjax.inference import restore_classifier
    from stepjax.training.model_config import module_fields

    for sub, restore in ((GENERATOR_DIR, restore_generator), (CLASSIFIER_DIR, restore_classifier)):
        stored = json.load(open(os.path.join(aug[1], sub, "config.json")))["model"]
        assert stored == ckpt_lib.config_to_json(module_fields(restore(os.path.join(aug[1], sub))[1]))
    for sub, restore in ((GENERATOR_DIR, restore_generator), (CLASSIFIER_DIR, restore_classifier)):
        old = str(tmp_path / sub)
        shutil.copytree(os.path.join(aug[1], sub), old)
        metas = glob.glob(os.path.join(old, "*", "*", "meta", "metadata"))
        assert metas
        for path in metas:
            meta = json.load(open(path))
            for key in ("official_adjacency", "num_classes"):
                del meta["config"]["model"][key]
            json.dump(meta, open(path, "w"))
        cfg, model = restore(old)[:2]
        assert model.official_adjacency is True and cfg.model.official_adjacency is True and model.num_classes == 4
    old = str(tmp_path / GENERATOR_DIR)
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"model\.official_adjacency: checkpoint has True"):
        fit_generator(tiny_generator_config(), old, **QUIET)


def test_step_aug_refuses_either_sub_run_of_another_config_before_any_work(aug, monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline, "load_source", lambda *a, **k: pytest.fail("the data was loaded first"))
    bad = tiny_step_aug_config()
    bad.aug.per_class = -1  # once trained the real-only control, reported as "-4 synthetic"
    with pytest.raises(ValueError, match="aug.per_class must be an integer >= 0"):
        fit_step_aug(bad, str(tmp_path / "a"), **QUIET)
    bad = tiny_step_aug_config()
    bad.generator.generate.prior = "fited"  # once refused only after the generator had trained
    with pytest.raises(ValueError, match="unknown generator.generate.prior 'fited'"):
        fit_step_aug(bad, str(tmp_path / "b"), **QUIET)
    for change, match in ((lambda c: c.model.update(head_dropout=1.0), r"model.head_dropout=1.0"),  # classifier
                          (lambda c: c.generator.loss.update(warmup_epochs=-1.0), "loss.warmup_epochs"),
                          (lambda c: c.generator.loss.update(beta=-0.1), "loss.beta must be a finite number >= 0"),
                          (lambda c: c.generator.train.update(grad_clip=-1.0), "grad_clip")):
        bad = tiny_step_aug_config()
        change(bad)
        with pytest.raises(ValueError, match=match):
            fit_step_aug(bad, str(tmp_path / "c"), **QUIET)
    for change, match in ((lambda c: c.model.update(hidden=64), r"model\.hidden"),  # the classifier's
                          (lambda c: c.generator.loss.update(lambda_drift=0.5), r"loss\.lambda_drift")):
        cfg = tiny_step_aug_config()
        change(cfg)
        with pytest.raises(ckpt_lib.ConfigMismatchError, match=match):
            fit_step_aug(cfg, aug[1], **QUIET)


def test_generate_is_pure_under_jit_and_vmap(generator):
    from stepjax.generation import generate

    _, model, variables, (generate_fn, loaded_vars) = generator
    labels = jnp.array([0, 1, 2, 3, 2, 1])
    key = jax.random.PRNGKey(3)
    eager = model.apply(variables, labels, 32, rng=key, method="sample")  # the model's own sampler
    jitted = generate_fn(loaded_vars, labels, key)
    assert jitted.shape == (6, 32, 16, 3) and np.all(np.isfinite(jitted))
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    np.testing.assert_allclose(generate(model, variables, labels, key, 32, chunk=4), eager, atol=1e-5)
    from stepjax.generation import AUTO_CHUNK, resolve_chunk

    assert AUTO_CHUNK["cpu"] == 32 and resolve_chunk(None) is None and resolve_chunk(7) == 7
    assert resolve_chunk("auto") == AUTO_CHUNK["cpu" if jax.default_backend() == "cpu" else "other"]
    many = jnp.arange(70) % 4  # chunks of 32: two full chunks and a padded one
    unchunked = generate(model, variables, many, key, 32, chunk=None)
    np.testing.assert_allclose(generate(model, variables, many, key, 32, chunk=32), unchunked, atol=1e-5)
    np.testing.assert_allclose(generate(model, variables, many, key, 32), unchunked, atol=1e-5)  # chunk='auto'
    np.testing.assert_allclose(generate_fn(loaded_vars, jax.nn.one_hot(labels, 4), key), jitted, atol=1e-6)
    keys = jax.random.split(key, 3)
    mapped = jax.vmap(lambda k: generate_fn(loaded_vars, labels, k))(keys)
    for i in range(3):
        np.testing.assert_allclose(mapped[i], generate_fn(loaded_vars, labels, keys[i]), atol=1e-5)
    assert not np.allclose(mapped[0], mapped[1])  # different latents
    official = generate_fn(loaded_vars, labels, key, official_sampler=True)
    assert not np.allclose(official, jitted)
    # bug 14, no model.eval(): each gait decoded alone with train-mode BN (its own batch statistics)
    train_bn = generate(model, variables, labels, key, 32, chunk=4, official_train_bn=True)
    z = jax.random.normal(key, (6, model.latent_dim))  # the latents `generate` draws (N(0, I) from `key`)
    np.testing.assert_allclose(generate(model, variables, labels, key, 32, chunk=None), jitted, atol=1e-5)
    for i in (0, 3):
        alone, _ = model.apply(variables, z[i:i + 1], jax.nn.one_hot(labels[i:i + 1], 4), 32, train=True,
                               method="decode", mutable=["batch_stats"])
        np.testing.assert_allclose(train_bn[i], alone[0], atol=1e-4)
    assert not np.allclose(train_bn, jitted, atol=1e-3)


def test_generate_refuses_bad_labels_and_sizes(generator):
    """Out-of-range labels would one-hot to an all-zero condition (a gait of no class): concrete ones raise,
    ones traced by the caller's jit decode to NaN; a too-short decode or an empty chunk raises."""
    from stepjax.generation import generate

    _, model, variables, (generate_fn, loaded_vars) = generator
    key = jax.random.PRNGKey(0)
    for bad in ([0, 4], [0, -1]):
        with pytest.raises(ValueError, match=r"labels must be whole numbers in 0\.\.3"):
            generate_fn(loaded_vars, jnp.array(bad), key)
        with pytest.raises(ValueError, match=r"labels must be whole numbers in 0\.\.3"):
            model.apply(variables, jnp.array(bad), 32, rng=key, method="sample")
    traced = jax.jit(lambda y: generate(model, variables, y, key, 32))(jnp.array([1, 7, 2]))
    assert np.all(np.isnan(traced[1])) and np.all(np.isfinite(np.asarray(traced)[[0, 2]]))
    from stepjax.generation import decode_latents, encode_gaits

    with pytest.raises(ValueError, match=r"labels must be whole numbers in 0\.\.3"):
        encode_gaits(model, variables, np.zeros((2, 32, 16, 3), np.float32), np.array([0, 7]))
    with pytest.raises(ValueError, match=r"labels must be whole numbers in 0\.\.3"):
        decode_latents(model, variables, np.zeros((2, model.latent_dim), np.float32), np.array([-1, 2]), 32)
    for frames in (3, 4.5):
        with pytest.raises(ValueError, match="num_frames must be an integer >= 4"):
            generate_fn(loaded_vars, jnp.array([0]), key, num_frames=frames)
    for chunk in (0, 1.5, "fast", True):
        with pytest.raises(ValueError, match="chunk must be an integer >= 1, 'auto' or None"):
            generate_fn(loaded_vars, jnp.array([0, 1]), key, chunk=chunk)
    for rng, shown in ((0, "got int 0"), (jax.random.split(key, 3), r"\(3, 2\) \(a batch of keys: jax.vmap"),
                       (jax.random.split(jax.random.key(0), 3), r"\(3,\) \(a batch of keys")):  # once raw PRNG errors
        with pytest.raises(TypeError, match=r"rng must be one PRNG key, .*" + shown):
            generate_fn(loaded_vars, jnp.array([0, 1]), rng)
    with pytest.raises(TypeError, match="prior must be a LatentPrior .*got str 'fitted'"):
        generate_fn(loaded_vars, jnp.array([0, 1]), key, prior="fitted")
    with pytest.raises(TypeError, match="num_frames sets the shapes and must be static"):  # once 'got JitTracer'
        jax.jit(lambda n: generate_fn(loaded_vars, jnp.array([0, 1]), key, num_frames=n))(30)
    from stepjax.generation import _check_key

    with jax.default_prng_impl("rbg"):  # raw keys of another implementation have another shape: (4,)
        _check_key(jax.random.PRNGKey(0))
        with pytest.raises(TypeError, match=r"\(3, 4\) \(a batch of keys"):
            _check_key(jax.random.split(jax.random.PRNGKey(0), 3))
    for rows in ([[2.0, 0, 0, 0]], [[0.0, 0, 0, 0]], [[0, 1, 2, 3]], [[1.5, -0.5, 0, 0]], [[np.nan, 1, 0, 0]]):
        with pytest.raises(ValueError, match=r"one-hot label rows must be non-negative and sum to 1.*rows \[0\]"):
            generate_fn(loaded_vars, jnp.array(rows), key)
    mixed = generate_fn(loaded_vars, jnp.array([[0.5, 0, 0.5, 0], [0, 1, 0, 0]]), key)  # a mixture is a condition
    with pytest.raises(TypeError, match="positional argument"):  # options are keyword-only: no prior as num_frames
        generate_fn(loaded_vars, jnp.array([0]), key, 32)
    assert mixed.shape == (2, 32, 16, 3) and np.all(np.isfinite(np.asarray(mixed)))
    with pytest.raises(TypeError, match=r"load_generator returns \(generate_fn, variables\)"):
        generate(generate_fn, loaded_vars, jnp.array([0, 1]), key)  # what load_generator returns, mixed up
    nan_gait = np.zeros((2, 32, 16, 3), np.float32)
    nan_gait[1, 3, 4, 0] = np.nan  # would get a finite, plausible latent and enter a fitted prior
    with pytest.raises(ValueError, match="encode_gaits: gaits .*NaN"):
        encode_gaits(model, variables, nan_gait, np.array([0, 1]))
    z = np.zeros((2, model.latent_dim), np.float32)
    for args, match in (((z, np.array([0, 1, 2]), 32), r"got z \(2, 8\) and 3 labels"),
                        ((z, np.array([0, 1]), 2), "num_frames must be an integer >= 4"),
                        ((z[:0], np.array([], int), 32), "N >= 1")):
        with pytest.raises(ValueError, match=match):
            decode_latents(model, variables, *args)


def test_runs_record_the_length_they_trained_on(tmp_path, monkeypatch):
    """``data.num_frames = 0`` means the longest gait of the file: both trainers store the length used, so
    loaders rebuild the model for it (a generator once decoded 75 frames after training on 40). Evaluating the
    classifier on its own test split passes each gait's real frame count (31-40 of 40) to the model."""
    from stepjax.data.egait import write_egait
    from stepjax.data.walkers import make_walkers
    from stepjax.generation import load_generator
    from stepjax.inference import load_classifier
    from stepjax.training.fit import fit_classifier

    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from test_training import tiny_config

    w = make_walkers(96, seed=5, num_frames=40)
    cut = {f"{i:03d}": g[:40 - i % 9].reshape(40 - i % 9, 48) for i, g in enumerate(w.gaits)}
    write_egait(tmp_path / "f.h5", tmp_path / "l.h5", cut, {k: int(y) for k, y in zip(cut, w.labels)})
    data = dict(source="egait", path=str(tmp_path / "f.h5"), labels_path=str(tmp_path / "l.h5"), num_frames=0)
    gen_cfg, cls_cfg = tiny_generator_config(epochs=1), tiny_config(epochs=1)
    for cfg in (gen_cfg, cls_cfg):
        cfg.data = type(cfg.data)(dict(data, split=cfg.data.split, split_seed=0, length_policy="tile"))
    fit_generator(gen_cfg, str(tmp_path / "gen"), **QUIET)
    fit_classifier(cls_cfg, str(tmp_path / "cls"), **QUIET)
    for run in ("gen", "cls"):
        assert ckpt_lib.read_run_config(tmp_path / run)["data"]["num_frames"] == 40
    generate_fn, variables = load_generator(tmp_path / "gen")
    assert generate_fn(variables, jnp.array([0, 3]), jax.random.PRNGKey(0)).shape == (2, 40, 16, 3)
    predict_fn, variables = load_classifier(tmp_path / "cls")
    assert predict_fn(variables, jnp.asarray(w.gaits[:2])).logits.shape == (2, 4)
    with pytest.raises(ValueError, match="40"):
        predict_fn(variables, jnp.asarray(w.gaits[:2, :32]))
    from stepjax import evaluation

    seen, real_predict = [], evaluation.predict_in_chunks
    monkeypatch.setattr(evaluation, "predict_in_chunks",
                        lambda fn, v, g, chunk=512, lengths=None: seen.append(lengths) or real_predict(fn, v, g, chunk,
                                                                                                       lengths))
    report = evaluation.evaluate_workdir(str(tmp_path / "cls"))
    raw = pipeline.load_source(cls_cfg.data)
    test_lengths = raw.lengths[pipeline.split_dataset(raw, cls_cfg.data).test]
    assert len(seen) == 1 and np.any(test_lengths < 40)
    np.testing.assert_array_equal(seen[0], test_lengths)
    assert sum(map(sum, report["confusion_matrix"])) == len(test_lengths)
    # the file is re-exported with one gait changed: the same keys, hence the same split, but other data; both
    # runs' "test" / "training" gaits would silently be other gaits than they were trained with
    from stepjax.generation import fit_latent_prior_from_run

    assert pipeline.load_source(cls_cfg.data).files == (str(tmp_path / "f.h5"), str(tmp_path / "l.h5"))
    assert pipeline.load_source(tiny_config().data).fingerprint() is None  # walkers: a function of the config
    changed = dict(cut, **{"000": cut["000"] + 0.01})
    write_egait(tmp_path / "f.h5", tmp_path / "l.h5", changed, {k: int(y) for k, y in zip(cut, w.labels)})
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"other data .*\(the data files differ from its "
                                                            r"split.json.*--features/--labels"):
        evaluation.evaluate_workdir(str(tmp_path / "cls"))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"the data files differ.*retrain the generator"):
        fit_latent_prior_from_run(tmp_path / "gen")
    from stepjax.gen_eval import evaluate_generator

    with pytest.warns(UserWarning, match="a STEP model with affective features"), \
            pytest.raises(ckpt_lib.ConfigMismatchError, match=r"the data files differ.*retrain the generator"):
        evaluate_generator(str(tmp_path / "gen"), str(tmp_path / "cls"), num_per_class=2)


def test_generation_cli_refuses_bad_output_names_before_loading_anything(tmp_path, capsys):
    """A .npy name, or one file for gaits and labels, is refused up front (here: before the missing workdir is
    even read), not after every gait was sampled."""
    from stepjax.generation import main

    for out in (["--out-features", str(tmp_path / "synth.npy")],
                ["--out-features", str(tmp_path / "s.h5"), "--out-labels", str(tmp_path / "s.h5")]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--workdir", str(tmp_path / "no_such_run"), "--per-class", "2", *out])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and "no_such_run" not in err
        assert "an HDF5 file under a NumPy extension" in err or "the labels would overwrite the gaits" in err


def test_cli_writes_egait_readable_with_and_without_labels(generator, tmp_path, capsys):
    from stepjax.data.egait import read_egait
    from stepjax.generation import generate_per_class, main

    gen_dir, _, _, (generate_fn, variables) = generator
    feats, labels_file = str(tmp_path / "synth.h5"), str(tmp_path / "synth_labels.h5")
    main(["--workdir", gen_dir, "--per-class", "3", "--out-features", feats, "--out-labels", labels_file,
          "--seed", "5"])
    with_labels, from_keys = read_egait(feats, labels_file), read_egait(feats)
    with pytest.raises(SystemExit):  # refused up front, not OOM-killed after minutes of sampling
        main(["--workdir", gen_dir, "--per-class", "100000000", "--out-features", str(tmp_path / "huge.h5")])
    assert re.search(r"--per-class 100000000 \(400,000,000 gaits of \d+ frames\) needs about [\d.]+ GiB, this "
                     r"machine \(or container\) has [\d.]+ GiB", capsys.readouterr().err)
    assert not (tmp_path / "huge.h5").exists()
    assert len(from_keys) == 12 and "00001_Happy" in from_keys.keys and "00003_Sad" in from_keys.keys
    np.testing.assert_array_equal(with_labels.labels, from_keys.labels)
    np.testing.assert_array_equal(np.bincount(from_keys.labels), [3, 3, 3, 3])
    gaits, labels = generate_per_class(generate_fn, variables, 3, seed=5)
    order = {f"{i // 4 + 1:05d}_{name}": i for i, name in enumerate(["Angry", "Neutral", "Happy", "Sad"] * 3)}
    for key, gait, label in zip(from_keys.keys, from_keys.gaits, from_keys.labels):
        assert labels[order[key]] == label
        np.testing.assert_allclose(gait, gaits[order[key]], atol=1e-4)  # CLI decodes with the 'conv' impl


def test_fid_diversity_multimodality_properties():
    from stepjax.gen_metrics import diversity, fid, frechet_distance, multimodality

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.zeros(16)
    dists = []
    for s in (0.5, 1.0, 2.0):
        shift[0] = s
        dists.append(fid(a, a + shift))  # same covariance: FID = |shift|^2 exactly
        assert dists[-1] == pytest.approx(s ** 2, rel=1e-6)
    assert dists == sorted(dists)
    s1, s2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)  # closed form for commuting covariances
    assert frechet_distance(np.zeros(8), np.diag(s1), np.ones(8), np.diag(s2)) == pytest.approx(
        8 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2), rel=1e-9)
    low_rank = rng.normal(size=(10, 16))  # 10 samples in 16-d: singular covariances stay finite and >= 0
    assert 0 <= fid(low_rank, a) < np.inf
    labels = np.repeat(np.arange(4), 50)
    clustered = 10 * np.eye(4)[labels] + 0.1 * rng.normal(size=(200, 4))
    assert diversity(np.ones((20, 4))) == 0.0
    assert diversity(3 * clustered) == pytest.approx(3 * diversity(clustered))
    assert multimodality(clustered, labels) < 0.2 * diversity(clustered)


def test_step_aug_generator_sees_only_the_training_split_and_synthetic_gaits_only_train(aug, tmp_path):
    """The generator learns from and is selected on the classifier's training split only (an inner 85/15 split
    of it); it never sees a validation or test gait, not even to pick its checkpoint."""
    cfg, workdir, result = aug
    cls_cfg = classifier_config(cfg)
    raw = pipeline.load_source(cls_cfg.data)
    split = pipeline.split_dataset(raw, cls_cfg.data)
    gen_train, gen_val = result["generator_train_indices"], result["generator_val_indices"]
    np.testing.assert_array_equal(np.sort(np.concatenate([gen_train, gen_val])), split.train)
    assert 0 < len(gen_val) < 0.3 * len(split.train)  # ~15 %: whole subjects move
    saved = read_split(os.path.join(workdir, GENERATOR_DIR))
    np.testing.assert_array_equal(saved["train"], gen_train)
    np.testing.assert_array_equal(saved["val"], gen_val)
    assert len(saved["test"]) == 0 and "test" not in result["generator"]
    assert result["generator"]["num_train"] == len(gen_train)
    assert result["num_synthetic"] == 4 * PER_CLASS
    cls = result["classifier"]
    saved = read_split(os.path.join(workdir, CLASSIFIER_DIR))  # the classifier's real parts, as fit_step_aug checks
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(saved[name], getattr(split, name))
    provenance = json.load(open(os.path.join(workdir, SYNTHETIC_FILE + ".json")))
    assert cfg.aug.seed is None and provenance["seed"] == cfg.seed  # the latents' seed follows the run's seed
    assert cls["val"]["num_gaits"] == len(split.val) and cls["test"]["num_gaits"] == len(split.test)

    from stepjax.data.egait import read_egait

    synth = read_egait(os.path.join(workdir, SYNTHETIC_FILE))
    np.testing.assert_array_equal(np.bincount(synth.labels), [PER_CLASS] * 4)
    extra = (np.stack(synth.gaits), synth.labels)
    data = pipeline.prepare(cls_cfg, extra_train=extra)
    assert len(data["train"].labels) == len(split.train) + 4 * PER_CLASS
    assert cls["num_train"] == len(data["train"].labels)  # the classifier did train on the synthetic gaits too
    with pytest.raises(ValueError, match="extra training labels must be whole numbers in 0..3"):
        pipeline.prepare(cls_cfg, extra_train=(extra[0], np.full(len(extra[1]), 7)))  # would train on nothing
    prep = data["preprocessor"]
    for name in ("val", "test"):  # exactly the real gaits of the split, preprocessed
        idx = getattr(split, name)
        real = pipeline.apply_preprocessor(prep, raw.gaits[idx], raw.labels[idx])
        np.testing.assert_array_equal(data[name].gaits, real.gaits)
        np.testing.assert_array_equal(data[name].labels, raw.labels[idx])
    # the classifier checkpoint's training config records the augmentation; eval.py scores real test gaits
    saved = json.load(open(os.path.join(workdir, CLASSIFIER_DIR, "config.json")))
    assert saved["task"] == "classifier" and saved["aug"]["per_class"] == PER_CLASS
    # a resumed STEP+Aug reuses the synthetic gaits only if they were sampled the same way
    from stepjax.training.augment import _load_synthetic

    path = os.path.join(workdir, SYNTHETIC_FILE)
    provenance = json.load(open(path + ".json"))
    assert provenance == {"generator_best_epoch": result["generator"]["best_epoch"], "seed": 0,
                          "generator_val_total": result["generator"]["val"]["total"],
                          "per_class": PER_CLASS, "prior": "standard"}
    from stepjax.generation import official_keys

    loaded = _load_synthetic(path, provenance)  # in the order they were sampled (class-major), not the file's
    np.testing.assert_array_equal(loaded[1], np.tile(np.arange(4), PER_CLASS))
    np.testing.assert_array_equal(loaded[0], extra[0][[synth.keys.index(k) for k in official_keys(loaded[1])]])
    assert _load_synthetic(path, dict(provenance, seed=1)) is None
    assert _load_synthetic(path, dict(provenance, generator_best_epoch=-1)) is None
    other = str(tmp_path / "other_keys.h5")  # a file whose keys are not the sampled ones
    from stepjax.data.egait import write_egait_arrays

    write_egait_arrays(other, None, extra[0], extra[1], [f"{i:05d}_{k.split('_')[1]}" for i, k in
                                                        enumerate(synth.keys)])
    shutil.copy(path + ".json", other + ".json")
    assert _load_synthetic(other, provenance) is None


def test_evaluate_generator_reports_fid_diversity_and_recognition(aug, tmp_path, monkeypatch):
    import stepjax.generation as generation
    from stepjax.gen_eval import evaluate_generator, format_report

    import stepjax.gen_eval as gen_eval

    cfg, workdir, result = aug
    encoded = []  # the fitted prior must see the generator's training split and nothing else
    real_encode = generation.encode_gaits
    monkeypatch.setattr(generation, "encode_gaits",
                        lambda m, v, g, labels, **kw: encoded.append(np.asarray(labels)) or real_encode(m, v, g, labels, **kw))
    # real gaits of 28-32 real frames (as if tiled to 32): every statistic of real gaits gets their lengths
    real_load = pipeline.load_source
    lengths = 32 - np.arange(cfg.data.num_gaits, dtype=np.int32) % 5
    monkeypatch.setattr(pipeline, "load_source", lambda c: real_load(c)._replace(lengths=lengths))
    passed = {"motion": [], "classifier": []}
    real_motion, real_outputs = gen_eval.motion_statistics, gen_eval.classifier_outputs
    monkeypatch.setattr(gen_eval, "motion_statistics",
                        lambda g, lengths=None: passed["motion"].append(lengths) or real_motion(g, lengths))
    monkeypatch.setattr(gen_eval, "classifier_outputs", lambda fn, v, g, chunk=512, lengths=None: (
        passed["classifier"].append(lengths) or real_outputs(fn, v, g, chunk, lengths)))
    with pytest.warns(UserWarning, match="STEP model with affective features"):  # the tiny run's classifier
        report = evaluate_generator(os.path.join(workdir, GENERATOR_DIR), os.path.join(workdir, CLASSIFIER_DIR),
                                    num_per_class=8, seed=0)
    raw = pipeline.load_source(cfg.data)
    assert len(encoded) == 1
    np.testing.assert_array_equal(encoded[0], raw.labels[result["generator_train_indices"]])
    split = pipeline.split_dataset(raw, cfg.data)  # the classifier's: its test part is the held-out real test
    want = [lengths[result["generator_train_indices"]], lengths[split.test]]  # the gaits it learnt from; test
    real_passed = [x for x in passed["motion"] if x is not None]  # real train, real test, decode(mu) of real test
    assert len(real_passed) == 3 and len(passed["motion"]) == 5  # + the two generated sets, all frames real
    for got, ref in zip(real_passed, want + want[1:]):
        np.testing.assert_array_equal(got, ref)
    real_passed = [x for x in passed["classifier"] if x is not None]
    assert len(real_passed) == 3
    for got, ref in zip(real_passed, want + want[1:]):
        np.testing.assert_array_equal(got, ref)
    json.dumps(report)
    assert report["same_split"] and report["feature_dim"] == 16
    for key in ("fid_train", "fid_test", "fid_real_train_vs_test"):
        assert np.isfinite(report[key]) and report[key] >= 0
    g = report["generated"]
    assert g["num_gaits"] == 32 and 0 <= g["recognition_accuracy"] <= 1 and g["diversity"] >= 0
    assert 0 <= report["real_test"]["recognition_accuracy"] <= 1
    rec = report["reconstructed_test"]  # decode(mu) of real test gaits: a trained CVAE beats the zero gait
    assert 0 <= rec["recognition_accuracy"] <= 1 and np.isfinite(rec["fid_test"])
    assert 0 < rec["rec_mse"] < 0.05  # m^2: aligned gaits; even 4 tiny epochs reconstruct within ~20 cm rms
    assert "fid_test" in format_report(report) and "reconstructed" in format_report(report)
    assert "(best checkpoint; " in format_report(report) and "(best checkpoint)" in format_report(report)
    fitted = report["generated_fitted_prior"]  # samples of the per-class Gaussian fitted on the training split
    assert fitted["num_gaits"] == 32 and np.isfinite(fitted["fid_test"]) and 0 <= fitted["recognition_accuracy"] <= 1
    assert "fitted per-class prior" in format_report(report)
    curves = report["loss_curves"]  # the push (collapse) / pull (drift) curves of the run, per epoch
    assert curves["epoch"] == list(range(cfg.generator.train.epochs))
    for key in ("train_rec", "train_collapse", "train_drift", "val_collapse", "val_drift", "val_kl"):
        assert len(curves[key]) == len(curves["epoch"]) and np.all(np.isfinite(curves[key]))
    assert "validation loss, epoch 0 -> best" in format_report(report)
    # a STEP+Aug generator's held-out part comes from the data's split as computed now: where that would hold
    # gaits the generator trained on (the splitting changed since), the report is refused, not computed
    real_outer = pipeline.outer_split
    monkeypatch.setattr(pipeline, "outer_split", lambda raw, c: real_outer(raw, c)._replace(
        test=np.asarray(result["generator_train_indices"][:3])))
    with pytest.raises(ckpt_lib.ConfigMismatchError, match=r"test part as split now holds gaits .* trained"), \
            pytest.warns(UserWarning, match="STEP model with affective features"):
        evaluate_generator(os.path.join(workdir, GENERATOR_DIR), os.path.join(workdir, CLASSIFIER_DIR),
                           num_per_class=8, seed=0)


def test_evaluate_generator_restores_the_checkpoints_it_is_asked_for(aug, monkeypatch):
    """``--checkpoint`` picks the generator's checkpoint and ``--classifier-checkpoint`` the classifier's."""
    import stepjax.gen_eval as gen_eval

    cfg, workdir, result = aug
    asked = []

    def record(restore, name):
        def wrapped(path, which):
            asked.append((name, which))
            if name == "classifier":
                raise KeyboardInterrupt  # enough: both restores were asked
            return restore(path, which)
        return wrapped

    monkeypatch.setattr(gen_eval, "restore_generator", record(gen_eval.restore_generator, "generator"))
    monkeypatch.setattr(gen_eval, "restore_classifier", record(gen_eval.restore_classifier, "classifier"))
    with pytest.raises(KeyboardInterrupt):
        gen_eval.main(["--workdir", os.path.join(workdir, GENERATOR_DIR), "--classifier",
                       os.path.join(workdir, CLASSIFIER_DIR), "--checkpoint", "latest",
                       "--classifier-checkpoint", "best"])
    with pytest.raises(KeyboardInterrupt):
        gen_eval.evaluate_generator(os.path.join(workdir, GENERATOR_DIR), os.path.join(workdir, CLASSIFIER_DIR),
                                    which="best", classifier_which="latest")
    assert asked == [("generator", "latest"), ("classifier", "best"), ("generator", "best"),
                     ("classifier", "latest")]


def test_step_aug_refuses_a_generator_or_classifier_that_saw_other_gaits(tmp_path, monkeypatch):
    """fit_step_aug's leak checks can fail: a generator whose training + validation gaits are not exactly the
    classifier's training split, or a classifier whose real parts are not the split's, stop the run; a bad
    aug.generator_val_fraction is refused up front under its own name."""
    import stepjax.training.fit as fit_module
    import stepjax.training.fit_generator as fit_generator_module

    from stepjax.training import progress

    cfg = tiny_step_aug_config()
    raw = pipeline.load_source(cfg.data)
    split = pipeline.split_dataset(raw, classifier_config(cfg).data)
    for leaky in (dict(train_indices=split.train[:-1], val_indices=np.append(split.train[-1:], split.val[:1])),
                  dict(train_indices=split.train[:-1], val_indices=split.val[:1])):  # one too many; one swapped
        monkeypatch.setattr(fit_generator_module, "fit_generator", lambda *a, leaky=leaky, **k: {**leaky,
                                                                                               "best_epoch": 0})
        with pytest.raises(AssertionError, match="not exactly the classifier's training split"):
            fit_step_aug(cfg, str(tmp_path / "gen"), **QUIET)

    def classifier_on(part):
        def fake(c, workdir, **kwargs):
            os.makedirs(workdir, exist_ok=True)
            progress.write_split(workdir, split._replace(**{part: getattr(split, part)[1:]}))
            return {"best_epoch": 0}
        return fake

    cfg.aug.per_class = 0  # the real-only arm: no generator
    for part in ("train", "val", "test"):
        monkeypatch.setattr(fit_module, "fit_classifier", classifier_on(part))
        with pytest.raises(AssertionError, match=f"the classifier's {part} split is not the real {part} split"):
            fit_step_aug(cfg, str(tmp_path / part), **QUIET)
    cfg.aug.generator_val_fraction = 1.0
    with pytest.raises(ValueError, match=r"aug.generator_val_fraction .* must be a number in \(0, 1\), got 1.0"):
        fit_step_aug(cfg, str(tmp_path / "bad"), **QUIET)


@pytest.mark.parametrize("per_class", [0, 1, 2.5, True])
def test_evaluate_generator_refuses_too_few_gaits_per_class(per_class):
    from stepjax.gen_eval import evaluate_generator

    with pytest.raises(ValueError, match=r"num_per_class \(--per-class\) must be an integer >= 2"):
        evaluate_generator("no/such/run", "no/such/classifier", per_class)  # before any loading


def test_eval_cli_on_a_generator_writes_metrics_json_and_loss_curves_png(aug, tmp_path):
    import subprocess

    _, workdir, _ = aug
    out_json, out_png = tmp_path / "gen.json", tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, os.path.join(PROJECT_ROOT, "eval.py"),
                           f"--workdir={os.path.join(workdir, GENERATOR_DIR)}",
                           f"--classifier={os.path.join(workdir, CLASSIFIER_DIR)}", "--per-class=4",  # alias of --per_class
                           f"--json={out_json}", f"--png={out_png}"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(out_json))[0]
    assert np.isfinite(report["fid_test"]) and report["loss_curves"]["val_drift"]
    assert out_png.stat().st_size > 10_000 and "validation loss" in proc.stdout
    assert report["trained_with"]["event"] == "start" and "generator trained with stepjax" in proc.stdout


def test_eval_clis_refuse_flags_and_mixes_that_would_be_ignored_before_any_work(aug, tmp_path):
    import subprocess

    gen, cls = os.path.join(aug[1], GENERATOR_DIR), os.path.join(aug[1], CLASSIFIER_DIR)
    cases = [([os.path.join(PROJECT_ROOT, "eval.py"), f"--workdir={gen}", f"--classifier={cls}", "--features=x.h5"],
              r"--features apply to classifier runs"),
             ([os.path.join(PROJECT_ROOT, "eval.py"), f"--workdir={cls}", f"--workdir={gen}"],
              r"--workdir mixes generator and classifier runs"),
             (["-m", "stepjax.gen_eval", f"--workdir={gen}", f"--classifier={cls}", f"--json={tmp_path}"],
              r"cannot write .*: it is a folder")]
    for args, message in cases:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
        assert proc.returncode == 2 and re.search(message, proc.stderr), proc.stderr[-2000:]


def test_fit_latent_prior_matches_the_aggregate_posterior_moments():
    """Per class: mean of mu, covariance = cov(mu) + mean(exp(logvar)) (law of total covariance); samples
    reproduce those moments; a class without gaits and NaNs are clear errors."""
    from stepjax.generation import fit_latent_prior, sample_prior

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    mu = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3)) + 3.0 * labels[:, None]
    logvar = rng.normal(-2, 0.3, (200, 3))
    prior = fit_latent_prior(mu, logvar, labels)
    for k in range(4):
        m, lv = mu[labels == k], logvar[labels == k]
        cov = np.cov(m.T, bias=True) + np.diag(np.exp(lv).mean(0))
        np.testing.assert_allclose(prior.mean[k], m.mean(0), rtol=1e-5, atol=1e-5)
        tril = np.asarray(prior.scale_tril[k], np.float64)
        np.testing.assert_allclose(tril @ tril.T, cov, rtol=1e-4, atol=1e-5)
        assert np.allclose(tril, np.tril(tril))
    onehot = jax.nn.one_hot(jnp.full((20000,), 2), 4)
    z = np.asarray(jax.jit(sample_prior)(prior, onehot, jax.random.PRNGKey(0)), np.float64)
    np.testing.assert_allclose(z.mean(0), prior.mean[2], atol=0.05)
    tril = np.asarray(prior.scale_tril[2], np.float64)
    np.testing.assert_allclose(np.cov(z.T), tril @ tril.T, rtol=0.05, atol=0.02)
    with pytest.raises(ValueError, match="class 3"):
        fit_latent_prior(mu[labels < 3], logvar[labels < 3], labels[labels < 3])
    with pytest.raises(ValueError, match="NaN"):
        fit_latent_prior(np.full_like(mu, np.nan), logvar, labels)
    fractional = labels.astype(np.float64)
    fractional[7] = 1.5  # not "class 1 has no gaits" nor a silent cast to class 1
    with pytest.raises(ValueError, match=r"labels must be whole numbers in 0..3; entries \[7\] are \[1.5\]"):
        fit_latent_prior(mu, logvar, fractional)
    with pytest.raises(ValueError, match=r"entries \[0\] are \[4\]"):
        fit_latent_prior(mu, logvar, np.where(np.arange(200) == 0, 4, labels))


def test_generate_with_a_fitted_prior(generator, tmp_path):
    """``prior=`` replaces N(0, I) by the per-class Gaussian: a prior collapsed on one latent per class decodes
    exactly that latent; the fit on a run's training split has the model's shape; the CLI takes --prior fitted."""
    from stepjax.generation import LatentPrior, fit_latent_prior_from_run, generate

    gen_dir, model, variables, (generate_fn, loaded_vars) = generator
    labels = jnp.array([0, 1, 2, 3, 0])
    point = jax.random.normal(jax.random.PRNGKey(1), (4, model.latent_dim))
    collapsed = LatentPrior(point, jnp.zeros((4, model.latent_dim, model.latent_dim)))
    got = generate(model, variables, labels, jax.random.PRNGKey(2), 32, prior=collapsed)
    want = model.apply(variables, point[labels], jax.nn.one_hot(labels, 4), 32, method="decode")
    np.testing.assert_allclose(got, want, atol=1e-5)
    prior = fit_latent_prior_from_run(gen_dir)
    assert prior.mean.shape == (4, model.latent_dim) and prior.scale_tril.shape == (4, model.latent_dim, model.latent_dim)
    sampled = generate_fn(loaded_vars, labels, jax.random.PRNGKey(2), prior=prior)
    assert sampled.shape == (5, 32, 16, 3) and np.all(np.isfinite(sampled))
    with pytest.raises(ValueError, match="exclusive"):
        generate_fn(loaded_vars, labels, jax.random.PRNGKey(2), official_sampler=True, prior=prior)
    import stepjax.generation as generation
    from stepjax.data.egait import read_egait

    from stepjax.training.augment import synthesize

    with pytest.MonkeyPatch.context() as mp:  # the CLI samples the fitted prior: here one point per class
        mp.setattr(generation, "fit_latent_prior_from_run", lambda workdir, which="best": collapsed)
        generation.main(["--workdir", gen_dir, "--per-class", "2", "--out-features", str(tmp_path / "f.h5"),
                         "--prior", "fitted"])
        by_prior = {p: synthesize(gen_dir, 2, 0, prior=p) for p in ("fitted", "standard")}  # STEP+Aug's sampler
    written = read_egait(str(tmp_path / "f.h5"))
    assert np.array_equal(np.bincount(written.labels), [2, 2, 2, 2])
    per_class = model.apply(variables, point, jax.nn.one_hot(jnp.arange(4), 4), 32, method="decode")
    for gait, label in zip(written.gaits, written.labels):
        np.testing.assert_allclose(gait, per_class[label], atol=1e-4)
    for prior, (gaits, labels) in by_prior.items():
        close = [np.allclose(g, per_class[y], atol=1e-4) for g, y in zip(gaits, labels)]
        assert all(close) if prior == "fitted" else not any(close), prior


def test_loss_warmup_ramps_push_pull_and_kl_weights():
    """At optimizer step s < W, ``warmup_steps=W`` equals a step with lambda_collapse, lambda_drift and beta
    scaled by (s + 1) / W (reconstruction unscaled); from step W on it equals the plain step. W is
    ``loss.warmup_epochs`` in optimizer steps."""
    from stepjax.training.fit_generator import (build_generator, create_generator_state, generator_train_step,
                                                loss_warmup_steps, loss_weights)
    import optax

    cfg = tiny_generator_config()
    cfg.loss.warmup_epochs = 1.5
    assert loss_warmup_steps(cfg, 14) == 21 and loss_warmup_steps(cfg, 1) == 2
    cfg.loss.warmup_epochs = 0.0
    assert loss_warmup_steps(cfg, 14) == 0
    cfg.loss.beta = 0.5  # large enough that the KL term moves the parameters visibly
    train = pipeline.prepare(cfg)["train"]
    batch = jax.tree_util.tree_map(lambda a: jnp.asarray(a[:16]), train)
    model = build_generator(cfg)
    state = create_generator_state(model, optax.sgd(1e-2), jax.random.key(0), 32)  # no lr warm-up: step 0 moves
    w = loss_weights(cfg)
    scaled = lambda f: dict(w, **{k: w[k] * f for k in ("lambda_collapse", "lambda_drift", "beta")})

    @jax.jit
    def steps(state, rng):
        warm = generator_train_step(state, batch, rng, weights=w, warmup_steps=4)[0].params
        ref = generator_train_step(state, batch, rng, weights=scaled(0.25), warmup_steps=0)[0].params
        plain = generator_train_step(state, batch, rng, weights=w)[0].params
        late = state.replace(step=state.step + 4)  # past the ramp
        warm_late = generator_train_step(late, batch, rng, weights=w, warmup_steps=4)[0].params
        plain_late = generator_train_step(late, batch, rng, weights=w)[0].params
        return warm, ref, plain, warm_late, plain_late

    warm, ref, plain, warm_late, plain_late = steps(state, jax.random.key(1))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), warm, ref)
    jax.tree_util.tree_map(np.testing.assert_array_equal, warm_late, plain_late)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(warm),
                                                             jax.tree_util.tree_leaves(plain)))
    assert diff > 1e-6  # the ramp does change the step


def test_generator_eval_loss_does_not_depend_on_chunk_padding():
    """``make_eval_fn`` promises per-gait losses averaged over the real gaits, independent of ``chunk``.
    On 5 random gaits of a tiny random-init CVAE (channels 8, kernel 3, 8 frames): chunk 5 (no padding)
    and chunk 4 (padded to 8, 3 masked gaits) give the same components (rtol 1e-5, float32
    batch vs per-gait convolutions), and they equal a per-gait loop written here: encode gait i, eps from
    ``fold_in(rng, i)``, decode, ``generator_loss`` of that gait, mean over the 5 gaits; ``total`` is
    ``rec + lambda_collapse collapse + lambda_drift drift + beta kl`` of those means (the default weights)."""
    from types import SimpleNamespace

    from stepjax.losses import DEFAULT_BETA, DEFAULT_LAMBDA_COLLAPSE, DEFAULT_LAMBDA_DRIFT, generator_loss
    from stepjax.models.cvae import STEPGenCVAE, reparameterize
    from stepjax.training.fit_generator import make_eval_fn

    model = STEPGenCVAE(latent_dim=4, encoder_channels=(8, 8, 8), decoder_channels=(8, 8, 3), kernel_size=3)
    n, frames = 5, 8
    rng = np.random.default_rng(0)
    data = SimpleNamespace(gaits=(0.3 * rng.normal(size=(n, frames, 16, 3))).astype(np.float32),
                           labels=np.array([0, 1, 2, 3, 1], np.int32))
    variables = jax.jit(lambda r: model.init({"params": r, "sample": r, "dropout": r}, jnp.asarray(data.gaits[:1]),
                                             jax.nn.one_hot(data.labels[:1], 4), train=False))(jax.random.PRNGKey(0))
    weights = dict(lambda_collapse=DEFAULT_LAMBDA_COLLAPSE, lambda_drift=DEFAULT_LAMBDA_DRIFT, beta=DEFAULT_BETA,
                   official=False)
    key = jax.random.PRNGKey(7)

    @jax.jit
    def one_gait(x, y, k):
        onehot = jax.nn.one_hot(y, 4)
        mu, logvar = model.apply(variables, x, onehot, method="encode")
        eps = jax.random.normal(k, mu.shape[1:], mu.dtype)[None]
        x_hat = model.apply(variables, reparameterize(mu, logvar, eps), onehot, x.shape[1], method="decode")
        return generator_loss(x, x_hat, mu, logvar, **weights)[1]

    per_gait = [one_gait(jnp.asarray(data.gaits[i:i + 1]), jnp.asarray(data.labels[i:i + 1]),
                         jax.random.fold_in(key, i)) for i in range(n)]
    want = {k: float(np.mean([float(p[k]) for p in per_gait])) for k in ("rec", "drift", "vel", "acc", "collapse", "kl")}
    want["total"] = (want["rec"] + DEFAULT_LAMBDA_COLLAPSE * want["collapse"] + DEFAULT_LAMBDA_DRIFT * want["drift"]
                     + DEFAULT_BETA * want["kl"])
    assert set(want) == set(COMPONENTS)
    for chunk in (5, 4):
        got = make_eval_fn(model, weights, batch_size=16, chunk=chunk)(variables, data, key)
        assert got == pytest.approx(want, rel=1e-5), f"chunk={chunk}"


def test_the_fitted_prior_sees_aligned_gaits(generator, aug):
    """``fit_latent_prior_on`` aligns raw gaits with the generator's preprocessor before encoding them, as in
    training: rotating the training gaits about the vertical axis and moving them leaves the fitted prior
    unchanged (encoding them unaligned would not)."""
    from stepjax.generation import encode_gaits, fit_latent_prior, fit_latent_prior_on, restore_generator

    workdir, model, variables, _ = generator
    cfg, workdir_aug, result = aug
    _, _, _, prep = restore_generator(workdir)
    raw = pipeline.load_source(cfg.data)
    idx = result["generator_train_indices"][:64]
    gaits, labels = raw.gaits[idx], raw.labels[idx]
    a = np.deg2rad(40.0)
    yaw = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]], np.float32)
    moved = gaits @ yaw.T + np.array([1.0, 0.0, -2.0], np.float32)
    want = fit_latent_prior_on(model, variables, prep, gaits, labels)
    got = fit_latent_prior_on(model, variables, prep, moved, labels)
    for a_, b_ in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a_, b_, rtol=1e-3, atol=1e-4)
    unaligned = [fit_latent_prior(*encode_gaits(model, variables, g, labels), labels) for g in (gaits, moved)]
    assert not np.allclose(unaligned[0].mean, unaligned[1].mean, rtol=1e-2, atol=1e-3)  # the pose would matter


def test_the_synthetic_latents_follow_the_run_seed_unless_aug_seed_is_set():
    """``aug.seed`` is a placeholder: ``None`` takes the run's ``seed`` (so seeds of a protocol sample different
    latents), an explicit value wins and leaves ``seed`` alone (no shared reference)."""
    from stepjax.training.augment import synthetic_seed

    cfg = step_aug_config.get_config()
    assert cfg.aug.seed is None and synthetic_seed(cfg) == cfg.seed == 0
    cfg.seed = 7
    assert synthetic_seed(cfg) == 7
    cfg.aug.seed = 3
    assert synthetic_seed(cfg) == 3 and cfg.seed == 7


def test_synthetic_gaits_come_from_the_best_generator_checkpoint(monkeypatch):
    """STEP+Aug samples its synthetic gaits from the generator's best-validation checkpoint, not the latest one."""
    import stepjax.generation as generation
    from stepjax.training.augment import synthesize

    from conftest import which_recorder

    asked = []
    monkeypatch.setattr(generation, "load_generator", which_recorder(asked))
    with pytest.raises(LookupError, match="recorded"):
        synthesize("some/run", 2, 0)
    assert asked == ["best"]


def test_the_generator_trains_with_the_models_number_of_classes(tmp_path):
    """The one-hot condition of the train step has the model's width (``model.num_classes``), not always 4: a
    5-class CVAE trains on 4-class data (with the missing-class warning), and a 3-class one is refused by name
    (the data's label 3 has no one-hot slot; inside the jitted step it would only be a NaN loss)."""
    cfg = tiny_generator_config(epochs=1)
    cfg.data.num_gaits = 120
    cfg.model.num_classes = 5
    with pytest.warns(UserWarning, match="class"):
        result = fit_generator(cfg, str(tmp_path / "five"), **QUIET)
    assert np.isfinite(result["val"]["total"])
    from stepjax.generation import load_generator

    generate_fn, variables = load_generator(tmp_path / "five")
    onehot = np.eye(5, dtype=np.float32)[[4, 0]]  # the fifth class has a slot of its own
    assert generate_fn(variables, onehot, jax.random.PRNGKey(0), num_frames=32).shape == (2, 32, 16, 3)
    from stepjax.generation import generate_per_class, official_keys

    gaits, labels = generate_per_class(generate_fn, variables, 2)  # every class of the generator, not 4
    assert gaits.shape == (10, 32, 16, 3) and labels.tolist() == [0, 1, 2, 3, 4] * 2
    with pytest.raises(ValueError, match="E-Gait keys name the 4 STEP emotions .* label 4 has none"):
        official_keys(labels)
    cfg.model.num_classes = 3
    with pytest.raises(ValueError, match=r"labels up to 3 .* model predicts 3 classes"):
        fit_generator(cfg, str(tmp_path / "three"), **QUIET)
