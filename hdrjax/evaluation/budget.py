"""The error budget: where in the ground truth's intensity range a method's PU21 error lies.

PU21-PSNR (`hdrjax.evaluation.metrics.pu21_psnr`) is 10 log10(256² / MSE), the MSE taken over every
pixel and colour channel of the PU21-encoded images. That mean splits exactly into bands: each
channel value of the ground truth falls in one band, and the image's squared error is the sum
of the bands' squared errors. `band_errors` returns, per image and band, the sum of squared
PU21 errors and the number of channel values; `band_table` turns many images into the table
of `bands.csv` (`python -m hdrjax.evaluate --error-budget`).

The bands are set by the ground truth's value **relative to the camera's clipping point**. In
synthetic evaluation the ground truth is H · t, the exposed scene that the camera clips at 1
(hdrjax.camera: exposure → noise → clip → CRF), so the band of a value says what the camera did
to it. Channels are banded one by one because the camera clips them one by one. The edges
(`BANDS`), with the 8-bit code the inverse sRGB curve gives each edge as a guide:

* deep_shadow  [0, 2^-8):    below code ~13: a few codes, mostly quantisation and noise
* shadow       [2^-8, 2^-4): codes ~13–71
* mid          [2^-4, 0.5):  codes ~71–188
* near_clipped [0.5, 1):     codes ~188–255: the compressed shoulder of most camera curves
* clipped      [1, ∞):       lost by the camera: only the Hallucination-Net can restore it

For real pairs (HDR-Real layout) the exposure of the ground truth relative to the camera is
unknown; its values are on the mean-0.5 scale of the test patch and the edges are then only a
convention.

Per band and group (method × exposure, and all exposures) the table gives: `pixel_share` (the
band's share of the channel values), `mse` (its mean squared PU21 error, pooled), `error_share`
(its share of each image's squared error, averaged over images) and `gain_db`: how much the
mean PU21-PSNR would rise if that band alone were perfect (per image
10 log10(SSE / (SSE − SSE_band)), averaged) — the figure to rank fixes by, since the reported
number is a mean of per-image dB.

`gap_table` (gaps.csv) compares two methods on the same samples: for method A, another method
B and a band, `gain_db` is how much A's mean PU21-PSNR would rise if A's squared error in that
band were B's (per image, 10 log10(SSE_A / (SSE_A − SSE_A,band + SSE_B,band)), averaged;
negative where B is worse there). The band "all" is the whole gap, mean(PSNR_B − PSNR_A). The
bands' gains need not add up to the gap exactly (dB are not additive), but they say where it is.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.evaluation import metrics

# (name, lower edge, upper edge) of the ground truth's exposed value; clipping is at 1.
BANDS = (
    ("deep_shadow", 0.0, 2.0 ** -8),
    ("shadow", 2.0 ** -8, 2.0 ** -4),
    ("mid", 2.0 ** -4, 0.5),
    ("near_clipped", 0.5, 1.0),
    ("clipped", 1.0, math.inf),
)
BAND_NAMES = tuple(b[0] for b in BANDS)
# The inner edges; np.digitize / jnp.searchsorted put a value equal to an edge in the upper band.
BAND_EDGES = tuple(b[2] for b in BANDS[:-1])
BUDGET_FIELDS = ("method", "exposure", "band", "samples", "pixel_share", "mse", "error_share", "gain_db",
                 "pu21_psnr")
GAP_FIELDS = ("method", "versus", "band", "samples", "gain_db")


def band_index(gt):
    """The band of every channel value of the ground truth: i32 of gt's shape, 0 = deep_shadow."""
    return jnp.searchsorted(jnp.asarray(BAND_EDGES, jnp.float32), jnp.asarray(gt, jnp.float32), side="right")


@functools.partial(jax.jit, static_argnames=("crf_correction", "normalization", "display_peak"))
def band_errors(pred, gt, *, crf_correction=False, normalization="reference", display_peak=metrics.DISPLAY_PEAK):
    """Per image and band: {"band_sse": f32[B, 5], "band_count": f32[B, 5]} of the PU21 error.

    pred, gt: f32[B, H, W, 3] linear, as `metrics.compute_all` takes them (same normalization and
    CRF correction), so sum(band_sse) / sum(band_count) is exactly the MSE behind pu21_psnr.
    """
    pred = jnp.asarray(pred, jnp.float32)
    gt = jnp.asarray(gt, jnp.float32)
    pred_abs, gt_abs = metrics.absolute_pair(pred, gt, crf_correction=crf_correction, normalization=normalization,
                                             display_peak=display_peak)
    # Equal luminance is no error: XLA may evaluate the two encodings' pow differently (~1e-5 PU).
    se = jnp.where(pred_abs == gt_abs, 0.0, jnp.square(metrics.pu21_encode(pred_abs) - metrics.pu21_encode(gt_abs)))
    onehot = (band_index(gt)[..., None] == jnp.arange(len(BANDS))).astype(jnp.float32)
    axes = (1, 2, 3)
    return {"band_sse": jnp.sum(se[..., None] * onehot, axis=axes), "band_count": jnp.sum(onehot, axis=axes)}


def _psnr(sse, count):
    """Per-image PU21-PSNR from squared-error sums: +inf where the error is 0."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(metrics.PU21_PEAK ** 2 * count / sse)


def gap_table(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """The rows of gaps.csv: every ordered pair of methods × (each band, "all"), on their common samples.

    `records` as `band_table`'s, each with a "key" naming its sample (image, CRF, exposure).
    """
    by = {m: {r["key"]: r for r in records if r["method"] == m} for m in methods}
    out = []
    for a in methods:
        for b in methods:
            keys = [k for k in by[a] if k in by[b]]
            if a == b or not keys:
                continue
            sse_a = np.array([by[a][k]["band_sse"] for k in keys], np.float64)
            sse_b = np.array([by[b][k]["band_sse"] for k in keys], np.float64)
            count = np.array([by[a][k]["band_count"] for k in keys], np.float64).sum(1)
            psnr_a = _psnr(sse_a.sum(1), count)
            for i, band in enumerate(BAND_NAMES):
                swapped = _psnr(sse_a.sum(1) - sse_a[:, i] + sse_b[:, i], count)
                with np.errstate(invalid="ignore"):
                    gain = np.where(sse_a[:, i] == sse_b[:, i], 0.0, swapped - psnr_a)
                out.append({"method": a, "versus": b, "band": band, "samples": len(keys), "gain_db": float(np.mean(gain))})
            with np.errstate(invalid="ignore"):
                gap = np.where(sse_a.sum(1) == sse_b.sum(1), 0.0, _psnr(sse_b.sum(1), count) - psnr_a)
            out.append({"method": a, "versus": b, "band": "all", "samples": len(keys), "gain_db": float(np.mean(gap))})
    return out


def band_table(records: Sequence[dict], methods: Sequence[str], stops: Sequence[float] = ()) -> list[dict]:
    """The rows of bands.csv from per-image records {"method", "stops", "band_sse", "band_count"}.

    One row per method × exposure group ("+1" …, then "all") × band, fields `BUDGET_FIELDS`.
    `pu21_psnr` is the group's mean PU21-PSNR (the summary's pu21_psnr_mean, recomputed).
    """
    from hdrjax.evaluation.loop import format_stops

    out = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        groups = [(format_stops(s), [r for r in mine if r["stops"] == s]) for s in stops] + [("all", mine)]
        for label, group in groups:
            if not group:
                continue
            sse = np.array([r["band_sse"] for r in group], np.float64)  # [N, bands]
            count = np.array([r["band_count"] for r in group], np.float64)
            total_sse, total_count = sse.sum(1), count.sum(1)
            psnr = _psnr(total_sse, total_count)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(total_sse[:, None] > 0, sse / total_sse[:, None], 0.0)
            for b, name in enumerate(BAND_NAMES):
                n_band = count[:, b].sum()
                without = _psnr(total_sse - sse[:, b], total_count)
                # A band that holds all of an image's error: perfect → +inf dB, reported as inf.
                with np.errstate(invalid="ignore"):
                    gain = np.where(sse[:, b] > 0, without - psnr, 0.0)
                out.append({
                    "method": method, "exposure": label, "band": name, "samples": len(group),
                    "pixel_share": float(n_band / total_count.sum()),
                    "mse": float(sse[:, b].sum() / n_band) if n_band else None,
                    "error_share": float(share[:, b].mean()),
                    "gain_db": float(np.mean(gain)),
                    "pu21_psnr": float(np.mean(psnr)),
                })
    return out


class ErrorBudget:
    """Collects, during `loop.evaluate`, what the budget's three tables need, method by method.

    `add` takes one method's outputs on one group of samples: the band errors (`band_errors`),
    the speckle energies (`hdrjax.evaluation.speckle`) and, for methods with a curve, the
    curve's errors by LDR level (`hdrjax.evaluation.curve_levels`). `tables` makes the rows of
    bands.csv, gaps.csv, speckle.csv and curves.csv.
    """

    def __init__(self):
        self.bands: list[dict] = []
        self.speckle: list[dict] = []
        self.curves: list[dict] = []

    def add(self, method: str, meta: Sequence[dict], ldr, gt, curves, band: dict, energy: dict) -> None:
        """One method on len(meta) samples: `band` = band_errors' values, `energy` = speckle_energy's."""
        from hdrjax.evaluation import curve_levels

        for j, m in enumerate(meta):
            self.bands.append({"method": method, "stops": m["stops"], "key": (m["image"], m["crf"], m["stops"]),
                               "band_sse": np.asarray(band["band_sse"][j]),
                               "band_count": np.asarray(band["band_count"][j])})
            self.speckle.append({"method": method, "stops": m["stops"],
                                 **{k: float(v[j]) for k, v in energy.items()}})
        self.curves += curve_levels.sample_records(method, ldr, gt, curves, meta)

    def tables(self, methods: Sequence[str], stops: Sequence[float] = ()) -> dict[str, list[dict]]:
        """{"bands": rows, "gaps": rows, "speckle": rows, "curves": rows} over everything added."""
        from hdrjax.evaluation import curve_levels, speckle

        return {"bands": band_table(self.bands, methods, stops), "gaps": gap_table(self.bands, methods),
                "speckle": speckle.speckle_table(self.speckle, methods),
                "curves": curve_levels.level_table(self.curves, methods)}


def definition() -> dict:
    """The budget's settings as protocol.json records them: bands, speckle region, curve bins."""
    from hdrjax.evaluation import curve_levels, speckle

    return {
        "bands": {name: [lo, hi if math.isfinite(hi) else None] for name, lo, hi in BANDS},
        "band_of": "each colour channel value of the ground truth (exposed; the camera clips at 1)",
        "speckle": {"window": speckle.WINDOW, "dark_max": speckle.DARK_MAX, "smooth_max_pu21": speckle.SMOOTH_MAX,
                    "min_share": speckle.MIN_SHARE, "floor_pu21_sq": speckle.FLOOR, "target": speckle.TARGET},
        "curve_bins": {"codes_per_bin": curve_levels.CODES // curve_levels.LEVEL_BINS, "bins": curve_levels.LEVEL_BINS},
    }
