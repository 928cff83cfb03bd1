"""Hallucination-Net: parameter counts, names, fusion init, blend, BatchNorm, encoder init, overfit."""
import numpy as np
import jax
import jax.numpy as jnp
import optax
import pytest
from flax.traverse_util import flatten_dict

from hdrjax.training.losses import hallucination_loss
from hdrjax.models.hallucination import (
    HallucinationNet,
    SkipFusion,
    blend_weight,
    encoder_init,
    highlight_blend,
    tf1_variable_map,
)
from hdrjax.models.vgg import (
    CONV_NAMES,
    CONV_SHAPES,
    TORCHVISION_TO_CAFFE_SCALE,
    VGGWeights,
    count_params,
    load_lpips_vgg16,
)

FUSIONS = [f"decoder_h{k}_fuse_skip_connection" for k in range(2, 8)]


def _init(model, x):
    # jit + the rbg PRNG: initialising 24.5 M truncated normals eagerly with threefry takes
    # tens of seconds on a small CPU; the key's impl stays local to this call.
    return jax.jit(lambda k: model.init(k, x, train=False))(jax.random.key(0, impl="rbg"))


@pytest.fixture(scope="module")
def net_and_vars():
    model = HallucinationNet()
    return model, _init(model, jnp.zeros((2, 32, 32, 3)))


@pytest.fixture(scope="module")
def lpips_weights():
    return load_lpips_vgg16()


def test_parameter_counts_and_tf1_names():
    shapes = jax.eval_shape(lambda: HallucinationNet().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    assert count_params(shapes["params"]) == 24_569_118  # §2.3
    assert count_params(shapes["params"]["encoder"]) == 14_714_688
    leaves = {(c,) + k for c in shapes for k in flatten_dict(shapes[c])}
    table = tf1_variable_map()
    mapped = {(c,) + p for c, p in table.values()}
    assert len(table) == len(mapped) == len(leaves) == 80
    assert mapped == leaves  # every variable has exactly one TF1 name and vice versa
    assert table["Hallucination_Net/encoder/h3/conv_2/W_conv2d"] == ("params", ("encoder", "conv3_2", "kernel"))
    assert table["Hallucination_Net/decoder/h3/decon2d/batch_norm_dc/moving_variance"] == (
        "batch_stats",
        ("decoder_h3_decon2d_batch_norm_dc", "var"),
    )


def test_input_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        jax.eval_shape(lambda: HallucinationNet().init(jax.random.key(0), jnp.zeros((1, 48, 32, 3)), train=False))


def test_skip_fusion_starts_as_a_sum():
    f = jax.random.normal(jax.random.key(1), (2, 4, 4, 8))
    s = jax.random.normal(jax.random.key(2), (2, 4, 4, 8))
    fusion = SkipFusion()
    variables = fusion.init(jax.random.key(0), f, s)
    np.testing.assert_allclose(fusion.apply(variables, f, s), f + s, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        fusion.init(jax.random.key(0), f, s[..., :4])


def test_fusions_in_the_net_are_identity_sums(net_and_vars):
    _, variables = net_and_vars
    for name in FUSIONS:
        kernel = np.asarray(variables["params"][name]["kernel"])
        _, _, cin, c = kernel.shape
        assert cin == 2 * c
        f = np.random.default_rng(0).standard_normal((5, c)).astype(np.float32)
        s = np.random.default_rng(1).standard_normal((5, c)).astype(np.float32)
        out = np.concatenate([f, s], -1) @ kernel[0, 0] + np.asarray(variables["params"][name]["bias"])
        np.testing.assert_allclose(out, f + s, rtol=1e-6, atol=1e-6)


def test_blend_weight_ramp():
    m = jnp.array([0.0, 0.5, 0.87, 0.88, 0.91, 0.94, 0.97, 1.0, 1.3])
    # The brightest channel decides; the other two are darker.
    x = jnp.stack([0.3 * m, m, 0.1 * m], axis=-1)
    alpha = blend_weight(x)[..., 0]
    np.testing.assert_allclose(alpha[:4], 0.0, atol=1e-6)
    np.testing.assert_allclose(alpha[4:7], (m[4:7] - 0.88) / 0.12, rtol=1e-5)
    np.testing.assert_allclose(alpha[7:], 1.0)
    assert blend_weight(x).shape == (9, 1)


def test_highlight_blend_only_touches_highlights():
    key1, key2 = jax.random.split(jax.random.key(4))
    x = jax.random.uniform(key1, (2, 16, 16, 3), maxval=1.0)
    r = 3.0 * jax.random.normal(key2, (2, 16, 16, 3))
    a = highlight_blend(x, r)
    dark = jnp.max(x, axis=-1) < 0.88
    assert bool(jnp.any(dark)) and bool(jnp.any(~dark))
    np.testing.assert_array_equal(jnp.where(dark[..., None], a, 0), jnp.where(dark[..., None], x, 0))
    assert bool(jnp.all(a >= x))  # only non-negative energy is added
    # Where alpha = 1, exactly relu(r) is added.
    full = jnp.ones((1, 1, 1, 3))
    np.testing.assert_allclose(highlight_blend(full, jnp.array([[[[-1.0, 0.5, 2.0]]]])), [[[[1.0, 1.5, 3.0]]]])


def test_batchnorm_train_vs_eval_and_bfloat16(net_and_vars):
    model, variables = net_and_vars
    x = jax.random.uniform(jax.random.key(5), (2, 32, 32, 3))

    @jax.jit  # one compiled program instead of thousands of eager dispatches
    def run(variables, x):
        both = model.apply(variables, x, train=False)
        alone = model.apply(variables, x[:1], train=False)
        out, state = model.apply(
            variables,
            x,
            train=True,
            mutable=["batch_stats", "intermediates"],
            capture_intermediates=lambda mdl, _: mdl.name == "encoder_h6_conv",
        )
        out_alone, _ = model.apply(variables, x[:1], train=True, mutable=["batch_stats"])
        half = HallucinationNet(dtype=jnp.bfloat16).apply(variables, x, train=False)
        return both, alone, out, state, out_alone, half

    both, alone, out, state, out_alone, half = run(variables, x)
    # Inference: running averages, so a sample's output does not depend on its batch.
    np.testing.assert_allclose(both[:1], alone, rtol=1e-4, atol=1e-5)
    # Training: batch statistics, running averages updated with momentum 0.9.
    h = state["intermediates"]["encoder_h6_conv"]["__call__"][0]
    stats = state["batch_stats"]["encoder_h6_batch_norm"]
    old = variables["batch_stats"]["encoder_h6_batch_norm"]
    np.testing.assert_allclose(stats["mean"], 0.9 * old["mean"] + 0.1 * jnp.mean(h, axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["var"], 0.9 * old["var"] + 0.1 * jnp.var(h, axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    assert not np.allclose(out, both, atol=1e-3)
    assert not np.allclose(out_alone, out[:1], atol=1e-3)  # batch statistics couple the samples
    # bfloat16 compute: float32 output close to the float32 net, parameters untouched.
    assert half.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(half)))
    assert float(jnp.mean(jnp.abs(half - both))) < 0.05 * float(jnp.mean(jnp.abs(both)))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables["params"]))


def test_encoder_init(net_and_vars, lpips_weights):
    _, variables = net_and_vars
    rng = np.random.default_rng(7)
    tree = {
        n: {"kernel": rng.standard_normal(CONV_SHAPES[n]).astype(np.float32), "bias": rng.standard_normal(CONV_SHAPES[n][-1]).astype(np.float32)}
        for n in CONV_NAMES
    }
    caffe = VGGWeights(params=tree, preprocessing="caffe", source="synthetic")
    new = encoder_init(variables, caffe)
    for n in CONV_NAMES:
        np.testing.assert_array_equal(new["params"]["encoder"][n]["kernel"], tree[n]["kernel"])
        np.testing.assert_array_equal(new["params"]["encoder"][n]["bias"], tree[n]["bias"])
    assert new["params"]["decoder_h1_decon2d"] is variables["params"]["decoder_h1_decon2d"]
    assert new["batch_stats"] is variables["batch_stats"]
    assert not np.array_equal(variables["params"]["encoder"]["conv2_1"]["kernel"], tree["conv2_1"]["kernel"])  # pure
    only_params = encoder_init(variables["params"], caffe)
    np.testing.assert_array_equal(only_params["encoder"]["conv5_3"]["kernel"], tree["conv5_3"]["kernel"])

    # torchvision weights: converted to the Caffe input convention, activations ×57.6 by default.
    auto = encoder_init(variables, lpips_weights)["params"]["encoder"]
    plain = encoder_init(variables, lpips_weights, activation_scale=1.0)["params"]["encoder"]
    lp = lpips_weights.params
    np.testing.assert_array_equal(plain["conv3_1"]["kernel"], lp["conv3_1"]["kernel"])
    np.testing.assert_array_equal(plain["conv3_1"]["bias"], lp["conv3_1"]["bias"])
    np.testing.assert_allclose(auto["conv3_1"]["bias"], TORCHVISION_TO_CAFFE_SCALE * lp["conv3_1"]["bias"], rtol=1e-6)
    np.testing.assert_allclose(auto["conv1_1"]["kernel"], TORCHVISION_TO_CAFFE_SCALE * plain["conv1_1"]["kernel"], rtol=1e-6)
    # conv1_1 now reads BGR 0-255 input: the R weights moved to input channel 2, scaled 1/(255·std_R).
    np.testing.assert_allclose(plain["conv1_1"]["kernel"][:, :, 2], lp["conv1_1"]["kernel"][:, :, 0] / (255 * 0.229), rtol=1e-5)
    with pytest.raises(TypeError, match="VGGWeights"):
        encoder_init(variables, tree)


def test_encoder_init_refuses_a_narrower_model(lpips_weights):
    from hdrjax.errors import ConfigError

    shapes = jax.eval_shape(lambda: HallucinationNet(width=0.25).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                                                      train=False))
    assert shapes["params"]["encoder"]["conv1_1"]["kernel"].shape == (3, 3, 3, 16)
    variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    # VGG-16's weights fit only width 1.0: one error naming the options, not a shape mismatch.
    with pytest.raises(ConfigError, match=r"config.model.width = 1.0.*config.init.vgg = ''"):
        encoder_init(variables, lpips_weights)


def _light_scene(cy, cx, color, size=32):
    """Linear HDR: a dim gradient plus a hard-edged light (radiance 2…4) that the camera clips."""
    yy, xx = jnp.meshgrid(jnp.linspace(0, 1, size), jnp.linspace(0, 1, size), indexing="ij")
    base = 0.15 + 0.4 * xx[..., None] * jnp.array([1.0, 0.8, 0.6])
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    disk = (d2 < 0.2**2).astype(jnp.float32)[..., None]
    light = (2.0 + 2.0 * jnp.exp(-d2 / (2 * 0.15**2)))[..., None] * jnp.array(color)
    return base * (1 - disk) + light * disk


@pytest.mark.slow
def test_overfits_one_batch(net_and_vars, lpips_weights):
    """24.5 M-parameter net, 32×32, batch 2: the hallucination L1 falls ≥ 10× in 25 Adam steps.

    lr 1e-3 (10× the reference's) so that a few dozen steps suffice; measured on a loaded
    2-core CPU: ≥ 10× after ~12 steps, ~25× after 25.
    """
    model, variables = net_and_vars
    variables = encoder_init(variables, lpips_weights)  # an ImageNet encoder, as in training
    target = jnp.stack([_light_scene(0.4, 0.5, jnp.array([1.0, 0.9, 0.8])), _light_scene(0.6, 0.3, jnp.array([0.8, 0.9, 1.0]))])
    x = jnp.clip(target, 0.0, 1.0)
    assert float(jnp.mean(jnp.max(x, -1) >= 1.0)) > 0.1  # a real clipped highlight to recover
    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, batch_stats, opt_state):
        def loss_fn(p):
            r, upd = model.apply({"params": p, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
            loss, _ = hallucination_loss(highlight_blend(x, r), target, None, None, perceptual_weight=0.0, tv_weight=0.0)
            return loss, upd["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = opt.init(params)
    losses = []
    for _ in range(25):
        params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses))
    assert losses[0] / min(losses[-3:]) >= 10.0, losses
