"""The training state: what it holds, and where its first values come from.

`TrainState` is everything an optimiser step changes and a checkpoint stores.  This module
makes one: `create_state` initialises it at random and then from the sources a config names
(`config.init.*`: the VGG16 encoder §2.3 and CRF-Net trunk §3.1, read by
`load_weight_sources`; earlier stage runs or a shipped model per network);
`abstract_state` gives its shapes and shardings without computing it, for restoring a
checkpoint onto the devices.  `check_init_sources` refuses `config.init.*` entries that
cannot be read, before anything compiles.

The training loop and step functions are in hdrjax.training.loop.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from hdrjax.errors import ConfigError
from hdrjax.models.build import NETWORKS, init_variables, with_added_options
from hdrjax.training import parallel
from hdrjax.weights import checkpoints

logger = logging.getLogger(__name__)

# Top-level parameter subtrees each stage updates; the others ride along unchanged.
TRAINABLE = {
    "dequantization": ("dequantization",),
    "linearization": ("linearization",),
    "hallucination": ("hallucination",),
    "joint": NETWORKS,  # §3.4: all four nets, VGG encoder included
}
# BatchNorm modes of the trained networks (config train.batch_norm; configs/default.py).
BATCH_NORM_MODES = ("batch", "frozen")
BATCH_NORM_NETWORKS = ("linearization", "hallucination")  # the networks with BatchNorm layers


def _named_trainable(config) -> list[str]:
    """The network names of `train.trainable` ("" = none named)."""
    return [n.strip() for n in config.train.get("trainable", "").split(",") if n.strip()]


def trained_networks(config) -> tuple[str, ...]:
    """The networks a run updates: its stage's (`TRAINABLE`), or the subset `train.trainable`
    names (a joint run that trains the Refinement-Net alone on the others' outputs)."""
    chosen = _named_trainable(config)
    held = TRAINABLE[config.stage]
    return tuple(n for n in held if n in chosen) if chosen else held


def batch_norm_training(config) -> tuple[str, ...]:
    """The networks whose BatchNorm layers run in training mode in a train step: the trained
    ones with `train.batch_norm` "batch" (the reference), none with "frozen"."""
    return trained_networks(config) if config.train.get("batch_norm", "batch") == "batch" else ()


def check_trainable(config) -> None:
    """ConfigError for a `train.trainable` or `train.batch_norm` that cannot run."""
    held = TRAINABLE[config.stage]
    unknown = [n for n in _named_trainable(config) if n not in held]
    if unknown:
        raise ConfigError(f"config.train.trainable: {', '.join(unknown)} not trained by stage {config.stage!r}; "
                          f"choose from {', '.join(held)} ('' = all of them)")
    fixed = [n for n in held if n not in trained_networks(config) and not config.init[n]]
    if fixed:
        raise ConfigError(f"config.train.trainable={config.train.trainable!r} keeps {', '.join(fixed)} fixed, "
                          f"but config.init.{fixed[0]} is empty (a random network); name its weights")
    mode = config.train.get("batch_norm", "batch")
    if mode not in BATCH_NORM_MODES:
        raise ConfigError(f"config.train.batch_norm: unknown {mode!r}; one of {', '.join(BATCH_NORM_MODES)}")
    fresh = [n for n in trained_networks(config) if n in BATCH_NORM_NETWORKS and not config.init[n]]
    if mode == "frozen" and fresh:
        raise ConfigError(f"config.train.batch_norm='frozen' keeps the running averages of {fresh[0]}, which "
                          f"starts from random weights (config.init.{fresh[0]} is empty): its averages are the "
                          "initial 0 and 1; use 'batch'")


@struct.dataclass
class TrainState:
    """Everything a step changes; checkpointed whole (orbax PyTree).

    It holds the networks of its stage only (`TRAINABLE[stage]`; joint: all four): a stage
    run neither needs nor changes the others, so they are not initialised, kept on the
    devices or written into every checkpoint (a Dequantization checkpoint was 118 MB of
    mostly untouched Hallucination-Net weights).
    """

    step: jax.Array  # i32[]: optimiser steps done
    params: Any  # {network: ...} for the stage's networks (dequantization, ..., refinement)
    batch_stats: Any  # the stage's networks with BatchNorm (linearization, hallucination)
    opt_state: Any
    key: jax.Array  # u32[2]: raw key data (plain arrays checkpoint everywhere)


# ------------------------------------------------------------------- the init sources


def check_init_sources(config) -> None:
    """Raise ConfigError for a `config.init.*` entry that cannot be read (no compilation)."""
    for net in NETWORKS:
        path = config.init[net]
        if path and is_shipped(path):
            _check_shipped(config, net, path)
        elif path and checkpoints.find_checkpoint(path) is None:
            raise ConfigError(f"config.init.{net}: {path!r} holds no checkpoint (expected the workdir of a "
                              f"{net if net != 'refinement' else 'joint'} training run)")
    for field in ("vgg", "vgg_loss"):
        spec = config.init[field]
        if spec and spec != "lpips" and not os.path.isfile(os.path.expanduser(spec)):
            raise ConfigError(f"config.init.{field}: {spec!r} is neither 'lpips' nor an existing .npy file")
    if config.init.crf_net and not os.path.isfile(os.path.expanduser(config.init.crf_net)):
        raise ConfigError(f"config.init.crf_net: {config.init.crf_net!r} is not a file (crf_net_v2.npy)")
    # Pre-trained weights (VGG-16 for the encoder, crf_net_v2) fit the paper's widths only: say
    # so now rather than after the first compile, when this run would initialise that network.
    width = config.model.get("width", 1.0)
    if width != 1.0:
        fresh = {"vgg": "hallucination", "crf_net": "linearization"}
        for field, net in fresh.items():
            if config.init[field] and net in TRAINABLE[config.stage] and not config.init[net]:
                raise ConfigError(f"config.init.{field}: {config.init[field]!r} holds weights of the width-1.0 "
                                  f"networks, this config has model.width={width}; set config.init.{field}=''")


def is_shipped(path) -> bool:
    """Whether `path` names a shipped model (hdrjax.weights.pretrained) rather than a training workdir."""
    from hdrjax.weights.pretrained import is_model_dir  # lazy: keeps importing training light

    return is_model_dir(path)


def _check_shipped(config, net: str, path) -> None:
    """init.<net> names a shipped model: it must exist and have this config's model options."""
    from hdrjax.weights import pretrained

    try:
        manifest = pretrained.read_manifest(pretrained.resolve(path))
    except pretrained.PretrainedError as e:
        raise ConfigError(f"config.init.{net}: {e}") from None
    # Options the manifest predates have the value they implicitly had; the compute-only options
    # (dtype, how conv weight gradients are computed) do not change what the weights mean.
    stored = with_added_options(manifest["config"].get("model", {}))
    wanted = checkpoints.config_to_json(config.model)
    compute_only = ("dtype", "conv_kernel_grad")
    diff = {k: (stored.get(k), v) for k, v in wanted.items()
            if k in stored and stored[k] != v and k not in compute_only}
    if diff:
        k, (old, new) = sorted(diff.items())[0]
        raise ConfigError(f"config.init.{net}: the model in {pretrained.resolve(path)} was trained with "
                          f"model.{k}={old!r}, this config has {new!r} (set it to match, or start from scratch)")


def load_weight_sources(config) -> tuple:
    """(VGG16 weights for the Hallucination-Net encoder §2.3, CRF-Net trunk variables §3.1) that
    a fresh state starts from, each None when the config asks for none or the network comes
    from init.<network>.  Read before anything compiles, so a bad file fails early."""
    vgg_init = crf_net_init = None
    if not config.init.hallucination and config.init.vgg and config.stage in ("hallucination", "joint"):
        from hdrjax.models import vgg

        vgg_init = vgg.load_vgg16(config.init.vgg)
    if not config.init.linearization and config.init.crf_net and config.stage in ("linearization", "joint"):
        from hdrjax.models.linearization import load_crf_net_v2

        crf_net_init = load_crf_net_v2(os.path.expanduser(config.init.crf_net))
    return vgg_init, crf_net_init


# ------------------------------------------------------------------------ the state


# Compiled parameter initialisers by (model options, mesh): compiling SingleHDR's init is the
# slowest part of a start (tens of seconds on a CPU), and runs in one process (tests,
# notebooks, several stages in a row) share it.
_INIT_FNS: dict = {}


def _compiled_init(config, model, mesh) -> Callable:
    networks = TRAINABLE[config.stage]
    key = (json.dumps(checkpoints.config_to_json(config.model), sort_keys=True),
           config.crf.invemor, networks, mesh.devices.shape, tuple(d.id for d in mesh.devices.flat))
    if key not in _INIT_FNS:
        _INIT_FNS[key] = jax.jit(functools.partial(init_variables, model, networks=networks),
                                 out_shardings=parallel.replicated(mesh))
    return _INIT_FNS[key]


def param_init_key(seed: int) -> jax.Array:
    """The PRNG key of the random parameter initialisation."""
    # XLA's RngBitGenerator ("rbg") compiles several times faster than threefry for the ~150
    # parameter tensors of SingleHDR (init compile 66 s vs 156 s on our loaded 2-core CPU);
    # parameter values need no sharding invariance. Synthesis keys stay threefry.
    return jax.random.key(seed, impl="rbg")


def state_from_variables(variables, optimizer, seed: int) -> TrainState:
    """A step-0 TrainState around model variables: fresh optimizer state, synthesis key from `seed`."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        opt_state=optimizer.init(variables["params"]),
        key=jax.random.key_data(jax.random.fold_in(jax.random.key(seed), 1)),
    )


def abstract_state(config, model, optimizer, mesh) -> TrainState:
    """Shapes, dtypes and (replicated) shardings of the TrainState, without computing it."""
    shapes = jax.eval_shape(lambda: state_from_variables(
        init_variables(model, param_init_key(config.seed), networks=TRAINABLE[config.stage]),
        optimizer, config.seed))
    rep = parallel.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), shapes)


def create_state(config, model, optimizer, mesh, *, vgg_init=None, crf_net_init=None) -> TrainState:
    """A fresh TrainState: random init, VGG encoder (§2.3), CRF-Net trunk (§3.1), then any
    init.<network> checkpoints."""
    rep = parallel.replicated(mesh)
    variables = _compiled_init(config, model, mesh)(param_init_key(config.seed))
    # Adam's state is zeros of the parameters' shapes: cheap, no need to compile it.
    state = jax.device_put(state_from_variables(variables, optimizer, config.seed), rep)
    params, batch_stats = dict(state.params), dict(state.batch_stats)
    if vgg_init is not None:
        from hdrjax.models.hallucination import encoder_init

        params["hallucination"] = parallel.replicate(encoder_init(params["hallucination"], vgg_init), mesh)
        logger.info("Hallucination-Net encoder initialised from VGG16 (%s)", vgg_init.source)
    if crf_net_init is not None:
        from hdrjax.models.linearization import merge_variables

        params["linearization"] = parallel.replicate(
            merge_variables(params["linearization"], crf_net_init["params"], "linearization"), mesh)
        batch_stats["linearization"] = parallel.replicate(
            merge_variables(batch_stats["linearization"], crf_net_init["batch_stats"], "linearization"), mesh)
        logger.info("Linearization-Net trunk initialised from %s", config.init.crf_net)
    # Networks that start from a shipped model: its files are checked and read once per folder.
    shipped: dict = {}
    used = [net for net in NETWORKS if net in params]
    for net in NETWORKS:
        if config.init[net] and net not in params:
            logger.warning("config.init.%s is not used: stage %s trains only %s", net, config.stage,
                           ", ".join(used))
    for net in used:
        if config.init[net] and is_shipped(config.init[net]):
            shipped.setdefault(config.init[net], []).append(net)
    shipped_variables = {}
    for path, nets in shipped.items():
        from hdrjax.weights import pretrained

        try:
            shipped_variables[path] = pretrained.network_variables(path, tuple(nets))
        except pretrained.PretrainedError as e:
            raise ConfigError(f"config.init.{', '.join(nets)}: {e}") from None
    for net in used:
        path = config.init[net]
        if not path:
            continue
        wanted = {"params": {net: params[net]}}
        if net in batch_stats:
            wanted["batch_stats"] = {net: batch_stats[net]}
        if path in shipped_variables:
            from hdrjax.models.linearization import merge_variables

            source = shipped_variables[path]
            mine = {k: {net: source[k][net]} for k in wanted if net in source[k]}
            try:
                merged = merge_variables(wanted, mine, f"init.{net}")
            except (KeyError, ValueError) as e:
                raise ConfigError(f"config.init.{net}: {e}") from None
            loaded = parallel.replicate(merged, mesh)
        else:
            loaded = checkpoints.load_variables(path, wanted, what=f"init.{net}")
        params.update(loaded["params"])
        batch_stats.update(loaded.get("batch_stats", {}))
        logger.info("%s network initialised from %s", net, path)
    # Adam moments are zeros either way (§3.4: fresh optimizer state after loading).
    state = state.replace(params=params, batch_stats=batch_stats)
    # The state is donated to every step: it must not share a buffer with anything else (the
    # VGG encoder weights are the same arrays as the perceptual-loss VGG passed next to it).
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)
