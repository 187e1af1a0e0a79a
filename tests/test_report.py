"""Tests for pgsom.report: Table 1 builders against hand-computed values, README insertion."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from pgsom import report
from pgsom.variants import table1_variants

# t_{0.975, 2} = 4.302652729911275; with sd s over 3 runs the half-width is 4.30265 s / sqrt(3)
T975_2 = 4.302652729911275


def _finals() -> pd.DataFrame:
    rows = []
    # paper protocol: pg = 100, 200, 300 (mean 200, sd 100, CI 200 +- 248.41 = [-48.4, 448.4])
    for seed, v in enumerate([100.0, 200.0, 300.0]):
        rows.append(("paper", "pg", seed, v, False))
    # pg+clip_same_lr = 390, 392, 394 (mean 392, sd 2, CI 392 +- 4.97 = [387.0, 397.0])
    for seed, v in enumerate([390.0, 392.0, 394.0]):
        rows.append(("paper", "pg+clip_same_lr", seed, v, False))
    # powered protocol: pg = 10, 20, 30, NaN (one diverged run: left out of mean/sd/CI)
    for seed, v in enumerate([10.0, 20.0, 30.0, math.nan]):
        rows.append(("powered", "pg", seed, v, math.isnan(v)))
    for seed, v in enumerate([500.0, 500.0, 500.0, 500.0]):
        rows.append(("powered", "pg+clip_same_lr", seed, v, False))
    return pd.DataFrame(rows, columns=["protocol", "variant", "seed", "final_return", "diverged"])


def test_table1_frame_hand_computed():
    df = report.table1_frame(_finals())
    assert list(df["variant"]) == ["pg", "pg+clip_same_lr"]
    pg = df.iloc[0]
    assert pg["paper_table1_mean"] == 202.70 and pg["paper_table1_std"] == 23.99
    assert pg["ours_paper_n_seeds"] == 3 and pg["ours_paper_diverged"] == 0
    assert pg["ours_paper_mean"] == pytest.approx(200.0)
    assert pg["ours_paper_std"] == pytest.approx(100.0)
    half = T975_2 * 100.0 / math.sqrt(3)
    assert pg["ours_paper_ci_low"] == pytest.approx(200.0 - half)
    assert pg["ours_paper_ci_high"] == pytest.approx(200.0 + half)
    assert pg["ours_powered_n_seeds"] == 4 and pg["ours_powered_diverged"] == 1
    assert pg["ours_powered_mean"] == pytest.approx(20.0)
    assert pg["ours_powered_std"] == pytest.approx(10.0)
    attr = df.iloc[1]
    assert math.isnan(attr["paper_table1_mean"])  # the paper has no such row
    assert attr["ours_powered_std"] == 0.0
    assert attr["ours_powered_ci_low"] == attr["ours_powered_ci_high"] == 500.0


def test_table1_markdown_hand_computed():
    md = report.table1_markdown(report.table1_frame(_finals()), episodes=500)
    assert "last of 500 training episodes" in md
    row = next(line for line in md.splitlines() if line.startswith("| Policy Gradient (`pg`)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["Policy Gradient (`pg`)", "202.70 ± 23.99", "3", "200.0 ± 100.0",
                     "[-48.4, 448.4]", "4 (1 div.)", "20.0 ± 10.0", "[-4.8, 44.8]"]
    row = next(line for line in md.splitlines() if "`pg+clip_same_lr`" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["—", "3", "392.0 ± 2.0", "[387.0, 397.0]"]
    assert cells[5:] == ["4", "500.0 ± 0.0", "[500.0, 500.0]"]
    header = md.splitlines()[2]
    assert "`paper` (3 seeds)" in header and "`powered` (4 seeds)" in header


def test_table1_latex_booktabs_and_escaping():
    tex = report.table1_latex(report.table1_frame(_finals()))
    for macro in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{table}"):
        assert macro in tex
    assert r"Policy Gradient & 202.70 & 23.99 & 3 & 200.0 & 100.0 & [$-$48.4, 448.4] & 4 (1 div.) & 20.0 & 10.0 & [$-$4.8, 44.8] \\" in tex
    assert r"Policy Gradient + clip at base lr & -- & -- & 3 & 392.0 & 2.0 & [387.0, 397.0]" in tex
    body = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    assert not re.search(r"(?<!\\)_", body), "unescaped underscore in LaTeX"
    assert r"95\% CI" in body and "%" not in body.replace(r"\%", "")
    assert report.latex_escape("pg+clip_same_lr & 50% #1") == r"pg+clip\_same\_lr \& 50\% \#1"
    assert report.latex_escape("Runge–Kutta ±") == r"Runge--Kutta $\pm$"


def test_table1_csv_fixed_format():
    text = report.table1_csv(report.table1_frame(_finals()))
    lines = text.splitlines()
    assert lines[0].split(",")[:4] == ["variant", "label", "paper_table1_mean", "paper_table1_std"]
    assert lines[1].startswith("pg,Policy Gradient,202.7000,23.9900,3,0,200.0000,100.0000,-48.4138,448.4138,")
    assert ",,," in lines[2]  # no paper numbers for the attribution row: empty cells
    assert "\r" not in text and text.endswith("\n")


def test_write_table1_writes_three_files(tmp_path):
    paths = report.write_table1(report.table1_frame(_finals()), tmp_path / "paper")
    assert sorted(p.name for p in paths.values()) == ["table1.csv", "table1.md", "table1.tex"]
    assert all(p.read_text().strip() for p in paths.values())


def test_paper_table1_transcription_covers_the_papers_twelve_variants():
    assert list(report.PAPER_TABLE1) == [v.name for v in table1_variants()]
    assert report.PAPER_TABLE1["hessian+clip"] == (392.79, 0.55)
    assert report.PAPER_TABLE1["rk+clip"] == (383.09, 7.15)
    assert report.variant_label("rk+entropy") == "Runge–Kutta + entropy"
    assert report.variant_label("hessian+lr2") == "Hessian Policy Gradient + doubled lr"


def test_replace_between_markers():
    text = "head\n<!-- BEGIN OUTPUTS -->\nold\n<!-- END OUTPUTS -->\ntail\n"
    new = report.replace_between_markers(text, "new table\n")
    assert new == "head\n<!-- BEGIN OUTPUTS -->\nnew table\n<!-- END OUTPUTS -->\ntail\n"
    assert report.replace_between_markers(new, "new table") == new  # idempotent
    assert report.replace_between_markers(text, "") == "head\n<!-- BEGIN OUTPUTS -->\n<!-- END OUTPUTS -->\ntail\n"
    with pytest.raises(ValueError, match="exactly one"):
        report.replace_between_markers("no markers", "x")
    with pytest.raises(ValueError, match="exactly one"):
        report.replace_between_markers(text + "<!-- END OUTPUTS -->", "x")
    with pytest.raises(ValueError, match="comes before"):
        report.replace_between_markers("<!-- END OUTPUTS -->\n<!-- BEGIN OUTPUTS -->", "x")


def test_update_readme_touches_only_the_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n<!-- BEGIN OUTPUTS -->\n<!-- END OUTPUTS -->\n\n## Rest\nkeep\n")
    md = report.table1_markdown(report.table1_frame(_finals()))
    section = report.readme_outputs_section(md, [(("figures/a.pdf", "figures/a.png"), "notebooks/x.ipynb", "a figure")])
    assert report.update_readme(readme, section) is True
    text = readme.read_text()
    assert text.startswith("# T\n\n<!-- BEGIN OUTPUTS -->\n") and text.endswith("<!-- END OUTPUTS -->\n\n## Rest\nkeep\n")
    assert "| Policy Gradient (`pg`) | 202.70 ± 23.99 |" in text
    assert "| `figures/a.pdf`<br>`figures/a.png` | `notebooks/x.ipynb` | a figure |" in text
    assert report.update_readme(readme, section) is False  # unchanged the second time


def test_table1_frame_keeps_all_nan_variant():
    finals = pd.DataFrame({"protocol": ["paper"] * 2, "variant": ["npg"] * 2, "seed": [0, 1],
                           "final_return": [np.nan, np.nan], "diverged": [True, True]})
    df = report.table1_frame(finals)
    assert df.loc[0, "ours_paper_diverged"] == 2 and np.isnan(df.loc[0, "ours_paper_mean"])
    md = report.table1_markdown(df)
    assert "2 (2 div.) | n/a ± n/a | [n/a, n/a]" in md


def test_for_display_shows_missing_values_as_empty_cells():
    df = pd.DataFrame({"variant": ["pg", "rk"], "n": [5, 5], "median": [123.456, np.nan],
                       "mean": [1.26, 2.0]})
    shown = report.for_display(df)
    assert shown["median"].tolist() == [123.5, ""] and shown["mean"].tolist() == [1.3, 2.0]
    assert shown["n"].dtype == df["n"].dtype and shown["mean"].dtype == float
    assert "NaN" not in shown.to_html() and "nan" not in shown.to_string()
    assert np.isnan(df.loc[1, "median"])  # the frame itself is unchanged
    assert report.for_display(df, decimals=2)["median"].tolist() == [123.46, ""]
