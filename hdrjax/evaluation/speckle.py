"""The speckle figure: fine-grained luminance and colour variation in smooth dark regions.

Amplified input noise, JPEG blocks and quantisation steps show in a reconstruction as speckle
where the scene itself is smooth and dark (a wall in shadow, dark wood). A PSNR barely sees it
(few pixels, small values); this figure measures it directly, relative to the ground truth:

1. Both images go through the metrics' display model (`hdrjax.evaluation.metrics.absolute_pair`, the
   ground truth's peak → 4000 cd/m²) and PU21 (`metrics.pu21_encode`), so "how much it varies"
   is in the perceptually uniform units the PU21 metrics use: one unit is about one 8-bit step
   of a 100 cd/m² sRGB display (PU21(100 cd/m²) ≈ 256).
2. Channels: luminance P(Y) and two colour differences P(R) − P(G), P(B) − P(G).
3. High-pass: each channel minus its `WINDOW`² box mean (an 8×8 JPEG block edge, a noise
   grain and a quantisation step all live at this scale; shading across a wall does not).
4. **Smooth dark region**, from the ground truth only: its exposed luminance is below
   `DARK_MAX` (the shadow and deep-shadow bands of `hdrjax.evaluation.budget`) and the standard
   deviation of its PU21 luminance over the `WINDOW`² neighbourhood is below `SMOOTH_MAX` PU21
   units; pixels closer than `WINDOW` // 2 to the border are left out. A sample counts only if
   the region holds at least `MIN_SHARE` of its pixels.
5. Energy E = mean over the region of hp(lum)² + (hp(u)² + hp(v)²) / 2, for the reconstruction
   and for the ground truth; **speckle = sqrt((E_rec + FLOOR) / (E_gt + FLOOR))**. 1 = as
   smooth as the truth; 2 = twice its fine-grained variation. `FLOOR` (1 PU21 unit²) keeps
   variation below visibility from dominating the ratio when the truth is almost flat.

`speckle_energy` returns the energies per image (jit, batched like the metrics); `speckle_ratio`
turns them into the figure, NaN where a sample has no region. Tests: tests/test_speckle.py.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.evaluation import metrics

WINDOW = 5  # px, odd: the box of the high-pass and of the smoothness test
DARK_MAX = 2.0 ** -4  # exposed luminance (clipping at 1): the budget's shadow + deep_shadow bands
SMOOTH_MAX = 2.0  # PU21 units: local std of the ground truth's PU21 luminance
MIN_SHARE = 0.01  # a sample needs this share of its pixels in the region to count
FLOOR = 1.0  # PU21 units²: variation below one just-visible step does not drive the ratio
SPECKLE = "speckle"  # the metric's name in the evaluation's tables


def _box_mean(x, k):
    """Mean over the k×k window of f32[B, H, W, C], 'valid': f32[B, H-k+1, W-k+1, C]."""
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    x = sum(x[:, i:i + h] for i in range(k)) / k
    return sum(x[:, :, i:i + w] for i in range(k)) / k


def _channels(rgb_abs):
    """PU21 luminance and the two PU21 colour differences: f32[B, H, W, 3]."""
    p = metrics.pu21_encode(rgb_abs)
    lum = metrics.pu21_encode(metrics._pu21_luminance(rgb_abs))
    return jnp.stack([lum, p[..., 0] - p[..., 1], p[..., 2] - p[..., 1]], axis=-1)


def _high_pass(c, k):
    r = k // 2
    return c[:, r:-r, r:-r] - _box_mean(c, k)


def region(gt, gt_abs, k=WINDOW):
    """The smooth dark region of the ground truth, f32[B, H-k+1, W-k+1] (1 inside), see the module doc."""
    r = k // 2
    lum = metrics._pu21_luminance(gt)[..., None]
    dark = lum[:, r:-r, r:-r, 0] < DARK_MAX
    plum = metrics.pu21_encode(metrics._pu21_luminance(gt_abs))[..., None]
    mean = _box_mean(plum, k)
    var = jnp.maximum(_box_mean(plum * plum, k) - mean * mean, 0.0)
    smooth = jnp.sqrt(var[..., 0]) < SMOOTH_MAX
    return (dark & smooth).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("crf_correction", "normalization", "display_peak"))
def speckle_energy(pred, gt, *, crf_correction=False, normalization="reference", display_peak=metrics.DISPLAY_PEAK):
    """Per image: the region's pixel count and the high-pass energies of reconstruction and truth.

    pred, gt: f32[B, H, W, 3] linear, as `metrics.compute_all` takes them. Returns f32[B] each:
    speckle_pixels, speckle_share (of the valid pixels), speckle_lum_pred / _gt and
    speckle_chroma_pred / _gt (mean squared high-pass of the luminance / colour differences).
    """
    pred = jnp.asarray(pred, jnp.float32)
    gt = jnp.asarray(gt, jnp.float32)
    pred_abs, gt_abs = metrics.absolute_pair(pred, gt, crf_correction=crf_correction, normalization=normalization,
                                             display_peak=display_peak)
    m = region(gt, gt_abs)
    n = jnp.sum(m, axis=(1, 2))
    out = {"speckle_pixels": n, "speckle_share": n / (m.shape[1] * m.shape[2])}
    for name, img in (("pred", pred_abs), ("gt", gt_abs)):
        hp2 = jnp.square(_high_pass(_channels(img), WINDOW))
        lum = jnp.sum(hp2[..., 0] * m, axis=(1, 2))
        chroma = jnp.sum(0.5 * (hp2[..., 1] + hp2[..., 2]) * m, axis=(1, 2))
        out[f"speckle_lum_{name}"] = lum / jnp.maximum(n, 1.0)
        out[f"speckle_chroma_{name}"] = chroma / jnp.maximum(n, 1.0)
    return out


def speckle_ratio(energy: dict, part: str = "all") -> np.ndarray:
    """The speckle figure per image from `speckle_energy`'s values: f64[B], NaN without a region.

    `part`: "all" (luminance + colour, the figure), "lum" or "chroma".
    """
    def e(who):
        if part == "all":
            return np.asarray(energy[f"speckle_lum_{who}"], np.float64) + energy[f"speckle_chroma_{who}"]
        return np.asarray(energy[f"speckle_{part}_{who}"], np.float64)

    ratio = np.sqrt((e("pred") + FLOOR) / (e("gt") + FLOOR))
    return np.where(np.asarray(energy["speckle_share"]) >= MIN_SHARE, ratio, np.nan)


TARGET = 1.5  # issue #20: the reconstruction's speckle within 1.5× the ground truth's
SPECKLE_FIELDS = ("method", "samples", "region_share", "speckle_mean", "speckle_median", "above_target",
                  "lum_ratio", "chroma_ratio", "gt_energy", "pred_energy")


def speckle_table(records, methods) -> list[dict]:
    """The rows of speckle.csv from per-image records {"method", speckle_energy's values}.

    Over the samples that have a region: the figure's mean and median, the share of samples
    above `TARGET`, the mean luminance-only and colour-only ratios, the mean energies (PU21²).
    """
    out = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        if not mine:
            continue
        energy = {k: np.array([r[k] for r in mine], np.float64) for k in mine[0] if k.startswith("speckle_")}
        ratio = speckle_ratio(energy)
        has = np.isfinite(ratio)
        row = {"method": method, "samples": int(has.sum())}
        if has.any():
            row.update({
                "region_share": float(np.mean(energy["speckle_share"][has])),
                "speckle_mean": float(np.mean(ratio[has])),
                "speckle_median": float(np.median(ratio[has])),
                "above_target": float(np.mean(ratio[has] > TARGET)),
                "lum_ratio": float(np.mean(speckle_ratio(energy, "lum")[has])),
                "chroma_ratio": float(np.mean(speckle_ratio(energy, "chroma")[has])),
                "gt_energy": float(np.mean((energy["speckle_lum_gt"] + energy["speckle_chroma_gt"])[has])),
                "pred_energy": float(np.mean((energy["speckle_lum_pred"] + energy["speckle_chroma_pred"])[has])),
            })
        out.append(row)
    return out
