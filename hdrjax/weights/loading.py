"""From `--checkpoint` to a model ready for inference: (model, variables, config, step,
description, warning).

    loaded = load("runs/joint")        # a training workdir (its latest checkpoint) or step folder
    loaded = load("weights/my_model")  # a shipped-model folder (hdrjax.weights.pretrained)
    loaded = load(None)                # the model shipped with hdrjax (hdrjax/weights/default)

Every command that runs a trained model (predict, evaluate, the experiments) loads through
here, so they agree on:

* the model: rebuilt from the config stored with the weights and every array's path and shape
  checked against it (`hdrjax.weights.architecture`: `model_from_config`, `check_shapes`);
* the stages run by default (`stages_for_checkpoint`): refinement only after joint fine-tuning
  (the only training that trains the Refinement-Net), unless the weights name their output
  stage;
* the warning for untrained or briefly trained weights (`checkpoint_warning`), which a shipped
  model that records how it was trained never gets.

Problems the user can fix raise `LoadError` (a HdrjaxError; a shipped-model folder's own
problems raise `hdrjax.weights.pretrained.PretrainedError`).
"""
from __future__ import annotations

import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hdrjax.models.build import NETWORKS, TRAINING_STAGES
from hdrjax.weights import checkpoints, pretrained
from hdrjax.weights.architecture import LoadError, check_shapes, model_from_config

# Weights trained for fewer steps than this get a warning (the `cpu` config runs a few thousand).
FEW_STEPS = 10_000


class LoadedModel(NamedTuple):
    """What `load` returns."""

    model: Any  # the SingleHDR module (one object per architecture: compiled stages are shared)
    variables: dict  # {"params", "batch_stats"} as jax arrays
    config: dict  # the training config stored with the weights (plain dict)
    step: int | None  # the checkpoint's step (a shipped model: its manifest's "step")
    description: str  # one line for logs: what was loaded
    warning: str | None  # untrained / briefly trained weights, else None


# ----------------------------------------------------------------------------- what a checkpoint is


def stages_for_checkpoint(train_config) -> tuple[str, ...]:
    """Default stages for a checkpoint: refinement only when joint fine-tuning trained it.

    A stored config may name its output stage ("output_stage"): a shipped model's manifest puts
    the stage its evaluation found best there (hdrjax.weights.pretrained.load), a TF1 import of the
    authors' three stage checkpoints says "hallucination" (its Refinement-Net is the identity).
    """
    cfg = train_config or {}
    if cfg.get("output_stage") in NETWORKS:
        return NETWORKS[: NETWORKS.index(cfg["output_stage"]) + 1]
    return NETWORKS if cfg.get("stage") == "joint" else NETWORKS[:3]


def reference_steps(stage) -> int | None:
    """Steps the reference trains `stage` for (its config in configs), None if unknown."""
    if stage not in TRAINING_STAGES:
        return None
    from hdrjax import configs

    return int(configs.get_config(stage).train.num_steps)


def checkpoint_warning(train_config, step: int | None, manifest: dict | None = None) -> str | None:
    """A warning for untrained or briefly trained (smoke-test) weights, else None.

    `manifest`: a shipped model's manifest.  One that records how each stage was trained
    ("stages": steps, images seen, ...) is what it says it is: no warning, however short the
    training (the default model is trained on a CPU budget on purpose and says so).
    """
    if manifest is not None and manifest.get("stages"):
        return None
    cfg = train_config or {}
    num_steps = (cfg.get("train") or {}).get("num_steps")
    if step == 0 or not cfg:
        return "the checkpoint is untrained (freshly initialised weights): outputs are meaningless"
    trained = step if step is not None else num_steps
    if trained is None or trained >= FEW_STEPS:
        return None
    stage = cfg.get("stage")
    reference = reference_steps(stage)
    # Only a known training stage has a reference length to compare with (its config in
    # configs); any other is given no figure rather than one that may be wrong for it.
    compare = f"; the reference trains the {stage} stage for {reference:,} steps" if reference else ""
    return f"the checkpoint was trained for only {trained} steps (stage {stage!r}{compare}): expect poor results"


# ----------------------------------------------------------------------------- loading


def load_model(path):
    """(model, variables, training config dict, step) from a training workdir or checkpoint folder."""
    try:
        variables, train_config, step = checkpoints.load_inference_variables(path)
    except checkpoints.CheckpointError as e:
        raise LoadError(str(e)) from None
    model, expected = model_from_config(train_config, str(path))
    check_shapes(expected, variables, str(path))
    variables = jax.tree.map(jnp.asarray, {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})})
    return model, variables, train_config or {}, step


def shipped_summary(manifest: dict) -> str:
    """'stage joint; trained dequantization 3000 steps, ...' from a shipped model's manifest."""
    parts = [f"stage {(manifest.get('config') or {}).get('stage', '?')}"]
    stages = manifest.get("stages")
    if isinstance(stages, dict) and stages:
        done = []
        for name, entry in stages.items():
            steps = entry.get("steps") if isinstance(entry, dict) else None
            done.append(f"{name} {steps} steps" if steps is not None else str(name))
        parts.append("trained " + ", ".join(done))
    elif manifest.get("step") is not None:
        parts.append(f"step {manifest['step']}")
    total, history = manifest.get("training_total"), manifest.get("history")
    if isinstance(total, dict) and total.get("images_seen") and isinstance(history, list) and len(history) > 1:
        # "trained ..." names only the last run's stages; a model continued over several runs says so.
        parts.append(f"{int(total['images_seen']):,} training images over {len(history)} runs in total")
    return "; ".join(parts)


def describe_checkpoint(path, train_config, step) -> str:
    """'checkpoint runs/joint (step 6, stage joint)' (+ where imported weights came from)."""
    cfg = train_config or {}
    text = f"checkpoint {path} (step {step}, stage {cfg.get('stage', '?')}"
    if cfg.get("imported_from"):
        text += ", imported TF1 weights"
    return text + ")"


def load(checkpoint=None) -> LoadedModel:
    """The model, variables, config, step, description and warning of `--checkpoint`.

    None or "default": the model shipped with hdrjax (hdrjax.weights.pretrained.DEFAULT_DIR); a
    shipped-model folder (manifest.json + .npz shards): that model; anything else: a training
    workdir or checkpoint folder (`load_model`).  Raises LoadError or pretrained.PretrainedError.
    """
    if checkpoint is None or pretrained.is_model_dir(checkpoint):
        model, variables, train_config, manifest = pretrained.load(checkpoint)
        step = manifest.get("step")
        step = None if step is None else int(step)
        if checkpoint in (None, "default"):
            folder = pathlib.Path(pretrained.DEFAULT_DIR)
            package = pathlib.Path(__file__).resolve().parents[1]  # hdrjax/
            try:
                shown = str(pathlib.Path(package.name) / folder.resolve().relative_to(package))
            except ValueError:
                shown = str(folder)
            description = f"default model ({shown}, {shipped_summary(manifest)})"
        else:
            description = f"shipped model {checkpoint} ({shipped_summary(manifest)})"
        warning = checkpoint_warning(train_config, step, manifest)
        return LoadedModel(model, variables, dict(train_config or {}), step, description, warning)
    model, variables, train_config, step = load_model(checkpoint)
    return LoadedModel(model, variables, train_config, step, describe_checkpoint(checkpoint, train_config, step),
                       checkpoint_warning(train_config, step))
