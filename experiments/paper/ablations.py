"""Reproduce the ablation table: the model, each stage swapped out, the baselines — plus figures.

    python -m experiments.paper.ablations ../shared/data/real_hdr --checkpoint runs/joint \
        --workdir results/ablations --crf dorf:../shared/data/crf/dorf_201.npz

The command line of `hdrjax.evaluation.ablations.run_ablations` (the notebook
experiments/paper/ablations.ipynb calls it too): everything is measured by `hdrjax.evaluation`
(same protocol, same code path as `python -m hdrjax.evaluate`); in `--workdir` go the
evaluation's files, `ablations.md` (the ablation table) and the figures
(`metric_per_exposure_<metric>.png`, `inverse_crfs.png`, `comparison.png`). The table is also
printed; the exit status is 1 when inputs were skipped.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from hdrjax import cli
from hdrjax.evaluation.ablations import DEFAULT_METHODS, ablation_markdown, run_ablations
from hdrjax.evaluation.protocol import EXPOSURE_STOPS, JPEG_QUALITY, RESOLUTION, EvalConfig, EvalError, parse_stops

# Under "hdrjax" so that hdrjax.cli.configure_logging prints its lines (one style for every CLI).
logger = logging.getLogger("hdrjax.ablations")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module doc; exit 1 when inputs were skipped."""
    p = argparse.ArgumentParser(prog="python -m experiments.paper.ablations", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="as python -m hdrjax.evaluate (folder, HDR-Real folder, dataset spec)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--crf", default="family")
    p.add_argument("--methods", default=None, help=f"default: {DEFAULT_METHODS} (with --checkpoint)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-crfs", type=int, default=None)
    p.add_argument("--resolution", type=int, default=RESOLUTION)
    p.add_argument("--exposures", default=",".join(f"{s:g}" for s in EXPOSURE_STOPS))
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    cli.configure_logging(False)
    try:
        config = EvalConfig(resolution=args.resolution, exposure_stops=parse_stops(args.exposures),
                            jpeg_quality=args.jpeg_quality, batch_size=args.batch_size)
        out = run_ablations(args.source, args.workdir, checkpoint=args.checkpoint, crf=args.crf,
                            methods=args.methods, config=config, limit=args.limit, max_crfs=args.max_crfs)
    except EvalError as e:
        logger.error(str(e))
        return 1
    sys.stdout.write(ablation_markdown(out["result"]))
    for name, path in out["paths"].items():
        logger.info(f"wrote {path}")
    return 1 if out["result"].skipped else 0


if __name__ == "__main__":
    sys.exit(main())
