"""docs/training.md's error-budget tables are what experiments/error_budget_report.py makes of the
committed evaluation (experiments/results/default-model-eval/, `--error-budget`)."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))


def test_every_generated_block_is_what_the_result_files_give():
    import error_budget_report
    import readme_tables

    assert not readme_tables.stale_blocks(error_budget_report.DOC, error_budget_report.blocks), (
        "docs/training.md has stale generated blocks: run python experiments/error_budget_report.py --write")


def test_each_block_names_its_result_file():
    import error_budget_report

    for name, text in error_budget_report.blocks().items():
        assert "experiments/results/default-model-eval/" in text.split("\n\n")[0], name


def test_a_changed_number_in_a_block_is_caught(tmp_path):
    import error_budget_report
    from test_readme import stale_after_edit

    assert stale_after_edit(error_budget_report.DOC, "error-budget", "| deep shadow", tmp_path,
                            error_budget_report.blocks) == ["error-budget"]
