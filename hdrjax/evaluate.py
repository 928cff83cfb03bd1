"""Evaluation with an exactly stated protocol: the model, its ablations and baselines, one code path.

    python -m hdrjax.evaluate ../shared/data/real_hdr --workdir eval/ --crf dorf:dorf_201.npz
    python -m hdrjax.evaluate HDR-Real/test --workdir eval_real/ --checkpoint runs/joint
    python -m hdrjax.evaluate procedural --workdir eval/ --checkpoint runs/joint --methods all
    python -m hdrjax.evaluate ../shared/data/real_hdr --workdir eval/ --checkpoint default \
        --crf dorf:dorf_201.npz --methods model,stages,baselines,true_crf

Sources
-------
* a folder of .hdr/.exr files (or one file): **synthetic** evaluation, below;
* a folder with `HDR_gt/` and `LDR_in/` (the HDR-Real layout, pairs by sorted name): **real**
  evaluation, the camera JPEG is the input and the HDR the ground truth;
* `procedural`, `hdr_synth:DIR`, `hdr_folder:DIR`, `hdr_real:DIR`: the test split of an
  `hdrjax.data` dataset (TFDS array_record, prepared on first use; `hdr_synth` = the
  reference's 60 HDR-Synth test images).

Synthetic protocol (reference-spec §1.7 unless marked *ours*)
-------------------------------------------------------------
1. Test patches: each HDR image is resized so its shorter side is `resolution` (512; area
   averaging — the reference ran bilinear by accident, `--resize-interpolation linear`), the
   first and last `resolution`² crops along the long side are taken (§1.1) and each crop is
   scaled to mean 0.5 over all pixels and channels. `--full-image`: the whole image instead
   (*ours*; not comparable with 512² numbers).
2. Camera: every patch × every held-out **test CRF** (`--crf dorf:PATH`: the reference's 10 DoRF
   test curves; default: the test split of the built-in parametric family, *ours*) × every
   exposure t = 2^s, s ∈ {−3, −2, −1, 0, 1, 2, 3}, through `hdrjax.camera.synthesize`: exposure,
   the reference's noise (*deterministic*: the key is a hash of image, CRF and exposure),
   clipping, CRF, 8-bit quantisation and **JPEG at quality 90** (fixed, *ours*: the lowest
   quality the reference trains on; it draws 90…100 by batch slot).
3. **Ground truth = H · t**, the exposure-scaled HDR *without* the synthesis noise (*ours*: the
   Hallucination-Net's training target is the noisy X; scoring against the noise-free scene
   does not reward reproducing noise; `--target noisy` scores against X). `--no-noise` also
   removes the noise from the input.
4. **Extreme-exposure exclusion** (§1.5, as the authors' `HDR-Syn_over_exposed_mask.csv`):
   a sample whose JPEG has > 50 % of gray pixels ≥ 249 or ≤ 6 gets mask 0; it is not
   reconstructed, its CSV row has empty metrics, it is counted (`masked`) and left out of every
   mean. `--mask include` evaluates and averages it too.
5. Metrics: `hdrjax.metrics.compute_all` with normalization "reference" (prediction and ground
   truth share the synthetic radiometric scale; PU21 maps the ground truth's peak to 4000
   cd/m²), `--crf-correction` for the Hanji et al. 2022 correction. Methods with a global curve
   also get `inverse_crf_rmse`, the RMSE of their inverse CRF against the true one over the 1024
   samples.

Real pairs: the first/last `resolution`² crops of the image pair at its own resolution (no
resize: that would change the JPEG's statistics; an image smaller than the crop is skipped),
ground truth mean-normalised to 0.5, the same mask from the camera JPEG, normalization
"authors" (the exposure of HDR_gt relative to the JPEG is unknown; `--normalization`).

Methods (`--methods`, comma separated; groups `baselines`, `ablations`, `stages`, `oracles`, `all`)
------------------------------------------------------------------------------------------------
`model` (needs `--checkpoint`; `hdrjax.predict.reconstruct`, output after refinement for a
jointly fine-tuned checkpoint, else after hallucination), the ablations
`no_dequantization`, `g0_linearization`, `no_hallucination`, `no_refinement` (the same
`reconstruct` with one stage swapped out, see `ablate_variables`), the stage prefixes
`stages_dequantization_linearization` (Deq + Lin: the linear image B), `stages_hallucination`
(+ the blended Hallucination-Net output A, no refinement) and `stages_refinement` (+ the
Refinement-Net: the full model of a joint checkpoint), which measure what each stage adds; the
baselines of `hdrjax.baselines` (identity, gamma22, srgb, g0 — the mean g0 of the inverse-CRF
basis —, akyuz2007) and `mean_crf` (the mean inverse CRF of the *training* split of `--crf`,
e.g. DoRF's 191 training curves: "always answer the average camera", the bar the
Linearization-Net has to beat in inverse_crf_rmse); and the synthetic-only oracle `true_crf`
(the true inverse CRF applied to the JPEG: what perfect linearisation alone gives).

`--checkpoint`: a training workdir or checkpoint folder (`hdrjax.predict.load_model`), a
shipped-model folder (one with manifest.json, `hdrjax.pretrained.load`), or `default` (the model
that ships with hdrjax).

Outputs in `--workdir` (all written atomically): `per_image.csv` (one row per method × image
× CRF × exposure), `summary.csv` and `summary.md` (mean ± sample standard deviation per method,
per exposure and overall), `protocol.json` (every setting, the CRF names, the checkpoint, the
skipped files, timings). A bad input file is one `error:` line, skipped and counted; the exit
status is then 1.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import io as _pyio
import json
import logging
import math
import pathlib
import sys
import time
import zlib
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax import baselines
from hdrjax.errors import HdrjaxError

logger = logging.getLogger("hdrjax.evaluate")

# §1.7: t ∈ 2^linspace(−3, 3, 7).
EXPOSURE_STOPS = tuple(float(s) for s in np.linspace(-3.0, 3.0, 7))
JPEG_QUALITY = 90  # ours: fixed for comparability (the lowest quality of the reference's 90…100)
RESOLUTION = 512  # §1.1 / §1.7: 512² test patches
MEAN_TARGET = 0.5  # §1.1: each test patch is scaled to mean 0.5
MEAN_EPS = 1e-6  # §1.1: x / (mean + 1e-6) · 0.5

MODEL = "model"
ABLATIONS = ("no_dequantization", "g0_linearization", "no_hallucination", "no_refinement")
# Stage prefixes: the model run through its first k stages (hdrjax.predict.STAGES), so each
# stage's contribution is the difference between consecutive rows.
STAGE_METHODS = {
    "stages_dequantization_linearization": ("dequantization", "linearization"),
    "stages_hallucination": ("dequantization", "linearization", "hallucination"),
    "stages_refinement": ("dequantization", "linearization", "hallucination", "refinement"),
}
MEAN_CRF = "mean_crf"  # the training split's mean inverse CRF (needs the CRF bank, see mean_crf_method)
BASELINES = baselines.NAMES + (MEAN_CRF,)
ORACLES = ("true_crf",)
MODEL_METHODS = (MODEL,) + ABLATIONS + tuple(STAGE_METHODS)  # the methods that need --checkpoint
ALL_METHODS = MODEL_METHODS + BASELINES + ORACLES
GROUPS = {
    "baselines": BASELINES,
    "ablations": ABLATIONS,
    "stages": tuple(STAGE_METHODS),
    "oracles": ORACLES,
    "all": ALL_METHODS,
}
DATA_SOURCES = ("procedural", "hdr_synth", "hdr_folder", "hdr_real")
NORMALIZATIONS = ("auto", "reference", "authors")
CURVE_METRIC = "inverse_crf_rmse"

# The parameters `ablate_variables` zeroes: each is the last layer of a residual or
# coefficient head, so zeroing it turns that stage into its identity / mean output exactly.
_ABLATION_PARAMS = {
    # Deq(x) = x + tanh(conv2d_18(...)): a zero last conv gives tanh(0) = 0, C = clip(x) = x.
    "no_dequantization": ("dequantization", "conv2d_18"),
    # g_raw = g0 + dense(feature) @ hinv: zero weights give g0 (the monotone projection leaves
    # a non-decreasing g0 unchanged up to its 1e-8 step regulariser).
    "g0_linearization": ("linearization", "ae_invcrf_decode_net", "dense"),
    # A = B + α relu(r) with r = the last 1×1 fuse conv: r = 0 gives A = B.
    "no_hallucination": ("hallucination", "decoder_h7_fuse_skip_connection"),
}


class EvalError(HdrjaxError):
    """A problem the user can fix (source, arguments, checkpoint); the CLI prints it as one line."""


# ----------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol; defaults are the reference's test set (§1.7) plus our fixed choices."""

    resolution: int = RESOLUTION  # short side resized to this, two resolution² crops (§1.1)
    full_image: bool = False  # whole (mean-normalised) image instead of the crops (ours)
    resize_interpolation: str = "area"  # "linear" = what the reference's loader really ran
    exposure_stops: tuple[float, ...] = EXPOSURE_STOPS  # t = 2^s (§1.7)
    jpeg_quality: int = JPEG_QUALITY
    noise: bool = True  # the reference's synthesis noise in the input
    target: str = "clean"  # ground truth: clean = H·t (ours); noisy = the noisy X (the training target)
    mask: str = "exclude"  # exclude (reference) | include
    normalization: str = "auto"  # auto: reference for synthetic, authors for real pairs
    crf_correction: bool = False  # Hanji et al. 2022, passed to metrics.compute_all
    seed: int = 0  # synthesis noise keys derive from it and the sample's (image, CRF, exposure)
    batch_size: int = 8  # images per network / metric call (memory only: results do not change)
    camera: Any = None  # hdrjax.camera.CameraConfig; None = the reference defaults

    def __post_init__(self):
        if self.resolution < 16:
            raise EvalError(f"resolution must be >= 16 (the SSIM window is 11 px), got {self.resolution}")
        if self.resize_interpolation not in ("area", "linear"):
            raise EvalError(f"resize_interpolation must be 'area' or 'linear', got {self.resize_interpolation!r}")
        stops = tuple(float(s) for s in self.exposure_stops)
        if not stops or len(set(stops)) != len(stops):
            raise EvalError(f"exposure_stops must be distinct values, got {self.exposure_stops}")
        object.__setattr__(self, "exposure_stops", stops)
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise EvalError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.target not in ("clean", "noisy"):
            raise EvalError(f"target must be 'clean' or 'noisy', got {self.target!r}")
        if self.mask not in ("exclude", "include"):
            raise EvalError(f"mask must be 'exclude' or 'include', got {self.mask!r}")
        if self.normalization not in NORMALIZATIONS:
            raise EvalError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.batch_size < 1:
            raise EvalError(f"batch_size must be >= 1, got {self.batch_size}")

    def camera_config(self):
        """The CameraConfig used for synthesis (noise removed when `noise` is False)."""
        from hdrjax.camera.pipeline import CameraConfig

        cam = self.camera if self.camera is not None else CameraConfig()
        if not self.noise:
            cam = dataclasses.replace(cam, noise_signal_max=0.0, noise_const_max=0.0)
        return cam

    def normalization_for(self, real: bool) -> str:
        """The metrics' normalization for synthetic (shared scale) or real pairs."""
        if self.normalization != "auto":
            return self.normalization
        return "authors" if real else "reference"


# ----------------------------------------------------------------------------- test examples


@dataclasses.dataclass
class Example:
    """One test patch: `hdr` f32[H, W, 3] (mean 0.5), `ldr` f32[H, W, 3] for real pairs, else None."""

    name: str
    hdr: np.ndarray
    ldr: np.ndarray | None = None
    source: str = ""


@dataclasses.dataclass
class Skipped:
    """An input that could not be used: `path` and the one-line `problem`."""

    path: str
    problem: str

    def __str__(self):
        return f"{self.path}: {self.problem}"


def test_patches(hdr: np.ndarray, config: EvalConfig) -> list[tuple[str, np.ndarray]]:
    """(suffix, patch) pairs of one HDR image: the two §1.1 crops (or the whole image), mean 0.5."""
    from hdrjax.data import transforms

    if config.full_image:
        return [("full", transforms.mean_normalize(hdr, MEAN_TARGET, MEAN_EPS))]
    r = config.resolution
    resized = transforms.resize_short_side(hdr, r, config.resize_interpolation)
    return [(str(i), transforms.mean_normalize(transforms.reference_crop(resized, i, r), MEAN_TARGET, MEAN_EPS))
            for i in (0, 1)]


def _pair_patches(hdr, ldr, config: EvalConfig):
    from hdrjax.data import transforms

    if config.full_image:
        return [("full", transforms.mean_normalize(hdr, MEAN_TARGET, MEAN_EPS), ldr)]
    r = config.resolution
    return [(str(i), transforms.mean_normalize(transforms.reference_crop(hdr, i, r), MEAN_TARGET, MEAN_EPS),
             np.ascontiguousarray(transforms.reference_crop(ldr, i, r)))
            for i in (0, 1)]


def _read(path):
    from hdrjax.io import ImageReadError, read_image

    try:
        return read_image(path), None
    except ImageReadError as e:
        # str(e) is "{path}: {problem}"; keep the problem, the path is Skipped.path.
        text, prefix = str(e), f"{e.path}: "
        return None, Skipped(str(path), text[len(prefix):] if text.startswith(prefix) else text)


def folder_examples(files: Sequence[pathlib.Path], config: EvalConfig) -> Iterator[Example | Skipped]:
    """Test patches of HDR files, read one by one; unreadable files come out as `Skipped`."""
    for path in files:
        hdr, bad = _read(path)
        if bad is not None:
            yield bad
            continue
        for suffix, patch in test_patches(hdr, config):
            yield Example(f"{path.stem}_{suffix}", patch, None, str(path))


def real_examples(pairs: Sequence[tuple[pathlib.Path, pathlib.Path]], config: EvalConfig) -> Iterator[Example | Skipped]:
    """Test patches of (HDR_gt, LDR_in) pairs; unreadable or mismatched pairs come out as `Skipped`."""
    for hdr_path, ldr_path in pairs:
        hdr, bad = _read(hdr_path)
        if bad is None:
            ldr, bad = _read(ldr_path)
        if bad is not None:
            yield bad
            continue
        if hdr.shape[:2] != ldr.shape[:2]:
            yield Skipped(str(ldr_path), f"{ldr.shape[1]}x{ldr.shape[0]} but its HDR {hdr_path.name} is "
                                         f"{hdr.shape[1]}x{hdr.shape[0]}")
            continue
        if not config.full_image and min(hdr.shape[:2]) < config.resolution:
            yield Skipped(str(hdr_path), f"{hdr.shape[1]}x{hdr.shape[0]} is smaller than the "
                                         f"{config.resolution}x{config.resolution} test crop (--resolution)")
            continue
        for suffix, h, l in _pair_patches(hdr, ldr, config):
            yield Example(f"{hdr_path.stem}_{suffix}", h, l, str(hdr_path))


def dataset_examples(name: str, manual_dir: str, config: EvalConfig, *, data_dir: str = "") -> Iterator[Example]:
    """The test split of an `hdrjax.data` dataset (TFDS-prepared), patches as in `test_patches`."""
    import hdrjax.data

    c = hdrjax.data.default_config()
    c.name = name
    c.manual_dir = manual_dir
    c.data_dir = data_dir
    c.short_side = config.resolution
    c.crop_size_reference = config.resolution
    c.eval_patch_size = config.resolution
    c.resize_interpolation = config.resize_interpolation
    c.mean_target = MEAN_TARGET
    c.mean_eps = MEAN_EPS
    if config.full_image:
        raise EvalError(f"--full-image works with folders of files, not with the {name} dataset")
    for item in hdrjax.data.make_eval_dataset(c):
        ldr = item.get("ldr")
        yield Example(str(item["name"]), np.asarray(item["hdr"], np.float32),
                      None if ldr is None else np.asarray(ldr, np.float32), name)


def open_source(spec: str, config: EvalConfig, *, data_dir: str = "") -> tuple[str, Iterator[Example | Skipped]]:
    """("synthetic" | "real", examples) for a folder, an HDR file or a `name[:DIR]` dataset spec."""
    from hdrjax.data import sources
    from hdrjax.data.config import DataError
    from hdrjax.io import HDR_EXTENSIONS

    name, _, rest = spec.partition(":")
    if name in DATA_SOURCES and (name == "procedural" or rest) and not pathlib.Path(spec).exists():
        if name != "procedural" and not rest:
            raise EvalError(f"{spec}: dataset {name} needs its folder, e.g. {name}:/data/{name}")
        return ("real" if name == "hdr_real" else "synthetic"), dataset_examples(name, rest, config, data_dir=data_dir)
    path = pathlib.Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() not in HDR_EXTENSIONS:
            raise EvalError(f"{spec}: not an HDR file (expected {'/'.join(HDR_EXTENSIONS)})")
        return "synthetic", folder_examples([path], config)
    if not path.is_dir():
        raise EvalError(f"{spec}: no such file or folder (or dataset: {', '.join(DATA_SOURCES)})")
    try:
        if (path / "HDR_gt").is_dir() and (path / "LDR_in").is_dir():
            return "real", real_examples(sources.hdr_real_pairs(path), config)
        files = sources.list_hdr_files(path)
    except DataError as e:
        raise EvalError(str(e)) from None
    if not files:
        raise EvalError(f"{spec}: no .hdr/.exr files in the folder (nor HDR_gt/ + LDR_in/)")
    return "synthetic", folder_examples(files, config)


# ----------------------------------------------------------------------------- methods


@dataclasses.dataclass(frozen=True)
class Method:
    """A reconstruction method: `run(ldr f32[N, H, W, 3], meta) -> (hdr f32[N, H, W, 3], curves f32[N, 1024] | None)`.

    `meta` is one dict per image (keys "image", "crf", "stops", and "inverse_crf" — the true
    curve — in synthetic evaluation). `kind`: model | ablation | baseline | oracle.
    """

    name: str
    kind: str
    run: Callable[[np.ndarray, list[dict]], tuple[np.ndarray, np.ndarray | None]]
    synthetic_only: bool = False
    info: dict | None = None  # extra protocol facts (e.g. the curves mean_crf averages)


def baseline_method(name: str, basis=None) -> Method:
    """A `hdrjax.baselines` function as a Method (its global curve, if any, is reported too)."""
    fn = baselines.get(name, basis)
    curve = baselines.curve_of(name, basis)

    def run(ldr, meta):
        hdr = np.asarray(fn(np.asarray(ldr, np.float32)), np.float32)
        return hdr, None if curve is None else np.broadcast_to(curve, (len(ldr), curve.size))

    return Method(name, "baseline", run)


def curve_method(name: str, curve, *, info: dict | None = None) -> Method:
    """A fixed global inverse CRF f32[1024] applied to the JPEG as a baseline (curve reported too)."""
    curve = np.asarray(curve, np.float32)

    def run(ldr, meta):
        hdr = np.asarray(baselines.inverse_curve(np.asarray(ldr, np.float32), curve), np.float32)
        return hdr, np.broadcast_to(curve, (len(ldr), curve.size))

    return Method(name, "baseline", run, info=info)


def mean_crf_method(crf_spec: str = "family") -> Method:
    """Baseline `mean_crf`: the mean inverse CRF of the training split of the bank `crf_spec`.

    With `dorf:PATH` that is the mean of DoRF's 191 training curves: "always answer the average
    camera", the inverse_crf_rmse a Linearization-Net must beat to have learned anything from
    the image. (`g0` instead uses the mean of the inverse-CRF basis the model is built on.)
    """
    from hdrjax.camera import crf as crf_lib

    try:
        bank = crf_lib.load_bank(crf_spec, "train")
    except crf_lib.CRFError as e:
        raise EvalError(f"--crf: {e}") from None
    return curve_method(MEAN_CRF, baselines.mean_curve(bank.inverse),
                        info={"crf_spec": f"{crf_spec}, train split", "curves": len(bank)})


def true_crf_method() -> Method:
    """Oracle: the sample's true inverse CRF applied to its JPEG input (synthetic only)."""

    def run(ldr, meta):
        curves = np.stack([np.asarray(m["inverse_crf"], np.float32) for m in meta])
        hdr = np.stack([baselines.inverse_curve(x, c) for x, c in zip(np.asarray(ldr, np.float32), curves)])
        return hdr.astype(np.float32), curves

    return Method("true_crf", "oracle", run, synthetic_only=True)


def _get_path(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def ablate_variables(variables, ablation: str):
    """SingleHDR variables with one stage swapped out: a new tree, `variables` is not changed.

    no_dequantization: C = LDR; g0_linearization: the inverse CRF is the basis mean g0;
    no_hallucination: A = B. Each zeroes the stage's last layer (its residual / coefficient
    head), which makes the stage output exactly its input (or g0), so the ablation runs through
    the very same `reconstruct` (tiling, CRF resolution, batching) as the full model.
    no_refinement, "model" and the stage prefixes need no change (they differ in the stages run).
    """
    if ablation in ("no_refinement", MODEL) or ablation in STAGE_METHODS:
        return variables
    if ablation not in _ABLATION_PARAMS:
        raise EvalError(f"unknown ablation {ablation!r}; known: {', '.join(ABLATIONS)}")
    path = ("params",) + _ABLATION_PARAMS[ablation]
    try:
        leaf = _get_path(variables, path)
    except (KeyError, TypeError):
        raise EvalError(f"variables: no {'/'.join(path)} to zero for the {ablation} ablation "
                        "(the SingleHDR parameter names changed?)") from None

    def rebuild(tree, depth):
        if depth == len(path):
            return jax.tree.map(jnp.zeros_like, leaf)
        out = dict(tree)
        out[path[depth]] = rebuild(tree[path[depth]], depth + 1)
        return out

    return rebuild(variables, 0)


def model_method(model, variables, *, name: str = MODEL, stages: Sequence[str] | None = None,
                 predict_config=None) -> Method:
    """`hdrjax.predict.reconstruct_batch` as a Method; `name` may be an ablation (see `ablate_variables`).

    `stages`: the stages of the full model (default: through hallucination); "no_refinement"
    stops after hallucination; a stage prefix (`STAGE_METHODS`) runs exactly its stages.
    """
    from hdrjax import predict

    stages = tuple(stages) if stages is not None else predict.STAGES[:3]
    if name == "no_refinement":
        stages = tuple(s for s in stages if s != "refinement")
    elif name in STAGE_METHODS:
        stages = STAGE_METHODS[name]
    # Evaluation crops are small (256² in the paper's protocol): with the tiles engine each crop
    # is one tile, i.e. one exact pass, and same-shape crops of several images share a call
    # (batch_size); the regions engine would measure the receptive field of every ablation.
    config = predict_config if predict_config is not None else predict.PredictConfig(engine="tiles")
    config = dataclasses.replace(config, stages=stages)
    ablated = ablate_variables(variables, name)

    def run(ldr, meta):
        # reconstruct pads every tile batch to batch_size: a power-of-two bucket avoids running
        # 8 tiles for one image while compiling at most log2(batch_size) + 1 shapes.
        bs = _bucket(len(ldr), config.batch_size)
        cfg = config if bs == config.batch_size else dataclasses.replace(config, batch_size=bs)
        results = predict.reconstruct_batch(model, ablated, list(np.asarray(ldr, np.float32)), cfg)
        hdr = np.stack([np.asarray(r.output, np.float32) for r in results])
        curves = None
        if all(r.inverse_crf is not None for r in results):
            curves = np.stack([np.asarray(r.inverse_crf, np.float32) for r in results])
        return hdr, curves

    kind = MODEL if name == MODEL else ("stages" if name in STAGE_METHODS else "ablation")
    return Method(name, kind, run)


def parse_methods(spec: str | Sequence[str], *, have_model: bool, joint: bool = True) -> list[str]:
    """Method names from a comma list with groups; model, ablations and stages need a checkpoint."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in items:
        if not item:
            continue
        if item in GROUPS:
            group = [m for m in GROUPS[item] if have_model or m not in MODEL_METHODS]
            if not joint:
                # Without a trained Refinement-Net the model's output is already before refinement.
                group = [m for m in group if m not in ("no_refinement", "stages_refinement")]
            names += group
        elif item in ALL_METHODS:
            names.append(item)
        else:
            known = ", ".join(list(GROUPS) + list(ALL_METHODS))
            raise EvalError(f"--methods: unknown method {item!r}; known: {known}")
    names = list(dict.fromkeys(names))
    needs_model = [n for n in names if n in MODEL_METHODS]
    if needs_model and not have_model:
        raise EvalError(f"--methods: {', '.join(needs_model)} need(s) --checkpoint")
    if not names:
        raise EvalError("--methods: no method selected")
    return names


def build_methods(names: Sequence[str], *, model=None, variables=None, stages=None, predict_config=None,
                  basis=None, crf: str = "family") -> list[Method]:
    """Methods by name; `basis` (g0) defaults to the model's basis, else the built-in one;
    `crf`: the CRF bank spec whose training split `mean_crf` averages."""
    if basis is None and model is not None:
        basis = getattr(model, "basis", None)
    out = []
    for name in names:
        if name in MODEL_METHODS:
            if model is None:
                raise EvalError(f"method {name} needs a model (--checkpoint)")
            out.append(model_method(model, variables, name=name, stages=stages, predict_config=predict_config))
        elif name == MEAN_CRF:
            out.append(mean_crf_method(crf))
        elif name in BASELINES:
            out.append(baseline_method(name, basis))
        elif name == "true_crf":
            out.append(true_crf_method())
        else:
            raise EvalError(f"unknown method {name!r}")
    return out


# ----------------------------------------------------------------------------- core


@functools.partial(jax.jit, static_argnames=("camera",))
def _synthesize_group(keys, hdr, bank, crf_index, exposure, quality, camera):
    """The camera on one patch for N (CRF, exposure) pairs, each with its own key: (jpeg, mask, X)."""
    from hdrjax.camera.pipeline import synthesize

    def one(key, c, t):
        s = synthesize(key, hdr[None], bank, camera, crf_index=c, exposure=t, quality=quality)
        return s.jpeg[0], s.mask[0], s.exposed[0]

    return jax.vmap(one)(keys, crf_index, exposure)


@functools.partial(jax.jit, static_argnames=("camera",))
def _exposure_mask(ldr, camera):
    from hdrjax.camera.pipeline import exposure_mask

    return exposure_mask(ldr, camera)


def _sample_key(seed: int, image: str, crf: str, stops: float):
    # A hash of what the sample is, so its noise does not depend on order, batching or --limit.
    h = zlib.crc32(f"{image}|{crf}|{stops:+.6g}".encode()) & 0x7FFFFFFF
    return jax.random.fold_in(jax.random.key(seed), h)


def _fmt_stops(s) -> str:
    return "" if s is None else f"{s:+g}"


@dataclasses.dataclass
class EvalResult:
    """Per-sample rows, the summary, skipped inputs, the protocol, and kept images/curves."""

    rows: list[dict]
    summary: list[dict]
    metric_names: tuple[str, ...]
    skipped: list[Skipped]
    protocol: dict
    kept: list[dict]
    timing: dict

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """{"[prefix/]method/metric[/ev+1]": mean} from the summary, for TensorBoard."""
        out = {}
        for row in self.summary:
            tail = "" if row["exposure"] == "all" else f"/ev{row['exposure']}"
            for m in self.metric_names:
                v = row.get(f"{m}_mean")
                if v is not None:
                    out[f"{prefix + '/' if prefix else ''}{row['method']}/{m}{tail}"] = float(v)
        return out


def _bucket(n: int, batch_size: int) -> int:
    """The smallest power of two >= n, at most batch_size (batch shapes jit compiles for)."""
    return min(batch_size, 1 << max(0, int(n) - 1).bit_length())


def _metric_batches(pred, gt, config: EvalConfig, normalization: str):
    """compute_all in batches padded (by repetition) to power-of-two sizes: few jit shapes."""
    from hdrjax import metrics

    n = len(pred)
    b = config.batch_size
    out: dict[str, list] = {}
    for start in range(0, n, b):
        p, g = pred[start:start + b], gt[start:start + b]
        k = len(p)
        size = _bucket(k, b)
        if k < size:
            p = np.concatenate([p, np.repeat(p[-1:], size - k, axis=0)])
            g = np.concatenate([g, np.repeat(g[-1:], size - k, axis=0)])
        values = metrics.compute_all(p, g, crf_correction=config.crf_correction, normalization=normalization)
        for name, v in values.items():
            out.setdefault(name, []).append(np.asarray(v, np.float64)[:k])
    return {name: np.concatenate(v) for name, v in out.items()}


def synthetic_samples(example: Example, bank, config: EvalConfig):
    """Every (exposure, CRF) sample of one patch: one (ldr, gt, mask, meta) group per exposure.

    The protocol's camera (step 2–3 of the module doc) for every CRF of `bank` at every exposure
    of `config`: ldr f32[N_crf, H, W, 3] (the JPEG), gt the ground truth, mask u8[N_crf] and one
    meta dict per sample. Figures reuse it so that their inputs are exactly the evaluated ones.
    """
    n_crf = len(bank)
    quality = jnp.int32(config.jpeg_quality)
    camera = config.camera_config()
    hdr = jnp.asarray(example.hdr, jnp.float32)
    groups = []
    for stops in config.exposure_stops:
        t = np.float32(2.0 ** stops)
        keys = jnp.stack([_sample_key(config.seed, example.name, bank.names[c], stops) for c in range(n_crf)])
        ldr, mask, exposed = _synthesize_group(keys, hdr, bank, jnp.arange(n_crf, dtype=jnp.int32),
                                               jnp.full((n_crf,), t), quality, camera)
        if config.target == "noisy":
            gt = np.asarray(exposed, np.float32)
        else:
            gt = np.broadcast_to(np.asarray(example.hdr * t, np.float32), (n_crf,) + example.hdr.shape)
        meta = [{"image": example.name, "crf": bank.names[c], "crf_index": c, "stops": stops,
                 "exposure": float(t), "jpeg_quality": config.jpeg_quality,
                 "inverse_crf": np.asarray(bank.inverse[c])} for c in range(n_crf)]
        groups.append((np.asarray(ldr), gt, np.asarray(mask), meta))
    return groups


def _real_samples(example: Example, config: EvalConfig):
    ldr = np.asarray(example.ldr, np.float32)[None]
    mask = np.asarray(_exposure_mask(jnp.asarray(ldr), config.camera_config()))
    meta = [{"image": example.name, "crf": "camera", "crf_index": -1, "stops": None, "exposure": None,
             "jpeg_quality": None}]
    return [(ldr, np.asarray(example.hdr, np.float32)[None], mask, meta)]


def evaluate(
    examples: Iterable[Example | Skipped],
    methods: Sequence[Method],
    config: EvalConfig = EvalConfig(),
    *,
    bank=None,
    keep: Callable[[dict], bool] | None = None,
    limit: int | None = None,
    protocol: dict | None = None,
) -> EvalResult:
    """Run every method on every test sample and score it; returns rows, summary and protocol.

    `examples`: `Example`s (with `ldr` = real pairs, else synthesised with the CRFs of `bank`,
    a `CRFBank`) and `Skipped` inputs (counted). `keep(meta)` selects samples whose images and
    curves are kept in `result.kept` (figures). `limit`: stop after this many examples.
    Library use (e.g. from training): `evaluate(patches, [model_method(model, variables)],
    EvalConfig(exposure_stops=(0.0,)), bank=test_bank).scalars("eval")`.
    """
    rows: list[dict] = []
    skipped: list[Skipped] = []
    kept: list[dict] = []
    timing: dict[str, float] = {m.name: 0.0 for m in methods}
    metric_names: tuple[str, ...] | None = None
    kinds = set()
    n_examples = 0
    for example in examples:
        if isinstance(example, Skipped):
            logger.error(f"{example} (skipped)")
            skipped.append(example)
            continue
        if isinstance(example, dict):  # an hdrjax.data.make_eval_dataset item
            example = Example(str(example["name"]), np.asarray(example["hdr"], np.float32),
                              None if example.get("ldr") is None else np.asarray(example["ldr"], np.float32))
        if limit is not None and n_examples >= limit:
            break
        n_examples += 1
        t0 = time.perf_counter()
        real = example.ldr is not None
        kinds.add("real" if real else "synthetic")
        if len(kinds) > 1:
            raise EvalError("examples mix real pairs and HDR-only images; evaluate them separately")
        if not real and bank is None:
            raise EvalError("synthetic evaluation needs a CRF bank (bank=hdrjax.camera.load_bank(spec, 'test'))")
        normalization = config.normalization_for(real)
        groups = _real_samples(example, config) if real else synthetic_samples(example, bank, config)
        n_samples = n_masked = 0
        for ldr, gt, mask, meta in groups:
            n_samples += len(meta)
            n_masked += int(np.sum(mask == 0))
            run = np.nonzero((mask > 0) | (config.mask == "include"))[0]
            per_method = {}
            for method in methods:
                if method.synthetic_only and real:
                    continue
                values: dict[str, np.ndarray] = {}
                curves = None
                outputs = None
                if run.size:
                    tm = time.perf_counter()
                    outputs, curves = method.run(ldr[run], [meta[i] for i in run])
                    timing[method.name] += time.perf_counter() - tm
                    values = _metric_batches(outputs, np.ascontiguousarray(gt[run]), config, normalization)
                    if metric_names is None:
                        metric_names = tuple(values)
                per_method[method.name] = (outputs, curves)
                pos = {int(i): j for j, i in enumerate(run)}
                for i, m in enumerate(meta):
                    row = {"method": method.name, "image": m["image"], "crf": m["crf"],
                           "exposure": m["exposure"], "stops": m["stops"], "jpeg_quality": m["jpeg_quality"],
                           "mask": int(mask[i] > 0)}
                    j = pos.get(i)
                    if j is not None:
                        for name, v in values.items():
                            row[name] = float(v[j])
                        if curves is not None and "inverse_crf" in m:
                            row[CURVE_METRIC] = float(np.sqrt(np.mean((curves[j] - m["inverse_crf"]) ** 2)))
                    rows.append(row)
            if keep is not None:
                for j, i in enumerate(run):
                    if keep(meta[i]):
                        kept.append({
                            "meta": {k: v for k, v in meta[i].items() if k != "inverse_crf"},
                            "true_inverse_crf": meta[i].get("inverse_crf"),
                            "ldr": ldr[i], "gt": gt[i],
                            "outputs": {k: o[j] for k, (o, _) in per_method.items() if o is not None},
                            "curves": {k: c[j] for k, (_, c) in per_method.items() if c is not None},
                        })
        logger.info(f"{example.name}: {n_samples} sample(s), {n_masked} masked, "
                    f"{time.perf_counter() - t0:.1f} s")
    from hdrjax.metrics import METRIC_NAMES

    # The metrics module's order (jit returns dicts sorted by key), then any extra ones.
    found = metric_names or tuple(METRIC_NAMES)
    metric_names = tuple(m for m in METRIC_NAMES if m in found) + tuple(m for m in found if m not in METRIC_NAMES)
    if any(CURVE_METRIC in r for r in rows):
        metric_names = metric_names + (CURVE_METRIC,)
    stops = config.exposure_stops if "synthetic" in kinds else ()
    summary = summarize(rows, [m.name for m in methods], metric_names, stops)
    proto = dict(protocol or {})
    proto.update({
        "kind": "real" if "real" in kinds else "synthetic",
        "config": _config_json(config),
        "normalization": config.normalization_for("real" in kinds),
        "examples": n_examples,
        "samples": sum(1 for r in rows if r["method"] == methods[0].name) if methods else 0,
        "skipped": [str(s) for s in skipped],
        "methods": [{"name": m.name, "kind": m.kind, **({"info": m.info} if m.info else {})} for m in methods],
        "seconds": {k: round(v, 3) for k, v in timing.items()},
    })
    if bank is not None and "synthetic" in kinds:
        proto["crfs"] = list(bank.names)
    return EvalResult(rows, summary, metric_names, skipped, proto, kept, timing)


def _config_json(config: EvalConfig) -> dict:
    d = dataclasses.asdict(dataclasses.replace(config, camera=None))
    d["camera"] = dataclasses.asdict(config.camera_config())
    d["exposures"] = [float(2.0 ** s) for s in config.exposure_stops]
    return json.loads(json.dumps(d, default=str))


def summarize(rows: Sequence[dict], methods: Sequence[str], metric_names: Sequence[str],
              stops: Sequence[float] = ()) -> list[dict]:
    """Mean and sample std (ddof 1) of each metric per method, per exposure and overall.

    A row counts when it has metric values (mask 1, or every row with mask "include"); `n` is
    that count and `masked` the number of mask-0 samples in the group.
    """
    out = []
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        groups = [(_fmt_stops(s), [r for r in mine if r["stops"] == s]) for s in stops] + [("all", mine)]
        for label, group in groups:
            if not group:
                continue
            scored = [r for r in group if metric_names and metric_names[0] in r]
            row = {"method": method, "exposure": label, "n": len(scored),
                   "masked": sum(1 for r in group if r["mask"] == 0)}
            for m in metric_names:
                v = np.array([r[m] for r in scored if m in r], np.float64)
                row[f"{m}_mean"] = float(np.mean(v)) if v.size else None
                row[f"{m}_std"] = float(np.std(v, ddof=1)) if v.size > 1 else None
            out.append(row)
    return out


# ----------------------------------------------------------------------------- writing


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "inf" if v == math.inf else ("-inf" if v == -math.inf else ("nan" if v != v else f"{v:.6g}"))
    return str(v)


ROW_FIELDS = ("method", "image", "crf", "exposure", "stops", "jpeg_quality", "mask")


def _csv_text(fields, rows) -> str:
    buf = _pyio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_cell(r.get(f)) if f != "stops" else _fmt_stops(r.get(f)) for f in fields])
    return buf.getvalue()


def per_image_csv(result: EvalResult) -> str:
    """The per-sample table: one row per method × image × CRF × exposure."""
    return _csv_text(ROW_FIELDS + tuple(result.metric_names), result.rows)


def summary_csv(result: EvalResult) -> str:
    """The summary table as CSV: method, exposure, n, masked, <metric>_mean, <metric>_std …"""
    fields = ("method", "exposure", "n", "masked") + tuple(
        f"{m}_{s}" for m in result.metric_names for s in ("mean", "std"))
    return _csv_text(fields, result.summary)


def _pm(row, m, digits):
    mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
    if mean is None:
        return "–"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _digits(metric: str) -> int:
    return 4 if ("ssim" in metric or metric == CURVE_METRIC) else 2


def protocol_text(protocol: dict) -> str:
    """One paragraph stating the protocol behind the numbers."""
    c = protocol.get("config", {})
    parts = []
    if protocol.get("kind") == "real":
        parts.append(f"real LDR/HDR pairs from {protocol.get('source', '?')}; input = the camera JPEG")
        crops = "whole images" if c.get("full_image") else f"first/last {c.get('resolution')}² crops at native resolution"
    else:
        crfs = protocol.get("crfs", [])
        parts.append(f"synthetic LDR from {protocol.get('source', '?')} with {len(crfs)} test CRFs "
                     f"({protocol.get('crf_spec', '?')}), exposures 2^{{{', '.join(_fmt_stops(s) for s in c.get('exposure_stops', []))}}}, "
                     f"JPEG quality {c.get('jpeg_quality')}, synthesis noise {'on' if c.get('noise') else 'off'}; "
                     + ("ground truth = the noisy exposed HDR X" if c.get("target") == "noisy"
                        else "ground truth = noise-free HDR × exposure"))
        crops = ("whole images" if c.get("full_image") else
                 f"short side resized to {c.get('resolution')} ({c.get('resize_interpolation')}), first/last "
                 f"{c.get('resolution')}² crops")
    parts.append(f"{crops}, each scaled to mean 0.5")
    parts.append("samples with > 50 % of gray pixels ≥ 249 or ≤ 6 "
                 + ("excluded from the means (column masked)" if c.get("mask") == "exclude" else "kept in the means"))
    parts.append(f"metrics: hdrjax.metrics.compute_all, normalization {protocol.get('normalization')}"
                 + (", CRF correction (Hanji et al. 2022)" if c.get("crf_correction") else ""))
    ck = protocol.get("checkpoint")
    if ck:
        parts.append(f"checkpoint {ck.get('path')} (step {ck.get('step')}, stage {ck.get('stage')}, output after {ck.get('output_stage')})")
    parts.append(f"{protocol.get('examples', 0)} test patches, {protocol.get('samples', 0)} samples per method; "
                 "values are mean ± sample std over samples")
    return "; ".join(parts) + "."


def summary_markdown(result: EvalResult) -> str:
    """The summary as markdown: the protocol, an overall table and a per-exposure table."""
    metrics = result.metric_names
    head = "| method | n | masked | " + " | ".join(metrics) + " |"
    rule = "|---|---:|---:|" + "---:|" * len(metrics)
    lines = ["# Evaluation summary", "", "Protocol: " + protocol_text(result.protocol), ""]
    if result.skipped:
        lines += [f"Skipped inputs ({len(result.skipped)}): " + "; ".join(str(s) for s in result.skipped), ""]
    lines += ["## Overall", "", head, rule]
    for row in result.summary:
        if row["exposure"] == "all":
            lines.append(f"| {row['method']} | {row['n']} | {row['masked']} | "
                         + " | ".join(_pm(row, m, _digits(m)) for m in metrics) + " |")
    per_exp = [r for r in result.summary if r["exposure"] != "all"]
    if per_exp:
        lines += ["", "## Per exposure (stops)", "",
                  "| method | exposure | n | masked | " + " | ".join(metrics) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(metrics)]
        for row in per_exp:
            lines.append(f"| {row['method']} | {row['exposure']} | {row['n']} | {row['masked']} | "
                         + " | ".join(_pm(row, m, _digits(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(result: EvalResult, workdir) -> dict[str, pathlib.Path]:
    """Write per_image.csv, summary.csv, summary.md and protocol.json atomically into `workdir`."""
    from hdrjax.io import atomic_write

    workdir = pathlib.Path(workdir).expanduser()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvalError(f"{workdir}: cannot create the output folder ({e.strerror or e})") from None
    texts = {
        "per_image.csv": per_image_csv(result),
        "summary.csv": summary_csv(result),
        "summary.md": summary_markdown(result),
        "protocol.json": json.dumps(result.protocol, indent=2, default=str) + "\n",
    }
    paths = {}
    for name, text in texts.items():
        path = workdir / name
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        paths[name] = path
    return paths


# ----------------------------------------------------------------------------- CLI


def load_checkpoint(path):
    """(model, variables, training config, step) of a checkpoint, errors as EvalError.

    `path`: a training workdir or checkpoint folder (`hdrjax.predict.load_model`), a shipped-model
    folder with manifest.json (`hdrjax.pretrained.load`; step = the manifest's "step"), or
    `default`, the model shipped with the package.
    """
    from hdrjax import predict, pretrained

    if pretrained.is_model_dir(path):
        try:
            model, variables, config, manifest = pretrained.load(path)
        except pretrained.PretrainedError as e:
            raise EvalError(str(e)) from None
        step = manifest.get("step")
        return model, variables, dict(config or {}), None if step is None else int(step)
    try:
        return predict.load_model(path)
    except predict.PredictError as e:
        raise EvalError(str(e)) from None


def load_test_bank(spec: str, max_crfs: int | None = None):
    """The held-out test split of a CRF bank spec ("family" | "dorf:PATH"), optionally its first K curves."""
    from hdrjax.camera import crf as crf_lib

    try:
        bank = crf_lib.load_bank(spec, "test")
    except crf_lib.CRFError as e:
        raise EvalError(f"--crf: {e}") from None
    if max_crfs is not None:
        if max_crfs < 1:
            raise EvalError(f"--max-crfs must be >= 1, got {max_crfs}")
        bank = bank.take(range(min(max_crfs, len(bank))))
    return bank


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hdrjax.evaluate",
        description="Evaluate the model, its ablations and baselines with a fixed protocol (see the module doc).",
    )
    p.add_argument("source", help="folder of .hdr/.exr | HDR-Real folder (HDR_gt/, LDR_in/) | HDR file | "
                   "procedural | hdr_synth:DIR | hdr_folder:DIR | hdr_real:DIR")
    p.add_argument("--workdir", required=True, help="output folder (created if needed)")
    p.add_argument("--checkpoint", help="training workdir or checkpoint folder, a shipped-model folder (manifest.json) "
                   "or 'default' (the model shipped with hdrjax); needed by model, ablations and stages")
    p.add_argument("--methods", default=None,
                   help="comma list of methods and groups (baselines, ablations, stages, oracles, all); "
                   "default: model,baselines with --checkpoint, else baselines")
    p.add_argument("--crf", default="family",
                   help="test CRFs: 'family' (built-in parametric family, test split; default) or "
                   "'dorf:PATH' (DoRF .txt/.npz; the reference's 10 test curves); its training split is "
                   "what mean_crf averages")
    p.add_argument("--max-crfs", type=int, default=None, help="use only the first K test CRFs (quick runs)")
    p.add_argument("--exposures", default=",".join(f"{s:g}" for s in EXPOSURE_STOPS),
                   help="exposure stops s, t = 2^s; write --exposures=-3,0,3 (default %(default)s)")
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY, help="JPEG quality of the synthetic input (default %(default)s)")
    p.add_argument("--resolution", type=int, default=RESOLUTION, help="short side and crop size of the test patches (default %(default)s)")
    p.add_argument("--full-image", action="store_true", help="evaluate whole images instead of the two crops")
    p.add_argument("--resize-interpolation", choices=("area", "linear"), default="area",
                   help="area (default) or linear (the reference loader's accidental bilinear)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test patches")
    p.add_argument("--mask", choices=("exclude", "include"), default="exclude",
                   help="extreme-exposure samples: exclude from the means (reference) or include")
    p.add_argument("--no-noise", action="store_true", help="no synthesis noise in the input")
    p.add_argument("--target", choices=("clean", "noisy"), default="clean",
                   help="synthetic ground truth: clean H·t (default) or the noisy X the reference trains towards")
    p.add_argument("--crf-correction", action="store_true", help="Hanji et al. 2022 CRF correction before the metrics")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="auto",
                   help="metrics normalization (auto: reference for synthetic, authors for real pairs)")
    p.add_argument("--seed", type=int, default=0, help="synthesis noise seed (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network/metric call (default %(default)s)")
    p.add_argument("--invemor", default="", help="invemor.txt whose g0 the g0 baseline uses (default: the model's basis / built-in)")
    p.add_argument("--reference-inference", action="store_true",
                   help="run the model as the reference (stretch to ×64, 32 px pad, one pass) instead of tiles")
    p.add_argument("--data-dir", default="", help="TFDS data_dir for dataset sources")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


class _Formatter(logging.Formatter):
    def format(self, record):
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests and notebooks swap it)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _configure_logging(quiet: bool) -> None:
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _parse_stops(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise EvalError(f"--exposures: expected comma-separated numbers (stops), got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; 0 ok, 1 a problem (bad input files skipped, bad checkpoint), 2 usage."""
    args = _parser().parse_args(argv)
    _configure_logging(args.quiet)
    try:
        return _main(args, list(sys.argv[1:] if argv is None else argv))
    except EvalError as e:
        logger.error(str(e))
        return 1


def _main(args, argv) -> int:
    from hdrjax import predict
    from hdrjax.camera import crf as crf_lib
    from hdrjax.data.config import DataError

    config = EvalConfig(
        resolution=args.resolution, full_image=args.full_image, resize_interpolation=args.resize_interpolation,
        exposure_stops=_parse_stops(args.exposures), jpeg_quality=args.jpeg_quality, noise=not args.no_noise,
        target=args.target, mask=args.mask, normalization=args.normalization, crf_correction=args.crf_correction, seed=args.seed,
        batch_size=args.batch_size,
    )
    if args.limit is not None and args.limit < 1:
        raise EvalError(f"--limit must be >= 1, got {args.limit}")
    kind, examples = open_source(args.source, config, data_dir=args.data_dir)
    protocol: dict[str, Any] = {"source": args.source, "command": "python -m hdrjax.evaluate " + " ".join(argv),
                                "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}}

    bank = None
    if kind == "synthetic":
        bank = load_test_bank(args.crf, args.max_crfs)
        protocol["crf_spec"] = f"{args.crf}, test split" + (f", first {len(bank)}" if args.max_crfs else "")

    model = variables = stages = None
    joint = True
    if args.checkpoint:
        model, variables, train_config, step = load_checkpoint(args.checkpoint)
        stages = predict.stages_for_checkpoint(train_config)
        joint = "refinement" in stages
        warning = predict.checkpoint_warning(train_config, step)
        if warning:
            logger.warning(f"{args.checkpoint}: {warning}")
        protocol["checkpoint"] = {"path": args.checkpoint, "step": step, "stage": train_config.get("stage"),
                                  "output_stage": stages[-1], "warning": warning}
    names = parse_methods(args.methods or ("model,baselines" if model is not None else "baselines"),
                          have_model=model is not None, joint=joint)
    if not joint and "stages_refinement" in names:
        logger.warning(f"stages_refinement: the checkpoint's stage is {train_config.get('stage')!r}, not joint; "
                       "its Refinement-Net was not trained")
    basis = None
    if args.invemor:
        try:
            basis = crf_lib.load_invemor(args.invemor)
        except crf_lib.CRFError as e:
            raise EvalError(f"--invemor: {e}") from None
    predict_config = predict.PredictConfig(engine="tiles", batch_size=args.batch_size,
                                           reference_mode=args.reference_inference)
    methods = build_methods(names, model=model, variables=variables, stages=stages,
                            predict_config=predict_config, basis=basis, crf=args.crf)
    if kind == "real":
        dropped = [m.name for m in methods if m.synthetic_only]
        if dropped:
            logger.warning(f"{', '.join(dropped)}: synthetic only, not run on real pairs")
        methods = [m for m in methods if not m.synthetic_only]
    logger.info(f"{kind} evaluation of {', '.join(m.name for m in methods)} on {args.source}"
                + (f" with {len(bank)} test CRFs × {len(config.exposure_stops)} exposures" if bank is not None else ""))
    try:
        result = evaluate(examples, methods, config, bank=bank, limit=args.limit, protocol=protocol)
    except DataError as e:
        raise EvalError(str(e)) from None
    if result.protocol["examples"] == 0:
        raise EvalError(f"{args.source}: no test image could be read")
    paths = write_outputs(result, args.workdir)
    sys.stdout.write(summary_markdown(result))
    logger.info(f"{result.protocol['examples']} test patch(es), {len(result.skipped)} input(s) skipped; "
                f"wrote {', '.join(str(p) for p in paths.values())}")
    return 1 if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
