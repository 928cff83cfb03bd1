"""experiments/benchmark.py: the --quick smoke run writes valid JSON and markdown (no timing checks)."""
import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "benchmark.py"
SECTIONS = ("peak", "stages", "inference", "photos", "train", "scaling", "knobs", "regions")
TASKS = set(SECTIONS) | {"latency", "folder"}  # the regions section also times the CLI and a folder


def _load_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hdrjax_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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
    assert not [k for k, v in data["tasks"]["knobs"]["result"].items() if "error" in v]
    stages = data["tasks"]["stages"]["result"]["stages"]
    assert all(stages[s]["flops"] > 0 for s in ("dequantization", "linearization", "hallucination", "refinement"))
    assert data["tasks"]["scaling-2"]["result"]["collective_ops"] > 0  # the 2-device step is sharded
    md = (tmp_path / "benchmark-test.md").read_text()
    for heading in ("## Ceilings", "## Inference", "## Per-stage forward", "## Training step", "## Knobs",
                    "## Highlight-aware tiling", "## Data-parallel scaling", "## Regions engine"):
        assert heading in md
    assert "## Failures" not in md


def test_plan_covers_every_section_and_fresh_process_per_size():
    bench = _load_module()
    full = bench.make_plan(quick=False, gpu=False, sections=set(SECTIONS))
    names = [g.name for g in full]
    assert {t["task"] for g in full for t in g.tasks} == TASKS
    # Peak RSS per size needs one process per inference size; 12 MP only in extended CPU runs.
    assert sum(n.startswith("inference-") for n in names) == len(bench.SIZES_FULL) - 1
    extended = bench.make_plan(quick=False, gpu=False, sections={"inference"}, extended=True)
    assert len(extended) == len(bench.SIZES_FULL)
    assert len(bench.make_plan(quick=False, gpu=True, sections={"inference"})) == len(bench.SIZES_FULL)
    # Scaling: one process with 8 fake devices, meshes over 1, 2, 4, 8 of them.
    (scaling,) = [g for g in full if g.name == "scaling"]
    assert scaling.devices == 8 and [t["spec"]["devices"] for t in scaling.tasks] == [1, 2, 4, 8]
    quick = bench.make_plan(quick=True, gpu=False, sections=set(SECTIONS))
    assert len(quick) == 1 and quick[0].devices == 2
    assert bench.make_plan(quick=True, gpu=False, sections={"peak"})[0].tasks[0]["task"] == "peak"


def test_worker_env_sets_or_strips_the_fake_device_flag(monkeypatch):
    bench = _load_module()
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_cpu_foo=1")
    assert bench._worker_env(4, gpu=False)["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=4"
    assert bench._worker_env(1, gpu=False)["XLA_FLAGS"] == "--xla_cpu_foo=1"
    assert bench._worker_env(8, gpu=True)["XLA_FLAGS"] == "--xla_cpu_foo=1"
    assert bench.QUICK_FLAG in bench._worker_env(2, gpu=False, quick=True)["XLA_FLAGS"]


def test_helpers():
    bench = _load_module()
    # The port's time is interpolated through its quoted points.
    assert bench.port_seconds(1024 * 1024) == pytest.approx(17.4)
    assert 4.5 < bench.port_seconds(800 * 800) < 17.4
    # Warm-up proxies keep the CRF input shape (predict resizes to a 512 long side).
    for h, w in ((1080, 1920), (3000, 4000), (1024, 1024), (512, 512), (700, 900)):
        ph, pw = bench.proxy_shape(h, w, 512)
        assert min(ph, pw) >= min(512, h, w) and ph * pw <= h * w
        assert bench._crf_shape(ph, pw) == bench._crf_shape(h, w)
    assert bench.proxy_shape(3000, 4000, 512) == (512, 683)
    import numpy as np

    hdr = np.random.default_rng(0).lognormal(0, 1, (64, 64, 3)).astype(np.float32)
    ldr = bench.make_ldr(hdr, clip_percent=5.0)
    assert ldr.min() >= 0 and ldr.max() == 1.0
    assert np.allclose(ldr * 255, np.round(ldr * 255), atol=1e-4)  # 8-bit levels
    assert 0.03 < (ldr.max(axis=-1) >= 1.0).mean() < 0.08
    assert bench._finite({"a": [1.0, float("nan")], "b": float("inf")}) == {"a": [1.0, None], "b": None}
    md = bench.render_markdown({
        "tasks": {}, "environment": {}, "summary": {}, "machine": "m", "created": "now", "quick": True,
        "load_average": {"start": [0.0], "end": [0.0]}, "contended": False,
    })
    assert md.startswith("# hdrjax benchmark — m")


def test_regions_plan_times_engines_together_and_rss_apart():
    bench = _load_module()
    groups = bench.make_plan(quick=False, gpu=False, sections={"regions"})
    timing = [g for g in groups if g.tasks[0]["task"] == "regions" and not g.name.endswith("-rss")]
    assert all(g.tasks[0]["spec"]["engines"] == ["regions", "tiles", "one-pass"] for g in timing)
    rss = [g.name for g in groups if g.name.endswith("-rss")]
    # 24 MP: no one-pass run on a CPU (it needs ~31 GB); its regions and tiles runs are apart.
    assert "regions-MtTamNorth_24_MP-regions-rss" in rss and "regions-MtTamNorth_24_MP-one-pass-rss" not in rss
    assert {"regions-latency", "regions-folder"} <= {g.name for g in groups}
    gpu = bench.make_plan(quick=False, gpu=True, sections={"regions"})
    assert any(g.name == "regions-MtTamNorth_1920x1080" for g in gpu)


def test_readme_regions_block_is_generated_from_the_result_file():
    sys.path.insert(0, str(ROOT / "experiments"))
    import bench_regions

    results = ROOT / "experiments" / "results" / "benchmark-cpu-2core.json"
    data = json.loads(results.read_text())
    if not any(e.get("task") == "regions" for e in data["tasks"].values()):
        pytest.skip("the committed benchmark has no regions section yet")
    assert bench_regions.update_readme(ROOT / "README.md", results, check=True), (
        "README.md's regions block is stale: python experiments/bench_regions.py --readme")
