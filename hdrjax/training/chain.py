"""The default model's recipe run end to end: the paper's stage-wise chain, then its export.

The chain of the paper (§3.1, §3.4): Dequantization-, Linearization- and Hallucination-Net
trained stage-wise with teacher forcing, then all four networks fine-tuned jointly with the
Refinement-Net, starting from the three stage runs.  Ours, between the two: the Refinement-Net
trained alone on the fixed outputs of the three (`refinement`, configs/recipe.RECIPE_STAGES).
Settings: configs/recipe.py (size `cpu` ≈ 2 h on a 2-core CPU, `gpu` ≈ 10 min on an H200,
`tiny` = seconds, for tests).

`run_chain` trains every stage in `<workdir>/<stage>` through `loop.train_and_evaluate`, so it
resumes: run it again after a crash, a kill or a reboot and each stage continues from its last
checkpoint (finished stages are skipped); a stage stopped early (SIGTERM) stops the chain
(`ChainStopped`).  `<workdir>/stages.json` records per stage the steps, images seen and wall
time.  With `init` ("default" or a shipped-model folder) every stage continues from that
model instead of starting over, and the export adds this run to the model's training
history.  `export_model` writes the last whole-model run's weights (joint or refinement) as a
shipped-model folder
(`weights.pretrained`: .npz shards ≤ 16 MiB + manifest.json with sha256, recipe, commit,
images seen and history).  The command line is `python -m experiments.default_model.train`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import subprocess
import time

from hdrjax.errors import HdrjaxError
from hdrjax.models import build

# A source checkout's root: its git commit goes in the manifest, and stored paths are made
# relative to it (`portable_paths`).
ROOT = pathlib.Path(__file__).resolve().parents[2]
def _recipe_module():
    from hdrjax.configs import recipe

    return recipe


# The chain's stages in order (configs/recipe.RECIPE_STAGES): the three stage-wise ones, the
# Refinement-Net alone, joint fine-tuning.
STAGES = _recipe_module().RECIPE_STAGES
# The stages whose runs hold all four networks; a model is exported from the later of them.
WHOLE_MODEL_STAGES = ("refinement", "joint")


def stage_config(stage: str, size: str, workdir: pathlib.Path, *, hdr_folder: str = "", crf: str = "camera",
                 variants: str = "", devices: int = 0, init: str = "", steps: dict | None = None,
                 learning_rates: dict | None = None):
    """The config of one stage of the chain (configs/recipe.py plus data, CRFs and inits).

    `init` ("" = the recipe's own inits; "default" or a shipped-model folder) is the model
    every network starts from when this run has not trained it; `steps` ({stage: N}) replaces
    the size's step count (the schedule's warm-up, logging and checkpoint spacing follow it);
    `learning_rates` ({stage: lr}) the recipe's peak learning rate (the cosine decay stays)."""
    recipe = _recipe_module()
    c = recipe.get_config(",".join(p for p in (stage, size, variants) if p))
    if steps and stage in steps:
        recipe.set_steps(c, steps[stage])
    if learning_rates and stage in learning_rates:
        c.optim.learning_rate = float(learning_rates[stage])
    if hdr_folder:
        folder = pathlib.Path(hdr_folder).expanduser().absolute()
        c.data.name = "hdr_folder"
        c.data.manual_dir = str(folder)
        c.data.backend = "files"  # decoded once per process and cached; no TFDS preparation
        c.data.panorama.enabled = True
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        c.data.split.test_names = tuple(n for n in recipe.TEST_NAMES if n in present)
        if not c.data.split.test_names:
            c.data.split.test_fraction = 0.1
    else:
        c.data.name = "procedural"
        c.data.split.test_names = ()
    c.crf.bank = crf
    c.parallel.num_devices = devices
    if stage in WHOLE_MODEL_STAGES:  # §3.4: fine-tune from the stage runs of this chain
        ran = _load_json(workdir / "stages.json")

        def source(run):  # this chain's run of it, or the model it continues
            return str(workdir / run) if (not init or ran.get(run, {}).get("finished")) else init

        for net in build.TRAINING_STAGES[:3]:
            c.init[net] = source(net)
        if stage == "joint" and ran.get("refinement", {}).get("finished"):
            c.init.refinement = str(workdir / "refinement")
        else:
            c.init.refinement = init
    elif init:
        c.init[stage] = init
    return c


class ChainStopped(HdrjaxError):
    """A stage was stopped before its last step (preemption); the chain resumes on the next run.
    Not a failure: the command line reports it and exits 0."""


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("+local-changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load_json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: pathlib.Path, value) -> None:
    from hdrjax.io import atomic_write

    with atomic_write(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def run_chain(size: str, workdir, *, hdr_folder: str = "", crf: str = "camera", variants: str = "",
              stages=STAGES, devices: int = 0, init: str = "", steps: dict | None = None,
              learning_rates: dict | None = None) -> dict:
    """Train the stages in order (resuming); return the stages.json record."""
    from hdrjax.training import loop

    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    record_path = workdir / "stages.json"
    record = _load_json(record_path)
    for stage in stages:
        config = stage_config(stage, size, workdir, hdr_folder=hdr_folder, crf=crf, variants=variants,
                              devices=devices, init=init, steps=steps, learning_rates=learning_rates)
        logging.info("=== stage %s: %d steps of batch %d at %d² (%s, CRFs %s)", stage, config.train.num_steps,
                     config.train.batch_size, config.data.patch_size, config.data.name, config.crf.bank)
        t0 = time.time()
        state = loop.train_and_evaluate(config, workdir / stage)
        import jax

        reached = int(jax.device_get(state.step))
        entry = record.get(stage, {"wall_seconds": 0.0})
        if reached < config.train.num_steps:  # stopped by SIGTERM / Ctrl-C: the next stage must wait
            entry["wall_seconds"] = round(entry.get("wall_seconds", 0.0) + time.time() - t0, 1)
            entry.update(steps=reached, finished=False)
            record[stage] = entry
            _write_json(record_path, record)
            raise ChainStopped(f"stage {stage} stopped at step {reached} of {config.train.num_steps}; "
                               "run the same command again to continue")
        entry["wall_seconds"] = round(entry.get("wall_seconds", 0.0) + time.time() - t0, 1)
        entry.update(steps=reached, finished=True, batch_size=config.train.batch_size,
                     patch_size=config.data.patch_size, images_seen=reached * config.train.batch_size,
                     learning_rate=config.optim.learning_rate,
                     data=config.data.name, crf_bank=config.crf.bank,
                     platform=jax.devices()[0].platform, devices=devices or jax.device_count())
        record[stage] = entry
        _write_json(record_path, record)
    return record


def portable_paths(config: dict) -> dict:
    """The stored config with every absolute path made relative to the repository root (the
    data folder, the stage runs a joint run started from): a shipped manifest names no folder of
    the machine that trained it."""
    import jax

    def relative(value):
        return os.path.relpath(value, ROOT) if isinstance(value, str) and os.path.isabs(value) else value

    return jax.tree.map(relative, config)


def training_history(stages: dict, commit: str, init: str = "") -> list[dict]:
    """The runs that made a model, oldest first: the `init` model's history (a model exported
    before histories were kept counts as one run), then this run's stages."""
    history = []
    if init:
        from hdrjax.weights import pretrained

        base = pretrained.read_manifest(None if init == "default" else init)
        history = list(base.get("history") or [{"commit": base.get("commit"), "created": base.get("created"),
                                                 "stages": base.get("stages", {})}])
    return history + [{"commit": commit, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "init": init or None, "stages": stages}]


def history_totals(history: list[dict]) -> dict:
    """Wall seconds and images seen over every run of a training history."""
    entries = [e for run in history for e in run["stages"].values()]
    return {"wall_seconds": round(sum(e.get("wall_seconds", 0.0) for e in entries), 1),
            "images_seen": int(sum(e.get("images_seen", 0) for e in entries))}


def _last_whole_model_stage(workdir: pathlib.Path) -> str:
    """The stage of `workdir` whose latest checkpoint is the newest among those that hold the
    whole model (a chain that ran only `refinement` exports that run)."""
    from hdrjax.weights import checkpoints

    found = {s: checkpoints.find_checkpoint(workdir / s) for s in WHOLE_MODEL_STAGES if (workdir / s).is_dir()}
    found = {s: p for s, p in found.items() if p is not None}
    if not found:
        raise checkpoints.CheckpointError(f"{workdir}: no checkpoint of a {' or '.join(WHOLE_MODEL_STAGES)} run "
                                          "to export (the chain has not finished one)")
    return max(found, key=lambda s: found[s].stat().st_mtime)


def export_model(workdir, out_dir, *, size: str, hdr_folder: str = "", crf: str = "camera",
                 dtype: str = "float32", variants: str = "", init: str = "", command: str = "") -> pathlib.Path:
    """Write the last whole-model run's weights (joint, or refinement alone) as a shipped-model
    folder (hdrjax.weights.pretrained); `command`, the command line that ran the chain, is
    recorded in the manifest's recipe."""
    import numpy as np

    from hdrjax.inference import regions
    from hdrjax.weights import checkpoints, pretrained
    from hdrjax.models import vgg
    from hdrjax.models.hallucination import encoder_init

    workdir = pathlib.Path(workdir).absolute()
    last = _last_whole_model_stage(workdir)
    variables, stored_config, step = checkpoints.load_inference_variables(workdir / last)
    config = stage_config(last, size, workdir, hdr_folder=hdr_folder, crf=crf, variants=variants, init=init)
    frozen = None
    if config.train.freeze_encoder:
        # Leave the encoder out only if it really is the lpips VGG as training put it in.
        encoder = variables["params"]["hallucination"]["encoder"]
        expected = encoder_init({"encoder": encoder}, vgg.load_vgg16(config.init.vgg))["encoder"]
        diff = max(float(np.max(np.abs(np.asarray(encoder[k][leaf]) - np.asarray(expected[k][leaf]))))
                   for k in encoder for leaf in encoder[k])
        if diff <= 1e-6:
            frozen = config.init.vgg
        else:
            logging.warning("the encoder differs from its %s init by %.3g: storing it", config.init.vgg, diff)
    stages = _load_json(workdir / "stages.json")
    recipe = {
        "command": command,
        "config": f"configs/recipe.py:<stage>,{size}" + (f",{variants}" if variants else ""),
        "held_out": list(config.data.split.test_names) if config.data.name == "hdr_folder" else [],
    }
    commit = _git_commit()
    history = training_history(stages, commit, init)
    metadata = {"recipe": recipe, "commit": commit, "step": step, "stages": stages,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "history": history, "training_total": history_totals(history)}
    exported = pretrained.export(variables, portable_paths(stored_config), out_dir, frozen_encoder=frozen,
                                 dtype=dtype, metadata=metadata)
    # Inference crops around highlights by each net's measured receptive field: measure it once
    # here so users of the exported model never wait for it.
    regions.record_receptive_fields(out_dir)
    return exported


def _parse_per_stage(text: str, option: str, convert, expected: str) -> dict:
    """"joint=X,dequantization=Y" -> {stage: convert(value)}; ValueError naming the bad item."""
    out = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        stage, _, value = item.partition("=")
        try:
            if stage not in STAGES:
                raise ValueError(stage)
            out[stage] = convert(value)
        except ValueError:
            raise ValueError(f"{option} {item!r}: expected <stage>={expected}, stage one of {STAGES}") from None
    return out


def _positive(convert):
    def check(value: str):
        v = convert(value)
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(value)
        return v
    return check


def parse_steps(text: str) -> dict:
    """"joint=1500,dequantization=800" (the command line's --steps) -> {stage: steps}; ValueError
    naming what is wrong."""
    return _parse_per_stage(text, "--steps", _positive(int), "<positive integer>")


def parse_learning_rates(text: str) -> dict:
    """"refinement=3e-5" (the command line's --learning-rate) -> {stage: peak learning rate};
    ValueError naming what is wrong."""
    return _parse_per_stage(text, "--learning-rate", _positive(float), "<positive number>")
