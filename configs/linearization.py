"""Stage 2: Linearization-Net, input L (continuous LDR), targets Xc and the GT inverse CRF (§1.6).

  python -m hdrjax.main --config=configs/linearization.py --workdir=runs/lin
Variants (`:smoke`, `:cpu`, `:dorf`, comma-separated) are described in configs/default.py.
"""

from hdrjax.configs import default  # the shared base


def get_config(arg=None):
    """Reference stage-wise settings for the Linearization-Net (§3.1)."""
    c = default.base_config()
    c.stage = "linearization"
    return default.apply_variants(c, arg)
