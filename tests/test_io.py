"""Tests for hdrjax.io: round trips, EXR variants, bad input, damaged EXR sweep, atomic writes."""
import csv
import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import OpenEXR
import pytest
from PIL import Image, ImageOps

from hdrjax import io
from hdrjax.io import exr as io_exr
from hdrjax.io import exr_yca
from hdrjax.io import write as io_write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC709_YW = np.array([0.2126, 0.7152, 0.0722], np.float32)


# ------------------------------------------------------------------------------- helpers


def _hdr_image(h=12, w=10, seed=0):
    rng = np.random.default_rng(seed)
    # Six decades of radiance: what .exr/.hdr must carry.
    return (10.0 ** rng.uniform(-3, 3, (h, w, 3))).astype(np.float32)


def _ldr_image(h=12, w=10, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def _attr(name, type_name, payload):
    return name.encode() + b"\0" + type_name.encode() + b"\0" + struct.pack("<i", len(payload)) + payload


def _raw_exr(channels, width, height, *, origin=(0, 0), extra=b"", version_flags=0):
    """A minimal uncompressed scan-line EXR written by hand (the bindings cannot subsample).

    `channels`: name -> (array, pixel_type 0/1/2 = uint/half/float, x_sampling, y_sampling).
    """
    x0, y0 = origin
    names = sorted(channels)
    chlist = b"".join(
        n.encode() + b"\0" + struct.pack("<iB3xii", channels[n][1], 0, channels[n][2], channels[n][3])
        for n in names) + b"\0"
    box = struct.pack("<4i", x0, y0, x0 + width - 1, y0 + height - 1)
    header = (_attr("channels", "chlist", chlist) + _attr("compression", "compression", b"\0")
              + _attr("dataWindow", "box2i", box) + _attr("displayWindow", "box2i", box)
              + _attr("lineOrder", "lineOrder", b"\0")
              + _attr("pixelAspectRatio", "float", struct.pack("<f", 1))
              + _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0))
              + _attr("screenWindowWidth", "float", struct.pack("<f", 1)) + extra + b"\0")
    dtypes = {0: "<u4", 1: "<f2", 2: "<f4"}
    chunks = []
    for row in range(max(height, 0)):
        y = y0 + row
        payload = b"".join(
            np.ascontiguousarray(channels[n][0][row // channels[n][3]], dtype=dtypes[channels[n][1]]).tobytes()
            for n in names if y % channels[n][3] == 0)
        chunks.append(struct.pack("<ii", y, len(payload)) + payload)
    pos = 8 + len(header) + 8 * len(chunks)
    offsets = []
    for chunk in chunks:
        offsets.append(pos)
        pos += len(chunk)
    return (struct.pack("<iI", 20000630, 2 | version_flags) + header
            + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks))


def _chunk_offsets(data, count):
    """The chunk table of a single-part EXR: skip the attributes, read `count` offsets."""
    pos = 8
    while data[pos] != 0:
        pos = data.index(b"\0", pos) + 1  # name
        pos = data.index(b"\0", pos) + 1  # type
        pos += 4 + struct.unpack_from("<i", data, pos)[0]
    return struct.unpack_from(f"<{count}Q", data, pos + 1)


def _write_exr(path, channels, header=None):
    OpenEXR.File(dict(header or {}), {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(path))


def _rgb_channels(img, dtype=np.float32):
    return {c: img[..., i].astype(dtype) for i, c in enumerate("RGB")}


def _read_quiet(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", io.NonFiniteWarning)
        return io.read_image(path, **kwargs)


def _png_header_only(width, height):
    """A PNG whose IHDR claims width x height (valid CRCs), without pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------ contract


def test_extension_tuples_and_error_contract():
    assert io.HDR_EXTENSIONS == (".hdr", ".exr")
    assert set(io.LDR_EXTENSIONS) == {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
    e = io.ImageReadError("/x/y.exr", "broken")
    assert str(e) == "/x/y.exr: broken" and e.path == "/x/y.exr"
    again = pickle.loads(pickle.dumps(e))  # crosses grain / multiprocessing workers
    assert type(again) is io.ImageReadError and str(again) == str(e) and again.path == e.path


# --------------------------------------------------------------------------- round trips


def test_exr_round_trip_float_and_half(tmp_path):
    img = _hdr_image()
    io.write_image(tmp_path / "f.exr", img)
    np.testing.assert_array_equal(io.read_image(tmp_path / "f.exr"), img)
    os.rename(tmp_path / "f.exr", tmp_path / "F.EXR")  # extensions are case-insensitive
    np.testing.assert_array_equal(io.read_image(tmp_path / "F.EXR"), img)
    io.write_image(tmp_path / "h.exr", img, half=True)
    assert OpenEXR.File(str(tmp_path / "h.exr"), separate_channels=True).channels()["R"].pixels.dtype == np.float16
    np.testing.assert_allclose(io.read_image(tmp_path / "h.exr"), img, rtol=1e-3)
    # Beyond the largest half value: clamped to 65504, never written as Inf.
    io.write_image(tmp_path / "big.exr", np.full((2, 3, 3), 1e6, np.float32), half=True)
    assert io.read_image(tmp_path / "big.exr").max() == 65504.0


def test_hdr_round_trip_within_rgbe_precision(tmp_path):
    img = _hdr_image()
    io.write_image(tmp_path / "a.hdr", img)
    out = io.read_image(tmp_path / "a.hdr")
    assert out.shape == img.shape and out.dtype == np.float32
    # RGBE keeps 8 mantissa bits relative to the brightest channel of each pixel.
    tolerance = 0.01 * img.max(axis=-1, keepdims=True)
    assert np.all(np.abs(out - img) <= tolerance)
    # RGB order: the reds came back as reds (OpenCV's BGR stays inside io).
    assert np.corrcoef(out[..., 0].ravel(), img[..., 0].ravel())[0, 1] > 0.99
    # RGBE cannot store negative values: they are written as 0.
    io.write_image(tmp_path / "neg.hdr", np.array([[[-1.0, 2.0, 4.0]]], np.float32))
    np.testing.assert_allclose(io.read_image(tmp_path / "neg.hdr"), [[[0.0, 2.0, 4.0]]], rtol=0.01)


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("bits", [8, 16])
def test_png_tif_round_trip_is_exact_after_quantisation(tmp_path, ext, bits):
    img = _ldr_image()
    path = tmp_path / f"a{ext}"
    io.write_image(path, img, bit_depth=bits)
    scale = 2 ** bits - 1
    want = np.rint(img * scale) / scale
    np.testing.assert_allclose(io.read_image(path), want, atol=1e-7)
    with Image.open(path) as im:  # the file really has that depth
        assert (";16" in str(im.tile)) == (bits == 16)


def test_jpg_round_trip_and_quality(tmp_path):
    yy, xx = np.mgrid[0:32, 0:48].astype(np.float32)
    img = np.stack([xx / 47, yy / 31, 0.5 + 0 * xx], -1)
    io.write_image(tmp_path / "q95.jpg", img, quality=95)
    io.write_image(tmp_path / "q20.jpeg", img, quality=20)
    good, bad = io.read_image(tmp_path / "q95.jpg"), io.read_image(tmp_path / "q20.jpeg")
    assert np.abs(good - img).mean() < 0.01
    assert np.abs(bad - img).mean() > np.abs(good - img).mean()
    with pytest.raises(ValueError, match="8-bit"):
        io.write_image(tmp_path / "x.jpg", img, bit_depth=16)


def test_write_image_validates_its_input(tmp_path):
    img = _ldr_image()
    with pytest.raises(ValueError, match="extension"):
        io.write_image(tmp_path / "a.bmp", img)
    with pytest.raises(ValueError, match="NaN or Inf"):
        io.write_image(tmp_path / "a.exr", np.full((2, 2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        io.write_image(tmp_path / "a.png", np.zeros((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="bit_depth"):
        io.write_image(tmp_path / "a.png", img, bit_depth=12)
    assert os.listdir(tmp_path) == []
    # Grey [H, W] input is written as three equal channels; LDR values are clipped to [0, 1].
    io.write_image(tmp_path / "g.png", np.array([[-1.0, 0.5], [2.0, 1.0]], np.float32))
    out = io.read_image(tmp_path / "g.png")
    np.testing.assert_allclose(out[..., 0], [[0, 128 / 255], [1, 1]], atol=1e-7)
    assert np.all(out[..., 0] == out[..., 2])


# ------------------------------------------------------------------------ LDR specifics


def test_grey_palette_and_alpha_pngs_become_rgb(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    rgba = rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    Image.fromarray(np.stack([grey, grey // 2], -1), "LA").save(tmp_path / "la.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., :3], "RGB").quantize(16).save(tmp_path / "p.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "l16.png")
    for name in ("l.png", "la.png", "l16.png"):
        out = io.read_image(tmp_path / name)
        assert out.shape == (6, 7, 3)
        np.testing.assert_allclose(out, np.repeat(grey[..., None] / 255.0, 3, -1), atol=1e-6)
    np.testing.assert_allclose(io.read_image(tmp_path / "rgba.png"), rgba[..., :3] / 255.0, atol=1e-7)
    with Image.open(tmp_path / "p.png") as im:
        want = np.asarray(im.convert("RGB")) / 255.0
    np.testing.assert_allclose(io.read_image(tmp_path / "p.png"), want, atol=1e-7)


def test_float_tiff_is_read_as_stored_in_rgb_order(tmp_path):
    import cv2

    rgb = _hdr_image(5, 4)
    rgb[0, 0, 1] = np.nan
    cv2.imwrite(str(tmp_path / "f.tif"), np.ascontiguousarray(rgb[..., ::-1]))
    with pytest.warns(io.NonFiniteWarning, match="1 NaN"):
        out = io.read_image(tmp_path / "f.tif")
    want = rgb.copy()
    want[0, 0, 1] = 0
    np.testing.assert_array_equal(out, want)


def test_16bit_rgba_png_keeps_full_depth_and_drops_alpha(tmp_path):
    import cv2

    rng = np.random.default_rng(2)
    bgra = rng.integers(0, 65536, (5, 6, 4), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    out = io.read_image(tmp_path / "a.png")
    np.testing.assert_allclose(out, bgra[..., 2::-1] / 65535.0, atol=1e-7)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im)) / 255.0
    np.testing.assert_allclose(io.read_image(tmp_path / "o.png"), want, atol=1e-7)


def _exif_block(tag_type, count, value):
    """Little-endian TIFF/EXIF bytes with one IFD entry for the orientation tag (0x0112)."""
    entry = struct.pack("<HHI", 0x0112, tag_type, count) + value.ljust(4, b"\0")
    return b"II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


@pytest.mark.parametrize("fmt,exif,problem", [
    ("png", _exif_block(3, 1, struct.pack("<H", 9)), "EXIF orientation 9 is not one of 1-8"),
    ("jpg", _exif_block(3, 1, struct.pack("<H", 0)), "EXIF orientation 0 is not one of 1-8"),
    ("jpg", _exif_block(2, 4, b"abc\0"), "EXIF orientation 'abc' is not one of 1-8"),
    ("png", b"\xff" * 20, "cannot read the EXIF block"),  # not a TIFF header: Pillow raises
], ids=["png-9", "jpg-0", "jpg-text", "png-junk"])
def test_unusable_exif_orientation_warns_and_keeps_the_pixels_unrotated(tmp_path, fmt, exif, problem):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    path = tmp_path / f"o.{fmt}"
    Image.fromarray(pixels).save(path, exif=(b"Exif\0\0" + exif) if fmt == "jpg" else exif)
    with Image.open(path) as im:
        want = np.asarray(im.convert("RGB")) / 255.0  # as stored: no rotation
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = io.read_image(path)
    exif_warnings = [w for w in caught if issubclass(w.category, io.ExifWarning)]
    assert len(exif_warnings) == 1, [str(w.message) for w in caught]
    message = exif_warnings[0].message
    assert message.path == str(path) and problem in str(message)
    assert str(message).startswith(f"{path}: ") and str(message).endswith("the image is used unrotated")
    assert exif_warnings[0].filename == __file__  # points at the caller of read_image
    np.testing.assert_allclose(got, want, atol=1e-7)
    assert got.shape == (4, 6, 3)


# ------------------------------------------------------------------------- EXR variants


def test_tiled_exr_written_with_openexr(tmp_path):
    img = _hdr_image(40, 50)
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize, tiles.mode = 16, 16, OpenEXR.ONE_LEVEL
    header = {"type": OpenEXR.tiledimage, "tiles": tiles, "compression": OpenEXR.PIZ_COMPRESSION}
    _write_exr(tmp_path / "t.exr", _rgb_channels(img, np.float16), header)
    np.testing.assert_array_equal(io.read_image(tmp_path / "t.exr"), img.astype(np.float16).astype(np.float32))


def _raw_tiled_exr(img, tile, level_mode, rounding):
    """Uncompressed tiled RGB float EXR by hand, with every mip/rip level (each filled with a
    constant); the bindings can only write level 0."""
    h, w, _ = img.shape
    chlist = b"".join(c.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for c in "BGR") + b"\0"
    box = struct.pack("<4i", 0, 0, w - 1, h - 1)
    header = (_attr("channels", "chlist", chlist) + _attr("compression", "compression", b"\0")
              + _attr("dataWindow", "box2i", box) + _attr("displayWindow", "box2i", box)
              + _attr("lineOrder", "lineOrder", b"\0")
              + _attr("pixelAspectRatio", "float", struct.pack("<f", 1))
              + _attr("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0))
              + _attr("screenWindowWidth", "float", struct.pack("<f", 1))
              + _attr("tiles", "tiledesc", struct.pack("<IIB", tile, tile, level_mode | rounding << 4)) + b"\0")

    def levels(n):  # floor / ceil of log2, plus one (the file-format spec)
        return n.bit_length() if rounding == 0 else (n - 1).bit_length() + 1

    def size(n, level):
        return max(1, -(-n // 2 ** level) if rounding else n // 2 ** level)

    if level_mode == 0:
        pairs = [(0, 0)]
    elif level_mode == 1:
        pairs = [(lv, lv) for lv in range(levels(max(w, h)))]
    else:
        pairs = [(lx, ly) for ly in range(levels(h)) for lx in range(levels(w))]
    chunks = []
    for lx, ly in pairs:
        level = img if (lx, ly) == (0, 0) else np.full((size(h, ly), size(w, lx), 3), lx + 10 * ly, np.float32)
        for ty in range(-(-level.shape[0] // tile)):
            for tx in range(-(-level.shape[1] // tile)):
                t = level[ty * tile:(ty + 1) * tile, tx * tile:(tx + 1) * tile]
                payload = b"".join(t[r, :, k].astype("<f4").tobytes() for r in range(t.shape[0]) for k in (2, 1, 0))
                chunks.append(struct.pack("<5i", tx, ty, lx, ly, len(payload)) + payload)
    pos = 8 + len(header) + 8 * len(chunks)
    offsets = []
    for chunk in chunks:
        offsets.append(pos)
        pos += len(chunk)
    return (struct.pack("<iI", 20000630, 2 | 0x200) + header
            + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks))


@pytest.mark.parametrize("level_mode", [0, 1, 2])  # ONE_LEVEL, MIPMAP, RIPMAP
@pytest.mark.parametrize("rounding", [0, 1])  # ROUND_DOWN, ROUND_UP
def test_mipmapped_and_ripmapped_tiled_exr_give_level_zero(tmp_path, level_mode, rounding):
    img = _hdr_image(13, 16)  # a power of two and not: floor and ceil of log2 differ on one
    (tmp_path / "m.exr").write_bytes(_raw_tiled_exr(img, 8, level_mode, rounding))
    np.testing.assert_array_equal(io.read_image(tmp_path / "m.exr"), img)


@pytest.mark.parametrize("compression", ["NO", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "DWAB"])
def test_scanline_compressions_and_line_orders(tmp_path, compression):
    # 70 rows: a partial last chunk for every lines-per-chunk value. Smooth, so that the lossy
    # codecs (PXR24, B44, DWAB) stay close.
    yy, xx = np.mgrid[0:70, 0:9] / np.float32(70)
    img = (10.0 ** np.stack([2 * np.sin(3 * yy), xx - 1, yy + xx], -1)).astype(np.float16)
    header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION"),
              "lineOrder": OpenEXR.DECREASING_Y}
    _write_exr(tmp_path / "c.exr", _rgb_channels(img, np.float16), header)
    out = io.read_image(tmp_path / "c.exr")
    lossless = compression in ("NO", "RLE", "ZIPS", "ZIP", "PIZ")
    np.testing.assert_allclose(out, img, rtol=0 if lossless else 0.05)


def test_single_channel_y_exr_is_grey(tmp_path):
    y = _hdr_image()[..., 0].astype(np.float16)
    _write_exr(tmp_path / "y.exr", {"Y": y})
    out = io.read_image(tmp_path / "y.exr")
    np.testing.assert_array_equal(out, np.repeat(y[..., None].astype(np.float32), 3, -1))


@pytest.mark.parametrize("subsampled", [True, False])
def test_luminance_chroma_exr_is_converted_to_rgb(tmp_path, subsampled):
    # Display-P3 primaries: the luminance weights must come from the file's chromaticities.
    p3 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)
    p3_yw = np.array([0.2289746, 0.6917385, 0.0792869], np.float32)
    rng = np.random.default_rng(3)
    h, w = 24, 30
    yy, xx = np.mgrid[0:h, 0:w] / np.float32(max(h, w))
    # Sharp luminance, smooth colour: what luminance/chroma files are made for.
    colour = np.stack([0.6 + 0.3 * xx, 0.5 + 0 * xx, 0.3 + 0.3 * yy], -1).astype(np.float32)
    img = colour * (10 ** rng.uniform(-1, 1, (h, w, 1))).astype(np.float32)
    y = img @ p3_yw
    ry, by = (img[..., 0] - y) / y, (img[..., 2] - y) / y
    s = 2 if subsampled else 1
    chans = {"Y": (y, 1, 1, 1), "RY": (ry[::s, ::s], 1, s, s), "BY": (by[::s, ::s], 1, s, s)}
    extra = _attr("chromaticities", "chromaticities", struct.pack("<8f", *p3))
    (tmp_path / "yc.exr").write_bytes(_raw_exr(chans, w, h, extra=extra))
    out = io.read_image(tmp_path / "yc.exr")
    assert out.shape == (h, w, 3)
    np.testing.assert_allclose(out @ p3_yw, y, rtol=3e-3)  # luminance is kept
    np.testing.assert_allclose(out, img, rtol=0.02 if subsampled else 3e-3)


def test_chroma_upsampling_reproduces_linear_ramps():
    samples = np.arange(40, dtype=np.float32)[:, None] * 2.0 + 5  # value at even position 2k
    full = exr_yca._upsample_chroma(samples, 80, axis=0)[:, 0]
    want = np.arange(80, dtype=np.float32) + 5
    # The 27-tap filter is exact on linear ramps away from the repeated edge samples.
    np.testing.assert_allclose(full[14:-14], want[14:-14], rtol=1e-5)
    np.testing.assert_array_equal(full[::2], samples[:, 0])


def test_fix_saturation_desaturates_an_isolated_pixel_keeping_luminance():
    grey = np.full((3, 3), 0.5, np.float32)
    r, g, b = grey.copy(), grey.copy(), grey.copy()
    r[1, 1], g[1, 1], b[1, 1] = 1.0, 0.1, 0.1  # saturation 0.9 among grey neighbours
    out = exr_yca._fix_saturation([r, g, b], REC709_YW, half=False)
    pixel = np.array([c[0, 1] for c in out])  # output row 0 is input row 1
    # Neighbours have saturation 0, so the cap is 1 - (1 - 0) / 4 = 0.75.
    assert 1 - pixel.min() / pixel.max() == pytest.approx(0.75, abs=1e-5)
    assert pixel @ REC709_YW == pytest.approx(np.array([1.0, 0.1, 0.1]) @ REC709_YW, rel=1e-5)
    assert out[0][0, 0] == 0.5  # unsaturated pixels are untouched


def test_rgba_exr_keeps_premultiplied_rgb_where_alpha_is_zero(tmp_path):
    img = _hdr_image(6, 5)
    alpha = np.zeros((6, 5), np.float16)  # A == 0, RGB != 0: additive light (a glow)
    _write_exr(tmp_path / "a.exr", {**_rgb_channels(img, np.float16), "A": alpha})
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.exr"), img.astype(np.float16).astype(np.float32))


def test_uint_exr_channels(tmp_path):
    u = np.arange(30, dtype=np.uint32).reshape(5, 6)
    _write_exr(tmp_path / "u.exr", {"R": u, "G": u * 2, "B": u * 3})
    out = io.read_image(tmp_path / "u.exr")
    np.testing.assert_array_equal(out[..., 2], (u * 3).astype(np.float32))


def test_data_window_with_offset_origin(tmp_path):
    img = _hdr_image(6, 8)
    data = _raw_exr({c: (img[..., i], 2, 1, 1) for i, c in enumerate("RGB")}, 8, 6, origin=(-3, 7))
    (tmp_path / "o.exr").write_bytes(data)
    np.testing.assert_array_equal(io.read_image(tmp_path / "o.exr"), img)


def test_multipart_and_layered_exr(tmp_path):
    img = _hdr_image(8, 9)
    z = img[..., 0].copy()
    OpenEXR.File([OpenEXR.Part({}, _rgb_channels(img), "beauty"),
                  OpenEXR.Part({}, {"Z": z}, "depth")]).write(str(tmp_path / "mp.exr"))
    np.testing.assert_array_equal(io.read_image(tmp_path / "mp.exr"), img)
    OpenEXR.File([OpenEXR.Part({}, {"Z": z}, "depth"),
                  OpenEXR.Part({}, _rgb_channels(img), "beauty")]).write(str(tmp_path / "zfirst.exr"))
    with pytest.raises(io.ImageReadError, match=r"no R, G, B or Y channels in its first part \(channels: Z\)"):
        io.read_image(tmp_path / "zfirst.exr")
    _write_exr(tmp_path / "layer.exr", {f"diffuse.{c}": img[..., i] for i, c in enumerate("RGB")})
    with pytest.raises(io.ImageReadError, match="diffuse.B, diffuse.G, diffuse.R"):
        io.read_image(tmp_path / "layer.exr")
    _write_exr(tmp_path / "rg.exr", {"R": z, "G": z})
    with pytest.raises(io.ImageReadError, match="not all of R, G, B"):
        io.read_image(tmp_path / "rg.exr")


def test_non_finite_and_negative_values_are_replaced_and_reported(tmp_path):
    img = np.full((4, 5, 3), 2.0, np.float32)
    img[0, 0, 0] = np.nan
    img[0, 1, :] = np.inf
    img[1, 0, 2] = -np.inf
    img[2, 2, 1] = -0.5
    img[3, 4, 0] = 7.5  # the largest finite value
    _write_exr(tmp_path / "bad.exr", _rgb_channels(img))
    with pytest.warns(io.NonFiniteWarning) as record:
        out = io.read_image(tmp_path / "bad.exr")
    warning = record[0].message
    assert warning.path == str(tmp_path / "bad.exr") and str(tmp_path / "bad.exr") in str(warning)
    assert warning.counts == {"nan": 1, "posinf": 3, "neginf": 1, "negative": 1}
    assert "1 NaN -> 0" in str(warning) and "3 +Inf -> 7.5" in str(warning)
    assert out[0, 0, 0] == 0 and np.all(out[0, 1] == 7.5) and out[1, 0, 2] == 0 and out[2, 2, 1] == 0
    assert np.isfinite(out).all() and out.min() == 0
    # Half infinities too; a clean file warns about nothing.
    _write_exr(tmp_path / "h.exr", _rgb_channels(np.where(np.isnan(img), 1, img), np.float16))
    with pytest.warns(io.NonFiniteWarning, match="3 \\+Inf"):
        io.read_image(tmp_path / "h.exr")
    io.write_image(tmp_path / "ok.exr", _hdr_image())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io.read_image(tmp_path / "ok.exr")


# ---------------------------------------------------------------------- Radiance .hdr


@pytest.mark.parametrize("line,transform", [
    ("+Y {h} +X {w}", lambda s: s[::-1]),
    ("-Y {h} -X {w}", lambda s: s[:, ::-1]),
    ("+X {h} -Y {w}", lambda s: s.transpose(1, 0, 2)),
    ("-X {h} +Y {w}", lambda s: s.transpose(1, 0, 2)[::-1, ::-1]),
])
def test_radiance_orientations(tmp_path, line, transform):
    img = _hdr_image(5, 7)
    io.write_image(tmp_path / "std.hdr", img)
    stored = io.read_image(tmp_path / "std.hdr")  # scan lines as stored, in file order
    data = (tmp_path / "std.hdr").read_bytes()
    std_line = b"-Y 5 +X 7"
    assert data.count(std_line) == 1
    (tmp_path / "o.hdr").write_bytes(data.replace(std_line, line.format(h=5, w=7).encode()))
    np.testing.assert_array_equal(io.read_image(tmp_path / "o.hdr"), transform(stored))


def test_radiance_matches_opencv_in_rgb_order(shared_data):
    import cv2

    path = shared_data("train_hdr", "adams_place_bridge_1k.hdr")
    np.testing.assert_array_equal(io.read_image(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1])


# ---------------------------------------------------------------------------- bad input


def test_read_errors_name_the_file_and_the_problem(tmp_path):
    def fails(path, match, **kwargs):
        with pytest.raises(io.ImageReadError, match=match) as info:
            io.read_image(path, **kwargs)
        assert info.value.path == str(path) and str(info.value).startswith(f"{path}: ")

    fails(tmp_path / "missing.exr", "no such file")
    fails(tmp_path, "is a directory", format="png")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    fails(tmp_path / "a.bmp", "unknown image extension '.bmp'")
    fails(tmp_path / "a.bmp", "unknown image format 'bmp'", format="bmp")
    for ext in (".exr", ".hdr", ".png", ".jpg", ".tif"):
        (tmp_path / f"empty{ext}").write_bytes(b"")
        fails(tmp_path / f"empty{ext}", "empty file|not a readable")
    (tmp_path / "text.exr").write_bytes(b"hello world, not an image")
    fails(tmp_path / "text.exr", "bad magic number")
    (tmp_path / "text.hdr").write_bytes(b"hello world, not an image")
    fails(tmp_path / "text.hdr", "not a Radiance")
    (tmp_path / "text.png").write_bytes(b"hello world, not an image")
    fails(tmp_path / "text.png", "not a readable PNG")

    # Truncated files of every format.
    img = _ldr_image(64, 64)
    for name in ("t.png", "t.jpg", "t.hdr", "t16.png", "t.tif"):
        full = tmp_path / f"full_{name}"
        io.write_image(full, img, bit_depth=16 if "16" in name else 8)
        data = full.read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) * 2 // 3])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow: "Corrupt EXIF data"
            fails(tmp_path / name, "truncated|corrupt")

    # Sizes: zero, absurd (refused from the header, before any pixel memory exists).
    zero = _raw_exr({"Y": (np.zeros((0, 4)), 2, 1, 1)}, 4, 0)
    (tmp_path / "zero.exr").write_bytes(zero)
    fails(tmp_path / "zero.exr", "zero-size image")
    huge = _raw_exr({"Y": (np.zeros((1, 40000)), 2, 1, 1)}, 40000, 1)
    (tmp_path / "wide.exr").write_bytes(huge)
    fails(tmp_path / "wide.exr", r"image too large: 40000 x 1 \(limits: 32768 per side")
    (tmp_path / "wide.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 30000\n")
    fails(tmp_path / "wide.hdr", "image too large: 30000 x 20000")
    (tmp_path / "wide.png").write_bytes(_png_header_only(40000, 10))
    fails(tmp_path / "wide.png", "image too large")
    (tmp_path / "xyze.hdr").write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_xyze\n\n-Y 2 +X 2\n" + b"\0" * 16)
    fails(tmp_path / "xyze.hdr", "XYZE")

    # Animated / multi-frame and CMYK input.
    frames = [Image.fromarray((img * 255).astype(np.uint8)), Image.fromarray((255 - img * 255).astype(np.uint8))]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    fails(tmp_path / "anim.png", r"multi-frame image \(2 frames\)")
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    fails(tmp_path / "pages.tif", "multi-frame")
    frames[0].convert("CMYK").save(tmp_path / "cmyk.jpg")
    fails(tmp_path / "cmyk.jpg", "CMYK")
    frames[0].convert("CMYK").save(tmp_path / "cmyk.tif")
    fails(tmp_path / "cmyk.tif", "CMYK")
    frames[0].save(tmp_path / "gif.png", format="GIF")
    fails(tmp_path / "gif.png", "holds GIF data, not PNG")

    # EXR structure: deep data, chroma on odd rows, missing channel.
    (tmp_path / "deep.exr").write_bytes(_raw_exr({"R": (np.zeros((2, 2)), 2, 1, 1)}, 2, 2, version_flags=0x800))
    fails(tmp_path / "deep.exr", "deep")
    odd = {"Y": (np.ones((4, 4)), 1, 1, 1), "RY": (np.zeros((2, 2)), 1, 2, 2), "BY": (np.zeros((2, 2)), 1, 2, 2)}
    (tmp_path / "odd.exr").write_bytes(_raw_exr(odd, 4, 4, origin=(0, 1)))
    fails(tmp_path / "odd.exr", "sampling")


def test_library_errors_after_validation_become_image_read_errors(tmp_path):
    # Compressible pixels, so each chunk holds real zlib data that the header check cannot
    # verify; corrupting it must still end as ImageReadError, in process and in a child.
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    _write_exr(tmp_path / "ok.exr", {"R": ramp, "G": ramp, "B": ramp}, {"compression": OpenEXR.ZIP_COMPRESSION})
    data = bytearray((tmp_path / "ok.exr").read_bytes())
    chunk2 = _chunk_offsets(bytes(data), count=4)[2]
    size = struct.unpack_from("<i", data, chunk2 + 4)[0]
    assert size < 64 * 16 * 3 * 4  # really compressed
    for i in range(chunk2 + 8, chunk2 + 8 + size):
        data[i] ^= 0x55
    (tmp_path / "bad.exr").write_bytes(bytes(data))
    for safe in (False, True):
        with pytest.raises(io.ImageReadError, match="corrupt OpenEXR data"):
            io.read_image(tmp_path / "bad.exr", safe_exr=safe)


# ---------------------------------------------------------------- damaged EXR sweep

_SWEEP = r"""
import json, sys, warnings
from hdrjax import io
warnings.simplefilter("ignore")
for path in sys.argv[1:]:
    print("@@" + json.dumps({"start": path}), flush=True)
    try:
        io.read_image(path, format="exr")
        result = "read"
    except io.ImageReadError as e:
        ok = e.path == path and str(e).startswith(path + ": ") and len(str(e)) > len(path) + 2
        result = "ImageReadError" if ok else "badly formed ImageReadError: " + str(e)
    except BaseException as e:
        result = type(e).__name__ + ": " + str(e)
    print("@@" + json.dumps({"path": path, "result": result}), flush=True)
"""


def _truncations(path, count=40):
    """Copies of a valid file cut at `count` points spread over its length (never the end)."""
    data = path.read_bytes()
    cuts = np.unique(np.linspace(1, len(data) - 1, count).astype(int))
    out = []
    for cut in cuts:
        p = path.with_name(f"{path.stem}_cut{cut}.exr")
        p.write_bytes(data[:cut])
        out.append(str(p))
    return out


def test_every_damaged_exr_raises_image_read_error(tmp_path, shared_data):
    folder = shared_data("exr_damaged")
    damaged = sorted(str(p) for p in folder.iterdir())
    assert len(damaged) == 93  # 92 fuzzed files + README.rst (also not an EXR)
    # Structural damage of our own on valid scan-line, tiled and multi-part files.
    img = _hdr_image(40, 33)
    _write_exr(tmp_path / "scan.exr", _rgb_channels(img, np.float16), {"compression": OpenEXR.PIZ_COMPRESSION})
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize = 16, 16
    _write_exr(tmp_path / "tiled.exr", _rgb_channels(img), {"type": OpenEXR.tiledimage, "tiles": tiles})
    OpenEXR.File([OpenEXR.Part({}, _rgb_channels(img), "a"),
                  OpenEXR.Part({}, {"Z": img[..., 0].copy()}, "b")]).write(str(tmp_path / "multi.exr"))
    cut = [f for name in ("scan", "tiled", "multi") for f in _truncations(tmp_path / f"{name}.exr")]

    # In a child process: a crash of the C++ library must fail this test, not kill pytest.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _SWEEP, *damaged, *cut], capture_output=True,
                          text=True, timeout=300, env=env, cwd=REPO)
    records = [json.loads(line[2:]) for line in proc.stdout.splitlines() if line.startswith("@@")]
    results = {r["path"]: r["result"] for r in records if "result" in r}
    started = [r["start"] for r in records if "start" in r]
    last = started[-1] if started else "?"
    assert proc.returncode == 0, f"sweep died (rc {proc.returncode}) on {last}\n{proc.stderr[-2000:]}"
    wrong = {p: r for p, r in results.items() if r != "ImageReadError"}
    assert not wrong, wrong
    assert len(results) == len(damaged) + len(cut)
    # Without the format override the extension decides, and these names are not images.
    with pytest.raises(io.ImageReadError, match="unknown image extension"):
        io.read_image(folder / "heap_overflow_exr")


def test_safe_exr_reads_in_a_child_process(tmp_path, monkeypatch):
    img = _hdr_image()
    io.write_image(tmp_path / "a.exr", img, half=True)
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.exr", safe_exr=True), io.read_image(tmp_path / "a.exr"))
    calls = []
    real = io_exr._subprocess_read
    monkeypatch.setattr(io_exr, "_subprocess_read", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setenv("HDRJAX_SAFE_EXR", "1")
    io.read_image(tmp_path / "a.exr")
    assert len(calls) == 1
    monkeypatch.setenv("HDRJAX_SAFE_EXR", "0")
    io.read_image(tmp_path / "a.exr")
    assert len(calls) == 1


@pytest.mark.parametrize("outcome,message", [
    (subprocess.CompletedProcess([], -11, b"", b""), r"crashed \(SIGSEGV\)"),
    (subprocess.TimeoutExpired([], 7.0), "did not finish within 7 s"),
    (subprocess.CompletedProcess([], 1, b"", b"x.exr: (EXR_ERR_CORRUPT_CHUNK) bad chunk\nTraceback\nValueError: y\n"),
     r"\(EXR_ERR_CORRUPT_CHUNK\) bad chunk"),
])
def test_safe_exr_maps_child_failures_to_image_read_error(tmp_path, monkeypatch, outcome, message):
    io.write_image(tmp_path / "a.exr", _hdr_image())

    def fake_run(*args, **kwargs):
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(io_exr.subprocess, "run", fake_run)
    monkeypatch.setenv("HDRJAX_SAFE_EXR_TIMEOUT", "7")
    with pytest.raises(io.ImageReadError, match=message):
        io.read_image(tmp_path / "a.exr", safe_exr=True)


# -------------------------------------------------------------------- real photographs


def _luminance_stats(img):
    y = img.astype(np.float64) @ REC709_YW.astype(np.float64)
    p = np.percentile(y, [1, 50, 99, 99.9])
    return {"min": float(img.min()), "max": float(img.max()), "p1": p[0], "p50": p[1], "p99": p[2],
            "p99.9": p[3], "Ymax": float(y.max())}


# name -> (height, width, lower bound of the brightest value, lower bound of Ymax / p50)
_REAL = {"CandleGlass.exr": (810, 1000, 100.0, 1e5), "Cannon.exr": (566, 780, 2.0, 5.0),
         "Desk.exr": (874, 644, 100.0, 500.0), "MtTamNorth.exr": (796, 1198, 5.0, 100.0)}


@pytest.mark.parametrize("name", sorted(_REAL))
def test_real_hdr_photographs(name, shared_data):
    path = shared_data("real_hdr", name)
    h, w, brightest, ratio = _REAL[name]
    img = _read_quiet(path)
    stats = _luminance_stats(img)
    print(f"\n{name}: {w}x{h} " + " ".join(f"{k}={v:.4g}" for k, v in stats.items()))
    assert img.shape == (h, w, 3) and np.isfinite(img).all() and img.min() >= 0
    assert stats["max"] > brightest and stats["Ymax"] / stats["p50"] > ratio
    raw = OpenEXR.File(str(path), separate_channels=True).channels()
    if "R" in raw:
        # RGB(A) files: exactly the stored RGB (negatives from lossy coding clamped), alpha ignored.
        want = np.maximum(np.stack([raw[c].pixels.astype(np.float32) for c in "RGB"], -1), 0)
        np.testing.assert_array_equal(img, want)
        if "A" in raw:
            glow = (raw["A"].pixels == 0) & (want.max(-1) > 0)
            if name == "CandleGlass.exr":
                assert glow.sum() > 1000  # premultiplied light with zero coverage survives
            assert np.all(img[glow] == want[glow])
    else:
        # Luminance/chroma: colours must agree with the file's own RGB preview image.
        preview = np.asarray(OpenEXR.File(str(path), header_only=True).header()["preview"].pixels)
        pv = (np.stack([preview[c] for c in "rgb"], -1) / 255.0) ** 2.2
        ph, pw = pv.shape[:2]
        ys, xs = (np.arange(ph + 1) * h) // ph, (np.arange(pw + 1) * w) // pw
        small = np.array([[img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean((0, 1)) for j in range(pw)] for i in range(ph)])
        ours = np.log((small[..., 0] + 1e-4) / (small[..., 2] + 1e-4))
        theirs = np.log((pv[..., 0] + 1e-3) / (pv[..., 2] + 1e-3))
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.75
        np.testing.assert_allclose(img @ REC709_YW, raw["Y"].pixels.astype(np.float32), rtol=0.02, atol=1e-3)


def test_train_hdr_files_match_their_manifest_statistics(shared_data):
    folder = shared_data("train_hdr")
    with open(folder / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    exr = [r for r in rows if r["file"].endswith(".exr")]
    hdr = [r for r in rows if r["file"].endswith(".hdr")][::8]
    assert len(exr) == 5 and len(hdr) >= 9
    for row in exr + hdr:
        img = _read_quiet(folder / row["file"])
        assert img.shape == (int(row["height"]), int(row["width"]), 3)
        y = img.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])
        got = (np.percentile(y, 50), np.percentile(y, 99.9), y.max())
        want = tuple(float(row[k]) for k in ("p50", "p99.9", "max"))
        np.testing.assert_allclose(got, want, rtol=1e-3, err_msg=row["file"])
        assert got[2] / got[0] >= 46  # the README's dynamic-range promise


# ------------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "metrics.csv"
    with io.atomic_write(target, "w", newline="") as f:
        csv.writer(f).writerows([["step", "loss"], [1, 0.5]])
    assert target.read_bytes() == b"step,loss\r\n1,0.5\r\n"
    with pytest.raises(RuntimeError, match="boom"):
        with io.atomic_write(target, "w") as f:
            f.write("half a line")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"step,loss\r\n1,0.5\r\n"  # not clobbered
    assert os.listdir(tmp_path) == ["metrics.csv"]  # no temporary left behind
    with pytest.raises(RuntimeError):
        with io.atomic_write(tmp_path / "new.bin") as f:
            f.write(b"\0" * 100)
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == ["metrics.csv"]
    with pytest.raises(ValueError, match="modes"):
        with io.atomic_write(target, "a"):
            pass
    with io.atomic_write(tmp_path / "b.bin") as f:
        f.write(b"\1\2")
    assert (tmp_path / "b.bin").read_bytes() == b"\1\2"


def test_atomic_path_keeps_extension_and_cleans_up(tmp_path):
    target = tmp_path / "out.png"
    with io.atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".png") and not os.path.exists(tmp)
        Image.new("RGB", (2, 2)).save(tmp)
    assert target.exists() and os.listdir(tmp_path) == ["out.png"]
    before = target.read_bytes()
    with pytest.raises(OSError):
        with io.atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"partial")
            raise OSError("disk full")
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["out.png"]
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with io.atomic_path(tmp_path / "never.exr"):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with io.atomic_path(tmp_path / "no" / "such" / "dir.png"):
            pass


def test_write_image_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    good = _hdr_image()
    io.write_image(tmp_path / "a.exr", good)

    def broken(tmp, image, half):
        with open(tmp, "wb") as f:
            f.write(b"v/1\x01 half an EXR")
        raise OSError("simulated crash in the middle of writing")

    monkeypatch.setattr(io_write, "_write_exr", broken)
    with pytest.raises(OSError, match="simulated"):
        io.write_image(tmp_path / "a.exr", _hdr_image(seed=1))
    with pytest.raises(OSError, match="simulated"):
        io.write_image(tmp_path / "b.exr", good)
    assert sorted(os.listdir(tmp_path)) == ["a.exr"]
    np.testing.assert_array_equal(io.read_image(tmp_path / "a.exr"), good)
