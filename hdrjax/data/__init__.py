"""Training and evaluation data: HDR scenes/patches for the camera simulation.

Datasets (`config.name`): procedural (built in, no files), hdr_folder (any folder of
.hdr/.exr, optionally 360-degree panoramas viewed through random pinhole cameras), hdr_synth
(the reference's HDR-Synth lists) and hdr_real (HDR-Real HDR/LDR pairs).  File datasets are
prepared once as TFDS array_record files (no TensorFlow needed) and read with grain.

    config = hdrjax.data.default_config()          # nested as config.data by the trainer
    it = hdrjax.data.make_train_iterator(config, global_batch_size=8, seed=0)
    batch = next(it)                               # {"hdr": f32[8, 256, 256, 3]}
    state = it.get_state(); it.set_state(state)    # exact resume
    test = hdrjax.data.make_eval_dataset(config)   # deterministic 512² test patches

`default_config` and `DataError` import nothing heavy; the rest loads grain (and jax) on
first use, so config files can import this package cheaply.
"""
import importlib

from hdrjax.data.config import DATASETS, DataError, default_config, validate_config

_LAZY = {
    "make_train_iterator": "hdrjax.data.pipeline",
    "make_eval_dataset": "hdrjax.data.pipeline",
    "record_source": "hdrjax.data.pipeline",
    "procedural_scene": "hdrjax.data.procedural",
    "ProceduralSource": "hdrjax.data.procedural",
    "render_view": "hdrjax.data.panorama",
    "random_view_params": "hdrjax.data.panorama",
    "view_rays": "hdrjax.data.panorama",
    "equirect_coords": "hdrjax.data.panorama",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hdrjax.data' has no attribute {name!r}")


def prepare(config):
    """Prepare the TFDS dataset of the `data` config (file datasets) and return its builder."""
    from hdrjax.data import builders  # tensorflow_datasets is imported only when used

    validate_config(config)
    if config.name == "procedural":
        raise DataError("config.data.name: procedural scenes need no preparation")
    return builders.prepare(config)


__all__ = ["DATASETS", "DataError", "default_config", "validate_config", "prepare", *_LAZY]
