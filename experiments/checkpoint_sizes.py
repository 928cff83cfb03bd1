"""Bytes on disk of one checkpoint step per training stage, now and in the earlier layout.

    python experiments/checkpoint_sizes.py [--out experiments/results/checkpoint-sizes.json]

A stage's TrainState holds the networks that stage trains (joint: all four) with their Adam
moments.  Before, every stage's state also carried all four networks' parameters (the
optimizer state only of the trained ones); `before` rebuilds that layout for each stage and
saves it the same way.  Each state is saved with hdrjax.weights.checkpoints.Checkpointer (orbax,
plus the config) from the stage's config file, with random Adam moments standing in for
trained ones; sizes do not depend on patch or batch size.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

import results_io  # experiments/results_io.py, beside this script

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hdrjax import configs  # noqa: E402
from hdrjax.models import build  # noqa: E402
STAGES = build.TRAINING_STAGES


def load_config(stage):
    return configs.get_config(stage, "smoke,scratch" if stage == "joint" else "smoke")


def dir_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


def trained_like(state):
    """Adam moments as after training: random values (at init they are zeros, which orbax's
    compression stores in almost no bytes and would understate the size)."""
    import jax
    import numpy as np

    rng = np.random.default_rng(0)

    def fill(x):
        if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.floating) and x.ndim > 0:
            return rng.standard_normal(x.shape).astype(x.dtype) * 1e-3
        return x

    return state.replace(opt_state=jax.tree.map(fill, state.opt_state))


def save_size(state, config, workdir):
    from hdrjax.weights import checkpoints

    state = trained_like(state)

    ck = checkpoints.Checkpointer(workdir, max_to_keep=1, save_every=1)
    ck.save(1, state, None, config, force=True)
    ck.close()
    return dir_bytes(pathlib.Path(workdir) / "checkpoints" / "1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "checkpoint-sizes.json"))
    args = parser.parse_args(argv)
    import jax

    from hdrjax.training import loop, parallel, train_state

    mesh = parallel.make_mesh(jax.devices()[:1])
    full = None
    results = {}
    with tempfile.TemporaryDirectory(prefix="hdrjax_sizes_") as tmp:
        for stage in STAGES:
            config = load_config(stage)
            model, optimizer = build.build_model(config), loop.make_optimizer(config)
            state = train_state.create_state(config, model, optimizer, mesh)
            now = save_size(state, config, os.path.join(tmp, f"{stage}_now"))
            if full is None:  # all four networks' parameters, as every stage state had them
                full = jax.jit(lambda k: build.init_variables(model, k))(train_state.param_init_key(config.seed))
            old = train_state.state_from_variables(full, optimizer, config.seed)
            before = save_size(old, config, os.path.join(tmp, f"{stage}_before"))
            results[stage] = {"networks": list(train_state.TRAINABLE[stage]), "bytes_now": now, "bytes_before": before,
                              "mb_now": round(now / 1e6, 1), "mb_before": round(before / 1e6, 1)}
            print(stage, json.dumps(results[stage]), flush=True)
    out = {"what": "bytes of one checkpoint step (state + config) per stage, stage networks only vs all four",
           "script": "experiments/checkpoint_sizes.py", "jax": jax.__version__, "stages": results,
           "date": results_io.now()}
    results_io.write(args.out, out)


if __name__ == "__main__":
    main()
