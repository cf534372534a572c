"""Pure, jit-able inference from a training workdir.

    predict_fn, variables = stepjax.load_classifier("runs/step")
    out = jax.jit(predict_fn)(variables, raw_gaits)          # raw_gaits (N, T, 16, 3) or (T, 16, 3)
    out.logits, out.probs, out.features

``predict_fn(variables, gaits)`` applies exactly the preprocessing fitted at training time (alignment
to the stored reference pose, affective features and their training-split normalisation), then the
model in eval mode. It is a pure function of its arguments: use it inside your own ``jax.jit``,
``jax.vmap`` (over gaits or over several ``variables``) or ``jax.grad``.

For serving with fixed weights, ``predict = freeze(predict_fn, variables)`` compiles ``gaits -> Prediction``
with the weights as constants, so XLA precomputes every weight-only expression (one-gait latency of the
official classifier on a 2-core Intel CPU 5.3 -> 2.9 ms, 2.5 ms with the process on one core, 2026-12-05; one H100
0.65 -> 0.52 ms; bench/RESULTS.md and bench/RESULTS_GPU.md). For one-gait latency, run the
serving process on one core (``taskset -c 0 python serve.py``, or ``os.sched_setaffinity(0, {0})`` before JAX's
first use): XLA sizes its thread pool from the affinity mask, and at batch 1 a second thread costs more in
synchronisation than it gives.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stepjax.data.pipeline import Preprocessor, trained_num_frames
from stepjax.data.preprocess import validate_gaits
from stepjax.nn import with_impls
from stepjax.utils import check_real_dtype
from stepjax.training import checkpoint as ckpt_lib


class Prediction(NamedTuple):
    # jax arrays from predict_fn, numpy arrays from predict_in_chunks / predict_gaits (host side)
    logits: jax.Array | np.ndarray  # (N, K) (or (K,) for one gait)
    probs: jax.Array | np.ndarray  # softmax of logits
    features: jax.Array | np.ndarray  # (N, C) pooled deep features


def _abstract_preprocessor(cfg) -> Preprocessor:
    f = int(cfg.preprocess.num_affective)
    aff = jnp.zeros((f,), jnp.float32) if f else None
    return Preprocessor.from_config(cfg.preprocess, jnp.zeros((16, 3), jnp.float32), aff, aff)


def restore_classifier(workdir: str | os.PathLike, which: str = "best"):
    """``(cfg, model, {'model': {'params', 'batch_stats'}, 'preprocessor': Preprocessor})`` of a run."""
    from stepjax.training.fit import build_classifier
    from stepjax.training.model_config import read_saved_model_config
    from stepjax.training.state import create_train_state, make_optimizer

    def abstract_tree(cfg):
        model = build_classifier(cfg)
        f = int(cfg.preprocess.num_affective)
        example = (jnp.zeros((1, trained_num_frames(cfg), 16, 3)), jnp.zeros((1, f)) if f else None)
        return jax.eval_shape(lambda: {"train_state": create_train_state(model, make_optimizer(cfg.train, 1),
                                                                         jax.random.PRNGKey(0), *example),
                                       "preprocessor": _abstract_preprocessor(cfg)})

    cfg, tree = ckpt_lib.restore_run(workdir, "classifier", abstract_tree, which,
                                     read_saved_config=read_saved_model_config)
    model = build_classifier(cfg)
    state = tree["train_state"]
    return cfg, model, {"model": {"params": state.params, "batch_stats": state.batch_stats},
                        "preprocessor": tree["preprocessor"]}


def make_predict_fn(model, num_frames: int | None = None) -> Callable:
    """The pure ``predict_fn(variables, gaits, lengths=None) -> Prediction`` for a classifier module.

    ``gaits``: ``(N, T, 16, 3)`` or one ``(T, 16, 3)`` gait, raw positions in metres (integers are cast to
    float32); with ``num_frames`` (the training length; :func:`load_classifier` sets it) any other ``T`` is a
    ``ValueError``: bring gaits to it with ``stepjax.data.preprocess.to_fixed_length``.

    ``lengths`` (int, ``(N,)`` or a scalar for one gait) is for variable-length gaits tiled to a common length
    (``stepjax.data.preprocess.to_fixed_length``): the affective features are then computed on each gait's
    first ``lengths`` (real) frames, as in training; ``None``: every frame is real.

    ``predict_fn.num_frames``: that training length (``None`` when not given), e.g. for
    :func:`~stepjax.data.preprocess.to_fixed_length` or :func:`predict_gaits`."""

    def predict_fn(variables, gaits: jax.Array, lengths: jax.Array | None = None) -> Prediction:
        if not (isinstance(variables, Mapping) and {"model", "preprocessor"} <= set(variables)):
            keys = sorted(variables) if isinstance(variables, Mapping) else type(variables).__name__
            raise ValueError(f"predict_fn takes the classifier's variables {{'model', 'preprocessor'}} (as "
                             f"load_classifier / restore_classifier return them), got {keys}")
        concrete = not isinstance(gaits, jax.core.Tracer)
        check_real_dtype(gaits, "gaits")  # before jnp.asarray, which fails obscurely on an object array
        gaits = jnp.asarray(gaits)
        validate_gaits(gaits, "gaits", batched=None, check_finite=concrete)
        if num_frames and gaits.shape[-3] != num_frames:
            raise ValueError(f"this classifier was trained on {num_frames}-frame gaits, got {gaits.shape[-3]} frames "
                             f"(shape {gaits.shape}); use stepjax.data.preprocess.to_fixed_length and pass lengths")
        if gaits.ndim == 4 and gaits.shape[0] == 0:
            raise ValueError(f"no gaits: shape {gaits.shape}")
        if not jnp.issubdtype(gaits.dtype, jnp.floating):
            gaits = gaits.astype(jnp.float32)
        single = gaits.ndim == 3
        if lengths is not None and not isinstance(lengths, (jax.Array, np.ndarray)):
            lengths = np.asarray(lengths)  # a list or int: jnp.shape of a list is deprecated
        if lengths is not None and jnp.shape(lengths) not in ([(), (1,)] if single else [gaits.shape[:1]]):
            raise ValueError(f"lengths must have shape {'() or (1,)' if single else gaits.shape[:1]} for gaits "
                             f"{gaits.shape}, got {jnp.shape(lengths)}")
        if single:
            gaits = gaits[None]
            lengths = None if lengths is None else jnp.reshape(lengths, (1,))
        model_gaits, affective = variables["preprocessor"](gaits, lengths)
        logits, features = model.apply(variables["model"], model_gaits, affective, train=False)
        # traced gaits cannot be checked, and XLA's fused ReLUs can turn a NaN input into a finite (wrong)
        # prediction: the outputs of a gait with a non-finite coordinate are made NaN explicitly, as the last
        # op (XLA:CPU's fused softmax of a row masked to NaN returned finite values)
        finite = jnp.all(jnp.isfinite(gaits), axis=(1, 2, 3))[:, None]
        out = Prediction(*(jnp.where(finite, a, jnp.nan) for a in (logits, jax.nn.softmax(logits, -1), features)))
        return jax.tree_util.tree_map(lambda a: a[0], out) if single else out

    predict_fn.num_frames = num_frames  # type: ignore[attr-defined]  # a documented attribute of the function
    return predict_fn


def predict_in_chunks(predict_fn: Callable, variables, gaits: np.ndarray, chunk: int = 512,
                      lengths: np.ndarray | None = None) -> Prediction:
    """``predict_fn`` over many raw gaits ``(N, T, 16, 3)`` on the host: jitted, ``chunk`` gaits per call, a
    :class:`Prediction` of numpy arrays (``lengths``: real frames per gait, ``None`` when all are real).

    Raises ``ValueError`` on non-finite logits (their argmax would silently count as class 0), naming the gaits.
    """
    from stepjax.utils import is_integer

    if not is_integer(chunk) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1 (gaits per call), got {chunk!r}")
    if len(gaits) == 0:
        raise ValueError(f"no gaits: shape {np.shape(gaits)}")
    if lengths is not None:  # checked here, on the host: under jit they could only be clipped
        from stepjax.affective import check_lengths

        lengths = check_lengths(lengths, (len(gaits),), np.shape(gaits)[1])
    fn = jax.jit(predict_fn)
    part = lambda a, s: None if a is None else a[s:s + chunk]  # noqa: E731
    outs = [fn(variables, np.asarray(gaits[s:s + chunk], np.float32), part(lengths, s))
            for s in range(0, len(gaits), chunk)]
    out = Prediction(*(np.concatenate([np.asarray(o[i]) for o in outs]) for i in range(3)))
    bad = np.flatnonzero(~np.all(np.isfinite(out.logits), axis=-1))
    if bad.size:
        raise ValueError(f"non-finite logits for {bad.size} of {len(gaits)} gaits (first indices {bad[:5].tolist()}): "
                         f"check those gaits (units, degenerate frames) or the checkpoint")
    return out


def predict_gaits(predict_fn: Callable, variables, gaits: Sequence[np.ndarray], num_frames: int | None = None,
                  length_policy: str = "tile", chunk: int = 512, name: str = "gaits") -> Prediction:
    """Predictions for variable-length raw gaits ``[(T_i, 16, 3)]`` (e.g. from ``read_egait``): brought to the
    training length ``num_frames`` (default: ``predict_fn.num_frames``, which :func:`load_classifier` sets) with
    the run's ``length_policy`` (``to_fixed_length``), the affective features
    on each gait's real frames (``real_frame_counts``), as in training. numpy :class:`Prediction` ``(N, ...)``;
    ``ValueError`` on non-finite gaits or logits; warns when ``name`` (the gaits' source) is not in metres."""
    from stepjax.data.preprocess import check_min_frames, real_frame_counts, to_fixed_length, warn_if_not_metres

    num_frames = num_frames or getattr(predict_fn, "num_frames", None)
    if not num_frames:
        raise ValueError("predict_gaits needs the classifier's training length: pass num_frames (load_classifier's "
                         "predict_fn carries it as predict_fn.num_frames where the run recorded it)")
    check_min_frames(gaits, name)
    fixed = to_fixed_length(gaits, num_frames, length_policy)
    validate_gaits(fixed, name)
    warn_if_not_metres(fixed, name)
    return predict_in_chunks(predict_fn, variables, fixed, chunk,
                             real_frame_counts(gaits, num_frames, length_policy))


def freeze(predict_fn: Callable, variables) -> Callable:
    """A jitted ``gaits [, lengths] -> Prediction`` with ``variables`` baked into the program as constants (serving).

    ``predict_fn(variables, gaits)`` recomputes every weight-only expression on each call: the
    frequency-domain kernels of the 'dft' temporal convolution (a ``(2F, R) x (R, s*C_in*C_out)`` matmul
    per layer, R ~ Kt/s tap offsets and s phases, about 45 % of the FLOPs of one-gait inference), BN scale
    folding, the graph products. With the weights as compile-time constants XLA folds all of that once, at
    compile time: one-gait latency of the official classifier on a 2-core Intel CPU 5.3 -> 2.9 ms, 4.8 -> 2.5 ms
    with the process pinned to one core (bench/RESULTS.md, 2026-12-05 run; 3.1-4.7 ms on one core on the slower
    hosts of earlier runs; 1.65 ms without PyTorch interleaved, ``bench/latency.py``); XLA's count 129 instead
    of 231 MFLOP per call. The price: the weights are fixed (no ``vmap``/``grad``
    over them), compilation takes ~1 s per input shape, and the constants live inside the executable. Same
    numbers as ``predict_fn`` to float32 rounding.
    """
    frozen = jax.tree_util.tree_map(np.asarray, variables)
    return jax.jit(lambda gaits, *lengths: predict_fn(frozen, gaits, *lengths))


def load_classifier(workdir: str | os.PathLike, which: str = "best", temporal_impl: str | None = None,
                    graph_impl: str | None = None) -> tuple[Callable, dict]:
    """``(predict_fn, variables)`` of the best-validation (or ``'latest'``) checkpoint of ``workdir``.

    ``temporal_impl`` / ``graph_impl`` swap the formulation of the temporal convolution
    (``stepjax.nn.TEMPORAL_IMPLS``) / of the graph contraction (``stepjax.nn.GRAPH_IMPLS``): same parameters,
    same numbers to float rounding, as :func:`stepjax.generation.load_generator` does; ``None`` keeps the
    run's (``'auto'`` by default: the fastest for each layer's shape and the backend)."""
    cfg, model, variables = restore_classifier(workdir, which)
    model = with_impls(model, temporal_impl, graph_impl)
    return make_predict_fn(model, int(cfg.data.get("num_frames") or 0) or None), variables
