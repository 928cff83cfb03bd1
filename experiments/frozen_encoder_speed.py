"""What freezing the Hallucination-Net's VGG16 encoder saves per training step (train.freeze_encoder).

    python experiments/frozen_encoder_speed.py --out experiments/results/frozen-encoder-speed.json

Compiles the Hallucination-Net train step of configs/recipe.py (128² × 4 by default) twice —
encoder trained (the reference) and frozen (the default model's recipe) — and times them
interleaved, step for step, so that whatever else the machine does affects both alike.
Reports the median seconds per step of each and their ratio (same run, same process).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time
from hdrjax.models import build

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(frozen: bool, batch: int, patch: int):
    from hdrjax import configs

    c = configs.get_config("recipe", "hallucination,cpu")
    c.train.freeze_encoder = frozen
    c.train.batch_size = batch
    c.data.patch_size = patch
    return c


def measure(batch: int = 4, patch: int = 128, repeats: int = 6) -> dict:
    import jax
    import numpy as np

    from hdrjax.training import loop, parallel, train_state
    from hdrjax.camera import crf
    from hdrjax.models import vgg as vgg_lib

    mesh = parallel.make_mesh(jax.devices()[:1])
    rep = parallel.replicated(mesh)
    rng = np.random.default_rng(0)
    hdr = {"hdr": (rng.gamma(1.0, 0.5, (batch, patch, patch, 3)) ** 2).astype(np.float32)}
    runs = {}
    for name, frozen in (("encoder_trained", False), ("encoder_frozen", True)):
        cfg = _config(frozen, batch, patch)
        model = build.build_model(cfg)
        optimizer = loop.make_optimizer(cfg)
        state = train_state.create_state(cfg, model, optimizer, mesh, vgg_init=vgg_lib.load_vgg16("lpips"))
        bank = jax.device_put(crf.load_bank(cfg.crf.bank, split="train"), rep)
        vgg = jax.device_put(vgg_lib.load_vgg16("lpips"), rep)
        step = loop.jit_train_step(loop.make_train_step(cfg, model, optimizer), mesh)
        batch_dev = parallel.shard_batch(hdr, mesh)
        t0 = time.perf_counter()
        state, metrics = step(state, batch_dev, bank, vgg)
        jax.block_until_ready(metrics)
        runs[name] = {"step": step, "state": state, "bank": bank, "vgg": vgg, "batch": batch_dev,
                      "compile_and_first_step_s": time.perf_counter() - t0, "times": []}
    for _ in range(repeats):  # interleaved: load on the machine hits both alike
        for r in runs.values():
            t0 = time.perf_counter()
            r["state"], metrics = r["step"](r["state"], r["batch"], r["bank"], r["vgg"])
            jax.block_until_ready(metrics)
            r["times"].append(time.perf_counter() - t0)
    out = {name: {"seconds_per_step": statistics.median(r["times"]), "times": r["times"],
                  "compile_and_first_step_s": r["compile_and_first_step_s"]} for name, r in runs.items()}
    out["ratio_frozen_over_trained"] = (out["encoder_frozen"]["seconds_per_step"]
                                        / out["encoder_trained"]["seconds_per_step"])
    out["setup"] = {"stage": "hallucination", "batch": batch, "patch": patch, "repeats": repeats,
                    "platform": jax.devices()[0].platform, "machine": platform.processor() or platform.machine(),
                    "note": "median of interleaved steps in one process; the same random HDR batch"}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--out", default="", help="write the result JSON here")
    args = p.parse_args(argv)
    result = measure(args.batch, args.patch, args.repeats)
    text = json.dumps(result, indent=2)
    if args.out:
        from hdrjax.io import atomic_write

        with atomic_write(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
