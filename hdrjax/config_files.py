"""Helpers for the experiment config files in configs/ (loaded by path, not as a package)."""
import importlib.util
import pathlib


def load_sibling_config(config_file, name: str = "default.py"):
    """Load the config module `name` that lies beside `config_file` (e.g. the shared base)."""
    path = pathlib.Path(config_file).with_name(name)
    spec = importlib.util.spec_from_file_location(f"hdrjax_configs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def get_config(name: str, arg: str | None = None):
    """`configs/<name>.py`'s get_config(arg), loaded by path (experiments and tests)."""
    path = CONFIGS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"hdrjax_configs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)
