"""Mesh, batch sharding and 8-device training on the 8 fake CPU devices of conftest.

A global batch that does not divide over the devices is refused by hdrjax.training.loop.validate_config
(tests/test_train.py, test_bad_config_fails_before_compiling).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdrjax.training import parallel
from hdrjax.models import build


def test_mesh_spans_all_devices():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.devices.size == jax.device_count() == 8


def test_shard_batch_splits_the_leading_axis():
    mesh = parallel.make_mesh()
    host = {"hdr": np.arange(8 * 2 * 2 * 3, dtype=np.float32).reshape(8, 2, 2, 3)}
    batch = parallel.shard_batch(host, mesh)
    x = batch["hdr"]
    assert x.shape == (8, 2, 2, 3)
    assert len(x.addressable_shards) == 8
    assert {s.data.shape for s in x.addressable_shards} == {(1, 2, 2, 3)}
    np.testing.assert_array_equal(np.asarray(x), host["hdr"])


def test_replicate_puts_everything_everywhere():
    mesh = parallel.make_mesh()
    tree = parallel.replicate({"w": jnp.ones((3, 4))}, mesh)
    assert tree["w"].sharding.is_fully_replicated
    np.testing.assert_array_equal(parallel.fetch(tree)["w"], np.ones((3, 4)))


def test_sharded_mean_equals_unsharded():
    # The property sync BatchNorm and the loss rely on: a batch mean under jit is global.
    mesh = parallel.make_mesh()
    x = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    f = jax.jit(lambda a: jnp.mean(a, axis=0), out_shardings=parallel.replicated(mesh))
    np.testing.assert_allclose(np.asarray(f(parallel.shard_batch(x, mesh))), x.mean(0), rtol=1e-6)


def _load_config(name, variant="smoke"):
    from hdrjax import configs

    return configs.get_config(name, variant)


@pytest.mark.slow
def test_training_on_8_devices_matches_1_device():
    # Linearization: its BatchNorm statistics must be global over the sharded batch (sync BN).
    from hdrjax import data
    from hdrjax.training import loop, train_state
    from hdrjax.camera import crf

    config = _load_config("linearization")
    model = build.build_model(config)
    optimizer = loop.make_optimizer(config)
    mesh8, mesh1 = parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])
    it = data.make_train_iterator(config.data, global_batch_size=8, seed=0)
    batches = [next(it) for _ in range(3)]
    bank = crf.load_bank(config.crf.bank, split="train")
    # Only the linearization network: the step touches nothing else, and a full SingleHDR
    # init would triple the compile time of this test.
    import jax.numpy as jnp

    variables = jax.jit(lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False,
                                             method=model.estimate_inverse_crf))(jax.random.key(0))
    state0 = parallel.fetch(train_state.TrainState(
        step=jnp.zeros((), jnp.int32), params=variables["params"], batch_stats=variables["batch_stats"],
        opt_state=optimizer.init(variables["params"]), key=jax.random.key_data(jax.random.key(1))))
    step_fn = loop.make_train_step(config, model, optimizer)

    results = {}
    for name, mesh in (("8", mesh8), ("1", mesh1)):
        step = loop.jit_train_step(step_fn, mesh)
        state = parallel.replicate(state0, mesh)
        losses = []
        for b in batches:
            state, metrics = step(state, parallel.shard_batch(b, mesh), parallel.replicate(bank, mesh), None)
            losses.append(float(metrics["loss"]))
        results[name] = (losses, parallel.fetch(state.params["linearization"]),
                         parallel.fetch(state.batch_stats["linearization"]))
    # The first loss is computed before any update: equal to float rounding. Later losses carry
    # the weights' reduction-order noise (see below), which the "clip" curve projection's kink
    # (a step that crosses 0 switches its gradient off) and Adam's sign-like steps pass on:
    # 1.8e-5 relative measured on one machine; on another CPU model 8.5e-4 at step 3 with the
    # parametric CRF family and noisy targets (so already at the session's starting commit), and
    # 8.3e-3 with the camera bank and noise-free targets. Unsynced BatchNorm would break the
    # first loss, checked tightly; the weights' agreement is checked below.
    np.testing.assert_allclose(results["8"][0][0], results["1"][0][0], rtol=1e-5)
    np.testing.assert_allclose(results["8"][0], results["1"][0], rtol=2e-2)
    # Running statistics follow the weights (same machine-dependent drift); per-shard BatchNorm
    # statistics of 1 sample instead of 8 would differ by O(1). atol: on an AMD EPYC machine one
    # running mean of 6.7e-5 came out 1.15e-5 lower (the others within 2 %); the statistics are
    # 1e-4–1e-2, so unsynced BatchNorm still fails by orders of magnitude.
    for a, b in zip(jax.tree.leaves(results["8"][2]), jax.tree.leaves(results["1"][2])):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=3e-5)
    # Adam's step is lr * m / sqrt(v), which magnifies float noise from the different reduction
    # order where a gradient is ~0 (a sign flip moves that weight by up to lr). So: weights
    # differ by a tiny fraction of how far they moved, and none by more than lr x steps.
    lr_steps = config.optim.learning_rate * len(batches)
    a = np.concatenate([x.ravel() for x in jax.tree.leaves(results["8"][1])])
    b = np.concatenate([x.ravel() for x in jax.tree.leaves(results["1"][1])])
    diff = np.abs(a - b)
    update = np.abs(b - np.concatenate([x.ravel() for x in jax.tree.leaves(state0.params)]))
    # Measured on one machine: median difference 1.6e-7, 99th percentile 5.5e-6, median update
    # 2.1e-4; on another CPU model (already at the session's starting commit; root cause not
    # traced): median difference 1.0e-5 against a median update of 1.6e-4.
    assert np.median(diff) < 0.15 * np.median(update)
    assert np.percentile(diff, 99) < 2.0 * np.median(update)
    # Each run moves a weight by at most lr per step, so two runs differ by at most twice that.
    assert diff.max() <= 2 * lr_steps
    # The running statistics moved (BN ran in training mode) and are the same on both meshes.
    assert not np.allclose(jax.tree.leaves(results["8"][2])[0], jax.tree.leaves(state0.batch_stats["linearization"])[0])
