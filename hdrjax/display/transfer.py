"""The signal curves of HDR files: BT.2100 PQ and HLG, and the BT.709 -> BT.2020 primaries.

Written from the standards' formulas (they are a few lines of arithmetic; the codecs that
store the result are libraries): SMPTE ST 2084 / ITU-R BT.2100 for PQ, ITU-R BT.2100 Table 5
for HLG (system gamma 1.2 at the nominal 1000 cd/m² peak, black level 0), ITU-R BT.2087 for
the primaries conversion.  All functions are numpy, element-wise, float32 in and out, and
each has its exact inverse here so a decoded file can be compared in display light.
"""
from __future__ import annotations

import numpy as np

# SMPTE ST 2084 constants.
PQ_MAX_NITS = 10000.0
_M1 = 2610.0 / 16384.0
_M2 = 2523.0 / 4096.0 * 128.0
_C1 = 3424.0 / 4096.0
_C2 = 2413.0 / 4096.0 * 32.0
_C3 = 2392.0 / 4096.0 * 32.0

# BT.2100 HLG: OETF constants, the reference display's nominal peak and system gamma.
HLG_PEAK_NITS = 1000.0
HLG_GAMMA = 1.2
_A = 0.17883277
_B = 1.0 - 4.0 * _A
_C = 0.5 - _A * np.log(4.0 * _A)

# BT.2020 luminance weights (the HLG OOTF works on BT.2020 RGB).
BT2020_LUMA = (0.2627, 0.6780, 0.0593)

# ITU-R BT.2087 (linear light): BT.709 RGB -> BT.2020 RGB; rows sum to 1 (white is kept).
BT709_TO_BT2020 = np.array([
    [0.627403896, 0.329283039, 0.043313065],
    [0.069097289, 0.919540395, 0.011362316],
    [0.016391439, 0.088013308, 0.895595253],
], np.float64)
BT2020_TO_BT709 = np.linalg.inv(BT709_TO_BT2020)


def pq_encode(nits):
    """PQ signal in [0, 1] of absolute display light in cd/m² (ST 2084 inverse EOTF)."""
    y = np.clip(np.asarray(nits, np.float64) / PQ_MAX_NITS, 0.0, 1.0) ** _M1
    return (((_C1 + _C2 * y) / (1.0 + _C3 * y)) ** _M2).astype(np.float32)


def pq_decode(signal):
    """Display light in cd/m² of a PQ signal in [0, 1] (ST 2084 EOTF)."""
    e = np.clip(np.asarray(signal, np.float64), 0.0, 1.0) ** (1.0 / _M2)
    y = np.maximum(e - _C1, 0.0) / (_C2 - _C3 * e)
    return (PQ_MAX_NITS * y ** (1.0 / _M1)).astype(np.float32)


def _hlg_oetf(scene):
    e = np.clip(scene, 0.0, 1.0)
    # max() keeps log's argument positive in the branch np.where does not use.
    log_branch = _A * np.log(np.maximum(12.0 * e - _B, 1e-12)) + _C
    return np.where(e <= 1.0 / 12.0, np.sqrt(3.0 * e), log_branch)


def _hlg_inverse_oetf(signal):
    e = np.clip(signal, 0.0, 1.0)
    return np.where(e <= 0.5, e * e / 3.0, (np.exp((e - _C) / _A) + _B) / 12.0)


def hlg_encode(nits_bt2020):
    """HLG signal in [0, 1] of BT.2020 display light in cd/m² f32[..., 3] (BT.2100 inverse EOTF).

    The OOTF is inverted on the luminance (Y_s = (Y_d / 1000)^(1/1.2)), then the OETF applied
    per channel: HDR reference white (203 cd/m²) becomes 75 % signal, as BT.2408 states.
    A colour the HLG reference display cannot produce (a bright saturated one, e.g. BT.709
    blue near 1000 cd/m², whose scene value passes 1) is clipped per channel.
    """
    rgb = np.clip(np.asarray(nits_bt2020, np.float64) / HLG_PEAK_NITS, 0.0, 1.0)
    y_display = rgb @ np.asarray(BT2020_LUMA)
    y_scene = y_display ** (1.0 / HLG_GAMMA)
    # E_s = F_d / (peak · Y_s^(γ-1)); black stays black (Y_s = 0 gives 0, not 0/0).
    scale = np.where(y_scene > 0, np.maximum(y_scene, 1e-12) ** (1.0 - HLG_GAMMA), 0.0)
    return _hlg_oetf(rgb * scale[..., None]).astype(np.float32)


def hlg_decode(signal):
    """BT.2020 display light in cd/m² f32[..., 3] of an HLG signal (BT.2100 EOTF, 1000 cd/m² peak)."""
    scene = _hlg_inverse_oetf(np.asarray(signal, np.float64))
    y_scene = scene @ np.asarray(BT2020_LUMA)
    return (HLG_PEAK_NITS * scene * (y_scene ** (HLG_GAMMA - 1.0))[..., None]).astype(np.float32)


def bt709_to_bt2020(rgb):
    """Linear BT.709 RGB f32[..., 3] -> linear BT.2020 RGB (same white, wider primaries)."""
    return (np.asarray(rgb, np.float32) @ BT709_TO_BT2020.T.astype(np.float32)).astype(np.float32)


def bt2020_to_bt709(rgb):
    """Linear BT.2020 RGB f32[..., 3] -> linear BT.709 RGB (colours outside BT.709 go negative)."""
    return (np.asarray(rgb, np.float32) @ BT2020_TO_BT709.T.astype(np.float32)).astype(np.float32)
