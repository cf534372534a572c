"""Every matmul and convolution the library traces runs at ``lax.Precision.HIGHEST``.

On GPUs XLA's default float32 precision is TF32 (10-bit mantissa): on an H100 the alignment of
tests/test_preprocess.py was off by 7.7e-4 (52 % relative on small coordinates) before its 3x3 einsums named
their precision. XLA:CPU computes float32 exactly whatever the flag, so the CPU test suite cannot see the
difference in the numbers; it checks the traced programs instead (backend-independent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.extend import core as jcore

from stepjax.data import preprocess as pp
from stepjax.generation import LatentPrior, sample_prior
from stepjax.models.classifier import STEPClassifier
from stepjax.models.cvae import OFFICIAL_OPTIONS, STEPGenCVAE

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
PRECISION_OPS = ("dot_general", "conv_general_dilated")


def precision_ops(jaxpr: jcore.Jaxpr):
    """Yields the dot_general / conv_general_dilated equations of ``jaxpr`` and of every sub-jaxpr (pjit,
    custom_vjp, scan, cond, ...)."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in PRECISION_OPS:
            yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jcore.ClosedJaxpr):
                    yield from precision_ops(sub.jaxpr)
                elif isinstance(sub, jcore.Jaxpr):
                    yield from precision_ops(sub)


def assert_all_highest(fn, *args, min_ops: int = 1) -> None:
    ops = list(precision_ops(jax.make_jaxpr(fn)(*args).jaxpr))
    assert len(ops) >= min_ops, f"expected at least {min_ops} matmul/conv ops, traced {len(ops)}"
    loose = [(e.primitive.name, e.params["precision"]) for e in ops if e.params["precision"] != HIGHEST]
    assert not loose, f"{len(loose)} of {len(ops)} ops run below Precision.HIGHEST: {loose[:3]}"


def test_precision_op_walker_sees_a_default_precision_dot():  # the check itself can fail
    with pytest.raises(AssertionError, match="below Precision.HIGHEST"):
        assert_all_highest(lambda a: jax.jit(lambda b: b @ b)(a), jnp.ones((3, 3)))


def test_alignment_and_prior_sampling_are_highest_precision():
    gaits = jnp.zeros((2, 10, 16, 3))
    assert_all_highest(pp.align_to_reference, gaits, gaits[0, 0], min_ops=3)
    prior = LatentPrior(jnp.zeros((4, 32)), jnp.broadcast_to(jnp.eye(32), (4, 32, 32)))
    assert_all_highest(sample_prior, prior, jnp.eye(4), jax.random.PRNGKey(0), min_ops=3)


@pytest.mark.parametrize("temporal_impl", ["auto", "conv", "dft", "toeplitz", "im2col", "conv_mmgrad", "conv_1dgrad"])
def test_classifier_forward_and_gradient_are_highest_precision(temporal_impl):
    model = STEPClassifier(num_affective=29, kernel_size=9, temporal_impl=temporal_impl)
    gaits, feats = jnp.zeros((2, 20, 16, 3)), jnp.zeros((2, 29))
    variables = model.init(jax.random.PRNGKey(0), gaits, feats, train=False)

    def loss(params, x):
        logits = model.apply({**variables, "params": params}, x, feats, train=False)[0]
        return jnp.sum(logits ** 2)

    assert_all_highest(jax.grad(loss, argnums=(0, 1)), variables["params"], gaits, min_ops=10)


@pytest.mark.parametrize("official", [False, True])
def test_cvae_forward_and_gradient_are_highest_precision(official):
    """The default decoder (modulated frame code, output Dense) and the official one (time-constant first block,
    the one-GEMM 64 -> 3 graph)."""
    model = STEPGenCVAE(kernel_size=9, **(OFFICIAL_OPTIONS if official else {}))
    gaits, labels = jnp.zeros((2, 20, 16, 3)), jnp.eye(4)[:2]
    rngs = {"params": jax.random.PRNGKey(0), "sample": jax.random.PRNGKey(1)}
    variables = model.init(rngs, gaits, labels, train=False)

    def loss(params):
        x_hat, mu, logvar = model.apply({**variables, "params": params}, gaits, labels, train=False,
                                        rngs={"sample": jax.random.PRNGKey(2)})
        return jnp.sum(x_hat ** 2) + jnp.sum(mu) + jnp.sum(logvar)

    assert_all_highest(jax.grad(loss), variables["params"], min_ops=20)
