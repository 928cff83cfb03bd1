"""HDR image-quality metrics in jax.numpy: batched (a leading batch axis -> a value per image).

Inputs are linear RGB, f32[B, H, W, 3]. Our reconstructions are *relative* radiance, so
`compute_all` first puts prediction and reference on a common footing (`normalization`):

* ``"reference"`` (default): both images share one radiometric scale (as in synthetic evaluation,
  where the LDR input was made from the reference); the metrics that need absolute luminance
  (PU21) use `display_model`, which maps the *reference's* peak to 4000 cd/m² and scales the
  prediction by the same factor (gfxdisp/pu21 README and examples/ex_sihdr.m: "we map the peak
  value in the image to the peak value of the display", L_peak = 4000).
* ``"authors"``: each image on its own through `authors_normalize`, the recipe of the SingleHDR
  authors' evaluation (alex04072000/SingleHDR issue #4, `pre_hdr_p3`): 0.1 % lowest value -> 1,
  0.1 % highest -> 999, negatives -> 0; the result is read as cd/m², as their HDR-VDP-2 call
  (`hdrvdp(test, ref, 'rgb-bt.709', 30)`) does. Use it when the prediction's exposure is unknown.

All other metrics are invariant to a scale shared by both images: each fixes its exposure from
the reference (its max, mean or log-average) and applies it to both, so a prediction that is too
bright or too dark is penalised.

Optional CRF correction (Hanji et al., SIGGRAPH 2022) replaces the prediction by its best
polynomial tone/colour match to the reference before any metric; see `crf_correct`.

HDR-VDP-2/3 and ColorVideoVDP are not reimplemented here (MATLAB / PyTorch tools): write the
predictions with `hdrjax.io.write_image` and run them outside.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax import tonemap
from hdrjax.errors import HdrjaxError

# --------------------------------------------------------------------------------------------
# Constants, each with its source.

# PU21 (Mantiuk & Azimi, "PU21: A novel perceptually uniform encoding for adapting existing
# quality metrics for HDR", Picture Coding Symposium 2021). Parameters p1..p7 copied from
# gfxdisp/pu21 matlab/pu21_encoder.m ("The parameters were updated on 06/02/2020"); the README
# asks to use only 'banding_glare'.
PU21_PARAMS = {
    "banding": (1.070275272, 0.4088273932, 0.153224308, 0.2520326168, 1.063512885, 1.14115047,
                521.4527484),
    "banding_glare": (0.353487901, 0.3734658629, 8.277049286e-05, 0.9062562627, 0.09150303166,
                      0.9099517204, 596.3148142),
    "peaks": (1.043882782, 0.6459495343, 0.3194584211, 0.374025247, 1.114783422, 1.095360363,
              384.9217577),
    "peaks_glare": (816.885024, 1479.463946, 0.001253215609, 0.9329636822, 0.06746643971,
                    1.573435413, 419.6006374),
}
PU21_L_MIN = 0.005     # cd/m², pu21_encoder.m L_min
PU21_L_MAX = 10000.0   # cd/m², pu21_encoder.m L_max
# pu21_metric.m: psnr(T, R, 256) and ssim(T, R, 'DynamicRange', 256) on PU21 values
# (PU21(100 cd/m²) ≈ 256, so an SDR display's range spans 0..256).
PU21_PEAK = 256.0
# Rec. 709 linear RGB -> CIE XYZ with the digits of gfxdisp/pu21 (crf_correction.m rgb2luv).
_RGB2XYZ = np.array([[0.412424, 0.357579, 0.180464],
                     [0.212656, 0.715158, 0.072186],
                     [0.019332, 0.119193, 0.950444]])
# pu21_metric.m get_luminance: its Y row (Rec. 709 weights with more digits than
# tonemap.REC709_LUMA, as the port's reference values were computed with).
PU21_LUMA = tuple(float(w) for w in _RGB2XYZ[1])
DISPLAY_PEAK = 4000.0  # cd/m², gfxdisp/pu21 README example and ex_sihdr.m (L_peak = 4000)

# SingleHDR issue #4 (`pre_hdr_p3`): k = int64(numel * 1e-3) order statistics -> [1, 999].
AUTHORS_FRACTION = 1e-3
AUTHORS_LOW = 1.0
AUTHORS_HIGH = 999.0
AUTHORS_EPS = 1e-8

MU = 5000.0            # μ-law compression, as Kalantari & Ramamoorthi 2017 (μ-PSNR)
LOG_FLOOR = 1e-5       # log-PSNR: values below 1e-5 × reference max count as 1e-5 (≈ 16.6 stops)
TONE_MEAN = 0.5        # T-domain PSNR: the reference's joint-loss normalisation (mean 0.5)

# SSIM as Wang et al. 2004 / scikit-image structural_similarity(gaussian_weights=True,
# sigma=1.5, use_sample_covariance=False): 11-tap Gaussian (truncate 3.5), K1, K2.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# CRF correction: gfxdisp/pu21 matlab/crf_correction.m defaults (deg 3, lambda 0.01, 'pq', 'luv').
CRF_DEGREE = 3
CRF_LAMBDA = 0.01
CRF_MEDIAN_ANCHOR = 500.0  # crf_correction.m params.sc (used only with normalize=True)
# crf_correction.m ptf(): the SMPTE ST 2084 (PQ) constants, rounded to 4 digits as there.
_PQ_M, _PQ_N, _PQ_C1, _PQ_C2, _PQ_C3 = 78.8438, 0.1593, 0.8359, 18.8516, 18.6875
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_XYZ_MIN, _XYZ_MAX = 1e-4, 1e8  # crf_correction.m rgb2luv / luv2rgb clamps
_UV_SCALE = 410.0 / 255.0       # crf_correction.m rgb2luv

METRIC_NAMES = ("pu21_psnr", "pu21_ssim", "mu_psnr", "log_psnr", "tone_psnr", "tm_psnr",
                "tm_ssim")
NORMALIZATIONS = ("reference", "authors")


class MetricError(HdrjaxError, ValueError):
    """Bad metric input: `str(e)` names the argument and the problem."""


def _check_pair(pred, ref, *, rgb=True):
    """Raise MetricError unless pred and ref are matching f32[B, H, W, 3] (or [B, H, W, C])."""
    for name, x in (("pred", pred), ("ref", ref)):
        if jnp.ndim(x) != 4 or (rgb and jnp.shape(x)[-1] != 3):
            want = "[B, H, W, 3]" if rgb else "[B, H, W, C]"
            raise MetricError(f"{name}: expected shape {want}, got {tuple(jnp.shape(x))}")
    if jnp.shape(pred) != jnp.shape(ref):
        raise MetricError(f"pred: shape {tuple(jnp.shape(pred))} differs from ref "
                          f"{tuple(jnp.shape(ref))}")


def _per_image(fn, x):
    """Reduce every axis but the first: f32[B, ...] -> f32[B]."""
    return fn(x, axis=tuple(range(1, x.ndim)))


def _bcast(v, x):
    """Per-image values f32[B] broadcast against f32[B, ...]."""
    return jnp.reshape(v, v.shape + (1,) * (x.ndim - 1))


# --------------------------------------------------------------------------------------------
# Generic PSNR / SSIM.

def mse(pred, ref):
    """Mean squared error per image over all pixels and channels: f32[B, ...] -> f32[B]."""
    d = jnp.asarray(pred, jnp.float32) - jnp.asarray(ref, jnp.float32)
    return _per_image(jnp.mean, d * d)


@jax.jit
def psnr(pred, ref, peak):
    """10 log10(peak² / MSE) per image, in dB; +inf for identical images."""
    err = mse(pred, ref)
    value = 10.0 * jnp.log10(jnp.float32(peak) ** 2 / jnp.maximum(err, jnp.finfo(jnp.float32).tiny))
    return jnp.where(err > 0, value, jnp.inf)


def _gaussian_taps(sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE):
    """scipy.ndimage's Gaussian: radius int(truncate σ + 0.5), weights normalised to sum 1."""
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def _valid_blur(x, taps):
    """Separable 'valid' Gaussian blur of f32[N, H, W] -> f32[N, H - 2r, W - 2r].

    Written as weighted sums of shifted slices: exact f32 arithmetic on every backend (no TF32)
    and several times faster on CPU than a one-channel convolution.
    """
    k = taps.size
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    x = sum(float(t) * x[:, i:i + h, :] for i, t in enumerate(taps))
    return sum(float(t) * x[:, :, i:i + w] for i, t in enumerate(taps))


@functools.partial(jax.jit, static_argnames=("sigma",))
def ssim(pred, ref, data_range, *, sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2):
    """Mean SSIM per image of f32[B, H, W] or f32[B, H, W, C] (channels averaged).

    Matches scikit-image `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)`: skimage filters with
    reflect padding and then crops (win_size - 1) // 2 pixels per side, so its mean is exactly the
    mean over the 'valid' windows computed here. (MATLAB's ssim, used by pu21_metric.m, pads by
    replication and does not crop; values differ slightly near borders.)
    """
    pred = jnp.asarray(pred, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    if pred.ndim == 3:
        pred, ref = pred[..., None], ref[..., None]
    _check_pair(pred, ref, rgb=False)
    taps = _gaussian_taps(sigma)
    b, h, w, c = pred.shape
    if min(h, w) < taps.size:
        raise MetricError(f"pred: SSIM needs images of at least {taps.size}×{taps.size} pixels, "
                          f"got {h}×{w}")
    x = jnp.moveaxis(pred, -1, 1).reshape(b * c, h, w)
    y = jnp.moveaxis(ref, -1, 1).reshape(b * c, h, w)
    # Second moments from mean-free images: variance = E[(x-m)²] - (E[x]-m)² is exact for any m
    # and avoids float32 cancellation when the values are large (PU21 values reach ~600).
    mx = jnp.mean(x, axis=(1, 2), keepdims=True)
    my = jnp.mean(y, axis=(1, 2), keepdims=True)
    xc, yc = x - mx, y - my
    stacked = jnp.concatenate([xc, yc, xc * xc, yc * yc, xc * yc], axis=0)
    uxc, uyc, uxx, uyy, uxy = jnp.split(_valid_blur(stacked, taps), 5, axis=0)
    ux, uy = uxc + mx, uyc + my  # the taps sum to 1
    vx = uxx - uxc * uxc
    vy = uyy - uyc * uyc
    vxy = uxy - uxc * uyc
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return jnp.mean(s.reshape(b, c, -1), axis=(1, 2))


# --------------------------------------------------------------------------------------------
# Normalisation and display model.

@jax.jit
def authors_normalize(img):
    """SingleHDR authors' alignment (issue #4): per image, 0.1 %-lowest -> 1, 0.1 %-highest -> 999.

    Exactly `pre_hdr_p3`: k = round(numel · 1e-3) (at least 1, over all pixels and channels of
    each image), a = k-th smallest value, b = k-th largest, out = (x - a)(999 - 1)/(b - a + 1e-8)
    + 1, then negatives -> 0. `img`: f32[B, ...]; order statistics by sort, so it jits.
    """
    img = jnp.asarray(img, jnp.float32)
    if img.ndim < 2:
        raise MetricError(f"img: expected a leading batch axis, got shape {img.shape}")
    flat = img.reshape(img.shape[0], -1)
    n = flat.shape[1]
    # MATLAB int64() rounds half away from zero; n · 1e-3 >= 0 so floor(x + 0.5) is the same.
    k = max(1, int(np.floor(n * AUTHORS_FRACTION + 0.5)))
    ordered = jnp.sort(flat, axis=1)
    a = _bcast(ordered[:, k - 1], img)
    b = _bcast(ordered[:, n - k], img)
    out = (img - a) * (AUTHORS_HIGH - AUTHORS_LOW) / (b - a + AUTHORS_EPS) + AUTHORS_LOW
    return jnp.maximum(out, 0.0)


@jax.jit
def display_model(img, reference=None, peak_luminance=DISPLAY_PEAK):
    """Relative radiance -> absolute luminance (cd/m²): per image, max(`reference`) -> peak.

    `reference` defaults to `img` itself; pass the reference image to scale a prediction with the
    reference's factor (shared exposure). Negative values are clamped to 0.
    """
    img = jnp.maximum(jnp.asarray(img, jnp.float32), 0.0)
    anchor = img if reference is None else jnp.asarray(reference, jnp.float32)
    peak = _per_image(jnp.max, anchor)
    scale = peak_luminance / jnp.maximum(peak, jnp.finfo(jnp.float32).tiny)
    return img * _bcast(scale, img)


# --------------------------------------------------------------------------------------------
# PU21.

@functools.partial(jax.jit, static_argnames=("variant",))
def pu21_encode(luminance, variant="banding_glare"):
    """PU21 value of absolute luminance (cd/m², clamped to [0.005, 10000]), as pu21_encoder.m.

    V = p7 · (((p1 + p2 Y^p4) / (1 + p3 Y^p4))^p5 - p6); 'banding_glare' spans ≈ 0 (0.005 cd/m²)
    to ≈ 595 (10000 cd/m²), with PU21(100 cd/m²) ≈ 256.
    """
    if variant not in PU21_PARAMS:
        raise MetricError(f"variant: unknown PU21 variant {variant!r}; "
                          f"one of {sorted(PU21_PARAMS)}")
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMS[variant]
    y = jnp.clip(jnp.asarray(luminance, jnp.float32), PU21_L_MIN, PU21_L_MAX)
    yp = jnp.power(y, p4)
    return p7 * (jnp.power((p1 + p2 * yp) / (1.0 + p3 * yp), p5) - p6)


@functools.partial(jax.jit, static_argnames=("variant",))
def pu21_decode(value, variant="banding_glare"):
    """Inverse of `pu21_encode` (pu21_encoder.m decode): PU21 value -> luminance in cd/m²."""
    p1, p2, p3, p4, p5, p6, p7 = PU21_PARAMS[variant]
    vp = jnp.power(jnp.maximum(jnp.asarray(value, jnp.float32) / p7 + p6, 0.0), 1.0 / p5)
    return jnp.power(jnp.maximum(vp - p1, 0.0) / (p2 - p3 * vp), 1.0 / p4)


def _pu21_luminance(rgb):
    r, g, b = PU21_LUMA
    return r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]


@jax.jit
def pu21_psnr(pred, ref):
    """PU21-PSNR (colour, as pu21_metric 'PSNR'): RGB in cd/m² -> PU21 per channel, peak 256."""
    _check_pair(pred, ref)
    return psnr(pu21_encode(pred), pu21_encode(ref), PU21_PEAK)


@jax.jit
def pu21_ssim(pred, ref):
    """PU21-SSIM (pu21_metric 'SSIM'): SSIM of PU21-encoded luminance, dynamic range 256."""
    _check_pair(pred, ref)
    return ssim(pu21_encode(_pu21_luminance(pred)), pu21_encode(_pu21_luminance(ref)), PU21_PEAK)


# --------------------------------------------------------------------------------------------
# Relative-radiance metrics (each exposes both images with a factor taken from the reference).

def mu_law(x, mu=MU):
    """μ-law compression log(1 + μ x) / log(1 + μ) (x >= 0; 1 -> 1)."""
    return jnp.log1p(mu * x) / np.log1p(mu)


def _over_ref_max(pred, ref):
    scale = 1.0 / jnp.maximum(_per_image(jnp.max, ref), jnp.finfo(jnp.float32).tiny)
    return (jnp.maximum(pred, 0.0) * _bcast(scale, pred),
            jnp.maximum(ref, 0.0) * _bcast(scale, ref))


@jax.jit
def mu_psnr(pred, ref, mu=MU):
    """μ-PSNR: both divided by the reference's max, μ-law (μ = 5000), PSNR with peak 1.

    The prediction is not clipped above: overshooting the reference's peak is an error too.
    """
    _check_pair(pred, ref)
    p, r = _over_ref_max(jnp.asarray(pred, jnp.float32), jnp.asarray(ref, jnp.float32))
    return psnr(mu_law(p, mu), mu_law(r, mu), 1.0)


def _log_code(x):
    """log10 mapped so [LOG_FLOOR, 1] -> [0, 1]."""
    lo = np.log10(LOG_FLOOR)
    return (jnp.log10(jnp.maximum(x, LOG_FLOOR)) - lo) / -lo


@jax.jit
def log_psnr(pred, ref):
    """Log-domain PSNR: both divided by the reference's max, log10 with a floor of 1e-5 mapped
    to [0, 1] (5 decades), PSNR with peak 1."""
    _check_pair(pred, ref)
    p, r = _over_ref_max(jnp.asarray(pred, jnp.float32), jnp.asarray(ref, jnp.float32))
    return psnr(_log_code(p), _log_code(r), 1.0)


@jax.jit
def tone_psnr(pred, ref):
    """PSNR in the paper's T domain (`tonemap.log_tone`): both scaled by the factor that gives the
    reference mean 0.5 (the reference's joint-loss normalisation), T applied, peak 1."""
    _check_pair(pred, ref)
    pred = jnp.maximum(jnp.asarray(pred, jnp.float32), 0.0)
    ref = jnp.maximum(jnp.asarray(ref, jnp.float32), 0.0)
    scale = _bcast(TONE_MEAN / jnp.maximum(_per_image(jnp.mean, ref), 1e-6), ref)
    return psnr(tonemap.log_tone(pred * scale), tonemap.log_tone(ref * scale), 1.0)


@jax.jit
def tone_mapped_pair(pred, ref, key=tonemap.PREVIEW_KEY):
    """Both images through Reinhard (key 0.18, exposure from the reference's log-average) + sRGB."""
    _check_pair(pred, ref)
    pred = jnp.asarray(pred, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    log_average = tonemap.log_average_luminance(ref)
    return (tonemap.to_srgb(tonemap.reinhard(pred, key=key, log_average=log_average)),
            tonemap.to_srgb(tonemap.reinhard(ref, key=key, log_average=log_average)))


@jax.jit
def tm_psnr(pred, ref):
    """PSNR (peak 1) of the tone-mapped sRGB view of `tone_mapped_pair`."""
    return psnr(*tone_mapped_pair(pred, ref), 1.0)


@jax.jit
def tm_ssim(pred, ref):
    """SSIM (per channel, averaged; data range 1) of the tone-mapped sRGB view."""
    return ssim(*tone_mapped_pair(pred, ref), 1.0)


# --------------------------------------------------------------------------------------------
# CRF correction (Hanji, Mantiuk, Eilertsen, Hajisharif, Unger, "Comparison of single image HDR
# reconstruction methods — the caveats of quality assessment", SIGGRAPH 2022 Conference
# Proceedings, doi:10.1145/3528233.3530729), following its released code gfxdisp/pu21
# matlab/crf_correction.m with the defaults pu21_metric(..., 'crf_correction', true) uses.

def _matmul(a, b):
    # Full float32 products: GPUs would otherwise use TF32 (10-bit mantissa) for the fit.
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _pq(x):
    lp = jnp.power(x / PU21_L_MAX, _PQ_N)
    return jnp.power((_PQ_C1 + _PQ_C2 * lp) / (1.0 + _PQ_C3 * lp), _PQ_M)


def _pq_inverse(v):
    # Clamped to the PQ code of L_max: above it the MATLAB formula diverges (and goes complex).
    r = jnp.power(jnp.clip(v, 0.0, 1.0), 1.0 / _PQ_M)
    lp = jnp.maximum((_PQ_C1 - r) / (_PQ_C3 * r - _PQ_C2), 0.0)
    return PU21_L_MAX * jnp.power(lp, 1.0 / _PQ_N)


def _rgb_to_luv(rgb):
    """crf_correction.m rgb2luv: (Y, u' · 410/255, v' · 410/255)."""
    xyz = jnp.clip(_matmul(rgb, jnp.asarray(_RGB2XYZ.T, jnp.float32)), _XYZ_MIN, _XYZ_MAX)
    s = jnp.sum(xyz, axis=-1)
    x, y = xyz[..., 0] / s, xyz[..., 1] / s
    d = -2.0 * x + 12.0 * y + 3.0
    return jnp.stack([xyz[..., 1], 4.0 * x / d * _UV_SCALE, 9.0 * y / d * _UV_SCALE], axis=-1)


def _luv_to_rgb(luv):
    """crf_correction.m luv2rgb."""
    lum = luv[..., 0]
    u, v = luv[..., 1] / _UV_SCALE, luv[..., 2] / _UV_SCALE
    d = 6.0 * u - 16.0 * v + 12.0
    x, y = 9.0 * u / d, 4.0 * v / d
    big_y = jnp.clip(lum, _XYZ_MIN, _XYZ_MAX)
    big_x = jnp.clip(x / y * lum, _XYZ_MIN, _XYZ_MAX)
    big_z = jnp.clip((1.0 - x - y) / y * lum, _XYZ_MIN, _XYZ_MAX)
    xyz = jnp.stack([big_x, big_y, big_z], axis=-1)
    return jnp.maximum(_matmul(xyz, jnp.asarray(_XYZ2RGB.T, jnp.float32)), 0.0)


def _design_matrix(x, degree):
    """crf_correction.m lin_matrix: [x^deg … x^2, pairwise products, x, 1] for x: f32[N, C]."""
    n, c = x.shape
    cross = [x[:, i:i + 1] * x[:, j:j + 1] for i in range(c - 1) for j in range(i + 1, c)]
    cols = [x ** d for d in range(degree, 1, -1)] + cross + [x, jnp.ones((n, 1), x.dtype)]
    return jnp.concatenate(cols, axis=1)


def _fit_polynomial(x, y, degree, lam):
    """crf_correction.m corr_opt's fit on f32[N, C]: ridge towards the identity map, X W."""
    if lam == 0.0:
        # Unregularised: the fitted values do not depend on the basis, and the span of the
        # design is closed under per-column affine maps, so fit on standardised inputs, whose
        # normal equations are well conditioned in float32 (raw x³, x², x, 1 are nearly collinear
        # over a narrow PQ range).
        mean = jnp.mean(x, axis=0, keepdims=True)
        x = (x - mean) / jnp.maximum(jnp.std(x, axis=0, keepdims=True), 1e-6)
    design = _design_matrix(x, degree)
    n, m = design.shape
    c = x.shape[1]
    w0 = jnp.zeros((m, c), x.dtype).at[m - c - 1:m - 1].set(jnp.eye(c, dtype=x.dtype))
    # (X'X + s I) W = X'Y + s W0 with s = lambda N / m, as corr_opt. Columns are equilibrated
    # first (W = D V, D = diag(1 / |X_j|)): the same solution, but a far better conditioned
    # m×m system for float32 (monomials up to x³ differ by orders of magnitude in size).
    s = lam * n / m
    d = 1.0 / jnp.maximum(jnp.sqrt(jnp.sum(design * design, axis=0)), 1e-30)
    gram = _matmul(design.T, design) * d[:, None] * d[None, :] + s * jnp.diag(d * d)
    v = jnp.linalg.solve(gram, d[:, None] * (_matmul(design.T, y) + s * w0))
    w = d[:, None] * v
    return _matmul(design, w)


def _crf_correct_one(pred, ref, degree, lam, normalize):
    """One image, f32[H, W, 3] absolute luminance; see `crf_correct`."""
    h, w, _ = pred.shape
    if normalize:  # crf_correction.m: anchor both medians at 500 cd/m², undo afterwards
        scale_ref = jnp.median(ref)
        ref = CRF_MEDIAN_ANCHOR * ref / scale_ref
        pred = CRF_MEDIAN_ANCHOR * pred / jnp.median(pred)
    ref = jnp.maximum(ref, PU21_L_MIN)
    pred = jnp.maximum(pred, PU21_L_MIN)
    p_luv = _rgb_to_luv(pred).reshape(h * w, 3)
    r_luv = _rgb_to_luv(ref).reshape(h * w, 3)
    # Luminance: polynomial in the PQ domain, no regularisation (crf_correction.m sets lambda 0).
    lum = _fit_polynomial(_pq(p_luv[:, :1]), _pq(r_luv[:, :1]), degree, 0.0)
    lum = _pq_inverse(jnp.maximum(lum, _pq(jnp.float32(PU21_L_MIN))))
    # Chromaticity: linear domain, regularised towards the identity.
    uv = jnp.maximum(_fit_polynomial(p_luv[:, 1:], r_luv[:, 1:], degree, lam), PU21_L_MIN)
    out = _luv_to_rgb(jnp.concatenate([lum, uv], axis=1).reshape(h, w, 3))
    if normalize:
        out = scale_ref * out / CRF_MEDIAN_ANCHOR
    return out


@functools.partial(jax.jit, static_argnames=("degree", "lam", "normalize"))
def crf_correct(pred, ref, *, degree=CRF_DEGREE, lam=CRF_LAMBDA, normalize=False):
    """Hanji et al. 2022 CRF correction: the prediction's tones and colours fitted to the reference.

    Per image (pred, ref: f32[B, H, W, 3] absolute linear RGB in cd/m²), as crf_correction.m with
    its defaults (degree 3, lambda 0.01, 'pq', 'luv'): in their Luv space (Y, scaled u'v'), the
    prediction's luminance is mapped by a cubic polynomial in the PQ domain fitted by least
    squares to the reference's, and its (u, v) by a cubic polynomial with cross term fitted in
    the linear domain with a ridge penalty towards the identity. It removes tone-curve and
    colour differences so the metrics see structure (detail, clipping) rather than grading.
    `normalize=True` first anchors each image's median at 500 cd/m² (for uncalibrated inputs).
    """
    pred = jnp.asarray(pred, jnp.float32)
    ref = jnp.asarray(ref, jnp.float32)
    _check_pair(pred, ref)
    fn = functools.partial(_crf_correct_one, degree=degree, lam=lam, normalize=normalize)
    return jax.vmap(fn)(pred, ref)


# --------------------------------------------------------------------------------------------
# The suite.

def absolute_pair(pred, ref, *, crf_correction=False, normalization="reference", display_peak=DISPLAY_PEAK):
    """(pred, ref) in cd/m² as `compute_all` scores them: `normalization`, then the CRF correction.

    Traceable (call it inside jit); the error budget and the speckle figure of
    `hdrjax.evaluation` use it so that their PU21 values are the metric's own.
    """
    if normalization == "authors":
        # Already cd/m² by the authors' convention (their HDR-VDP-2 input).
        pred_abs, ref_abs = authors_normalize(pred), authors_normalize(ref)
    else:
        pred_abs = display_model(pred, ref, display_peak)
        ref_abs = display_model(ref, None, display_peak)
    if crf_correction:
        pred_abs = crf_correct(pred_abs, ref_abs)
    return pred_abs, ref_abs


@functools.partial(jax.jit, static_argnames=("crf_correction", "normalization", "display_peak"))
def _compute_all(pred, ref, crf_correction, normalization, display_peak):
    pred_abs, ref_abs = absolute_pair(pred, ref, crf_correction=crf_correction, normalization=normalization,
                                      display_peak=display_peak)
    # The other metrics are invariant to a scale shared by both images, so they take the absolute
    # pair as it is.
    return {
        "pu21_psnr": pu21_psnr(pred_abs, ref_abs),
        "pu21_ssim": pu21_ssim(pred_abs, ref_abs),
        "mu_psnr": mu_psnr(pred_abs, ref_abs),
        "log_psnr": log_psnr(pred_abs, ref_abs),
        "tone_psnr": tone_psnr(pred_abs, ref_abs),
        "tm_psnr": tm_psnr(pred_abs, ref_abs),
        "tm_ssim": tm_ssim(pred_abs, ref_abs),
    }


def compute_all(pred, ref, *, crf_correction=False, normalization="reference",
                display_peak=DISPLAY_PEAK):
    """Every metric per image: pred, ref f32[B, H, W, 3] linear RGB -> {name: f32[B]}.

    Names are `METRIC_NAMES`.

    `normalization`: "reference" (shared scale; reference peak -> `display_peak` cd/m² for PU21)
    or "authors" (each image by `authors_normalize`, read as cd/m²). `crf_correction=True` applies
    `crf_correct` to the prediction first (Hanji et al. 2022). PSNRs are +inf for identical images.
    """
    if normalization not in NORMALIZATIONS:
        raise MetricError(f"normalization: unknown {normalization!r}; one of {NORMALIZATIONS}")
    _check_pair(pred, ref)
    taps = _gaussian_taps().size
    if min(jnp.shape(pred)[1:3]) < taps:
        raise MetricError(f"pred: the SSIM metrics need images of at least {taps}×{taps} pixels, "
                          f"got {jnp.shape(pred)[1]}×{jnp.shape(pred)[2]}")
    return _compute_all(jnp.asarray(pred, jnp.float32), jnp.asarray(ref, jnp.float32),
                        bool(crf_correction), normalization, float(display_peak))
