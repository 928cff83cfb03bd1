"""The periodic held-out evaluation of a training run (train.eval_every).

It owns the fixed evaluation set (`make_eval_set`, §1.7: test patches x exposures x test
CRFs, the same samples at every evaluation), the per-sample metrics of each stage
(`eval_metrics`), and running a compiled eval step over the set: `dispatch_eval` starts
every batch on the devices and returns at once, `collect_eval` waits and averages, so the
training loop can let the device evaluate behind the next train step (train.async_eval).
The eval step itself, next to the train step, is `hdrjax.training.loop.make_eval_step`.

Not to be confused with hdrjax.evaluate: the benchmark of trained models on full images.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax.errors import ConfigError
from hdrjax.training import parallel


def eval_metrics(config, outputs, sample) -> dict:
    """Per-sample metrics of the stage's output vs its target (f32[B] each)."""
    from hdrjax.evaluation import metrics

    stage = config.stage
    if stage == "dequantization":
        return {"psnr": metrics.psnr(outputs["dequantized"], sample.ldr, 1.0)}
    if stage == "linearization":
        curve_rmse = jnp.sqrt(jnp.mean(jnp.square(outputs["inverse_crf"] - sample.inverse_crf), axis=-1))
        return {"psnr": metrics.psnr(outputs["linear"], sample.clipped, 1.0), "curve_rmse": curve_rmse}
    pred = outputs["refined"] if stage == "joint" else outputs["hallucinated"]
    out = {
        "tone_psnr": metrics.tone_psnr(pred, sample.exposed),
        "mu_psnr": metrics.mu_psnr(pred, sample.exposed),
    }
    # PU21 needs absolute luminance: the reference's peak -> 4000 cd/m², the prediction
    # scaled by the same factor (as metrics.compute_all with normalization="reference").
    out["pu21_psnr"] = metrics.pu21_psnr(metrics.display_model(pred, sample.exposed),
                                         metrics.display_model(sample.exposed))
    if stage == "joint":
        out["hallucinated_tone_psnr"] = metrics.tone_psnr(outputs["hallucinated"], sample.exposed)
        if hasattr(sample, "ldr"):  # synthetic data: the intermediate targets exist
            out["dequantized_psnr"] = metrics.psnr(outputs["dequantized"], sample.ldr, 1.0)
            out["linear_psnr"] = metrics.psnr(outputs["linear"], sample.clipped, 1.0)
    return out


def make_eval_set(config, num_crfs: int, num_devices: int) -> list[dict]:
    """Fixed eval batches (§1.7): test patches x exposures 2^eval.exposure_stops, test CRFs in turn.

    Every (patch, exposure) pair gets the next test CRF, so all CRFs and exposures are covered
    even with few patches; JPEG quality is eval.jpeg_quality.  Real pairs (hdr_real) are used
    as they are.  Each batch is a dict of host arrays padded to eval.batch_size (rounded up to
    a multiple of `num_devices`) with a "valid" weight; identical on every process.
    """
    from hdrjax import data

    items = list(data.make_eval_dataset(config.data, num_patches=config.eval.num_patches))
    if not items:
        raise ConfigError("config.data: the evaluation split is empty")
    rows = []
    if "ldr" in items[0]:
        rows = [{"hdr": it["hdr"], "ldr": it["ldr"], "crf_index": 0, "exposure": 1.0} for it in items]
    else:
        for e, stop in enumerate(config.eval.exposure_stops):
            for i, it in enumerate(items):
                rows.append({"hdr": it["hdr"], "crf_index": (i + e * len(items)) % num_crfs,
                             "exposure": 2.0 ** stop})
    bs = -(-config.eval.batch_size // num_devices) * num_devices
    base_key = jax.random.key(config.seed)
    batches = []
    for b, start in enumerate(range(0, len(rows), bs)):
        chunk = rows[start:start + bs]
        pad = bs - len(chunk)
        chunk = chunk + [chunk[-1]] * pad
        batch = {k: np.stack([np.asarray(r[k], np.float32) for r in chunk]) for k in chunk[0] if k in ("hdr", "ldr")}
        batch["crf_index"] = np.array([r["crf_index"] for r in chunk], np.int32)
        batch["exposure"] = np.array([r["exposure"] for r in chunk], np.float32)
        batch["quality"] = np.full((bs,), config.eval.jpeg_quality, np.int32)
        batch["valid"] = np.array([1.0] * (bs - pad) + [0.0] * pad, np.float32)
        # Fixed noise per batch: the same eval samples at every evaluation.
        batch["key"] = np.asarray(jax.random.key_data(jax.random.fold_in(base_key, 1_000_003 + b)))
        batches.append(batch)
    return batches


def dispatch_eval(eval_fn, variables, eval_set, bank, mesh, *, max_batches: int | None = None) -> list:
    """Start the eval computations of every batch (device arrays, nothing waited for)."""
    return [eval_fn(variables, _put_eval_batch(batch, mesh), bank) for batch in eval_set[:max_batches]]


def collect_eval(outputs):
    """(mean of each eval metric over the eval set, preview images of its first batch) from
    the outputs of `dispatch_eval`; waits for them."""
    totals: dict[str, float] = {}
    images = parallel.fetch(outputs[0][1])
    for sums, _ in outputs:
        for k, v in parallel.fetch(sums).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = max(totals.pop("count", 0.0), 1.0)
    return {k: v / count for k, v in totals.items()}, images


def _put_eval_batch(batch, mesh):
    """Global arrays from an eval batch every process holds in full (key replicated)."""
    def put(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    data, rep = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    return {k: put(v, rep if k == "key" else data) for k, v in batch.items()}
