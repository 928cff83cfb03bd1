"""Held-out examples: camera JPEG | our HDR | ground truth, and our HDR at −2, 0, +2 stops.

    python experiments/figure.py --checkpoint default \\
        --images ../shared/data/test_hdr/a.exr ../shared/data/test_hdr/b.hdr \\
        --crf dorf:../shared/data/crf/dorf_201.npz --out experiments/results/held-out-examples.png

For each HDR image (`hdrjax.io.read_image`): resized (area) so that its long side is at most
`--max-side` (512), scaled to mean 0.5 as `hdrjax.evaluate` does, then put through the
evaluation's own camera (`hdrjax.evaluation.protocol.synthetic_samples`: the reference's deterministic
noise, clipping, one held-out **test-split** CRF of `--crf` — `--crf-index`, default the first —
at exposure 0 stops, 8 bits, **JPEG quality 90**), so the input is made exactly as in the
evaluation protocol; the ground truth is the noise-free HDR.  The model (`--checkpoint`: a
training workdir, a shipped-model folder or `default`) reconstructs it with
`hdrjax.predict.reconstruct`, through refinement for a joint checkpoint, else hallucination.

One row per image, columns titled on top:
1. the input JPEG as the camera produced it;
2. our HDR and 3. the ground truth, tone-mapped identically: global Reinhard (key 0.18) with the
   log-average luminance of the *ground truth* for both (same curve, same exposure), then sRGB;
4.–6. our HDR at −2, 0, +2 stops: clip(x · 2^s, 0, 1) then the sRGB curve, so highlights the
   network recovered above the JPEG's clipping point show at −2.

The PNG is written atomically (temp file, then rename).  An unreadable image is one `error:`
line and is left out; the exit status is then 1 (no figure at all when none could be read).
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import Sequence

import numpy as np

MAX_SIDE = 512
STOPS = (-2.0, 0.0, 2.0)
logger = logging.getLogger("hdrjax.figure")


def prepare_hdr(hdr: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Long side ≤ `max_side` (area resize, aspect kept), then mean 0.5 (evaluate's normalisation)."""
    from hdrjax.evaluation.protocol import MEAN_EPS, MEAN_TARGET
    from hdrjax.data import transforms

    h, w = hdr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        hdr = transforms.resize(hdr, max(1, round(h * scale)), max(1, round(w * scale)), "area")
    return transforms.mean_normalize(np.asarray(hdr, np.float32), MEAN_TARGET, MEAN_EPS)


def camera_input(name: str, hdr: np.ndarray, bank, *, stops: float = 0.0, jpeg_quality: int = 90, seed: int = 0):
    """(jpeg f32[H, W, 3], ground truth f32[H, W, 3], mask, meta) through the evaluation's camera."""
    from hdrjax.evaluation.protocol import EvalConfig, Example, synthetic_samples

    config = EvalConfig(exposure_stops=(float(stops),), jpeg_quality=jpeg_quality, seed=seed)
    ((ldr, gt, mask, meta),) = synthetic_samples(Example(name, hdr), bank, config)
    return np.asarray(ldr[0], np.float32), np.asarray(gt[0], np.float32), int(mask[0]), meta[0]


def panels(ldr: np.ndarray, ours: np.ndarray, gt: np.ndarray, stops: Sequence[float] = STOPS) -> list[np.ndarray]:
    """The row's images, float RGB in [0, 1]: input, ours and GT tone-mapped alike, ours at each stop."""
    from hdrjax import tonemap

    scale = tonemap.log_average_luminance(np.maximum(gt, 0.0))  # the GT's exposure, for both

    def tone(x):
        return np.asarray(tonemap.to_srgb(tonemap.reinhard(x, log_average=scale)), np.float32)

    out = [np.clip(ldr, 0.0, 1.0), tone(ours), tone(gt)]
    out += [np.asarray(tonemap.to_srgb(np.clip(ours * np.float32(2.0 ** s), 0.0, 1.0)), np.float32) for s in stops]
    return out


def titles(stops: Sequence[float] = STOPS, *, crf: str = "", quality: int = 90) -> list[str]:
    return ([f"input JPEG ({crf}, q{quality})" if crf else "input JPEG", "ours (tone-mapped)",
             "ground truth (same tone map)"]
            + [f"ours {s:+g} stops" if s else "ours 0 stops" for s in stops])


def draw(rows: list[tuple[str, list[np.ndarray]]], column_titles: Sequence[str], out_png) -> pathlib.Path:
    """A grid, one row per image (its name on the left), titles on top; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hdrjax.io import atomic_path

    ncols = len(column_titles)
    col_w = 2.6
    ratios = [imgs[0].shape[0] / imgs[0].shape[1] for _, imgs in rows]
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(col_w * ncols, sum(col_w * r for r in ratios) + 0.5),
                             gridspec_kw={"height_ratios": ratios})
    for i, (name, imgs) in enumerate(rows):
        for j, img in enumerate(imgs):
            ax = axes[i][j]
            ax.imshow(np.clip(img, 0.0, 1.0), interpolation="lanczos" if max(img.shape[:2]) > 256 else "nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(column_titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout(pad=0.4)
    out_png = pathlib.Path(out_png).expanduser()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    plt.close(fig)
    return out_png


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python experiments/figure.py",
                                description="Held-out example figure: input, our HDR, ground truth, our HDR at ±2 stops.")
    p.add_argument("--checkpoint", default="default",
                   help="training workdir, checkpoint or shipped-model folder, or 'default' (default %(default)s)")
    p.add_argument("--images", nargs="+", required=True, help="HDR images (.exr/.hdr), one row each")
    p.add_argument("--crf", default="family", help="CRF bank spec whose test split is used: family | dorf:PATH")
    p.add_argument("--crf-index", type=int, default=0, help="which test-split CRF (default %(default)s)")
    p.add_argument("--exposure", type=float, default=0.0, help="exposure of the camera input in stops (default 0)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the input (default %(default)s)")
    p.add_argument("--max-side", type=int, default=MAX_SIDE, help="long side of the images (default %(default)s)")
    p.add_argument("--stops", default=",".join(f"{s:g}" for s in STOPS),
                   help="exposures of our HDR in the last columns; write --stops=-2,0,2 (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="synthesis noise seed (default %(default)s)")
    p.add_argument("--out", required=True, help="output PNG")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from hdrjax.evaluation.methods import load_checkpoint
    from hdrjax.evaluation.protocol import EvalConfig, EvalError, load_test_bank
    from hdrjax import cli, predict
    from hdrjax.weights import loading
    from hdrjax.io import ImageReadError, read_image

    args = _parser().parse_args(argv)
    cli.configure_logging()
    try:
        stops = tuple(float(s) for s in args.stops.split(",") if s.strip())
    except ValueError:
        sys.stderr.write(f"error: --stops: expected comma-separated numbers, got {args.stops!r}\n")
        return 2
    try:
        EvalConfig(jpeg_quality=args.jpeg_quality)  # validates the quality
        if args.max_side < 32:
            raise EvalError(f"--max-side must be >= 32, got {args.max_side}")
        bank = load_test_bank(args.crf)
        if not 0 <= args.crf_index < len(bank):
            raise EvalError(f"--crf-index {args.crf_index}: the test split of {args.crf} has {len(bank)} curves")
        bank = bank.take([args.crf_index])
        model, variables, train_config, step, _, warning = load_checkpoint(args.checkpoint)
    except EvalError as e:
        return cli.fail(e)
    stages = loading.stages_for_checkpoint(train_config)
    if warning:
        logger.warning(f"{args.checkpoint}: {warning}")
    config = predict.PredictConfig(stages=stages)
    logger.info(f"CRF {bank.names[0]} (test split of {args.crf}), {args.exposure:+g} stops, JPEG q{args.jpeg_quality}; "
                f"output after {stages[-1]}")
    rows, failed = [], 0
    for path in args.images:
        path = pathlib.Path(path)
        try:
            hdr = prepare_hdr(read_image(path), args.max_side)
        except ImageReadError as e:
            cli.fail(e)
            failed += 1
            continue
        ldr, gt, mask, _ = camera_input(f"{path.stem}_full", hdr, bank, stops=args.exposure,
                                        jpeg_quality=args.jpeg_quality, seed=args.seed)
        if not mask:
            logger.warning(f"{path.name}: over 50 % of the JPEG is clipped or black "
                           "(the evaluation would exclude this sample)")
        ours = predict.reconstruct(model, variables, ldr, config).output
        rows.append((path.stem, panels(ldr, np.asarray(ours, np.float32), gt, stops)))
        logger.info(f"{path.name}: {hdr.shape[1]}x{hdr.shape[0]}")
    if not rows:
        sys.stderr.write("error: no image could be read; nothing written\n")
        return 1
    out = draw(rows, titles(stops, crf=bank.names[0], quality=args.jpeg_quality), args.out)
    logger.info(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    sys.exit(main())
