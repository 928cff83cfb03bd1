"""hdrjax: single-image HDR reconstruction by learning to reverse the camera pipeline."""

__version__ = "0.1.0"
