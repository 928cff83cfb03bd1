"""README.md's numbers come from committed result files.

Two rules, both checked here:
1. Every generated block (`<!-- NAME:begin -->` … `<!-- NAME:end -->`) is exactly what
   `python -m experiments.readme_tables` makes from the files under experiments/results/
   (its `--check`, run here as a program).
2. Outside the blocks, a paragraph (or table, or code block) with a measured figure — a
   number with a unit of time, memory, throughput or share (`s`, `min`, `GB`, `images/s`,
   `GFLOP/s`, `%`, ...) or a ratio (`1.3×`, `× 0.56`) — names the result file it comes from
   (`experiments/results/...`). Shapes (`8 × 256²`, `1920×1080`) are not ratios. A few
   figures are settings or definitions, not measurements; they are listed in SETTINGS with
   the reason, and nothing else is exempt.
"""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^<!-- ([a-z0-9-]+):begin -->\n(.*?)^<!-- \1:end -->$", re.M | re.S)

# Figures in README.md that are settings, definitions or arithmetic on settings, not
# measurements: (text as it appears, why it needs no result file).
SETTINGS = {
    "> 50 % gray pixels": "the evaluation protocol's exclusion rule (hdrjax/evaluation/protocol.py), a setting",
    "0.1 %/99.9 %": "the authors' normalisation percentiles, a definition",
    "0.1 %-lowest": "the authors' normalisation, a definition",
    "0.1 %-highest": "the authors' normalisation, a definition",
    "(100 s)": "the default of parallel.heartbeat_timeout_secs, a setting",
    "sized for about 10 minutes": "the accelerator recipe's time budget, a target (the script has not run on a GPU)",
}

UNIT = re.compile(
    r"(?<![\w.])\d[\d,.]*(?:[–-]\d[\d,.]*)?\s?"
    r"(?:%|s\b|ms\b|min\b|h\b|seconds?\b|minutes?\b|hours?\b|days?\b|weeks?\b|GB\b|MB\b|GiB\b|MiB\b|kB\b"
    r"|images/s|img/s|GFLOP/s|GB/s|TFLOP\b|GFLOP\b|FLOP/byte|FLOP per byte)"
)
# A ratio: a number right before × that is not followed by another number (1.03×, 20× the
# forward's), or × right before a decimal number that follows no number (time × 0.56).
# Counts and shapes are not ratios: `8 × 256²`, `1920×1080`, `curves × 7 exposures`.
RATIO = re.compile(r"(?<![\w.])\d[\d.]*\s?×(?!\s?\d)|(?<![\d²³])\s×\s?\d+\.\d+")


def measured_figures(line: str) -> list[str]:
    for text in SETTINGS:
        line = line.replace(text, " ")
    return [m.group(0) for m in UNIT.finditer(line)] + [m.group(0) for m in RATIO.finditer(line)]


def paragraphs(lines: list[str], skip: set[int]) -> list[list[int]]:
    """Line numbers grouped into paragraphs: blank lines separate them, a fenced code block is one."""
    out, current, fenced = [], [], False
    for i, line in enumerate(lines):
        if i in skip:
            if current:
                out.append(current)
                current = []
            continue
        if line.startswith("```"):
            fenced = not fenced
            current.append(i)
            if not fenced:
                out.append(current)
                current = []
            continue
        if not line.strip() and not fenced:
            if current:
                out.append(current)
                current = []
            continue
        current.append(i)
    if current:
        out.append(current)
    return out


def block_lines(text: str) -> set[int]:
    """0-based numbers of the lines of every generated block, its marker lines included."""
    inside = set()
    for m in BLOCK.finditer(text):
        first = text.count("\n", 0, m.start())
        inside.update(range(first, first + m.group(0).count("\n") + 1))
    return inside


def uncited_figures(text: str) -> list[str]:
    """'line N: figures' for every measured figure outside the blocks whose paragraph cites no result file."""
    lines = text.splitlines()
    inside = block_lines(text)
    found = []
    for para in paragraphs(lines, inside):
        if any("experiments/results/" in lines[i] for i in para):
            continue
        for i in para:
            figures = measured_figures(lines[i])
            if figures:
                found.append(f"line {i + 1}: {', '.join(figures)}: {lines[i].strip()[:100]}")
    return found


def test_every_generated_block_is_what_the_result_files_give(run_module):
    proc = run_module("experiments.readme_tables", "--check", timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_every_measured_figure_outside_the_blocks_names_its_result_file():
    found = uncited_figures(README.read_text())
    assert not found, ("README.md: measured figures outside the generated blocks, in a paragraph that names no "
                       "experiments/results/ file:\n" + "\n".join(found))


def test_every_setting_exemption_is_still_used():
    text = README.read_text()
    unused = [s for s in SETTINGS if s not in text]
    assert not unused, f"SETTINGS entries no longer in README.md (remove them): {unused}"


def test_the_figure_rule_catches_what_it_should():
    assert measured_figures("a step takes 3.4 s and 0.9 GB") == ["3.4 s", "0.9 GB"]
    assert measured_figures("0.62× as fast, time × 0.56") == ["0.62×", " × 0.56"]
    assert measured_figures("batch 8 × 256² on 1920×1080 photos") == []
    assert measured_figures("78 % of the FLOPs at 88 GFLOP/s, 2.3 images/s") == ["78 %", "88 GFLOP/s", "2.3 images/s"]
    assert measured_figures("stage 2 of 4, 500k steps, 10 curves × 7 exposures, stretch to ×64") == []
    text = "A paragraph with a figure: 3 s.\n\nAnother: 5 GB (experiments/results/x.json).\n"
    assert uncited_figures(text) == ["line 1: 3 s: A paragraph with a figure: 3 s."]
    text = "<!-- x:begin -->\n3 s\n<!-- x:end -->\n"
    assert uncited_figures(text) == []


def test_a_changed_number_in_a_block_is_caught(stale_block_check):
    readme, proc = stale_block_check(README, "benchmark-cpu", "| 512×512", "experiments.readme_tables")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{readme}: stale generated block(s): benchmark-cpu;"), proc.stderr


def test_the_block_rule_finds_the_blocks():
    text = "a 3 s\n<!-- x:begin -->\n3 s\n\n4 s\n<!-- x:end -->\nb\n"
    assert block_lines(text) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("name", ["default-model", "benchmark-cpu", "benchmark-changes", "regions-benchmark",
                                  "train-steps"])
def test_each_block_names_its_result_file(name):
    # The README's blocks are what the result files give (the --check above), so their text is checked here.
    blocks = {m.group(1): m.group(2) for m in BLOCK.finditer(README.read_text())}
    assert "experiments/results/" in blocks[name].split("\n\n")[0]
