"""The networks of SingleHDR and their composite.

`SingleHDR` chains the four stages; each stage is also importable on its own.
"""
from hdrjax.models.dequantization import DequantizationNet
from hdrjax.models.linearization import LinearizationNet, linearize, load_crf_net_v2
from hdrjax.models.refinement import RefinementNet
from hdrjax.models.singlehdr import ALL_STAGES, Reconstruction, SingleHDR

__all__ = [
    "ALL_STAGES",
    "DequantizationNet",
    "LinearizationNet",
    "Reconstruction",
    "RefinementNet",
    "SingleHDR",
    "linearize",
    "load_crf_net_v2",
]
