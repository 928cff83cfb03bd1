"""A drop-in `lax.conv_general_dilated` whose kernel gradient is a few matmuls on CPU.

Every network here builds its convolutions with `nn.Conv(..., conv_general_dilated=
conv_with_kernel_grad(mode))` from this file. The forward pass and the input gradient are XLA's
own. Only the kernel (weight) gradient differs, and only on the CPU backend: XLA:CPU
computes it as a convolution whose "kernel" is the whole output image, a layout its
convolution library handles badly. There it takes 7–20× the forward's time for the same
FLOPs (benchmark knob `conv_grad`, `--extended`).

The weight gradient of a k×k convolution is a sum over its k² taps. Tap (i, j) is the
input window shifted by (i, j), contracted with the output gradient over batch and
pixels: one [C_in, N]·[N, C_out] matmul, which runs near the machine's matmul peak.
The numbers are the same up to float summation order (tests/test_conv.py).

Which path is used is a model option, `config.model.conv_kernel_grad` (every network passes
it down to its convolutions as `conv_with_kernel_grad(mode)`), resolved when a function is
traced:
  "auto"    matmul taps on the CPU backend, XLA elsewhere (the default; GPU/TPU libraries
            already compute this gradient well)
  "matmul"  matmul taps on every backend
  "xla"     XLA's own gradient everywhere (for comparisons, and for forward-mode autodiff)
Only plain convolutions take the matmul path (NHWC/HWIO, no dilation, no groups,
non-negative padding, at least MIN_CHANNELS in and out: every wide conv in this package);
anything else is passed to XLA.

Forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) needs "xla": the matmul
path is a `jax.custom_vjp`, which JAX can only differentiate in reverse mode; through it
`jax.jvp` raises `ForwardModeError`, which names the option.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from hdrjax.errors import HdrjaxError

_NHWC = ("NHWC", "HWIO", "NHWC")
KERNEL_GRADS = ("auto", "matmul", "xla")  # the values of the model option conv_kernel_grad
MIN_CHANNELS = 32  # input and output channels; narrower convs keep XLA's gradient


class ForwardModeError(HdrjaxError, TypeError):
    """Forward-mode autodiff reached a convolution on the matmul kernel-gradient path."""


def _check(mode: str) -> str:
    if mode not in KERNEL_GRADS:
        raise ValueError(f"conv_kernel_grad={mode!r}: expected one of {', '.join(KERNEL_GRADS)}")
    return mode


def kernel_grad_mode(mode: str = "auto") -> str:
    """'matmul' or 'xla': the path that the option value `mode` takes in functions traced now."""
    if _check(mode) == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "xla"
    return mode


@functools.lru_cache(maxsize=None)
def conv_with_kernel_grad(mode: str):
    """`conv_general_dilated` with its kernel-gradient option fixed: what `nn.Conv` takes.

    One function object per mode, so two modules built with the same options compare equal
    (flax modules are dataclasses; jit caches on them).
    """
    return functools.partial(conv_general_dilated, kernel_grad=_check(mode))


_NHWC_NUMBERS = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
    if ndim != 4 or dimension_numbers is None:  # lax's default is NCHW
        return False
    return lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), dimension_numbers) == _NHWC_NUMBERS


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    kernel_grad: str = "auto",
) -> jax.Array:
    """`lax.conv_general_dilated`, with the matmul kernel gradient where it applies and
    `kernel_grad` (one of KERNEL_GRADS, see the module docstring) asks for it."""
    path = kernel_grad_mode(kernel_grad)
    args = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                precision=precision, preferred_element_type=preferred_element_type)
    plain = (
        _is_nhwc(dimension_numbers, lhs.ndim)
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
    )
    if plain:
        strides = tuple(int(s) for s in window_strides)
        if isinstance(padding, str):
            pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
        else:
            pads = padding
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
        # Below ~32 channels XLA's own kernel gradient is faster (the matmuls get too thin).
        wide = min(lhs.shape[-1], rhs.shape[-1]) >= MIN_CHANNELS
        if wide and all(p >= 0 for pair in pads for p in pair) and path == "matmul":
            try:
                return _conv(lhs, rhs, strides, pads, precision)
            except TypeError as e:  # JAX refuses jvp of a custom_vjp at trace time
                if "forward-mode" not in str(e):
                    raise
                raise ForwardModeError(
                    f"forward-mode autodiff (jax.jvp, jax.jacfwd) cannot pass a convolution "
                    f"whose kernel gradient is the matmul taps (conv_kernel_grad={kernel_grad!r} -> "
                    f"'matmul' on this backend): build the model with conv_kernel_grad='xla' "
                    f"(config.model.conv_kernel_grad)") from e
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **args)


def _xla_conv(x, k, strides, pads, precision):
    return lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, k, strides, pads, precision):
    return _xla_conv(x, k, strides, pads, precision)


def _conv_fwd(x, k, strides, pads, precision):
    return _xla_conv(x, k, strides, pads, precision), (x, k)


def _conv_bwd(strides, pads, precision, residuals, g):
    x, k = residuals
    _, input_vjp = jax.vjp(lambda x: _xla_conv(x, k, strides, pads, precision), x)
    (dx,) = input_vjp(g)
    return dx, kernel_grad(x, g, k.shape, strides, pads, precision).astype(k.dtype)


def kernel_grad(x, g, kernel_shape, strides, pads, precision=None) -> jax.Array:
    """d(loss)/d(kernel) of an NHWC/HWIO conv, f32[kh, kw, C_in, C_out], one matmul per tap.

    x: the conv's input [B, H, W, C_in]; g: the gradient of its output [B, Ho, Wo, C_out].
    The taps run in a `lax.scan`, so one shifted window is alive at a time: unrolled, XLA
    kept all k² windows of every layer alive and the Hallucination-Net's training step
    needed 3× XLA's memory; scanned it needs ~1.15× and runs a little faster still.
    """
    kh, kw = kernel_shape[:2]
    sh, sw = strides
    b, ho, wo, c_out = g.shape
    c = x.shape[-1]
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    g2 = g.reshape(-1, c_out)
    span = ((ho - 1) * sh + 1, (wo - 1) * sw + 1)

    def tap(carry, index):
        i, j = index // kw, index % kw
        # Output pixel (y, x) read input pixel (y·sh + i, x·sw + j) of the padded input.
        window = lax.dynamic_slice(xp, (0, i, j, 0), (b, *span, c))[:, ::sh, ::sw]
        # [C_in, N]·[N, C_out] as a plain transposed 2-D dot: XLA:CPU runs this form about
        # 2× faster than the equivalent 4-D einsum.
        return carry, jnp.dot(window.reshape(-1, c).T, g2, precision=precision, preferred_element_type=jnp.float32)

    _, taps = lax.scan(tap, None, jnp.arange(kh * kw))
    return taps.reshape(kh, kw, c, c_out)


_conv.defvjp(_conv_fwd, _conv_bwd)
