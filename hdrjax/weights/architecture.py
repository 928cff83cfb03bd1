"""Which model stored weights belong to: rebuilt from the config stored with them.

The one place a model is rebuilt from a stored training config (a training checkpoint's, a
shipped model's manifest): `model_from_config` builds it through `hdrjax.models.build`, never
from today's defaults without saying so — a config without a `model` block is refused, an
unknown option is refused, a missing one is taken from `build.model_defaults()` with a logged
warning naming the fields and values.  `check_shapes` then holds every stored array's path and
shape against that model, naming the first mismatch.  Both `hdrjax.weights.loading` (training
checkpoints) and `hdrjax.weights.pretrained` (shipped models) use them.
"""
from __future__ import annotations

import json
import logging
import pathlib

import ml_collections
import numpy as np
from flax import traverse_util

from hdrjax.errors import HdrjaxError
from hdrjax.models import build

logger = logging.getLogger(__name__)


class LoadError(HdrjaxError):
    """A checkpoint that cannot be turned into a model (missing, incomplete, not matching it)."""


def check_shapes(expected, variables, where: str) -> None:
    """Raise LoadError naming the first variable that is missing, unexpected or of another shape.

    `expected`: {(collection, network, ..., leaf): shape}, as `build.flat_variable_shapes`.
    """
    got = {path: tuple(np.shape(leaf)) for path, leaf in traverse_util.flatten_dict(
        {k: dict(variables.get(k, {})) for k in ("params", "batch_stats")}).items()}
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
    if stored is None:
        raise LoadError(
            f"{where}: the config stored with the weights has no 'model' block, so the architecture they "
            "belong to is unknown; save them again with their training config "
            "(hdrjax.weights.checkpoints.save_variables(path, variables, config)) or add the 'model' options "
            "(hdrjax.models.build.model_defaults()) to the stored config")
    # Options added after the weights were written take the value they implicitly had then.
    options = build.with_added_options(stored)
    defaults = build.model_defaults()
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
            model = build.build_model(config)
        except (HdrjaxError, OSError) as e:  # an unknown option or bad value, an unreadable basis file
            raise LoadError(f"{where}: cannot build the model from the stored config: {e}") from None
        _MODELS[key] = (model, build.flat_variable_shapes(model))
    return _MODELS[key]
