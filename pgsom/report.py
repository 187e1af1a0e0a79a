"""Reports: Table 1 (csv, markdown, LaTeX booktabs) and the README's generated section.

:data:`PAPER_TABLE1` holds the paper's own Table 1 numbers (final-episode return, mean and
std over 5 seeds), transcribed by hand in :mod:`pgsom.paper` (with the text's claims, the one
home of the paper's numbers) and re-exported here; they are labelled as the paper's wherever
they are shown. Every other number comes from :func:`table1_frame` over the runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.paper import PAPER_TABLE1, PAPER_TABLE1_SEEDS
from pgsom.store import write_text_atomic
from pgsom.variants import METHOD_LABELS, STABILISER_LABELS, lookup

__all__ = [
    "PAPER_TABLE1", "METHOD_LABELS", "STABILISER_LABELS", "variant_label", "table1_frame",
    "table1_csv", "table1_markdown", "table1_latex", "write_table1", "latex_escape",
    "replace_between_markers", "update_readme", "outputs_markdown", "readme_outputs_section",
    "README_BEGIN", "README_END", "for_display",
]

README_BEGIN = "<!-- BEGIN OUTPUTS -->"
README_END = "<!-- END OUTPUTS -->"


def variant_label(variant: str) -> str:
    """``pg+clip`` -> ``Policy Gradient + clip`` (the paper's naming): the label of the known
    variant displayed as ``variant`` (:attr:`pgsom.variants.Variant.label`)."""
    return lookup(variant).label


# --------------------------------------------------------------------------- Table 1


def table1_frame(finals: pd.DataFrame, protocols: Sequence[str] | None = None, *,
                 level: float = 0.95, value: str = "final_return") -> pd.DataFrame:
    """Table 1 as a wide frame: one row per variant (in order of first appearance).

    Columns: ``variant``, ``label``, ``paper_table1_mean``, ``paper_table1_std`` (the paper's
    own numbers, :data:`PAPER_TABLE1`; empty for variants the paper does not have), then per
    protocol ``p``: ``ours_p_n_seeds`` (runs), ``ours_p_diverged`` (runs without a final
    return), ``ours_p_mean``, ``ours_p_std`` (ddof 1), ``ours_p_ci_low``, ``ours_p_ci_high``
    (Student-t CI of the mean at ``level``) of ``value`` over the runs that have one.
    """
    if protocols is None:
        protocols = list(dict.fromkeys(finals["protocol"]))
    variants = list(dict.fromkeys(finals["variant"]))
    rows = []
    for v in variants:
        paper = PAPER_TABLE1.get(v, (math.nan, math.nan))
        row = {"variant": v, "label": variant_label(v), "paper_table1_mean": paper[0],
               "paper_table1_std": paper[1]}
        for p in protocols:
            x = finals.loc[(finals["protocol"] == p) & (finals["variant"] == v), value].to_numpy(float)
            ci = stats.ci_t(x, level) if x.size else None
            s = stats.summary(x) if x.size else None
            row.update({
                f"ours_{p}_n_seeds": int(x.size),
                f"ours_{p}_diverged": int(np.isnan(x).sum()),
                f"ours_{p}_mean": s.mean if s else math.nan,
                f"ours_{p}_std": s.std if s else math.nan,
                f"ours_{p}_ci_low": ci.low if ci else math.nan,
                f"ours_{p}_ci_high": ci.high if ci else math.nan,
            })
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["protocols"] = list(protocols)
    df.attrs["level"] = level
    return df


def _protocols(df: pd.DataFrame) -> list[str]:
    return df.attrs.get("protocols") or [c[len("ours_"): -len("_n_seeds")] for c in df.columns
                                         if c.startswith("ours_") and c.endswith("_n_seeds")]


def _num(x: float, decimals: int) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{decimals}f}"


def _n_text(n: int, diverged: int) -> str:
    return f"{n}" if not diverged else f"{n} ({diverged} div.)"


def _seeds(df: pd.DataFrame, p: str) -> int:
    return int(df[f"ours_{p}_n_seeds"].max()) if len(df) else 0


def table1_csv(df: pd.DataFrame) -> str:
    """CSV text of :func:`table1_frame` (floats ``%.4f``, NaN empty, ``\\n`` line ends)."""
    return df.to_csv(index=False, float_format="%.4f", na_rep="", lineterminator="\n")


def _caption(df: pd.DataFrame, episodes: int | None) -> str:
    level = df.attrs.get("level", 0.95)
    budget = f"{episodes} " if episodes else ""
    return (
        f"Final-episode return (the return of the last of {budget}training episodes) per variant. "
        f"*Paper*: mean ± std as printed in the paper's Table 1 ({PAPER_TABLE1_SEEDS} seeds). "
        f"*Ours*, per protocol: n = runs (seeds), mean ± sample std, {level:.0%} Student-t CI "
        "of the mean. A diverged run (non-finite parameters) has no final return: it is "
        "counted in n as *div.* and left out of mean, std and CI. `clip` = norm 50 with the "
        "learning rate doubled (paper 4.1); *clip at base lr* and *doubled lr* are its two "
        "halves (attribution rows)."
    )


def table1_markdown(df: pd.DataFrame, *, decimals: int = 1, episodes: int | None = None) -> str:
    """Markdown Table 1 with a caption paragraph."""
    protocols = _protocols(df)
    level = df.attrs.get("level", 0.95)
    head = ["Variant", f"Paper mean ± std ({PAPER_TABLE1_SEEDS} seeds)"]
    for p in protocols:
        tag = f"`{p}` ({_seeds(df, p)} seeds)"
        head += [f"{tag}: n", f"{tag}: mean ± std", f"{tag}: {level:.0%} CI"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, r in df.iterrows():
        paper = ("—" if not np.isfinite(r["paper_table1_mean"])
                 else f"{r['paper_table1_mean']:.2f} ± {r['paper_table1_std']:.2f}")
        cells = [f"{r['label']} (`{r['variant']}`)", paper]
        for p in protocols:
            q = f"ours_{p}_"
            cells += [
                _n_text(int(r[q + "n_seeds"]), int(r[q + "diverged"])),
                f"{_num(r[q + 'mean'], decimals)} ± {_num(r[q + 'std'], decimals)}",
                f"[{_num(r[q + 'ci_low'], decimals)}, {_num(r[q + 'ci_high'], decimals)}]",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "**Table 1.** " + _caption(df, episodes) + "\n\n" + "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "–": "--", "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (``_`` -> ``\\_`` ...); en dash -> ``--``."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _tex_num(x: float, decimals: int) -> str:
    s = _num(x, decimals)
    return "--" if s == "n/a" else (f"$-${s[1:]}" if s.startswith("-") else s)


def table1_latex(df: pd.DataFrame, *, decimals: int = 1, episodes: int | None = None) -> str:
    """LaTeX Table 1 (booktabs: ``\\toprule``, ``\\midrule``, ``\\bottomrule``; needs
    ``\\usepackage{booktabs}``); every text cell escaped."""
    protocols = _protocols(df)
    level = df.attrs.get("level", 0.95)
    ncol = 3 + 4 * len(protocols)
    out = [
        "% Generated by pgsom.report.table1_latex (notebooks/ablation.ipynb); do not edit.",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{4pt}",
        r"\begin{tabular}{l" + "r" * (ncol - 1) + "}",
        r"\toprule",
    ]
    top = [" ", r"\multicolumn{2}{c}{Paper (" + str(PAPER_TABLE1_SEEDS) + " seeds)}"]
    rules = [r"\cmidrule(lr){2-3}"]
    for k, p in enumerate(protocols):
        first = 4 + 4 * k
        top.append(r"\multicolumn{4}{c}{Ours: \texttt{" + latex_escape(p) + "} ("
                   + str(_seeds(df, p)) + " seeds)}")
        rules.append(rf"\cmidrule(lr){{{first}-{first + 3}}}")
    out.append(" & ".join(top) + r" \\")
    out.append(" ".join(rules))
    sub = ["Variant", "Mean", "Std"]
    for _ in protocols:
        sub += ["$n$", "Mean", "Std", rf"{level * 100:.0f}\% CI"]
    out.append(" & ".join(sub) + r" \\")
    out.append(r"\midrule")
    for _, r in df.iterrows():
        cells = [latex_escape(r["label"]), _tex_num(r["paper_table1_mean"], 2),
                 _tex_num(r["paper_table1_std"], 2)]
        for p in protocols:
            q = f"ours_{p}_"
            n, div = int(r[q + "n_seeds"]), int(r[q + "diverged"])
            cells += [
                f"{n}" if not div else f"{n} ({div} div.)",
                _tex_num(r[q + "mean"], decimals),
                _tex_num(r[q + "std"], decimals),
                f"[{_tex_num(r[q + 'ci_low'], decimals)}, {_tex_num(r[q + 'ci_high'], decimals)}]",
            ]
        out.append(" & ".join(cells) + r" \\")
    budget = f"{episodes} " if episodes else ""
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Final-episode return (last of " + budget + r"training episodes). Paper: mean "
        r"and std as printed in its Table~1. Ours: $n$ runs, mean, sample std and "
        rf"{level * 100:.0f}\% Student-$t$ CI of the mean; diverged runs (div.) are counted "
        r"in $n$ and left out of the statistics. \emph{clip}: norm 50 with the learning rate "
        r"doubled (paper 4.1); \emph{clip at base lr} and \emph{doubled lr} are its two halves.}",
        r"\label{tab:table1}",
        r"\end{table}",
    ]
    return "\n".join(out) + "\n"


def write_table1(df: pd.DataFrame, paper_dir: str | Path, *, episodes: int | None = None,
                 decimals: int = 1) -> dict[str, Path]:
    """Write ``table1.csv``, ``table1.md`` and ``table1.tex`` into ``paper_dir`` atomically."""
    d = Path(paper_dir)
    return {
        "csv": write_text_atomic(d / "table1.csv", table1_csv(df)),
        "md": write_text_atomic(d / "table1.md", table1_markdown(df, decimals=decimals, episodes=episodes)),
        "tex": write_text_atomic(d / "table1.tex", table1_latex(df, decimals=decimals, episodes=episodes)),
    }


# --------------------------------------------------------------------------- README


def replace_between_markers(text: str, content: str, begin: str = README_BEGIN,
                            end: str = README_END) -> str:
    """``text`` with everything strictly between the ``begin`` and ``end`` marker lines
    replaced by ``content``; ValueError unless each marker occurs exactly once, in order."""
    nb, ne = text.count(begin), text.count(end)
    if nb != 1 or ne != 1:
        raise ValueError(f"expected exactly one {begin!r} and one {end!r}, found {nb} and {ne}")
    i, j = text.index(begin) + len(begin), text.index(end)
    if j < i:
        raise ValueError(f"{end!r} comes before {begin!r}")
    body = content.strip("\n")
    return text[:i] + "\n" + (body + "\n" if body else "") + text[j:]


def update_readme(path: str | Path, content: str, begin: str = README_BEGIN,
                  end: str = README_END) -> bool:
    """Replace the generated section of the README at ``path``; True if it changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    new = replace_between_markers(old, content, begin, end)
    if new != old:
        write_text_atomic(path, new)
    return new != old


def outputs_markdown(rows: Sequence[tuple[Sequence[str], str, str]]) -> str:
    """Markdown table of outputs: rows of (files, notebook, description)."""
    lines = ["| Output | Made by | Content |", "|---|---|---|"]
    for files, notebook, what in rows:
        lines.append("| " + "<br>".join(f"`{f}`" for f in files) + f" | `{notebook}` | {what} |")
    return "\n".join(lines) + "\n"


def readme_outputs_section(table1_md: str, outputs: Sequence[tuple[Sequence[str], str, str]],
                           command: str = "make reproduce") -> str:
    """The README's generated section: Table 1 and the table of outputs."""
    return "\n".join([
        f"<!-- Generated by `{command}` (pgsom.pipeline); do not edit by hand. -->",
        "",
        "### Table 1 (regenerated)",
        "",
        table1_md.strip(),
        "",
        "### Outputs",
        "",
        "Each file below is regenerated by `make reproduce` from fixed seeds; the executed "
        "notebooks are kept in `paper/notebooks/`.",
        "",
        outputs_markdown(outputs).strip(),
        "",
    ])


def paper_values(variants: Sequence[str] | None = None) -> Mapping[str, tuple[float, float]]:
    """The paper's (mean, std) for the given variants that it reports (all when None)."""
    if variants is None:
        return dict(PAPER_TABLE1)
    return {v: PAPER_TABLE1[v] for v in variants if v in PAPER_TABLE1}


def for_display(df: pd.DataFrame, *, decimals: int = 1) -> pd.DataFrame:
    """A copy of ``df`` for showing in a notebook: floats rounded to ``decimals`` and every
    missing value (NaN: a censored or undefined number, "empty" in the notebooks' text) as an
    empty cell, as in the CSV files. Columns without a missing value keep their dtype; the
    others become object columns. ``df`` itself is not changed (compute from it, not from
    the copy)."""
    out = df.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_float_dtype(values):
            values = values.round(decimals)
        if values.isna().any():
            values = values.astype(object).where(values.notna(), "")
        out[col] = values
    return out
