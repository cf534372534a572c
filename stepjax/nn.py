"""ST-GCN building blocks shared by every stepjax model (the only place they are defined).

Layout is NHWC with H = time and W = joints: activations are ``(N, T, V, C)``.

* :class:`GraphConv`: the official ``ConvTemporalGraphical`` with ``t_kernel_size=1``: a dense
  projection ``C_in -> K * C_out`` (channel index ``k * C_out + c``, k-major as in PyTorch), then
  ``out[n,t,w,c] = sum_k sum_v y[n,t,v,k,c] * A[k,v,w]``.
* :class:`TemporalConv`: the ``(Kt, 1)`` convolution over time with 'same' padding ``(Kt-1)//2``
  and a stride; several numerically equivalent formulations (see ``TEMPORAL_IMPLS``).
* :class:`STGCNBlock`: gcn -> BN -> ReLU -> tcn -> BN -> dropout, plus the residual rule, -> ReLU.
* :class:`JointBatchNorm`: the input ``data_bn``: BatchNorm1d over ``V*C`` channels, statistics over
  batch and time for every (joint, coordinate) pair.

BatchNorm follows PyTorch's defaults (eps 1e-5, momentum 0.1, i.e. Flax momentum 0.9).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, TypedDict, TypeVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[..., Array]


class Initializers(TypedDict):
    """An init scheme (:func:`initializers`)."""

    kernel: Initializer
    bias_for: Callable[[Any], Initializer]  # kernel shape -> bias initializer
    bn_scale: Initializer


ModuleT = TypeVar("ModuleT", bound=nn.Module)

BN_EPS = 1e-5
BN_MOMENTUM = 0.9


def _zeros_for(kernel_shape) -> Initializer:
    return nn.initializers.zeros


def official_initializers() -> Initializers:
    """The official ``weights_init``: conv kernels ~ N(0, 0.02), biases 0, BN scale ~ N(1, 0.02)."""
    return {
        "kernel": nn.initializers.normal(0.02),
        "bias_for": _zeros_for,
        "bn_scale": lambda key, shape, dtype=jnp.float32: 1.0 + 0.02 * jax.random.normal(key, shape, dtype),
    }


def _transposed_fan(kernel_shape) -> int:
    """PyTorch's fan-in of the ``ConvTranspose2d`` weight ``(I, O, kT, 1)`` that a stepjax kernel ``(..., I, O)``
    (``(Kt, 1, I, O)`` or ``(I, O)``) stands for: ``O * kT`` (torch reads dim 1 of a transposed weight as fan-in)."""
    return int(np.prod(kernel_shape)) // int(kernel_shape[-2])


def _uniform(bound: float) -> Initializer:
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def official_transposed_initializers() -> Initializers:
    """What the official decoder's ``ConvTranspose2d`` layers really get (bug 18: ``weights_init`` matches class
    names containing ``Conv2d``, not ``ConvTranspose2d``): PyTorch's default kaiming-uniform(a=sqrt(5)), i.e.
    kernel and bias ~ U(-1/sqrt(fan), 1/sqrt(fan)) with fan = ``O * kT`` (:func:`_transposed_fan`); its BatchNorms
    are matched, N(1, 0.02)."""
    return {
        "kernel": lambda key, shape, dtype=jnp.float32: _uniform(1 / np.sqrt(_transposed_fan(shape)))(
            key, shape, dtype),
        "bias_for": lambda kernel_shape: _uniform(1 / np.sqrt(_transposed_fan(kernel_shape))),
        "bn_scale": official_initializers()["bn_scale"],
    }


def default_initializers() -> Initializers:
    """Flax defaults (LeCun normal kernels, zero biases, unit BN scale); the stepjax default for new training."""
    return {"kernel": nn.initializers.lecun_normal(), "bias_for": _zeros_for, "bn_scale": nn.initializers.ones}


#: ``init_scheme`` values: ``'default'``, ``'official'`` and ``'official_transposed'`` (the official decoder).
INIT_SCHEMES = ("default", "official", "official_transposed")


def initializers(name: str) -> Initializers:
    """``{'kernel', 'bias_for' (kernel shape -> bias initializer), 'bn_scale'}`` of an init scheme."""
    if name == "official":
        return official_initializers()
    if name == "official_transposed":
        return official_transposed_initializers()
    if name == "default":
        return default_initializers()
    raise ValueError(f"unknown init {name!r}; choose one of {INIT_SCHEMES}")


class BatchNorm(nn.Module):
    """Batch normalisation with PyTorch's conventions: ``y = (x - mean) / sqrt(var + eps) * scale + bias`` with the
    batch's mean and biased variance in training, and running statistics updated as
    ``stat <- momentum * stat + (1 - momentum) * batch_stat`` with the **unbiased** batch variance
    (``var * n / (n - 1)``, ``n`` values per feature), as ``torch.nn.BatchNorm*d`` does (``flax.linen.BatchNorm``
    stores the biased one: for a BN over a batch of 8, e.g. the STEP fusion BN, its running variance is 7/8 of
    PyTorch's). Same variables as ``flax.linen.BatchNorm`` (params ``scale``, ``bias``; ``batch_stats`` ``mean``,
    ``var``), statistics in float32 whatever the input dtype; nothing is updated during ``init``.

    Attributes:
      use_running_average: eval mode (use the stored statistics).
      axis: feature axis or axes (statistics are per feature, over all other axes).
    """

    use_running_average: bool
    axis: int | tuple[int, ...] = -1
    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPS
    scale_init: Initializer = nn.initializers.ones

    @nn.compact
    def __call__(self, x: Array) -> Array:
        axes = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
        feature_axes = tuple(sorted(a % x.ndim for a in axes))
        reduce_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
        shape = tuple(x.shape[a] for a in feature_axes)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, shape, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, shape, jnp.float32)
        scale = self.param("scale", self.scale_init, shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, shape, jnp.float32)
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # bf16 inputs: statistics and affine in float32
        if self.use_running_average:
            mean, var = ra_mean.value, ra_var.value
            centred = xf - jnp.expand_dims(mean, reduce_axes)
        else:  # one pass, shifted: E[(x-k)^2] - E[x-k]^2 with k one sample of each feature (no gradient through
            # it). Unshifted (flax's fast variance), float32 cancels every digit where |mean| >> std, e.g. unaligned
            # positions metres from the origin in data_bn; shifted, the error is a two-pass variance's.
            k = jax.lax.stop_gradient(xf[tuple(slice(0, 1) if a in reduce_axes else slice(None)
                                               for a in range(x.ndim))])
            xs = xf - k
            sq = jax.lax.square(xs)  # before the first reduction, as flax orders it: XLA:CPU fuses differently else
            shifted_mean, mean2 = xs.mean(reduce_axes), sq.mean(reduce_axes)
            var = jnp.maximum(0.0, mean2 - jax.lax.square(shifted_mean))
            mean = shifted_mean + k.reshape(shape)
            centred = xs - jnp.expand_dims(shifted_mean, reduce_axes)  # not xf - mean: that rounds k back in
            if not self.is_initializing():
                n = int(np.prod([x.shape[a] for a in reduce_axes]))
                ra_mean.value = (self.momentum * ra_mean.value + (1 - self.momentum) * mean).astype(jnp.float32)
                unbiased = (1 - self.momentum) * n / max(n - 1, 1)  # one constant, as flax has (1 - momentum)
                ra_var.value = (self.momentum * ra_var.value + unbiased * var).astype(jnp.float32)
        feature_shape = [x.shape[a] if a in feature_axes else 1 for a in range(x.ndim)]
        mul = jax.lax.rsqrt(jnp.expand_dims(var, reduce_axes) + self.epsilon) * scale.reshape(feature_shape)
        y = centred * mul + bias.reshape(feature_shape)
        return y.astype(x.dtype)


def check_dropout_rate(rate, name: str = "dropout") -> None:
    """``ValueError`` unless ``0 <= rate < 1`` (a rate of 1 or more would silently zero the activations)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
        raise ValueError(f"dropout rates must lie in [0, 1), got {name}={rate!r}")


def dropout(rate: float, train: bool, name: str | None = None) -> nn.Module:
    """``nn.Dropout(rate)``, active in training only (:func:`check_dropout_rate`)."""
    check_dropout_rate(rate)
    return nn.Dropout(float(rate), deterministic=not train, name=name)


def batch_norm(train: bool, init: str, axis: int | tuple[int, ...] = -1, name: str | None = None) -> nn.Module:
    """The BN of every stepjax model (:class:`BatchNorm`; eps 1e-5, momentum 0.9 here = PyTorch's 0.1)."""
    return BatchNorm(not train, axis, BN_MOMENTUM, BN_EPS, initializers(init)["bn_scale"], name=name)


class JointBatchNorm(nn.Module):
    """``data_bn``: normalises every (joint, channel) pair over batch and time. ``(N,T,V,C) -> same``."""

    init_scheme: str = "default"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        return batch_norm(train, self.init_scheme, axis=(-2, -1), name="bn")(x)


def _graph_bias(a: Array, bias: Array, precision) -> Array:
    """The projection bias pushed through the adjacency: ``(W, C_out)``, ``sum_k colsum(A_k)[w] b_k``."""
    return jnp.einsum("kvw,kc->wc", a, bias.reshape(a.shape[0], -1), precision=precision)


def _graph_conv_project_first(x: Array, kernel: Array, bias: Array, a: Array, precision) -> Array:
    """The literal official order: ``C_in -> K*C_out`` projection, then the joint mixing with A."""
    k = a.shape[0]
    y = jnp.einsum("ntvc,cd->ntvd", x, kernel, precision=precision) + bias
    y = y.reshape(*y.shape[:-1], k, -1)  # k-major channel split
    return jnp.einsum("ntvkc,kvw->ntwc", y, a, precision=precision)


def _graph_conv_joints_first(x: Array, kernel: Array, bias: Array, a: Array, precision) -> Array:
    """Joint mixing first (on C_in channels), then one ``(K*C_in) -> C_out`` matmul; canonical 2-D layouts."""
    n, t, v, cin = x.shape
    k, _, w = a.shape
    cout = kernel.shape[1] // k
    z = jnp.dot(jnp.swapaxes(x, 2, 3).reshape(n * t * cin, v),
                jnp.transpose(a, (1, 2, 0)).reshape(v, w * k), precision=precision)       # (N*T*C_in, (W, K))
    z = jnp.transpose(z.reshape(n, t, cin, w, k), (0, 1, 3, 4, 2)).reshape(n * t * w, k * cin)
    wk = jnp.transpose(kernel.reshape(cin, k, cout), (1, 0, 2)).reshape(k * cin, cout)
    y = jnp.dot(z, wk, precision=precision).reshape(n, t, w, cout)
    return y + _graph_bias(a, bias, precision)


def _graph_conv_joints_batched(x: Array, kernel: Array, bias: Array, a: Array, precision) -> Array:
    """Joint mixing first as a matmul batched over frames, ``(W*K, V) @ (V, C_in)`` per (n, t), whose output
    is already in the ``(N*T*W, K*C_in)`` layout of the ``(K*C_in) -> C_out`` matmul: no transpose (XLA:CPU
    does materialise the broadcast A, ``(N*T, W*K, V)``: 115 MB per layer at N = 500, T = 75; still less scratch
    than 'joints_first'). Same FLOPs as 'joints_first'; 1.7-2.2x faster than it at batch 1, within noise at
    batch 8-256 in the train step, the CVAE step and generation (bench/NOTES.md)."""
    n, t, v, cin = x.shape
    k, _, w = a.shape
    cout = kernel.shape[1] // k
    a_t = jnp.broadcast_to(jnp.transpose(a, (2, 0, 1)).reshape(w * k, v), (n * t, w * k, v))  # rows (w, k)
    z = jax.lax.dot_general(a_t, x.reshape(n * t, v, cin), (((2,), (1,)), ((0,), (0,))),
                            precision=precision)  # (N*T, (W, K), C_in)
    wk = jnp.transpose(kernel.reshape(cin, k, cout), (1, 0, 2)).reshape(k * cin, cout)
    y = jnp.dot(z.reshape(n * t * w, k * cin), wk, precision=precision).reshape(n, t, w, cout)
    return y + _graph_bias(a, bias, precision)


def _graph_conv_dense_graph(x: Array, kernel: Array, bias: Array, a: Array, precision) -> Array:
    """One ``(V*C_in) -> (W*C_out)`` matmul with the graph folded into the weight (~5x the FLOPs of the
    factored form, but a single well-shaped GEMM, forward and backward)."""
    n, t, v, cin = x.shape
    k, _, w = a.shape
    cout = kernel.shape[1] // k
    big = jnp.einsum("kvw,ckd->vcwd", a, kernel.reshape(cin, k, cout), precision=precision)
    y = jnp.dot(x.reshape(n * t, v * cin), big.reshape(v * cin, w * cout), precision=precision)
    return y.reshape(n, t, w, cout) + _graph_bias(a, bias, precision)


_GRAPH_FNS = {"project_first": _graph_conv_project_first, "joints_first": _graph_conv_joints_first,
              "joints_batched": _graph_conv_joints_batched,
              "dense_graph": _graph_conv_dense_graph}
#: The contraction orders :class:`GraphConv` accepts (``impl``; same parameters and numbers). 'joints_first' was
#: 1.6-12x faster fwd+bwd than the official order ('project_first') on XLA:CPU; 'joints_batched' (same FLOPs, no
#: transposes) ties with it from batch 8 up, is 2.2x faster at batch 1 and needs less scratch memory; 'auto' (the
#: default) picks per layer with :func:`select_graph_impl` (bench/NOTES.md).
GRAPH_IMPLS = ("auto",) + tuple(_GRAPH_FNS)


def graph_conv_macs(impl: str, num_partitions: int, num_joints: int, c_in: int, c_out: int) -> int:
    """Multiply-accumulates of one GraphConv per (n, t): 'dense_graph' = ``V*C_in*W*C_out``; 'project_first'
    ``V*C_in*K*C_out + K*V*W*C_out``; the joints-first orders ``W*K*V*C_in + W*K*C_in*C_out``."""
    k, v = num_partitions, num_joints
    if impl == "dense_graph":
        return v * c_in * v * c_out
    if impl == "project_first":
        return v * c_in * k * c_out + k * v * v * c_out
    return v * k * v * c_in + v * k * c_in * c_out


def select_graph_impl(num_partitions: int, num_joints: int, c_in: int, c_out: int) -> str:
    """What ``GraphConv(impl='auto')`` uses: ``'dense_graph'`` (one ``(V*C_in) -> (W*C_out)`` GEMM, the graph
    folded into the weight) where it needs no more MACs than the factored form, i.e. for narrow outputs
    (C_out <= 3 at V = 16, K = 3: the decoder's last 64 -> 3 block, where the factored form's joint mixing
    ran at a few GFLOP/s; generation 6.4 -> 5.8 s, bench/NOTES.md); otherwise ``'joints_batched'``."""
    dense = graph_conv_macs("dense_graph", num_partitions, num_joints, c_in, c_out)
    factored = graph_conv_macs("joints_batched", num_partitions, num_joints, c_in, c_out)
    return "dense_graph" if dense <= factored else "joints_batched"


def tuple_fields(module: nn.Module, *names: str) -> None:
    """For a module's ``__post_init__``: lists given for the sequence fields ``names`` become tuples, so that the
    module stays hashable (``jit`` takes models as static arguments)."""
    for name in names:
        value = getattr(module, name)
        if isinstance(value, list):
            object.__setattr__(module, name, tuple(value))


def dense(features: int, init_scheme: str, in_features: int, precision: Any = "highest",
          name: str | None = None) -> nn.Dense:
    """``nn.Dense(features)`` initialised by ``init_scheme`` (kernel, bias and all)."""
    inits = initializers(init_scheme)
    return nn.Dense(features, kernel_init=inits["kernel"], bias_init=inits["bias_for"]((in_features, features)),
                    precision=precision, name=name)


class _Projection(nn.Module):
    """The parameters of ``nn.Dense(features)`` (``kernel (C_in, features)``, ``bias (features,)``), unapplied."""

    features: int
    init_scheme: str = "default"

    @nn.compact
    def __call__(self, in_features: int) -> tuple[Array, Array]:
        inits = initializers(self.init_scheme)
        shape = (in_features, self.features)
        kernel = self.param("kernel", inits["kernel"], shape, jnp.float32)
        bias = self.param("bias", inits["bias_for"](shape), (self.features,), jnp.float32)
        return kernel, bias


class GraphConv(nn.Module):
    """Spatial graph convolution ``(N, T, V, C_in) -> (N, T, V, C_out)`` with a fixed partition A.

    Attributes:
      features: C_out.
      adjacency: ``(K, V, V)`` numpy constant, ``A[k, v, w]`` = weight from joint v into joint w.
      edge_importance: multiply A by a learnable ``(K, V, V)`` mask initialised to ones.
      impl: the contraction order, one of :data:`GRAPH_IMPLS` (same parameters and numbers; 'auto' picks
        per layer shape with :func:`select_graph_impl`).

    Parameters are those of the official 1x1 conv ``C_in -> K*C_out`` (``proj/kernel``, ``proj/bias``,
    k-major channel index ``k * C_out + c``); the contraction order is an implementation detail.
    """

    features: int
    adjacency: np.ndarray
    edge_importance: bool = True
    init_scheme: str = "default"
    precision: Any = "highest"
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.impl not in GRAPH_IMPLS:
            raise ValueError(f"unknown graph conv impl {self.impl!r}; choose one of {GRAPH_IMPLS}")
        k = self.adjacency.shape[0]
        kernel, bias = _Projection(k * self.features, self.init_scheme, name="proj")(x.shape[-1])
        dtype = jnp.result_type(x, kernel)
        a = jnp.asarray(self.adjacency, x.dtype)
        if self.edge_importance:
            a = a * self.param("edge_importance", nn.initializers.ones, a.shape, jnp.float32).astype(x.dtype)
        impl = self.impl
        if impl == "auto":
            impl = select_graph_impl(k, a.shape[1], x.shape[-1], self.features)
        return _GRAPH_FNS[impl](x.astype(dtype), kernel.astype(dtype), bias.astype(dtype), a.astype(dtype),
                                      self.precision)


# --------------------------------------------------------------------------------------------------
# Temporal convolution: several numerically equivalent formulations of the same (Kt, 1) conv.
# Each takes (x (N, T_in, V, C_in), kernel (Kt, 1, C_in, C_out), stride, pad, precision) and returns
# (N, T_out, V, C_out) with T_out = (T_in + 2*pad - Kt) // stride + 1 (no bias). Measurements and the
# reasoning behind 'auto' are in bench/NOTES.md (reproduce with bench/temporal_conv.py).
# --------------------------------------------------------------------------------------------------


def temporal_out_len(t_in: int, kernel_size: int, stride: int, pad: int) -> int:
    return (t_in + 2 * pad - kernel_size) // stride + 1


def temporal_conv_of_constant(x: Array, kernel: Array, num_frames: int, stride: int = 1,
                              precision: Any = "highest", time_major: bool = False) -> Array:
    """The temporal conv (no bias, 'same' padding ``(Kt-1)//2``) of an input that is constant in time.

    ``x (N, 1, V, C_in)`` stands for that frame repeated ``num_frames`` times; returns
    ``(N, T_out, V, C_out)``, the same numbers as any formulation on the repeated input (to float32
    rounding). With zero padding, output frame t is ``x @ sum_j k[j]`` over the taps j that read a frame
    inside the sequence, so the whole conv is one ``(N*V, C_in) @ (C_in, T_out*C_out)`` matmul against
    partial kernel sums: ``T_out*C_in*C_out`` MACs per (n, v), e.g. 9x fewer than 'dft' for the official
    decoder's first block (75 frames, Kt 75, 32 channels), whose input is the latent tiled over (T, V).
    ``time_major``: ``x (1, N, V, C_in)`` and the result ``(T_out, N, V, C_out)``.
    """
    kt, _, ci, co = kernel.shape
    pad = (kt - 1) // 2
    t_out = temporal_out_len(num_frames, kt, stride, pad)
    frame = np.arange(t_out)[:, None] * stride + np.arange(kt)[None, :] - pad  # input frame read by tap j at t
    inside = ((frame >= 0) & (frame < num_frames)).astype(np.float32)  # (T_out, Kt)
    partial = jnp.einsum("tj,jco->cto", inside.astype(kernel.dtype), kernel[:, 0], precision=precision)
    n, v = x.shape[1 if time_major else 0], x.shape[2]
    y = jnp.dot(x.reshape(n * v, ci), partial.reshape(ci, t_out * co), precision=precision)
    return jnp.transpose(y.reshape(n, v, t_out, co), (2, 0, 1, 3) if time_major else (0, 2, 1, 3))


def _conv_temporal_conv(x: Array, kernel: Array, stride: int, pad: int, precision) -> Array:
    """'conv': ``lax.conv_general_dilated`` in NHWC (H = time, W = joints)."""
    return jax.lax.conv_general_dilated(x, kernel, window_strides=(stride, 1), padding=((pad, pad), (0, 0)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def _toeplitz_temporal_conv(x: Array, kernel: Array, stride: int, pad: int, precision) -> Array:
    """'toeplitz': one contraction with a banded (Toeplitz) weight ``(T_in, T_out, C_in, C_out)``."""
    kt = kernel.shape[0]
    t_in = x.shape[1]
    t_out = temporal_out_len(t_in, kt, stride, pad)
    tap = np.arange(t_in)[:, None] - np.arange(t_out)[None, :] * stride + pad  # (T_in, T_out)
    valid = (tap >= 0) & (tap < kt)
    band = jnp.where(valid[:, :, None, None], kernel[np.clip(tap, 0, kt - 1), 0], 0.0)
    return jnp.einsum("nsvc,stco->ntvo", x, band, precision=precision)


def _im2col(x: Array, kt: int, stride: int, pad: int) -> Array:
    """``(N, T_in, V, C) -> (N, T_out, Kt, V, C)``: the Kt (strided) taps of every output frame, as one
    gather along time (as fast as Kt strided slices + stack, and 3x quicker to compile at Kt = 75)."""
    t_in = x.shape[1]
    t_out = temporal_out_len(t_in, kt, stride, pad)
    hi = max(0, (t_out - 1) * stride + kt - pad - t_in)
    xp = jnp.pad(x, ((0, 0), (pad, hi), (0, 0), (0, 0)))
    return xp[:, np.arange(t_out)[:, None] * stride + np.arange(kt)[None, :]]


def _im2col_temporal_conv(x: Array, kernel: Array, stride: int, pad: int, precision) -> Array:
    """'im2col': gather the taps into a ``Kt*C_in`` axis, then one matmul (Kt times the input memory)."""
    return jnp.einsum("ntjvc,jco->ntvo", _im2col(x, kernel.shape[0], stride, pad), kernel[:, 0],
                      precision=precision)


def _conv_input_grad(g: Array, kernel: Array, stride: int, pad: int, t_in: int, precision) -> Array:
    """Input gradient of :func:`_conv_temporal_conv` as ``stride`` stride-1 convs, one per phase of the
    padded input (polyphase), instead of one conv with input dilation (slow on XLA:CPU for stride 2).

    With ``xp`` the padded input and ``q = stride*m + r``: ``dxp[q] = sum_i g[m - i] kernel[stride*i + r]^T``.
    """
    kt, _, ci, _ = kernel.shape
    n, t_out, v, _ = g.shape
    m0 = pad // stride
    m1 = -(-(pad + t_in) // stride)
    m_len = m1 - m0  # phase rows m0..m1-1 cover padded positions stride*m0 .. stride*m1-1 >= [pad, pad+t_in)
    phases = []
    for r in range(stride):
        kr = kernel[r::stride]
        nr = kr.shape[0]
        if nr == 0:
            phases.append(jnp.zeros((n, m_len, v, ci), g.dtype))
            continue
        lo, hi = nr - 1 - m0, m_len - t_out + m0
        lo_c, hi_c = max(lo, 0), max(hi, 0)
        d = jax.lax.conv_general_dilated(g, jnp.swapaxes(kr[::-1], 2, 3), window_strides=(1, 1),
                                         padding=((lo_c, hi_c), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision=precision)
        phases.append(d[:, lo_c - lo: lo_c - lo + m_len])
    dxp = phases[0] if stride == 1 else jnp.stack(phases, axis=2).reshape(n, m_len * stride, v, ci)
    start = pad - stride * m0
    return dxp[:, start: start + t_in]


def _weight_grad_matmul(x: Array, g: Array, kt: int, stride: int, pad: int, precision) -> Array:
    """Kernel gradient as a matmul: im2col of the input contracted with the output cotangent, or, when
    the kernel is at least as long as the input (im2col would be Kt times the input), the Toeplitz
    band gradient ``(T_in, T_out, C_in, C_out)`` summed along its diagonals."""
    t_in, t_out = x.shape[1], g.shape[1]
    if kt < t_in:
        dk = jnp.einsum("ntvo,ntjvc->ojc", g, _im2col(x, kt, stride, pad), precision=precision)
        return jnp.transpose(dk, (1, 2, 0))[:, None]
    band = jnp.einsum("nsvc,ntvo->stco", x, g, precision=precision)
    tap = np.arange(t_in)[:, None] - np.arange(t_out)[None, :] * stride + pad  # (T_in, T_out)
    onehot = (tap[None] == np.arange(kt)[:, None, None]).astype(np.float32)  # (Kt, T_in, T_out)
    return jnp.einsum("jst,stco->jco", onehot.astype(band.dtype), band, precision=precision)[:, None]


def _to_1d(a: Array) -> Array:
    n, t, v, c = a.shape
    return jnp.transpose(a, (0, 2, 1, 3)).reshape(n * v, t, c)


def _weight_grad_conv1d(x: Array, g: Array, kt: int, stride: int, pad: int, precision) -> Array:
    """Kernel gradient of the same conv written in the 1-D layout ``(N*V, T, C)`` (joints moved into the
    batch): XLA:CPU runs that weight-gradient conv several times faster than the 2-D one."""
    def conv1d(k1):
        return jax.lax.conv_general_dilated(_to_1d(x), k1, window_strides=(stride,), padding=((pad, pad),),
                                            dimension_numbers=("NWC", "WIO", "NWC"), precision=precision)
    k1 = jnp.zeros((kt, x.shape[-1], g.shape[-1]), g.dtype)
    return jax.vjp(conv1d, k1)[1](_to_1d(g))[0][:, None]


def _conv_with_custom_grad(weight_grad: Callable) -> Callable:
    """'conv' forward, polyphase-conv input gradient, kernel gradient from ``weight_grad``."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
    def f(x, kernel, stride, pad, precision):
        return _conv_temporal_conv(x, kernel, stride, pad, precision)

    def fwd(x, kernel, stride, pad, precision):
        return _conv_temporal_conv(x, kernel, stride, pad, precision), (x, kernel)

    def bwd(stride, pad, precision, res, g):
        x, kernel = res
        dx = _conv_input_grad(g, kernel, stride, pad, x.shape[1], precision)
        dk = weight_grad(x, g, kernel.shape[0], stride, pad, precision)
        return dx.astype(x.dtype), dk.astype(kernel.dtype)

    f.defvjp(fwd, bwd)
    return f


_conv_mmgrad_temporal_conv = _conv_with_custom_grad(_weight_grad_matmul)
_conv_1dgrad_temporal_conv = _conv_with_custom_grad(_weight_grad_conv1d)


def _dft_length(t_in: int, kt: int, stride: int, pad: int) -> tuple[int, int, int, int]:
    """``(L, T_p, r_min, r_max)`` of the polyphase DFT form (see :func:`_dft_matrices`): the circular length,
    the frames per phase ``ceil(T_in / stride)`` and the range of the taps' offsets
    ``r_j = floor((j - pad) / stride)`` in phase frames."""
    t_out = temporal_out_len(t_in, kt, stride, pad)
    t_phase = -(-t_in // stride)
    r_min, r_max = -pad // stride, (kt - 1 - pad) // stride  # floor division
    return max(t_phase - r_min, t_out + r_max), t_phase, r_min, r_max


@functools.lru_cache(maxsize=None)
def _dft_matrices(t_in: int, kt: int, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real DFT matrices of the strided correlation in polyphase form (float64, cast by the caller).

    With ``s = stride``, the phases ``x_p[u] = x[s*u + p]`` (``p < s``, ``T_p = ceil(T_in/s)`` frames, zero
    past the end) and tap ``j`` written as ``j - pad = s*r + p`` (offset ``r`` in phase frames, phase ``p``),
    ``y[t] = sum_j x[s*t + j - pad] k[j] = sum_{r, p} x_p[t + r] k[s*r + p + pad]``: the sum of s stride-1
    correlations over T_p frames. In the circular form of length ``L = max(T_p - r_min, T_out + r_max)``
    (long enough that no wrap-around reaches a needed output; about half the stride-1 length at stride 2)
    ``Y(f) = sum_p X_p(f) conj(K_p(f))``. With ``F = L//2 + 1`` frequencies, returns

    * ``fx (2, F, T_p)``: re/im of ``X_p(f) = sum_u x_p[u] e^{-2 pi i f u / L}``;
    * ``fk (R, 2, F)``, ``R = r_max - r_min + 1``: re/im of ``e^{+2 pi i f r / L}``, so that
      ``conj(K_p(f)) = sum_r k[s*r + p + pad] fk[r]`` on the kernel laid out as an ``(R, s)`` grid of taps
      (zero outside ``0 <= j < Kt``);
    * ``gy (T_out, 2F)``, columns ``(b, f)`` with b = re/im: the inverse real DFT at the outputs ``t < T_out``,
      ``y[t] = sum_f w_f / L (Y_r(f) cos - Y_i(f) sin)(2 pi f t / L)``, ``w_f`` = 1 for the real-only
      frequencies (0 and L/2), 2 otherwise.

    At stride 1 this is the plain convolution theorem (one phase, ``r = j - pad``).
    """
    t_out = temporal_out_len(t_in, kt, stride, pad)
    length, t_phase, r_min, r_max = _dft_length(t_in, kt, stride, pad)
    nf = length // 2 + 1
    f = np.arange(nf)
    th_x = 2 * np.pi * np.outer(f, np.arange(t_phase)) / length  # (F, T_p)
    fx = np.stack([np.cos(th_x), -np.sin(th_x)])
    th_k = 2 * np.pi * np.outer(np.arange(r_min, r_max + 1), f) / length  # (R, F)
    fk = np.stack([np.cos(th_k), np.sin(th_k)], axis=1)
    w = np.full(nf, 2.0)
    w[0] = 1.0
    if length % 2 == 0:
        w[-1] = 1.0
    th_y = 2 * np.pi * np.outer(np.arange(t_out), f) / length  # (T_out, F)
    gy = np.concatenate([np.cos(th_y), -np.sin(th_y)], axis=1) * np.tile(w / length, 2)
    for m in (fx, fk, gy):
        m.flags.writeable = False  # cached: shared by every caller
    return fx, fk, gy


def _dft_temporal_conv(x: Array, kernel: Array, stride: int, pad: int, precision, time_major: bool = False) -> Array:
    """'dft': the convolution theorem with the (real) DFTs written as matmuls against constant matrices
    (no FFT op), on the polyphase split of :func:`_dft_matrices`: a stride s becomes s phases of
    ``T_p = ceil(T_in/s)`` frames, transformed at about half the circular length at stride 2 (at stride 1
    there is one phase, the plain convolution theorem).

    Three steps, every one (and its autodiff transpose) a plain or batched matmul, time-major so that at
    batch 1 no transpose is left (the phases are a reshape of the time-major input to ``(T_p, s, ...)``,
    after padding one frame where s does not divide T_in):

    1. forward: ``[X_r; X_i] = fx (2F, T_p) @ x (T_p, s*N*V*C_in)``, one spectrum per (frequency, phase);
    2. per-(frequency, phase) channel mixing ``X_p conj(K_p)`` (``K_r``, ``K_i`` below are the parts of
       ``conj(K_p)``) with Gauss's three real products instead of four: ``t1 = X_r K_r``, ``t2 = X_i K_i``,
       ``t3 = (X_r + X_i)(K_r + K_i)`` (three ``(N*V, C_in) @ (C_in, C_out)`` matmuls batched over F*s), then
       ``Y_r = sum_p (t1 - t2)``, ``Y_i = sum_p (t3 - t1 - t2)`` in one element-wise pass (the subtraction
       cancels, harmless in float32 matmuls on CPU); ``K_p`` comes from the kernel laid out on the
       ``(R, s)`` grid of tap offsets and phases (one ``(2F, R)`` transform, about ``Kt`` taps' worth);
    3. inverse at the outputs: ``y = gy (T_out, 2F) @ [Y_r; Y_i]``.

    MACs per (n, v): :func:`temporal_conv_macs`; for Kt = T = 75 about 8x (C = 32) to 13x (C = 64) fewer than
    the direct form at stride 1; at stride 2 the polyphase split cuts another 25 % (the official block 1:
    1.52M -> 1.14M per joint). Computed in at least float32. ``time_major``: ``x (T_in, N, V, C_in)`` and the
    result ``(T_out, N, V, C_out)``, no transpose at all. (bench/NOTES.md: the single 2x2-block real matmul
    this replaced was up to 30 % slower, the most at batch 1; the stride folded into the inverse's lags
    (every lag transformed, the needed ones read back) was 4-7 % slower per train step with strided layers,
    the same at batch 1.)
    """
    xt = x if time_major else jnp.transpose(x, (1, 0, 2, 3))
    t_in, n, v, ci = xt.shape
    kt, _, _, co = kernel.shape
    s = stride
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    fx, fk, gy = (m.astype(dtype) for m in _dft_matrices(t_in, kt, s, pad))
    nf, t_phase = fx.shape[1:]
    t_out = gy.shape[0]
    xt = xt.astype(dtype)
    xt = jnp.pad(xt, ((0, s * t_phase - t_in), (0, 0), (0, 0), (0, 0))).reshape(t_phase, s * n * v * ci)
    xr, xi = jnp.dot(fx.reshape(2 * nf, t_phase), xt, precision=precision).reshape(2, nf * s, n * v, ci)
    lead = -pad % s  # zero taps before tap 0 on the (R, s) grid of fk's offsets r and phases p
    taps = jnp.pad(kernel[:, 0].astype(dtype), ((lead, fk.shape[0] * s - kt - lead), (0, 0), (0, 0)))
    kr, ki = jnp.einsum("rpco,raf->afpco", taps.reshape(-1, s, ci, co), fk,
                        precision=precision).reshape(2, nf * s, ci, co)  # (F*s, Ci, Co) each
    bmm = lambda a, b: jax.lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))), precision=precision)
    t1, t2, t3 = (bmm(a, b).reshape(nf, s, n * v * co) for a, b in ((xr, kr), (xi, ki), (xr + xi, kr + ki)))
    yf = jnp.stack([t1 - t2, t3 - t1 - t2]).sum(axis=2).reshape(2 * nf, n * v * co)  # sum over the phases
    y = jnp.dot(gy, yf, precision=precision).reshape(t_out, n, v, co)
    return (y if time_major else jnp.transpose(y, (1, 0, 2, 3))).astype(x.dtype)


_TEMPORAL_FNS: dict[str, Callable] = {
    "conv": _conv_temporal_conv,
    "toeplitz": _toeplitz_temporal_conv,
    "im2col": _im2col_temporal_conv,
    "conv_mmgrad": _conv_mmgrad_temporal_conv,
    "conv_1dgrad": _conv_1dgrad_temporal_conv,
    "dft": _dft_temporal_conv,
}
TEMPORAL_IMPLS = ("auto",) + tuple(_TEMPORAL_FNS)


def temporal_conv_macs(impl: str, kernel_size: int, stride: int, t_in: int, c_in: int, c_out: int) -> int:
    """Multiply-accumulates of one forward pass per batch element and joint: ``'toeplitz'`` and ``'dft'`` their
    own counts, every other formulation (``'conv'``, ``'im2col'``, ``'conv_*grad'``) the direct convolution's."""
    if impl not in _TEMPORAL_FNS:
        raise ValueError(f"unknown temporal formulation {impl!r}; choose one of {tuple(_TEMPORAL_FNS)}")
    pad = (kernel_size - 1) // 2
    t_out = temporal_out_len(t_in, kernel_size, stride, pad)
    if impl == "toeplitz":
        return t_in * t_out * c_in * c_out
    if impl == "dft":
        length, t_phase, _, _ = _dft_length(t_in, kernel_size, stride, pad)
        nf, ci = length // 2 + 1, stride * c_in
        return 2 * nf * t_phase * ci + 3 * nf * ci * c_out + 2 * nf * t_out * c_out
    return t_out * kernel_size * c_in * c_out


# Relative XLA:CPU throughput (FLOP/s) of the formulations 'auto' chooses from, fitted to bench/NOTES.md
# ('select' and 'model' tables): 'dft' wins once its MACs drop below ~0.9x the direct conv's (Kt >= 9 at the
# STEP shapes; 'dft' was 1.1 before its mixing used Gauss's three products: fewer MACs, about the same time
# at short kernels); 'toeplitz' (one large matmul) only when the sequence is short against the kernel
# (e.g. T = 19, Kt = 75).
AUTO_CPU_EFFICIENCY = {"conv_1dgrad": 1.0, "dft": 0.9, "toeplitz": 2.2}
# 'dft' at stride > 1: the polyphase split halves the transforms' MACs, not the passes around them; fitted to
# the session-7 'select' sweep (bench/NOTES.md): 'conv_1dgrad' stays faster up to Kt 7-8 at stride 2, 'dft'
# from Kt 9 (at (75, 64, stride 2) by a 2 % margin in this model: 0.59x the direct MACs against 0.6).
AUTO_CPU_DFT_STRIDED_EFFICIENCY = 0.6


def select_temporal_impl(kernel_size: int, stride: int, t_in: int, c_in: int, c_out: int, batch: int,
                         backend: str | None = None) -> str:
    """The formulation ``impl='auto'`` uses for one temporal conv (decided at trace time from static shapes).

    * GPU: ``'dft'`` for Kt >= 9, and for shorter kernels where it needs fewer MACs than the direct conv
      (:func:`temporal_conv_macs`; from Kt 3 to 7 depending on the layer, the polyphase count of strided
      layers included: not measured below Kt 9 beyond a tie at Kt 3), else ``'conv'``. Measured on an H100
      in float32 (precision 'highest', no TF32; bench/NOTES.md, GPU section): the temporal conv fwd+bwd at the
      hybrid trunk's shapes, batch 32, is 1.3-1.4x faster with 'dft' than cuDNN's 'conv' at Kt 9, 2.2-7x at
      Kt 75, a tie at Kt 3; the Kt-75 train step at batch 256 takes 10 ms with 'dft', 20 ms with 'toeplitz',
      66 ms with 'conv' (PyTorch: 50 ms); decoding 4,000 gaits in one call 0.04 / 0.08 / 0.27 s (every layer
      'dft', including the 3-channel last one, where the DFT needs 1.04x the direct MACs).
    * Other backends (TPU): ``'conv'`` (not measured).
    * XLA:CPU: ``Kt == 1``: ``'im2col'`` (a plain matmul); otherwise the cheapest of ``'conv_1dgrad'``,
      ``'dft'`` and ``'toeplitz'`` by :func:`temporal_conv_macs` / :data:`AUTO_CPU_EFFICIENCY` (strided
      'dft': :data:`AUTO_CPU_DFT_STRIDED_EFFICIENCY`). At the STEP shapes (T_in 75 / 38, C 32 / 64) that is
      'dft' for Kt >= 9 (train step 2.5x (Kt 9) to 6.6x (Kt 75) faster than 'conv' at batch 32, with the
      GraphConv change) and 'conv_1dgrad' for Kt 3-7 (and Kt 8 at stride 2; some stride-1 layers take 'dft'
      from Kt 5). The batch size shifts the absolute gains (the conv weight gradient degrades with batch) but
      not the ranking.
    """
    backend = backend or jax.default_backend()
    if backend in ("gpu", "cuda", "rocm"):
        dft, direct = (temporal_conv_macs(impl, kernel_size, stride, t_in, c_in, c_out) for impl in ("dft", "conv"))
        return "dft" if kernel_size >= 9 or dft < direct else "conv"
    if backend != "cpu":
        return "conv"
    if kernel_size == 1:
        return "im2col"
    efficiency = dict(AUTO_CPU_EFFICIENCY)
    if stride > 1:
        efficiency["dft"] = AUTO_CPU_DFT_STRIDED_EFFICIENCY
    cost = {impl: temporal_conv_macs(impl, kernel_size, stride, t_in, c_in, c_out) / eff
            for impl, eff in efficiency.items()}
    return min(("dft", "conv_1dgrad", "toeplitz"), key=lambda impl: cost[impl])  # ties -> 'dft'


def temporal_conv(x: Array, kernel: Array, stride: int = 1, impl: str = "auto", precision: Any = "highest",
                  time_major: bool = False) -> Array:
    """Functional temporal conv (no bias): ``x (N, T, V, C_in)``, ``kernel (Kt, 1, C_in, C_out)``, 'same'
    padding ``(Kt-1)//2`` on time, ``stride`` on time. ``impl`` is one of :data:`TEMPORAL_IMPLS`.
    ``time_major``: ``x (T, N, V, C_in)`` and the result ``(T', N, V, C_out)`` ('dft' computes in that layout
    without a transpose; the other formulations transpose in and out)."""
    if impl not in TEMPORAL_IMPLS:
        raise ValueError(f"unknown temporal conv impl {impl!r}; choose one of {TEMPORAL_IMPLS}")
    kt = kernel.shape[0]
    t_axis, n_axis = (0, 1) if time_major else (1, 0)
    if impl == "auto":
        impl = select_temporal_impl(kt, stride, x.shape[t_axis], x.shape[-1], kernel.shape[-1], x.shape[n_axis])
    fn = _TEMPORAL_FNS[impl]
    if impl == "dft":  # computes in either layout
        return fn(x, kernel, stride, (kt - 1) // 2, precision, time_major=time_major)
    if time_major:
        return jnp.swapaxes(fn(jnp.swapaxes(x, 0, 1), kernel, stride, (kt - 1) // 2, precision), 0, 1)
    return fn(x, kernel, stride, (kt - 1) // 2, precision)


class TemporalConv(nn.Module):
    """``(Kt, 1)`` convolution over time, 'same' padding ``(Kt-1)//2``, stride ``(stride, 1)``.

    ``impl`` (all give the same numbers to float32 rounding; parameters are identical, ``kernel
    (Kt, 1, C_in, C_out)`` and ``bias (C_out,)``, so checkpoints are interchangeable):

    * ``'auto'`` (default): :func:`select_temporal_impl`: per shape, from measurements on CPU (a MAC count
      weighted by measured efficiency) and on one GPU ('dft' for long kernels), ``'conv'`` on TPU;
    * ``'conv'``: ``lax.conv_general_dilated`` (its weight gradient is XLA:CPU's weak spot);
    * ``'toeplitz'``: one einsum with a banded ``(T_in, T_out, C_in, C_out)`` weight;
    * ``'im2col'``: the Kt taps gathered into the channel axis, one matmul;
    * ``'conv_mmgrad'``: custom VJP: conv forward, polyphase-conv input gradient, kernel gradient as a
      matmul (im2col of the input with the output cotangent);
    * ``'conv_1dgrad'``: the same, kernel gradient from the conv in the ``(N*V, T, C)`` 1-D layout;
    * ``'dft'``: convolution theorem with matmul DFTs (fewest FLOPs for long kernels).

    The custom-VJP impls support reverse-mode AD only (``jax.grad``/``vjp``), not ``jax.jvp``.
    ``time_major=True``: inputs and outputs are ``(T, N, V, C)`` (see :class:`STGCNBlock`).
    """

    features: int
    kernel_size: int
    stride: int = 1
    impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"
    time_major: bool = False

    @nn.compact
    def __call__(self, x: Array, num_frames: int | None = None) -> Array:
        """``x (N, T, V, C_in)``; or, with ``num_frames``, ``x (N, 1, V, C_in)`` = that frame repeated
        ``num_frames`` times (computed by :func:`temporal_conv_of_constant`, whatever ``impl``)."""
        if self.impl not in TEMPORAL_IMPLS:
            raise ValueError(f"unknown temporal conv impl {self.impl!r}; choose one of {TEMPORAL_IMPLS}")
        inits = initializers(self.init_scheme)
        shape = (self.kernel_size, 1, x.shape[-1], self.features)
        kernel = self.param("kernel", inits["kernel"], shape, jnp.float32).astype(x.dtype)
        bias = self.param("bias", inits["bias_for"](shape), (self.features,), jnp.float32).astype(x.dtype)
        if num_frames is not None:
            return temporal_conv_of_constant(x, kernel, num_frames, self.stride, self.precision,
                                             self.time_major) + bias
        return temporal_conv(x, kernel, self.stride, self.impl, self.precision, self.time_major) + bias


def with_impls(model: ModuleT, temporal_impl: str | None = None, graph_impl: str | None = None) -> ModuleT:
    """``model`` (any module with ``temporal_impl`` / ``graph_impl`` fields: the classifier, the CVAE, a block)
    computing its temporal convolutions / graph contractions with the given formulation (:data:`TEMPORAL_IMPLS`,
    :data:`GRAPH_IMPLS`; same parameters, same numbers to float rounding). ``None`` keeps the model's."""
    swaps: dict[str, Any] = {}
    for field, value, allowed in (("temporal_impl", temporal_impl, TEMPORAL_IMPLS),
                                  ("graph_impl", graph_impl, GRAPH_IMPLS)):
        if value is None:
            continue
        if value not in allowed:
            raise ValueError(f"unknown {field} {value!r}; choose one of {allowed}")
        swaps[field] = value
    return model.clone(**swaps) if swaps else model


class STGCNBlock(nn.Module):
    """One ST-GCN block ``(N, T, V, C_in) -> (N, ceil(T/stride), V, C_out)``.

    Residual rule (official): none if ``residual=False``; identity if ``C_in == C_out`` and
    ``stride == 1``; otherwise a strided 1x1 projection followed by BN.

    ``block(x, train, num_frames=T)`` takes a *time-constant* input ``x (N, 1, V, C_in)`` standing for that
    frame repeated T times (the official decoder tiles its latent over (T, V)): the graph conv, its BN and
    ReLU and the residual run once per (n, v) and the temporal conv is
    :func:`temporal_conv_of_constant`. Same output and gradients as the block on the repeated input (BN
    batch statistics over (N, 1, V) equal those over (N, T, V) of the repetition), same parameters.

    ``temporal_impl`` and ``graph_impl`` choose how :class:`TemporalConv` and :class:`GraphConv` compute (same
    parameters and numbers; ``'auto'`` picks per layer shape).

    ``time_major=True``: the block takes and returns ``(T, N, V, C)`` (with ``num_frames``, ``(1, N, V, C)``):
    the 'dft' temporal conv then needs no transpose. Every other layer treats the leading axes alike, so the
    numbers are the same, except the dropout masks (drawn for the other layout).
    """

    features: int
    adjacency: np.ndarray
    kernel_size: int = 75
    stride: int = 1
    residual: bool = True
    edge_importance: bool = True
    dropout: float = 0.0
    temporal_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"
    graph_impl: str = "auto"
    time_major: bool = False

    @nn.compact
    def __call__(self, x: Array, train: bool, num_frames: int | None = None) -> Array:
        if num_frames is not None and x.shape[0 if self.time_major else 1] != 1:
            layout = "(1, N, V, C)" if self.time_major else "(N, 1, V, C)"
            raise ValueError(f"with num_frames the input must be one frame {layout}, got {x.shape}")
        if self.kernel_size % 2 != 1:  # 'same' padding (Kt-1)/2 on both sides needs an odd kernel (as official)
            raise ValueError(f"STGCNBlock needs an odd temporal kernel_size, got {self.kernel_size}")
        if not self.residual:
            res: float | Array = 0.0
        elif x.shape[-1] == self.features and self.stride == 1:
            res = x
        else:
            res = dense(self.features, self.init_scheme, x.shape[-1], self.precision,
                        name="residual_proj")(x[::self.stride] if self.time_major else x[:, ::self.stride])
            res = batch_norm(train, self.init_scheme, name="residual_bn")(res)
        h = GraphConv(self.features, self.adjacency, edge_importance=self.edge_importance,
                      init_scheme=self.init_scheme, precision=self.precision, impl=self.graph_impl, name="gcn")(x)
        h = nn.relu(batch_norm(train, self.init_scheme, name="gcn_bn")(h))
        h = TemporalConv(self.features, self.kernel_size, self.stride, self.temporal_impl, self.init_scheme,
                         self.precision, self.time_major, name="tcn")(h, num_frames)
        h = batch_norm(train, self.init_scheme, name="tcn_bn")(h)
        h = dropout(self.dropout, train)(h)
        return nn.relu(h + res)  # a time-constant residual broadcasts over the frames


class STGCNStack(nn.Module):
    """A sequence of :class:`STGCNBlock` with per-block channels, strides and residual flags:
    ``(N, T, V, C_in) -> (N, T', V, channels[-1])``, ``T'`` = T divided by the strides (rounded up); with
    ``time_major=True``, ``(T, N, V, C_in) -> (T', N, V, channels[-1])`` (see :class:`STGCNBlock`)."""

    channels: Sequence[int]
    strides: Sequence[int]
    residuals: Sequence[bool]
    adjacency: np.ndarray
    kernel_size: int = 75
    edge_importance: bool = True
    dropout: float = 0.0
    temporal_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"
    graph_impl: str = "auto"
    time_major: bool = False

    @nn.compact
    def __call__(self, x: Array, train: bool, num_frames: int | None = None) -> Array:
        """``num_frames``: ``x (N, 1, V, C)`` (time-major: ``(1, N, V, C)``) is time-constant (see
        :class:`STGCNBlock`); only the first block can use that, the later ones see its time-varying output."""
        if not len(self.channels) == len(self.strides) == len(self.residuals):
            raise ValueError("channels, strides and residuals must have the same length")
        for i, (c, s, r) in enumerate(zip(self.channels, self.strides, self.residuals)):
            x = STGCNBlock(c, self.adjacency, kernel_size=self.kernel_size, stride=s, residual=r,
                           edge_importance=self.edge_importance, dropout=self.dropout,
                           temporal_impl=self.temporal_impl, graph_impl=self.graph_impl,
                           init_scheme=self.init_scheme, precision=self.precision, time_major=self.time_major,
                           name=f"block{i}")(x, train, num_frames if i == 0 else None)
        return x
