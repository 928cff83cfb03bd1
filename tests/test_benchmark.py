"""experiments/benchmark.py and its bench_* modules: the plan of worker processes, the result
file across runs (kept tasks, run records, retired results), the markdown, and the --quick
smoke run (no timing checks)."""
import copy
import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "benchmark.py"
RESULTS = ROOT / "experiments" / "results" / "benchmark-cpu-2core.json"
sys.path.insert(0, str(ROOT / "experiments"))

import bench_report  # noqa: E402
import bench_runner  # noqa: E402

SECTIONS = ("peak", "stages", "inference", "photos", "train", "scaling", "knobs", "regions")
TASKS = set(SECTIONS) | {"latency", "folder"}  # the regions section also times the CLI and a folder
RETIRED = ("layout", "valid_conv", "conv_grad", "donation", "remat", "tiles")


def _all_finite_numbers(o) -> bool:
    if isinstance(o, float):
        return math.isfinite(o)
    if isinstance(o, dict):
        return all(_all_finite_numbers(v) for v in o.values())
    if isinstance(o, list):
        return all(_all_finite_numbers(v) for v in o)
    return True


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out-dir", str(tmp_path), "--machine", "test"],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "benchmark-test.json").read_text())  # strict JSON: no NaN
    assert data["quick"] is True and data["machine"] == "test"
    assert _all_finite_numbers(data)
    for key in ("peak", "stages", "photos", "train-dequantization", "scaling-1", "scaling-2", "knobs",
                "inference-64x96", "regions-Desk_96px"):
        assert "result" in data["tasks"][key], data["tasks"][key].get("error")
    assert list(data["tasks"]["knobs"]["result"]) == ["bf16"]
    assert "error" not in data["tasks"]["knobs"]["result"]["bf16"]
    assert data["tasks"]["inference-64x96"]["result"]["config"]["engine"] == "tiles"
    stages = data["tasks"]["stages"]["result"]["stages"]
    assert all(stages[s]["flops"] > 0 for s in ("dequantization", "linearization", "hallucination", "refinement"))
    assert data["tasks"]["scaling-2"]["result"]["collective_ops"] > 0  # the 2-device step is sharded
    md = (tmp_path / "benchmark-test.md").read_text()
    for heading in ("## Ceilings", "## Inference", "## Per-stage forward", "## Training step", "## Knobs",
                    "## Highlight-aware tiling", "## Data-parallel scaling", "## Regions engine"):
        assert heading in md
    assert "## Failures" not in md
    # --render rewrites the same markdown from the JSON alone.
    (tmp_path / "benchmark-test.md").unlink()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--render", str(tmp_path / "benchmark-test.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "benchmark-test.md").read_text() == md


def test_plan_covers_every_section_and_fresh_process_per_size():
    full = bench_runner.make_plan(quick=False, gpu=False, sections=set(SECTIONS))
    names = [g.name for g in full]
    assert {t["task"] for g in full for t in g.tasks} == TASKS
    assert set(bench_runner.TASKS) == TASKS
    # Peak RSS per size needs one process per inference size; 12 MP only in extended CPU runs.
    assert sum(n.startswith("inference-") for n in names) == len(bench_runner.SIZES_FULL) - 1
    extended = bench_runner.make_plan(quick=False, gpu=False, sections={"inference"}, extended=True)
    assert len(extended) == len(bench_runner.SIZES_FULL)
    assert len(bench_runner.make_plan(quick=False, gpu=True, sections={"inference"})) == len(bench_runner.SIZES_FULL)
    # Scaling: one process with 8 fake devices, meshes over 1, 2, 4, 8 of them.
    (scaling,) = [g for g in full if g.name == "scaling"]
    assert scaling.devices == 8 and [t["spec"]["devices"] for t in scaling.tasks] == [1, 2, 4, 8]
    quick = bench_runner.make_plan(quick=True, gpu=False, sections=set(SECTIONS))
    assert len(quick) == 1 and quick[0].devices == 2
    assert bench_runner.make_plan(quick=True, gpu=False, sections={"peak"})[0].tasks[0]["task"] == "peak"
    # The knobs section measures bf16 only: the other knobs were retired.
    (knobs,) = [g for g in full if g.name == "knobs"]
    assert set(knobs.tasks[0]["spec"]) == {"bf16", "quick"}


def test_every_task_function_exists():
    import importlib

    for module, function in bench_runner.TASKS.values():
        assert callable(getattr(importlib.import_module(module), function))


def test_worker_env_sets_or_strips_the_fake_device_flag(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_cpu_foo=1")
    env = bench_runner.worker_env
    assert env(4, gpu=False)["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=4"
    assert env(1, gpu=False)["XLA_FLAGS"] == "--xla_cpu_foo=1"
    assert env(8, gpu=True)["XLA_FLAGS"] == "--xla_cpu_foo=1"
    assert bench_runner.QUICK_FLAG in env(2, gpu=False, quick=True)["XLA_FLAGS"]


def test_helpers():
    import benchmark
    import bench_inference
    import bench_measure
    import numpy as np

    # The port's time is interpolated through its quoted points.
    assert bench_report.port_seconds(1024 * 1024) == pytest.approx(17.4)
    assert 4.5 < bench_report.port_seconds(800 * 800) < 17.4
    # Warm-up proxies keep the CRF input shape (predict resizes to a 512 long side).
    for h, w in ((1080, 1920), (3000, 4000), (1024, 1024), (512, 512), (700, 900)):
        ph, pw = bench_inference.proxy_shape(h, w, 512)
        assert min(ph, pw) >= min(512, h, w) and ph * pw <= h * w
        assert bench_inference.crf_shape(ph, pw) == bench_inference.crf_shape(h, w)
    assert bench_inference.proxy_shape(3000, 4000, 512) == (512, 683)
    hdr = np.random.default_rng(0).lognormal(0, 1, (64, 64, 3)).astype(np.float32)
    ldr = bench_measure.make_ldr(hdr, clip_percent=5.0)
    assert ldr.min() >= 0 and ldr.max() == 1.0
    assert np.allclose(ldr * 255, np.round(ldr * 255), atol=1e-4)  # 8-bit levels
    assert 0.03 < (ldr.max(axis=-1) >= 1.0).mean() < 0.08
    assert benchmark.finite({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None], "b": None}
    md = bench_report.render_markdown({
        "tasks": {}, "environment": {}, "summary": {}, "machine": "m", "created": "now", "quick": True,
        "load_average": {"start": [0.0], "end": [0.0]}, "contended": False,
    })
    assert md.startswith("# hdrjax benchmark — m")


def test_unknown_section_is_one_error_line(capsys):
    import benchmark

    from hdrjax import cli

    assert benchmark.main(["--only", "peak,conv_grad"]) == cli.ERROR_EXIT == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --only: unknown section(s) conv_grad") and err.count("\n") == 1


def test_regions_plan_times_engines_together_and_rss_apart():
    groups = bench_runner.make_plan(quick=False, gpu=False, sections={"regions"})
    timing = [g for g in groups if g.tasks[0]["task"] == "regions" and not g.name.endswith("-rss")]
    assert all(g.tasks[0]["spec"]["engines"] == ["regions", "tiles", "one-pass"] for g in timing)
    rss = [g.name for g in groups if g.name.endswith("-rss")]
    # 24 MP: no one-pass run on a CPU (it needs ~31 GB); its regions and tiles runs are apart.
    assert "regions-MtTamNorth_24_MP-regions-rss" in rss and "regions-MtTamNorth_24_MP-one-pass-rss" not in rss
    assert {"regions-latency", "regions-folder"} <= {g.name for g in groups}
    gpu = bench_runner.make_plan(quick=False, gpu=True, sections={"regions"})
    assert any(g.name == "regions-MtTamNorth_1920x1080" for g in gpu)


# ------------------------------------------------------------------ the committed result file


def test_committed_markdown_is_rendered_from_the_committed_json():
    data = json.loads(RESULTS.read_text())
    assert bench_report.render_markdown(data) == RESULTS.with_suffix(".md").read_text(), (
        "experiments/results/benchmark-cpu-2core.md is stale: python experiments/benchmark.py --render "
        "experiments/results/benchmark-cpu-2core.json")


def test_committed_file_keeps_retired_results_with_their_run_and_commit():
    data = json.loads(RESULTS.read_text())
    retired = data["retired"]
    assert tuple(retired["results"]) == RETIRED
    assert retired["code_commit"] in retired["note"]
    runs = bench_report.runs_of(data)
    for name, entry in retired["results"].items():
        assert entry["from_run"] in runs, name
        assert entry["recorded_in"].startswith("git show ")
    for entry in data["tasks"].values():  # every kept task names a run the file describes
        assert (entry.get("from_run") or data["created"]) in runs
    # The rendered markdown says which commit has the retired code, and each retired row's run.
    md = bench_report.render_markdown(data)
    assert "## Retired one-off measurements" in md and "commit 142d0c4" in md
    # Recomputing the summary from the tasks gives the stored one (the report code is unchanged).
    again = copy.deepcopy(data)
    assert json.loads(json.dumps(bench_report.summarize(again))) == data["summary"]


def test_a_partial_run_keeps_other_sections_runs_and_retired_results():
    old = json.loads(RESULTS.read_text())
    new_tasks = {"peak": {"task": "peak", "key": "peak", "result": {}}}
    kept = bench_runner.merge_earlier(old, new_tasks, {"peak"}, partial=True, keep_same_sections=False)
    assert "peak" not in kept["tasks"] and "stages" in kept["tasks"] and "regions-Desk" in kept["tasks"]
    assert kept["retired"] == old["retired"]
    used = {e["from_run"] for e in kept["tasks"].values()} | {e["from_run"] for e in old["retired"]["results"].values()}
    assert set(kept["runs"]) == used
    assert kept["tasks"]["regions-Desk"]["from_run"] == old["created"]  # tasks of the latest run get its date
    assert kept["runs"][old["created"]]["environment"] == old["environment"]
    # A full run keeps no earlier task, but still the retired results and their runs.
    full = bench_runner.merge_earlier(old, new_tasks, set(SECTIONS), partial=False, keep_same_sections=False)
    assert full["tasks"] == {} and full["retired"] == old["retired"]
    assert set(full["runs"]) == {e["from_run"] for e in old["retired"]["results"].values()}
