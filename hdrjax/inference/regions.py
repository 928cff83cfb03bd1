"""The default inference engine: one pass where memory allows, the Hallucination-Net only where
highlights are.

    C = clip(Deq(LDR))   whole image in one call if it fits the memory budget, else crops
    g = Lin(C↓)          once per image, on C resized to a long side of `crf_resolution`
    B = g(C)             pointwise, in fixed-size chunks (one compiled program for any image)
    A = B + α·relu(Hal(B))   only on crops around the pixels with α > 0 (`hdrjax.inference.crop_plan`)
    R = relu(Ref([A, B, C])) like Deq

Why: the Hallucination-Net is most of the model's arithmetic (its share is measured in
experiments/results/benchmark-cpu-2core.json), but its output is used only
where α > 0 — the brightest channel of B above 0.88, a few percent of a typical photograph's
pixels. Everywhere else A = B exactly, so running it there is wasted. Around each lit pixel
a crop keeps `context` pixels of real image (the net's effective receptive field, measured for
the weights in use by `hdrjax.inference.receptive_field`), so the crop's output equals the one-pass
output there to within the measured tolerance; crops start on the 32-pixel pooling grid.

Memory: `memory_budget` bounds the process's peak (on CPU; on an accelerator, one call's
device memory). The image-sized arrays the engine keeps (LDR, C, B, A, R: 60 bytes per pixel)
and what the process already holds are subtracted; each network call must fit in the rest,
from the bytes per pixel XLA's buffer assignment reports for that network (measured once per
model at 256²). A network that does not fit in one call runs on crops of at most the largest
square that fits, each owning a core and keeping the network's measured context around it.

Compile once: crop sides are rounded up to a few bucket sizes (`hdrjax.inference.crop_plan.BUCKETS`),
so photographs of different sizes share compiled programs; with `shape_buckets` the whole
image is also mirror-padded at its bottom/right to bucket sides (the model pads to a multiple
of 32 the same way), so Dequantization-/Refinement-Net calls share shapes too.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import resource
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.inference import crop_plan, receptive_field
from hdrjax.inference.crop_plan import CELL, Crop, RegionPlan
from hdrjax.inference.networks import Runner, lit_mask, pad_bottom_right, resize_long_side, runner_for

logger = logging.getLogger("hdrjax.inference.regions")

HOST_BYTES_PER_PIXEL = 5 * 3 * 4  # LDR, C, B, A, R as float32 RGB, padded size
# Part of the budget left to a network call; the rest is for numpy staging (stacked crops,
# ownership masks) and allocator slack.
CALL_SHARE = 0.9
CURVE_CHUNK = 1 << 18  # pixels per `apply_curve` call: one compiled program for every image


def current_rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak so far (an upper bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _max_side_cells(per_pixel: float, budget: float | None) -> int | None:
    """Largest square crop side (in cells) whose call fits the budget; None = unbounded."""
    if budget is None:
        return None
    side = int((max(budget, 0.0) / per_pixel) ** 0.5) // CELL
    return side


def padded_shape(h: int, w: int, shape_buckets: bool) -> tuple[int, int]:
    """The size the networks see: a multiple of 32, rounded up to a bucket side if asked."""
    hc, wc = -(-h // CELL), -(-w // CELL)
    if shape_buckets:
        hc, wc = crop_plan.bucket(hc, 1 << 30), crop_plan.bucket(wc, 1 << 30)
    return hc * CELL, wc * CELL


def run_crops(fn: Callable, variables, sources: Sequence[np.ndarray], plan: RegionPlan, out: np.ndarray,
              batch_size: int) -> list[tuple[int, int]]:
    """Write fn's output into `out` at every cell a crop of `plan` owns; returns the shapes called.

    Crops of one shape share calls, `batch_size` at a time (the last batch padded by repeating
    a crop, so every call has one shape).
    """
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(plan.crops):
        by_shape.setdefault(c.shape, []).append(i)
    for (ch, cw), indices in by_shape.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
            inputs = [
                np.stack([src[plan.crops[i].y : plan.crops[i].y + ch, plan.crops[i].x : plan.crops[i].x + cw] for i in padded])
                for src in sources
            ]
            result = np.asarray(fn(variables, *inputs))
            for j, i in enumerate(chunk):
                c = plan.crops[i]
                own = plan.owner[c.y // CELL : (c.y + ch) // CELL, c.x // CELL : (c.x + cw) // CELL] == i
                own = np.repeat(np.repeat(own, CELL, axis=0), CELL, axis=1)
                region = out[c.y : c.y + ch, c.x : c.x + cw]
                region[own] = result[j][own]
    return list(by_shape)


def whole_plan(hp: int, wp: int) -> RegionPlan:
    owner = np.zeros((hp // CELL, wp // CELL), np.int32)
    return RegionPlan((Crop(0, 0, hp, wp),), owner, 0, owner.shape)


def dense(fn: Callable, variables, sources: Sequence[np.ndarray], *, context: int, max_side: int | None,
          batch_size: int) -> tuple[np.ndarray, RegionPlan]:
    """fn over every pixel: one call when the image fits `max_side`, else owned crops with context."""
    hp, wp = sources[0].shape[:2]
    out = np.empty(sources[0].shape[:2] + (3,), np.float32)
    if max_side is None or max(hp, wp) <= max_side * CELL:
        plan = whole_plan(hp, wp)
    else:
        plan = crop_plan.plan(np.ones((hp // CELL, wp // CELL), bool), context, max_side=max_side)
    run_crops(fn, variables, sources, plan, out, batch_size)
    return out, plan


def apply_curve_chunked(linearize: Callable, c: np.ndarray, curve) -> np.ndarray:
    """B = g(C) pointwise over fixed-size chunks of pixels (one compiled shape for any image)."""
    flat = c.reshape(-1, 3)
    out = np.empty_like(flat)
    chunk = np.zeros((CURVE_CHUNK, 3), np.float32)
    for start in range(0, flat.shape[0], CURVE_CHUNK):
        n = min(CURVE_CHUNK, flat.shape[0] - start)
        chunk[:n] = flat[start : start + n]
        out[start : start + n] = np.asarray(linearize(chunk, curve))[:n]
    return out.reshape(c.shape)


# ----------------------------------------------------------------------------- the engine


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """The part of `PredictConfig` this engine reads (see hdrjax.predict.PredictConfig)."""

    stages: tuple[str, ...]
    crf_resolution: int | None
    batch_size: int = 1
    memory_budget: float | None = 4e9
    one_pass: bool = False  # every network on the whole image in one call (Hal everywhere)
    shape_buckets: bool = False
    hallucination_context: int | None = None
    unet_context: int | None = None


def _call_budget(options: EngineOptions, pixels: int) -> float | None:
    """Bytes one network call may use: the budget less the image arrays and what we hold now."""
    if options.memory_budget is None or options.one_pass:
        return None
    on_cpu = jax.default_backend() == "cpu"
    held = HOST_BYTES_PER_PIXEL * pixels + (current_rss_bytes() if on_cpu else 0)
    return CALL_SHARE * (options.memory_budget - held) if on_cpu else options.memory_budget


def _max_side(runner: Runner, net: str, variables, budget: float | None, context: int | Callable[[], int],
              hp: int, wp: int) -> int | None:
    """Largest crop side (cells) for net under the budget; None when the whole image fits one call."""
    if budget is None:
        return None
    per_pixel = runner.bytes_per_pixel(net, variables)
    if per_pixel * hp * wp <= budget:
        return None
    context = context() if callable(context) else context
    side = _max_side_cells(per_pixel, budget)
    need = 2 * -(-context // CELL) + 1
    if side < need:
        # The process already holds (or the image alone needs) more than the budget allows: the
        # smallest crops that keep the context are the least memory we can use, so use them.
        if not _WARNED:
            _WARNED.append(True)
            logger.warning(
                f"the memory budget cannot be met (it leaves {budget / 1e9:.2f} GB for the {net}-Net on a "
                f"{hp}×{wp} image after what the process holds): running on the smallest crops "
                f"({need * CELL} px) instead"
            )
        return need
    return side


_WARNED: list[bool] = []  # the budget warning is given once per process


def reconstruct_one(model, variables, ldr: np.ndarray, options: EngineOptions) -> tuple[dict, dict]:
    """(stage images cropped to the input's size + "inverse_crf", stats) for one f32[H, W, 3] LDR."""
    runner = runner_for(model)
    stages = options.stages
    h, w = ldr.shape[:2]
    hp, wp = padded_shape(h, w, options.shape_buckets and not options.one_pass)
    stats: dict = {"height": h, "width": w, "padded_shape": (hp, wp), "stages": stages,
                   "engine": "one-pass" if options.one_pass else "regions", "seconds": {}}
    out: dict = {}
    budget = _call_budget(options, hp * wp)
    contexts: dict[str, int] = {}

    def unet_context() -> int:  # measured only when an image does not fit one call
        if "unet" not in contexts:
            contexts["unet"] = max(runner.context(n, variables, options.unet_context) for n in ("dequantization", "refinement"))
        return contexts["unet"]

    t0 = time.perf_counter()
    x = pad_bottom_right(ldr, hp, wp)
    side = _max_side(runner, "dequantization", variables, budget, unet_context, hp, wp)
    c, plan = dense(runner.dequantize, variables, [x], context=unet_context() if side else 0, max_side=side,
                    batch_size=options.batch_size)
    del x
    stats["dequantization_calls"] = len(plan.crops)
    out["dequantized"] = c[:h, :w]
    stats["seconds"]["dequantization"] = time.perf_counter() - t0
    if len(stages) == 1:
        return out, stats

    t0 = time.perf_counter()
    small = resize_long_side(np.ascontiguousarray(c[:h, :w]), options.crf_resolution)
    stats["crf_shape"] = small.shape[:2]
    curve = runner.inverse_crf(variables, jnp.asarray(small)[None])[0]
    out["inverse_crf"] = np.asarray(curve)
    b = apply_curve_chunked(runner.linearize, c, curve)
    out["linear"] = b[:h, :w]
    stats["seconds"]["linearization"] = time.perf_counter() - t0
    if len(stages) == 2:
        return out, stats

    t0 = time.perf_counter()
    from hdrjax.models.hallucination import BLEND_THRESHOLD

    threshold = getattr(model, "blend_threshold", BLEND_THRESHOLD)
    lit = lit_mask(b, threshold)
    lit[h:], lit[:, w:] = False, False  # the padding is cropped away: its pixels need no crop
    stats["lit_fraction"] = float(lit[:h, :w].mean())
    a = b.copy()
    if options.one_pass:
        plan = whole_plan(hp, wp)
        context = 0
    else:
        context = runner.context("hallucination", variables, options.hallucination_context)
        side = _max_side(runner, "hallucination", variables, budget, context, hp, wp)
        need = crop_plan.needed_cells(lit, context)
        plan = crop_plan.plan(crop_plan.lit_cells(lit), context, need=need, max_side=side)
    shapes = run_crops(runner.hallucinate, variables, [b], plan, a, options.batch_size)
    stats.update(hallucination_context=context, hallucination_crops=len(plan.crops),
                 hallucination_crop_shapes=shapes, hallucination_work=plan.work_fraction)
    out["hallucinated"] = a[:h, :w]
    stats["seconds"]["hallucination"] = time.perf_counter() - t0
    if len(stages) == 3:
        return out, stats

    t0 = time.perf_counter()
    side = _max_side(runner, "refinement", variables, budget, unet_context, hp, wp)
    r, plan = dense(runner.refine, variables, [a, b, c], context=unet_context() if side else 0, max_side=side,
                    batch_size=options.batch_size)
    stats["refinement_calls"] = len(plan.crops)
    out["refined"] = r[:h, :w]
    stats["seconds"]["refinement"] = time.perf_counter() - t0
    return out, stats


def record_receptive_fields(model_dir=None, nets=("dequantization", "hallucination", "refinement")) -> dict:
    """Measure each net's receptive field for a shipped model's weights and store it in its manifest.

    Inference then needs no measurement for this model (`hdrjax.inference.receptive_field`); an entry
    whose weight hash does not match the weights loaded is ignored.
    """
    from hdrjax.weights import pretrained

    model, variables, _, _ = pretrained.load(model_dir)
    runner = runner_for(model)
    stored = {}
    for net in nets:
        fn, _ = runner.stage_fn(net)
        m = receptive_field.measure(net, lambda *x, fn=fn: fn(variables, *x))
        stored[net] = {**m.to_json(), "fingerprint": receptive_field.weights_fingerprint(variables, net),
                       "tolerance_relative": receptive_field.TOLERANCE, "probe_version": receptive_field.PROBE_VERSION}
    pretrained.update_manifest(model_dir, receptive_field=stored)
    return stored
