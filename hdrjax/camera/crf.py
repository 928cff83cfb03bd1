"""Camera response curves: sampling, inversion, application, monotone projection, banks, bases.

Every curve is sampled on N_SAMPLES = 1024 equally spaced points of [0, 1] (the DoRF and
EMoR convention).  A forward curve maps linear irradiance to brightness; its inverse maps
brightness back to irradiance.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

N_SAMPLES = 1024


def apply_curve(x: jax.Array, curve: jax.Array) -> jax.Array:
    """Piecewise-linear lookup of x in a 1024-sample curve, as the reference's `apply_rf`.

    x: f32[B, ...] in [0, 1] (clip first: as in the reference only the indices are clamped);
    curve: f32[B, 1024] (one curve per sample) or f32[1024] (shared).  Differentiable in both.
    """
    n = curve.shape[-1]
    p = x * (n - 1)
    i0 = jnp.clip(jnp.floor(p), 0, n - 1)
    i1 = jnp.clip(i0 + 1, 0, n - 1)
    w1 = p - i0
    w0 = i1 - p
    i0 = i0.astype(jnp.int32)
    i1 = i1.astype(jnp.int32)
    if curve.ndim == 1:
        c0, c1 = curve[i0], curve[i1]
    else:
        flat = curve.reshape(curve.shape[0], n)
        b = x.shape[0]
        take = jax.vmap(lambda c, i: c[i])
        c0 = take(flat, i0.reshape(b, -1)).reshape(x.shape)
        c1 = take(flat, i1.reshape(b, -1)).reshape(x.shape)
    return w0 * c0 + w1 * c1


def monotone_projection(raw: jax.Array, eps: float = 1e-8) -> jax.Array:
    """The reference's `_increase`: shift steps to be >= 0, normalise, cumulative sum.

    raw: f32[..., N] -> f32[..., N], non-decreasing, first sample 0, last sample 1.
    `eps` keeps a perfectly flat curve from dividing by zero (the reference gives NaN there);
    a flat input then maps to the identity ramp.
    """
    d = raw[..., 1:] - raw[..., :-1]
    d = d + jnp.maximum(0.0, -jnp.min(d, axis=-1, keepdims=True))
    d = d + eps
    d = d / jnp.sum(d, axis=-1, keepdims=True)
    zero = jnp.zeros(d.shape[:-1] + (1,), d.dtype)
    return jnp.concatenate([zero, jnp.cumsum(d, axis=-1)], axis=-1)
