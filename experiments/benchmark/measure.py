"""What every benchmark task measures with: clocks, XLA's cost and memory analysis, the
machine's ceilings, the model under test and the images it runs on.

Runs inside the benchmark's worker processes (runner.py starts them), where jax is
imported; the task modules (roofline, inference, train, regions) call these helpers.

Weights are random (Glorot, as the layers' own init, drawn with numpy: `model.init` on CPU
compiles for minutes), with the last layer of the Dequantization-, Refinement- and
Linearization-Net zeroed so that C = LDR and the curve is the basis mean: the highlight mask
(and so the work skipped) is then the one a trained model gives for a clipped photo. Timings
and FLOPs do not depend on the weights' values.
"""
from __future__ import annotations

import pathlib
import sys
import time
from typing import Any, Callable

from hdrjax.models import build

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository
SHARED = ROOT.parent / "shared" / "data"

STAGES = build.NETWORKS
SWEEP_SOURCE = "real_hdr/MtTamNorth.exr"  # landscape with sky: content for the size sweep
CLIP_PERCENT = 1.0  # exposure: the brightest 1 % of pixels (max channel) clip
GAMMA = 2.2

# ----------------------------------------------------------------------------- clocks

_COMPILE_SECONDS = [0.0]
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _compile_listener(event: str, duration: float, **kwargs) -> None:
    if event in _COMPILE_EVENTS:
        _COMPILE_SECONDS[0] += duration


def compile_seconds() -> float:
    """Seconds spent tracing, lowering and compiling in this process so far (jax.monitoring)."""
    return _COMPILE_SECONDS[0]


def setup_worker() -> None:
    """Count compile time from here on (called once per worker process, before any task)."""
    import jax

    jax.monitoring.register_event_duration_secs_listener(_compile_listener)


def median(xs):
    """Median of a list, None when empty."""
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def block(x):
    import jax

    return jax.block_until_ready(x)


def time_calls(fn: Callable[[], Any], *, repeats: int, budget_s: float, min_repeats: int = 1) -> list[float]:
    """Wall seconds of up to `repeats` calls of fn (each blocked until ready), within budget_s."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
        spent = time.perf_counter() - start
        if len(times) >= min_repeats and spent + median(times) > budget_s:
            break
    return times


# ------------------------------------------------------------------ XLA's analyses, memory


def cost_of(compiled) -> dict:
    """FLOPs, bytes accessed and transcendentals from XLA's cost analysis of a compiled function."""
    try:
        ca = compiled.cost_analysis()
    except Exception as e:  # some backends have none
        return {"error": str(e)}
    if isinstance(ca, (list, tuple)):  # older jax: one dict per partition
        ca = ca[0] if ca else {}
    ca = dict(ca or {})
    return {
        "flops": float(ca.get("flops", 0.0)),
        "bytes_accessed": float(ca.get("bytes accessed", 0.0)),
        "transcendentals": float(ca.get("transcendentals", 0.0)),
    }


def memory_of(compiled) -> dict | None:
    """XLA's buffer assignment sizes of a compiled function (bytes), or None."""
    try:
        m = compiled.memory_analysis()
    except Exception:
        return None
    if m is None:
        return None
    out = {}
    for name in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
                 "temp_size_in_bytes", "generated_code_size_in_bytes"):
        if hasattr(m, name):
            out[name.replace("_size_in_bytes", "_bytes")] = int(getattr(m, name))
    if {"argument_bytes", "output_bytes", "temp_bytes"} <= out.keys():
        out["total_bytes"] = out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out.get("alias_bytes", 0)
    return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (bytes)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def current_rss_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


def device_memory() -> dict | None:
    """Peak / in-use bytes of device 0 (GPU/TPU; None on CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:
        return None
    if not stats:
        return None
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k: int(stats[k]) for k in keys if k in stats}


def platform_name() -> str:
    import jax

    return jax.devices()[0].platform


# ------------------------------------------------------------------ the machine's ceilings


def matmul_gflops(n: int, *, dtype="float32", repeats: int = 3, budget_s: float = 6.0) -> float:
    """Best-of GFLOP/s of a jitted n×n @ n×n jnp.dot (the dense compute ceiling)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    f = jax.jit(jnp.dot)
    block(f(a, b))
    times = time_calls(lambda: f(a, b), repeats=repeats, budget_s=budget_s, min_repeats=2)
    return 2.0 * n ** 3 / min(times) / 1e9


def peak_size() -> int:
    """Matmul side that reaches the dense peak on this platform (measured in `task_peak`)."""
    return 8192 if platform_name() == "gpu" else 2048


def same_process_peak(quick: bool) -> float:
    """The matmul peak measured now, in this process, for same-process roofline ratios."""
    return matmul_gflops(256 if quick else peak_size(), repeats=3 if quick else 4)


def bandwidth_gbs(n_floats: int, repeats: int = 5) -> float:
    """Best-of GB/s of a jitted triad y = a·x + z (two reads, one write of float32)."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones((n_floats,), jnp.float32)
    z = [jnp.full((n_floats,), 2.0, jnp.float32)]
    # z is donated and overwritten: a fresh output buffer per call would time page faults.
    f = jax.jit(lambda x, z: 0.5 * x + z, donate_argnums=(1,))

    def call():
        z[0] = f(x, z[0])
        return z[0]

    block(call())
    times = time_calls(call, repeats=repeats, budget_s=5.0, min_repeats=3)
    return 3 * 4 * n_floats / min(times) / 1e9


# ----------------------------------------------------------------------------- the model


def load_config(stage: str, variant: str | None = None):
    """configs/<stage>.py's config (the Refinement-Net is trained by the joint config)."""
    from hdrjax import configs

    return configs.get_config("joint" if stage == "refinement" else stage, variant)


def random_variables(model, *, seed: int = 0, neutral: bool = True) -> dict:
    """SingleHDR variables drawn with numpy, neutral by default (hdrjax.models.build)."""
    return build.random_variables(model, seed=seed, neutral=neutral)


_MODELS: dict = {}


def build_model(dtype: str | None = None):
    """(config, SingleHDR, variables): the default (joint) model config, random variables.

    Memoised per dtype, so tasks in one process share the model object and with it predict's
    compiled stage functions (its jit cache is per model object).
    """
    if dtype not in _MODELS:
        cfg = load_config("joint")
        if dtype:
            cfg.model.dtype = dtype
        model = build.build_model(cfg)
        _MODELS[dtype] = (cfg, model, random_variables(model))
    return _MODELS[dtype]


# ------------------------------------------------------------------------------- content


def make_ldr(hdr, clip_percent: float = CLIP_PERCENT, gamma: float = GAMMA):
    """8-bit LDR of an HDR image: exposure so `clip_percent` % of pixels clip, gamma, rounding."""
    import numpy as np

    hdr = np.nan_to_num(np.asarray(hdr, np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, None)
    level = float(np.percentile(hdr.max(axis=-1), 100.0 - clip_percent))
    exposed = np.clip(hdr / max(level, 1e-8), 0.0, 1.0)
    return (np.round(255.0 * exposed ** (1.0 / gamma)) / 255.0).astype(np.float32)


def synthetic_hdr(h: int, w: int, seed: int = 0):
    """A smooth HDR scene with a few bright light sources (when ../shared/data is absent)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = max(h, w)
    img = 0.3 + 0.2 * np.sin(xx[..., None] / (0.07 * s) + np.arange(3)) * np.cos(yy[..., None] / (0.05 * s))
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.01, 0.04) * s
        img = img + 20.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    return img.astype(np.float32)


def read_hdr(rel: str):
    """An HDR image of ../shared/data (warnings about repaired pixels silenced), or None if absent."""
    import warnings

    from hdrjax.io import read_image

    path = SHARED / rel
    if not path.exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_image(path)


def fit_to(img, h: int, w: int):
    """Centre-crop img to the aspect ratio h:w, then resize to h×w (area / linear)."""
    import cv2

    ih, iw = img.shape[:2]
    if ih * w > iw * h:  # too tall
        ch = max(1, round(iw * h / w))
        y = (ih - ch) // 2
        img = img[y : y + ch]
    else:
        cw = max(1, round(ih * w / h))
        x = (iw - cw) // 2
        img = img[:, x : x + cw]
    interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def sweep_ldr(h: int, w: int):
    """The size sweep's photo (SWEEP_SOURCE resized) as an LDR, or a synthetic scene."""
    hdr = read_hdr(SWEEP_SOURCE)
    source = SWEEP_SOURCE
    if hdr is None:
        hdr, source = synthetic_hdr(h, w), "synthetic"
    else:
        hdr = fit_to(hdr, h, w)
    return make_ldr(hdr), source


def hdr_batch(batch: int, patch: int, seed: int = 0):
    """A training batch {"hdr": f32[b, p, p, 3]}: blocky log-normal radiance with bright spots."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cell = max(1, patch // 8)
    low = np.exp(rng.normal(-1.0, 1.2, (batch, -(-patch // cell), -(-patch // cell), 3))).astype(np.float32)
    hdr = np.repeat(np.repeat(low, cell, axis=1), cell, axis=2)[:, :patch, :patch]
    return {"hdr": np.ascontiguousarray(hdr, np.float32)}
