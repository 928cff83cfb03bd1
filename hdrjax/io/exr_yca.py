"""Luminance/chroma OpenEXR (channels Y, RY, BY) to RGB, exactly as OpenEXR's RgbaInputFile.

OpenEXR's own conversion (ImfRgbaYca) is only reachable through the C++ RgbaInputFile, which
the Python bindings do not expose, so it is reproduced here: chroma subsampled 2x2 is
upsampled with the library's 27-tap windowed-sinc filters (edge samples repeated),
R = (RY + 1) Y, B = (BY + 1) Y, G = (Y - wr R - wb B) / wg with luminance weights from the
file's `chromaticities` (Rec. 709 when absent), then the library's `fixSaturation` pass.
Half sources are rounded to half between steps as the library does; float sources keep
float precision.
"""
from __future__ import annotations

import numpy as np

from hdrjax.io.common import ImageReadError

# Reconstruction taps of ImfRgbaYca's reconstructChroma{Horiz,Vert}: the weight of the
# samples at odd distances 1, 3, ..., 13 from a missing (odd) position.
_CHROMA_TAPS = np.array([0.627123, -0.186077, 0.087929, -0.043159, 0.019597, -0.007540,
                         0.002128], dtype=np.float32)
_REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


def luminance_weights(path, chromaticities) -> np.ndarray:
    """RGB -> Y weights from primaries and white point (ImfRgbaYca computeYw)."""
    c = _REC709_CHROMATICITIES if chromaticities is None else chromaticities
    rx, ry, gx, gy, bx, by, wx, wy = (float(v) for v in c)
    try:
        if min(ry, gy, by, wy) <= 0:
            raise np.linalg.LinAlgError
        primaries = np.array([[rx / ry, gx / gy, bx / by], [1.0, 1.0, 1.0],
                              [(1 - rx - ry) / ry, (1 - gx - gy) / gy, (1 - bx - by) / by]])
        white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
        scale = np.linalg.solve(primaries, white)
    except np.linalg.LinAlgError:
        raise ImageReadError(path, f"invalid OpenEXR chromaticities {tuple(c)}") from None
    if not np.all(np.isfinite(scale)) or scale.sum() == 0:
        raise ImageReadError(path, f"invalid OpenEXR chromaticities {tuple(c)}")
    return (scale / scale.sum()).astype(np.float32)


def _upsample_chroma(samples: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Chroma sampled at even positions -> all n positions along `axis` (edge samples repeat)."""
    m = samples.shape[axis]
    odd = n // 2  # odd positions 2k+1, k = 0 .. odd-1
    k = np.arange(odd)
    acc = 0
    for t, w in enumerate(_CHROMA_TAPS):
        left = np.take(samples, np.clip(k - t, 0, m - 1), axis=axis)
        right = np.take(samples, np.clip(k + t + 1, 0, m - 1), axis=axis)
        acc = acc + w * (left + right)
    shape = list(samples.shape)
    shape[axis] = n
    out = np.empty(shape, dtype=np.float32)
    even_idx = [slice(None)] * len(shape)
    odd_idx = [slice(None)] * len(shape)
    even_idx[axis] = slice(0, n, 2)
    odd_idx[axis] = slice(1, n, 2)
    out[tuple(even_idx)] = np.take(samples, np.arange((n + 1) // 2), axis=axis)
    out[tuple(odd_idx)] = acc
    return out


def _round_half(x: np.ndarray, enabled: bool) -> np.ndarray:
    # The library keeps every intermediate in an Rgba of halves.
    return x.astype(np.float16).astype(np.float32) if enabled else x


def _chroma_rows(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Vertical chroma reconstruction evaluated at (possibly out-of-range) full-res rows."""
    hs = q.shape[0]
    even = rows % 2 == 0
    out = np.empty((rows.size,) + q.shape[1:], dtype=np.float32)
    out[even] = q[np.clip(rows[even] // 2, 0, hs - 1)]
    k = (rows[~even] - 1) // 2
    acc = 0
    for t, w in enumerate(_CHROMA_TAPS):
        acc = acc + w * (q[np.clip(k - t, 0, hs - 1)] + q[np.clip(k + t + 1, 0, hs - 1)])
    out[~even] = acc
    return out


def yca_to_rgb(y, ry, by, yw, *, subsampled: bool, half: bool) -> np.ndarray:
    """Luminance/chroma -> RGB as OpenEXR's RgbaInputFile (reconstruct, YCAtoRGBA, fixSaturation)."""
    h, w = y.shape
    if subsampled:
        ry = _round_half(_upsample_chroma(ry, w, axis=1), half)
        by = _round_half(_upsample_chroma(by, w, axis=1), half)
        # One extra row above and below: fixSaturation looks at both neighbours. The library
        # clamps rows outside the window to the first row and (a quirk kept here) to row h-2.
        rows = np.arange(-1, h + 1)
        ry = _round_half(_chroma_rows(ry, rows), half)
        by = _round_half(_chroma_rows(by, rows), half)
    else:
        rows = np.clip(np.arange(-1, h + 1), 0, h - 1)
        ry, by = ry[rows], by[rows]
    last = max(h - 2, 0)
    y_rows = np.concatenate([y[:1], y, y[last:last + 1]], axis=0)
    # Planar arithmetic (one 2-D array per channel): reductions over a trailing axis of 3 are slow.
    grey = (ry == 0) & (by == 0)
    r = (ry + 1) * y_rows
    b = (by + 1) * y_rows
    g = (y_rows - r * yw[0] - b * yw[2]) / yw[1]
    planes = [_round_half(np.where(grey, y_rows, c), half) for c in (r, g, b)]
    return np.stack(_fix_saturation(planes, yw, half), axis=-1)


def _saturation(r, g, b):
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    positive = mx > 0
    return np.where(positive, 1 - mn / np.where(positive, mx, 1), 0).astype(np.float32)


def _fix_saturation(planes, yw, half: bool):
    """ImfRgbaYca fixSaturation: desaturate pixels far more saturated than their neighbours.

    `planes` are R, G, B of shape [h + 2, w] (one extra row above and below); returns [h, w]s.
    """
    sat = _saturation(*planes)
    left = np.concatenate([sat[:, :1], sat[:, :-1]], axis=1)
    right = np.concatenate([sat[:, 1:], sat[:, -1:]], axis=1)
    s_mean = np.minimum(np.float32(1), np.float32(0.25) * (left[:-2] + right[:-2] + left[2:] + right[2:]))
    s = sat[1:-1]
    s_max = np.minimum(np.float32(1), 1 - (1 - s_mean) * np.float32(0.25))
    fix = (s > s_mean) & (s > s_max)
    out = [p[1:-1] for p in planes]
    if not fix.any():
        return out
    src = [p[fix] for p in out]
    f = s_max[fix] / s[fix]
    mx = np.maximum(np.maximum(src[0], src[1]), src[2])
    dst = [np.maximum(mx - (mx - c) * f, 0) for c in src]
    y_in = src[0] * yw[0] + src[1] * yw[1] + src[2] * yw[2]
    y_out = dst[0] * yw[0] + dst[1] * yw[1] + dst[2] * yw[2]
    scale = np.where(y_out > 0, y_in / np.where(y_out > 0, y_out, 1), 1)
    out = [p.copy() for p in out]
    for plane, c in zip(out, dst):
        plane[fix] = _round_half((c * scale).astype(np.float32), half)
    return out
