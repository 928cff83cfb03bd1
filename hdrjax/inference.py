"""The default inference engine: one pass where memory allows, the Hallucination-Net only where
highlights are.

    C = clip(Deq(LDR))   whole image in one call if it fits the memory budget, else crops
    g = Lin(C↓)          once per image, on C resized to a long side of `crf_resolution`
    B = g(C)             pointwise, in fixed-size chunks (one compiled program for any image)
    A = B + α·relu(Hal(B))   only on crops around the pixels with α > 0 (`hdrjax.highlights`)
    R = relu(Ref([A, B, C])) like Deq

Why: the Hallucination-Net is most of the model's arithmetic (its share is measured in
experiments/results/benchmark-cpu-2core.json), but its output is used only
where α > 0 — the brightest channel of B above 0.88, a few percent of a typical photograph's
pixels. Everywhere else A = B exactly, so running it there is wasted. Around each lit pixel
a crop keeps `context` pixels of real image (the net's effective receptive field, measured for
the weights in use by `hdrjax.receptive_field`), so the crop's output equals the one-pass
output there to within the measured tolerance; crops start on the 32-pixel pooling grid.

Memory: `memory_budget` bounds the process's peak (on CPU; on an accelerator, one call's
device memory). The image-sized arrays the engine keeps (LDR, C, B, A, R: 60 bytes per pixel)
and what the process already holds are subtracted; each network call must fit in the rest,
from the bytes per pixel XLA's buffer assignment reports for that network (measured once per
model at 256²). A network that does not fit in one call runs on crops of at most the largest
square that fits, each owning a core and keeping the network's measured context around it.

Compile once: crop sides are rounded up to a few bucket sizes (`hdrjax.highlights.BUCKETS`),
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

from hdrjax import highlights
from hdrjax.highlights import CELL, Crop, RegionPlan

logger = logging.getLogger("hdrjax.inference")

HOST_BYTES_PER_PIXEL = 5 * 3 * 4  # LDR, C, B, A, R as float32 RGB, padded size
# What a call really adds to the process's RSS on a CPU, over XLA's buffer assignment (temp +
# output): the runtime's convolution workspaces. Measured 1.26× (Hallucination-Net, 768²) and
# 1.29× (Dequantization-Net, 1536²) with the shipped model; rounded up.
CPU_RUNTIME_OVERHEAD = 1.35
# Part of the budget left to a network call; the rest is for numpy staging (stacked crops,
# ownership masks) and allocator slack.
CALL_SHARE = 0.9
CURVE_CHUNK = 1 << 18  # pixels per `apply_curve` call: one compiled program for every image
MEMORY_PROBE_SIDE = 256  # networks' bytes per pixel are read from XLA at this size


def current_rss_bytes() -> int:
    """This process's resident memory now (Linux), else its peak so far (an upper bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def bytes_per_pixel(fn: Callable, variables, num_inputs: int) -> float:
    """Bytes one call of fn needs per input pixel: XLA's temporaries + the images in and out."""
    side = MEMORY_PROBE_SIDE
    x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    compiled = fn.lower(variables, *([x] * num_inputs)).compile()
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
    if temp is None:  # a backend without the analysis: measured CPU figures, generous
        return 1800.0 if num_inputs == 1 else 400.0
    per_pixel = (temp + analysis.output_size_in_bytes) / side**2 + 12.0 * num_inputs
    return per_pixel * (CPU_RUNTIME_OVERHEAD if jax.default_backend() == "cpu" else 1.0)


def _max_side_cells(per_pixel: float, budget: float | None) -> int | None:
    """Largest square crop side (in cells) whose call fits the budget; None = unbounded."""
    if budget is None:
        return None
    side = int((max(budget, 0.0) / per_pixel) ** 0.5) // CELL
    return side


def pad_bottom_right(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Mirror-pad (numpy 'symmetric', as the model's own padding) at the bottom/right to h×w."""
    ph, pw = h - x.shape[0], w - x.shape[1]
    if ph == 0 and pw == 0:
        return x
    # np.pad 'symmetric' reflects repeatedly when the pad exceeds the image (tiny images).
    return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


def padded_shape(h: int, w: int, shape_buckets: bool) -> tuple[int, int]:
    """The size the networks see: a multiple of 32, rounded up to a bucket side if asked."""
    hc, wc = -(-h // CELL), -(-w // CELL)
    if shape_buckets:
        hc, wc = highlights.bucket(hc, 1 << 30), highlights.bucket(wc, 1 << 30)
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
        plan = highlights.plan(np.ones((hp // CELL, wp // CELL), bool), context, max_side=max_side)
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


def resize_long_side(x: np.ndarray, long_side: int | None) -> np.ndarray:
    """Area-average x (f32[H, W, 3]) so its longer side is long_side (never enlarges): the CRF's input."""
    import cv2

    h, w = x.shape[:2]
    if long_side is None or max(h, w) <= long_side:
        return x
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA)


def lit_mask(b: np.ndarray, threshold: float) -> np.ndarray:
    """bool[H, W]: pixels with α > 0 under the model's blend rule (`blend_weight`, §2.3).

    The same float32 operations in the same order as `blend_weight` ((max − 1) + threshold, then
    > 0; dividing by the positive threshold and clipping do not change the sign), in numpy so
    no image shape compiles anything.
    """
    peak = b.max(axis=-1)
    return (peak - np.float32(1.0)) + np.float32(threshold) > 0


# ----------------------------------------------------------------------------- compiled stages


class Runner:
    """jit-compiled stage functions of one model, and what was measured about them.

    Compiled once per input shape and batch; `contexts` and `per_pixel` (bytes per pixel of
    one call) are measured on first use and kept with the model.
    """

    def __init__(self, model):
        self.model = model
        from hdrjax.camera.crf import apply_curve

        def dequantize(variables, ldr):
            # SingleHDR.dequantize already clips; clipping again is free and makes the contract
            # (C in [0, 1], as every reference caller) hold for any model.
            return jnp.clip(model.apply(variables, ldr, method="dequantize"), 0.0, 1.0)

        def inverse_crf(variables, c):
            return model.apply(variables, c, train=False, method="estimate_inverse_crf")

        def linearize(c, curve):
            # One curve for every pixel given (all from one image).
            return apply_curve(jnp.clip(c, 0.0, 1.0), curve)

        def hallucinate(variables, b):
            blended, _ = model.apply(variables, b, train=False, method="hallucinate")
            return blended

        def refine(variables, a, b, c):
            return jnp.maximum(model.apply(variables, a, b, c, method="refine"), 0.0)

        self.dequantize = jax.jit(dequantize)
        self.inverse_crf = jax.jit(inverse_crf)
        self.linearize = jax.jit(linearize)
        self.hallucinate = jax.jit(hallucinate)
        self.refine = jax.jit(refine)
        self.per_pixel: dict[str, float] = {}
        self._contexts: list[tuple] = []  # (the weights object, net, context) most recent first

    def stage_fn(self, net: str) -> tuple[Callable, int]:
        """(jitted function of (variables, *images), number of image inputs) of a dense net."""
        return {
            "dequantization": (self.dequantize, 1),
            "hallucination": (self.hallucinate, 1),
            "refinement": (self.refine, 3),
        }[net]

    def bytes_per_pixel(self, net: str, variables) -> float:
        if net not in self.per_pixel:
            fn, n = self.stage_fn(net)
            self.per_pixel[net] = bytes_per_pixel(fn, variables, n)
        return self.per_pixel[net]

    def context(self, net: str, variables, override: int | None = None) -> int:
        """Pixels of context a crop needs around what it keeps: `override`, else measured."""
        if override is not None:
            return override
        from hdrjax import receptive_field

        tree = (variables.get("params") or {}).get(net)
        for held, n, value in self._contexts:  # hashing the weights again per image costs ~0.1 s
            if held is tree and n == net:
                return value
        fn, _ = self.stage_fn(net)
        value = receptive_field.cached_context(net, variables, lambda *x: fn(variables, *x)).context
        self._contexts = [(tree, net, value)] + self._contexts[:7]
        return value


_RUNNERS: list[Runner] = []


def runner_for(model) -> Runner:
    """The cached `Runner` of this model object (linen modules holding arrays are not hashable)."""
    for r in _RUNNERS:
        if r.model is model:
            return r
    r = Runner(model)
    _RUNNERS.append(r)
    del _RUNNERS[:-4]  # a few models at most (notebooks comparing checkpoints)
    return r


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
        need = highlights.needed_cells(lit, context)
        plan = highlights.plan(highlights.lit_cells(lit), context, need=need, max_side=side)
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

    Inference then needs no measurement for this model (`hdrjax.receptive_field`); an entry
    whose weight hash does not match the weights loaded is ignored.
    """
    from hdrjax import pretrained, receptive_field

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
