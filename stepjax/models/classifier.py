"""STEP classifiers: Baseline-STEP (deep features only) and STEP (deep + affective features).

Input: preprocessed gaits ``(N, T, 16, 3)`` and, for STEP, affective features ``(N, F)``.
Output: ``(logits (N, num_classes), deep_features (N, channels[-1]))``. No softmax is applied
(the official real_only model applies one before its cross-entropy: bug 10, reproduced only by the
``official_double_softmax`` loss option in :mod:`stepjax.losses`).

Official trunks (STEP_REFERENCE section 5):
* ``real_only`` (Baseline-STEP checkpoint): channels 32/64/64, strides 1/2/1, every block residual.
* ``real_and_synth`` / ``hybrid``: strides 1/2/2 and no residual in the first block.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from stepjax import NUM_CLASSES, skeleton
from stepjax.nn import JointBatchNorm, STGCNStack, batch_norm, dense, dropout, tuple_fields

Array = jax.Array

TRUNKS: dict[str, dict[str, Any]] = {
    "real_only": dict(strides=(1, 2, 1), residuals=(True, True, True)),
    "hybrid": dict(strides=(1, 2, 2), residuals=(False, True, True)),
}
HEADS = ("mlp", "official")
#: The options that make :class:`STEPClassifier` the official network, quirks included (the inf-hop adjacency and
#: the official initialisation; the defaults are the fixed behaviour): ``STEPClassifier(**OFFICIAL_OPTIONS,
#: **TRUNKS['real_only'])`` is the official Baseline-STEP. The official head of STEP (bug 11) is
#: ``head='official'``, separate because Baseline-STEP has no such head.
OFFICIAL_OPTIONS = dict(official_adjacency=True, init_scheme="official")


class STEPClassifier(nn.Module):
    """ST-GCN gait classifier, optionally fused with affective features.

    Attributes:
      num_affective: 0 for Baseline-STEP; F (27 or 29) for STEP, which then needs ``affective``.
      head: for STEP, ``'mlp'`` = BN(64+F) -> Dense(hidden) -> ReLU -> Dropout -> Dense(classes)
        (the paper's FC layer with a nonlinearity), or ``'official'`` = BN(64+F) -> Dense(96) ->
        Dense(classes) with nothing in between (the official two stacked 1x1 convs, bug 11).
        Baseline-STEP always uses a single Dense(classes) on the pooled feature.
      official_adjacency: use the official graph partition (with the inf-hop quirk), see
        :func:`stepjax.skeleton.spatial_adjacency`; default ``False``: true hop distances (see
        :data:`OFFICIAL_OPTIONS`).
    """

    num_classes: int = NUM_CLASSES
    channels: Sequence[int] = (32, 64, 64)
    strides: Sequence[int] = (1, 2, 1)
    residuals: Sequence[bool] = (True, True, True)
    kernel_size: int = 75
    num_affective: int = 0
    head: str = "mlp"
    hidden: int = 128
    head_dropout: float = 0.0
    dropout: float = 0.0
    edge_importance: bool = True
    official_adjacency: bool = False
    temporal_impl: str = "auto"
    graph_impl: str = "auto"
    init_scheme: str = "default"
    precision: Any = "highest"

    def __post_init__(self):
        tuple_fields(self, "channels", "strides", "residuals")
        super().__post_init__()

    @nn.compact
    def __call__(self, gaits: Array, affective: Array | None = None, train: bool = False) -> tuple[Array, Array]:
        if gaits.ndim != 4 or gaits.shape[-2:] != (skeleton.NUM_JOINTS, 3):
            raise ValueError(f"gaits must be (N, T, 16, 3), got {gaits.shape}")
        if self.num_affective and (affective is None or affective.shape != (gaits.shape[0], self.num_affective)):
            got = None if affective is None else affective.shape
            raise ValueError(f"this STEP model needs affective features of shape (N, {self.num_affective}), got {got}")
        if not self.num_affective and affective is not None and affective.shape[-1]:
            raise ValueError(f"this Baseline-STEP model (num_affective=0) takes no affective features, got "
                             f"{affective.shape}: pass None, or build the model with num_affective")
        adjacency = skeleton.spatial_adjacency(official=self.official_adjacency)
        x = JointBatchNorm(self.init_scheme, name="data_bn")(gaits, train)
        x = STGCNStack(self.channels, self.strides, self.residuals, adjacency, kernel_size=self.kernel_size,
                       edge_importance=self.edge_importance, dropout=self.dropout, temporal_impl=self.temporal_impl,
                       graph_impl=self.graph_impl, init_scheme=self.init_scheme, precision=self.precision,
                       name="trunk")(x, train)
        features = x.mean(axis=(1, 2))
        linear = lambda n, name, x: dense(n, self.init_scheme, x.shape[-1], self.precision, name=name)(x)  # noqa: E731
        if not self.num_affective:
            return linear(self.num_classes, "head", features), features
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {HEADS}")
        if train and gaits.shape[0] < 2:  # PyTorch's BatchNorm1d raises here too
            raise ValueError("training STEP needs batches of at least 2 gaits: fusion_bn normalises each feature "
                             "over the batch, so one gait gives all zeros and no gradient")
        assert affective is not None  # refused at the top when num_affective is set
        h = jnp.concatenate([features, affective.astype(features.dtype)], axis=-1)
        h = batch_norm(train, self.init_scheme, name="fusion_bn")(h)
        if self.head == "official":
            h = linear(96, "fc1", h)
        else:
            h = nn.relu(linear(self.hidden, "fc1", h))
            h = dropout(self.head_dropout, train)(h)
        return linear(self.num_classes, "fc2", h), features
