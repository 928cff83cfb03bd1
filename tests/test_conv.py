"""The matmul kernel gradient (hdrjax/models/conv.py) equals XLA's own."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hdrjax.models import conv
from hdrjax.models.layers import tf_conv

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def every_width_takes_the_matmul_path(monkeypatch):
    monkeypatch.setattr(conv, "MIN_CHANNELS", 1)  # small test shapes, the same code path


def grads(monkeypatch, mode, x, k, strides, padding, dtype=jnp.float32):
    monkeypatch.setenv(conv.ENV_VAR, mode)

    def loss(x, k):
        y = conv.conv_general_dilated(x.astype(dtype), k.astype(dtype), strides, padding, dimension_numbers=NHWC)
        return jnp.sum(jnp.sin(y.astype(jnp.float32)))  # a non-trivial output gradient

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(x, k)


@pytest.mark.parametrize(
    "shape,kernel,strides,padding",
    [
        ((2, 9, 11, 5), (3, 3), (1, 1), "SAME"),
        ((2, 9, 11, 5), (3, 3), (1, 1), "VALID"),
        ((1, 13, 10, 3), (7, 7), (2, 2), "SAME"),  # ResNet conv1: odd size, stride 2
        ((2, 8, 8, 6), (1, 1), (2, 2), "SAME"),  # ResNet shortcut
        ((1, 8, 6, 4), (3, 3), (1, 1), ((2, 2), (2, 2))),  # Hal-Net up-block: padded + crop
        ((1, 7, 7, 4), (2, 3), (1, 2), ((0, 1), (1, 0))),  # asymmetric everything
    ],
)
def test_matmul_kernel_grad_equals_xla(monkeypatch, shape, kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    k = jnp.asarray(rng.standard_normal(kernel + (shape[-1], 4)).astype(np.float32))
    v_ref, (dx_ref, dk_ref) = grads(monkeypatch, "xla", x, k, strides, padding)
    v, (dx, dk) = grads(monkeypatch, "matmul", x, k, strides, padding)
    np.testing.assert_allclose(v, v_ref, rtol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-5, atol=1e-4)
    assert dk.dtype == k.dtype


def test_bfloat16_kernel_grad_matches_and_keeps_dtype(monkeypatch):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 16, 16, 8)).astype(np.float32))
    k = jnp.asarray(0.2 * rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
    _, (_, dk_ref) = grads(monkeypatch, "xla", x, k, (1, 1), "SAME", jnp.bfloat16)
    _, (_, dk) = grads(monkeypatch, "matmul", x, k, (1, 1), "SAME", jnp.bfloat16)
    assert dk.dtype == jnp.float32  # the cast back to the f32 parameter happens outside
    scale = float(jnp.max(jnp.abs(dk_ref)))
    np.testing.assert_allclose(dk, dk_ref, atol=0.02 * scale)


class TinyNet(nn.Module):
    """The flax path every network takes (`tf_conv` → nn.Conv → our function): 3×3, strided
    7×7 and 1×1 convs, with and without bias, as in the U-Nets and the ResNet trunk."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(tf_conv(8, 3, "a", dtype=jnp.float32)(x))
        h = nn.relu(tf_conv(8, 7, "b", dtype=jnp.float32, stride=2, use_bias=False)(h))
        return tf_conv(3, 1, "c", dtype=jnp.float32, stride=2)(h)


def test_a_network_trains_the_same_either_way(monkeypatch):
    net = TinyNet()
    x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (2, 20, 20, 3)).astype(np.float32))
    variables = net.init(jax.random.key(0), x)
    target = jnp.zeros((2, 5, 5, 3))

    def param_grads(mode):
        monkeypatch.setenv(conv.ENV_VAR, mode)
        return jax.jit(jax.grad(lambda p: jnp.mean((net.apply({"params": p}, x) - target) ** 2)))(variables["params"])

    ref, ours = param_grads("xla"), param_grads("matmul")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ref), jax.tree.leaves(ours)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * float(jnp.max(jnp.abs(a))) + 1e-9,
                                   err_msg=jax.tree_util.keystr(path))
    assert any(float(jnp.max(jnp.abs(a))) > 0 for a in jax.tree.leaves(ref))


def uses_custom_vjp(f, *args) -> bool:
    # A fresh wrapper each time: tracing is cached per function object, and the path is
    # chosen at trace time.
    return "custom_vjp_call" in str(jax.make_jaxpr(lambda *a: f(*a))(*args))


def test_unusual_or_narrow_convs_fall_back_to_xla(monkeypatch):
    monkeypatch.setenv(conv.ENV_VAR, "matmul")
    x = jnp.ones((1, 6, 6, 4))
    k = jnp.ones((3, 3, 2, 4))  # two feature groups
    y = conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    ref = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    np.testing.assert_array_equal(y, ref)
    assert not uses_custom_vjp(lambda x: conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC,
                                                                  feature_group_count=2), x)
    plain = lambda x, k: conv.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC)  # noqa: E731
    k4 = jnp.ones((3, 3, 4, 4))
    assert uses_custom_vjp(plain, x, k4)
    monkeypatch.setattr(conv, "MIN_CHANNELS", 32)
    assert not uses_custom_vjp(plain, x, k4)  # 4 channels: XLA's gradient is faster there
    assert uses_custom_vjp(plain, jnp.ones((1, 6, 6, 32)), jnp.ones((3, 3, 32, 32)))
    monkeypatch.setenv(conv.ENV_VAR, "xla")
    assert not uses_custom_vjp(plain, jnp.ones((1, 6, 6, 32)), jnp.ones((3, 3, 32, 32)))


def test_mode_is_validated(monkeypatch):
    monkeypatch.setenv(conv.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="HDRJAX_CONV_KERNEL_GRAD"):
        conv.kernel_grad_mode()
    monkeypatch.setenv(conv.ENV_VAR, "auto")
    assert conv.kernel_grad_mode() == ("matmul" if jax.default_backend() == "cpu" else "xla")
