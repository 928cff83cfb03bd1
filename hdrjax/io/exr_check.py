"""Checks an OpenEXR file's structure in pure Python before the C++ library sees it.

The OpenEXR library trusts its input more than a reader of arbitrary files can afford to
(the fuzzed files in shared/data/exr_damaged crash or hang it). `parse_exr` parses the whole
header (bounded attribute parse, required attributes and their types, sane windows, channel
list, sampling, size limits, chunk count) and every chunk-table entry (inside the file, the
chunk's leader matches its index, its payload fits in the file), and raises `ImageReadError`
naming the file and the first problem. It returns what `hdrjax.io.exr` needs to pick and
check the channels. EXR has no checksums: a bit flip inside compressed pixel data that still
decodes cannot be detected by any reader.
"""
from __future__ import annotations

import math
import os
import struct

import numpy as np

from hdrjax.io.common import MAX_SIDE, ImageReadError, check_size

# All channels of all parts that the EXR library decodes at once (it reads every part).
MAX_EXR_DECODED_BYTES = 8 << 30

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


class ExrPart:
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
    check_size(path, part.width, part.height)

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


def parse_exr(path: str) -> list[ExrPart]:
    """Validate an EXR file's structure in pure Python; raise ImageReadError on any damage."""
    if os.path.getsize(path) == 0:
        _exr_fail(path, "empty file")
    # A read-only np.memmap, not mmap.mmap: views into it may outlive this call inside an
    # exception's traceback, and an explicitly closed mmap would raise BufferError then.
    data = np.memmap(path, dtype=np.uint8, mode="r")
    return _parse_exr_bytes(path, data)


def _parse_exr_bytes(path, data) -> list[ExrPart]:
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

    parts = [ExrPart(i, attrs) for i, attrs in enumerate(headers)]
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
