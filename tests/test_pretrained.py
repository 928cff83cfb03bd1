"""hdrjax.weights.pretrained (shipped-model folders) and `python -m hdrjax.predict` with the default model.

No training and no compiled initialisation: the variables are seeded random arrays of the real
SingleHDR shapes (`build.random_variables`): what a shipped folder holds (shards, the frozen
VGG16 encoder) depends on the real widths. The big folders are exported once per module and
deleted afterwards; the broken-file cases use a tiny model-less export (they all fail before a
model is built). Only the CLI tests run a network, the cheap Dequantization-Net, on the 48×80
`ldr_image` photos of tests/conftest.py.
"""
import json
import pathlib
import shutil
import types

import jax
import numpy as np
import pytest
from flax import traverse_util

from hdrjax import io
from hdrjax.weights import architecture, checkpoints, loading, pretrained
from hdrjax.models import build
from hdrjax.models.build import NETWORKS, random_variables

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARD_LIMIT = 12 * 1024 * 1024  # < the default 16 MiB: forces more shards; the largest array is 9 MiB
ENCODER = "params/hallucination/encoder/"
STAGES_INFO = {"joint": {"steps": 6, "batch_size": 8, "images_seen": 48, "wall_seconds": 1.0}}


def base_config():
    from hdrjax.configs import default

    config = default.base_config()
    config.stage = "joint"
    return config


def flat_np(variables):
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(variables, sep="/").items()}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """One float32 export of seeded random SingleHDR variables (several shards); removed afterwards."""
    base = tmp_path_factory.mktemp("shipped")
    config = base_config()
    model = build.build_model(config)
    variables = jax.tree.map(np.asarray, random_variables(model, seed=3))
    out = pretrained.export(variables, config, base / "model", max_file_bytes=SHARD_LIMIT,
                            metadata={"stages": STAGES_INFO, "step": 6})
    yield types.SimpleNamespace(dir=out, base=base, config=config, model=model, variables=variables)
    shutil.rmtree(base, ignore_errors=True)


def test_round_trip_float32_and_shard_sizes(shipped):
    model, variables, config, manifest = pretrained.load(shipped.dir)
    want, got = flat_np(shipped.variables), flat_np(variables)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == np.float32, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert config == checkpoints.config_to_json(shipped.config)
    assert manifest["stages"] == STAGES_INFO and manifest["dtype"] == "float32" and manifest["encoder"] is None
    # The model is the one every loader builds for this config (same cached object).
    assert model is architecture.model_from_config(config, str(shipped.dir))[0]
    files = manifest["files"]
    assert len(files) >= 5
    assert sorted(p.name for p in shipped.dir.iterdir()) == sorted([f["name"] for f in files] + ["manifest.json"])
    for f in files:
        assert (shipped.dir / f["name"]).stat().st_size == f["bytes"] <= SHARD_LIMIT
    assert sum(f["arrays"] for f in files) == len(want)


def test_frozen_lpips_encoder_is_put_back_as_training_does(shipped):
    from hdrjax.models import vgg
    from hdrjax.models.hallucination import encoder_init

    params = dict(shipped.variables["params"])
    # hdrjax.training.train_state.create_state: encoder_init(params["hallucination"], load_vgg16(config.init.vgg)).
    params["hallucination"] = jax.tree.map(np.asarray, encoder_init(params["hallucination"], vgg.load_vgg16("lpips")))
    trained = {"params": params, "batch_stats": shipped.variables["batch_stats"]}
    out = pretrained.export(trained, shipped.config, shipped.base / "frozen", frozen_encoder="lpips")
    try:
        manifest = pretrained.read_manifest(out)
        assert manifest["encoder"] == {"source": "lpips"}
        stored, _ = pretrained.load_arrays(out)
        assert stored and not any(k.startswith(ENCODER) for k in stored)
        _, variables, _, _ = pretrained.load(out)
        want, got = flat_np(trained), flat_np(variables)
        assert sorted(got) == sorted(want) and any(k.startswith(ENCODER) for k in got)
        for name in want:
            assert got[name].dtype == np.float32, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_float16_export_loads_as_float32(shipped):
    out = pretrained.export(shipped.variables, shipped.config, shipped.base / "half", dtype="float16")
    try:
        assert pretrained.read_manifest(out)["dtype"] == "float16"
        _, variables, _, _ = pretrained.load(out)
        want, got = flat_np(shipped.variables), flat_np(variables)
        assert sorted(got) == sorted(want)
        for name, w in want.items():
            assert got[name].dtype == np.float32, name
            np.testing.assert_array_equal(got[name], w.astype(np.float16).astype(np.float32), err_msg=name)
            np.testing.assert_allclose(got[name], w, rtol=2.0**-11, atol=2.0**-24, err_msg=name)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    with pytest.raises(ValueError, match="overflow"):
        pretrained.export({"params": {"x": np.full(3, 1e6, np.float32)}}, {}, shipped.base / "big", dtype="float16")
    assert not (shipped.base / "big").exists()


def test_convert_stores_a_shipped_model_again_in_float16(tiny_shipped_model, tmp_path):
    half = pretrained.convert(tiny_shipped_model, tmp_path / "half", dtype="float16")
    before, after = pretrained.read_manifest(tiny_shipped_model), pretrained.verify(half)
    assert after["dtype"] == "float16"
    # step, recipe, config kept; receptive fields (measured on other weights) left out
    assert {k: v for k, v in after.items() if k not in ("dtype", "files")} == \
        {k: v for k, v in before.items() if k not in ("dtype", "files", "receptive_field")}
    assert sum(f["bytes"] for f in after["files"]) < 0.6 * sum(f["bytes"] for f in before["files"])
    want, _ = pretrained.load_arrays(tiny_shipped_model)
    got, _ = pretrained.load_arrays(half)
    for name, w in want.items():
        np.testing.assert_array_equal(got[name], w.astype(np.float16).astype(np.float32), err_msg=name)
    # Back to float32: the float16 values, exactly.
    again, _ = pretrained.load_arrays(pretrained.convert(half, tmp_path / "full", dtype="float32"))
    for name in want:
        np.testing.assert_array_equal(again[name], got[name], err_msg=name)
    with pytest.raises(ValueError, match="another folder"):
        pretrained.convert(half, half, dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        pretrained.convert(half, tmp_path / "x", dtype="bfloat16")


# ------------------------------------------------------------------------ broken folders


def tiny_export(path, seed=0, n=3, **kwargs):
    """A model-less folder of n 64×64 arrays, one per shard (load() fails before building a model)."""
    rng = np.random.default_rng(seed)
    variables = {"params": {f"layer{i}": {"kernel": rng.standard_normal((64, 64)).astype(np.float32)}
                            for i in range(n)}}
    kwargs.setdefault("max_file_bytes", 20_000)
    return pretrained.export(variables, {"stage": "joint"}, path, **kwargs), variables


LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 16528\n")


def _flip_byte(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


BREAKAGES = {
    # case: (file broken, how, words the message must contain)
    "missing manifest": ("manifest.json", lambda p: p.unlink(), "missing"),
    "manifest not JSON": ("manifest.json", lambda p: p.write_text("{'format': hdrjax"), "not valid JSON"),
    "wrong format": ("manifest.json", lambda p: p.write_text(json.dumps({"format": "safetensors", "files": []})),
                     "hdrjax-weights-1"),
    "manifest LFS pointer": ("manifest.json", lambda p: p.write_bytes(LFS_POINTER), "Git LFS pointer"),
    "missing shard": ("weights-02-of-03.npz", lambda p: p.unlink(), "missing"),
    "truncated shard": ("weights-02-of-03.npz", lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
    "altered shard": ("weights-03-of-03.npz", _flip_byte, "sha256"),
    "shard LFS pointer": ("weights-01-of-03.npz", lambda p: p.write_bytes(LFS_POINTER), "Git LFS pointer"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_broken_folder_is_one_error_naming_the_file(tmp_path, case):
    folder, _ = tiny_export(tmp_path / "model")
    assert len(pretrained.read_manifest(folder)["files"]) == 3
    name, breaks, words = BREAKAGES[case]
    size = (folder / name).stat().st_size
    breaks(folder / name)
    if case == "altered shard":
        assert (folder / name).stat().st_size == size
    with pytest.raises(pretrained.PretrainedError) as e:
        pretrained.load(folder)
    message = str(e.value)
    assert str(folder / name) in message and words in message and "\n" not in message, message
    with pytest.raises(pretrained.PretrainedError):
        pretrained.verify(folder)


def test_export_replaces_an_existing_folder_atomically(tmp_path, monkeypatch):
    folder, _ = tiny_export(tmp_path / "model", seed=1, n=3)
    folder2, new = tiny_export(tmp_path / "model", seed=2, n=2)
    assert folder2 == folder
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no .model.tmp-* / .model.old-* left
    manifest = pretrained.read_manifest(folder)
    expected = [f["name"] for f in manifest["files"]] + ["manifest.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    flat, _ = pretrained.load_arrays(folder)
    assert sorted(flat) == ["params/layer0/kernel", "params/layer1/kernel"]
    np.testing.assert_array_equal(flat["params/layer1/kernel"], new["params"]["layer1"]["kernel"])

    # An export that fails half-way leaves the previous model as it was, and no temp folder.
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []
    real_savez = np.savez

    def failing_savez(path, **arrays):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_savez(path, **arrays)

    monkeypatch.setattr(pretrained.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        tiny_export(tmp_path / "model", seed=3, n=3)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    pretrained.verify(folder)

    # A folder that is not a shipped model is never replaced.
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a shipped-model folder"):
        tiny_export(other)
    assert [p.name for p in other.iterdir()] == ["keep.jpg"]


def test_update_manifest_keeps_the_folder_valid(tmp_path):
    folder, _ = tiny_export(tmp_path / "model")
    pretrained.update_manifest(folder, evaluation={"psnr": 30.5})
    assert pretrained.verify(folder)["evaluation"] == {"psnr": 30.5}
    with pytest.raises(ValueError):
        pretrained.update_manifest(folder, files=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_set_model_options_changes_the_dark_end_only(tmp_path):
    folder, _ = tiny_export(tmp_path / "model")
    before = pretrained.read_manifest(folder)
    pretrained.set_model_options(folder, lin_dark_end="prior", lin_dark_end_code=24)
    after = pretrained.verify(folder)
    assert after["config"]["model"]["lin_dark_end"] == "prior" and after["config"]["model"]["lin_dark_end_code"] == 24
    assert after["files"] == before["files"]
    import ml_collections
    model = build.build_model(ml_collections.ConfigDict(after["config"]))  # as loading.load builds it
    assert model.lin_dark_end == "prior" and model.lin_dark_end_code == 24
    # An option the weights depend on, or a bad value, is refused and changes nothing.
    with pytest.raises(ValueError, match="lin_monotone"):
        pretrained.set_model_options(folder, lin_monotone="shift")
    from hdrjax.errors import ConfigError
    with pytest.raises(ConfigError, match="lin_dark_end_code"):
        pretrained.set_model_options(folder, lin_dark_end_code=300)
    assert pretrained.read_manifest(folder) == after


# ------------------------------------------------------------------------ CLI


def test_cli_shipped_folder_and_default_model(shipped, tmp_path, monkeypatch, ldr_image, write_png, predict_cli):
    ldr = ldr_image(9)
    write_png(tmp_path / "x.png", ldr)
    code, err = predict_cli(["--checkpoint", shipped.dir, "--output", tmp_path / "o1", "--stages", "dequantization",
                             tmp_path / "x.png"])
    assert code == 0, err
    assert io.read_image(tmp_path / "o1" / "x.exr").shape == ldr.shape
    assert f"shipped model {shipped.dir} (stage joint" in err and "warning:" not in err, err
    # Without --checkpoint: the default model (here the exported folder).
    monkeypatch.setattr(pretrained, "DEFAULT_DIR", shipped.dir)
    code, err = predict_cli(["--output", tmp_path / "o2", "--stages", "dequantization", tmp_path / "x.png"])
    assert code == 0, err
    assert "default model (" in err and "trained joint 6 steps" in err and "warning:" not in err, err
    np.testing.assert_array_equal(io.read_image(tmp_path / "o2" / "x.exr"), io.read_image(tmp_path / "o1" / "x.exr"))


def test_cli_without_default_model_says_pass_checkpoint(tmp_path, monkeypatch, ldr_image, write_png, predict_cli):
    empty = tmp_path / "weights" / "default"
    empty.mkdir(parents=True)
    monkeypatch.setattr(pretrained, "DEFAULT_DIR", empty)
    write_png(tmp_path / "x.png", ldr_image(10))
    code, err = predict_cli(["--output", tmp_path / "o", tmp_path / "x.png"])
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1, err
    assert "no default model is installed" in errors[0] and "--checkpoint" in errors[0]
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_output_stage_of_a_shipped_model_sets_the_default_stages():
    assert loading.stages_for_checkpoint({"stage": "joint"}) == NETWORKS
    assert loading.stages_for_checkpoint({"stage": "joint", "output_stage": "hallucination"}) == NETWORKS[:3]
    assert loading.stages_for_checkpoint({"stage": "hallucination"}) == NETWORKS[:3]


def test_a_shipped_model_that_records_its_training_gets_no_smoke_test_warning(shipped):
    """The exemption is in the loader every command uses (hdrjax.weights.loading.load), not in one CLI."""
    loaded = loading.load(str(shipped.dir))
    assert loaded.step == 6 and loaded.warning is None
    assert loaded.description.startswith(f"shipped model {shipped.dir} (stage joint")
    assert loaded.config == checkpoints.config_to_json(shipped.config)
    # The same 6 steps without the training record: warned, as any short run.
    config = checkpoints.config_to_json(shipped.config)
    assert loading.checkpoint_warning(config, 6, {"step": 6}) is not None
    assert loading.checkpoint_warning(config, 6, {"step": 6, "stages": STAGES_INFO}) is None


def test_the_model_summary_counts_every_run_of_a_continued_model():
    from hdrjax.weights import loading

    one_run = {"config": {"stage": "joint"}, "stages": {"joint": {"steps": 400}}}
    assert loading.shipped_summary(one_run) == "stage joint; trained joint 400 steps"
    continued = {**one_run, "history": [{}, {}, {}], "training_total": {"images_seen": 87400, "wall_seconds": 1.0}}
    assert loading.shipped_summary(continued) == ("stage joint; trained joint 400 steps; "
                                                  "87,400 training images over 3 runs in total")
