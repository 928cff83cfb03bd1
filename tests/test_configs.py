"""Configs: every file and variant loads, reference values, overrides, fields match the code."""
import dataclasses
import subprocess
import sys
import pathlib

import pytest
from absl import flags
from ml_collections import config_flags
from hdrjax.models import build

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = ("dequantization", "linearization", "hallucination", "joint")


def load(name, variant=None):
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=fv)
    arg = f"--config={ROOT / 'configs' / name}.py" + (f":{variant}" if variant else "")
    fv(["prog", arg])
    return fv.config


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_reference_values(name):
    c = load(name)
    assert c.stage == name
    assert c.train.batch_size == 8 and c.data.patch_size == 256  # §3.1
    assert (c.optim.b1, c.optim.b2, c.optim.eps, c.optim.schedule) == (0.9, 0.999, 1e-8, "constant")
    if name == "joint":  # §3.4
        assert c.optim.learning_rate == 1e-5 and c.train.num_steps == 100_000
    else:  # §3.1
        assert c.optim.learning_rate == 1e-4 and c.train.num_steps == 500_000
    assert c.crf.bank == "camera" and c.init.vgg == "lpips" and not c.parallel.multi_host


@pytest.mark.parametrize("name", CONFIG_FILES)
@pytest.mark.parametrize("variant", ["smoke", "cpu", "smoke,dorf"])
def test_variants_load(name, variant):
    c = load(name, variant)
    assert c.stage == name
    if "smoke" in variant:
        assert c.data.patch_size <= 64 and c.train.num_steps <= 20
    if variant == "cpu":
        assert c.data.patch_size == 128 and c.train.num_steps < 100_000
    if "dorf" in variant:
        assert c.crf.bank.startswith("dorf:")


def test_fine_tuning_the_shipped_model_keeps_its_batch_norm_statistics_and_scratch_does_not():
    # configs/joint.py fine-tunes trained networks on other data: their BatchNorm running
    # averages stay (docs/training.md); from scratch there are none worth keeping.
    assert load("joint").train.batch_norm == "frozen"
    assert load("joint", "scratch").train.batch_norm == "batch"
    assert all(load(name).train.batch_norm == "batch" for name in CONFIG_FILES if name != "joint")  # reference
    assert load("joint").train.trainable == ""  # all four networks train (§3.4)


def test_the_main_command_has_the_shipped_models_options():
    # configs/joint.py starts every network from hdrjax/weights/default: its model options,
    # the curve's dark end included, must be the ones those weights were shipped with, or
    # training refuses to start (hdrjax.training.train_state._check_shipped).
    from hdrjax.models.build import with_added_options
    from hdrjax.training import train_state
    from hdrjax.weights import pretrained

    config = load("joint")
    shipped = with_added_options(pretrained.read_manifest()["config"]["model"])
    assert config.model.lin_dark_end == shipped["lin_dark_end"] == "prior"
    assert config.model.lin_dark_end_code == shipped["lin_dark_end_code"] == 16
    for net in ("dequantization", "linearization", "hallucination", "refinement"):
        train_state._check_shipped(config, net, "default")  # raises ConfigError on any difference


def test_unknown_variant_is_refused():
    with pytest.raises(flags.IllegalFlagValueError, match="unknown config variant 'tiny'"):
        load("joint", "tiny")


def test_command_line_overrides():
    # Exactly what hdrjax.main does (global absl FLAGS + app.run), in a fresh interpreter:
    # ml_collections registers the --config.* override flags on the global FlagValues.
    script = (
        "from absl import app\n"
        "from ml_collections import config_flags\n"
        "c = config_flags.DEFINE_config_file('config')\n"
        "app.run(lambda argv: print(c.value.train.num_steps, c.value.init.dequantization,"
        " c.value.data.patch_size))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, f"--config={ROOT / 'configs' / 'joint.py'}:smoke",
         "--config.train.num_steps=3", "--config.init.dequantization=runs/deq",
         "--config.data.patch_size=48"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert out.stdout.split() == ["3", "runs/deq", "48"]


def test_camera_fields_are_the_camera_config():
    from hdrjax.camera.pipeline import CameraConfig

    c = load("joint")
    fields = {f.name for f in dataclasses.fields(CameraConfig)}
    assert set(c.camera.keys()) <= fields
    cam = CameraConfig.from_config(c.camera)
    for key, value in c.camera.items():
        assert getattr(cam, key) == (tuple(value) if isinstance(value, (list, tuple)) else value)


def test_model_options_build_a_model():

    model = build.build_model(load("joint"))
    assert model.blend_threshold == 0.12 and model.border == 0


def test_crf_bank_and_data_fields_are_known():
    from hdrjax.camera import crf
    from hdrjax.data import config as data_config

    c = load("dequantization")
    assert crf.load_bank(c.crf.bank, split="train").forward.shape[1] == crf.N_SAMPLES
    assert crf.load_bank(c.crf.bank, split="test").forward.shape[0] >= 1
    data_config.validate_config(c.data, global_batch_size=c.train.batch_size)
    assert set(c.data.keys()) == set(data_config.default_config().keys())
