"""Official STEP PyTorch checkpoints (as npz state_dicts) -> stepjax Flax variables.

Layout mapping (STEP_REFERENCE section 3.6, PyTorch NCHW with H = time, W = joints -> Flax NHWC):

==============================================  =================================================
PyTorch key                                     Flax path
==============================================  =================================================
``data_bn.{weight,bias,running_*}`` (V*C,)       ``data_bn/bn/{scale,bias,mean,var}`` reshaped (V, C)
``st_gcn_networks.i.gcn.conv.weight`` (K*O,I,1,1) ``trunk/block_i/gcn/proj/kernel`` = ``w[:, :, 0, 0].T``
``edge_importance.i`` (K,V,V)                     ``trunk/block_i/gcn/edge_importance``
``st_gcn_networks.i.tcn.0`` (BN)                  ``trunk/block_i/gcn_bn``
``st_gcn_networks.i.tcn.2.weight`` (O,I,Kt,1)     ``trunk/block_i/tcn/kernel`` (Kt,1,I,O) = ``transpose(2,3,1,0)``
``st_gcn_networks.i.tcn.3`` (BN)                  ``trunk/block_i/tcn_bn``
``st_gcn_networks.i.residual.{0,1}``              ``trunk/block_i/residual_{proj,bn}``
``fcn.weight`` (classes,64,1,1)                   ``head/kernel`` = ``w[:, :, 0, 0].T``
==============================================  =================================================

The k-major channel order of the graph conv (``k * C_out + c``) is kept as is. PyTorch stores the
unbiased running variance; it is copied unchanged (it is what eval-mode BN divides by).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from stepjax.models.classifier import TRUNKS, STEPClassifier


def _bn(sd: Mapping[str, np.ndarray], prefix: str, shape=None) -> tuple[dict, dict]:
    reshape = (lambda a: a.reshape(shape)) if shape else (lambda a: a)
    params = {"scale": reshape(sd[prefix + ".weight"]), "bias": reshape(sd[prefix + ".bias"])}
    stats = {"mean": reshape(sd[prefix + ".running_mean"]), "var": reshape(sd[prefix + ".running_var"])}
    return params, stats


def _dense_1x1(sd: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"kernel": sd[prefix + ".weight"][:, :, 0, 0].T, "bias": sd[prefix + ".bias"]}


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def classifier_variables_from_state_dict(sd: Mapping[str, np.ndarray], num_blocks: int = 3) -> dict:
    """Flax ``{'params', 'batch_stats'}`` of :class:`STEPClassifier` from an official real_only state_dict."""
    params: dict = {}
    stats: dict = {}
    p, s = _bn(sd, "data_bn", (16, -1))
    _set(params, ("data_bn", "bn"), p)
    _set(stats, ("data_bn", "bn"), s)
    for i in range(num_blocks):
        pre = f"st_gcn_networks.{i}"
        blk = ("trunk", f"block{i}")
        _set(params, blk + ("gcn", "proj"), _dense_1x1(sd, pre + ".gcn.conv"))
        if f"edge_importance.{i}" in sd:
            _set(params, blk + ("gcn", "edge_importance"), sd[f"edge_importance.{i}"])
        for torch_name, flax_name in ((".tcn.0", "gcn_bn"), (".tcn.3", "tcn_bn"), (".residual.1", "residual_bn")):
            if pre + torch_name + ".weight" in sd:
                p, s = _bn(sd, pre + torch_name)
                _set(params, blk + (flax_name,), p)
                _set(stats, blk + (flax_name,), s)
        _set(params, blk + ("tcn",), {"kernel": sd[pre + ".tcn.2.weight"].transpose(2, 3, 1, 0),
                                      "bias": sd[pre + ".tcn.2.bias"]})
        if pre + ".residual.0.weight" in sd:
            _set(params, blk + ("residual_proj",), _dense_1x1(sd, pre + ".residual.0"))
    params["head"] = _dense_1x1(sd, "fcn")
    to32 = lambda t: {k: to32(v) if isinstance(v, dict) else np.asarray(v, np.float32) for k, v in t.items()}
    return {"params": to32(params), "batch_stats": to32(stats)}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def load_official_classifier(path: str | os.PathLike, **model_kwargs) -> tuple[STEPClassifier, dict]:
    """The official real_only Baseline-STEP (e.g. ``official_classifier_real_only_e395.npz``).

    Returns ``(model, variables)``; ``model.apply(variables, gaits)`` gives ``(pre_softmax_logits,
    features)`` for aligned gaits ``(N, 75, 16, 3)`` (see :func:`stepjax.data.preprocess.align_to_reference`).
    """
    sd = load_state_dict(path)
    if "st_gcn_networks.0.tcn.2.weight" not in sd or "fcn.weight" not in sd:
        raise ValueError(f"{path}: not an official STEP classifier state_dict (keys: {sorted(sd)[:5]}...)")
    kernel = sd["st_gcn_networks.0.tcn.2.weight"].shape[2]
    num_classes = sd["fcn.weight"].shape[0]
    model = STEPClassifier(num_classes=num_classes, kernel_size=kernel, **TRUNKS["real_only"], **model_kwargs)
    return model, classifier_variables_from_state_dict(sd)
