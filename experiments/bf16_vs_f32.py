"""Mixed precision on a CPU: a short bfloat16 run tracks the float32 reference.

    python experiments/bf16_vs_f32.py [--stages dequantization,linearization] [--steps 40] \
        [--out experiments/results/bf16-vs-f32-cpu-2core.json]

`model.dtype="bfloat16"` computes the convolutions in bfloat16 while parameters, Adam's
moments, the network outputs and the loss stay float32 (the SingleHDR modules cast back;
tests/test_dequantization.py, test_hallucination.py).  Each stage is trained twice in this
process from the same initial parameters, data and camera noise (same seed), once per dtype,
at the `cpu` variant's 128² x 4; the per-step losses are compared.  float32 stays the
reference setting (configs/default.py).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

import results_io  # experiments/results_io.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hdrjax import configs  # noqa: E402


def load_config(stage, variant):
    return configs.get_config(stage, variant)


def losses_of(workdir):
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    train_rows = sorted((r for r in rows if r["kind"] == "train"), key=lambda r: r["step"])
    return ([r["loss"] for r in train_rows], [r.get("sec_per_step") for r in train_rows],
            {k: v for r in rows if r["kind"] == "eval" for k, v in r.items() if k not in ("kind", "step", "images_seen", "time")})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default="dequantization,linearization")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--variant", default="cpu")
    parser.add_argument("--window", type=int, default=10, help="moving-average window of the band")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bf16-vs-f32-cpu-2core.json"))
    args = parser.parse_args(argv)

    from hdrjax.training import loop

    results = {}
    with tempfile.TemporaryDirectory(prefix="hdrjax_bf16_") as tmp:
        for stage in args.stages.split(","):
            runs = {}
            for dtype in ("float32", "bfloat16"):
                config = load_config(stage, args.variant)
                with config.unlocked():
                    config.model.dtype = dtype
                    config.train.num_steps = args.steps
                    config.train.log_every = 1
                    config.train.eval_every = 0
                    config.train.image_summary_every = 0
                    config.train.checkpoint_every = 10 ** 6
                    config.train.checkpoint_every_secs = 0
                    config.init.crf_net = ""
                workdir = os.path.join(tmp, f"{stage}_{dtype}")
                t0 = time.time()
                loop.train_and_evaluate(config, workdir)
                loss, sps, evals = losses_of(workdir)
                runs[dtype] = {"loss": loss, "sec_per_step": sps, "eval": evals, "wall_s": round(time.time() - t0, 1)}
            a, b = np.asarray(runs["float32"]["loss"]), np.asarray(runs["bfloat16"]["loss"])
            rel = np.abs(b - a) / np.abs(a)
            k = args.window
            ma = lambda x: np.convolve(x, np.ones(k) / k, mode="valid")  # noqa: E731
            rel_ma = np.abs(ma(b) - ma(a)) / np.abs(ma(a))
            results[stage] = {
                **runs,
                "first_loss_rel_diff": float(rel[0]),
                "max_rel_diff_per_step": float(rel.max()),
                "median_rel_diff_per_step": float(np.median(rel)),
                f"max_rel_diff_moving_avg_{k}": float(rel_ma.max()),
                "loss_fall_float32": float(ma(a)[-1] / ma(a)[0]),
                "loss_fall_bfloat16": float(ma(b)[-1] / ma(b)[0]),
            }
            print(stage, json.dumps({k2: v for k2, v in results[stage].items() if k2 not in ("float32", "bfloat16")}),
                  flush=True)
    out = {
        "what": "per-step training loss, model.dtype bfloat16 vs float32, same init/data/noise",
        "script": "experiments/bf16_vs_f32.py", "variant": args.variant, "steps": args.steps,
        "machine": results_io.machine(),
        "stages": results,
        "date": results_io.now(),
    }
    results_io.write(args.out, out)


if __name__ == "__main__":
    main()
