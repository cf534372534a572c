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

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[..., Array]

BN_EPS = 1e-5
BN_MOMENTUM = 0.9
TEMPORAL_IMPLS = ("conv", "toeplitz")


def official_initializers() -> dict[str, Initializer]:
    """The official ``weights_init``: conv kernels ~ N(0, 0.02), biases 0, BN scale ~ N(1, 0.02)."""
    return {
        "kernel": nn.initializers.normal(0.02),
        "bn_scale": lambda key, shape, dtype=jnp.float32: 1.0 + 0.02 * jax.random.normal(key, shape, dtype),
    }


def default_initializers() -> dict[str, Initializer]:
    """Flax defaults (LeCun normal kernels, unit BN scale); the stepjax default for new training."""
    return {"kernel": nn.initializers.lecun_normal(), "bn_scale": nn.initializers.ones}


def initializers(name: str) -> dict[str, Initializer]:
    if name == "official":
        return official_initializers()
    if name == "default":
        return default_initializers()
    raise ValueError(f"unknown init {name!r}; choose 'official' or 'default'")


def batch_norm(train: bool, init: str, axis: int | tuple[int, ...] = -1, name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPS, axis=axis,
                        scale_init=initializers(init)["bn_scale"], name=name)


class JointBatchNorm(nn.Module):
    """``data_bn``: normalises every (joint, channel) pair over batch and time. ``(N,T,V,C) -> same``."""

    init_scheme: str = "default"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        return batch_norm(train, self.init_scheme, axis=(-2, -1), name="bn")(x)


class GraphConv(nn.Module):
    """Spatial graph convolution ``(N, T, V, C_in) -> (N, T, V, C_out)`` with a fixed partition A.

    Attributes:
      features: C_out.
      adjacency: ``(K, V, V)`` numpy constant, ``A[k, v, w]`` = weight from joint v into joint w.
      edge_importance: multiply A by a learnable ``(K, V, V)`` mask initialised to ones.
    """

    features: int
    adjacency: np.ndarray
    edge_importance: bool = True
    init_scheme: str = "default"
    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.adjacency.shape[0]
        a = jnp.asarray(self.adjacency, x.dtype)
        if self.edge_importance:
            a = a * self.param("edge_importance", nn.initializers.ones, a.shape, jnp.float32).astype(x.dtype)
        y = nn.Dense(k * self.features, kernel_init=initializers(self.init_scheme)["kernel"],
                     precision=self.precision, name="proj")(x)
        y = y.reshape(*y.shape[:-1], k, self.features)  # k-major channel split
        return jnp.einsum("ntvkc,kvw->ntwc", y, a, precision=self.precision)


def _toeplitz_temporal_conv(x: Array, kernel: Array, stride: int, pad: int, precision) -> Array:
    """Temporal conv as one contraction with a banded (Toeplitz) weight ``(T_in, T_out, C_in, C_out)``."""
    kt = kernel.shape[0]
    t_in = x.shape[1]
    t_out = (t_in + 2 * pad - kt) // stride + 1
    tap = np.arange(t_in)[:, None] - np.arange(t_out)[None, :] * stride + pad  # (T_in, T_out)
    valid = (tap >= 0) & (tap < kt)
    band = jnp.where(valid[:, :, None, None], kernel[np.clip(tap, 0, kt - 1), 0], 0.0)
    return jnp.einsum("nsvc,stco->ntvo", x, band, precision=precision)


class TemporalConv(nn.Module):
    """``(Kt, 1)`` convolution over time, 'same' padding ``(Kt-1)//2``, stride ``(stride, 1)``.

    ``impl``: ``'conv'`` (``lax.conv_general_dilated``) or ``'toeplitz'`` (a single einsum with a
    banded weight; its weight gradient is a matmul, which XLA:CPU runs much faster than a conv
    weight gradient). Both give the same numbers to float32 rounding; parameters are identical
    (``kernel (Kt, 1, C_in, C_out)``, ``bias (C_out,)``), so checkpoints are interchangeable.
    """

    features: int
    kernel_size: int
    stride: int = 1
    impl: str = "conv"
    init_scheme: str = "default"
    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.impl not in TEMPORAL_IMPLS:
            raise ValueError(f"unknown temporal conv impl {self.impl!r}; choose one of {TEMPORAL_IMPLS}")
        kernel = self.param("kernel", initializers(self.init_scheme)["kernel"],
                            (self.kernel_size, 1, x.shape[-1], self.features), jnp.float32).astype(x.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(x.dtype)
        pad = (self.kernel_size - 1) // 2
        if self.impl == "conv":
            y = jax.lax.conv_general_dilated(
                x, kernel, window_strides=(self.stride, 1), padding=((pad, pad), (0, 0)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision)
        else:
            y = _toeplitz_temporal_conv(x, kernel, self.stride, pad, self.precision)
        return y + bias


class STGCNBlock(nn.Module):
    """One ST-GCN block ``(N, T, V, C_in) -> (N, ceil(T/stride), V, C_out)``.

    Residual rule (official): none if ``residual=False``; identity if ``C_in == C_out`` and
    ``stride == 1``; otherwise a strided 1x1 projection followed by BN.
    """

    features: int
    adjacency: np.ndarray
    kernel_size: int = 75
    stride: int = 1
    residual: bool = True
    edge_importance: bool = True
    dropout: float = 0.0
    temporal_impl: str = "conv"
    init_scheme: str = "default"
    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        dense_init = initializers(self.init_scheme)["kernel"]
        if not self.residual:
            res = 0.0
        elif x.shape[-1] == self.features and self.stride == 1:
            res = x
        else:
            res = nn.Dense(self.features, kernel_init=dense_init, precision=self.precision,
                           name="residual_proj")(x[:, ::self.stride])
            res = batch_norm(train, self.init_scheme, name="residual_bn")(res)
        h = GraphConv(self.features, self.adjacency, self.edge_importance, self.init_scheme, self.precision, name="gcn")(x)
        h = nn.relu(batch_norm(train, self.init_scheme, name="gcn_bn")(h))
        h = TemporalConv(self.features, self.kernel_size, self.stride, self.temporal_impl, self.init_scheme,
                         self.precision, name="tcn")(h)
        h = batch_norm(train, self.init_scheme, name="tcn_bn")(h)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return nn.relu(h + res)


class STGCNStack(nn.Module):
    """A sequence of :class:`STGCNBlock` with per-block channels, strides and residual flags."""

    channels: Sequence[int]
    strides: Sequence[int]
    residuals: Sequence[bool]
    adjacency: np.ndarray
    kernel_size: int = 75
    edge_importance: bool = True
    dropout: float = 0.0
    temporal_impl: str = "conv"
    init_scheme: str = "default"
    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        if not len(self.channels) == len(self.strides) == len(self.residuals):
            raise ValueError("channels, strides and residuals must have the same length")
        for i, (c, s, r) in enumerate(zip(self.channels, self.strides, self.residuals)):
            x = STGCNBlock(c, self.adjacency, self.kernel_size, s, r, self.edge_importance, self.dropout,
                           self.temporal_impl, self.init_scheme, self.precision, name=f"block{i}")(x, train)
        return x
