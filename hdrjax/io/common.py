"""What every image reader and the writer share: file extensions, size limits, errors, warnings.

Size limits are checked from a file's header before any pixel memory is allocated: at most
`MAX_SIDE` (32768) pixels per side and `MAX_PIXELS` (400 M) pixels (Pillow additionally
refuses images it considers decompression bombs, about 179 MP).
"""
from __future__ import annotations

import os

from hdrjax.errors import HdrjaxError

HDR_EXTENSIONS = (".hdr", ".exr")
LDR_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Refuse absurd sizes before allocating: 2^15 per side covers 32K panoramas; 400 MP is
# 1.6 GB of float32 RGB per copy, more than any training or inference path needs.
MAX_SIDE = 1 << 15
MAX_PIXELS = 400_000_000

# File extension -> format, and the names `read_image(format=...)` accepts -> format.
FORMAT_OF_SUFFIX = {
    ".exr": "exr", ".hdr": "hdr", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg",
    ".tif": "tiff", ".tiff": "tiff",
}
FORMAT_NAMES = {
    "exr": "exr", "openexr": "exr", "hdr": "hdr", "rgbe": "hdr", "radiance": "hdr",
    "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff",
}


class ImageReadError(HdrjaxError):
    """An image file cannot be read; `str(e) == f"{path}: {problem}"`, attribute `.path`."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Default pickling would call __init__ with the one formatted message; grain / multiprocessing
        # workers need the two original arguments back.
        return (type(self), (self.path, self.problem))


class NonFiniteWarning(UserWarning):
    """HDR input had NaN, +-Inf or negative values that were replaced (see `hdrjax.io.read`)."""

    def __init__(self, path, counts: dict[str, int], max_finite: float):
        self.path = os.fspath(path)
        self.counts = dict(counts)
        self.max_finite = float(max_finite)
        parts = []
        if counts.get("nan"):
            parts.append(f"{counts['nan']} NaN -> 0")
        if counts.get("posinf"):
            parts.append(f"{counts['posinf']} +Inf -> {max_finite:.6g} (largest finite value)")
        if counts.get("neginf"):
            parts.append(f"{counts['neginf']} -Inf -> 0")
        if counts.get("negative"):
            parts.append(f"{counts['negative']} negative -> 0")
        super().__init__(f"{self.path}: replaced " + ", ".join(parts) + " (counts of channel values)")


class ExifWarning(UserWarning):
    """An LDR image's EXIF orientation could not be used, so the image was read unrotated."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}; the image is used unrotated")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def check_size(path: str, width: int, height: int) -> None:
    """Raise ImageReadError for a zero-size image or one beyond MAX_SIDE / MAX_PIXELS."""
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"zero-size image ({width} x {height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageReadError(
            path, f"image too large: {width} x {height} (limits: {MAX_SIDE} per side, "
                  f"{MAX_PIXELS // 1_000_000} MP)")
