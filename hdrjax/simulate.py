"""Simulate the LDR photo a camera would take of an HDR scene (the training-data pipeline).

    python -m hdrjax.simulate INPUT.hdr|.exr --output OUT.png|.jpg [--crf family:NAME|dorf:INDEX]
        [--crf-file PATH] [--exposure STOPS] [--auto-exposure median|mean|none] [--quality Q]
        [--seed S] [--sidecar]

Exposure: t = auto_scale * 2^STOPS.  `median` (default) scales the image so that the median
Rec. 709 luminance becomes 0.18 (middle grey); `mean` scales the mean over all pixels and
channels to 0.5 (the reference's per-patch normalisation, so STOPS in [-3, 3] are its training
exposures); `none` uses t = 2^STOPS on the file's values.  Then signal-dependent and constant
noise (sigmas drawn from the seed), clipping, the CRF, 8-bit quantization and JPEG.

Output: `.png` / `.tif` store our jnp JPEG's decoded pixels losslessly; `.jpg` / `.jpeg` store
the 8-bit image encoded by a real JPEG encoder (libjpeg via OpenCV, 4:2:0) at quality Q.
`--sidecar` writes OUT + ".json" with every parameter used.  CRF, quality and noise not given
are drawn from `--seed`, so the same command gives the same file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

from hdrjax import cli, tonemap
from hdrjax import io as hio
from hdrjax.camera import crf as crf_lib
from hdrjax.camera import pipeline
from hdrjax.errors import HdrjaxError

LOSSLESS_EXTENSIONS = (".png", ".tif", ".tiff")
JPEG_EXTENSIONS = (".jpg", ".jpeg")
AUTO_MODES = ("median", "mean", "none")
MEDIAN_TARGET = 0.18  # middle grey
MEAN_TARGET = 0.5  # reference dataset._pre_hdr_p2

# Module level so repeated calls in one process (tests, notebooks) share compilations.
_synthesize = jax.jit(pipeline.synthesize, static_argnums=3)


class SimulateError(HdrjaxError):
    """A command-line request that cannot be carried out (message names the argument/file)."""


def auto_scale(hdr: np.ndarray, mode: str) -> float:
    """Exposure multiplier that brings the image to a standard level (see module docstring)."""
    if mode == "none":
        return 1.0
    if mode == "mean":
        level, target = float(np.mean(hdr)), MEAN_TARGET
    else:
        lum = hdr @ np.float32(tonemap.REC709_LUMA)
        level, target = float(np.median(lum)), MEDIAN_TARGET
        if level <= 0:  # mostly black frame: fall back to the mean of the lit pixels
            lit = lum[lum > 0]
            level = float(lit.mean()) if lit.size else 0.0
    return target / level if level > 0 else 1.0


def _select_crf(args, rng):
    """(bank, row, spec string, file) for --crf / --crf-file; random row when not given."""
    spec = args.crf
    if args.crf_file is not None:
        bank, source = crf_lib.load_dorf(args.crf_file), "dorf"
        if spec is not None and not spec.startswith("dorf:"):
            raise SimulateError(f"--crf {spec}: with --crf-file use --crf dorf:INDEX")
    elif spec is not None and spec.startswith("dorf:"):
        raise SimulateError(f"--crf {spec}: needs --crf-file PATH (dorfCurves.txt or .npz)")
    else:
        bank, source = crf_lib.parametric_bank(), "family"
    if spec is None:
        row = int(rng.integers(len(bank)))
    else:
        value = spec.split(":", 1)[1] if ":" in spec else ""
        if not spec.startswith(("family:", "dorf:")) or not value:
            raise SimulateError(f"--crf {spec!r}: expected family:NAME, family:INDEX or dorf:INDEX")
        if value.isdigit():
            row = int(value)
            if row >= len(bank):
                raise SimulateError(f"--crf {spec}: index out of range (the {source} bank "
                                    f"has {len(bank)} curves, 0..{len(bank) - 1})")
        elif source == "family":
            if value not in bank.names:
                raise SimulateError(f"--crf {spec}: no such family curve (names look like "
                                    f"{bank.names[0]!r}; see crf.parametric_bank().names)")
            row = bank.names.index(value)
        else:
            raise SimulateError(f"--crf {spec}: DoRF curves are chosen by index")
    return bank, row, f"{source}:{bank.names[row]}", args.crf_file


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m hdrjax.simulate",
        description="Write the LDR image a camera would have taken of an HDR scene.")
    p.add_argument("input", help="HDR image (.hdr or .exr), linear radiance")
    p.add_argument("--output", "-o", required=True,
                   help="LDR file: .png/.tif (our JPEG, lossless) or .jpg (real JPEG at --quality)")
    p.add_argument("--crf", help="family:NAME, family:INDEX or dorf:INDEX (default: random)")
    p.add_argument("--crf-file", help="DoRF curves (dorfCurves.txt or .npz with B, I)")
    p.add_argument("--exposure", type=float, default=0.0, metavar="STOPS",
                   help="exposure in stops relative to --auto-exposure (default 0)")
    p.add_argument("--auto-exposure", choices=AUTO_MODES, default="median",
                   help="median: median luminance -> 0.18 (default); mean: mean -> 0.5 "
                        "(reference normalisation); none: file values as they are")
    p.add_argument("--quality", type=int, metavar="Q",
                   help="JPEG quality 1..100 (default: random from the reference's 90..100 list)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--sidecar", action="store_true", help="also write OUTPUT.json with the parameters")
    return p


def _read_hdr(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in hio.HDR_EXTENSIONS:
        raise SimulateError(f"{path}: expected an HDR image ({', '.join(hio.HDR_EXTENSIONS)}), "
                            f"got {ext or 'no extension'}")
    return hio.read_image(path)


def simulate(args) -> dict:
    """Run the simulation for parsed arguments; returns the sidecar dictionary."""
    out_ext = os.path.splitext(args.output)[1].lower()
    if out_ext not in LOSSLESS_EXTENSIONS + JPEG_EXTENSIONS:
        raise SimulateError(f"{args.output}: output must be one of "
                            f"{', '.join(LOSSLESS_EXTENSIONS + JPEG_EXTENSIONS)}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise SimulateError(f"--quality {args.quality}: must be in 1..100")
    if not np.isfinite(args.exposure) or abs(args.exposure) > 64:
        raise SimulateError(f"--exposure {args.exposure}: expected stops in [-64, 64]")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SimulateError(f"{args.output}: {out_dir} is a file, not a folder")

    hdr = _read_hdr(args.input)
    rng = np.random.default_rng(args.seed)
    bank, row, crf_spec, crf_file = _select_crf(args, rng)
    config = pipeline.CameraConfig()
    quality = args.quality if args.quality is not None else int(rng.choice(config.jpeg_qualities))
    real_jpeg = out_ext in JPEG_EXTENSIONS
    if real_jpeg:  # the real encoder compresses the 8-bit image instead of our jnp JPEG
        config = pipeline.CameraConfig(jpeg=False)
    scale = auto_scale(hdr, args.auto_exposure)
    exposure = float(np.float32(scale * 2.0 ** args.exposure))

    sample = _synthesize(jax.random.key(args.seed), hdr[None], bank, config,
                   crf_index=np.array([row], np.int32), exposure=np.array([exposure], np.float32),
                   quality=np.array([quality], np.int32))
    image = np.asarray(sample.quantized[0] if real_jpeg else sample.jpeg[0])
    try:
        os.makedirs(out_dir, exist_ok=True)  # as predict and evaluate: the folder is created
        hio.write_image(args.output, image, quality=quality)
    except (OSError, ValueError) as e:
        raise SimulateError(f"{args.output}: cannot write ({e})") from None

    record = {
        "input": os.path.abspath(args.input),
        "output": os.path.abspath(args.output),
        "seed": args.seed,
        "crf": {"spec": crf_spec, "index": row, "name": bank.names[row],
                "file": os.path.abspath(crf_file) if crf_file else None},
        "exposure": {"stops": args.exposure, "auto": args.auto_exposure,
                     "auto_scale": scale, "multiplier": exposure},
        "noise": {"sigma_signal": np.asarray(sample.noise_signal[0]).tolist(),
                  "sigma_const": np.asarray(sample.noise_const[0]).tolist(),
                  "shared_seed": config.shared_noise_seed},
        "jpeg": {"quality": quality,
                 "encoder": "libjpeg (OpenCV), 4:2:0" if real_jpeg else
                 "hdrjax.camera.jpeg (4:2:0, fancy upsampling), saved losslessly"},
        "clipped_fraction": float(np.mean(np.asarray(sample.clipped[0]) >= 1.0)),
        "extreme_exposure": bool(np.asarray(sample.mask[0]) == 0),
    }
    if args.sidecar:
        try:
            with hio.atomic_write(args.output + ".json", "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=2)
                fh.write("\n")
        except OSError as e:
            raise SimulateError(f"{args.output}.json: cannot write ({e})") from None
    return record


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 error, 2 usage)."""
    args = _parser().parse_args(argv)
    cli.configure_logging()
    try:
        simulate(args)
    except HdrjaxError as e:
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
