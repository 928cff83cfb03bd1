"""Single-image HDR reconstruction: LDR photographs in, HDR files out.

    python -m hdrjax.predict --output out/ photo.jpg                      # the shipped default model
    python -m hdrjax.predict --checkpoint runs/joint --output out/ photos/ extra/*.jpg

`--checkpoint` names a training workdir (its latest checkpoint), one checkpoint directory or a
shipped-model folder (`hdrjax.pretrained`: manifest.json + .npz shards); without it the model
in hdrjax/weights/default is used (`hdrjax.pretrained.load()`).

Inputs are files, folders (their .jpg/.jpeg/.png/.tif/.tiff files, not recursive) or globs;
8- and 16-bit images are read through `hdrjax.io.read_image`. Each input `NAME.ext` gives
`OUT/NAME.exr` (`--format hdr`: Radiance RGBE `NAME.hdr`; `--half`: half-float EXR) and with
`--preview` also `OUT/NAME.png`.

What the output means
---------------------
Linear *relative* radiance, RGB in the camera's (≈ sRGB / Rec. 709) primaries, float32.
Pixels that were well exposed in the photograph keep values in [0, 1] (the inverse camera
curve maps the LDR range onto [0, 1]); recovered highlights (light sources, sky, specular
reflections that were clipped) are above 1 — several times 1 for bright lights. There is no
absolute scale: to display on an HDR screen or to use as physical luminance, multiply by the
luminance you want for diffuse white, e.g. ×100–200 to get cd/m² (nits), so value 1 → 100–200
nits and highlights go above. The preview (`--preview`, `hdrjax.tonemap.preview`) is a global
Reinhard (2002) tone mapping with key 0.18 of the log-average luminance and no burn-out,
encoded as 8-bit sRGB: a quick look that shows the recovered highlights compressed, not a
grading.

How an image is processed
-------------------------
The four networks run in the reference order (spec §4): C = clip(Deq(LDR)) → one inverse
CRF g = Lin(C) → B = g(C) → A = B + α·relu(Hal(B)) → R = relu(Ref([A, B, C])). Three engines
(`--engine`; `--reference-mode` restores the reference's own inference: bicubic stretch to
a multiple of 64, 32 px mirror padding, one pass):

* **regions** (default, `hdrjax.inference`): Deq and Ref in one pass over the image padded to a
  multiple of 32 when the call fits `--memory-budget` (default 4 GB of process memory), else
  on crops that keep each network's measured context; the Hallucination-Net only on crops
  around the pixels with α > 0 (`hdrjax.highlights`), each keeping its measured receptive
  field (`hdrjax.receptive_field`, ~140 px for the shipped model) of real image, so the result
  equals a one-pass run at every pixel the blend uses, and A = B exactly elsewhere.
* **one-pass**: every network on the whole image in one call (memory grows with the image).
* **tiles**: overlapping `tile`×`tile` tiles (origins on the 32-px grid, raised-cosine
  cross-fade over `overlap` px, whole tiles without α > 0 skip the Hallucination-Net); every
  stage pays the overlap the Hallucination-Net needs.

One CRF per image: the Linearization-Net ends in a global average, so its curve is estimated
ONCE per image from C resized (area averaging) to a long side of `crf_resolution` (default
512), as the net was trained on images with a short side of 256–1024 px; None uses the
full-resolution C in one pass, as the reference. Measurements behind these choices are in
`experiments/results/` (benchmark-*.json, section `regions`).

Stages: by default the output is the refined R when the checkpoint (or shipped model) comes
from joint fine-tuning (the only training that trains the Refinement-Net), otherwise the hallucinated A
(the reference's `test_real.py` output); `--stages` stops earlier or forces refinement.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
import pathlib
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.errors import HdrjaxError
from hdrjax.inference import lit_mask, resize_long_side

logger = logging.getLogger("hdrjax.predict")

# The stage names of SingleHDR, in order (hdrjax.models.ALL_STAGES).
STAGES = ("dequantization", "linearization", "hallucination", "refinement")
# Tile origins and padded sizes are multiples of this: the Hallucination-Net pools 5 times
# (§2.3), so a 32-aligned tile sees the same pooling grid as the whole image.
ALIGN = 32
# The reference's blend knee (§2.3): α = clamp((max_c B − (1 − 0.12)) / 0.12, 0, 1); a model
# with a `blend_threshold` attribute (SingleHDR) uses its own.
from hdrjax.models.hallucination import BLEND_THRESHOLD as HALLUCINATION_THRESHOLD  # noqa: E402
# Reference mode (§4): stretch to a multiple of 64, then 32 px symmetric padding.
REFERENCE_MULTIPLE = 64
REFERENCE_BORDER = 32
# Checkpoints trained for fewer steps than this get a warning (the `cpu` config runs 3,000,
# the reference 500,000 per stage).
FEW_STEPS = 10_000


ENGINES = ("regions", "tiles", "one-pass")


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """How `reconstruct` runs the model; the defaults are the `regions` engine (module doc)."""

    engine: str = "regions"  # regions (hdrjax.inference) | tiles (cross-faded tiles) | one-pass
    stages: tuple[str, ...] | None = None  # a prefix of STAGES; None: through hallucination
    crf_resolution: int | None = 512  # long side of the image the CRF is estimated on; None: full
    reference_mode: bool = False  # the reference's stretch + pad + one pass (§4)
    batch_size: int = 1  # crops (or tiles) of one shape per network call
    # regions engine
    memory_budget: float | None = 4e9  # bytes the process may peak at (CPU); None: unbounded
    shape_buckets: bool = False  # pad the image to bucket sides: mixed sizes share programs, not exact
    hallucination_context: int | None = None  # px around lit pixels; None: measured for the weights
    unet_context: int | None = None  # px around Deq/Ref crops beyond the budget; None: measured
    # tiles engine
    tile: int = 512  # tile side in pixels, a multiple of 32 (bounds peak memory)
    overlap: int = 128  # minimum overlap between neighbouring tiles, a multiple of 32
    skip_unlit_tiles: bool = True  # run the Hallucination-Net only on tiles with α > 0

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise ValueError(f"memory_budget must be > 0 bytes or None, got {self.memory_budget}")
        for name in ("hallucination_context", "unet_context"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 px or None (measured), got {v}")
        if self.tile < 2 * ALIGN or self.tile % ALIGN:
            raise ValueError(f"tile must be a multiple of {ALIGN} and at least {2 * ALIGN}, got {self.tile}")
        if self.overlap < 0 or self.overlap % ALIGN or 2 * self.overlap > self.tile:
            raise ValueError(
                f"overlap must be a multiple of {ALIGN} between 0 and tile/2 = {self.tile // 2}, "
                f"got {self.overlap}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.crf_resolution is not None and self.crf_resolution < 64:
            raise ValueError(f"crf_resolution must be >= 64 or None, got {self.crf_resolution}")
        if self.stages is not None:
            stages = tuple(self.stages)
            if not stages or stages != STAGES[: len(stages)]:
                raise ValueError(f"stages must be a prefix of {STAGES}, got {self.stages}")
            object.__setattr__(self, "stages", stages)

    @property
    def resolved_stages(self) -> tuple[str, ...]:
        """The stages run: `stages`, or through hallucination when None."""
        return self.stages if self.stages is not None else STAGES[:3]


@dataclasses.dataclass
class Reconstruction:
    """Outputs of `reconstruct` for one image (numpy, original size; None for stages not run).

    dequantized / linear / hallucinated / refined: f32[H, W, 3] (C, B, A, R of the paper);
    inverse_crf: f32[1024]; stats: timings, tile counts and the fraction of tiles skipped.
    """

    dequantized: np.ndarray | None = None
    inverse_crf: np.ndarray | None = None
    linear: np.ndarray | None = None
    hallucinated: np.ndarray | None = None
    refined: np.ndarray | None = None
    stats: dict = dataclasses.field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """The result of the last stage run (what the CLI writes)."""
        for x in (self.refined, self.hallucinated, self.linear, self.dequantized):
            if x is not None:
                return x
        raise ValueError("Reconstruction holds no image")


# ----------------------------------------------------------------------------- tiling plan


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _tile_origins(padded: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Evenly spread, ALIGN-multiple origins; neighbours overlap by >= overlap; last flush."""
    if tile >= padded:
        return (0,)
    n = -(-(padded - overlap) // (tile - overlap))  # fewest tiles with overlap >= `overlap`
    step = (padded - tile) / (n - 1)
    # Flooring each ideal origin to ALIGN keeps every gap <= tile - overlap (both multiples of
    # ALIGN), so rounding never shrinks an overlap below `overlap`.
    origins = [int(i * step // ALIGN) * ALIGN for i in range(n - 1)] + [padded - tile]
    return tuple(sorted(set(origins)))


def _axis_weights(origin: int, tile: int, padded: int, overlap: int) -> np.ndarray:
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
class _Plan:
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
        wy = _axis_weights(y, self.tile_h, self.padded_h, self.overlap)
        wx = _axis_weights(x, self.tile_w, self.padded_w, self.overlap)
        return (wy[:, None] * wx[None, :])[..., None]


def _make_plan(height: int, width: int, tile: int, overlap: int) -> _Plan:
    ph, pw = _round_up(height, ALIGN), _round_up(width, ALIGN)
    th, tw = min(tile, ph), min(tile, pw)
    return _Plan(height, width, ph, pw, th, tw, _tile_origins(ph, th, overlap), _tile_origins(pw, tw, overlap), overlap)


def _pad_to_plan(x: np.ndarray, plan: _Plan) -> np.ndarray:
    """Symmetric padding at the bottom/right up to the plan's ALIGN-multiple size."""
    ph, pw = plan.padded_h - x.shape[0], plan.padded_w - x.shape[1]
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


# ----------------------------------------------------------------------------- jitted stages


def _runner(model):
    """The cached compiled stage functions of this model (hdrjax.inference.Runner)."""
    from hdrjax.inference import runner_for

    return runner_for(model)


def _any_lit(model, b: np.ndarray) -> bool:
    """Whether any pixel of b gets α > 0 in the Hallucination-Net blend (the model's rule)."""
    threshold = getattr(model, "blend_threshold", HALLUCINATION_THRESHOLD)
    return bool(lit_mask(b, threshold).any())


# ----------------------------------------------------------------------------- tiled engine


def _run_tiled(
    fn: Callable,
    variables,
    sources: Sequence[Sequence[np.ndarray]],
    plans: Sequence[_Plan],
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
        o /= n  # every pixel has weight > 0 from some tile (see _axis_weights)
        if base is not None:
            o += base[i]
    return out


def _validate_ldr(ldr) -> np.ndarray:
    ldr = np.asarray(ldr, np.float32)
    if ldr.ndim != 3 or ldr.shape[-1] != 3 or ldr.shape[0] < 1 or ldr.shape[1] < 1:
        raise ValueError(f"reconstruct: expected an f32[H, W, 3] image, got shape {ldr.shape}")
    return ldr


def reconstruct_batch(model, variables, ldrs: Sequence[np.ndarray], config: PredictConfig = PredictConfig()) -> list[Reconstruction]:
    """`reconstruct` for several images at once: same-shape tiles of all images share batches."""
    ldrs = [_validate_ldr(x) for x in ldrs]
    if config.reference_mode:
        return [_reconstruct_reference(model, variables, x, config) for x in ldrs]
    if config.engine != "tiles":
        return [_reconstruct_regions(model, variables, x, config) for x in ldrs]
    runner = _runner(model)
    stages = config.resolved_stages
    plans = [_make_plan(x.shape[0], x.shape[1], config.tile, config.overlap) for x in ldrs]
    stats = [
        {
            "height": p.height,
            "width": p.width,
            "tile_shape": p.shape,
            "tiles": len(p.tiles),
            "stages": stages,
        }
        for p in plans
    ]
    results = [Reconstruction(stats=s) for s in stats]
    crop = [(slice(0, p.height), slice(0, p.width)) for p in plans]

    t0 = time.perf_counter()
    deq = _run_tiled(runner.dequantize, variables, [(_pad_to_plan(x, p),) for x, p in zip(ldrs, plans)], plans, config.batch_size)
    _timing(stats, "dequantization", t0)
    for r, c, sl in zip(results, deq, crop):
        r.dequantized = c[sl]
    if len(stages) == 1:
        return results

    t0 = time.perf_counter()
    lin = []
    for i, (r, plan) in enumerate(zip(results, plans)):
        small = resize_long_side(r.dequantized, config.crf_resolution)
        stats[i]["crf_shape"] = small.shape[:2]
        curve = runner.inverse_crf(variables, jnp.asarray(small)[None])
        r.inverse_crf = np.asarray(curve[0])
        lin.append(_apply_curve_tiled(runner, deq[i], curve[0], plan))
        r.linear = lin[i][crop[i]]
    _timing(stats, "linearization", t0)
    if len(stages) == 2:
        return results

    t0 = time.perf_counter()
    run = []
    for i, plan in enumerate(plans):
        if config.skip_unlit_tiles:
            lit = [_any_lit(model, lin[i][y : y + plan.tile_h, x : x + plan.tile_w]) for y, x in plan.tiles]
        else:
            lit = [True] * len(plan.tiles)
        run.append(lit)
        stats[i]["hallucinated_tiles"] = sum(lit)
        stats[i]["skipped_fraction"] = 1.0 - sum(lit) / len(lit)
    # Blended as B + (A − B): exactly B wherever α = 0, in skipped and computed tiles alike.
    hal = _run_tiled(runner.hallucinate, variables, [(b,) for b in lin], plans, config.batch_size, run=run, base=lin)
    _timing(stats, "hallucination", t0)
    for r, a, sl in zip(results, hal, crop):
        r.hallucinated = a[sl]
    if len(stages) == 3:
        return results

    t0 = time.perf_counter()
    ref = _run_tiled(runner.refine, variables, list(zip(hal, lin, deq)), plans, config.batch_size)
    _timing(stats, "refinement", t0)
    for r, x, sl in zip(results, ref, crop):
        r.refined = x[sl]
    return results


def _reconstruct_regions(model, variables, ldr: np.ndarray, config: PredictConfig) -> Reconstruction:
    from hdrjax import inference

    options = inference.EngineOptions(
        stages=config.resolved_stages, crf_resolution=config.crf_resolution, batch_size=config.batch_size,
        memory_budget=config.memory_budget, one_pass=config.engine == "one-pass",
        shape_buckets=config.shape_buckets, hallucination_context=config.hallucination_context,
        unet_context=config.unet_context,
    )
    images, stats = inference.reconstruct_one(model, variables, ldr, options)
    return Reconstruction(stats=stats, **images)


def _apply_curve_tiled(runner, c: np.ndarray, curve, plan: _Plan) -> np.ndarray:
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


def reconstruct(model, variables, ldr: np.ndarray, config: PredictConfig = PredictConfig()) -> Reconstruction:
    """Reconstruct HDR from one LDR image f32[H, W, 3] in [0, 1] of any size (numpy in and out)."""
    return reconstruct_batch(model, variables, [ldr], config)[0]


def _reconstruct_reference(model, variables, ldr: np.ndarray, config: PredictConfig) -> Reconstruction:
    """The reference's inference (§4): bicubic stretch to ×64, 32 px symmetric pad, one pass, back."""
    import cv2

    h, w = ldr.shape[:2]
    hs, ws = _round_up(h, REFERENCE_MULTIPLE), _round_up(w, REFERENCE_MULTIPLE)
    x = ldr if (hs, ws) == (h, w) else cv2.resize(ldr, (ws, hs), interpolation=cv2.INTER_CUBIC)
    b = REFERENCE_BORDER
    x = np.pad(x, ((b, b), (b, b), (0, 0)), mode="symmetric")
    # One tile covering everything, CRF from the whole padded image, every tile hallucinated.
    one_pass = dataclasses.replace(
        config,
        engine="tiles",
        reference_mode=False,
        tile=_round_up(max(x.shape[:2]), ALIGN),
        overlap=0,
        crf_resolution=None,
        skip_unlit_tiles=False,
    )
    r = reconstruct_batch(model, variables, [x], one_pass)[0]

    def back(y):
        if y is None:
            return None
        y = np.ascontiguousarray(y[b:-b, b:-b])
        # Values are not clamped after the bicubic resize, as in the reference.
        return y if (hs, ws) == (h, w) else cv2.resize(y, (w, h), interpolation=cv2.INTER_CUBIC)

    r.stats.update(height=h, width=w, reference_mode=True)
    return Reconstruction(back(r.dequantized), r.inverse_crf, back(r.linear), back(r.hallucinated), back(r.refined), r.stats)


# ----------------------------------------------------------------------------- checkpoints


class PredictError(HdrjaxError):
    """A problem the user can fix (checkpoint, arguments); the CLI prints it as one line."""


def stages_for_checkpoint(train_config) -> tuple[str, ...]:
    """Default stages for a checkpoint: refinement only when joint fine-tuning trained it.

    A shipped model may name its output stage (manifest "output_stage", put in the config by
    hdrjax.pretrained.load): the stage its evaluation found best.
    """
    cfg = train_config or {}
    if cfg.get("output_stage") in STAGES:
        return STAGES[: STAGES.index(cfg["output_stage"]) + 1]
    return STAGES if cfg.get("stage") == "joint" else STAGES[:3]


def checkpoint_warning(train_config, step: int | None) -> str | None:
    """A warning for an untrained or briefly trained (smoke-test) checkpoint, else None."""
    cfg = train_config or {}
    num_steps = (cfg.get("train") or {}).get("num_steps")
    if step == 0 or not cfg:
        return "the checkpoint is untrained (freshly initialised weights): outputs are meaningless"
    trained = step if step is not None else num_steps
    if trained is not None and trained < FEW_STEPS:
        return (
            f"the checkpoint was trained for only {trained} steps (stage {cfg.get('stage', '?')!r}; "
            f"the reference trains {'100,000 for joint fine-tuning' if cfg.get('stage') == 'joint' else '500,000 per stage'})"
            ": expect poor results"
        )
    return None


def _tree_shapes(tree, prefix=()) -> dict[tuple[str, ...], tuple[int, ...]]:
    if isinstance(tree, dict) or hasattr(tree, "items"):
        out = {}
        for k, v in tree.items():
            out.update(_tree_shapes(v, prefix + (str(k),)))
        return out
    return {prefix: tuple(np.shape(tree))}


def _expected_shapes(model) -> dict[tuple[str, ...], tuple[int, ...]]:
    from hdrjax.models.build import variable_shapes

    return _tree_shapes(variable_shapes(model))


def _check_shapes(expected, variables, where: str) -> None:
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
            raise PredictError(f"{where}: checkpoint does not match the SingleHDR model: {problem}")


def check_variables(model, variables, where: str = "variables") -> None:
    """Raise PredictError naming the first parameter that does not match the model's shapes."""
    _check_shapes(_expected_shapes(model), variables, where)


_MODELS: dict[str, tuple] = {}  # stored architecture -> (model, expected shapes)


def model_from_config(train_config, where: str):
    """(model, expected variable shapes) of a stored training config; cached per architecture.

    `where`: the checkpoint (or shipped-model) folder the config came with, named in errors; a
    basis file (crf.invemor) that is not where the config says is also looked for in it.
    Raises PredictError when the model cannot be built.
    """
    import ml_collections

    from hdrjax.models.build import build_model

    cfg = ml_collections.ConfigDict(train_config or {})
    # Fields absent from an older/smaller stored config fall back to the reference defaults.
    if "model" not in cfg:
        cfg.model = ml_collections.ConfigDict({"basis_components": 11})
    if "crf" not in cfg:
        cfg.crf = ml_collections.ConfigDict({"invemor": ""})
    invemor = cfg.crf.get("invemor", "")
    if invemor and not pathlib.Path(invemor).exists():
        # A checkpoint folder that was moved (e.g. a TF1 import, which keeps its basis file
        # beside the weights): look for the basis file there.
        beside = pathlib.Path(where).expanduser() / pathlib.Path(invemor).name
        if beside.exists():
            cfg.crf.invemor = str(beside.absolute())
    # The same architecture gives the same model object, so its compiled stages are reused
    # (a notebook or test loading several checkpoints compiles once).
    key = json.dumps({"model": cfg.model.to_dict(), "crf": cfg.crf.get("invemor", "")}, sort_keys=True, default=str)
    if key not in _MODELS:
        try:
            model = build_model(cfg)
        except Exception as e:  # a stored option the model does not know, a missing basis file
            raise PredictError(f"{where}: cannot build the model from the stored config: {e}") from None
        _MODELS[key] = (model, _expected_shapes(model))
    return _MODELS[key]


def load_model(path):
    """(model, variables, training config dict, step) from a training workdir or checkpoint dir."""
    from hdrjax import checkpoints

    try:
        variables, train_config, step = checkpoints.load_inference_variables(path)
    except checkpoints.CheckpointError as e:
        raise PredictError(str(e)) from None
    model, expected = model_from_config(train_config, str(path))
    _check_shapes(expected, variables, str(path))
    variables = jax.tree.map(jnp.asarray, {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})})
    return model, variables, train_config or {}, step


def _shipped_summary(manifest: dict) -> str:
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


def load_for_cli(checkpoint: str | None = None):
    """(model, variables, training config, description, warning or None) for `--checkpoint`.

    None: the default model shipped with hdrjax (hdrjax.pretrained.DEFAULT_DIR); a shipped-model
    folder (manifest.json + .npz shards): that model; anything else: a training workdir or
    checkpoint directory (`load_model`).  Raises PredictError or pretrained.PretrainedError.
    """
    from hdrjax import pretrained

    if checkpoint is None or pretrained.is_model_dir(checkpoint):
        model, variables, train_config, manifest = pretrained.load(checkpoint)
        if checkpoint in (None, "default"):
            folder = pathlib.Path(pretrained.DEFAULT_DIR)
            package = pathlib.Path(__file__).resolve().parent
            try:
                shown = str(pathlib.Path(package.name) / folder.resolve().relative_to(package))
            except ValueError:
                shown = str(folder)
            description = f"default model ({shown}, {_shipped_summary(manifest)})"
        else:
            description = f"shipped model {checkpoint} ({_shipped_summary(manifest)})"
        # A shipped model that records how it was trained is what it is: no smoke-test warning.
        warning = None if manifest.get("stages") else checkpoint_warning(train_config, manifest.get("step"))
        return model, variables, train_config, description, warning
    model, variables, train_config, step = load_model(checkpoint)
    description = f"checkpoint {checkpoint} (step {step}, stage {train_config.get('stage', '?')})"
    return model, variables, train_config, description, checkpoint_warning(train_config, step)


# ----------------------------------------------------------------------------- CLI


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def expand_inputs(specs: Sequence[str]) -> tuple[list[pathlib.Path], list[str]]:
    """Files, folders (their LDR images) and globs -> (sorted unique image paths, problems)."""
    from hdrjax.io import LDR_EXTENSIONS

    files: list[pathlib.Path] = []
    problems: list[str] = []
    kinds = "/".join(LDR_EXTENSIONS)
    for spec in specs:
        p = pathlib.Path(spec).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in LDR_EXTENSIONS and f.is_file())
            if not found:
                problems.append(f"{spec}: folder has no {kinds} images")
            files.extend(found)
        elif p.exists():
            if p.suffix.lower() not in LDR_EXTENSIONS:
                problems.append(f"{spec}: not an LDR image (expected {kinds})")
            else:
                files.append(p)
        elif _is_glob(spec):
            found = sorted(
                pathlib.Path(f) for f in glob.glob(os.path.expanduser(spec))
                if pathlib.Path(f).suffix.lower() in LDR_EXTENSIONS and os.path.isfile(f)
            )
            if not found:
                problems.append(f"{spec}: no {kinds} images match")
            files.extend(found)
        else:
            problems.append(f"{spec}: no such file or folder")
    unique, seen = [], set()
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def output_names(files: Sequence[pathlib.Path]) -> list[str]:
    """Output base names: the input's stem, made unique (photo.jpg + photo.png -> photo_jpg, photo_png)."""
    stems = [f.stem for f in files]
    names = [s if stems.count(s) == 1 else f"{s}_{f.suffix.lstrip('.').lower()}" for s, f in zip(stems, files)]
    used: dict[str, int] = {}
    out = []
    for n in names:
        k = used.get(n, 0)
        used[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k + 1}")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hdrjax.predict",
        description="Reconstruct HDR images (linear relative radiance, well-exposed range in [0, 1], "
        "highlights above 1) from LDR photographs.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs (.jpg .jpeg .png .tif .tiff)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="training workdir (latest checkpoint), one checkpoint directory, or a shipped-model folder "
        "(manifest.json + .npz); default: the model shipped with hdrjax (hdrjax/weights/default)",
    )
    p.add_argument("--output", required=True, help="output folder (created if needed)")
    p.add_argument("--format", choices=("exr", "hdr"), default="exr", help="exr (float, default) or hdr (Radiance RGBE)")
    p.add_argument("--half", action="store_true", help="write half-float EXR (smaller files)")
    p.add_argument("--preview", action="store_true", help="also write a tone-mapped 8-bit sRGB NAME.png (hdrjax.tonemap.preview)")
    p.add_argument(
        "--stages",
        choices=("auto",) + STAGES,
        default="auto",
        help="last stage to run; auto: refinement for a joint fine-tuned checkpoint, else hallucination",
    )
    d = PredictConfig()
    p.add_argument(
        "--engine", choices=ENGINES, default=d.engine,
        help="regions (default): one pass within --memory-budget, Hallucination-Net only around highlights; "
        "tiles: overlapping cross-faded tiles (--tile, --overlap); one-pass: every network on the whole image",
    )
    p.add_argument(
        "--memory-budget", type=_parse_bytes, default=d.memory_budget, metavar="SIZE",
        help="peak memory the regions engine aims for, e.g. 4G, 1500M or none (default 4G); "
        "networks that do not fit run on crops",
    )
    p.add_argument(
        "--shape-buckets", action="store_true",
        help="pad each photo to a few standard sizes so a folder of mixed sizes compiles once "
        "(results differ slightly near the bottom/right border)",
    )
    p.add_argument(
        "--compilation-cache", default=None, metavar="DIR",
        help="keep compiled programs here between runs (default: $HDRJAX_CACHE_DIR or ~/.cache/hdrjax, "
        "subfolder jax-compilation; safe to delete)",
    )
    p.add_argument("--no-compilation-cache", action="store_true", help="compile every run afresh")
    p.add_argument("--tile", type=int, default=d.tile, help=f"tiles engine: tile side in pixels, multiple of {ALIGN} (default {d.tile})")
    p.add_argument("--overlap", type=int, default=d.overlap, help=f"tiles engine: minimum tile overlap, multiple of {ALIGN} (default {d.overlap})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops or tiles of one shape per network call (default %(default)s)")
    p.add_argument(
        "--crf-resolution", type=int, default=d.crf_resolution,
        help="long side of the downscaled image the CRF is estimated on; 0 = full resolution (default %(default)s)",
    )
    p.add_argument("--no-skip", action="store_true", help="tiles engine: run the Hallucination-Net on every tile, also where no pixel is near saturation")
    p.add_argument("--reference-mode", action="store_true", help="the reference's inference: bicubic stretch to ×64, 32 px pad, one pass")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _parse_bytes(text: str) -> float | None:
    """'4G', '1500M', '2.5GB', '3GiB', '4000000000' -> bytes; 'none' -> None (unbounded)."""
    t = text.strip().upper()
    if t in ("NONE", "INF", "UNLIMITED"):
        return None
    number = t.rstrip("KMGTIB")
    unit = t[len(number):]
    try:
        value = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 1500M, none)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the memory budget must be positive, got {text!r}")
    return value


class _LineHandler(logging.Handler):
    """One line per record on stderr, written through tqdm so the progress bar stays intact."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record):
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


def _configure_logging(quiet: bool) -> None:
    handler = _LineHandler()
    handler.setFormatter(_Formatter())
    # Every hdrjax.* logger (inference, receptive_field, ...) prints through the same line handler.
    package = logging.getLogger("hdrjax")
    package.handlers[:] = [handler]
    package.propagate = False
    package.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.handlers[:] = []
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@dataclasses.dataclass
class _Item:
    source: pathlib.Path
    hdr_path: pathlib.Path
    preview_path: pathlib.Path | None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 some images failed, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    if args.half and args.format != "exr":
        parser.error("--half needs --format exr")
    try:
        config = PredictConfig(
            engine=args.engine,
            memory_budget=args.memory_budget,
            shape_buckets=args.shape_buckets,
            tile=args.tile,
            overlap=args.overlap,
            skip_unlit_tiles=not args.no_skip,
            crf_resolution=args.crf_resolution or None,
            reference_mode=args.reference_mode,
            batch_size=args.batch_size,
        )
    except ValueError as e:
        parser.error(str(e))

    files, problems = expand_inputs(args.inputs)
    for problem in problems:
        logger.error(problem)
    if not files:
        parser.error("no input images")
    failed = len(problems)

    from hdrjax.pretrained import PretrainedError

    try:
        model, variables, train_config, description, warning = load_for_cli(args.checkpoint)
    except (PredictError, PretrainedError) as e:
        logger.error(str(e))
        return 1
    if warning:
        logger.warning(f"{args.checkpoint or 'default model'}: {warning}")
    stages = stages_for_checkpoint(train_config) if args.stages == "auto" else STAGES[: STAGES.index(args.stages) + 1]
    config = dataclasses.replace(config, stages=stages)
    if not args.no_compilation_cache:
        from hdrjax.cache import enable_compilation_cache

        enable_compilation_cache(args.compilation_cache)
    logger.info(f"{description}; output after {stages[-1]}; {_engine_summary(config)}")

    out_dir = pathlib.Path(args.output).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        logger.error(f"{out_dir}: cannot create the output folder ({e.strerror or e})")
        return 1
    todo: list[_Item] = []
    skipped = 0
    for src, name in zip(files, output_names(files)):
        item = _Item(src, out_dir / f"{name}.{args.format}", out_dir / f"{name}.png" if args.preview else None)
        targets = [p for p in (item.hdr_path, item.preview_path) if p is not None]
        existing = [p for p in targets if p.exists()] if not args.overwrite else []
        for p in existing:
            logger.info(f"{p}: skipped, exists")
        if len(existing) == len(targets):
            skipped += 1
            continue
        todo.append(item)

    from tqdm import tqdm

    from hdrjax.io import ImageReadError, read_image

    written = 0
    all_tiles = [0, 0]  # tiles, hallucinated tiles
    progress = tqdm(total=len(todo), unit="image", file=sys.stderr, disable=None, leave=False)
    pending: list[tuple[_Item, np.ndarray]] = []
    pending_tiles = 0

    def flush():
        nonlocal written, failed, pending_tiles
        if not pending:
            return
        t0 = time.perf_counter()
        results = reconstruct_batch(model, variables, [ldr for _, ldr in pending], config)
        seconds = (time.perf_counter() - t0) / len(pending)
        for (item, _), r in zip(pending, results):
            try:
                _write_outputs(item, r, args)
                written += 1
            except (OSError, ValueError) as e:
                logger.error(f"{item.source}: cannot write the output: {e}")
                failed += 1
            s = r.stats
            all_tiles[0] += s.get("tiles", 0)
            all_tiles[1] += s.get("hallucinated_tiles", s.get("tiles", 0))
            logger.info(f"{item.source} -> {item.hdr_path.name}: {s['width']}×{s['height']}, {seconds:.1f} s{_work_summary(s)}")
            progress.update(1)
        pending.clear()
        pending_tiles = 0

    try:
        for item in todo:
            try:
                ldr = read_image(item.source)
            except ImageReadError as e:
                logger.error(str(e))
                failed += 1
                progress.update(1)
                continue
            if config.reference_mode or config.engine != "tiles":
                n = config.batch_size  # one image per call of reconstruct_batch
            else:
                n = len(_make_plan(ldr.shape[0], ldr.shape[1], config.tile, config.overlap).tiles)
            # Small images share tile batches; a group never holds more than one batch of tiles
            # (or one large image), so memory stays bounded.
            if pending and pending_tiles + n > config.batch_size:
                flush()
            pending.append((item, ldr))
            pending_tiles += n
        flush()
    finally:
        progress.close()

    if all_tiles[0] and "hallucination" in stages and not config.reference_mode and config.engine == "tiles":
        logger.info(f"Hallucination-Net skipped {1 - all_tiles[1] / all_tiles[0]:.0%} of {all_tiles[0]} tiles")
    logger.info(f"{written} written, {skipped} skipped (outputs exist), {failed} failed")
    return 1 if failed else 0


def _engine_summary(config: PredictConfig) -> str:
    if config.reference_mode:
        return "reference mode (stretch ×64, one pass)"
    if config.engine == "tiles":
        return f"tiles {config.tile} px, overlap {config.overlap}"
    if config.engine == "one-pass":
        return "one pass per network"
    budget = "unbounded memory" if config.memory_budget is None else f"memory budget {config.memory_budget / 1e9:.3g} GB"
    return f"regions engine, {budget}"


def _work_summary(s: dict) -> str:
    """', Hallucination-Net on 2 crops = 31 % of the image (α > 0 on 1.6 %)' from Reconstruction.stats."""
    if "hallucination_work" in s:
        return (f", Hallucination-Net on {s['hallucination_crops']} crop(s) = {s['hallucination_work']:.0%} of the image "
                f"(α > 0 on {s['lit_fraction']:.1%})")
    if "skipped_fraction" in s:
        return f", {s['tiles']} tile(s), {s['skipped_fraction']:.0%} skipped by the Hallucination-Net"
    if "tiles" in s:
        return f", {s['tiles']} tile(s)"
    return ""


def _write_outputs(item: _Item, r: Reconstruction, args) -> None:
    """Write the HDR result (and preview) atomically, each unless it exists (without --overwrite)."""
    from hdrjax.io import write_image
    from hdrjax.tonemap import preview

    hdr = r.output
    if args.overwrite or not item.hdr_path.exists():
        write_image(item.hdr_path, hdr, half=args.half)
    if item.preview_path is not None and (args.overwrite or not item.preview_path.exists()):
        # write_image scales [0, 1] floats to 8 bits: u / 255 round-trips exactly.
        write_image(item.preview_path, preview(hdr).astype(np.float32) / 255.0)


if __name__ == "__main__":
    sys.exit(main())
