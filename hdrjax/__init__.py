"""hdrjax: single-image HDR reconstruction by learning to reverse the camera pipeline.

Section numbers in docstrings and comments ("§2.2.4") refer to docs/reference.md, the behaviour
of the authors' code that hdrjax reproduces or deliberately changes; DESIGN.md maps which
module owns what.
"""

__version__ = "0.1.0"
