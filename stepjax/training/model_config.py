"""Every model field in a run's config, so that a saved run keeps its architecture when a default changes.

A config may leave model keys out (``cfg.model`` is passed to the model class as keyword arguments, so a missing
key takes the class default). A run records :func:`resolve_model_config`'s output instead: every constructor
field of the model it built, with its value. A saved config written before runs did this may lack keys; they
are read as the defaults of the code that wrote it (:data:`LEGACY_MODEL_DEFAULTS`), never as today's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

#: Model keys whose class default changed, with the value a saved config that lacks the key meant: the defaults
#: before commit 34d68bf (2026-12-05 07:41 UTC), when the fixed behaviour became the default of the model classes.
#: Runs record every field since 50a59af (09:34 the same day); a config that left one of these keys out in
#: between meant the new default and is misread (no release holds those two hours). The configs under configs/
#: always set these keys: only configs that left them out are concerned.
LEGACY_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "classifier": {"official_adjacency": True},
    "generator": {"temporal_code": "none", "temporal_pooling": "mean", "official_output_relu": True,
                  "official_adjacency": True},
}
#: The model class of each task (``classifier_runs`` trains classifiers).
MODEL_KIND = {"classifier": "classifier", "classifier_runs": "classifier", "generator": "generator"}
#: Fields set from elsewhere in the config (the classifier's affective width comes from ``cfg.preprocess``).
_NOT_IN_MODEL_SECTION = ("parent", "name", "num_affective")


def field_names(module_or_class) -> list[str]:
    """The constructor fields a config's ``model`` section may set: a flax module's, less ``parent``/``name``
    and fields taken from other config sections."""
    return [f.name for f in dataclasses.fields(module_or_class) if f.init and f.name not in _NOT_IN_MODEL_SECTION]


def module_fields(module) -> dict[str, Any]:
    """The :func:`field_names` of a flax module with their values (tuples stay tuples)."""
    return {name: getattr(module, name) for name in field_names(module)}


def _model_class(kind: str):
    if kind == "classifier":
        from stepjax.models.classifier import STEPClassifier

        return STEPClassifier
    from stepjax.models.cvae import STEPGenCVAE

    return STEPGenCVAE


class UnknownModelKeyError(ValueError):
    """A config's ``model`` section names a key the model class does not take."""


def check_model_keys(kind: str, model: dict) -> None:
    """:class:`UnknownModelKeyError` naming a key of a config's ``model`` section that the model class does not
    take, with the closest field (``model.chanels``: did you mean ``channels``?) and the list of fields."""
    import difflib

    cls = _model_class(kind)
    fields = sorted(field_names(cls))
    unknown = sorted(set(model) - set(fields))
    if not unknown:
        return
    key = unknown[0]
    if key == "num_affective":
        raise UnknownModelKeyError("model.num_affective is set by preprocess.num_affective (the features the "
                                   "preprocessing computes); remove it from the model section")
    close = difflib.get_close_matches(key, fields, n=1)
    hint = f"; did you mean model.{close[0]}?" if close else ""
    raise UnknownModelKeyError(f"model.{key} is not a field of {cls.__name__}{hint} ({cls.__name__} takes: "
                               f"{', '.join(fields)})")


def _build(kind: str, cfg):
    if kind == "classifier":
        from stepjax.training.fit import build_classifier

        return build_classifier(cfg)
    from stepjax.training.fit_generator import build_generator

    return build_generator(cfg)


def resolve_model_config(cfg, *, saved: bool = False):
    """A copy of ``cfg`` (ConfigDict or dict) whose ``model`` section holds every field of the model it builds.

    ``saved=True`` reads a config written by an earlier run: a key it lacks is taken from
    :data:`LEGACY_MODEL_DEFAULTS` where the default has changed since, else from the class. Configs of other
    tasks (``step_aug`` resolves in its two sub-runs) and configs without a model section are returned as they
    are. Unknown model keys raise :class:`UnknownModelKeyError`, a ``ValueError`` (:func:`check_model_keys`).
    """
    kind = MODEL_KIND.get(cfg.get("task"))
    if kind is None or cfg.get("model") is None:
        return cfg
    as_dict = not isinstance(cfg, ml_collections.ConfigDict)
    out = ml_collections.ConfigDict(dict(cfg) if as_dict else cfg.to_dict())
    model = dict(out.model)
    if saved:
        model = {**LEGACY_MODEL_DEFAULTS[kind], **model}
    check_model_keys(kind, model)
    out.model = ml_collections.ConfigDict(model)
    out.model = ml_collections.ConfigDict(module_fields(_build(kind, out)))
    from stepjax.nn import check_dropout_rate

    for key in ("dropout", "head_dropout"):  # checked here, before any data, not when the model first runs
        if key in out.model:
            check_dropout_rate(out.model[key], f"model.{key}")
    if as_dict:
        from stepjax.training.checkpoint import config_to_json

        return config_to_json(out)
    return out


def start_run_config(cfg, workdir: str, sections: tuple[str, ...] | None = None):
    """``(cfg, cfg_json, mesh)`` of a run into ``workdir``, before any data is prepared: the ``train`` options,
    dropout rates and data-parallel batch size checked (``mesh``: the data-parallel mesh, ``None`` unless
    ``train.data_parallel``), every model field recorded (:func:`resolve_model_config`), and a workdir holding a
    checkpoint of another config refused (``sections``: those that must match, default
    ``checkpoint.RESUME_SECTIONS``)."""
    from stepjax.training import checkpoint as ckpt_lib
    from stepjax.training import parallel
    from stepjax.training.progress import refuse_another_config
    from stepjax.training.state import check_train_config

    check_train_config(cfg.train)
    mesh = parallel.checked_data_mesh(cfg.train)
    cfg = resolve_model_config(cfg)
    cfg_json = ckpt_lib.config_to_json(cfg)
    refuse_another_config(workdir, cfg_json, sections=sections or ckpt_lib.RESUME_SECTIONS,
                          read_saved_config=read_saved_model_config)
    return cfg, cfg_json, mesh


def read_saved_model_config(saved: dict) -> dict:
    """A config read from a checkpoint with its model section resolved (``resolve_model_config(saved,
    saved=True)``); :class:`~stepjax.training.checkpoint.ConfigMismatchError` when the stored model takes a key
    this version's model class does not."""
    try:
        return resolve_model_config(saved, saved=True)
    except (TypeError, UnknownModelKeyError) as e:
        from stepjax.training.checkpoint import ConfigMismatchError

        raise ConfigMismatchError(f"the checkpoint's model section does not build this version's model "
                                  f"(a key it no longer takes?): {e}") from None
