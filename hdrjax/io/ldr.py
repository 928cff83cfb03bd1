"""Reading 8- and 16-bit images (.png .jpg .jpeg .tif .tiff): Pillow, OpenCV where Pillow falls short.

Values are scaled to [0, 1] from the bit depth (/255 or /65535); float TIFF samples are kept
as stored. Pillow decodes; OpenCV takes over for 16-bit colour (Pillow reduces it to 8 bits)
and for float / exotic TIFFs Pillow cannot open. EXIF orientation is applied, as
`cv2.imread` does in the reference; an orientation tag that cannot be read or is not one of
1-8 gives an `ExifWarning` and the image is used unrotated. Palette, grey and grey+alpha
images become RGB; alpha is dropped. Animated / multi-frame images and CMYK are refused.
"""
from __future__ import annotations

import os
import struct
import warnings

import numpy as np

from hdrjax.io.common import ExifWarning, ImageReadError, check_size

_PILLOW_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG", "MPO"), "tiff": ("TIFF",)}
_ORIENTATION_TAG = 0x0112
# What Pillow's parsers raise on malformed metadata or frame chains (read from Pillow 13's
# TiffImagePlugin / Image.getexif: EOFError and OSError for short data, SyntaxError for a bad
# TIFF/EXIF header, ValueError / TypeError / KeyError for bad tag values or an unknown
# compression, IndexError / struct.error for short tag payloads). Anything else is a bug and
# propagates.
_PILLOW_PARSE_ERRORS = (OSError, EOFError, SyntaxError, ValueError, TypeError, KeyError,
                        IndexError, struct.error)


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an [H, W, C] array, as Pillow's exif_transpose."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(image, k=-1)
    if orientation == 7:
        return image[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


def _exif_orientation(im, path: str) -> int:
    """The image's EXIF orientation (1-8), 1 when it has none.

    A broken EXIF block or a value outside 1-8 must not stop the pixels (the picture itself
    is fine), but the image may then be shown sideways: say so with an ExifWarning.
    """
    try:
        value = im.getexif().get(_ORIENTATION_TAG)
    except _PILLOW_PARSE_ERRORS as e:
        problem = f"cannot read the EXIF block ({type(e).__name__}: {e})"
    else:
        if value is None:
            return 1
        if isinstance(value, int) and 1 <= value <= 8:
            return value
        problem = f"EXIF orientation {value!r} is not one of 1-8"
    # stacklevel 4: the warning points at the caller of read_image (through read_ldr).
    warnings.warn(ExifWarning(path, problem), stacklevel=4)
    return 1


def _pillow_rawmode(im) -> str:
    try:
        args = im.tile[0][3]
    except (IndexError, TypeError, AttributeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def read_ldr(path: str, fmt: str) -> np.ndarray:
    """Read an 8- or 16-bit (or float TIFF) image as float32 RGB [H, W, 3], EXIF-oriented."""
    from PIL import Image, UnidentifiedImageError

    if os.path.getsize(path) == 0:
        raise ImageReadError(path, "empty file")
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"image too large ({e})") from None
    except UnidentifiedImageError:
        if fmt == "tiff":
            return _read_tiff_opencv(path)  # float / exotic TIFFs Pillow cannot open
        raise ImageReadError(path, f"not a readable {fmt.upper()} image (corrupt or wrong "
                                   "extension)") from None
    with im:
        kinds = [k for v in _PILLOW_FORMATS.values() for k in v]
        if im.format not in kinds:
            raise ImageReadError(path, f"file holds {im.format} data, not {fmt.upper()}")
        width, height = im.size
        check_size(path, width, height)
        if im.format != "MPO":  # MPO = camera JPEG with an embedded preview: use the first image
            try:
                frames = getattr(im, "n_frames", 1)
            except _PILLOW_PARSE_ERRORS as e:  # broken frame chains surface here
                raise ImageReadError(path, f"corrupt image ({e})") from None
            if frames > 1:
                raise ImageReadError(path, f"animated / multi-frame image ({frames} frames) is "
                                           "not supported; extract one frame first")
        mode = im.mode
        if mode == "CMYK":
            raise ImageReadError(path, "CMYK images are not supported; convert to RGB first")
        if mode not in ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "YCbCr",
                        "I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            raise ImageReadError(path, f"unsupported image mode {mode!r}")
        rawmode = _pillow_rawmode(im)  # before getexif(): for PNG it loads and clears `tile`
        orientation = _exif_orientation(im, path)
        try:
            im.load()  # full decode: raises on truncated or corrupt data
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageReadError(path, f"truncated or corrupt image data ({e})") from None
        if mode in ("RGB", "RGBA") and ";16" in rawmode:
            # Pillow reduces 16-bit colour to 8 bits; take the full-depth values from OpenCV.
            image = _read_16bit_color(path, width, height)
        elif mode.startswith("I;16") or (mode == "I" and "16" in rawmode):
            image = np.asarray(im, dtype=np.float32)[..., None] / np.float32(65535)
        elif mode == "I":
            raise ImageReadError(path, "32-bit integer images are not supported")
        elif mode == "F":
            image = np.asarray(im, dtype=np.float32)[..., None]
        elif mode in ("1", "L", "LA", "La"):
            image = np.asarray(im.convert("L"), dtype=np.float32)[..., None] / np.float32(255)
        elif mode in ("P", "PA"):
            image = np.asarray(im.convert("RGBA"), dtype=np.float32)[..., :3] / np.float32(255)
        else:
            image = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255)
    if image.shape[:2] != (height, width):
        raise ImageReadError(path, f"decoded to {image.shape[:2]}, header says {(height, width)}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return _orient(image, orientation)


def _opencv_to_rgb(path: str, arr: np.ndarray) -> np.ndarray:
    """OpenCV array (grey, BGR, BGRA; uint8/uint16/float) -> float RGB, scaled by bit depth."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(path, f"unsupported channel count {arr.shape[-1]}")
    if arr.shape[2] in (1, 2):
        arr = np.repeat(arr[..., :1], 3, axis=2)
    else:
        arr = arr[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if arr.dtype in (np.float32, np.float64, np.float16):
        return arr.astype(np.float32)  # float TIFF: kept as stored
    raise ImageReadError(path, f"unsupported sample type {arr.dtype}")


def _read_16bit_color(path: str, width: int, height: int) -> np.ndarray:
    import cv2

    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width):
        raise ImageReadError(path, "cannot decode 16-bit image data (truncated or corrupt)")
    return _opencv_to_rgb(path, arr)


def _read_tiff_opencv(path: str) -> np.ndarray:
    import cv2

    try:
        pages = cv2.imcount(path)
    except cv2.error:
        pages = 0
    if pages == 0:
        raise ImageReadError(path, "not a readable TIFF image (corrupt or wrong extension)")
    if pages > 1:
        raise ImageReadError(path, f"multi-page TIFF ({pages} pages) is not supported")
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "cannot decode TIFF data (truncated, corrupt or unsupported)")
    check_size(path, arr.shape[1], arr.shape[0])
    return _opencv_to_rgb(path, arr)
