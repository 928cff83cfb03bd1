"""What does the Refinement-Net do to the deep shadows of the held-out samples?

    python -m experiments.default_model.refinement_shadows --checkpoint default \\
        --out experiments/results/refinement-deep-shadows.json

The error budget has the four-stage output losing to the three-stage one in the deep-shadow band
(ground truth below 2⁻⁸ of the clipping point) and nowhere else of note. This script says how:
on the held-out samples of the README's evaluation (experiments/default_model/evaluate.sh's
`runs/default-model-heldout`, the first 3 DoRF test curves, 7 exposures, 256² crops; masked samples
left out as the evaluation does), it pools every deep-shadow colour value and compares the
Hallucination-Net's blended output A (three stages) and the refined R (four) with the ground truth:
the share mapped to black, the quantiles of log2(output / truth), and how far R moves from A.
A median above 0 is a too-bright shadow; R above A is the Refinement-Net brightening it.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from experiments import results_io
from hdrjax.evaluation import budget

# The error budget's deep-shadow band: ground truth below this share of the clipping point.
DEEP_SHADOW = dict((name, hi) for name, _, hi in budget.BANDS)["deep_shadow"]
QUANTILES = (10, 25, 50, 75, 90)


def deep_shadow_values(source: str, crf: str, max_crfs: int, resolution: int, checkpoint: str, limit: int | None):
    """(A, R, ground truth) f32[N]: every deep-shadow colour value of the scored samples."""
    from hdrjax import predict
    from hdrjax.evaluation import methods, protocol
    from hdrjax.models.build import NETWORKS

    config = protocol.EvalConfig(resolution=resolution)
    bank = protocol.load_test_bank(crf, max_crfs)
    model, variables, *_ = methods.load_checkpoint(checkpoint)
    # One pass through all four stages gives both outputs, as the evaluation's stage prefixes
    # compute them (the tiles engine: a 256² crop is one tile).
    run = predict.PredictConfig(engine="tiles", stages=NETWORKS[:4])
    _, examples = protocol.open_source(source, config)
    out = {"A": [], "R": [], "gt": []}
    for n, example in enumerate(e for e in examples if isinstance(e, protocol.Example)):
        if limit is not None and n >= limit:
            break
        for ldr, gt, mask, meta in protocol.synthetic_samples(example, bank, config):
            keep = np.asarray(mask) > 0
            if not keep.any():
                continue
            results = predict.reconstruct_batch(model, variables, list(np.asarray(ldr[keep], np.float32)), run)
            a = np.stack([x.hallucinated for x in results])
            r = np.stack([x.refined for x in results])
            g = np.asarray(gt)[keep]
            dark = g < DEEP_SHADOW
            out["A"].append(a[dark])
            out["R"].append(r[dark])
            out["gt"].append(g[dark])
        print(f"{example.name}: {sum(x.size for x in out['gt'])} deep-shadow values so far", flush=True)
    return tuple(np.concatenate(out[k]) if out[k] else np.zeros(0, np.float32) for k in ("A", "R", "gt"))


def summarize(a: np.ndarray, r: np.ndarray, gt: np.ndarray) -> dict:
    """Per output: share black (≤ 0), quantiles of log2(output / truth) where both are > 0; and R − A."""
    def one(x):
        both = (x > 0) & (gt > 0)
        ratio = np.log2(x[both] / gt[both])
        return {"share_black": float(np.mean(x <= 0)),
                **{f"log2_ratio_q{q}": float(np.percentile(ratio, q)) for q in QUANTILES},
                "median_ratio": float(2.0 ** np.median(ratio))}

    moved = r - a
    return {"values": int(gt.size), "three_stage": one(a), "four_stage": one(r),
            "refinement_brightens_share": float(np.mean(moved > 0)),
            "refinement_change_abs_median": float(np.median(np.abs(moved))),
            "refinement_change_rel_median": float(np.median(np.abs(moved) / np.maximum(a, 1e-6)))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--source", default="runs/default-model-heldout",
                   help="the held-out files (HELDOUT_ONLY=1 bash experiments/default_model/evaluate.sh links them)")
    p.add_argument("--crf", default="dorf:../shared/data/crf/dorf_201.npz")
    p.add_argument("--max-crfs", type=int, default=3)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N test patches (quick runs)")
    p.add_argument("--out", default="experiments/results/refinement-deep-shadows.json")
    args = p.parse_args(argv)
    a, r, gt = deep_shadow_values(args.source, args.crf, args.max_crfs, args.resolution, args.checkpoint, args.limit)
    if not gt.size:
        p.error(f"{args.source}: no deep-shadow value (below {DEEP_SHADOW:g}) in any scored sample")
    result = summarize(a, r, gt)
    record = {"created": results_io.now(), "machine": results_io.machine(),
              "command": results_io.command(__spec__.name, argv), "checkpoint": args.checkpoint,
              "what": __doc__.split("\n\n")[1].strip(), "deep_shadow_below": DEEP_SHADOW, **result}
    results_io.write_json(args.out, record)
    for name in ("three_stage", "four_stage"):
        v = result[name]
        print(f"{name}: median {v['median_ratio']:.2f}x the truth (log2 10/50/90 %: {v['log2_ratio_q10']:+.2f} / "
              f"{v['log2_ratio_q50']:+.2f} / {v['log2_ratio_q90']:+.2f}), black {v['share_black']:.2%}")
    print(f"the Refinement-Net brightens {result['refinement_brightens_share']:.0%} of the values; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
