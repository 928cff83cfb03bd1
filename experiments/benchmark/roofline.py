"""Benchmark sections `peak`, `stages` and `knobs`: the machine's ceilings, each network's
one-pass forward against them (the roofline), and bf16 compute as a ratio.

* peak    dense float32 matmul GFLOP/s (`jnp.dot`, several sizes, and numpy's 4096²) and a
          streaming bandwidth: the machine's ceilings, measured in the same run.
* stages  each network's forward at 1 MP in one pass: time, FLOPs and bytes from XLA's cost
          analysis, achieved GFLOP/s / same-process matmul peak (the roofline ratio), what
          bounds it (compute, memory or per-call overhead).
* knobs   bf16 compute (float32 parameters) against float32, per network: the one knob whose
          answer depends on the machine (no fast bf16 matmul on the 2-core CPU; unmeasured on
          an accelerator). The other knobs were one-off measurements, retired: their results
          stay in the result file (report.py renders them) and their code is in
          experiments/benchmark.py at commit 142d0c4.

Runs inside the benchmark's worker processes (runner.py).
"""
from __future__ import annotations

import time
import traceback
from typing import Any

from . import measure as m

STAGES = m.STAGES


def task_peak(spec: dict) -> dict:
    """Dense matmul GFLOP/s (jnp at several sizes, bf16, numpy 4096²) and triad bandwidth."""
    import jax
    import numpy as np

    quick = spec["quick"]
    gpu = m.platform_name() == "gpu"
    sizes = [128, 256] if quick else ([2048, 4096, 8192] if gpu else [1024, 2048, 4096])
    out: dict[str, Any] = {"jnp_float32": {}, "jnp_bfloat16": {}}
    for n in sizes:
        out["jnp_float32"][str(n)] = m.matmul_gflops(n, budget_s=8.0)
    # bf16 matmuls are emulated on CPUs without AVX512-BF16/AMX: the smaller sizes suffice there.
    for n in (sizes[-2:] if gpu else sizes[:2]):
        out["jnp_bfloat16"][str(n)] = m.matmul_gflops(n, dtype="bfloat16", budget_s=8.0)
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
    out["bandwidth_gbs"] = m.bandwidth_gbs(n_floats)
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
    _, model, variables = m.build_model(spec.get("dtype"))
    peak = m.same_process_peak(quick)
    balance_bw = m.bandwidth_gbs(1 << (18 if quick else 25), repeats=3)
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
        cost = m.cost_of(compiled)
        # The first call is the warm-up (allocations) unless it alone exceeds the budget, then
        # it is the only timed call (the executable is already compiled either way).
        calls = m.time_calls(lambda: compiled(variables, *args), repeats=spec["repeats"] + 1,
                           budget_s=spec["budget_s"], min_repeats=1)
        times = calls[1:] if len(calls) > 1 else calls
        t = m.median(times)
        row = {"shape": list(shape), "compile_s": compile_s, "seconds": t, "runs": len(times),
               "times": times, "warmup_s": calls[0] if len(calls) > 1 else None, **cost,
               "memory": m.memory_of(compiled)}
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
            m.block(scomp(variables, *sargs))
            st = m.median(m.time_calls(lambda: scomp(variables, *sargs), repeats=5, budget_s=2.0, min_repeats=3))
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
    out["peak_gflops_after"] = m.same_process_peak(quick)
    ref = max(peak, out["peak_gflops_after"])
    out["peak_gflops_used"] = ref
    for row in out["stages"].values():
        row["fraction_of_peak"] = row["gflops_achieved"] / ref
    out["model"]["fraction_of_peak"] = out["model"]["gflops_achieved"] / ref
    return out


def _knob_bf16(spec: dict) -> dict:
    """bf16 compute (f32 params) vs f32: forward time and output difference per network."""
    import jax
    import numpy as np

    size = (spec["tile"], spec["tile"])
    _, m32, _ = m.build_model()
    _, m16, _ = m.build_model("bfloat16")
    # Every layer live (the neutral weights would make the Deq/Ref outputs equal their inputs).
    variables = m.random_variables(m32, neutral=False)
    rows = {}
    for stage in spec["stages"]:
        args = _stage_inputs(stage, size)
        res = {}
        outs = {}
        for name, model in (("float32", m32), ("bfloat16", m16)):
            f = jax.jit(_stage_fns(model)[stage]).lower(variables, *args).compile()
            outs[name] = np.asarray(f(variables, *args))
            res[name] = m.median(m.time_calls(lambda: f(variables, *args), repeats=spec["repeats"],
                                               budget_s=spec["budget_s"], min_repeats=2))
        ref = outs["float32"]
        rel = float(np.mean(np.abs(outs["bfloat16"] - ref)) / max(float(np.mean(np.abs(ref))), 1e-12))
        rows[stage] = {"float32_s": res["float32"], "bfloat16_s": res["bfloat16"],
                       "ratio": res["bfloat16"] / res["float32"], "relative_l1_difference": rel}
    f32 = sum(r["float32_s"] for r in rows.values())
    b16 = sum(r["bfloat16_s"] for r in rows.values())
    return {"shape": list(size), "stages": rows, "ratio": b16 / f32,
            "keep": b16 / f32 < 0.95, "note": "forward of one tile; params stay float32"}


def task_knobs(spec: dict) -> dict:
    """Each knob's effect as a ratio against the default; a failure is recorded, not raised."""
    out = {}
    t0 = time.perf_counter()
    try:
        out["bf16"] = _knob_bf16(spec["bf16"] | {"quick": spec["quick"]})
    except Exception as e:
        out["bf16"] = {"error": f"{type(e).__name__}: {e}"[:500], "traceback": traceback.format_exc()[-2000:]}
    out["bf16"]["wall_s"] = time.perf_counter() - t0
    return out
