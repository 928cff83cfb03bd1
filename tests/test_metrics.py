"""Tests for hdrjax.evaluation.metrics: hand-computed values, a numpy SSIM reference, properties, jit."""
import math

import jax
import numpy as np
import pytest
from scipy import ndimage

from hdrjax import tonemap
from hdrjax.evaluation import metrics


def _scene(seed, batch=1, size=32, colour=0.15):
    """A smooth HDR test image: gradient + bright blobs + texture, mildly coloured, max ≈ 50."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(batch):
        log_y = 2.0 * xx - 1.0 + 0.3 * np.sin(12 * yy + rng.uniform(0, 6))
        for _ in range(2):  # highlights
            cy, cx = rng.uniform(0.2, 0.8, 2)
            log_y += 3.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.01)
        log_y += 0.2 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.0)
        tint = 1.0 + colour * np.stack([np.sin(4 * xx), np.cos(3 * yy), np.sin(5 * (xx + yy))], -1)
        images.append(np.exp(log_y)[..., None] * tint)
    return np.asarray(images, np.float32)


def _noisy(img, level, seed=0):
    rng = np.random.default_rng(seed)
    return (img * np.exp(level * rng.normal(size=img.shape))).astype(np.float32)


# ---------------------------------------------------------------------------------- PSNR

def test_psnr_of_known_mse():
    ref = np.zeros((2, 4, 4, 3), np.float32)
    pred = ref + np.array([0.1, 0.01], np.float32)[:, None, None, None]
    # MSE 1e-2 and 1e-4 -> 20 and 40 dB at peak 1; peak 256 adds 20 log10(256).
    np.testing.assert_allclose(metrics.psnr(pred, ref, 1.0), [20.0, 40.0], rtol=1e-5)
    np.testing.assert_allclose(metrics.psnr(pred, ref, 256.0),
                               [20.0 + 20 * math.log10(256), 40.0 + 20 * math.log10(256)],
                               rtol=1e-5)
    assert np.all(np.isinf(metrics.psnr(ref, ref, 1.0)))


# ---------------------------------------------------------------------------------- PU21

# V = p7 (((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6), 'banding_glare', evaluated in float64 by
# hand from the published parameters; the same numbers (to 4 decimals) are pinned by an
# independent implementation's gfxdisp parity test (zensim pu21_golden.py).
PU21_GOLDEN = {0.01: 0.3722, 0.1: 5.7171, 1.0: 36.5439, 10.0: 123.6475, 100.0: 256.3839,
               1000.0: 420.0969, 10000.0: 595.3939}


def test_pu21_encode_matches_the_published_formula():
    y = np.array(list(PU21_GOLDEN), np.float32)
    got = np.asarray(metrics.pu21_encode(y))
    np.testing.assert_allclose(got, list(PU21_GOLDEN.values()), atol=2e-3, rtol=2e-5)
    # Clamped to [0.005, 10000] cd/m²; 0.005 encodes to ~0.
    edges = np.array([0.0, 0.005, 1e5, 1e4], np.float32)
    lo, hi = np.asarray(metrics.pu21_encode(edges)).reshape(2, 2)
    assert lo[0] == lo[1] and abs(lo[0]) < 1e-2 and hi[0] == hi[1]
    # Other variants use their own parameters (value at 100 cd/m² by hand).
    p = metrics.PU21_PARAMS["banding"]
    want = p[6] * (((p[0] + p[1] * 100 ** p[3]) / (1 + p[2] * 100 ** p[3])) ** p[4] - p[5])
    assert float(metrics.pu21_encode(np.float32(100.0), "banding")) == pytest.approx(want, rel=1e-5)
    assert want == pytest.approx(261.7517, abs=1e-3)
    with pytest.raises(metrics.MetricError, match="variant"):
        metrics.pu21_encode(1.0, "nope")


def test_pu21_decode_inverts_encode():
    y = np.geomspace(0.01, 9000.0, 50).astype(np.float32)
    back = np.asarray(metrics.pu21_decode(metrics.pu21_encode(y)))
    np.testing.assert_allclose(back, y, rtol=2e-3)


def test_pu21_psnr_and_ssim_hand_computed_and_identical():
    ref = np.full((1, 16, 16, 3), 100.0, np.float32)
    pred = np.full((1, 16, 16, 3), 10.0, np.float32)
    diff = PU21_GOLDEN[100.0] - PU21_GOLDEN[10.0]
    assert float(metrics.pu21_psnr(pred, ref)[0]) == pytest.approx(20 * math.log10(256 / diff),
                                                                   abs=1e-3)
    # Constant images: SSIM reduces to the luminance term (2 μx μy + C1) / (μx² + μy² + C1).
    c1 = (0.01 * 256) ** 2
    a, b = PU21_GOLDEN[10.0], PU21_GOLDEN[100.0]
    want = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(metrics.pu21_ssim(pred, ref)[0]) == pytest.approx(want, abs=1e-4)
    scene = metrics.display_model(_scene(0))
    assert float(metrics.pu21_psnr(scene, scene)[0]) > 100.0  # inf, or rounding of fused code
    assert float(metrics.pu21_ssim(scene, scene)[0]) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------------------------- SSIM

def _ssim_reference(x, y, data_range):
    """scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False), channel by channel, in float64 numpy."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    values = []
    for c in range(x.shape[-1]):
        def blur(a):
            return ndimage.gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")
        a, b = x[..., c], y[..., c]
        ux, uy = blur(a), blur(b)
        vx = blur(a * a) - ux * ux
        vy = blur(b * b) - uy * uy
        vxy = blur(a * b) - ux * uy
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
        values.append(s[5:-5, 5:-5].mean())  # skimage crops (win_size - 1) // 2 = 5
    return float(np.mean(values))


@pytest.mark.parametrize("shape,data_range", [((2, 23, 31), 1.0), ((2, 20, 24, 3), 256.0)])
def test_ssim_matches_numpy_reference(shape, data_range):
    rng = np.random.default_rng(3)
    ref = (ndimage.gaussian_filter(rng.uniform(size=shape), 1.0) * data_range).astype(np.float32)
    pred = (ref + 0.05 * data_range * rng.normal(size=shape)).astype(np.float32)
    got = np.asarray(metrics.ssim(pred, ref, data_range))
    want = [_ssim_reference(pred[i], ref[i], data_range) for i in range(shape[0])]
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert got.shape == (shape[0],)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(metrics.MetricError, match="11"):
        metrics.ssim(np.zeros((1, 8, 20)), np.zeros((1, 8, 20)), 1.0)
    with pytest.raises(metrics.MetricError, match="pred"):
        metrics.ssim(np.zeros((1, 12, 12, 3)), np.zeros((1, 12, 13, 3)), 1.0)


# ---------------------------------------------------------------------------------- normalisation

def test_authors_normalize_maps_order_statistics_to_1_and_999():
    rng = np.random.default_rng(4)
    n = 40 * 40 * 3  # k = round(4.8) = 5: a = 5th smallest, b = 5th largest
    img = rng.permutation(np.arange(n, dtype=np.float32)).reshape(1, 40, 40, 3)
    out = np.asarray(metrics.authors_normalize(img))
    assert out[img == 4.0][0] == pytest.approx(1.0, abs=1e-4)
    assert out[img == n - 5][0] == pytest.approx(999.0, abs=1e-3)
    assert out[img == 0.0][0] == pytest.approx((0 - 4) * 998 / (n - 9) + 1, abs=1e-4)
    # MATLAB int64() rounds 1.5 up: n = 1500 -> k = 2.
    flat = np.arange(1500, dtype=np.float32)[None]
    out = np.asarray(metrics.authors_normalize(flat))
    assert out[0, 1] == pytest.approx(1.0) and out[0, 1498] == pytest.approx(999.0, abs=1e-3)
    # Values far below the low anchor go negative and are clamped to 0.
    img2 = img.copy()
    img2[0, 0, 0, 0] = -1e6
    assert np.asarray(metrics.authors_normalize(img2))[0, 0, 0, 0] == 0.0


def test_authors_normalize_is_per_image_and_affine_invariant():
    scene = _scene(5, batch=2)
    out = np.asarray(metrics.authors_normalize(scene))
    single = np.asarray(metrics.authors_normalize(scene[1:]))
    np.testing.assert_allclose(out[1:], single, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(metrics.authors_normalize(3.0 * scene + 0.5)), out,
                               rtol=1e-3, atol=1e-3)


def test_display_model_maps_reference_peak_to_4000():
    scene = _scene(6, batch=2)
    ref_abs = np.asarray(metrics.display_model(scene))
    np.testing.assert_allclose(ref_abs.max(axis=(1, 2, 3)), [4000.0, 4000.0], rtol=1e-6)
    pred_abs = np.asarray(metrics.display_model(0.5 * scene, scene))
    np.testing.assert_allclose(pred_abs, 0.5 * ref_abs, rtol=1e-6)


# ------------------------------------------------------------------------------- relative metrics

def test_mu_log_tone_psnr_hand_computed():
    ref = np.ones((1, 4, 4, 3), np.float32)
    half = 0.5 * ref
    tenth = 0.1 * ref
    # μ-law: ref max is 1, so the codes are T_μ(1) = 1 and T_μ(0.5).
    t_half = math.log(1 + 5000 * 0.5) / math.log(1 + 5000)
    assert float(metrics.mu_psnr(half, ref)[0]) == pytest.approx(-20 * math.log10(1 - t_half),
                                                                 abs=1e-3)
    # log: 0.1 is one decade below the reference max, 1/5 of the 5-decade range.
    assert float(metrics.log_psnr(tenth, ref)[0]) == pytest.approx(-20 * math.log10(0.2), abs=1e-3)
    # T domain: the reference is scaled to mean 0.5, the prediction by the same factor.
    t = math.log(1 + 10 * 0.5) / math.log(11)
    t_pred = math.log(1 + 10 * 0.25) / math.log(11)
    assert float(metrics.tone_psnr(half, ref)[0]) == pytest.approx(-20 * math.log10(t - t_pred),
                                                                   abs=1e-3)


def test_tone_mapped_psnr_hand_computed():
    ref = np.ones((1, 12, 12, 3), np.float32)
    pred = 2.0 * ref
    # Exposure from the reference: log-average ≈ 1, so L = 0.18 Y for both.
    srgb = tonemap.to_srgb(np.array([0.18 / 1.18, 0.36 / 1.36], np.float32))
    want = -20 * math.log10(srgb[1] - srgb[0])
    assert float(metrics.tm_psnr(pred, ref)[0]) == pytest.approx(want, abs=1e-2)


# ---------------------------------------------------------------------------------- the suite

def test_compute_all_names_shapes_and_identity():
    scene = _scene(7, batch=2)
    out = metrics.compute_all(scene, scene)
    assert tuple(sorted(out)) == tuple(sorted(metrics.METRIC_NAMES))
    for name, value in out.items():
        assert value.shape == (2,) and value.dtype == np.float32, name
        if name.endswith("ssim"):
            np.testing.assert_allclose(value, 1.0, atol=1e-6, err_msg=name)
        else:  # +inf, unless XLA rounds the two identical branches differently (> 100 dB then)
            assert np.all(value > 100.0), name


@pytest.mark.parametrize("normalization", ["reference", "authors"])
def test_metrics_decrease_with_noise(normalization):
    scene = _scene(8, batch=2)  # the shape the other suite tests use: one compilation
    values = [metrics.compute_all(_noisy(scene, level), scene, normalization=normalization)
              for level in (0.02, 0.1, 0.4)]
    for name in metrics.METRIC_NAMES:
        for i in range(2):
            series = [float(v[name][i]) for v in values]
            assert series[0] > series[1] > series[2], (name, i, series)


def test_batch_equals_individual_calls_and_jit():
    scene = _scene(9, batch=2)
    pred = _noisy(scene, 0.1, seed=1)
    batch = metrics.compute_all(pred, scene)
    jitted = jax.jit(metrics.compute_all, static_argnames=("crf_correction", "normalization"))(
        pred, scene)
    for i in range(2):
        one = metrics.compute_all(pred[i:i + 1], scene[i:i + 1])
        for name in metrics.METRIC_NAMES:
            np.testing.assert_allclose(batch[name][i], one[name][0], rtol=1e-4, err_msg=name)
    for name in metrics.METRIC_NAMES:
        np.testing.assert_allclose(jitted[name], batch[name], rtol=1e-5, err_msg=name)
    # The first image's values do not depend on what else is in the batch.
    assert float(batch["mu_psnr"][0]) != float(batch["mu_psnr"][1])


def test_reference_mode_ignores_a_shared_scale_and_authors_mode_an_exposure_error():
    scene = _scene(10, batch=2)
    pred = _noisy(scene, 0.05)
    base = metrics.compute_all(pred, scene)
    shared = metrics.compute_all(7.0 * pred, 7.0 * scene)
    for name in metrics.METRIC_NAMES:
        np.testing.assert_allclose(shared[name], base[name], rtol=1e-3, err_msg=name)
    # A prediction 4× too bright: the shared-scale metrics see it, the authors' recipe does not.
    bright = metrics.compute_all(4.0 * pred, scene)
    assert np.all(np.asarray(bright["mu_psnr"]) < np.asarray(base["mu_psnr"]) - 3)
    auth = metrics.compute_all(pred, scene, normalization="authors")
    auth_bright = metrics.compute_all(4.0 * pred, scene, normalization="authors")
    for name in metrics.METRIC_NAMES:
        np.testing.assert_allclose(auth_bright[name], auth[name], rtol=1e-3, err_msg=name)


def test_compute_all_rejects_bad_input():
    a = np.ones((1, 16, 16, 3), np.float32)
    with pytest.raises(metrics.MetricError, match="normalization"):
        metrics.compute_all(a, a, normalization="median")
    with pytest.raises(metrics.MetricError, match="ref"):
        metrics.compute_all(a, np.ones((16, 16, 3), np.float32))
    with pytest.raises(metrics.MetricError, match="pred"):
        metrics.compute_all(np.ones((1, 16, 16, 4), np.float32), a)
    with pytest.raises(metrics.MetricError, match="11"):
        metrics.compute_all(a[:, :8], a[:, :8])


# ---------------------------------------------------------------------------------- CRF correction

def test_crf_correction_recovers_a_tone_curve_distortion():
    ref = np.asarray(metrics.display_model(_scene(11, batch=2)))
    # A different "camera response": gamma 0.6 per channel and an exposure error.
    pred = (0.5 * 4000.0 * (ref / 4000.0) ** 0.6).astype(np.float32)
    corrected = np.asarray(metrics.crf_correct(pred, ref))  # jitted inside
    before = np.asarray(metrics.pu21_psnr(pred, ref))
    after = np.asarray(metrics.pu21_psnr(corrected, ref))
    assert np.all(after > before + 15), (before, after)
    assert np.all(after > 40), after
    # The suite's switch does the same.
    suite = metrics.compute_all(pred, ref, crf_correction=True)
    np.testing.assert_allclose(suite["pu21_psnr"], after, rtol=1e-3)
    assert np.all(np.asarray(metrics.compute_all(pred, ref)["tm_psnr"]) + 10
                  < np.asarray(suite["tm_psnr"]))


def test_crf_correction_keeps_a_perfect_prediction_and_not_structure_errors():
    ref = np.asarray(metrics.display_model(_scene(12, batch=2)))
    same = np.asarray(metrics.crf_correct(ref, ref))
    np.testing.assert_allclose(same, ref, rtol=1e-3)
    # Noise is structure, not a tone curve: correction cannot remove it.
    noisy = _noisy(ref, 0.3)
    before = np.asarray(metrics.pu21_psnr(noisy, ref))
    after = np.asarray(metrics.pu21_psnr(metrics.crf_correct(noisy, ref), ref))
    assert np.all(after < before + 3), (before, after)
    # normalize=True (median anchoring) is scale-free in the prediction.
    a = np.asarray(metrics.crf_correct(noisy, ref, normalize=True))
    b = np.asarray(metrics.crf_correct(10.0 * noisy, ref, normalize=True))
    np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)
