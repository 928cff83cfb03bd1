"""Stage losses: values against literal re-implementations of the reference, masks, gradients."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from hdrjax.training import losses
from hdrjax.training.losses import (
    JOINT_SPACES,
    dequantization_loss,
    hallucination_loss,
    joint_loss,
    linearization_loss,
)
from hdrjax.models.vgg import load_lpips_vgg16
from hdrjax.tonemap import log_tone

B, H, W = 3, 16, 16


@pytest.fixture(scope="module")
def vgg():
    return load_lpips_vgg16()


def _images(seed, scale=1.0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return scale * jax.random.uniform(k1, (B, H, W, 3)), scale * jax.random.uniform(k2, (B, H, W, 3))


def _np_hallucination_reference(y, x, mask, perceptual=0.0):
    """train_hallucination_net.py written out in numpy: L1 + 0.001·perc + 0.1·batch TV, masked."""
    y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)
    ty = np.log(1 + 10 * y) / np.log(11.0)
    tx = np.log(1 + 10 * x) / np.log(11.0)
    l1 = np.mean(np.abs(ty - tx), axis=(1, 2, 3))
    pad_x = np.pad(ty, [(0, 0), (0, 1), (0, 0), (0, 0)], mode="symmetric")
    pad_y = np.pad(ty, [(0, 0), (0, 0), (0, 1), (0, 0)], mode="symmetric")
    tv = np.mean(np.abs(pad_x[:, 1:] - pad_x[:, :-1])) + np.mean(np.abs(pad_y[:, :, 1:] - pad_y[:, :, :-1]))
    return np.mean((l1 + 0.001 * perceptual + 0.1 * tv) * np.asarray(mask))


def test_zero_when_prediction_equals_target(vgg):
    a, _ = _images(0)
    assert float(dequantization_loss(a, a)[0]) == 0.0
    curve = jnp.tile(jnp.linspace(0, 1, 1024), (B, 1))
    assert float(linearization_loss(a, a, curve, curve)[0]) == 0.0
    loss, terms = hallucination_loss(a, a, None, vgg)
    assert float(terms["l1"]) == 0.0 and float(terms["perceptual"]) == 0.0
    # TV regularises the prediction itself: only it remains, and it is 0 for a flat image.
    np.testing.assert_allclose(loss, 0.1 * terms["tv"], rtol=1e-6)
    flat = jnp.full((B, H, W, 3), 0.7)
    assert float(hallucination_loss(flat, flat, None, vgg)[0]) == 0.0
    assert float(joint_loss(a, a)[0]) == 0.0


def test_dequantization_clips_prediction():
    t = jnp.ones((1, 4, 4, 3))
    assert float(dequantization_loss(1.7 * t, t)[0]) == 0.0
    np.testing.assert_allclose(dequantization_loss(-t, 0.5 * t)[0], 0.25)


def test_hallucination_matches_numpy_reference():
    y, x = _images(1, scale=3.0)
    mask = jnp.array([1.0, 0.0, 1.0])
    loss, terms = hallucination_loss(y, x, mask, None, perceptual_weight=0.0)
    np.testing.assert_allclose(loss, _np_hallucination_reference(y, x, mask), rtol=1e-5)
    np.testing.assert_allclose(loss, terms["l1"] + 0.1 * terms["tv"], rtol=1e-6)


def test_perceptual_term_is_pool1_to_3_l1_of_frozen_vgg(vgg):
    y, x = _images(2, scale=2.0)
    loss, terms = hallucination_loss(y, x, None, vgg, tv_weight=0.0)
    net = vgg.module(last_block=3)
    fy = net.apply(vgg.variables, log_tone(y))
    fx = net.apply(vgg.variables, log_tone(x))
    want = sum(jnp.mean(jnp.abs(fy[p] - fx[p]), axis=(1, 2, 3)) for p in ("pool1", "pool2", "pool3"))
    np.testing.assert_allclose(terms["perceptual"], jnp.mean(want), rtol=1e-4)
    np.testing.assert_allclose(loss, terms["l1"] + 0.001 * terms["perceptual"], rtol=1e-6)
    with pytest.raises(ValueError, match="vgg_variables"):
        hallucination_loss(y, x, None, None)
    with pytest.raises(TypeError, match="VGGWeights"):
        hallucination_loss(y, x, None, vgg.variables)


def test_gradients_finite_and_vgg_frozen(vgg):
    y, x = _images(3, scale=2.0)
    mask = jnp.array([1.0, 0.0, 1.0])

    def total(pred, vgg_weights):
        curve = jnp.tile(jnp.linspace(0, 1, 1024), (B, 1))
        return (
            dequantization_loss(pred, x / 2, mask)[0]
            + linearization_loss(pred, x, curve * pred[:, 0, 0, :1], curve, mask)[0]
            + hallucination_loss(pred, x, mask, vgg_weights)[0]
            + joint_loss(pred, x)[0]
        )

    g_pred, g_vgg = jax.jit(jax.grad(total, argnums=(0, 1)))(y, vgg)
    assert bool(jnp.all(jnp.isfinite(g_pred))) and float(jnp.max(jnp.abs(g_pred))) > 0
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree_util.tree_leaves(g_vgg.params))
    # Gradients at a perfect prediction (|0| in L1, zero TV) are finite too.
    flat = jnp.full((B, H, W, 3), 0.5)
    g0 = jax.jit(jax.grad(lambda p: hallucination_loss(p, flat, mask, vgg)[0] + joint_loss(p, flat)[0]))(flat)
    assert bool(jnp.all(jnp.isfinite(g0)))


def test_mask_drops_a_sample_but_keeps_it_in_the_denominator():
    y, x = _images(4, scale=2.0)
    mask = jnp.array([1.0, 0.0, 1.0])
    curve_a = jax.random.uniform(jax.random.key(9), (B, 1024))
    curve_b = jnp.tile(jnp.linspace(0, 1, 1024), (B, 1))
    cases = [
        (dequantization_loss, (jnp.clip(y, 0, 1), jnp.clip(x, 0, 1)), {}),
        (linearization_loss, (y, x, curve_a, curve_b), {}),
        (hallucination_loss, (y, x), {"perceptual_weight": 0.0, "tv_per_sample": True}),
        (joint_loss, (y, x), {}),
    ]
    for fn, args, kw in cases:
        singles = [float(fn(*[a[i : i + 1] for a in args], **kw)[0]) for i in range(B)]
        masked = fn(*args, mask, **kw)  # mask follows the arrays in every signature
        np.testing.assert_allclose(masked[0], (singles[0] + singles[2]) / B, rtol=1e-5, err_msg=fn.__name__)
        # What the masked sample holds does not matter.
        junk = [a.at[1].set(a[1] * 7.0 + 0.3) for a in args]
        again = fn(*junk, mask, **kw)
        np.testing.assert_allclose(again[0], masked[0], rtol=1e-5, err_msg=fn.__name__)


def test_reference_batch_scalars():
    y, x = _images(5, scale=2.0)
    mask = jnp.array([1.0, 0.0, 1.0])
    # Hallucination TV (default, reference): a batch scalar times each sample's mask, so the
    # masked sample still counts through it.
    _, terms = hallucination_loss(y, x, mask, None, perceptual_weight=0.0)
    tv_all = losses._total_variation(log_tone(y))
    np.testing.assert_allclose(terms["tv"], jnp.mean(tv_all) * jnp.mean(mask), rtol=1e-6)
    junk = y.at[1].set(jnp.flip(y[1], 0) * 3.0)
    junk_loss = hallucination_loss(junk, x, mask, None, perceptual_weight=0.0)[0]
    assert abs(float(junk_loss - hallucination_loss(y, x, mask, None, perceptual_weight=0.0)[0])) > 1e-4
    # Linearization, curve_term="batch": the value of the reference's [b,1,1,1] + [b,1] broadcast.
    curve = jax.random.uniform(jax.random.key(8), (B, 1024))
    curve_true = jnp.tile(jnp.linspace(0, 1, 1024), (B, 1))
    mse = np.mean((np.asarray(y) - np.asarray(x)) ** 2, axis=(1, 2, 3), keepdims=True)  # [b,1,1,1]
    crf = np.mean((np.asarray(curve) - np.asarray(curve_true)) ** 2, axis=1, keepdims=True)  # [b,1]
    literal = np.mean((mse + 0.1 * crf) * np.asarray(mask).reshape(B, 1, 1, 1))  # broadcasts to [b,1,b,1]
    got = linearization_loss(y, x, curve, curve_true, mask, curve_term="batch")[0]
    np.testing.assert_allclose(got, literal, rtol=1e-5)
    per_sample = linearization_loss(y, x, curve, curve_true, mask)[0]
    np.testing.assert_allclose(per_sample, np.mean((mse[:, 0, 0, 0] + 0.1 * crf[:, 0]) * np.asarray(mask)), rtol=1e-5)
    with pytest.raises(ValueError, match="curve_term"):
        linearization_loss(y, x, curve, curve_true, mask, curve_term="other")
    with pytest.raises(ValueError, match="mask has 2 entries"):
        dequantization_loss(y, x, jnp.ones(2))


def test_joint_loss_is_scale_invariant_per_sample():
    r, h = _images(6, scale=2.0)
    base = joint_loss(r, h)[0]
    scales_r = jnp.array([3.0, 0.2, 11.0]).reshape(B, 1, 1, 1)
    scales_h = jnp.array([0.5, 40.0, 1.0]).reshape(B, 1, 1, 1)
    np.testing.assert_allclose(joint_loss(r * scales_r, h * scales_h)[0], base, rtol=1e-4)
    assert float(base) > 0.01
    # Mean 0.5 normalisation, then L1 in the log-tone domain (§3.4), written out.
    rn = np.asarray(r) / (1e-6 + np.asarray(r).mean(axis=(1, 2, 3), keepdims=True)) * 0.5
    hn = np.asarray(h) / (1e-6 + np.asarray(h).mean(axis=(1, 2, 3), keepdims=True)) * 0.5

    def t(v):
        return np.log(1 + 10 * v) / np.log(11.0)

    np.testing.assert_allclose(base, np.mean(np.abs(t(rn) - t(hn))), rtol=1e-5)


def _metric_pu21(x, exposed):
    """The evaluation's own units, written from its parts: display model, PU21 per channel, / 256."""
    from hdrjax.evaluation import metrics

    return metrics.pu21_encode(metrics.display_model(x, exposed)) / metrics.PU21_PEAK


def test_joint_loss_in_pu21_weighs_deep_shadows_as_the_metric_does():

    # One scene (peak 4 → 4000 cd/m²): the same relative error of 20 % in a deep shadow (2⁻⁹)
    # and in a mid tone (0.25). The reference's log tone hardly sees the first; PU21 does.
    exposed = jnp.full((1, 4, 4, 3), 0.25).at[0, 0, 0].set(4.0).at[0, 1, 1].set(2.0 ** -9)
    dark = exposed.at[0, 1, 1].multiply(1.2)
    mid = exposed.at[0, 2, 2].multiply(1.2)
    loss = {(space, name): float(joint_loss(x, exposed, space=space)[0])
            for space in JOINT_SPACES for name, x in (("dark", dark), ("mid", mid), ("exact", exposed))}
    assert loss["pu21", "exact"] == 0.0
    assert loss["log_tone", "dark"] < 0.05 * loss["log_tone", "mid"]
    assert loss["pu21", "dark"] > 0.1 * loss["pu21", "mid"] > 0

    err = _metric_pu21(dark, exposed) - _metric_pu21(exposed, exposed)  # the metric's MSE
    assert loss["pu21", "dark"] == pytest.approx(float(jnp.mean(jnp.square(err))), rel=1e-4)
    # Not scale invariant: the evaluation scores the camera's scale, so a wrong scale costs.
    assert float(joint_loss(exposed * 1.5, exposed, space="pu21")[0]) > 1e-3
    with pytest.raises(ValueError, match="space"):
        joint_loss(dark, exposed, space="log")
    # R = relu(...) is often exactly 0 in the dark: a finite gradient there (none below PU21's
    # 0.005 cd/m², where the metric is flat too), and a live one just above.
    tiny = exposed.at[0, 3].set(0.0).at[0, 2].set(1e-4)
    grad = jax.grad(lambda x: joint_loss(x, exposed, space="pu21")[0])(tiny)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad[0, 2]).min()) > 0


def test_linearization_image_term_in_pu21_weighs_shadows_as_the_metric_does():

    # One scene (peak 4 → 4000 cd/m²) and the same linear error of 0.01 at a dark and at a bright pixel.
    exposed = jnp.full((1, 4, 4, 3), 0.02).at[0, 0, 0].set(4.0).at[0, 3, 3].set(0.8)
    clipped = jnp.clip(exposed, 0.0, 1.0)
    dark = clipped.at[0, 1, 1].add(0.01)
    bright = clipped.at[0, 3, 3].add(0.01)
    curve = jnp.zeros((1, 1024))
    loss = {}
    for space in ("linear", "pu21"):
        for name, linear in (("dark", dark), ("bright", bright), ("exact", clipped)):
            loss[space, name] = float(linearization_loss(linear, clipped, curve, curve, image_space=space,
                                                         exposed=exposed)[0])
    assert loss["linear", "dark"] == pytest.approx(loss["linear", "bright"], rel=1e-4)
    assert loss["pu21", "exact"] == 0.0
    assert loss["pu21", "dark"] > 10 * loss["pu21", "bright"] > 0
    # The value is the metric's: PU21 of the display model (the scene peak → 4000 cd/m²), / 256.
    want = float(jnp.mean(jnp.square(_metric_pu21(dark, exposed) - _metric_pu21(clipped, exposed))))
    assert loss["pu21", "dark"] == pytest.approx(want, rel=1e-4)
    # The curve term is the reference's in both spaces; exposed is required for pu21.
    other = curve + 0.1
    assert float(linearization_loss(clipped, clipped, other, curve, image_space="pu21", exposed=exposed)[0]) == \
        pytest.approx(float(linearization_loss(clipped, clipped, other, curve)[0]), rel=1e-6)
    with pytest.raises(ValueError, match="needs exposed"):
        linearization_loss(dark, clipped, curve, curve, image_space="pu21")
    with pytest.raises(ValueError, match="image_space"):
        linearization_loss(dark, clipped, curve, curve, image_space="log")
    grad = jax.grad(lambda x: linearization_loss(x, clipped, curve, curve, image_space="pu21", exposed=exposed)[0])(dark)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad[0, 1, 1]).max()) > 0


def test_log_curve_term_is_minimised_by_the_geometric_mean():
    # curve_space="log" (issue #20): MSE of log(g + eps). Over curves an image cannot tell
    # apart, its best single answer is their geometric mean (shifted by eps), below the
    # arithmetic mean that the reference's "linear" term settles on.
    eps = losses.CURVE_LOG_EPS
    y, x = _images(7)
    truth = jnp.stack([jnp.linspace(0, 1, 1024) ** p for p in (1.5, 2.2, 3.5)])  # [B, 1024]

    def curve_term(g, space):
        return linearization_loss(y, x, jnp.tile(g, (B, 1)), truth, curve_space=space)[1]["curve_mse"]

    geometric = jnp.exp(jnp.mean(jnp.log(truth + eps), axis=0)) - eps
    arithmetic = jnp.mean(truth, axis=0)
    for space, best, other in (("log", geometric, arithmetic), ("linear", arithmetic, geometric)):
        grad = jax.grad(curve_term)(best, space)
        np.testing.assert_allclose(grad, 0.0, atol=1e-6, err_msg=space)
        assert float(curve_term(best, space)) < float(curve_term(other, space)), space
    assert float(jnp.mean(geometric[:256])) < 0.6 * float(jnp.mean(arithmetic[:256]))  # the dark quarter
    # The value, written out.
    g = jnp.tile(arithmetic, (B, 1))
    want = np.mean((np.log(np.asarray(g) + eps) - np.log(np.asarray(truth) + eps)) ** 2)
    np.testing.assert_allclose(curve_term(arithmetic, "log"), want, rtol=1e-5)
    with pytest.raises(ValueError, match="curve_space"):
        linearization_loss(y, x, g, truth, curve_space="pu21")


def test_log_linear_dequantization_weighs_shadow_noise_as_the_hdr_output_does():
    # deq_space="log_linear" (issue #20): the same error of 2 codes costs far more in the
    # shadows than in the highlights, because the true inverse CRF is steep there; in LDR codes
    # ("ldr", the reference) both cost the same.
    g = jnp.stack([jnp.linspace(0, 1, 1024) ** p for p in (2.2, 3.0, 1.8)])  # [B, 1024] inverse CRFs
    noise = 2 / 255 * jnp.sign(jax.random.normal(jax.random.key(3), (B, H, W, 3)))
    cost = {}
    for level in (0.05, 0.8):
        target = jnp.full((B, H, W, 3), level)
        for space in losses.DEQ_SPACES:
            cost[level, space] = float(dequantization_loss(target + noise, target, space=space, inverse_crf=g)[0])
            assert float(dequantization_loss(target, target, space=space, inverse_crf=g)[0]) == 0.0
    np.testing.assert_allclose(cost[0.05, "ldr"], cost[0.8, "ldr"], rtol=1e-5)
    assert cost[0.05, "log_linear"] > 20 * cost[0.8, "log_linear"]
    # The value, written out for one sample's curve (np.interp is apply_curve's lookup).
    target = jnp.full((B, H, W, 3), 0.05)
    pred = target + noise
    lut = np.linspace(0, 1, 1024)
    lin = [np.stack([np.interp(np.asarray(x[i]), lut, np.asarray(g[i])) for i in range(B)]) for x in (pred, target)]
    want = np.mean((np.log(lin[0] + losses.CURVE_LOG_EPS) - np.log(lin[1] + losses.CURVE_LOG_EPS)) ** 2)
    np.testing.assert_allclose(cost[0.05, "log_linear"], want, rtol=1e-4)
    grad = jax.grad(lambda p: dequantization_loss(p, target, space="log_linear", inverse_crf=g)[0])(pred)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0
    with pytest.raises(ValueError, match="inverse CRF"):
        dequantization_loss(pred, target, space="log_linear")
    with pytest.raises(ValueError, match="space"):
        dequantization_loss(pred, target, space="pu21", inverse_crf=g)
