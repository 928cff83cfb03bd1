"""Dequantization-Net: layer table, parameter count, residual output, a short overfit."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hdrjax.models import dequantization
from hdrjax.models.dequantization import DequantizationNet

# "rbg" keys: XLA:CPU compiles partitionable threefry for many parameter arrays very slowly.
KEY = jax.random.key(0, impl="rbg")

# docs/reference.md §2.1: (kernel, in, out) of conv2d, conv2d_1, ... conv2d_18.
LAYER_TABLE = [
    (7, 3, 16), (7, 16, 16),
    (5, 16, 32), (5, 32, 32),
    (3, 32, 64), (3, 64, 64),
    (3, 64, 128), (3, 128, 128),
    (3, 128, 256), (3, 256, 256),
    (3, 256, 128), (3, 256, 128),
    (3, 128, 64), (3, 128, 64),
    (3, 64, 32), (3, 64, 32),
    (3, 32, 16), (3, 32, 16),
    (3, 16, 3),
]  # fmt: skip


@pytest.fixture(scope="module")
def shapes():
    return jax.eval_shape(DequantizationNet().init, KEY, jnp.zeros((1, 32, 32, 3)))


def test_parameter_count_matches_reference(shapes):
    assert set(shapes) == {"params"}  # no batch statistics in the U-Net
    assert sum(x.size for x in jax.tree.leaves(shapes)) == dequantization.N_PARAMS == 1_999_779


def test_layer_names_and_shapes_follow_tf_layers_order(shapes):
    params = shapes["params"]
    names = ["conv2d"] + [f"conv2d_{i}" for i in range(1, 19)]
    assert sorted(params) == sorted(names)
    for name, (k, cin, cout) in zip(names, LAYER_TABLE):
        assert params[name]["kernel"].shape == (k, k, cin, cout), name
        assert params[name]["bias"].shape == (cout,), name
        assert params[name]["kernel"].dtype == jnp.float32


@pytest.fixture(scope="module")
def variables():
    # One jitted init (eager init compiles every op separately: much slower on CPU).
    return jax.jit(DequantizationNet().init)(KEY, jnp.zeros((1, 16, 16, 3)))


def test_init_is_glorot_uniform_with_zero_bias(variables):
    for name, (k, cin, cout) in zip(["conv2d", "conv2d_9"], [LAYER_TABLE[0], LAYER_TABLE[9]]):
        kernel = np.asarray(variables["params"][name]["kernel"])
        limit = np.sqrt(6.0 / (k * k * cin + k * k * cout))
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.9 * limit  # uniform fills the interval
        np.testing.assert_array_equal(variables["params"][name]["bias"], 0.0)


def test_output_is_input_plus_tanh_residual_not_clipped(variables):
    apply = jax.jit(DequantizationNet().apply)
    x = jnp.full((1, 16, 16, 3), 0.9)
    zeroed = jax.tree.map(jnp.zeros_like, variables)
    np.testing.assert_array_equal(apply(zeroed, x), x)  # tanh(0) = 0: identity
    # A large last bias saturates tanh at +1: 0.9 + 1 = 1.9, the module does not clip.
    zeroed["params"]["conv2d_18"]["bias"] = jnp.full((3,), 50.0)
    np.testing.assert_allclose(apply(zeroed, x), 1.9, rtol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_output(variables):
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 16, 16, 3)), jnp.float32)
    f32, bf16 = DequantizationNet(), DequantizationNet(dtype=jnp.bfloat16)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(jax.eval_shape(bf16.init, KEY, x)))
    out16 = jax.jit(bf16.apply)(variables, x)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(out16, jax.jit(f32.apply)(variables, x), atol=0.05)


def _tiny_batch():
    """Two 32×32 smooth linear images through a gamma 1/2.2 curve, quantised to 16 levels."""
    yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    linear = np.stack(
        [
            np.stack([xx * yy, (xx + yy) / 2, 0.3 + 0.6 * xx * (1 - yy)], -1),
            np.stack([yy**2, xx, np.full_like(xx, 0.5)], -1),
        ]
    )
    target = (linear ** (1 / 2.2)).astype(np.float32)
    return np.round(target * 16) / 16, target


@pytest.mark.slow
def test_overfits_a_tiny_batch():
    ldr, target = _tiny_batch()
    net = DequantizationNet()
    params = jax.jit(net.init)(KEY, ldr)
    opt = optax.adam(2e-3)
    state = opt.init(params)

    def loss_fn(p):  # the reference's stage loss: MSE of the clipped output
        return jnp.mean((jnp.clip(net.apply(p, ldr), 0, 1) - target) ** 2)

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    losses = []
    for _ in range(40):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    final = float(jax.jit(loss_fn)(params))
    assert final * 10 <= losses[0], losses
    # Below the identity's error: the net removes quantisation, not only its own init noise.
    assert final < np.mean((ldr - target) ** 2), (final, losses)
