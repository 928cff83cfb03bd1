"""Wall time of the two test tiers on this machine, as a new developer meets them.

    python experiments/test_tiers.py            # fast tier cold, fast tier warm, full suite
    python experiments/test_tiers.py --fast     # only the fast tier (cold, then warm)

"Cold" empties pytest's cache folder first (`--cache-clear`: the compiled programs kept
between runs, tests/conftest.py), "warm" runs again right after.  Each run is one subprocess
`python -m pytest -q ...` from the repository root; the load average before and after is
recorded, since other work on the machine changes the figures.  Writes
experiments/results/test-tiers-<machine>.json (the README cites it).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import results_io  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST = ["-m", "not slow"]


def run_tier(name: str, args: list[str]) -> dict:
    """One pytest run: wall seconds, pytest's own summary line, the load around it."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", *args]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    print(f"{name}: {seconds:.0f} s, rc {proc.returncode}: {summary}", *failures, sep="\n", flush=True)
    return {"tier": name, "command": "python -m pytest -q " + " ".join(f'"{a}"' if " " in a else a for a in args),
            "seconds": round(seconds, 1), "returncode": proc.returncode, "summary": summary.strip("= "),
            "failures": failures,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="only the fast tier (cold and warm)")
    p.add_argument("--output", default=None, help="result file (default experiments/results/test-tiers-<machine>.json)")
    args = p.parse_args(argv)
    runs = [run_tier("fast, cold cache", [*FAST, "--cache-clear"]), run_tier("fast, warm cache", FAST)]
    if not args.fast:
        runs.append(run_tier("full, warm cache", []))
    out = args.output or ROOT / "experiments" / "results" / f"test-tiers-cpu-{os.cpu_count()}core.json"
    results_io.write(out, {"script": "experiments/test_tiers.py", "date": results_io.now(),
                           "machine": results_io.machine(), "runs": runs})
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
