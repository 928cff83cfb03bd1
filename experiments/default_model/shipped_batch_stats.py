"""A fine-tuned checkpoint with the shipped model's BatchNorm statistics put back.

    python -m experiments.default_model.shipped_batch_stats runs/joint runs/joint-shipped-bn

A joint run with `train.batch_norm="batch"` changes two things in the shipped model: its weights
(Adam steps) and the running averages of its BatchNorm layers (moved towards the statistics of
the data it fine-tunes on). This writes the run's latest weights with the shipped model's
running averages as a standalone checkpoint, so that the held-out evaluation of both
(`python -m hdrjax.evaluate ... --checkpoint`) tells the two effects apart. It prints how far
each network's weights and statistics moved. docs/training.md, "Does a short run of the main
command undo the shipped model?", is where it was used.
"""
from __future__ import annotations

import argparse
import sys

from hdrjax import cli
from hdrjax.errors import HdrjaxError


def max_change(a: dict, b: dict) -> dict:
    """{network: largest |a − b| over its arrays} for the networks of `a`."""
    import jax
    import numpy as np

    return {net: max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                     for x, y in zip(jax.tree.leaves(a[net]), jax.tree.leaves(b[net]))) for net in a}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="workdir (or checkpoint) of a joint run")
    p.add_argument("out", help="folder for the checkpoint with the shipped statistics (must not exist)")
    p.add_argument("--model", default="default", help="the shipped model whose statistics to use (%(default)s)")
    args = p.parse_args(argv)
    try:
        import jax
        import numpy as np

        from hdrjax.weights import checkpoints, pretrained

        variables, config, _ = checkpoints.load_inference_variables(args.run)
        _, shipped, _, _ = pretrained.load(None if args.model == "default" else args.model)
        shipped = jax.tree.map(np.asarray, shipped)
        if jax.tree.map(np.shape, variables) != jax.tree.map(np.shape, shipped):
            raise checkpoints.CheckpointError(f"{args.run}: its networks are not those of the model "
                                              f"{args.model!r} (another architecture or width)")
        print("largest weight change:", {k: f"{v:.3g}" for k, v in max_change(variables["params"],
                                                                            shipped["params"]).items()})
        print("largest BatchNorm statistic change:", {k: f"{v:.3g}" for k, v in max_change(
            variables["batch_stats"], shipped["batch_stats"]).items()})
        variables["batch_stats"] = shipped["batch_stats"]
        out = checkpoints.save_variables(args.out, variables, config)
        print(f"wrote {out}")
    except HdrjaxError as e:
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
