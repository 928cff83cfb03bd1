"""Stage 3: Hallucination-Net, input Xc (clipped linear), target X (exposed HDR) (§1.6, §3.2).

  python -m hdrjax.main --config=configs/hallucination.py --workdir=runs/hal
Variants (`:smoke`, `:cpu`, `:dorf`, comma-separated) are described in configs/default.py.
"""

from hdrjax.configs import default  # the shared base


def get_config(arg=None):
    """Reference stage-wise settings for the Hallucination-Net (§3.1; VGG encoder init §2.3)."""
    c = default.base_config()
    c.stage = "hallucination"
    return default.apply_variants(c, arg)
