"""STEP classifiers: golden outputs with the official weights, layer-level reference checks."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stepjax import skeleton
from stepjax.models import STEPClassifier
from stepjax.models.classifier import TRUNKS
from stepjax.nn import GraphConv, STGCNBlock
from stepjax.official import load_official_classifier
from conftest import GOLDEN, flat_params, golden, golden_tolerance, require, to_nhwc


@pytest.fixture(scope="module")
def official():
    io = golden("classifier_io.npz")
    model, variables = load_official_classifier(require(GOLDEN / "official_classifier_real_only_e395.npz"))
    return model, variables, io


def test_official_weights_reproduce_golden_logits_and_features(official):
    model, variables, io = official
    logits, feats = jax.jit(lambda v, x: model.apply(v, x))(variables, to_nhwc(io["model_input"]))
    # measured (XLA:CPU): logits up to 9.8e-6 (|logits| <= 16; the official float32 run: 7.5e-6), features
    # 1.2e-6, probabilities 1.0e-6; train-mode BN below the same
    np.testing.assert_allclose(logits, io["pre_softmax_f64"], atol=golden_tolerance(3e-5, 1e-4), rtol=0)
    np.testing.assert_allclose(feats, io["features_f64"], atol=golden_tolerance(5e-6, 2e-5), rtol=0)
    np.testing.assert_allclose(jax.nn.softmax(logits), io["probs_f64"], atol=golden_tolerance(5e-6, 2e-5), rtol=0)
    np.testing.assert_array_equal(np.argmax(logits, -1), np.argmax(io["pre_softmax_f64"], -1))


def test_the_corrected_adjacency_is_the_default_and_reaches_the_trunk(official):
    """The official inf-hop partition is an option (``OFFICIAL_OPTIONS``, which ``load_official_classifier``
    uses: the golden logits above need it); by default the classifier and ``spatial_adjacency`` use true hop
    distances, and with the official weights the two partitions give different logits."""
    from stepjax.models.classifier import OFFICIAL_OPTIONS

    model, variables, io = official
    assert model.official_adjacency and OFFICIAL_OPTIONS == {"official_adjacency": True, "init_scheme": "official"}
    assert not STEPClassifier().official_adjacency
    np.testing.assert_array_equal(skeleton.spatial_adjacency(), skeleton.spatial_adjacency(official=False))
    assert not np.array_equal(skeleton.spatial_adjacency(), skeleton.spatial_adjacency(official=True))
    x = to_nhwc(io["model_input"])[:4]
    run = jax.jit(lambda m, v, x: m.apply(v, x)[0], static_argnums=0)
    official_logits, fixed_logits = run(model, variables, x), run(model.clone(official_adjacency=False), variables, x)
    np.testing.assert_allclose(official_logits, io["pre_softmax_f64"][:4], atol=golden_tolerance(3e-5, 1e-4), rtol=0)
    assert np.abs(np.asarray(official_logits) - np.asarray(fixed_logits)).max() > 1e-2


def test_official_weights_train_mode_batch_norm(official):
    model, variables, io = official
    (logits, feats), updates = model.apply(variables, to_nhwc(io["model_input"]), train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(logits, io["pre_softmax_train_bn"], atol=golden_tolerance(3e-5, 2e-4), rtol=0)
    np.testing.assert_allclose(feats, io["features_train_bn"], atol=golden_tolerance(5e-6, 2e-4), rtol=0)
    # running statistics moved towards the batch (PyTorch momentum 0.1 == Flax 0.9)
    old = variables["batch_stats"]["data_bn"]["bn"]["mean"]
    new = updates["batch_stats"]["data_bn"]["bn"]["mean"]
    batch_mean = to_nhwc(io["model_input"]).mean((0, 1))
    np.testing.assert_allclose(new, 0.9 * old + 0.1 * batch_mean, atol=1e-5)


def test_official_parameter_count(official):
    model, variables, _ = official
    n = sum(np.size(x) for x in jax.tree_util.tree_leaves(variables["params"]))
    assert n == 716_292  # trainable parameters of the official checkpoint


def test_official_pipeline_from_raw_gaits(official):
    """Raw gaits -> official alignment -> model == golden (the whole official inference path)."""
    from stepjax.data.preprocess import align_to_reference

    model, variables, io = official
    aligned = align_to_reference(io["gaits_raw"].reshape(32, 75, 16, 3), io["align_reference"])
    logits, _ = model.apply(variables, aligned)
    np.testing.assert_allclose(logits, io["pre_softmax_f64"], atol=1e-4, rtol=0)


def test_graph_conv_matches_explicit_loop():
    rng = np.random.default_rng(0)
    a = skeleton.spatial_adjacency(official=True)
    x = rng.normal(size=(2, 5, 16, 3)).astype(np.float32)
    layer = GraphConv(4, a)
    v = layer.init(jax.random.PRNGKey(0), x)
    v = jax.tree_util.tree_map(lambda p: p + 0.1 * rng.normal(size=p.shape).astype(np.float32), v)  # non-trivial mask
    out = np.asarray(layer.apply(v, x))
    w, b = np.asarray(v["params"]["proj"]["kernel"]), np.asarray(v["params"]["proj"]["bias"])
    mask = np.asarray(v["params"]["edge_importance"])
    ref = np.zeros((2, 5, 16, 4))
    for n in range(2):
        for t in range(5):
            for k in range(3):
                for vv in range(16):
                    y = x[n, t, vv] @ w[:, k * 4:(k + 1) * 4] + b[k * 4:(k + 1) * 4]  # k-major split
                    for ww in range(16):
                        ref[n, t, ww] += y * a[k, vv, ww] * mask[k, vv, ww]
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("cin, cout, stride, residual, kind", [
    (3, 8, 1, True, "proj"), (8, 8, 1, True, "identity"), (8, 8, 2, True, "proj"), (3, 8, 1, False, "none")])
def test_block_residual_rule(cin, cout, stride, residual, kind):
    block = STGCNBlock(cout, skeleton.spatial_adjacency(), kernel_size=5, stride=stride, residual=residual)
    x = jnp.ones((2, 9, 16, cin))
    v = block.init(jax.random.PRNGKey(0), x, train=False)
    assert ("residual_proj" in v["params"]) == (kind == "proj")
    y = block.apply(v, x, train=False)
    assert y.shape == (2, (9 - 1) // stride + 1, 16, cout)
    assert bool(jnp.all(y >= 0))  # ends in ReLU
    # the residual's value: relu(z + r) - relu(z) == r wherever both pre-activations are positive, where z is
    # the block without residual (same gcn/tcn parameters) and r the identity or the strided 1x1 projection + BN
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 16, cin))
    y = np.asarray(block.apply(v, x, train=False))
    plain = STGCNBlock(cout, skeleton.spatial_adjacency(), kernel_size=5, stride=stride, residual=False)
    z = np.asarray(plain.apply({c: {k: t for k, t in tree.items() if not k.startswith("residual")}
                                for c, tree in v.items()}, x, train=False))
    if kind == "none":
        np.testing.assert_array_equal(y, z)
        return
    xs = np.asarray(x[:, ::stride])
    if kind == "identity":
        r = xs
    else:
        p, bn = v["params"]["residual_proj"], v["params"]["residual_bn"]
        stats = v["batch_stats"]["residual_bn"]
        h = xs @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
        r = (h - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * bn["scale"] + bn["bias"]
    both = (z > 0) & (y > 0)
    assert both.mean() > 0.2
    np.testing.assert_allclose(y[both] - z[both], np.broadcast_to(r, y.shape)[both], rtol=1e-4, atol=1e-5)


def test_even_temporal_kernel_is_a_clear_error():
    block = STGCNBlock(8, skeleton.spatial_adjacency(), kernel_size=4)
    with pytest.raises(ValueError, match="odd temporal kernel_size, got 4"):
        block.init(jax.random.PRNGKey(0), jnp.ones((1, 10, 16, 8)), train=False)


@pytest.mark.parametrize("head", ["mlp", "official"])
def test_fusion_heads_by_hand(head):
    """STEP's head from the deep features and the affective features, by hand (eval mode): BN, then
    ``'mlp'`` Dense(hidden) -> ReLU -> Dense, or the official two stacked linear layers with nothing between
    (bug 11)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 12, 16, 3))
    aff = jax.random.normal(jax.random.PRNGKey(2), (4, 29))
    m = STEPClassifier(channels=(4, 8, 8), kernel_size=3, num_affective=29, head=head, hidden=16)
    v = jax.jit(m.init)(jax.random.PRNGKey(0), x, aff)  # jitted: eagerly, each op compiles on its own (~8 s)
    p, stats = v["params"], v["batch_stats"]["fusion_bn"]
    rng = np.random.default_rng(3)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a) + 0.3 * rng.standard_normal(a.shape, np.float32), p)
    v = {"params": p, "batch_stats": v["batch_stats"]}
    logits, feats = jax.jit(m.apply)(v, x, aff)
    h = np.concatenate([np.asarray(feats), np.asarray(aff)], -1)
    bn = p["fusion_bn"]
    h = (h - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * bn["scale"] + bn["bias"]
    h = h @ p["fc1"]["kernel"] + p["fc1"]["bias"]
    if head == "mlp":
        assert np.mean(h < 0) > 0.1  # the ReLU has work to do
        h = np.maximum(h, 0)
    np.testing.assert_allclose(logits, h @ p["fc2"]["kernel"] + p["fc2"]["bias"], rtol=1e-4, atol=1e-4)


def test_hybrid_needs_affective_features_and_heads_differ():
    x = jnp.zeros((2, 12, 16, 3))
    aff = jnp.ones((2, 29))
    for head in ("mlp", "official"):
        m = STEPClassifier(channels=(4, 8, 8), kernel_size=3, num_affective=29, head=head)
        v = m.init(jax.random.PRNGKey(0), x, aff)
        logits, feats = m.apply(v, x, aff)
        assert logits.shape == (2, 4) and feats.shape == (2, 8)
        assert ("fc1" in v["params"]) and v["params"]["fc1"]["kernel"].shape[1] == (128 if head == "mlp" else 96)
    with pytest.raises(ValueError, match=r"affective features of shape \(N, 29\)"):
        m.apply(v, x)
    with pytest.raises(ValueError, match="batches of at least 2 gaits"):  # fusion_bn over one gait: all zeros
        m.apply(v, x[:1], aff[:1], train=True, mutable=["batch_stats"])
    with pytest.raises(ValueError, match=r"\(N, T, 16, 3\)"):
        m.apply(v, jnp.zeros((2, 12, 48)), aff)
    baseline = STEPClassifier(channels=(4, 8, 8), kernel_size=3)
    vb = baseline.init(jax.random.PRNGKey(0), x)
    assert baseline.apply(vb, x, jnp.zeros((2, 0)))[0].shape == (2, 4)  # an empty feature array is fine
    with pytest.raises(ValueError, match="Baseline-STEP model .* takes no affective features"):
        baseline.apply(vb, x, aff)  # once silently ignored


def test_batch_norm_follows_pytorch_including_the_unbiased_running_variance():
    """stepjax.nn.BatchNorm == torch.nn.BatchNorm1d/2d semantics, written out in numpy: training normalises with
    the biased batch variance, the running variance moves towards the *unbiased* one (Flax's BatchNorm stores
    the biased one: 7/8 of PyTorch's for a BN over 8 gaits, like STEP's fusion_bn); eval uses the running stats;
    init updates nothing; variables are named as Flax's, so checkpoints are interchangeable."""
    from stepjax.nn import BatchNorm

    x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (8, 5, 6)) * 3 + 1)
    bn = BatchNorm(use_running_average=False, axis=-1)
    v = bn.init(jax.random.PRNGKey(1), x)
    assert set(v["params"]) == {"scale", "bias"} and set(v["batch_stats"]) == {"mean", "var"}
    np.testing.assert_array_equal(v["batch_stats"]["var"], 1.0)  # init does not update
    v = {"params": {"scale": np.linspace(0.5, 2, 6), "bias": np.linspace(-1, 1, 6)}, "batch_stats": v["batch_stats"]}
    y, upd = bn.apply(v, x, mutable=["batch_stats"])
    flat = x.reshape(-1, 6)
    mean, var_b, var_u = flat.mean(0), flat.var(0), flat.var(0, ddof=1)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var_b + 1e-5) * v["params"]["scale"] + v["params"]["bias"],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * var_u, rtol=1e-5)
    flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    y_flax, upd_flax = flax_bn.apply(v, x, mutable=["batch_stats"])
    np.testing.assert_allclose(y, y_flax, rtol=1e-6, atol=1e-6)  # same forward as Flax's ...
    np.testing.assert_allclose(upd_flax["batch_stats"]["var"], 0.9 + 0.1 * var_b, rtol=1e-5)  # ... not the same stats
    eval_bn = BatchNorm(use_running_average=True, axis=-1)
    stats = {"mean": np.arange(6.0), "var": np.arange(1.0, 7.0)}
    y_eval = eval_bn.apply({"params": v["params"], "batch_stats": stats}, x)
    np.testing.assert_allclose(y_eval, (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * v["params"]["scale"]
                               + v["params"]["bias"], rtol=1e-5, atol=1e-5)
    # bfloat16 input: statistics in float32, output in bfloat16
    y16, _ = bn.apply(v, x.astype(jnp.bfloat16), mutable=["batch_stats"])
    assert y16.dtype == jnp.bfloat16 and np.allclose(np.asarray(y16, np.float32), y, atol=0.05)


def test_batch_norm_statistics_survive_a_large_offset():
    """The batch variance is computed in one pass shifted by one sample per feature: unshifted (Flax's fast
    variance, E[x^2] - E[x]^2 in float32) it lost every digit for features whose mean dwarfs their spread, e.g.
    unaligned positions 10 m from the origin in data_bn (``preprocess.align=False``): outputs off by ~3 where
    |y| <= 4, and variances of 0. Compared with float64 two-pass statistics of the same float32 input; the
    gradient w.r.t. the input is checked against float64 too."""
    from stepjax.nn import BatchNorm

    rng = np.random.default_rng(3)
    spread = rng.uniform(1e-3, 0.3, 6)
    x = (rng.standard_normal((8, 40, 6)) * spread + np.array([10.0, -10.0, 30.0, 0.0, 1e3, 3.0])).astype(np.float32)
    bn = BatchNorm(use_running_average=False, axis=-1)
    v = bn.init(jax.random.PRNGKey(0), x)
    y, upd = bn.apply(v, x, mutable=["batch_stats"])
    flat = x.reshape(-1, 6).astype(np.float64)
    mean, var = flat.mean(0), flat.var(0)
    want = (x - mean) / np.sqrt(var + 1e-5)
    assert np.abs(np.asarray(y) - want).max() < 0.05  # float32 input rounding at 1e3 m sets the floor
    np.testing.assert_allclose(np.asarray(y)[..., :4], want[..., :4], atol=2e-3)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * flat.var(0, ddof=1), rtol=1e-3)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * mean, rtol=1e-6, atol=1e-8)
    w = rng.standard_normal(y.shape)
    grad = jax.grad(lambda a: jnp.sum(bn.apply(v, a, mutable=["batch_stats"])[0] * w))(jnp.asarray(x))
    with jax.enable_x64(True):
        grad64 = jax.grad(lambda a: jnp.sum(bn.apply(v, a, mutable=["batch_stats"])[0] * w))(jnp.asarray(flat.reshape(
            x.shape)))
    scale = np.abs(np.asarray(grad64)).max(axis=(0, 1))
    assert (np.abs(np.asarray(grad) - np.asarray(grad64)).max(axis=(0, 1)) < 0.05 * scale).all()
    # data_bn's case: positions 3-10 m away that vary by millimetres; the output is centred on the shifted values
    # (centring the input on mean = shifted mean + k would round k back in: errors up to 9e-5 here)
    near = (rng.standard_normal((8, 40, 6)) * 1e-3 + np.array([10.0, -10.0, 10.0, 3.0, -3.0, 10.0])).astype(np.float32)
    flat_near = near.reshape(-1, 6).astype(np.float64)
    want_near = (near - flat_near.mean(0)) / np.sqrt(flat_near.var(0) + 1e-5)
    assert np.abs(np.asarray(bn.apply(v, near, mutable=["batch_stats"])[0]) - want_near).max() < 1e-6
    with jax.enable_x64(True):  # float64 input under x64: the statistics stay float32, as documented
        _, upd64 = bn.apply(v, jnp.asarray(flat.reshape(x.shape)), mutable=["batch_stats"])
    assert all(s.dtype == jnp.float32 for s in jax.tree_util.tree_leaves(upd64))


def test_head_dropout_is_active_in_training_only():
    """STEP's fusion head (``head='mlp'``, ``head_dropout=0.5``): in training two dropout keys give different
    logits (dropout is applied); in evaluation the logits do not depend on the key (dropout is off)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4, 12, 16, 3)), jnp.float32)
    aff = jnp.asarray(rng.standard_normal((4, 29)), jnp.float32)
    model = STEPClassifier(num_affective=29, head="mlp", head_dropout=0.5, kernel_size=3, channels=(8, 8, 8))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x, aff)

    @functools.partial(jax.jit, static_argnums=1)
    def logits(key, train: bool):
        out = model.apply(variables, x, aff, train=train, rngs={"dropout": key}, mutable=["batch_stats"])
        return out[0][0]

    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    assert not np.allclose(logits(k1, True), logits(k2, True))
    np.testing.assert_array_equal(logits(k1, False), logits(k2, False))


def test_official_init_scheme_on_the_classifier():
    """``init_scheme='official'`` (configs/step_official.py) is the official ``weights_init``: every conv and the
    1x1-conv head ~ N(0, 0.02) with zero biases, every BatchNorm scale ~ N(1, 0.02) with zero bias; the default
    scheme is Flax's (kernels scaled by fan-in: std 1/sqrt(32) for a 1x1 projection of 32 channels)."""
    x = jnp.zeros((2, 75, 16, 3))
    for scheme in ("official", "default"):
        model = STEPClassifier(init_scheme=scheme, **TRUNKS["real_only"])
        v = jax.jit(model.init)(jax.random.PRNGKey(0), x)["params"]
        flat = flat_params(v)
        kernels = {n: a for n, a in flat.items() if n.endswith("kernel") and a.size > 1000}
        assert len(kernels) == 6  # 3 temporal convs, 2 graph projections, 1 residual projection over 1000 weights
        if scheme == "default":
            assert all(a.std() > 0.1 for a in kernels.values() if a.ndim == 2)  # 1x1 projections: 1/sqrt(fan-in)
            continue
        for name, a in flat.items():
            layer, leaf = name.rsplit("/", 1)
            if leaf == "kernel":
                assert abs(a.std() - 0.02) < (0.002 if a.size > 1000 else 0.01) and abs(a.mean()) < 0.005, name
            elif leaf == "bias":
                assert np.all(a == 0), name
            elif leaf == "scale":
                assert abs(a.mean() - 1) < 0.02 and 0.005 < a.std() < 0.04, name


def test_official_loaders_refuse_what_the_weights_fix_and_files_that_are_not_official_weights(tmp_path):
    """``model_kwargs`` may change how the official networks compute (formulation, adjacency), never what the
    weights fix (sizes, trunk, head; for the CVAE also the options that add parameters); a file that is not an
    .npz state_dict, or one that lacks a weight, is a ValueError naming it, not numpy's pickle advice or a bare
    KeyError."""
    from stepjax.official import load_official_cvae, load_state_dict

    path = require(GOLDEN / "official_classifier_real_only_e395.npz")
    cvae = require(GOLDEN / "official_cvae_e105.npz")
    for kwargs in (dict(kernel_size=9), dict(strides=(1, 2, 2)), dict(num_affective=29), dict(head="official")):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))} cannot be set, the official weights fix"):
            load_official_classifier(path, **kwargs)
    for kwargs in (dict(kernel_size=9), dict(temporal_code="modulated"), dict(official_output_relu=False)):
        with pytest.raises(ValueError, match="cannot be set, the official weights fix"):
            load_official_cvae(cvae, **kwargs)
    model, _ = load_official_classifier(path, temporal_impl="conv", official_adjacency=False)
    assert (model.temporal_impl, model.official_adjacency, model.kernel_size) == ("conv", False, 75)
    assert load_official_cvae(cvae, graph_impl="joints_first")[0].graph_impl == "joints_first"

    (tmp_path / "weights.npz").write_text("not weights")
    np.save(tmp_path / "one.npy", np.zeros(3))
    for bad in (tmp_path / "weights.npz", tmp_path / "one.npy"):
        with pytest.raises(ValueError, match=f"{bad.name}: not an .npz state_dict of official weights"):
            load_official_classifier(bad)
    sd = load_state_dict(path)
    del sd["st_gcn_networks.1.gcn.conv.weight"]
    np.savez(tmp_path / "partial.npz", **sd)
    with pytest.raises(ValueError, match=r"partial.npz: the state_dict lacks 'st_gcn_networks.1.gcn.conv.weight'"):
        load_official_classifier(tmp_path / "partial.npz")
