"""Linearization-Net (reference `linearization_net.py`): LDR image -> 1024-sample inverse CRF.

feature stack (RGB, Sobel, soft histograms) -> ResNet-50 stem … res3b (`crf_feature_net`)
-> global mean (512) -> dense 512 -> 11 (`ae_invcrf_decode_net`) -> inverse-EMoR PCA curve
-> monotone projection.  Flax names mirror the TF1 ones:

    crf_feature_net/<layer>/weights | biases          params/crf_feature_net/<layer>/kernel | bias
    crf_feature_net/<bn>/BatchNorm/gamma | beta       params/crf_feature_net/<bn>/scale | bias
    crf_feature_net/<bn>/BatchNorm/moving_mean | _variance
                                                      batch_stats/crf_feature_net/<bn>/mean | var
    ae_invcrf_decode_net/dense/kernel | bias          params/ae_invcrf_decode_net/dense/kernel | bias
"""
from __future__ import annotations

import functools
import os
import pickle
from typing import Any, Literal, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.camera.crf import (N_SAMPLES, apply_curve, code_sample, dark_end_prior, dark_end_shape,
                               monotone_projection)
from hdrjax.models.layers import mirror_pad, scale_channels, tf_conv
from hdrjax.errors import HdrjaxError

Dtype = Any
HistogramLayout = Literal["reference", "tf2"]

HISTOGRAM_BINS = (4, 8, 16)  # reference: histogram_layer(img, 4 | 8 | 16)
N_COMPONENTS = 11  # reference: dense 512 -> 11 weights of hinv(1..11)
N_TRUNK_PARAMS = 1_195_328  # reference §2.2.2, with the 102-channel "reference" feature stack
N_HEAD_PARAMS = 512 * N_COMPONENTS + N_COMPONENTS  # 5,643


class WeightFileError(HdrjaxError):
    """A pretrained-weight file is unreadable or does not match the network; names the file."""

    def __init__(self, path, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# ----------------------------------------------------------------------------- features


def sobel_edges(x: jax.Array) -> jax.Array:
    """TF `tf.image.sobel_edges` flattened: f32[B,H,W,C] -> [B,H,W,2C] ordered (c0∂y, c0∂x, c1∂y, …).

    Cross-correlation with ∂y = [[-1,-2,-1],[0,0,0],[1,2,1]] and ∂x = its transpose after a
    1-pixel REFLECT pad, exactly as TF (no normalisation).
    """
    p = mirror_pad(x, (1, 1), (1, 1), "reflect")
    h, w = x.shape[1:3]

    def win(dy, dx):  # the input shifted so that output (i, j) reads p[i + dy, j + dx]
        return p[:, dy : dy + h, dx : dx + w]

    dy = (win(2, 0) + 2 * win(2, 1) + win(2, 2)) - (win(0, 0) + 2 * win(0, 1) + win(0, 2))
    dx = (win(0, 2) + 2 * win(1, 2) + win(2, 2)) - (win(0, 0) + 2 * win(1, 0) + win(2, 0))
    return jnp.stack([dy, dx], axis=-1).reshape(x.shape[:3] + (2 * x.shape[3],))


def soft_histogram(x: jax.Array, n_bins: int, layout: HistogramLayout = "reference") -> jax.Array:
    """Per-pixel triangular bin memberships, bin-major with the image channels inner.

    "reference" (`linearization_net.py`): K + 1 bins centred at k/K, k = 0…K,
    membership relu(1 - |x - k/K|·K) -> [B,H,W,(K+1)·C].
    "tf2" (ShinYwings/SingleHDR-tf2, "as described in the paper"): K bins centred at
    (2b - 1)/(2K), b = 1…K, same triangle -> [B,H,W,K·C].
    """
    if layout == "reference":
        centres = [k / float(n_bins) for k in range(n_bins + 1)]
    elif layout == "tf2":
        centres = [(2.0 * b - 1.0) / (2.0 * n_bins) for b in range(1, n_bins + 1)]
    else:
        raise ValueError(f"histogram_layout must be 'reference' or 'tf2', got {layout!r}")
    # Same op order as the reference: relu(1 - |x - c| * K).
    return jnp.concatenate([nn.relu(1.0 - jnp.abs(x - c) * float(n_bins)) for c in centres], axis=-1)


def feature_channels(layout: HistogramLayout = "reference", image_channels: int = 3) -> int:
    """Channel count of `linearization_features`: 102 for "reference", 93 for "tf2"."""
    extra = 1 if layout == "reference" else 0
    return image_channels * (3 + sum(k + extra for k in HISTOGRAM_BINS))


def linearization_features(x: jax.Array, layout: HistogramLayout = "reference") -> jax.Array:
    """The input stack of the CRF feature CNN: concat[RGB, Sobel, hist(4), hist(8), hist(16)]."""
    hists = [soft_histogram(x, k, layout) for k in HISTOGRAM_BINS]
    return jnp.concatenate([x, sobel_edges(x)] + hists, axis=-1)


# ----------------------------------------------------------------------------- CNN

# (block name, bottleneck width, output width, stride of the block's first 1×1, projection?)
RESNET_BLOCKS = (
    ("2a", 64, 256, 1, True),
    ("2b", 64, 256, 1, False),
    ("2c", 64, 256, 1, False),
    ("3a", 128, 512, 2, True),
    ("3b", 128, 512, 1, False),
)


def crf_feature_net_layers(in_channels: int = 102) -> dict[str, dict[str, tuple[int, ...]]]:
    """Caffe layer name -> {caffe-tensorflow key: TF shape} of every crf_feature_net variable."""
    layers: dict[str, dict[str, tuple[int, ...]]] = {}

    def bn(name, c):
        layers[name] = {"scale": (c,), "offset": (c,), "mean": (c,), "variance": (c,)}

    layers["conv1"] = {"weights": (7, 7, in_channels, 64), "biases": (64,)}
    bn("bn_conv1", 64)
    c_in = 64
    for block, width, c_out, _, projection in RESNET_BLOCKS:
        if projection:
            layers[f"res{block}_branch1"] = {"weights": (1, 1, c_in, c_out)}
            bn(f"bn{block}_branch1", c_out)
        for suffix, k, ci, co in (("2a", 1, c_in, width), ("2b", 3, width, width), ("2c", 1, width, c_out)):
            layers[f"res{block}_branch{suffix}"] = {"weights": (k, k, ci, co)}
            bn(f"bn{block}_branch{suffix}", co)
        c_in = c_out
    return layers


class CrfFeatureNet(nn.Module):
    """ResNet-50 conv1 … res3b (Caffe layout, stride on res3a's 1×1s) + global mean -> f32[B, 512].

    `width` scales every layer's channels (`scale_channels`; the feature is then 512·width).
    """

    bn_momentum: float = 0.999  # slim batch_norm decay
    bn_epsilon: float = 1e-3  # slim batch_norm epsilon
    dtype: Dtype = jnp.float32
    width: float = 1.0  # channel multiplier; 1.0 = ResNet-50's (the weights of crf_net_v2.npy)
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        def conv(t, features, kernel, name, stride=1, use_bias=False):
            return tf_conv(scale_channels(features, self.width), kernel, name, dtype=self.dtype, stride=stride,
                           use_bias=use_bias, kernel_grad=self.conv_kernel_grad)(t)

        def bn(t, name, relu):
            t = nn.BatchNorm(
                use_running_average=not train,
                momentum=self.bn_momentum,
                epsilon=self.bn_epsilon,
                use_scale=True,
                use_bias=True,
                # Two-pass variance: E[x²] - E[x]² loses precision on large activations.
                use_fast_variance=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=name,
            )(t)
            return nn.relu(t) if relu else t

        t = bn(conv(x.astype(self.dtype), 64, 7, "conv1", stride=2, use_bias=True), "bn_conv1", True)
        t = nn.max_pool(t, (3, 3), strides=(2, 2), padding="SAME")
        for block, width, c_out, stride, projection in RESNET_BLOCKS:
            if projection:
                shortcut = bn(conv(t, c_out, 1, f"res{block}_branch1", stride), f"bn{block}_branch1", False)
            else:
                shortcut = t
            r = bn(conv(t, width, 1, f"res{block}_branch2a", stride), f"bn{block}_branch2a", True)
            r = bn(conv(r, width, 3, f"res{block}_branch2b"), f"bn{block}_branch2b", True)
            r = bn(conv(r, c_out, 1, f"res{block}_branch2c"), f"bn{block}_branch2c", False)
            t = nn.relu(shortcut + r)
        # The reference casts the feature to float32 before the decoder; so do we.
        return jnp.mean(t.astype(jnp.float32), axis=(1, 2))


def basis_curve(weights: jax.Array, basis: Any, n_components: int = N_COMPONENTS) -> jax.Array:
    """g_raw = mean + weights @ components[:, :n].T: f32[B, n] -> f32[B, 1024]; the basis is constant."""
    mean = jnp.asarray(basis.mean, jnp.float32)
    components = jnp.asarray(basis.components, jnp.float32)
    if mean.shape != (N_SAMPLES,) or components.ndim != 2 or components.shape[0] != N_SAMPLES:
        raise ValueError(
            f"basis: expected mean f32[{N_SAMPLES}] and components f32[{N_SAMPLES}, K], "
            f"got {mean.shape} and {components.shape}"
        )
    if components.shape[1] < n_components:
        raise ValueError(f"basis: has {components.shape[1]} components, the network needs {n_components}")
    # The PCA basis is data, never a trainable quantity.
    mean = jax.lax.stop_gradient(mean)
    components = jax.lax.stop_gradient(components[:, :n_components])
    return mean + weights.astype(jnp.float32) @ components.T


HEAD_INITS = ("glorot", "zeros")
DARK_ENDS = ("network", "prior")


class AEInvcrfDecodeNet(nn.Module):
    """The reference's PCA decoder: one dense 512 -> 11 (linear, Glorot) -> raw inverse-CRF curve.

    `coefficient_scale` multiplies the dense output before it weights the basis.  The PCA
    components have unit norm over 1024 samples, so a real camera's coefficients are several
    units (DoRF: std 3.3 on the first); Adam moves a weight by about the learning rate per
    step, so at scale 1 and lr 1e-4 the head needs 10⁴–10⁵ steps just to reach them — the
    reference can afford that (500k steps from pretrained weights), a short run cannot and
    stays at the mean curve.  A scale of a few units puts the coefficients at O(1) in the
    dense layer's units.  1.0 = the reference (and what its TF1 weights expect).
    `head_init="zeros"` starts the head at the basis mean curve instead of a random curve.
    """

    n_components: int = N_COMPONENTS
    coefficient_scale: float = 1.0
    head_init: str = "glorot"

    @nn.compact
    def __call__(self, feature: jax.Array, basis: Any) -> jax.Array:
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        kernel_init = nn.initializers.glorot_uniform() if self.head_init == "glorot" else nn.initializers.zeros
        # Kept in float32 whatever the trunk's dtype: 11 numbers steer the whole curve.
        weights = nn.Dense(
            self.n_components,
            kernel_init=kernel_init,
            bias_init=nn.initializers.zeros,
            dtype=jnp.float32,
            param_dtype=jnp.float32,
            name="dense",
        )(feature.astype(jnp.float32))
        return basis_curve(weights * self.coefficient_scale, basis, self.n_components)


@functools.lru_cache(maxsize=1)
def _default_basis():
    """`hdrjax.camera.basis.default_basis(11)`, computed once per process (it fits a PCA)."""
    from hdrjax.camera import basis as basis_lib

    return basis_lib.default_basis(N_COMPONENTS)


class LinearizationNet(nn.Module):
    """LDR f32[B, H, W, 3] in [0, 1] -> non-decreasing inverse CRF f32[B, 1024] (g[0] = 0, g[-1] = 1).

    `basis` (an `InverseCRFBasis` or anything with `.mean` f32[1024] and `.components`
    f32[1024, K ≥ 11]) is a constant: pass it as attribute or call argument; None uses
    `hdrjax.camera.basis.default_basis()`.  BatchNorm statistics live in `batch_stats`;
    `train=True` normalises with batch moments and updates them (pass `mutable=["batch_stats"]`).
    `histogram_layout="tf2"` switches to the TF2 port's K-bin histograms (93 input channels).
    """

    basis: Any = None
    n_components: int = N_COMPONENTS
    histogram_layout: HistogramLayout = "reference"
    bn_momentum: float = 0.999
    bn_epsilon: float = 1e-3
    eps: float = 1e-8  # monotone projection: keeps a flat raw curve finite (reference: NaN)
    coefficient_scale: float = 1.0  # see AEInvcrfDecodeNet; 1.0 = reference
    head_init: str = "glorot"  # "zeros": start at the basis mean curve
    monotone: str = "shift"  # "shift" = the reference's _increase; "clip" (see monotone_projection)
    # Below the 8-bit code `dark_end_code` the curve follows DoRF's geometric mean shape, scaled
    # to meet the network's curve there ("prior", ours; hdrjax.camera.crf.dark_end_prior) or is
    # the network's own ("network", the reference).
    dark_end: str = "network"
    dark_end_code: int = 16
    dark_end_power: float = 0.0
    dtype: Dtype = jnp.float32
    width: float = 1.0  # channel multiplier of the CNN (CrfFeatureNet); < 1 only for tests
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    def setup(self):
        self.crf_feature_net = CrfFeatureNet(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype,
                                             width=self.width, conv_kernel_grad=self.conv_kernel_grad)
        self.ae_invcrf_decode_net = AEInvcrfDecodeNet(
            n_components=self.n_components, coefficient_scale=self.coefficient_scale, head_init=self.head_init)

    def features(self, ldr: jax.Array, *, train: bool) -> jax.Array:
        """The 512-d (512·width) global CRF feature of an LDR batch."""
        x = linearization_features(ldr.astype(jnp.float32), self.histogram_layout)
        return self.crf_feature_net(x, train=train)

    def curve_from_feature(self, feature: jax.Array, basis: Any = None) -> jax.Array:
        """Monotone inverse CRF f32[B, 1024] from the 512-d feature (PCA head + projection)."""
        basis = basis if basis is not None else self.basis
        if basis is None:
            basis = _default_basis()
        curve = monotone_projection(self.ae_invcrf_decode_net(feature, basis), self.eps, self.monotone)
        if self.dark_end not in DARK_ENDS:
            raise ValueError(f"dark_end must be one of {DARK_ENDS}, got {self.dark_end!r}")
        if self.dark_end == "prior":
            knot = code_sample(self.dark_end_code, curve.shape[-1])
            curve = dark_end_prior(curve, dark_end_shape(), knot, self.dark_end_power)
        return curve

    def __call__(self, ldr: jax.Array, *, train: bool = False, basis: Any = None) -> jax.Array:
        return self.curve_from_feature(self.features(ldr, train=train), basis)


def linearize(ldr: jax.Array, inverse_crf: jax.Array) -> jax.Array:
    """Map LDR values in [0, 1] through per-sample inverse CRFs f32[B, 1024] (the reference's apply_rf)."""
    return apply_curve(ldr, inverse_crf)


# ----------------------------------------------------------------------------- weights


def load_crf_net_v2(path, *, in_channels: int = 102) -> dict[str, dict[str, Any]]:
    """Read the reference's `crf_net_v2.npy` into `{"params": {"crf_feature_net": …}, "batch_stats": …}`.

    The file is a caffe-tensorflow pickle of `{layer: {weights|biases|offset|scale|mean|variance}}`
    (needs `allow_pickle`: load only files you trust).  As the reference, `fc11` and `conv1`
    (3-channel input there, 102 here) are skipped; every other layer must be present with the
    TF shape.  Merge the result into `variables["…"]["linearization"]` with `merge_variables`.
    """
    try:
        raw = np.load(path, allow_pickle=True, encoding="latin1")
        table = raw.item() if isinstance(raw, np.ndarray) and raw.dtype == object else raw
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise WeightFileError(path, f"cannot read as a numpy pickle: {e}") from e
    if not isinstance(table, Mapping):
        raise WeightFileError(path, f"expected a dict of layers, found {type(table).__name__}")
    expected = crf_feature_net_layers(in_channels)
    unknown = sorted(set(table) - set(expected) - {"fc11"})
    if unknown:
        raise WeightFileError(path, f"unexpected layers {unknown} (not in crf_feature_net)")
    params: dict[str, dict[str, np.ndarray]] = {}
    stats: dict[str, dict[str, np.ndarray]] = {}
    for layer, keys in expected.items():
        if layer == "conv1":
            continue  # its input has 102 channels here, 3 in the CRF-Net the file comes from
        if layer not in table:
            raise WeightFileError(path, f"layer {layer!r} is missing")
        entry = table[layer]
        extra = sorted(set(entry) - set(keys))
        if extra:
            raise WeightFileError(path, f"layer {layer!r} has unexpected keys {extra}")
        arrays = {}
        for key, shape in keys.items():
            if key not in entry:
                raise WeightFileError(path, f"layer {layer!r} has no {key!r}")
            value = np.asarray(entry[key], np.float32)
            if value.shape != shape:
                raise WeightFileError(path, f"{layer}/{key} has shape {value.shape}, expected {shape}")
            arrays[key] = value
        if "weights" in arrays:
            params[layer] = {"kernel": arrays["weights"]}
            if "biases" in arrays:
                params[layer]["bias"] = arrays["biases"]
        else:
            params[layer] = {"scale": arrays["scale"], "bias": arrays["offset"]}
            stats[layer] = {"mean": arrays["mean"], "var": arrays["variance"]}
    return {"params": {"crf_feature_net": params}, "batch_stats": {"crf_feature_net": stats}}


def merge_variables(base: Mapping[str, Any], update: Mapping[str, Any], where: str = "") -> dict:
    """Copy of the nested dict `base` with the leaves of `update` put in; shapes must match."""
    out = dict(base)
    for key, value in update.items():
        here = f"{where}/{key}"
        if key not in base:
            raise KeyError(f"merge_variables: {here} is not in the model's variables")
        if isinstance(value, Mapping):
            if not isinstance(base[key], Mapping):
                raise KeyError(f"merge_variables: {here} is an array in the model, a dict in the update")
            out[key] = merge_variables(base[key], value, here)
        else:
            if np.shape(value) != np.shape(base[key]):
                raise ValueError(
                    f"merge_variables: {here} has shape {np.shape(value)}, the model has {np.shape(base[key])}"
                )
            out[key] = jnp.asarray(value, jnp.asarray(base[key]).dtype)
    return out
