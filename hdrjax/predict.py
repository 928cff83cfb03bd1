"""Single-image HDR reconstruction: LDR photographs in, HDR files out.

    python -m hdrjax.predict --output out/ photo.jpg                      # the shipped default model
    python -m hdrjax.predict --checkpoint runs/joint --output out/ photos/ extra/*.jpg

This module is the library entry (`reconstruct`, `reconstruct_batch`, `PredictConfig`,
`PhotoReconstruction`) and the command line.  The engines live in `hdrjax.inference.regions` (regions,
one-pass) and `hdrjax.inference.tiles` (tiles, reference mode); turning `--checkpoint` into a model is
`hdrjax.weights.loading`.

`--checkpoint` names a training workdir (its latest checkpoint), one checkpoint directory or a
shipped-model folder (`hdrjax.weights.pretrained`: manifest.json + .npz shards); without it the model
in hdrjax/weights/default is used.

Inputs are files, folders (their .jpg/.jpeg/.png/.tif/.tiff files, not recursive) or globs;
8- and 16-bit images are read through `hdrjax.io.read_image`. Each input `NAME.ext` gives
`OUT/NAME.exr` (`--half`: half-float EXR) and with `--preview` also `OUT/NAME.png`.
`--format` names one or several outputs (`--format uhdr,avif,exr`; `hdrjax.display.files`):
exr, hdr (Radiance RGBE `NAME.hdr`), and the files HDR screens show: uhdr (Ultra HDR JPEG
`NAME.uhdr.jpg`), avif (10-bit BT.2100 PQ `NAME.avif`), avif-hlg (`NAME.hlg.avif`), mapped to
display light as `hdrjax.display.mapping` documents.  `--brackets=-2,0,2` adds 8-bit sRGB
JPEGs at those stops (`NAME_b1_-2ev.jpg`, ...; `hdrjax.display.brackets`).

What the output means
---------------------
Linear *relative* radiance, RGB in the camera's (≈ sRGB / Rec. 709) primaries, float32.
Pixels that were well exposed in the photograph keep values in [0, 1] (the inverse camera
curve maps the LDR range onto [0, 1]); recovered highlights (light sources, sky, specular
reflections that were clipped) are above 1 — several times 1 for bright lights. There is no
absolute scale: to display on an HDR screen or to use as physical luminance, multiply by the
luminance you want for diffuse white, e.g. ×100–200 to get cd/m² (nits), so value 1 → 100–200
nits and highlights go above (the display formats use 203 cd/m², `hdrjax.display.mapping`).
The preview (`--preview`, `hdrjax.tonemap.preview`) is a global Reinhard (2002) tone mapping
with key 0.18 of the log-average luminance and no burn-out, encoded as 8-bit sRGB: a quick
look that shows the recovered highlights compressed, not a grading.  With `--format uhdr` the
preview is instead the Ultra HDR file's own SDR base image, so the two are one image
(`hdrjax.display.ultrahdr` says why the library chooses that image).

How an image is processed
-------------------------
The four networks run in the reference order (spec §4): C = clip(Deq(LDR)) → one inverse
CRF g = Lin(C) → B = g(C) → A = B + α·relu(Hal(B)) → R = relu(Ref([A, B, C])). Three engines
(`--engine`; `--reference-mode` restores the reference's own inference: bicubic stretch to
a multiple of 64, 32 px mirror padding, one pass):

* **regions** (default, `hdrjax.inference.regions`): Deq and Ref in one pass over the image padded to a
  multiple of 32 when the call fits `--memory-budget`, else on crops that keep each network's
  measured context; the Hallucination-Net only on crops around the pixels with α > 0
  (`hdrjax.inference.crop_plan`), each keeping the receptive field measured for the weights in use
  (`hdrjax.inference.receptive_field`) of real image, so the result equals a one-pass run at every pixel
  the blend uses, and A = B exactly elsewhere.
* **one-pass**: every network on the whole image in one call (memory grows with the image).
* **tiles** (`hdrjax.inference.tiles`): overlapping `tile`×`tile` tiles (origins on the 32-px grid,
  raised-cosine cross-fade over `overlap` px, whole tiles without α > 0 skip the
  Hallucination-Net); every stage pays the overlap the Hallucination-Net needs.

One CRF per image: the Linearization-Net ends in a global average, so its curve is estimated
ONCE per image from C resized (area averaging) to a long side of `crf_resolution`, as the net
was trained on images with a short side of 256–1024 px; None uses the full-resolution C in one
pass, as the reference. The measurements behind these choices are in `experiments/results/`.

Stages: by default the output is the refined R when the checkpoint (or shipped model) comes
from joint fine-tuning (the only training that trains the Refinement-Net), otherwise the
hallucinated A (the reference's `test_real.py` output); a checkpoint may name its output stage
(`hdrjax.weights.loading.stages_for_checkpoint`); `--stages` stops earlier or forces refinement.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import pathlib
import sys
import time
from typing import Sequence

import numpy as np

from hdrjax.cli import configure_logging
from hdrjax.errors import HdrjaxError
from hdrjax.inference import regions, tiles
from hdrjax.inference.tiles import ALIGN
from hdrjax.models.build import NETWORKS
from hdrjax.weights import loading

logger = logging.getLogger("hdrjax.predict")

ENGINES = ("regions", "tiles", "one-pass")


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """How `reconstruct` runs the model; the defaults are the `regions` engine (module doc)."""

    engine: str = "regions"  # regions (hdrjax.inference.regions) | tiles (hdrjax.inference.tiles) | one-pass
    stages: tuple[str, ...] | None = None  # a prefix of NETWORKS; None: through hallucination
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
            if not stages or stages != NETWORKS[: len(stages)]:
                raise ValueError(f"stages must be a prefix of {NETWORKS}, got {self.stages}")
            object.__setattr__(self, "stages", stages)

    @property
    def resolved_stages(self) -> tuple[str, ...]:
        """The stages run: `stages`, or through hallucination when None."""
        return self.stages if self.stages is not None else NETWORKS[:3]


@dataclasses.dataclass
class PhotoReconstruction:
    """What `reconstruct` returns for one photo: numpy images at its size (None for stages not run).

    dequantized / linear / hallucinated / refined: f32[H, W, 3] (C, B, A, R of the paper);
    inverse_crf: f32[1024]; stats: timings and the engine's work (crops, tiles, skipped tiles).
    Not to be confused with `hdrjax.models.singlehdr.Reconstruction`, the model's own per-stage
    jax outputs of one batched call.
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
        raise ValueError("PhotoReconstruction holds no image")


def _validate_ldr(ldr) -> np.ndarray:
    ldr = np.asarray(ldr, np.float32)
    if ldr.ndim != 3 or ldr.shape[-1] != 3 or ldr.shape[0] < 1 or ldr.shape[1] < 1:
        raise ValueError(f"reconstruct: expected an f32[H, W, 3] image, got shape {ldr.shape}")
    return ldr


def reconstruct(model, variables, ldr: np.ndarray, config: PredictConfig = PredictConfig()) -> PhotoReconstruction:
    """Reconstruct HDR from one LDR image f32[H, W, 3] in [0, 1] of any size (numpy in and out)."""
    return reconstruct_batch(model, variables, [ldr], config)[0]


def reconstruct_batch(model, variables, ldrs: Sequence[np.ndarray],
                      config: PredictConfig = PredictConfig()) -> list[PhotoReconstruction]:
    """`reconstruct` for several images at once (the tiles engine batches same-shape tiles of all)."""
    ldrs = [_validate_ldr(x) for x in ldrs]
    stages = config.resolved_stages
    if config.reference_mode:
        results = [tiles.reconstruct_reference(model, variables, x, stages, config.batch_size) for x in ldrs]
    elif config.engine == "tiles":
        options = tiles.TileOptions(stages=stages, crf_resolution=config.crf_resolution, tile=config.tile,
                                    overlap=config.overlap, batch_size=config.batch_size,
                                    skip_unlit_tiles=config.skip_unlit_tiles)
        results = tiles.reconstruct_tiled(model, variables, ldrs, options)
    else:
        options = regions.EngineOptions(
            stages=stages, crf_resolution=config.crf_resolution, batch_size=config.batch_size,
            memory_budget=config.memory_budget, one_pass=config.engine == "one-pass",
            shape_buckets=config.shape_buckets, hallucination_context=config.hallucination_context,
            unet_context=config.unet_context,
        )
        results = [regions.reconstruct_one(model, variables, x, options) for x in ldrs]
    return [PhotoReconstruction(stats=stats, **images) for images, stats in results]


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
    p.add_argument(
        "--format", type=_formats_argument, action="append", metavar="FORMATS",
        help="outputs, comma-separated or repeated: exr (float, default), hdr (Radiance RGBE), "
        "uhdr (Ultra HDR JPEG NAME.uhdr.jpg), avif (10-bit PQ), avif-hlg (10-bit HLG NAME.hlg.avif)",
    )
    p.add_argument("--half", action="store_true", help="write half-float EXR (smaller files)")
    p.add_argument(
        "--preview", action="store_true",
        help="also write a tone-mapped 8-bit sRGB NAME.png (hdrjax.tonemap.preview; with uhdr: the "
        "Ultra HDR file's SDR base image)",
    )
    p.add_argument(
        "--brackets", type=_stops_argument, default=(), metavar="STOPS",
        help="also write 8-bit sRGB JPEGs at these exposures in stops, e.g. --brackets=-2,0,2 "
        "(NAME_b1_-2ev.jpg, ... sorting darkest first)",
    )
    p.add_argument(
        "--stages",
        choices=("auto",) + NETWORKS,
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


def _formats_argument(text: str) -> tuple[str, ...]:
    from hdrjax.display.files import parse_formats

    try:
        return parse_formats(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _stops_argument(text: str) -> tuple[float, ...]:
    from hdrjax.display.brackets import parse_stops

    try:
        return parse_stops(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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


@dataclasses.dataclass
class _Item:
    source: pathlib.Path
    outputs: dict[str, pathlib.Path]  # format name -> path (hdrjax.display.files)
    preview_path: pathlib.Path | None
    brackets: dict[float, pathlib.Path]  # stop -> path

    @property
    def targets(self) -> list[pathlib.Path]:
        extra = [self.preview_path] if self.preview_path is not None else []
        return [*self.outputs.values(), *extra, *self.brackets.values()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 some images failed, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    formats = tuple(dict.fromkeys(f for group in (args.format or [("exr",)]) for f in group))
    if args.half and "exr" not in formats:
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

    try:
        loaded = loading.load(args.checkpoint)
    except HdrjaxError as e:  # LoadError, PretrainedError: one line, no traceback
        logger.error(str(e))
        return 1
    model, variables = loaded.model, loaded.variables
    if loaded.warning:
        logger.warning(f"{args.checkpoint or 'default model'}: {loaded.warning}")
    if args.stages == "auto":
        stages = loading.stages_for_checkpoint(loaded.config)
    else:
        stages = NETWORKS[: NETWORKS.index(args.stages) + 1]
    config = dataclasses.replace(config, stages=stages)
    if not args.no_compilation_cache:
        from hdrjax.cache import enable_compilation_cache

        enable_compilation_cache(args.compilation_cache)
    logger.info(f"{loaded.description}; output after {stages[-1]}; {_engine_summary(config)}")

    out_dir = pathlib.Path(args.output).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        logger.error(f"{out_dir}: cannot create the output folder ({e.strerror or e})")
        return 1
    todo: list[_Item] = []
    skipped = 0
    from hdrjax.display.brackets import bracket_names
    from hdrjax.display.files import output_path

    for src, name in zip(files, output_names(files)):
        item = _Item(src, {f: output_path(out_dir, name, f) for f in formats},
                     out_dir / f"{name}.png" if args.preview else None,
                     {s: out_dir / n for s, n in zip(args.brackets, bracket_names(name, args.brackets))})
        targets = item.targets
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
            first = next(iter(item.outputs.values()))
            logger.info(f"{item.source} -> {first.name}: {s['width']}×{s['height']}, {seconds:.1f} s{_work_summary(s)}")
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
                n = len(tiles.make_plan(ldr.shape[0], ldr.shape[1], config.tile, config.overlap).tiles)
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
    """', Hallucination-Net on 2 crops = 31 % of the image (α > 0 on 1.6 %)' from PhotoReconstruction.stats."""
    if "hallucination_work" in s:
        return (f", Hallucination-Net on {s['hallucination_crops']} crop(s) = {s['hallucination_work']:.0%} of the image "
                f"(α > 0 on {s['lit_fraction']:.1%})")
    if "skipped_fraction" in s:
        return f", {s['tiles']} tile(s), {s['skipped_fraction']:.0%} skipped by the Hallucination-Net"
    if "tiles" in s:
        return f", {s['tiles']} tile(s)"
    return ""


def _write_outputs(item: _Item, r: PhotoReconstruction, args) -> None:
    """Write every output (formats, preview, brackets) atomically, each unless it exists (without --overwrite)."""
    from hdrjax.display import brackets, files, ultrahdr
    from hdrjax.io import atomic_write, write_image
    from hdrjax.tonemap import preview

    hdr = r.output

    def wanted(path: pathlib.Path) -> bool:
        return args.overwrite or not path.exists()

    uhdr_bytes = None
    for fmt, path in item.outputs.items():
        if wanted(path):
            data = files.write(path, fmt, hdr, half=args.half)
            uhdr_bytes = data if fmt == "uhdr" else uhdr_bytes
    if item.preview_path is not None and wanted(item.preview_path):
        if "uhdr" in item.outputs:
            # The preview is the Ultra HDR file's SDR base, so the two are one image.
            if uhdr_bytes is None:
                uhdr_bytes = item.outputs["uhdr"].read_bytes()
            image = ultrahdr.decode_sdr_base(uhdr_bytes)
        else:
            image = preview(hdr)
        # write_image scales [0, 1] floats to 8 bits: u / 255 round-trips exactly.
        write_image(item.preview_path, image.astype(np.float32) / 255.0)
    for stop, path in item.brackets.items():
        if wanted(path):
            with atomic_write(path) as f:
                f.write(brackets.encode_bracket(hdr, stop))


if __name__ == "__main__":
    sys.exit(main())
