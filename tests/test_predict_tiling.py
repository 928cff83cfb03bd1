"""The tiles engine (hdrjax.inference.tiles; `predict.reconstruct` with `engine="tiles"`), checked with a tiny stand-in model.

The stand-in has the four stage methods of SingleHDR but a limited receptive field (a few
3×3 convs and one 2× pooling), so a tiled run whose discarded overlap margin exceeds that
field must equal the one-pass run up to float rounding: any layout, blending or alignment
bug shows up as a large difference.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdrjax import predict
from hdrjax.inference import tiles
from hdrjax.models.build import NETWORKS
from hdrjax.models.hallucination import blend_weight


class StandIn(nn.Module):
    """SingleHDR look-alike: same methods and data flow, receptive field radius < 16 px per stage."""

    def setup(self):
        init = nn.initializers.normal(0.3)
        self.deq1 = nn.Conv(6, (3, 3), kernel_init=init)
        self.deq2 = nn.Conv(3, (3, 3), kernel_init=init)
        self.crf = nn.Dense(1)
        self.hal1 = nn.Conv(6, (3, 3), kernel_init=init)
        self.hal2 = nn.Conv(6, (3, 3), kernel_init=init)
        self.hal3 = nn.Conv(3, (3, 3), kernel_init=init)
        self.ref = nn.Conv(3, (3, 3), kernel_init=init)

    def dequantize(self, ldr):
        return jnp.clip(ldr + 0.05 * jnp.tanh(self.deq2(nn.relu(self.deq1(ldr)))), 0.0, 1.0)

    def estimate_inverse_crf(self, c, *, train=False):
        # A global statistic, like the Linearization-Net's average pool: gamma from the mean.
        g = 1.0 + jax.nn.sigmoid(self.crf(jnp.mean(c, axis=(1, 2))))  # f32[B, 1] in (1, 2)
        return jnp.linspace(0.0, 1.0, 1024)[None, :] ** g

    def hallucinate(self, linear, *, train=False):
        h = nn.relu(self.hal1(linear))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = nn.relu(self.hal2(h))
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        r = 3.0 * self.hal3(h)
        return linear + blend_weight(linear) * nn.relu(r), r

    def refine(self, hallucinated, linear, dequantized):
        x = jnp.concatenate([hallucinated, linear, dequantized], axis=-1)
        return nn.relu(hallucinated + 0.1 * self.ref(x))

    def __call__(self, ldr):
        c = self.dequantize(ldr)
        g = self.estimate_inverse_crf(c)
        a, _ = self.hallucinate(c ** 1.5)
        return self.refine(a, c, c), g


@pytest.fixture(scope="module")
def standin():
    model = StandIn()
    # jit: one compilation instead of one per initialiser op (eager init is slow on a busy CPU).
    variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    return model, variables


def photo_like(h, w, seed=0):
    """A smooth LDR test image with saturated blobs (so some tiles have α > 0, some not)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.35 + 0.25 * np.sin(xx[..., None] / 37.0 + np.arange(3)) * np.cos(yy[..., None] / 23.0)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.03, 0.08) * min(h, w)
        img += 1.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


ALL = NETWORKS


def one_pass(model, variables, ldr, **kw):
    cfg = predict.PredictConfig(engine="tiles", tile=tiles.round_up(max(ldr.shape[:2]), tiles.ALIGN), stages=ALL, **kw)
    return predict.reconstruct(model, variables, ldr, cfg)


def test_tile_origins_cover_evenly_and_aligned():
    for padded in (64, 96, 512, 544, 1024, 2016, 3008):
        for tile, overlap in ((512, 128), (256, 64), (128, 64), (64, 0)):
            t = min(tile, padded)
            origins = tiles.tile_origins(padded, t, overlap)
            assert origins[0] == 0 and origins[-1] + t == padded
            assert all(o % tiles.ALIGN == 0 for o in origins)
            gaps = np.diff(origins)
            assert np.all(gaps > 0) and np.all(gaps <= t - overlap), (padded, tile, overlap, origins)


def test_blend_weights_partition_of_unity():
    plan = tiles.make_plan(300, 700, 256, 64)
    total = np.zeros((plan.padded_h, plan.padded_w, 1), np.float32)
    for y, x in plan.tiles:
        total[y : y + plan.tile_h, x : x + plan.tile_w] += plan.weight(y, x)
    assert total.min() > 0.0
    # Neighbours overlapping by exactly `overlap` cross-fade to one; wider overlaps (last tile)
    # may sum above one, which the normalisation absorbs.
    assert total.min() == pytest.approx(1.0, abs=1e-6)


def test_small_image_single_tile_any_size(standin):
    model, variables = standin
    ldr = photo_like(37, 53)
    r = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", stages=ALL))
    for x in (r.dequantized, r.linear, r.hallucinated, r.refined):
        assert x.shape == (37, 53, 3) and x.dtype == np.float32 and np.isfinite(x).all()
    assert r.inverse_crf.shape == (1024,)
    assert r.stats["tiles"] == 1 and r.stats["tile_shape"] == (64, 64)


def test_tiled_equals_one_pass_and_no_seams(standin):
    model, variables = standin
    ldr = photo_like(200, 333, seed=1)
    full = one_pass(model, variables, ldr)
    cfg = predict.PredictConfig(engine="tiles", tile=128, overlap=64, stages=ALL, batch_size=3)
    tiled = predict.reconstruct(model, variables, ldr, cfg)
    assert tiled.stats["tiles"] > 6
    np.testing.assert_allclose(tiled.inverse_crf, full.inverse_crf, atol=1e-6)
    for name in ("dequantized", "linear", "hallucinated", "refined"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(full, name), atol=2e-5, err_msg=name)
    # Seams: along every inner tile edge and cross-fade boundary the difference stays at
    # rounding level (a wrong weight or shifted tile gives O(0.1) there).
    plan = tiles.make_plan(200, 333, 128, 64)
    rows = sorted({min(v, 199) for y in plan.ys[1:] for v in (y, y + 16, y + 47)})
    cols = sorted({min(v, 332) for x in plan.xs[1:] for v in (x, x + 16, x + 47)})
    diff = np.abs(tiled.refined - full.refined)
    assert diff[rows].max() < 2e-5 and diff[:, cols].max() < 2e-5


def test_skipping_unlit_tiles_matches_full_where_alpha_positive(standin):
    model, variables = standin
    ldr = photo_like(256, 384, seed=2)
    base = dict(tile=128, overlap=64, stages=ALL[:3])
    skip = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", **base))
    full = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", **base, skip_unlit_tiles=False))
    assert 0.0 < skip.stats["skipped_fraction"] < 1.0  # the test image has lit and unlit tiles
    assert full.stats["skipped_fraction"] == 0.0
    alpha = np.asarray(blend_weight(jnp.asarray(full.linear)))[..., 0]
    assert (alpha > 0).mean() > 0.01
    np.testing.assert_allclose(skip.hallucinated[alpha > 0], full.hallucinated[alpha > 0], atol=1e-6)
    # Elsewhere A = B exactly, which is also what the network's blend gives (α = 0).
    np.testing.assert_array_equal(skip.hallucinated[alpha == 0], skip.linear[alpha == 0])
    np.testing.assert_allclose(skip.hallucinated, full.hallucinated, atol=1e-6)
    # The hallucination actually changed the lit pixels (the comparison is not vacuous).
    assert np.abs(full.hallucinated - full.linear).max() > 0.05


def test_batch_across_images_equals_one_by_one(standin):
    model, variables = standin
    images = [photo_like(64, 64, 3), photo_like(90, 130, 4), photo_like(64, 64, 5)]
    cfg = predict.PredictConfig(engine="tiles", tile=64, overlap=32, stages=ALL, batch_size=4)
    together = predict.reconstruct_batch(model, variables, images, cfg)
    for img, r in zip(images, together):
        alone = predict.reconstruct(model, variables, img, cfg)
        np.testing.assert_allclose(r.refined, alone.refined, atol=1e-6)


def test_stages_stop_early(standin):
    model, variables = standin
    ldr = photo_like(40, 40)
    r = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", stages=ALL[:2]))
    assert r.linear is not None and r.hallucinated is None and r.refined is None
    np.testing.assert_array_equal(r.output, r.linear)
    r = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", stages=ALL[:1]))
    assert r.inverse_crf is None and r.output is r.dequantized


def test_reference_mode_stretches_pads_and_restores_size(standin):
    model, variables = standin
    ldr = photo_like(50, 70)
    r = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", stages=ALL, reference_mode=True))
    assert r.refined.shape == (50, 70, 3) and r.stats["reference_mode"]
    # Stretched to 64×128, padded by 32 on every side: one 128×192 tile.
    assert r.stats["tile_shape"] == (128, 192) and r.stats["tiles"] == 1


@pytest.mark.parametrize(
    "kw",
    [dict(tile=100), dict(tile=32), dict(overlap=48), dict(tile=128, overlap=96), dict(batch_size=0), dict(stages=("linearization",))],
)
def test_config_validation(kw):
    with pytest.raises(ValueError):
        predict.PredictConfig(engine="tiles", **kw)


@pytest.mark.slow
def test_large_image_tiled_equals_one_pass(standin):
    """3000×2000 (the issue's size): default tiles vs one pass, stand-in model."""
    model, variables = standin
    ldr = photo_like(2000, 3000, seed=7)
    full = one_pass(model, variables, ldr)
    tiled = predict.reconstruct(model, variables, ldr, predict.PredictConfig(engine="tiles", stages=ALL, batch_size=2))
    assert tiled.stats["tiles"] >= 20
    assert 0.0 < tiled.stats["skipped_fraction"] < 1.0
    diff = np.abs(tiled.refined - full.refined)
    assert diff.max() < 5e-5, diff.max()
