"""Image files in and out: `read_image` / `write_image` for .exr .hdr .png .jpg .tif, atomic writes.

Reading (`read_image`) always returns a C-contiguous float32 array of shape [H, W, 3] in RGB
order (OpenCV's BGR never leaks out):

* `.exr` (`hdrjax.io.exr`, checked first by `hdrjax.io.exr_check`) and `.hdr`
  (`hdrjax.io.radiance`): linear relative radiance, stored values unscaled.
* `.png .jpg .jpeg .tif .tiff` (`hdrjax.io.ldr`): values scaled to [0, 1] from the bit depth;
  float TIFF samples kept as stored; EXIF orientation applied (`ExifWarning` when it is
  unusable and the image is used unrotated).

Bad values in HDR and float input (NaN, +-Inf, negative) are replaced and reported with a
`NonFiniteWarning` (`hdrjax.io.read`). Images beyond `MAX_SIDE` per side or `MAX_PIXELS` are
refused from their header, before pixel memory is allocated.

Every problem with the input file raises `ImageReadError` (`str(e) == f"{path}: {problem}"`,
attribute `.path`): missing file, unknown extension, truncated or corrupt data, zero-size or
oversized image, missing or extra colour channels, animated / multi-frame images, CMYK.

Writing (`write_image`, `hdrjax.io.write`) picks the format from the extension and is atomic:
a failure or a kill leaves no partial file and never clobbers an existing one.
`atomic_write` and `atomic_path` (`hdrjax.io.atomic`) give the same guarantee to any other
writer (checkpoint metadata, CSVs, predictions).

Where each idea lives:
  common.py     extensions, size limits, ImageReadError / NonFiniteWarning / ExifWarning
  read.py       read_image: format dispatch and the bad-value rule
  exr_check.py  pure-Python validation of an EXR's header and chunk table
  exr.py        EXR channel choice, library decode (optionally in a child process)
  exr_yca.py    luminance/chroma EXR to RGB, as OpenEXR's RgbaInputFile
  radiance.py   Radiance RGBE (.hdr)
  ldr.py        8/16-bit and float-TIFF images via Pillow / OpenCV, EXIF orientation
  atomic.py     atomic_write, atomic_path
  write.py      write_image
"""
from hdrjax.io.atomic import atomic_path, atomic_write
from hdrjax.io.common import (HDR_EXTENSIONS, LDR_EXTENSIONS, MAX_PIXELS, MAX_SIDE, ExifWarning,
                              ImageReadError, NonFiniteWarning)
from hdrjax.io.exr_check import MAX_EXR_DECODED_BYTES
from hdrjax.io.read import read_image
from hdrjax.io.write import write_image

__all__ = [
    "read_image", "write_image", "atomic_write", "atomic_path",
    "ImageReadError", "NonFiniteWarning", "ExifWarning",
    "HDR_EXTENSIONS", "LDR_EXTENSIONS", "MAX_SIDE", "MAX_PIXELS", "MAX_EXR_DECODED_BYTES",
]
