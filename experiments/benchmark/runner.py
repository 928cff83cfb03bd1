"""How a benchmark run is carried out: the plan of worker processes, running them, and the
result file that accumulates runs.

The parent process (`python -m experiments.benchmark`) stays free of jax arrays: every measurement
runs in a fresh worker process (`python -m experiments.benchmark --worker TASKS_JSON RESULT_JSON`) whose
environment is set before jax is imported there — the fake-device count for the scaling
section, the -O0 flag of the smoke run — and whose peak RSS is that of its own tasks. A
worker rewrites its result file after each task, so a crash or timeout keeps what finished.

A result file (`experiments/results/benchmark-<machine>.json`) can hold tasks of several
runs: a run of some sections (`--only`, `--groups`) keeps the other tasks of the earlier
file, each with its `from_run` date, and `runs` keeps the machine, load and command of every
run a kept task comes from. `retired` holds the results of one-off measurements whose code
was removed; it is carried over unchanged by every later run.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

from hdrjax.errors import HdrjaxError
from hdrjax.models import build

from .. import results_io
from . import regions

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository: workers start there

STAGES = build.NETWORKS
TRAIN_STAGES = build.TRAINING_STAGES

# task name -> (module of this package, function); imported in the worker only, so the parent
# imports no task code.
TASKS = {
    "peak": ("roofline", "task_peak"),
    "stages": ("roofline", "task_stages"),
    "knobs": ("roofline", "task_knobs"),
    "inference": ("inference", "task_inference"),
    "photos": ("inference", "task_photos"),
    "train": ("train", "task_train"),
    "scaling": ("train", "task_scaling"),
    "regions": ("regions", "task_regions"),
    "latency": ("regions", "task_latency"),
    "folder": ("regions", "task_folder"),
}
SECTIONS = ("peak", "stages", "inference", "photos", "train", "scaling", "knobs", "regions")

# Environment variables that change BLAS / XLA speed, recorded with the results.
ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "NVPL_BLAS_DEBUG_CPU_TYPE", "XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64",
            "JAX_DEFAULT_MATMUL_PRECISION", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")
DEVICE_FLAG = "--xla_force_host_platform_device_count"
QUICK_FLAG = "--xla_backend_optimization_level=0"

SIZES_FULL = ((512, 512), (1024, 1024), (1080, 1920), (3000, 4000))
SIZES_QUICK = ((64, 96),)
# Real photographs of the photos section: the default CPU set, and the extended one (the four
# OpenEXR photos and three panoramas with a sun, a bright sky and indoor lights).
PHOTOS_DEFAULT = ["real_hdr/MtTamNorth.exr", "real_hdr/Desk.exr"]
PHOTOS_EXTENDED = [
    "real_hdr/CandleGlass.exr", "real_hdr/Cannon.exr", "real_hdr/Desk.exr", "real_hdr/MtTamNorth.exr",
    "train_hdr/blouberg_sunrise_2_1k.hdr", "train_hdr/dresden_square_1k.hdr", "train_hdr/interior.exr",
]


class BenchmarkError(HdrjaxError):
    """A benchmark option that cannot work (the message names it)."""


# ============================================================================ worker side


def task_function(task: str):
    """The function that measures `task`, imported by name (a worker imports only its tasks' modules)."""
    module, function = TASKS[task]
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)


def run_tasks(tasks: list[dict], result_path: pathlib.Path) -> int:
    """Worker entry: run tasks in order, rewriting result_path after each (a crash keeps the rest)."""
    from . import measure

    measure.setup_worker()
    results = []
    failed = 0
    for task in tasks:
        t0 = time.perf_counter()
        try:
            entry = {"task": task["task"], "key": task["key"], "result": task_function(task["task"])(task["spec"])}
        except Exception as e:
            failed += 1
            entry = {"task": task["task"], "key": task["key"], "error": f"{type(e).__name__}: {e}"[:1000],
                     "traceback": traceback.format_exc()[-3000:]}
        entry["wall_s"] = time.perf_counter() - t0
        results.append(entry)
        results_io.write_json(result_path, results)
        print(f"[benchmark] {task['key']}: {'ok' if 'result' in entry else 'FAILED'} in {entry['wall_s']:.1f}s",
              file=sys.stderr, flush=True)
    return 1 if failed else 0


# ============================================================================== the plan


@dataclasses.dataclass
class Group:
    """Tasks that run in one worker process with one environment."""

    name: str
    tasks: list[dict]
    devices: int = 1  # fake CPU devices (ignored on GPU)
    timeout_s: float = 600.0


def make_task(task: str, key: str, **spec) -> dict:
    return {"task": task, "key": key, "spec": spec}


def make_plan(quick: bool, gpu: bool, sections: set[str], extended: bool = False, workdir: str = "") -> list[Group]:
    """The worker processes of one benchmark run: sizes, repeats and budgets per task."""
    groups: list[Group] = []
    regions_groups = (regions.plan_groups(Group, make_task, quick=quick, gpu=gpu,
                                         workdir=workdir or tempfile.gettempdir())
               if "regions" in sections else [])
    if quick:
        # One process (two fake devices for the scaling task), tiny shapes: a smoke test.
        q = {"quick": True}
        tasks = []
        if "peak" in sections:
            tasks.append(make_task("peak", "peak", **q))
        if "stages" in sections:
            tasks.append(make_task("stages", "stages", size=[32, 32], small=None, crf_size=[32, 32], repeats=1,
                                   min_repeats=1, budget_s=1.0, **q))
        if "inference" in sections:
            for h, w in SIZES_QUICK:
                tasks.append(make_task("inference", f"inference-{h}x{w}", height=h, width=w, tile=64, overlap=32,
                                       repeats=1, budget_s=1.0, **q))
        if "photos" in sections:
            tasks.append(make_task("photos", "photos", files=PHOTOS_DEFAULT[:1], max_side=96, tile=64, overlap=32,
                                   repeats=1, **q))
        if "train" in sections:
            tasks.append(make_task("train", "train-dequantization", stage="dequantization", batch=2, patch=32,
                                   repeats=1, budget_s=1.0, try_largest=False, largest_budget_s=0,
                                   compare_kernel_grad=True, **q))
        if "scaling" in sections:
            for n in (1, 2):
                tasks.append(make_task("scaling", f"scaling-{n}", devices=n, stage="dequantization", batch=2,
                                       patch=32, repeats=1, budget_s=1.0, **q))
        if "knobs" in sections:
            tasks.append(make_task("knobs", "knobs", bf16={"tile": 64, "repeats": 1, "budget_s": 1.0,
                                                           "stages": ["dequantization"]}, **q))
        tasks += [t for g in regions_groups for t in g.tasks]
        if tasks:
            groups.append(Group("quick", tasks, devices=2, timeout_s=900))
        return groups

    f = {"quick": False}
    # CPU defaults fit ~10 minutes on 2 cores; `extended` (always on GPU) adds the 12 MP image,
    # the panoramas, the VGG stages' train steps at 256² and more repeats.
    ext = extended or gpu
    if "peak" in sections or "stages" in sections:
        tasks = []
        if "peak" in sections:
            tasks.append(make_task("peak", "peak", **f))
        if "stages" in sections:
            tasks.append(make_task("stages", "stages", size=[1024, 1024], small=[128, 128], crf_size=[512, 512],
                                   linearization_full=ext, repeats=5, min_repeats=1,
                                   budget_s=4.0 if gpu else 8.0, **f))
        groups.append(Group("peak-stages", tasks, timeout_s=900))
    if "inference" in sections:
        sizes = SIZES_FULL if ext else SIZES_FULL[:3]
        # Seconds of timed runs after the warm-up (at least one run whatever the budget).
        budgets = ({512: 10.0, 1024: 10.0, 1080: 10.0, 3000: 10.0} if gpu
                   else {512: 16.0, 1024: 0.0, 1080: 0.0, 3000: 0.0})
        if extended and not gpu:
            budgets = {512: 20.0, 1024: 60.0, 1080: 60.0, 3000: 0.0}
        for h, w in sizes:
            # A fresh process per size: peak RSS / device memory is that size's.
            groups.append(Group(f"inference-{h}x{w}", [make_task(
                "inference", f"inference-{h}x{w}", height=h, width=w, tile=512, overlap=128, repeats=5,
                budget_s=budgets[h], **f)], timeout_s=1800))
    if "photos" in sections:
        files = PHOTOS_EXTENDED if ext else PHOTOS_DEFAULT
        groups.append(Group("photos", [make_task("photos", "photos", files=files, tile=512, overlap=128,
                                                 repeats=2 if gpu else 1, **f)], timeout_s=1800))
    if "train" in sections:
        for stage in TRAIN_STAGES:
            cheap = stage in ("dequantization", "linearization")
            # CPU default: the Hallucination-Net steps (≈ 2.7 TFLOP at 256², batch 8) on 128²
            # patches to stay within ~10 minutes; --extended / GPU: 256² as the reference.
            patch = 256 if (ext or cheap) else 128
            task = make_task("train", f"train-{stage}", stage=stage, batch=8, patch=patch, repeats=5,
                             budget_s=6.0 if gpu else (3.0 if cheap else 0.0),
                             # CPU, VGG stages: one timed step and no warm-up (a 10-40 s step; the
                             # allocations a warm-up would absorb are a small part of it).
                             warmup=gpu or ext or cheap,
                             try_largest=gpu or extended, largest_budget_s=60.0 if gpu else 120.0,
                             # Deq's ratio is ~0.9 (its thin convs keep XLA's gradient): GPU/extended only.
                             compare_kernel_grad=stage in ("linearization", "hallucination") or gpu or ext, **f)
            # One process per stage: a step's buffers (≈ 7 GB for joint at 256²) are freed with it.
            groups.append(Group(task["key"], [task], timeout_s=1800))
    if "scaling" in sections:
        # One process with 8 fake CPU devices (the flag must precede the jax import); meshes
        # over the first 1, 2, 4, 8 of them. On a GPU machine: its real devices.
        tasks = [make_task("scaling", f"scaling-{n}", devices=n, stage="dequantization", batch=8,
                           patch=64 if not gpu else 256, repeats=5, budget_s=3.0, **f) for n in (1, 2, 4, 8)]
        groups.append(Group("scaling", tasks, devices=8, timeout_s=900))
    if "knobs" in sections:
        groups.append(Group("knobs", [make_task(
            "knobs", "knobs", bf16={"tile": 512 if gpu else 256, "repeats": 3, "budget_s": 3.0,
                                    "stages": list(STAGES) if ext else ["hallucination"]}, **f)], timeout_s=1200))
    # Last: the regions section (photos through the three engines, fresh processes).
    groups += regions_groups
    return groups


# ============================================================================ parent side


def worker_env(devices: int, gpu: bool, quick: bool = False) -> dict:
    """Environment of a worker: the fake-device flag set (CPU) or removed, before jax imports."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    if not gpu and devices > 1:
        flags.append(f"{DEVICE_FLAG}={devices}")
    if quick and not gpu and not any(f.startswith(QUICK_FLAG.split("=")[0]) for f in flags):
        # The smoke run is compile-bound and its timings mean nothing: halve the compile time.
        flags.append(QUICK_FLAG)
    env["XLA_FLAGS"] = " ".join(flags)
    if not env["XLA_FLAGS"]:
        del env["XLA_FLAGS"]
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_group(group: Group, gpu: bool, workdir: pathlib.Path, log, quick: bool = False) -> list[dict]:
    """Run one worker process; returns its task entries (a timeout or crash becomes an error entry)."""
    tasks_path = workdir / f"{group.name}.tasks.json"
    result_path = workdir / f"{group.name}.result.json"
    results_io.write_json(tasks_path, group.tasks)
    cmd = [sys.executable, "-m", "experiments.benchmark", "--worker", str(tasks_path), str(result_path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=worker_env(group.devices, gpu, quick), cwd=str(ROOT), timeout=group.timeout_s,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail, rc = proc.stdout[-4000:], proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        tail, rc = out[-4000:] + f"\n[benchmark] timed out after {group.timeout_s:.0f}s", -9
    log(f"{group.name}: exit {rc} after {time.perf_counter() - t0:.1f}s")
    entries = json.loads(result_path.read_text()) if result_path.exists() else []
    done = {e["key"] for e in entries}
    for t in group.tasks:
        if t["key"] not in done:
            entries.append({"task": t["task"], "key": t["key"], "error": f"worker exited with {rc} before this task "
                            f"finished", "log_tail": tail})
    for e in entries:
        if "error" in e:
            e.setdefault("log_tail", tail)
    return entries


def environment() -> dict:
    """What the numbers depend on: CPU, memory, threads, BLAS, versions, environment variables."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ENV_KEYS if os.environ.get(k) is not None},
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = next((row for row in text.splitlines() if row.startswith("flags")), "")
        info["cpu_simd"] = sorted({f for f in flags.split() if f.startswith(("avx", "fma", "amx", "sse4"))})
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = psutil.virtual_memory().total / 2 ** 30
    except ImportError:
        pass
    versions = {}
    for mod in ("numpy", "jax", "jaxlib", "flax", "optax"):
        try:
            versions[mod] = __import__(mod).__version__  # importing jax here is fine: no arrays made
        except Exception:
            pass
    info["versions"] = versions
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy_blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def detect_gpu() -> bool:
    """Whether jax's default backend is a GPU (checked in a subprocess: the parent makes no jax arrays)."""
    code = "import jax; print(jax.default_backend())"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=worker_env(1, False)).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out) and out[-1] in ("gpu", "cuda", "rocm")


def machine_name(env: dict, gpu: bool, peak: dict | None) -> str:
    if gpu and peak and peak.get("device"):
        kind = peak["device"].lower()
    else:
        kind = f"cpu-{env.get('cpu_affinity') or env.get('cpu_count')}core"
    return "".join(c if c.isalnum() else "-" for c in kind).strip("-").replace("--", "-")


# ===================================================================== the result file


def section_of(entry: dict) -> str:
    task = entry.get("task", "")
    return "regions" if task in ("regions", "latency", "folder") else task


def run_record(results: dict) -> dict:
    """What a run's numbers depend on, kept in `runs` while any of its tasks stays in the file."""
    keys = ("command", "quick", "extended", "device", "gpu", "environment", "load_average", "contended", "wall_s")
    return {k: results.get(k) for k in keys}


def merge_earlier(old: dict, tasks: dict, sections: set[str], *, partial: bool, keep_same_sections: bool) -> dict:
    """What a new result file keeps of the earlier one (each kept task keeps its `from_run` date).

    A partial run (--only, --groups) keeps the tasks of other sections; with
    keep_same_sections (a --groups rerun) every task not rerun. The retired one-off results
    are always carried over. Returns {"tasks", "runs", "retired"}: the kept tasks, the records
    of the runs they and the retired results come from, and the retired results.
    """
    old_runs = dict(old.get("runs") or {})
    if old.get("created") and old["created"] not in old_runs:  # a file written before `runs` existed
        old_runs[old["created"]] = run_record(old)
    kept = {}
    for key, entry in (old.get("tasks") or {}).items() if partial else ():
        if key not in tasks and (keep_same_sections or section_of(entry) not in sections):
            entry.setdefault("from_run", old.get("created"))
            kept[key] = entry
    used = {e["from_run"] for e in kept.values()} | {
        e.get("from_run") for e in (old.get("retired") or {}).get("results", {}).values()}
    return {"tasks": kept, "runs": {r: v for r, v in old_runs.items() if r in used},
            "retired": old.get("retired")}


def load_earlier(json_path: pathlib.Path) -> dict:
    try:
        return json.loads(json_path.read_text())
    except (OSError, ValueError):
        return {}
