"""Dequantization-Net (reference `dequantization_net.py`, scope `Dequantization_Net`)."""
from __future__ import annotations

from typing import Literal

from hdrjax.models.layers import ResidualUNet

N_PARAMS = 1_999_779  # reference §2.1


class DequantizationNet(ResidualUNet):
    """U-Net that removes quantisation and JPEG artefacts: x + tanh(U-Net(x)).

    ldr: f32[B, H, W, 3] in [0, 1], H and W multiples of 16 -> f32[B, H, W, 3], **not clipped**:
    like the reference module it returns the raw sum; every reference caller (stage loss,
    joint graph, inference) clips to [0, 1], which `SingleHDR.dequantize` does.  Parameter
    names `conv2d` … `conv2d_18` equal the TF1 names under `Dequantization_Net/`.
    """

    bottleneck_channels: int = 256
    out_channels: int = 3
    residual_activation: Literal["tanh", "linear"] = "tanh"
    output_activation: Literal["none", "relu"] = "none"
