"""The step-time gap around a checkpoint save (or an evaluation): asynchronous (the default) vs synchronous.

    python experiments/checkpoint_stall.py [--steps 31] [--every 5] [--variant cpu] \
        [--out experiments/results/checkpoint-stall-cpu-2core.json]
    python experiments/checkpoint_stall.py --what eval --out experiments/results/eval-stall-cpu-2core.json

Trains the Dequantization-Net (`configs/dequantization.py:<variant>`, 128² x 4 for `cpu`; every
stage checkpoint holds the whole TrainState, 118 MB) in this process, once with
`train.async_checkpoint=True` and once with False, saving every `--every` steps and logging
every step.  The logged s/step of the step after a save includes whatever the save kept the
loop from doing; the result compares it with the median of the steps between saves.
`--what eval` does the same for the periodic evaluation (train.async_eval True / False, no
checkpoints but the last).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

import results_io  # experiments/results_io.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hdrjax import configs  # noqa: E402


def load_config(variant):
    return configs.get_config("dequantization", variant)


def one_run(config, workdir, every, what="checkpoint"):
    from hdrjax.training import loop

    loop.train_and_evaluate(config, workdir)
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    if what == "eval":
        # Wall time between consecutive progress lines (each is written when its step has
        # finished): the step after an evaluation includes whatever the evaluation cost.
        times = {r["step"]: r["time"] for r in rows if r["kind"] == "train"}
        per_step = {s: times[s] - times[s - 1] for s in times if s - 1 in times}
    else:
        per_step = {r["step"]: r["sec_per_step"] for r in rows if r["kind"] == "train" and "sec_per_step" in r}
    after_save = [per_step[s] for s in sorted(per_step) if s > 2 and (s - 1) % every == 0]
    between = [per_step[s] for s in sorted(per_step) if s > 2 and (s - 1) % every != 0]
    return {
        "sec_per_step_after_save": [round(x, 3) for x in after_save],
        "median_sec_per_step_between_saves": round(statistics.median(between), 3),
        "median_gap_s": round(statistics.median(after_save) - statistics.median(between), 3),
        "per_step": {int(k): round(v, 3) for k, v in per_step.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=31)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--variant", default="cpu")
    parser.add_argument("--what", choices=("checkpoint", "eval"), default="checkpoint")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "checkpoint-stall-cpu-2core.json"))
    args = parser.parse_args(argv)
    import logging


    logging.basicConfig(level=logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory(prefix="hdrjax_stall_") as tmp:
        for mode in ("async", "sync"):
            config = load_config(args.variant)
            with config.unlocked():
                config.train.num_steps = args.steps
                config.train.checkpoint_every_secs = 0
                config.train.keep_checkpoints = 2
                config.train.log_every = 1
                config.train.image_summary_every = 0
                if args.what == "checkpoint":
                    config.train.checkpoint_every = args.every
                    config.train.eval_every = 0
                    config.train.async_checkpoint = mode == "async"
                else:
                    config.train.checkpoint_every = 10 ** 6
                    config.train.eval_every = args.every
                    config.train.async_eval = mode == "async"
            results[mode] = one_run(config, os.path.join(tmp, mode), args.every, args.what)
            print(mode, json.dumps({k: v for k, v in results[mode].items() if k != "per_step"}), flush=True)
            if args.what == "eval":
                continue
            size = sum(p.stat().st_size for p in (pathlib.Path(tmp) / mode / "checkpoints" / str(args.steps - 1)).rglob("*")
                       if p.is_file()) if (pathlib.Path(tmp) / mode / "checkpoints" / str(args.steps - 1)).exists() else None
            results[mode]["checkpoint_bytes"] = size
    out = {
        "what": ("s/step of the step after a checkpoint save vs between saves, async vs sync orbax saves"
                 if args.what == "checkpoint" else
                 "s/step of the step after an evaluation vs between evaluations, train.async_eval True vs False"),
        "config": f"configs/dequantization.py:{args.variant}", "script": "experiments/checkpoint_stall.py",
        "save_every_steps": args.every,
        "machine": results_io.machine(),
        **results,
        "date": results_io.now(),
    }
    results_io.write(args.out, out)


if __name__ == "__main__":
    main()
