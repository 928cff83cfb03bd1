"""The recipe of the model that ships with hdrjax (hdrjax/weights/default), one stage at a time.

    python -m hdrjax.main --config=configs/recipe.py:linearization,cpu --workdir=runs/default/linearization

`python -m experiments.default_model.train` (hdrjax/train_chain.py) runs the whole chain
(Dequantization → Linearization → Hallucination stage-wise, then joint fine-tuning with the
Refinement-Net, each stage started from the previous ones) and exports the weights; read its
docstring first.

Argument: "<stage>,<size>[,<variant>...]" with stage one of RECIPE_STAGES and size
  cpu   the shipped model (its first run, without the refinement stage: 79 min on a 2-core CPU)
  gpu   sized for about 10 minutes on one H200-class GPU (not run on one yet)
  tiny  seconds per stage, for tests
Further variants from configs/default.py (e.g. "dorf") may follow.

What differs from the reference settings (configs/default.py) and why — the reference trains
each stage 500k steps at batch 8 from pretrained weights; a short run needs:
  * Linearization-Net: monotone projection "clip" (the reference's "shift" cannot beat the
    mean curve, see hdrjax.camera.crf.monotone_projection), a PCA head that starts at the
    mean curve with output scale 4, BatchNorm running averages at decay 0.99 (at 0.999 they
    are still 1/e away from their initial value after 1000 steps), learning rate 1e-3;
  * Hallucination-Net: the VGG16 encoder frozen at its ImageNet weights (no encoder weight
    gradients; 59 MB less to ship);
  * every stage: cosine decay with a short warm-up, learning rates sized for few steps.
Data: real HDR panoramas seen through random pinhole views when `data.manual_dir` is a folder
of them (the recipe script passes ../shared/data/train_hdr), with TEST_NAMES held out; else
the embedded procedural scenes.  CRFs: DoRF's 191 training curves when the file is given
(`crf.bank=dorf:PATH`), else the built-in family.
"""

from hdrjax.configs import default  # the shared base

SIZES = ("cpu", "gpu", "tiny")
# The chain's stages, in order: the paper's three stage-wise ones, the Refinement-Net trained
# alone on their fixed outputs (ours: a joint stage with train.trainable="refinement"; the
# paper trains it only jointly, where a few hundred steps at the joint learning rate left it
# worse than no refinement, issue #20), then joint fine-tuning of all four (§3.4).
RECIPE_STAGES = default.STAGES[:3] + ("refinement",) + default.STAGES[3:]

# Held-out panoramas of ../shared/data/train_hdr that no stage ever sees (with the four
# photos of ../shared/data/real_hdr they form the evaluation set of the shipped model).
# Chosen to span sun, sky, night, studio and indoor light; none is one of the duplicated
# presets (sunset.hdr, city.exr, ...) that appear twice in the folder under other names.
TEST_NAMES = (
    "aristea_wreck_puresky_1k.hdr",
    "brown_photostudio_02_1k.hdr",
    "chinese_garden_1k.hdr",
    "industrial_sunset_02_1k.hdr",
    "leadenhall_market_1k.hdr",
    "noon_grass_1k.hdr",
    "st_peters_square_night_1k.hdr",
    "vintage_measuring_lab_1k.hdr",
)

# (patch size, batch, steps, learning rate) per stage and size.
SCHEDULE = {
    "cpu": {
        "dequantization": (128, 4, 2000, 3e-4),
        "linearization": (128, 4, 2500, 1e-3),
        "hallucination": (128, 4, 1500, 3e-4),
        "refinement": (128, 4, 2000, 3e-4),
        "joint": (128, 4, 300, 3e-5),
    },
    "gpu": {
        "dequantization": (256, 32, 3000, 3e-4),
        "linearization": (256, 32, 3000, 1e-3),
        "hallucination": (256, 16, 4000, 3e-4),
        "refinement": (256, 16, 2000, 3e-4),
        "joint": (256, 16, 1500, 3e-5),
    },
    "tiny": {
        "dequantization": (32, 2, 3, 3e-4),
        "linearization": (32, 2, 3, 1e-3),
        "hallucination": (32, 2, 3, 3e-4),
        "refinement": (32, 2, 3, 3e-4),
        "joint": (32, 2, 3, 3e-5),
    },
}


def recipe_model(c):
    """The model options of the shipped model (also used by configs/joint.py to fine-tune it)."""
    c.model.lin_monotone = "clip"
    c.model.lin_coefficient_scale = 4.0
    c.model.lin_head_init = "zeros"
    c.model.lin_bn_momentum = 0.99
    # Below code 16 the curve follows DoRF's geometric-mean shape (docs/training.md, "The dark
    # end of the curve"): code 16 is the best knot cross-validated on the training files.
    c.model.lin_dark_end = "prior"
    c.model.lin_dark_end_code = 16
    c.train.freeze_encoder = True


def set_steps(c, steps: int) -> None:
    """Train for `steps`; the warm-up, logging, evaluation and checkpoint spacing follow."""
    c.train.num_steps = steps
    c.optim.warmup_steps = max(1, steps // 50)
    c.train.log_every = max(1, min(25, steps // 40))
    c.train.eval_every = max(1, steps // 10)
    c.train.checkpoint_every = max(1, steps // 10)


def get_config(arg=None):
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    if len(parts) < 2 or parts[0] not in RECIPE_STAGES or parts[1] not in SIZES:
        raise ValueError(f"configs/recipe.py needs '<stage>,<size>' with stage in {RECIPE_STAGES} "
                         f"and size in {SIZES}, got {arg!r}")
    stage, size, extra = parts[0], parts[1], parts[2:]
    c = default.base_config()
    c.stage = "joint" if stage == "refinement" else stage
    if stage == "refinement":
        c.train.trainable = "refinement"
    recipe_model(c)
    patch, batch, steps, lr = SCHEDULE[size][stage]
    c.data.patch_size = patch
    c.data.eval_patch_size = patch
    c.data.split.test_names = TEST_NAMES
    c.data.panorama.eval_views = 2
    c.data.cache_images = 96  # all 74 training panoramas stay decoded (6 MiB each)
    c.train.batch_size = batch
    c.optim.learning_rate = lr
    c.optim.schedule = "cosine"
    set_steps(c, steps)
    c.train.keep_checkpoints = 2
    c.train.image_summary_every = 0
    c.eval.num_patches = 8
    c.eval.exposure_stops = (-3.0, -1.5, 0.0, 1.5, 3.0)
    c.eval.batch_size = 8
    if size == "tiny":
        c.eval.num_patches = 2
        c.eval.exposure_stops = (-3.0, 0.0, 3.0)
    return default.apply_variants(c, ",".join(extra))
