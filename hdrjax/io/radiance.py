"""Reading Radiance RGBE (.hdr) files: header checks here, pixel decoding by OpenCV.

Values are linear relative radiance, stored values unscaled: a Radiance `EXPOSURE=` line is
ignored, as OpenCV and the reference do. OpenCV only understands the standard resolution line
"-Y H +X W", so the other seven orientations are decoded under that line and reoriented here.
XYZE files are refused.
"""
from __future__ import annotations

import numpy as np

from hdrjax.io.common import ImageReadError, check_size


def read_radiance(path: str) -> np.ndarray:
    """Read a Radiance RGBE file as float32 RGB [H, W, 3], rows top to bottom."""
    import cv2

    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head:
        raise ImageReadError(path, "empty file")
    if not head.startswith(b"#?"):
        raise ImageReadError(path, "not a Radiance RGBE file (missing '#?' signature)")
    end = head.find(b"\n\n")
    if end < 0:
        raise ImageReadError(path, "truncated or corrupt Radiance header (no blank line)")
    for line in head[:end].split(b"\n")[1:]:
        if line.startswith(b"FORMAT="):
            fmt = line[7:].strip()
            if fmt == b"32-bit_rle_xyze":
                raise ImageReadError(path, "Radiance XYZE files are not supported (only RGBE)")
            if fmt != b"32-bit_rle_rgbe":
                raise ImageReadError(path, f"unknown Radiance FORMAT {fmt.decode('latin-1')!r}")
    nl = head.find(b"\n", end + 2)
    if nl < 0:
        raise ImageReadError(path, "truncated Radiance file (no resolution line)")
    res_line = head[end + 2:nl]
    fields = res_line.decode("latin-1").split()
    if (len(fields) != 4 or fields[0] not in ("-Y", "+Y", "-X", "+X")
            or fields[2] not in ("-Y", "+Y", "-X", "+X") or fields[0][1] == fields[2][1]
            or not (fields[1].isdigit() and fields[3].isdigit())):
        raise ImageReadError(path, f"corrupt Radiance resolution line {res_line[:60]!r}")
    n_slow, n_fast = int(fields[1]), int(fields[3])
    if fields[0][1] == "Y":
        height, width = n_slow, n_fast
    else:
        height, width = n_fast, n_slow
    check_size(path, width, height)

    if fields[0] == "-Y" and fields[2] == "+X":  # the standard orientation: OpenCV reads it
        bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    else:
        # OpenCV only parses "-Y H +X W": hand it the same pixels under that line, reorient after.
        with open(path, "rb") as f:
            data = f.read()
        patched = data[:end + 2] + f"-Y {n_slow} +X {n_fast}".encode() + data[nl:]
        bgr = cv2.imdecode(np.frombuffer(patched, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ImageReadError(path, "cannot decode Radiance pixel data (truncated or corrupt)")
    if bgr.dtype != np.float32 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ImageReadError(path, f"Radiance data decoded to {bgr.dtype} {bgr.shape}")
    image = bgr[..., ::-1]
    if fields[0][1] == "X":
        image = image.transpose(1, 0, 2)  # slow axis was x: rows of the file are columns
        x_sign, y_sign = fields[0][0], fields[2][0]
    else:
        y_sign, x_sign = fields[0][0], fields[2][0]
    if y_sign == "+":  # +Y runs bottom to top
        image = image[::-1]
    if x_sign == "-":
        image = image[:, ::-1]
    if image.shape[:2] != (height, width):
        raise ImageReadError(path, f"Radiance data decoded to {image.shape[:2]}, header says "
                                   f"{(height, width)}")
    return image
