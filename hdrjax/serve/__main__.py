"""`python -m hdrjax.serve`: the local web page (`hdrjax.serve.cli`)."""
import sys

from hdrjax.serve.cli import main

if __name__ == "__main__":
    sys.exit(main())
