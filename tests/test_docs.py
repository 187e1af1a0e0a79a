"""Tests for docs/design.md: the design the docstrings cite is in the repository, and every
pointer to it names a section that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"

TOP_SECTIONS = ("Algorithms", "Choices the paper leaves open", "Experimental protocol",
                "The claims", "Numerics and pitfalls")
"""Top-level headings other documents cite by name or anchor; renaming one breaks them."""

SPEC_CITATION = re.compile(r"\bSPEC\b(?!_)")
""""SPEC" as a document (the design note outside the repository), not an identifier such as
``_LATEX_SPECIAL`` or ``SPEC_X``."""

POINTER = re.compile(r"docs/design\.md,\s+'([^']+)'")
"""A pointer into the design document: ``docs/design.md, '<Section>'``."""

BEING_REWRITTEN: set[str] = set()
"""Files being rewritten elsewhere; their SPEC citations move to docs/design.md with that
rewrite. Remove them from this set once it has landed."""


def _cited_files() -> list[Path]:
    files = sorted((ROOT / "pgsom").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
    return files + [ROOT / "README.md", ROOT / "Makefile", DESIGN]


def _text(path: Path) -> str:
    """The readable text of a file, whitespace runs collapsed (so that a pointer may wrap):
    a notebook's cell sources, anything else as it is."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        raw = "\n".join("".join(c["source"]) for c in json.loads(raw)["cells"])
    return " ".join(raw.split())


def _headings() -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#+)\s+(.+?)\s*#*$", DESIGN.read_text(encoding="utf-8"), re.M)]


def test_design_has_the_cited_top_level_sections():
    top = [m.group(1).strip() for m in re.finditer(r"^##\s+(.+)$", DESIGN.read_text(encoding="utf-8"), re.M)]
    assert set(TOP_SECTIONS) <= set(top), f"missing: {sorted(set(TOP_SECTIONS) - set(top))}"


def test_nothing_cites_spec_as_a_document():
    offenders = []
    for path in _cited_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in BEING_REWRITTEN:
            continue
        for m in SPEC_CITATION.finditer(_text(path)):
            offenders.append(f"{rel}: ...{_text(path)[max(0, m.start() - 40):m.end() + 40]}...")
    assert not offenders, "cite docs/design.md, '<Section>' instead of SPEC:\n" + "\n".join(offenders)


def test_every_pointer_names_an_existing_heading():
    headings = set(_headings())
    seen, broken = 0, []
    for path in _cited_files():
        for m in POINTER.finditer(_text(path)):
            seen += 1
            if m.group(1) not in headings:
                broken.append(f"{path.relative_to(ROOT).as_posix()}: '{m.group(1)}'")
    assert seen, "no pointer to docs/design.md found: the pattern no longer matches the docstrings"
    assert not broken, f"pointers to headings that docs/design.md does not have: {broken}"


def test_readme_links_the_design():
    assert "(docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("text, cites", [
    ("see SPEC section 2", True), ("(SPEC 8: the cap)", True), ("_LATEX_SPECIAL", False),
    ("SPEC_X = 1", False), ("PolicySpec", False)])
def test_the_spec_pattern(text, cites):
    assert bool(SPEC_CITATION.search(text)) == cites


def test_the_pointer_pattern_crosses_line_breaks():
    text = " ".join("(docs/design.md,\n    'Numerics and pitfalls')".split())
    assert POINTER.findall(text) == ["Numerics and pitfalls"]
