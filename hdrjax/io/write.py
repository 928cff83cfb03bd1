"""`write_image`: float RGB to .exr .hdr .png .jpg .jpeg .tif .tiff, chosen by extension, atomically.

OpenEXR files are written with the official bindings (RGB, ZIP compression, float or half);
the other formats with OpenCV. LDR formats clip to [0, 1] and round to 8 or 16 bits; RGBE
cannot hold negative values, so they become 0; half EXR clamps to the largest half (65504)
rather than turn large values into Inf. NaN or Inf input is refused, never written.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from hdrjax.io.atomic import atomic_path
from hdrjax.io.common import FORMAT_OF_SUFFIX, HDR_EXTENSIONS, LDR_EXTENSIONS


def write_image(path, array, *, half: bool = False, bit_depth: int = 8, quality: int = 95) -> None:
    """Write f32[H, W, 3] (or [H, W]) RGB to .exr/.hdr/.png/.jpg/.tif by extension, atomically."""
    path_str = os.fspath(path)
    suffix = pathlib.PurePath(path_str).suffix.lower()
    fmt = FORMAT_OF_SUFFIX.get(suffix)
    if fmt is None:
        raise ValueError(f"{path_str}: cannot write images with extension {suffix or '(none)'!r} "
                         f"(known: {' '.join(HDR_EXTENSIONS + LDR_EXTENSIONS)})")
    image = np.asarray(array)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"{path_str}: expected an [H, W, 3] or [H, W] image, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)
            or image.dtype == bool):
        raise ValueError(f"{path_str}: cannot write an image of dtype {image.dtype}")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError(f"{path_str}: image has NaN or Inf values; refusing to write them")
    if fmt in ("png", "tiff") and bit_depth not in (8, 16):
        raise ValueError(f"{path_str}: bit_depth must be 8 or 16, got {bit_depth}")
    if fmt == "jpeg" and bit_depth != 8:
        raise ValueError(f"{path_str}: JPEG is 8-bit only, got bit_depth={bit_depth}")
    if fmt == "jpeg" and not 0 <= int(quality) <= 100:
        raise ValueError(f"{path_str}: JPEG quality must be in [0, 100], got {quality}")

    with atomic_path(path_str) as tmp:
        if fmt == "exr":
            _write_exr(tmp, image, half)
        else:
            _write_opencv(tmp, path_str, image, fmt, bit_depth, int(quality))


def _write_exr(tmp: str, image: np.ndarray, half: bool) -> None:
    import OpenEXR

    if half:
        # Beyond the largest half (65504) values would turn into Inf; clamp them instead.
        limit = np.float32(np.finfo(np.float16).max)
        data = np.clip(image, -limit, limit).astype(np.float16)
    else:
        data = image
    channels = {c: np.ascontiguousarray(data[..., i]) for i, c in enumerate("RGB")}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, channels).write(tmp)


def _write_opencv(tmp: str, path: str, image: np.ndarray, fmt: str, bit_depth: int, quality: int):
    import cv2

    bgr = np.ascontiguousarray(image[..., ::-1])
    params = []
    if fmt == "hdr":
        data = np.maximum(bgr, 0)  # RGBE cannot hold negative values
    else:
        scale = 65535 if bit_depth == 16 else 255
        data = np.rint(np.clip(bgr, 0, 1) * scale).astype(np.uint16 if bit_depth == 16 else np.uint8)
        if fmt == "jpeg":
            params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if not cv2.imwrite(tmp, data, params):
        raise OSError(f"{path}: OpenCV could not write the {fmt.upper()} file")
