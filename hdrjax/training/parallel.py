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


def initialize(multi_host: bool, *, coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1, heartbeat_timeout_secs: int = 100) -> None:
    """Start the multi-host runtime when asked; unset arguments are auto-detected by JAX.

    `heartbeat_timeout_secs`: when a process dies (kill -9, out of memory, a lost host), the
    coordination service stops hearing from it and, after this long, terminates every other
    process with "another task died" -- instead of leaving them blocked in a collective that
    can never complete.
    """
    if multi_host and not jax.distributed.is_initialized():
        # Cross-process collectives of CPU devices (tests, a CPU cluster) run over gloo: the
        # default of jax 0.10, named here so the code path does not depend on the default.
        # Accelerator collectives (NCCL, ICI) are unaffected.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        # JAX detects SLURM, Open MPI, Kubernetes and Cloud TPU by itself; elsewhere pass the
        # coordinator "host:port", the number of processes and this process's id.
        jax.distributed.initialize(
            coordinator_address=coordinator_address or None,
            num_processes=num_processes or None,
            process_id=None if process_id < 0 else process_id,
            heartbeat_timeout_seconds=int(heartbeat_timeout_secs),
        )
    logger.info(
        "process %d of %d, %d local / %d global devices (%s)",
        jax.process_index(), jax.process_count(), jax.local_device_count(),
        jax.device_count(), jax.devices()[0].platform,
    )


def agree(flags) -> np.ndarray:
    """The element-wise max of a small int vector over all processes (every process gets it).

    Decisions taken at a step boundary -- stop on a signal, save because time passed -- must
    be the same on every process, or one process enters a collective the others never
    reach.  One process's True is everyone's True.  A no-op in a single-process run; in a
    multi-process run a tiny all-gather that waits for the step in flight.
    """
    flags = np.asarray(flags, np.int32)
    if jax.process_count() == 1:
        return flags
    from jax.experimental import multihost_utils

    return np.max(np.asarray(multihost_utils.process_allgather(flags)), axis=0)


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
