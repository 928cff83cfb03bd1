"""Wall time of the test tiers on this machine, as a new developer and CI meet them.

    python -m experiments.test_tiers            # fast tier cold, fast tier warm, slow tier
    python -m experiments.test_tiers --fast     # only the fast tier (cold, then warm)

The tiers are the README's test command (and .ci/run): `python -m pytest -q -m "not slow"`,
then `python -m pytest -q -m slow`; the whole suite is the two together.  "Cold" empties
pytest's cache folder first (`--cache-clear`: the compiled programs kept between runs,
tests/conftest.py), "warm" runs again right after.  Each run is one subprocess from the
repository root.  Other work on the machine changes wall times, so each run also records the
load average (before, after, and sampled every 10 s during it) and the CPU seconds the
pytest process and its children used, which other processes inflate far less than the wall
time.  Writes experiments/results/test-tiers-<machine>.json (the README cites it).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import resource
import subprocess
import sys
import threading
import time

from . import results_io

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST = ["-m", "not slow"]
SLOW = ["-m", "slow"]


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tier(name: str, args: list[str]) -> dict:
    """One pytest run: wall seconds, pytest's own summary line, the load around it."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", *args]
    load_before = os.getloadavg()
    samples, done = [], threading.Event()

    def sample():
        while not done.wait(10.0):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0, t0 = _children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - t0, _children_cpu_seconds() - cpu0
    done.set()
    sampler.join()
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    print(f"{name}: {seconds:.0f} s ({cpu:.0f} CPU s), rc {proc.returncode}: {summary}", *failures, sep="\n",
          flush=True)
    return {"tier": name, "command": "python -m pytest -q " + " ".join(f'"{a}"' if " " in a else a for a in args),
            "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "returncode": proc.returncode,
            "summary": summary.strip("= "), "failures": failures,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "load_1min_during": {"samples": len(samples),
                                 "mean": round(sum(samples) / len(samples), 2) if samples else None,
                                 "max": round(max(samples), 2) if samples else None}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="only the fast tier (cold and warm)")
    p.add_argument("--output", default=None, help="result file (default experiments/results/test-tiers-<machine>.json)")
    p.add_argument("--note", default="", help="what the file should say about the conditions of the run")
    args = p.parse_args(argv)
    runs = [run_tier("fast, cold cache", [*FAST, "--cache-clear"]), run_tier("fast, warm cache", FAST)]
    if not args.fast:
        runs.append(run_tier("slow, after the fast tier", SLOW))  # cache: the fast tier's programs only
    record = {"script": "python -m experiments.test_tiers", "date": results_io.now(), "note": args.note,
              "machine": results_io.machine(), "runs": runs}
    if not args.fast:  # the whole suite as .ci/run meets it on a fresh checkout: fast (cold), then slow
        record["full_suite_seconds"] = round(runs[0]["seconds"] + runs[2]["seconds"], 1)
    out = args.output or ROOT / "experiments" / "results" / f"test-tiers-cpu-{os.cpu_count()}core.json"
    print(f"wrote {results_io.write_json(out, record)}")
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
