"""Where along the inverse CRF a method's curve is wrong, and how much that costs in PU21.

The inverse-CRF RMSE (`loop.CURVE_METRIC`) weighs the curve's 1024 samples equally. An image
does not: most of its pixels sit at a few LDR levels, and PU21 (the metric) is far more
sensitive to a given linear error in the shadows than in the highlights. So one curve can have
the lower RMSE and still give the worse image. This module measures, per sample and per LDR
level of the curve:

* `pixels`: how many channel values of the method's input (the JPEG) sit at that level (each
  value counted at its nearest curve sample);
* `err`: the curve's error there, predicted − true (linear, relative radiance; clipping at 1);
* `pu_err`: the same error in PU21 units, as the metric sees it on that sample: both curve
  values through the display model of the sample's ground truth (`metrics.display_model`:
  its peak → 4000 cd/m²) and PU21.

`level_table` pools them into `LEVEL_BINS` bins of 8-bit codes (curves.csv of
`python -m hdrjax.evaluate --error-budget`): the share of the pixels, the curve's RMSE as the
inverse-CRF RMSE counts it, its mean signed error, the pixel-weighted RMSE, the PU21 RMSE
weighted by pixels, and the bin's share of the method's pixel-weighted squared PU21 error. The
pixel- and PU21-weighted error is the part of the image error that comes from the curve alone:
the JPEG's own errors (noise, quantisation, blocks) and clipping are not in it. `curve_psnr` per
sample is 10 log10(256² / that weighted MSE): the PU21-PSNR the curve would give on an input
without them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hdrjax.evaluation import metrics

CODES = 256  # 8-bit input
LEVEL_BINS = 16  # bins of 16 codes: 0–15, 16–31, …, 240–255
LEVEL_FIELDS = ("method", "bin", "codes", "samples", "pixel_share", "curve_rmse", "curve_bias", "pixel_rmse",
                "pu21_rmse", "pu21_error_share", "curve_psnr")


def level_histogram(ldr: np.ndarray, n: int) -> np.ndarray:
    """Channel values of each image f32[B, H, W, 3] counted at their nearest of n curve samples: f64[B, n]."""
    x = np.clip(np.asarray(ldr, np.float32), 0.0, 1.0).reshape(len(ldr), -1)
    idx = np.rint(x * (n - 1)).astype(np.int64)
    return np.stack([np.bincount(i, minlength=n) for i in idx]).astype(np.float64)


def curve_errors(curves: np.ndarray, true_curves: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(err, pu_err), f64[B, n]: the curve error, linear and in PU21 units of each sample's display model."""
    curves = np.asarray(curves, np.float32)
    true_curves = np.asarray(true_curves, np.float32)
    peak = np.max(np.maximum(np.asarray(gt, np.float32).reshape(len(gt), -1), 0.0), axis=1)
    scale = (metrics.DISPLAY_PEAK / np.maximum(peak, np.finfo(np.float32).tiny))[:, None]
    # metrics.display_model clamps negatives to 0 before scaling; the curves get the same.
    pu = np.asarray(metrics.pu21_encode(np.maximum(curves, 0.0) * scale), np.float64)
    pu_true = np.asarray(metrics.pu21_encode(np.maximum(true_curves, 0.0) * scale), np.float64)
    return curves.astype(np.float64) - true_curves, pu - pu_true


def sample_records(method: str, ldr, gt, curves, meta: Sequence[dict]) -> list[dict]:
    """One record per sample that has a true curve: pixels, err, pu_err (f64[n]) and curve_psnr."""
    have = [i for i, m in enumerate(meta) if m.get("inverse_crf") is not None]
    if curves is None or not have:
        return []
    curves = np.asarray(curves)[have]
    true_curves = np.stack([np.asarray(meta[i]["inverse_crf"]) for i in have])
    pixels = level_histogram(np.asarray(ldr)[have], curves.shape[1])
    err, pu_err = curve_errors(curves, true_curves, np.asarray(gt)[have])
    mse = np.sum(pixels * pu_err ** 2, axis=1) / np.sum(pixels, axis=1)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(metrics.PU21_PEAK ** 2 / mse)
    return [{"method": method, "stops": meta[i]["stops"], "pixels": pixels[k], "err": err[k], "pu_err": pu_err[k],
             "curve_psnr": float(psnr[k])} for k, i in enumerate(have)]


def _bin_of_samples(n: int) -> np.ndarray:
    """The LEVEL_BINS bin of each of n curve samples (by its 8-bit code)."""
    code = np.rint(np.arange(n) * (CODES - 1) / (n - 1)).astype(np.int64)
    return code * LEVEL_BINS // CODES


def level_table(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """The rows of curves.csv: per method (that has records) and LDR-code bin, plus an "all" row."""
    out = []
    per = CODES // LEVEL_BINS
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        if not mine:
            continue
        pixels = np.stack([r["pixels"] for r in mine])  # [N, n]
        err = np.stack([r["err"] for r in mine])
        pu = np.stack([r["pu_err"] for r in mine])
        which = _bin_of_samples(pixels.shape[1])
        total_pu = np.sum(pixels * pu ** 2)
        bins = [(f"{b}", f"{b * per}-{(b + 1) * per - 1}", which == b) for b in range(LEVEL_BINS)]
        for label, codes, sel in bins + [("all", f"0-{CODES - 1}", np.ones_like(which, bool))]:
            p, e, u = pixels[:, sel], err[:, sel], pu[:, sel]
            n_pix = p.sum()
            out.append({
                "method": method, "bin": label, "codes": codes, "samples": len(mine),
                "pixel_share": float(n_pix / pixels.sum()),
                # As the inverse-CRF RMSE counts it: every curve sample alike, per sample, then averaged.
                "curve_rmse": float(np.mean(np.sqrt(np.mean(e ** 2, axis=1)))),
                "curve_bias": float(np.mean(e)),
                "pixel_rmse": float(np.sqrt(np.sum(p * e ** 2) / n_pix)) if n_pix else None,
                "pu21_rmse": float(np.sqrt(np.sum(p * u ** 2) / n_pix)) if n_pix else None,
                "pu21_error_share": float(np.sum(p * u ** 2) / total_pu) if total_pu > 0 else 0.0,
                "curve_psnr": float(np.mean([r["curve_psnr"] for r in mine])) if label == "all" else None,
            })
    return out
