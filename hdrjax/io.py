"""Image files in and out: `read_image` / `write_image` for .exr .hdr .png .jpg .tif, atomic writes.

Reading (`read_image`) always returns a C-contiguous float32 array of shape [H, W, 3] in RGB
order (OpenCV's BGR never leaks out):

* `.exr` (official `openexr` bindings, `OpenEXR.File`) and `.hdr` (Radiance RGBE, OpenCV):
  linear relative radiance, stored values unscaled (a Radiance `EXPOSURE=` line is ignored,
  as OpenCV and the reference do).
* `.png .jpg .jpeg .tif .tiff` (Pillow; OpenCV for 16-bit colour and float TIFF): values
  scaled to [0, 1] from the bit depth (/255 or /65535); float TIFF samples are kept as stored.
  EXIF orientation is applied, as `cv2.imread` does in the reference. Palette, grey and
  grey+alpha images become RGB; alpha is dropped.

OpenEXR specifics:

* half, float and uint channels; scan-line and tiled parts (level 0 of mip/rip maps).
* RGB(A): alpha is dropped and RGB kept as stored. EXR colour is premultiplied (associated)
  by convention, so RGB already is the light the pixel emits; dividing by A would be wrong,
  and pixels with A == 0 and RGB != 0 (glows, e.g. CandleGlass.exr) are valid additive light.
* luminance/chroma (Y, RY, BY): converted to RGB exactly as OpenEXR's `RgbaInputFile`
  (ImfRgbaYca): chroma subsampled 2x2 is upsampled with the library's 27-tap windowed-sinc
  filters (edge samples repeated), R = (RY + 1) Y, B = (BY + 1) Y,
  G = (Y - wr R - wb B) / wg with luminance weights from the file's `chromaticities`
  (Rec. 709 when absent), then the library's `fixSaturation` pass. Half sources are rounded
  to half between steps as the library does; float sources keep float precision.
* Y alone (greyscale): R = G = B = Y.
* multi-part and layered files: the first part's unprefixed R, G, B (or Y) channels; anything
  else is an `ImageReadError` naming the channels found. Deep data is refused.
* The pixel window returned is the data window (the display window is not applied).

Damaged files. Before the C++ library sees an EXR, a pure-Python check parses the whole
header (bounded attribute parse, required attributes and their types, sane windows, channel
list, sampling, size limits, chunk count) and every chunk-table entry (inside the file, the
chunk's leader matches its index, its payload fits in the file). Then the library decodes in
this process. With `safe_exr=True` or the environment variable `HDRJAX_SAFE_EXR=1` the
decode runs in a child process with a timeout (`HDRJAX_SAFE_EXR_TIMEOUT`, seconds, default
120), so a crash or a hang in the library becomes an `ImageReadError` too; it costs one
Python start-up per file (about 0.2 s). EXR has no checksums: a bit flip inside compressed
pixel data that still decodes cannot be detected by any reader.

Size limits, checked from the header before any pixel memory is allocated: at most
`MAX_SIDE` (32768) pixels per side and `MAX_PIXELS` (400 M) pixels (Pillow additionally
refuses images it considers decompression bombs, about 179 MP).

Bad values in HDR and float input (NaN, +-Inf, negative) are replaced (NaN -> 0,
+Inf -> the largest finite value in the image (0 if none), -Inf and negative -> 0), counted
per channel value, and reported with a `NonFiniteWarning` naming the file and the counts.

Every problem with the input file raises `ImageReadError` (`str(e) == f"{path}: {problem}"`,
attribute `.path`): missing file, unknown extension, truncated or corrupt data, zero-size or
oversized image, missing or extra colour channels, animated / multi-frame images, CMYK.

Writing (`write_image`) picks the format from the extension and is atomic (temporary file in
the same folder, then `os.replace`): a failure or a kill leaves no partial file and never
clobbers an existing one. `atomic_write` and `atomic_path` give the same guarantee to any
other writer (checkpoint metadata, CSVs, predictions).
"""
from __future__ import annotations

import contextlib
import math
import os
import pathlib
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from hdrjax.errors import HdrjaxError

HDR_EXTENSIONS = (".hdr", ".exr")
LDR_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# Refuse absurd sizes before allocating: 2^15 per side covers 32K panoramas; 400 MP is
# 1.6 GB of float32 RGB per copy, more than any training or inference path needs.
MAX_SIDE = 1 << 15
MAX_PIXELS = 400_000_000
# All channels of all parts that the EXR library decodes at once (it reads every part).
MAX_EXR_DECODED_BYTES = 8 << 30

_FORMATS = {
    ".exr": "exr", ".hdr": "hdr", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg",
    ".tif": "tiff", ".tiff": "tiff",
}
_FORMAT_NAMES = {
    "exr": "exr", "openexr": "exr", "hdr": "hdr", "rgbe": "hdr", "radiance": "hdr",
    "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff",
}

_SAFE_EXR_ENV = "HDRJAX_SAFE_EXR"
_SAFE_EXR_TIMEOUT_ENV = "HDRJAX_SAFE_EXR_TIMEOUT"
_SAFE_EXR_DEFAULT_TIMEOUT = 120.0


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
    """HDR input had NaN, +-Inf or negative values that were replaced (see module docstring)."""

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


# ------------------------------------------------------------------------------------- read


def read_image(path, *, format: str | None = None, safe_exr: bool | None = None) -> np.ndarray:
    """Read an image file as f32[H, W, 3] RGB: linear radiance for .exr/.hdr, [0, 1] for LDR."""
    path_str = os.fspath(path)
    fmt = _read_format(path_str, format)
    if not os.path.exists(path_str):
        raise ImageReadError(path_str, "no such file")
    if os.path.isdir(path_str):
        raise ImageReadError(path_str, "is a directory, not an image file")
    try:
        if fmt == "exr":
            if safe_exr is None:
                safe_exr = os.environ.get(_SAFE_EXR_ENV, "").strip().lower() in ("1", "true", "yes", "on")
            image = _read_exr(path_str, safe=safe_exr)
        elif fmt == "hdr":
            image = _read_radiance(path_str)
        else:
            image = _read_ldr(path_str, fmt)
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
        fmt = _FORMAT_NAMES.get(str(override).lower().lstrip("."))
        if fmt is None:
            raise ImageReadError(path, f"unknown image format {override!r} "
                                       f"(known: {', '.join(sorted(set(_FORMAT_NAMES)))})")
        return fmt
    suffix = pathlib.PurePath(path).suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise ImageReadError(path, f"unknown image extension {suffix or '(none)'!r} "
                                   f"(known: {' '.join(HDR_EXTENSIONS + LDR_EXTENSIONS)})")
    return fmt


def _check_size(path: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"zero-size image ({width} x {height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageReadError(
            path, f"image too large: {width} x {height} (limits: {MAX_SIDE} per side, "
                  f"{MAX_PIXELS // 1_000_000} MP)")


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


# ------------------------------------------------------------------------------ EXR: header

_EXR_MAGIC = 20000630
_FLAG_TILED = 0x200
_FLAG_LONG_NAMES = 0x400
_FLAG_NONIMAGE = 0x800
_FLAG_MULTIPART = 0x1000
_KNOWN_FLAGS = _FLAG_TILED | _FLAG_LONG_NAMES | _FLAG_NONIMAGE | _FLAG_MULTIPART

_PIXEL_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
# Scan lines per chunk for each compression id (openexr 3.5; 12 and 13 measured from what the
# bindings write, the others from the file-format spec).
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256,
                    10: 256, 11: 32, 12: 256, 13: 1}
_FIXED_SIZE_TYPES = {
    "box2i": 16, "box2f": 16, "chromaticities": 32, "compression": 1, "double": 8,
    "envmap": 1, "float": 4, "int": 4, "keycode": 28, "lineOrder": 1, "m33f": 36, "m44f": 64,
    "m33d": 72, "m44d": 128, "rational": 8, "tiledesc": 9, "timecode": 8, "v2i": 8, "v2f": 8,
    "v3i": 12, "v3f": 12, "v2d": 16, "v3d": 24, "deepImageState": 1,
}
_REQUIRED_TYPES = {"channels": "chlist", "compression": "compression", "dataWindow": "box2i",
                   "displayWindow": "box2i", "lineOrder": "lineOrder"}
_OPTIONAL_TYPES = {"pixelAspectRatio": "float", "screenWindowCenter": "v2f",
                   "screenWindowWidth": "float", "tiles": "tiledesc", "chunkCount": "int",
                   "type": "string", "name": "string", "chromaticities": "chromaticities",
                   "version": "int"}
_MAX_ATTRIBUTES = 4096
_MAX_PARTS = 1024
_MAX_CHANNELS = 1024
_MAX_CHUNKS = 1 << 22
_MAX_COORD = 1 << 30  # the library's own bound on window coordinates


class _ExrPart:
    """What the validator learned about one part of an EXR file."""

    def __init__(self, index, attrs):
        self.index = index
        self.attrs = attrs  # name -> (type, bytes)
        self.name = None
        self.storage = "scanlineimage"
        self.channels = []  # (name, pixel_type, x_sampling, y_sampling)
        self.compression = 0
        self.line_order = 0
        self.xmin = self.ymin = self.xmax = self.ymax = 0
        self.tile = None  # (x_size, y_size, level_mode, rounding_mode)
        self.chromaticities = None
        self.chunk_count = 0
        self.decoded_bytes = 0

    @property
    def width(self):
        return self.xmax - self.xmin + 1

    @property
    def height(self):
        return self.ymax - self.ymin + 1


def _exr_fail(path, problem):
    raise ImageReadError(path, problem)


def _cstring(path, data, pos, max_len, what):
    """NUL-terminated printable string of 1..max_len bytes at pos -> (text, next_pos)."""
    window = bytes(data[pos:pos + max_len + 1])
    length = window.find(b"\0")
    if length < 0:
        if pos + max_len + 1 > len(data):
            _exr_fail(path, f"truncated OpenEXR header (in {what})")
        _exr_fail(path, f"corrupt OpenEXR header: {what} longer than {max_len} bytes")
    if length == 0:
        _exr_fail(path, f"corrupt OpenEXR header: empty {what}")
    raw = window[:length]
    end = pos + length
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or not text.isprintable():
        _exr_fail(path, f"corrupt OpenEXR header: {what} {raw[:40]!r} is not printable text")
    return text, end + 1


def _parse_attributes(path, data, pos, max_name):
    """One header's attribute list -> (dict name -> (type, bytes), position after its NUL)."""
    attrs = {}
    n = len(data)
    while True:
        if pos >= n:
            _exr_fail(path, "truncated OpenEXR header")
        if data[pos] == 0:
            return attrs, pos + 1
        if len(attrs) >= _MAX_ATTRIBUTES:
            _exr_fail(path, f"corrupt OpenEXR header: more than {_MAX_ATTRIBUTES} attributes")
        name, pos = _cstring(path, data, pos, max_name, "attribute name")
        type_name, pos = _cstring(path, data, pos, max_name, f"type of attribute {name!r}")
        if pos + 4 > n:
            _exr_fail(path, "truncated OpenEXR header")
        (size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        if size < 0 or pos + size > n:
            _exr_fail(path, f"corrupt OpenEXR header: attribute {name!r} claims {size} bytes "
                            f"(file has {n - pos} left)")
        expected = _FIXED_SIZE_TYPES.get(type_name)
        if expected is not None and size != expected:
            _exr_fail(path, f"corrupt OpenEXR header: attribute {name!r} of type {type_name} "
                            f"has {size} bytes, expected {expected}")
        if name in attrs:
            _exr_fail(path, f"corrupt OpenEXR header: attribute {name!r} appears twice")
        attrs[name] = (type_name, bytes(data[pos:pos + size]))
        pos += size


def _parse_channel_list(path, raw, max_name):
    channels = []
    pos = 0
    while True:
        if pos >= len(raw):
            _exr_fail(path, "corrupt OpenEXR channel list (not terminated)")
        if raw[pos] == 0:
            if pos + 1 != len(raw):
                _exr_fail(path, "corrupt OpenEXR channel list (trailing bytes)")
            break
        if len(channels) >= _MAX_CHANNELS:
            _exr_fail(path, f"corrupt OpenEXR channel list (more than {_MAX_CHANNELS} channels)")
        name, pos = _cstring(path, raw, pos, max_name, "channel name")
        if pos + 16 > len(raw):
            _exr_fail(path, "corrupt OpenEXR channel list (truncated)")
        pixel_type, _plinear, xs, ys = struct.unpack_from("<iB3xii", raw, pos)
        pos += 16
        if pixel_type not in _PIXEL_BYTES:
            _exr_fail(path, f"corrupt OpenEXR channel list: channel {name!r} has pixel type {pixel_type}")
        if xs < 1 or ys < 1 or xs > MAX_SIDE or ys > MAX_SIDE:
            _exr_fail(path, f"corrupt OpenEXR channel list: channel {name!r} has sampling {xs} x {ys}")
        if any(c[0] == name for c in channels):
            _exr_fail(path, f"corrupt OpenEXR channel list: channel {name!r} appears twice")
        channels.append((name, pixel_type, xs, ys))
    if not channels:
        _exr_fail(path, "OpenEXR file has no channels")
    return channels


def _box2i(raw):
    return struct.unpack("<4i", raw)


def _level_count(size, rounding):
    """Number of mip levels: floor or ceil of log2(size), plus one (ImfTiledMisc roundLog2)."""
    if rounding == 0:
        return size.bit_length()
    return (size - 1).bit_length() + 1


def _level_size(size, level, rounding):
    b = 1 << level
    s = size // b
    if rounding == 1 and s * b < size:
        s += 1
    return max(s, 1)


def _tile_layout(part):
    """[(lx, ly, tiles_x, tiles_y)] in chunk-table order (spec: level, then row, then column)."""
    xs, ys, mode, rounding = part.tile
    w, h = part.width, part.height
    if mode == 0:
        levels = [(0, 0)]
    elif mode == 1:
        n = _level_count(max(w, h), rounding)
        levels = [(level, level) for level in range(n)]
    else:
        nx, ny = _level_count(w, rounding), _level_count(h, rounding)
        levels = [(lx, ly) for ly in range(ny) for lx in range(nx)]
    layout = []
    for lx, ly in levels:
        lw, lh = _level_size(w, lx, rounding), _level_size(h, ly, rounding)
        layout.append((lx, ly, -(-lw // xs), -(-lh // ys)))
    return layout


def _check_part(path, part, multipart, single_tiled, max_name):
    attrs = part.attrs
    where = f"part {part.index}: " if multipart else ""
    for name in _REQUIRED_TYPES:
        if name not in attrs:
            _exr_fail(path, f"corrupt OpenEXR header: {where}required attribute {name!r} missing")
    for name, type_name in {**_REQUIRED_TYPES, **_OPTIONAL_TYPES}.items():
        if name in attrs and attrs[name][0] != type_name:
            _exr_fail(path, f"corrupt OpenEXR header: {where}attribute {name!r} has type "
                            f"{attrs[name][0]!r}, expected {type_name!r}")
    if "type" in attrs:
        part.storage = attrs["type"][1].decode("latin-1")
        if part.storage not in ("scanlineimage", "tiledimage", "deepscanline", "deeptile"):
            _exr_fail(path, f"corrupt OpenEXR header: {where}unknown part type {part.storage!r}")
    elif multipart:
        _exr_fail(path, f"corrupt OpenEXR header: {where}multi-part file without 'type' attribute")
    else:
        part.storage = "tiledimage" if single_tiled else "scanlineimage"
    if part.storage.startswith("deep"):
        _exr_fail(path, f"{where}deep OpenEXR data ({part.storage}) is not supported")
    if not multipart and (part.storage == "tiledimage") != bool(single_tiled):
        _exr_fail(path, "corrupt OpenEXR header: 'type' attribute disagrees with the version flags")
    if multipart:
        for name in ("name", "chunkCount"):
            if name not in attrs:
                _exr_fail(path, f"corrupt OpenEXR header: {where}multi-part file without {name!r}")
        part.name = attrs["name"][1].decode("utf-8", "replace")

    part.compression = attrs["compression"][1][0]
    if part.compression not in _LINES_PER_CHUNK:
        _exr_fail(path, f"{where}unknown OpenEXR compression id {part.compression}")
    part.line_order = attrs["lineOrder"][1][0]
    if part.line_order > 2:
        _exr_fail(path, f"corrupt OpenEXR header: {where}invalid lineOrder {part.line_order}")

    part.xmin, part.ymin, part.xmax, part.ymax = _box2i(attrs["dataWindow"][1])
    dx0, dy0, dx1, dy1 = _box2i(attrs["displayWindow"][1])
    for v in (part.xmin, part.ymin, part.xmax, part.ymax, dx0, dy0, dx1, dy1):
        if abs(v) > _MAX_COORD:
            _exr_fail(path, f"corrupt OpenEXR header: {where}window coordinate {v} out of range")
    if part.xmax < part.xmin or part.ymax < part.ymin:
        _exr_fail(path, f"{where}zero-size image (empty data window "
                        f"({part.xmin},{part.ymin})-({part.xmax},{part.ymax}))")
    if dx1 < dx0 or dy1 < dy0:
        _exr_fail(path, f"corrupt OpenEXR header: {where}empty display window "
                        f"({dx0},{dy0})-({dx1},{dy1})")
    _check_size(path, part.width, part.height)

    if "pixelAspectRatio" in attrs:
        (par,) = struct.unpack("<f", attrs["pixelAspectRatio"][1])
        if not (1e-6 <= par <= 1e6):
            _exr_fail(path, f"corrupt OpenEXR header: {where}pixelAspectRatio {par}")
    if "screenWindowWidth" in attrs:
        (sww,) = struct.unpack("<f", attrs["screenWindowWidth"][1])
        if not (math.isfinite(sww) and sww >= 0):
            _exr_fail(path, f"corrupt OpenEXR header: {where}screenWindowWidth {sww}")
    if "chromaticities" in attrs:
        chroma = struct.unpack("<8f", attrs["chromaticities"][1])
        if not all(math.isfinite(c) for c in chroma):
            _exr_fail(path, f"corrupt OpenEXR header: {where}non-finite chromaticities")
        part.chromaticities = chroma

    part.channels = _parse_channel_list(path, attrs["channels"][1], max_name)
    decoded = 0
    for name, ptype, xs, ys in part.channels:
        if part.storage == "tiledimage" and (xs != 1 or ys != 1):
            _exr_fail(path, f"corrupt OpenEXR header: {where}tiled channel {name!r} is subsampled")
        if part.xmin % xs or part.ymin % ys or part.width % xs or part.height % ys:
            _exr_fail(path, f"corrupt OpenEXR header: {where}data window does not fit the "
                            f"{xs} x {ys} sampling of channel {name!r}")
        decoded += (part.width // xs) * (part.height // ys) * _PIXEL_BYTES[ptype]
    part.decoded_bytes = decoded

    if part.storage == "tiledimage":
        if "tiles" not in attrs:
            _exr_fail(path, f"corrupt OpenEXR header: {where}tiled image without 'tiles'")
        xs, ys, mode = struct.unpack("<IIB", attrs["tiles"][1])
        level_mode, rounding = mode & 0x0F, mode >> 4
        if not (1 <= xs <= MAX_SIDE and 1 <= ys <= MAX_SIDE) or level_mode > 2 or rounding > 1:
            _exr_fail(path, f"corrupt OpenEXR header: {where}invalid tile description "
                            f"({xs} x {ys}, mode {mode:#x})")
        part.tile = (xs, ys, level_mode, rounding)
        part.chunk_count = sum(tx * ty for _, _, tx, ty in _tile_layout(part))
    else:
        lines = _LINES_PER_CHUNK[part.compression]
        part.chunk_count = -(-part.height // lines)
    if part.chunk_count > _MAX_CHUNKS:
        _exr_fail(path, f"{where}OpenEXR file has too many chunks ({part.chunk_count})")
    if "chunkCount" in attrs:
        (declared,) = struct.unpack("<i", attrs["chunkCount"][1])
        if declared != part.chunk_count:
            _exr_fail(path, f"corrupt OpenEXR header: {where}chunkCount {declared} but the "
                            f"header implies {part.chunk_count} chunks")


def _check_chunks(path, data, part, offsets, table_end, multipart):
    """Every chunk-table entry points inside the file at a leader that matches its index."""
    n = len(data)
    where = f"part {part.index}: " if multipart else ""
    extra = 4 if multipart else 0
    leader_ints = (4 if part.storage == "tiledimage" else 1) + 1  # coordinates + data size
    leader = extra + 4 * leader_ints
    if offsets.size == 0:
        return
    bad = (offsets < table_end) | (offsets > n - leader)
    if bad.any():
        i = int(np.argmax(bad))
        _exr_fail(path, f"{where}chunk {i} of {offsets.size} lies outside the file "
                        f"(offset {int(offsets[i])}, file size {n}): truncated or corrupt")
    if np.unique(offsets).size != offsets.size:
        _exr_fail(path, f"corrupt OpenEXR chunk table: {where}two chunks share an offset")
    idx = offsets.astype(np.int64)[:, None] + np.arange(leader, dtype=np.int64)[None, :]
    fields = np.ascontiguousarray(data[idx]).view("<i4").astype(np.int64)  # [chunks, leader / 4]
    if multipart:
        wrong = fields[:, 0] != part.index
        if wrong.any():
            i = int(np.argmax(wrong))
            _exr_fail(path, f"corrupt OpenEXR chunk {i}: belongs to part {int(fields[i, 0])}, "
                            f"expected part {part.index}")
        fields = fields[:, 1:]
    sizes = fields[:, -1]
    if part.storage == "tiledimage":
        # Tiles may be stored in any order (RANDOM_Y); each table slot must name a valid tile.
        coords = fields[:, :4]
        valid = _tile_coords_valid(part, coords)
        if not valid.all():
            i = int(np.argmax(~valid))
            _exr_fail(path, f"corrupt OpenEXR chunk {i}: {where}tile coordinates "
                            f"{tuple(int(v) for v in coords[i])} out of range")
    else:
        lines = _LINES_PER_CHUNK[part.compression]
        expected_y = part.ymin + lines * np.arange(offsets.size, dtype=np.int64)
        wrong = fields[:, 0] != expected_y
        if wrong.any():
            i = int(np.argmax(wrong))
            _exr_fail(path, f"corrupt OpenEXR chunk {i}: {where}starts at scan line "
                            f"{int(fields[i, 0])}, expected {int(expected_y[i])}")
    ends = offsets.astype(np.int64) + leader + sizes
    wrong = (sizes <= 0) | (ends > n)
    if wrong.any():
        i = int(np.argmax(wrong))
        _exr_fail(path, f"{where}chunk {i} claims {int(sizes[i])} bytes of data but the file "
                        f"ends at {n}: truncated or corrupt")


def _tile_coords_valid(part, coords):
    layout = _tile_layout(part)
    valid = np.zeros(coords.shape[0], dtype=bool)
    for lx, ly, tx, ty in layout:
        valid |= ((coords[:, 2] == lx) & (coords[:, 3] == ly) & (coords[:, 0] >= 0)
                  & (coords[:, 0] < tx) & (coords[:, 1] >= 0) & (coords[:, 1] < ty))
    return valid


def _parse_exr(path: str) -> list[_ExrPart]:
    """Validate an EXR file's structure in pure Python; raise ImageReadError on any damage."""
    if os.path.getsize(path) == 0:
        _exr_fail(path, "empty file")
    # A read-only np.memmap, not mmap.mmap: views into it may outlive this call inside an
    # exception's traceback, and an explicitly closed mmap would raise BufferError then.
    data = np.memmap(path, dtype=np.uint8, mode="r")
    return _parse_exr_bytes(path, data)


def _parse_exr_bytes(path, data) -> list[_ExrPart]:
    n = len(data)
    if n < 8:
        _exr_fail(path, "file too short to be OpenEXR")
    magic, version = struct.unpack_from("<iI", data, 0)
    if magic != _EXR_MAGIC:
        _exr_fail(path, "not an OpenEXR file (bad magic number)")
    flags = version & ~0xFF
    if version & 0xFF != 2:
        _exr_fail(path, f"unsupported OpenEXR file version {version & 0xFF}")
    if flags & ~_KNOWN_FLAGS:
        _exr_fail(path, f"unknown OpenEXR version flags {flags:#x}")
    if flags & _FLAG_NONIMAGE:
        _exr_fail(path, "deep (non-image) OpenEXR data is not supported")
    multipart = bool(flags & _FLAG_MULTIPART)
    if multipart and flags & _FLAG_TILED:
        _exr_fail(path, "corrupt OpenEXR version field (tiled and multi-part flags both set)")
    max_name = 255 if flags & _FLAG_LONG_NAMES else 31

    pos = 8
    headers = []
    while True:
        if multipart:
            if pos >= n:
                _exr_fail(path, "truncated OpenEXR header")
            if data[pos] == 0:  # an empty header ends the list of parts
                pos += 1
                break
            if len(headers) >= _MAX_PARTS:
                _exr_fail(path, f"corrupt OpenEXR header: more than {_MAX_PARTS} parts")
        attrs, pos = _parse_attributes(path, data, pos, max_name)
        headers.append(attrs)
        if not multipart:
            break
    if not headers:
        _exr_fail(path, "OpenEXR file has no parts")

    parts = [_ExrPart(i, attrs) for i, attrs in enumerate(headers)]
    for part in parts:
        _check_part(path, part, multipart, flags & _FLAG_TILED, max_name)
    if multipart and len({p.name for p in parts}) != len(parts):
        _exr_fail(path, "corrupt OpenEXR header: two parts share a name")
    total = sum(p.decoded_bytes for p in parts)
    if total > MAX_EXR_DECODED_BYTES:
        _exr_fail(path, f"OpenEXR file would decode to {total / 2**30:.1f} GiB "
                        f"(limit {MAX_EXR_DECODED_BYTES / 2**30:.0f} GiB)")

    tables = []
    for part in parts:
        if pos + 8 * part.chunk_count > n:
            _exr_fail(path, f"truncated OpenEXR file (chunk table of {part.chunk_count} entries "
                            f"does not fit)")
        table = np.frombuffer(bytes(data[pos:pos + 8 * part.chunk_count]), dtype="<u8")
        tables.append(table)
        pos += 8 * part.chunk_count
    for part, table in zip(parts, tables):
        _check_chunks(path, data, part, table, pos, multipart)
    return parts


# ------------------------------------------------------------------------------ EXR: pixels


def _select_channels(path: str, part: _ExrPart) -> tuple[str, list[str]]:
    """Which channels of the first part give the picture: ("rgb", [R, G, B]) or ("yc", [...])."""
    info = {c[0]: c for c in part.channels}
    found = ", ".join(sorted(info)) or "none"
    rgb = [c for c in ("R", "G", "B") if c in info]
    if rgb:
        if len(rgb) != 3:
            raise ImageReadError(path, f"OpenEXR file has channel(s) {', '.join(rgb)} but not all "
                                       f"of R, G, B (channels: {found})")
        for c in rgb:
            if info[c][2:] != (1, 1):
                raise ImageReadError(path, f"OpenEXR channel {c} is subsampled "
                                           f"{info[c][2]} x {info[c][3]}; not supported")
        return "rgb", rgb
    if "Y" in info:
        if info["Y"][2:] != (1, 1):
            raise ImageReadError(path, "OpenEXR luminance channel Y is subsampled; not supported")
        chroma = [c for c in ("RY", "BY") if c in info]
        if len(chroma) == 1:
            raise ImageReadError(path, f"OpenEXR file has {chroma[0]} without "
                                       f"{'BY' if chroma[0] == 'RY' else 'RY'}")
        if chroma:
            samplings = {info[c][2:] for c in chroma}
            if samplings not in ({(1, 1)}, {(2, 2)}):
                raise ImageReadError(path, f"OpenEXR chroma sampling {sorted(samplings)} is not "
                                           "supported (only 1 x 1 or 2 x 2)")
        for c in ["Y"] + chroma:
            if info[c][1] == 0:
                raise ImageReadError(path, f"OpenEXR luminance/chroma channel {c} is uint")
        return "yc", ["Y"] + chroma
    where = " in its first part" if part.name is not None else ""
    raise ImageReadError(path, f"OpenEXR file has no R, G, B or Y channels{where} "
                               f"(channels: {found}); layered files need unprefixed RGB")


def _exr_library_read(path: str, names: list[str], part_name: str | None) -> dict[str, np.ndarray]:
    """Decode the first part with the OpenEXR bindings; return the wanted channels' arrays."""
    import OpenEXR

    f = OpenEXR.File(path, separate_channels=True)
    # The bindings drop a part whose pixels fail to decode (printing a warning on stderr)
    # instead of raising, so part 0 of what they return may be missing or another part.
    try:
        header = f.header(0)
        channels = f.channels(0)
    except (ValueError, IndexError):
        raise RuntimeError("the pixel data could not be decoded") from None
    if part_name is not None and header.get("name") != part_name:
        raise RuntimeError("the first part's pixel data could not be decoded")
    out = {}
    for name in names:
        if name not in channels or channels[name].pixels is None:
            raise RuntimeError(f"channel {name} could not be decoded")
        out[name] = np.asarray(channels[name].pixels)
    return out


def _exr_worker_main() -> None:
    """Child-process entry point of the safe EXR read: argv = path, out.npz, part name, names."""
    path, out, part_name, *names = sys.argv[1:]
    arrays = _exr_library_read(path, names, part_name or None)
    np.savez(out, *[arrays[n] for n in names])


def _exr_subprocess_read(path, names, part_name, timeout):
    package_parent = str(pathlib.Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryDirectory(prefix="hdrjax-exr-") as tmp:
        out = os.path.join(tmp, "pixels.npz")
        cmd = [sys.executable, "-c", "from hdrjax.io import _exr_worker_main; _exr_worker_main()",
               path, out, part_name or "", *names]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ImageReadError(path, f"OpenEXR decoder did not finish within {timeout:g} s "
                                       "(corrupt file?)") from None
        if proc.returncode < 0:
            try:
                sig = signal.Signals(-proc.returncode).name
            except ValueError:
                sig = f"signal {-proc.returncode}"
            raise ImageReadError(path, f"OpenEXR decoder crashed ({sig}): corrupt file")
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            # The library's own diagnosis ("(EXR_ERR_...) ...") beats the traceback's last line.
            library = [ln.split(": (EXR_ERR", 1)[-1] for ln in lines if "(EXR_ERR" in ln]
            detail = ("(EXR_ERR" + library[0]) if library else (lines[-1] if lines else "decoder failed")
            raise ImageReadError(path, f"corrupt OpenEXR data ({detail})")
        with np.load(out) as z:
            return {name: z[f"arr_{i}"] for i, name in enumerate(names)}


def _read_exr(path: str, *, safe: bool) -> np.ndarray:
    parts = _parse_exr(path)
    part = parts[0]
    kind, names = _select_channels(path, part)
    if safe:
        timeout = float(os.environ.get(_SAFE_EXR_TIMEOUT_ENV, _SAFE_EXR_DEFAULT_TIMEOUT))
        arrays = _exr_subprocess_read(path, names, part.name, timeout)
    else:
        try:
            arrays = _exr_library_read(path, names, part.name)
        except ImageReadError:
            raise
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - the bindings raise assorted types on bad data
            message = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ImageReadError(path, f"corrupt OpenEXR data ({message})") from None
    info = {c[0]: c for c in part.channels}
    for name in names:
        _, ptype, xs, ys = info[name]
        want = (part.height // ys, part.width // xs)
        got = arrays[name]
        if got.shape != want:
            raise ImageReadError(path, f"OpenEXR channel {name} decoded to shape {got.shape}, "
                                       f"header says {want}")
    if kind == "rgb":
        image = np.stack([arrays[c].astype(np.float32) for c in names], axis=-1)
    else:
        yw = _luminance_weights(path, part.chromaticities)
        half = all(info[c][1] == 1 for c in names)
        y = arrays["Y"].astype(np.float32)
        if len(names) == 1:
            image = np.repeat(y[..., None], 3, axis=-1)
        else:
            image = _yca_to_rgb(y, arrays["RY"].astype(np.float32), arrays["BY"].astype(np.float32),
                                yw, subsampled=info["RY"][2] == 2, half=half)
    return image


# ----------------------------------------------------------------- EXR: luminance / chroma

# Reconstruction taps of ImfRgbaYca's reconstructChroma{Horiz,Vert}: the weight of the
# samples at odd distances 1, 3, ..., 13 from a missing (odd) position.
_CHROMA_TAPS = np.array([0.627123, -0.186077, 0.087929, -0.043159, 0.019597, -0.007540,
                         0.002128], dtype=np.float32)
_REC709_CHROMATICITIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


def _luminance_weights(path, chromaticities) -> np.ndarray:
    """RGB -> Y weights from primaries and white point (ImfRgbaYca computeYw)."""
    c = _REC709_CHROMATICITIES if chromaticities is None else chromaticities
    rx, ry, gx, gy, bx, by, wx, wy = (float(v) for v in c)
    try:
        if min(ry, gy, by, wy) <= 0:
            raise np.linalg.LinAlgError
        primaries = np.array([[rx / ry, gx / gy, bx / by], [1.0, 1.0, 1.0],
                              [(1 - rx - ry) / ry, (1 - gx - gy) / gy, (1 - bx - by) / by]])
        white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
        scale = np.linalg.solve(primaries, white)
    except np.linalg.LinAlgError:
        raise ImageReadError(path, f"invalid OpenEXR chromaticities {tuple(c)}") from None
    if not np.all(np.isfinite(scale)) or scale.sum() == 0:
        raise ImageReadError(path, f"invalid OpenEXR chromaticities {tuple(c)}")
    return (scale / scale.sum()).astype(np.float32)


def _upsample_chroma(samples: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Chroma sampled at even positions -> all n positions along `axis` (edge samples repeat)."""
    m = samples.shape[axis]
    odd = n // 2  # odd positions 2k+1, k = 0 .. odd-1
    k = np.arange(odd)
    acc = 0
    for t, w in enumerate(_CHROMA_TAPS):
        left = np.take(samples, np.clip(k - t, 0, m - 1), axis=axis)
        right = np.take(samples, np.clip(k + t + 1, 0, m - 1), axis=axis)
        acc = acc + w * (left + right)
    shape = list(samples.shape)
    shape[axis] = n
    out = np.empty(shape, dtype=np.float32)
    even_idx = [slice(None)] * len(shape)
    odd_idx = [slice(None)] * len(shape)
    even_idx[axis] = slice(0, n, 2)
    odd_idx[axis] = slice(1, n, 2)
    out[tuple(even_idx)] = np.take(samples, np.arange((n + 1) // 2), axis=axis)
    out[tuple(odd_idx)] = acc
    return out


def _round_half(x: np.ndarray, enabled: bool) -> np.ndarray:
    # The library keeps every intermediate in an Rgba of halves.
    return x.astype(np.float16).astype(np.float32) if enabled else x


def _chroma_rows(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Vertical chroma reconstruction evaluated at (possibly out-of-range) full-res rows."""
    hs = q.shape[0]
    even = rows % 2 == 0
    out = np.empty((rows.size,) + q.shape[1:], dtype=np.float32)
    out[even] = q[np.clip(rows[even] // 2, 0, hs - 1)]
    k = (rows[~even] - 1) // 2
    acc = 0
    for t, w in enumerate(_CHROMA_TAPS):
        acc = acc + w * (q[np.clip(k - t, 0, hs - 1)] + q[np.clip(k + t + 1, 0, hs - 1)])
    out[~even] = acc
    return out


def _yca_to_rgb(y, ry, by, yw, *, subsampled: bool, half: bool) -> np.ndarray:
    """Luminance/chroma -> RGB as OpenEXR's RgbaInputFile (reconstruct, YCAtoRGBA, fixSaturation)."""
    h, w = y.shape
    if subsampled:
        ry = _round_half(_upsample_chroma(ry, w, axis=1), half)
        by = _round_half(_upsample_chroma(by, w, axis=1), half)
        # One extra row above and below: fixSaturation looks at both neighbours. The library
        # clamps rows outside the window to the first row and (a quirk kept here) to row h-2.
        rows = np.arange(-1, h + 1)
        ry = _round_half(_chroma_rows(ry, rows), half)
        by = _round_half(_chroma_rows(by, rows), half)
    else:
        rows = np.clip(np.arange(-1, h + 1), 0, h - 1)
        ry, by = ry[rows], by[rows]
    last = max(h - 2, 0)
    y_rows = np.concatenate([y[:1], y, y[last:last + 1]], axis=0)
    # Planar arithmetic (one 2-D array per channel): reductions over a trailing axis of 3 are slow.
    grey = (ry == 0) & (by == 0)
    r = (ry + 1) * y_rows
    b = (by + 1) * y_rows
    g = (y_rows - r * yw[0] - b * yw[2]) / yw[1]
    planes = [_round_half(np.where(grey, y_rows, c), half) for c in (r, g, b)]
    return np.stack(_fix_saturation(planes, yw, half), axis=-1)


def _saturation(r, g, b):
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    positive = mx > 0
    return np.where(positive, 1 - mn / np.where(positive, mx, 1), 0).astype(np.float32)


def _fix_saturation(planes, yw, half: bool):
    """ImfRgbaYca fixSaturation: desaturate pixels far more saturated than their neighbours.

    `planes` are R, G, B of shape [h + 2, w] (one extra row above and below); returns [h, w]s.
    """
    sat = _saturation(*planes)
    left = np.concatenate([sat[:, :1], sat[:, :-1]], axis=1)
    right = np.concatenate([sat[:, 1:], sat[:, -1:]], axis=1)
    s_mean = np.minimum(np.float32(1), np.float32(0.25) * (left[:-2] + right[:-2] + left[2:] + right[2:]))
    s = sat[1:-1]
    s_max = np.minimum(np.float32(1), 1 - (1 - s_mean) * np.float32(0.25))
    fix = (s > s_mean) & (s > s_max)
    out = [p[1:-1] for p in planes]
    if not fix.any():
        return out
    src = [p[fix] for p in out]
    f = s_max[fix] / s[fix]
    mx = np.maximum(np.maximum(src[0], src[1]), src[2])
    dst = [np.maximum(mx - (mx - c) * f, 0) for c in src]
    y_in = src[0] * yw[0] + src[1] * yw[1] + src[2] * yw[2]
    y_out = dst[0] * yw[0] + dst[1] * yw[1] + dst[2] * yw[2]
    scale = np.where(y_out > 0, y_in / np.where(y_out > 0, y_out, 1), 1)
    out = [p.copy() for p in out]
    for plane, c in zip(out, dst):
        plane[fix] = _round_half((c * scale).astype(np.float32), half)
    return out


# ------------------------------------------------------------------------ Radiance (.hdr)


def _read_radiance(path: str) -> np.ndarray:
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
    _check_size(path, width, height)

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


# ------------------------------------------------------------------------------ LDR files

_PILLOW_FORMATS = {"png": ("PNG",), "jpeg": ("JPEG", "MPO"), "tiff": ("TIFF",)}
_ORIENTATION_TAG = 0x0112


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


def _pillow_rawmode(im) -> str:
    try:
        args = im.tile[0][3]
    except (IndexError, TypeError, AttributeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _read_ldr(path: str, fmt: str) -> np.ndarray:
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
        _check_size(path, width, height)
        if im.format != "MPO":  # MPO = camera JPEG with an embedded preview: use the first image
            try:
                frames = getattr(im, "n_frames", 1)
            except Exception as e:  # noqa: BLE001 - broken frame chains surface here
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
        try:
            orientation = int(im.getexif().get(_ORIENTATION_TAG, 1))
        except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the pixels
            orientation = 1
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
    _check_size(path, arr.shape[1], arr.shape[0])
    return _opencv_to_rgb(path, arr)


# ------------------------------------------------------------------------------------ write


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_kwargs):
    """Yield a file object on a temp file beside `path`; rename it over `path` on success."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"{os.fspath(path)}: atomic_write supports modes w, wt, wb, not {mode!r}")
    target = pathlib.Path(os.fspath(path))
    tmp, fd = _create_temp(target, keep_suffix=False)
    try:
        f = os.fdopen(fd, mode, **open_kwargs)
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path (same folder and extension) that is renamed over `path` on success."""
    target = pathlib.Path(os.fspath(path))
    tmp, fd = _create_temp(target, keep_suffix=True)
    # The name is reserved; the caller's library creates the file itself (or a directory).
    os.close(fd)
    os.unlink(tmp)
    try:
        yield str(tmp)
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"{target}: nothing was written to the temporary path {tmp}")
        if os.path.isfile(tmp):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


def _create_temp(target: pathlib.Path, keep_suffix: bool):
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{target}: folder {folder} does not exist")
    # Libraries such as OpenCV choose the format from the extension, so keep it last.
    suffix = target.suffix if keep_suffix else ""
    for _ in range(100):
        # A dot name so folder globs (`*.png`) never pick up a half-written file.
        tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp{suffix}"
        try:
            # O_EXCL: never reuse a name; mode 0o666 lets the umask decide, like open().
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return tmp, fd
    raise FileExistsError(f"{target}: could not create a temporary file in {folder}")


def _remove(tmp: pathlib.Path) -> None:
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.unlink(tmp)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: pathlib.Path) -> None:
    # Makes the rename itself durable; not possible on every platform / file system.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_image(path, array, *, half: bool = False, bit_depth: int = 8, quality: int = 95) -> None:
    """Write f32[H, W, 3] (or [H, W]) RGB to .exr/.hdr/.png/.jpg/.tif by extension, atomically."""
    path_str = os.fspath(path)
    suffix = pathlib.PurePath(path_str).suffix.lower()
    fmt = _FORMATS.get(suffix)
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
