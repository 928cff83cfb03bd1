"""A few training steps of every stage on one device and on all devices: images/s, memory, compile time.

    python experiments/accelerator_smoke.py                      # production settings (256² x 8)
    python experiments/accelerator_smoke.py --dtype bfloat16     # mixed precision
    ALLOW_CPU=1 python experiments/accelerator_smoke.py --patch 32 --steps 2   # try it on a CPU

For an accelerator machine without network: `bash experiments/gpu_smoke.sh` (installs the
carried wheels, as gpu_benchmark.sh does, and runs this).  Production settings are each
stage's config file as shipped (configs/<stage>.py, 256² patches, global batch 8; the joint
stage fine-tunes the shipped model) on the built-in procedural scenes, so no data files are
needed.  For every stage and for [first device] and [all devices] it builds the state,
compiles the train step (compile_s: the first step, compilation included), runs `--steps`
more and reports images/s, s/step and the devices' peak memory (None where the platform does
not report it, e.g. CPU).  Writes experiments/results/accelerator-smoke-<platform>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hdrjax import configs  # noqa: E402
from hdrjax.models import build  # noqa: E402
STAGES = build.TRAINING_STAGES


def load_config(stage):
    return configs.get_config(stage)


def peak_memory(devices):
    peaks = []
    for d in devices:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        if not stats:
            return None
        peaks.append(int(stats.get("peak_bytes_in_use", stats.get("bytes_in_use", 0))))
    return max(peaks)


def run_stage(stage, devices, *, patch, batch, steps, dtype):
    import jax

    from hdrjax import data
    from hdrjax.training import loop, parallel, train_state
    from hdrjax.camera import crf
    from hdrjax.models import vgg

    config = load_config(stage)
    with config.unlocked():
        if patch:
            config.data.patch_size = patch
        config.train.batch_size = batch
        if dtype:
            config.model.dtype = dtype
    mesh = parallel.make_mesh(devices)
    loop.validate_config(config, num_devices=len(devices))
    model, optimizer = build.build_model(config), loop.make_optimizer(config)
    t0 = time.time()
    vgg_init, crf_net_init = train_state.load_weight_sources(config)
    state = train_state.create_state(config, model, optimizer, mesh, vgg_init=vgg_init, crf_net_init=crf_net_init)
    jax.block_until_ready(state)
    init_s = time.time() - t0
    vgg_loss = None
    if stage == "hallucination" and config.loss.perceptual_weight > 0:
        vgg_loss = parallel.replicate(vgg.load_vgg16(config.init.vgg_loss or config.init.vgg or "lpips"), mesh)
    bank = parallel.replicate(crf.load_bank(config.crf.bank, split="train"), mesh)
    it = data.make_train_iterator(config.data, global_batch_size=batch, seed=config.seed)
    host_batches = [next(it) for _ in range(min(steps, 4) + 1)]
    step = loop.jit_train_step(loop.make_train_step(config, model, optimizer), mesh)
    t0 = time.time()
    state, metrics = step(state, parallel.shard_batch(host_batches[0], mesh), bank, vgg_loss)
    loss0 = float(metrics["loss"])
    compile_s = time.time() - t0
    batches = [parallel.shard_batch(b, mesh) for b in host_batches[1:]]
    t0 = time.time()
    for i in range(steps):
        state, metrics = step(state, batches[i % len(batches)], bank, vgg_loss)
    loss = float(metrics["loss"])  # waits for the last step
    elapsed = time.time() - t0
    return {
        "stage": stage, "devices": len(devices), "patch": config.data.patch_size, "global_batch": batch,
        "dtype": config.model.dtype, "init_s": round(init_s, 2), "compile_s": round(compile_s, 2),
        "steps": steps, "sec_per_step": round(elapsed / steps, 4),
        "images_per_sec": round(steps * batch / elapsed, 2),
        "peak_memory_bytes": peak_memory(devices), "first_loss": loss0, "last_loss": loss,
        "finite": bool(all(map(lambda v: v == v and abs(v) != float("inf"), (loss0, loss)))),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--steps", type=int, default=10, help="timed steps after the compiling one")
    parser.add_argument("--patch", type=int, default=0, help="patch size (0 = the config's, 256)")
    parser.add_argument("--batch", type=int, default=8, help="global batch on one device")
    parser.add_argument("--dtype", default="", help="model.dtype (default: the config's float32)")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    import jax

    backend = jax.default_backend()
    if backend == "cpu" and os.environ.get("ALLOW_CPU") != "1":
        sys.exit("no accelerator visible to jax (default backend cpu); set ALLOW_CPU=1 to run on the CPU anyway")
    devices = jax.devices()
    layouts = [devices[:1]] + ([devices] if len(devices) > 1 else [])
    rows = []
    for stage in args.stages.split(","):
        for devs in layouts:
            # The global batch splits over the devices: 8 on one device; on N it stays 8 when N
            # divides it, else 8 per device.
            batch = args.batch if args.batch % len(devs) == 0 else args.batch * len(devs)
            try:
                row = run_stage(stage, devs, patch=args.patch, batch=batch, steps=args.steps, dtype=args.dtype)
            except jax.errors.JaxRuntimeError as e:  # out of memory, a failed compile: the other stages still run
                row = {"stage": stage, "devices": len(devs), "error": f"{type(e).__name__}: {str(e)[:500]}"}
            rows.append(row)
            mem = row.get("peak_memory_bytes")
            print(f"{stage:15s} {len(devs)} dev  " + (
                f"compile {row['compile_s']:.1f}s  {row['images_per_sec']:.2f} img/s  {row['sec_per_step']:.3f} s/step  "
                f"peak {'n/a' if mem is None else f'{mem / 2**30:.2f} GiB'}  loss {row['last_loss']:.4g}"
                if "error" not in row else row["error"]), flush=True)
    device_kind = devices[0].device_kind
    out = pathlib.Path(args.out or ROOT / "experiments" / "results" / f"accelerator-smoke-{backend}.json")
    result = {
        "what": "a few train steps of every stage, first device and all devices",
        "script": "experiments/accelerator_smoke.py", "argv": sys.argv[1:],
        "machine": {"backend": backend, "device_kind": device_kind, "device_count": len(devices),
                    "jax": jax.__version__, "python": platform.python_version(), "cpus": os.cpu_count()},
        "rows": rows, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 1 if any("error" in r or not r.get("finite", True) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
