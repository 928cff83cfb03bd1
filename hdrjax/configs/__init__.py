"""Training configs: one module per experiment, each with `get_config(arg)` (flax-examples style).

    python -m hdrjax.main --config=joint:cpu --workdir=runs/joint        # a name from NAMES
    python -m hdrjax.main --config=hdrjax/hdrjax/configs/joint.py:cpu ...      # or the file's path

The modules are a package, so code imports them (`hdrjax.configs.get_config("joint", "smoke")`)
and the command line loads the same files by path (ml_collections.config_flags).  `default.py`
holds the reference settings and the variants every config accepts after the colon.
"""
import importlib
import pathlib

FOLDER = pathlib.Path(__file__).resolve().parent
# Experiment configs in the order a newcomer meets them; `default` is the shared base.
NAMES = ("dequantization", "linearization", "hallucination", "joint", "recipe", "default")


def module(name: str):
    """The config module `hdrjax.configs.<name>`; ValueError naming the known ones otherwise."""
    if name not in NAMES:
        raise ValueError(f"unknown config {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"hdrjax.configs.{name}")


def get_config(name: str, arg: str | None = None):
    """`hdrjax/hdrjax/configs/<name>.py`'s get_config(arg): the ConfigDict the command line would build."""
    return module(name).get_config(arg)


def path(name: str) -> pathlib.Path:
    """The file of config `name` (what `--config=<name>` stands for on the command line)."""
    module(name)
    return FOLDER / f"{name}.py"


def summary(name: str) -> str:
    """The first line of a config module's docstring."""
    return (module(name).__doc__ or "").strip().splitlines()[0]
