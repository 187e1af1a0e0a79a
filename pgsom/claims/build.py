"""From the tidy data to the report: every claim's rows, adjusted, decided and aggregated.

* :func:`claim_rows`: the rows of every builder of :data:`~pgsom.claims.builders.BUILDERS`,
  in order, as one frame: primary rows marked, p-values Holm-adjusted within (protocol,
  family), number rows' sensitivity set;
* :func:`build_report`: the comparison family, the rows with the family's Holm p-values and
  their verdicts, the per-claim verdicts and final-episode vs evaluation return, as a
  :class:`Report` (rendered by :mod:`pgsom.claims.render`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pgsom import stats
from pgsom.claims import render
from pgsom.claims.builders import BUILDERS, ClaimData
from pgsom.claims.comparisons import apply_family, comparison_family, holm_within
from pgsom.claims.data import with_pooled
from pgsom.claims.rows import Row, frame
from pgsom.claims.rule import (EXPERIMENTAL_KINDS, LEVEL, apply_verdicts, claim_verdicts,
                               mark_number_sensitivity, mark_primary)

__all__ = ["Report", "claim_rows", "build_report", "final_vs_eval"]


@dataclass
class Report:
    """The claims report: ``rows`` (one per statement and protocol, :func:`claim_rows` with
    verdicts), ``claims`` (one per claim, :func:`~pgsom.claims.rule.claim_verdicts`),
    ``comparisons`` (:func:`~pgsom.claims.comparisons.comparison_family`),
    ``finals_summary`` (:func:`final_vs_eval`) and ``meta`` (budget, bootstrap, protocols)."""

    rows: pd.DataFrame
    claims: pd.DataFrame
    comparisons: pd.DataFrame
    finals_summary: pd.DataFrame
    meta: dict[str, Any]

    def markdown(self, numbers: render.Numbers | None = None) -> str:
        """``claims.md`` (:func:`pgsom.claims.render.claims_markdown`)."""
        return render.claims_markdown(self, numbers if numbers is not None else render.Numbers())

    def numbers(self) -> render.Numbers:
        """The LaTeX macros of ``claims.md`` (``numbers.tex``)."""
        n = render.Numbers()
        render.claims_markdown(self, n)
        return n


def final_vs_eval(finals: pd.DataFrame) -> pd.DataFrame:
    """Per protocol and variant: runs, diverged runs, and the mean with its Student-t CI of
    the final-episode return and of the evaluation return."""
    rows = []
    for (p, v), g in finals.groupby(["protocol", "variant"], sort=False):
        f, e = g["final_return"].to_numpy(float), g["eval_return"].to_numpy(float)
        cf, ce = stats.ci_t(f, LEVEL), stats.ci_t(e, LEVEL)
        rows.append({"protocol": p, "variant": v, "n": len(g), "diverged": int(g["diverged"].sum()),
                     "final_mean": cf.estimate, "final_low": cf.low, "final_high": cf.high,
                     "eval_mean": ce.estimate, "eval_low": ce.low, "eval_high": ce.high})
    return pd.DataFrame(rows)


def claim_rows(finals: pd.DataFrame, curves: pd.DataFrame, derivations: pd.DataFrame | None, *,
               budget: int, n_boot: int = 10_000, seed: int = 0,
               clip_fraction: pd.DataFrame | None = None,
               state: pd.DataFrame | None = None, primary: str = "powered",
               benchmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every audited statement as a row (see :class:`~pgsom.claims.rows.Row`), from the
    builders of :data:`~pgsom.claims.builders.BUILDERS` in order, Holm-adjusted within its
    family and protocol. ``primary``: the protocol whose rows decide a claim (the last
    protocol when it is absent; in ``attrs["primary"]``). ``benchmarks``: the benchmarks
    study's runs (claim C13, and C1's largest gain), or None. Verdicts are set by
    :func:`build_report` (after the comparison family's Holm p-values)."""
    protocols = list(dict.fromkeys(finals["protocol"]))
    data = ClaimData(finals, curves, derivations, tuple(protocols), budget, n_boot, seed,
                     clip_fraction, state, benchmarks)
    rows: list[Row] = []
    for build in BUILDERS.values():
        rows += build(data)
    df = frame(rows)
    df["decides"] = df["decides"].astype(bool)
    main = mark_primary(df, protocols, primary)
    # comparison-family rows ("means", "variances") take the family's Holm p-values
    # (apply_family); the others are adjusted within (protocol, family) among these rows
    tested = (df["kind"].isin(list(EXPERIMENTAL_KINDS)) & df["family"].ne("")
              & ~df["family"].isin(["means", "variances"]))
    sub = df[tested].copy()
    sub = holm_within(sub, "p_value", "p_holm", ["protocol", "family"])
    df.loc[tested, "p_holm"] = sub["p_holm"]
    df = mark_number_sensitivity(df, n_boot)
    df.attrs["primary"] = main
    return df


def build_report(finals: pd.DataFrame, curves: pd.DataFrame,
                 derivations: pd.DataFrame | None = None, *, budget: int, n_boot: int = 10_000,
                 seed: int = 0, clip_fraction: pd.DataFrame | None = None,
                 state: pd.DataFrame | None = None, primary: str = "powered",
                 protocol_info: Mapping[str, tuple[int, int]] | None = None,
                 comparisons: pd.DataFrame | None = None,
                 readings: pd.DataFrame | None = None,
                 benchmarks: pd.DataFrame | None = None) -> Report:
    """The claims report from the tidy data (see :mod:`pgsom.claims`). ``readings``: the
    readings study's table (``paper/readings.csv``, :mod:`pgsom.readings`), summarised under
    C11 when given; ``benchmarks``: the benchmarks study's runs (``paper/benchmark_finals.csv``,
    :mod:`pgsom.benchmark_study`), for C13 and C1's largest gain. ``protocol_info``:
    protocol -> (seeds, root seed), for the data section; ``comparisons``: the frame of
    :func:`~pgsom.claims.comparisons.comparison_family` with the same ``n_boot`` and
    ``seed`` if already computed."""
    finals, curves = with_pooled(finals), with_pooled(curves)  # no-op when already pooled
    if benchmarks is not None:
        benchmarks = with_pooled(benchmarks)
    if comparisons is None:
        comparisons = comparison_family(finals, n_boot=n_boot, seed=seed)
    rows = claim_rows(finals, curves, derivations, budget=budget, n_boot=n_boot, seed=seed,
                      clip_fraction=clip_fraction, state=state, primary=primary,
                      benchmarks=benchmarks)
    rows = apply_family(rows, comparisons)
    rows = apply_verdicts(rows)
    claims = claim_verdicts(rows)
    if protocol_info is None:
        protocol_info = {p: (int(g["seed"].nunique()), int(g["root_seed"].iloc[0]))
                         for p, g in finals.groupby("protocol", sort=False)}
    from pgsom.experiments import threshold_window

    meta = {"budget": budget, "n_boot": n_boot, "seed": seed, "primary": rows.attrs["primary"],
            "window": threshold_window(budget),
            "protocols": dict(protocol_info),
            "diverged": {p: int(g["diverged"].sum()) for p, g in finals.groupby("protocol", sort=False)},
            "runs": {p: len(g) for p, g in finals.groupby("protocol", sort=False)},
            "readings": readings, "benchmarks": benchmarks}
    return Report(rows, claims, comparisons, final_vs_eval(finals), meta)
