"""The forward camera pipeline HDR -> LDR: response curves, JPEG, synthesis of training pairs."""
from hdrjax.camera import basis, crf, jpeg, pipeline
from hdrjax.camera.basis import BasisError, InverseCRFBasis, default_basis, fit_basis, load_emor, load_invemor
from hdrjax.camera.crf import (
    N_SAMPLES,
    CRFBank,
    CRFError,
    CRFFileError,
    apply_curve,
    camera_bank,
    dorf_split,
    family_split,
    invert_curve,
    load_bank,
    load_dorf,
    monotone_projection,
    parametric_bank,
)
from hdrjax.camera.jpeg import jpeg_roundtrip
from hdrjax.camera.pipeline import CameraConfig, CameraConfigError, CameraSample, synthesize

__all__ = [
    "basis", "crf", "jpeg", "pipeline", "N_SAMPLES", "BasisError", "CRFBank", "CRFError", "CRFFileError",
    "InverseCRFBasis", "apply_curve", "camera_bank", "default_basis", "dorf_split", "family_split", "fit_basis",
    "invert_curve", "load_bank", "load_dorf", "load_emor", "load_invemor", "monotone_projection",
    "parametric_bank", "jpeg_roundtrip", "CameraConfig", "CameraConfigError", "CameraSample",
    "synthesize",
]
