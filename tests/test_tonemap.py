"""Tests for hdrjax.tonemap: hand-computed values, numpy/jax agnosticism, jit."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdrjax import tonemap


def _gray(value, shape=(4, 5)):
    return np.full(shape + (3,), value, np.float32)


def test_log_tone_is_the_papers_curve():
    v = np.array([0.0, 0.5, 1.0, 3.0], np.float32)
    want = np.log(1 + 10 * v) / math.log(11)
    np.testing.assert_allclose(np.asarray(tonemap.log_tone(v)), want, rtol=1e-6)
    assert tonemap.log_tone(jnp.float32(1.0)) == pytest.approx(1.0)


def test_srgb_oetf_known_values():
    x = np.array([-1.0, 0.0, 0.0031308, 0.18, 0.5, 1.0, 2.0], np.float32)
    # IEC 61966-2-1 by hand: 12.92 x below the knee, 1.055 x^(1/2.4) - 0.055 above.
    want = [0.0, 0.0, 12.92 * 0.0031308, 1.055 * 0.18 ** (1 / 2.4) - 0.055,
            1.055 * 0.5 ** (1 / 2.4) - 0.055, 1.0, 1.0]
    np.testing.assert_allclose(tonemap.to_srgb(x), want, rtol=1e-5, atol=1e-7)
    assert tonemap.to_srgb(np.float32(0.5)) == pytest.approx(0.735357, abs=1e-5)
    u8 = tonemap.to_srgb_uint8(x)
    assert u8.dtype == np.uint8
    assert list(u8) == [0, 0, 10, 118, 188, 255, 255]


def test_srgb_is_continuous_at_the_knee():
    below = tonemap.to_srgb(np.float32(0.0031308) * (1 - 1e-6))
    above = tonemap.to_srgb(np.float32(0.0031308) * (1 + 1e-6))
    assert abs(float(above) - float(below)) < 1e-5


def test_reinhard_constant_image_maps_to_key_over_one_plus_key():
    # Log-average of a constant image is (almost) the constant, so L = key everywhere.
    for value in (0.01, 1.0, 300.0):
        out = tonemap.reinhard(_gray(value), key=0.18)
        np.testing.assert_allclose(out, 0.18 / 1.18, rtol=1e-4)


def test_reinhard_hand_computed_with_white_and_given_exposure():
    hdr = np.zeros((1, 2, 3), np.float32)
    hdr[0, 0] = 1.0
    hdr[0, 1] = 4.0
    # Exposure fixed from outside: L = 0.18 / 0.5 · Y = 0.36 Y.
    out = tonemap.reinhard(hdr, key=0.18, white=2.0, log_average=np.float32(0.5))
    for y, got in ((1.0, out[0, 0]), (4.0, out[0, 1])):
        big_l = 0.36 * y
        want = big_l * (1 + big_l / 4.0) / (1 + big_l)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # L == white maps exactly to 1 (the burn-out point).
    burnt = tonemap.reinhard(_gray(1.0, (1, 1)), key=0.5, white=0.5, log_average=np.float32(1.0))
    np.testing.assert_allclose(burnt, 1.0, rtol=1e-6)


def test_reinhard_keeps_colour_ratios_black_and_scale():
    rng = np.random.default_rng(0)
    hdr = np.exp(rng.normal(size=(2, 8, 8, 3))).astype(np.float32)
    hdr[0, 0, 0] = 0.0  # black pixel: no NaN, stays black
    hdr[1, 0, 0] = -1.0  # negative radiance is clamped to 0
    out = tonemap.reinhard(hdr)
    assert np.all(np.isfinite(out))
    assert np.all(out[0, 0, 0] == 0) and np.all(out[1, 0, 0] == 0)
    ok = np.all(hdr > 0, axis=-1)
    np.testing.assert_allclose(out[ok][:, 0] / out[ok][:, 1], hdr[ok][:, 0] / hdr[ok][:, 1],
                               rtol=1e-4)
    # Per-image log-average: each image of the batch is tone mapped on its own and, away from
    # black pixels (where Reinhard's delta matters), the overall scale does not matter.
    positive = np.exp(rng.normal(size=(2, 8, 8, 3))).astype(np.float32)
    scaled = positive * np.array([100.0, 0.01], np.float32)[:, None, None, None]
    np.testing.assert_allclose(tonemap.reinhard(scaled), tonemap.reinhard(positive), rtol=1e-3)
    np.testing.assert_allclose(tonemap.reinhard(positive[1:]), tonemap.reinhard(positive)[1:],
                               rtol=1e-6)
    # Luminance is compressed below 1; a saturated channel may still exceed 1 (to_srgb clips).
    y = tonemap.luminance(out)
    assert np.all(out >= 0) and np.all(y < 1)


def test_numpy_in_numpy_out_and_jax_in_jax_out_and_jit():
    rng = np.random.default_rng(1)
    hdr = np.exp(rng.normal(size=(2, 6, 7, 3))).astype(np.float32)
    host = tonemap.preview(hdr)
    assert isinstance(host, np.ndarray) and host.dtype == np.uint8 and host.shape == hdr.shape
    dev = jax.jit(tonemap.preview)(jnp.asarray(hdr))
    assert isinstance(dev, jax.Array) and dev.dtype == jnp.uint8
    # float32 rounding may flip a value sitting on a .5 boundary by one code.
    assert np.abs(np.asarray(dev, np.int32) - host.astype(np.int32)).max() <= 1
    np.testing.assert_allclose(np.asarray(jax.jit(tonemap.reinhard)(hdr)), tonemap.reinhard(hdr),
                               rtol=1e-5)


def test_preview_is_reinhard_0_18_then_srgb_and_works_unbatched():
    rng = np.random.default_rng(2)
    hdr = np.exp(2 * rng.normal(size=(9, 11, 3))).astype(np.float32)
    out = tonemap.preview(hdr)
    assert out.shape == (9, 11, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, tonemap.to_srgb_uint8(tonemap.reinhard(hdr, key=0.18)))
    # Brighter radiance never gives a darker preview pixel (within one image's exposure).
    brighter = hdr.copy()
    brighter[0, 0] *= 4.0
    exposure = tonemap.log_average_luminance(hdr)
    a = tonemap.to_srgb_uint8(tonemap.reinhard(hdr, log_average=exposure))
    b = tonemap.to_srgb_uint8(tonemap.reinhard(brighter, log_average=exposure))
    assert np.all(b[0, 0] >= a[0, 0]) and np.any(b[0, 0] > a[0, 0])
