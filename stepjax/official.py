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
**CVAE** (:class:`~stepjax.models.cvae.STEPGenCVAE`; ConvT = ConvTranspose2d weight ``(I, O, Kt, 1)``)
``encoder.data_bn`` (V*(3+4),)                    ``encoder/data_bn/bn`` reshaped (V, 7)
``encoder.encoder.i.*`` (st_gcn)                  ``encoder/trunk/block_i/*``, as the classifier rows above
``encoder.z_mean.weight`` (Z,32,1,1)              ``encoder/z_mean/kernel`` = ``w[:, :, 0, 0].T``
``encoder.z_lsig.weight`` (Z,32,1,1)              ``encoder/z_logvar/kernel`` = ``w[:, :, 0, 0].T``
``decoder.fcn.weight`` ConvT (Z+4,Z,1,1)          ``decoder/fcn/kernel`` = ``w[:, :, 0, 0]`` (no transpose)
``decoder.decoder.i.gctn.conv.weight`` ConvT      ``decoder/trunk/block_i/gcn/proj/kernel`` = ``w[:, :, 0, 0]``
(I,K*O,1,1)                                       (output channels still k-major)
``decoder.decoder.i.tcn.2.weight`` ConvT          ``decoder/trunk/block_i/tcn/kernel`` (Kt,1,I,O) =
(I,O,Kt,1)                                        ``w[:, :, ::-1, :].transpose(2, 3, 0, 1)`` (flipped in time)
``decoder.decoder.i.tcn.{0,3}`` (BN)              ``decoder/trunk/block_i/{gcn_bn,tcn_bn}``
``decoder.decoder.i.residual.0`` ConvT (I,O,1,1)  ``decoder/trunk/block_i/residual_proj/kernel`` = ``w[:, :, 0, 0]``
``decoder.decoder.i.residual.1`` (BN)             ``decoder/trunk/block_i/residual_bn``
``decoder.data_bn`` (V*3,)                        ``decoder/data_bn/bn`` reshaped (V, 3)
``encoder.A``, ``decoder.A``                      not parameters (the fixed official partition)
==============================================  =================================================

The k-major channel order of the graph conv (``k * C_out + c``) is kept as is. PyTorch stores the
unbiased running variance; it is copied unchanged (it is what eval-mode BN divides by).

A stride-1 ConvTranspose with padding p equals a Conv with the kernel flipped in time, in/out swapped
and padding ``Kt-1-p`` (= 37 for Kt = 75, p = 37), so the CVAE decoder's ``st_gctn`` blocks are ordinary
:class:`stepjax.nn.STGCNBlock` s with the weights mapped as in the CVAE rows (STEP_REFERENCE 3.5, 3.6).
"""

from __future__ import annotations

import os
import zipfile
from typing import Mapping

import numpy as np

from stepjax.models.classifier import OFFICIAL_OPTIONS as OFFICIAL_CLASSIFIER_OPTIONS
from stepjax.models.classifier import TRUNKS, STEPClassifier
from stepjax.models.cvae import OFFICIAL_OPTIONS as OFFICIAL_CVAE_OPTIONS
from stepjax.models.cvae import STEPGenCVAE
from stepjax.skeleton import NUM_JOINTS


def _bn(sd: Mapping[str, np.ndarray], prefix: str, shape=None) -> tuple[dict, dict]:
    reshape = (lambda a: a.reshape(shape)) if shape else (lambda a: a)
    params = {"scale": reshape(sd[prefix + ".weight"]), "bias": reshape(sd[prefix + ".bias"])}
    stats = {"mean": reshape(sd[prefix + ".running_mean"]), "var": reshape(sd[prefix + ".running_var"])}
    return params, stats


def _dense_1x1(sd: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"kernel": sd[prefix + ".weight"][:, :, 0, 0].T, "bias": sd[prefix + ".bias"]}


def _float32(tree: dict) -> dict:
    return {k: _float32(v) if isinstance(v, dict) else np.asarray(v, np.float32) for k, v in tree.items()}


def _num_blocks(sd: Mapping[str, np.ndarray], prefix: str) -> int:
    """Blocks ``prefix.0``, ``prefix.1``, ... present in the state_dict (each has a ``.tcn.2.weight``)."""
    i = 0
    while f"{prefix}.{i}.tcn.2.weight" in sd:
        i += 1
    return i


def _convt_1x1(sd: Mapping[str, np.ndarray], prefix: str) -> dict:
    return {"kernel": sd[prefix + ".weight"][:, :, 0, 0], "bias": sd[prefix + ".bias"]}


def _stgcn_block_variables(sd: Mapping[str, np.ndarray], pre: str, transposed: bool) -> tuple[dict, dict]:
    """Params and batch stats of one :class:`stepjax.nn.STGCNBlock` from an official (st_gcn or st_gctn) block."""
    params: dict = {}
    stats: dict = {}
    gcn = pre + (".gctn.conv" if transposed else ".gcn.conv")
    params["gcn"] = {"proj": _convt_1x1(sd, gcn) if transposed else _dense_1x1(sd, gcn)}
    for torch_name, flax_name in ((".tcn.0", "gcn_bn"), (".tcn.3", "tcn_bn"), (".residual.1", "residual_bn")):
        if pre + torch_name + ".weight" in sd:
            params[flax_name], stats[flax_name] = _bn(sd, pre + torch_name)
    w = sd[pre + ".tcn.2.weight"]
    kernel = w[:, :, ::-1, :].transpose(2, 3, 0, 1) if transposed else w.transpose(2, 3, 1, 0)
    params["tcn"] = {"kernel": np.ascontiguousarray(kernel), "bias": sd[pre + ".tcn.2.bias"]}
    if pre + ".residual.0.weight" in sd:
        params["residual_proj"] = (_convt_1x1 if transposed else _dense_1x1)(sd, pre + ".residual.0")
    return params, stats


def classifier_variables_from_state_dict(sd: Mapping[str, np.ndarray], num_blocks: int | None = None) -> dict:
    """Flax ``{'params', 'batch_stats'}`` of :class:`STEPClassifier` from an official real_only state_dict
    (``num_blocks``: the first blocks only; ``None``: every block of the state_dict)."""
    p, s = _bn(sd, "data_bn", (NUM_JOINTS, -1))
    params: dict = {"data_bn": {"bn": p}, "trunk": {}}
    stats: dict = {"data_bn": {"bn": s}, "trunk": {}}
    for i in range(_num_blocks(sd, "st_gcn_networks") if num_blocks is None else num_blocks):
        p, s = _stgcn_block_variables(sd, f"st_gcn_networks.{i}", transposed=False)
        if f"edge_importance.{i}" in sd:
            p["gcn"]["edge_importance"] = sd[f"edge_importance.{i}"]
        params["trunk"][f"block{i}"], stats["trunk"][f"block{i}"] = p, s
    params["head"] = _dense_1x1(sd, "fcn")
    return {"params": _float32(params), "batch_stats": _float32(stats)}


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` state_dict; ``ValueError`` for a file that is not one (never unpickled)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz of named arrays")
        with loaded as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not an .npz state_dict of official weights ({e})") from None


#: Model fields the official weights fix (sizes, and options that add or reshape parameters): ``model_kwargs``
#: of the loaders may set the others (formulation, precision, adjacency, init, dropout).
CLASSIFIER_FIELDS_FROM_WEIGHTS = ("num_classes", "kernel_size", "channels", "strides", "residuals", "num_affective",
                                  "head", "hidden", "edge_importance")
CVAE_FIELDS_FROM_WEIGHTS = ("latent_dim", "num_classes", "encoder_channels", "decoder_channels", "kernel_size",
                            "temporal_code", "temporal_pooling", "code_dim", "joint_embedding", "official_output_relu")


def _check_model_kwargs(path, model_kwargs: Mapping, fixed: tuple[str, ...]) -> None:
    clash = sorted(set(model_kwargs) & set(fixed))
    if clash:
        raise ValueError(f"{path}: {', '.join(clash)} cannot be set, the official weights fix them (model_kwargs may "
                         f"set the other options, e.g. temporal_impl, precision, official_adjacency)")


def _variables_or_error(path, convert, sd) -> dict:
    try:
        return convert(sd)
    except KeyError as e:
        raise ValueError(f"{path}: the state_dict lacks {e} (an incomplete or other network's checkpoint)") from None


def load_official_classifier(path: str | os.PathLike, **model_kwargs) -> tuple[STEPClassifier, dict]:
    """The official real_only Baseline-STEP (e.g. ``official_classifier_real_only_e395.npz``).

    Returns ``(model, variables)``; ``model.apply(variables, gaits)`` gives ``(pre_softmax_logits,
    features)`` for aligned gaits ``(N, 75, 16, 3)`` (see :func:`stepjax.data.preprocess.align_to_reference`).
    The model is the official network (``stepjax.models.classifier.OFFICIAL_OPTIONS``: the official adjacency and
    init);
    ``model_kwargs`` (e.g. ``temporal_impl``) override or extend those options; the sizes, the trunk and the
    head come from the weights (:data:`CLASSIFIER_FIELDS_FROM_WEIGHTS`, ``ValueError`` if given).
    """
    _check_model_kwargs(path, model_kwargs, CLASSIFIER_FIELDS_FROM_WEIGHTS)
    sd = load_state_dict(path)
    if "st_gcn_networks.0.tcn.2.weight" not in sd or "fcn.weight" not in sd:
        raise ValueError(f"{path}: not an official STEP classifier state_dict (keys: {sorted(sd)[:5]}...)")
    kernel = sd["st_gcn_networks.0.tcn.2.weight"].shape[2]
    num_classes = sd["fcn.weight"].shape[0]
    model = STEPClassifier(num_classes=num_classes, kernel_size=kernel, **TRUNKS["real_only"],
                           **{**OFFICIAL_CLASSIFIER_OPTIONS, **model_kwargs})
    return model, _variables_or_error(path, classifier_variables_from_state_dict, sd)


# ---- STEP-Gen CVAE (generator_cvae/net/CVAE_stgcn.py); layout rows in the module docstring ----


def cvae_variables_from_state_dict(sd: Mapping[str, np.ndarray]) -> dict:
    """Flax ``{'params', 'batch_stats'}`` of :class:`stepjax.models.cvae.STEPGenCVAE` (official
    configuration) from an official ``generator_cvae`` ST-GCN CVAE state_dict."""
    params: dict = {"encoder": {"trunk": {}}, "decoder": {"trunk": {}}}
    stats: dict = {"encoder": {"trunk": {}}, "decoder": {"trunk": {}}}
    num_joints = sd["encoder.A"].shape[-1]
    for half in ("encoder", "decoder"):
        p, s = _bn(sd, f"{half}.data_bn", (num_joints, -1))
        params[half]["data_bn"], stats[half]["data_bn"] = {"bn": p}, {"bn": s}
        for i in range(_num_blocks(sd, f"{half}.{half}")):
            p, s = _stgcn_block_variables(sd, f"{half}.{half}.{i}", transposed=half == "decoder")
            params[half]["trunk"][f"block{i}"], stats[half]["trunk"][f"block{i}"] = p, s
    params["encoder"]["z_mean"] = _dense_1x1(sd, "encoder.z_mean")
    params["encoder"]["z_logvar"] = _dense_1x1(sd, "encoder.z_lsig")
    params["decoder"]["fcn"] = _convt_1x1(sd, "decoder.fcn")
    return {"params": _float32(params), "batch_stats": _float32(stats)}


def load_official_cvae(path: str | os.PathLike, **model_kwargs) -> tuple[STEPGenCVAE, dict]:
    """The official STEP-Gen CVAE (e.g. ``official_cvae_e105.npz``) -> ``(STEPGenCVAE, variables)``.

    Architecture sizes (latent dim, classes, block widths, temporal kernel) are read from the
    state_dict; the model is the official network (``stepjax.models.cvae.OFFICIAL_OPTIONS``: constant decoder
    input, mean pooling, the output ReLU, the official adjacency and init); ``model_kwargs`` (e.g. ``temporal_impl``,
    ``precision``) override or extend those options; the sizes and the options that shape parameters come from
    the weights (:data:`CVAE_FIELDS_FROM_WEIGHTS`, ``ValueError`` if given).
    ``model.apply(variables, x, onehot, rngs={'sample': key})`` then gives ``(decoded, mu, logvar)``
    for aligned gaits ``(N, T, 16, 3)``; use ``method='encode'`` / ``'decode'`` for the halves.
    """
    _check_model_kwargs(path, model_kwargs, CVAE_FIELDS_FROM_WEIGHTS)
    sd = load_state_dict(path)
    if "encoder.z_mean.weight" not in sd or "decoder.fcn.weight" not in sd:
        raise ValueError(f"{path}: not an official STEP-Gen CVAE state_dict (keys: {sorted(sd)[:5]}...)")
    blocks = lambda half: sorted((k for k in sd if k.startswith(f"{half}.{half}.") and k.endswith(".tcn.2.weight")),
                                 key=lambda k: int(k.split(".")[2]))
    enc = [sd[k].shape[0] for k in blocks("encoder")]  # Conv (O, I, Kt, 1)
    dec = [sd[k].shape[1] for k in blocks("decoder")]  # ConvT (I, O, Kt, 1)
    latent_dim = sd["encoder.z_mean.weight"].shape[0]
    num_classes = sd["decoder.fcn.weight"].shape[0] - latent_dim
    kernel = sd["encoder.encoder.0.tcn.2.weight"].shape[2]
    model = STEPGenCVAE(latent_dim=latent_dim, num_classes=num_classes, encoder_channels=tuple(enc),
                        decoder_channels=tuple(dec), kernel_size=kernel, **{**OFFICIAL_CVAE_OPTIONS, **model_kwargs})
    return model, _variables_or_error(path, cvae_variables_from_state_dict, sd)
