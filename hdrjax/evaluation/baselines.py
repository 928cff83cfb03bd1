"""Non-learned LDR -> HDR baselines, evaluated by `hdrjax.evaluate` with the same protocol as the model.

Every baseline is a pure function of the LDR image alone (f32[..., H, W, 3] in [0, 1], numpy or
jax arrays, returning the same kind) and outputs linear *relative* radiance on the scale our
model uses: the LDR range maps onto [0, 1] (a pixel at LDR 1 gives 1). None of them can recover
clipped highlights, which is what makes them the floor a learned method has to beat.

* `identity`: the LDR values taken as radiance (no linearisation at all).
* `inverse_gamma`: x^2.2, the "display gamma" assumption.
* `inverse_srgb`: the exact sRGB decoding (IEC 61966-2-1 EOTF).
* `inverse_curve` / `mean_inverse_crf`: a fixed inverse CRF; with the mean curve g0 of the
  inverse-CRF basis in use (the model's `InverseCRFBasis.mean`, or invEMoR's g0) this is what
  the Linearization-Net outputs when all its PCA weights are 0 — the "average camera".
  `mean_curve` averages a set of curves (evaluate's `mean_crf`: a CRF bank's training split).
* `akyuz2007`: the linear-expansion inverse tone mapping of Akyüz, Fleming, Riecke, Reinhard and
  Bülthoff, "Do HDR displays support LDR content? A psychophysical evaluation", ACM Trans.
  Graph. 26(3) (SIGGRAPH 2007), Sec. 5:  L_w = k · ((L_d − L_d,min) / (L_d,max − L_d,min))^γ on
  the luminance of the (gamma-removed) LDR image, colours kept by scaling RGB with L_w / L_d.
  The paper found plain linear scaling (γ = 1) preferred; k is the display's peak luminance
  (3000 cd/m² on their Brightside DR37-P). We keep γ = 1 and use k = 1 (relative radiance,
  the scale every method here is compared on) and remove an sRGB-like gamma of 2.2 first.

`curve_of(name)` gives the global inverse curve (f32[1024] on the LDR grid) a baseline applies,
so the evaluation can score its CRF estimate like the Linearization-Net's.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from hdrjax import tonemap

N_SAMPLES = 1024  # = hdrjax.camera.crf.N_SAMPLES (kept local: no camera import at module load)
DISPLAY_GAMMA = 2.2
AKYUZ_PEAK = 1.0  # k; the paper's 3000 cd/m² is an absolute display scale, ours is relative
AKYUZ_GAMMA = 1.0  # γ = 1: the linear expansion the paper's subjects preferred
AKYUZ_LINEARIZE_GAMMA = 2.2  # gamma removed from the LDR before the expansion

# Baselines by name, in the order the evaluation reports them.
NAMES = ("identity", "gamma22", "srgb", "g0", "akyuz2007")


def _xp(x):
    """numpy for host arrays, jax.numpy for jax arrays and tracers."""
    return np if isinstance(x, (np.ndarray, np.generic, list, tuple, float, int)) else jnp


def _as_ldr(ldr):
    xp = _xp(ldr)
    return xp.clip(xp.asarray(ldr, dtype=xp.float32), 0.0, 1.0)


def identity(ldr):
    """The LDR image itself taken as linear radiance (clipped to [0, 1])."""
    return _as_ldr(ldr)


def inverse_gamma(ldr, gamma: float = DISPLAY_GAMMA):
    """Linearise with a pure power law: x^gamma (gamma 2.2 = the usual display gamma)."""
    xp = _xp(ldr)
    return xp.power(_as_ldr(ldr), xp.float32(gamma))


def inverse_srgb(ldr):
    """The sRGB EOTF (IEC 61966-2-1): x/12.92 below 0.04045, ((x + 0.055)/1.055)^2.4 above."""
    xp = _xp(ldr)
    x = _as_ldr(ldr)
    return xp.where(x <= 0.04045, x / 12.92, xp.power((xp.maximum(x, 0.04045) + 0.055) / 1.055, 2.4))


def inverse_curve(ldr, curve):
    """Apply one inverse CRF f32[1024] (samples on linspace(0, 1)) by linear interpolation.

    The same piecewise-linear lookup as `hdrjax.camera.crf.apply_curve` (the reference's
    `apply_rf`) for a single shared curve.
    """
    xp = _xp(ldr)
    x = _as_ldr(ldr)
    curve = xp.asarray(curve, dtype=xp.float32)
    n = curve.shape[-1]
    p = x * (n - 1)
    f0 = xp.floor(p)
    w1 = p - f0
    i0 = xp.clip(f0, 0, n - 1).astype(xp.int32)
    i1 = xp.clip(f0 + 1, 0, n - 1).astype(xp.int32)
    return (1.0 - w1) * curve[i0] + w1 * curve[i1]


def mean_inverse_crf(ldr, basis=None):
    """Linearise with the basis' mean inverse CRF g0 (`hdrjax.camera.default_basis()` when None)."""
    if basis is None:
        from hdrjax.camera.basis import default_basis

        basis = default_basis()
    return inverse_curve(ldr, np.asarray(basis.mean, np.float32))


def mean_curve(curves) -> np.ndarray:
    """The mean f32[1024] of inverse CRFs f[N, 1024] (e.g. a CRF bank's training split).

    Linearising with it is the "average camera" answer (evaluate's `mean_crf`). A mean of
    non-decreasing curves from 0 to 1 is itself one, so no projection is needed.
    """
    curves = np.asarray(curves, np.float64)
    if curves.ndim != 2 or curves.shape[0] < 1:
        raise ValueError(f"expected curves of shape [N, samples] with N >= 1, got {curves.shape}")
    return curves.mean(axis=0).astype(np.float32)


def akyuz2007(ldr, *, peak: float = AKYUZ_PEAK, gamma: float = AKYUZ_GAMMA,
              linearize_gamma: float | None = AKYUZ_LINEARIZE_GAMMA):
    """Akyüz et al. (SIGGRAPH 2007) linear expansion: L_w = k ((L_d − min) / (max − min))^γ.

    `ldr`: f32[..., H, W, 3]; min/max are per image (over H, W) of the Rec. 709 luminance L_d of
    the LDR after removing `linearize_gamma` (None: taken as linear). RGB is scaled by L_w / L_d
    (pixels with L_d = 0 stay 0). A constant image (max = min) has no range to expand and maps
    to 0, the limit of the formula with the numerator 0.
    """
    xp = _xp(ldr)
    rgb = _as_ldr(ldr) if linearize_gamma is None else inverse_gamma(ldr, linearize_gamma)
    lum = tonemap.luminance(rgb)
    lo = xp.min(lum, axis=(-2, -1), keepdims=True)
    hi = xp.max(lum, axis=(-2, -1), keepdims=True)
    span = hi - lo
    safe_span = xp.where(span > 0, span, 1.0)
    expanded = peak * xp.power(xp.maximum(lum - lo, 0.0) / safe_span, xp.float32(gamma))
    expanded = xp.where(span > 0, expanded, 0.0)
    ratio = xp.where(lum > 0, expanded / xp.where(lum > 0, lum, 1.0), 0.0)
    return (rgb * ratio[..., None]).astype(xp.float32)


def curve_of(name: str, basis=None) -> np.ndarray | None:
    """The global inverse curve f32[1024] baseline `name` applies, or None (image-dependent)."""
    grid = np.linspace(0.0, 1.0, N_SAMPLES, dtype=np.float32)
    if name == "identity":
        return grid
    if name == "gamma22":
        return inverse_gamma(grid)
    if name == "srgb":
        return inverse_srgb(grid)
    if name == "g0":
        if basis is None:
            from hdrjax.camera.basis import default_basis

            basis = default_basis()
        return np.asarray(basis.mean, np.float32)
    if name in NAMES:
        return None
    raise KeyError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")


def get(name: str, basis=None):
    """The baseline function `ldr -> hdr` called `name` (g0 bound to `basis`)."""
    if name == "identity":
        return identity
    if name == "gamma22":
        return inverse_gamma
    if name == "srgb":
        return inverse_srgb
    if name == "g0":
        return lambda ldr: mean_inverse_crf(ldr, basis)
    if name == "akyuz2007":
        return akyuz2007
    raise KeyError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")
