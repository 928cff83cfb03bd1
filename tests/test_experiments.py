"""experiments/ as the README documents it: every command it names exists and starts.

The experiments are programs run from the repository root (`python -m experiments.<room>.<name>`,
or a shell script); the tests import nothing from them. Their behaviour is tested where it
matters (test_benchmark, test_default_model_scripts, test_readme, test_recipe); here: every
documented module and file exists, every module's --help runs, every shell script parses.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
# Files the documentation names that a command writes (they are not in the repository).
# weights-storage.json: experiments/default_model/weights_storage.py writes it once a float16 copy
# of the shipped weights is measured; the README's report reads it where it exists.
OUTPUTS = {"experiments/paper/ablations-run.ipynb", "experiments/results/weights-storage.json"}
MODULE = re.compile(r"python -m (experiments(?:\.\w+)*)(?=[\s`'\")]|$)")  # not a placeholder: experiments.<room>
PATH = re.compile(r"(?<![\w/.-])(experiments/[\w/.-]*\.(?:py|sh|ipynb|md|json|png|csv))\b")
# A path named with the commit that holds it (a retired script) is history, not a command.
AT_COMMIT = re.compile(r"\bat commit\b|\bat `[0-9a-f]{7}|git show [0-9a-f]{7}")


def runnable_modules() -> list[str]:
    """Every module of experiments/ that runs as `python -m` (a __main__ block or __main__.py)."""
    names = []
    for path in sorted(EXPERIMENTS.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if path.name == "__main__.py":
            names.append(".".join(parts[:-1]))
        elif 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            names.append(".".join(parts))
    return names


def documenting_files():
    yield from (ROOT / name for name in ("README.md", "DESIGN.md"))
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "configs").glob("*.py"))
    yield from sorted((ROOT / "hdrjax").rglob("*.py"))
    for path in sorted(EXPERIMENTS.rglob("*")):
        if path.suffix in (".py", ".sh", ".md", ".ipynb") and "results" not in path.parts:
            yield path


def test_every_documented_experiment_command_and_file_exists():
    modules = set(runnable_modules())
    missing = []
    for doc in documenting_files():
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{doc.relative_to(ROOT)}:{n}"
            for name in MODULE.findall(line):
                if name not in modules:
                    missing.append(f"{where}: python -m {name}")
            if AT_COMMIT.search(line):
                continue
            for rel in PATH.findall(line):
                if rel not in OUTPUTS and not (ROOT / rel).exists():
                    missing.append(f"{where}: {rel}")
    assert missing == []


def test_every_experiment_module_starts_and_answers_help(env):
    modules = runnable_modules()
    assert {"experiments.benchmark", "experiments.default_model.train", "experiments.paper.ablations",
            "experiments.readme_tables"} <= set(modules)
    # One process for all: each module runs as `python -m <module> --help` would run it.
    code = (
        "import runpy, sys\n"
        "for name in sys.argv[1:]:\n"
        "    print('@@ ' + name, flush=True)\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        runpy.run_module(name, run_name='__main__', alter_sys=True)\n"
        "    except SystemExit as e:\n"
        "        if e.code not in (0, None):\n"
        "            raise\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *modules], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    helps = dict(part.split("\n", 1) for part in proc.stdout.split("@@ ")[1:])
    assert sorted(helps) == sorted(modules)
    for name, text in helps.items():
        assert text.lstrip().startswith("usage:"), f"{name}: {text[:300]}"


def test_every_shell_script_parses():
    scripts = sorted(EXPERIMENTS.rglob("*.sh")) + [ROOT / ".ci" / "run"]
    assert len(scripts) >= 5
    # The repository root, from experiments/lib.sh: one folder up.
    assert 'ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"' in (EXPERIMENTS / "lib.sh").read_text()
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
        text = script.read_text()
        # A script in experiments/<room>/ (not a sourced helper: those have no #!) gets ROOT and
        # PY from lib.sh, one folder up from its own.
        if script.parent.parent == EXPERIMENTS and text.startswith("#!"):
            assert '. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"' in text, script
        # Sourced helpers are named from that root.
        for helper in re.findall(r'\. "\$ROOT/([\w/.-]+)"', text):
            assert (ROOT / helper).is_file(), f"{script.name} sources {helper}, which does not exist"
