"""hdrjax's experiments: measurements and reports behind the README's numbers (index: README.md).

Run each one as a module from the repository root, e.g. `python -m experiments.benchmark
--quick`; what they write goes to experiments/results/ through `results_io`.
"""
