"""STEP-Gen: the ST-GCN conditional VAE (STEP_REFERENCE section 4.1), built from :mod:`stepjax.nn` blocks.

Layout: gaits ``(N, T, 16, 3)`` (stepjax NHWC), labels one-hot ``(N, num_classes)``.

Official architecture (``generator_cvae/net/CVAE_stgcn.py``, e105 checkpoint: 876,484 trainable params)::

    Encoder: concat(x, one-hot as 4 constant channels) -> data_bn over (V, 7)
             -> st_gcn 7->64 (residual 1x1+BN) -> 64->32 (1x1+BN) -> 32->32 (identity)
             -> mean over (T, V) -> Dense heads mu, logvar (32 each)
    z = eps * exp(0.5 * logvar) + mu
    Decoder: concat(z, one-hot) -> Dense 36->32 (a 1x1 ConvTranspose) -> tile over (T, V)
             -> st_gctn 32->32 (identity) -> 32->64 (1x1+BN) -> 64->3 (1x1+BN, ends in ReLU)
             -> data_bn over (V, 3)

With ``temporal_code='none'`` (the official decoder) the tiled latent is passed as one frame to the first block,
which computes the T identical frames' graph conv once and their temporal conv from partial kernel sums
(``STGCNBlock(..., num_frames=T)``): the same numbers with ~25 % fewer decoder FLOPs (bench/NOTES.md, session
5). The other temporal codes vary over time, so their first block sees T frames.

The decoder's ``st_gctn`` blocks use ``ConvTranspose2d``; at stride 1 a transposed conv is a conv with the
kernel flipped in time and in/out swapped, and the graph part is not transposed (it uses A, not A^T), so
they are exactly :class:`stepjax.nn.STGCNBlock` here; :func:`stepjax.official.cvae_variables_from_state_dict`
does the weight flip. Edge importance is off in both halves (as in the official CVAE).

Options (the defaults are the fixed, phase-aware form of ``configs/step_gen.py``;
``STEPGenCVAE(**OFFICIAL_OPTIONS)`` is the official network, quirks included, which
:func:`stepjax.official.load_official_cvae` builds):

* ``temporal_code``: the official decoder input is the *same* vector at every (frame, joint)
  (``'none'``). Temporal variation can then only come from the node-dependent adjacency and the
  zero-padding boundary effects of the 75-tap temporal convolutions (a likely cause of the "dragging
  legs" of issue #7; bug 15). ``'sinusoidal'`` adds a fixed sinusoidal encoding of the frame index
  (see :func:`sinusoidal_time_encoding`, periods geometric between ``min_period`` and ``max_period``
  frames, independent of T so it works for any sequence length) to the tiled latent before the first
  block. ``'modulated'`` (the default) lets the latent shape the motion instead: the decoder input
  is ``h(t) = a(z, y) + B(z, y) code(t)``, a ``Dense`` of ``(z, y)`` plus a second ``Dense`` (``fcn_code``) to a
  ``(hidden, code_dim)`` matrix that weights the ``code_dim`` sinusoids of :func:`sinusoidal_time_encoding`
  (scaled by ``1/sqrt(code_dim/2)`` so that the modulated term starts at ``a``'s scale): z sets amplitudes and
  phases per channel.
* ``joint_embedding`` (default ``True``): adds a learned per-joint vector ``(V, hidden)`` (initialised
  N(0, 0.02)) to the decoder input, so that joints are distinguishable at the input. Without it (``False``, the
  official form) the input is the same at every joint and nothing in the trunk is per joint, so mirror-twin joints
  hold equal states in every layer and every generated right-limb coordinate is an affine image of its left
  twin's (README, "Mirror-tied limbs"); on the walkers the embedding cut the validation reconstruction error
  2.3-2.7x and FID by 17-68 % (3 seeds, docs/generator.md).
* ``temporal_pooling``: the official encoder averages its last block over (T, V) (``'mean'``), blind to *when*
  a feature occurs; ``'sinusoidal'`` (the default) also projects each channel on the ``code_dim``
  sinusoids of time, so the heads see ``C * (1 + code_dim)`` values: each channel's mean and phases.
* ``official_output_relu``: officially the last block ends in ReLU (``STGCNBlock`` always does), so the
  output is an affine BN image of a non-negative tensor and ~5 % of decoded values sit exactly at the
  BN image of 0 (bug 15). With ``official_output_relu=False`` (the default) the last block keeps the width of the one
  before it (64 -> 64, identity residual) and a *linear* per-(frame, joint) ``Dense(64 -> 3)``
  (``output_proj``) maps to coordinates before the output BN: no ReLU acts on the coordinates.
  (Removing the ReLU from the 64->3 block itself would need an activation flag on
  :class:`stepjax.nn.STGCNBlock`, which the shared blocks do not have.)
* ``official_adjacency``: the official graph partition with its inf-hop quirk
  (:func:`stepjax.skeleton.spatial_adjacency`); default ``False``, true hop distances.
* ``init_scheme='official'``: what the official ``weights_init`` leaves: the encoder's convs ~ N(0, 0.02) with
  zero biases and every BN scale ~ N(1, 0.02); the decoder's ``ConvTranspose2d`` layers (``fcn``, every
  ``st_gctn`` graph and temporal conv and residual) are *not* matched by ``weights_init`` (the class name does
  not contain ``Conv2d``, bug 18) and keep PyTorch's default kaiming-uniform(a=sqrt(5)) init, kernels and
  biases ~ U(-1/sqrt(fan), 1/sqrt(fan)) with PyTorch's fan of a transposed weight, ``out_channels * kT``
  (the decoder uses ``stepjax.nn`` scheme ``'official_transposed'``). Only matters for training from scratch.

* ``quotient_joints`` (default ``True``; how the decoder computes, not what): the trunk's input is the same at
  every joint unless ``joint_embedding=True``, and nothing in the trunk is per joint, so mirror-twin joints hold
  equal states in every layer (:func:`stepjax.skeleton.equitable_partition`: 10 cells of the 16 joints). In eval
  mode the decoder then runs its trunk on one joint per cell with the quotient graph, time-major, and copies each
  cell to its joints before the per-joint ``data_bn``: the same gaits to float32 rounding with 1.6x fewer FLOPs.
  Train mode computes all 16 joints (BatchNorm's batch statistics weigh every joint). The same symmetry ties the
  generated limbs: every right-limb coordinate is an affine image of its left twin's (README, "Mirror-tied
  limbs").

Sampling: ``__call__`` and :meth:`STEPGenCVAE.sample` draw from the ``'sample'`` RNG stream
(``model.apply(variables, x, y, rngs={'sample': key})``) unless an explicit ``rng`` is given. The
official ``Processor.generate`` samples ``z = 3 * randn - 1.5`` (bug 14); :func:`sample_latent` offers both.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from stepjax import NUM_CLASSES, skeleton
from stepjax.nn import JointBatchNorm, STGCNStack, dense, tuple_fields

Array = jax.Array

TEMPORAL_CODES = ("none", "sinusoidal", "modulated")
TEMPORAL_POOLINGS = ("mean", "sinusoidal")
#: The official sampler's constant: ``z = randn * OFFICIAL_MAX_Z * 2 - OFFICIAL_MAX_Z`` = N(-1.5, 3^2) per
#: dimension (named ``max_z`` in the official code; not a bound: see :func:`sample_latent`).
OFFICIAL_MAX_Z = 1.5
#: The options that make :class:`STEPGenCVAE` the official ``CVAE(3, 75, 16, 32, 4)``, quirks included (bug 15,
#: the inf-hop adjacency and the official initialisation, bug 18); the defaults are the fixed, phase-aware form
#: (module docstring).
OFFICIAL_OPTIONS = dict(temporal_code="none", temporal_pooling="mean", official_output_relu=True,
                        official_adjacency=True, init_scheme="official", joint_embedding=False)


def sinusoidal_time_encoding(num_frames: int, dim: int, min_period: float = 4.0,
                             max_period: float = 300.0) -> np.ndarray:
    """Fixed encoding of the frame index, ``(num_frames, dim)`` float32 in [-1, 1].

    Channels come in (sin, cos) pairs with periods spaced geometrically from ``min_period`` to
    ``max_period`` frames (one gait cycle is ~30 frames at 30 fps). An odd last channel is a sine.
    It depends only on the absolute frame index, so frame t is encoded the same for any sequence length.
    """
    half = max(dim // 2, 1)
    periods = min_period * (max_period / min_period) ** (np.arange(half) / max(half - 1, 1))
    angles = 2 * np.pi * np.arange(num_frames)[:, None] / periods[None, :]  # (T, half)
    enc = np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(num_frames, 2 * half)
    if dim > 2 * half:  # dim odd (dim == 1 included)
        enc = np.concatenate([enc, np.sin(angles[:, -1:])], axis=-1)
    return enc[:, :dim].astype(np.float32)


def reparameterize(mu: Array, logvar: Array, eps: Array) -> Array:
    """``z = eps * exp(0.5 * logvar) + mu`` (the official operation order); all ``(N, latent_dim)``."""
    return eps * jnp.exp(0.5 * logvar) + mu


def sample_latent(rng: Array, shape: Sequence[int], official: bool = False, dtype=jnp.float32) -> Array:
    """Prior samples: N(0, I), or with ``official=True`` the official sampler ``randn * 1.5 * 2 - 1.5``
    (= N(-1.5, 3^2) per dimension; bug 14)."""
    eps = jax.random.normal(rng, tuple(shape), dtype)
    return eps * OFFICIAL_MAX_Z * 2 - OFFICIAL_MAX_Z if official else eps


def onehot_labels(labels: Array, num_classes: int, batch: int | None = None, dtype=jnp.float32, *,
                  check_rows: bool = False) -> Array:
    """The CVAE's condition ``(N, num_classes)`` from integer labels ``(N,)`` or one-hot rows ``(N, K)``.

    Concrete integer labels outside ``[0, num_classes)`` raise ``ValueError`` (one-hot would turn them into an
    all-zero condition of no class); traced ones (inside the caller's ``jit``) cannot raise, so their rows
    become NaN and the gaits decoded from them are NaN instead of silently wrong. With ``check_rows`` (the
    sampling API of :mod:`stepjax.generation`) concrete rows must be one-hot or a mixture of classes
    (non-negative, summing to 1); the modules accept any rows (e.g. the zeros of a dummy ``init`` batch).
    ``batch`` checks ``N``.
    """
    labels = jnp.asarray(labels)
    if labels.ndim == 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        if not isinstance(labels, jax.core.Tracer):
            from stepjax.data.preprocess import validate_labels

            validate_labels(labels, "labels", num_classes)
        valid = (labels >= 0) & (labels < num_classes)
        labels = jnp.where(valid[:, None], jax.nn.one_hot(labels, num_classes, dtype=dtype), jnp.nan)
    if labels.ndim == 1:
        raise ValueError(f"labels (N,) must be integer class indices, got dtype {labels.dtype} (or pass one-hot "
                         f"rows (N, {num_classes}))")
    n = labels.shape[0] if batch is None and labels.ndim else batch
    if labels.ndim != 2 or labels.shape != (n, num_classes):
        raise ValueError(f"labels must be one-hot ({n or 'N'}, {num_classes}) or integer ({n or 'N'},), "
                         f"got {labels.shape}")
    if check_rows and not isinstance(labels, jax.core.Tracer):  # one-hot or a mixture of classes, nothing else
        rows = np.asarray(labels, np.float64)
        atol = max(1e-3, num_classes * float(jnp.finfo(labels.dtype).eps)) if jnp.issubdtype(
            labels.dtype, jnp.floating) else 1e-3  # bfloat16 rows of a mixture sum to 1 within ~K eps
        bad = np.flatnonzero(~(np.all(np.isfinite(rows) & (rows >= 0), axis=-1)
                               & np.isclose(rows.sum(axis=-1), 1.0, atol=atol)))
        if bad.size:
            raise ValueError(f"one-hot label rows must be non-negative and sum to 1 (one class, or a mixture of "
                             f"classes), rows {bad[:5].tolist()} are not, e.g. {rows[bad[0]].tolist()}")
    return labels.astype(dtype)


def _check_gaits(x: Array) -> None:
    if x.ndim != 4 or x.shape[-2:] != (skeleton.NUM_JOINTS, skeleton.NUM_COORDS):
        raise ValueError(f"gaits must be (N, T, {skeleton.NUM_JOINTS}, {skeleton.NUM_COORDS}), got {x.shape}")


def _trunk(half: nn.Module, channels: Sequence[int], init_scheme: str, adjacency: np.ndarray | None = None,
           time_major: bool = False) -> STGCNStack:
    """The ST-GCN stack of either half (an encoder or decoder module, read for its shared fields): stride 1 and
    a residual in every block, no edge importance (as the official CVAE). ``adjacency``: the skeleton's partition
    (``None``) or the decoder's quotient graph; ``time_major``: the stack's layout (same parameters)."""
    if adjacency is None:
        adjacency = skeleton.spatial_adjacency(official=half.official_adjacency)
    return STGCNStack(tuple(channels), (1,) * len(channels), (True,) * len(channels), adjacency, half.kernel_size,
                      edge_importance=False, dropout=half.dropout, temporal_impl=half.temporal_impl,
                      graph_impl=half.graph_impl, init_scheme=init_scheme, precision=half.precision,
                      time_major=time_major, name="trunk")


class CVAEEncoder(nn.Module):
    """``(gaits (N,T,V,3), one-hot (N,K)) -> (mu (N,Z), logvar (N,Z))``."""

    latent_dim: int = 32
    num_classes: int = NUM_CLASSES
    channels: Sequence[int] = (64, 32, 32)
    kernel_size: int = 75
    dropout: float = 0.0
    temporal_pooling: str = "sinusoidal"
    code_dim: int = 32
    min_period: float = 4.0
    max_period: float = 300.0
    official_adjacency: bool = False
    temporal_impl: str = "auto"
    graph_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"

    @nn.compact
    def __call__(self, x: Array, labels_onehot: Array, train: bool = False) -> tuple[Array, Array]:
        _check_gaits(x)
        if self.temporal_pooling not in TEMPORAL_POOLINGS:
            raise ValueError(f"unknown temporal_pooling {self.temporal_pooling!r}; choose one of {TEMPORAL_POOLINGS}")
        n, t, v, _ = x.shape
        y = onehot_labels(labels_onehot, self.num_classes, n, x.dtype)
        h = jnp.concatenate([x, jnp.broadcast_to(y[:, None, None, :], (n, t, v, self.num_classes))], axis=-1)
        h = JointBatchNorm(self.init_scheme, name="data_bn")(h, train)  # (V, 3+K) = official index v*(3+K)+c
        h = _trunk(self, self.channels, self.init_scheme)(h, train)
        if self.temporal_pooling == "mean":
            h = h.mean(axis=(1, 2))  # (N, C): blind to *when* a feature occurs
        else:  # (N, C * (1 + D)): the mean and the projections of each channel on D sinusoids of time
            code = jnp.asarray(sinusoidal_time_encoding(t, self.code_dim, self.min_period, self.max_period), h.dtype)
            basis = jnp.concatenate([jnp.ones((t, 1), h.dtype), code], axis=-1)  # (T, 1 + D)
            h = jnp.einsum("ntvc,td->ncd", h, basis, precision=self.precision).reshape(n, -1) / (t * v)
        def head(name):
            return dense(self.latent_dim, self.init_scheme, h.shape[-1], self.precision, name=name)(h)

        return head("z_mean"), head("z_logvar")


def _mirror_cells(official_adjacency: bool) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's joint cells (:func:`stepjax.skeleton.equitable_partition`: the 10 mirror classes of the 16
    joints) and its quotient graph ``(3, 10, 10)``."""
    adjacency = skeleton.spatial_adjacency(official=official_adjacency)
    cells = skeleton.equitable_partition(adjacency)
    return cells, skeleton.quotient_adjacency(adjacency, cells)


class CVAEDecoder(nn.Module):
    """``(z (N,Z), one-hot (N,K), num_frames) -> gaits (N, num_frames, V, 3)``. See the module docstring."""

    latent_dim: int = 32
    num_classes: int = NUM_CLASSES
    channels: Sequence[int] = (32, 64, 3)
    kernel_size: int = 75
    dropout: float = 0.0
    temporal_code: str = "modulated"
    code_dim: int = 32
    joint_embedding: bool = True
    min_period: float = 4.0
    max_period: float = 300.0
    official_output_relu: bool = False
    official_adjacency: bool = False
    temporal_impl: str = "auto"
    graph_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"
    quotient_joints: bool = True

    @nn.compact
    def __call__(self, z: Array, labels_onehot: Array, num_frames: int = 75, train: bool = False) -> Array:
        if self.temporal_code not in TEMPORAL_CODES:
            raise ValueError(f"unknown temporal_code {self.temporal_code!r}; choose one of {TEMPORAL_CODES}")
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must be (N, {self.latent_dim}), got {z.shape}")
        if self.channels[-1] != skeleton.NUM_COORDS:
            raise ValueError(f"the last decoder channel count must be {skeleton.NUM_COORDS}, got {self.channels}")
        n, v = z.shape[0], skeleton.NUM_JOINTS
        y = onehot_labels(labels_onehot, self.num_classes, n, z.dtype)
        # the official decoder's layers are ConvTranspose2d, which the official weights_init skips (bug 18)
        scheme = "official_transposed" if self.init_scheme == "official" else self.init_scheme
        hidden = self.latent_dim
        zy = jnp.concatenate([z, y], axis=-1)
        h = dense(hidden, scheme, zy.shape[-1], self.precision, name="fcn")(zy)
        if self.temporal_code == "modulated":  # h(t) = a(z, y) + B(z, y) code(t): z sets amplitudes and phases
            code: Array | np.ndarray = jnp.asarray(sinusoidal_time_encoding(num_frames, self.code_dim, self.min_period,
                                                                           self.max_period), h.dtype)
            b = dense(hidden * self.code_dim, scheme, zy.shape[-1], self.precision,
                      name="fcn_code")(zy).reshape(n, hidden, self.code_dim)
            # the modulated term starts at a's scale; a Python float (weakly typed) keeps float32 under x64
            code = code / float(np.sqrt(max(self.code_dim // 2, 1)))
            h = h[:, None, :] + jnp.einsum("nhd,td->nth", b, code, precision=self.precision)
            h = jnp.broadcast_to(h[:, :, None, :], (n, num_frames, v, hidden))
        else:  # the same vector at every (t, v): one frame ('none' keeps it so; 'sinusoidal' adds T frames below)
            h = jnp.broadcast_to(h[:, None, None, :], (n, 1, v, hidden))
        if self.temporal_code == "sinusoidal":
            code = sinusoidal_time_encoding(num_frames, hidden, self.min_period, self.max_period)
            h = h + jnp.asarray(code, h.dtype)[None, :, None, :]
        if self.joint_embedding:
            emb = self.param("joint_embedding", nn.initializers.normal(0.02), (v, hidden), jnp.float32)
            h = h + emb.astype(h.dtype)[None, None]
        channels = tuple(self.channels)
        if not self.official_output_relu:
            channels = channels[:-1] + (channels[-2] if len(channels) > 1 else hidden,)
        constant = num_frames if h.shape[1] == 1 else None
        if self.quotient_joints and not train and not self.joint_embedding:  # the same input at every joint
            cells, adjacency = _mirror_cells(self.official_adjacency)
            h = jnp.swapaxes(h[:, :, :adjacency.shape[1]], 0, 1)  # one joint per cell, time-major
            h = jnp.swapaxes(_trunk(self, channels, scheme, adjacency, time_major=True)(h, train, constant), 0, 1)
        else:
            cells = None
            h = _trunk(self, channels, scheme)(h, train, constant)
        if not self.official_output_relu:
            h = dense(self.channels[-1], scheme, h.shape[-1], self.precision, name="output_proj")(h)
        if cells is not None:
            h = h[:, :, cells]  # every joint takes its cell's state
        return JointBatchNorm(scheme, name="data_bn")(h, train)


class STEPGenCVAE(nn.Module):
    """STEP-Gen CVAE: the official sizes (``CVAE(3, 75, 16, 32, 4)``: z = 32, encoder 64/32/32, decoder 32/64/3,
    temporal kernel 75), by default in the fixed, phase-aware form; ``STEPGenCVAE(**OFFICIAL_OPTIONS)`` is the
    official network (see the module docstring).

    Methods (use with ``model.apply(variables, ..., method=...)``):
      * ``__call__(x, labels_onehot, train=False, rng=None) -> (decoded, mu, logvar)``: encode,
        reparameterise with ``eps ~ N(0, I)`` from ``rng`` (or the ``'sample'`` stream), decode T frames.
      * ``encode(x, labels_onehot, train=False) -> (mu, logvar)``.
      * ``decode(z, labels_onehot, num_frames=75, train=False) -> gaits``.
      * ``sample(labels_onehot, num_frames=75, train=False, official_sampler=False, rng=None) -> gaits``:
        z from the prior (see :func:`sample_latent`), decoded.
    ``labels_onehot`` may also be integer labels ``(N,)``. In train mode BN uses batch statistics and
    ``batch_stats`` must be mutable.
    """

    latent_dim: int = 32
    num_classes: int = NUM_CLASSES
    encoder_channels: Sequence[int] = (64, 32, 32)
    decoder_channels: Sequence[int] = (32, 64, 3)
    kernel_size: int = 75
    dropout: float = 0.0
    temporal_code: str = "modulated"
    temporal_pooling: str = "sinusoidal"
    code_dim: int = 32
    joint_embedding: bool = True
    official_output_relu: bool = False
    official_adjacency: bool = False
    temporal_impl: str = "auto"
    graph_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"
    quotient_joints: bool = True

    def __post_init__(self):
        tuple_fields(self, "encoder_channels", "decoder_channels")
        super().__post_init__()

    def setup(self):
        common = dict(latent_dim=self.latent_dim, num_classes=self.num_classes, kernel_size=self.kernel_size,
                      dropout=self.dropout, official_adjacency=self.official_adjacency,
                      temporal_impl=self.temporal_impl, graph_impl=self.graph_impl, init_scheme=self.init_scheme,
                      precision=self.precision)
        self.encoder = CVAEEncoder(channels=self.encoder_channels, temporal_pooling=self.temporal_pooling,
                                   code_dim=self.code_dim, **common)
        self.decoder = CVAEDecoder(channels=self.decoder_channels, temporal_code=self.temporal_code,
                                   code_dim=self.code_dim,
                                   joint_embedding=self.joint_embedding,
                                   official_output_relu=self.official_output_relu,
                                   quotient_joints=self.quotient_joints, **common)

    def encode(self, x: Array, labels_onehot: Array, train: bool = False) -> tuple[Array, Array]:
        return self.encoder(x, labels_onehot, train)

    def decode(self, z: Array, labels_onehot: Array, num_frames: int = 75, train: bool = False) -> Array:
        return self.decoder(z, labels_onehot, num_frames, train)

    def __call__(self, x: Array, labels_onehot: Array, train: bool = False,
                 rng: Array | None = None) -> tuple[Array, Array, Array]:
        mu, logvar = self.encode(x, labels_onehot, train)
        rng = self.make_rng("sample") if rng is None else rng
        z = reparameterize(mu, logvar, jax.random.normal(rng, mu.shape, mu.dtype))
        return self.decode(z, labels_onehot, x.shape[1], train), mu, logvar

    def sample(self, labels_onehot: Array, num_frames: int = 75, train: bool = False,
               official_sampler: bool = False, rng: Array | None = None) -> Array:
        labels_onehot = jnp.asarray(labels_onehot)
        rng = self.make_rng("sample") if rng is None else rng
        z = sample_latent(rng, (labels_onehot.shape[0], self.latent_dim), official_sampler)
        return self.decode(z, labels_onehot, num_frames, train)
