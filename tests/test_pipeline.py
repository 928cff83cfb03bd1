"""Camera pipeline: every CameraSample field, overrides, noise, mask, gradients, sharding."""
import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hdrjax.camera import crf, pipeline
from hdrjax.camera.pipeline import CameraConfig, synthesize

B, H, W = 8, 16, 24
IMAGE_FIELDS = ("exposed", "clipped", "ldr", "quantized", "jpeg")


def _hdr(seed=0, b=B, h=H, w=W):
    """Smooth scenes with a bright light, each normalised to mean 0.5 as the reference (§1.1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(b):
        a, c = rng.uniform(-3, 3, 2)
        tint = rng.uniform(0.5, 1.5, 3)
        img = np.exp(a * xx + c * yy)[..., None] * tint
        img[rng.integers(h): , rng.integers(w):] *= 8.0  # a light source
        img = img * rng.lognormal(0, 0.05, img.shape)
        out.append(img / img.mean() * 0.5)
    return jnp.asarray(np.stack(out), jnp.float32)


@pytest.fixture(scope="module")
def bank():
    return crf.load_bank("family", "train")


# One jitted function for the module: calls with the same structure share a compilation.
_synth = jax.jit(synthesize, static_argnums=3)


@pytest.fixture(scope="module")
def synth():
    return _synth


@pytest.fixture(scope="module")
def sample(synth, bank):
    return synth(jax.random.key(0), _hdr(), bank, CameraConfig())


def test_fields_shapes_and_consistency(sample, bank):
    cfg = CameraConfig()
    for name in IMAGE_FIELDS:
        v = getattr(sample, name)
        assert v.shape == (B, H, W, 3) and v.dtype == jnp.float32, name
    for name in ("forward_crf", "inverse_crf"):
        assert getattr(sample, name).shape == (B, crf.N_SAMPLES)
    assert sample.exposure.shape == sample.mask.shape == (B,)
    assert sample.quality.dtype == sample.crf_index.dtype == jnp.int32
    s = jax.tree.map(np.asarray, sample)
    np.testing.assert_array_equal(s.forward_crf, bank.forward[s.crf_index])
    np.testing.assert_array_equal(s.inverse_crf, bank.inverse[s.crf_index])
    assert set(s.quality) <= set(cfg.jpeg_qualities)
    assert np.all(np.isin(s.exposure, cfg.exposures()))
    assert s.exposed.min() >= 0 and s.clipped.max() <= 1
    np.testing.assert_array_equal(s.clipped, np.clip(s.exposed, 0, 1))
    np.testing.assert_allclose(s.ldr, crf.apply_curve(s.clipped, s.forward_crf), atol=1e-6)
    np.testing.assert_allclose(s.quantized, np.round(s.ldr * 255) / 255, atol=1e-6)
    np.testing.assert_allclose(s.jpeg * 255, np.round(s.jpeg * 255), atol=1e-3)
    # JPEG at quality >= 90 is close to its input but not identical to it.
    assert 0 < np.abs(s.jpeg - s.quantized).mean() < 4 / 255
    assert set(np.unique(s.mask)) <= {0.0, 1.0}


def test_noise_free_targets_keep_the_noisy_input(synth, bank, sample):
    # Same key: the same CRFs, exposures, noise and JPEG input; only the targets differ.
    clean = jax.tree.map(np.asarray, synth(jax.random.key(0), _hdr(), bank, CameraConfig(noisy_targets=False)))
    s = jax.tree.map(np.asarray, sample)
    for name in ("quantized", "jpeg", "crf_index", "exposure", "mask", "noise_signal"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(s, name), err_msg=name)
    scene = np.asarray(_hdr()) * s.exposure[:, None, None, None]
    np.testing.assert_allclose(clean.exposed, scene, rtol=1e-6)
    np.testing.assert_array_equal(clean.clipped, np.clip(clean.exposed, 0, 1))
    np.testing.assert_allclose(clean.ldr, crf.apply_curve(clean.clipped, clean.forward_crf), atol=1e-6)
    # The reference's targets carry the input's noise: they differ from the scene by about sigma.
    assert 1e-4 < np.abs(s.exposed - scene).mean() < 0.05


def test_exposure_list_is_the_reference():
    t = CameraConfig().exposures()
    np.testing.assert_array_equal(t, 2 ** np.linspace(-3, 3, 600, dtype="float32"))


def test_deterministic_in_the_key(synth, bank, sample):
    again = synth(jax.random.key(0), _hdr(), bank, CameraConfig())
    other = synth(jax.random.key(1), _hdr(), bank, CameraConfig())
    np.testing.assert_array_equal(again.jpeg, sample.jpeg)
    assert not np.array_equal(other.crf_index, sample.crf_index)
    assert not np.array_equal(other.exposed, sample.exposed)


def test_overrides_fix_crf_exposure_quality_and_mask_extremes(synth, bank):
    cfg = CameraConfig(noise_signal_max=0.0, noise_const_max=0.0)
    hdr = _hdr(1, b=4)
    t = jnp.array([0.125, 1.0, 0.5, 8.0])
    q = jnp.array([100, 90, 50, 97])
    rows = jnp.array([0, 5, 7, 2])
    s = synth(jax.random.key(3), hdr, bank, cfg, crf_index=rows, exposure=t, quality=q)
    np.testing.assert_array_equal(s.crf_index, rows)
    np.testing.assert_array_equal(s.quality, q)
    np.testing.assert_array_equal(s.exposure, t)
    np.testing.assert_allclose(s.exposed, hdr * t[:, None, None, None], rtol=1e-6)
    np.testing.assert_array_equal(s.noise_signal, 0)
    np.testing.assert_array_equal(s.forward_crf[1], bank.forward[5])
    # Extreme exposures are masked out (same compilation: same argument structure).
    scale = jnp.array([1 / 256, 1.0, 1.0, 256.0])[:, None, None, None]
    e = synth(jax.random.key(3), hdr * scale, bank, cfg, crf_index=rows, exposure=t, quality=q)
    np.testing.assert_array_equal(e.mask, [0.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize("shared", [False, True])
def test_noise_levels_and_shared_seed_quirk(shared):
    x = jnp.full((2, 64, 64, 3), 0.5, jnp.float32)
    cfg = CameraConfig(shared_noise_seed=shared)
    noisy, sig_s, sig_c = jax.jit(pipeline.add_noise, static_argnums=2)(jax.random.key(4), x, cfg)
    sig_s, sig_c = np.asarray(sig_s), np.asarray(sig_c)
    assert sig_s.shape == sig_c.shape == (2, 3)
    assert np.all(sig_s <= 0.08 / 6) and np.all(sig_c <= 0.005) and np.all(sig_s > 0)
    std = np.asarray(noisy - 0.5).std(axis=(1, 2))
    if not shared:
        assert not np.allclose(sig_s / (0.08 / 6), sig_c / 0.005)  # independent draws
        np.testing.assert_allclose(std, np.sqrt((sig_s * 0.5) ** 2 + sig_c ** 2), rtol=0.1)
    else:
        np.testing.assert_allclose(sig_s / (0.08 / 6), sig_c / 0.005, rtol=1e-5)  # u2 = u1
        # One normal field: noise = n (sigma_s x + sigma_c), so the stds add linearly.
        np.testing.assert_allclose(std, sig_s * 0.5 + sig_c, rtol=0.1)


def test_exposure_mask_thresholds():
    cfg = CameraConfig()
    n = 100

    def image(levels):
        return jnp.asarray(np.repeat(np.asarray(levels, np.float32)[:, None], 3, 1)
                           .reshape(1, 10, 10, 3) / 255)

    assert float(pipeline.exposure_mask(image([128] * n), cfg)[0]) == 1.0
    assert float(pipeline.exposure_mask(image([249] * 51 + [128] * 49), cfg)[0]) == 0.0
    assert float(pipeline.exposure_mask(image([249] * 50 + [128] * 50), cfg)[0]) == 1.0  # > 50 %
    assert float(pipeline.exposure_mask(image([248] * 100), cfg)[0]) == 1.0
    assert float(pipeline.exposure_mask(image([6] * 51 + [128] * 49), cfg)[0]) == 0.0
    # TF's uint8 conversion is floor(255.5 g): gray level 7 is not dark, nor is 6.9 -> 6.
    assert float(pipeline.exposure_mask(image([7] * 100), cfg)[0]) == 1.0


def test_gradients_reach_hdr_and_curve(bank):
    small = crf.CRFBank(forward=jnp.asarray(bank.forward[:4]), inverse=jnp.asarray(bank.inverse[:4]),
                        names=bank.names[:4])
    hdr = _hdr(3, b=2, h=16, w=16)
    w = jnp.asarray(np.random.default_rng(0).normal(size=hdr.shape), jnp.float32)

    def loss(hdr, bank):
        s = synthesize(jax.random.key(0), hdr, bank, CameraConfig(), exposure=jnp.full(2, 0.5),
                       crf_index=jnp.array([1, 3]))
        return jnp.sum(s.jpeg * w)

    g_hdr, g_bank = jax.jit(jax.grad(loss, argnums=(0, 1)))(hdr, small)
    for g in (g_hdr, g_bank.forward):
        assert np.all(np.isfinite(g)) and np.abs(np.asarray(g)).sum() > 0
    g_f = np.asarray(g_bank.forward)
    assert np.abs(g_f[[1, 3]]).sum() > 0 and np.abs(g_f[[0, 2]]).sum() == 0  # only used rows


def test_vmap_over_keys(bank):
    cfg = CameraConfig(jpeg=False)
    keys = jax.random.split(jax.random.key(0), 3)
    hdr = _hdr(4, b=2, h=8, w=8)
    out = jax.jit(jax.vmap(lambda k: synthesize(k, hdr, bank, cfg).quantized))(keys)
    assert out.shape == (3, 2, 8, 8, 3)
    assert not np.array_equal(out[0], out[1])


def test_sharded_batch_stays_sharded(synth, bank, sample):
    devices = jax.devices()
    if len(devices) < 8:
        pytest.skip("needs 8 (fake CPU) devices: XLA_FLAGS is set by conftest before jax starts")
    mesh = Mesh(np.array(devices[:8]), ("data",))
    batch = NamedSharding(mesh, P("data"))
    hdr = jax.device_put(_hdr(), batch)
    replicated_bank = jax.device_put(bank, NamedSharding(mesh, P()))
    compiled = synth.lower(jax.random.key(0), hdr, replicated_bank, CameraConfig()).compile()
    # No image is gathered onto one device (nor reshuffled between devices).
    hlo = compiled.as_text()
    assert "all-gather" not in hlo and "all-to-all" not in hlo
    out = compiled(jax.random.key(0), hdr, replicated_bank)
    for name, leaf in dataclasses.asdict(out).items():
        assert leaf.sharding.is_equivalent_to(batch, leaf.ndim), (name, leaf.sharding)
    # Same numbers as on one device (the random draws do not depend on the layout).
    np.testing.assert_array_equal(out.crf_index, sample.crf_index)
    np.testing.assert_array_equal(out.exposure, sample.exposure)
    np.testing.assert_array_equal(out.quality, sample.quality)
    np.testing.assert_allclose(out.jpeg, sample.jpeg, atol=1.5 / 255)
    assert np.mean(np.asarray(out.jpeg) != np.asarray(sample.jpeg)) < 1e-3


def test_camera_config_from_config_and_errors():
    ml_collections = pytest.importorskip("ml_collections")
    c = ml_collections.ConfigDict({"exposure_steps": 7, "jpeg_qualities": [95, 100], "jpeg": True})
    cfg = CameraConfig.from_config(c)
    assert cfg.exposure_steps == 7 and cfg.jpeg_qualities == (95, 100)
    hash(cfg)  # static under jit
    assert CameraConfig.from_config(None) == CameraConfig()
    with pytest.raises(pipeline.CameraConfigError, match="jpeg_quality"):
        CameraConfig.from_config({"jpeg_quality": 90})
    with pytest.raises(pipeline.CameraConfigError, match="jpeg_qualities"):
        CameraConfig(jpeg_qualities=(90, 101))
    with pytest.raises(pipeline.CameraConfigError, match="jpeg_upsampling"):
        CameraConfig(jpeg_upsampling="bilinear")
    with pytest.raises(ValueError, match="hdr must be"):
        synthesize(jax.random.key(0), jnp.zeros((4, 4, 3)), crf.load_bank("family", "test"))
