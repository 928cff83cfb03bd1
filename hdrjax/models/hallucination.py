"""Hallucination-Net: HDRCNN-style VGG-16 encoder / up-sampling decoder (docs/reference.md §2.3).

The net predicts a raw residual r for a linear, clipped image x in [0, 1]; only the blend
``A = x + α·relu(r)`` with ``α = clip((max_c x − (1 − 0.12)) / 0.12, 0, 1)`` is used
(`highlight_blend`), so it adds non-negative energy where the brightest channel exceeds 0.88.

Layer table (x: f32[B, H, W, 3], H and W multiples of 32; skips are divided by 255 because
the VGG activations live in the 0–255 input scale):

=====================================  ==============================================  =========
step                                   operation                                       channels
=====================================  ==============================================  =========
encoder (VGG16Features, "caffe")       255·x, BGR, −Caffe means; conv1_1 … conv5_3,     3 → 512
                                       max-pools; keeps beforepool1 … beforepool5
encoder_h6                             3×3 conv (bias, linear) → BN → ReLU              512 → 512
decoder_h1                             up-block (NN ×2, reflect pad 1, 3×3 VALID conv   512 → 512
                                       + ReLU, BN, ReLU)
decoder_h2 … h5                        fuse [net, beforepool(6−k)/255] (1×1 conv),      … → 64
                                       then up-block (512, 256, 128, 64 out)
decoder_h6                             fuse with beforepool1/255                        128 → 64
decoder_h7                             1×1 conv (Glorot normal) → BN → ReLU, then fuse  64 → 3
                                       with x (= (255·x)/255)
=====================================  ==============================================  =========

Every fuse 1×1 conv starts as an element-wise sum: output channel c = features[c] + skip[c]
(`identity_sum_init`). BatchNorm is TensorLayer's: ε 1e-5, decay 0.9, γ ~ N(1, 0.002),
β = 0, biased batch variance, running statistics in the `batch_stats` collection.
24,569,118 trainable parameters, 14,714,688 of them in the VGG encoder.

TensorFlow-1 (TensorLayer 1.10) variable names → Flax paths, used by the TF1 checkpoint
importer (`tf1_variable_map()` builds the full table). All names are under
``Hallucination_Net/``:

* ``encoder/h{K}/conv_{J}/W_conv2d|b_conv2d`` → ``params/encoder/conv{K}_{J}/kernel|bias``
* every other layer: its TensorLayer name with ``/`` replaced by ``_`` is the Flax module
  name, e.g. ``decoder/h3/decon2d/batch_norm_dc`` → ``decoder_h3_decon2d_batch_norm_dc``;
* leaves: ``W_conv2d`` → ``kernel``, ``b_conv2d`` → ``bias`` (params); ``gamma`` → ``scale``,
  ``beta`` → ``bias`` (params); ``moving_mean`` → ``mean``, ``moving_variance`` → ``var``
  (batch_stats). Kernels are HWIO in both.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.errors import ConfigError
from hdrjax.models.conv import conv_with_kernel_grad
from hdrjax.models.layers import scale_channels
from hdrjax.models.vgg import (
    BLOCKS,
    CONV_SHAPES,
    TORCHVISION_TO_CAFFE_SCALE,
    VGG16Features,
    VGGWeights,
    convert_preprocessing,
    rescale_activations,
)

BLEND_THRESHOLD = 0.12  # §2.3: the blend ramps from max_c x = 0.88 to 1.0
BN_EPSILON = 1e-5  # TensorLayer BatchNormLayer default
BN_MOMENTUM = 0.9  # TensorLayer decay 0.9: running = 0.9 running + 0.1 batch
TF1_SCOPE = "Hallucination_Net"

# TensorLayer's default conv init (truncated normal σ 0.02, bias 0).
_tl_kernel_init = nn.initializers.truncated_normal(stddev=0.02)


def blend_weight(x: jax.Array, threshold: float = BLEND_THRESHOLD) -> jax.Array:
    """Per-pixel blend weight α = clip((max_c x − (1 − threshold)) / threshold, 0, 1): f32[..., 1]."""
    m = jnp.max(x, axis=-1, keepdims=True)
    # Same operation order as the reference: max(0, m − 1 + thr) / thr, then min(1, ·).
    return jnp.clip((m - 1.0 + threshold) / threshold, 0.0, 1.0)


def highlight_blend(x: jax.Array, r: jax.Array, threshold: float = BLEND_THRESHOLD) -> jax.Array:
    """The Hallucination-Net output A = x + α·relu(r), α = `blend_weight(x, threshold)`."""
    return x + blend_weight(x, threshold) * nn.relu(r)


def bn_gamma_init(key, shape, dtype=jnp.float32):
    """TensorLayer's BatchNorm γ initialiser: N(1, 0.002) (not truncated)."""
    return (1.0 + 0.002 * jax.random.normal(key, shape, jnp.float32)).astype(dtype)


def identity_sum_init(key, shape, dtype=jnp.float32):
    """1×1 fuse kernel f32[1, 1, 2C, C] with output c = input c + input C + c (features + skip)."""
    del key  # deterministic
    kh, kw, cin, cout = shape
    if (kh, kw) != (1, 1) or cin != 2 * cout:
        raise ValueError(f"identity_sum_init needs a (1, 1, 2C, C) kernel, got {shape}")
    k = np.zeros(shape, np.float32)
    idx = np.arange(cout)
    k[0, 0, idx, idx] = 1.0
    k[0, 0, idx + cout, idx] = 1.0
    return jnp.asarray(k, dtype)


class SkipFusion(nn.Module):
    """concat [features, skip] → 1×1 conv (bias, linear), initialised to features + skip."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array, skip: jax.Array) -> jax.Array:
        c, cs = features.shape[-1], skip.shape[-1]
        if c != cs:
            raise ValueError(f"{self.name}: features have {c} channels but the skip has {cs}")
        kernel = self.param("kernel", identity_sum_init, (1, 1, 2 * c, c), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        h = jnp.concatenate([features.astype(self.dtype), skip.astype(self.dtype)], axis=-1)
        return jnp.dot(h, kernel[0, 0].astype(self.dtype)) + bias.astype(self.dtype)


def _upsample_nearest2x(x: jax.Array) -> jax.Array:
    # TF1 resize_nearest_neighbor ×2 with align_corners=False is an exact repeat.
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class HallucinationNet(nn.Module):
    """§2.3 Hallucination-Net: `__call__(x, *, train)` → raw residual r f32[B, H, W, 3].

    x: linear clipped image f32[B, H, W, 3] in [0, 1], H and W multiples of 32. `train`
    selects batch statistics (and updates `batch_stats`, which must then be mutable) vs the
    running averages. Combine the output with `highlight_blend(x, r)`.

    `width` scales every layer's channels but the 3 of the output (`scale_channels`), the VGG
    encoder's included: a width other than 1.0 has no pre-trained encoder (`encoder_init`
    refuses it).
    """

    dtype: Any = jnp.float32  # compute dtype (e.g. bfloat16); parameters stay float32
    width: float = 1.0  # channel multiplier; < 1 only for tests
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    def _conv(self, features, kernel_size, padding, name, kernel_init=_tl_kernel_init):
        return nn.Conv(
            features,
            kernel_size,
            padding=padding,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=kernel_init,
            conv_general_dilated=conv_with_kernel_grad(self.conv_kernel_grad),
            name=name,
        )

    def _bn(self, train, name):
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            scale_init=bn_gamma_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            use_fast_variance=False,  # two-pass variance: exact on large activations
            name=name,
        )

    def _up_block(self, h, channels, train, name):
        h = _upsample_nearest2x(h)
        h = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        # The reference's reflect pad + 3×3 VALID conv, computed as a conv with one more ring
        # of zero padding whose border is cropped away: the same numbers (the zero ring only
        # reaches the cropped pixels), but XLA:CPU runs unpadded convs on a far slower path
        # (benchmark knob `valid_conv`: this network's forward ≈ 2× faster).
        h = self._conv(channels, (3, 3), ((1, 1), (1, 1)), name)(h)[:, 1:-1, 1:-1]
        # The reference has a ReLU inside the conv *and* one after the BN.
        h = nn.relu(h)
        h = self._bn(train, f"{name}_batch_norm_dc")(h)
        return nn.relu(h)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"HallucinationNet expects f32[B, H, W, 3], got shape {x.shape}")
        if x.shape[1] % 32 or x.shape[2] % 32:
            raise ValueError(
                f"HallucinationNet needs H and W to be multiples of 32 (five 2× poolings), got {x.shape[1:3]}"
            )
        x = x.astype(jnp.float32)
        feats = VGG16Features(preprocessing="caffe", dtype=self.dtype, kernel_init=_tl_kernel_init, width=self.width,
                              conv_kernel_grad=self.conv_kernel_grad, name="encoder")(x)

        def wide(channels):  # this model's count for the paper's `channels`
            return scale_channels(channels, self.width)

        h = self._conv(wide(512), (3, 3), "SAME", "encoder_h6_conv")(feats["pool5"])
        h = nn.relu(self._bn(train, "encoder_h6_batch_norm")(h))

        # Decoder: an up-block, then (fuse with the encoder skip at that scale, up-block) ×4.
        h = self._up_block(h, wide(512), train, "decoder_h1_decon2d")
        for k, channels in zip((2, 3, 4, 5), (512, 256, 128, 64)):
            skip = feats[f"beforepool{7 - k}"] / 255.0
            h = SkipFusion(dtype=self.dtype, name=f"decoder_h{k}_fuse_skip_connection")(h, skip)
            h = self._up_block(h, wide(channels), train, f"decoder_h{k}_decon2d")
        h = SkipFusion(dtype=self.dtype, name="decoder_h6_fuse_skip_connection")(h, feats["beforepool1"] / 255.0)

        h = self._conv(3, (1, 1), "SAME", "decoder_h7_conv2d", kernel_init=nn.initializers.glorot_normal())(h)
        h = nn.relu(self._bn(train, "decoder_h7_batch_norm")(h))
        # The reference's last skip is its encoder input 255·x divided by 255, i.e. x (RGB).
        h = SkipFusion(dtype=self.dtype, name="decoder_h7_fuse_skip_connection")(h, x)
        return h.astype(jnp.float32)


def _conv_leaves(tl_name, flax_path):
    return {
        f"{TF1_SCOPE}/{tl_name}/W_conv2d": ("params", flax_path + ("kernel",)),
        f"{TF1_SCOPE}/{tl_name}/b_conv2d": ("params", flax_path + ("bias",)),
    }


def _bn_leaves(tl_name):
    m = (tl_name.replace("/", "_"),)
    return {
        f"{TF1_SCOPE}/{tl_name}/gamma": ("params", m + ("scale",)),
        f"{TF1_SCOPE}/{tl_name}/beta": ("params", m + ("bias",)),
        f"{TF1_SCOPE}/{tl_name}/moving_mean": ("batch_stats", m + ("mean",)),
        f"{TF1_SCOPE}/{tl_name}/moving_variance": ("batch_stats", m + ("var",)),
    }


def tf1_variable_map() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Reference checkpoint variable name → (Flax collection, path) for every HallucinationNet variable."""
    out = {}
    for block, n_convs, _ in BLOCKS:
        for j in range(1, n_convs + 1):
            out.update(_conv_leaves(f"encoder/h{block}/conv_{j}", ("encoder", f"conv{block}_{j}")))
    out.update(_conv_leaves("encoder/h6/conv", ("encoder_h6_conv",)))
    out.update(_bn_leaves("encoder/h6/batch_norm"))
    for k in range(1, 6):
        if k > 1:
            out.update(_conv_leaves(f"decoder/h{k}/fuse_skip_connection", (f"decoder_h{k}_fuse_skip_connection",)))
        out.update(_conv_leaves(f"decoder/h{k}/decon2d", (f"decoder_h{k}_decon2d",)))
        out.update(_bn_leaves(f"decoder/h{k}/decon2d/batch_norm_dc"))
    out.update(_conv_leaves("decoder/h6/fuse_skip_connection", ("decoder_h6_fuse_skip_connection",)))
    out.update(_conv_leaves("decoder/h7/conv2d", ("decoder_h7_conv2d",)))
    out.update(_bn_leaves("decoder/h7/batch_norm"))
    out.update(_conv_leaves("decoder/h7/fuse_skip_connection", ("decoder_h7_fuse_skip_connection",)))
    return out


def encoder_init(tree: dict, weights: VGGWeights, *, activation_scale: float | str = "auto") -> dict:
    """Return `tree` (HallucinationNet variables or params) with its VGG encoder set to `weights`.

    The encoder always sees the reference's Caffe-convention input, so weights trained with
    another convention (the lpips/torchvision ImageNet VGG) are first rewritten by
    `convert_preprocessing` (exact away from the image border, where SAME zero padding differs).

    `activation_scale` multiplies every encoder activation (`rescale_activations`, exact).
    The decoder divides the skips by 255 because Caffe-VGG activations live in 0-255 units;
    torchvision-VGG activations are roughly 60× smaller (estimated; beforepool1 averages 0.44
    on HDR test patches), which would leave the skips at ~0.002 next to O(1) decoder features. "auto"
    uses `TORCHVISION_TO_CAFFE_SCALE` (≈ 57.6) for torchvision weights and 1 for Caffe ones;
    pass 1.0 for the function-preserving conversion. Pure: `tree` is not modified.

    The weights are VGG-16's, so they fit only a width-1.0 encoder: a narrower model
    (`config.model.width` < 1) raises ConfigError instead of being initialised from a
    slice of them (which would be neither the paper's init nor a random one).
    """
    if not isinstance(weights, VGGWeights):
        raise TypeError(
            f"encoder_init needs VGGWeights (load_caffe_vgg16 / load_lpips_vgg16), got {type(weights).__name__}"
        )
    if activation_scale == "auto":
        activation_scale = TORCHVISION_TO_CAFFE_SCALE if weights.preprocessing == "torchvision" else 1.0
    weights = rescale_activations(convert_preprocessing(weights, "caffe"), float(activation_scale))
    if "params" in tree:
        return {**tree, "params": encoder_init(tree["params"], weights, activation_scale=1.0)}
    if "encoder" not in tree:
        raise ValueError(f"not a HallucinationNet param tree: no 'encoder' entry (keys {sorted(tree)})")
    old = tree["encoder"]
    have = np.shape(old.get("conv1_1", {}).get("kernel"))
    if have != CONV_SHAPES["conv1_1"]:
        raise ConfigError(
            f"config.init.vgg: the pre-trained VGG-16 weights ({weights.source}) fit only config.model.width "
            f"= 1.0, but this Hallucination-Net's encoder has conv1_1 of shape {have} (expected "
            f"{CONV_SHAPES['conv1_1']}): set config.init.vgg = '' to start a narrower model from random weights")
    new = {}
    for name, conv in old.items():
        if name not in weights.params:
            raise ValueError(f"{weights.source}: no weights for encoder/{name}")
        new[name] = {}
        for leaf, value in conv.items():
            w = jnp.asarray(weights.params[name][leaf], jnp.asarray(value).dtype)
            if w.shape != np.shape(value):
                raise ValueError(
                    f"{weights.source}: {name}/{leaf} has shape {w.shape}, the net wants {np.shape(value)}"
                )
            new[name][leaf] = w
    return {**tree, "encoder": new}


__all__ = [
    "BLEND_THRESHOLD",
    "HallucinationNet",
    "SkipFusion",
    "blend_weight",
    "bn_gamma_init",
    "encoder_init",
    "highlight_blend",
    "identity_sum_init",
    "tf1_variable_map",
]
