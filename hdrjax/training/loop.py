"""Training: stage-wise (teacher forcing, §1.6) and joint fine-tuning (§3.4) of SingleHDR.

`train_and_evaluate(config, workdir)` is the whole run: checks the config, builds data, CRF
banks and the model, restores the latest checkpoint of `workdir` (or initialises, optionally
from earlier stage runs), then loops: synthesise LDRs on the device, one optimiser step,
log, evaluate on held-out CRFs and exposures, checkpoint.  A SIGTERM (preemption) or Ctrl-C
stops at the next step boundary, saves a checkpoint and returns; the next start continues
from it (a second signal exits the process at once).  In a multi-process run every decision
taken at a step boundary (stop, wall-clock save) is agreed by all processes.

This module holds the config check, the optimiser, the step functions (what one train step
and one eval step compute) and the loop.  The parts the loop uses live next to it in
hdrjax/training/:
  train_state     TrainState, creating it (init sources) or its shapes for a restore
  losses          the per-stage and joint losses
  periodic_eval   the fixed held-out eval set and running the eval step over it
  summaries       TensorBoard / metrics.jsonl writer, preview images, the progress line
  preemption      stop on SIGTERM / Ctrl-C at a step boundary
  parallel        the device mesh, sharding, multi-process agreement
"""
from __future__ import annotations

import json
import logging
import math
import pathlib
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from hdrjax.errors import ConfigError
from hdrjax.models.build import NETWORKS, TRAINING_STAGES, build_model
from hdrjax.training import parallel, periodic_eval, preemption, summaries, train_state
from hdrjax.weights import checkpoints

logger = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine")
# What the Linearization-Net sees in its own stage (config train.lin_input; configs/default.py).
LIN_INPUTS = ("ldr", "jpeg")


# ----------------------------------------------------------------------------- validation


def validate_config(config, *, num_devices: int | None = None) -> None:
    """Raise ConfigError for a config that cannot run; called before any compilation."""
    def fail(field, problem):
        raise ConfigError(f"config.{field}: {problem}")

    if config.stage not in TRAINING_STAGES:
        fail("stage", f"unknown stage {config.stage!r}; one of {', '.join(TRAINING_STAGES)}")
    t = config.train
    if t.batch_size < 1:
        fail("train.batch_size", f"must be >= 1, got {t.batch_size}")
    num_devices = jax.device_count() if num_devices is None else num_devices
    if t.batch_size % num_devices:
        fail("train.batch_size", f"{t.batch_size} is not divisible by the number of devices "
             f"({num_devices}); use a multiple of {num_devices}")
    if t.batch_size % jax.process_count():
        fail("train.batch_size", f"{t.batch_size} is not divisible by the number of processes "
             f"({jax.process_count()})")
    if t.num_steps < 0:
        fail("train.num_steps", f"must be >= 0, got {t.num_steps}")
    if t.checkpoint_every_secs < 0:
        fail("train.checkpoint_every_secs", f"must be >= 0 (0 = by steps only), got {t.checkpoint_every_secs}")
    for field in ("log_every", "checkpoint_every", "keep_checkpoints"):
        if t[field] < 1:
            fail(f"train.{field}", f"must be >= 1, got {t[field]}")
    if not t.log_every_secs > 0:
        fail("train.log_every_secs", f"must be > 0, got {t.log_every_secs}")
    for field in ("eval_every", "image_summary_every"):
        if t[field] < 0:
            fail(f"train.{field}", f"must be >= 0 (0 = never), got {t[field]}")
    from hdrjax.training.losses import DEQ_SPACES, JOINT_SPACES, LIN_CURVE_SPACES, LIN_IMAGE_SPACES

    for field, spaces in (("deq_space", DEQ_SPACES), ("lin_image_space", LIN_IMAGE_SPACES),
                          ("lin_curve_space", LIN_CURVE_SPACES), ("joint_space", JOINT_SPACES)):
        if config.loss.get(field, spaces[0]) not in spaces:
            fail(f"loss.{field}", f"unknown {config.loss[field]!r}; one of {', '.join(spaces)}")
    if t.get("lin_input", "ldr") not in LIN_INPUTS:
        fail("train.lin_input", f"unknown {t.lin_input!r}; one of {', '.join(LIN_INPUTS)}")
    if config.optim.schedule not in SCHEDULES:
        fail("optim.schedule", f"unknown schedule {config.optim.schedule!r}; one of {', '.join(SCHEDULES)}")
    if not config.optim.learning_rate > 0:
        fail("optim.learning_rate", f"must be > 0, got {config.optim.learning_rate}")
    if config.eval.num_patches < 1 or config.eval.batch_size < 1:
        fail("eval.num_patches", "eval.num_patches and eval.batch_size must be >= 1")
    lo, hi = config.camera.exposure_min_stops, config.camera.exposure_max_stops
    for stop in config.eval.exposure_stops:
        if not lo <= stop <= hi:
            fail("eval.exposure_stops", f"{stop} is outside the camera's [{lo}, {hi}] stops")
    train_state.check_init_sources(config)
    train_state.check_trainable(config)
    if config.data.name == "hdr_real" and config.stage != "joint":
        fail("data.name", f"hdr_real pairs carry no intermediate targets; stage {config.stage!r} "
             "needs synthetic data (procedural, hdr_folder or hdr_synth)")
    if config.data.name == "hdr_real" and config.loss.get("joint_space", "log_tone") == "pu21":
        fail("loss.joint_space", "'pu21' compares on the camera's radiometric scale, which hdr_real "
             "pairs do not share with their HDR; use 'log_tone' (the reference) for them")


# -------------------------------------------------------------------------------- builders


def camera_config(config):
    """The static CameraConfig of `config.camera`."""
    from hdrjax.camera.pipeline import CameraConfig

    try:
        return CameraConfig.from_config(config.camera)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.camera: {e}") from e


def learning_rate_schedule(config) -> optax.Schedule:
    """Constant (§3.3) or cosine decay over train.num_steps, with an optional linear warm-up."""
    o = config.optim
    if o.schedule == "constant":
        main = optax.constant_schedule(o.learning_rate)
    else:
        main = optax.cosine_decay_schedule(o.learning_rate, max(1, config.train.num_steps - o.warmup_steps))
    if o.warmup_steps:
        return optax.join_schedules(
            [optax.linear_schedule(0.0, o.learning_rate, o.warmup_steps), main], [o.warmup_steps]
        )
    return main


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam (§3.1) on the stage's networks; the other networks get zero updates and no state."""
    o = config.optim
    adam = optax.adam(learning_rate_schedule(config), b1=o.b1, b2=o.b2, eps=o.eps)
    trainable = train_state.trained_networks(config)
    freeze_encoder = bool(config.train.freeze_encoder)

    def labels(params):
        out = {}
        for name, subtree in params.items():
            label = "train" if name in trainable else "frozen"
            if name == "hallucination" and freeze_encoder and label == "train":
                # The VGG16 encoder stays at its initial weights; XLA drops its weight gradients.
                out[name] = {k: jax.tree.map(lambda _: "frozen" if k == "encoder" else "train", v)
                             for k, v in subtree.items()}
            else:
                out[name] = jax.tree.map(lambda _, label=label: label, subtree)
        return out

    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


# ---------------------------------------------------------------------------- train steps


def _stage_outputs(config, model, variables, sample, *, train: bool):
    """Run the stage's networks on its teacher-forced input (§1.6) or the chained pipeline (§3.4).

    Returns (outputs dict, new batch_stats or None).  Inputs/targets come from the
    CameraSample: J = jpeg, L = ldr, Xc = clipped, X = exposed.
    """
    from hdrjax.camera.crf import apply_curve

    stage = config.stage
    # Networks whose BatchNorm normalises with the batch's statistics and updates its running
    # averages (train.batch_norm, train.trainable); the rest run as at inference.
    bn_train = train_state.batch_norm_training(config) if train else ()
    mutable = ["batch_stats"] if bn_train else False

    def apply(*args, **kwargs):
        out = model.apply(variables, *args, mutable=mutable, **kwargs)
        return out if bn_train else (out, None)

    if stage == "dequantization":  # no BatchNorm: nothing to update
        return {"dequantized": model.apply(variables, sample.jpeg, method=model.dequantize)}, None
    if stage == "linearization":
        seen = sample.jpeg if config.train.get("lin_input", "ldr") == "jpeg" else sample.ldr
        curve, mut = apply(seen, train=bool(bn_train), method=model.estimate_inverse_crf)
        linear = apply_curve(jnp.clip(sample.ldr, 0.0, 1.0), curve)
        return {"inverse_crf": curve, "linear": linear}, mut
    if stage == "hallucination":
        (blended, _), mut = apply(sample.clipped, train=bool(bn_train), method=model.hallucinate)
        return {"hallucinated": blended}, mut
    rec, mut = apply(sample.jpeg, train=bn_train)
    return {
        "dequantized": rec.dequantized,
        "inverse_crf": rec.inverse_crf,
        "linear": rec.linear,
        "hallucinated": rec.hallucinated,
        "refined": rec.refined,
    }, mut


def _stage_loss(config, outputs, sample, vgg):
    """The stage's loss (§3.2, §3.4) and its terms."""
    from hdrjax.training import losses

    stage, lc = config.stage, config.loss
    if stage == "dequantization":
        return losses.dequantization_loss(outputs["dequantized"], sample.ldr, sample.mask,
                                          space=lc.get("deq_space", "ldr"), inverse_crf=sample.inverse_crf)
    if stage == "linearization":
        return losses.linearization_loss(
            outputs["linear"], sample.clipped, outputs["inverse_crf"], sample.inverse_crf, sample.mask,
            curve_weight=lc.curve_weight, curve_term=lc.curve_term,
            image_space=lc.get("lin_image_space", "linear"), exposed=sample.exposed,
            curve_space=lc.get("lin_curve_space", "linear"),
        )
    if stage == "hallucination":
        return losses.hallucination_loss(
            outputs["hallucinated"], sample.exposed, sample.mask, vgg,
            perceptual_weight=lc.perceptual_weight, tv_weight=lc.tv_weight,
            tv_per_sample=lc.tv_per_sample,
        )
    return losses.joint_loss(outputs["refined"], sample.exposed, sample.mask if lc.joint_mask else None,
                             space=lc.get("joint_space", "log_tone"))


@struct.dataclass
class _RealSample:
    """A (JPEG, HDR) pair from real data in CameraSample's field names (joint stage only)."""

    jpeg: jax.Array
    exposed: jax.Array
    mask: jax.Array


def synthesize_batch(key, batch, bank, cam, **overrides):
    """CameraSample for a batch dict: synthesised from batch["hdr"], or the real pair if batch has "ldr"."""
    from hdrjax.camera.pipeline import synthesize

    if "ldr" in batch:  # HDR-Real: the camera already made the LDR (§3.4)
        hdr = batch["hdr"]
        return _RealSample(jpeg=batch["ldr"], exposed=hdr, mask=jnp.ones(hdr.shape[:1], jnp.float32))
    return synthesize(key, batch["hdr"], bank, cam, **overrides)


def make_train_step(config, model, optimizer=None, *, schedule=None) -> Callable:
    """step(state, batch, bank, vgg) -> (state, metrics): synthesis, stage loss, one Adam update.

    Pure and unjitted (see `jit_train_step`).  `batch` = {"hdr": f32[B, P, P, 3]} (plus "ldr"
    for real pairs), `bank` the training CRFBank, `vgg` the frozen VGGWeights of the perceptual
    loss (hallucination stage) or None.  Only the stage's networks change (`make_optimizer`).
    """
    optimizer = make_optimizer(config) if optimizer is None else optimizer
    schedule = learning_rate_schedule(config) if schedule is None else schedule
    cam = camera_config(config)
    trained = train_state.trained_networks(config)

    def step(state: train_state.TrainState, batch, bank, vgg):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        sample = synthesize_batch(key, batch, bank, cam)

        def loss_fn(params):
            # No gradients through the networks this run keeps fixed (train.trainable): the
            # optimiser would zero them anyway, and tracing them would cost their backward pass.
            params = {net: p if net in trained else jax.lax.stop_gradient(p) for net, p in params.items()}
            variables = {"params": params, "batch_stats": state.batch_stats}
            outputs, mut = _stage_outputs(config, model, variables, sample, train=True)
            loss, terms = _stage_loss(config, outputs, sample, vgg)
            return loss, (terms, mut)

        (loss, (terms, mut)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        batch_stats = state.batch_stats
        if mut is not None and "batch_stats" in mut:
            batch_stats = {**batch_stats, **mut["batch_stats"]}
        metrics = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}
        metrics["learning_rate"] = schedule(state.step)
        metrics["mask_fraction"] = jnp.mean(sample.mask)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
        return new_state, metrics

    return step


def jit_train_step(step: Callable, mesh) -> Callable:
    """jit with the batch sharded over the mesh, everything else replicated, the state donated."""
    rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, data, rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))


# ------------------------------------------------------------------------------ evaluation


def make_eval_step(config, model, *, num_images: int = 4) -> Callable:
    """eval(variables, batch, bank) -> ({metric: sum over valid samples, "count"}, preview images)."""
    cam = camera_config(config)

    def step(variables, batch, bank):
        sample = synthesize_batch(
            jax.random.wrap_key_data(batch["key"]), batch, bank, cam,
            crf_index=batch["crf_index"], exposure=batch["exposure"], quality=batch["quality"],
        )
        outputs, _ = _stage_outputs(config, model, variables, sample, train=False)
        per_sample = periodic_eval.eval_metrics(config, outputs, sample)
        valid = batch["valid"]
        # Identical images give +inf PSNR; cap so one perfect sample cannot hide the rest.
        sums = {k: jnp.sum(jnp.where(valid > 0, jnp.minimum(v, 100.0), 0.0)) for k, v in per_sample.items()}
        sums["count"] = jnp.sum(valid)
        return sums, summaries.preview_images(outputs, sample, num_images)

    return step


# ------------------------------------------------------------------------------- the run


def _write_config(workdir: pathlib.Path, config) -> None:
    """<workdir>/config.json for people and tools (checkpoints carry their own copy)."""
    if jax.process_index() != 0:
        return
    from hdrjax.io import atomic_write

    with atomic_write(workdir / "config.json", "w") as f:  # a killed run never leaves half a file
        json.dump(checkpoints.config_to_json(config), f, indent=2, sort_keys=True)
        f.write("\n")


def train_and_evaluate(config, workdir) -> train_state.TrainState:
    """Train `config.stage` in `workdir` (resuming from its latest checkpoint) and return the final state."""
    from hdrjax import data
    from hdrjax.camera import crf

    t_start = time.time()
    workdir = pathlib.Path(workdir)
    pc = config.parallel
    parallel.initialize(pc.multi_host, coordinator_address=pc.coordinator_address,
                        num_processes=pc.num_processes, process_id=pc.process_id,
                        heartbeat_timeout_secs=pc.heartbeat_timeout_secs)
    n = config.parallel.num_devices
    if n and (config.parallel.multi_host or not 0 < n <= jax.device_count()):
        raise ConfigError(f"config.parallel.num_devices: {n} is not between 1 and the "
                          f"{jax.device_count()} devices of this single-host run (0 = all)")
    mesh = parallel.make_mesh(jax.devices()[:n] if n else None)
    validate_config(config, num_devices=mesh.devices.size)
    cam = camera_config(config)
    del cam  # validated here; the steps build their own (static) copy
    tc = config.train

    # Everything that reads files or can fail on user input comes before any compilation.
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoints.Checkpointer(workdir, max_to_keep=tc.keep_checkpoints, save_every=tc.checkpoint_every,
                                   async_save=tc.async_checkpoint)
    try:
        latest = ckpt.latest_step
        data_seed, resume_data = config.seed, True
        if latest is not None:
            ckpt.check_config(config, latest)
            data_seed = ckpt.stored_meta(latest).get("data_seed", config.seed)
            writers = ckpt.data_process_count(latest)
            if writers is not None and writers != jax.process_count():
                # Each process reads its own shard of the items, so the streams of N processes
                # cannot be split over M.  The state restores (arrays are global); the data
                # restarts with a new shuffle drawn from (seed, step), not the first batches again.
                resume_data = False
                data_seed = int(np.random.SeedSequence([data_seed, latest]).generate_state(1)[0])
                logger.warning("checkpoint step %d was written by %d processes, this run has %d: "
                               "the model and optimizer state continue, the data order restarts "
                               "with a new shuffle", latest, writers, jax.process_count())
        data_iter = data.make_train_iterator(
            config.data, global_batch_size=tc.batch_size, seed=data_seed,
            process_index=jax.process_index(), process_count=jax.process_count(),
        )
        if data_seed != config.seed:
            # Stored with every checkpoint, so later restarts continue this stream exactly.
            ckpt.meta = {"data_seed": int(data_seed)}
        bank_train = parallel.replicate(crf.load_bank(config.crf.bank, split="train"), mesh)
        bank_test = parallel.replicate(crf.load_bank(config.crf.bank, split="test"), mesh)
        eval_set = periodic_eval.make_eval_set(config, len(bank_test), mesh.devices.size)
        # A restored state has its weights: the VGG16 / CRF-Net files are read for a fresh one only.
        vgg_init, crf_net_init = train_state.load_weight_sources(config) if latest is None else (None, None)
        vgg_loss = None
        if config.stage == "hallucination" and config.loss.perceptual_weight > 0:
            from hdrjax.models import vgg

            spec = config.init.vgg_loss or config.init.vgg or "lpips"
            vgg_loss = vgg_init if (vgg_init is not None and spec == config.init.vgg) else vgg.load_vgg16(spec)
            # Passed to the step as an argument: 59 MB of weights are not baked into the program.
            vgg_loss = parallel.replicate(vgg_loss, mesh)
        model = build_model(config)
        _write_config(workdir, config)
    except BaseException:
        ckpt.close()
        raise

    optimizer = make_optimizer(config)
    schedule = learning_rate_schedule(config)
    if latest is not None:
        t0 = time.time()
        state = ckpt.restore(latest, train_state.abstract_state(config, model, optimizer, mesh),
                             data_iter if resume_data else None)
        logger.info("resumed from checkpoint step %d of %s (%.1fs)", latest, ckpt.directory, time.time() - t0)
    else:
        t0 = time.time()
        state = train_state.create_state(config, model, optimizer, mesh, vgg_init=vgg_init,
                                         crf_net_init=crf_net_init)
        logger.info("initialised %s training in %s (no checkpoint to resume; init: %s) (%.1fs)", config.stage, workdir,
                    ", ".join(f"{n}={config.init[n]}" for n in NETWORKS if config.init[n]) or "none",
                    time.time() - t0)
    del vgg_init, crf_net_init
    start_step = int(jax.device_get(state.step))

    train_step = jit_train_step(make_train_step(config, model, optimizer, schedule=schedule), mesh)
    eval_fn = jax.jit(make_eval_step(config, model), out_shardings=parallel.replicated(mesh))
    writer = summaries.MetricsWriter(workdir, batch_size=tc.batch_size)
    # Every process handles SIGTERM / SIGINT itself; the processes agree on the stop at the
    # next step boundary (parallel.agree), so a signal to any one of them stops all.
    stop = preemption.StopRequest(install=True)

    def start_eval(step, *, images_only=False):
        # Only dispatched: the device runs the evaluation between this step and the next
        # while the host goes on; finish_eval reads the results (train.async_eval).
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        outputs = periodic_eval.dispatch_eval(eval_fn, variables, eval_set, bank_test, mesh,
                                           max_batches=1 if images_only else None)
        return step, images_only, time.time(), outputs

    def finish_eval(started):
        step, images_only, t0, outputs = started
        results, images = periodic_eval.collect_eval(outputs)
        writer.images(step, images, "images")
        if not images_only:
            writer.scalars(step, results, "eval")
            logger.info("eval at step %d (%d samples, %.1fs): %s", step,
                        int(sum(b["valid"].sum() for b in eval_set)), time.time() - t0,
                        "  ".join(f"{k} {v:.4g}" for k, v in sorted(results.items())))
        writer.flush()

    total = tc.num_steps
    trained = train_state.trained_networks(config)
    bn_note = ""
    if any(n in train_state.BATCH_NORM_NETWORKS for n in trained):
        updated = bool(train_state.batch_norm_training(config))
        bn_note = f", their BatchNorm statistics {'updated' if updated else 'kept'} (train.batch_norm)"
    logger.info(
        "%s: steps %d -> %d, global batch %d of %dx%d patches on %d %s device(s), data %s, CRFs %s; training %s%s",
        config.stage, start_step, total, tc.batch_size, config.data.patch_size, config.data.patch_size,
        mesh.devices.size, jax.devices()[0].platform, config.data.name, config.crf.bank, ", ".join(trained), bn_note,
    )
    if start_step < total:
        logger.info("compiling the train step (the first step takes a while)")
    pending: list[dict] = []
    window_start, window_steps = time.time(), 0
    last_log = last_save = time.time()
    step = start_step
    stopped = False
    eval_in_flight = None
    secs = tc.checkpoint_every_secs  # 0 = saves by steps only
    try:
        while step < total:
            # A step boundary: decide, the same on every process, whether to stop or to save by
            # wall clock, *before* fetching a batch or starting a step -- a stop request waits
            # only for the step in flight, and the data position saved is that of `step`.
            due = bool(secs) and step > start_step and time.time() - last_save >= secs
            stop_now, due = parallel.agree([stop.requested, due])
            if stop_now:
                stopped = True
                break
            if due and ckpt.save(step, state, data_iter, config, force=True):
                last_save = time.time()
            batch = parallel.shard_batch(next(data_iter), mesh)
            t0 = time.time()
            state, metrics = train_step(state, batch, bank_train, vgg_loss)
            step += 1
            # At most two steps in flight: the host prepares the next batch while the device
            # runs this one, and a stop request never waits behind a long queue of steps.
            if pending:
                jax.block_until_ready(pending[-1])
            if eval_in_flight is not None:
                # The evaluation dispatched after the previous step: the device runs this step
                # behind it, so reading its results here leaves the device no idle gap.
                finish_eval(eval_in_flight)
                eval_in_flight = None
                window_start, window_steps = time.time(), -1  # evaluation time is not training speed
            pending.append(metrics)
            if step == start_step + 1:
                jax.block_until_ready(metrics)
                logger.info("step %d: compiled and ran the train step in %.1fs", step, time.time() - t0)
                window_start, window_steps = time.time(), 0
            else:
                window_steps += 1
            if (step % tc.log_every == 0 or step == total or step == start_step + 1
                    or time.time() - last_log >= tc.log_every_secs):
                values = {k: float(np.mean([float(m[k]) for m in pending])) for k in pending[0]}
                pending = []
                elapsed = time.time() - window_start
                rate = window_steps / elapsed if window_steps and elapsed > 0 else 0.0
                if rate > 0:  # unknown right after compilation
                    values["images_per_sec"] = rate * tc.batch_size
                    values["sec_per_step"] = 1.0 / rate
                writer.scalars(step, values, "train")
                logger.info("%s", summaries.train_log_line(step, total, values, rate))
                window_start, window_steps = time.time(), 0
                last_log = time.time()
                if not math.isfinite(values["loss"]):
                    raise FloatingPointError(f"the loss is {values['loss']} at step {step}; "
                                             "lower optim.learning_rate or check the data")
            # By steps here; by wall clock at the next boundary (above), so a kill loses at most
            # checkpoint_every_secs of work even when checkpoint_every steps take days.
            if ckpt.save(step, state, data_iter, config):
                last_save = time.time()
            if tc.eval_every and step % tc.eval_every == 0:
                eval_in_flight = start_eval(step)
            elif tc.image_summary_every and step % tc.image_summary_every == 0:
                eval_in_flight = start_eval(step, images_only=True)
            if eval_in_flight is not None and (not tc.async_eval or step == total):
                finish_eval(eval_in_flight)
                eval_in_flight = None
                jax.block_until_ready(state.step)
                window_start, window_steps = time.time(), 0  # evaluation time is not training speed
        if eval_in_flight is not None:  # stopped right after dispatching an evaluation
            finish_eval(eval_in_flight)
            eval_in_flight = None
        if stopped:
            t0 = time.time()
            logger.info("stopping at step %d (no further step started): saving a checkpoint", step)
            if step > start_step and ckpt.latest_step != step:
                ckpt.save(step, state, data_iter, config, force=True)
            ckpt.wait()
            logger.info("stop requested (%s): saved checkpoint step %d in %.1fs; rerun the same "
                        "command to continue", stop.signal_name or "another process", step, time.time() - t0)
            return state
        if step > start_step:
            # The end of training always has a checkpoint and an evaluation.
            if ckpt.latest_step != step:
                ckpt.save(step, state, data_iter, config, force=True)
            if not (tc.eval_every and step % tc.eval_every == 0):
                finish_eval(start_eval(step))
        ckpt.wait()
        logger.info("done: step %d, %s in this run", step, summaries.format_duration(time.time() - t_start))
        return state
    finally:
        stop.restore()
        writer.close()
        ckpt.close()
