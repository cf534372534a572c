"""Sampling gaits from a trained STEP-Gen CVAE.

    from stepjax.generation import generate, load_generator
    generate_fn, variables = load_generator("runs/gen")
    gaits = generate_fn(variables, labels, jax.random.key(0))      # (N, T, 16, 3), labels int (N,) or one-hot

    python -m stepjax.generation --workdir runs/gen --per-class 1000 --out-features synth.h5 \
        [--out-labels synth_labels.h5] [--seed 0] [--official-sampler | --prior fitted] [--official-train-bn]

``z ~ N(0, I)`` (the CVAE prior); the official ``z = 3 * randn - 1.5`` (``Processor.generate``, bug 14) only
with ``official_sampler=True``; ``prior=fit_latent_prior_from_run(workdir)`` samples a Gaussian per class
fitted to the training gaits' posteriors instead (ex-post density estimation: class-faithful samples when
the KL weight left the aggregate posterior far from N(0, I); docs/generator.md). The decoder runs in eval mode (running BN statistics; the official
``generate`` forgets ``model.eval()``). Generated gaits live in the **aligned** coordinate frame the
CVAE was trained in (the training reference pose, STEP_REFERENCE 4.4): feed them to a classifier as raw
gaits (its own preprocessing re-aligns them) or to ``fit_classifier(extra_train=...)``.

Everything is pure: :func:`generate` is jitted (the model and the static sizes are static arguments)
and works inside the user's ``jit`` / ``vmap`` (e.g. ``vmap`` over rng keys) / ``grad``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from typing import Any, Callable, NamedTuple, cast

import chex
import jax
import jax.numpy as jnp
import numpy as np

from stepjax import LABEL_NAMES, NUM_CLASSES
from stepjax.affective import MIN_FRAMES
from stepjax.data.preprocess import validate_gaits, validate_labels
from stepjax.models.cvae import STEPGenCVAE, onehot_labels, sample_latent
from stepjax.nn import GRAPH_IMPLS, TEMPORAL_IMPLS, with_impls
from stepjax.training import checkpoint as ckpt_lib
from stepjax.training.loop import chunked_apply
from stepjax.utils import is_integer


class LatentPrior(NamedTuple):
    """A Gaussian per class over the CVAE latent: ``z | y ~ N(mean[y], scale_tril[y] scale_tril[y]^T)``.

    A pytree (pass it through ``jit`` / ``vmap`` like any array argument). Fitted by :func:`fit_latent_prior`.
    """

    mean: jax.Array  # (K, Z)
    scale_tril: jax.Array  # (K, Z, Z), lower-triangular Cholesky factor of the covariance


def fit_latent_prior(mu, logvar, labels, num_classes: int = NUM_CLASSES, ridge: float = 1e-6) -> LatentPrior:
    """Ex-post density estimation (Ghosh et al., ICLR 2020): per class, the Gaussian that matches the first two
    moments of the class's *aggregate posterior* ``q(z | y) = mean_i N(mu_i, diag(exp(logvar_i)))``.

    Mean ``mean_i mu_i``; covariance ``cov_i(mu_i) + diag(mean_i exp(logvar_i)) + ridge * I`` (the law of total
    covariance; biased ``cov``). A CVAE trained with a small KL weight (configs/step_gen.py: beta = 1e-3)
    leaves its aggregate posterior far from N(0, I), so prior samples miss the class and the gait manifold;
    sampling this fitted prior decodes latents from where the training gaits of the class actually lie.

    Args:
      mu, logvar: ``(N, Z)`` posterior parameters of the **training** gaits (see :func:`encode_gaits`).
      labels: integer ``(N,)``; every class needs at least one gait.
    Returns:
      :class:`LatentPrior` (float32), computed in float64 on the host.
    """
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    labels = validate_labels(labels, "fit_latent_prior: labels", num_classes)  # whole numbers in range, (N,)
    if mu.ndim != 2 or logvar.shape != mu.shape or labels.shape != mu.shape[:1]:
        raise ValueError(f"need mu, logvar (N, Z) and labels (N,), got {mu.shape}, {logvar.shape}, {labels.shape}")
    if not np.all(np.isfinite(mu)) or not np.all(np.isfinite(logvar)):
        raise ValueError("mu / logvar contain NaN or inf")
    z = mu.shape[1]
    means, trils = [], []
    for k in range(num_classes):
        m, lv = mu[labels == k], logvar[labels == k]
        if len(m) == 0:
            name = f" ({LABEL_NAMES[k]})" if k < len(LABEL_NAMES) else ""
            raise ValueError(f"class {k}{name} has no gaits to fit its latent prior on")
        centred = m - m.mean(0)
        cov = centred.T @ centred / len(m) + np.diag(np.exp(lv).mean(0)) + ridge * np.eye(z)
        means.append(m.mean(0))
        trils.append(np.linalg.cholesky(cov))
    return LatentPrior(jnp.asarray(np.stack(means), jnp.float32), jnp.asarray(np.stack(trils), jnp.float32))


def sample_prior(prior: LatentPrior, labels_onehot: jax.Array, rng: jax.Array) -> jax.Array:
    """``z = mean[y] + scale_tril[y] @ eps``, ``eps ~ N(0, I)``: ``(N, Z)`` for **one-hot** labels ``(N, K)``
    (the rows select a class; soft labels would blend the class means and factors, not mix the Gaussians)."""
    chex.assert_rank([labels_onehot, prior.mean, prior.scale_tril], [2, 2, 3])
    chex.assert_equal_shape_prefix([labels_onehot.T, prior.mean, prior.scale_tril], 1)  # K classes
    eps = jax.random.normal(rng, labels_onehot.shape[:1] + prior.mean.shape[1:], prior.mean.dtype)
    mean = jnp.dot(labels_onehot, prior.mean, precision="highest")  # 'highest': no TF32 on GPUs
    tril = jnp.einsum("nk,kij->nij", labels_onehot, prior.scale_tril, precision="highest")
    return mean + jnp.einsum("nij,nj->ni", tril, eps, precision="highest")


@functools.partial(jax.jit, static_argnames=("model",))
def _encode(model: STEPGenCVAE, variables, x, y):
    return model.apply(variables, x, y, method="encode")


def encode_gaits(model: STEPGenCVAE, variables, gaits, labels, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mu, logvar)`` ``(N, Z)`` of model-space (aligned) gaits ``(N, T, 16, 3)`` with labels ``(N,)``."""
    if len(labels) == 0 or len(gaits) != len(labels):
        raise ValueError(f"encode_gaits needs N >= 1 gaits and as many labels, got {len(gaits)} and {len(labels)}")
    validate_gaits(gaits, "encode_gaits: gaits")  # a NaN gait would get a finite, plausible latent (BN, ReLU)
    y = onehot_labels(labels, model.num_classes, check_rows=True)  # checked here, on concrete labels
    outs = [_encode(model, variables, jnp.asarray(gaits[i:i + chunk], jnp.float32), y[i:i + chunk])
            for i in range(0, len(labels), chunk)]
    return cast(tuple[np.ndarray, np.ndarray],
                tuple(np.concatenate([np.asarray(o[j]) for o in outs]) for j in range(2)))


@functools.partial(jax.jit, static_argnames=("model", "num_frames"))
def _decode(model: STEPGenCVAE, variables, z, y, num_frames: int):
    return model.apply(variables, z, y, num_frames, method="decode")


def decode_latents(model: STEPGenCVAE, variables, z, labels, num_frames: int, chunk: int = 256) -> np.ndarray:
    """Decoded gaits ``(N, num_frames, 16, 3)`` of latents ``z (N, Z)`` with integer labels ``(N,)`` (eval mode)."""
    if not is_integer(num_frames) or num_frames < MIN_FRAMES:
        raise ValueError(f"num_frames must be an integer >= {MIN_FRAMES}, got {num_frames!r}")
    if np.ndim(z) != 2 or len(z) == 0 or len(z) != len(labels):
        raise ValueError(f"decode_latents needs latents (N >= 1, Z) and N labels, got z {np.shape(z)} and "
                         f"{len(labels)} labels")
    y = onehot_labels(labels, model.num_classes, check_rows=True)  # checked here, on concrete labels
    return np.concatenate([np.asarray(_decode(model, variables, jnp.asarray(z[i:i + chunk], jnp.float32),
                                              y[i:i + chunk], num_frames))
                           for i in range(0, len(labels), chunk)])


def fit_latent_prior_on(model: STEPGenCVAE, variables, preprocessor, raw_gaits, labels) -> LatentPrior:
    """:func:`fit_latent_prior` on raw gaits ``(N, T, 16, 3)``: aligned by the generator's ``preprocessor`` (as in
    its training), encoded, fitted. Pass **training** gaits only."""
    gaits = np.asarray(preprocessor.gaits(jnp.asarray(raw_gaits)))
    mu, logvar = encode_gaits(model, variables, gaits, labels)
    return fit_latent_prior(mu, logvar, labels, model.num_classes)


def fit_latent_prior_from_run(workdir: str | os.PathLike, which: str = "best") -> LatentPrior:
    """:func:`fit_latent_prior` on the posteriors of a generator run's own **training split** (the gaits it
    learnt from, aligned as in training): no validation or test gait is used. The split comes from the run's data
    config and must be the one recorded in its ``split.json``, on the same data (else ``ConfigMismatchError``;
    where the data files are unchanged, the recorded split: :func:`~stepjax.training.progress.run_split`)."""
    from stepjax.data import pipeline
    from stepjax.training.progress import run_split

    cfg, model, variables, prep = restore_generator(workdir, which)
    raw = pipeline.load_source(cfg.data)
    split = run_split(workdir, raw, cfg.data, hint="retrain the generator")
    return fit_latent_prior_on(model, variables, prep, raw.gaits[split.train], raw.labels[split.train])


#: ``generate``'s ``chunk='auto'``: gaits per decoder call on XLA:CPU, where 32 keep a chunk's activations in the
#: core's L2 cache (4,000 official decodings 1.8 s against 2.4 s with chunks of 256; bench/NOTES.md, session 19),
#: and on other backends (GPU: fewer, larger kernels; 256 was the earlier default there).
AUTO_CHUNK = {"cpu": 32, "other": 256}


def resolve_chunk(chunk: int | str | None) -> int | None:
    """``chunk`` as :func:`generate` uses it: ``'auto'`` becomes :data:`AUTO_CHUNK` for JAX's default backend
    (``jax.default_backend()``, not a device chosen with ``jax.default_device``: pass an integer there); an integer
    >= 1 or ``None`` (no chunking) stays; anything else is a ``ValueError``."""
    if chunk is None:
        return None
    if isinstance(chunk, str) and chunk == "auto":
        return AUTO_CHUNK["cpu" if jax.default_backend() == "cpu" else "other"]
    if isinstance(chunk, str) or not is_integer(chunk) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, 'auto' or None, got {chunk!r}")
    return int(chunk)


def generate(model: STEPGenCVAE, variables, labels: jax.Array, rng: jax.Array, num_frames: int = 75,
             official_sampler: bool = False, chunk: int | str | None = "auto", prior: LatentPrior | None = None,
             official_train_bn: bool = False) -> jax.Array:
    """Samples one gait per label: ``(N, num_frames, 16, 3)`` in the CVAE's aligned frame (jitted; ``model``,
    ``num_frames``, ``official_sampler``, ``chunk`` and ``official_train_bn`` are static).

    Args:
      model: the :class:`~stepjax.models.cvae.STEPGenCVAE` (static; hashable).
      variables: ``{'params', 'batch_stats'}`` of the model.
      labels: integer ``(N,)`` or one-hot ``(N, K)``.
      rng: a PRNG key; all N latents are drawn from it at once, so the result does not depend on ``chunk``.
      num_frames: frames to decode (any length; the model was trained on ``cfg.data.num_frames``).
      official_sampler: ``z = 3 * randn - 1.5`` (official bug 14) instead of ``z ~ N(0, I)``.
      chunk: decode in chunks of this many gaits with ``lax.map`` (bounds the activation memory);
        ``None`` decodes all at once; ``'auto'`` (default): :data:`AUTO_CHUNK` (32 on CPU). Same numbers
        either way (up to float rounding).
      prior: a fitted per-class :class:`LatentPrior` (:func:`fit_latent_prior_from_run`) instead of N(0, I).
      official_train_bn: decode as the official ``Processor.generate`` does (bug 14: no ``model.eval()``): every
        BatchNorm uses the statistics of the one gait being decoded (the official code decodes one gait per
        call) instead of the running statistics. The stored statistics are not changed.

    Raises ``TypeError`` when ``model`` is not a :class:`~stepjax.models.cvae.STEPGenCVAE` (e.g. the
    ``generate_fn`` of :func:`load_generator`), ``ValueError`` on labels outside ``[0, K)``, ``num_frames < 4`` or
    ``chunk < 1``; labels traced by the caller's own ``jit`` cannot be checked, and an invalid one yields a NaN
    gait (:func:`onehot_labels`).
    """
    if not isinstance(model, STEPGenCVAE):
        hint = ("; load_generator returns (generate_fn, variables): call generate_fn(variables, labels, rng) instead"
                if callable(model) and not isinstance(model, type) else "")
        raise TypeError(f"generate takes the STEPGenCVAE model, got {type(model).__name__}{hint}")
    for name, value in (("num_frames", num_frames), ("chunk", chunk)):
        if isinstance(value, jax.core.Tracer):
            raise TypeError(f"{name} sets the shapes and must be static: a Python int, not a traced value (keep it "
                            f"out of the arguments your jit traces, e.g. functools.partial or static_argnames)")
    if not is_integer(num_frames) or num_frames < MIN_FRAMES:
        raise ValueError(f"num_frames must be an integer >= {MIN_FRAMES} (a gait's jerk needs 4 frames), "
                         f"got {num_frames!r}")
    chunk = resolve_chunk(chunk)
    _check_key(rng)
    if prior is not None and not isinstance(prior, LatentPrior):
        raise TypeError(f"prior must be a LatentPrior (fit_latent_prior_from_run / fit_latent_prior) or None, got "
                        f"{type(prior).__name__} {prior!r:.60}")
    onehot = onehot_labels(labels, model.num_classes, check_rows=True)  # checks concrete labels before tracing
    return _generate(model, variables, onehot, rng, int(num_frames), official_sampler, chunk, prior,
                     official_train_bn)


def _check_key(rng) -> None:
    """``TypeError`` unless ``rng`` is one PRNG key: a typed key of shape ``()`` (``jax.random.key``) or a raw
    ``uint32`` key of the default implementation's shape (``jax.random.PRNGKey``: ``(2,)``, ``(4,)`` under
    ``jax_default_prng_impl='rbg'``); a batch of keys is for ``jax.vmap``."""
    dtype, shape = getattr(rng, "dtype", None), tuple(np.shape(rng)) if hasattr(rng, "shape") else None
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    raw = tuple(np.shape(jax.random.PRNGKey(0)))  # (2,) for threefry, (4,) for 'rbg' (jax_default_prng_impl)
    if (typed and shape == ()) or (not typed and dtype == np.uint32 and shape == raw):
        return
    batch = " (a batch of keys: jax.vmap the call over them)" if (typed and shape) or (
        dtype == np.uint32 and shape and shape[-len(raw):] == raw and len(shape) > len(raw)) else ""
    raise TypeError(f"rng must be one PRNG key, jax.random.key(seed) or jax.random.PRNGKey(seed), got "
                    f"{type(rng).__name__} {f'{dtype} {shape}' if dtype is not None else repr(rng)}{batch}")


@functools.partial(jax.jit, static_argnames=("model", "num_frames", "official_sampler", "chunk", "official_train_bn"))
def _generate(model: STEPGenCVAE, variables, onehot: jax.Array, rng: jax.Array, num_frames: int,
              official_sampler: bool, chunk: int | None, prior: LatentPrior | None,
              official_train_bn: bool) -> jax.Array:
    z: int | jax.Array  # the latent width, then the latents
    if prior is not None:
        if official_sampler:
            raise ValueError("official_sampler and a fitted prior are exclusive")
        k, z = model.num_classes, model.latent_dim
        if prior.mean.shape != (k, z) or prior.scale_tril.shape != (k, z, z):
            raise ValueError(f"prior must have mean ({k}, {z}) and scale_tril ({k}, {z}, {z}), got "
                             f"{prior.mean.shape} and {prior.scale_tril.shape}")
        z = sample_prior(prior, onehot, rng)
    else:
        z = sample_latent(rng, (onehot.shape[0], model.latent_dim), official_sampler)

    def decode(batch):
        zz, yy = batch
        if official_train_bn:  # one gait per BatchNorm batch, as the official per-sample loop
            def one(a, b):
                out, _ = model.apply(variables, a[None], b[None], num_frames, train=True, method="decode",
                                     mutable=["batch_stats"])
                return out[0]

            return jax.vmap(one)(zz, yy)
        return model.apply(variables, zz, yy, num_frames, train=False, method="decode")

    if chunk is None or chunk >= onehot.shape[0]:
        return decode((z, onehot))
    return chunked_apply(decode, (z, onehot), chunk)


def restore_generator(workdir: str | os.PathLike, which: str = "best"):
    """``(cfg, model, {'params', 'batch_stats'}, preprocessor)`` of a generator run."""
    from stepjax.data.pipeline import trained_num_frames
    from stepjax.training.fit_generator import build_generator, create_generator_state, generator_preprocessor
    from stepjax.training.model_config import read_saved_model_config
    from stepjax.training.state import make_optimizer

    def abstract_tree(cfg):
        return jax.eval_shape(lambda: {
            "train_state": create_generator_state(build_generator(cfg), make_optimizer(cfg.train, 1),
                                                  jax.random.PRNGKey(0), trained_num_frames(cfg)),
            "reference": jnp.zeros((16, 3), jnp.float32)})

    cfg, tree = ckpt_lib.restore_run(workdir, "generator", abstract_tree, which,
                                     hints={"step_aug": " (for STEP+Aug runs use <workdir>/generator)"},
                                     read_saved_config=read_saved_model_config)
    model = build_generator(cfg)
    state = tree["train_state"]
    return (cfg, model, {"params": state.params, "batch_stats": state.batch_stats},
            generator_preprocessor(cfg, tree["reference"]))


def make_generate_fn(model: STEPGenCVAE, num_frames: int = 75, official_sampler: bool = False) -> Callable:
    """The pure ``generate_fn(variables, labels, rng, *, num_frames=..., official_sampler=..., chunk='auto', prior=None,
    official_train_bn=False) -> gaits`` (``prior``: a fitted :class:`LatentPrior` instead of N(0, I); see
    :func:`generate`). The options are keyword-only: a prior passed in ``num_frames``'s place is a ``TypeError``.
    ``generate_fn.num_classes``: the model's classes (:func:`generate_per_class` samples each)."""

    def generate_fn(variables, labels, rng, *, num_frames: int = num_frames, official_sampler: bool = official_sampler,
                    chunk: int | str | None = "auto", prior: LatentPrior | None = None,
                    official_train_bn: bool = False):
        return generate(model, variables, labels, rng, num_frames, official_sampler, chunk, prior, official_train_bn)

    generate_fn.num_classes = model.num_classes  # type: ignore[attr-defined]  # a documented attribute of the function
    return generate_fn


def load_generator(workdir: str | os.PathLike, which: str = "best", temporal_impl: str | None = None,
                   graph_impl: str | None = None) -> tuple[Callable, dict]:
    """``(generate_fn, variables)`` of the best-validation (or ``'latest'``) checkpoint of a generator run.

    ``generate_fn(variables, labels, rng, num_frames=T_train, official_sampler=cfg.generate.official_sampler)``
    returns ``(N, T, 16, 3)`` gaits. ``temporal_impl`` / ``graph_impl`` swap the formulation of the temporal
    convolution / graph contraction for inference (:func:`stepjax.nn.with_impls`: same parameters; e.g.
    ``'auto'``, the fastest formulation for each layer's shape); ``None`` keeps the run's.
    """
    from stepjax.data.pipeline import trained_num_frames

    cfg, model, variables, _ = restore_generator(workdir, which)
    model = with_impls(model, temporal_impl, graph_impl)
    official = bool(cfg.get("generate", {}).get("official_sampler", False))
    return make_generate_fn(model, trained_num_frames(cfg), official), variables


def class_major_labels(per_class: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The official generation order: for count in range(per_class): for class c: c."""
    return np.tile(np.arange(num_classes, dtype=np.int32), per_class)


def official_keys(labels: np.ndarray) -> list[str]:
    """``{count+1:05d}_{Emotion}`` with ``count`` the index of the gait within its class (official keys);
    ``ValueError`` for a label that names no STEP emotion (a generator of more classes)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(LABEL_NAMES)):
        raise ValueError(f"E-Gait keys name the {len(LABEL_NAMES)} STEP emotions {LABEL_NAMES}; label "
                         f"{int(labels.max() if labels.max() >= len(LABEL_NAMES) else labels.min())} has none: "
                         "write these gaits with keys of your own (write_egait_arrays(..., keys=...))")
    seen = np.zeros(len(LABEL_NAMES), np.int64)
    keys = []
    for label in np.asarray(labels):
        seen[label] += 1
        keys.append(f"{seen[label]:05d}_{LABEL_NAMES[label]}")
    return keys


def generate_per_class(generate_fn: Callable, variables, per_class: int, seed: int = 0,
                       official_sampler: bool | None = None, prior: LatentPrior | None = None,
                       **generate_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` gaits of every class of the generator (``generate_fn.num_classes``, 4 for STEP) as host numpy
    ``(gaits (K*per_class, T, 16, 3), labels)``, in the official class-major order; ``generate_kwargs`` (e.g.
    ``num_frames``, ``official_train_bn``) go to ``generate_fn``."""
    labels = class_major_labels(per_class, getattr(generate_fn, "num_classes", NUM_CLASSES))
    kwargs = dict(generate_kwargs)
    if official_sampler is not None:
        kwargs["official_sampler"] = official_sampler
    if prior is not None:
        kwargs["prior"] = prior
    gaits = np.asarray(generate_fn(variables, jnp.asarray(labels), jax.random.PRNGKey(seed), **kwargs))
    return gaits, labels


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m stepjax.generation", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="generator training workdir (train.py --config configs/step_gen.py)")
    p.add_argument("--per-class", type=int, default=1000, help="gaits per emotion class (official release: 1000)")
    p.add_argument("--out-features", required=True, help="output E-Gait features*.h5 (keys 00001_Happy, ...)")
    p.add_argument("--out-labels", default=None, help="optional labels*.h5 (labels are also in the key suffixes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-frames", type=int, default=None, help="frames per gait (default: the training length)")
    p.add_argument("--official-sampler", action="store_true", help="z = 3*randn - 1.5 (official bug 14)")
    p.add_argument("--official-train-bn", action="store_true",
                   help="decode with per-gait BatchNorm batch statistics, as the official generate() without "
                        "model.eval() (bug 14)")
    p.add_argument("--prior", choices=("standard", "fitted"), default="standard",
                   help="'standard': z ~ N(0, I); 'fitted': a Gaussian per class fitted to the posteriors of the "
                        "run's training split (needs its training data; fit_latent_prior)")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--temporal-impl", default="auto", choices=TEMPORAL_IMPLS,
                   help="temporal conv formulation for inference (same parameters, same numbers to float "
                        "rounding); default 'auto': the fastest for the shape and backend")
    p.add_argument("--graph-impl", default="auto", choices=GRAPH_IMPLS,
                   help="graph contraction order for inference (same parameters and numbers); default 'auto'")
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error("--per-class must be >= 1")
    if args.num_frames is not None and args.num_frames < MIN_FRAMES:
        p.error(f"--num-frames must be >= {MIN_FRAMES}")
    if args.official_sampler and args.prior == "fitted":
        p.error("--official-sampler and --prior fitted are exclusive")
    from absl import logging

    from stepjax.utils import cli_errors, enable_compilation_cache

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
    enable_compilation_cache()
    with cli_errors("python -m stepjax.generation"):
        _generate_to_files(args)


def _memory_limit_bytes() -> int | None:
    """This process's memory: the machine's physical memory, or a container's (cgroup) limit where lower;
    ``None`` where neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            with open(path) as f:
                limits.append(int(f.read().strip()))
        except (OSError, ValueError):  # absent, or 'max' (no limit)
            pass
    return min(limits) if limits else None


def _check_fits_in_memory(args: argparse.Namespace) -> None:
    """``ValueError`` before any work when the gaits would not fit in this machine's (or container's) memory
    (float32 from the device, float32 and float64 copies on the host while writing): the process would be killed
    mid-way."""
    from stepjax.data.pipeline import trained_num_frames

    frames = args.num_frames or trained_num_frames(ckpt_lib.read_run_config(args.workdir))
    need = NUM_CLASSES * args.per_class * frames * 16 * 3 * (4 + 4 + 8)
    have = _memory_limit_bytes()
    if have is not None and need > have:
        raise ValueError(f"--per-class {args.per_class} ({NUM_CLASSES * args.per_class:,} gaits of {frames} frames) "
                         f"needs about {need / 2**30:.1f} GiB, this machine (or container) has "
                         f"{have / 2**30:.1f} GiB: write several files (other --seed values) of fewer gaits")


def _generate_to_files(args: argparse.Namespace) -> None:
    """Loads the run's generator, samples ``args.per_class`` gaits per class and writes them as E-Gait HDF5."""
    from stepjax.data.egait import check_output_paths, write_egait_arrays
    from stepjax.utils import check_output_dir

    for path in (args.out_features, args.out_labels):
        check_output_dir(path)
    check_output_paths(args.out_features, args.out_labels)  # before the sampling, not after
    _check_fits_in_memory(args)

    generate_fn, variables = load_generator(args.workdir, args.checkpoint, args.temporal_impl, args.graph_impl)
    kwargs: dict[str, Any] = {"official_sampler": True} if args.official_sampler else {}
    if args.prior == "fitted":
        kwargs["prior"] = fit_latent_prior_from_run(args.workdir, args.checkpoint)
    if args.num_frames is not None:
        kwargs["num_frames"] = args.num_frames
    if args.official_train_bn:
        kwargs["official_train_bn"] = True
    t0 = time.time()
    gaits, labels = generate_per_class(generate_fn, variables, args.per_class, args.seed, **kwargs)
    elapsed = time.time() - t0
    write_egait_arrays(args.out_features, args.out_labels, gaits, labels, official_keys(labels))
    print(f"wrote {len(labels)} gaits {gaits.shape[1:]} ({args.per_class} per class) to {args.out_features}"
          + (f" and {args.out_labels}" if args.out_labels else "") + f"; sampling took {elapsed:.2f} s "
          f"(incl. compilation)", file=sys.stderr)


if __name__ == "__main__":
    main()
