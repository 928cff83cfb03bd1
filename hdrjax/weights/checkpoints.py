"""Checkpoints: an orbax CheckpointManager over <workdir>/checkpoints.

One checkpoint step holds these items:
  state   the whole TrainState: the networks the stage trains (joint: all four), their batch
          stats and optimizer state, step, PRNG key; a joint run takes each network from its
          stage run (init.<network>);
  data    the grain iterator position of every process (grain's orbax handler);
  config  the run's config as JSON, checked on resume;
  meta    (optional) run facts that are not config, as JSON: the data seed in use.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
from typing import Iterable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from hdrjax.errors import HdrjaxError
from hdrjax.models.build import NETWORKS

try:  # grain's orbax integration (per-process iterator state files).
    from grain.checkpoint import CheckpointRestore as _GrainRestore
    from grain.checkpoint import CheckpointSave as _GrainSave
except ImportError:  # pragma: no cover - older grain
    from grain.python import PyGrainCheckpointRestore as _GrainRestore
    from grain.python import PyGrainCheckpointSave as _GrainSave

CHECKPOINT_SUBDIR = "checkpoints"

# Config fields a resumed run must share with the run that wrote the checkpoint: they change
# what the parameters mean (stage, architecture, camera model, CRF bank) or what the stored
# optimizer / iterator state refers to (batch size, dataset).  Schedules, logging periods,
# num_steps, eval settings and paths may change between restarts.
MATTERING_FIELDS = ("stage", "model", "camera", "crf", "train.batch_size", "data.name")


class CheckpointError(HdrjaxError):
    """A checkpoint that cannot be used with this config (missing, incompatible, unreadable)."""


def config_to_json(config) -> dict:
    """The config as plain JSON data (tuples become lists), as it is stored."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(tree, default=str))


def config_differences(old: Mapping, new: Mapping, fields: Iterable[str] = MATTERING_FIELDS):
    """['field: old -> new', ...] for the leaves under `fields` that differ between two configs."""
    old_flat = traverse_util.flatten_dict(config_to_json(old), sep=".")
    new_flat = traverse_util.flatten_dict(config_to_json(new), sep=".")
    diffs = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if not any(key == f or key.startswith(f + ".") for f in fields):
            continue
        a, b = old_flat.get(key, "<absent>"), new_flat.get(key, "<absent>")
        if a != b:
            diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs


def _abstract(tree):
    """ShapeDtypeStructs (with shardings) for a pytree of arrays or ShapeDtypeStructs."""
    def one(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))

    return jax.tree.map(one, tree)


# orbax's own flag; its default (False) makes every barrier of a multi-process save a device
# collective (jax's sync_global_devices), which an async save can issue beside the main thread's
# train-step collectives; orbax itself warns that such barriers must not run concurrently. The
# likely result: the CPU test of a two-process run once aborted with gloo's "Received data size
# doesn't match expected size ... collective mismatch". The coordination service's barrier
# (True) is not a device collective and takes a timeout.
ORBAX_BARRIER_FLAG = "experimental_orbax_use_distributed_barrier"


def use_distributed_barriers() -> None:
    """Make orbax's multi-process barriers the coordination service's, unless the user set the flag."""
    from absl import flags

    flag = flags.FLAGS[ORBAX_BARRIER_FLAG] if ORBAX_BARRIER_FLAG in flags.FLAGS else None
    if flag is None or flag.present or jax.process_count() == 1:
        return
    flag.value = True
    flag.present = 1  # readable before absl has parsed the command line (notebooks, libraries)


class Checkpointer:
    """Saves and restores training runs in <workdir>/checkpoints (async, keeps the last K)."""

    def __init__(self, workdir, *, max_to_keep: int, save_every: int, async_save: bool = True):
        use_distributed_barriers()
        self.directory = pathlib.Path(workdir).absolute() / CHECKPOINT_SUBDIR
        self.meta: dict = {}  # saved with every step when not empty (see stored_meta)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                # Exactly at multiples of save_every (the default policy would also save the
                # first step).  Preemption (SIGTERM on any process) and wall-clock saves are
                # forced by the training loop at a step boundary all processes agree on.
                save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(max(1, save_every)),
                enable_async_checkpointing=async_save,
                # A kill -9 during a save leaves a tmp directory; orbax ignores it for
                # latest_step and this removes it at the next start.
                cleanup_tmp_directories=True,
            ),
        )

    @property
    def latest_step(self) -> int | None:
        """The newest complete checkpoint step, or None."""
        return self.manager.latest_step()

    def data_process_count(self, step: int) -> int | None:
        """How many processes wrote the data iterator positions of `step` (None: no data item).

        Grain writes one position file per process (process_<i>-of-<n>.json); a run with a
        different number of processes cannot continue those streams.
        """
        files = list((self.directory / str(step) / "data").glob("process_*-of-*.json"))
        if not files:
            return None
        return int(files[0].stem.rsplit("-of-", 1)[1])

    def stored_meta(self, step: int) -> dict:
        """The `meta` JSON of a checkpoint step ({} for steps written without one)."""
        if not (self.directory / str(step) / "meta").is_dir():
            return {}
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def stored_config(self, step: int | None = None) -> dict:
        """The config JSON stored with a checkpoint step (default: the latest)."""
        step = self.latest_step if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return restored["config"]

    def check_config(self, config, step: int | None = None) -> None:
        """Raise CheckpointError if the checkpoint was written with a different config that matters."""
        diffs = config_differences(self.stored_config(step), config)
        if diffs:
            raise CheckpointError(
                f"{self.directory}: the checkpoint was written with a different config "
                f"({'; '.join(diffs)}); use a new --workdir or restore those values"
            )

    def save(self, step: int, state, data_iterator, config, *, force: bool = False) -> bool:
        """Start an async save of state, iterator position and config (if due or forced)."""
        if not force and not self.manager.should_save(step):
            return False
        args = dict(
            state=ocp.args.PyTreeSave(state),
            config=ocp.args.JsonSave(config_to_json(config)),
        )
        if self.meta:
            args["meta"] = ocp.args.JsonSave(self.meta)
        if data_iterator is not None:
            # Grain's handler writes the iterator state synchronously inside save(), so it is
            # the position after the batch of `step`, not a later one.
            args["data"] = _GrainSave(data_iterator)
        return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

    def restore(self, step: int, abstract_state, data_iterator):
        """Restore state (onto the shardings of `abstract_state`) and the iterator position."""
        abstract = _abstract(abstract_state)
        fields = getattr(abstract, "__dataclass_fields__", None)
        empty = {}
        if fields is not None:
            # As a dict of its fields, without empty ones (a Dequantization state has no batch
            # stats): orbax cannot match an empty template against stored content.
            empty = {f: getattr(abstract, f) for f in fields if getattr(abstract, f) in ({}, ())}
            template = abstract
            abstract = {f: getattr(abstract, f) for f in fields if f not in empty}
        args = dict(
            state=ocp.args.PyTreeRestore(
                item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                # Checkpoints written before stage states held only the stage's networks carry
                # all four; the networks this state has are taken from them, the rest ignored.
                partial_restore=True,
            )
        )
        if data_iterator is not None:
            args["data"] = _GrainRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**args))
        if fields is not None:
            return template.replace(**restored["state"], **empty)
        return restored["state"]

    def wait(self) -> None:
        """Block until pending async saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


def find_checkpoint(path) -> pathlib.Path | None:
    """The newest complete step folder of a workdir / its checkpoints folder / a step folder, or None."""
    path = pathlib.Path(path).expanduser().absolute()
    if (path / "state").is_dir():
        return path
    for root in (path / CHECKPOINT_SUBDIR, path):
        if root.is_dir():
            # Complete steps are plain integer folders; in-progress saves have a tmp suffix.
            steps = [int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
            if steps:
                return root / str(max(steps))
    return None


def load_variables(path, abstract_variables, *, what: str = "init"):
    """Restore a subtree of a run's `state` (e.g. {"params": {"dequantization": ...}}).

    `path` is a workdir (its latest checkpoint is used), its checkpoints/ folder, or one
    checkpoint step folder.  `abstract_variables` gives the wanted keys, shapes and shardings.
    """
    path = pathlib.Path(path).expanduser().absolute()
    step_dir = find_checkpoint(path)
    if step_dir is None:
        raise CheckpointError(
            f"{path}: no checkpoint found for {what} (expected the workdir of a training run)"
        )
    abstract = _abstract(abstract_variables)
    try:
        checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
        restored = checkpointer.restore(
            step_dir / "state",
            args=ocp.args.PyTreeRestore(
                item=abstract,
                restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                partial_restore=True,
            ),
        )
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CheckpointError(f"{step_dir}: cannot restore {what}: {e}") from e
    logging.info("loaded %s from %s", what, step_dir)
    return restored


def load_inference_variables(path, *, complete: bool = True):
    """(variables {"params", "batch_stats"} as numpy, stored config dict, step) of a run's latest checkpoint.

    For inference and evaluation: needs no model or config, only the checkpoint written by
    training (`path` as in `load_variables`).  Raises CheckpointError when there is none, and
    (with `complete`) when it lacks some of the four networks: a stage run's checkpoint holds
    only the network that stage trains.
    """
    step_dir = find_checkpoint(path)
    if step_dir is None:
        raise CheckpointError(f"{path}: no checkpoint found (expected the workdir of a training run)")
    try:
        # The tree's structure from the handler itself: Checkpointer.metadata would also look for
        # a step-metadata file that a training run writes one level up (beside `state/`), and
        # log "WARNING:absl:Metadata file does not exist" for every load, which reads like a
        # broken checkpoint.
        tree = ocp.PyTreeCheckpointHandler().metadata(step_dir / "state").tree
        checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
        wanted = {k: tree[k] for k in ("params", "batch_stats") if k in tree}
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
        variables = checkpointer.restore(
            step_dir / "state",
            args=ocp.args.PyTreeRestore(item=wanted, restore_args=restore_args, partial_restore=True),
        )
        config = {}
        if (step_dir / "config").is_dir():
            config = ocp.Checkpointer(ocp.JsonCheckpointHandler()).restore(
                step_dir / "config", args=ocp.args.JsonRestore()
            )
    except (ValueError, KeyError, FileNotFoundError, OSError) as e:
        raise CheckpointError(f"{step_dir}: cannot read checkpoint: {e}") from e
    variables.setdefault("batch_stats", {})
    missing = [net for net in NETWORKS if net not in variables["params"]]
    if complete and missing:
        stage = config.get("stage", "?")
        raise CheckpointError(
            f"{step_dir}: this {stage!r} stage checkpoint holds only {', '.join(sorted(variables['params']))} "
            f"(not {', '.join(missing)}); inference needs all four networks: use the workdir of a joint "
            f"run (which can start from this one with --config.init.{stage}=...) or a shipped model")
    return variables, config, int(step_dir.name) if step_dir.name.isdigit() else None


def save_variables(path, variables, config) -> pathlib.Path:
    """Write a standalone checkpoint (model variables + config) that load_inference_variables reads.

    For weights that do not come from a training run (the TF1 importer, tests, notebooks).
    The layout is that of one training step folder (`state/` with params and batch_stats,
    `config/` as JSON), so every reader of training checkpoints accepts it.  The folder is
    written under a temporary name and renamed, so a killed write leaves no half checkpoint.
    """
    path = pathlib.Path(path).expanduser().absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"{path}: already exists; remove it or choose another output folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "params": jax.tree.map(np.asarray, dict(variables["params"])),
        "batch_stats": jax.tree.map(np.asarray, dict(variables.get("batch_stats", {}))),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        ocp.Checkpointer(ocp.PyTreeCheckpointHandler()).save(tmp / "state", args=ocp.args.PyTreeSave(state))
        ocp.Checkpointer(ocp.JsonCheckpointHandler()).save(
            tmp / "config", args=ocp.args.JsonSave(config_to_json(config))
        )
        if path.is_dir():  # an empty folder the caller made
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
