"""`python -m hdrjax.evaluate SOURCE --workdir DIR [options]` (installed: `hdrjax-evaluate`).

The evaluation's command line; it lives with the evaluation in `hdrjax/evaluation/__main__.py`
(`python -m hdrjax.evaluation` is the same command), which documents the options and outputs.
"""
import sys

from hdrjax.evaluation.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
