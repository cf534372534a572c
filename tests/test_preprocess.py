import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from stepjax.data import preprocess as pp
from conftest import golden, to_nhwc


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_alignment_matches_official_golden():
    d = golden("classifier_io.npz")
    raw = d["gaits_raw"].reshape(32, 75, 16, 3)
    out = np.asarray(jax.jit(pp.align_to_reference)(raw, d["align_reference"]))
    np.testing.assert_allclose(out, to_nhwc(d["model_input"]), atol=2e-6, rtol=0)
    rot, scale, trans = pp.similarity_transform(pp.root_center(raw)[:, 0],
                                                np.broadcast_to(d["align_reference"], (32, 16, 3)))
    np.testing.assert_allclose(rot, d["align_R"], atol=5e-6)
    np.testing.assert_allclose(scale, d["align_c"], rtol=5e-6)
    np.testing.assert_allclose(trans, d["align_t"], atol=5e-6)
    det = np.linalg.det(np.asarray(rot, np.float64))
    np.testing.assert_allclose(det, 1.0, atol=1e-5)  # always a proper rotation, also on the flip branch
    assert d["align_reflection_branch"].sum() == 11


def test_alignment_matches_official_golden_float64():
    """The official alignment run in float64 (``model_input_f64``): the same numbers to float64 rounding."""
    d = golden("classifier_io.npz")
    with jax.enable_x64(True):
        raw = d["gaits_raw"].reshape(32, 75, 16, 3).astype(np.float64)
        out = np.asarray(pp.align_to_reference(raw, d["align_reference_f64"]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, to_nhwc(d["model_input_f64"]), atol=1e-12, rtol=0)  # measured 3.3e-16


def test_official_reference_is_first_frame_of_first_gait():
    d = golden("classifier_io.npz")
    raw = d["gaits_raw"].reshape(32, 75, 16, 3)
    np.testing.assert_allclose(pp.official_reference(raw), d["align_reference"], atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_similarity_transform_recovers_known_transform(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, 3))
    rot, scale, shift = _rotation(rng), rng.uniform(0.5, 2.0), rng.normal(size=3)
    y = scale * x @ rot.T + shift
    r, c, t = pp.similarity_transform(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(r, rot, atol=1e-4)
    np.testing.assert_allclose(c, scale, rtol=1e-4)
    np.testing.assert_allclose(t, shift, atol=1e-4)


def test_similarity_transform_of_a_planar_pose_is_a_proper_rotation():
    """A planar source (every joint in one plane: the rank-2 branch of the official ralign, where det(M) is 0 up
    to rounding and the reflection test uses det(U) det(V) instead) is aligned by the known rotation, never a
    reflection: 12 random poses flattened onto z = 0, random rotations, scales and shifts."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        x = rng.normal(size=(16, 3))
        x[:, 2] = 0.0
        rot, scale, shift = _rotation(rng), rng.uniform(0.5, 2.0), rng.normal(size=3)
        y = scale * x @ rot.T + shift
        r, c, t = pp.similarity_transform(jnp.asarray(x), jnp.asarray(y))
        assert np.linalg.det(np.asarray(r)) == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(r, rot, atol=1e-4)
        np.testing.assert_allclose(c, scale, rtol=1e-4)
        np.testing.assert_allclose(t, shift, atol=1e-4)


@pytest.mark.parametrize("policy", ["tile", "crop", "resample"])
def test_real_frame_counts_by_policy(policy):
    """The frames of each gait that ``to_fixed_length`` keeps unrepeated, written out by hand: ``min(T_i, L)`` for
    'tile' and 'crop', ``L`` for 'resample' (every resampled frame is an interpolated real one); the tiled /
    cropped gaits equal their source on those frames."""
    gaits = [np.random.default_rng(n).normal(size=(n, 16, 3)).astype(np.float32) for n in (3, 8, 12)]
    counts = pp.real_frame_counts(gaits, 8, policy)
    want = {"tile": [3, 8, 8], "crop": [3, 8, 8], "resample": [8, 8, 8]}[policy]
    np.testing.assert_array_equal(counts, want)
    assert counts.dtype == np.int32
    if policy != "resample":
        fixed = pp.to_fixed_length(gaits, 8, policy)
        for g, f, n in zip(gaits, fixed, counts):
            np.testing.assert_array_equal(f[:n], g[:n])


def test_alignment_is_invariant_to_the_pose_of_the_input():
    rng = np.random.default_rng(3)
    gaits = rng.normal(size=(4, 10, 16, 3)).astype(np.float32)
    ref = rng.normal(size=(16, 3)).astype(np.float32)
    moved = 1.7 * gaits @ _rotation(rng).T.astype(np.float32) + np.array([1.0, 2.0, -3.0], np.float32)
    np.testing.assert_allclose(pp.align_to_reference(moved, ref), pp.align_to_reference(gaits, ref), atol=1e-4)
    batched = pp.align_to_reference(gaits, ref)
    mapped = jax.vmap(pp.align_to_reference, in_axes=(0, None))(gaits, ref)
    # Same math, differently fused programs: float32 rounding only. 1e-6 held on the Intel hosts; an AMD EPYC
    # host (2026-12-04) gave 1.2e-6 at one coordinate of magnitude 0.44 (~40 ulp through the 3x3 SVD).
    np.testing.assert_allclose(batched, mapped, atol=1e-5)


def test_length_policies():
    g = np.arange(4 * 16 * 3, dtype=np.float32).reshape(4, 16, 3)
    tiled = pp.tile_to_length(g, 10)
    np.testing.assert_array_equal(tiled[:, 0, 0], g[[0, 1, 2, 3, 0, 1, 2, 3, 0, 1], 0, 0])
    res = pp.resample_to_length(g, 7)
    np.testing.assert_allclose(res[:, 0, 0], np.linspace(0, 3, 7) * 48)
    stacked = pp.to_fixed_length([g, g[:2]], policy="tile")
    assert stacked.shape == (2, 4, 16, 3) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[1, 2:], g[:2])
    np.testing.assert_array_equal(pp.to_fixed_length([g], 3, "crop")[0], g[:3])
    assert pp.sliding_windows(np.zeros((10, 16, 3)), 4, 3).shape == (3, 4, 16, 3)
    with pytest.raises(ValueError, match="unknown length policy"):
        pp.to_fixed_length([g], 5, "stretch")
    # mistakes that once gave an empty array, a (N, L, 48) pass-through or a ZeroDivisionError
    for fn in (pp.to_fixed_length, pp.real_frame_counts):
        for length in (0, -3, 2.5, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="length must be a whole number of frames >= 1"):
                fn([g], length)
        with pytest.raises(ValueError, match=r"gait 1 must have shape \(T, 16, 3\).*reshape"):
            fn([g, g.reshape(4, 48)], 5)
        with pytest.raises(ValueError, match="gait 0 has no frames"):
            fn([g[:0]], 5)
        with pytest.raises(ValueError, match="no gaits"):
            fn([], 5)
    with pytest.raises(ValueError, match="hop must be a whole number of frames >= 1"):
        pp.sliding_windows(np.zeros((10, 16, 3)), 4, 0)
    for bad in (np.zeros(10), np.zeros((10, 48))):  # once a silent (1, 10) window / an AttributeError
        with pytest.raises(ValueError, match=r"sliding_windows: gait must be one gait \(T, 16, 3\)"):
            pp.sliding_windows(bad, 4, 2)


@pytest.mark.parametrize("dtype", [bool, np.complex64, object])
def test_gaits_that_are_not_real_numbers_are_refused(dtype):
    """Bool, complex or object arrays of the right shape were cast to float and classified with confidence."""
    from stepjax.affective import affective_features

    gaits = np.ones((2, 8, 16, 3), dtype)
    match = rf"must hold real numbers \(coordinates in metres\), got dtype {np.dtype(dtype)}"
    for fn in (pp.validate_gaits, lambda g: pp.align_to_reference(g, np.zeros((16, 3))), affective_features):
        with pytest.raises(ValueError, match=match):
            fn(gaits)
    pp.validate_gaits(np.ones((2, 8, 16, 3), np.int32))  # integers are numbers
    with pytest.raises(ValueError, match=r"T >= 1, got \(2, 0, 16, 3\)"):  # once an IndexError
        pp.align_to_reference(np.zeros((2, 0, 16, 3)), np.zeros((16, 3)))


def test_official_tiling_reproduces_golden_egait_inputs():
    d = golden("classifier_io.npz")
    from conftest import EGAIT_SAMPLES, require
    from stepjax.data.egait import read_egait
    data = read_egait(require(EGAIT_SAMPLES / "sample_features.h5"), EGAIT_SAMPLES / "sample_labels.h5")
    tiled = pp.to_fixed_length(data.gaits, 75, "tile")
    np.testing.assert_allclose(tiled, d["gaits_raw"][:3].reshape(3, 75, 16, 3), atol=1e-7)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 75, 48)), r"\(N, T, 16, 3\).*reshape"),
    (np.zeros((75, 16, 3)), r"\(N, T, 16, 3\)"),
    (np.full((1, 5, 16, 3), np.nan), "NaN"),
])
def test_validate_gaits(bad, match):
    with pytest.raises(ValueError, match=match):
        pp.validate_gaits(bad)


@pytest.mark.parametrize("official", [True, False])
def test_egait_source_computes_affective_features_on_the_real_frames(official):
    """E-Gait gaits (26-32 frames in the samples) are tiled to 75 for the model, but their affective features are
    those of the real frames (the official features file is computed before any padding)."""
    import ml_collections
    from conftest import EGAIT_SAMPLES, require
    from stepjax import affective as aff
    from stepjax.data import pipeline
    from stepjax.data.egait import read_egait

    path = require(EGAIT_SAMPLES / "sample_features.h5")
    data = read_egait(path, EGAIT_SAMPLES / "sample_labels.h5")
    raw = pipeline.load_source(ml_collections.ConfigDict(dict(
        source="egait", path=str(path), labels_path=str(EGAIT_SAMPLES / "sample_labels.h5"), num_frames=75)))
    np.testing.assert_array_equal(raw.lengths, [len(g) for g in data.gaits])
    assert raw.gaits.shape == (3, 75, 16, 3) and raw.lengths.max() < 75
    cfg = ml_collections.ConfigDict(dict(reference="first", num_affective=29, affective_official=official,
                                         time_step=1 / 30, align=True))
    prep = pipeline.fit_preprocessor(raw.gaits, cfg, raw.lengths)
    real = np.stack([np.asarray(aff.affective_features(g, official=official)) for g in data.gaits])
    norm = aff.fit_normalizer(real)
    np.testing.assert_allclose(prep.aff_center, norm.center, rtol=1e-5, atol=1e-6)
    arrays = pipeline.apply_preprocessor(prep, raw.gaits, raw.labels, lengths=raw.lengths)
    np.testing.assert_allclose(arrays.affective, aff.normalize(real, norm), atol=1e-4)
    tiled = np.asarray(aff.affective_features(raw.gaits, official=official))
    assert not np.allclose(tiled[:, 17:27], real[:, 17:27], rtol=0.1)  # what ignoring the lengths would give


def test_a_training_gait_with_nan_features_is_refused_by_name():
    """One degenerate training gait (head on the neck: a zero-length vector, NaN angles in the official
    formulas) would turn the normalisation of those features, and so those features of every gait, into NaN."""
    import ml_collections
    from stepjax.data import pipeline
    from stepjax.data.walkers import make_walkers

    gaits = np.array(make_walkers(8, seed=0, num_frames=20).gaits)
    gaits[5, 3, 3] = gaits[5, 3, 2]
    cfg = ml_collections.ConfigDict(dict(reference="first", num_affective=29, affective_official=True,
                                         time_step=1 / 30, align=True))
    with pytest.raises(ValueError, match=r"affective features \[.*\] of 1 training gait\(s\) \(indices in the "
                                         r"training split: \[5\]\) are not finite; the official formulas"):
        pipeline.fit_preprocessor(gaits, cfg)
    cfg.affective_official = False  # the fixed formulas stay finite
    prep = pipeline.fit_preprocessor(gaits, cfg)
    assert np.all(np.isfinite(prep.aff_center)) and np.all(np.isfinite(prep.aff_half_range))


def test_alignment_of_a_first_frame_without_spread_is_a_finite_translation():
    """A first frame with every joint on the root (e.g. a zeroed frame) has no rotation or scale to fit: the gait
    is only translated (R = I, c = 1) instead of turning into NaN, and the other gaits of the batch are unchanged."""
    d = golden("classifier_io.npz")
    untouched = d["gaits_raw"].reshape(32, 75, 16, 3)[:3]
    raw = untouched.copy()
    raw[1, 0] = raw[1, 0, 0]  # all joints at the root in frame 0
    out = np.asarray(pp.align_to_reference(raw, d["align_reference"]))
    assert np.all(np.isfinite(out))
    ref_mean = np.asarray(pp.root_center(d["align_reference"])).mean(0)
    np.testing.assert_allclose(out[1], np.asarray(pp.root_center(raw[1])) + ref_mean, atol=1e-6)
    np.testing.assert_allclose(out[[0, 2]], np.asarray(pp.align_to_reference(untouched, d["align_reference"]))[[0, 2]],
                               atol=1e-6)
    grad = jax.jit(jax.grad(lambda g: jnp.sum(pp.align_to_reference(g, d["align_reference"]) ** 2)))(raw)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_gaits_not_in_metres_are_flagged():
    import warnings

    from stepjax.data.walkers import make_walkers

    g = np.asarray(make_walkers(8, seed=0, num_frames=12).gaits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 1.0 < pp.warn_if_not_metres(g) < 2.0  # metres: silent
    with pytest.warns(UserWarning, match=r"median body height 1\d\d\.?\d* .*centimetres\? divide by 100"):
        pp.warn_if_not_metres(g * 100)


@pytest.mark.parametrize("augment_mirror", [False, True])
def test_prepare_fits_on_the_training_split_and_keeps_each_parts_lengths(monkeypatch, augment_mirror):
    """``pipeline.prepare``: the preprocessor (reference pose, affective normalisation) is fitted on the training
    split only (its values differ from a fit on all gaits here, so a leak of val/test gaits would show); every
    part's affective features use each gait's real frames (``lengths``: here 20-40 of 40, the rest tiled);
    mirror augmentation adds the mirrored training gaits with the SAME labels. Expected values come from
    ``fit_preprocessor`` / ``apply_preprocessor`` / ``skeleton.mirror`` called on the split by hand."""
    import ml_collections

    from stepjax import skeleton
    from stepjax.data import pipeline
    from stepjax.data.walkers import make_walkers

    w = make_walkers(60, seed=3, num_frames=40)
    lengths = np.random.default_rng(0).integers(20, 41, 60).astype(np.int32)
    gaits = pp.to_fixed_length([g[:n] for g, n in zip(np.asarray(w.gaits), lengths)], 40, "tile")
    raw = pipeline.RawDataset(np.asarray(gaits, np.float32), np.asarray(w.labels, np.int32),
                              np.asarray(w.subjects, np.int32), None, lengths)
    monkeypatch.setattr(pipeline, "load_source", lambda cfg: raw)
    cfg = ml_collections.ConfigDict(dict(
        data=dict(source="walkers", num_frames=40, split=(0.6, 0.2, 0.2), split_seed=0, group_by_subject=True,
                  augment_mirror=augment_mirror),
        preprocess=dict(align=True, reference="mean", num_affective=29, affective_official=False, time_step=1 / 30)))
    out = pipeline.prepare(cfg)
    split = out["split"]
    tr = split.train
    train_gaits, train_labels, train_len = raw.gaits[tr], raw.labels[tr], lengths[tr]
    if augment_mirror:
        train_gaits = np.concatenate([train_gaits, np.asarray(skeleton.mirror(train_gaits))])
        train_labels, train_len = np.tile(train_labels, 2), np.tile(train_len, 2)
    want = pipeline.fit_preprocessor(train_gaits, cfg.preprocess, train_len)
    leaky = pipeline.fit_preprocessor(raw.gaits, cfg.preprocess, lengths)
    for field in ("reference", "aff_center", "aff_half_range"):
        got, ok, bad = (np.asarray(getattr(p, field)) for p in (out["preprocessor"], want, leaky))
        np.testing.assert_allclose(got, ok, rtol=1e-6, atol=1e-7, err_msg=field)
        assert not np.allclose(ok, bad, rtol=1e-3, atol=0), field  # the check can fail
    np.testing.assert_array_equal(out["train"].labels, train_labels)
    np.testing.assert_allclose(out["train"].gaits, pipeline.apply_preprocessor(want, train_gaits, train_labels,
                                                                               lengths=train_len).gaits, atol=1e-6)
    for name in ("val", "test"):
        idx = getattr(split, name)
        assert len(idx) > 0
        ok = pipeline.apply_preprocessor(want, raw.gaits[idx], raw.labels[idx], lengths=lengths[idx]).affective
        tiled = pipeline.apply_preprocessor(want, raw.gaits[idx], raw.labels[idx]).affective
        np.testing.assert_allclose(out[name].affective, ok, rtol=1e-5, atol=1e-5, err_msg=name)
        assert not np.allclose(ok, tiled, rtol=1e-2, atol=1e-2), name


@pytest.mark.parametrize("reference", ["first", "mean"])
def test_preprocess_reference_and_align_options(reference):
    """``preprocess.reference``: 'first' (the official choice: the first training gait's root-centred first
    frame) or 'mean' (over the training gaits); ``preprocess.align=False`` (the official hybrid loader) feeds
    the raw positions to the model, ``align=True`` aligns them to that reference."""
    import ml_collections
    from stepjax.data import pipeline
    from stepjax.data.walkers import make_walkers

    gaits = np.asarray(make_walkers(6, seed=3, num_frames=10).gaits)
    first_frames = np.asarray(pp.root_center(gaits[:, 0]))
    want = first_frames[0] if reference == "first" else first_frames.mean(0)
    for align in (True, False):
        cfg = ml_collections.ConfigDict(dict(reference=reference, num_affective=0, affective_official=False,
                                             time_step=1 / 30, align=align))
        prep = pipeline.fit_preprocessor(gaits, cfg)
        np.testing.assert_allclose(prep.reference, want, atol=1e-6)
        model_gaits, _ = prep(jnp.asarray(gaits))
        expected = pp.align_to_reference(gaits, want) if align else gaits
        np.testing.assert_allclose(model_gaits, expected, atol=1e-5)
    assert not np.allclose(first_frames[0], first_frames.mean(0), atol=1e-3)  # the two choices differ here


def test_a_preprocessor_without_its_fitted_normalisation_says_so():
    """A ``Preprocessor`` built by hand with affective features but no fitted normalisation: a ValueError that
    says how to build one (was jnp's "None is not a valid value")."""
    import ml_collections
    from stepjax.data import pipeline

    cfg = ml_collections.ConfigDict(dict(num_affective=27, align=True))
    prep = pipeline.Preprocessor.from_config(cfg, np.zeros((16, 3), np.float32))
    with pytest.raises(ValueError, match=r"27 affective features but holds no fitted normalisation .*fit_preprocessor"):
        prep(jnp.zeros((2, 8, 16, 3)))


def test_every_split_and_every_fitted_preprocessor_share_one_compiled_function(caplog):
    """The fitted arrays are arguments of the jitted preprocessing, not constants baked into it: splits of
    other sizes (chunks) and preprocessors fitted on other training sets (k-fold runs) compile once; the outputs
    are those of the preprocessor called directly."""
    import ml_collections
    from stepjax.data import pipeline
    from stepjax.data.walkers import make_walkers

    gaits = np.asarray(make_walkers(40, seed=5, num_frames=12).gaits)
    labels = np.zeros(len(gaits), np.int32)
    cfg = ml_collections.ConfigDict(dict(reference="mean", num_affective=29, affective_official=False,
                                         time_step=1 / 30, align=True))
    preps = [pipeline.fit_preprocessor(gaits[:20], cfg), pipeline.fit_preprocessor(gaits[20:], cfg)]
    import logging

    parts = (slice(0, 5), slice(5, 40))
    wants = {(i, p.start): prep(jnp.asarray(gaits[p])) for i, prep in enumerate(preps) for p in parts}
    for part in parts:  # compiles for chunks of 8 (and the eager slicing for these sizes)
        pipeline.apply_preprocessor(preps[0], gaits[part], labels[part], chunk=8)
    outs = {}
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        for i, prep in enumerate(preps):
            for part in parts:
                outs[i, part.start] = pipeline.apply_preprocessor(prep, gaits[part], labels[part], chunk=8)
    assert not [m for m in caplog.messages if "Compiling" in m], caplog.messages  # nothing compiled again
    for key, (want_gaits, want_aff) in wants.items():
        np.testing.assert_allclose(outs[key].gaits, want_gaits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outs[key].affective, want_aff, rtol=1e-4, atol=1e-5)
    assert not np.allclose(preps[0].reference, preps[1].reference)  # two different fitted preprocessors


def test_gaits_of_fewer_than_four_frames_are_refused_where_they_enter(tmp_path):
    """One to three frames are a pose, not a gait (and the jerk needs four): refused with their keys when an
    E-Gait file is loaded for training or eval, by ``predict_gaits`` (the predict CLI), and as explicit lengths on
    the host side of every jitted call, where a traced length could only be clipped to 4."""
    import ml_collections

    from stepjax.affective import affective_features, check_lengths
    from stepjax.data import pipeline
    from stepjax.data.egait import write_egait
    from stepjax.data.walkers import make_walkers
    from stepjax.inference import predict_gaits, predict_in_chunks

    gaits = np.asarray(make_walkers(4, seed=0, num_frames=16).gaits)
    short = {"k0": gaits[0][:1], "k1": gaits[1], "k2": gaits[2][:3], "k3": gaits[3][:4]}
    write_egait(tmp_path / "f.h5", tmp_path / "l.h5", short, {k: 1 for k in short})
    cfg = ml_collections.ConfigDict(dict(source="egait", path=str(tmp_path / "f.h5"),
                                         labels_path=str(tmp_path / "l.h5"), num_frames=16, length_policy="tile"))
    with pytest.raises(ValueError, match=r"f.h5: 2 of 4 gaits have fewer than 4 frames .*: k0 \(1\), k2 \(3\)"):
        pipeline.load_source(cfg)
    model = lambda *a: pytest.fail("the model was called")  # noqa: E731
    with pytest.raises(ValueError, match=r"short.h5: 2 of 4 gaits have fewer than 4 frames .*: 0 \(1\), 2 \(3\)"):
        predict_gaits(model, {}, list(short.values()), 16, name="short.h5")
    for lengths, match in (([3, 16, 16, 16], r"lie in \[4, T=16\] .*, got min 3"), ([4, 17, 4, 4], "max 17"),
                           ([4.0] * 4, "integers"), ([4] * 3, "batch shape")):
        with pytest.raises(ValueError, match=match):
            predict_in_chunks(model, {}, gaits, lengths=np.asarray(lengths))
        with pytest.raises(ValueError, match=match):
            pipeline._chunked(model, gaits, np.asarray(lengths), 2)
        with pytest.raises(ValueError, match=match):
            affective_features(gaits, np.asarray(lengths))
    assert check_lengths([4, 16], (2,), 16).dtype == np.int32
    with pytest.raises(ValueError, match=r"data.num_gaits must be >= 1 for the walker source, got 0"):
        pipeline.load_source(ml_collections.ConfigDict(dict(source="walkers", num_gaits=0, seed=0, num_frames=16)))
    with pytest.raises(ValueError, match="unknown data.length_policy 'til'"):  # refused for every source
        pipeline.load_source(ml_collections.ConfigDict(dict(source="walkers", num_gaits=8, seed=0, num_frames=16,
                                                            length_policy="til")))


@pytest.mark.parametrize("time_step", [0.0, -1 / 30, float("nan"), float("inf"), "0.033", np.full(2, 1 / 30), True])
def test_affective_features_refuse_a_time_step_that_is_not_one_positive_number(time_step):
    from stepjax.affective import affective_features

    with pytest.raises(ValueError, match="time_step must be one finite positive number"):
        affective_features(np.zeros((2, 8, 16, 3)), time_step=time_step)
