"""Procedural HDR scenes: determinism, dynamic range, light sources, natural statistics."""
import numpy as np
import pytest

from hdrjax.data import procedural
from hdrjax.data.procedural import ProceduralSource, fractal_noise, procedural_scene

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@pytest.fixture(scope="module")
def scenes():
    # 24 scenes of 64x64: enough to see the spread of scene kinds, a fraction of a second.
    return [procedural_scene(7, i, 64) for i in range(24)]


def test_deterministic_per_seed_and_index():
    a = procedural_scene(3, 11, (40, 56))
    b = procedural_scene(3, 11, (40, 56))
    assert a.shape == (40, 56, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, procedural_scene(3, 12, (40, 56)))
    assert not np.array_equal(a, procedural_scene(4, 11, (40, 56)))
    assert not np.array_equal(a, procedural_scene(3, 11, (40, 56), stream=1))


def test_order_of_generation_does_not_matter():
    # No hidden state: generating other scenes in between changes nothing.
    first = procedural_scene(0, 5, 32)
    for i in range(3):
        procedural_scene(1, i, 48)
    np.testing.assert_array_equal(first, procedural_scene(0, 5, 32))


def test_finite_nonnegative_high_dynamic_range(scenes):
    ratios = []
    for x in scenes:
        assert np.isfinite(x).all() and x.min() >= 0
        y = x @ LUMA
        ratios.append(y.max() / np.median(y))
    ratios = np.array(ratios)
    # Emissive sources 10-10^4 x the diffuse level: most scenes span > 100:1 around the median.
    assert np.mean(ratios > 100) >= 0.75, np.round(ratios)
    assert np.max(ratios) > 1e3


def test_light_sources_are_small_and_bright(scenes):
    # Highlights are a small part of each frame: the brightest 1 % carries radiance far above
    # the 90th percentile in most scenes, yet the median scene is not mostly saturated.
    contrast = []
    for x in scenes:
        y = x @ LUMA
        contrast.append(np.percentile(y, 99.9) / np.percentile(y, 90))
    assert np.mean(np.array(contrast) > 5) >= 0.5, np.round(contrast, 1)


def test_log_luminance_spectrum_falls_like_natural_images():
    # Natural images have a power spectrum ~ 1/f^a with a ~ 2 (log-luminance, mid band);
    # a flat (white-noise) or blurred-only image would be far outside [1.4, 3.6].
    slopes = []
    for i in range(6):
        y = np.log(procedural_scene(1, i, 64) @ LUMA + 1e-3)
        y = (y - y.mean()) * np.outer(np.hanning(64), np.hanning(64))
        power = np.abs(np.fft.fftshift(np.fft.fft2(y))) ** 2
        fy, fx = np.indices(power.shape) - 32
        f = np.hypot(fx, fy)
        band = (f >= 2) & (f <= 12)
        slopes.append(-np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0])
    assert 1.4 < np.mean(slopes) < 3.6, slopes


def test_fractal_noise_is_normalised():
    n = fractal_noise(np.random.default_rng(0), 48, 64, min_cell=2, max_cell=32)
    assert n.shape == (48, 64) and n.dtype == np.float32
    assert abs(n.mean()) < 1e-4 and abs(n.std() - 1) < 1e-3


def test_blackbody_colours_are_ordered():
    warm, white, cool = procedural.blackbody_rgb([2700, 6500, 12000])
    assert warm[0] > warm[2] and cool[2] > cool[0]  # tungsten red-ish, sky blue-ish
    np.testing.assert_allclose([c @ LUMA for c in (warm, white, cool)], 1.0, rtol=1e-5)


def test_source_indexing_and_wraparound():
    src = ProceduralSource(seed=2, num_scenes=5, size=16)
    assert len(src) == 5
    item = src[3]
    np.testing.assert_array_equal(item["hdr"], procedural_scene(2, 3, 16))
    np.testing.assert_array_equal(src[8]["hdr"], item["hdr"])
    assert item["name"] == "procedural_2_0_3"
