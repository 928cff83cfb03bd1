"""What every command line shares: --help, config names, one error base class, one message style."""
import importlib
import inspect
import logging
import pathlib
import pkgutil
import subprocess
import sys
import warnings

import pytest

import hdrjax
from hdrjax import cli, configs
from hdrjax.errors import HdrjaxError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_main_help_lists_configs_and_variants_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "hdrjax.main", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("dequantization", "linearization", "hallucination", "joint", "recipe"):
        assert f"  configs/{name}.py " in proc.stdout
    for variant in ("smoke", "cpu", "dorf", "scratch"):
        assert f"  {variant} " in proc.stdout
    assert "--config.<section>.<field>=<value>" in proc.stdout


def test_config_names_resolve_to_the_package_files():
    from hdrjax.main import resolve_config_argument

    argv = resolve_config_argument(["prog", "--config=joint:smoke,dorf", "--workdir", "w"])
    assert argv[1] == f"--config={configs.path('joint')}:smoke,dorf"
    assert resolve_config_argument(["prog", "--config", "dequantization"])[2] == str(configs.path("dequantization"))
    # A path (or an unknown name) is left for ml_collections to load or to reject.
    assert resolve_config_argument(["prog", "--config=my/exp.py:x"])[1] == "--config=my/exp.py:x"
    assert resolve_config_argument(["prog", "--config=nope"])[1] == "--config=nope"


def test_configs_package_builds_every_config():
    for name in ("dequantization", "linearization", "hallucination", "joint"):
        assert configs.get_config(name, "smoke").stage == name
    assert configs.get_config("recipe", "hallucination,tiny").stage == "hallucination"
    with pytest.raises(ValueError, match="unknown config 'nope'"):
        configs.get_config("nope")


def test_every_error_class_a_user_can_fix_is_a_hdrjax_error():
    errors = []
    for info in pkgutil.walk_packages(hdrjax.__path__, "hdrjax."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and not issubclass(obj, Warning)
                    and obj.__module__ == module.__name__):
                errors.append(obj)
    assert len(errors) >= 15
    not_ours = [e.__qualname__ for e in errors if not issubclass(e, HdrjaxError)]
    assert not_ours == [], not_ours


def test_console_entry_points_name_real_functions():
    text = (ROOT / "setup.py").read_text()
    scripts = [line.strip().strip('",') for line in text.splitlines() if line.strip().startswith('"hdrjax-')]
    assert len(scripts) >= 6
    for script in scripts:
        name, target = (s.strip() for s in script.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), script


def test_warnings_and_errors_print_as_one_line(capsys):
    cli.configure_logging()  # conftest's autouse fixture restores logging and warnings after the test
    logging.getLogger("hdrjax.anything").info("progress")
    warnings.warn("a file had NaNs", UserWarning)
    code = cli.fail(HdrjaxError("photo.png: not an image\nsecond line"))
    err = capsys.readouterr().err.splitlines()
    assert err == ["progress", "warning: a file had NaNs", "error: photo.png: not an image second line"]
    assert code == cli.ERROR_EXIT == 1


# ------------------------------------------------------------------ the module map of DESIGN.md
# DESIGN.md's map names the layers, bottom to top, and what belongs to each: a folder under
# hdrjax/ (`training/`), a module at the package root (`predict`) or the top-level configs/
# (installed as hdrjax.configs).  The tree and the map must say the same thing.


def _module_map():
    """{folder or root module of the package: layer index} from DESIGN.md's table."""
    import re

    text = (ROOT / "DESIGN.md").read_text()
    table = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    layers, layer = {}, -1
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        if cells[0]:
            layer += 1
        for name in re.findall(r"`([a-z_]+/?)`", cells[1]):
            assert name.rstrip("/") not in layers, f"DESIGN.md's map names {name} twice"
            layers[name.rstrip("/")] = layer
    return layers


def _imports(path):
    """Every hdrjax module `path` imports, dotted (`from a import b` gives a and a.b)."""
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hdrjax":
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "hdrjax")


def _owner(module: str) -> str | None:
    """The folder or root module of the package that a dotted hdrjax module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _package_modules():
    """(path, owner, name shown) of every module of the installed package: hdrjax/ and the
    top-level configs/, which setup.py installs as hdrjax.configs."""
    for path in sorted((ROOT / "hdrjax").rglob("*.py")):
        rel = path.relative_to(ROOT / "hdrjax")
        yield path, (rel.parts[0] if len(rel.parts) > 1 else rel.stem), f"hdrjax/{rel}"
    for path in sorted((ROOT / "configs").glob("*.py")):
        yield path, "configs", f"configs/{path.name}"


def test_the_map_and_the_tree_name_the_same_folders_and_modules():
    layers = _module_map()
    assert "configs" in layers and "main" in layers
    in_tree = {owner for _, owner, _ in _package_modules()} - {"__init__"}
    assert sorted(in_tree - set(layers)) == [], "in the tree, not in DESIGN.md's module map"
    assert sorted(set(layers) - in_tree) == [], "in DESIGN.md's module map, not in the tree"
    # Folder = layer: a root module is an entry point or one of the few base modules.
    root = {p.stem for p in (ROOT / "hdrjax").glob("*.py")} - {"__init__"}
    entry = max(layers.values())
    assert {m for m in root if layers[m] not in (0, entry)} <= {"predict"}, "root modules must be base or entry points"


def test_no_module_imports_from_a_layer_above():
    layers = _module_map()
    upward = []
    for path, owner, shown in _package_modules():
        if owner == "__init__":
            continue
        mine = layers["main"] if path.stem == "__main__" else layers[owner]
        for module in set(_imports(path)):
            imported = _owner(module)
            if imported in layers and layers[imported] > mine:
                upward.append(f"{shown} imports {module}")
    assert sorted(upward) == []


def test_only_the_training_entry_point_imports_the_training_loop():
    users = [shown for p, _, shown in _package_modules() if "hdrjax.training.loop" in set(_imports(p))]
    assert users == ["hdrjax/main.py"]


def test_long_files_say_why_in_the_map():
    allowed = (ROOT / "DESIGN.md").read_text().split("Files over ~600 lines:", 1)[1].split("\n")[0]
    long = [str(p.relative_to(ROOT / "hdrjax")) for p in (ROOT / "hdrjax").rglob("*.py")
            if len(p.read_text().splitlines()) > 620]
    assert [f for f in long if f"`{f}`" not in allowed] == []
