"""The test protocol: what the numbers of `python -m hdrjax.evaluate` are measured on.

This module owns `EvalConfig` (every setting of the protocol), the test patches of an image,
the example sources (a folder of HDR files, HDR-Real pairs, an `hdrjax.data` dataset), the
held-out CRF bank and the camera that turns a test patch into its evaluated samples
(`synthetic_samples`; `real_samples` for camera pairs).

Sources
-------
* a folder of .hdr/.exr files (or one file): **synthetic** evaluation, below;
* a folder with `HDR_gt/` and `LDR_in/` (the HDR-Real layout, pairs by sorted name): **real**
  evaluation, the camera JPEG is the input and the HDR the ground truth;
* `procedural`, `hdr_synth:DIR`, `hdr_folder:DIR`, `hdr_real:DIR`: the test split of an
  `hdrjax.data` dataset (TFDS array_record, prepared on first use; `hdr_synth` = the
  reference's 60 HDR-Synth test images).

Synthetic protocol (docs/reference.md §1.7 unless marked *ours*)
-------------------------------------------------------------
1. Test patches: each HDR image is resized so its shorter side is `resolution` (512; area
   averaging — the reference ran bilinear by accident, `--resize-interpolation linear`), the
   first and last `resolution`² crops along the long side are taken (§1.1) and each crop is
   scaled to mean 0.5 over all pixels and channels. `--full-image`: the whole image instead
   (*ours*; not comparable with 512² numbers).
2. Camera: every patch × every held-out **test CRF** (`--crf dorf:PATH`: the reference's 10 DoRF
   test curves; default: the test split of the built-in camera bank, *ours*) × every
   exposure t = 2^s, s ∈ {−3, −2, −1, 0, 1, 2, 3}, through `hdrjax.camera.synthesize`: exposure,
   the reference's noise (*deterministic*: the key is a hash of image, CRF and exposure),
   clipping, CRF, 8-bit quantisation and **JPEG at quality 90** (fixed, *ours*: the lowest
   quality the reference trains on; it draws 90…100 by batch slot).
3. **Ground truth = H · t**, the exposure-scaled HDR *without* the synthesis noise (*ours*: the
   Hallucination-Net's training target is the noisy X; scoring against the noise-free scene
   does not reward reproducing noise; `--target noisy` scores against X). `--no-noise` also
   removes the noise from the input.
4. **Extreme-exposure exclusion** (§1.5, §5: as the authors' `HDR-Syn_over_exposed_mask.csv`):
   a sample whose JPEG has > 50 % of gray pixels ≥ 249 or ≤ 6 gets mask 0; it is not
   reconstructed, its CSV row has empty metrics, it is counted (`masked`) and left out of every
   mean. `--mask include` evaluates and averages it too.
5. Metrics: `hdrjax.evaluation.metrics.compute_all` with normalization "reference" (prediction and ground
   truth share the synthetic radiometric scale; PU21 maps the ground truth's peak to 4000
   cd/m²), `--crf-correction` for the Hanji et al. 2022 correction. Methods with a global curve
   also get `inverse_crf_rmse`, the RMSE of their inverse CRF against the true one over the 1024
   samples.

Real pairs: the first/last `resolution`² crops of the image pair at its own resolution (no
resize: that would change the JPEG's statistics; an image smaller than the crop is skipped),
ground truth mean-normalised to 0.5, the same mask from the camera JPEG, normalization
"authors" (the exposure of HDR_gt relative to the JPEG is unknown; `--normalization`).
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
import zlib
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.errors import HdrjaxError

# §1.7: t ∈ 2^linspace(−3, 3, 7).
EXPOSURE_STOPS = tuple(float(s) for s in np.linspace(-3.0, 3.0, 7))
JPEG_QUALITY = 90  # ours: fixed for comparability (the lowest quality of the reference's 90…100)
RESOLUTION = 512  # §1.1 / §1.7: 512² test patches
MEAN_TARGET = 0.5  # §1.1: each test patch is scaled to mean 0.5
MEAN_EPS = 1e-6  # §1.1: x / (mean + 1e-6) · 0.5

DATA_SOURCES = ("procedural", "hdr_synth", "hdr_folder", "hdr_real")
NORMALIZATIONS = ("auto", "reference", "authors")


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
        # The synthesised X is the ground truth of `target noisy`: it must carry the noise.
        return dataclasses.replace(cam, noisy_targets=True)

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
        for suffix, h, ld in _pair_patches(hdr, ldr, config):
            yield Example(f"{hdr_path.stem}_{suffix}", h, ld, str(hdr_path))


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


def load_test_bank(spec: str, max_crfs: int | None = None):
    """The held-out test split of a CRF bank spec ("camera" | "parametric" | "dorf:PATH"), optionally its first K curves."""
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


def parse_stops(text: str) -> tuple[float, ...]:
    """Exposure stops from the command line's comma list ("-3,0,3")."""
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise EvalError(f"--exposures: expected comma-separated numbers (stops), got {text!r}") from None


# ----------------------------------------------------------------------------- the camera


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


def real_samples(example: Example, config: EvalConfig):
    """The one sample of a real pair, in `synthetic_samples`' format: its mask from the camera JPEG."""
    ldr = np.asarray(example.ldr, np.float32)[None]
    mask = np.asarray(_exposure_mask(jnp.asarray(ldr), config.camera_config()))
    meta = [{"image": example.name, "crf": "camera", "crf_index": -1, "stops": None, "exposure": None,
             "jpeg_quality": None}]
    return [(ldr, np.asarray(example.hdr, np.float32)[None], mask, meta)]
