"""Rules of the test suite and of CI that a change could break without any test failing.

* Test modules share fixtures through tests/conftest.py only: none imports another test
  module or conftest, and nothing in tests/ or experiments/ edits `sys.path`.
* A DeprecationWarning that hdrjax's own code triggers fails the test (pytest.ini).
* CI (.ci/run) runs the README's test command: install, lint, fast tier, slow tier.
"""
import ast
import pathlib
import re
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_test_module_imports_another_or_conftest():
    local = {p.stem for p in (ROOT / "tests").glob("*.py")}
    found = []
    for path in _python_files("tests"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in local]
    assert found == []


def test_nothing_edits_sys_path():
    found = [f"{p.relative_to(ROOT)}:{n}" for p in _python_files("tests", "experiments", "configs")
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"sys\.path\.(insert|append|extend)|sys\.path\s*=", line)]
    assert found == []


def _warn_from(module_name: str):
    """Call warnings.warn(DeprecationWarning) from code whose module is `module_name`."""
    namespace = {"__name__": module_name, "warnings": warnings}
    exec("def old():\n    warnings.warn('old API', DeprecationWarning)\n", namespace)
    namespace["old"]()


def test_hdrjax_deprecations_are_errors_and_others_are_shown():
    with pytest.raises(DeprecationWarning, match="old API"):
        _warn_from("hdrjax.some_module")
    with pytest.warns(DeprecationWarning, match="old API"):
        _warn_from("some_library")


def _commands(text: str) -> list[str]:
    return [c.strip() for c in text.split("&&")]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    line = next(line for line in block.splitlines() if "pip install -e \".[test]\"" in line)
    readme_steps = _commands(line)
    assert readme_steps[:3] == ["python3 -m venv .venv", ". .venv/bin/activate", 'pip install -e ".[test]"']
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    install = ci.index('pip install -q -e ".[test]"')
    assert ci[install + 1:] == readme_steps[3:]
    assert readme_steps[3:] == ["ruff check .", 'python -m pytest -q -m "not slow"', "python -m pytest -q -m slow"]
