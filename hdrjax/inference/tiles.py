"""The tiles engine: every network on overlapping `tile`×`tile` tiles, cross-faded.

`hdrjax.predict.reconstruct(..., PredictConfig(engine="tiles"))` runs it; so does the reference's
own inference (`reference_mode`), which is this engine with a single tile over the stretched,
padded image.  The default engine is `hdrjax.inference.regions` (regions); this one keeps peak memory
bounded by the tile size for every network, at the price of every stage paying the overlap
the Hallucination-Net needs.

Layout: the image is mirror-padded at its bottom/right to a multiple of ALIGN; tile origins
lie on the ALIGN grid, evenly spread so neighbours overlap by at least `overlap` pixels, and
the last tile is flush with the border.  Blending: a raised-cosine ramp over the middle half
of each inner overlap (the outer quarters, nearest the tile edges, get weight 0), normalised
by the sum of weights, so two tiles overlapping by exactly `overlap` cross-fade with weights
summing to one.  Tiles of one shape from several images share a batch.

Highlights: the Hallucination-Net output is blended as B + (A − B), so wherever α = 0 the
result is B bit for bit; with `skip_unlit_tiles` tiles without any pixel of α > 0 are not run.
One inverse CRF per image, from the whole dequantised image resized to `crf_resolution`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from hdrjax.inference.networks import lit_mask, pad_bottom_right, resize_long_side, runner_for
from hdrjax.models.hallucination import BLEND_THRESHOLD

# Tile origins and padded sizes are multiples of this: the Hallucination-Net pools 5 times
# (§2.3), so a 32-aligned tile sees the same pooling grid as the whole image.
ALIGN = 32
# Reference mode (§4): stretch to a multiple of 64, then 32 px symmetric padding.
REFERENCE_MULTIPLE = 64
REFERENCE_BORDER = 32


@dataclasses.dataclass(frozen=True)
class TileOptions:
    """What the tiles engine reads (`hdrjax.predict.PredictConfig` validates and documents them)."""

    stages: tuple[str, ...]
    crf_resolution: int | None
    tile: int = 512
    overlap: int = 128
    batch_size: int = 1
    skip_unlit_tiles: bool = True


# ----------------------------------------------------------------------------- tiling plan


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def tile_origins(padded: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Evenly spread, ALIGN-multiple origins; neighbours overlap by >= overlap; last flush."""
    if tile >= padded:
        return (0,)
    n = -(-(padded - overlap) // (tile - overlap))  # fewest tiles with overlap >= `overlap`
    step = (padded - tile) / (n - 1)
    # Flooring each ideal origin to ALIGN keeps every gap <= tile - overlap (both multiples of
    # ALIGN), so rounding never shrinks an overlap below `overlap`.
    origins = [int(i * step // ALIGN) * ALIGN for i in range(n - 1)] + [padded - tile]
    return tuple(sorted(set(origins)))


def axis_weights(origin: int, tile: int, padded: int, overlap: int) -> np.ndarray:
    """Blend weights along one axis: 0 in the outer quarter of an inner overlap, cosine ramp, 1."""
    w = np.ones(tile, np.float32)
    if overlap == 0:
        return w
    margin = overlap // 4
    n = overlap - 2 * margin
    # Raised cosine sampled at pixel centres: ramp[k] + ramp[n-1-k] == 1, so two tiles that
    # overlap by exactly `overlap` cross-fade with weights summing to one.
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    if origin > 0:  # an inner edge on the left/top: another tile covers this side
        w[:margin] = 0.0
        w[margin : margin + n] *= ramp
    if origin + tile < padded:
        w[tile - margin :] = 0.0
        w[tile - margin - n : tile - margin] *= ramp[::-1]
    return w


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """Tile layout of one (padded) image."""

    height: int  # size of the image handed to the networks, before ALIGN padding
    width: int
    padded_h: int
    padded_w: int
    tile_h: int
    tile_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    overlap: int

    @property
    def tiles(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.tile_h, self.tile_w)

    def weight(self, y: int, x: int) -> np.ndarray:
        wy = axis_weights(y, self.tile_h, self.padded_h, self.overlap)
        wx = axis_weights(x, self.tile_w, self.padded_w, self.overlap)
        return (wy[:, None] * wx[None, :])[..., None]


def make_plan(height: int, width: int, tile: int, overlap: int) -> TilePlan:
    ph, pw = round_up(height, ALIGN), round_up(width, ALIGN)
    th, tw = min(tile, ph), min(tile, pw)
    return TilePlan(height, width, ph, pw, th, tw, tile_origins(ph, th, overlap), tile_origins(pw, tw, overlap), overlap)


def any_lit(model, b: np.ndarray) -> bool:
    """Whether any pixel of b gets α > 0 in the Hallucination-Net blend (the model's rule)."""
    threshold = getattr(model, "blend_threshold", BLEND_THRESHOLD)
    return bool(lit_mask(b, threshold).any())


# ----------------------------------------------------------------------------- running tiles


def run_tiled(
    fn: Callable,
    variables,
    sources: Sequence[Sequence[np.ndarray]],
    plans: Sequence[TilePlan],
    batch_size: int,
    *,
    run: Sequence[Sequence[bool]] | None = None,
    base: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Apply `fn(variables, *tiles)` over the tiles of several images and blend the results.

    sources[i]: the padded input arrays of image i (f32[Hp, Wp, c] each); tiles of the same
    shape from all images are batched `batch_size` at a time (the last batch is padded with
    zeros so every call has one shape). With `base` (padded, 3 channels) the tiles' differences
    from it are blended and added back, so wherever every tile returns `base` unchanged the
    result is `base` bit for bit; `run[i][t]` False then marks tile t of image i as known to
    return `base` (not computed).
    """
    out = [np.zeros((p.padded_h, p.padded_w, 3), np.float32) for p in plans]
    norm = [np.zeros((p.padded_h, p.padded_w, 1), np.float32) for p in plans]
    jobs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for i, plan in enumerate(plans):
        for t, (y, x) in enumerate(plan.tiles):
            norm[i][y : y + plan.tile_h, x : x + plan.tile_w] += plan.weight(y, x)
            if run is None or run[i][t]:
                jobs.setdefault(plan.shape, []).append((i, y, x))
    for (th, tw), tiles in jobs.items():
        for start in range(0, len(tiles), batch_size):
            chunk = tiles[start : start + batch_size]
            inputs = []
            for k in range(len(sources[0])):
                batch = np.zeros((batch_size, th, tw, sources[chunk[0][0]][k].shape[-1]), np.float32)
                for j, (i, y, x) in enumerate(chunk):
                    batch[j] = sources[i][k][y : y + th, x : x + tw]
                inputs.append(batch)
            result = np.asarray(fn(variables, *inputs))
            for j, (i, y, x) in enumerate(chunk):
                sl = (slice(y, y + th), slice(x, x + tw))
                r = result[j] if base is None else result[j] - base[i][sl]
                out[i][sl] += plans[i].weight(y, x) * r
    for i, (o, n) in enumerate(zip(out, norm)):
        o /= n  # every pixel has weight > 0 from some tile (see axis_weights)
        if base is not None:
            o += base[i]
    return out


def apply_curve_tiled(runner, c: np.ndarray, curve, plan: TilePlan) -> np.ndarray:
    """B = apply_curve(C, g) tile by tile (pointwise: overlapping writes agree exactly)."""
    b = np.empty_like(c)
    for y, x in plan.tiles:
        sl = (slice(y, y + plan.tile_h), slice(x, x + plan.tile_w))
        b[sl] = np.asarray(runner.linearize(c[sl], curve))
    return b


def _timing(stats: list[dict], stage: str, t0: float) -> None:
    # Stage times cover all images of a batch together; divided evenly for the per-image record.
    dt = (time.perf_counter() - t0) / max(1, len(stats))
    for s in stats:
        s.setdefault("seconds", {})[stage] = dt


# ----------------------------------------------------------------------------- the engine


def reconstruct_tiled(model, variables, ldrs: Sequence[np.ndarray], options: TileOptions) -> list[tuple[dict, dict]]:
    """[(stage images cropped to the input's size + "inverse_crf", stats)] for f32[H, W, 3] LDRs.

    Same-shape tiles of all images share batches.  Images are named as in
    `hdrjax.predict.PhotoReconstruction` (dequantized, inverse_crf, linear, hallucinated, refined).
    """
    runner = runner_for(model)
    stages = options.stages
    plans = [make_plan(x.shape[0], x.shape[1], options.tile, options.overlap) for x in ldrs]
    stats = [
        {"height": p.height, "width": p.width, "tile_shape": p.shape, "tiles": len(p.tiles), "stages": stages}
        for p in plans
    ]
    images: list[dict] = [{} for _ in plans]
    results = list(zip(images, stats))

    def stage(name: str, key: str, padded_outputs: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        # Every stage: time it for all images together, keep each image's output cropped back
        # to the input's size under `key`, hand the padded outputs on to the next stage.
        t0 = time.perf_counter()
        padded = padded_outputs()
        _timing(stats, name, t0)
        for out, x, plan in zip(images, padded, plans):
            out[key] = x[: plan.height, : plan.width]
        return padded

    deq = stage("dequantization", "dequantized", lambda: run_tiled(
        runner.dequantize, variables, [(pad_bottom_right(x, p.padded_h, p.padded_w),) for x, p in zip(ldrs, plans)],
        plans, options.batch_size))
    if len(stages) == 1:
        return results

    def linearize() -> list[np.ndarray]:
        lin = []
        for i, (out, plan) in enumerate(zip(images, plans)):
            small = resize_long_side(out["dequantized"], options.crf_resolution)
            stats[i]["crf_shape"] = small.shape[:2]
            curve = runner.inverse_crf(variables, jnp.asarray(small)[None])
            out["inverse_crf"] = np.asarray(curve[0])
            lin.append(apply_curve_tiled(runner, deq[i], curve[0], plan))
        return lin

    lin = stage("linearization", "linear", linearize)
    if len(stages) == 2:
        return results

    def hallucinate() -> list[np.ndarray]:
        run = []
        for i, plan in enumerate(plans):
            if options.skip_unlit_tiles:
                lit = [any_lit(model, lin[i][y : y + plan.tile_h, x : x + plan.tile_w]) for y, x in plan.tiles]
            else:
                lit = [True] * len(plan.tiles)
            run.append(lit)
            stats[i]["hallucinated_tiles"] = sum(lit)
            stats[i]["skipped_fraction"] = 1.0 - sum(lit) / len(lit)
        # Blended as B + (A − B): exactly B wherever α = 0, in skipped and computed tiles alike.
        return run_tiled(runner.hallucinate, variables, [(b,) for b in lin], plans, options.batch_size, run=run, base=lin)

    hal = stage("hallucination", "hallucinated", hallucinate)
    if len(stages) == 3:
        return results

    stage("refinement", "refined", lambda: run_tiled(
        runner.refine, variables, list(zip(hal, lin, deq)), plans, options.batch_size))
    return results


def reconstruct_reference(model, variables, ldr: np.ndarray, stages: tuple[str, ...], batch_size: int = 1) -> tuple[dict, dict]:
    """The reference's inference (§4): bicubic stretch to ×64, 32 px symmetric pad, one pass, back.

    Returns (stage images at the input's size + "inverse_crf", stats) like `reconstruct_tiled`.
    """
    import cv2

    h, w = ldr.shape[:2]
    hs, ws = round_up(h, REFERENCE_MULTIPLE), round_up(w, REFERENCE_MULTIPLE)
    x = ldr if (hs, ws) == (h, w) else cv2.resize(ldr, (ws, hs), interpolation=cv2.INTER_CUBIC)
    b = REFERENCE_BORDER
    x = np.pad(x, ((b, b), (b, b), (0, 0)), mode="symmetric")
    # One tile covering everything, CRF from the whole padded image, every tile hallucinated.
    one_pass = TileOptions(stages=stages, crf_resolution=None, tile=round_up(max(x.shape[:2]), ALIGN), overlap=0,
                           batch_size=batch_size, skip_unlit_tiles=False)
    images, stats = reconstruct_tiled(model, variables, [x], one_pass)[0]

    def back(y):
        y = np.ascontiguousarray(y[b:-b, b:-b])
        # Values are not clamped after the bicubic resize, as in the reference.
        return y if (hs, ws) == (h, w) else cv2.resize(y, (w, h), interpolation=cv2.INTER_CUBIC)

    stats.update(height=h, width=w, reference_mode=True)
    return {k: (v if k == "inverse_crf" else back(v)) for k, v in images.items()}, stats
