"""How long the main command takes to stop after SIGTERM, and what a second signal does.

    python experiments/preemption.py [--trials 3] [--variant cpu] [--out experiments/results/preemption-cpu-2core.json]

Runs `python -m hdrjax.main` (Dequantization-Net stage, the `cpu` variant: 128² x 4 on this
machine; every stage checkpoint holds the same TrainState whatever the stage) several times.
Each trial waits for a progress line, sleeps a random part of a step so the signal lands
mid-step, sends SIGTERM and records, from the arrival time of each output line:

  in_flight_s    signal -> the loop reaches the step boundary (the step that was running ends)
  after_step_s   step boundary -> the process has exited (saving the checkpoint, closing)
  total_s        signal -> exit

and the exit status, the saved step and the checkpoint folder's size.  One more trial sends a
second SIGTERM right after the stop begins: the process must exit at once (status 143) and
the last complete checkpoint must be the one from before.  Nothing is timed by the tests;
this script is where the numbers of the README come from.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import results_io  # experiments/results_io.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _dir_bytes(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Run:
    """The main command with each stderr line time-stamped on arrival."""

    def __init__(self, args, env):
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "hdrjax.main", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append((time.time(), line))

    def wait_for(self, pattern: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for t, line in list(self.lines):
                if re.search(pattern, line):
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"no line matching {pattern!r}; last lines:\n" + "".join(l for _, l in self.lines[-20:]))

    def finish(self, timeout: float) -> float:
        self.proc.wait(timeout=timeout)
        self._t.join(timeout=10)
        return time.time()

    def text(self) -> str:
        return "".join(line for _, line in self.lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--variant", default="cpu", help="config variant of configs/dequantization.py")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "preemption-cpu-2core.json"))
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    rng = random.Random(0)
    base = [f"--config={ROOT / 'configs' / 'dequantization.py'}:{args.variant}",
            "--config.train.num_steps=100000", "--config.train.log_every=1",
            "--config.train.eval_every=0", "--config.train.image_summary_every=0",
            "--config.train.checkpoint_every=100000", "--config.train.checkpoint_every_secs=0"]
    trials = []
    with tempfile.TemporaryDirectory(prefix="hdrjax_preempt_") as tmp:
        # One compilation cache for all trials, removed with the runs' folder at the end.
        env["JAX_COMPILATION_CACHE_DIR"] = str(pathlib.Path(tmp) / "jax-cache")
        for trial in range(args.trials):
            workdir = pathlib.Path(tmp) / f"run{trial}"
            run = Run([*base, f"--workdir={workdir}"], env)
            t3 = run.wait_for(r"step 3/", 900)
            t4 = run.wait_for(r"step 4/", 900)
            step_s = t4 - t3
            time.sleep(rng.uniform(0.1, 0.9) * step_s)  # land inside a step
            t_signal = time.time()
            run.proc.send_signal(signal.SIGTERM)
            t_boundary = run.wait_for(r"stopping at step \d+", 900)
            t_exit = run.finish(900)
            log = run.text()
            m = re.search(r"saved checkpoint step (\d+) in ([\d.]+)s", log)
            saved = int(m.group(1)) if m else None
            trials.append({
                "step_s": round(step_s, 3), "in_flight_s": round(t_boundary - t_signal, 3),
                "after_step_s": round(t_exit - t_boundary, 3), "total_s": round(t_exit - t_signal, 3),
                "save_s_logged": float(m.group(2)) if m else None,
                "exit_status": run.proc.returncode, "saved_step": saved,
                "checkpoint_bytes": _dir_bytes(workdir / "checkpoints" / str(saved)) if saved else None,
            })
            print(json.dumps(trials[-1]), flush=True)

        # A second signal during the save: exit at once, the earlier checkpoint stays the latest.
        workdir = pathlib.Path(tmp) / "twice"
        run = Run([*base, f"--workdir={workdir}", "--config.train.checkpoint_every=2"], env)
        run.wait_for(r"step 3/", 900)
        from hdrjax.weights import checkpoints

        before = checkpoints.find_checkpoint(workdir)
        run.proc.send_signal(signal.SIGTERM)
        run.wait_for(r"stopping at step \d+", 900)
        t_second = time.time()
        run.proc.send_signal(signal.SIGTERM)
        t_exit = run.finish(120)
        after = checkpoints.find_checkpoint(workdir)
        second = {"exit_status": run.proc.returncode, "exit_after_second_signal_s": round(t_exit - t_second, 3),
                  "latest_before": before.name if before else None, "latest_after": after.name if after else None,
                  "stop_step": int(re.search(r"stopping at step (\d+)", run.text()).group(1))}
        print(json.dumps(second), flush=True)

    result = {
        "what": "SIGTERM to `python -m hdrjax.main` mid-step: time to stop, save and exit",
        "config": f"configs/dequantization.py:{args.variant}", "script": "experiments/preemption.py",
        "machine": results_io.machine(),
        "trials": trials,
        "max_after_step_s": max(t["after_step_s"] for t in trials),
        "second_signal": second,
        "date": results_io.now(),
    }
    results_io.write(args.out, result)


if __name__ == "__main__":
    main()
