"""Tone curves shared by losses, metrics and previews.

`log_tone` is the paper's training-domain curve (used by the losses). The rest turn linear
relative radiance into something a screen can show: global Reinhard (2002) and the sRGB OETF.
Those work on numpy arrays (host side, e.g. `predict`) and on jax arrays / tracers (inside jit)
alike, returning the same kind of array they were given.
"""
import jax.numpy as jnp
import numpy as np

LOG_TONE_MU = 10.0

# Rec. 709 / sRGB luminance weights (linear RGB -> Y).
REC709_LUMA = (0.2126, 0.7152, 0.0722)
# Reinhard et al. 2002, eq. 1: delta avoids log(0) on black pixels.
REINHARD_DELTA = 1e-6
PREVIEW_KEY = 0.18


def log_tone(v):
    """The paper's T(v) = log(1 + 10 v) / log(11): maps [0, 1] to [0, 1], compresses highlights."""
    return jnp.log1p(LOG_TONE_MU * v) / jnp.log1p(LOG_TONE_MU)


def _xp(x):
    """numpy for host arrays (and lists), jax.numpy for jax arrays and tracers."""
    return np if isinstance(x, (np.ndarray, np.generic, list, tuple, float, int)) else jnp


def luminance(rgb):
    """Rec. 709 luminance of linear RGB: f32[..., 3] -> f32[...]."""
    xp = _xp(rgb)
    rgb = xp.asarray(rgb, dtype=xp.float32)
    r, g, b = REC709_LUMA
    return r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]


def log_average_luminance(hdr):
    """Reinhard's log-average luminance exp(mean(log(delta + Y))) over H, W -> f32[...]."""
    xp = _xp(hdr)
    y = xp.maximum(luminance(hdr), 0.0)
    return xp.exp(xp.mean(xp.log(REINHARD_DELTA + y), axis=(-2, -1)))


def reinhard(hdr, key=PREVIEW_KEY, white=None, log_average=None):
    """Global Reinhard et al. (2002) operator: linear HDR f32[..., H, W, 3] -> display-linear.

    L = key / L̄ · Y with L̄ the log-average luminance of each image (or `log_average`, f32[...],
    to expose several images identically), L_d = L (1 + L / white²) / (1 + L) (`white=None`:
    no burn-out, L_d = L / (1 + L)); colour is kept by scaling RGB with L_d / Y. Negative
    radiance is clamped to 0 first.
    """
    xp = _xp(hdr)
    hdr = xp.maximum(xp.asarray(hdr, dtype=xp.float32), 0.0)
    if log_average is None:
        log_average = log_average_luminance(hdr)
    exposure = key / xp.asarray(log_average, dtype=xp.float32)[..., None, None]
    scaled = exposure * luminance(hdr)
    if white is None:
        compress = 1.0 / (1.0 + scaled)
    else:
        compress = (1.0 + scaled / (white * white)) / (1.0 + scaled)
    # L_d / Y = exposure · compress: written without dividing by Y so black pixels stay 0.
    return hdr * (exposure * compress)[..., None]


def to_srgb(x):
    """sRGB OETF (IEC 61966-2-1) of display-linear values, clipped to [0, 1] first."""
    xp = _xp(x)
    x = xp.clip(xp.asarray(x, dtype=xp.float32), 0.0, 1.0)
    # max() keeps the power's argument positive in the unused branch (no NaN gradients).
    curve = 1.055 * xp.power(xp.maximum(x, 0.0031308), 1.0 / 2.4) - 0.055
    return xp.where(x <= 0.0031308, 12.92 * x, curve)


def to_srgb_uint8(x):
    """sRGB-encode display-linear values and quantise to uint8 (round to nearest)."""
    xp = _xp(x)
    return xp.round(to_srgb(x) * 255.0).astype(xp.uint8)


def preview(hdr):
    """The preview operator used by predict: Reinhard (key 0.18, no burn-out) + sRGB, uint8 RGB."""
    return to_srgb_uint8(reinhard(hdr, key=PREVIEW_KEY))
