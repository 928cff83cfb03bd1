"""Documentation that stays true: every section the code cites exists in docs/reference.md."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
CITATION = re.compile(r"§\s?(\d+(?:\.\d+)*)")


def _sections():
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#+ §(\d+(?:\.\d+)*)\b", text, flags=re.M))


def _citing_files():
    for folder in ("hdrjax", "experiments", "tests", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".sh") and path.name not in ("reference.md", "test_docs.py"):
                yield path
    yield from (ROOT / name for name in ("README.md", "DESIGN.md"))


def test_every_cited_section_is_in_docs_reference():
    sections = _sections()
    assert {"1", "1.7", "2.2.4", "3.4", "9"} <= sections  # the headings are parsed at all
    missing = []
    for path in _citing_files():
        for number, line in ((m.group(1), n) for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                             for m in CITATION.finditer(text)):
            if number.rstrip(".") not in sections:
                missing.append(f"{path.relative_to(ROOT)}:{line}: §{number}")
    assert missing == []


def test_no_citation_points_outside_the_repository():
    stale = [str(p.relative_to(ROOT)) for p in _citing_files()
             if "reference-spec" in p.read_text(encoding="utf-8") or "shared/design" in p.read_text(encoding="utf-8")]
    assert stale == []
