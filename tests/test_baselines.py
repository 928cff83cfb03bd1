"""hdrjax.evaluation.baselines: each inverts what it claims to invert, on numpy and jax arrays alike."""
import jax.numpy as jnp
import numpy as np
import pytest

from hdrjax import tonemap
from hdrjax.evaluation import baselines
from hdrjax.camera import crf
from hdrjax.camera import basis as basis_lib


def linear_image(seed=0, shape=(2, 16, 24, 3)):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, shape).astype(np.float32)


def test_identity_is_the_clipped_input():
    x = linear_image()
    np.testing.assert_array_equal(baselines.identity(x), x)
    np.testing.assert_array_equal(baselines.identity(np.float32([[-0.5, 0.3, 1.5]])), np.float32([[0.0, 0.3, 1.0]]))


def test_inverse_gamma_inverts_gamma_encoding():
    x = linear_image(1)
    encoded = x ** (1 / 2.2)
    np.testing.assert_allclose(baselines.inverse_gamma(encoded), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(baselines.inverse_gamma(x ** 0.5, 2.0), x, rtol=1e-5, atol=1e-6)


def test_inverse_srgb_inverts_the_srgb_oetf():
    x = np.concatenate([np.linspace(0, 0.01, 50), np.linspace(0.01, 1, 200)]).astype(np.float32)
    np.testing.assert_allclose(baselines.inverse_srgb(tonemap.to_srgb(x)), x, rtol=1e-4, atol=1e-6)


def test_inverse_curve_matches_the_camera_lookup_and_inverts_a_bank_curve():
    bank = crf.parametric_bank()
    f, g = bank.forward[7], bank.inverse[7]
    x = linear_image(2)
    ldr = np.asarray(crf.apply_curve(jnp.asarray(x), jnp.asarray(f)))
    np.testing.assert_allclose(baselines.inverse_curve(ldr, g),
                               np.asarray(crf.apply_curve(jnp.asarray(ldr), jnp.asarray(g))), atol=1e-6)
    # Forward then inverse recovers the linear image up to the two 1024-sample interpolations.
    np.testing.assert_allclose(baselines.inverse_curve(ldr, g), x, atol=5e-3)


def test_g0_baseline_applies_the_basis_mean():
    basis = basis_lib.default_basis()
    grid = np.linspace(0, 1, 1024, dtype=np.float32)
    np.testing.assert_allclose(baselines.mean_inverse_crf(grid, basis), basis.mean, atol=1e-6)
    np.testing.assert_allclose(baselines.curve_of("g0", basis), basis.mean)
    fake = basis_lib.InverseCRFBasis(mean=grid ** 3, components=np.zeros((1024, 1), np.float32))
    np.testing.assert_allclose(baselines.get("g0", fake)(np.float32([0.5])), [0.125], atol=1e-3)


@pytest.mark.parametrize("name", ["identity", "gamma22", "srgb", "g0"])
def test_curve_of_is_the_function_on_the_grid(name):
    grid = np.linspace(0, 1, 1024, dtype=np.float32)
    np.testing.assert_allclose(baselines.get(name)(grid), baselines.curve_of(name), atol=1e-6)


def test_akyuz_expands_luminance_linearly_and_keeps_colour():
    ldr = linear_image(3, (1, 12, 10, 3)) * 0.8 + 0.1
    out = baselines.akyuz2007(ldr)
    rgb = ldr ** 2.2
    lum_in = tonemap.luminance(rgb)
    lum_out = tonemap.luminance(out)
    lo, hi = lum_in.min(), lum_in.max()
    # L_w = k (L_d − min) / (max − min) with k = 1, γ = 1.
    np.testing.assert_allclose(lum_out, (lum_in - lo) / (hi - lo), atol=1e-5)
    assert lum_out.min() == pytest.approx(0.0, abs=1e-6) and lum_out.max() == pytest.approx(1.0, abs=1e-5)
    # Colour ratios of the linearised image are kept.
    mask = lum_out > 1e-3
    o, r = out[mask], rgb[mask]
    np.testing.assert_allclose(o / o.sum(-1, keepdims=True), r / r.sum(-1, keepdims=True), atol=1e-5)
    # γ and k as in the paper's formula.
    out2 = baselines.akyuz2007(ldr, peak=3000.0, gamma=2.0)
    np.testing.assert_allclose(tonemap.luminance(out2), 3000.0 * ((lum_in - lo) / (hi - lo)) ** 2, rtol=1e-4, atol=1e-2)


def test_akyuz_constant_image_maps_to_zero_and_images_are_independent():
    flat = np.full((1, 8, 8, 3), 0.5, np.float32)
    np.testing.assert_array_equal(baselines.akyuz2007(flat), 0.0)
    pair = np.concatenate([flat, linear_image(4, (1, 8, 8, 3))])
    np.testing.assert_allclose(baselines.akyuz2007(pair)[1], baselines.akyuz2007(pair[1:])[0], atol=1e-6)


@pytest.mark.parametrize("name", baselines.NAMES)
def test_numpy_and_jax_agree(name):
    x = linear_image(5)
    fn = baselines.get(name)
    a = fn(x)
    b = fn(jnp.asarray(x))
    assert isinstance(a, np.ndarray) and isinstance(b, jnp.ndarray)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


def test_unknown_baseline_is_named():
    with pytest.raises(KeyError, match="unknown baseline 'nope'"):
        baselines.get("nope")
