"""The CLI: kill -9 and restart continues to the same parameters; user errors are one line."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from hdrjax.weights import checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM_STEPS = 12
SMOKE = [
    f"--config={ROOT / 'configs' / 'dequantization.py'}:smoke",
    f"--config.train.num_steps={NUM_STEPS}",
    "--config.train.checkpoint_every=4",
    "--config.train.keep_checkpoints=3",
    "--config.train.eval_every=0",
    "--config.train.image_summary_every=0",
    "--config.model.width=0.125",  # the tiny model (tests/conftest.py): resuming is under test, not the net
]


def main_cmd(workdir, *extra):
    return [sys.executable, "-m", "hdrjax.main", *SMOKE, f"--workdir={workdir}", *extra]


def run(cmd, env, timeout=600):
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def final_params(workdir):
    variables, _, step = checkpoints.load_inference_variables(workdir, complete=False)
    assert step == NUM_STEPS
    return variables


@pytest.mark.slow
def test_kill_9_and_restart_reaches_the_same_parameters(tmp_path, env):
    straight = run(main_cmd(tmp_path / "straight"), env)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert f"step {NUM_STEPS}/{NUM_STEPS}" in straight.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(main_cmd(killed), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        # A step folder appears under its final name only once the save is complete.
        while checkpoints.find_checkpoint(killed) is None and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    interrupted_at = int(checkpoints.find_checkpoint(killed).name)
    assert interrupted_at < NUM_STEPS, "the run finished before it could be killed"

    resumed = run(main_cmd(killed), env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from checkpoint step" in resumed.stderr

    a, b = final_params(tmp_path / "straight"), final_params(killed)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)

    # Restarting with a config that changes what the checkpoint means is refused, in one line.
    changed = run([sys.executable, "-m", "hdrjax.main", f"--workdir={killed}",
                   f"--config={ROOT / 'configs' / 'linearization.py'}:smoke"], env)
    assert changed.returncode != 0
    assert "Traceback" not in changed.stderr
    error_lines = [line for line in changed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "different config" in error_lines[0] and "stage: 'dequantization' -> 'linearization'" in error_lines[0]


def test_user_error_is_one_line_without_traceback(tmp_path, env):
    result = run(main_cmd(tmp_path / "run", "--config.train.batch_size=12"), env, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config.train.batch_size: 12 is not divisible by the number of devices (8); use a multiple of 8"
    )


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, env):
    workdir = tmp_path / "preempted"
    cmd = [*main_cmd(workdir), "--config.train.num_steps=100000", "--config.train.checkpoint_every=1000"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stderr:  # progress lines arrive every step (smoke: log_every=1)
            lines.append(line)
            if "step 3/100000" in line:
                proc.send_signal(signal.SIGTERM)
                break
        _, rest = proc.communicate(timeout=300)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert "stop requested (SIGTERM): saved checkpoint step" in log
    saved = int(log.split("saved checkpoint step ")[1].split()[0])
    # Sent after step 3 finished: the loop stops at that boundary, or after the one step it had
    # already started -- never another.
    assert 3 <= saved <= 4
    assert checkpoints.find_checkpoint(workdir).name == str(saved)
