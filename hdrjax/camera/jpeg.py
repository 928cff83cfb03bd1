"""Baseline JPEG (encode + decode) in jnp, differentiable with straight-through rounding.

Follows libjpeg(-turbo) with its defaults, as used by OpenCV, Pillow and TF's
`adjust_jpeg_quality`: JFIF full-range YCbCr, 4:2:0 chroma (2x2 box average with libjpeg's
alternating rounding bias), 8x8 DCT, the Annex K tables scaled by the IJG quality formula,
and on decode libjpeg's "fancy" (triangle) chroma upsampling.  Every integer rounding that
libjpeg performs is reproduced (forward: exact rounding; backward: identity), the colour
conversions in libjpeg's own 16-bit fixed point; the DCT is float, so decoded pixels differ
from a real codec only where libjpeg's fixed-point DCT rounds differently (mean 0.1-0.3
levels of 255 against OpenCV's libjpeg-turbo at quality 50-100).

Sizes that are not multiples of 16 are edge-padded (as libjpeg replicates the last
row/column) and cropped back.  Quality may differ per sample: `quality` is i32[B].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# ITU-T T.81 Annex K.1 tables, natural (row-major) order, as libjpeg's jcparam.c.
LUMA_QUANT = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int32).reshape(8, 8)

CHROMA_QUANT = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
], dtype=np.int32).reshape(8, 8)

UPSAMPLING = ("fancy", "nearest")


def _dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II: JPEG's F = D X D^T (T.81 A.3.3)."""
    u = np.arange(8)[:, None]
    x = np.arange(8)[None, :]
    d = np.cos((2 * x + 1) * u * np.pi / 16) / 2
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


_DCT = _dct_matrix()


def _st(x, y):
    """y forward, gradient of x backward (straight-through)."""
    return x + jax.lax.stop_gradient(y - x)


def round_st(x):
    """Round half to even forward, identity gradient backward."""
    return _st(x, jnp.round(x))


# Exact ties are common (a DC coefficient is a multiple of 1/8, a DC-only block decodes to
# multiples of Q/8) and float32 lands a few ulps either side of them depending on how XLA
# fuses the sums; a fixed margin resolves every tie libjpeg's way whatever the batch size,
# sharding or device.  2^-8 is far above float32 error at these magnitudes (< 2^-12).
_TIE = 2.0 ** -8


def _round_away_st(x):
    # libjpeg's quantizer adds q/2 to |coef| before dividing: round half away from zero.
    return _st(x, jnp.sign(x) * jnp.floor(jnp.abs(x) + (0.5 + _TIE)))


def _round_up_st(x):
    # libjpeg's DESCALE: add half, shift right: round half up.
    return _st(x, jnp.floor(x + (0.5 + _TIE)))


def _floor_div_st(x, bias, div):
    # (x + bias) >> log2(div) in libjpeg; gradient of x / div.
    return _st(x / div, jnp.floor((x + bias) / div))


def quant_tables(quality):
    """IJG-scaled (luma, chroma) tables i32[..., 8, 8] for quality i32[...] (1..100)."""
    q = jnp.clip(jnp.asarray(quality, jnp.int32), 1, 100)
    scale = jnp.where(q < 50, 5000 // q, 200 - 2 * q)[..., None, None]
    # force_baseline=TRUE (OpenCV, Pillow, TF) limits entries to 255.
    luma = jnp.clip((jnp.asarray(LUMA_QUANT) * scale + 50) // 100, 1, 255)
    chroma = jnp.clip((jnp.asarray(CHROMA_QUANT) * scale + 50) // 100, 1, 255)
    return luma, chroma


def _fixed_point(x, offset):
    # libjpeg's (sum + offset) >> 16 on 16-bit fixed-point products.  Every product and sum
    # stays below 2^24 (libjpeg picked its offsets so), so float32 computes it exactly in any
    # order: the result does not depend on XLA's fusion.
    return jnp.floor((x + offset) / 65536.0)


def rgb_to_ycbcr(rgb):
    """JFIF full-range RGB -> YCbCr on 0..255, rounded as libjpeg's jccolor.c (ST gradient).

    rgb must hold integers (8-bit samples) for the forward values to be libjpeg's.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    r, g, b = (jax.lax.stop_gradient(v) for v in (r, g, b))
    y_q = _fixed_point(19595.0 * r + 38470.0 * g + 7471.0 * b, 32768.0)
    # Cb/Cr: offset 128 << 16 and a rounding fudge of 0.5 - epsilon, as libjpeg.
    cb_q = _fixed_point(-11059.0 * r - 21709.0 * g + 32768.0 * b, 8388608.0 + 32767.0)
    cr_q = _fixed_point(32768.0 * r - 27439.0 * g - 5329.0 * b, 8388608.0 + 32767.0)
    return _st(y, y_q), _st(cb, cb_q), _st(cr, cr_q)


def ycbcr_to_rgb(y, cb, cr):
    """JFIF full-range YCbCr -> RGB on 0..255, rounded as libjpeg's jdcolor.c (ST gradient)."""
    cb = cb - 128.0
    cr = cr - 128.0
    r = y + 1.402 * cr
    g = y - 0.344136286 * cb - 0.714136286 * cr
    b = y + 1.772 * cb
    y_, cb_, cr_ = (jax.lax.stop_gradient(v) for v in (y, cb, cr))
    r_q = y_ + _fixed_point(91881.0 * cr_, 32768.0)
    g_q = y_ + _fixed_point(-22554.0 * cb_ - 46802.0 * cr_, 32768.0)
    b_q = y_ + _fixed_point(116130.0 * cb_, 32768.0)
    return jnp.stack([_st(r, r_q), _st(g, g_q), _st(b, b_q)], axis=-1)


def _blocks(x):
    b, h, w = x.shape
    return x.reshape(b, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


def _unblocks(x):
    b, nh, nw, _, _ = x.shape
    return x.transpose(0, 1, 3, 2, 4).reshape(b, nh * 8, nw * 8)


def _dct_quantize_roundtrip(plane, table):
    """Level shift, 8x8 DCT, quantize/dequantize with table[B,8,8], IDCT, clamp to 0..255."""
    d = jnp.asarray(_DCT)
    blk = _blocks(plane - 128.0)
    coef = jnp.einsum("ux,bijxy,vy->bijuv", d, blk, d)
    t = table[:, None, None].astype(coef.dtype)
    coef = _round_away_st(coef / t) * t
    out = jnp.einsum("ux,bijuv,vy->bijxy", d, coef, d)
    # libjpeg's IDCT rounds and range-limits each sample to 0..255.
    return jnp.clip(_round_up_st(_unblocks(out) + 128.0), 0.0, 255.0)


def _downsample_h2v2(c):
    """libjpeg h2v2_downsample: 2x2 sum, + bias 1, 2, 1, 2, ... along the row, >> 2."""
    b, h, w = c.shape
    s = c.reshape(b, h // 2, 2, w // 2, 2).sum(axis=(2, 4))
    bias = jnp.asarray(np.tile([1.0, 2.0], w // 4 + 1)[: w // 2], c.dtype)
    return _floor_div_st(s, bias, 4.0)


def _upsample_fancy_h2v2(c):
    """libjpeg h2v2_fancy_upsample: triangle filter (3/4, 1/4) in both directions."""
    b, h, w = c.shape
    p = jnp.pad(c, ((0, 0), (1, 1), (0, 0)), mode="edge")
    # Vertical: output row 2i uses row i-1 as the far row, row 2i+1 uses row i+1.
    up = 3.0 * c + p[:, :-2]
    down = 3.0 * c + p[:, 2:]
    cols = jnp.stack([up, down], axis=2).reshape(b, 2 * h, w)
    q = jnp.pad(cols, ((0, 0), (0, 0), (1, 1)), mode="edge")
    # Horizontal, with libjpeg's rounding biases 8 (even outputs) and 7 (odd outputs).
    left = _floor_div_st(3.0 * cols + q[:, :, :-2], 8.0, 16.0)
    right = _floor_div_st(3.0 * cols + q[:, :, 2:], 7.0, 16.0)
    return jnp.stack([left, right], axis=3).reshape(b, 2 * h, 2 * w)


def _upsample_nearest(c):
    return jnp.repeat(jnp.repeat(c, 2, axis=1), 2, axis=2)


def jpeg_roundtrip(image, quality, *, upsampling: str = "fancy"):
    """Encode and decode RGB image f32[B, H, W, 3] in [0, 1] at quality i32[B] (or scalar).

    Returns the decoded image, f32[B, H, W, 3], multiples of 1/255.  Gradients pass
    straight through every rounding.  `upsampling`: "fancy" (libjpeg's default decoder) or
    "nearest" (pixel replication, `do_fancy_upsampling = FALSE`).
    """
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
    x = jnp.asarray(image, jnp.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"image must be f32[B, H, W, 3], got shape {x.shape}")
    bsz, h, w, _ = x.shape
    quality = jnp.broadcast_to(jnp.asarray(quality, jnp.int32), (bsz,))
    luma_q, chroma_q = quant_tables(quality)

    # The encoder sees 8-bit samples.
    x = round_st(jnp.clip(x, 0.0, 1.0) * 255.0)
    ph, pw = -h % 16, -w % 16
    x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    y, cb, cr = rgb_to_ycbcr(x)

    y = _dct_quantize_roundtrip(y, luma_q)[:, :h, :w]
    ch, cw = (h + 1) // 2, (w + 1) // 2
    chroma = []
    for c in (cb, cr):
        c = _dct_quantize_roundtrip(_downsample_h2v2(c), chroma_q)
        # The decoder only knows the real chroma size and replicates its edge when upsampling.
        c = c[:, :ch, :cw]
        c = _upsample_fancy_h2v2(c) if upsampling == "fancy" else _upsample_nearest(c)
        chroma.append(c[:, :h, :w])
    return jnp.clip(ycbcr_to_rgb(y, *chroma), 0.0, 255.0) / 255.0
