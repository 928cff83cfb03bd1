"""Speed and memory of hdrjax: inference, per-stage roofline, training, scaling and engines.

    python -m experiments.benchmark                      # full run (~10 min on a 2-core CPU)
    python -m experiments.benchmark --quick              # smoke test: tiny sizes, one process
    python -m experiments.benchmark --only peak,stages   # some sections only
    python -m experiments.benchmark --plan cpu           # the worker processes a run would start
    python -m experiments.benchmark --render experiments/results/benchmark-cpu-2core.json [--check]
    bash experiments/gpu/benchmark.sh                    # the same on one GPU, offline

From the repository root (the worker processes are started as `python -m experiments.benchmark`).

Writes `experiments/results/benchmark-<machine>.json` (every number, the environment and
load average of each run) and `benchmark-<machine>.md` (the tables; `--render` rewrites it
from the JSON alone). Sections, each measured in fresh worker processes:

* peak, stages, knobs   roofline.py: the machine's matmul and bandwidth ceilings, each
                        network's one-pass forward against them, bf16 compute.
* inference, photos     inference.py: the tiles engine end to end at the PyTorch port's
                        image sizes, and its tile skipping on real photos.
* train, scaling        train.py: each stage's train step; the same step sharded over 1, 2,
                        4, 8 devices.
* regions               regions.py: the default engine against tiles and one pass on photos,
                        first-image latency, folder throughput.

(all in experiments/benchmark/). How a run is carried out and how the result file keeps
earlier runs: runner.py; the markdown: report.py; the helpers every task measures with:
measure.py; the README's tables from the result files: experiments/readme_tables.py. Every
ratio in the tables is taken within one run (and, for the roofline, within one process), so a slower or busier machine
shifts both sides; absolute times from a loaded machine are marked as contended.

One-off knob measurements (NCHW layout, the up-block's VALID conv, XLA's conv weight
gradient, buffer donation, remat policies, tile batching and tile size) were retired: their
results stay in the result file under `retired`; their code is in the repository's history,
experiments/benchmark.py at commit 142d0c4.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import tempfile
import time

from hdrjax import cli

from .. import results_io
from . import report as bench_report
from . import runner as bench_runner

RESULTS = bench_runner.ROOT / "experiments" / "results"


def read_result_file(json_path: pathlib.Path) -> dict:
    try:
        return json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise bench_runner.BenchmarkError(f"{json_path}: not a readable benchmark result file ({e})") from e


def render(json_path: pathlib.Path) -> pathlib.Path:
    """Rewrite the .md beside a result file from the JSON alone (no measurement)."""
    md_path = json_path.with_suffix(".md")
    results_io.write_text(md_path, bench_report.render_markdown(read_result_file(json_path)))
    return md_path


def stale_parts(json_path: pathlib.Path) -> list[str]:
    """What of a result file the report code would now write differently: its stored summary
    (recomputed from its tasks) and the .md beside it."""
    results = read_result_file(json_path)
    stale = []
    stored = {k: v for k, v in results.items() if k != "summary"}
    if json.loads(results_io.to_json(bench_report.summarize(stored))) != results.get("summary"):
        stale.append("summary")
    md_path = json_path.with_suffix(".md")
    if not md_path.is_file() or md_path.read_text() != bench_report.render_markdown(results):
        stale.append(md_path.name)
    return stale


def plan(kind: str, args) -> list[dict]:
    """The worker processes a run on a `kind` ("cpu" or "gpu") machine would start, as JSON
    values; every task's function is looked up, so a plan that names a missing one fails here."""
    sections = parse_sections(args.only)
    out = []
    for g in bench_runner.make_plan(args.quick, kind == "gpu", sections, extended=args.extended):
        env = bench_runner.worker_env(g.devices, kind == "gpu", args.quick)
        tasks = []
        for t in g.tasks:
            fn = bench_runner.task_function(t["task"])
            tasks.append({**t, "function": f"{fn.__module__}.{fn.__name__}"})
        out.append({"name": g.name, "devices": g.devices, "timeout_s": g.timeout_s,
                    "xla_flags": env.get("XLA_FLAGS", ""), "tasks": tasks})
    return out


def parse_sections(only: str) -> set[str]:
    sections = {s.strip() for s in only.split(",") if s.strip()}
    unknown = sections - set(bench_runner.SECTIONS)
    if unknown:
        raise bench_runner.BenchmarkError(f"--only: unknown section(s) {', '.join(sorted(unknown))}; "
                                          f"known: {', '.join(bench_runner.SECTIONS)}")
    return sections


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes in one process (smoke test, not a measurement)")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where benchmark-<machine>.json/.md go")
    parser.add_argument("--machine", default=None, help="name in the output files (default: from the device)")
    parser.add_argument("--only", default=",".join(bench_runner.SECTIONS),
                        help="comma-separated sections; the result file keeps the other sections of an earlier run")
    parser.add_argument("--groups", default="",
                        help="comma-separated prefixes: run only the worker processes whose names start with one "
                             "(e.g. regions-MtTamNorth_24_MP); the result file keeps every other task")
    parser.add_argument("--extended", action="store_true",
                        help="CPU: add the 12 MP image, the panoramas, the VGG stages' train steps at 256², "
                             "the largest batch and more repeats (~25 min on 2 cores; always on for a GPU)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds for the whole run: later sections are skipped (and said so) past it")
    parser.add_argument("--render", metavar="RESULT_JSON", default=None,
                        help="only rewrite the markdown beside RESULT_JSON from it (no measurement)")
    parser.add_argument("--check", action="store_true",
                        help="with --render: write nothing, exit 1 if the markdown or the stored summary is not "
                             "what the JSON gives")
    parser.add_argument("--plan", choices=("cpu", "gpu"), default=None,
                        help="print the worker processes a run on this kind of machine would start (JSON) and "
                             "measure nothing; with --quick, --extended, --only")
    parser.add_argument("--worker", nargs=2, metavar=("TASKS_JSON", "RESULT_JSON"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(args, argv) -> int:
    sections = parse_sections(args.only)

    def log(msg):
        print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_start = os.getloadavg()
    gpu = bench_runner.detect_gpu()
    env = bench_runner.environment()
    log(f"{'GPU' if gpu else 'CPU'} run, {'quick' if args.quick else 'full'}; load average {load_start[0]:.2f}")
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hdrjax-bench-") as tmp:
        groups = bench_runner.make_plan(args.quick, gpu, sections, extended=args.extended, workdir=tmp)
        prefixes = [p.strip() for p in args.groups.split(",") if p.strip()]
        if prefixes:
            groups = [g for g in groups if any(g.name.startswith(p) for p in prefixes)]
            if not groups:
                raise bench_runner.BenchmarkError(f"--groups {args.groups}: no worker process matches")
        for g in groups:
            if args.time_limit:
                left = args.time_limit - (time.perf_counter() - started) - 10.0
                if left < 30.0:
                    log(f"{g.name}: skipped, --time-limit {args.time_limit:.0f}s reached")
                    entries += [{"task": t["task"], "key": t["key"], "skipped": "time limit"} for t in g.tasks]
                    continue
                g.timeout_s = min(g.timeout_s, left)
            entries += bench_runner.run_group(g, gpu, pathlib.Path(tmp), log, quick=args.quick)
    tasks = {e["key"]: e for e in entries}
    load_end = os.getloadavg()
    peak = tasks.get("peak", {}).get("result")
    machine = args.machine or ("quick" if args.quick else bench_runner.machine_name(env, gpu, peak))
    out = pathlib.Path(args.out_dir)
    json_path, md_path = out / f"benchmark-{machine}.json", out / f"benchmark-{machine}.md"
    partial = bool(set(bench_runner.SECTIONS) - sections) or bool(prefixes)
    earlier = bench_runner.merge_earlier(bench_runner.load_earlier(json_path), tasks, sections, partial=partial,
                                         keep_same_sections=bool(prefixes))
    if earlier["tasks"]:
        log(f"kept {len(earlier['tasks'])} task(s) of earlier runs from {json_path}")
        tasks = {**earlier["tasks"], **tasks}
    cores = env.get("cpu_affinity") or env.get("cpu_count") or 1
    results = {
        "machine": machine,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "extended": args.extended or gpu,
        "command": ["python -m experiments.benchmark"] + (argv if argv is not None else sys.argv[1:]),
        "device": (peak or tasks.get("peak", {}).get("result") or {}).get("device", "gpu" if gpu else "cpu"),
        "gpu": gpu,
        "environment": env,
        "load_average": {"start": list(load_start), "end": list(load_end)},
        # A busy machine (other processes on our cores) inflates every absolute time.
        "contended": (not gpu) and max(load_start[0], load_end[0]) > 1.25 * cores,
        "wall_s": None,
        "port": bench_report.PORT,
        "runs": earlier["runs"],
        "tasks": tasks,
    }
    if earlier["retired"]:
        results["retired"] = earlier["retired"]
    results["summary"] = bench_report.summarize(results)
    results["wall_s"] = time.perf_counter() - started
    results_io.write_json(json_path, results, indent=1)
    results_io.write_text(md_path, bench_report.render_markdown(json.loads(json_path.read_text())))
    failed = [e["key"] for e in entries if "error" in e]
    log(f"wrote {json_path} and {md_path} in {results['wall_s']:.0f}s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return bench_runner.run_tasks(json.loads(pathlib.Path(args.worker[0]).read_text()),
                                      pathlib.Path(args.worker[1]))
    try:
        if args.plan:
            print(json.dumps(plan(args.plan, args), indent=1))
            return 0
        if args.render and args.check:
            stale = stale_parts(pathlib.Path(args.render))
            if stale:
                raise bench_runner.BenchmarkError(f"{args.render}: {' and '.join(stale)} not what "
                                                  "experiments/benchmark/report.py makes of its tasks")
            return 0
        if args.render:
            print(f"wrote {render(pathlib.Path(args.render))}")
            return 0
        return run(args, argv)
    except bench_runner.BenchmarkError as e:
        return cli.fail(e)


if __name__ == "__main__":
    sys.exit(main())
