"""The matmul kernel gradient (hdrjax/models/conv.py) equals XLA's own; the model option
conv_kernel_grad reaches every convolution, and "xla" allows forward-mode autodiff."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hdrjax.models import build, conv
from hdrjax.models.layers import tf_conv

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture(autouse=True)
def every_width_takes_the_matmul_path(monkeypatch):
    monkeypatch.setattr(conv, "MIN_CHANNELS", 1)  # small test shapes, the same code path


def grads(mode, x, k, strides, padding, dtype=jnp.float32):
    def loss(x, k):
        y = conv.conv_general_dilated(x.astype(dtype), k.astype(dtype), strides, padding, dimension_numbers=NHWC,
                                      kernel_grad=mode)
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
def test_matmul_kernel_grad_equals_xla(shape, kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    k = jnp.asarray(rng.standard_normal(kernel + (shape[-1], 4)).astype(np.float32))
    v_ref, (dx_ref, dk_ref) = grads("xla", x, k, strides, padding)
    v, (dx, dk) = grads("matmul", x, k, strides, padding)
    np.testing.assert_allclose(v, v_ref, rtol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-5, atol=1e-4)
    assert dk.dtype == k.dtype


def test_bfloat16_kernel_grad_matches_and_keeps_dtype():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 16, 16, 8)).astype(np.float32))
    k = jnp.asarray(0.2 * rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
    _, (_, dk_ref) = grads("xla", x, k, (1, 1), "SAME", jnp.bfloat16)
    _, (_, dk) = grads("matmul", x, k, (1, 1), "SAME", jnp.bfloat16)
    assert dk.dtype == jnp.float32  # the cast back to the f32 parameter happens outside
    scale = float(jnp.max(jnp.abs(dk_ref)))
    np.testing.assert_allclose(dk, dk_ref, atol=0.02 * scale)


class TinyNet(nn.Module):
    """The flax path every network takes (`tf_conv` → nn.Conv → our function): 3×3, strided
    7×7 and 1×1 convs, with and without bias, as in the U-Nets and the ResNet trunk."""

    kernel_grad: str = "auto"

    @nn.compact
    def __call__(self, x):
        g = self.kernel_grad
        h = nn.relu(tf_conv(8, 3, "a", dtype=jnp.float32, kernel_grad=g)(x))
        h = nn.relu(tf_conv(8, 7, "b", dtype=jnp.float32, stride=2, use_bias=False, kernel_grad=g)(h))
        return tf_conv(3, 1, "c", dtype=jnp.float32, stride=2, kernel_grad=g)(h)


def test_a_network_trains_the_same_either_way():
    x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (2, 20, 20, 3)).astype(np.float32))
    variables = TinyNet().init(jax.random.key(0), x)
    target = jnp.zeros((2, 5, 5, 3))

    def param_grads(mode):
        net = TinyNet(kernel_grad=mode)
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
    matmul = conv.conv_with_kernel_grad("matmul")
    x = jnp.ones((1, 6, 6, 4))
    k = jnp.ones((3, 3, 2, 4))  # two feature groups
    y = matmul(x, k, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    ref = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    np.testing.assert_array_equal(y, ref)
    assert not uses_custom_vjp(lambda x: matmul(x, k, (1, 1), "SAME", dimension_numbers=NHWC,
                                                feature_group_count=2), x)

    def plain(x, k):
        return matmul(x, k, (1, 1), "SAME", dimension_numbers=NHWC)

    k4 = jnp.ones((3, 3, 4, 4))
    assert uses_custom_vjp(plain, x, k4)
    monkeypatch.setattr(conv, "MIN_CHANNELS", 32)
    assert not uses_custom_vjp(plain, x, k4)  # 4 channels: XLA's gradient is faster there
    x32, k32 = jnp.ones((1, 6, 6, 32)), jnp.ones((3, 3, 32, 32))
    assert uses_custom_vjp(plain, x32, k32)
    xla = conv.conv_with_kernel_grad("xla")
    assert not uses_custom_vjp(lambda x, k: xla(x, k, (1, 1), "SAME", dimension_numbers=NHWC), x32, k32)


def test_mode_is_validated():
    with pytest.raises(ValueError, match="conv_kernel_grad='fast'"):
        conv.kernel_grad_mode("fast")
    with pytest.raises(ValueError, match="auto, matmul, xla"):
        conv.conv_with_kernel_grad("fast")
    assert conv.kernel_grad_mode("auto") == ("matmul" if jax.default_backend() == "cpu" else "xla")
    assert conv.kernel_grad_mode("xla") == "xla" and conv.kernel_grad_mode("matmul") == "matmul"
    # One function per mode: modules built with equal options compare equal (jit caches on them).
    assert conv.conv_with_kernel_grad("xla") is conv.conv_with_kernel_grad("xla")


# -------------------------------------------------------------- the model option


def tiny(make_tiny_config, mode):
    config = make_tiny_config()
    config.model.conv_kernel_grad = mode
    return build.build_model(config)


def conv_layers(variables) -> int:
    """Number of convolutions of a SingleHDR: 4-D kernels but the 1×1 skip fusions (matmuls)."""
    paths = [jax.tree_util.keystr(p) for p, a in jax.tree_util.tree_leaves_with_path(variables["params"])
             if a.ndim == 4]
    return sum("fuse_skip_connection" not in p for p in paths)


def test_option_reaches_every_convolution_of_the_model(tiny_variables, make_tiny_config):
    x = jnp.zeros((1, 32, 32, 3))

    def calls(mode):
        model = tiny(make_tiny_config, mode)
        return str(jax.make_jaxpr(lambda x: model.apply(tiny_variables, x).output)(x)).count("custom_vjp_call[")

    # MIN_CHANNELS is 1 here (autouse fixture): every convolution takes the option's path.
    assert calls("matmul") == conv_layers(tiny_variables) == 19 + 19 + 18 + 20  # Deq, Ref, Lin, Hal
    assert calls("xla") == 0
    with pytest.raises(build.ConfigError, match="config.model.conv_kernel_grad: 'fast'"):
        tiny(make_tiny_config, "fast")


def test_forward_mode_autodiff_needs_xla(tiny_variables, make_tiny_config):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32))
    v = jnp.asarray(rng.standard_normal(x.shape).astype(np.float32))

    def output(model):
        return lambda x: model.apply(tiny_variables, x).output

    # Through the whole model with "xla" (compiled once: 4 networks on 32² take seconds).
    y, jv = jax.jit(lambda x, v: jax.jvp(output(tiny(make_tiny_config, "xla")), (x,), (v,)))(x, v)
    assert jv.shape == y.shape == x.shape and bool(jnp.all(jnp.isfinite(jv))) and float(jnp.max(jnp.abs(jv))) > 0
    # Through the matmul path: one error that names the option (raised while tracing).
    with pytest.raises(conv.ForwardModeError, match="conv_kernel_grad='xla'"):
        jax.jvp(output(tiny(make_tiny_config, "matmul")), (x,), (v,))


def test_forward_mode_agrees_with_the_matmul_reverse_mode(tiny_variables, make_tiny_config):
    # <u, J v> by jvp ("xla") equals <J^T u, v> by the matmul path's vjp, on one network (a
    # U-Net of 19 convolutions; the whole model takes 3x the compile time for the same check).
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32))
    u, v = (jnp.asarray(rng.standard_normal(x.shape).astype(np.float32)) for _ in range(2))

    def dequantize(model):
        return lambda x: model.apply(tiny_variables, x, method=model.dequantize)

    _, jv = jax.jit(lambda x, v: jax.jvp(dequantize(tiny(make_tiny_config, "xla")), (x,), (v,)))(x, v)
    jtu = jax.jit(jax.grad(lambda x: jnp.vdot(u, dequantize(tiny(make_tiny_config, "matmul"))(x))))(x)
    forward, reverse = float(jnp.vdot(u, jv)), float(jnp.vdot(jtu, v))
    assert abs(forward) > 1e-3
    assert forward == pytest.approx(reverse, rel=1e-4)
