"""STEP-Gen losses: golden values of the official loss, and properties against naive per-frame loops."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import golden, to_nhwc
from stepjax import losses as L

TERMS = ("rec", "drift", "vel", "acc", "kl")

# A few fixed (N, T, V, Z) shapes (T = 1 and 2 cover the empty velocity / acceleration sums): hypothesis varies
# the values, and every jitted function below compiles once per shape (eager dispatch would compile every op).
SHAPES = [(1, 1, 1, 1), (1, 2, 16, 3), (2, 3, 2, 5), (3, 9, 16, 4)]
shapes = st.sampled_from(SHAPES)

_loss = jax.jit(L.generator_loss, static_argnames="official")
_kl = jax.jit(L.kl_divergence, static_argnames="official")


@jax.jit
def _regularisers(x, x_hat):
    """(reconstruction, {(name, official): collapse / drift term})."""
    return L.reconstruction_loss(x, x_hat), {
        (name, official): fn(x, x_hat, official=official)
        for name, fn in (("collapse", L.collapse_loss), ("drift", L.drift_loss)) for official in (False, True)}


@jax.jit
def _all_terms(x, x_hat, mu, logvar, lam):
    """generator_loss in both normalisations with weights ``lam``, the standalone terms, and the KL."""
    modes = (False, True)
    return ({official: L.generator_loss(x, x_hat, mu, logvar, official=official, **lam) for official in modes},
            _regularisers(x, x_hat), {official: L.kl_divergence(mu, logvar, official=official) for official in modes})


@jax.jit
def _grads(x, x_hat, mu, logvar):
    """Gradients of the total loss w.r.t. (x_hat, mu, logvar), for official False and True."""
    return [jax.grad(lambda *a: L.generator_loss(x, *a, official=official)[0], argnums=(0, 1, 2))(x_hat, mu, logvar)
            for official in (False, True)]


@pytest.fixture(scope="module")
def pairs():
    with golden("losses.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_official_loss_matches_golden(pairs, x64):
    rtol = 1e-10 if x64 else 1e-5
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        for k in range(int(pairs["K"])):
            arr = lambda name: jnp.asarray(pairs[f"{name}_{k}"], dtype)
            total, parts = _loss(jnp.asarray(to_nhwc(pairs[f"x_in_{k}"]), dtype),
                                 jnp.asarray(to_nhwc(pairs[f"x_out_{k}"]), dtype),
                                 arr("mu"), arr("logvar"), official=True)
            assert total.dtype == dtype
            between = parts["rec"] + parts["drift"] + parts["collapse"]
            np.testing.assert_allclose(between, pairs["between_frame_loss_f64"][k], rtol=rtol)
            for ours, ref in (("rec", "rec"), ("drift", "anchor"), ("vel", "vel"), ("acc", "acc")):
                np.testing.assert_allclose(parts[ours], pairs[ref][k], rtol=rtol, err_msg=f"pair {k} {ref}")
            np.testing.assert_allclose(parts["kl"], pairs["kld_f64"][k], rtol=1e-6 if not x64 else 1e-10)
            np.testing.assert_allclose(total, pairs["between_frame_loss_f64"][k] + pairs["kld_f64"][k], rtol=rtol)
            # the official float32 loop itself is only good to ~5e-6 relative
            np.testing.assert_allclose(total, pairs["vae_loss"][k], rtol=2e-5)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_official_vae_loss_of_cvae_reconstruction(x64):
    d = golden("cvae_io.npz")
    ref = d["vae_loss_reparam_components_f64"]
    rtol = 1e-10 if x64 else 1e-5
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        total, parts = _loss(jnp.asarray(to_nhwc(d["model_input"]), dtype),
                             jnp.asarray(to_nhwc(d["decoded_reparam"]), dtype),
                             jnp.asarray(d["mu"], dtype), jnp.asarray(d["logvar"], dtype), official=True)
        np.testing.assert_allclose([parts[t] for t in TERMS], ref, rtol=rtol)
        np.testing.assert_allclose(total, ref.sum(), rtol=rtol)
    np.testing.assert_allclose(total, d["vae_loss_reparam"], rtol=2e-4)  # official float32 loop: ~1e-4


# ---- naive references: explicit loops over (sample, frame[, anchor]) on (N, T, 48) joint-major frames ----

def _naive(x, x_hat, mu, logvar):
    n, t = x.shape[:2]
    d = (np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)).reshape(n, t, -1)
    f = d.shape[-1]
    rec = vel = acc = drift = 0.0
    anchors = (0, int(t / 2) - 1, t - 1)
    for i in range(n):
        for j in range(t):
            rec += float(np.sum(d[i, j] ** 2))
            if j >= 1:
                vel += float(np.sum((d[i, j] - d[i, j - 1]) ** 2))
            if j >= 2:
                acc += float(np.sum((d[i, j] - 2 * d[i, j - 1] + d[i, j - 2]) ** 2))
            for a in anchors:
                drift += float(np.mean((d[i, j] - d[i, a]) ** 2))
    kl = 0.0
    for m, lv in zip(np.asarray(mu, np.float64).ravel(), np.asarray(logvar, np.float64).ravel()):
        kl += -0.5 * (1 + lv - m * m - np.exp(lv))
    official = dict(rec=rec / (n * t * f), drift=drift, vel=vel, acc=acc, kl=kl)
    mean = dict(rec=rec / (n * t * f), drift=drift / (n * t * 3), vel=vel / max(n * (t - 1) * f, 1),
                acc=acc / max(n * (t - 2) * f, 1), kl=kl / np.size(mu))
    return official, mean


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), near=st.booleans())
def test_terms_equal_naive_loops(shape, seed, near):
    n, t, v, z = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, v, 3))
    x_hat = x + rng.normal(scale=0.05 if near else 1.0, size=x.shape)
    mu, logvar = rng.normal(size=(n, z)), rng.normal(scale=0.5, size=(n, z))
    ref_official, ref_mean = _naive(x, x_hat, mu, logvar)
    lam = dict(lambda_collapse=rng.uniform(0, 3), lambda_drift=rng.uniform(0, 3), beta=rng.uniform(0, 3))
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (x, x_hat, mu, logvar)]
        losses, (rec, reg), kl = _all_terms(*args, lam)
        for official, ref in ((True, ref_official), (False, ref_mean)):
            total, parts = losses[official]
            for term in TERMS:
                np.testing.assert_allclose(parts[term], ref[term], rtol=1e-10, err_msg=term)
            expected = (ref["rec"] + lam["lambda_collapse"] * (ref["vel"] + ref["acc"])
                        + lam["lambda_drift"] * ref["drift"] + lam["beta"] * ref["kl"])
            np.testing.assert_allclose(total, expected, rtol=1e-10)
            # the standalone functions are the same terms
            np.testing.assert_allclose(reg["collapse", official], ref["vel"] + ref["acc"], rtol=1e-10)
            np.testing.assert_allclose(reg["drift", official], ref["drift"], rtol=1e-10)
            np.testing.assert_allclose(kl[official], ref["kl"], rtol=1e-10)
        np.testing.assert_allclose(rec, ref_mean["rec"], rtol=1e-10)
    # float32 with the default weights agrees to float32 precision
    total32, _ = _loss(*[jnp.asarray(a, jnp.float32) for a in (x, x_hat, mu, logvar)])
    expected = (ref_mean["rec"] + L.DEFAULT_LAMBDA_COLLAPSE * (ref_mean["vel"] + ref_mean["acc"])
                + L.DEFAULT_LAMBDA_DRIFT * ref_mean["drift"] + L.DEFAULT_BETA * ref_mean["kl"])
    np.testing.assert_allclose(total32, expected, rtol=2e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_zero_iff_match_up_to_ignored_offset(shape, seed):
    """Collapse and drift ignore a per-(joint, coord) offset constant in time; reconstruction does not.
    Any other change of a single value makes every term positive (T >= 2)."""
    n, t, v, _ = shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, v, 3))
    offset = rng.uniform(0.1, 1.0, size=(n, 1, v, 3)) * rng.choice([-1, 1], size=(n, 1, v, 3))
    with jax.enable_x64(True):
        xj = jnp.asarray(x)
        shifted = xj + offset
        (rec_same, same), (rec_off, off) = _regularisers(xj, xj), _regularisers(xj, shifted)
        assert float(rec_same) == 0.0 and all(float(v) == 0.0 for v in same.values())
        assert float(rec_off) > 1e-3  # reconstruction sees the offset ...
        assert all(float(v) < 1e-25 for v in off.values())  # ... collapse and drift do not
        if t >= 2:
            idx = tuple(int(rng.integers(0, s)) for s in x.shape)
            bumped = np.array(shifted)
            bumped[idx] += rng.choice([-1, 1]) * rng.uniform(0.1, 1.0)
            rec_bumped, bumped_terms = _regularisers(xj, jnp.asarray(bumped))
            assert float(rec_bumped) > 1e-3 and all(float(v) > 1e-6 for v in bumped_terms.values())


@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), same=st.booleans())
def test_gradients_finite(shape, seed, same):
    n, t, v, z = shape
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, t, v, 3)), jnp.float32)
    x_hat = x if same else x + jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    mu = jnp.asarray(rng.normal(size=(n, z)), jnp.float32)
    logvar = jnp.asarray(rng.normal(scale=2.0, size=(n, z)), jnp.float32)
    for grads in _grads(x, x_hat, mu, logvar):
        assert all(bool(jnp.isfinite(g).all()) for g in grads)
        if same:
            assert float(jnp.abs(grads[0]).max()) == 0.0


@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_kl_zero_only_at_prior(shape, seed):
    n, z = shape[0], shape[3]
    zeros = jnp.zeros((n, z))
    for official in (False, True):
        assert float(_kl(zeros, zeros, official=official)) == 0.0
    rng = np.random.default_rng(seed)
    mu = jnp.asarray(rng.normal(size=(n, z)), jnp.float32)
    logvar = jnp.asarray(rng.normal(size=(n, z)), jnp.float32)
    assert float(_kl(mu, logvar, official=False)) > 0.0
    np.testing.assert_allclose(_kl(mu, logvar, official=True), n * z * _kl(mu, logvar, official=False), rtol=1e-5)


def test_defaults_and_baseline_cvae():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 12, 16, 3)), jnp.float32)
    x_hat = x + jnp.asarray(rng.normal(scale=0.1, size=x.shape), jnp.float32)
    mu, logvar = jnp.asarray(rng.normal(size=(2, 32)), jnp.float32), jnp.zeros((2, 32))
    total, p = _loss(x, x_hat, mu, logvar)
    np.testing.assert_allclose(total, p["rec"] + L.DEFAULT_LAMBDA_COLLAPSE * p["collapse"]
                               + L.DEFAULT_LAMBDA_DRIFT * p["drift"] + L.DEFAULT_BETA * p["kl"], rtol=1e-6)
    base, _ = _loss(x, x_hat, mu, logvar, lambda_collapse=0.0, lambda_drift=0.0)  # Baseline-CVAE
    np.testing.assert_allclose(base, p["rec"] + L.DEFAULT_BETA * p["kl"], rtol=1e-6)
    official, q = _loss(x, x_hat, mu, logvar, official=True)  # all weights 1
    np.testing.assert_allclose(official, q["rec"] + q["drift"] + q["vel"] + q["acc"] + q["kl"], rtol=1e-6)
    assert set(p) == set(q) == {"rec", "drift", "vel", "acc", "collapse", "kl", "total"}
    # the documented derivation: the official summed loss over its drift weight 3NT is drift + 16(T-1)/T collapse
    # + 32/(3T) KL; the defaults are those at the official T = 75, rounded (within 2 %)
    assert L.DEFAULT_LAMBDA_COLLAPSE == pytest.approx(16 * 74 / 75, rel=0.02) and L.DEFAULT_LAMBDA_DRIFT == 1.0
    assert L.DEFAULT_BETA == pytest.approx(32 / (3 * 75), rel=0.02)
    assert L.default_loss_weights(official=True) == (1.0, 1.0, 1.0)
    from stepjax.training.fit_generator import loss_weights  # what training uses: the same defaults

    for official in (False, True):
        weights = loss_weights(ml_collections.ConfigDict(dict(loss=dict(official=official, beta=None))))
        assert weights == dict(zip(("lambda_collapse", "lambda_drift", "beta"), L.default_loss_weights(official)),
                               official=official)
    assert L.anchor_frames(75) == (0, 36, 74) and L.anchor_frames(30) == (0, 14, 29) and L.anchor_frames(1) == (0, 0, 0)
    with pytest.raises(ValueError):
        L.generator_loss(x, x_hat[:, :5], mu, logvar)
    with pytest.raises(AssertionError, match="different shapes"):  # chex, also under jit (static shapes)
        jax.jit(L.kl_divergence)(mu, logvar[:, :16])


def test_classification_loss_checks_its_shapes_under_jit():
    logits, labels = jnp.zeros((3, 4)), jnp.array([0, 1, 3])
    assert float(jax.jit(L.classification_loss)(logits, labels)) == pytest.approx(np.log(4))
    noisy = jax.random.normal(jax.random.key(0), (3, 4))  # a traced (vmapped) smoothing: a sweep in one program
    swept = jax.vmap(lambda s: L.classification_loss(noisy, labels, label_smoothing=s))(jnp.array([0.0, 0.1]))
    np.testing.assert_allclose(swept, [L.classification_loss(noisy, labels, label_smoothing=s) for s in (0.0, 0.1)],
                               rtol=1e-6)
    for bad_logits, bad_labels, match in [(logits, labels[:2], "shape prefixes"), (logits[0], labels, "rank"),
                                          (logits, labels.astype(jnp.float32), "type")]:
        with pytest.raises(AssertionError, match=match):
            jax.jit(L.classification_loss)(bad_logits, bad_labels)
    # a label outside [0, K): a clear error on concrete labels, NaN (not a plausible number) when traced
    for bad, row in (([0, 1, 4], 2), ([0, -1, 2], 1)):
        with pytest.raises(ValueError, match=r"whole numbers in 0\.\.3"):
            L.classification_loss(logits, jnp.array(bad))
        for kwargs in ({}, {"label_smoothing": 0.1}, {"official_double_softmax": True}):
            value, grad = jax.jit(jax.value_and_grad(functools.partial(L.classification_loss, **kwargs)))(
                logits, jnp.array(bad))
            assert np.isnan(float(value)) and np.all(np.isnan(grad[row]))
            assert np.all(np.isfinite(np.delete(np.asarray(grad), row, 0)))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), smoothing=st.sampled_from([0.0, 0.1, 0.3]), double=st.booleans(),
       seed=st.integers(0, 2**16))
def test_classification_loss_matches_a_per_gait_reference(n, smoothing, double, seed):
    """``classification_loss`` = mean over gaits of ``-sum_k t_k log_softmax(z)_k`` with the smoothed targets
    ``t = (1 - a) onehot + a / K``; with ``official_double_softmax`` ``z`` is first replaced by each gait's own
    ``softmax(z)`` (a per-row operation: the batch never mixes). Reference: a float64 loop over gaits."""
    rng = np.random.default_rng(seed)
    k = 4
    logits = rng.normal(scale=3.0, size=(n, k)).astype(np.float32)
    labels = rng.integers(0, k, n)
    want = 0.0
    for z, y in zip(logits.astype(np.float64), labels):
        if double:
            z = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        log_p = z - z.max() - np.log(np.exp(z - z.max()).sum())
        t = (1 - smoothing) * np.eye(k)[y] + smoothing / k
        want -= (t * log_p).sum() / n
    got = L.classification_loss(jnp.asarray(logits), jnp.asarray(labels), label_smoothing=smoothing,
                                official_double_softmax=double)
    assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-6)
