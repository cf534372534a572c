"""Every TemporalConv formulation (and 'auto') equals lax.conv ('conv'); the GraphConv contraction orders agree.

Checked: forward values and the gradients w.r.t. the input and the kernel of ``sum(y * r)`` (a random
projection of the output), at strides 1 and 2, kernels 1, 3, 9, 75 (and an even kernel, 4), sequence
lengths 19, 38, 75 (odd and even); stride 3 at two shapes (three phases in 'dft').

Tolerance (float32): ``max|impl - conv| <= 1e-5 * max|conv|`` for each of y, dL/dx, dL/dk, i.e. agreement
to ~80 float32 ulps of the tensor's scale (measured worst case: ~1e-6, from the DFT formulation, whose
sums run over ~2*(T+Kt) frequency terms). One compiled program per (T, Kt, stride) holds every
formulation, which keeps the module under 30 s (~15 s with a warm compilation cache). 'auto' is checked
by tracing: its jaxpr is that of the formulation it selects (so it inherits that formulation's check),
and it runs for real in the module test.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stepjax import nn as snn
from stepjax import skeleton

RTOL = 1e-5
IMPLS = tuple(i for i in snn.TEMPORAL_IMPLS if i != "auto")  # 'auto' is checked to trace to one of these
CASES = [(t, kt, s) for t, kt, s in itertools.product((19, 38, 75), (1, 3, 9, 75), (1, 2))] + [(19, 4, 2), (38, 9, 3),
                                                                                              (75, 75, 3)]
# sequences shorter than the padding (the polyphase DFT length and the phase bookkeeping are most fragile there)
CASES += [(1, 75, 1), (2, 16, 3), (5, 75, 3), (5, 9, 2)]


def _run(fn, *args):
    """jit + run with LLVM optimisation off: these programs are tiny, compiling them is the cost."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})(*args)


def _all_impls(x, k, r, stride):
    """y and the gradient of sum(y * r) w.r.t. (x, k) (= the VJP with cotangent r) for every impl."""
    out = {}
    for impl in IMPLS:
        y, vjp = jax.vjp(lambda x, k, impl=impl: snn.temporal_conv(x, k, stride, impl), x, k)
        out[impl] = (y,) + vjp(r)
    return out


@pytest.mark.parametrize("t,kt,stride", CASES)
def test_every_impl_matches_conv(t, kt, stride):
    rng = np.random.default_rng(1000 * t + 10 * kt + stride)
    c_in, c_out = 5, 4
    x = jnp.asarray(rng.standard_normal((2, t, 3, c_in)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((kt, 1, c_in, c_out)) / np.sqrt(kt * c_in), jnp.float32)
    t_out = snn.temporal_out_len(t, kt, stride, (kt - 1) // 2)
    assert t_out == (t + 2 * ((kt - 1) // 2) - kt) // stride + 1
    r = jnp.asarray(rng.standard_normal((2, t_out, 3, c_out)), jnp.float32)
    out = _run(lambda x, k, r: _all_impls(x, k, r, stride), x, k, r)
    ref = out["conv"]
    chosen = snn.select_temporal_impl(kt, stride, t, c_in, c_out, 2)
    assert chosen in IMPLS
    trace = lambda impl: str(jax.make_jaxpr(lambda x, k: jax.vjp(lambda x, k: snn.temporal_conv(x, k, stride, impl),
                                                                 x, k)[1](r))(x, k))
    assert trace("auto") == trace(chosen)
    assert ref[0].shape == (2, t_out, 3, c_out)
    out = jax.tree_util.tree_map(np.asarray, out)  # compare in numpy: no eager-op compiles per shape
    ref = out["conv"]
    for impl in IMPLS:
        for what, a, b in zip(("y", "dL/dx", "dL/dk"), out[impl], ref):
            assert a.shape == b.shape, (impl, what)
            err = float(np.max(np.abs(a - b)))
            scale = float(np.max(np.abs(b)))
            assert err <= RTOL * scale, f"{impl} {what}: max err {err:.3g} > {RTOL} * {scale:.3g} (T={t} Kt={kt} s={stride})"


CUSTOM_VJP_IMPLS = ("conv_mmgrad", "conv_1dgrad")


@pytest.mark.parametrize("stride", [1, 2])
def test_forward_mode_ad(stride):
    """jax.jvp goes through every formulation except the custom-VJP ones (README: forward-mode AD), and its
    tangent is the conv's: the conv is bilinear, so d conv(x, k)[dx, dk] = conv(dx, k) + conv(x, dk)."""
    rng = np.random.default_rng(5)
    x, dx = (jnp.asarray(rng.standard_normal((2, 19, 3, 4)), jnp.float32) for _ in range(2))
    k, dk = (jnp.asarray(rng.standard_normal((9, 1, 4, 5)), jnp.float32) for _ in range(2))
    want = snn.temporal_conv(dx, k, stride, "conv") + snn.temporal_conv(x, dk, stride, "conv")
    for impl in IMPLS:
        f = lambda x, k, impl=impl: snn.temporal_conv(x, k, stride, impl)  # noqa: E731
        if impl in CUSTOM_VJP_IMPLS:
            with pytest.raises(TypeError):
                jax.jvp(f, (x, k), (dx, dk))
            continue
        _, tangent = jax.jvp(f, (x, k), (dx, dk))
        np.testing.assert_allclose(tangent, want, rtol=0, atol=RTOL * np.max(np.abs(want)), err_msg=impl)


def test_forward_mode_ad_through_the_official_size_models():
    """The layers 'auto' picks for the official Kt 75 classifier and CVAE decoder on the CPU ('dft', 'toeplitz'
    for the 3-channel block) are forward-mode safe: jax.jvp through both models runs and matches a central
    finite difference. In float64: the ReLU kinks need a tiny step (1e-7), which float32 cannot resolve."""
    from stepjax.models.classifier import STEPClassifier
    from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE

    if jax.default_backend() != "cpu":
        pytest.skip("'auto' picks per backend; the claim is about the CPU")
    rng = np.random.default_rng(6)
    classifier, cvae = STEPClassifier(kernel_size=75), STEPGenCVAE(kernel_size=75, **OFFICIAL_OPTIONS)
    with jax.enable_x64(True):
        x, dx = (jnp.asarray(rng.standard_normal((1, 75, 16, 3))) for _ in range(2))
        y = jax.nn.one_hot(jnp.array([2]), 4, dtype=jnp.float64)
        z, dz = (jnp.asarray(rng.standard_normal((1, 32))) for _ in range(2))
        to64 = lambda v: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), v)  # noqa: E731
        cv = to64(jax.jit(classifier.init)(jax.random.PRNGKey(0), x.astype(jnp.float32)))
        gv = to64(jax.jit(cvae.init)({"params": jax.random.PRNGKey(1), "sample": jax.random.PRNGKey(2)},
                                     x.astype(jnp.float32), y.astype(jnp.float32)))
        logits = lambda v, x: classifier.apply(v, x)[0]  # noqa: E731
        decode = lambda v, z: cvae.apply(v, z, y, 75, method="decode")  # noqa: E731
        for f, v, a, da in ((logits, cv, x, dx), (decode, gv, z, dz)):  # weights as arguments: nothing to fold
            _, tangent = jax.jit(lambda v, a, da, f=f: jax.jvp(lambda a: f(v, a), (a,), (da,)))(v, a, da)
            f = jax.jit(f)
            fd = (f(v, a + 1e-7 * da) - f(v, a - 1e-7 * da)) / 2e-7
            assert tangent.dtype == jnp.float64 and np.max(np.abs(tangent)) > 0
            np.testing.assert_allclose(tangent, fd, rtol=0, atol=1e-6 * np.max(np.abs(fd)))


def test_module_params_identical_across_impls():
    """Same parameter tree and values for every impl (checkpoints interchangeable); module output agrees."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 19, 3, 6)), jnp.float32)
    modules = {impl: snn.TemporalConv(features=4, kernel_size=9, stride=2, impl=impl) for impl in snn.TEMPORAL_IMPLS}

    def init_apply(x):
        out = {}
        for impl, m in modules.items():
            v = m.init(jax.random.PRNGKey(0), x)
            v = jax.tree_util.tree_map(lambda a: a + 0.1, v)  # non-zero bias
            out[impl] = (v, m.apply(v, x))
        return out

    out = _run(init_apply, x)
    out = jax.tree_util.tree_map(np.asarray, out)
    ref_vars, ref_y = out["conv"]
    assert jax.tree_util.tree_map(jnp.shape, ref_vars) == {"params": {"kernel": (9, 1, 6, 4), "bias": (4,)}}
    for impl, (v, y) in out.items():
        assert all(jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.array_equal, v, ref_vars))), impl
        np.testing.assert_allclose(y, ref_y, rtol=0, atol=RTOL * np.max(np.abs(ref_y)), err_msg=impl)


def test_auto_selection():
    assert snn.TemporalConv.impl == "auto"
    assert snn.STGCNBlock.temporal_impl == "auto" and snn.STGCNStack.temporal_impl == "auto"
    from stepjax.models.classifier import STEPClassifier
    assert STEPClassifier.temporal_impl == "auto"
    for backend in ("gpu", "cuda"):  # H100 measurement (bench/NOTES.md): 'dft' from Kt 9 on, a tie at Kt 3
        for kt in (9, 75):  # the trunks' layers and the decoder's 3-channel last block (DFT MACs 1.04x direct)
            assert {snn.select_temporal_impl(kt, s, t, ci, co, 32, backend=backend)
                    for t, ci, co, s in ((75, 32, 32, 1), (75, 64, 64, 2), (38, 64, 64, 1), (75, 3, 3, 1))} == {"dft"}
        assert snn.select_temporal_impl(3, 1, 75, 64, 64, 32, backend=backend) == "conv"
        assert snn.select_temporal_impl(1, 1, 75, 64, 64, 32, backend=backend) == "conv"
    assert snn.select_temporal_impl(75, 2, 75, 64, 64, 32, backend="tpu") == "conv"
    for kt, s, t, c, n in itertools.product((1, 3, 9, 75), (1, 2), (19, 75), (32, 64), (8, 32)):
        assert snn.select_temporal_impl(kt, s, t, c, c, n, backend="cpu") in snn.TEMPORAL_IMPLS[1:]
    with pytest.raises(ValueError):
        snn.temporal_conv(jnp.zeros((1, 5, 2, 3)), jnp.zeros((3, 1, 3, 3)), impl="nope")


@pytest.mark.parametrize("official", [True, False])
def test_graph_conv_contractions_agree(official):
    """GraphConv's formulations (incl. the bias pushed through A): values and grads w.r.t. x, kernel, bias, A."""
    a = np.asarray(skeleton.spatial_adjacency(official=official), np.float32)
    kk, v, _ = a.shape
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 7, v, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((5, kk * 6)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((kk * 6,)), jnp.float32)
    imp = jnp.asarray(1 + 0.1 * rng.standard_normal(a.shape), jnp.float32)
    r = jnp.asarray(rng.standard_normal((2, 7, v, 6)), jnp.float32)

    def run_all(x, w, b, imp):
        out = {}
        for name, fn in snn._GRAPH_FNS.items():
            f = lambda x, w, b, imp, fn=fn: fn(x, w, b, jnp.asarray(a) * imp, "highest")
            y, vjp = jax.vjp(f, x, w, b, imp)
            out[name] = (y,) + vjp(r)
        return out

    out = _run(run_all, x, w, b, imp)
    out = jax.tree_util.tree_map(np.asarray, out)
    ref = out["project_first"]
    for name in snn._GRAPH_FNS:
        for a_, b_ in zip(out[name], ref):
            assert np.max(np.abs(a_ - b_)) <= RTOL * np.max(np.abs(b_)), name


def test_dft_macs_and_auto_choices_at_step_shapes():
    """The cost model behind 'auto' (Gauss mixing: 3F products) and the choices bench/NOTES.md documents."""
    nf = (75 + 37) // 2 + 1  # minimal circular length 112 for T = Kt = 75
    assert snn.temporal_conv_macs("dft", 75, 1, 75, 32, 64) == 2 * nf * 75 * 32 + 3 * nf * 32 * 64 + 2 * nf * 75 * 64
    # stride 2, polyphase: 2 phases of 38 frames, taps at offsets -19..18 -> L = max(38 + 19, 38 + 18) = 57
    fx, fk, gy = snn._dft_matrices(75, 75, 2, 37)
    assert fx.shape == (2, 29, 38) and fk.shape == (38, 2, 29) and gy.shape == (38, 58)
    assert snn.temporal_conv_macs("dft", 75, 2, 75, 64, 64) == 2 * 29 * 38 * 128 + 3 * 29 * 128 * 64 + 2 * 29 * 38 * 64
    assert snn.temporal_conv_macs("im2col", 9, 2, 75, 64, 32) == 38 * 9 * 64 * 32  # the direct count
    with pytest.raises(ValueError, match="unknown temporal formulation 'direct'"):
        snn.temporal_conv_macs("direct", 9, 1, 75, 64, 64)
    step_shapes = [(75, 32, 1), (75, 64, 2), (38, 64, 2), (38, 64, 1)]  # (T_in, C, stride) of the STEP trunks
    for kt in (9, 75):
        assert {snn.select_temporal_impl(kt, s, t, c, c, 32, backend="cpu") for t, c, s in step_shapes} == {"dft"}
    assert {snn.select_temporal_impl(3, s, t, c, c, 32, backend="cpu") for t, c, s in step_shapes} == {"conv_1dgrad"}
    # strided layers at Kt 7: fewer MACs in 'dft' (0.64-0.75x), but conv_1dgrad measured faster (session 7)
    assert {snn.select_temporal_impl(7, 2, t, 64, 64, 32, backend="cpu") for t in (75, 38)} == {"conv_1dgrad"}


def test_bench_only_formulations_match_conv():
    """bench/temporal_conv.py's extra formulations (used by bench/latency.py) stay equivalent to 'conv'."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import temporal_conv as bench_tc

    rng = np.random.default_rng(5)
    for t, kt, s in ((75, 75, 2), (38, 9, 1)):
        x = rng.standard_normal((2, t, 3, 4)).astype(np.float32)
        k = rng.standard_normal((kt, 1, 4, 5)).astype(np.float32)
        pad = (kt - 1) // 2
        ref = np.asarray(snn._conv_temporal_conv(x, k, s, pad, "highest"))
        for name, fn in bench_tc.EXTRA.items():
            if name in ("centre_tap", "shiftadd"):  # not equivalent by design / too slow to compile here
                continue
            y = np.asarray(fn(jnp.asarray(x), jnp.asarray(k), s, pad, "highest"))
            assert y.shape == ref.shape and np.max(np.abs(y - ref)) <= 1e-5 * np.max(np.abs(ref)), name


@pytest.mark.parametrize("t,kt,stride,cin,cout", [(75, 75, 1, 4, 4), (19, 9, 2, 3, 5), (1, 3, 1, 4, 4),
                                                  (10, 1, 1, 3, 6)])
def test_time_constant_block_equals_repeated_input(t, kt, stride, cin, cout):
    """STGCNBlock(x1, num_frames=T) == STGCNBlock(x1 repeated over T frames): the output in eval and train
    mode, the new BN statistics, and the gradients w.r.t. the input frame and every parameter."""
    a = np.asarray(skeleton.spatial_adjacency(official=True), np.float32)
    block = snn.STGCNBlock(cout, a, kt, stride, edge_importance=True, init_scheme="official")
    rng = np.random.default_rng(5)
    x1 = jnp.asarray(rng.standard_normal((3, 1, a.shape[1], cin)), jnp.float32)
    xt = jnp.broadcast_to(x1, (3, t, a.shape[1], cin))
    variables = block.init(jax.random.PRNGKey(0), xt, False)
    t_out = snn.temporal_out_len(t, kt, stride, (kt - 1) // 2)
    r = jnp.asarray(rng.standard_normal((3, t_out, a.shape[1], cout)), jnp.float32)

    def run(train):
        def loss(params, x, frames):
            y, upd = block.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train, frames,
                                 mutable=["batch_stats"])
            return jnp.sum(y * r), (y, upd)

        out = {}
        for name, x, frames in (("constant", x1, t), ("repeated", xt, None)):
            (_, aux), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables["params"], x, frames)
            gx = grads[1] if frames else grads[1].sum(axis=1, keepdims=True)  # d/d(frame) = sum over its copies
            out[name] = (aux, grads[0], gx)
        return out

    for train in (False, True):
        out = jax.tree_util.tree_map(np.asarray, _run(lambda: run(train)))
        wants = jax.tree_util.tree_leaves(out["repeated"])
        # + an absolute floor for gradients that are 0 analytically (the biases of residual_proj and tcn, each
        # under a train-mode BN): their values are rounding noise, up to ~1.5e-6 of the largest gradient here
        floor = 3e-6 * max(np.max(np.abs(w)) for w in wants)
        for got, want in zip(jax.tree_util.tree_leaves(out["constant"]), wants):
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) <= RTOL * np.max(np.abs(want)) + floor
    with pytest.raises(ValueError, match="one frame"):
        block.apply(variables, jnp.concatenate([x1, x1], axis=1), False, t)


def test_graph_impl_reaches_every_layer_of_both_models(monkeypatch):
    """``graph_impl`` on the classifier and the CVAE is what every GraphConv computes with ('auto': the per-layer
    choice of select_graph_impl), and every order gives the numbers of the official one, 'project_first'
    (eval-mode logits, decoded gaits). A spy on the dispatch table records each layer's order at trace time;
    everything runs in one O0-compiled program."""
    from stepjax.models.classifier import STEPClassifier
    from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE

    used = []

    def spy(name, fn):
        # kernel: (C_in, K * C_out) with K = 3 partitions
        return lambda x, kernel, *rest: used.append((name, x.shape[-1], kernel.shape[-1] // 3)) or fn(x, kernel, *rest)

    for name, fn in list(snn._GRAPH_FNS.items()):
        monkeypatch.setitem(snn._GRAPH_FNS, name, spy(name, fn))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 11, 16, 3)), jnp.float32)
    y = jax.nn.one_hot(jnp.array([0, 3]), 4)
    z = jnp.asarray(rng.standard_normal((2, 32)), jnp.float32)
    classifier = STEPClassifier(kernel_size=5)
    cvae = STEPGenCVAE(kernel_size=5, **OFFICIAL_OPTIONS)  # its 64 -> 3 block
    cv = jax.jit(classifier.init)(jax.random.PRNGKey(0), x)
    gv = jax.jit(cvae.init)({"params": jax.random.PRNGKey(1), "sample": jax.random.PRNGKey(2)}, x, y)
    calls = {}

    def all_impls(cv, gv, x, z, y):
        out = {}
        for graph in snn.GRAPH_IMPLS:
            c, g = snn.with_impls(classifier, graph_impl=graph), snn.with_impls(cvae, graph_impl=graph)
            used.clear()
            out[graph] = (c.apply(cv, x)[0], g.apply(gv, z, y, 11, method="decode"))
            calls[graph] = list(used)
        return out

    out = jax.tree_util.tree_map(np.asarray, _run(all_impls, cv, gv, x, z, y))
    ref_logits, ref_gaits = out["project_first"]
    for graph in snn.GRAPH_IMPLS:
        assert len(calls[graph]) == 3 + 3  # the classifier's three blocks, the decoder's three (no encoder)
        for name, ci, co in calls[graph]:
            assert name == (snn.select_graph_impl(3, 16, ci, co) if graph == "auto" else graph), graph
        logits, gaits = out[graph]
        np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=RTOL * np.max(np.abs(ref_logits)), err_msg=graph)
        np.testing.assert_allclose(gaits, ref_gaits, rtol=0, atol=RTOL * np.max(np.abs(ref_gaits)), err_msg=graph)
    # the decoder's 64 -> 3 block folds the graph, the others do not
    assert {name for name, *_ in calls["auto"]} == {"joints_batched", "dense_graph"}


def test_with_impls_validates_and_keeps_unset_fields():
    from stepjax.models.classifier import STEPClassifier

    model = STEPClassifier(temporal_impl="dft", graph_impl="joints_first")
    assert snn.with_impls(model) is model
    swapped = snn.with_impls(model, graph_impl="dense_graph")
    assert (swapped.temporal_impl, swapped.graph_impl) == ("dft", "dense_graph")
    assert snn.with_impls(model, temporal_impl="conv").graph_impl == "joints_first"
    with pytest.raises(ValueError, match="unknown graph_impl 'joint_first'"):
        snn.with_impls(model, graph_impl="joint_first")
    with pytest.raises(ValueError, match="unknown temporal_impl 'fft'"):
        snn.with_impls(model, temporal_impl="fft")
    with pytest.raises(ValueError, match="unknown graph conv impl"):
        snn.GraphConv(4, skeleton.spatial_adjacency(), impl="dense").init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 16, 3)))


def test_graph_auto_selection():
    """'auto' folds the graph into one GEMM only where that costs no more MACs: the decoder's 64 -> 3 block."""
    assert snn.select_graph_impl(3, 16, 64, 3) == "dense_graph"
    for cin, cout in ((3, 32), (7, 64), (32, 64), (64, 64), (64, 4)):
        assert snn.select_graph_impl(3, 16, cin, cout) == "joints_batched"
    assert snn.graph_conv_macs("dense_graph", 3, 16, 64, 3) == 16 * 64 * 16 * 3
    assert snn.graph_conv_macs("joints_batched", 3, 16, 64, 3) == 16 * 3 * 16 * 64 + 16 * 3 * 64 * 3


def test_time_major_conv_equals_the_batch_major_one():
    """``temporal_conv(x_tm, time_major=True)`` is the batch-major conv with time and batch swapped, for every
    formulation ('dft' computes in that layout, the others transpose), values and input/kernel gradients."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((3, 19, 5, 4)), jnp.float32)
    cases = [(9, 1), (9, 2), (75, 1), (4, 2)]
    kernels = [jnp.asarray(rng.standard_normal((kt, 1, 4, 6)), jnp.float32) for kt, _ in cases]

    def both(x, kernels):
        out = []
        for (kt, stride), k in zip(cases, kernels):
            for impl in IMPLS + ("auto",):
                plain = jax.vjp(lambda x, k: snn.temporal_conv(x, k, stride, impl), x, k)
                tm = jax.vjp(lambda x, k: jnp.swapaxes(snn.temporal_conv(jnp.swapaxes(x, 0, 1), k, stride, impl,
                                                                          time_major=True), 0, 1), x, k)
                r = jnp.ones_like(plain[0]) + jnp.arange(plain[0].size, dtype=jnp.float32).reshape(plain[0].shape) / 97
                out.append(((plain[0],) + plain[1](r), (tm[0],) + tm[1](r)))
        return out

    for want, got in jax.tree_util.tree_map(np.asarray, _run(both, x, kernels)):
        for w, g in zip(want, got):
            assert g.shape == w.shape
            assert np.max(np.abs(g - w)) <= RTOL * np.max(np.abs(w))


@pytest.mark.parametrize("stride,num_frames", [(1, None), (2, None), (1, 75), (2, 19)])
def test_time_major_block_equals_the_batch_major_block(stride, num_frames):
    """STGCNBlock(time_major=True) on ``(T, N, V, C)`` == the block on ``(N, T, V, C)``, swapped: same parameter
    tree, eval- and train-mode outputs and BN statistics, gradients w.r.t. every parameter (a strided residual
    projection slices time on the other axis; ``num_frames`` takes one frame ``(1, N, V, C)``)."""
    a = np.asarray(skeleton.spatial_adjacency(), np.float32)
    t = num_frames or 19
    block = snn.STGCNBlock(6, a, 9, stride, edge_importance=False)
    tm_block = block.clone(time_major=True)
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((3, 1 if num_frames else t, 16, 4)), jnp.float32)
    variables = block.init(jax.random.PRNGKey(0), x, False, num_frames)
    tm_variables = tm_block.init(jax.random.PRNGKey(0), jnp.swapaxes(x, 0, 1), False, num_frames)
    assert jax.tree_util.tree_structure(tm_variables) == jax.tree_util.tree_structure(variables)
    assert jax.tree_util.tree_map(np.shape, tm_variables) == jax.tree_util.tree_map(np.shape, variables)

    def run(variables, x):
        out = []
        for b, swap in ((block, lambda a: a), (tm_block, lambda a: jnp.swapaxes(a, 0, 1))):
            for train in (False, True):
                def loss(params):
                    y, upd = b.apply({"params": params, "batch_stats": variables["batch_stats"]}, swap(x), train,
                                     num_frames, mutable=["batch_stats"])
                    y = swap(y)
                    return jnp.sum(y * jnp.cos(jnp.arange(y.size, dtype=jnp.float32).reshape(y.shape))), (y, upd)
                (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
                out.append((aux, grads))
        return out

    out = jax.tree_util.tree_map(np.asarray, _run(run, variables, x))
    for want, got in zip(out[:2], out[2:]):
        wants = jax.tree_util.tree_leaves(want)
        floor = 3e-6 * max(np.max(np.abs(w)) for w in wants)  # gradients that are 0 analytically (BN'd biases)
        for w, g in zip(wants, jax.tree_util.tree_leaves(got)):
            assert g.shape == w.shape
            assert np.max(np.abs(g - w)) <= RTOL * np.max(np.abs(w)) + floor
    with pytest.raises(ValueError, match=r"one frame \(1, N, V, C\)"):
        tm_block.apply(variables, jnp.zeros((2, 3, 16, 4)), False, 75)
