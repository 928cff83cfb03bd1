"""Refinement-Net (reference `refinement_net.py`, scope `Refinement_Net`)."""
from __future__ import annotations

from typing import Literal

from hdrjax.models.layers import ResidualUNet

N_PARAMS = 1_266_947  # reference §2.4


class RefinementNet(ResidualUNet):
    """U-Net over concat[A, B, C] (9 channels) that corrects the hallucinated image: relu(A + U-Net).

    x: f32[B, H, W, 9] = [hallucinated, linearised, dequantised], H and W multiples of 16 ->
    f32[B, H, W, 3] >= 0.  Same U-Net as the Dequantization-Net with a 128-channel bottleneck
    and a linear last conv.  The reference applies the ReLU in its caller
    (`test_real_refinement.py`, `finetune_real_dataset.py`); it is part of the module here, as
    every use applies it.  Names `conv2d` … `conv2d_18` equal the TF1 names under `Refinement_Net/`.
    """

    bottleneck_channels: int = 128
    out_channels: int = 3
    residual_activation: Literal["tanh", "linear"] = "linear"
    output_activation: Literal["none", "relu"] = "relu"
