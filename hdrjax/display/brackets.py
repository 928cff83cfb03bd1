"""Exposure brackets: 8-bit sRGB JPEGs of the reconstruction at chosen stops.

For HDR merging tools and photo editors that take a set of exposures rather than one HDR
file.  Bracket s is `to_srgb_uint8(hdr × 2^s)`: stop 0 is the photograph's own exposure
(relative 1.0 = 8-bit white), -2 shows the recovered highlights two stops darker, +2 lifts the
shadows.  Files are named NAME_b<index>_<stop>ev.jpg with the index in exposure order, so
they sort from darkest to brightest in any file browser.  Each JPEG carries the EXIF exposure
bias (the stop) and a nominal exposure time of 1/100 s × 2^stop, written by Pillow: the times
are not the camera's, only their ratios are real, which is what a merging tool needs.
"""
from __future__ import annotations

import io

import numpy as np

from hdrjax.tonemap import to_srgb_uint8

JPEG_QUALITY = 95
MAX_STOPS = 16.0  # beyond ±16 stops every 8-bit bracket is black or white
NOMINAL_TIME = 1.0 / 100.0  # seconds at stop 0 (EXIF ExposureTime)
_EXIF_IFD = 0x8769
_EXPOSURE_TIME = 0x829A
_EXPOSURE_BIAS = 0x9204


def parse_stops(text: str) -> tuple[float, ...]:
    """'-2,0,2' -> (-2.0, 0.0, 2.0): sorted, duplicates dropped; ValueError naming a bad entry."""
    stops = set()
    for part in text.split(","):
        part = part.strip()
        try:
            stop = float(part)
        except ValueError:
            raise ValueError(f"not a number of stops: {part!r} (e.g. -2,0,2)") from None
        if not np.isfinite(stop) or abs(stop) > MAX_STOPS:
            raise ValueError(f"stops must lie within ±{MAX_STOPS:g}, got {part!r}")
        stops.add(stop)
    return tuple(sorted(stops))


def bracket(hdr, stop: float) -> np.ndarray:
    """Relative radiance f32[H, W, 3] -> uint8 sRGB [H, W, 3] exposed by 2^stop (clipped at white)."""
    return to_srgb_uint8(np.maximum(np.asarray(hdr, np.float32), 0.0) * np.float32(2.0**stop))


def bracket_names(name: str, stops) -> list[str]:
    """File names for `stops` (sorted ascending): NAME_b1_-2ev.jpg, NAME_b2_+0ev.jpg, ..."""
    digits = len(str(len(stops)))
    return [f"{name}_b{i + 1:0{digits}d}_{stop:+g}ev.jpg" for i, stop in enumerate(stops)]


def encode_bracket(hdr, stop: float) -> bytes:
    """One bracket as JPEG bytes with its EXIF exposure bias and nominal exposure time."""
    from fractions import Fraction

    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    image = Image.fromarray(bracket(hdr, stop))
    exif = Image.Exif()
    details = exif.get_ifd(_EXIF_IFD)
    # EXIF rationals need integer terms: 1/1000 stop and 1 µs are finer than any use of them.
    bias = Fraction(stop).limit_denominator(1000)
    seconds = Fraction(NOMINAL_TIME * 2.0**stop).limit_denominator(1_000_000)
    details[_EXPOSURE_BIAS] = IFDRational(bias.numerator, bias.denominator)
    details[_EXPOSURE_TIME] = IFDRational(seconds.numerator, seconds.denominator)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, exif=exif)
    return out.getvalue()
