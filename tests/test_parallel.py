"""Data parallelism: a sharded train step over 4 (forced host) devices equals the single-device step, and each
device computes a quarter of the batch (XLA's per-device FLOP count)."""

import os
import subprocess
import sys
import textwrap

from conftest import PROJECT_ROOT

SCRIPT = textwrap.dedent('''
    import sys, numpy as np, jax, jax.numpy as jnp
    sys.path.insert(0, "tests")
    from test_training import tiny_config
    from stepjax.data.pipeline import Arrays
    from stepjax.training.fit import build_classifier
    from stepjax.training.state import create_train_state, make_optimizer
    from stepjax.training.loop import classifier_train_step
    from stepjax.training import parallel
    assert jax.device_count() == 4, jax.devices()
    cfg = tiny_config()
    model = build_classifier(cfg)
    rng = np.random.default_rng(0)
    batch = Arrays(jnp.asarray(rng.normal(size=(16, 32, 16, 3)), jnp.float32),
                   jnp.asarray(rng.normal(size=(16, 29)), jnp.float32), jnp.asarray(rng.integers(0, 4, 16), jnp.int32))
    state = create_train_state(model, make_optimizer(cfg.train, 10), jax.random.PRNGKey(0), batch.gaits[:1], batch.affective[:1])
    key = jax.random.PRNGKey(1)
    single, m1 = jax.jit(classifier_train_step)(state, batch, key)
    mesh = parallel.data_mesh()
    sharded_batch = jax.device_put(batch, parallel.batch_sharding(mesh))
    assert len(sharded_batch.gaits.sharding.device_set) == 4
    multi, m4 = jax.jit(parallel.data_parallel_step(classifier_train_step, mesh))(
        parallel.replicate(state, mesh), sharded_batch, key)
    assert len(multi.params["fc2"]["kernel"].sharding.device_set) == 4
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), single.params, multi.params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), single.batch_stats, multi.batch_stats)
    # the work is split, not replicated: each device's program does about a quarter of the single-device FLOPs
    flops = lambda c: (lambda a: (a[0] if isinstance(a, list) else a)["flops"])(c.cost_analysis())
    f1 = flops(jax.jit(classifier_train_step).lower(state, batch, key).compile())
    f4 = flops(jax.jit(parallel.data_parallel_step(classifier_train_step, mesh)).lower(
        parallel.replicate(state, mesh), sharded_batch, key).compile())
    assert f4 < 0.35 * f1, (f4, f1)

    # the generator's step (the CVAE with the push-pull loss) shards the same way
    from stepjax.training.fit_generator import (build_generator, create_generator_state, generator_train_step,
                                                loss_weights)
    sys.path.insert(0, "tests")
    from test_generator import tiny_generator_config
    gcfg = tiny_generator_config()
    gen = build_generator(gcfg)
    gbatch = Arrays(batch.gaits, None, batch.labels)
    gstate = create_generator_state(gen, make_optimizer(gcfg.train, 10), jax.random.PRNGKey(0), 32)
    gstep = lambda s, b, r: generator_train_step(s, b, r, weights=loss_weights(gcfg))
    g1, gm1 = jax.jit(gstep)(gstate, gbatch, key)
    g4, gm4 = jax.jit(parallel.data_parallel_step(gstep, mesh))(parallel.replicate(gstate, mesh),
                                                                jax.device_put(gbatch, parallel.batch_sharding(mesh)), key)
    np.testing.assert_allclose(gm1["total"], gm4["total"], rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4), g1.params, g4.params)
    print("OK")
''')


def test_sharded_train_step_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
