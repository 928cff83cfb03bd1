"""Each stage's train step at the reference settings (256² patches, batch 8) on this machine:
the figures of the README's "How long on a CPU" table.

    python -m experiments.benchmark.train_steps --out experiments/results/train-steps-cpu-2core.json \
        --note "what else ran on the machine"

One fresh process per stage, so the peak RSS recorded is that stage's alone: the stage's
config as `python -m hdrjax.main --config=<stage>` trains it (configs/<stage>.py,
including the joint config's default-model options), random weights (timings do not depend
on their values), the train step compiled as the trainer compiles it (state donated), then
`--steps` steps timed one by one. The first step after compiling carries the allocations a
warm-up would absorb; the median of the steps is reported, every step's time is kept. The
load average is recorded around each stage and the process's CPU seconds per step next to
the wall time, so a busy machine shows in the file.

The benchmark's `train` section (`python -m experiments.benchmark --only train`) measures the same steps with more
detail (FLOPs, synthesis share, largest batch), the Hallucination-Net stages at 128² in its
10-minute CPU set; this script is the short measurement at 256².
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from hdrjax.models.build import TRAINING_STAGES as STAGES

from .. import results_io
from . import measure as m
from . import runner as bench_runner
from . import train as bench_train


def measure_stage(stage: str, *, batch: int, patch: int, steps: int) -> dict:
    """Compile one stage's train step and time `steps` steps (run in a fresh process)."""
    import jax

    m.setup_worker()
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    entry = bench_train.train_step_for(stage, batch, patch, 1)
    setup_s = time.perf_counter() - t0 - entry["compile_s"]
    cpu0 = time.process_time()
    times, _, metrics = bench_train.run_steps(entry["compiled"], entry["state"], entry["batch"], entry["bank"],
                                              entry["vgg"], repeats=steps, budget_s=0.0, min_repeats=steps)
    # CPU seconds of this process per step (all its threads): unlike the wall time, it does not
    # grow when other processes share the cores, so it shows how much of a slow step is waiting.
    cpu_per_step = (time.process_time() - cpu0) / len(times)
    seconds = m.median(times)
    cfg = entry["cfg"]
    return {
        "stage": stage, "config": f"configs/{stage}.py", "batch": batch, "patch": patch,
        "options": {"freeze_encoder": bool(cfg.train.get("freeze_encoder", False)), "dtype": str(cfg.model.dtype),
                    "perceptual_weight": float(cfg.loss.perceptual_weight)},
        "setup_s": setup_s, "compile_s": entry["compile_s"], "times": times,
        "seconds_per_step": seconds, "images_per_s": batch / seconds, "cpu_seconds_per_step": cpu_per_step,
        "cpu_count": os.cpu_count(),
        "xla_memory": m.memory_of(entry["compiled"]), "peak_rss_bytes": m.peak_rss_bytes(),
        "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="the result JSON to write (required)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated training stages")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="timed steps per stage after compiling")
    p.add_argument("--note", default="", help="what the file should say about the conditions of the run")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one stage, result JSON to this path
    args = p.parse_args(argv)
    if args.worker:
        (stage,) = args.stages.split(",")
        result = measure_stage(stage, batch=args.batch, patch=args.patch, steps=args.steps)
        results_io.write_json(args.worker, result)
        return 0

    if not args.out:
        p.error("--out is required")

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        p.error(f"--stages: unknown {', '.join(sorted(unknown))}; known: {', '.join(STAGES)}")
    started, load_start = time.perf_counter(), os.getloadavg()
    command = ["python -m experiments.benchmark.train_steps"] + (argv if argv is not None else sys.argv[1:])
    out = {"created": results_io.now(), "command": command, "note": args.note,
           "environment": bench_runner.environment(), "stages": {}}
    with tempfile.TemporaryDirectory(prefix="hdrjax-train-steps-") as tmp:
        for stage in stages:
            path = pathlib.Path(tmp) / f"{stage}.json"
            cmd = [sys.executable, "-m", "experiments.benchmark.train_steps", "--worker", str(path), "--stages", stage,
                   "--batch", str(args.batch), "--patch", str(args.patch), "--steps", str(args.steps)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=bench_runner.worker_env(1, gpu=False), cwd=bench_runner.ROOT,
                                  capture_output=True, text=True)
            if proc.returncode or not path.exists():
                out["stages"][stage] = {"error": f"exit {proc.returncode}", "log_tail": proc.stderr[-3000:]}
            else:
                out["stages"][stage] = json.loads(path.read_text())
            out["stages"][stage]["wall_s"] = time.perf_counter() - t0
            print(f"{stage}: {out['stages'][stage].get('seconds_per_step', 'failed')} s/step "
                  f"in {out['stages'][stage]['wall_s']:.0f} s", file=sys.stderr, flush=True)
    cores = out["environment"].get("cpu_affinity") or out["environment"].get("cpu_count") or 1
    out["load_average"] = {"start": list(load_start), "end": list(os.getloadavg())}
    loads = [s["load_average"][k][0] for s in out["stages"].values() if "load_average" in s for k in ("start", "end")]
    out["contended"] = max(loads + [load_start[0]]) > 1.25 * cores
    out["wall_s"] = time.perf_counter() - started
    print(f"wrote {results_io.write_json(args.out, out)}")
    return 1 if any("error" in s for s in out["stages"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
