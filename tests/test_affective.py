"""Affective features: golden official numbers, per-frame reference loops, fixed-mode invariances, jit/vmap, grads."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import golden_tolerance
from stepjax import affective as aff
from stepjax.skeleton import mirror

GOLDEN_AFFECTIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "golden" / "official-step" / "affective.npz"
T_SMALL = 12
DT = 1 / 30


# ----------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def golden():
    if not GOLDEN_AFFECTIVE.exists():
        pytest.skip(f"golden file not available: {GOLDEN_AFFECTIVE} (../shared sits beside the project only in "
                    f"the development checkout)")
    with np.load(GOLDEN_AFFECTIVE) as d:
        out = {k: d[k] for k in d.files}
    out["gaits"] = out["gaits_raw"].reshape(32, 75, 16, 3)
    return out


_REST = np.array([
    [0, .95, 0], [0, 1.15, 0], [0, 1.45, 0], [0, 1.65, .02],
    [-.18, 1.42, 0], [-.22, 1.15, 0], [-.23, .90, 0],
    [.18, 1.42, 0], [.22, 1.15, 0], [.23, .90, 0],
    [-.10, .92, 0], [-.10, .50, 0], [-.10, .08, 0],
    [.10, .92, 0], [.10, .50, 0], [.10, .08, 0],
])


def synthetic_walk(rng, num_frames=T_SMALL, noise=0.005):
    """A crude walk facing -Z: swinging arms and legs, lifted feet with flat ground-contact plateaus."""
    t = np.arange(num_frames)[:, None]
    period = rng.uniform(8, 14)
    phase = 2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    g = np.broadcast_to(_REST, (num_frames, 16, 3)).copy()
    g *= rng.uniform(0.9, 1.1)
    swing = rng.uniform(0.15, 0.35)
    for joints, sign in (((5, 6, 14, 15), 1.0), ((8, 9, 11, 12), -1.0)):
        for j in joints:
            g[:, j, 2] += sign * swing * np.sin(phase[:, 0]) * (0.6 if j in (5, 8, 11, 14) else 1.0)
    g += rng.normal(0, noise, g.shape)
    for foot, sign in ((12, 1.0), (15, -1.0)):  # flat contact plateau: exact repeated foot heights
        g[:, foot, 1] = 0.08 + 0.06 * np.maximum(0.0, sign * np.sin(phase[:, 0]))
    g[:, :, 2] -= 1.2 * DT * t  # forward progress
    return g


def _rotation_y(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rotate_y(g, theta):
    """Rotation about Y written per coordinate, so the heights are bit-identical."""
    r = _rotation_y(theta)
    out = g.copy()
    out[..., 0] = r[0, 0] * g[..., 0] + r[0, 2] * g[..., 2]
    out[..., 2] = r[2, 0] * g[..., 0] + r[2, 2] * g[..., 2]
    return out


# ----------------------------------------------------------------------------- plain per-frame reference loops

def _ang(u, v):
    return np.degrees(np.arccos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))


def ref_posture(g, official):
    """Features 0-11, one frame at a time, straight from the spec table."""
    rows = []
    for f in g:
        if official:
            lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
            for j in range(16):
                for c in range(3):
                    if f[j, c] < lo[c]:
                        lo[c] = f[j, c]
                    elif f[j, c] > hi[c]:
                        hi[c] = f[j, c]
            with np.errstate(invalid="ignore"):
                vol = np.prod(hi - lo) / 1000
        else:
            vol = np.prod(f.max(0) - f.min(0)) / 1000
        row = [vol, _ang(f[4] - f[2], f[7] - f[2]), _ang(f[2] - f[4], f[7] - f[4]), _ang(f[2] - f[7], f[4] - f[7]),
               _ang(f[3] - f[0], np.array([0.0, 1.0, 0.0])), _ang(f[3] - f[2], f[1] - f[2])]
        row += [np.linalg.norm(f[j] - f[0]) / 10 for j in (6, 9, 12, 15)]
        for a, b, c in ((f[9], f[2], f[6]), (f[15], f[0], f[12])):
            if official:
                x, y, z = np.linalg.norm(a - b), np.linalg.norm(b - c), np.linalg.norm(c - a)
                s = (x + y + z) / 2
                with np.errstate(invalid="ignore"):
                    row.append(np.sqrt(s * (s - x) * (s - y) * (s - z)) / 100)
            else:
                row.append(np.linalg.norm(np.cross(b - a, c - a)) / 2 / 100)
        rows.append(row)
    return np.mean(np.array(rows), axis=0)


def ref_motion(g, dt):
    """Features 12-26: speed, acceleration and jerk magnitudes of joints 6, 9, 3, 12, 15, frame by frame."""
    out = []
    for order in (1, 2, 3):
        for j in aff.SPEED_JOINTS:
            vals = []
            for t in range(order, len(g)):
                if order == 1:
                    d = (g[t, j] - g[t - 1, j]) / dt
                elif order == 2:
                    d = ((g[t, j] - g[t - 1, j]) - (g[t - 1, j] - g[t - 2, j])) / dt / dt
                else:
                    v = [(g[k, j] - g[k - 1, j]) / dt for k in (t - 2, t - 1, t)]
                    d = ((v[2] - v[1]) / dt - (v[1] - v[0]) / dt) / dt
                vals.append(np.linalg.norm(d) / 10)
            out.append(np.mean(vals))
    return np.array(out)


def _strikes(y):
    return [i for i in range(1, len(y) - 1) if y[i] <= y[i - 1] and y[i] <= y[i + 1]]


def ref_stride(g, dt, official):
    """Features 27-28 with Python lists of strike frames."""
    a, b = _strikes(g[:, 12, 1]), _strikes(g[:, 15, 1])
    extra = 1 if official else 0
    if len(a) > 1 and len(b) > 1:
        gap = np.mean(list(np.diff(a)) + list(np.diff(b)))
    elif len(a) > 1:
        gap = np.mean(np.diff(a)) + extra
    elif len(b) > 1:
        gap = np.mean(np.diff(b)) + extra
    else:
        gap = len(g)
    if official:
        return np.array([gap, gap * dt])
    seps = [np.linalg.norm(g[t, 12, [0, 2]] - g[t, 15, [0, 2]]) for t in a + b]
    if not seps:
        seps = [np.linalg.norm(g[t, 12, [0, 2]] - g[t, 15, [0, 2]]) for t in range(len(g))]
    return np.array([2 * np.mean(seps), gap * dt])


def reference_features(g, official, dt=DT):
    return np.concatenate([ref_posture(g, official), ref_motion(g, dt), ref_stride(g, dt, official)])


def _features(g, official=False):
    return np.asarray(aff.affective_features(g, official=official))


def _features_official(g):
    return _features(g, official=True)


# ----------------------------------------------------------------------------- golden (official code)

@pytest.mark.parametrize("key,stride", [("features27", False), ("features29", True)])
def test_official_matches_golden_float32(golden, key, stride):
    out = np.asarray(aff.affective_features(golden["gaits"], official=True, stride=stride))
    assert out.dtype == np.float32 and out.shape == golden[key].shape
    np.testing.assert_allclose(out, golden[key], rtol=golden_tolerance(2e-6, 2e-4), atol=0)  # 2.9e-7 on XLA:CPU
    if stride:  # discrete: the strike rule must give the same frames (another frame changes the value by >= 1 %;
        # 2-4 ulp of slack for GPU division, which is not correctly rounded: XLA:CPU gives the official bits exactly)
        np.testing.assert_allclose(out[:, 27], golden[key][:, 27].astype(np.float32), rtol=2.5e-7, atol=0)


@pytest.fixture(scope="module")
def golden_f64(golden):
    """Official and fixed features of the golden gaits computed in float64 (x64 only inside this block)."""
    with jax.enable_x64(True):
        gaits = golden["gaits"].astype(np.float64)
        return {mode: np.asarray(aff.affective_features(gaits, official=mode == "official"))
                for mode in ("official", "fixed")}


def test_official_matches_golden_float64(golden, golden_f64):
    out = golden_f64["official"]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, golden["features29"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(out[:, :27], golden["features27"], rtol=1e-9, atol=0)
    np.testing.assert_array_equal(out[:, 27], golden["features29"][:, 27])


@pytest.mark.parametrize("key", ["normalized27", "normalized29"])
def test_normalized_matches_golden(golden, key):
    feats = aff.affective_features(golden["gaits"], official=True, stride=key.endswith("29"))
    out = aff.normalize(feats, aff.fit_normalizer(feats))
    np.testing.assert_allclose(np.asarray(out), golden[key], atol=golden_tolerance(1e-5, 2e-4), rtol=0)  # 1.7e-6


def test_float32_features_are_as_accurate_as_the_official_float32_run(golden):
    """The official code fed float32 frames (``features29_from_float32_input``) is off the exact (float64) value
    by float32 rounding; stepjax in float32 must stay at that noise floor, feature by feature (error scaled by
    the feature's largest magnitude; measured: at most 2.3e-7 against the official run's 2.6e-7)."""
    out = np.asarray(aff.affective_features(golden["gaits"].astype(np.float32), official=True, stride=True))
    exact = golden["features29"]
    scale = np.abs(exact).max(0)
    ours = np.abs(out - exact).max(0) / scale
    official = np.abs(golden["features29_from_float32_input"] - exact).max(0) / scale
    bound = golden_tolerance(4, 100) * np.maximum(official, np.finfo(np.float32).eps)
    assert np.all(ours <= bound), np.flatnonzero(ours > bound)


def test_fixed_volume_is_true_bbox_and_official_bug_is_emulated(golden, golden_f64):
    fixed = golden_f64["fixed"]
    np.testing.assert_allclose(fixed[:, 0], golden["volume_correct_bbox"], rtol=1e-12)
    buggy = golden["volume_bug_frames"] > 0
    assert buggy.any()
    official = golden["features29"][:, 0]
    assert np.all(np.abs(official[buggy] - golden["volume_correct_bbox"][buggy]) > 1e-3 * np.abs(official[buggy]))


def test_fixed_equals_official_where_official_is_correct(golden, golden_f64):
    """Features 1-26 only change numerically (atan2 angles, cross-product areas, safe norms)."""
    fixed = golden_f64["fixed"]
    np.testing.assert_allclose(fixed[:, 1:27], golden["features29"][:, 1:27], rtol=1e-9)
    np.testing.assert_allclose(fixed[:, 28], golden["features29"][:, 28], rtol=1e-12)  # both feet have strikes
    assert np.all((fixed[:, 27] > 0.1) & (fixed[:, 27] < 2.0))  # metres, not frames


# ----------------------------------------------------------------------------- reference loops on random inputs

_KINDS = ("walk", "noise", "feet_monotone", "one_foot", "plateaus", "decreasing_joints")


def _random_gait(seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.normal(0, 0.3, (T_SMALL, 16, 3)) + rng.normal(0, 1, 3)
    g = synthetic_walk(rng)
    if kind == "feet_monotone":  # no strikes at all -> T frames
        g[:, 12, 1] = np.linspace(0.3, 0.1, T_SMALL)
        g[:, 15, 1] = np.linspace(0.1, 0.3, T_SMALL)
    elif kind == "one_foot":  # only one foot has >= 2 strikes -> the +1 fallback
        g[:, 12 if seed % 2 else 15, 1] = np.linspace(0.3, 0.1, T_SMALL)
    elif kind == "plateaus":  # quantised heights: many flat minima
        g[:, [12, 15], 1] = np.round(g[:, [12, 15], 1] * 20) / 20 + np.round(rng.uniform(0, 3, (T_SMALL, 2))) / 20
    elif kind == "decreasing_joints":  # every joint lowers the running min: the official max stays -inf
        g[: T_SMALL // 2] = -np.cumsum(rng.uniform(0.01, 0.2, (T_SMALL // 2, 16, 3)), axis=1)
    return g


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(_KINDS), official=st.booleans())
def test_vectorised_matches_reference_loops(seed, kind, official):
    g = _random_gait(seed, kind)
    want = reference_features(g, official)
    with jax.enable_x64(True):
        got = np.asarray(_features(g, official))
    assert got.shape == (29,)
    for name, sl in (("posture", slice(0, 12)), ("motion", slice(12, 27)), ("stride", slice(27, 29))):
        np.testing.assert_allclose(got[sl], want[sl], rtol=1e-8, atol=1e-12, equal_nan=True,
                                   err_msg=f"{name} features, kind={kind}, official={official}")


@pytest.mark.parametrize("official", [True, False])
def test_other_frame_rates_and_tied_coordinates_match_reference_loops(official):
    """``time_step`` enters the motion and stride features as in the loops (speed, acceleration, jerk and cycle
    time at 60 fps), and coordinates on a coarse grid (exact ties with the official loop's running minimum, its
    ``elif``) give the loops' volume."""
    g = synthetic_walk(np.random.default_rng(3))
    coarse = np.round(synthetic_walk(np.random.default_rng(4)) * 10) / 10  # a 10 cm grid
    prefix_min = np.minimum.accumulate(coarse, axis=1)[:, :-1]
    assert np.sum(coarse[:, 1:] == prefix_min) > 100  # joints equal to the running minimum: the loop's elif
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(aff.affective_features(g, official=official, time_step=1 / 60)),
                                   reference_features(g, official, dt=1 / 60), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(_features(coarse, official), reference_features(coarse, official),
                                   rtol=1e-8, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("official", [True, False])
def test_stride_rule_cases(official):
    """Hand-checked strike cases: plateau frames all count, pooled gaps, one-foot and no-foot fallbacks."""
    g = synthetic_walk(np.random.default_rng(0), num_frames=12)
    down = np.linspace(0.3, 0.1, 12)
    dips = np.array([3, 2, 1, 2, 3, 2, 1, 1, 2, 3, 2, 3], float) / 10  # strikes at 2, 6, 7, 10
    other = np.array([1, 2, 3, 2, 3, 3, 2, 3, 3, 2, 1, 2], float) / 10  # strikes at 3, 6, 10
    single = np.array([3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9], float) / 10  # one strike (at 2): no gap of its own
    cases = [
        (dips, other, (8 + 7) / (3 + 2)),  # both feet: all gaps pooled
        (dips, down, 8 / 3 + (1 if official else 0)),
        (down, other, 7 / 2 + (1 if official else 0)),
        (down, down[::-1], 12.0),
        (single, down, 12.0),  # no foot with two strikes
        (single, other, 7 / 2 + (1 if official else 0)),
    ]
    with jax.enable_x64(True):
        for y12, y15, gap in cases:
            h = g.copy()
            h[:, 12, 1], h[:, 15, 1] = y12, y15
            out = np.asarray(_features(h, official))
            np.testing.assert_allclose(out[28], gap * DT, rtol=1e-12)
            if official:
                np.testing.assert_allclose(out[27], gap, rtol=1e-12)
            elif y12 is down and y15 is not other:  # no strike at all: the feet's distance over every frame
                sep = np.linalg.norm(h[:, 12, [0, 2]] - h[:, 15, [0, 2]], axis=-1)
                np.testing.assert_allclose(out[27], 2 * sep.mean(), rtol=1e-12)


# ----------------------------------------------------------------------------- fixed-mode invariances

@pytest.fixture(scope="module")
def walks():
    rng = np.random.default_rng(7)
    return np.stack([synthetic_walk(rng) for _ in range(4)]).astype(np.float32)


def _close(a, b, **kw):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **{"rtol": 2e-4, "atol": 2e-5, **kw})


def test_fixed_invariant_to_translation(walks):
    base = _features(walks)
    shift = np.random.default_rng(1).uniform(-2, 2, (4, 1, 1, 3)).astype(np.float32)
    _close(_features(walks + shift), base)


def test_fixed_invariant_to_rotation_about_y(walks):
    base = np.asarray(_features(walks))
    rng = np.random.default_rng(2)
    rotated = np.stack([_rotate_y(w, rng.uniform(0, 2 * np.pi)) for w in walks])
    out = np.asarray(_features(rotated))
    _close(out[:, 1:], base[:, 1:])
    assert not np.allclose(out[:, 0], base[:, 0], rtol=1e-3)  # the axis-aligned box is heading-dependent ...
    quarter = np.stack([_rotate_y(w, k * np.pi / 2) for w, k in zip(walks, (1, 2, 3, 1))])
    _close(_features(quarter), base)  # ... but invariant to quarter turns


def test_official_stride_is_mirror_symmetric(walks):
    base = np.asarray(_features_official(walks))
    _close(_features_official(mirror(walks))[:, 27:], base[:, 27:], rtol=0, atol=0)


def test_fixed_mirror_swaps_left_right_pairs(walks):
    base = np.asarray(_features(walks))
    out = np.asarray(_features(mirror(walks)))
    perm = list(aff.FEATURE_MIRROR_PERMUTATION)
    assert perm != list(range(29)) and sorted(perm) == list(range(29))
    _close(out, base[:, perm])
    assert not np.allclose(out[:, 6:8], base[:, 6:8], rtol=1e-3)  # the pairs really differ on this data
    names = [aff.FEATURE_NAMES[i] for i in perm]
    for a, b in zip(aff.FEATURE_NAMES, names):
        assert a.replace("left", "?").replace("right", "?") == b.replace("left", "?").replace("right", "?")


# ----------------------------------------------------------------------------- jit, vmap, gradients, API

@pytest.mark.parametrize("official", [True, False])
def test_jit_and_vmap_match_eager(walks, official):
    eager = np.asarray(aff.affective_features(walks, official=official))
    fn = functools.partial(aff.affective_features, official=official)
    _close(jax.jit(fn)(jnp.asarray(walks)), eager, rtol=1e-6, atol=1e-7)
    _close(jax.vmap(fn)(jnp.asarray(walks)), eager, rtol=1e-6, atol=1e-7)
    if not official:  # (the official 27-feature variant is checked on the golden file)
        short = aff.affective_features(walks, stride=False)
        assert short.shape == (4, 27)
        _close(short, eager[:, :27], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("official", [True, False])
def test_chunked_batches_match_single_gaits(walks, official):
    """Large batches run in cache-sized ``lax.map`` chunks plus a remainder; any leading shape gives the same
    numbers as one gait at a time (``vmap`` hides the batch, so each gait takes the unchunked path)."""
    rng = np.random.default_rng(3)
    n = 2 * aff._CHUNK + 6  # two whole chunks and a remainder
    batch = walks[rng.integers(0, len(walks), n)] + rng.normal(0, 0.01, (n,) + walks.shape[1:])
    fn = functools.partial(aff.affective_features, official=official)
    one_by_one = np.asarray(jax.vmap(fn)(jnp.asarray(batch)))
    _close(fn(batch), one_by_one, rtol=1e-6, atol=1e-6)
    _close(fn(batch.reshape((2, n // 2) + batch.shape[1:])), one_by_one.reshape(2, n // 2, -1), rtol=1e-6, atol=1e-6)
    _close(fn(batch[:6].reshape((2, 3) + batch.shape[1:])), one_by_one[:6].reshape(2, 3, -1), rtol=1e-6, atol=1e-6)
    if not official:
        _close(aff.affective_features(batch, stride=False), one_by_one[:, :27], rtol=1e-6, atol=1e-6)
        weights = jnp.asarray(rng.normal(size=one_by_one.shape), jnp.float32)  # gradients through the lax.map too
        loss = lambda g, f: jnp.sum(f(g) * weights)  # noqa: E731
        chunked = jax.jit(jax.grad(lambda g: loss(g, fn)))(jnp.asarray(batch))  # jitted: eager grads run op by op
        single = jax.jit(jax.grad(lambda g: loss(g, jax.vmap(fn))))(jnp.asarray(batch))
        scale = float(jnp.max(jnp.abs(single)))  # jerk terms carry 1/dt^3: compare relative to the largest entry
        _close(chunked, single, rtol=1e-4, atol=1e-5 * scale)


def _degenerate(walk):
    g = walk.copy()
    g[:, 4] = g[:, 2]  # shoulder on the neck: zero-length angle vectors
    g[:, 15] = g[:, 12]  # both feet in one place: zero area, zero foot separation
    g[:, 6] = g[:, 0]  # hand on the root: zero distance
    g[:, 9] = g[0, 9]  # a motionless hand: zero speed
    return g


_GRAD = jax.jit(jax.grad(lambda g: jnp.sum(aff.affective_features(g))))


def test_fixed_gradients_are_finite(walks):
    for g in (walks[0], _degenerate(walks[1]), np.broadcast_to(walks[2, :1], walks[2].shape).copy()):
        grad = np.asarray(_GRAD(jnp.asarray(g)))
        assert np.all(np.isfinite(grad)), np.argwhere(~np.isfinite(grad))[:5]
        assert np.all(np.isfinite(np.asarray(_features(g))))
    # the official formulas are undefined there (documented NaNs), the fixed ones are not: a zero-length vector's
    # angle is 0 degrees (documented), here every frame's shoulder angles
    assert np.isnan(np.asarray(_features_official(_degenerate(walks[1])))[[1, 2]]).all()
    assert np.all(np.asarray(_features(_degenerate(walks[1])))[[1, 2]] == 0.0)


def test_official_gradients_are_finite_where_the_values_are(walks):
    """The official formulas keep their values (NaN for a zero-length angle vector, documented) but their
    gradients are finite wherever the value is: a joint held still (zero velocity), a static gait, the head
    straight above the root (a 0-degree angle), a flat feet-root triangle; and a NaN-valued angle does not turn
    the gradients of the other features NaN (the square roots' infinite slopes at 0 met zero cotangents)."""
    w = walks[0].copy()
    held = w.copy()
    held[30:32, 6] = held[30:31, 6]  # a hand still for one frame pair
    head_up = w.copy()
    head_up[:, 3] = head_up[:, 0] + np.float32([0, 0.55, 0])
    flat = w.copy()
    flat[:, 12] = flat[:, 0] + np.float32([-0.1, -0.8, 0])
    flat[:, 15] = flat[:, 0] + np.float32([0.1, 0.8, 0])
    static = np.broadcast_to(w[:1], w.shape).copy()
    jac = jax.jit(jax.jacrev(lambda g: aff.affective_features(g, official=True)))
    for name, g in dict(held=held, head_up=head_up, flat=flat, static=static, degenerate=_degenerate(w)).items():
        values = _features_official(g)
        rows = np.asarray(jac(jnp.asarray(g)))[np.isfinite(values)]
        assert np.isfinite(rows).all(), (name, np.flatnonzero(~np.isfinite(rows).all(axis=(1, 2, 3))))
        if name == "degenerate":
            assert np.isnan(values[[1, 2]]).all() and np.isfinite(values[3:]).all()


@pytest.mark.parametrize("official", [True, False])
def test_non_finite_padding_reaches_neither_the_features_nor_their_gradients(official):
    rng = np.random.default_rng(2)
    g = synthetic_walk(rng, num_frames=20).astype(np.float32)
    padded = np.concatenate([g, np.full((6, 16, 3), np.nan, np.float32)])[None]
    padded[0, -1] = np.inf
    lengths = np.array([20])
    fn = lambda x: aff.affective_features(x, lengths, official=official)  # noqa: E731
    _close(fn(padded), _features(g[None], official), rtol=1e-5, atol=1e-5)
    grad = np.asarray(jax.grad(lambda x: jnp.sum(fn(x)))(jnp.asarray(padded)))
    assert np.isfinite(grad).all() and not grad[0, 20:].any()  # padding is never read
    np.testing.assert_allclose(grad[0, :20], np.asarray(jax.grad(lambda x: jnp.sum(
        aff.affective_features(x, official=official)))(jnp.asarray(g[None])))[0], rtol=1e-4, atol=1e-4)


def test_fixed_gradients_match_finite_differences():
    """Values, not just finiteness: d(w . features)/d(gait) against central differences, in float64, on a generic
    walk (no ties in the strike rule, so the features are differentiable there)."""
    rng = np.random.default_rng(11)
    g = synthetic_walk(rng, noise=0.02)
    for foot in (12, 15):  # break the flat contact plateaus: a tie moves a strike under a tiny perturbation
        g[:, foot, 1] += rng.uniform(0, 1e-3, T_SMALL)
    with jax.enable_x64(True):
        w = jnp.asarray(rng.normal(size=29))
        scalar = jax.jit(lambda x: jnp.sum(aff.affective_features(x) * w))
        x = jnp.asarray(g, jnp.float64)
        grad = np.asarray(jax.grad(scalar)(x))
        eps = 1e-6
        for idx in [tuple(int(i) for i in rng.integers((T_SMALL, 16, 3))) for _ in range(40)]:
            e = np.zeros_like(g)
            e[idx] = eps
            fd = (float(scalar(x + e)) - float(scalar(x - e))) / (2 * eps)
            np.testing.assert_allclose(grad[idx], fd, rtol=1e-5, atol=1e-6 * np.abs(grad).max(), err_msg=str(idx))
        # every joint group moves the features: the speed/acceleration/jerk joints and the distance joints too
        per_feature = np.abs(np.asarray(jax.jacrev(aff.affective_features)(x))).sum(axis=(1, 2, 3))
        assert np.all(per_feature[:27] > 0), np.flatnonzero(per_feature[:27] == 0)


# ----------------------------------------------------------------------------- variable-length gaits

@pytest.mark.parametrize("official", [True, False])
def test_lengths_give_the_features_of_the_untiled_gaits(official):
    """Gaits tiled to a common length (the official loader's padding) with ``lengths`` = their real frames have
    the features of the real frames alone (the official code computes them before padding), through the chunked
    path (a batch larger than one chunk), ``jit`` and ``vmap``; without ``lengths`` the wrap jumps change them."""
    from stepjax.data.preprocess import tile_to_length

    rng = np.random.default_rng(5)
    n, t = aff._CHUNK + 5, 40
    # a few distinct lengths: the reference computes each gait on its own, one compilation per length
    lengths = rng.choice([aff.MIN_FRAMES, 5, 9, 17, 26, 33, t], n)
    lengths[:3] = (aff.MIN_FRAMES, t, 9)
    walks = [synthetic_walk(rng, num_frames=int(k)).astype(np.float32) for k in lengths]
    tiled = np.stack([tile_to_length(w, t) for w in walks])
    fn = functools.partial(aff.affective_features, official=official)
    expected = np.stack([np.asarray(fn(w)) for w in walks])
    _close(fn(tiled, lengths), expected, rtol=1e-5, atol=1e-5)
    _close(jax.jit(fn)(tiled, lengths), expected, rtol=1e-5, atol=1e-5)
    _close(jax.vmap(fn)(tiled, lengths), expected, rtol=1e-5, atol=1e-5)
    _close(fn(tiled, np.full(n, t)), fn(tiled), rtol=1e-5, atol=1e-5)
    short = lengths < t
    assert not np.allclose(np.asarray(fn(tiled))[short, 17:27], expected[short, 17:27], rtol=1e-2)


@pytest.mark.parametrize("lengths,match", [(np.full(3, 3), r"\[4, T=12\]"), (np.full(3, 13), r"\[4, T=12\]"),
                                           (np.full(2, 8), "batch shape"), (np.full(3, 8.0), "integers")])
def test_bad_lengths_raise(lengths, match):
    with pytest.raises(ValueError, match=match):
        aff.affective_features(np.zeros((3, T_SMALL, 16, 3), np.float32), lengths)


@pytest.mark.parametrize("official", [True, False])
def test_a_non_finite_coordinate_makes_the_gaits_features_nan(official):
    """min/max and comparisons skip NaN, so a NaN hand once gave finite features; now the whole row is NaN,
    eagerly, under jit and through the chunked path, and only for real frames (not the padding past lengths)."""
    rng = np.random.default_rng(4)
    n, t = aff._CHUNK + 3, 30
    g = np.stack([synthetic_walk(rng, num_frames=t) for _ in range(n)]).astype(np.float32)
    g[1, 5, 6, 0] = np.nan  # a hand in a real frame
    g[n - 1, 0, 0, 1] = np.inf  # the root, in the remainder past the chunks
    g[2, t - 1, 3, 2] = np.nan  # the head in the last frame, a padding frame for lengths = t - 1
    g[4, t - 2, 3, 2] = np.nan  # the head in the last real frame for lengths = t - 1
    fn = functools.partial(aff.affective_features, official=official)
    for out in (fn(g), jax.jit(fn)(g)):
        out = np.asarray(out)
        assert np.all(np.isnan(out[[1, 2, 4, n - 1]]))
        assert np.all(np.isfinite(out[[0, 3, n - 2]]))
    with_len = np.asarray(fn(g, np.full(n, t - 1)))
    assert np.all(np.isfinite(with_len[2])) and np.all(np.isnan(with_len[[1, 4]]))


def test_traced_lengths_out_of_range_are_clipped():
    """Inside the caller's jit lengths cannot be checked: 0 would give NaN features and more than T a mean
    diluted by the padding frames; they are clipped to [4, T] instead."""
    g = synthetic_walk(np.random.default_rng(2)).astype(np.float32)[None].repeat(3, 0)
    t = g.shape[1]
    got = jax.jit(aff.affective_features)(g, jnp.array([0, 2 * t, 7]))
    _close(got, aff.affective_features(g, np.array([aff.MIN_FRAMES, t, 7])), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="lengths must be integers, got dtype float32"):  # static: checked
        jax.jit(aff.affective_features)(g, jnp.array([12.7, 19.9, 7.0]))  # (once truncated to 12, 19, 7)


@pytest.mark.parametrize("shape", [(12, 16, 2), (12, 48), (16, 3), (12, 15, 3), (3, 16, 3), (2, 0, 16, 3)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match=r"\(.*\)"):
        aff.affective_features(np.zeros(shape, np.float32))


def test_integer_input_and_names():
    out = aff.affective_features(np.ones((T_SMALL, 16, 3), np.int32))
    assert jnp.issubdtype(out.dtype, jnp.floating) and out.shape == (29,)
    assert len(aff.FEATURE_NAMES) == 29 and len(set(aff.FEATURE_NAMES)) == 29
    assert aff.FEATURE_NAMES[2] == "left_shoulder_angle" and aff.FEATURE_NAMES[12] == "left_hand_speed"


def test_normalizer_fits_train_only():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(20, 29)).astype(np.float32)
    train[:, 5] = 4.0  # constant feature
    train[:, 6] = np.float32(90.0) + rng.choice([0.0, 7.6e-6], 20)  # constant up to float32 rounding (1 ulp)
    train[:, 7] = 90.0 + rng.normal(size=20) * 0.01  # varies: normalised as usual
    test = rng.normal(size=(6, 29)).astype(np.float32) * 3
    norm = aff.fit_normalizer(train)
    assert float(norm.half_range[6]) == 0 and float(norm.half_range[7]) > 0
    assert isinstance(norm, aff.Normalizer)
    np.testing.assert_allclose(norm.center, (train.max(0) + train.min(0)) / 2, rtol=1e-6)
    tr = np.asarray(aff.normalize(train, norm))
    np.testing.assert_allclose(tr.min(0)[tr.max(0) > 0], -1, atol=1e-3)  # feature 7: 0.03 wide at 90 in float32
    np.testing.assert_allclose(tr.max(0)[tr.max(0) > 0], 1, atol=1e-3)
    assert np.all(tr[:, 5:7] == 0) and np.all(np.asarray(aff.normalize(test, norm))[:, 5:7] == 0)
    te = np.asarray(jax.jit(aff.normalize)(test, norm))  # the normalizer is a pytree
    np.testing.assert_allclose(te, (test - norm.center) / np.where(norm.half_range == 0, 1, norm.half_range)
                               * (norm.half_range != 0), rtol=1e-6)
    assert np.abs(te).max() > 1  # test features are not squeezed into [-1, 1]: no refit on them
    with pytest.raises(ValueError):
        aff.normalize(test[:, :27], norm)
