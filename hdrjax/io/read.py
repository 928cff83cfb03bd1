"""`read_image`: pick the reader for a file's format, then apply one rule for bad values.

Every reader returns RGB [H, W, 3]; this module checks that, makes the array a C-contiguous
float32 one, and turns the failures every reader shares (missing file, folder, no memory,
OS errors) into `ImageReadError`.

Bad values in HDR and float input (NaN, +-Inf, negative) are replaced (NaN -> 0,
+Inf -> the largest finite value in the image (0 if none), -Inf and negative -> 0), counted
per channel value, and reported with a `NonFiniteWarning` naming the file and the counts.
"""
from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np

from hdrjax.io.common import (FORMAT_NAMES, FORMAT_OF_SUFFIX, HDR_EXTENSIONS, LDR_EXTENSIONS,
                              ImageReadError, NonFiniteWarning)
from hdrjax.io.exr import read_exr
from hdrjax.io.ldr import read_ldr
from hdrjax.io.radiance import read_radiance


def read_image(path, *, format: str | None = None, safe_exr: bool | None = None) -> np.ndarray:
    """Read an image file as f32[H, W, 3] RGB: linear radiance for .exr/.hdr, [0, 1] for LDR.

    `format` overrides the extension ("exr", "hdr", "png", "jpeg", "tiff" and aliases).
    `safe_exr` decodes OpenEXR pixels in a child process (see `hdrjax.io.exr`); None means
    the environment variable HDRJAX_SAFE_EXR decides.
    """
    path_str = os.fspath(path)
    fmt = _read_format(path_str, format)
    if not os.path.exists(path_str):
        raise ImageReadError(path_str, "no such file")
    if os.path.isdir(path_str):
        raise ImageReadError(path_str, "is a directory, not an image file")
    try:
        if fmt == "exr":
            image = read_exr(path_str, safe=safe_exr)
        elif fmt == "hdr":
            image = read_radiance(path_str)
        else:
            image = read_ldr(path_str, fmt)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path_str, "not enough memory to decode the image") from None
    except OSError as e:
        raise ImageReadError(path_str, f"cannot read file ({e.strerror or e})") from None
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ImageReadError(path_str, f"decoded to an unexpected shape {image.shape}")  # guard
    image = np.ascontiguousarray(image, dtype=np.float32)
    return _sanitize(image, path_str)


def _read_format(path: str, override: str | None) -> str:
    if override is not None:
        fmt = FORMAT_NAMES.get(str(override).lower().lstrip("."))
        if fmt is None:
            raise ImageReadError(path, f"unknown image format {override!r} "
                                       f"(known: {', '.join(sorted(set(FORMAT_NAMES)))})")
        return fmt
    suffix = pathlib.PurePath(path).suffix.lower()
    fmt = FORMAT_OF_SUFFIX.get(suffix)
    if fmt is None:
        raise ImageReadError(path, f"unknown image extension {suffix or '(none)'!r} "
                                   f"(known: {' '.join(HDR_EXTENSIONS + LDR_EXTENSIONS)})")
    return fmt


def _sanitize(image: np.ndarray, path: str) -> np.ndarray:
    """Replace NaN/Inf/negative values by the documented rule and warn with their counts."""
    finite = np.isfinite(image)
    if finite.all() and not (image < 0).any():  # the common case: one pass, no copy
        return image
    posinf = np.isposinf(image)
    counts = {"nan": int(np.isnan(image).sum()), "posinf": int(posinf.sum()),
              "neginf": int(np.isneginf(image).sum()), "negative": int((image[finite] < 0).sum())}
    max_finite = max(float(image[finite].max()), 0.0) if finite.any() else 0.0
    out = np.where(finite, np.maximum(image, 0), 0).astype(np.float32)
    out[posinf] = max_finite
    # stacklevel 3: the warning points at the caller of read_image.
    warnings.warn(NonFiniteWarning(path, counts, max_finite), stacklevel=3)
    return out
