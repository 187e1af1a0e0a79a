"""make verify's comparison: byte-identical files, differing ones, missing and extra files, and
the claims whose verdict changed (on constructed trees whose answer is known)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pgsom import verify

HEADER = "claim,statement,paper_value,protocol,estimate,verdict,verdict_paper_protocol\n"


def claims(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_compare_files_sorts_identical_differing_missing_and_extra(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    base = claims("C1,s,,overall,,not supported,inconclusive", "C1,row,,powered,1.5,supported,")
    write(old, {"paper/a.csv": "x\n1\n", "paper/claims.csv": base, "figures/f.png": b"\x89PNG1",
                "paper/gone.md": "old"})
    write(new, {"paper/a.csv": "x\n1\n", "figures/f.png": b"\x89PNG2", "figures/new.pdf": b"%PDF",
                "paper/notebooks/x.ipynb": "{}",  # exempt: never compared, never extra
                "paper/claims.csv": claims("C1,s,,overall,,supported,inconclusive",
                                           "C1,row,,powered,1.6,supported,")})
    committed = ["figures/f.png", "paper/a.csv", "paper/claims.csv", "paper/gone.md"]
    result = verify.compare_files(committed, old, new)
    assert result.identical == ["paper/a.csv"]
    assert result.differ == ["figures/f.png", "paper/claims.csv"]
    assert result.missing == ["paper/gone.md"] and result.extra == ["figures/new.pdf"]
    assert result.verdicts == ["C1 (overall): verdict 'not supported' -> 'supported'"]
    assert not result.ok
    text = result.report()
    assert text.splitlines()[0] == "1 files identical, 4 differ"
    assert "differs:       figures/f.png" in text and "C1 (overall)" in text


def test_identical_trees_are_ok(tmp_path):
    files = {"paper/t.md": "| a |\n", "figures/g.png": b"\x00\x01"}
    write(tmp_path / "a", files)
    write(tmp_path / "b", files)
    result = verify.compare_files(sorted(files), tmp_path / "a", tmp_path / "b")
    assert result.ok and result.report().startswith("2 files identical, 0 differ")


def test_claims_csv_with_only_numbers_changed_reports_no_verdict_change(tmp_path):
    a = claims("C2,row,,powered,0.5,supported,")
    b = claims("C2,row,,powered,0.6,supported,")
    assert verify.verdict_changes(a, b) == []
    assert verify.verdict_changes(a, HEADER) == ["C2 (powered: row): row removed"]
    changed = verify.verdict_changes(a, claims("C2,row,,powered,0.6,supported,unreliable"))
    assert changed == ["C2 (powered: row): verdict_paper_protocol '' -> 'unreliable'"]


def test_committed_outputs_are_tracked_paper_and_figure_files_without_executed_notebooks():
    files = verify.committed_outputs()
    assert "paper/table1.csv" in files and any(f.startswith("figures/") for f in files)
    assert not any(f.startswith("paper/notebooks/") for f in files)
    tracked = subprocess.run(["git", "ls-files", "paper/notebooks"], capture_output=True, text=True,
                             cwd=verify.REPO_ROOT).stdout.split()
    assert tracked, "the executed notebooks are committed as a record"


def test_readme_section_check_detects_a_changed_table(tmp_path):
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "table1.md").write_text((verify.REPO_ROOT / "paper" / "table1.md").read_text())
    assert verify.readme_matches(tmp_path)
    (paper / "table1.md").write_text("**Table 1.** something else\n")
    assert not verify.readme_matches(tmp_path)


def test_scratch_must_not_be_the_repository(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="scratch must not be the repository root"):
        verify.verify(verify.REPO_ROOT, rebuild=True)
