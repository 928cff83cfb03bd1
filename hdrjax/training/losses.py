"""Training losses of the four stages (docs/reference.md §3.2, §3.4), as pure functions.

Each returns ``(loss, terms)``: a scalar and a dict of scalars for logging, with
``loss == Σ weight · terms[name]`` over the weighted terms. Per-sample losses are multiplied
by the per-sample `mask` f32[B] (§1.5; None = all ones) and averaged over the *whole* batch,
so masked samples count as zeros in the denominator, as in the reference.

Where the reference computes a term as a batch scalar rather than per sample, the default
follows the reference unless that was plainly a bug; a keyword switches to the other form:

* Hallucination total variation (`tv_per_sample=False`, reference): the reference averages
  |∇T(Y)| over the whole batch and multiplies that one scalar by each sample's mask, so
  masked samples still contribute through it. `tv_per_sample=True` masks each sample's own TV.
* Linearization curve term (`curve_term="per_sample"`, intended; the reference is a bug):
  the reference adds its f32[b, 1] curve MSE to the f32[b, 1, 1, 1] image MSE, which
  broadcasts to [b, 1, b, 1]; the mean then equals mean(mask·mse) + 0.1·mean(mask)·mean(curve),
  i.e. a batch-scalar curve term. ``curve_term="batch"`` reproduces that value exactly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from hdrjax.models.vgg import VGGWeights
from hdrjax.tonemap import log_tone

PERCEPTUAL_POOLS = ("pool1", "pool2", "pool3")  # §3.2


def _mask(mask, batch):
    if mask is None:
        return jnp.ones((batch,), jnp.float32)
    mask = jnp.asarray(mask, jnp.float32).reshape(-1)
    if mask.shape[0] != batch:
        raise ValueError(f"mask has {mask.shape[0]} entries for a batch of {batch}")
    return mask


def _per_sample_mean(v):
    return jnp.mean(v, axis=tuple(range(1, v.ndim)))


# "log" terms: log(x + CURVE_LOG_EPS); below eps an error counts about as its absolute size.
# At code 2 DoRF's training curves have median 0.0016 (darkest 3e-5). eps was chosen on training data
# (experiments/results/curve-averaging.json: 1e-4 to 1e-3 within 0.01 dB, 1e-2 worse).
CURVE_LOG_EPS = 1e-3

DEQ_SPACES = ("ldr", "log_linear")


def dequantization_loss(pred, target, mask=None, *, space="ldr", inverse_crf=None):
    """§3.2 Dequantization: per-sample MSE of clip(pred, 0, 1) vs the continuous LDR L, masked.

    `space` says where the two are compared:
    * "ldr" (the reference): in LDR codes.  Noise of a few codes in the shadows is a tiny
      error there, so the network learns to leave it (issue #20: output − input 0.005).
    * "log_linear" (ours, issue #20): both are taken through the sample's true inverse CRF
      (`inverse_crf`, f32[B, K]) and compared as log(x + CURVE_LOG_EPS), the relative error
      in linear radiance that the later stages and PU21 see.  A code of noise in the shadows,
      where the inverse CRF is steep and the signal small, now weighs what it weighs in the
      HDR output; in the highlights the weight falls (the curve is flat in log there).
    """
    m = _mask(mask, pred.shape[0])
    pred = jnp.clip(pred, 0.0, 1.0)
    if space == "ldr":
        err = pred - target
    elif space == "log_linear":
        if inverse_crf is None:
            raise ValueError('space="log_linear" needs the inverse CRF of each sample')
        from hdrjax.camera.crf import apply_curve

        def log_linear(x):
            return jnp.log(jnp.maximum(apply_curve(x, inverse_crf), 0.0) + CURVE_LOG_EPS)

        err = log_linear(pred) - log_linear(jnp.clip(target, 0.0, 1.0))
    else:
        raise ValueError(f"space must be one of {DEQ_SPACES}, got {space!r}")
    mse = _per_sample_mean(jnp.square(err))
    loss = jnp.mean(mse * m)
    return loss, {"mse": loss}


LIN_IMAGE_SPACES = ("linear", "pu21")
LIN_CURVE_SPACES = ("linear", "log")


def pu21_display(x, exposed):
    """x in the PU21 units the evaluation scores it in, divided by PU21's 256 "SDR peak": f32 like x.

    The evaluation's display model (`hdrjax.evaluation.metrics.display_model`): each sample's scene peak,
    max(`exposed`), is shown at 4000 cd/m², then PU21 (`metrics.pu21_encode`). x, exposed:
    f32[B, ...] in the same relative units (the exposed scene, clipping at 1).
    """
    from hdrjax.evaluation import metrics

    peak = jnp.max(jnp.maximum(exposed, 0.0), axis=tuple(range(1, exposed.ndim)))
    scale = metrics.DISPLAY_PEAK / jnp.maximum(peak, jnp.finfo(jnp.float32).tiny)
    scale = jnp.reshape(scale, scale.shape + (1,) * (x.ndim - 1))
    return metrics.pu21_encode(jnp.maximum(x, 0.0) * scale) / metrics.PU21_PEAK


def linearization_loss(linear, clipped, curve, curve_true, mask=None, *, curve_weight=0.1, curve_term="per_sample",
                       image_space="linear", exposed=None, curve_space="linear"):
    """§3.2 Linearization: MSE(linearised L, Xc) + 0.1 · MSE(inverse CRF, true inverse CRF), masked.

    linear, clipped: f32[B, H, W, 3]; curve, curve_true: f32[B, 1024]. `curve_term="batch"`
    reproduces the reference's broadcast (module docstring).

    `image_space`: where the image term compares the linearised image with Xc.
    * "linear" (§3.2, the reference): relative radiance. The curve's error at each pixel counts
      by its linear size, so the bright half of the curve dominates and the shadows, where
      most pixels and most of PU21's sensitivity lie, hardly count.
    * "pu21" (ours, issue #20): in the units the evaluation scores (`pu21_display`; needs
      `exposed`, the unclipped exposed scene X, for each sample's display scale). The image
      term is then the curve's error at every pixel of the input (pixel density) as PU21
      sees it (perceptual sensitivity). The curve term stays the reference's.

    `curve_space`: where the curve term compares ĝ with the true inverse CRF.
    * "linear" (§3.2, the reference): MSE of the curves. Its minimiser over the curves an image
      cannot tell apart is their arithmetic mean, which in the dark codes lies above most of
      them (at code 8 DoRF's curves span 0.002-0.033): the shadows come out too bright.
    * "log" (ours, issue #20): MSE of log(g + CURVE_LOG_EPS), whose minimiser is the geometric
      mean: relative error, as PU21 sees the dark end. As fixed curves, the geometric mean of
      DoRF's training curves scores +0.7 dB PU21-PSNR over their arithmetic mean on training
      panoramas, +1.6 dB on the held-out set (experiments/results/curve-averaging.json).
    """
    m = _mask(mask, linear.shape[0])
    if image_space == "linear":
        mse = _per_sample_mean(jnp.square(linear - clipped))
    elif image_space == "pu21":
        if exposed is None:
            raise ValueError("image_space='pu21' needs exposed (the unclipped exposed scene X)")
        mse = _per_sample_mean(jnp.square(pu21_display(linear, exposed) - pu21_display(clipped, exposed)))
    else:
        raise ValueError(f"image_space must be one of {LIN_IMAGE_SPACES}, got {image_space!r}")
    if curve_space == "linear":
        curve_mse = _per_sample_mean(jnp.square(curve - curve_true))
    elif curve_space == "log":
        curve_mse = _per_sample_mean(jnp.square(jnp.log(jnp.maximum(curve, 0.0) + CURVE_LOG_EPS)
                                                - jnp.log(jnp.maximum(curve_true, 0.0) + CURVE_LOG_EPS)))
    else:
        raise ValueError(f"curve_space must be one of {LIN_CURVE_SPACES}, got {curve_space!r}")
    image_term = jnp.mean(mse * m)
    if curve_term == "per_sample":
        curve_value = jnp.mean(curve_mse * m)
    elif curve_term == "batch":
        curve_value = jnp.mean(m) * jnp.mean(curve_mse)
    else:
        raise ValueError(f"curve_term must be 'per_sample' or 'batch', got {curve_term!r}")
    loss = image_term + curve_weight * curve_value
    return loss, {"mse": image_term, "curve_mse": curve_value}


def _total_variation(t):
    """Per-sample mean |forward difference| along H plus along W; the last difference is 0."""
    # Dividing the sum by the full size counts the reference's zero last row/column
    # (symmetric padding) in the mean.
    n = t[0].size
    dh = jnp.sum(jnp.abs(t[:, 1:] - t[:, :-1]), axis=(1, 2, 3)) / n
    dw = jnp.sum(jnp.abs(t[:, :, 1:] - t[:, :, :-1]), axis=(1, 2, 3)) / n
    return dh + dw


def perceptual_distance(a, b, vgg_variables: VGGWeights, *, pools=PERCEPTUAL_POOLS, dtype=jnp.float32):
    """Per-sample Σ over `pools` of mean |VGG(a) − VGG(b)|, with frozen VGG weights: f32[B]."""
    if not isinstance(vgg_variables, VGGWeights):
        raise TypeError(
            "vgg_variables must be VGGWeights (load_lpips_vgg16 / load_caffe_vgg16), which carry the "
            f"input preprocessing the weights expect; got {type(vgg_variables).__name__}"
        )
    last_block = max(int(p.removeprefix("pool").removeprefix("beforepool")) for p in pools)
    net = vgg_variables.module(last_block=last_block, dtype=dtype)
    params = jax.lax.stop_gradient(vgg_variables.params)  # the loss network is frozen
    # One pass over both images: half the dispatches, same numbers.
    feats = net.apply({"params": params}, jnp.concatenate([a, b], axis=0))
    n = a.shape[0]
    total = jnp.zeros((n,), jnp.float32)
    for p in pools:
        f = feats[p].astype(jnp.float32)
        total = total + _per_sample_mean(jnp.abs(f[:n] - f[n:]))
    return total


def hallucination_loss(
    blended,
    target,
    mask=None,
    vgg_variables: VGGWeights | None = None,
    *,
    perceptual_weight=0.001,
    tv_weight=0.1,
    tv_per_sample=False,
    vgg_dtype=jnp.float32,
):
    """§3.2 Hallucination: L1(T(Y), T(X)) + 0.001·VGG pool1–3 L1 + 0.1·TV(T(Y)), masked.

    blended: Y = x + α·relu(r), f32[B, H, W, 3]; target: X, the unclipped exposure-scaled HDR;
    T = `log_tone`. `vgg_variables` (frozen, stop-gradient) may be None only when
    `perceptual_weight == 0`; they are used with their own input convention. The reference's
    Caffe VGG works in 0-255 units; the lpips/torchvision VGG works in ImageNet-std units and
    its activations are roughly 60× smaller (an estimate: no Caffe weights here), so with it
    the 0.001 term weighs less than in the reference. `rescale_activations(w,
    TORCHVISION_TO_CAFFE_SCALE)` (the same as a weight of 0.001 × 57.6) approximates the
    reference balance. `tv_per_sample=False` is the reference's batch-scalar TV.
    """
    m = _mask(mask, blended.shape[0])
    ty = log_tone(blended)
    tx = log_tone(target)
    l1 = jnp.mean(_per_sample_mean(jnp.abs(ty - tx)) * m)
    terms = {"l1": l1}
    loss = l1
    if perceptual_weight:
        if vgg_variables is None:
            raise ValueError("hallucination_loss: perceptual_weight > 0 needs vgg_variables")
        perceptual = jnp.mean(perceptual_distance(ty, tx, vgg_variables, dtype=vgg_dtype) * m)
        terms["perceptual"] = perceptual
        loss = loss + perceptual_weight * perceptual
    tv = _total_variation(ty)
    tv = jnp.mean(tv * m) if tv_per_sample else jnp.mean(tv) * jnp.mean(m)
    terms["tv"] = tv
    loss = loss + tv_weight * tv
    return loss, terms


def mean_normalize(v, eps=1e-6):
    """Scale each sample to mean 0.5: v / (eps + mean(v)) · 0.5 (§3.4)."""
    return v / (eps + jnp.mean(v, axis=tuple(range(1, v.ndim)), keepdims=True)) * 0.5


JOINT_SPACES = ("log_tone", "pu21")


def joint_loss(refined, target, mask=None, *, normalize_target=True, eps=1e-6, space="log_tone"):
    """§3.4 Joint fine-tuning: mean |T(R̃) − T(H̃)|, R and the GT each scaled to mean 0.5.

    The reference normalises the GT in its data loader and R in the loss; normalising the GT
    again here is idempotent up to `eps` (`normalize_target=False` skips it). No mask in the
    reference (None); a mask, if given, is applied per sample as in the other losses.

    `space`: where R and the ground truth are compared.
    * "log_tone" (§3.4, the reference): T(v) = log(1 + 10 v) / log(11) after the mean
      normalisation. T is nearly linear below v ≈ 0.1, so at mean 0.5 an error in the deep
      shadows weighs its linear size, close to nothing, while PU21 and the eye see it as a
      relative error: the Refinement-Net trained on it raised the deep-shadow error of the
      held-out evaluation (docs/training.md, the error budget).
    * "pu21" (ours, issue #20): mean (PU21(R) − PU21(H))² / 256² in the units the evaluation
      scores (`pu21_display`: each sample's scene peak at 4000 cd/m²), no mean normalisation:
      the mean squared error whose PU21-PSNR the evaluation reports. Not the default: in short
      CPU runs of the refinement stage (batch 4) it, and an L1 version, lowered the held-out
      PU21-PSNR (docs/training.md, "The Refinement-Net on its own"). Both images must
      share one radiometric scale, the camera's (clipping at 1), as synthesised samples do;
      HDR-Real pairs do not (`loop.validate_config` refuses the pair).
    """
    m = _mask(mask, refined.shape[0])
    if space == "log_tone":
        r = mean_normalize(refined, eps)
        h = mean_normalize(target, eps) if normalize_target else target
        l1 = jnp.mean(_per_sample_mean(jnp.abs(log_tone(r) - log_tone(h))) * m)
        return l1, {"l1": l1}
    if space == "pu21":
        err = pu21_display(refined, target) - pu21_display(target, target)
        mse = jnp.mean(_per_sample_mean(jnp.square(err)) * m)
        return mse, {"mse": mse}
    raise ValueError(f"space must be one of {JOINT_SPACES}, got {space!r}")


__all__ = [
    "PERCEPTUAL_POOLS",
    "DEQ_SPACES",
    "JOINT_SPACES",
    "dequantization_loss",
    "hallucination_loss",
    "joint_loss",
    "linearization_loss",
    "mean_normalize",
    "perceptual_distance",
]
