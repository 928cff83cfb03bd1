"""Legacy bilinear resize, mirror padding and the residual U-Net block."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdrjax.models import layers


def _row(values):
    """A 1×1×W×1 image from a list (W axis)."""
    return jnp.asarray(values, jnp.float32).reshape(1, 1, -1, 1)


def test_upsample2x_legacy_1d_by_hand():
    # Even outputs copy k, odd outputs average k and k+1, the last one copies the border.
    x = _row([1.0, 3.0, 7.0])
    out = layers.upsample2x_legacy(x)
    assert out.shape == (1, 2, 6, 1)
    np.testing.assert_array_equal(out[0, 0, :, 0], [1, 2, 3, 5, 7, 7])
    np.testing.assert_array_equal(out[0, 1, :, 0], [1, 2, 3, 5, 7, 7])  # H = 1: both rows copy
    # Along H the same rule.
    col = layers.upsample2x_legacy(x.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(col[0, :, 0, 0], [1, 2, 3, 5, 7, 7])


def test_upsample2x_legacy_2d_by_hand():
    x = jnp.asarray([[0.0, 4.0], [8.0, 12.0]]).reshape(1, 2, 2, 1)
    expected = np.array(
        [
            [0, 2, 4, 4],
            [4, 6, 8, 8],
            [8, 10, 12, 12],
            [8, 10, 12, 12],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(layers.upsample2x_legacy(x)[0, :, :, 0], expected)


def test_upsample2x_legacy_keeps_channels_and_batch_apart():
    x = jnp.stack([jnp.full((2, 2), 1.0), jnp.full((2, 2), 5.0)], axis=-1)[None]  # 2 channels
    x = jnp.concatenate([x, 10 * x])  # batch 2
    out = layers.upsample2x_legacy(x)
    assert out.shape == (2, 4, 4, 2)
    np.testing.assert_array_equal(out[0, ..., 0], 1.0)
    np.testing.assert_array_equal(out[0, ..., 1], 5.0)
    np.testing.assert_array_equal(out[1, ..., 1], 50.0)


def test_resize_bilinear_legacy_other_ratios_by_hand():
    # 3 -> 2: output j samples 1.5·j: [x0, (x1 + x2)/2].
    np.testing.assert_allclose(layers.resize_bilinear_legacy(_row([1.0, 3.0, 7.0]), (1, 2))[0, 0, :, 0], [1, 5])
    # 2 -> 3: positions 0, 2/3, 4/3 (upper neighbour clamped): [x0, x0 + 2/3 (x1 - x0), x1].
    np.testing.assert_allclose(
        layers.resize_bilinear_legacy(_row([0.0, 3.0]), (1, 3))[0, 0, :, 0], [0, 2, 3], rtol=1e-6
    )


def test_fast_upsample_equals_general_legacy_resize():
    x = np.random.default_rng(0).uniform(size=(2, 5, 7, 3)).astype(np.float32)
    fast = jax.jit(layers.upsample2x_legacy)(x)
    general = jax.jit(layers.resize_bilinear_legacy, static_argnums=1)(x, (10, 14))
    np.testing.assert_allclose(fast, general, rtol=0, atol=1e-6)


def test_legacy_resize_differs_from_half_pixel_resize():
    # The reason the legacy rule is implemented: jax.image.resize uses half-pixel centres.
    x = _row([1.0, 3.0, 7.0])
    half_pixel = jax.image.resize(x, (1, 1, 6, 1), "bilinear")
    assert not np.allclose(half_pixel, layers.upsample2x_legacy(x)[:, :1])


def test_avg_pool():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(layers.avg_pool_2x2(x)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    # VALID: an odd trailing row/column is dropped, as tf.layers.average_pooling2d(x, 2, 2).
    odd = jnp.arange(9.0).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(layers.avg_pool_2x2(odd)[0, :, :, 0], [[2.0]])


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_mirror_pad_matches_numpy(mode):
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    out = layers.mirror_pad(jnp.asarray(x), (2, 1), (0, 3), mode)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 1), (0, 3), (0, 0)), mode=mode))


def test_mirror_pad_modes_by_hand_and_bad_mode():
    x = _row([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(layers.mirror_pad(x, (0, 0), (2, 2), "reflect")[0, 0, :, 0], [3, 2, 1, 2, 3, 2, 1])
    np.testing.assert_array_equal(
        layers.mirror_pad(x, (0, 0), (2, 2), "symmetric")[0, 0, :, 0], [2, 1, 1, 2, 3, 3, 2]
    )
    with pytest.raises(ValueError, match="mode"):
        layers.mirror_pad(x, (0, 0), (1, 1), "edge")


@pytest.mark.parametrize("size,multiple,border", [(37, 32, 0), (53, 32, 0), (64, 32, 0), (64, 32, 32), (5, 16, 3)])
def test_pad_to_multiple_and_crop_round_trip(size, multiple, border):
    x = np.random.default_rng(size).uniform(size=(1, size, size + 1, 3)).astype(np.float32)
    padded, pads = layers.pad_to_multiple(x, multiple, border=border)
    assert padded.shape[1] % multiple == 0 and padded.shape[2] % multiple == 0
    assert min(pads[0] + pads[1]) >= border
    # Split evenly (the larger half after), symmetric mirror, so the original sits in the middle.
    assert pads[0][1] - pads[0][0] in (0, 1)
    np.testing.assert_array_equal(layers.crop(padded, pads), x)


def test_pad_to_multiple_is_a_no_op_on_multiples():
    x = jnp.zeros((1, 64, 32, 3))
    padded, pads = layers.pad_to_multiple(x, 32)
    assert padded is x and pads == ((0, 0), (0, 0))


def test_pad_to_multiple_uses_symmetric_mirror():
    x = _row([1.0, 2.0, 3.0])  # 1×3: pad to 1×8 (H padded to 8 too)
    padded, pads = layers.pad_to_multiple(x, 8)
    assert pads == ((3, 4), (2, 3))
    np.testing.assert_array_equal(padded[0, 0, :, 0], [2, 1, 1, 2, 3, 3, 2, 1])


def test_tf_layer_names():
    assert [layers.tf_layer_name(i) for i in (0, 1, 18)] == ["conv2d", "conv2d_1", "conv2d_18"]


def test_residual_unet_rejects_sizes_not_multiple_of_16():
    net = layers.ResidualUNet()
    with pytest.raises(ValueError, match="multiples of 16"):
        jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 24, 32, 3)))


def test_residual_unet_bad_activation_names():
    for kwargs in ({"residual_activation": "sigmoid"}, {"output_activation": "elu"}):
        with pytest.raises(ValueError, match="activation"):
            jax.eval_shape(layers.ResidualUNet(**kwargs).init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
