"""The default model's recipe end to end at the `tiny` size: chain, resume, export, load, predict, fine-tune.

The chain runs as the README documents it, `python -m experiments.default_model.train`; its
logic (hdrjax.training.chain) is also tested in this process: inits, histories, step counts and
a stage that is stopped.
"""
import json
import os

import jax
import numpy as np
import pytest

from hdrjax.errors import ConfigError
from hdrjax.models import build
from hdrjax.training import chain as recipe
from hdrjax.training import loop
from hdrjax.weights import pretrained

TRAIN = "experiments.default_model.train"


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory, run_module):
    """Run the whole tiny chain once (procedural scenes, built-in CRFs) and export it."""
    workdir = tmp_path_factory.mktemp("recipe")
    proc = run_module(TRAIN, "--size", "tiny", "--workdir", workdir / "runs", "--devices", "1",
                      "--export", workdir / "model", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def test_the_exported_config_names_paths_relative_to_the_repository():
    root = recipe.ROOT
    stored = {"data": {"manual_dir": str(root / ".." / "shared" / "data" / "train_hdr")},
              "init": {"dequantization": str(root / "runs" / "default" / "dequantization"), "vgg": "lpips"},
              "eval": {"exposure_stops": [-3, 0]}, "crf": {"invemor": ""}, "seed": None}
    assert recipe.portable_paths(stored) == {
        "data": {"manual_dir": "../shared/data/train_hdr"},
        "init": {"dequantization": "runs/default/dequantization", "vgg": "lpips"},
        "eval": {"exposure_stops": [-3, 0]}, "crf": {"invemor": ""}, "seed": None}


@pytest.mark.slow
def test_chain_trains_every_stage_from_the_previous_ones(chain_run):
    workdir = chain_run
    record = json.loads((workdir / "runs" / "stages.json").read_text())
    assert list(record) == ["dequantization", "linearization", "hallucination", "refinement", "joint"]
    for stage, entry in record.items():
        assert entry["steps"] == 3 and entry["images_seen"] == 6 and entry["wall_seconds"] > 0, stage
        rows = [json.loads(line) for line in (workdir / "runs" / stage / "metrics.jsonl").read_text().splitlines()]
        assert any(r["kind"] == "eval" for r in rows) and any(r["kind"] == "train" for r in rows)
    joint = json.loads((workdir / "runs" / "joint" / "config.json").read_text())
    assert joint["init"]["hallucination"] == str(workdir / "runs" / "hallucination")
    assert joint["init"]["refinement"] == str(workdir / "runs" / "refinement")
    assert joint["model"]["lin_monotone"] == "clip" and joint["train"]["freeze_encoder"] is True
    # The refinement stage trained the Refinement-Net alone: the other three, BatchNorm
    # statistics included, are exactly the stage runs it started from.
    from hdrjax.weights import checkpoints

    refined, stored, _ = checkpoints.load_inference_variables(workdir / "runs" / "refinement")
    assert stored["stage"] == "joint" and stored["train"]["trainable"] == "refinement"
    for net in ("dequantization", "linearization", "hallucination"):
        own, _, _ = checkpoints.load_inference_variables(workdir / "runs" / net, complete=False)
        for collection in ("params", "batch_stats"):
            for a, b in zip(jax.tree.leaves(own[collection].get(net, {})),
                            jax.tree.leaves(refined[collection].get(net, {}))):
                np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_rerun_resumes_instead_of_training_again(chain_run, run_module):
    workdir = chain_run
    before = json.loads((workdir / "runs" / "stages.json").read_text())
    proc = run_module(TRAIN, "--size", "tiny", "--workdir", workdir / "runs", "--devices", "1", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((workdir / "runs" / "stages.json").read_text())
    assert {s: e["steps"] for s, e in after.items()} == {s: e["steps"] for s, e in before.items()}


@pytest.mark.slow
def test_export_is_a_loadable_shipped_model_without_the_frozen_encoder(chain_run):
    workdir = chain_run
    manifest = pretrained.verify(workdir / "model")
    assert manifest["encoder"] == {"source": "lpips"}
    assert manifest["stages"]["joint"]["images_seen"] == 6
    assert manifest["recipe"]["command"] == (f"python -m {TRAIN} --size tiny --workdir {workdir / 'runs'} "
                                             "--crf camera")
    assert all(f["bytes"] <= pretrained.MAX_FILE_BYTES for f in manifest["files"])
    assert sum(f["bytes"] for f in manifest["files"]) <= 64 * 2 ** 20
    # The stored config names no folder of the machine that trained it.
    assert not [v for v in jax.tree.leaves(manifest["config"]) if isinstance(v, str) and os.path.isabs(v)]
    flat, _ = pretrained.load_arrays(workdir / "model")
    assert not any(k.startswith("params/hallucination/encoder/") for k in flat)
    # Loaded weights equal the joint checkpoint's, the encoder included.
    from hdrjax.weights import checkpoints

    model, variables, config, _ = pretrained.load(workdir / "model")
    stored, _, _ = checkpoints.load_inference_variables(workdir / "runs" / "joint")

    for a, b in zip(jax.tree.leaves(stored["params"]), jax.tree.leaves(variables["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert config["stage"] == "joint"


@pytest.mark.slow
def test_joint_config_fine_tunes_a_shipped_model(chain_run, tmp_path):
    workdir = chain_run
    from hdrjax.configs import joint
    config = joint.get_config("smoke")
    assert all(config.init[n] == "default" for n in build.NETWORKS)
    with config.unlocked():
        for net in build.NETWORKS:
            config.init[net] = str(workdir / "model")
        config.train.num_steps = 1
        config.train.batch_size = 2
        config.train.eval_every = 0
        config.parallel.num_devices = 1
        config.eval.exposure_stops = (0.0,)
        config.eval.num_patches = 1
    state = loop.train_and_evaluate(config, tmp_path / "ft")
    assert int(state.step) == 1
    # A config whose model options differ from the shipped model's is refused before compiling.
    with config.unlocked():
        config.model.lin_monotone = "shift"
    with pytest.raises(ConfigError, match="lin_monotone"):
        loop.train_and_evaluate(config, tmp_path / "ft2")
    scratch = joint.get_config("smoke,scratch")
    assert all(scratch.init[n] == "" for n in build.NETWORKS)


def test_a_stopped_stage_stops_the_chain(tmp_path, monkeypatch):
    # SIGTERM makes train_and_evaluate save and return early: the next stage must not start
    # from a half-trained one, and a rerun continues (the command exits 0 on ChainStopped).
    calls = []

    class Stopped:
        step = np.int32(1)

    def fake_train(config, workdir):
        calls.append(config.stage)
        return Stopped()

    monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
    with pytest.raises(recipe.ChainStopped, match="stage dequantization stopped at step 1 of 3"):
        recipe.run_chain("tiny", tmp_path, devices=1)
    assert calls == ["dequantization"]
    record = json.loads((tmp_path / "stages.json").read_text())
    assert record["dequantization"]["finished"] is False and record["dequantization"]["steps"] == 1


def test_continuing_from_a_shipped_model_routes_inits_and_accumulates_history(tmp_path):
    deq = recipe.stage_config("dequantization", "tiny", tmp_path, init="default")
    assert deq.init.dequantization == "default" and deq.init.linearization == ""
    # Only the Dequantization-Net was retrained in this run: joint takes it from here, the rest from the model.
    (tmp_path / "stages.json").write_text(json.dumps({"dequantization": {"finished": True}}))
    joint = recipe.stage_config("joint", "tiny", tmp_path, init="default")
    assert joint.init.dequantization == str(tmp_path / "dequantization")
    assert joint.init.linearization == joint.init.hallucination == joint.init.refinement == "default"
    scratch = recipe.stage_config("joint", "tiny", tmp_path)
    assert scratch.init.linearization == str(tmp_path / "linearization") and scratch.init.refinement == ""
    # The refinement stage: the Refinement-Net alone, on the fixed networks of this run or the model.
    refine = recipe.stage_config("refinement", "tiny", tmp_path, init="default")
    assert refine.stage == "joint" and refine.train.trainable == "refinement"
    assert refine.init.dequantization == str(tmp_path / "dequantization")
    assert refine.init.linearization == refine.init.refinement == "default"
    # After it, joint starts its Refinement-Net from it.
    (tmp_path / "stages.json").write_text(json.dumps({"refinement": {"finished": True}}))
    after = recipe.stage_config("joint", "tiny", tmp_path, init="default")
    assert after.init.refinement == str(tmp_path / "refinement")

    this_run = {"dequantization": {"wall_seconds": 60.0, "images_seen": 400},
                "joint": {"wall_seconds": 120.0, "images_seen": 80}}
    history = recipe.training_history(this_run, "abc", init="default")
    shipped = pretrained.read_manifest()
    assert len(history) == len(shipped.get("history") or [None]) + 1 and history[-1]["stages"] == this_run
    base_total = recipe.history_totals(history[:-1])
    assert base_total["wall_seconds"] > 0
    assert recipe.history_totals(history) == {"wall_seconds": base_total["wall_seconds"] + 180.0,
                                              "images_seen": base_total["images_seen"] + 480}
    fresh = recipe.training_history(this_run, "abc")
    assert len(fresh) == 1 and fresh[0]["init"] is None and fresh[0]["stages"] == this_run


def test_step_overrides_parse_and_refuse_nonsense(tmp_path):
    assert recipe.parse_steps("joint=1500, dequantization=800") == {"joint": 1500, "dequantization": 800}
    assert recipe.parse_steps("") == {}
    for bad in ("jiont=5", "joint=0", "joint=x", "joint"):
        with pytest.raises(ValueError, match="expected <stage>=<positive integer>"):
            recipe.parse_steps(bad)
    c = recipe.stage_config("joint", "tiny", tmp_path, steps={"joint": 40})
    assert c.train.num_steps == 40 and c.train.eval_every == 4 and c.optim.warmup_steps == 1


def test_learning_rate_overrides_parse_refuse_nonsense_and_keep_the_schedule(tmp_path):
    assert recipe.parse_learning_rates("refinement=3e-5, joint=0.0001") == {"refinement": 3e-5, "joint": 1e-4}
    assert recipe.parse_learning_rates("") == {}
    for bad in ("refinment=1e-4", "joint=0", "joint=-1e-4", "joint=x", "joint=nan", "joint=inf", "joint"):
        with pytest.raises(ValueError, match="--learning-rate .*expected <stage>=<positive number>"):
            recipe.parse_learning_rates(bad)
    base = recipe.stage_config("refinement", "tiny", tmp_path)
    c = recipe.stage_config("refinement", "tiny", tmp_path, learning_rates={"refinement": 3e-5, "joint": 1.0})
    assert c.optim.learning_rate == 3e-5 != base.optim.learning_rate
    assert c.optim.schedule == base.optim.schedule == "cosine"
    other = recipe.stage_config("dequantization", "tiny", tmp_path, learning_rates={"refinement": 3e-5})
    assert other.optim.learning_rate == recipe.stage_config("dequantization", "tiny", tmp_path).optim.learning_rate


def test_the_recorded_command_names_the_stages_of_a_partial_run():
    # The manifest's recipe command must rerun what ran: a continuation of two stages is not
    # the whole chain with the same options.
    from argparse import Namespace

    from experiments.default_model.train import recipe_command

    args = Namespace(size="cpu", workdir="runs/s13", hdr_folder="", crf="camera", variants="", init="default")
    part = recipe_command(args, {"dequantization": 2000}, ("dequantization", "refinement"))
    assert part == (f"python -m {TRAIN} --size cpu --workdir runs/s13 --crf camera --init default "
                    "--stages dequantization,refinement --steps dequantization=2000")
    assert "--stages" not in recipe_command(args, {}, recipe.STAGES)
    lr = recipe_command(args, {"refinement": 300}, ("refinement",), {"refinement": 3e-5})
    assert lr.endswith("--stages refinement --steps refinement=300 --learning-rate refinement=3e-05")
    assert recipe.parse_learning_rates(lr.split("--learning-rate ")[1]) == {"refinement": 3e-5}


def test_step_overrides_reach_every_stage_of_a_chain(tmp_path, monkeypatch):
    seen, rates = {}, {}

    def fake_train(config, workdir):
        seen[config.stage] = config.train.num_steps
        rates[config.stage] = config.optim.learning_rate

        class Finished:
            step = np.int32(config.train.num_steps)
        return Finished()

    monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
    recipe.run_chain("tiny", tmp_path, devices=1, stages=("dequantization", "joint"),
                     steps=recipe.parse_steps("dequantization=7,joint=5"),
                     learning_rates=recipe.parse_learning_rates("joint=2e-5"))
    assert seen == {"dequantization": 7, "joint": 5}
    assert rates["joint"] == 2e-5 and rates["dequantization"] != 2e-5
    record = json.loads((tmp_path / "stages.json").read_text())
    assert record["joint"]["learning_rate"] == 2e-5
    assert record["dequantization"]["images_seen"] == 7 * 2 and record["joint"]["steps"] == 5
