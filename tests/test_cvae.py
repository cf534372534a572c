"""STEP-Gen CVAE: official e105 weights vs the golden outputs of the official code, and the options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import GOLDEN, flat_params, golden, golden_tolerance, require, to_nhwc
from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE, reparameterize, sample_latent, sinusoidal_time_encoding
from stepjax.official import load_official_cvae

OFFICIAL_PARAMS = 876_484


def _count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


@pytest.fixture(scope="module")
def io():
    with golden("cvae_io.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def official():
    return load_official_cvae(require(GOLDEN / "official_cvae_e105.npz"))


@pytest.fixture(scope="module")
def inputs(io):
    return jnp.asarray(to_nhwc(io["model_input"])), jnp.asarray(io["onehot"])


@pytest.fixture(scope="module")
def eval_outputs(official, inputs, io):
    """mu, logvar and the decodings of z, mu, z_gen, z_reparam (one batch of 64) in eval mode."""
    model, variables = official
    x, y = inputs
    mu, logvar = jax.jit(lambda v, x, y: model.apply(v, x, y, method="encode"))(variables, x, y)
    zs = ("z", "mu", "z_gen", "z_reparam")
    z = jnp.concatenate([jnp.asarray(io[k]) for k in zs])
    decoded = jax.jit(lambda v, z, y: model.apply(v, z, y, 75, method="decode"))(variables, z, jnp.tile(y, (4, 1)))
    return mu, logvar, dict(zip(zs, np.split(np.asarray(decoded), 4)))


def test_models_built_with_lists_stay_hashable():
    """jit takes models as static arguments: channel lists (e.g. from JSON) become tuples, equal to the tuple
    spelling, instead of a 'Non-hashable static arguments' error deep inside generate."""
    from stepjax.generation import generate
    from stepjax.models import STEPClassifier

    m = STEPGenCVAE(encoder_channels=[16, 8, 8], decoder_channels=[8, 16, 3], kernel_size=5, latent_dim=8)
    assert m == STEPGenCVAE(encoder_channels=(16, 8, 8), decoder_channels=(8, 16, 3), kernel_size=5, latent_dim=8)
    v = m.init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 16, 3)), jnp.array([0, 1]))
    assert generate(m, v, jnp.array([0, 1]), jax.random.PRNGKey(0), 16).shape == (2, 16, 16, 3)
    c = STEPClassifier(channels=[4, 8, 8], strides=[1, 2, 1], residuals=[True] * 3, kernel_size=3)
    assert hash(c) == hash(c.clone()) and c.channels == (4, 8, 8) and c.residuals == (True,) * 3


def test_param_count_and_tree(official, inputs):
    model, variables = official
    assert _count(variables["params"]) == OFFICIAL_PARAMS
    x, y = inputs
    fresh = jax.eval_shape(lambda: STEPGenCVAE(**OFFICIAL_OPTIONS).init(
        {"params": jax.random.key(0), "sample": jax.random.key(1)}, x[:2], y[:2]))
    assert _count(fresh["params"]) == OFFICIAL_PARAMS
    for col in ("params", "batch_stats"):  # the checkpoint fills exactly the variables of the official config
        assert jax.tree_util.tree_structure(fresh[col]) == jax.tree_util.tree_structure(variables[col])
        assert all(a.shape == b.shape for a, b in zip(jax.tree_util.tree_leaves(fresh[col]),
                                                       jax.tree_util.tree_leaves(variables[col])))
    assert model == STEPGenCVAE(**OFFICIAL_OPTIONS)  # sizes read back from the state_dict = the defaults'
    default = jax.eval_shape(lambda: STEPGenCVAE().init({"params": jax.random.key(0), "sample": jax.random.key(1)},
                                                        x[:2], y[:2]))
    assert _count(default["params"]) == 1_299_139  # the phase-aware default with its joint embedding (README)


def test_golden_encoder(eval_outputs, io):
    mu, logvar, _ = eval_outputs
    # measured (XLA:CPU): 1.0e-7 against float64 (the official float32 run: 1.5e-7)
    tol = golden_tolerance(1e-6, 1e-5)
    np.testing.assert_allclose(mu, io["mu_f64"], rtol=0, atol=tol)
    np.testing.assert_allclose(logvar, io["logvar_f64"], rtol=0, atol=tol)
    np.testing.assert_allclose(mu, io["mu"], rtol=0, atol=tol)


@pytest.mark.parametrize("z_key,ref_keys", [
    ("z", ("decoded_f64", "decoded")),
    ("mu", ("decoded_from_mu",)),
    ("z_gen", ("decoded_gen_f64", "decoded_gen")),
    ("z_reparam", ("decoded_reparam",)),
])
def test_golden_decoder(eval_outputs, io, z_key, ref_keys):
    decoded = eval_outputs[2][z_key]
    assert decoded.shape == (16, 75, 16, 3)
    for ref in ref_keys:
        # measured (XLA:CPU, |x| <= 0.64): at most 2.1e-7 (the official float32 run: 1.6e-7 from float64)
        np.testing.assert_allclose(decoded, to_nhwc(io[ref]), rtol=0, atol=golden_tolerance(1.5e-6, 5e-6), err_msg=ref)


def test_reparameterize_matches_official_order(io):
    z = reparameterize(jnp.asarray(io["mu"]), jnp.asarray(io["logvar"]), jnp.asarray(io["eps"]))
    np.testing.assert_allclose(z, io["z_reparam"], rtol=0, atol=1e-6)


def test_golden_train_mode_bn(official, inputs, io):
    model, variables = official
    x, y = inputs

    @jax.jit
    def run(v):
        (mu, logvar), enc_upd = model.apply(v, x, y, True, method="encode", mutable=["batch_stats"])
        dec, dec_upd = model.apply(v, jnp.asarray(io["z"]), y, 75, True, method="decode", mutable=["batch_stats"])
        return mu, logvar, dec, enc_upd, dec_upd

    mu, logvar, dec, enc_upd, dec_upd = run(variables)
    # measured (XLA:CPU): 4.8e-8, 6.7e-8, 1.8e-7
    np.testing.assert_allclose(mu, io["mu_train_bn"], rtol=0, atol=golden_tolerance(1e-6, 2e-5))
    np.testing.assert_allclose(logvar, io["logvar_train_bn"], rtol=0, atol=golden_tolerance(1e-6, 2e-5))
    np.testing.assert_allclose(dec, to_nhwc(io["decoded_train_bn"]), rtol=0, atol=golden_tolerance(1.5e-6, 2e-5))
    # running statistics move (momentum 0.1 as in PyTorch) in the half that ran
    old = variables["batch_stats"]["encoder"]["data_bn"]["bn"]["mean"]
    new = enc_upd["batch_stats"]["encoder"]["data_bn"]["bn"]["mean"]
    batch_mean = np.concatenate([to_nhwc(io["model_input"]), np.broadcast_to(
        io["onehot"][:, None, None, :], (16, 75, 16, 4))], -1).mean((0, 1))
    np.testing.assert_allclose(new, 0.9 * old + 0.1 * batch_mean, rtol=0, atol=1e-5)
    assert "decoder" in dec_upd["batch_stats"]


def test_official_weights_other_lengths(official, inputs):
    """T != 75 works with the 75-tap kernels ('same' zero padding), for both halves."""
    model, variables = official
    x, y = inputs
    decoded, mu, logvar = jax.jit(lambda v, x, y, k: model.apply(v, x, y, rng=k))(
        variables, x[:3, :40], y[:3], jax.random.key(0))
    assert decoded.shape == (3, 40, 16, 3) and mu.shape == logvar.shape == (3, 32)
    assert np.isfinite(np.asarray(decoded)).all()


@pytest.mark.parametrize("kwargs", [OFFICIAL_OPTIONS, dict(temporal_code="sinusoidal", temporal_pooling="mean",
                                                           joint_embedding=True), {}])
@pytest.mark.parametrize("num_frames", [1, 20, 33, 120])
def test_shapes_any_length(kwargs, num_frames):
    model = STEPGenCVAE(**kwargs)
    x = jnp.zeros((2, num_frames, 16, 3))
    labels = jnp.array([0, 3])  # integer labels are accepted as well
    variables = jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "sample": jax.random.key(1)},
                                                  x, labels))
    out = jax.eval_shape(lambda v: model.apply(v, x, labels, rngs={"sample": jax.random.key(2)}), variables)
    assert [o.shape for o in out] == [(2, num_frames, 16, 3), (2, 32), (2, 32)]
    gen = jax.eval_shape(lambda v: model.apply(v, labels, 50, rngs={"sample": jax.random.key(3)}, method="sample"),
                         variables)
    assert gen.shape == (2, 50, 16, 3)
    if kwargs is not OFFICIAL_OPTIONS:
        assert _count(variables["params"]) > OFFICIAL_PARAMS


# ---- options on small, freshly initialised models ----

SMALL = dict(latent_dim=8, encoder_channels=(8, 8, 8), decoder_channels=(8, 8, 3), kernel_size=9)


def _init(model, n=2, t=40, seed=0):
    """Variables of a freshly initialised model: the structure from ``model.init`` (abstractly), the values
    drawn with numpy like a LeCun-normal init (kernels N(0, 1/fan_in), BN scale 1, biases 0, embeddings
    N(0, 0.02^2)). Compiling ``model.init`` itself costs ~10-20 s of XLA time for its RNG calls on CPU."""
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(n, t, 16, 3)), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(n) % 4, 4)
    shapes = jax.eval_shape(model.init, {"params": jax.random.key(0), "sample": jax.random.key(1)}, x, y)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(leaf.shape[:-1])), leaf.shape)
        elif name in ("scale", "var"):
            value = np.ones(leaf.shape)
        elif name == "joint_embedding":
            value = rng.normal(0.0, 0.02, leaf.shape)
        else:
            value = np.zeros(leaf.shape)
        return jnp.asarray(value, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes), x, y


def test_temporal_code_breaks_time_invariance():
    """Official form: the decoder input is constant in time, so frames farther than the receptive field
    (3 blocks x 4 frames for a 9-tap kernel) from both ends are *identical*: only zero-padding effects make
    motion. With the sinusoidal code the interior frames differ."""
    t, reach = 40, 3 * (9 - 1) // 2
    outs = {}
    for code in ("none", "sinusoidal"):
        model = STEPGenCVAE(**SMALL, temporal_code=code)
        variables, _, y = _init(model, t=t)
        z = jax.random.normal(jax.random.key(5), (2, 8))
        outs[code] = np.asarray(jax.jit(lambda v: model.apply(v, z, y, t, method="decode"))(variables))
    interior = slice(reach, t - reach)
    spread = lambda a: np.abs(a[:, interior] - a[:, interior][:, :1]).max()
    assert spread(outs["none"]) < 1e-6
    assert spread(outs["sinusoidal"]) > 0.1 * np.abs(outs["sinusoidal"]).max()
    assert np.abs(outs["none"][:, 0] - outs["none"][:, t // 2]).max() > 1e-4  # boundary frames do differ


def test_phase_aware_options():
    """With a 1-tap kernel every layer acts frame by frame, so the official mean pooling is blind to the
    order of the frames (a time roll leaves mu unchanged) while ``temporal_pooling='sinusoidal'`` is not;
    the pooled features equal an explicit loop. ``temporal_code='modulated'``: z scales per-latent sinusoids,
    so two latents give decoded motions that are not a constant offset of each other."""
    small = dict(SMALL, kernel_size=1)
    mus = {}
    for pooling in ("mean", "sinusoidal"):
        model = STEPGenCVAE(**small, temporal_pooling=pooling, code_dim=6)
        variables, x, y = _init(model, t=24)
        rolled = jnp.roll(x, 7, axis=1)
        mus[pooling] = [np.asarray(jax.jit(lambda v, x: model.apply(v, x, y, method="encode")[0])(variables, a))
                        for a in (x, rolled)]
        if pooling == "sinusoidal":
            assert variables["params"]["encoder"]["z_mean"]["kernel"].shape == (8 * 7, 8)
            _, inter = model.apply(variables, x, y, method="encode", capture_intermediates=True)
            trunk = np.asarray(inter["intermediates"]["encoder"]["trunk"]["__call__"][0])  # (N, T, V, C)
            basis = np.concatenate([np.ones((24, 1)), sinusoidal_time_encoding(24, 6)], axis=1)
            pooled = np.zeros((2, 8, 7))
            for t in range(24):
                for d in range(7):
                    pooled[:, :, d] += trunk[:, t].mean(axis=1) * basis[t, d] / 24
            k, b = (np.asarray(variables["params"]["encoder"]["z_mean"][n]) for n in ("kernel", "bias"))
            np.testing.assert_allclose(mus[pooling][0], pooled.reshape(2, -1) @ k + b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mus["mean"][0], mus["mean"][1], rtol=1e-5, atol=1e-6)
    assert np.abs(mus["sinusoidal"][0] - mus["sinusoidal"][1]).max() > 1e-3

    model = STEPGenCVAE(**small, temporal_code="modulated", code_dim=6)
    variables, _, _ = _init(model, t=30)
    y = jax.nn.one_hot(jnp.array([2, 2]), 4)  # same label: only z differs
    assert variables["params"]["decoder"]["fcn_code"]["kernel"].shape == (8 + 4, 8 * 6)
    z = jax.random.normal(jax.random.key(3), (2, 8))
    out = np.asarray(jax.jit(lambda v, z: model.apply(v, z, y, 30, method="decode"))(variables, z))
    motion = out - out.mean(axis=1, keepdims=True)  # per-gait time profile
    assert np.abs(motion).max() > 1e-2  # kernel 1 and no padding: all the motion comes from the code
    assert np.abs(motion[0] - motion[1]).max() > 0.1 * np.abs(motion).max()  # z shapes the motion


def test_sinusoidal_encoding():
    enc = sinusoidal_time_encoding(75, 32)
    assert enc.shape == (75, 32) and enc.dtype == np.float32 and np.abs(enc).max() <= 1.0
    assert len({row.tobytes() for row in enc}) == 75  # every frame gets its own code
    np.testing.assert_array_equal(sinusoidal_time_encoding(30, 32), enc[:30])  # independent of T
    assert sinusoidal_time_encoding(10, 5).shape == (10, 5)


def test_output_relu_flag():
    """Fresh eval-mode output BN is ~identity: official output (ReLU last) is >= 0, the fixed one is not."""
    for official_relu in (True, False):
        model = STEPGenCVAE(**SMALL, official_output_relu=official_relu)
        variables, x, y = _init(model, t=12)
        decoded = jax.jit(lambda v: model.apply(v, x, y, rng=jax.random.key(4)))(variables)[0]
        assert (np.asarray(decoded).min() >= 0) == official_relu
        assert ("output_proj" in variables["params"]["decoder"]) != official_relu


def test_sampling_eager_jit_vmap_agree():
    model = STEPGenCVAE(**SMALL, temporal_code="sinusoidal")
    variables, x, y = _init(model, t=10)
    keys = jax.random.split(jax.random.key(7), 3)

    def sample_both(key):  # the full model (reparameterised) and prior sampling, one compile each way
        return (model.apply(variables, x, y, rngs={"sample": key}),
                model.apply(variables, y, 10, rngs={"sample": key}, method="sample"))

    eager = jax.tree_util.tree_leaves(sample_both(keys[0]))
    jitted = jax.jit(sample_both)
    vmapped = jax.tree_util.tree_leaves(jax.jit(jax.vmap(sample_both))(keys))
    for i, key in enumerate(keys):
        out = jax.tree_util.tree_leaves(jitted(key))
        for b, c in zip(out, vmapped):
            np.testing.assert_allclose(b, c[i], rtol=0, atol=1e-5)
        if i == 0:
            for a, b in zip(eager, out):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    for leaf in (vmapped[0], vmapped[-1]):  # decoded and sampled gaits depend on the key
        assert np.abs(leaf[0] - leaf[1]).max() > 1e-4

    # __call__ = decode(eps * exp(logvar / 2) + mu) with eps ~ N(0, I) from the given key
    decoded, mu, logvar = model.apply(variables, x, y, rng=keys[0])
    z = reparameterize(mu, logvar, jax.random.normal(keys[0], mu.shape))
    np.testing.assert_allclose(decoded, model.apply(variables, z, y, 10, method="decode"), rtol=0, atol=1e-6)
    # sample = decode(z) with z from sample_latent of the given key: N(0, I), or 3 * randn - 1.5 (official bug 14)
    for official in (False, True):
        sampled = model.apply(variables, y, 10, official_sampler=official, rng=keys[1], method="sample")
        z = sample_latent(keys[1], (y.shape[0], model.latent_dim), official)
        np.testing.assert_allclose(sampled, model.apply(variables, z, y, 10, method="decode"), rtol=0, atol=1e-6)
    assert np.abs(sampled - model.apply(variables, y, 10, rng=keys[1], method="sample")).max() > 1e-4


def test_official_sampler():
    z = sample_latent(jax.random.key(0), (20000, 4), official=True)
    assert abs(float(z.mean()) + 1.5) < 0.1 and abs(float(z.std()) - 3.0) < 0.1
    z = sample_latent(jax.random.key(0), (20000, 4))
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05


def test_official_init_reproduces_what_the_official_weights_init_leaves():
    """Bug 18: the official ``weights_init`` matches ``Conv2d`` (N(0, 0.02), zero bias) and BatchNorm (N(1, 0.02)),
    not the decoder's ``ConvTranspose2d`` layers, which keep PyTorch's kaiming-uniform(a=sqrt(5)): kernel and bias
    ~ U(+-1/sqrt(fan)), fan = out_channels * kT for a transposed weight (I, O, kT, 1)."""
    model = STEPGenCVAE(**OFFICIAL_OPTIONS)
    v = jax.jit(lambda k: model.init({"params": k, "sample": k}, jnp.zeros((2, 75, 16, 3)), jnp.array([0, 1])))(
        jax.random.PRNGKey(0))
    flat = flat_params(v["params"])
    checked = 0
    for name, a in flat.items():
        layer, leaf = name.rsplit("/", 1)
        if "bn" in layer or leaf == "edge_importance":
            if leaf == "scale":
                assert abs(a.mean() - 1) < 0.02 and 0.005 < a.std() < 0.04, name
            continue
        if name.startswith("encoder"):
            if leaf == "kernel" and a.size > 500:  # N(0, 0.02)
                assert abs(a.std() - 0.02) < 0.002, (name, a.std())
            if leaf == "bias":
                assert np.all(a == 0), name
            continue
        kernel = flat[f"{layer}/kernel"]
        bound = 1 / np.sqrt(np.prod(kernel.shape) // kernel.shape[-2])  # O * kT
        assert np.abs(a).max() <= bound and (a.size < 50 or np.abs(a).max() > 0.8 * bound), (name, bound)
        if a.size > 500:
            assert abs(a.std() - bound / np.sqrt(3)) < 0.1 * bound, (name, a.std(), bound)  # uniform
        checked += 1
    assert checked == 2 * 9  # fcn, 3 gcn projections, 3 temporal convs, 2 residual projections; kernel + bias


def test_defaults_are_the_fixed_form_and_the_official_options_reach_both_halves(monkeypatch):
    """Official quirks are options, the fixed behaviour is the default: ``STEPGenCVAE()`` is the model of
    configs/step_gen.py (phase-aware input and pooling, no ReLU on the output, true hop distances) and
    ``OFFICIAL_OPTIONS`` (what ``load_official_cvae`` builds, see the golden tests) the official network; the
    adjacency option reaches the encoder's and the decoder's graph."""
    from conftest import PROJECT_ROOT
    from stepjax import skeleton
    from stepjax.training.fit_generator import build_generator

    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "configs"))
    import step_gen

    assert STEPGenCVAE() == build_generator(step_gen.get_config())
    official = STEPGenCVAE(**OFFICIAL_OPTIONS)
    assert (official.temporal_code, official.temporal_pooling, official.official_output_relu,
            official.official_adjacency) == ("none", "mean", True, True)
    seen, real = [], skeleton.spatial_adjacency
    monkeypatch.setattr(skeleton, "spatial_adjacency", lambda official=False, **kw: seen.append(official) or
                        real(official, **kw))
    for options, want in [({}, False), (OFFICIAL_OPTIONS, True)]:
        seen.clear()
        jax.eval_shape(lambda: STEPGenCVAE(**SMALL, **options).init(
            {"params": jax.random.key(0), "sample": jax.random.key(1)}, jnp.zeros((2, 12, 16, 3)), jnp.array([0, 1])))
        assert seen == [want, want]  # encoder, decoder


def test_float32_stays_float32_under_x64():
    """With ``jax_enable_x64`` the default decoder's modulated time code once promoted the gaits to float64 (a
    numpy scalar is not weakly typed); float32 variables and inputs give float32 gaits, for both forms."""
    from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE

    for options in ({}, OFFICIAL_OPTIONS):
        model = STEPGenCVAE(encoder_channels=(8, 8, 8), decoder_channels=(8, 8, 3), kernel_size=3, latent_dim=4,
                            **options)
        x, y = jnp.zeros((2, 12, 16, 3), jnp.float32), jnp.eye(4, dtype=jnp.float32)[:2]
        variables = model.init({"params": jax.random.PRNGKey(0), "sample": jax.random.PRNGKey(1)}, x, y)
        with jax.enable_x64(True):
            z = jnp.zeros((2, 4), jnp.float32)
            out = model.apply(variables, z, y, 12, method="decode")
        assert out.dtype == jnp.float32, (options, out.dtype)


# ---- the decoder's mirror cells (stepjax.skeleton.equitable_partition) ----

def _affine_residual(gaits: np.ndarray) -> float:
    """Largest residual, relative to the right joint's spread, of the least-squares fit
    ``right[..., c] = s * left[..., c] + b`` over every mirror pair of limb joints and coordinate."""
    from stepjax import skeleton

    worst = 0.0
    for left, right in enumerate(skeleton.MIRROR_PERMUTATION):
        if right <= left:
            continue
        for c in range(3):
            a, b = gaits[..., left, c].ravel(), gaits[..., right, c].ravel()
            design = np.stack([a, np.ones_like(a)], axis=1)
            fit = np.linalg.lstsq(design, b, rcond=None)[0]
            worst = max(worst, float(np.max(np.abs(design @ fit - b)) / max(b.std(), np.finfo(float).tiny)))
    return worst


def test_official_decoder_ties_each_right_limb_to_its_left_twin(io, official):
    """The decoder's input is the same vector at every joint and its trunk treats mirror-twin joints alike (their
    places in the graph are symmetric; no per-joint parameter before the output BN), so every decoded right-limb
    coordinate is an affine image of its left twin's, ``right = s * left + b`` with the output BN's per-joint
    scales and shifts: the official generator cannot move the two legs independently (e.g. the right foot's
    height is -0.90x the left's). Shown on the official code's own decodings (float64: residuals ~1e-12 of the
    spread; float32, eval and train-mode BN: ~3e-4, rounding against small spreads) and on stepjax's, computing
    all 16 joints (the default eval path computes one joint per mirror cell and would hold by construction)."""
    for key in ("decoded_gen_f64", "decoded_f64"):
        assert _affine_residual(to_nhwc(io[key])) < 1e-9, key
    for key in ("decoded_gen", "decoded_train_bn"):
        assert _affine_residual(to_nhwc(io[key])) < 1e-3, key
    model, variables = official
    every_joint = model.clone(quotient_joints=False)
    decoded = jax.jit(lambda v, z, y: every_joint.apply(v, z, y, 75, method="decode"))(
        variables, jnp.asarray(io["z_gen"]), jnp.asarray(io["onehot"]))
    assert _affine_residual(np.asarray(decoded)) < 1e-3
    assert _affine_residual(to_nhwc(io["model_input"])) > 0.1  # real gaits are not tied


@pytest.mark.parametrize("options", [OFFICIAL_OPTIONS, dict(joint_embedding=False),
                                     dict(temporal_code="sinusoidal", joint_embedding=False), {}],
                         ids=["official", "modulated", "sinusoidal", "default"])
def test_eval_decoding_on_the_mirror_cells_equals_decoding_every_joint(monkeypatch, options):
    """In eval mode the decoder runs its trunk on one joint per mirror cell (10 of 16, time-major) and copies the
    result to both twins: the same gaits as computing all 16 joints (``quotient_joints=False``), to float32
    rounding, with random parameters and BN statistics everywhere. Not with a joint embedding (the default form;
    the input then differs per joint) and not in train mode (BatchNorm's batch statistics weigh every joint): there every joint runs,
    bit for bit as before."""
    from stepjax import nn as snn

    joints = []
    for name, fn in list(snn._GRAPH_FNS.items()):
        monkeypatch.setitem(snn._GRAPH_FNS, name, lambda x, k, b, a, p, fn=fn: joints.append(a.shape[1]) or
                            fn(x, k, b, a, p))
    model = STEPGenCVAE(**SMALL, **options)
    variables, _, y = _init(model, n=3)
    rng = np.random.default_rng(1)
    variables = jax.tree_util.tree_map_with_path(  # every parameter and statistic non-trivial
        lambda path, a: jnp.asarray(np.abs(a) + 0.5 + rng.random(a.shape) if path[-1].key == "var"
                                    else a + 0.3 * rng.standard_normal(a.shape), a.dtype), variables)
    z = jnp.asarray(rng.standard_normal((3, 8)), jnp.float32)
    full = model.clone(quotient_joints=False)
    out = {}
    for name, m in (("cells", model), ("every", full)):
        for train in (False, True):
            joints.clear()
            out[name, train] = np.asarray(m.apply(variables, z, y, 30, train, method="decode",
                                                  mutable=["batch_stats"] if train else False)[0 if train else ...])
            out[name, train, "joints"] = sorted(set(joints))
    tied = not model.joint_embedding  # the default has a joint embedding, the official form none
    assert out["cells", False, "joints"] == [10 if tied else 16]
    assert out["every", False, "joints"] == out["cells", True, "joints"] == out["every", True, "joints"] == [16]
    want = out["every", False]
    assert np.max(np.abs(out["cells", False] - want)) <= 1e-5 * np.max(np.abs(want))
    np.testing.assert_array_equal(out["cells", True], out["every", True])
    assert (_affine_residual(want) < 1e-4) == tied
