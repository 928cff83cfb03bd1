"""The command line of the evaluation: `python -m hdrjax.evaluate SOURCE --workdir DIR [options]`
(the same as `python -m hdrjax.evaluation` and `hdrjax-evaluate`).

    python -m hdrjax.evaluate ../shared/data/real_hdr --workdir eval/ --crf dorf:dorf_201.npz
    python -m hdrjax.evaluate HDR-Real/test --workdir eval_real/ --checkpoint runs/joint
    python -m hdrjax.evaluate procedural --workdir eval/ --checkpoint runs/joint --methods all
    python -m hdrjax.evaluate ../shared/data/real_hdr --workdir eval/ --checkpoint default \
        --crf dorf:dorf_201.npz --methods model,stages,baselines,true_crf

This file only reads the options and runs the modules of `hdrjax.evaluation`, where the parts live:

* the protocol and the sources (folder of .hdr/.exr, HDR-Real `HDR_gt/` + `LDR_in/` pairs,
  `procedural` / `hdr_synth:DIR` / `hdr_folder:DIR` / `hdr_real:DIR` datasets), every
  setting explained: `hdrjax/evaluation/protocol.py`;
* the methods (`--methods`: model, ablations, stage prefixes, baselines, mean_crf, true_crf)
  and `--checkpoint` (a training workdir or checkpoint folder, a shipped-model folder with
  manifest.json, or `default`): `hdrjax/evaluation/methods.py`;
* the metrics loop: `hdrjax/evaluation/loop.py`; the output files: `hdrjax/evaluation/report.py`.

Outputs in `--workdir` (all written atomically): `per_image.csv` (one row per method × image
× CRF × exposure), `summary.csv` and `summary.md` (mean ± sample standard deviation per method,
per exposure and overall; the markdown is also printed), `protocol.json` (every setting, the
CRF names, the checkpoint, the skipped files, timings). With `--error-budget` also
`bands.csv` and `gaps.csv` (budget.py), `speckle.csv` (speckle.py) and `curves.csv`
(curve_levels.py). Messages go to stderr, one line each
(`hdrjax.cli`). A bad input file is one `error:` line, skipped and counted; the exit status is
then 1. A problem with the arguments, the source or the checkpoint is one `error:` line and the
exit status of `hdrjax.cli.fail`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

import jax

from hdrjax import cli
from hdrjax.errors import HdrjaxError
from hdrjax.evaluation import budget, loop, methods, protocol, report

logger = logging.getLogger("hdrjax.evaluation")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hdrjax.evaluate",
        description="Evaluate the model, its ablations and baselines with a fixed protocol "
                    "(hdrjax/evaluation/protocol.py states it).",
    )
    p.add_argument("source", help="folder of .hdr/.exr | HDR-Real folder (HDR_gt/, LDR_in/) | HDR file | "
                   "procedural | hdr_synth:DIR | hdr_folder:DIR | hdr_real:DIR")
    p.add_argument("--workdir", required=True, help="output folder (created if needed)")
    p.add_argument("--checkpoint", help="training workdir or checkpoint folder, a shipped-model folder (manifest.json) "
                   "or 'default' (the model shipped with hdrjax); needed by model, ablations and stages")
    p.add_argument("--methods", default=None,
                   help="comma list of methods and groups (baselines, ablations, stages, oracles, all); "
                   "default: model,baselines with --checkpoint, else baselines")
    p.add_argument("--crf", default="camera",
                   help="test CRFs: 'camera' (built-in camera bank, test split; default), 'parametric' or "
                   "'dorf:PATH' (DoRF .txt/.npz; the reference's 10 test curves); its training split is "
                   "what mean_crf averages")
    p.add_argument("--max-crfs", type=int, default=None, help="use only the first K test CRFs (quick runs)")
    p.add_argument("--exposures", default=",".join(f"{s:g}" for s in protocol.EXPOSURE_STOPS),
                   help="exposure stops s, t = 2^s; write --exposures=-3,0,3 (default %(default)s)")
    p.add_argument("--jpeg-quality", type=int, default=protocol.JPEG_QUALITY,
                   help="JPEG quality of the synthetic input (default %(default)s)")
    p.add_argument("--resolution", type=int, default=protocol.RESOLUTION,
                   help="short side and crop size of the test patches (default %(default)s)")
    p.add_argument("--full-image", action="store_true", help="evaluate whole images instead of the two crops")
    p.add_argument("--resize-interpolation", choices=("area", "linear"), default="area",
                   help="area (default) or linear (the reference loader's accidental bilinear)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test patches")
    p.add_argument("--mask", choices=("exclude", "include"), default="exclude",
                   help="extreme-exposure samples: exclude from the means (reference) or include")
    p.add_argument("--no-noise", action="store_true", help="no synthesis noise in the input")
    p.add_argument("--target", choices=("clean", "noisy"), default="clean",
                   help="synthetic ground truth: clean H·t (default) or the noisy X the reference trains towards")
    p.add_argument("--crf-correction", action="store_true", help="Hanji et al. 2022 CRF correction before the metrics")
    p.add_argument("--normalization", choices=protocol.NORMALIZATIONS, default="auto",
                   help="metrics normalization (auto: reference for synthetic, authors for real pairs)")
    p.add_argument("--seed", type=int, default=0, help="synthesis noise seed (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network/metric call (default %(default)s)")
    p.add_argument("--invemor", default="", help="invemor.txt whose g0 the g0 baseline uses (default: the model's basis / built-in)")
    p.add_argument("--reference-inference", action="store_true",
                   help="run the model as the reference (stretch to ×64, 32 px pad, one pass) instead of tiles")
    p.add_argument("--error-budget", action="store_true",
                   help="also write bands.csv (PU21 error by the ground truth's intensity band), gaps.csv (the same, "
                   "method against method), speckle.csv (the speckle figure's parts) and curves.csv (curve error "
                   "by LDR level)")
    p.add_argument("--data-dir", default="", help="TFDS data_dir for dataset sources")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 ok, 1 bad input files were skipped; a user error (arguments, source,
    checkpoint) is one `error:` line and `hdrjax.cli.fail`'s exit status; argparse exits 2 on bad options."""
    args = _parser().parse_args(argv)
    cli.configure_logging(args.quiet)
    try:
        return _main(args, list(sys.argv[1:] if argv is None else argv))
    except HdrjaxError as e:
        return cli.fail(e)


def _main(args, argv) -> int:
    from hdrjax import predict
    from hdrjax.camera import crf as crf_lib
    from hdrjax.camera import basis as basis_lib
    from hdrjax.weights import loading

    config = protocol.EvalConfig(
        resolution=args.resolution, full_image=args.full_image, resize_interpolation=args.resize_interpolation,
        exposure_stops=protocol.parse_stops(args.exposures), jpeg_quality=args.jpeg_quality, noise=not args.no_noise,
        target=args.target, mask=args.mask, normalization=args.normalization, crf_correction=args.crf_correction, seed=args.seed,
        batch_size=args.batch_size,
    )
    if args.limit is not None and args.limit < 1:
        raise protocol.EvalError(f"--limit must be >= 1, got {args.limit}")
    kind, examples = protocol.open_source(args.source, config, data_dir=args.data_dir)
    facts: dict[str, Any] = {"source": args.source, "command": "python -m hdrjax.evaluate " + " ".join(argv),
                             "versions": {"jax": jax.__version__, "python": sys.version.split()[0]}}

    bank = None
    if kind == "synthetic":
        bank = protocol.load_test_bank(args.crf, args.max_crfs)
        facts["crf_spec"] = f"{args.crf}, test split" + (f", first {len(bank)}" if args.max_crfs else "")

    model = variables = stages = None
    joint = True
    if args.checkpoint:
        model, variables, train_config, step, _, warning = methods.load_checkpoint(args.checkpoint)
        stages = loading.stages_for_checkpoint(train_config)
        # A jointly trained Refinement-Net is measured (stages_refinement) even when the shipped
        # output stops before it (a manifest's output_stage).
        joint = "refinement" in stages or train_config.get("stage") == "joint"
        if warning:
            logger.warning(f"{args.checkpoint}: {warning}")
        facts["checkpoint"] = {"path": args.checkpoint, "step": step, "stage": train_config.get("stage"),
                               "output_stage": stages[-1], "warning": warning}
    names = methods.parse_methods(args.methods or ("model,baselines" if model is not None else "baselines"),
                                  have_model=model is not None, joint=joint)
    if not joint and "stages_refinement" in names:
        logger.warning(f"stages_refinement: the checkpoint's stage is {train_config.get('stage')!r}, not joint; "
                       "its Refinement-Net was not trained")
    basis = None
    if args.invemor:
        try:
            basis = basis_lib.load_invemor(args.invemor)
        except crf_lib.CRFError as e:
            raise protocol.EvalError(f"--invemor: {e}") from None
    predict_config = predict.PredictConfig(engine="tiles", batch_size=args.batch_size,
                                           reference_mode=args.reference_inference)
    chosen = methods.build_methods(names, model=model, variables=variables, stages=stages,
                                   predict_config=predict_config, basis=basis, crf=args.crf)
    if kind == "real":
        dropped = [m.name for m in chosen if m.synthetic_only]
        if dropped:
            logger.warning(f"{', '.join(dropped)}: synthetic only, not run on real pairs")
        chosen = [m for m in chosen if not m.synthetic_only]
    logger.info(f"{kind} evaluation of {', '.join(m.name for m in chosen)} on {args.source}"
                + (f" with {len(bank)} test CRFs × {len(config.exposure_stops)} exposures" if bank is not None else ""))
    # A dataset source reads lazily: its DataError (a HdrjaxError) surfaces here, handled by main.
    if args.error_budget:
        facts["error_budget"] = budget.definition()
    result = loop.evaluate(examples, chosen, config, bank=bank, limit=args.limit, protocol=facts,
                           error_budget=args.error_budget)
    if result.protocol["examples"] == 0:
        raise protocol.EvalError(f"{args.source}: no test image could be read")
    paths = report.write_outputs(result, args.workdir)
    sys.stdout.write(report.summary_markdown(result))
    logger.info(f"{result.protocol['examples']} test patch(es), {len(result.skipped)} input(s) skipped; "
                f"wrote {', '.join(str(p) for p in paths.values())}")
    return 1 if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
