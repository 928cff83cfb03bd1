"""From `--checkpoint` to a model ready for inference: (model, variables, config, step,
description, warning).

    loaded = load("runs/joint")        # a training workdir (its latest checkpoint) or step folder
    loaded = load("weights/my_model")  # a shipped-model folder (hdrjax.pretrained)
    loaded = load(None)                # the model shipped with hdrjax (hdrjax/weights/default)

Every command that runs a trained model (predict, evaluate, the experiments) loads through
here, so they agree on:

* the model: rebuilt from the config stored with the weights (`model_from_config`), never from
  today's defaults without saying so — a config without a `model` block is refused, an unknown
  option is refused, a missing one is taken from `hdrjax.models.build.model_defaults()` with a
  logged warning naming the fields and values;
* the variables: every array's path and shape checked against the model (`check_shapes`),
  one error line naming the first mismatch;
* the stages run by default (`stages_for_checkpoint`): refinement only after joint fine-tuning
  (the only training that trains the Refinement-Net), unless the weights name their output
  stage;
* the warning for untrained or briefly trained weights (`checkpoint_warning`), which a shipped
  model that records how it was trained never gets.

Problems the user can fix raise `LoadError` (a HdrjaxError; a shipped-model folder's own
problems raise `hdrjax.pretrained.PretrainedError`).
"""
from __future__ import annotations

import json
import logging
import pathlib
from typing import Any, NamedTuple

import numpy as np

from hdrjax.errors import HdrjaxError
from hdrjax.models.build import NETWORKS, TRAINING_STAGES

logger = logging.getLogger("hdrjax.loading")

# Weights trained for fewer steps than this get a warning (the `cpu` config runs a few thousand).
FEW_STEPS = 10_000


class LoadError(HdrjaxError):
    """A checkpoint that cannot be turned into a model (missing, incomplete, not matching it)."""


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
    the stage its evaluation found best there (hdrjax.pretrained.load), a TF1 import of the
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


# ----------------------------------------------------------------------------- model and shapes


def _tree_shapes(tree, prefix=()) -> dict[tuple[str, ...], tuple[int, ...]]:
    if isinstance(tree, dict) or hasattr(tree, "items"):
        out = {}
        for k, v in tree.items():
            out.update(_tree_shapes(v, prefix + (str(k),)))
        return out
    return {prefix: tuple(np.shape(tree))}


def expected_shapes(model) -> dict[tuple[str, ...], tuple[int, ...]]:
    """{(collection, network, ..., leaf): shape} of every variable of `model` (traced, not computed)."""
    from hdrjax.models.build import variable_shapes

    return _tree_shapes(variable_shapes(model))


def check_shapes(expected, variables, where: str) -> None:
    """Raise LoadError naming the first variable that is missing, unexpected or of another shape."""
    got = _tree_shapes({k: variables.get(k, {}) for k in ("params", "batch_stats")})
    for path in sorted(set(expected) | set(got)):
        name = "/".join(path)
        problem = None
        if path not in got:
            problem = f"{name} is missing"
        elif path not in expected:
            problem = f"unexpected {name}"
        elif expected[path] != got[path]:
            problem = f"{name} has shape {got[path]}, the model wants {expected[path]}"
        if problem:
            raise LoadError(f"{where}: checkpoint does not match the SingleHDR model: {problem}")


def _model_options(stored, where: str) -> dict:
    """The stored `model` block completed from model_defaults(), saying what was filled in."""
    from hdrjax.models.build import model_defaults, with_added_options

    if stored is None:
        raise LoadError(
            f"{where}: the config stored with the weights has no 'model' block, so the architecture they "
            "belong to is unknown; save them again with their training config "
            "(hdrjax.checkpoints.save_variables(path, variables, config)) or add the 'model' options "
            "(hdrjax.models.build.model_defaults()) to the stored config")
    # Options added after the weights were written take the value they implicitly had then.
    options = with_added_options(stored)
    defaults = model_defaults()
    missing = [k for k in defaults if k not in options]
    if missing:
        filled = ", ".join(f"{k}={defaults[k]!r}" for k in missing)
        logger.warning(f"{where}: the stored model config lacks {filled}; using these defaults "
                       "(hdrjax.models.build.model_defaults()), which may not be what the weights were trained with")
        options.update({k: defaults[k] for k in missing})
    return options


_MODELS: dict[str, tuple] = {}  # stored architecture -> (model, expected shapes)


def model_from_config(train_config, where: str):
    """(model, expected variable shapes) of a stored training config; cached per architecture.

    `where`: the checkpoint (or shipped-model) folder the config came with, named in errors and
    warnings; a basis file (crf.invemor) that is not where the config says is also looked for
    in it.  Raises LoadError when the model cannot be built (no or an unknown model option, a
    bad value, a missing basis file).
    """
    import ml_collections

    from hdrjax.models.build import build_model

    cfg = dict(train_config or {})
    model_options = _model_options(cfg.get("model"), where)
    invemor = (cfg.get("crf") or {}).get("invemor", "")  # "" = the built-in basis (every config's default)
    if invemor and not pathlib.Path(invemor).exists():
        # A checkpoint folder that was moved (e.g. a TF1 import, which keeps its basis file
        # beside the weights): look for the basis file there.
        beside = pathlib.Path(where).expanduser() / pathlib.Path(invemor).name
        if beside.exists():
            invemor = str(beside.absolute())
    # The same architecture gives the same model object, so its compiled stages are reused
    # (a notebook or test loading several checkpoints compiles once).
    key = json.dumps({"model": model_options, "crf": invemor}, sort_keys=True, default=str)
    if key not in _MODELS:
        config = ml_collections.ConfigDict({"model": model_options, "crf": {"invemor": invemor}})
        try:
            model = build_model(config)
        except (HdrjaxError, OSError) as e:  # an unknown option or bad value, an unreadable basis file
            raise LoadError(f"{where}: cannot build the model from the stored config: {e}") from None
        _MODELS[key] = (model, expected_shapes(model))
    return _MODELS[key]


# ----------------------------------------------------------------------------- loading


def load_model(path):
    """(model, variables, training config dict, step) from a training workdir or checkpoint folder."""
    import jax
    import jax.numpy as jnp

    from hdrjax import checkpoints

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

    None or "default": the model shipped with hdrjax (hdrjax.pretrained.DEFAULT_DIR); a
    shipped-model folder (manifest.json + .npz shards): that model; anything else: a training
    workdir or checkpoint folder (`load_model`).  Raises LoadError or pretrained.PretrainedError.
    """
    from hdrjax import pretrained

    if checkpoint is None or pretrained.is_model_dir(checkpoint):
        model, variables, train_config, manifest = pretrained.load(checkpoint)
        step = manifest.get("step")
        step = None if step is None else int(step)
        if checkpoint in (None, "default"):
            folder = pathlib.Path(pretrained.DEFAULT_DIR)
            package = pathlib.Path(__file__).resolve().parent
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
