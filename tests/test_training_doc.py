"""docs/training.md's error-budget tables are what experiments/default_model/error_budget.py makes
of the committed evaluation (experiments/results/default-model-eval/, `--error-budget`)."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "training.md"
MODULE = "experiments.default_model.error_budget"


def test_every_generated_block_is_what_the_result_files_give(run_module):
    proc = run_module(MODULE, "--check", timeout=300)
    assert proc.returncode == 0, f"docs/training.md has stale generated blocks: run python -m {MODULE} --write\n" \
                                 + proc.stderr


def test_each_block_names_its_result_file():
    text = DOC.read_text()
    for name in ("error-budget", "speckle", "lin-curve", "lin-loss-ab"):
        body = text.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
        assert "experiments/results/" in body.strip().split("\n\n")[0], name


def test_a_changed_number_in_a_block_is_caught(stale_block_check):
    doc, proc = stale_block_check(DOC, "error-budget", "| deep shadow", MODULE)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{doc}: stale generated block(s): error-budget;"), proc.stderr
