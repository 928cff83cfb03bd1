"""SingleHDR: the four inverse-camera stages chained (reference `test_real_refinement.py`).

    C = clip(Deq(x), 0, 1)          dequantised LDR
    g = Lin(C)                      inverse CRF f32[B, 1024]
    B = apply_curve(C, g)           linear, clipped image
    A = B + α·relu(Hal(B))          hallucinated highlights (threshold 0.12)
    R = relu(A + Ref([A, B, C]))    refined HDR

Any H, W: the input is mirror-padded (numpy `symmetric`, as the reference's inference) to a
multiple of 32 — the Hallucination-Net's five poolings — and every output is cropped back.
"""
from __future__ import annotations

from typing import Any, Collection, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from hdrjax.models.dequantization import DequantizationNet
from hdrjax.models.hallucination import BLEND_THRESHOLD, HallucinationNet, highlight_blend
from hdrjax.models.layers import crop, pad_to_multiple
from hdrjax.models.linearization import N_COMPONENTS, LinearizationNet, linearize
from hdrjax.models.refinement import RefinementNet

Dtype = Any

ALL_STAGES = ("dequantization", "linearization", "hallucination", "refinement")
UNET_MULTIPLE = 16  # Dequantization-/Refinement-Net: four 2× poolings
PAD_MULTIPLE = 32  # Hallucination-Net: five 2× poolings


@flax.struct.dataclass
class Reconstruction:
    """Outputs of each stage (None for stages not run); images f32[B, H, W, 3], curve f32[B, 1024]."""

    dequantized: jax.Array | None = None
    inverse_crf: jax.Array | None = None
    linear: jax.Array | None = None
    hallucinated: jax.Array | None = None
    refined: jax.Array | None = None

    @property
    def output(self) -> jax.Array | None:
        """The last image produced: refined, else hallucinated, else linear, else dequantized."""
        for image in (self.refined, self.hallucinated, self.linear, self.dequantized):
            if image is not None:
                return image
        return None


def _check_stages(stages: Sequence[str]) -> tuple[str, ...]:
    stages = tuple(stages)
    unknown = [s for s in stages if s not in ALL_STAGES]
    if unknown or not stages:
        raise ValueError(f"SingleHDR: stages must be a non-empty subset of {ALL_STAGES}, got {stages}")
    return stages


class SingleHDR(nn.Module):
    """Single-image HDR reconstruction (Liu et al., CVPR 2020): LDR f32[B, H, W, 3] -> `Reconstruction`.

    `basis`: the inverse-CRF PCA basis (`InverseCRFBasis`, a constant; None ->
    `hdrjax.camera.basis.default_basis()`).  `dtype` is the compute dtype of the convolutions
    (e.g. bfloat16); parameters and stage outputs stay float32.  `border` adds that many
    mirrored pixels on each side before padding to the multiple of 32 (the reference's
    inference uses 32; 0 keeps training patches untouched).  `width` scales every network's
    channels (1.0: the paper's; smaller only for fast wiring tests, see
    `hdrjax.models.layers.scale_channels`); `conv_kernel_grad` picks how the convolutions'
    kernel gradients are computed (`hdrjax.models.conv`: "xla" for forward-mode autodiff).
    Variables:
    `{"params": {dequantization, linearization, hallucination, refinement},
    "batch_stats": {linearization, hallucination}}`.
    """

    basis: Any = None
    n_components: int = N_COMPONENTS  # §2.2.3: PCA weights predicted (the basis needs at least this many)
    histogram_layout: str = "reference"  # "tf2": the TF2 port's K-bin histograms
    lin_bn_momentum: float = 0.999  # slim batch_norm decay
    lin_bn_epsilon: float = 1e-3  # slim batch_norm epsilon
    lin_coefficient_scale: float = 1.0  # PCA-head output scale (1.0 = reference; see AEInvcrfDecodeNet)
    lin_head_init: str = "glorot"  # "zeros": the PCA head starts at the basis mean curve
    lin_monotone: str = "shift"  # reference _increase; "clip" drops negative steps only
    lin_dark_end: str = "network"  # "prior": below lin_dark_end_code the curve takes DoRF's shape
    lin_dark_end_code: int = 16
    lin_dark_end_power: float = 0.0
    blend_threshold: float = BLEND_THRESHOLD  # §2.3: highlights blended in above max_c = 0.88
    border: int = 0
    dtype: Dtype = jnp.float32
    width: float = 1.0  # channel multiplier of all four networks
    conv_kernel_grad: str = "auto"  # hdrjax.models.conv.KERNEL_GRADS

    def setup(self):
        nets = dict(dtype=self.dtype, width=self.width, conv_kernel_grad=self.conv_kernel_grad)
        self.dequantization = DequantizationNet(**nets)
        self.linearization = LinearizationNet(
            basis=self.basis,
            n_components=self.n_components,
            histogram_layout=self.histogram_layout,
            bn_momentum=self.lin_bn_momentum,
            bn_epsilon=self.lin_bn_epsilon,
            coefficient_scale=self.lin_coefficient_scale,
            head_init=self.lin_head_init,
            monotone=self.lin_monotone,
            dark_end=self.lin_dark_end,
            dark_end_code=self.lin_dark_end_code,
            dark_end_power=self.lin_dark_end_power,
            **nets,
        )
        self.hallucination = HallucinationNet(**nets)
        self.refinement = RefinementNet(**nets)

    # -- stages, each usable alone with model.apply(..., method=...) ---------------------------

    def dequantize(self, ldr: jax.Array) -> jax.Array:
        """C = clip(Deq(ldr), 0, 1): the dequantised LDR (the reference clips at every use)."""
        x, pads = pad_to_multiple(ldr, UNET_MULTIPLE)
        return crop(jnp.clip(self.dequantization(x), 0.0, 1.0), pads)

    def estimate_inverse_crf(self, ldr: jax.Array, *, train: bool = False) -> jax.Array:
        """Inverse CRF f32[B, 1024] of an LDR batch in [0, 1]."""
        return self.linearization(ldr, train=train)

    def hallucinate(self, linear: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
        """(A, r): blended image A = B + α·relu(r) and the raw residual r of a linear image B in [0, 1]."""
        x, pads = pad_to_multiple(linear, PAD_MULTIPLE)
        r = self.hallucination(x, train=train)
        return crop(highlight_blend(x, r, self.blend_threshold), pads), crop(r, pads)

    def refine(self, hallucinated: jax.Array, linear: jax.Array, dequantized: jax.Array) -> jax.Array:
        """R = relu(A + Ref([A, B, C])): the refined HDR image."""
        x = jnp.concatenate([hallucinated, linear, dequantized], axis=-1)
        x, pads = pad_to_multiple(x, UNET_MULTIPLE)
        return crop(self.refinement(x), pads)

    # -- the whole pipeline -------------------------------------------------------------------

    def __call__(self, ldr: jax.Array, *, train: bool | Collection[str] = False,
                 stages: Sequence[str] = ALL_STAGES) -> Reconstruction:
        """Run `stages` in order; a stage left out passes its input through (for ablations).

        `train`: True runs every network in training mode (BatchNorm on the batch's statistics,
        updating its running averages); a collection of network names runs only those so, the
        others in inference mode (a fine-tuning run that keeps some networks fixed).
        """
        stages = _check_stages(stages)

        def training(net: str) -> bool:
            return train if isinstance(train, bool) else net in train

        if ldr.ndim != 4 or ldr.shape[-1] != 3:
            raise ValueError(f"SingleHDR expects an LDR batch f32[B, H, W, 3], got shape {ldr.shape}")
        x, pads = pad_to_multiple(ldr.astype(jnp.float32), PAD_MULTIPLE, border=self.border)
        out: dict[str, jax.Array] = {}

        c = x
        if "dequantization" in stages:
            c = out["dequantized"] = self.dequantize(x)
        b = c
        if "linearization" in stages:
            g = out["inverse_crf"] = self.estimate_inverse_crf(c, train=training("linearization"))
            # apply_curve clamps only the indices, so the input must be in [0, 1].
            b = out["linear"] = linearize(jnp.clip(c, 0.0, 1.0), g)
        a = b
        if "hallucination" in stages:
            a, _ = self.hallucinate(b, train=training("hallucination"))
            out["hallucinated"] = a
        if "refinement" in stages:
            out["refined"] = self.refine(a, b, c)

        return Reconstruction(**{k: v if k == "inverse_crf" else crop(v, pads) for k, v in out.items()})
