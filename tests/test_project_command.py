"""The project's contract: its layout and `python -m hdrjax.main --config=configs/joint.py`, verbatim.

The command is run from a folder shaped like the repository root (its `hdrjax/` and `configs/`
linked in), so the test's runs never land in a user's own `runs/` folder.
"""
import json
import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from hdrjax import configs
from hdrjax.main import default_workdir
from hdrjax.models.build import NETWORKS
from hdrjax.weights import checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ("default", "dequantization", "linearization", "hallucination", "joint", "recipe")


def test_the_top_level_layout_of_the_specification():
    for folder in ("hdrjax", "configs", "experiments", "tests"):
        assert (ROOT / folder).is_dir(), folder
    assert (ROOT / "setup.py").is_file()
    for name in EXPERIMENTS:
        text = (ROOT / "configs" / f"{name}.py").read_text()
        assert "\ndef get_config(arg=None)" in text, name


def test_the_configs_folder_is_the_package_hdrjax_configs():
    # One home for each config: the package's files are the top-level configs/ files.
    for name in EXPERIMENTS:
        assert configs.path(name).read_text() == (ROOT / "configs" / f"{name}.py").read_text()
    assert configs.get_config("joint", "smoke").stage == "joint"


@pytest.mark.parametrize("value, expected", [
    ("configs/joint.py", "runs/joint"),
    ("configs/joint.py:smoke", "runs/joint-smoke"),
    ("/somewhere/configs/recipe.py:joint,cpu", "runs/recipe-joint-cpu"),
    ("my_exp.py: a , b", "runs/my_exp-a-b"),
])
def test_default_workdir_is_one_folder_per_experiment(value, expected):
    assert default_workdir(value) == expected


def _checkout_shaped(tmp_path):
    """A folder with the repository's hdrjax/ and configs/ in it, for running commands 'from the root'."""
    for name in ("hdrjax", "configs"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("content, problem", [
    (None, "no such config file"),
    ("x = 1\n", "has no get_config(arg) function"),
    ("import module_that_does_not_exist\n", "fails to import: ModuleNotFoundError"),
    ("def get_config(arg=None):\n    raise ValueError('unknown variant ' + repr(arg))\n", "get_config('v') failed"),
])
def test_a_bad_config_file_is_one_error_line_naming_it(tmp_path, env, content, problem):
    cwd = _checkout_shaped(tmp_path)
    if content is not None:
        (cwd / "mine.py").write_text(content)
    arg = "mine.py:v" if "get_config('v')" in problem else "mine.py"
    proc = subprocess.run([sys.executable, "-m", "hdrjax.main", f"--config={arg}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: mine.py: "), proc.stderr
    assert problem in lines[0]
    assert not (cwd / "runs").exists()


@pytest.mark.slow
def test_the_project_command_trains_into_its_default_folder_and_resumes(tmp_path, env):
    cwd = _checkout_shaped(tmp_path)
    # As a user's CPU runs it: one device, not the eight fake ones the other tests use.
    env = {**env, "XLA_FLAGS": ""}
    command = [sys.executable, "-m", "hdrjax.main", "--config=configs/joint.py:smoke"]
    first = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "workdir: runs/joint-smoke (default" in first.stderr
    assert "no checkpoint to resume" in first.stderr and "done: step 6" in first.stderr
    steps = sorted(int(p.name) for p in (cwd / "runs" / "joint-smoke" / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 6, steps

    # The same command again, asked for two more steps: it continues from step 6.
    second = subprocess.run(command + ["--config.train.num_steps=8"], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from checkpoint step 6" in second.stderr and "done: step 8" in second.stderr

    # What tests/test_train.py's smoke test checks of the other stages' configs, for the joint
    # one (trained here, through the command line, rather than a second time in-process): the
    # curves as JSON lines across both runs, an evaluation at the end of each, and all four
    # networks moved between the checkpoints of steps 6 and 8 (the resumed run).
    run = cwd / "runs" / "joint-smoke"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train][-1] == 8 and train[-1]["images_seen"] == 8 * 8
    assert all(math.isfinite(r["loss"]) for r in train)
    assert {6, 8} <= {r["step"] for r in rows if r["kind"] == "eval"}
    assert (run / "config.json").is_file()
    before, _, _ = checkpoints.load_inference_variables(run / "checkpoints" / "6", complete=False)
    after, stored, _ = checkpoints.load_inference_variables(run, complete=False)
    assert stored["stage"] == "joint" and set(after["params"]) == set(NETWORKS)
    for net in NETWORKS:
        assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before["params"][net]),
                                                            jax.tree.leaves(after["params"][net]))), net
