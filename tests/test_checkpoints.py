"""Orbax checkpoints: round trip of state + grain iterator + config, config checks, partial loads."""
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import struct

from hdrjax.training import parallel
from hdrjax.weights import checkpoints


@struct.dataclass
class State:
    step: jax.Array
    params: dict
    batch_stats: dict
    opt_state: object


def make_state(mesh, value=1.0):
    params = {"dequantization": {"w": jnp.full((3, 3), value)}, "linearization": {"w": jnp.zeros((2,))}}
    tx = optax.multi_transform({"t": optax.adam(1e-3), "f": optax.set_to_zero()},
                               {"dequantization": "t", "linearization": "f"})
    state = State(jnp.zeros((), jnp.int32), params, {"linearization": {"mean": jnp.ones((4,))}}, tx.init(params))
    return parallel.replicate(state, mesh)


def make_iterator():
    ds = grain.MapDataset.range(64).shuffle(seed=3).map(lambda i: {"hdr": np.full((1,), i, np.float32)})
    return iter(ds.batch(2).to_iter_dataset())


def make_config(**changes):
    c = ml_collections.ConfigDict({
        "stage": "dequantization", "model": {"dtype": "float32"}, "camera": {"jpeg": True},
        "crf": {"bank": "family"}, "data": {"name": "procedural", "patch_size": 32},
        "train": {"batch_size": 8, "num_steps": 10, "log_every": 1},
    })
    for k, v in changes.items():
        node = c
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return c


def test_round_trip_restores_state_and_iterator_position(tmp_path):
    mesh = parallel.make_mesh()
    config = make_config()
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=2, save_every=2)
    it = make_iterator()
    state = make_state(mesh)
    saved = []
    for step in range(1, 6):
        next(it)
        state = state.replace(step=state.step + 1, params=jax.tree.map(lambda x: x + 1, state.params))
        if ck.save(step, state, it, config):
            saved.append((step, parallel.fetch(state.params)))
    ck.close()
    assert [s for s, *_ in saved] == [2, 4]
    expected_next = next(it)["hdr"]  # the batch after step 5 ...

    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=2, save_every=2)
    assert ck.latest_step == 4
    it2 = make_iterator()
    restored = ck.restore(4, make_state(mesh, value=-7.0), it2)
    ck.close()
    assert int(restored.step) == 4
    np.testing.assert_array_equal(parallel.fetch(restored.params)["dequantization"]["w"],
                                  saved[-1][1]["dequantization"]["w"])
    assert restored.params["dequantization"]["w"].sharding.is_fully_replicated
    next(it2)  # ... is two batches after step 4
    np.testing.assert_array_equal(next(it2)["hdr"], expected_next)


def test_changed_config_that_matters_is_refused(tmp_path):
    mesh = parallel.make_mesh()
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=1, save_every=1)
    ck.save(1, make_state(mesh), None, make_config())
    ck.wait()
    ck.check_config(make_config(**{"train.num_steps": 99, "train.log_every": 5, "data.patch_size": 64}))
    for field, value in (("stage", "joint"), ("model.dtype", "bfloat16"), ("camera.jpeg", False),
                         ("crf.bank", "dorf:x.npz"), ("train.batch_size", 16)):
        with pytest.raises(checkpoints.CheckpointError, match=field.replace(".", r"\.")):
            ck.check_config(make_config(**{field: value}))
    ck.close()


def test_load_variables_takes_a_subtree_of_another_run(tmp_path):
    mesh = parallel.make_mesh()
    ck = checkpoints.Checkpointer(tmp_path / "deq", max_to_keep=1, save_every=1)
    ck.save(3, make_state(mesh, value=5.0), None, make_config())
    ck.close()
    wanted = {"params": {"dequantization": make_state(mesh).params["dequantization"]}}
    loaded = checkpoints.load_variables(tmp_path / "deq", wanted)
    assert set(loaded["params"]) == {"dequantization"}
    np.testing.assert_array_equal(np.asarray(loaded["params"]["dequantization"]["w"]), np.full((3, 3), 5.0))
    assert loaded["params"]["dequantization"]["w"].sharding.is_fully_replicated

    variables, config, step = checkpoints.load_inference_variables(tmp_path / "deq", complete=False)
    assert step == 3 and config["stage"] == "dequantization"
    # Inference needs all four networks: a stage run's checkpoint is refused in one clear line.
    with pytest.raises(checkpoints.CheckpointError, match=r"'dequantization' stage checkpoint holds only "
                       r"dequantization, linearization \(not hallucination, refinement\); inference needs all four"):
        checkpoints.load_inference_variables(tmp_path / "deq")
    assert set(variables) == {"params", "batch_stats"}
    np.testing.assert_array_equal(variables["batch_stats"]["linearization"]["mean"], np.ones(4))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    assert checkpoints.find_checkpoint(tmp_path / "nothing") is None
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
        checkpoints.load_variables(tmp_path / "nothing", {"params": {}}, what="init.dequantization")
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
        checkpoints.load_inference_variables(tmp_path)


def test_config_differences_lists_only_matter_fields():
    diffs = checkpoints.config_differences(make_config(), make_config(**{"stage": "joint", "train.num_steps": 1}))
    assert diffs == ["stage: 'dequantization' -> 'joint'"]


def test_save_variables_writes_a_loadable_checkpoint(tmp_path):
    variables = {"params": {"dequantization": {"w": np.arange(4, dtype=np.float32)}},
                 "batch_stats": {"linearization": {"mean": np.ones(2, np.float32)}}}
    path = checkpoints.save_variables(tmp_path / "imported", variables, make_config())
    assert checkpoints.find_checkpoint(path) == path
    loaded, config, _ = checkpoints.load_inference_variables(path, complete=False)
    np.testing.assert_array_equal(loaded["params"]["dequantization"]["w"], np.arange(4))
    assert config["stage"] == "dequantization"
    part = checkpoints.load_variables(path, {"params": {"dequantization": {"w": jnp.zeros(4)}}})
    np.testing.assert_array_equal(np.asarray(part["params"]["dequantization"]["w"]), np.arange(4))
    with pytest.raises(checkpoints.CheckpointError, match="already exists"):
        checkpoints.save_variables(path, variables, make_config())


def test_a_checkpoint_with_all_networks_restores_into_a_stage_state(tmp_path):
    # Before stage states held only their own networks, every stage checkpoint stored all of
    # them (and Adam state laid out over all of them): such a checkpoint must still resume.
    mesh = parallel.make_mesh()
    old = make_state(mesh, value=3.0)  # params of dequantization (trained) and linearization (frozen)
    old = old.replace(step=old.step + 7)
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=1, save_every=1)
    ck.save(7, old, None, make_config())
    ck.close()
    params = {"dequantization": {"w": jnp.zeros((3, 3))}}
    tx = optax.multi_transform({"t": optax.adam(1e-3), "f": optax.set_to_zero()}, {"dequantization": "t"})
    new = parallel.replicate(State(jnp.zeros((), jnp.int32), params, {}, tx.init(params)), mesh)
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=1, save_every=1)
    restored = ck.restore(7, new, None)
    ck.close()
    assert int(restored.step) == 7
    assert set(restored.params) == {"dequantization"}
    np.testing.assert_array_equal(np.asarray(restored.params["dequantization"]["w"]), np.full((3, 3), 3.0))
    assert jax.tree.structure(restored.opt_state) == jax.tree.structure(new.opt_state)


def test_meta_is_saved_with_each_step_and_absent_from_older_ones(tmp_path):
    mesh = parallel.make_mesh()
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=3, save_every=1)
    ck.save(1, make_state(mesh), None, make_config())
    ck.meta = {"data_seed": 12345}
    ck.save(2, make_state(mesh), None, make_config())
    ck.wait()
    assert ck.stored_meta(1) == {}
    assert ck.stored_meta(2) == {"data_seed": 12345}
    ck.close()


def test_loading_a_training_checkpoint_says_nothing_about_metadata(tmp_path, capfd, caplog):
    """A training run's step folder keeps orbax's step metadata beside `state/`, not in it; reading
    it must not log "Metadata file does not exist" (orbax, through absl), which reads like damage."""
    import logging

    mesh = parallel.make_mesh()
    ck = checkpoints.Checkpointer(tmp_path, max_to_keep=1, save_every=1)
    ck.save(2, make_state(mesh, value=4.0), None, make_config())
    ck.close()
    assert not (tmp_path / "checkpoints" / "2" / "state" / "_CHECKPOINT_METADATA").exists()  # the case in question
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        variables, config, step = checkpoints.load_inference_variables(tmp_path, complete=False)
        checkpoints.load_variables(tmp_path, {"params": {"dequantization": make_state(mesh).params["dequantization"]}})
    assert step == 2 and config["stage"] == "dequantization"
    np.testing.assert_array_equal(variables["params"]["dequantization"]["w"], np.full((3, 3), 4.0))
    err = capfd.readouterr().err
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (err, logged):
        assert "Metadata file does not exist" not in text and "_CHECKPOINT_METADATA" not in text, text


def test_multi_process_saves_use_the_coordination_service_barrier(monkeypatch):
    # orbax's default barrier is a device collective, which its background thread can issue
    # while the train step's collectives run: gloo then aborts on a collective mismatch.
    from absl import flags
    from orbax.checkpoint._src.multihost import multihost as orbax_multihost

    flag = flags.FLAGS[checkpoints.ORBAX_BARRIER_FLAG]
    monkeypatch.setattr(flag, "value", False)
    monkeypatch.setattr(flag, "present", 0)
    checkpoints.use_distributed_barriers()  # one process: orbax's default stays
    assert flag.value is False
    monkeypatch.setattr(checkpoints.jax, "process_count", lambda: 2)
    checkpoints.use_distributed_barriers()
    assert orbax_multihost.EXPERIMENTAL_ORBAX_USE_DISTRIBUTED_BARRIER.value is True
    # A user's own --experimental_orbax_use_distributed_barrier=false wins.
    monkeypatch.setattr(flag, "value", False)
    checkpoints.use_distributed_barriers()
    assert flag.value is False
