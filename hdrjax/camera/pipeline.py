"""The forward camera pipeline HDR -> LDR of the reference's training graphs, in pure jnp.

exposure -> signal-dependent + constant noise -> clip -> CRF -> 8-bit quantization -> JPEG,
plus the reference's extreme-exposure loss mask.  Every random draw comes from the explicit
key; everything is jit-, vmap- and sharding-friendly (per-sample ops only), and gradients
flow from the JPEG output back to the HDR input and the CRF (straight-through roundings).
"""
from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.camera import crf as crf_lib
from hdrjax.camera import jpeg as jpeg_lib
from hdrjax.errors import HdrjaxError

# The extreme-pixel rule (§1.5), used for the loss mask and for drawing HDR-Real crops (§3.4):
# gray is TF's `rgb_to_grayscale` of the 8-bit image (BT.601 weights as TF writes them), back to
# 8-bit levels; a level >= EXTREME_HIGH is over-exposed, <= EXTREME_LOW under-exposed.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
EXTREME_HIGH = 249
EXTREME_LOW = 6


class CameraConfigError(HdrjaxError, ValueError):
    """A camera setting that cannot work; the message names the field."""


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """Synthesis settings (hashable, static under jit); defaults are the reference's."""

    # Exposure t = 2^s, s one of `exposure_steps` values of linspace(min, max) (dataset.py).
    exposure_min_stops: float = -3.0
    exposure_max_stops: float = 3.0
    exposure_steps: int = 600
    # sigma_s = noise_signal_max * u1, sigma_c = noise_const_max * u2 (train_*_net.py).
    noise_signal_max: float = 0.08 / 6
    noise_const_max: float = 0.005
    # True reproduces the reference's shared TF op seed: u2 = u1 and one normal field.
    shared_noise_seed: bool = False
    # JPEG quality drawn uniformly per sample from this tuple (90 + round(i/7*10), i < 8).
    jpeg: bool = True
    jpeg_qualities: tuple = (90, 91, 93, 94, 96, 97, 99, 100)
    # libjpeg's decoder default; "nearest" is do_fancy_upsampling = FALSE.
    jpeg_upsampling: str = "fancy"
    # Loss mask: excluded if > mask_fraction of gray pixels >= mask_high or <= mask_low.
    mask_high: int = EXTREME_HIGH
    mask_low: int = EXTREME_LOW
    mask_fraction: float = 0.5
    # What the targets X, Xc, L (and the teacher-forced inputs L, Xc) are.  True, the reference
    # (§1.4, §1.6): made from the noisy exposure, so every stage learns to keep the sensor noise
    # of its input and the Dequantization-Net removes only quantisation and JPEG.  False (ours,
    # configs/default.py): the noise-free scene t·H, so the networks learn to remove the noise
    # too; the network input J is made from the noisy exposure either way.
    noisy_targets: bool = True

    def __post_init__(self):
        if self.exposure_steps < 1:
            raise CameraConfigError(f"camera.exposure_steps must be >= 1, got {self.exposure_steps}")
        try:
            qs = tuple(int(q) for q in self.jpeg_qualities)
        except (TypeError, ValueError):
            raise CameraConfigError(f"camera.jpeg_qualities must be a sequence of integers, "
                                    f"got {self.jpeg_qualities!r}") from None
        if not qs or any(not 1 <= q <= 100 for q in qs):
            raise CameraConfigError(f"camera.jpeg_qualities must be 1..100, got {self.jpeg_qualities}")
        object.__setattr__(self, "jpeg_qualities", qs)
        for name in ("noise_signal_max", "noise_const_max"):
            if not getattr(self, name) >= 0:
                raise CameraConfigError(f"camera.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.mask_fraction <= 1.0:
            raise CameraConfigError(f"camera.mask_fraction must be in [0, 1], got {self.mask_fraction}")
        if self.jpeg_upsampling not in jpeg_lib.UPSAMPLING:
            raise CameraConfigError(f"camera.jpeg_upsampling must be one of {jpeg_lib.UPSAMPLING}, "
                                    f"got {self.jpeg_upsampling!r}")

    @classmethod
    def from_config(cls, cfg) -> "CameraConfig":
        """From a ConfigDict / mapping (e.g. `config.camera`); unknown keys are an error."""
        if cfg is None:
            return cls()
        items = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - names)
        if unknown:
            raise CameraConfigError(f"unknown camera config field(s) {unknown}; known: {sorted(names)}")
        return cls(**items)

    def exposures(self) -> np.ndarray:
        """The exposure list 2^linspace(min, max, steps) in float32, as dataset.get_t_list."""
        return 2 ** np.linspace(self.exposure_min_stops, self.exposure_max_stops,
                                self.exposure_steps, dtype="float32")


@flax.struct.dataclass
class CameraSample:
    """Every intermediate of one synthesis; images f32[B, H, W, 3], curves f32[B, 1024]."""

    exposed: jax.Array      # X: exposure-scaled HDR, unclipped (Hallucination target); noisy
    #                         with config.noisy_targets (the reference), else the scene t·H
    clipped: jax.Array      # Xc = clip(X, 0, 1) (Linearization target, Hallucination input)
    ldr: jax.Array          # L = f(Xc), continuous (Dequantization target)
    quantized: jax.Array    # round(255 f(clip(noisy X))) / 255: always from the noisy exposure
    jpeg: jax.Array         # J: JPEG-decoded quantized image (the network input)
    forward_crf: jax.Array
    inverse_crf: jax.Array
    exposure: jax.Array     # f32[B]
    quality: jax.Array      # i32[B] (0 when JPEG is off)
    crf_index: jax.Array    # i32[B]
    mask: jax.Array         # f32[B]: 0 for extreme (mostly over/under-exposed) samples
    noise_signal: jax.Array  # f32[B, 3]: sigma_s per channel
    noise_const: jax.Array   # f32[B, 3]: sigma_c per channel


def add_noise(key, x, config: CameraConfig):
    """relu(x + n1 sigma_s x + n2 sigma_c) with per-sample, per-channel sigmas.

    Returns (noisy, sigma_s f32[B, 3], sigma_c f32[B, 3]).
    """
    b = x.shape[0]
    k_u, k_n = jax.random.split(key)
    # TF1 ops with the same op seed and no graph seed draw the same numbers: one draw each.
    n_draws = 1 if config.shared_noise_seed else 2
    # One call per distribution (not per term): each call site compiles its own generator.
    u = jax.random.uniform(k_u, (n_draws, b, 1, 1, 3), x.dtype)
    n = jax.random.normal(k_n, (n_draws,) + x.shape, x.dtype)
    u1, u2 = u[0], u[-1]
    n1, n2 = n[0], n[-1]
    sigma_s = config.noise_signal_max * u1
    sigma_c = config.noise_const_max * u2
    noisy = jax.nn.relu(x + n1 * sigma_s * x + n2 * sigma_c)
    return noisy, sigma_s.reshape(b, 3), sigma_c.reshape(b, 3)


def quantize(x, bits: int = 8):
    """round((2^bits - 1) x) / (2^bits - 1), half to even, straight-through gradient."""
    s = float(2 ** bits - 1)
    return jpeg_lib.round_st(jnp.clip(x, 0.0, 1.0) * s) / s


def extreme_shares(image, high: int = EXTREME_HIGH, low: int = EXTREME_LOW):
    """(share of gray levels >= high, share <= low) per image of 8-bit images f32[..., H, W, 3]
    in [0, 1]; numpy in, numpy out, jax in, jax out.

    Gray is TF's `rgb_to_grayscale` on uint8: `GRAY_WEIGHTS` on [0, 1], back to uint8 by
    `convert_image_dtype`, i.e. floor(255.5 g) (not round) (§1.5).
    """
    xp = np if isinstance(image, np.ndarray) else jnp
    w = GRAY_WEIGHTS
    gray = xp.floor((image[..., 0] * w[0] + image[..., 1] * w[1] + image[..., 2] * w[2]) * 255.5)
    return xp.mean(gray >= high, axis=(-2, -1)), xp.mean(gray <= low, axis=(-2, -1))


def exposure_mask(image, config: CameraConfig):
    """The reference's loss mask of 8-bit images f32[B, H, W, 3] in [0, 1] -> f32[B].

    A sample is 0 when more than `mask_fraction` of its gray levels (`extreme_shares`) are
    >= mask_high, or more than `mask_fraction` are <= mask_low: the two are tested separately.
    """
    over, under = extreme_shares(jax.lax.stop_gradient(image), config.mask_high, config.mask_low)
    return jnp.where((over > config.mask_fraction) | (under > config.mask_fraction), 0.0, 1.0).astype(jnp.float32)


def synthesize(key, hdr, bank: crf_lib.CRFBank, config: CameraConfig = CameraConfig(), *,
               crf_index=None, exposure=None, quality=None) -> CameraSample:
    """Simulate a camera on HDR f32[B, H, W, 3]: random CRF row, exposure, noise, JPEG quality.

    Overrides fix a per-sample value (i32[B] CRF rows, f32[B] exposure multipliers, i32[B]
    JPEG qualities; scalars broadcast) for evaluation; the rest is drawn from `key`.
    """
    hdr = jnp.asarray(hdr, jnp.float32)
    if hdr.ndim != 4 or hdr.shape[-1] != 3:
        raise ValueError(f"hdr must be f32[B, H, W, 3], got shape {hdr.shape}")
    b = hdr.shape[0]
    k_choice, k_noise = jax.random.split(key)
    # Uniform choices of CRF row, exposure and JPEG quality from one draw of [B, 3] uniforms.
    u = jax.random.uniform(k_choice, (b, 3))

    def choose(column, n):
        return jnp.minimum(jnp.floor(u[:, column] * n).astype(jnp.int32), n - 1)

    forward = jnp.asarray(bank.forward)
    inverse = jnp.asarray(bank.inverse)
    if crf_index is None:
        crf_index = choose(0, forward.shape[0])
    crf_index = jnp.broadcast_to(jnp.asarray(crf_index, jnp.int32), (b,))
    f = forward[crf_index]
    g = inverse[crf_index]

    if exposure is None:
        t_list = jnp.asarray(config.exposures())
        exposure = t_list[choose(1, t_list.shape[0])]
    exposure = jnp.broadcast_to(jnp.asarray(exposure, jnp.float32), (b,))

    scene = hdr * exposure[:, None, None, None]
    exposed, sigma_s, sigma_c = add_noise(k_noise, scene, config)
    clipped = jnp.clip(exposed, 0.0, 1.0)
    ldr = crf_lib.apply_curve(clipped, f)
    quantized = quantize(ldr)
    if not config.noisy_targets:  # the camera saw noise; the targets are the scene itself
        exposed = scene
        clipped = jnp.clip(scene, 0.0, 1.0)
        ldr = crf_lib.apply_curve(clipped, f)

    if config.jpeg:
        if quality is None:
            qs = jnp.asarray(config.jpeg_qualities, jnp.int32)
            quality = qs[choose(2, qs.shape[0])]
        quality = jnp.broadcast_to(jnp.asarray(quality, jnp.int32), (b,))
        jpeg = jpeg_lib.jpeg_roundtrip(quantized, quality, upsampling=config.jpeg_upsampling)
    else:
        quality = jnp.zeros((b,), jnp.int32)
        jpeg = quantized

    return CameraSample(
        exposed=exposed, clipped=clipped, ldr=ldr, quantized=quantized, jpeg=jpeg,
        forward_crf=f, inverse_crf=g, exposure=exposure, quality=quality,
        crf_index=crf_index, mask=exposure_mask(jpeg, config),
        noise_signal=sigma_s, noise_const=sigma_c)
