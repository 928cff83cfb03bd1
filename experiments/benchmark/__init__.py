"""Speed and memory of hdrjax: `python -m experiments.benchmark` (see __main__.py)."""
