"""The four networks as every engine calls them, and the rules around them the engines share.

`runner_for(model)` gives the model's `Runner`: each network as a jit-compiled function of
(variables, images) — compiled once per input shape — with what was measured about it for the
weights in use: the context a crop needs (`hdrjax.inference.receptive_field`) and the bytes one
call needs per pixel (XLA's memory analysis).  Between the stages, every engine estimates the
inverse CRF from C resized to a long side (`resize_long_side`), uses the Hallucination-Net's
output only where the blend does (`lit_mask`), and pads an image at its bottom/right as the
model does (`pad_bottom_right`).  The engines: `regions` (the default, one pass) and `tiles`.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.camera.crf import apply_curve
from hdrjax.inference import receptive_field

# What a call really adds to the process's RSS on a CPU, over XLA's buffer assignment (temp +
# output): the runtime's convolution workspaces. Measured 1.26× (Hallucination-Net, 768²) and
# 1.29× (Dequantization-Net, 1536²) with the shipped model; rounded up.
CPU_RUNTIME_OVERHEAD = 1.35
MEMORY_PROBE_SIDE = 256  # networks' bytes per pixel are read from XLA at this size


def bytes_per_pixel(fn: Callable, variables, num_inputs: int) -> float:
    """Bytes one call of fn needs per input pixel: XLA's temporaries + the images in and out."""
    side = MEMORY_PROBE_SIDE
    x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
    compiled = fn.lower(variables, *([x] * num_inputs)).compile()
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None
    if temp is None:  # a backend without the analysis: measured CPU figures, generous
        return 1800.0 if num_inputs == 1 else 400.0
    per_pixel = (temp + analysis.output_size_in_bytes) / side**2 + 12.0 * num_inputs
    return per_pixel * (CPU_RUNTIME_OVERHEAD if jax.default_backend() == "cpu" else 1.0)


def pad_bottom_right(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Mirror-pad (numpy 'symmetric', as the model's own padding) at the bottom/right to h×w."""
    ph, pw = h - x.shape[0], w - x.shape[1]
    if ph == 0 and pw == 0:
        return x
    # np.pad 'symmetric' reflects repeatedly when the pad exceeds the image (tiny images).
    return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="symmetric")


def resize_long_side(x: np.ndarray, long_side: int | None) -> np.ndarray:
    """Area-average x (f32[H, W, 3]) so its longer side is long_side (never enlarges): the CRF's input."""
    import cv2

    h, w = x.shape[:2]
    if long_side is None or max(h, w) <= long_side:
        return x
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(x), size, interpolation=cv2.INTER_AREA)


def lit_mask(b: np.ndarray, threshold: float) -> np.ndarray:
    """bool[H, W]: pixels with α > 0 under the model's blend rule (`blend_weight`, §2.3).

    The same float32 operations in the same order as `blend_weight` ((max − 1) + threshold, then
    > 0; dividing by the positive threshold and clipping do not change the sign), in numpy so
    no image shape compiles anything.
    """
    peak = b.max(axis=-1)
    return (peak - np.float32(1.0)) + np.float32(threshold) > 0


# ----------------------------------------------------------------------------- compiled stages


class Runner:
    """jit-compiled stage functions of one model, and what was measured about them.

    Compiled once per input shape and batch; `contexts` and `per_pixel` (bytes per pixel of
    one call) are measured on first use and kept with the model.
    """

    def __init__(self, model):
        self.model = model

        def dequantize(variables, ldr):
            # SingleHDR.dequantize already clips; clipping again is free and makes the contract
            # (C in [0, 1], as every reference caller) hold for any model.
            return jnp.clip(model.apply(variables, ldr, method="dequantize"), 0.0, 1.0)

        def inverse_crf(variables, c):
            return model.apply(variables, c, train=False, method="estimate_inverse_crf")

        def linearize(c, curve):
            # One curve for every pixel given (all from one image).
            return apply_curve(jnp.clip(c, 0.0, 1.0), curve)

        def hallucinate(variables, b):
            blended, _ = model.apply(variables, b, train=False, method="hallucinate")
            return blended

        def refine(variables, a, b, c):
            return jnp.maximum(model.apply(variables, a, b, c, method="refine"), 0.0)

        self.dequantize = jax.jit(dequantize)
        self.inverse_crf = jax.jit(inverse_crf)
        self.linearize = jax.jit(linearize)
        self.hallucinate = jax.jit(hallucinate)
        self.refine = jax.jit(refine)
        self.per_pixel: dict[str, float] = {}
        self._contexts: list[tuple] = []  # (the weights object, net, context) most recent first

    def stage_fn(self, net: str) -> tuple[Callable, int]:
        """(jitted function of (variables, *images), number of image inputs) of a dense net."""
        return {
            "dequantization": (self.dequantize, 1),
            "hallucination": (self.hallucinate, 1),
            "refinement": (self.refine, 3),
        }[net]

    def bytes_per_pixel(self, net: str, variables) -> float:
        if net not in self.per_pixel:
            fn, n = self.stage_fn(net)
            self.per_pixel[net] = bytes_per_pixel(fn, variables, n)
        return self.per_pixel[net]

    def context(self, net: str, variables, override: int | None = None) -> int:
        """Pixels of context a crop needs around what it keeps: `override`, else measured."""
        if override is not None:
            return override
        tree = (variables.get("params") or {}).get(net)
        for held, n, value in self._contexts:  # hashing the weights again per image costs ~0.1 s
            if held is tree and n == net:
                return value
        fn, _ = self.stage_fn(net)
        value = receptive_field.cached_context(net, variables, lambda *x: fn(variables, *x)).context
        self._contexts = [(tree, net, value)] + self._contexts[:7]
        return value


_RUNNERS: list[Runner] = []


def runner_for(model) -> Runner:
    """The cached `Runner` of this model object (linen modules holding arrays are not hashable)."""
    for r in _RUNNERS:
        if r.model is model:
            return r
    r = Runner(model)
    _RUNNERS.append(r)
    del _RUNNERS[:-4]  # a few models at most (notebooks comparing checkpoints)
    return r

