"""The output formats of a reconstruction, by name: what `predict --format` and the web page write.

    exr       OUT/NAME.exr        float (or half) linear relative radiance, unmapped
    hdr       OUT/NAME.hdr        Radiance RGBE, linear relative radiance, unmapped
    uhdr      OUT/NAME.uhdr.jpg   Ultra HDR JPEG (hdrjax.display.ultrahdr)
    avif      OUT/NAME.avif       10-bit AVIF, BT.2100 PQ (hdrjax.display.avif)
    avif-hlg  OUT/NAME.hlg.avif   10-bit AVIF, BT.2100 HLG

EXR and RGBE keep the network's numbers as they are; the display formats hold
`hdrjax.display.mapping.to_display` of them (203 cd/m² white, 1000 cd/m² cap).  Every file is
written atomically (`hdrjax.io`).
"""
from __future__ import annotations

import pathlib

from hdrjax.display import avif, ultrahdr

SUFFIXES = {"exr": ".exr", "hdr": ".hdr", "uhdr": ".uhdr.jpg", "avif": ".avif", "avif-hlg": ".hlg.avif"}
RADIANCE_FORMATS = ("exr", "hdr")  # written by hdrjax.io.write_image, unmapped


def parse_formats(text: str) -> tuple[str, ...]:
    """'uhdr,avif,exr' -> ('uhdr', 'avif', 'exr') in the order given; ValueError naming an unknown one."""
    formats: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in SUFFIXES:
            raise ValueError(f"unknown format {part.strip()!r} (known: {', '.join(SUFFIXES)})")
        if name not in formats:
            formats.append(name)
    return tuple(formats)


def output_path(folder, name: str, fmt: str) -> pathlib.Path:
    """OUT/NAME<suffix of fmt>."""
    return pathlib.Path(folder) / f"{name}{SUFFIXES[fmt]}"


def encode(fmt: str, hdr) -> bytes:
    """The bytes of a display format (uhdr, avif, avif-hlg) of relative radiance f32[H, W, 3]."""
    if fmt == "uhdr":
        return ultrahdr.encode(hdr)
    if fmt == "avif":
        return avif.encode(hdr, "pq")
    if fmt == "avif-hlg":
        return avif.encode(hdr, "hlg")
    raise ValueError(f"{fmt!r} is not a display format (those are uhdr, avif, avif-hlg)")


def write(path, fmt: str, hdr, *, half: bool = False) -> bytes | None:
    """Write `hdr` to `path` in `fmt`, atomically; returns the encoded bytes of a display format."""
    from hdrjax.io import atomic_write, write_image

    if fmt in RADIANCE_FORMATS:
        write_image(path, hdr, half=half and fmt == "exr")
        return None
    data = encode(fmt, hdr)
    with atomic_write(path) as f:
        f.write(data)
    return data
