"""10-bit AVIF in BT.2100 PQ or HLG through libavif.

Encoded by imagecodecs' binding of libavif (AV1 by libaom); the file's colour description
(an `nclx` box: BT.2020 primaries, PQ = 16 or HLG = 18 transfer, BT.2020 matrix, full range)
is written by libavif from the codes passed here.  The pixels: `mapping.to_nits(hdr)`
(203 cd/m² white, 1000 cd/m² cap), converted from BT.709 to BT.2020 primaries (BT.2087),
then the PQ or HLG curve (`hdrjax.display.transfer`), 10-bit full range, 4:4:4.
"""
from __future__ import annotations

import numpy as np

from hdrjax.display import transfer
from hdrjax.display.mapping import SDR_WHITE_NITS, to_nits

QUALITY = 90  # libavif quality 0-100 (100 = lossless)
SPEED = 6  # libaom speed 0 (slowest) - 10: 6 is libavif's usual trade-off
BITS = 10

# ITU-T H.273 code points.
PRIMARIES_BT2020 = 9
MATRIX_BT2020_NCL = 9
TRANSFERS = {"pq": 16, "hlg": 18}
_CURVES = {"pq": (transfer.pq_encode, transfer.pq_decode), "hlg": (transfer.hlg_encode, transfer.hlg_decode)}


def encode(hdr, curve: str = "pq") -> bytes:
    """Relative radiance f32[H, W, 3] -> 10-bit AVIF bytes with the `curve` ("pq" | "hlg")."""
    import imagecodecs

    if curve not in TRANSFERS:
        raise ValueError(f"AVIF curve must be one of {tuple(TRANSFERS)}, got {curve!r}")
    signal = _CURVES[curve][0](transfer.bt709_to_bt2020(to_nits(hdr)))
    codes = np.round(signal * (2**BITS - 1)).astype(np.uint16)
    return imagecodecs.avif_encode(
        codes, level=QUALITY, speed=SPEED, bitspersample=BITS, pixelformat=imagecodecs.AVIF.PIXEL_FORMAT.YUV444,
        primaries=PRIMARIES_BT2020, transfer=TRANSFERS[curve], matrix=MATRIX_BT2020_NCL,
    )


def decode(data: bytes) -> np.ndarray:
    """AVIF bytes written by `encode` -> relative display light f32[H, W, 3] in BT.709 (1.0 = 203 cd/m²)."""
    import imagecodecs

    primaries, code, _, _ = read_cicp(data)
    curve = {v: k for k, v in TRANSFERS.items()}.get(code)
    if primaries != PRIMARIES_BT2020 or curve is None:
        raise ValueError(f"not a BT.2100 PQ/HLG AVIF: primaries {primaries}, transfer {code}")
    codes = imagecodecs.avif_decode(data)
    nits = _CURVES[curve][1](codes.astype(np.float32) / (2**BITS - 1))
    return transfer.bt2020_to_bt709(nits) / np.float32(SDR_WHITE_NITS)


def read_cicp(data: bytes) -> tuple[int, int, int, bool]:
    """(primaries, transfer, matrix, full_range) of the AVIF's `colr`/`nclx` box (ISO/IEC 23008-12)."""
    at = data.find(b"colrnclx")
    if at < 0:
        raise ValueError("no nclx colour box in the AVIF")
    field = data[at + 8: at + 15]
    return (int.from_bytes(field[0:2], "big"), int.from_bytes(field[2:4], "big"),
            int.from_bytes(field[4:6], "big"), bool(field[6] & 0x80))
