"""`python -m experiments.benchmark`, run as the README documents it: the plan of worker
processes (`--plan`), the committed result file and its markdown (`--render --check`), a
one-line error for an unknown section, and the --quick smoke run with a partial rerun that
keeps the other sections (no timing checks). Nothing is imported from experiments/."""
import json
import math
import pathlib

import pytest

from hdrjax import cli

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "results"
BENCHMARK = "experiments.benchmark"
SECTIONS = ("peak", "stages", "inference", "photos", "train", "scaling", "knobs", "regions")
TASKS = set(SECTIONS) | {"latency", "folder"}  # the regions section also times the CLI and a folder
RETIRED = ("layout", "valid_conv", "conv_grad", "donation", "remat", "tiles")
# What the caller's XLA_FLAGS become in a worker: the fake-device flag is the plan's own.
CALLER_FLAGS = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_cpu_foo=1"}


def _all_finite_numbers(o) -> bool:
    if isinstance(o, float):
        return math.isfinite(o)
    if isinstance(o, dict):
        return all(_all_finite_numbers(v) for v in o.values())
    if isinstance(o, list):
        return all(_all_finite_numbers(v) for v in o)
    return True


@pytest.fixture(scope="module")
def plan(run_module):
    """plan("cpu", "--quick", ...): the worker processes a run would start, as --plan prints them."""

    def get(kind, *args):
        proc = run_module(BENCHMARK, "--plan", kind, *args, extra_env=CALLER_FLAGS, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    return get


@pytest.fixture(scope="module")
def committed():
    return json.loads((RESULTS / "benchmark-cpu-2core.json").read_text())


def test_cpu_plan_covers_every_section_in_fresh_processes(plan):
    full = plan("cpu")
    names = [g["name"] for g in full]
    assert {t["task"] for g in full for t in g["tasks"]} == TASKS
    # Every task names the function that measures it (looked up by --plan, so it exists).
    assert all(t["function"].startswith("experiments.benchmark.") for g in full for t in g["tasks"])
    # Peak RSS per size needs one process per inference size; 12 MP only in extended runs.
    assert sum(n.startswith("inference-") for n in names) == 3
    # Scaling: one process with 8 fake devices, meshes over 1, 2, 4, 8 of them.
    (scaling,) = [g for g in full if g["name"] == "scaling"]
    assert scaling["devices"] == 8 and [t["spec"]["devices"] for t in scaling["tasks"]] == [1, 2, 4, 8]
    assert scaling["xla_flags"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=8"
    assert {g["xla_flags"] for g in full if g["devices"] == 1} == {"--xla_cpu_foo=1"}
    # The knobs section measures bf16 only: the other knobs were retired.
    (knobs,) = [g for g in full if g["name"] == "knobs"]
    assert set(knobs["tasks"][0]["spec"]) == {"bf16", "quick"}
    # Regions: engines timed together in one process per photo, peak RSS in one process per engine.
    timing = [g for g in full if g["tasks"][0]["task"] == "regions" and not g["name"].endswith("-rss")]
    assert timing and all(g["tasks"][0]["spec"]["engines"] == ["regions", "tiles", "one-pass"] for g in timing)
    rss = [n for n in names if n.endswith("-rss")]
    # 24 MP: no one-pass run on a CPU (it needs ~31 GB); its regions and tiles runs are apart.
    assert "regions-MtTamNorth_24_MP-regions-rss" in rss and "regions-MtTamNorth_24_MP-one-pass-rss" not in rss
    assert {"regions-latency", "regions-folder"} <= set(names)


def test_quick_and_gpu_plans(plan):
    quick = plan("cpu", "--quick")
    assert len(quick) == 1 and quick[0]["devices"] == 2
    assert "--xla_backend_optimization_level=0" in quick[0]["xla_flags"]  # the smoke run compiles at -O0
    assert quick[0]["tasks"][0]["task"] == "peak"
    gpu = plan("gpu", "--only", "inference,regions")
    assert sum(g["name"].startswith("inference-") for g in gpu) == 4  # the 12 MP image too
    assert any(g["name"] == "regions-MtTamNorth_1920x1080" for g in gpu)
    assert {g["xla_flags"] for g in gpu} == {"--xla_cpu_foo=1"}  # no fake devices on a GPU


def test_unknown_section_is_one_error_line(run_module):
    proc = run_module(BENCHMARK, "--only", "peak,conv_grad", timeout=300)
    assert proc.returncode == cli.ERROR_EXIT == 1
    assert proc.stderr.startswith("error: --only: unknown section(s) conv_grad") and proc.stderr.count("\n") == 1


# ------------------------------------------------------------------ the committed result file


def test_committed_markdown_and_summary_are_what_the_json_gives(run_module, tmp_path):
    committed = RESULTS / "benchmark-cpu-2core.json"
    proc = run_module(BENCHMARK, "--render", committed, "--check", timeout=300)
    assert proc.returncode == 0, (proc.stderr + "\nrerender: python -m experiments.benchmark --render "
                                  "experiments/results/benchmark-cpu-2core.json")
    # The check does catch an edited markdown and a stored summary the tasks no longer give.
    copy = tmp_path / "benchmark-copy.json"
    data = json.loads(committed.read_text())
    data["summary"]["port"] = "edited"
    copy.write_text(json.dumps(data))
    copy.with_suffix(".md").write_text(committed.with_suffix(".md").read_text() + "edited\n")
    proc = run_module(BENCHMARK, "--render", copy, "--check", timeout=300)
    assert proc.returncode == 1 and "summary and benchmark-copy.md not what" in proc.stderr, proc.stderr


def test_committed_file_keeps_retired_results_with_their_run_and_commit(committed):
    retired = committed["retired"]
    assert tuple(retired["results"]) == RETIRED
    assert retired["code_commit"] in retired["note"]
    runs = {*committed["runs"], committed["created"]}  # the recorded earlier runs and the file's own
    for name, entry in retired["results"].items():
        assert entry["from_run"] in runs, name
        assert entry["recorded_in"].startswith("git show ")
    for entry in committed["tasks"].values():  # every kept task names a run the file describes
        assert (entry.get("from_run") or committed["created"]) in runs
    # The rendered markdown (current: the test above) says which commit has the retired code.
    md = (RESULTS / "benchmark-cpu-2core.md").read_text()
    assert "## Retired one-off measurements" in md and "commit 142d0c4" in md


# ------------------------------------------------------------------ a run


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown_and_a_partial_run_keeps_the_rest(run_module, committed, tmp_path):
    proc = run_module(BENCHMARK, "--quick", "--out-dir", tmp_path, "--machine", "test", timeout=1500)
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
    proc = run_module(BENCHMARK, "--render", tmp_path / "benchmark-test.json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "benchmark-test.md").read_text() == md

    # A run of one section over the committed file keeps the other sections' tasks (each with
    # the run it comes from), the records of those runs, and the retired results.
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "benchmark-kept.json").write_text(json.dumps(committed))
    proc = run_module(BENCHMARK, "--quick", "--only", "peak", "--out-dir", earlier, "--machine", "kept",
                      timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = json.loads((earlier / "benchmark-kept.json").read_text())
    assert "result" in kept["tasks"]["peak"] and "from_run" not in kept["tasks"]["peak"]
    assert kept["tasks"]["stages"] == {**committed["tasks"]["stages"],
                                      "from_run": committed["tasks"]["stages"].get("from_run", committed["created"])}
    assert kept["tasks"]["regions-Desk"]["from_run"] == committed["created"]
    assert kept["retired"] == committed["retired"]
    used = {e["from_run"] for k, e in kept["tasks"].items() if k != "peak"}
    used |= {e["from_run"] for e in committed["retired"]["results"].values()}
    assert set(kept["runs"]) == used
    assert kept["runs"][committed["created"]]["environment"] == committed["environment"]
