"""Joint fine-tuning of all four networks + the Refinement-Net, loss on R vs the HDR (§3.4).

  python -m hdrjax.main --config=configs/joint.py --workdir=runs/joint
  # from your own stage runs (each a workdir of an earlier stage training):
  python -m hdrjax.main --config=configs/joint.py --workdir=runs/joint \
      --config.init.dequantization=runs/deq --config.init.linearization=runs/lin \
      --config.init.hallucination=runs/hal --config.init.refinement=
  # every network from scratch:
  python -m hdrjax.main --config=configs/joint.py:scratch --workdir=runs/joint

The paper's joint stage starts from trained stages, so by default all four networks start
from the model shipped in hdrjax/weights/default (`init.<net>="default"`), with that model's
options (configs/recipe.recipe_model: the "clip" curve projection, the scaled PCA head, the
frozen VGG16 encoder) and its BatchNorm statistics (`train.batch_norm="frozen"`).  The
reference fine-tunes on HDR-Real pairs; by default we fine-tune
on the synthetic pipeline (target = the exposed HDR X); `data.name=hdr_real` uses real pairs.
Variants (`:smoke`, `:cpu`, `:dorf`, `:scratch`, comma-separated) are in configs/default.py.
"""

from hdrjax.configs import default  # the shared base
from hdrjax.configs import recipe
from hdrjax.models import build


def get_config(arg=None):
    """Reference joint fine-tuning settings (§3.4: Adam 1e-5, 100k steps, batch 8) from the shipped model."""
    c = default.base_config()
    c.stage = "joint"
    c.optim.learning_rate = 1e-5  # §3.4
    c.train.num_steps = 100_000  # §3.4
    recipe.recipe_model(c)  # the shipped model's options, so its weights fit
    # Ours (the reference: "batch"): BatchNorm keeps the shipped model's running averages.
    # Moving them towards the procedural scenes' statistics was what made a short run worse:
    # 40 steps took the shipped output from 21.35 to 21.25 dB on the held-out evaluation, and
    # the same weights with the shipped statistics put back scored 21.37 (docs/training.md).
    c.train.batch_norm = "frozen"
    for net in build.NETWORKS:
        c.init[net] = "default"
    return default.apply_variants(c, arg)
