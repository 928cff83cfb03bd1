"""Training configs: one file per experiment, each with `get_config(arg)` (flax-examples style).

    python -m hdrjax.main --config=configs/joint.py            # the project's command, from the repo root
    python -m hdrjax.main --config=joint:cpu                    # a name from NAMES, from anywhere

This folder is the top-level `configs/` of the repository, where a researcher opens and copies
an experiment; setup.py installs it as the package `hdrjax.configs` (package_dir), so code
imports the same files (`hdrjax.configs.get_config("joint", "smoke")`) and `--config=<name>`
works after any install.  `default.py` holds the reference settings and the variants every
config accepts after the colon.
"""
import importlib
import importlib.util
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
    """`configs/<name>.py`'s get_config(arg): the ConfigDict the command line would build."""
    return module(name).get_config(arg)


def path(name: str) -> pathlib.Path:
    """The file of config `name` (what `--config=<name>` stands for on the command line)."""
    module(name)
    return FOLDER / f"{name}.py"


def summary(name: str) -> str:
    """The first line of a config module's docstring."""
    return (module(name).__doc__ or "").strip().splitlines()[0]


def load_file(value: str):
    """`--config`'s value `PATH[:arg]` → the ConfigDict its get_config(arg) builds.

    Raises hdrjax.errors.ConfigError naming the file and what is wrong (missing, fails to
    import, no get_config, get_config fails), so the command line can print one line.
    """
    from hdrjax.errors import ConfigError

    file, _, arg = value.partition(":")
    p = pathlib.Path(file)
    if not p.is_file():
        raise ConfigError(f"{file}: no such config file (configs: {', '.join(NAMES[:-1])}, "
                          "or the path of a .py file with get_config)")
    spec = importlib.util.spec_from_file_location(f"_hdrjax_config_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{file}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # any failure of a user's file is reported, not raised
        raise ConfigError(f"{file}: fails to import: {type(e).__name__}: {e}") from e
    if not callable(getattr(mod, "get_config", None)):
        raise ConfigError(f"{file}: has no get_config(arg) function")
    try:
        return mod.get_config(arg or None) if arg else mod.get_config()
    except Exception as e:  # e.g. an unknown variant: ValueError from the file
        raise ConfigError(f"{file}: get_config({arg!r}) failed: {type(e).__name__}: {e}") from e
