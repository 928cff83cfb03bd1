"""From the network's relative radiance to the light an HDR screen emits.

The reconstruction is *relative*: 1.0 is the photograph's 8-bit white (the camera's clipping
point, where the inverse camera curve ends), recovered highlights lie above it.  The mapping
every HDR file of hdrjax uses:

1. **White.**  Relative 1.0 is shown at 203 cd/m², the HDR reference white of ITU-R BT.2408
   (where BT.2408 puts 100 % of an SDR signal in an HDR programme).  Everything the photograph
   showed therefore looks on an HDR screen as the photograph does on an SDR one, and only the
   recovered highlights go brighter.  Display light L = 203 cd/m² × R.
2. **Headroom.**  The image's own recovered range: H = the largest max(R, G, B) of the
   reconstruction (at least 1: a photo without highlights needs none).  Ultra HDR files carry
   it as their target peak (203 × H cd/m²), so a screen with less headroom scales the gain
   map down instead of clipping.
3. **Peak.**  Capped at 1000 cd/m² (H ≤ 1000 / 203 = 4.93, 2.3 stops over white): BT.2408's
   reference HDR display and the nominal peak of HLG, which most HDR screens reach or tone
   map from.  A pixel brighter than the cap is scaled down as a whole (by its largest
   channel), so its hue is kept rather than clipped channel by channel.

`to_display` applies 1 and 3 (relative display light, 1.0 = 203 cd/m²); the files store that
image (`hdrjax.display.ultrahdr`, `hdrjax.display.avif`), and their round-trip tests compare in
it.  Negative radiance (none comes out of the network's final ReLU) is clamped to 0.
"""
from __future__ import annotations

import numpy as np

SDR_WHITE_NITS = 203.0  # ITU-R BT.2408 HDR reference white = relative radiance 1.0
PEAK_NITS = 1000.0  # the cap: BT.2408 reference display, HLG nominal peak
MAX_HEADROOM = PEAK_NITS / SDR_WHITE_NITS  # 4.93: the largest relative value shown

# Dynamic range: luminance percentiles that ignore a few outlier pixels at either end, and a
# floor under the dark end (2^-16 of white: below 8-bit quantisation of any camera curve).
DR_PERCENTILES = (0.1, 99.9)
DR_FLOOR = 2.0 ** -16


def _max_channel(image: np.ndarray) -> np.ndarray:
    return np.max(image, axis=-1)


def headroom(hdr) -> float:
    """The image's headroom over white: its largest max(R, G, B), within [1, MAX_HEADROOM]."""
    hdr = np.asarray(hdr, np.float32)
    top = float(_max_channel(hdr).max()) if hdr.size else 1.0
    return float(np.clip(top, 1.0, MAX_HEADROOM))


def to_display(hdr) -> np.ndarray:
    """Relative radiance f32[H, W, 3] -> relative display light (1.0 = 203 cd/m², ≤ MAX_HEADROOM)."""
    hdr = np.maximum(np.asarray(hdr, np.float32), 0.0)
    peak = _max_channel(hdr)
    # Scale pixels over the cap as a whole: hue kept, brightest channel at the cap.
    scale = np.where(peak > MAX_HEADROOM, MAX_HEADROOM / np.maximum(peak, MAX_HEADROOM), 1.0)
    return (hdr * scale[..., None]).astype(np.float32)


def to_nits(hdr) -> np.ndarray:
    """Relative radiance f32[H, W, 3] -> display light in cd/m² (`to_display` × 203)."""
    return to_display(hdr) * np.float32(SDR_WHITE_NITS)


def dynamic_range_stops(image) -> float:
    """log2 of the ratio between the 99.9th and the 0.1st percentile of Rec. 709 luminance.

    Luminance below `DR_FLOOR` counts as the floor, so a black border does not make the range
    infinite.  Used for the 'dynamic range before/after' of a photo: before = the photo in
    linear light (the model's inverse camera curve, at most 1), after = the reconstruction.
    """
    from hdrjax.tonemap import luminance

    y = np.maximum(luminance(np.asarray(image, np.float32)), DR_FLOOR)
    low, high = np.percentile(y, DR_PERCENTILES)
    return float(np.log2(high / low))
