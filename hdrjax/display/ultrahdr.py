"""Ultra HDR JPEG (an SDR JPEG + a gain map, ISO 21496-1 metadata) through libultrahdr.

Encoded by imagecodecs' binding of Google's libultrahdr; nothing of the container is written
here.  The HDR intent given to the library is `mapping.to_display(hdr)`: linear BT.709, half
float, 1.0 = SDR white (203 cd/m²), at most 4.93; the file's target peak is the image's own
headroom (`mapping.headroom`, 203 × H cd/m², so a screen with less headroom applies part of
the gain map).  Decoding the file at full boost gives that image back (`decode`).

The SDR base image.  imagecodecs (2026.3) exposes libultrahdr's HDR-only encoding (API-0:
`uhdr_enc_set_raw_image(..., UHDR_HDR_IMG)` and nothing else): it cannot be given an SDR
rendition, raw or compressed, so libultrahdr makes the base itself, with its own global tone
map followed by JPEG.  Measured on gray and coloured ramps, that tone map is close to
x / (1 + max(R, G, B)) per pixel (white 1.0 becomes sRGB 188 of 255, 3.0 becomes 225), i.e.
the base is darker than the photograph and keeps highlight detail.  So that the SDR image a
user sees is one image, not two, hdrjax makes its preview *from* the file: `decode_sdr_base`
returns the base JPEG's pixels, and `predict --preview` with `--format uhdr` writes exactly
those (what a viewer without gain-map support shows).
"""
from __future__ import annotations

import numpy as np

from hdrjax.display.mapping import SDR_WHITE_NITS, headroom, to_display
from hdrjax.errors import HdrjaxError

QUALITY = 95  # JPEG quality of the base image and of the gain map
GAIN_MAP_SCALE = 1  # gain map at full resolution: a quarter-size map blurs small highlights
MIN_SIDE = 8  # libultrahdr refuses smaller images
MAX_SIDE = 65535  # the JPEG limit
# libultrahdr needs a target peak above SDR white (its capacity max must exceed its min).
_MIN_TARGET_NITS = SDR_WHITE_NITS * 1.01


class EncodeError(HdrjaxError, ValueError):
    """An image that an HDR file format cannot hold (too small or too large)."""


def encode(hdr) -> bytes:
    """Relative radiance f32[H, W, 3] -> Ultra HDR JPEG bytes (module doc: mapping and SDR base)."""
    import imagecodecs

    display = to_display(hdr)
    h, w = display.shape[:2]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise EncodeError(f"Ultra HDR holds images of {MIN_SIDE} to {MAX_SIDE} pixels per side, got {w}×{h}")
    rgba = np.ones((h, w, 4), np.float16)
    rgba[..., :3] = display
    ultra = imagecodecs.ULTRAHDR
    return imagecodecs.ultrahdr_encode(
        rgba, level=QUALITY, scale=GAIN_MAP_SCALE, gamut=ultra.CG.BT_709, transfer=ultra.CT.LINEAR,
        nits=max(SDR_WHITE_NITS * headroom(hdr), _MIN_TARGET_NITS),
    )


def decode(data: bytes) -> np.ndarray:
    """Ultra HDR bytes -> relative display light f32[H, W, 3] (gain map fully applied)."""
    import imagecodecs

    return imagecodecs.ultrahdr_decode(data).astype(np.float32)[..., :3]


def decode_sdr_base(data: bytes) -> np.ndarray:
    """The SDR base image of Ultra HDR bytes as uint8 sRGB [H, W, 3] (what legacy viewers show)."""
    import imagecodecs

    return np.ascontiguousarray(imagecodecs.ultrahdr_decode(data, dtype=np.uint8)[..., :3])


def is_ultrahdr(data: bytes) -> bool:
    """Whether libultrahdr recognises the bytes as a JPEG with a gain map."""
    import imagecodecs

    return bool(imagecodecs.ultrahdr_check(data))
