"""Training: every stage's smoke config end to end, the Deq loss falls, bad configs fail early."""
import json
import logging
import pathlib
import struct
import time

import jax
import numpy as np
import pytest

from hdrjax.training import loop, parallel, train_state
from hdrjax.weights import checkpoints
from hdrjax import configs
from hdrjax.models import build
from hdrjax.errors import ConfigError, HdrjaxError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(name, variant="smoke"):
    return configs.get_config(name, variant)


def read_scalars(workdir):
    """{tag: [(step, value)]} from the TensorBoard event files (TFRecord of Event protos) of a run."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted((pathlib.Path(workdir) / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((event.step, v.simple_value))
                elif v.HasField("image"):
                    out.setdefault(v.tag, []).append((event.step, None))
    return out


@pytest.mark.slow
# joint: configs/joint.py:smoke is trained, and its run checked the same way, by the project
# command's own test (tests/test_project_command.py), through the command line.
@pytest.mark.parametrize("stage", ["dequantization", "linearization", "hallucination"])
def test_smoke_config_trains_end_to_end(stage, tmp_path, caplog):
    config = load_config(stage)
    crf_net = None
    if stage == "linearization":  # also: the §3.1 crf_net_v2.npy trunk init reaches the model
        from hdrjax.models.linearization import crf_feature_net_layers

        rng = np.random.default_rng(0)
        crf_net = {layer: {k: rng.uniform(0.5, 1.0, shape).astype(np.float32) for k, shape in keys.items()}
                   for layer, keys in crf_feature_net_layers().items() if layer != "conv1"}
        np.save(tmp_path / "crf_net_v2.npy", crf_net, allow_pickle=True)
    with config.unlocked():
        if crf_net is not None:
            config.init.crf_net = str(tmp_path / "crf_net_v2.npy")
        config.train.num_steps = 4
        config.train.eval_every = 0  # the end of training always evaluates
        config.train.image_summary_every = 0
        # One device compiles and runs faster; 8-device training is tested in test_parallel
        # and test_train_resume.
        config.parallel.num_devices = 1
    caplog.set_level(logging.INFO, logger="hdrjax")
    state = loop.train_and_evaluate(config, tmp_path)

    assert int(state.step) == 4
    assert checkpoints.find_checkpoint(tmp_path).name == "4"
    assert (tmp_path / "config.json").is_file()
    scalars = read_scalars(tmp_path)
    losses = [v for _, v in scalars["train/loss"]]
    assert losses and all(np.isfinite(losses))
    assert any(tag.startswith("eval/") for tag in scalars)
    assert all(np.isfinite(v) for tag, values in scalars.items() if tag.startswith("eval/") for _, v in values)
    assert "images/input_jpeg" in scalars
    assert any("compiled and ran the train step" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("eval at step 4") for r in caplog.records)
    # The same scalars as JSON lines (learning curves without TensorBoard).
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert train_rows and train_rows[-1]["step"] == 4
    assert train_rows[-1]["images_seen"] == 4 * config.train.batch_size
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [4]
    # A stage checkpoint holds the networks the stage trains (joint: all four), and between the
    # checkpoints of steps 2 and 4 each of them moved.
    before, _, _ = checkpoints.load_inference_variables(tmp_path / "checkpoints" / "2", complete=False)
    after, stored, _ = checkpoints.load_inference_variables(tmp_path, complete=False)
    assert stored["stage"] == stage
    assert set(after["params"]) == set(train_state.TRAINABLE[stage])
    for net in train_state.TRAINABLE[stage]:
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before["params"][net]),
                                                        jax.tree.leaves(after["params"][net])))
        assert not same, net
    if crf_net is not None:  # 4 Adam steps of lr 1e-4 move a weight by at most ~4e-4
        trunk = after["params"]["linearization"]["crf_feature_net"]
        np.testing.assert_allclose(trunk["res2a_branch2b"]["kernel"], crf_net["res2a_branch2b"]["weights"], atol=1e-3)
        np.testing.assert_array_equal(after["batch_stats"]["linearization"]["crf_feature_net"]["bn2a_branch2b"]["var"]
                                      > 0, True)


@pytest.mark.slow
def test_linearization_trains_with_the_pu21_image_term(tmp_path, make_tiny_config):
    """loss.lin_image_space="pu21" (issue #20) through the trainer: it runs, and it is what the step minimised."""
    config = make_tiny_config("linearization")
    with config.unlocked():
        config.loss.lin_image_space = "pu21"
        config.train.num_steps = 3
        config.train.eval_every = 0
        config.train.image_summary_every = 0
        config.parallel.num_devices = 1
    state = loop.train_and_evaluate(config, tmp_path)
    assert int(state.step) == 3
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert train_rows and all(np.isfinite(r["loss"]) for r in train_rows)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["loss"]["lin_image_space"] == "pu21"


@pytest.mark.slow
def test_dequantization_loss_falls_on_a_fixed_batch():
    config = load_config("dequantization")
    mesh = parallel.make_mesh(jax.devices()[:1])  # one device compiles faster; sharding is tested elsewhere
    model = build.build_model(config)
    optimizer = loop.make_optimizer(config)
    # Only the Dequantization-Net: the step touches nothing else (a full init compiles 4 nets).
    import jax.numpy as jnp

    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), method=model.dequantize))(
        jax.random.key(0, impl="rbg"))
    state = parallel.replicate(train_state.TrainState(
        step=jnp.zeros((), jnp.int32), params=variables["params"], batch_stats={},
        opt_state=optimizer.init(variables["params"]), key=jax.random.key_data(jax.random.key(1))), mesh)
    step = loop.jit_train_step(loop.make_train_step(config, model, optimizer), mesh)
    from hdrjax import data
    from hdrjax.camera import crf

    host = next(data.make_train_iterator(config.data, global_batch_size=8, seed=0))
    batch = parallel.shard_batch(host, mesh)
    bank = parallel.replicate(crf.load_bank("family", split="train"), mesh)
    losses = []
    for _ in range(20):
        state, metrics = step(state, batch, bank, None)
        losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    assert int(state.step) == 20


@pytest.mark.parametrize("field, value, message", [
    ("stage", "tonemapping", "config.stage: unknown stage 'tonemapping'"),
    ("train.batch_size", 12, "config.train.batch_size: 12 is not divisible by the number of devices (8)"),
    ("init.dequantization", "/nonexistent/run", "config.init.dequantization: '/nonexistent/run' holds no checkpoint"),
    ("optim.schedule", "linear", "config.optim.schedule: unknown schedule"),
    ("camera.jpeg_qualities", (90, 101), "config.camera: camera.jpeg_qualities must be 1..100"),
    ("init.vgg", "/nonexistent/vgg16.npy", "config.init.vgg"),
    ("loss.lin_image_space", "log", "config.loss.lin_image_space: unknown 'log'"),
    ("loss.joint_space", "mu_law", "config.loss.joint_space: unknown 'mu_law'; one of log_tone, pu21"),
    ("train.lin_input", "dequantized", "config.train.lin_input: unknown 'dequantized'; one of ldr, jpeg"),
    ("train.trainable", "refinement,vgg", "config.train.trainable: vgg not trained by stage 'joint'"),
    ("train.batch_norm", "running", "config.train.batch_norm: unknown 'running'; one of batch, frozen"),
    ("init.linearization", "", "config.init.linearization is empty"),  # with trainable=refinement
    ("init.hallucination", "", "keeps the running averages of hallucination, which starts from random"),
])
def test_bad_config_fails_before_compiling(field, value, message, tmp_path, monkeypatch):
    config = load_config("joint")
    if field == "init.linearization":
        config.train.trainable = "refinement"
    assert config.train.batch_norm == "frozen"  # configs/joint.py's own
    node = config
    *parents, leaf = field.split(".")
    for p in parents:
        node = node[p]
    with config.unlocked():
        node[leaf] = value

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before checking the config")

    monkeypatch.setattr(train_state, "create_state", no_compile)
    monkeypatch.setattr(loop, "jit_train_step", no_compile)
    t0 = time.time()
    with pytest.raises(ConfigError) as err:
        loop.train_and_evaluate(config, tmp_path / "run")
    assert message in str(err.value)
    assert time.time() - t0 < 30
    assert isinstance(err.value, HdrjaxError)


def test_the_pu21_joint_loss_refuses_hdr_real_pairs():
    # The pair's HDR has its own scale, not the camera's; PU21 of the two would not compare.
    config = load_config("joint")
    with config.unlocked():
        config.data.name = "hdr_real"
        config.loss.joint_space = "pu21"
    with pytest.raises(ConfigError, match="config.loss.joint_space: 'pu21' compares on the camera's radiometric"):
        loop.validate_config(config, num_devices=1)
    config.loss.joint_space = "log_tone"
    loop.validate_config(config, num_devices=1)


@pytest.mark.parametrize("space", ["log_tone", "pu21"])
def test_the_joint_stage_minimises_the_chosen_joint_loss(space):
    from types import SimpleNamespace

    import jax.numpy as jnp

    from hdrjax.training import losses

    config = load_config("joint")
    config.loss.joint_space = space
    h = jnp.linspace(0.001, 3.0, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3)
    r = h * 1.3 + 0.01
    sample = SimpleNamespace(exposed=h, mask=jnp.ones(2))
    got = loop._stage_loss(config, {"refined": r}, sample, None)[0]
    want = losses.joint_loss(r, h, space=space)[0]
    other = losses.joint_loss(r, h, space="pu21" if space == "log_tone" else "log_tone")[0]
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert float(got) != pytest.approx(float(other), rel=1e-2)


@pytest.mark.parametrize("lin_input", ["ldr", "jpeg"])
def test_the_linearization_stage_shows_its_network_the_chosen_input(lin_input):
    # train.lin_input (issue #20) picks what the network estimates the curve from; the image
    # term applies that curve to the continuous L either way, so it scores the curve alone.
    from types import SimpleNamespace

    import jax.numpy as jnp

    from hdrjax.camera.crf import apply_curve

    config = load_config("linearization")
    with config.unlocked():
        config.train.lin_input = lin_input
    rng = np.random.default_rng(0)
    ldr, jpeg = (jnp.asarray(rng.uniform(0, 1, (2, 8, 8, 3)), jnp.float32) for _ in range(2))
    curve = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 1024) ** 2.2, (2, 1024))
    seen = []

    class Recorder:
        def estimate_inverse_crf(self):  # only named: apply() receives it as `method`
            pass

        def apply(self, variables, x, *, mutable, train, method):
            assert method == self.estimate_inverse_crf and train is False and mutable is False
            seen.append(x)
            return curve

    sample = SimpleNamespace(ldr=ldr, jpeg=jpeg)
    outputs, _ = loop._stage_outputs(config, Recorder(), {}, sample, train=False)
    np.testing.assert_array_equal(seen[0], {"ldr": ldr, "jpeg": jpeg}[lin_input])
    np.testing.assert_allclose(outputs["linear"], apply_curve(ldr, curve), rtol=1e-6)


def test_empty_data_folder_fails_before_compiling(tmp_path, monkeypatch):
    from hdrjax.data import DataError

    config = load_config("dequantization")
    (tmp_path / "empty").mkdir()
    with config.unlocked():
        config.data.name = "hdr_folder"
        config.data.manual_dir = str(tmp_path / "empty")
        config.data.backend = "files"
    monkeypatch.setattr(train_state, "create_state", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(DataError) as err:
        loop.train_and_evaluate(config, tmp_path / "run")
    assert isinstance(err.value, HdrjaxError)
    assert str(tmp_path / "empty") in str(err.value) or "manual_dir" in str(err.value)


def test_optimizer_updates_only_the_stage():
    config = load_config("linearization")
    params = {n: {"w": np.ones(3, np.float32)} for n in build.NETWORKS}
    opt = loop.make_optimizer(config)
    grads = {n: {"w": np.ones(3, np.float32)} for n in build.NETWORKS}
    updates, _ = opt.update(grads, opt.init(params), params)
    for n in build.NETWORKS:
        assert np.any(np.asarray(updates[n]["w"]) != 0) == (n == "linearization")
    # Frozen networks carry no Adam moments.
    moments = [x for x in jax.tree.leaves(opt.init(params)) if np.shape(x) == (3,)]
    assert len(moments) == 2  # Adam's mu and nu of the linearization network only


def test_optimizer_updates_only_the_networks_train_trainable_names():
    config = load_config("joint")
    params = {n: {"w": np.ones(3, np.float32)} for n in build.NETWORKS}
    grads = jax.tree.map(np.ones_like, params)
    for trainable, expected in (("", build.NETWORKS), ("refinement", ("refinement",)),
                                ("hallucination, refinement", ("hallucination", "refinement"))):
        config.train.trainable = trainable
        assert train_state.trained_networks(config) == expected
        updates, _ = loop.make_optimizer(config).update(grads, loop.make_optimizer(config).init(params), params)
        assert {n for n in build.NETWORKS if np.any(np.asarray(updates[n]["w"]))} == set(expected), trainable


@pytest.mark.parametrize("trainable, batch_norm, updated", [
    ("", "batch", {"linearization", "hallucination"}),  # the reference
    ("", "frozen", set()),
    ("refinement", "batch", set()),  # the fixed networks run as at inference
    ("hallucination,refinement", "batch", {"hallucination"}),
])
def test_batch_norm_statistics_move_only_for_trained_networks_in_batch_mode(
        trainable, batch_norm, updated, make_tiny_config, tiny_model, tiny_variables):
    from types import SimpleNamespace

    config = make_tiny_config("joint")
    config.train.trainable, config.train.batch_norm = trainable, batch_norm
    jpeg = np.random.default_rng(0).uniform(0.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
    outputs, mut = loop._stage_outputs(config, tiny_model, tiny_variables, SimpleNamespace(jpeg=jpeg), train=True)
    assert outputs["refined"].shape == (2, 32, 32, 3)
    moved = set()
    for net, stats in (mut or {}).get("batch_stats", {}).items():
        if any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(stats),
                                                     jax.tree.leaves(tiny_variables["batch_stats"][net]))):
            moved.add(net)
    assert moved == updated


def test_a_refinement_only_step_changes_the_refinement_net_alone(make_tiny_config, tiny_variables):
    import jax.numpy as jnp

    from hdrjax.camera import crf

    config = make_tiny_config("joint")
    config.train.trainable = "refinement"
    config.optim.warmup_steps = 0
    model = build.build_model(config)
    mesh = parallel.make_mesh(jax.devices()[:1])
    optimizer = loop.make_optimizer(config)
    state = parallel.replicate(train_state.state_from_variables(tiny_variables, optimizer, 0), mesh)
    step = loop.jit_train_step(loop.make_train_step(config, model, optimizer), mesh)
    hdr = np.random.default_rng(1).uniform(0.0, 2.0, (config.train.batch_size, 32, 32, 3)).astype(np.float32)
    before = jax.device_get(state)
    after, metrics = step(state, {"hdr": jnp.asarray(hdr)}, crf.load_bank("camera", "train"), None)
    after = jax.device_get(after)
    assert np.isfinite(float(metrics["loss"]))
    for net in build.NETWORKS:
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before.params[net]),
                                                        jax.tree.leaves(after.params[net])))
        assert same == (net != "refinement"), net
    for a, b in zip(jax.tree.leaves(before.batch_stats), jax.tree.leaves(after.batch_stats)):
        np.testing.assert_array_equal(a, b)


def test_freeze_encoder_keeps_the_vgg_encoder_of_the_hallucination_net():
    config = load_config("hallucination")
    config.train.freeze_encoder = True
    params = {n: {"w": np.ones(3, np.float32)} for n in build.NETWORKS}
    params["hallucination"] = {"encoder": {"conv1_1": {"kernel": np.ones(3, np.float32)}},
                               "encoder_h6_conv": {"kernel": np.ones(3, np.float32)}}
    grads = jax.tree.map(np.ones_like, params)
    opt = loop.make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    hal = updates["hallucination"]
    assert not np.any(np.asarray(hal["encoder"]["conv1_1"]["kernel"]))
    assert np.all(np.asarray(hal["encoder_h6_conv"]["kernel"]) != 0)
    assert not np.any(np.asarray(updates["dequantization"]["w"]))
    # Without the switch (the reference) the encoder trains too.
    config.train.freeze_encoder = False
    opt = loop.make_optimizer(config)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert np.all(np.asarray(updates["hallucination"]["encoder"]["conv1_1"]["kernel"]) != 0)


@pytest.mark.slow
def test_checkpoints_by_wall_clock_when_steps_are_far_apart(tmp_path):
    # checkpoint_every is never reached; checkpoint_every_secs saves at every step here.
    config = load_config("dequantization")
    with config.unlocked():
        config.train.num_steps = 3
        config.train.checkpoint_every = 1000
        config.train.checkpoint_every_secs = 1e-6
        config.train.keep_checkpoints = 5
        config.train.eval_every = 0
        config.train.image_summary_every = 0
        config.parallel.num_devices = 1
    loop.train_and_evaluate(config, tmp_path)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1, 2, 3]
    with config.unlocked():
        config.train.checkpoint_every_secs = -1.0
    with pytest.raises(ConfigError, match="checkpoint_every_secs"):
        loop.train_and_evaluate(config, tmp_path / "bad")


@pytest.mark.slow
def test_evaluation_in_flight_gives_the_results_of_a_waited_for_one(tmp_path):
    # train.async_eval dispatches the evaluation and reads it after the next step started
    # (whose state buffers are donated): the metrics must be those of the evaluated step.
    rows = {}
    for mode in (True, False):
        config = load_config("dequantization")
        with config.unlocked():
            config.train.num_steps = 4
            config.train.eval_every = 2
            config.train.image_summary_every = 0
            config.train.async_eval = mode
            config.parallel.num_devices = 1
        loop.train_and_evaluate(config, tmp_path / str(mode))
        lines = (tmp_path / str(mode) / "metrics.jsonl").read_text().splitlines()
        rows[mode] = [{k: v for k, v in json.loads(line).items() if k != "time"}
                      for line in lines if json.loads(line)["kind"] == "eval"]
    assert [r["step"] for r in rows[True]] == [2, 4]
    assert rows[True] == rows[False]


def test_narrow_model_with_pretrained_init_fails_before_compiling(make_tiny_config):
    config = make_tiny_config("hallucination")
    config.init.vgg = "lpips"
    with pytest.raises(ConfigError, match=r"config.init.vgg: 'lpips' holds weights of the width-1.0 networks"):
        loop.validate_config(config, num_devices=8)
