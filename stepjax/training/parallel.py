"""Data parallelism over all devices with ``jax.sharding`` (JAX is the distributed engine).

The train step is unchanged: we only tell XLA that the batch axis is split over a 1-D ``'data'``
mesh and that parameters are replicated; GSPMD inserts the gradient all-reduce, and BatchNorm's
batch statistics become global means (so the result equals one device's within float tolerance).

Single host, several devices (GPUs, or CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``)::

    python train.py --config configs/step.py --workdir runs/dp --config.train.data_parallel=True

Multi-host (one process per host, e.g. under SLURM): call ``jax.distributed.initialize()`` before
anything else, then the same code runs: the mesh spans ``jax.devices()`` (all hosts) and each process
feeds the rows of the global batch that live on its devices
(``jax.make_array_from_process_local_data(batch_sharding(mesh), local_rows)``).
"""

from __future__ import annotations

from typing import Callable

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``'data'`` over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
    """Places every leaf of ``tree`` on all devices of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def data_parallel_step(step: Callable, mesh: Mesh) -> Callable:
    """Wraps ``step(state, batch, rng)`` so the batch is split over ``mesh`` and the state replicated."""

    def sharded(state, batch, rng):
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding(mesh))
        state = jax.lax.with_sharding_constraint(state, replicated(mesh))
        new_state, metrics = step(state, batch, rng)
        return jax.lax.with_sharding_constraint(new_state, replicated(mesh)), metrics

    return sharded


def checked_data_mesh(train_cfg) -> Mesh | None:
    """The data-parallel mesh of a ``train`` config section (``None`` unless ``data_parallel``), its batch size
    checked against the device count before any work."""
    if not train_cfg.get("data_parallel", False):
        return None
    mesh = data_mesh()
    check_batch_divisible(int(train_cfg.batch_size), mesh)
    return mesh


def check_batch_divisible(batch_size: int, mesh: Mesh) -> None:
    if batch_size % mesh.size:
        raise ValueError(f"train.batch_size={batch_size} must be a multiple of the {mesh.size} devices "
                         f"of the data-parallel mesh")
