"""The forward camera pipeline HDR -> LDR: response curves, JPEG, synthesis of training pairs."""
from hdrjax.camera import crf, jpeg, pipeline
from hdrjax.camera.crf import (
    N_SAMPLES,
    BasisError,
    CRFBank,
    CRFError,
    CRFFileError,
    InverseCRFBasis,
    apply_curve,
    default_basis,
    dorf_split,
    family_split,
    fit_basis,
    invert_curve,
    load_bank,
    load_dorf,
    load_emor,
    load_invemor,
    monotone_projection,
    parametric_bank,
)
from hdrjax.camera.jpeg import jpeg_roundtrip
from hdrjax.camera.pipeline import CameraConfig, CameraConfigError, CameraSample, synthesize

__all__ = [
    "crf", "jpeg", "pipeline", "N_SAMPLES", "BasisError", "CRFBank", "CRFError", "CRFFileError",
    "InverseCRFBasis", "apply_curve", "default_basis", "dorf_split", "family_split", "fit_basis",
    "invert_curve", "load_bank", "load_dorf", "load_emor", "load_invemor", "monotone_projection",
    "parametric_bank", "jpeg_roundtrip", "CameraConfig", "CameraConfigError", "CameraSample",
    "synthesize",
]
