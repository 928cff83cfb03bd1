"""Data parallelism: one mesh over all devices, batch sharded on axis "data", params replicated.

Everything runs under `jax.jit` with explicit shardings (no pmap): XLA's SPMD partitioner
inserts the gradient all-reduce, and a batch mean inside the step (BatchNorm statistics,
the loss) is a global mean, so N devices compute what one device would for the same
global batch.
"""
from __future__ import annotations

import logging

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
logger = logging.getLogger(__name__)


class ParallelError(ValueError):
    """A batch or device layout that cannot work (e.g. batch not divisible by devices)."""


def initialize(multi_host: bool, *, coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> None:
    """Start the multi-host runtime when asked; unset arguments are auto-detected by JAX."""
    if multi_host and not jax.distributed.is_initialized():
        # JAX detects SLURM, Open MPI, Kubernetes and Cloud TPU by itself; elsewhere pass the
        # coordinator "host:port", the number of processes and this process's id.
        jax.distributed.initialize(
            coordinator_address=coordinator_address or None,
            num_processes=num_processes or None,
            process_id=None if process_id < 0 else process_id,
        )
    logger.info(
        "process %d of %d, %d local / %d global devices (%s)",
        jax.process_index(), jax.process_count(), jax.local_device_count(),
        jax.device_count(), jax.devices()[0].platform,
    )


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process) with axis "data"."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh, other axes whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimizer state, CRF bank)."""
    return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    """Raise ParallelError unless the global batch splits evenly over devices and processes."""
    n_dev = mesh.devices.size
    if global_batch_size <= 0 or global_batch_size % n_dev:
        raise ParallelError(
            f"train.batch_size={global_batch_size} is not divisible by the number of devices "
            f"({n_dev}); choose a multiple of {n_dev} (or limit the devices, e.g. "
            f"CUDA_VISIBLE_DEVICES / XLA_FLAGS)"
        )
    n_proc = jax.process_count()
    if global_batch_size % n_proc:
        raise ParallelError(
            f"train.batch_size={global_batch_size} is not divisible by the number of "
            f"processes ({n_proc})"
        )


def process_batch_size(global_batch_size: int) -> int:
    """The part of the global batch this process loads."""
    return global_batch_size // jax.process_count()


def shard_batch(host_batch, mesh: Mesh):
    """Assemble global jax.Arrays from this process's slice of the batch (any pytree of arrays)."""
    sharding = batch_sharding(mesh)

    def put(x):
        x = np.asarray(x)
        global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(put, host_batch)


def replicate(tree, mesh: Mesh):
    """Place a host or device pytree on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def fetch(tree):
    """Bring (replicated or fully addressable) device arrays to host numpy."""
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
