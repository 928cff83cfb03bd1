"""Stage 1: Dequantization-Net, input J (JPEG LDR), target L (continuous LDR) (§1.6, §3.1-3.2).

  python -m hdrjax.main --config=configs/dequantization.py --workdir=runs/deq
Variants (`:smoke`, `:cpu`, `:dorf`, comma-separated) are described in configs/default.py.
"""

from hdrjax.configs import default  # the shared base


def get_config(arg=None):
    """Reference stage-wise settings for the Dequantization-Net (§3.1)."""
    c = default.base_config()
    c.stage = "dequantization"
    return default.apply_variants(c, arg)
