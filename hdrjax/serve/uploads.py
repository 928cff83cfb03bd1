"""Checking an uploaded photo before it is queued: what it is, how big, whether it decodes.

The client's file name is used for nothing but the download names (`safe_name`); the format
comes from the bytes (Pillow identifies them), the size from the header, checked against the
megapixel limit before any pixel is decoded, and the whole image is then decoded once with the
same reader `predict` uses (`hdrjax.io.read_image`), so a truncated or corrupt file is refused
at upload with the reader's message rather than later in the queue.  Every refusal is an
`UploadError` whose message names the user's file; the caller deletes what was received.
"""
from __future__ import annotations

import pathlib
import re
import threading

from hdrjax.errors import HdrjaxError

# Pillow's format name -> the extension hdrjax.io.read_image reads it by.
SUFFIX_OF_FORMAT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "TIFF": ".tif"}

# One full decode at a time: N simultaneous uploads of large photos must not hold N float
# copies at once (a 25 MP photo is 300 MB as float32).
_DECODE_LOCK = threading.Lock()


class UploadError(HdrjaxError):
    """An upload the page refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def safe_name(filename: str | None) -> str:
    """A file stem safe in a download name: letters, digits, '.', '-', '_', at most 64 chars."""
    stem = pathlib.PurePosixPath((filename or "").replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:64]
    return stem or "photo"


def identify(path: pathlib.Path, shown: str, max_megapixels: float) -> tuple[str, int, int]:
    """(extension, width, height) of an uploaded file, from its header; UploadError if unusable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            fmt, (width, height) = im.format, im.size
    except UnidentifiedImageError:
        raise UploadError(f"{shown}: not an image this page reads (JPEG, PNG or TIFF)", 415) from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's errors for damaged headers
        raise UploadError(f"{shown}: damaged image header ({e})", 400) from None
    if fmt not in SUFFIX_OF_FORMAT:
        raise UploadError(f"{shown}: a {fmt} image; this page reads JPEG, PNG or TIFF", 415)
    if width * height > max_megapixels * 1e6:
        raise UploadError(f"{shown}: {width}×{height} is {width * height / 1e6:.1f} megapixels; "
                          f"the limit is {max_megapixels:g}", 413)
    return SUFFIX_OF_FORMAT[fmt], width, height


def check_decodes(path: pathlib.Path, shown: str) -> None:
    """Decode the whole image once (hdrjax.io.read_image); UploadError with the reader's message."""
    from hdrjax.io import ImageReadError, read_image

    with _DECODE_LOCK:
        try:
            read_image(path)
        except ImageReadError as e:
            problem = str(e).replace(str(path), "").lstrip(": ")
            raise UploadError(f"{shown}: {problem}", 400) from None
