"""What a training run writes for people to read while it runs.

`MetricsWriter` writes the scalars and preview images of a run as TensorBoard events under
WORKDIR/tensorboard and the same scalars as JSON lines in WORKDIR/metrics.jsonl (plots and
result files without TensorBoard; experiments/plot_curves.py reads them).  `preview_images`
picks and tone-maps the images shown; `train_log_line` and `format_duration` make the
progress line of the log.  Checkpoints and config.json are written by hdrjax.training.loop.
"""
from __future__ import annotations

import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from hdrjax import tonemap


class MetricsWriter:
    """TensorBoard events through tensorboardX (no TensorFlow) and metrics.jsonl; a no-op off process 0."""

    def __init__(self, logdir, *, batch_size: int = 0):
        self._w = None
        self._jsonl = None
        self._batch_size = batch_size
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter

            # Events under WORKDIR/tensorboard: `tensorboard --logdir WORKDIR/tensorboard`.
            self._w = SummaryWriter(str(pathlib.Path(logdir) / "tensorboard"))
            # The same scalars as JSON lines, for plots and result files without TensorBoard.
            self._jsonl = open(pathlib.Path(logdir) / "metrics.jsonl", "a", encoding="utf-8")

    def scalars(self, step, values: dict, prefix: str):
        """One row of scalars ("train", "eval") at `step`; images_seen = step x global batch."""
        if self._w is not None:
            for k, v in values.items():
                self._w.add_scalar(f"{prefix}/{k}", float(v), step)
            row = {"kind": prefix, "step": int(step), "images_seen": int(step) * self._batch_size,
                   "time": time.time(), **{k: float(v) for k, v in values.items()}}
            self._jsonl.write(json.dumps(row) + "\n")
            self._jsonl.flush()

    def images(self, step, images: dict, prefix: str):
        """{name: f32[N, H, W, 3] in [0, 1]} as TensorBoard image summaries."""
        if self._w is not None:
            for k, v in images.items():
                self._w.add_images(f"{prefix}/{k}", np.asarray(v), step, dataformats="NHWC")

    def flush(self):
        if self._w is not None:
            self._w.flush()

    def close(self):
        if self._w is not None:
            self._w.close()
            self._jsonl.close()


def preview_images(outputs, sample, n: int) -> dict:
    """[0, 1] previews of the stage's input, outputs and targets (first n samples).

    LDR images as they are; linear images through the paper's T after scaling so the GT HDR
    has mean 0.5 (one scale per sample shared by prediction and target, so brightness compares).
    """
    target = sample.exposed[:n]
    scale = 0.5 / jnp.maximum(jnp.mean(target, axis=(1, 2, 3), keepdims=True), 1e-6)

    def tone(x):
        return jnp.clip(tonemap.log_tone(jnp.maximum(x[:n], 0.0) * scale), 0.0, 1.0)

    images = {"input_jpeg": sample.jpeg[:n]}
    if "dequantized" in outputs:
        images["dequantized"] = jnp.clip(outputs["dequantized"][:n], 0.0, 1.0)
    if hasattr(sample, "ldr"):
        images["target_ldr"] = sample.ldr[:n]
    for name in ("linear", "hallucinated", "refined"):
        if name in outputs:
            images[name] = tone(outputs[name])
    if hasattr(sample, "clipped"):
        images["target_clipped"] = tone(sample.clipped)
    images["target_hdr"] = tone(target)
    return images


def format_duration(seconds: float) -> str:
    """'1h05m' or '4m09s' ('?' for an unknown, infinite duration)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def train_log_line(step: int, total: int, values: dict, rate: float) -> str:
    """The progress line: loss and its terms, and (rate > 0 steps/s) speed and time left."""
    terms = "  ".join(f"{k[5:]} {v:.4g}" for k, v in values.items() if k.startswith("loss_"))
    line = f"step {step}/{total}  loss {values['loss']:.5g}  ({terms})"
    if rate > 0:
        line += (f"  {values['images_per_sec']:.2f} img/s  {values['sec_per_step']:.2f} s/step"
                 f"  ETA {format_duration((total - step) / rate)}")
    return line
