"""Benchmark sections `train` and `scaling`: the training step of each stage.

* train    images/s of each stage's train step (synthesis + forward + backward + Adam) on
           one device at batch 8 (Deq and Lin at 256²; the VGG stages at 128² in the CPU
           default set, 256² with --extended); forward+backward FLOPs; the camera
           synthesis' share of the step; the same step with XLA's own conv kernel gradient
           (hdrjax/models/conv.py replaces it on CPU); the largest batch that fits.
* scaling  the same step sharded over 1, 2, 4, 8 devices (fake CPU devices in one process).

Runs inside the benchmark's worker processes (experiments/bench_runner.py);
experiments/bench_train_steps.py reuses `train_step_for` for its reference-settings steps.
"""
from __future__ import annotations

import time
from typing import Any

import bench_measure as m
from hdrjax.models import build


def _train_setup(stage: str, batch: int, patch: int, devices: int, *, dtype: str | None = None):
    """(cfg, model, state, host_batch, bank, vgg, mesh) for one stage's train step."""
    import jax
    import jax.numpy as jnp

    from hdrjax.training import loop, parallel, train_state
    from hdrjax.camera import crf

    cfg = m.load_config(stage)
    cfg.train.batch_size = batch
    cfg.data.patch_size = patch
    if dtype:
        cfg.model.dtype = dtype
    model = build.build_model(cfg)
    variables = m.random_variables(model, neutral=False)
    optimizer = loop.make_optimizer(cfg)
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

    from hdrjax.training import loop, parallel

    step = loop.make_train_step(cfg, model, optimizer)
    if donate:
        jitted = loop.jit_train_step(step, mesh)  # the trainer's own jit (state donated)
    else:
        rep, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
        jitted = jax.jit(step, in_shardings=(rep, data, rep, rep), out_shardings=(rep, rep))
    return jitted.lower(state, batch, bank, vgg)


def _compile_step(cfg, model, optimizer, state, batch, bank, vgg, mesh, *, donate=True):
    t0 = time.perf_counter()
    compiled = _lower_step(cfg, model, optimizer, state, batch, bank, vgg, mesh, donate=donate).compile()
    return compiled, time.perf_counter() - t0


def _step_flops(entry: dict) -> float | None:
    """The train step's FLOPs, counted on its loop-free form.

    On CPU the conv kernel gradients run their taps in a `lax.scan`, and XLA's cost analysis
    counts a loop body once, not per iteration; the same step traced with XLA's own kernel
    gradient has the same arithmetic and no loop. Lowering (no compile) is enough to count it.
    """
    from hdrjax.models import conv

    if conv.kernel_grad_mode(entry["model"].conv_kernel_grad) == "xla":
        return None
    lowered = _lower_step(entry["cfg"], entry["model"].clone(conv_kernel_grad="xla"), entry["optimizer"],
                          entry["state"], entry["batch"], entry["bank"], entry["vgg"], entry["mesh"], donate=False)
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
    from hdrjax.training import parallel

    key = (stage, batch, patch, devices)
    if key not in _STEPS:
        cfg, model, optimizer, state, bank, vgg, mesh = _train_setup(stage, batch, patch, devices)
        batch_dev = parallel.shard_batch(m.hdr_batch(batch, patch), mesh)
        compiled, compile_s = _compile_step(cfg, model, optimizer, state, batch_dev, bank, vgg, mesh)
        _STEPS[key] = dict(cfg=cfg, model=model, optimizer=optimizer, state=state, bank=bank, vgg=vgg,
                           mesh=mesh, batch=batch_dev, compiled=compiled, compile_s=compile_s)
    return _STEPS[key]


def run_steps(compiled, state, batch, bank, vgg, *, repeats, budget_s, min_repeats=2):
    """Time train steps (state threaded through, as donated buffers require)."""
    times = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch, bank, vgg)
        m.block(metrics)
        times.append(time.perf_counter() - t0)
        if len(times) >= min_repeats and time.perf_counter() - start + m._median(times) > budget_s:
            break
    return times, state, metrics


def _memory_limit_bytes() -> int:
    """Memory a step may use: the device's limit, or on CPU the machine's RAM."""
    dm = m.device_memory()
    if dm and dm.get("bytes_limit"):
        return int(dm["bytes_limit"])
    import psutil

    return int(psutil.virtual_memory().total)


def _xla_kernel_grad_step(entry: dict) -> dict:
    """The same step traced with XLA's own conv kernel gradient (hdrjax/models/conv.py)."""
    from hdrjax.models import conv

    if conv.kernel_grad_mode(entry["model"].conv_kernel_grad) == "xla":
        return {"skipped": "the default already uses XLA's kernel gradient on this backend"}
    comp, cs = _compile_step(entry["cfg"], entry["model"].clone(conv_kernel_grad="xla"), entry["optimizer"],
                             entry["state"], entry["batch"], entry["bank"], entry["vgg"], entry["mesh"], donate=False)
    args = (entry["state"], entry["batch"], entry["bank"], entry["vgg"])
    # One call, no warm-up (not donating, so the state stays usable): allocation is a small
    # part of a multi-second step, and this comparison must fit the 10-minute CPU budget.
    t = min(m.time_calls(lambda: comp(*args), repeats=1, budget_s=0.0, min_repeats=1))
    return {"seconds_per_step": t, "compile_s": cs, "flops": m.cost_of(comp).get("flops")}


def task_train(spec: dict) -> dict:
    """One stage's train step: images/s, FLOPs, synthesis share, largest batch that fits."""
    import jax

    from hdrjax.training import loop, parallel

    quick = spec["quick"]
    stage, batch, patch = spec["stage"], spec["batch"], spec["patch"]
    entry = train_step_for(stage, batch, patch, 1)
    cfg, model, optimizer, state, bank, vgg, mesh = (entry[k] for k in (
        "cfg", "model", "optimizer", "state", "bank", "vgg", "mesh"))
    batch_dev, compiled, compile_s = entry["batch"], entry["compiled"], entry["compile_s"]
    peak = m.same_process_peak(quick)
    cost, mem = m.cost_of(compiled), m.memory_of(compiled)
    # Before the timed steps: entry["state"] is still the undonated initial state here.
    xla_kg = _xla_kernel_grad_step(entry) if spec.get("compare_kernel_grad") else None
    flops = (xla_kg or {}).get("flops") or _step_flops(entry)
    if flops:
        cost.update(flops_compiled_count=cost.get("flops"), flops=flops)
    if spec.get("warmup", True):
        state, metrics = compiled(state, batch_dev, bank, vgg)
        m.block(metrics)
    times, state, metrics = run_steps(compiled, state, batch_dev, bank, vgg,
                                       repeats=spec["repeats"], budget_s=spec["budget_s"], min_repeats=1)
    t = m._median(times)
    out = {
        "stage": stage, "batch": batch, "patch": patch, "compile_s": compile_s,
        "runs": len(times), "times": times, "seconds_per_step": t, "images_per_s": batch / t,
        **cost, "memory": mem, "peak_gflops": peak,
        "gflops_achieved": cost.get("flops", 0.0) / t / 1e9,
        "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
    }
    out["fraction_of_peak"] = out["gflops_achieved"] / peak
    # The camera simulation alone (exposure, noise, CRF, JPEG) on the same batch.
    cam = loop.camera_config(cfg)
    synth = jax.jit(lambda key, b, bank: loop.synthesize_batch(key, b, bank, cam))
    key = jax.random.key(1)
    scomp = synth.lower(key, batch_dev, bank).compile()
    m.block(scomp(key, batch_dev, bank))
    st = m._median(m.time_calls(lambda: scomp(key, batch_dev, bank), repeats=5, budget_s=3.0, min_repeats=2))
    out["synthesis"] = {"seconds": st, "share_of_step": st / t, **m.cost_of(scomp)}
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
                big = parallel.shard_batch(m.hdr_batch(est, patch), mesh)
                bcomp, bcs = _compile_step(cfg, model, optimizer, state, big, bank, vgg, mesh)
                state, m2 = bcomp(state, big, bank, vgg)
                m.block(m2)
                bt, state, m2 = run_steps(bcomp, state, big, bank, vgg, repeats=1, budget_s=0, min_repeats=1)
                largest.update(tried_batch=est, tried_ok=True, tried_seconds_per_step=bt[0],
                               tried_images_per_s=est / bt[0], tried_memory=m.memory_of(bcomp),
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
    out["peak_rss_bytes"] = m.peak_rss_bytes()
    out["device_memory"] = m.device_memory()
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
    m.block(metrics)
    times, state, metrics = run_steps(compiled, state, batch_dev, bank, vgg,
                                       repeats=spec["repeats"], budget_s=spec["budget_s"])
    entry["state"] = state
    t = m._median(times)
    return {
        "devices": n, "stage": stage, "batch": batch, "patch": patch, "compile_s": compile_s,
        "runs": len(times), "seconds_per_step": t, "images_per_s": batch / t,
        "all_reduce_ops": hlo.count("all-reduce("), "collective_ops": sum(
            hlo.count(k) for k in ("all-reduce(", "all-gather(", "reduce-scatter(", "all-to-all(",
                                   "collective-permute(")),
        "device_kind": str(jax.devices()[0].device_kind), "fake_devices": jax.devices()[0].platform == "cpu",
        "loss": float(metrics["loss"]),
    }