"""Inference helpers (``stepjax.inference``, ``stepjax.predict``) on variable-length gaits, with a randomly
initialised STEP model (29 affective features, so each gait's real frames matter): no training, no data files.

Reference everywhere: one jitted ``predict_fn(variables, gaits, lengths)`` call on the whole batch with the
real frame counts written out by hand; each test also shows that ignoring the lengths changes the answer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from stepjax.data import pipeline
from stepjax.data import preprocess as pp
from stepjax.data.walkers import make_walkers
from stepjax.inference import freeze, make_predict_fn, predict_gaits, predict_in_chunks
from stepjax.models import STEPClassifier

T = 16  # the "training" length
RAW_LENGTHS = (5, 9, 12, 16, 24)  # shorter and longer than T


@pytest.fixture(scope="module")
def step():
    walkers = make_walkers(8, seed=0, num_frames=T)
    cfg = ml_collections.ConfigDict(dict(align=True, reference="mean", num_affective=29, affective_official=False,
                                         time_step=1 / 30))
    prep = pipeline.fit_preprocessor(np.asarray(walkers.gaits), cfg)
    model = STEPClassifier(num_affective=29, kernel_size=3, channels=(8, 8, 8), hidden=16)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, T, 16, 3)), jnp.zeros((1, 29)))
    long = np.asarray(make_walkers(5, seed=1, num_frames=max(RAW_LENGTHS)).gaits)
    raw = [g[:n] for g, n in zip(long, RAW_LENGTHS)]
    return make_predict_fn(model, T), {"model": params, "preprocessor": prep}, raw


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a.logits), np.asarray(b.logits), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.features), np.asarray(b.features), rtol=1e-5, atol=1e-5)


def test_chunked_and_frozen_prediction_carry_each_gaits_lengths(step):
    """``predict_in_chunks`` (chunks of 2: three calls, the last one short) and ``freeze`` pass every gait's own
    ``lengths`` to the model: the same predictions as one call on the whole batch."""
    predict_fn, variables, raw = step
    fixed = pp.to_fixed_length(raw, T, "tile")
    lengths = np.array([min(n, T) for n in RAW_LENGTHS], np.int32)
    want = jax.jit(predict_fn)(variables, fixed, lengths)
    blind = jax.jit(predict_fn)(variables, fixed)
    assert not np.allclose(want.logits, blind.logits, rtol=1e-3, atol=1e-4)  # the lengths matter here
    _close(predict_in_chunks(predict_fn, variables, fixed, chunk=2, lengths=lengths), want)
    _close(freeze(predict_fn, variables)(fixed, lengths), want)


def test_predict_fn_names_variables_of_another_kind(step):
    """e.g. a generator's ``{'params', 'batch_stats'}`` or the model's own variables without the preprocessor."""
    predict_fn, variables, raw = step
    gaits = pp.to_fixed_length(raw, T, "tile")
    for wrong in (variables["model"], {"params": {}, "batch_stats": {}}, [variables]):
        with pytest.raises(ValueError, match=r"predict_fn takes the classifier's variables \{'model', 'preprocessor'\}"):
            predict_fn(wrong, gaits)
    for dtype in (bool, object):  # a mask or an object array of the right shape was classified with confidence
        with pytest.raises(ValueError, match=f"gaits must hold real numbers .*got dtype {np.dtype(dtype)}"):
            predict_fn(variables, np.asarray(gaits > 0, dtype))


@pytest.mark.parametrize("policy", ["tile", "resample"])
def test_predict_gaits_uses_the_real_frames_of_the_length_policy(step, policy):
    """``predict_gaits`` (``eval.py --features``, ``python -m stepjax.predict``) brings raw gaits of 5-24 frames to
    the training length with the run's policy and counts as real what that policy keeps: ``min(T_i, T)`` frames
    when tiling, all ``T`` when resampling (every resampled frame interpolates real ones)."""
    predict_fn, variables, raw = step
    fixed = pp.to_fixed_length(raw, T, policy)
    lengths = np.array([min(n, T) if policy == "tile" else T for n in RAW_LENGTHS], np.int32)
    want = jax.jit(predict_fn)(variables, fixed, lengths)
    _close(predict_gaits(predict_fn, variables, raw, T, policy, chunk=2), want)
    other = np.array([T if policy == "tile" else min(n, T) for n in RAW_LENGTHS], np.int32)
    assert not np.allclose(want.logits, jax.jit(predict_fn)(variables, fixed, other).logits, rtol=1e-3, atol=1e-4)


def test_npy_rows_of_48_values_are_joint_major_like_egait(tmp_path):
    """``python -m stepjax.predict --gaits x.npy`` reads ``(N, T, 48)`` rows as E-Gait stores them (16 joints x
    (x, y, z), joint-major): the same gaits as the ``(N, T, 16, 3)`` array and as an E-Gait file of them."""
    from stepjax.data.egait import write_egait
    from stepjax.predict import read_gaits

    gaits = np.random.default_rng(0).normal(size=(3, 7, 16, 3)).astype(np.float32)
    np.save(tmp_path / "flat.npy", gaits.reshape(3, 7, 48))
    np.save(tmp_path / "full.npy", gaits)
    write_egait(tmp_path / "features.h5", None, {f"{i:05d}": g for i, g in enumerate(gaits)}, labelled=False)
    for path in ("flat.npy", "full.npy", "features.h5"):
        _, got = read_gaits(tmp_path / path)
        np.testing.assert_array_equal(np.stack(got), gaits, err_msg=path)
    np.save(tmp_path / "mask.npy", gaits > 0)
    with pytest.raises(ValueError, match=r"mask.npy must hold real numbers .*got dtype bool"):
        read_gaits(tmp_path / "mask.npy")
    np.save(tmp_path / "objects.npy", gaits.astype(object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"objects.npy: not a NumPy array of gaits \(Object arrays cannot be loaded"):
        read_gaits(tmp_path / "objects.npy")
