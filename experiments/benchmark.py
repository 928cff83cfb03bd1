"""Speed and memory of hdrjax: inference, per-stage roofline, training, scaling and knobs.

    python experiments/benchmark.py                      # full run (~10 min on a 2-core CPU)
    python experiments/benchmark.py --quick              # smoke test: tiny sizes, one process
    python experiments/benchmark.py --only peak,stages   # some sections only
    bash experiments/gpu_benchmark.sh                    # the same on one GPU, offline

Writes `experiments/results/benchmark-<machine>.json` (every number, the environment, the
load average) and `benchmark-<machine>.md` (the tables). Sections:

* peak      dense float32 matmul GFLOP/s (`jnp.dot`, several sizes, and numpy's 4096²) and a
            streaming bandwidth: the machine's ceilings, measured in the same run.
* stages    each network's forward at 1 MP in one pass: time, FLOPs and bytes from XLA's cost
            analysis, achieved GFLOP/s / same-process matmul peak (the roofline ratio), what
            bounds it (compute, memory or per-call overhead).
* inference `hdrjax.predict.reconstruct` end to end (all four stages, default tiled
            PredictConfig) at 512², 1 MP, 2 MP and 12 MP, each size in a fresh process: median
            of repeats after a warm-up, compile time apart, peak RSS / device memory.
* photos    highlight-aware tiling on real photographs (LDRs made from ../shared/data HDRs):
            fraction of tiles whose Hallucination-Net is skipped, time vs full computation.
* train     images/s of each stage's train step (and joint) at 256², batch 8; forward+backward
            FLOPs; the camera synthesis' share of the step; the largest batch that fits.
* scaling   the same step sharded over 1, 2, 4, 8 devices (fake CPU devices in subprocesses).
* knobs     bf16 compute, remat policies, buffer donation, NHWC vs NCHW, tile batching and
            tile size, each as a ratio against the default.

Weights are random (Glorot, as the layers' own init, drawn with numpy: `model.init` on CPU
compiles for minutes), with the last layer of the Dequantization-, Refinement- and
Linearization-Net zeroed so that C = LDR and the curve is the basis mean: the highlight mask
(and so the tiles skipped) is then the one a trained model gives for a clipped photo. Timings
and FLOPs do not depend on the weights' values.

Every ratio in the tables is taken within one run (and, for the roofline, within one
process), so a slower or busier machine shifts both sides; absolute times from a loaded
machine are marked as contended.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable
from hdrjax.errors import HdrjaxError
from hdrjax.models import build

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"

STAGES = build.NETWORKS
TRAIN_STAGES = build.TRAINING_STAGES

# The PyTorch port of the same networks (alxBO/singlehdr-service), as quoted in the issue:
# torch 2.13 CPU, 2 threads, refinement mode, random weights, on a machine like ours. Not
# measured by us.
PORT = {
    "source": "quoted from the issue (alxBO/singlehdr-service, torch 2.13 CPU, 2 threads, "
              "refinement mode, random weights); not measured by this script",
    "seconds": {"512x512": 4.5, "1024x1024": 17.4, "1080x1920": 38.5},
    "peak_rss_gb": {"1024x1024": 4.0, "1080x1920": 7.2},
    "tflop_per_image_1024": 2.03,  # at 1088² after the port's padding
    "padded_pixels_1024": 1088 * 1088,
    "hallucination_share": 0.71,
    "matmul_peak_gflops": 200.0,  # numpy/OpenBLAS 4096² float32 on their machine
    "fraction_of_peak": 0.55,
}
# Goals from the issue.
GOAL_PEAK_FRACTION = 0.60
GOAL_SPEEDUP = 2.0
GOAL_MEMORY_FRACTION = 0.25

# Real photographs for the highlight-aware tiling: the four OpenEXR photos and three
# panoramas with a sun, a bright sky and indoor lights.
PHOTO_FILES = (
    "real_hdr/CandleGlass.exr", "real_hdr/Cannon.exr", "real_hdr/Desk.exr", "real_hdr/MtTamNorth.exr",
    "train_hdr/blouberg_sunrise_2_1k.hdr", "train_hdr/dresden_square_1k.hdr", "train_hdr/interior.exr",
)
SWEEP_SOURCE = "real_hdr/MtTamNorth.exr"  # landscape with sky: content for the size sweep
CLIP_PERCENT = 1.0  # exposure: the brightest 1 % of pixels (max channel) clip
GAMMA = 2.2

# Environment variables that change BLAS / XLA speed, recorded with the results.
ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "NVPL_BLAS_DEBUG_CPU_TYPE", "XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64",
            "JAX_DEFAULT_MATMUL_PRECISION", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")
DEVICE_FLAG = "--xla_force_host_platform_device_count"
ALIGN = 32  # predict's tile alignment (the Hallucination-Net's 5 poolings)
QUICK_FLAG = "--xla_backend_optimization_level=0"


class BenchmarkError(HdrjaxError):
    """A benchmark option that cannot work (the message names it)."""


# ============================================================================ worker helpers
# Everything below up to `run_tasks` runs inside worker processes (jax imported there).

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


def _setup_worker() -> None:
    import jax

    jax.monitoring.register_event_duration_secs_listener(_compile_listener)


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _block(x):
    import jax

    return jax.block_until_ready(x)


def time_calls(fn: Callable[[], Any], *, repeats: int, budget_s: float, min_repeats: int = 1) -> list[float]:
    """Wall seconds of up to `repeats` calls of fn (each blocked until ready), within budget_s."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - t0)
        spent = time.perf_counter() - start
        if len(times) >= min_repeats and spent + _median(times) > budget_s:
            break
    return times


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


def _platform() -> str:
    import jax

    return jax.devices()[0].platform


def matmul_gflops(n: int, *, dtype="float32", repeats: int = 3, budget_s: float = 6.0) -> float:
    """Best-of GFLOP/s of a jitted n×n @ n×n jnp.dot (the dense compute ceiling)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    b = jnp.asarray(rng.standard_normal((n, n), np.float32), dtype)
    f = jax.jit(jnp.dot)
    _block(f(a, b))
    times = time_calls(lambda: f(a, b), repeats=repeats, budget_s=budget_s, min_repeats=2)
    return 2.0 * n ** 3 / min(times) / 1e9


def peak_size() -> int:
    """Matmul side that reaches the dense peak on this platform (measured in `task_peak`)."""
    return 8192 if _platform() == "gpu" else 2048


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

    _block(call())
    times = time_calls(call, repeats=repeats, budget_s=5.0, min_repeats=3)
    return 3 * 4 * n_floats / min(times) / 1e9


# ----------------------------------------------------------------------------- model setup


def load_config(stage: str, variant: str | None = None):
    """hdrjax/configs/<stage>.py's config (the Refinement-Net is trained by the joint config)."""
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


# ============================================================================== tasks


def task_peak(spec: dict) -> dict:
    """Dense matmul GFLOP/s (jnp at several sizes, bf16, numpy 4096²) and triad bandwidth."""
    import jax
    import numpy as np

    quick = spec["quick"]
    gpu = _platform() == "gpu"
    sizes = [128, 256] if quick else ([2048, 4096, 8192] if gpu else [1024, 2048, 4096])
    out: dict[str, Any] = {"jnp_float32": {}, "jnp_bfloat16": {}}
    for n in sizes:
        out["jnp_float32"][str(n)] = matmul_gflops(n, budget_s=8.0)
    # bf16 matmuls are emulated on CPUs without AVX512-BF16/AMX: the smaller sizes suffice there.
    for n in (sizes[-2:] if gpu else sizes[:2]):
        out["jnp_bfloat16"][str(n)] = matmul_gflops(n, dtype="bfloat16", budget_s=8.0)
    out["peak_gflops"] = max(out["jnp_float32"].values())
    out["peak_size"] = int(max(out["jnp_float32"], key=out["jnp_float32"].get))
    out["peak_bf16_gflops"] = max(out["jnp_bfloat16"].values())
    # numpy / OpenBLAS at the port's 4096² (its peak was measured this way).
    n = 256 if quick else 4096
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a @ b
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    out["numpy_float32"] = {"size": n, "gflops": 2.0 * n ** 3 / min(times) / 1e9}
    out["numpy_over_jnp"] = out["numpy_float32"]["gflops"] / out["peak_gflops"]
    n_floats = 1 << (18 if quick else (28 if gpu else 25))
    out["bandwidth_gbs"] = bandwidth_gbs(n_floats)
    out["bandwidth_array_mb"] = 4 * n_floats / 2 ** 20
    # FLOPs per byte above which a kernel can be compute-bound here.
    out["machine_balance_flop_per_byte"] = out["peak_gflops"] / out["bandwidth_gbs"]
    out["device"] = str(jax.devices()[0].device_kind)
    return out


def _stage_fns(model):
    """Per-stage forward functions f(variables, *inputs) of SingleHDR, as predict runs them."""
    return {
        "dequantization": lambda v, x: model.apply(v, x, method="dequantize"),
        "linearization": lambda v, x: model.apply(v, x, train=False, method="estimate_inverse_crf"),
        "hallucination": lambda v, x: model.apply(v, x, train=False, method="hallucinate")[0],
        "refinement": lambda v, a, b, c: model.apply(v, a, b, c, method="refine"),
    }


def _stage_inputs(stage: str, size: tuple[int, int], batch: int = 1):
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0.0, 1.0, (batch, *size, 3)).astype(np.float32))
    return (x, x, x) if stage == "refinement" else (x,)


def _bound(gflops: float, peak: float, intensity: float | None, balance: float | None,
           per_px_small: float | None, per_px_big: float | None) -> str:
    """Classify what limits a kernel: compute, memory or per-call overhead."""
    if per_px_small is not None and per_px_big and per_px_small > 3.0 * per_px_big:
        overhead = "; at small sizes per-call overhead dominates"
    else:
        overhead = ""
    if gflops >= 0.5 * peak:
        return "compute" + overhead
    if intensity is not None and balance and intensity < balance:
        return "memory (arithmetic intensity below the machine balance)" + overhead
    return "compute (intensity above the machine balance), below peak: kernel efficiency" + overhead


def task_stages(spec: dict) -> dict:
    """Each network's one-pass forward at `size`: FLOPs, bytes, time, roofline ratio."""
    import jax

    quick = spec["quick"]
    size = tuple(spec["size"])
    small = tuple(spec["small"]) if spec.get("small") else None
    crf_size = tuple(spec["crf_size"])
    _, model, variables = build_model(spec.get("dtype"))
    peak = same_process_peak(quick)
    balance_bw = bandwidth_gbs(1 << (18 if quick else 25), repeats=3)
    balance = peak / balance_bw
    out: dict[str, Any] = {"size": list(size), "crf_size": list(crf_size), "peak_gflops": peak,
                           "bandwidth_gbs": balance_bw, "machine_balance_flop_per_byte": balance, "stages": {}}
    fns = _stage_fns(model)
    rows = [(s, size) for s in STAGES if s != "linearization"] + [("linearization", crf_size)]
    if spec.get("linearization_full") and crf_size != size:
        rows.append(("linearization@full", size))
    for name, shape in rows:
        stage = name.split("@")[0]
        args = _stage_inputs(stage, shape)
        c0 = time.perf_counter()
        compiled = jax.jit(fns[stage]).lower(variables, *args).compile()
        compile_s = time.perf_counter() - c0
        cost = cost_of(compiled)
        # The first call is the warm-up (allocations) unless it alone exceeds the budget, then
        # it is the only timed call (the executable is already compiled either way).
        calls = time_calls(lambda: compiled(variables, *args), repeats=spec["repeats"] + 1,
                           budget_s=spec["budget_s"], min_repeats=1)
        times = calls[1:] if len(calls) > 1 else calls
        t = _median(times)
        row = {"shape": list(shape), "compile_s": compile_s, "seconds": t, "runs": len(times),
               "times": times, "warmup_s": calls[0] if len(calls) > 1 else None, **cost,
               "memory": memory_of(compiled)}
        pixels = shape[0] * shape[1]
        row["flops_per_pixel"] = cost.get("flops", 0.0) / pixels
        row["gflops_achieved"] = cost.get("flops", 0.0) / t / 1e9
        row["fraction_of_peak"] = row["gflops_achieved"] / peak
        bytes_ = cost.get("bytes_accessed") or None
        row["intensity_flop_per_byte"] = cost.get("flops", 0.0) / bytes_ if bytes_ else None
        row["bandwidth_if_memory_bound_gbs"] = (bytes_ / t / 1e9) if bytes_ else None
        if small is not None and name != "linearization@full":
            sargs = _stage_inputs(stage, small)
            scomp = jax.jit(fns[stage]).lower(variables, *sargs).compile()
            _block(scomp(variables, *sargs))
            st = _median(time_calls(lambda: scomp(variables, *sargs), repeats=5, budget_s=2.0, min_repeats=3))
            row["small"] = {"shape": list(small), "seconds": st,
                            "seconds_per_mpixel": st / (small[0] * small[1]) * 1e6}
        row["seconds_per_mpixel"] = t / pixels * 1e6
        row["bound"] = _bound(row["gflops_achieved"], peak, row["intensity_flop_per_byte"], balance,
                              row.get("small", {}).get("seconds_per_mpixel"), row["seconds_per_mpixel"])
        out["stages"][name] = row
    # The whole one-pass model (Linearization-Net on the CRF-resolution image, as predict).
    main = [out["stages"][s] for s in STAGES]
    total_flops = sum(r["flops"] for r in main)
    total_s = sum(r["seconds"] for r in main)
    out["model"] = {
        "flops": total_flops,
        "seconds": total_s,
        "gflops_achieved": total_flops / total_s / 1e9,
        "fraction_of_peak": total_flops / total_s / 1e9 / peak,
        "hallucination_flop_share": out["stages"]["hallucination"]["flops"] / total_flops,
        "hallucination_time_share": out["stages"]["hallucination"]["seconds"] / total_s,
    }
    slowest = max(STAGES, key=lambda s: out["stages"][s]["seconds"])
    out["slowest_stage"] = slowest
    # The peak again: ratios use the higher of the two readings (conservative under load).
    out["peak_gflops_after"] = same_process_peak(quick)
    ref = max(peak, out["peak_gflops_after"])
    out["peak_gflops_used"] = ref
    for row in out["stages"].values():
        row["fraction_of_peak"] = row["gflops_achieved"] / ref
    out["model"]["fraction_of_peak"] = out["model"]["gflops_achieved"] / ref
    return out


def _crf_shape(h: int, w: int, long_side: int = 512) -> tuple[int, int]:
    """The shape predict resizes the dequantised image to for the CRF (its default crf_resolution)."""
    if max(h, w) <= long_side:
        return h, w
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def proxy_shape(h: int, w: int, tile: int) -> tuple[int, int]:
    """The smallest same-aspect image with the tile shapes and CRF-input shape of h×w (warm-up).

    Scaled so its short side is one tile (its tiles stay tile×tile) and checked to give the
    same CRF-input shape, so the warm-up compiles everything the real run needs at a fraction
    of its cost; the image itself when that does not hold.
    """
    if min(h, w) <= tile:
        return h, w
    for short in (tile, tile + ALIGN, 2 * tile):
        s = short / min(h, w)
        ph, pw = max(1, round(h * s)), max(1, round(w * s))
        if (ph, pw) != (h, w) and _crf_shape(ph, pw) == _crf_shape(h, w) and min(ph, pw) < min(h, w):
            return ph, pw
    return h, w


def task_inference(spec: dict) -> dict:
    """End-to-end `reconstruct` on one image size: warm-up, timed repeats, memory."""
    import numpy as np

    from hdrjax import predict

    h, w = spec["height"], spec["width"]
    _, model, variables = build_model(spec.get("dtype"))
    ldr, source = sweep_ldr(h, w)
    config = predict.PredictConfig(
        tile=spec["tile"], overlap=spec["overlap"], stages=STAGES, skip_unlit_tiles=spec.get("skip", True),
        batch_size=spec.get("batch_size", 1),
    )
    rss_setup = current_rss_bytes()
    # Warm-up on a same-aspect proxy with every tile hallucinated, so every function compiles.
    ph, pw = proxy_shape(h, w, spec["tile"])
    proxy = ldr if (ph, pw) == (h, w) else sweep_ldr(ph, pw)[0]
    c0 = compile_seconds()
    t0 = time.perf_counter()
    predict.reconstruct(model, variables, proxy, dataclasses.replace(config, skip_unlit_tiles=False))
    warmup_s = time.perf_counter() - t0
    compile_s = compile_seconds() - c0
    runs, stage_runs, late_compile = [], [], 0.0
    start = time.perf_counter()
    while len(runs) < spec["repeats"]:
        if runs and time.perf_counter() - start + _median(runs) > spec["budget_s"]:
            break
        c0 = compile_seconds()
        t0 = time.perf_counter()
        r = predict.reconstruct(model, variables, ldr, config)
        wall = time.perf_counter() - t0
        late = compile_seconds() - c0  # a shape the proxy did not have (should be 0)
        late_compile += late
        runs.append(wall - late)
        stage_runs.append(r.stats.get("seconds", {}))
    stats = r.stats
    median = _median(runs)
    stage_median = {s: _median([sr.get(s, 0.0) for sr in stage_runs]) for s in STAGES}
    tiles = int(stats.get("tiles", 0))
    th, tw = stats.get("tile_shape", (0, 0))
    return {
        "height": h, "width": w, "megapixels": h * w / 1e6, "source": source,
        "config": dataclasses.asdict(config),
        "warmup_shape": [ph, pw], "warmup_s": warmup_s, "compile_s": compile_s,
        "compile_during_timed_runs_s": late_compile,
        "runs": len(runs), "times": runs, "seconds": median,
        "stage_seconds": stage_median,
        "seconds_without_refinement": median - (stage_median.get("refinement") or 0.0),
        "tiles": tiles, "tile_shape": [int(th), int(tw)],
        "hallucinated_tiles": int(stats.get("hallucinated_tiles", tiles)),
        "skipped_fraction": float(stats.get("skipped_fraction", 0.0)),
        "crf_shape": list(stats.get("crf_shape", [])),
        "computed_pixel_ratio": tiles * th * tw / (h * w) if tiles else None,
        "rss_after_setup_bytes": rss_setup,
        "peak_rss_bytes": peak_rss_bytes(),
        "device_memory": device_memory(),
        "platform": _platform(),
        "output_finite": bool(np.isfinite(r.output).all()),
    }


def task_photos(spec: dict) -> dict:
    """Highlight-aware tiling on real photos: skipped tiles, time with skip vs without."""
    import numpy as np

    from hdrjax import predict

    _, model, variables = build_model()
    photos = []
    for rel in spec["files"]:
        hdr = read_hdr(rel)
        if hdr is None:
            continue
        if spec.get("max_side"):
            s = spec["max_side"] / max(hdr.shape[:2])
            if s < 1:
                hdr = fit_to(hdr, max(32, round(hdr.shape[0] * s)), max(32, round(hdr.shape[1] * s)))
        photos.append((rel, make_ldr(hdr)))
    if not photos:  # no ../shared/data: two synthetic scenes stand in (said in the output)
        size = spec.get("max_side") or 768
        photos = [(f"synthetic-{i}", make_ldr(synthetic_hdr(size * 3 // 4, size, seed=i))) for i in range(2)]
    rows = []
    for rel, ldr in photos:
        row = {"file": rel, "height": ldr.shape[0], "width": ldr.shape[1],
               "clipped_pixel_fraction": float((ldr.max(axis=-1) >= 1.0).mean())}
        for mode, skip in (("skip", True), ("full", False)):
            if not skip and row["skip"]["skipped_fraction"] == 0.0:
                # Every tile was lit: the full run would make exactly the same calls.
                row["full"] = dict(row["skip"], same_work_as_skip=True)
                row["max_abs_diff_skip_vs_full"] = 0.0
                continue
            config = predict.PredictConfig(tile=spec["tile"], overlap=spec["overlap"], stages=STAGES,
                                           skip_unlit_tiles=skip)
            times, compiles = [], []
            for _ in range(spec["repeats"]):
                c0 = compile_seconds()
                t0 = time.perf_counter()
                r = predict.reconstruct(model, variables, ldr, config)
                wall = time.perf_counter() - t0
                compiles.append(compile_seconds() - c0)
                times.append(wall - compiles[-1])  # a new photo shape compiles the CRF net once
            row[mode] = {"seconds": _median(times), "runs": len(times), "compile_s": sum(compiles),
                         "tiles": int(r.stats.get("tiles", 0)),
                         "hallucinated_tiles": int(r.stats.get("hallucinated_tiles", 0)),
                         "skipped_fraction": float(r.stats.get("skipped_fraction", 0.0)),
                         "stage_seconds": r.stats.get("seconds", {})}
            if skip:
                skip_out = r.output
            else:
                # Skipping is exact: unlit tiles give B, which is what the network gives there.
                row["max_abs_diff_skip_vs_full"] = float(np.max(np.abs(skip_out - r.output)))
        row["speedup_skip_vs_full"] = row["full"]["seconds"] / row["skip"]["seconds"]
        rows.append(row)
    return {"photos": rows, "clip_percent": CLIP_PERCENT, "gamma": GAMMA,
            "tile": spec["tile"], "overlap": spec["overlap"]}


def _train_setup(stage: str, batch: int, patch: int, devices: int, *, dtype: str | None = None):
    """(cfg, model, state, host_batch, bank, vgg, mesh) for one stage's train step."""
    import jax
    import jax.numpy as jnp

    from hdrjax import parallel, train, train_state
    from hdrjax.camera import crf

    cfg = load_config(stage)
    cfg.train.batch_size = batch
    cfg.data.patch_size = patch
    if dtype:
        cfg.model.dtype = dtype
    model = build.build_model(cfg)
    variables = random_variables(model, neutral=False)
    optimizer = train.make_optimizer(cfg)
    mesh = parallel.make_mesh(jax.devices()[:devices])
    rep = parallel.replicated(mesh)
    params = variables["params"]
    state = train_state.TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables["batch_stats"],
        opt_state=jax.jit(optimizer.init)(params),
        key=jax.random.key_data(jax.random.key(cfg.seed)),
    )
    state = jax.device_put(state, rep)
    bank = jax.device_put(crf.load_bank(cfg.crf.bank, split="train"), rep)
    vgg = None
    if stage == "hallucination" and cfg.loss.perceptual_weight > 0:
        from hdrjax.models import vgg as vgg_lib

        vgg = jax.device_put(vgg_lib.load_vgg16(cfg.init.vgg_loss or cfg.init.vgg or "lpips"), rep)
    return cfg, model, optimizer, state, bank, vgg, mesh


def _lower_step(cfg, model, optimizer, state, batch, bank, vgg, mesh, *, donate=True):
    import jax

    from hdrjax import parallel, train

    step = train.make_train_step(cfg, model, optimizer)
    if donate:
        jitted = train.jit_train_step(step, mesh)  # the trainer's own jit (state donated)
    else:
        rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        jitted = jax.jit(step, in_shardings=(rep, data, rep, rep), out_shardings=(rep, rep))
    return jitted.lower(state, batch, bank, vgg)


def _compile_step(cfg, model, optimizer, state, batch, bank, vgg, mesh, *, donate=True):
    t0 = time.perf_counter()
    compiled = _lower_step(cfg, model, optimizer, state, batch, bank, vgg, mesh, donate=donate).compile()
    return compiled, time.perf_counter() - t0


@contextlib.contextmanager
def _xla_kernel_grad():
    """Trace inside with XLA's own conv kernel gradient (HDRJAX_CONV_KERNEL_GRAD=xla)."""
    from hdrjax.models import conv

    saved = os.environ.get(conv.ENV_VAR)
    os.environ[conv.ENV_VAR] = "xla"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(conv.ENV_VAR)
        else:
            os.environ[conv.ENV_VAR] = saved


def _step_flops(entry: dict) -> float | None:
    """The train step's FLOPs, counted on its loop-free form.

    On CPU the conv kernel gradients run their taps in a `lax.scan`, and XLA's cost analysis
    counts a loop body once, not per iteration; the same step traced with XLA's own kernel
    gradient has the same arithmetic and no loop. Lowering (no compile) is enough to count it.
    """
    from hdrjax.models import conv

    if conv.kernel_grad_mode() == "xla":
        return None
    with _xla_kernel_grad():
        lowered = _lower_step(entry["cfg"], entry["model"], entry["optimizer"], entry["state"], entry["batch"],
                              entry["bank"], entry["vgg"], entry["mesh"], donate=False)
    try:
        ca = lowered.cost_analysis()
    except Exception:  # noqa: BLE001 - optional: fall back to the compiled count
        return None
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return float((ca or {}).get("flops", 0.0)) or None


_STEPS: dict = {}


def train_step_for(stage: str, batch: int, patch: int, devices: int) -> dict:
    """Setup and compiled (donating) train step, cached per process so tasks can share it.

    Callers thread the state: after running, store the returned state in entry["state"]
    (the donated input buffers are gone).
    """
    from hdrjax import parallel

    key = (stage, batch, patch, devices)
    if key not in _STEPS:
        cfg, model, optimizer, state, bank, vgg, mesh = _train_setup(stage, batch, patch, devices)
        batch_dev = parallel.shard_batch(hdr_batch(batch, patch), mesh)
        compiled, compile_s = _compile_step(cfg, model, optimizer, state, batch_dev, bank, vgg, mesh)
        _STEPS[key] = dict(cfg=cfg, model=model, optimizer=optimizer, state=state, bank=bank, vgg=vgg,
                           mesh=mesh, batch=batch_dev, compiled=compiled, compile_s=compile_s)
    return _STEPS[key]


def _run_steps(compiled, state, batch, bank, vgg, *, repeats, budget_s, min_repeats=2):
    """Time train steps (state threaded through, as donated buffers require)."""
    times = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch, bank, vgg)
        _block(metrics)
        times.append(time.perf_counter() - t0)
        if len(times) >= min_repeats and time.perf_counter() - start + _median(times) > budget_s:
            break
    return times, state, metrics


def _memory_limit_bytes() -> int:
    """Memory a step may use: the device's limit, or on CPU the machine's RAM."""
    dm = device_memory()
    if dm and dm.get("bytes_limit"):
        return int(dm["bytes_limit"])
    import psutil

    return int(psutil.virtual_memory().total)


def _xla_kernel_grad_step(entry: dict) -> dict:
    """The same step traced with XLA's own conv kernel gradient (hdrjax/models/conv.py)."""
    from hdrjax.models import conv

    if conv.kernel_grad_mode() == "xla":
        return {"skipped": "the default already uses XLA's kernel gradient on this backend"}
    with _xla_kernel_grad():  # a fresh trace: the path is chosen when the step is traced
        comp, cs = _compile_step(entry["cfg"], entry["model"], entry["optimizer"], entry["state"], entry["batch"],
                                 entry["bank"], entry["vgg"], entry["mesh"], donate=False)
    args = (entry["state"], entry["batch"], entry["bank"], entry["vgg"])
    # One call, no warm-up (not donating, so the state stays usable): allocation is a small
    # part of a multi-second step, and this comparison must fit the 10-minute CPU budget.
    t = min(time_calls(lambda: comp(*args), repeats=1, budget_s=0.0, min_repeats=1))
    return {"seconds_per_step": t, "compile_s": cs, "flops": cost_of(comp).get("flops")}


def task_train(spec: dict) -> dict:
    """One stage's train step: images/s, FLOPs, synthesis share, largest batch that fits."""
    import jax

    from hdrjax import parallel, train

    quick = spec["quick"]
    stage, batch, patch = spec["stage"], spec["batch"], spec["patch"]
    entry = train_step_for(stage, batch, patch, 1)
    cfg, model, optimizer, state, bank, vgg, mesh = (entry[k] for k in (
        "cfg", "model", "optimizer", "state", "bank", "vgg", "mesh"))
    batch_dev, compiled, compile_s = entry["batch"], entry["compiled"], entry["compile_s"]
    peak = same_process_peak(quick)
    cost, mem = cost_of(compiled), memory_of(compiled)
    # Before the timed steps: entry["state"] is still the undonated initial state here.
    xla_kg = _xla_kernel_grad_step(entry) if spec.get("compare_kernel_grad") else None
    flops = (xla_kg or {}).get("flops") or _step_flops(entry)
    if flops:
        cost.update(flops_compiled_count=cost.get("flops"), flops=flops)
    if spec.get("warmup", True):
        state, metrics = compiled(state, batch_dev, bank, vgg)
        _block(metrics)
    times, state, metrics = _run_steps(compiled, state, batch_dev, bank, vgg,
                                       repeats=spec["repeats"], budget_s=spec["budget_s"], min_repeats=1)
    t = _median(times)
    out = {
        "stage": stage, "batch": batch, "patch": patch, "compile_s": compile_s,
        "runs": len(times), "times": times, "seconds_per_step": t, "images_per_s": batch / t,
        **cost, "memory": mem, "peak_gflops": peak,
        "gflops_achieved": cost.get("flops", 0.0) / t / 1e9,
        "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
    }
    out["fraction_of_peak"] = out["gflops_achieved"] / peak
    # The camera simulation alone (exposure, noise, CRF, JPEG) on the same batch.
    cam = train.camera_config(cfg)
    synth = jax.jit(lambda key, b, bank: train.synthesize_batch(key, b, bank, cam))
    key = jax.random.key(1)
    scomp = synth.lower(key, batch_dev, bank).compile()
    _block(scomp(key, batch_dev, bank))
    st = _median(time_calls(lambda: scomp(key, batch_dev, bank), repeats=5, budget_s=3.0, min_repeats=2))
    out["synthesis"] = {"seconds": st, "share_of_step": st / t, **cost_of(scomp)}
    if xla_kg is not None:
        if "seconds_per_step" in xla_kg:
            xla_kg["default_over_xla"] = t / xla_kg["seconds_per_step"]
        out["xla_kernel_grad"] = xla_kg
    # Largest batch: XLA's buffer sizes at this batch, extrapolated (activations scale with
    # the batch, parameters and optimizer state do not); then tried when it is cheap enough.
    limit = _memory_limit_bytes()
    largest: dict[str, Any] = {"memory_limit_bytes": limit, "usable_fraction": 0.8}
    if mem and mem.get("temp_bytes"):
        fixed = mem["argument_bytes"] + mem["output_bytes"] - mem.get("alias_bytes", 0)
        per_sample = (mem["temp_bytes"] + 3 * patch * patch * 4) / batch
        est = int((0.8 * limit - fixed) // per_sample)
        est = max(batch, est - est % 8)
        largest.update(estimated_batch=est, fixed_bytes=fixed, bytes_per_sample=per_sample)
        predicted = t * est / batch
        largest["predicted_step_s"] = predicted
        if spec.get("try_largest") and est > batch and (predicted * 2 + compile_s) <= spec["largest_budget_s"]:
            try:
                big = parallel.shard_batch(hdr_batch(est, patch), mesh)
                bcomp, bcs = _compile_step(cfg, model, optimizer, state, big, bank, vgg, mesh)
                state, m2 = bcomp(state, big, bank, vgg)
                _block(m2)
                bt, state, m2 = _run_steps(bcomp, state, big, bank, vgg, repeats=1, budget_s=0, min_repeats=1)
                largest.update(tried_batch=est, tried_ok=True, tried_seconds_per_step=bt[0],
                               tried_images_per_s=est / bt[0], tried_memory=memory_of(bcomp),
                               tried_compile_s=bcs)
            except Exception as e:  # out of memory: recorded, not fatal
                largest.update(tried_batch=est, tried_ok=False, tried_error=str(e).splitlines()[0][:300])
        elif est <= batch:
            largest["tried"] = "not needed"
        elif not spec.get("try_largest"):
            largest["tried"] = f"estimate only (≈ {predicted:.0f} s/step; --extended tries it)"
        else:
            largest["tried"] = f"not run: ≈ {predicted:.0f} s/step exceeds this task's budget"
    entry["state"] = state
    out["largest_batch"] = largest
    out["peak_rss_bytes"] = peak_rss_bytes()
    out["device_memory"] = device_memory()
    return out


def task_scaling(spec: dict) -> dict:
    """The same train step sharded over n devices: compile time, step time, collectives."""
    import jax


    n = spec["devices"]
    if jax.device_count() < n:
        return {"devices": n, "skipped": f"only {jax.device_count()} device(s) here"}
    stage, batch, patch = spec["stage"], spec["batch"], spec["patch"]
    entry = train_step_for(stage, batch, patch, n)
    state, bank, vgg = entry["state"], entry["bank"], entry["vgg"]
    batch_dev, compiled, compile_s = entry["batch"], entry["compiled"], entry["compile_s"]
    hlo = compiled.as_text() or ""
    state, metrics = compiled(state, batch_dev, bank, vgg)
    _block(metrics)
    times, state, metrics = _run_steps(compiled, state, batch_dev, bank, vgg,
                                       repeats=spec["repeats"], budget_s=spec["budget_s"])
    entry["state"] = state
    t = _median(times)
    return {
        "devices": n, "stage": stage, "batch": batch, "patch": patch, "compile_s": compile_s,
        "runs": len(times), "seconds_per_step": t, "images_per_s": batch / t,
        "all_reduce_ops": hlo.count("all-reduce("), "collective_ops": sum(
            hlo.count(k) for k in ("all-reduce(", "all-gather(", "reduce-scatter(", "all-to-all(",
                                   "collective-permute(")),
        "device_kind": str(jax.devices()[0].device_kind), "fake_devices": jax.devices()[0].platform == "cpu",
        "loss": float(metrics["loss"]),
    }


def _knob_bf16(spec: dict) -> dict:
    """bf16 compute (f32 params) vs f32: forward time and output difference per network."""
    import jax
    import numpy as np

    size = (spec["tile"], spec["tile"])
    _, m32, _ = build_model()
    _, m16, _ = build_model("bfloat16")
    # Every layer live (the neutral weights would make the Deq/Ref outputs equal their inputs).
    variables = random_variables(m32, neutral=False)
    rows = {}
    for stage in spec["stages"]:
        args = _stage_inputs(stage, size)
        res = {}
        outs = {}
        for name, model in (("float32", m32), ("bfloat16", m16)):
            f = jax.jit(_stage_fns(model)[stage]).lower(variables, *args).compile()
            outs[name] = np.asarray(f(variables, *args))
            res[name] = _median(time_calls(lambda: f(variables, *args), repeats=spec["repeats"],
                                           budget_s=spec["budget_s"], min_repeats=2))
        ref = outs["float32"]
        rel = float(np.mean(np.abs(outs["bfloat16"] - ref)) / max(float(np.mean(np.abs(ref))), 1e-12))
        rows[stage] = {"float32_s": res["float32"], "bfloat16_s": res["bfloat16"],
                       "ratio": res["bfloat16"] / res["float32"], "relative_l1_difference": rel}
    f32 = sum(r["float32_s"] for r in rows.values())
    b16 = sum(r["bfloat16_s"] for r in rows.values())
    return {"shape": list(size), "stages": rows, "ratio": b16 / f32,
            "keep": b16 / f32 < 0.95, "note": "forward of one tile; params stay float32"}


def _save_convs(prim, *args, **params) -> bool:
    """Remat policy: keep convolution/matmul outputs, recompute the cheap elementwise work."""
    return prim.name in ("conv_general_dilated", "dot_general")


def _knob_remat(spec: dict) -> dict:
    """jax.checkpoint policies on the Hallucination-Net forward+backward: memory and time."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    _, model, variables = build_model()
    bs = variables["batch_stats"]
    b, p, network = spec["batch"], spec["patch"], spec["network"]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 1, (b, p, p, 3)).astype(np.float32))
    y = 2.0 * x

    def loss(params, x, y):
        v = {"params": params, "batch_stats": bs}
        if network == "hallucination":
            a, _ = model.apply(v, x, train=False, method="hallucinate")
        else:
            a = model.apply(v, x, method="dequantize")
        return jnp.mean(jnp.abs(a - y))

    variants = {
        "none": loss,
        "save_convs": jax.checkpoint(loss, policy=_save_convs),
        "nothing_saveable": jax.checkpoint(loss, policy=jax.checkpoint_policies.nothing_saveable),
    }
    rows = {}
    for name, f in variants.items():
        compiled = jax.jit(jax.grad(f)).lower(variables["params"], x, y).compile()
        _block(compiled(variables["params"], x, y))
        t = _median(time_calls(lambda: compiled(variables["params"], x, y), repeats=spec["repeats"],
                               budget_s=spec["budget_s"], min_repeats=2))
        mem = memory_of(compiled)
        rows[name] = {"seconds": t, "memory": mem, **cost_of(compiled)}
    base = rows["none"]
    for r in rows.values():
        r["time_ratio"] = r["seconds"] / base["seconds"]
        if r["memory"] and base["memory"] and base["memory"].get("temp_bytes"):
            r["temp_memory_ratio"] = r["memory"]["temp_bytes"] / base["memory"]["temp_bytes"]
    return {"batch": b, "patch": p, "network": network, "variants": rows}


def _knob_donation(spec: dict) -> dict:
    """Train step with the state donated (as train.jit_train_step) vs copied."""
    import jax

    stage, b, p = spec["stage"], spec["batch"], spec["patch"]
    entry = train_step_for(stage, b, p, 1)
    cfg, model, optimizer, bank, vgg, mesh, batch = (entry[k] for k in (
        "cfg", "model", "optimizer", "bank", "vgg", "mesh", "batch"))
    copied, copied_cs = _compile_step(cfg, model, optimizer, entry["state"], batch, bank, vgg, mesh, donate=False)
    rows = {}
    for name, compiled, cs in (("donated", entry["compiled"], entry["compile_s"]), ("copied", copied, copied_cs)):
        # The donated variant consumes its input state: run it on a copy, keep the cache's state.
        s = jax.tree.map(lambda a: a.copy(), entry["state"])
        s, m = compiled(s, batch, bank, vgg)
        _block(m)
        times, s, m = _run_steps(compiled, s, batch, bank, vgg, repeats=spec["repeats"], budget_s=spec["budget_s"])
        rows[name] = {"seconds": _median(times), "memory": memory_of(compiled), "compile_s": cs}
    d, c = rows["donated"], rows["copied"]
    out = {"stage": stage, "batch": b, "patch": p, "variants": rows,
           "time_ratio": d["seconds"] / c["seconds"]}
    if d["memory"] and c["memory"] and c["memory"].get("total_bytes"):
        out["memory_ratio"] = d["memory"]["total_bytes"] / c["memory"]["total_bytes"]
    return out


def _knob_layout(spec: dict) -> dict:
    """One 3×3 64→64 convolution in NHWC/HWIO (ours) vs NCHW/OIHW."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    s, c = spec["conv_size"], 64
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, s, s, c)).astype(np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, c, c)).astype(np.float32))
    layouts = {
        "NHWC": (x, k, ("NHWC", "HWIO", "NHWC")),
        "NCHW": (jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k, (3, 2, 0, 1)), ("NCHW", "OIHW", "NCHW")),
    }
    rows = {}
    for name, (xi, ki, dn) in layouts.items():
        f = jax.jit(lambda a, b, dn=dn: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=dn))
        _block(f(xi, ki))
        t = min(time_calls(lambda: f(xi, ki), repeats=5, budget_s=spec["budget_s"], min_repeats=3))
        rows[name] = {"seconds": t, "gflops": 2 * s * s * 9 * c * c / t / 1e9}
    return {"shape": [1, s, s, c], "variants": rows, "ratio_nchw_over_nhwc": rows["NCHW"]["seconds"] / rows["NHWC"]["seconds"]}


def _knob_valid_conv(spec: dict) -> dict:
    """The Hallucination-Net's up-block conv: reflect pad + VALID conv vs padded conv + crop.

    Same numbers (the extra zero ring only touches the cropped border). XLA:CPU runs convs
    without padding on a much slower path; measured on one up-block conv and on the whole
    network forward (the reference's literal form as a subclass, the same variables).
    """
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    from hdrjax.models import hallucination as H

    rng = np.random.default_rng(0)
    s, cin, cout = spec["size"] // 2, 128, 64
    x = jnp.asarray(rng.standard_normal((1, s, s, cin)).astype(np.float32))
    k = jnp.asarray(0.05 * rng.standard_normal((3, 3, cin, cout)).astype(np.float32))

    def conv(a, padding):
        return jax.lax.conv_general_dilated(a, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def up(a):
        return jnp.pad(jnp.repeat(jnp.repeat(a, 2, axis=1), 2, axis=2), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")

    variants = {"valid": lambda a: conv(up(a), "VALID"),
                "padded_crop": lambda a: conv(up(a), ((1, 1), (1, 1)))[:, 1:-1, 1:-1]}
    conv_rows, outs = {}, {}
    for name, f in variants.items():
        c = jax.jit(f).lower(x).compile()
        outs[name] = np.asarray(c(x))
        conv_rows[name] = {"seconds": min(time_calls(lambda: c(x), repeats=5, budget_s=spec["budget_s"], min_repeats=2)),
                           **cost_of(c)}
    out = {"conv": {"input": [1, s, s, cin], "out_channels": cout, "variants": conv_rows,
                    "ratio": conv_rows["padded_crop"]["seconds"] / conv_rows["valid"]["seconds"],
                    "max_abs_diff": float(np.max(np.abs(outs["valid"] - outs["padded_crop"])))}}

    class ValidConvHallucinationNet(H.HallucinationNet):
        """The reference's literal up-block (reflect pad + VALID conv); the same parameters."""

        def _up_block(self, h, channels, train, name):
            h = jnp.pad(H._upsample_nearest2x(h), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            h = nn.relu(self._conv(channels, (3, 3), "VALID", name)(h))
            h = self._bn(train, f"{name}_batch_norm_dc")(h)
            return nn.relu(h)

    _, _, variables = build_model()
    hv = {"params": variables["params"]["hallucination"], "batch_stats": variables["batch_stats"]["hallucination"]}
    t = spec["size"]
    img = jnp.asarray(rng.uniform(0, 1, (1, t, t, 3)).astype(np.float32))
    net_rows, outs = {}, {}
    for name, net in (("valid", ValidConvHallucinationNet()), ("padded_crop", H.HallucinationNet())):
        c = jax.jit(lambda v, a, net=net: net.apply(v, a, train=False)).lower(hv, img).compile()
        outs[name] = np.asarray(c(hv, img))
        net_rows[name] = {"seconds": _median(time_calls(lambda: c(hv, img), repeats=3, budget_s=spec["budget_s"],
                                                        min_repeats=2)), **cost_of(c)}
    out["hallucination_net"] = {
        "input": [1, t, t, 3], "variants": net_rows,
        "ratio": net_rows["padded_crop"]["seconds"] / net_rows["valid"]["seconds"],
        "max_abs_diff": float(np.max(np.abs(outs["valid"] - outs["padded_crop"]))),
        "keep": "yes (HallucinationNet._up_block, hdrjax/models/hallucination.py)",
    }
    return out


def _knob_conv_grad(spec: dict) -> dict:
    """Evidence for training: a 3×3 conv's forward vs its kernel- and input-gradient convs."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    b, s, c = spec["batch"], spec["size"], 64
    x = jnp.asarray(rng.standard_normal((b, s, s, c)).astype(np.float32))
    k = jnp.asarray(0.05 * rng.standard_normal((3, 3, c, c)).astype(np.float32))

    def f(k, x):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    rows = {}
    for name, fn in (("forward", f),
                     ("forward+kernel_grad", jax.grad(lambda k, x: 0.5 * jnp.sum(f(k, x) ** 2))),
                     ("forward+input_grad", jax.grad(lambda k, x: 0.5 * jnp.sum(f(k, x) ** 2), argnums=1))):
        cm = jax.jit(fn).lower(k, x).compile()
        _block(cm(k, x))
        rows[name] = {"seconds": min(time_calls(lambda: cm(k, x), repeats=3, budget_s=spec["budget_s"], min_repeats=2))}
    fwd = rows["forward"]["seconds"]
    # Each gradient conv has the forward's FLOPs: its own time is (fwd+grad) − fwd.
    for name in ("kernel_grad", "input_grad"):
        own = rows[f"forward+{name}"]["seconds"] - fwd
        rows[name] = {"seconds": own, "ratio_to_forward": own / fwd}
    return {"shape": [b, s, s, c], "variants": rows}


def _reconstruct_time(model, variables, ldr, config, repeats: int) -> dict:
    from hdrjax import predict

    times = []
    for _ in range(repeats):
        c0 = compile_seconds()
        t0 = time.perf_counter()
        r = predict.reconstruct(model, variables, ldr, config)
        times.append(time.perf_counter() - t0 - (compile_seconds() - c0))
    return {"seconds": _median(times), "times": times, "tiles": int(r.stats.get("tiles", 0)),
            "hallucinated_tiles": int(r.stats.get("hallucinated_tiles", 0))}


def _knob_tiles(spec: dict) -> dict:
    """Tile batching (tiles per network call) and tile size / overlap, end to end."""
    from hdrjax import predict

    _, model, variables = build_model()
    t = spec["tile"]
    ov = t // 4 if t >= 128 else 32
    w = ov + 3 * (t - ov)  # exactly three tiles in a row
    ldr, _ = sweep_ldr(t, w)
    stages = STAGES[: spec["batching_stages"]]
    batching = {}
    for bs in (1, 3):
        config = predict.PredictConfig(tile=t, overlap=ov, stages=stages, skip_unlit_tiles=False, batch_size=bs)
        batching[f"batch_{bs}"] = _reconstruct_time(model, variables, ldr, config, spec["repeats"])
    out = {"batching": {"image": [t, w], "tile": t, "overlap": ov, "stages": list(stages), "variants": batching,
                        "ratio": batching["batch_3"]["seconds"] / batching["batch_1"]["seconds"]}}
    if not spec.get("tile_variants"):
        return out
    size = spec["size_image"]
    ldr, _ = sweep_ldr(size, size)
    sizes = {}
    for tile, overlap in spec["tile_variants"]:
        config = predict.PredictConfig(tile=tile, overlap=overlap, stages=STAGES[: spec["size_stages"]])
        r = _reconstruct_time(model, variables, ldr, config, spec["tile_repeats"])
        r["computed_pixel_ratio"] = r["tiles"] * min(tile, size) ** 2 / size ** 2
        sizes[f"tile_{tile}_overlap_{overlap}"] = r
    base = sizes[f"tile_{spec['tile_variants'][0][0]}_overlap_{spec['tile_variants'][0][1]}"]
    for r in sizes.values():
        r["ratio"] = r["seconds"] / base["seconds"]
    out["tile_size"] = {"image": [size, size], "stages": list(STAGES[: spec["size_stages"]]), "variants": sizes}
    return out


def task_knobs(spec: dict) -> dict:
    """Each knob's effect as a ratio against the default; failures are recorded per knob."""
    out = {}
    for name, fn in (("layout", _knob_layout), ("valid_conv", _knob_valid_conv), ("conv_grad", _knob_conv_grad),
                     ("bf16", _knob_bf16), ("donation", _knob_donation), ("remat", _knob_remat),
                     ("tiles", _knob_tiles)):
        if name not in spec["which"]:
            continue
        t0 = time.perf_counter()
        try:
            out[name] = fn(spec[name] | {"quick": spec["quick"]})
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {e}"[:500], "traceback": traceback.format_exc()[-2000:]}
        out[name]["wall_s"] = time.perf_counter() - t0
    return out


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # bench_regions beside this file, also when
import bench_regions  # noqa: E402                                   # this file is loaded by path (tests)

TASKS = {
    "peak": task_peak, "stages": task_stages, "inference": task_inference, "photos": task_photos,
    "train": task_train, "scaling": task_scaling, "knobs": task_knobs,
    "regions": lambda spec: bench_regions.task_regions(spec, sys.modules[__name__]),
    "latency": lambda spec: bench_regions.task_latency(spec, sys.modules[__name__]),
    "folder": lambda spec: bench_regions.task_folder(spec, sys.modules[__name__]),
}
SECTIONS = ("peak", "stages", "inference", "photos", "train", "scaling", "knobs", "regions")


def run_tasks(tasks: list[dict], result_path: pathlib.Path) -> int:
    """Worker entry: run tasks in order, rewriting result_path after each (a crash keeps the rest)."""
    _setup_worker()
    results = []
    failed = 0
    for task in tasks:
        t0 = time.perf_counter()
        try:
            value = TASKS[task["task"]](task["spec"])
            entry = {"task": task["task"], "key": task["key"], "result": value}
        except Exception as e:
            failed += 1
            entry = {"task": task["task"], "key": task["key"], "error": f"{type(e).__name__}: {e}"[:1000],
                     "traceback": traceback.format_exc()[-3000:]}
        entry["wall_s"] = time.perf_counter() - t0
        results.append(entry)
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, default=_json_default))
        os.replace(tmp, result_path)
        print(f"[benchmark] {task['key']}: {'ok' if 'result' in entry else 'FAILED'} in {entry['wall_s']:.1f}s",
              file=sys.stderr, flush=True)
    return 1 if failed else 0


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


# ============================================================================== the plan


@dataclasses.dataclass
class Group:
    """Tasks that run in one worker process with one environment."""

    name: str
    tasks: list[dict]
    devices: int = 1  # fake CPU devices (ignored on GPU)
    timeout_s: float = 600.0


def _task(task: str, key: str, **spec) -> dict:
    return {"task": task, "key": key, "spec": spec}


SIZES_FULL = ((512, 512), (1024, 1024), (1080, 1920), (3000, 4000))
SIZES_QUICK = ((64, 96),)
KNOBS = ("layout", "valid_conv", "conv_grad", "bf16", "donation", "remat", "tiles")


def make_plan(quick: bool, gpu: bool, sections: set[str], extended: bool = False, workdir: str = "") -> list[Group]:
    """The worker processes of one benchmark run: sizes, repeats and budgets per task."""
    groups: list[Group] = []
    regions = (bench_regions.plan_groups(Group, _task, quick=quick, gpu=gpu, workdir=workdir or tempfile.gettempdir())
               if "regions" in sections else [])
    if quick:
        # One process (two fake devices for the scaling task), tiny shapes: a smoke test.
        q = {"quick": True}
        tasks = []
        if "peak" in sections:
            tasks.append(_task("peak", "peak", **q))
        if "stages" in sections:
            tasks.append(_task("stages", "stages", size=[32, 32], small=None, crf_size=[32, 32], repeats=1,
                               min_repeats=1, budget_s=1.0, **q))
        if "inference" in sections:
            for h, w in SIZES_QUICK:
                tasks.append(_task("inference", f"inference-{h}x{w}", height=h, width=w, tile=64, overlap=32,
                                   repeats=1, budget_s=1.0, **q))
        if "photos" in sections:
            tasks.append(_task("photos", "photos", files=list(PHOTO_FILES[:1]), max_side=96, tile=64, overlap=32,
                               repeats=1, **q))
        if "train" in sections:
            tasks.append(_task("train", "train-dequantization", stage="dequantization", batch=2, patch=32,
                               repeats=1, budget_s=1.0, try_largest=False, largest_budget_s=0,
                               compare_kernel_grad=True, **q))
        if "scaling" in sections:
            for n in (1, 2):
                tasks.append(_task("scaling", f"scaling-{n}", devices=n, stage="dequantization", batch=2, patch=32,
                                   repeats=1, budget_s=1.0, **q))
        if "knobs" in sections:
            # The cheapest variant of each knob, reusing what the tasks above compiled.
            tasks.append(_task("knobs", "knobs", which=list(KNOBS),
                               layout={"conv_size": 32, "budget_s": 1.0},
                               valid_conv={"size": 32, "budget_s": 1.0},
                               conv_grad={"batch": 1, "size": 16, "budget_s": 1.0},
                               bf16={"tile": 64, "repeats": 1, "budget_s": 1.0, "stages": ["dequantization"]},
                               donation={"stage": "dequantization", "batch": 2, "patch": 32, "repeats": 1,
                                         "budget_s": 1.0},
                               remat={"batch": 1, "patch": 32, "repeats": 1, "budget_s": 1.0,
                                      "network": "dequantization"},
                               tiles={"tile": 64, "repeats": 1, "size_image": 96, "tile_repeats": 1,
                                      "batching_stages": 1, "size_stages": 1,
                                      "tile_variants": [[64, 32], [96, 32]]}, **q))
        tasks += [t for g in regions for t in g.tasks]
        if tasks:
            groups.append(Group("quick", tasks, devices=2, timeout_s=900))
        return groups

    f = {"quick": False}
    # CPU defaults fit ~10 minutes on 2 cores; `extended` (always on GPU) adds the 12 MP image,
    # the panoramas, the tile-size knob and more repeats.
    ext = extended or gpu
    if "peak" in sections or "stages" in sections:
        tasks = []
        if "peak" in sections:
            tasks.append(_task("peak", "peak", **f))
        if "stages" in sections:
            tasks.append(_task("stages", "stages", size=[1024, 1024], small=[128, 128], crf_size=[512, 512],
                               linearization_full=ext, repeats=5, min_repeats=1, budget_s=4.0 if gpu else 8.0, **f))
        groups.append(Group("peak-stages", tasks, timeout_s=900))
    if "inference" in sections:
        sizes = SIZES_FULL if ext else SIZES_FULL[:3]
        # Seconds of timed runs after the warm-up (at least one run whatever the budget).
        budgets = {512: 10.0, 1024: 10.0, 1080: 10.0, 3000: 10.0} if gpu else {512: 16.0, 1024: 0.0, 1080: 0.0, 3000: 0.0}
        if extended and not gpu:
            budgets = {512: 20.0, 1024: 60.0, 1080: 60.0, 3000: 0.0}
        for h, w in sizes:
            # A fresh process per size: peak RSS / device memory is that size's.
            groups.append(Group(f"inference-{h}x{w}", [_task(
                "inference", f"inference-{h}x{w}", height=h, width=w, tile=512, overlap=128, repeats=5,
                budget_s=budgets[h], **f)], timeout_s=1800))
    if "photos" in sections:
        # Default: the sweep's photo and one indoor photo; extended: all four and three panoramas.
        files = list(PHOTO_FILES) if ext else ["real_hdr/MtTamNorth.exr", "real_hdr/Desk.exr"]
        groups.append(Group("photos", [_task("photos", "photos", files=files, tile=512, overlap=128,
                                             repeats=2 if gpu else 1, **f)], timeout_s=1800))
    if "train" in sections:
        for stage in TRAIN_STAGES:
            cheap = stage in ("dequantization", "linearization")
            # CPU default: the Hallucination-Net steps (≈ 2.7 TFLOP at 256², batch 8) on 128²
            # patches to stay within ~10 minutes; --extended / GPU: 256² as the reference.
            patch = 256 if (ext or cheap) else 128
            task = _task("train", f"train-{stage}", stage=stage, batch=8, patch=patch, repeats=5,
                         budget_s=6.0 if gpu else (3.0 if cheap else 0.0),
                         # CPU, VGG stages: one timed step and no warm-up (a 10-40 s step; the
                         # allocations a warm-up would absorb are a small part of it).
                         warmup=gpu or ext or cheap,
                         try_largest=gpu or extended, largest_budget_s=60.0 if gpu else 120.0,
                         # Deq's ratio is ~0.9 (its thin convs keep XLA's gradient): GPU/extended only.
                         compare_kernel_grad=stage in ("linearization", "hallucination") or gpu or ext, **f)
            # One process per stage: a step's buffers (≈ 7 GB for joint at 256²) are freed with it.
            groups.append(Group(task["key"], [task], timeout_s=1800))
    if "scaling" in sections:
        # One process with 8 fake CPU devices (the flag must precede the jax import); meshes
        # over the first 1, 2, 4, 8 of them. On a GPU machine: its real devices.
        tasks = [_task("scaling", f"scaling-{n}", devices=n, stage="dequantization", batch=8, patch=64 if not gpu else 256,
                       repeats=5, budget_s=3.0, **f) for n in (1, 2, 4, 8)]
        groups.append(Group("scaling", tasks, devices=8, timeout_s=900))
    if "knobs" in sections:
        tile = 512 if gpu else 256
        # CPU default: no tile-size sweep, and the conv-gradient microbenchmark is left to the
        # train table's XLA-kernel-gradient column (10-minute budget).
        which = list(KNOBS) if ext else [k for k in KNOBS if k not in ("tiles", "conv_grad")]
        tiles = {"tile": tile, "repeats": 2, "batching_stages": 3}
        if ext:
            tiles.update(size_image=1024, size_stages=4, tile_repeats=2 if gpu else 1,
                         tile_variants=[[512, 128], [512, 64], [1024, 128]])
        groups.append(Group("knobs", [_task(
            "knobs", "knobs", which=which,
            layout={"conv_size": 512, "budget_s": 3.0},
            valid_conv={"size": tile, "budget_s": 3.0},
            conv_grad={"batch": 8, "size": 128 if not gpu else 256, "budget_s": 3.0},
            bf16={"tile": tile, "repeats": 3, "budget_s": 3.0,
                  "stages": list(STAGES) if ext else ["hallucination"]},
            donation={"stage": "dequantization", "batch": 8, "patch": 256 if gpu else 64, "repeats": 3, "budget_s": 3.0},
            remat={"batch": 8 if gpu else 2, "patch": 256 if gpu else 64, "repeats": 3, "budget_s": 3.0,
                   "network": "hallucination"},
            tiles=tiles, **f)], timeout_s=1200))
    # Last: the regions section (photos through the three engines, fresh processes).
    groups += regions
    return groups


def _worker_env(devices: int, gpu: bool, quick: bool = False) -> dict:
    """Environment of a worker: the fake-device flag set (CPU) or removed, before jax imports."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    if not gpu and devices > 1:
        flags.append(f"{DEVICE_FLAG}={devices}")
    if quick and not gpu and not any(f.startswith(QUICK_FLAG.split("=")[0]) for f in flags):
        # The smoke run is compile-bound and its timings mean nothing: halve the compile time.
        flags.append(QUICK_FLAG)
    env["XLA_FLAGS"] = " ".join(flags)
    if not env["XLA_FLAGS"]:
        del env["XLA_FLAGS"]
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_group(group: Group, gpu: bool, workdir: pathlib.Path, log, quick: bool = False) -> list[dict]:
    """Run one worker process; returns its task entries (a timeout or crash becomes an error entry)."""
    tasks_path = workdir / f"{group.name}.tasks.json"
    result_path = workdir / f"{group.name}.result.json"
    tasks_path.write_text(json.dumps(group.tasks))
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", str(tasks_path), str(result_path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=_worker_env(group.devices, gpu, quick), cwd=str(ROOT), timeout=group.timeout_s,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail, rc = proc.stdout[-4000:], proc.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        tail, rc = out[-4000:] + f"\n[benchmark] timed out after {group.timeout_s:.0f}s", -9
    log(f"{group.name}: exit {rc} after {time.perf_counter() - t0:.1f}s")
    entries = json.loads(result_path.read_text()) if result_path.exists() else []
    done = {e["key"] for e in entries}
    for t in group.tasks:
        if t["key"] not in done:
            entries.append({"task": t["task"], "key": t["key"], "error": f"worker exited with {rc} before this task "
                            f"finished", "log_tail": tail})
    for e in entries:
        if "error" in e:
            e.setdefault("log_tail", tail)
    return entries


# ============================================================================ environment


def environment() -> dict:
    """What the numbers depend on: CPU, memory, threads, BLAS, versions, environment variables."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "env": {k: os.environ.get(k) for k in ENV_KEYS if os.environ.get(k) is not None},
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = next((l for l in text.splitlines() if l.startswith("flags")), "")
        info["cpu_simd"] = sorted({f for f in flags.split() if f.startswith(("avx", "fma", "amx", "sse4"))})
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = psutil.virtual_memory().total / 2 ** 30
    except ImportError:
        pass
    versions = {}
    for mod in ("numpy", "jax", "jaxlib", "flax", "optax"):
        try:
            versions[mod] = __import__(mod).__version__  # importing jax here is fine: no arrays made
        except Exception:
            pass
    info["versions"] = versions
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy_blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def _detect_gpu() -> bool:
    """Whether jax's default backend is a GPU (checked in a subprocess: the parent stays jax-free)."""
    code = "import jax; print(jax.default_backend())"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=_worker_env(1, False)).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out) and out[-1] in ("gpu", "cuda", "rocm")


def _machine_name(env: dict, gpu: bool, peak: dict | None) -> str:
    if gpu and peak and peak.get("device"):
        kind = peak["device"].lower()
    else:
        kind = f"cpu-{env.get('cpu_affinity') or env.get('cpu_count')}core"
    return "".join(c if c.isalnum() else "-" for c in kind).strip("-").replace("--", "-")


# ============================================================================ summary


def _by_key(entries: list[dict]) -> dict[str, dict]:
    return {e["key"]: e for e in entries}


def summarize(results: dict) -> dict:
    """Cross-section ratios: roofline, comparison with the port, goals."""
    tasks = results["tasks"]
    peak = tasks.get("peak", {}).get("result", {})
    stages = tasks.get("stages", {}).get("result", {})
    s: dict[str, Any] = {}
    if stages:
        s["model_fraction_of_peak"] = stages["model"]["fraction_of_peak"]
        s["goal_fraction_of_peak"] = GOAL_PEAK_FRACTION
        s["slowest_stage"] = stages["slowest_stage"]
        st = stages["stages"]
        # Per-pixel FLOPs of the one-pass model, at the port's 1088² (FLOPs are linear in pixels).
        conv = sum(st[k]["flops_per_pixel"] for k in ("dequantization", "hallucination", "refinement"))
        lin_full = st.get("linearization@full", st["linearization"])["flops_per_pixel"]
        s["tflop_1088_one_pass"] = (conv + lin_full) * PORT["padded_pixels_1024"] / 1e12
        s["port_tflop_1088"] = PORT["tflop_per_image_1024"]
        s["hallucination_flop_share_1088"] = st["hallucination"]["flops_per_pixel"] / (conv + lin_full)
    # Executed FLOPs of each tiled inference run, from the per-pixel FLOPs of the stages.
    inf_rows = [e["result"] for k, e in sorted(tasks.items()) if k.startswith("inference-") and "result" in e]
    if stages and inf_rows:
        st = stages["stages"]
        for r in inf_rows:
            tile_px = r["tile_shape"][0] * r["tile_shape"][1]
            flops = tile_px * r["tiles"] * (st["dequantization"]["flops_per_pixel"] + st["refinement"]["flops_per_pixel"])
            flops += tile_px * r["hallucinated_tiles"] * st["hallucination"]["flops_per_pixel"]
            crf = r.get("crf_shape") or [min(r["height"], 512), min(r["width"], 512)]
            flops += crf[0] * crf[1] * st["linearization"]["flops_per_pixel"]
            r["executed_tflop"] = flops / 1e12
            r["executed_gflops_per_s"] = flops / r["seconds"] / 1e9
            if peak.get("peak_gflops"):
                r["executed_fraction_of_peak"] = r["executed_gflops_per_s"] / peak["peak_gflops"]
    # Against the port (its numbers are quoted; ours measured here).
    comp = {}
    our_peak = peak.get("peak_gflops")
    for r in inf_rows:
        key = f"{r['height']}x{r['width']}"
        if key in PORT["seconds"]:
            row = {"port_s": PORT["seconds"][key], "ours_s": r["seconds"],
                   "speedup": PORT["seconds"][key] / r["seconds"]}
            if our_peak:
                # The port's time scaled to this machine's measured peak (theirs: 200 GFLOP/s).
                row["speedup_peak_normalized"] = row["speedup"] * PORT["matmul_peak_gflops"] / our_peak
            if key in PORT["peak_rss_gb"]:
                row["port_rss_gb"] = PORT["peak_rss_gb"][key]
                row["ours_rss_gb"] = r["peak_rss_bytes"] / 1e9
                row["memory_fraction"] = row["ours_rss_gb"] / row["port_rss_gb"]
            comp[key] = row
    s["vs_port"] = comp
    if any(e.get("task") == "regions" for e in tasks.values()):
        s["regions"] = bench_regions.summary(tasks)
    photos = tasks.get("photos", {}).get("result", {}).get("photos", [])
    if photos:
        for p in photos:
            p["port_estimate_s"] = port_seconds(p["height"] * p["width"])
            p["speedup_vs_port"] = p["port_estimate_s"] / p["skip"]["seconds"]
            if our_peak:
                p["speedup_vs_port_peak_normalized"] = p["speedup_vs_port"] * PORT["matmul_peak_gflops"] / our_peak
        s["photos_median_speedup_vs_port"] = _median([p["speedup_vs_port"] for p in photos])
        s["photos_median_skip_speedup"] = _median([p["speedup_skip_vs_full"] for p in photos])
        s["photos_mean_skipped_fraction"] = sum(p["skip"]["skipped_fraction"] for p in photos) / len(photos)
    return s


def port_seconds(pixels: int) -> float:
    """The port's time for an image of `pixels`, interpolated linearly in pixel count from its quoted times."""
    pts = sorted((int(k.split("x")[0]) * int(k.split("x")[1]), v) for k, v in PORT["seconds"].items())
    (p0, t0), (p1, t1) = (pts[0], pts[1]) if pixels <= pts[1][0] else (pts[1], pts[2])
    return t0 + (t1 - t0) * (pixels - p0) / (p1 - p0)


# ============================================================================ markdown


def _fmt(x, digits=2, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "—"
    if isinstance(x, (int, float)):
        if abs(x) >= 100:
            return f"{x:,.0f}{unit}"
        return f"{x:.{digits}f}{unit}"
    return str(x)


def _gb(b):
    return None if b is None else b / 1e9


def _kernel_grad_cell(x: dict | None) -> str:
    if not x:
        return "—"
    if "skipped" in x:
        return x["skipped"]
    return f"{_fmt(x['seconds_per_step'])} ({_fmt(x['default_over_xla'])})"


def render_markdown(results: dict) -> str:
    """The benchmark tables as markdown (machine, ceilings, inference, stages, training, knobs)."""
    tasks, env, summ = results["tasks"], results["environment"], results["summary"]
    L: list[str] = []
    add = L.append
    add(f"# hdrjax benchmark — {results['machine']}")
    add("")
    if results["quick"]:
        kind = "quick smoke run (tiny sizes, compiled at -O0: the numbers mean nothing)"
    elif results.get("extended"):
        kind = "full run, extended set"
    else:
        kind = ("full run, default CPU set (no 12 MP image, two photos, Hallucination-Net train steps on "
                "128² patches, no tile knobs; `--extended` adds them)")
    add(f"{results['created']}, {kind}; jax {env.get('versions', {}).get('jax', '?')}, device {results.get('device', '?')}.")
    la = results["load_average"]
    add(f"Machine: {env.get('cpu_model', '?')}, {env.get('cpu_affinity', env.get('cpu_count'))} cores, "
        f"{_fmt(env.get('memory_gib'), 1)} GiB; load average at start {la['start'][0]:.2f}, end {la['end'][0]:.2f}.")
    if results["contended"]:
        add("")
        add("**Contended:** the load average exceeded the core count while this ran; absolute times are "
            "inflated and must be redone on a quiet machine. Ratios taken in the same run are more robust.")
    if env.get("env"):
        add(f"Environment: {', '.join(f'{k}={v}' for k, v in env['env'].items())}.")
    add("")
    peak = tasks.get("peak", {}).get("result")
    if peak:
        add("## Ceilings (measured in this run)")
        add("")
        add("| what | value |")
        add("| --- | --- |")
        for n, g in peak["jnp_float32"].items():
            add(f"| `jnp.dot` float32 {n}² | {_fmt(g, 1)} GFLOP/s |")
        for n, g in peak["jnp_bfloat16"].items():
            add(f"| `jnp.dot` bfloat16 {n}² | {_fmt(g, 1)} GFLOP/s |")
        np_ = peak["numpy_float32"]
        add(f"| numpy float32 {np_['size']}² ({env.get('numpy_blas', {}).get('name', 'BLAS')}) | {_fmt(np_['gflops'], 1)} GFLOP/s "
            f"({_fmt(peak['numpy_over_jnp'], 2)} × jnp) |")
        add(f"| triad bandwidth ({_fmt(peak['bandwidth_array_mb'], 0)} MB arrays) | {_fmt(peak['bandwidth_gbs'], 1)} GB/s |")
        add(f"| machine balance | {_fmt(peak['machine_balance_flop_per_byte'], 1)} FLOP/byte |")
        add(f"| port's machine (quoted) | {PORT['matmul_peak_gflops']:.0f} GFLOP/s numpy 4096² |")
        add("")
    inf = [e for k, e in sorted(tasks.items(), key=lambda kv: kv[1].get("result", {}).get("megapixels", 0))
           if k.startswith("inference-")]
    if inf:
        add("## Inference: `reconstruct`, all four stages, default tiling (512² tiles, overlap 128, skip unlit)")
        add("")
        add("| image | runs | median s | without refinement s | compile s | tiles (hallucinated) | computed px / image px "
            "| executed GFLOP/s (× peak) | peak RSS GB | device peak GB | port s (quoted) | port RSS GB (quoted) |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for e in inf:
            if "result" not in e:
                add(f"| {e['key']} | failed: {e.get('error', '')[:80]} |||||||||||")
                continue
            r = e["result"]
            key = f"{r['height']}x{r['width']}"
            runs = str(r["runs"])
            dm = (r.get("device_memory") or {}).get("peak_bytes_in_use")
            ex = r.get("executed_gflops_per_s")
            exs = f"{_fmt(ex, 1)} ({_fmt(r.get('executed_fraction_of_peak'), 2)})" if ex else "—"
            add(f"| {r['width']}×{r['height']} ({r['megapixels']:.1f} MP) | {runs} | {_fmt(r['seconds'])} | "
                f"{_fmt(r['seconds_without_refinement'])} | {_fmt(r['compile_s'], 1)} | {r['tiles']} ({r['hallucinated_tiles']}) | "
                f"{_fmt(r['computed_pixel_ratio'])} | {exs} | {_fmt(_gb(r['peak_rss_bytes']))} | {_fmt(_gb(dm))} | "
                f"{_fmt(PORT['seconds'].get(key))} | {_fmt(PORT['peak_rss_gb'].get(key), 1)} |")
        add("")
        src = next((e["result"]["source"] for e in inf if "result" in e), "?")
        add(f"Content: `{src}` resized to each size, exposed so {CLIP_PERCENT:g} % of pixels clip, gamma {GAMMA}, 8 bit. "
            "Median of the runs after a warm-up (on a same-aspect image of ≤ 1024 px, every tile "
            "hallucinated, so everything compiles there; compile time measured with jax.monitoring); fewer "
            "runs at the large sizes to fit the time budget. Peak RSS is the whole process (each size in a fresh process). "
            "Port numbers: " + PORT["source"] + ".")
        add("")
    vs = summ.get("vs_port")
    if vs:
        add("### Against the PyTorch port (quoted numbers, see above)")
        add("")
        add("| image | speedup (port s / ours s) | speedup, peak-normalised | memory (ours / port RSS) |")
        add("| --- | --- | --- | --- |")
        for key, row in vs.items():
            add(f"| {key} | {_fmt(row['speedup'])}× | {_fmt(row.get('speedup_peak_normalized'))}× | "
                f"{_fmt(row.get('memory_fraction'))} |")
        add("")
        add(f"Goal: ≥ {GOAL_SPEEDUP:g}× faster on real photos at < {GOAL_MEMORY_FRACTION:g} of the memory. "
            "Peak-normalised: the port's time scaled by (its machine's 200 GFLOP/s) / (this run's jnp peak).")
        add("")
    photos = tasks.get("photos", {}).get("result", {}).get("photos")
    if photos:
        add("## Highlight-aware tiling on real photos")
        add("")
        add("| photo | size | clipped px | tiles | skipped | skip s | full s | full / skip | port s (est.) | port / ours |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for p in photos:
            add(f"| {p['file'].split('/')[-1]} | {p['width']}×{p['height']} | {_fmt(100 * p['clipped_pixel_fraction'], 1)} % | "
                f"{p['skip']['tiles']} | {_fmt(100 * p['skip']['skipped_fraction'], 0)} % | {_fmt(p['skip']['seconds'])} | "
                f"{_fmt(p['full']['seconds'])} | {_fmt(p['speedup_skip_vs_full'])}× | {_fmt(p.get('port_estimate_s'))} | "
                f"{_fmt(p.get('speedup_vs_port'))}× |")
        add("")
        add("All four stages, compile time subtracted; where no tile was skipped the full run would repeat "
            "the same calls and is not rerun. Skipping is exact (max |skip − full| = "
            f"{_fmt(max(p.get('max_abs_diff_skip_vs_full', 0) for p in photos), 6)}). 'port s (est.)' interpolates "
            "the port's quoted times linearly in pixel count (not measured).")
        add("")
    stages = tasks.get("stages", {}).get("result")
    if stages:
        add(f"## Per-stage forward, one pass at {stages['size'][1]}×{stages['size'][0]} (roofline)")
        add("")
        add(f"Same-process `jnp.dot` peak {_fmt(stages['peak_gflops'], 1)} GFLOP/s before, "
            f"{_fmt(stages['peak_gflops_after'], 1)} after (ratios use the higher), bandwidth {_fmt(stages['bandwidth_gbs'], 1)} GB/s, balance "
            f"{_fmt(stages['machine_balance_flop_per_byte'], 1)} FLOP/byte.")
        add("")
        add("| stage | input | s | GFLOP | GFLOP/s | × peak | FLOP/byte | s/MP at 128² | compile s | bound by |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, r in stages["stages"].items():
            small = r.get("small", {}).get("seconds_per_mpixel")
            add(f"| {name} | {r['shape'][1]}×{r['shape'][0]} | {_fmt(r['seconds'])} | {_fmt(r['flops'] / 1e9, 1)} | "
                f"{_fmt(r['gflops_achieved'], 1)} | {_fmt(r['fraction_of_peak'])} | {_fmt(r['intensity_flop_per_byte'], 1)} | "
                f"{_fmt(small)} (vs {_fmt(r['seconds_per_mpixel'])}) | {_fmt(r['compile_s'], 1)} | {r['bound']} |")
        m = stages["model"]
        add(f"| **model** (Lin on {stages['crf_size'][1]}²) | | {_fmt(m['seconds'])} | {_fmt(m['flops'] / 1e9, 1)} | "
            f"{_fmt(m['gflops_achieved'], 1)} | **{_fmt(m['fraction_of_peak'])}** | | | | |")
        add("")
        add(f"Hallucination-Net: {_fmt(100 * m['hallucination_flop_share'], 0)} % of the FLOPs, "
            f"{_fmt(100 * m['hallucination_time_share'], 0)} % of the time. Goal: the whole computation at ≥ "
            f"{GOAL_PEAK_FRACTION:.0%} of the measured peak; the port: {PORT['fraction_of_peak']:.0%} (quoted). "
            f"One-pass FLOPs at the port's 1088²: {_fmt(summ.get('tflop_1088_one_pass'))} TFLOP "
            f"(port: {PORT['tflop_per_image_1024']} TFLOP, hallucination {PORT['hallucination_share']:.0%}; ours "
            f"{_fmt(100 * (summ.get('hallucination_flop_share_1088') or 0), 0)} %).")
        add("")
    train_rows = [tasks[f"train-{s}"] for s in TRAIN_STAGES if f"train-{s}" in tasks]
    if train_rows:
        add("## Training step (synthesis + forward + backward + Adam), one device")
        add("")
        add("| stage | batch × patch | s/step | images/s | TFLOP/step | GFLOP/s (× peak) | synthesis share | compile s "
            "| XLA memory GB | largest batch (est.) | tried | with XLA's conv kernel grad: s/step (ours ÷ it) |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for e in train_rows:
            if "result" not in e:
                add(f"| {e['key']} | failed: {e.get('error', '')[:80]} ||||||||||")
                continue
            r = e["result"]
            lb = r["largest_batch"]
            if lb.get("tried_ok"):
                tried = f"{lb['tried_batch']}: {_fmt(lb['tried_images_per_s'])} img/s"
            elif "tried_ok" in lb:
                tried = f"{lb['tried_batch']}: failed ({lb.get('tried_error', '')[:40]})"
            else:
                tried = lb.get("tried", "—")
            add(f"| {r['stage']} | {r['batch']} × {r['patch']}² | {_fmt(r['seconds_per_step'])} | {_fmt(r['images_per_s'])} | "
                f"{_fmt(r['flops'] / 1e12, 3)} | {_fmt(r['gflops_achieved'], 1)} ({_fmt(r['fraction_of_peak'])}) | "
                f"{_fmt(100 * r['synthesis']['share_of_step'], 1)} % | {_fmt(r['compile_s'], 1)} | "
                f"{_fmt(_gb((r['memory'] or {}).get('total_bytes')))} | {lb.get('estimated_batch', '—')} | {tried} | "
                f"{_kernel_grad_cell(r.get('xla_kernel_grad'))} |")
        add("")
        add("Kernel gradient: on CPU our convs compute the weight gradient as one matmul per kernel tap "
            "(`hdrjax/models/conv.py`); the last column traces the same step with XLA's own weight-gradient "
            "convolution (`HDRJAX_CONV_KERNEL_GRAD=xla`).")
        add("Largest batch: XLA's buffer sizes at this batch extrapolated to 80 % of the memory limit "
            "(activations scale with the batch); 'tried' runs a step there when that fits the time budget.")
        add("")
    scal = [tasks[k] for k in sorted(tasks) if k.startswith("scaling-")]
    scal = [e for e in scal if "result" in e and "skipped" not in e["result"]]
    if scal:
        add("## Data-parallel scaling (same global batch)")
        add("")
        base = scal[0]["result"]["seconds_per_step"]
        fake = scal[0]["result"]["fake_devices"]
        add("| devices | compile s | s/step | images/s | step time / 1 device | collectives in HLO |")
        add("| --- | --- | --- | --- | --- | --- |")
        for e in scal:
            r = e["result"]
            add(f"| {r['devices']} | {_fmt(r['compile_s'], 1)} | {_fmt(r['seconds_per_step'])} | {_fmt(r['images_per_s'])} | "
                f"{_fmt(r['seconds_per_step'] / base)} | {r['collective_ops']} |")
        add("")
        if fake:
            add("Fake CPU devices share the same cores: this shows that the sharded program compiles and what "
                "the partitioning costs, not a speedup.")
            add("")
    knobs = tasks.get("knobs", {}).get("result")
    if knobs:
        add("## Knobs (ratio < 1: the knob is faster / smaller)")
        add("")
        add("| knob | measured on | effect | keep? |")
        add("| --- | --- | --- | --- |")
        k = knobs.get("bf16")
        if k and "error" not in k:
            per = ", ".join(f"{s[:3]} {_fmt(v['ratio'])}" for s, v in k["stages"].items())
            err = max(v["relative_l1_difference"] for v in k["stages"].values())
            add(f"| bf16 compute, f32 params | forward of a {k['shape'][0]}² tile | time × {_fmt(k['ratio'])} ({per}); "
                f"output rel. L1 diff ≤ {_fmt(err, 4)} | {'yes' if k['keep'] else 'no'} |")
        k = knobs.get("remat")
        if k and "error" not in k:
            for name, v in k["variants"].items():
                if name == "none":
                    continue
                add(f"| remat `{name}` | {k['network']} fwd+bwd (L1 loss), {k['batch']} × {k['patch']}² | time × "
                    f"{_fmt(v['time_ratio'])}, XLA temp memory × {_fmt(v.get('temp_memory_ratio'))} | "
                    f"{'for memory' if (v.get('temp_memory_ratio') or 1) < 0.8 else 'no'} |")
        k = knobs.get("donation")
        if k and "error" not in k:
            add(f"| donated train state | {k['stage']} step, {k['batch']} × {k['patch']}² | time × {_fmt(k['time_ratio'])}, "
                f"XLA memory × {_fmt(k.get('memory_ratio'))} | yes (train.jit_train_step) |")
        k = knobs.get("valid_conv")
        if k and "error" not in k:
            c, h = k["conv"], k["hallucination_net"]
            add(f"| up-block conv as padded conv + crop instead of reflect pad + VALID | one {c['input'][3]}→"
                f"{c['out_channels']} up-block conv at {2 * c['input'][1]}²; Hallucination-Net forward at {h['input'][1]}² | "
                f"conv time × {_fmt(c['ratio'])}, network time × {_fmt(h['ratio'])}; max abs diff "
                f"{_fmt(max(c['max_abs_diff'], h['max_abs_diff']), 6)} | "
                f"{'yes (hallucination.py)' if h['ratio'] < 0.95 else 'no'} |")
        k = knobs.get("conv_grad")
        if k and "error" not in k:
            v = k["variants"]
            add(f"| (evidence) XLA's own weight-gradient conv | 3×3 64→64 conv, {k['shape'][0]} × {k['shape'][1]}² | kernel-grad conv "
                f"× {_fmt(v['kernel_grad']['ratio_to_forward'])} the forward's time, input-grad × "
                f"{_fmt(v['input_grad']['ratio_to_forward'])} (same FLOPs each) | — |")
        k = knobs.get("layout")
        if k and "error" not in k:
            add(f"| NCHW instead of NHWC | one 3×3 64→64 conv at {k['shape'][1]}² | time × {_fmt(k['ratio_nchw_over_nhwc'])} | "
                f"{'NHWC (ours)' if k['ratio_nchw_over_nhwc'] >= 1 else 'NCHW would win'} |")
        k = knobs.get("tiles")
        if k and "error" not in k:
            b = k["batching"]
            add(f"| 3 tiles per call (fused tiles) | {b['image'][1]}×{b['image'][0]}, {b['tile']}² tiles, "
                f"{'→'.join(x[:3] for x in b['stages'])} | "
                f"time × {_fmt(b['ratio'])} | {'yes' if b['ratio'] < 0.95 else 'no'} |")
            for name, v in k.get("tile_size", {}).get("variants", {}).items():
                add(f"| {name.replace('_', ' ')} | {k['tile_size']['image'][0]}², {'→'.join(x[:3] for x in k['tile_size']['stages'])} "
                    f"| time × {_fmt(v['ratio'])}, "
                    f"computed px × {_fmt(v['computed_pixel_ratio'])} of the image | |")
        for name, v in knobs.items():
            if "error" in v:
                add(f"| {name} | failed: {v['error'][:100]} | | |")
        add("")
    skipped = [e["key"] for e in tasks.values() if "skipped" in e]
    if skipped:
        add(f"Not run (time limit): {', '.join(skipped)}.")
        add("")
    errors = [e for e in tasks.values() if "error" in e]
    if errors:
        add("## Failures")
        add("")
        for e in errors:
            add(f"- `{e['key']}`: {e['error'][:300]}")
        add("")
    regions = bench_regions.markdown(tasks)
    if regions:
        add("")
        add("## Regions engine vs tiles vs one pass (real photos, shipped model, all four stages)")
        add("")
        add("(a) `--engine regions` (default), (b) `--engine tiles` (512² tiles, 128 px overlap, unlit tiles "
            "skipped), (c) `--engine one-pass`; one process per photo times the engines interleaved after a "
            "warm-up each (median of the runs; 24 MP: one run, compile time subtracted); peak RSS from one fresh "
            "process per engine at 2 and 24 MP. Ratios are (c)'s time over (a)'s or (b)'s. "
            "Max Δ: largest |R(a) − R(c)| at pixels with α > 0, relative to R(c)'s range.")
        add("")
        L.extend(regions)
    return "\n".join(L) + "\n"


# ============================================================================== main


def _finite(o):
    """JSON-safe copy: non-finite floats become None (strict JSON has no NaN/Infinity)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _section_of(entry: dict) -> str:
    task = entry.get("task", "")
    return "regions" if task in ("regions", "latency", "folder") else task


def _earlier_tasks(json_path: pathlib.Path, tasks: dict, sections: set[str], keep_same_sections: bool = False) -> dict:
    """Tasks not run now, from an earlier result file (each keeps its own date).

    Those of other sections; with keep_same_sections (a --groups rerun) every task not rerun."""
    try:
        old = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return {}
    kept = {}
    for key, entry in (old.get("tasks") or {}).items():
        if key not in tasks and (keep_same_sections or _section_of(entry) not in sections):
            entry.setdefault("from_run", old.get("created"))
            kept[key] = entry
    return kept


def _atomic_write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes in one process (smoke test, not a measurement)")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where benchmark-<machine>.json/.md go")
    parser.add_argument("--machine", default=None, help="name in the output files (default: from the device)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections; the result file keeps the other sections of an earlier run")
    parser.add_argument("--groups", default="",
                        help="comma-separated prefixes: run only the worker processes whose names start with one "
                             "(e.g. regions-MtTamNorth_24_MP); the result file keeps every other task")
    parser.add_argument("--extended", action="store_true",
                        help="CPU: add the 12 MP image, the panoramas, the tile-size knob and more repeats "
                             "(~25 min on 2 cores; always on for a GPU)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds for the whole run: later sections are skipped (and said so) past it")
    parser.add_argument("--worker", nargs=2, metavar=("TASKS_JSON", "RESULT_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        tasks = json.loads(pathlib.Path(args.worker[0]).read_text())
        return run_tasks(tasks, pathlib.Path(args.worker[1]))

    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"benchmark: --only: unknown section(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(SECTIONS)}")

    def log(msg):
        print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_start = os.getloadavg()
    gpu = _detect_gpu()
    env = environment()
    log(f"{'GPU' if gpu else 'CPU'} run, {'quick' if args.quick else 'full'}; load average {load_start[0]:.2f}")
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hdrjax-bench-") as tmp:
        groups = make_plan(args.quick, gpu, sections, extended=args.extended, workdir=tmp)
        prefixes = [p.strip() for p in args.groups.split(",") if p.strip()]
        if prefixes:
            groups = [g for g in groups if any(g.name.startswith(p) for p in prefixes)]
            if not groups:
                raise SystemExit(f"benchmark: --groups {args.groups}: no worker process matches")
        for g in groups:
            if args.time_limit:
                left = args.time_limit - (time.perf_counter() - started) - 10.0
                if left < 30.0:
                    log(f"{g.name}: skipped, --time-limit {args.time_limit:.0f}s reached")
                    entries += [{"task": t["task"], "key": t["key"], "skipped": "time limit"} for t in g.tasks]
                    continue
                g.timeout_s = min(g.timeout_s, left)
            entries += run_group(g, gpu, pathlib.Path(tmp), log, quick=args.quick)
        tasks = _by_key(entries)
    load_end = os.getloadavg()
    peak = tasks.get("peak", {}).get("result")
    machine = args.machine or ("quick" if args.quick else _machine_name(env, gpu, peak))
    out = pathlib.Path(args.out_dir)
    json_path, md_path = out / f"benchmark-{machine}.json", out / f"benchmark-{machine}.md"
    partial = bool(set(SECTIONS) - sections) or bool(args.groups.strip())
    kept = _earlier_tasks(json_path, tasks, sections, keep_same_sections=bool(args.groups.strip())) if partial else {}
    if kept:
        log(f"kept {len(kept)} task(s) of other sections from {json_path}")
        tasks = {**kept, **tasks}
        peak = tasks.get("peak", {}).get("result")
    cores = env.get("cpu_affinity") or env.get("cpu_count") or 1
    results = {
        "machine": machine,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "extended": args.extended or gpu,
        "command": [pathlib.Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]),
        "device": (peak or {}).get("device", "gpu" if gpu else "cpu"),
        "gpu": gpu,
        "environment": env,
        "load_average": {"start": list(load_start), "end": list(load_end)},
        # A busy machine (other processes on our cores) inflates every absolute time.
        "contended": (not gpu) and max(load_start[0], load_end[0]) > 1.25 * cores,
        "wall_s": None,
        "port": PORT,
        "tasks": tasks,
    }
    results["summary"] = summarize(results)
    results["wall_s"] = time.perf_counter() - started
    _atomic_write(json_path, json.dumps(_finite(json.loads(json.dumps(results, default=_json_default))), indent=1, allow_nan=False) + "\n")
    _atomic_write(md_path, render_markdown(results))
    failed = [e["key"] for e in entries if "error" in e]
    log(f"wrote {json_path} and {md_path} in {results['wall_s']:.0f}s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
