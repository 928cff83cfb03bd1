"""Retrain the model that ships with hdrjax, from scratch, and export it.

    python -m experiments.default_model.train --size cpu --workdir runs/default \\
        --hdr-folder ../shared/data/train_hdr --crf dorf:../shared/data/crf/dorf_201.npz \\
        --export hdrjax/weights/default

The chain of the paper (§3.1, §3.4): Dequantization-, Linearization- and Hallucination-Net
trained stage-wise with teacher forcing, then all four networks fine-tuned jointly with the
Refinement-Net, starting from the three stage runs; ours, between the two, the Refinement-Net
trained alone on the three's fixed outputs (`refinement`).  Settings: configs/recipe.py (`--size`
cpu ≈ 2 h on a 2-core CPU, gpu ≈ 10 min on an H200, tiny = seconds, for tests).

The command line of `hdrjax.training.chain`: every stage runs in `<workdir>/<stage>` through
`hdrjax.training.loop.train_and_evaluate`, so the whole command is resumable: run it again
after a crash, a kill or a reboot and each stage continues from its last checkpoint (finished
stages are skipped). `<workdir>/stages.json` records per stage the steps, images seen and wall
time; `--export` writes the final weights as a shipped-model folder (hdrjax.weights.pretrained:
.npz shards ≤ 16 MiB + manifest.json with sha256, recipe, commit and images seen). Evaluate and
plot afterwards (README, "The default model").

`--init default` (or a shipped-model folder) continues training instead of starting over:
every stage starts from that model's networks, the refinement and joint stages from this
run's stages where they ran and from that model otherwise (`--stages dequantization,joint`
retrains two; `--stages refinement` trains the Refinement-Net alone on the model's fixed first
three networks and exports the result), and
the export's manifest adds this run to the model's training history, so the wall time and
images the weights have had accumulate across sessions.

`--hdr-folder`: a folder of real HDR panoramas (equirectangular .hdr/.exr), seen through
random pinhole views; configs/recipe.TEST_NAMES are held out when present.  Without it, the
embedded procedural scenes.  `--crf`: the CRF bank (`dorf:PATH` = DoRF's 191 training
curves, the paper's; default `camera`, drawn from the model of real cameras' curves that
ships in hdrjax.camera).
"""
from __future__ import annotations

import argparse
import logging
import sys

from hdrjax import cli
from hdrjax.errors import HdrjaxError
from hdrjax.training.chain import STAGES, ChainStopped, export_model, parse_learning_rates, parse_steps, run_chain


def recipe_command(args, steps: dict, stages=STAGES, learning_rates: dict | None = None) -> str:
    """The command line of this run as the manifest records it (the options that shape the model).

    `stages` is named unless it is the whole chain: a run of some stages (`--init` continuing
    a model) is another run than the whole chain with the same options."""
    return "python -m experiments.default_model.train " + " ".join(
        [f"--size {args.size}", f"--workdir {args.workdir}"]
        + ([f"--hdr-folder {args.hdr_folder}"] if args.hdr_folder else []) + [f"--crf {args.crf}"]
        + ([f"--variants {args.variants}"] if args.variants else []) + ([f"--init {args.init}"] if args.init else [])
        + ([f"--stages {','.join(stages)}"] if tuple(stages) != tuple(STAGES) else [])
        + ([f"--steps {','.join(f'{k}={v}' for k, v in steps.items())}"] if steps else [])
        + ([f"--learning-rate {','.join(f'{k}={v:g}' for k, v in learning_rates.items())}"]
           if learning_rates else []))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("cpu", "gpu", "tiny"), default="cpu")
    p.add_argument("--workdir", required=True, help="one sub-folder per stage is created here")
    p.add_argument("--hdr-folder", default="", help="folder of HDR panoramas (default: procedural scenes)")
    p.add_argument("--crf", default="camera", help="CRF bank: camera | parametric | dorf:PATH (default %(default)s)")
    p.add_argument("--steps", default="", help="stage=N,... replacing the size's step counts (e.g. joint=1500)")
    p.add_argument("--learning-rate", default="", help="stage=LR,... replacing the recipe's peak learning "
                   "rate (e.g. refinement=3e-5; the cosine decay stays)")
    p.add_argument("--init", default="", help="continue from this shipped model ('default' or a folder) "
                   "instead of the recipe's inits")
    p.add_argument("--variants", default="", help="extra configs/default.py variants, comma separated")
    p.add_argument("--stages", default=",".join(STAGES), help="stages to run, in order (default: all)")
    p.add_argument("--devices", type=int, default=0, help="use only the first N devices (default 0: all)")
    p.add_argument("--export", default="", help="write the final weights here as a shipped-model folder")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="storage precision")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        p.error(f"unknown stages {unknown}; choose from {STAGES}")
    try:
        steps = parse_steps(args.steps)
        learning_rates = parse_learning_rates(args.learning_rate)
    except ValueError as e:
        p.error(str(e))
    try:
        record = run_chain(args.size, args.workdir, hdr_folder=args.hdr_folder, crf=args.crf,
                           variants=args.variants, stages=stages, devices=args.devices, init=args.init,
                           steps=steps, learning_rates=learning_rates)
        for stage, entry in record.items():
            logging.info("%s: %d steps, %d images, %.0f s", stage, entry["steps"], entry["images_seen"],
                         entry["wall_seconds"])
        if args.export:
            out = export_model(args.workdir, args.export, size=args.size, hdr_folder=args.hdr_folder,
                               crf=args.crf, dtype=args.dtype, variants=args.variants, init=args.init,
                               command=recipe_command(args, steps, stages, learning_rates))
            logging.info("exported the model to %s", out)
    except ChainStopped as e:
        logging.info("%s", e)
        return 0
    except HdrjaxError as e:
        return cli.fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
