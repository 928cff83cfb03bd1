"""Does one switch of the Linearization stage train a better Linearization-Net? A short A/B.

    # the PU21 image term (loss.lin_image_space) against the reference's:
    python -m experiments.default_model.lin_loss_ab --workdir runs/lin-ab --steps 400 \
        --hdr-folder ../shared/data/train_hdr --crf dorf:../shared/data/crf/dorf_201.npz \
        --out experiments/results/lin-loss-ab.json
    # the JPEG as the network's input (train.lin_input) against the reference's teacher-forced L:
    python -m experiments.default_model.lin_loss_ab --workdir runs/lin-input-ab --switch train.lin_input \
        --arms ldr,jpeg --steps 1000 --out experiments/results/lin-input-ab.json

Each arm continues the shipped model's Linearization-Net (`init.linearization="default"`) for
`--steps` steps of configs/recipe.py's linearization stage (cpu size) with one value of
`--switch`, everything else equal (same seed, data, schedule), then runs the Deq + Lin
prefix (the shipped Dequantization-Net, the arm's Linearization-Net) through the held-out
evaluation of the README (experiments/default_model/evaluate.sh's protocol: configs/recipe.TEST_NAMES
+ ../shared/data/real_hdr, DoRF's first `--max-crfs` test CRFs, exposures −3…+3, `--resolution`²
crops) with the error budget. Arms already trained are resumed / skipped (each is an ordinary
training workdir). The result file holds, per arm, the PU21-PSNR, the inverse-CRF RMSE, the
speckle figure, the band table and the curve-level table of Deq + Lin, and the training time.
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

from .. import results_io

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIN = "stages_dequantization_linearization"


def arm_config(value: str, workdir: pathlib.Path, args):
    """configs/recipe.py's linearization stage from the shipped Lin-Net, `--steps` long, `--switch` = value."""
    from hdrjax.training import chain

    c = chain.stage_config("linearization", args.size, workdir, hdr_folder=args.hdr_folder, crf=args.crf)
    c.init.linearization = "default"
    section, _, field = args.switch.partition(".")
    if section not in c or not isinstance(c[section], type(c)) or field not in c[section]:
        raise SystemExit(f"--switch {args.switch}: no such config field")
    c[section][field] = value
    c.train.num_steps = args.steps
    c.optim.learning_rate = args.learning_rate
    c.optim.warmup_steps = max(1, args.steps // 50)
    c.train.eval_every = 0  # the end of training evaluates anyway; the held-out evaluation below is the measure
    c.train.checkpoint_every = max(1, args.steps // 4)
    c.seed = args.seed
    return c


def heldout_files(hdr_folder: str, real_folder: str) -> list[pathlib.Path]:
    from hdrjax.configs import recipe

    files = [pathlib.Path(hdr_folder) / n for n in recipe.TEST_NAMES]
    files += sorted(pathlib.Path(real_folder).glob("*.exr"))
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"held-out file(s) missing: {', '.join(missing)}")
    return files


def evaluate_arm(variables_lin, args) -> dict:
    """Deq + Lin of the shipped model with the arm's Linearization-Net on the held-out protocol."""
    from hdrjax.weights import loading
    from hdrjax.evaluation import loop, methods, protocol

    shipped = loading.load("default")
    variables = {k: dict(v) for k, v in shipped.variables.items()}
    if variables_lin is not None:
        for kind in ("params", "batch_stats"):
            variables[kind]["linearization"] = variables_lin[kind]["linearization"]
    config = protocol.EvalConfig(resolution=args.resolution)
    bank = protocol.load_test_bank(args.crf, args.max_crfs)
    examples = protocol.folder_examples(heldout_files(args.hdr_folder, args.real_folder), config)
    method = methods.model_method(shipped.model, variables, name=LIN)
    t0 = time.time()
    result = loop.evaluate(examples, [method], config, bank=bank, error_budget=True)
    overall = next(r for r in result.summary if r["exposure"] == "all")
    return {
        "pu21_psnr": overall["pu21_psnr_mean"], "inverse_crf_rmse": overall["inverse_crf_rmse_mean"],
        "speckle": overall.get("speckle_mean"), "samples": overall["n"],
        "bands": [r for r in result.budget["bands"] if r["exposure"] == "all"],
        "curves": result.budget["curves"], "eval_seconds": round(time.time() - t0, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="one training workdir per arm is made under it")
    p.add_argument("--switch", default="loss.lin_image_space", help="the config field the arms set")
    p.add_argument("--arms", default="linear,pu21", help="values of --switch to compare; 'shipped' = "
                   "the shipped Linearization-Net untouched")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--size", default="cpu", help="configs/recipe.py size (patch, batch)")
    p.add_argument("--seed", type=int, default=0)
    # Relative to the repository root, where every experiment runs: a result records no folder of this machine.
    p.add_argument("--hdr-folder", default="../shared/data/train_hdr")
    p.add_argument("--real-folder", default="../shared/data/real_hdr")
    p.add_argument("--crf", default="dorf:../shared/data/crf/dorf_201.npz")
    p.add_argument("--max-crfs", type=int, default=3)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "lin-loss-ab.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from hdrjax.training import loop
    from hdrjax.weights import checkpoints

    arms = {}
    out = {"created": results_io.now(), "machine": results_io.machine(),
           "command": results_io.command(__spec__.name, argv),
           "settings": {k: v for k, v in vars(args).items() if k != "out"}, "arms": arms}
    for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
        if arm == "shipped":
            arms[arm] = {"train_seconds": 0.0, **evaluate_arm(None, args)}
        else:
            workdir = pathlib.Path(args.workdir) / arm
            t0 = time.time()
            loop.train_and_evaluate(arm_config(arm, workdir, args), workdir)
            seconds = time.time() - t0
            variables, _, step = checkpoints.load_inference_variables(workdir, complete=False)
            arms[arm] = {"steps": step, "train_seconds": round(seconds, 1), **evaluate_arm(variables, args)}
        logging.info(f"{arm}: Deq + Lin {arms[arm]['pu21_psnr']:.2f} dB PU21-PSNR, "
                     f"curve RMSE {arms[arm]['inverse_crf_rmse']:.4f}")
        results_io.write_json(args.out, out)  # after every arm: a killed run keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
