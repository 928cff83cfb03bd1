"""Shared building blocks: TF1 legacy bilinear resize, mirror padding, the residual U-Net.

The reference is TF1 code; the pieces here reproduce its numerics where they differ from
the JAX defaults (legacy `resize_bilinear` without half-pixel centres, TF `'SAME'` padding,
Glorot-uniform `tf.layers.conv2d` initialisation).
"""
from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from hdrjax.models.conv import conv_with_kernel_grad

Dtype = Any

# `tf.layers.conv2d` / slim defaults: Glorot (= Xavier) uniform kernel, zero bias.
glorot_uniform = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros


def tf_layer_name(index: int, base: str = "conv2d") -> str:
    """TF1 auto-generated layer name of the index-th layer: conv2d, conv2d_1, conv2d_2, ..."""
    return base if index == 0 else f"{base}_{index}"


def scale_channels(channels: int, width: float) -> int:
    """A layer's channel count in a model of relative `width` (1.0: the paper's network).

    Width < 1 gives the same architecture with thinner layers, for tests that check wiring
    rather than the trained network (flax's examples test their loops on such tiny models);
    width 1.0 returns `channels` exactly, so its parameters are the reference's.
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return max(1, round(channels * width))


# ----------------------------------------------------------------------------- resizing


def _legacy_source(n_in: int, n_out: int):
    """Source indices and weights of TF1 legacy bilinear (align_corners=False, no half-pixel)."""
    import numpy as np

    # Computed in float32 like TF's kernel: in = out_index * (in / out).
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.arange(n_out, dtype=np.float32) * scale
    lo = np.floor(src).astype(np.int32)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    return lo, hi, frac


def resize_bilinear_legacy(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """TF1 `resize_bilinear(align_corners=False)` without half-pixel centres, any sizes.

    x: [B, H, W, C] -> [B, size[0], size[1], C].  Output pixel j samples input position
    j * in / out; the upper neighbour is clamped to the border.  A gather-based reference
    for `upsample2x_legacy` and for non-×2 sizes.
    """
    out_h, out_w = size
    lo_h, hi_h, fh = _legacy_source(x.shape[1], out_h)
    lo_w, hi_w, fw = _legacy_source(x.shape[2], out_w)
    fh = jnp.asarray(fh, x.dtype)[None, :, None, None]
    fw = jnp.asarray(fw, x.dtype)[None, None, :, None]
    # TF interpolates along x first (top and bottom rows), then along y: top + (bottom - top) * dy.
    top = x[:, lo_h]
    bottom = x[:, hi_h]
    top = top[:, :, lo_w] + (top[:, :, hi_w] - top[:, :, lo_w]) * fw
    bottom = bottom[:, :, lo_w] + (bottom[:, :, hi_w] - bottom[:, :, lo_w]) * fw
    return top + (bottom - top) * fh


def _upsample2x_axis(x: jax.Array, axis: int) -> jax.Array:
    """×2 legacy bilinear along one axis: even outputs copy k, odd average k and k+1 (edge: copy)."""
    n = x.shape[axis]
    # Neighbour k+1 with the last sample repeated, so the last odd output copies the border.
    nxt = jnp.concatenate(
        [jax.lax.slice_in_dim(x, 1, n, axis=axis), jax.lax.slice_in_dim(x, n - 1, n, axis=axis)],
        axis=axis,
    )
    odd = x + (nxt - x) * jnp.asarray(0.5, x.dtype)
    both = jnp.stack([x, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * n
    return both.reshape(shape)


def upsample2x_legacy(x: jax.Array) -> jax.Array:
    """TF1 legacy bilinear ×2 up-sampling (`tf.image.resize_bilinear(x, 2 * shape)`) of NHWC x."""
    # Along W first, then H: TF's kernel lerps the top and bottom rows, then between them,
    # so the float rounding matches too.
    return _upsample2x_axis(_upsample2x_axis(x, 2), 1)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
    """`tf.layers.average_pooling2d(x, 2, 2)`: 2×2 window, stride 2, VALID."""
    return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


# ----------------------------------------------------------------------------- padding

PadMode = Literal["reflect", "symmetric"]


def mirror_pad(
    x: jax.Array, pad_h: tuple[int, int], pad_w: tuple[int, int], mode: PadMode = "reflect"
) -> jax.Array:
    """Mirror-pad the H and W axes of NHWC x.

    `reflect` mirrors about the edge pixel (TF `REFLECT`, numpy `reflect`: abc|ba);
    `symmetric` repeats it (TF `SYMMETRIC`, numpy `symmetric`: abc|cb).
    """
    if mode not in ("reflect", "symmetric"):
        raise ValueError(f"mirror_pad: mode must be 'reflect' or 'symmetric', got {mode!r}")
    return jnp.pad(x, ((0, 0), tuple(pad_h), tuple(pad_w), (0, 0)), mode=mode)


def padding_to_multiple(size: int, multiple: int, border: int = 0) -> tuple[int, int]:
    """(before, after) padding that makes size + 2·border a multiple, the rest split evenly."""
    total = -(size + 2 * border) % multiple + 2 * border
    before = total // 2
    return before, total - before


def pad_to_multiple(
    x: jax.Array, multiple: int, *, border: int = 0, mode: PadMode = "symmetric"
) -> tuple[jax.Array, tuple[tuple[int, int], tuple[int, int]]]:
    """Mirror-pad NHWC x so H and W are multiples of `multiple`; returns (padded, pads for `crop`)."""
    pads = (
        padding_to_multiple(x.shape[1], multiple, border),
        padding_to_multiple(x.shape[2], multiple, border),
    )
    if pads == ((0, 0), (0, 0)):
        return x, pads
    return mirror_pad(x, pads[0], pads[1], mode), pads


def crop(x: jax.Array, pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """Undo `pad_to_multiple`: remove the (before, after) padding of the H and W axes."""
    (top, bottom), (left, right) = pads
    return x[:, top : x.shape[1] - bottom, left : x.shape[2] - right]


# ----------------------------------------------------------------------------- U-Net


def tf_conv(
    features: int, kernel: int, name: str, *, dtype: Dtype, stride: int = 1, use_bias: bool = True,
    kernel_grad: str = "auto",
) -> nn.Conv:
    """A `tf.layers.conv2d` look-alike: SAME padding, Glorot-uniform kernel, zero bias, f32 params.

    `kernel_grad`: how its kernel gradient is computed (hdrjax.models.conv, KERNEL_GRADS).
    """
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding="SAME",
        use_bias=use_bias,
        kernel_init=glorot_uniform,
        bias_init=zeros,
        dtype=dtype,
        param_dtype=jnp.float32,
        conv_general_dilated=conv_with_kernel_grad(kernel_grad),
        name=name,
    )


class ResidualUNet(nn.Module):
    """The reference's 19-conv U-Net (Dequantization-/Refinement-Net), residual on the first 3 channels.

    x: f32[B, H, W, C] with H, W multiples of 16 -> f32[B, H, W, out_channels]:
    `output_activation(x[..., :out] + residual_activation(conv_18(...)))`.  Convs are named
    as tf.layers numbers them (`conv2d`, `conv2d_1` … `conv2d_18`), so a TF1 checkpoint maps
    1:1 (kernels are HWIO in both).  4 average-pool downs, 4 legacy-bilinear ups,
    LeakyReLU 0.1, concatenation order (up-sampled, skip).  `width` scales every layer's
    channels but the output's (`scale_channels`; 1.0 = the reference).
    """

    bottleneck_channels: int = 256
    out_channels: int = 3
    residual_activation: Literal["tanh", "linear"] = "tanh"
    output_activation: Literal["none", "relu"] = "none"
    dtype: Dtype = jnp.float32  # compute dtype; parameters stay float32
    width: float = 1.0  # channel multiplier (scale_channels); < 1 only for tests
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = x.shape[1:3]
        if h % 16 or w % 16:
            raise ValueError(
                f"{type(self).__name__}: input H, W must be multiples of 16, got {h}×{w} "
                "(pad with layers.pad_to_multiple, as SingleHDR does)"
            )
        counter = iter(range(19))

        def conv(t, features, kernel):
            layer = tf_conv(scale_channels(features, self.width), kernel, tf_layer_name(next(counter)),
                            dtype=self.dtype, kernel_grad=self.conv_kernel_grad)
            return nn.leaky_relu(layer(t), 0.1)

        def down(t, features, kernel):
            t = avg_pool_2x2(t)
            return conv(conv(t, features, kernel), features, kernel)

        def up(t, features, skip):
            t = conv(upsample2x_legacy(t), features, 3)
            return conv(jnp.concatenate([t, skip], axis=-1), features, 3)

        inp = x.astype(self.dtype)
        s1 = conv(conv(inp, 16, 7), 16, 7)
        s2 = down(s1, 32, 5)
        s3 = down(s2, 64, 3)
        s4 = down(s3, 128, 3)
        t = down(s4, self.bottleneck_channels, 3)
        t = up(t, 128, s4)
        t = up(t, 64, s3)
        t = up(t, 32, s2)
        t = up(t, 16, s1)
        r = tf_conv(self.out_channels, 3, tf_layer_name(next(counter)), dtype=self.dtype,
                    kernel_grad=self.conv_kernel_grad)(t)
        # The residual is added in float32 so a bfloat16 trunk does not quantise the image.
        r = r.astype(jnp.float32)
        if self.residual_activation == "tanh":
            r = jnp.tanh(r)
        elif self.residual_activation != "linear":
            raise ValueError(f"residual_activation must be 'tanh' or 'linear', got {self.residual_activation!r}")
        out = x[..., : self.out_channels].astype(jnp.float32) + r
        if self.output_activation == "relu":
            out = nn.relu(out)
        elif self.output_activation != "none":
            raise ValueError(f"output_activation must be 'none' or 'relu', got {self.output_activation!r}")
        return out
