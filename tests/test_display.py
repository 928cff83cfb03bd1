"""HDR files screens show (hdrjax.display): the mapping, the curves, round trips through the codecs.

Round trips through the codecs are bounded by `assert_round_trip` (tests/conftest.py: a mean,
a median and a 99th-percentile error in display light, sized for lossy codecs that keep the
mapping).
"""
import io

import numpy as np
import pytest
from PIL import Image

from hdrjax.display import avif, brackets, files, mapping, transfer, ultrahdr
from hdrjax.errors import HdrjaxError

def scene(h=64, w=96):
    """Smooth colours below white, a recovered highlight up to 4x white, one pixel over the cap."""
    yy, xx = np.mgrid[0:h, 0:w]
    hdr = 0.3 + 0.25 * np.sin(xx[..., None] / 9.0 + np.arange(3)) * np.cos(yy[..., None] / 7.0)
    hdr = hdr + 3.5 * np.exp(-((yy - h / 2) ** 2 + (xx - 0.6 * w) ** 2) / 80.0)[..., None]
    hdr[5, 5] = (12.0, 6.0, 3.0)
    return hdr.astype(np.float32)


# ----------------------------------------------------------------------------- curves


def test_pq_and_hlg_meet_the_published_values_and_invert():
    # BT.2408: HDR reference white 203 cd/m² is 58 % PQ and 75 % HLG; PQ(100) = 0.508, PQ(1000) = 0.752.
    np.testing.assert_allclose(transfer.pq_encode([100.0, 203.0, 1000.0, 10000.0]), [0.5081, 0.5807, 0.7518, 1.0],
                               atol=1e-4)
    white = np.full(3, 203.0, np.float32)
    np.testing.assert_allclose(transfer.hlg_encode(white), 0.75, atol=5e-4)
    np.testing.assert_allclose(transfer.hlg_encode(np.full(3, 1000.0)), 1.0, atol=1e-6)
    nits = np.random.default_rng(0).uniform(0.01, 1000.0, (100, 3)).astype(np.float32)
    np.testing.assert_allclose(transfer.pq_decode(transfer.pq_encode(nits)), nits, rtol=1e-4)
    # HLG inverts where its reference display can show the colour: BT.709 colours up to 400
    # cd/m² (a saturated blue near 1000 cd/m² lies beyond it and is clipped, hlg_encode's doc).
    rgb2020 = transfer.bt709_to_bt2020(np.random.default_rng(0).uniform(0.01, 400.0, (100, 3)))
    np.testing.assert_allclose(transfer.hlg_decode(transfer.hlg_encode(rgb2020)), rgb2020, rtol=1e-4)
    assert np.all(transfer.hlg_encode(np.zeros(3)) == 0)


def test_primaries_conversion_keeps_white_and_inverts():
    np.testing.assert_allclose(transfer.bt709_to_bt2020(np.ones(3)), 1.0, atol=1e-6)
    rgb = np.random.default_rng(1).random((50, 3)).astype(np.float32)
    np.testing.assert_allclose(transfer.bt2020_to_bt709(transfer.bt709_to_bt2020(rgb)), rgb, atol=1e-6)
    assert transfer.bt709_to_bt2020(rgb).min() >= 0  # BT.709 lies inside BT.2020


# ----------------------------------------------------------------------------- the mapping


def test_display_mapping_keeps_white_caps_the_peak_and_keeps_hue():
    hdr = np.array([[[1.0, 1.0, 1.0], [0.2, 0.1, 0.05], [20.0, 10.0, 5.0], [-1.0, 0.5, 0.5]]], np.float32)
    shown = mapping.to_display(hdr)
    np.testing.assert_allclose(shown[0, :2], hdr[0, :2])  # white and below: unchanged
    np.testing.assert_allclose(shown[0, 2], np.array([20.0, 10.0, 5.0]) * mapping.MAX_HEADROOM / 20.0, rtol=1e-6)
    assert shown[0, 3, 0] == 0  # negatives clamped
    np.testing.assert_allclose(mapping.to_nits(np.ones((1, 1, 3))), mapping.SDR_WHITE_NITS)
    assert mapping.MAX_HEADROOM * mapping.SDR_WHITE_NITS == pytest.approx(mapping.PEAK_NITS)


def test_headroom_and_dynamic_range():
    assert mapping.headroom(np.full((4, 4, 3), 0.5, np.float32)) == 1.0  # nothing above white
    assert mapping.headroom(scene()) == pytest.approx(mapping.MAX_HEADROOM)
    hdr = np.full((10, 100, 3), 0.25, np.float32)
    hdr[:, :50] = 1.0 / 64
    assert mapping.dynamic_range_stops(hdr) == pytest.approx(4.0, abs=1e-4)  # 1/64 .. 1/4
    hdr[:, :50] = 0.0  # black counts as the floor, not as an infinite range
    assert mapping.dynamic_range_stops(hdr) == pytest.approx(np.log2(0.25 / mapping.DR_FLOOR), abs=1e-4)


# ----------------------------------------------------------------------------- Ultra HDR


def test_ultrahdr_round_trip_metadata_and_sdr_base(assert_round_trip):
    hdr = scene()
    data = ultrahdr.encode(hdr)
    assert ultrahdr.is_ultrahdr(data)
    assert b"urn:iso:std:iso:ts:21496:-1" in data  # ISO 21496-1 gain map metadata
    assert data.count(b"\xff\xd8\xff") >= 2  # the base JPEG and the gain map JPEG
    assert_round_trip(ultrahdr.decode(data), mapping.to_display(hdr))
    # The SDR base is the file's first (primary) JPEG: what a viewer without gain maps shows.
    primary = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(ultrahdr.decode_sdr_base(data), primary)
    # libultrahdr's own tone map, as the module doc describes it: close to x / (1 + max(R, G, B)).
    from hdrjax.tonemap import to_srgb_uint8

    shown = mapping.to_display(hdr)
    approx = to_srgb_uint8(shown / (1.0 + shown.max(axis=-1, keepdims=True))).astype(int)
    assert np.abs(ultrahdr.decode_sdr_base(data).astype(int) - approx).mean() < 3.0


def test_ultrahdr_of_a_photo_without_highlights_decodes():
    flat = np.full((16, 16, 3), 0.4, np.float32)  # headroom 1: libultrahdr still needs a peak above white
    np.testing.assert_allclose(ultrahdr.decode(ultrahdr.encode(flat)), 0.4, atol=0.02)


def test_ultrahdr_refuses_images_it_cannot_hold():
    with pytest.raises(HdrjaxError, match="8 to 65535 pixels per side, got 4×3"):
        ultrahdr.encode(np.ones((3, 4, 3), np.float32))


# ----------------------------------------------------------------------------- AVIF


@pytest.mark.parametrize("curve, code", [("pq", 16), ("hlg", 18)])
def test_avif_round_trip_and_colour_description(curve, code, assert_round_trip):
    hdr = scene()
    data = avif.encode(hdr, curve)
    assert data[4:12] == b"ftypavif"
    assert avif.read_cicp(data) == (9, code, 9, True)  # BT.2020, PQ/HLG, BT.2020 matrix, full range
    import imagecodecs

    decoded = imagecodecs.avif_decode(data)
    assert decoded.dtype == np.uint16 and decoded.max() <= 1023  # 10-bit samples
    assert_round_trip(avif.decode(data), mapping.to_display(hdr))


def test_avif_refuses_an_unknown_curve():
    with pytest.raises(ValueError, match="curve must be one of"):
        avif.encode(scene(), "srgb")


# ----------------------------------------------------------------------------- formats and brackets


def test_formats_parse_and_name_their_files(tmp_path):
    assert files.parse_formats("uhdr, AVIF,exr,uhdr") == ("uhdr", "avif", "exr")
    with pytest.raises(ValueError, match="unknown format 'png'"):
        files.parse_formats("exr,png")
    hdr = scene()
    for fmt in files.SUFFIXES:
        path = files.output_path(tmp_path, "desk", fmt)
        files.write(path, fmt, hdr)
        assert path.name == "desk" + files.SUFFIXES[fmt] and path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted("desk" + s for s in files.SUFFIXES.values())


def test_brackets_expose_sort_and_carry_exif():
    stops = brackets.parse_stops("2, -2,0,-2, 0.5")
    assert stops == (-2.0, 0.0, 0.5, 2.0)
    names = brackets.bracket_names("desk", stops)
    assert names == ["desk_b1_-2ev.jpg", "desk_b2_+0ev.jpg", "desk_b3_+0.5ev.jpg", "desk_b4_+2ev.jpg"]
    assert sorted(names) == names
    assert brackets.bracket_names("x", tuple(range(12)))[0] == "x_b01_+0ev.jpg"  # still sorts past 9
    hdr = scene()
    dark, normal = brackets.bracket(hdr, -2.0), brackets.bracket(hdr, 0.0)
    assert normal[32, 57].min() == 255 and dark[32, 57].max() < 255  # the highlight reappears at -2
    im = Image.open(io.BytesIO(brackets.encode_bracket(hdr, -2.0)))
    exif = im.getexif().get_ifd(0x8769)
    assert float(exif[0x9204]) == -2.0 and float(exif[0x829A]) == pytest.approx(0.01 / 4)
    for bad, message in (("-2,x", "not a number"), ("40", "within"), ("nan", "within")):
        with pytest.raises(ValueError, match=message):
            brackets.parse_stops(bad)
