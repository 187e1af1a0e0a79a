"""The comparison-statistics layer: the family of pairwise tests of the final-episode return.

* :data:`COMPARISONS`: the family (each stabilised variant vs its method, each method vs
  ``pg``, the Hessian vs ``adam`` and ``npg``, the text check ``rk`` vs ``pg+clip``, the
  paper's likely versions vs our defaults);
* :func:`comparison_family`: per protocol and pair, Welch's t with Holm's correction over the
  family, the Welch CI of the difference, Hedges' g, the probability of improvement,
  Brown-Forsythe on the variances (its own Holm family), the bootstrap CI of the sd ratio,
  the power at the observed difference and the seeds a t test would need for
  :data:`~pgsom.claims.rule.POWER`; :func:`decision` says it in words;
* :func:`holm_within`: Holm's correction within groups of rows (used for the claims' own
  families too), :func:`apply_family`: claim rows that test a pair of the family take its
  Holm p-value;
* :func:`pooled_sd`, :func:`power`, :func:`seeds_needed`: the t test's power arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.claims.data import finite, has, row_rng, values
from pgsom.claims.rule import ALPHA, LEVEL, POWER

__all__ = ["COMPARISONS", "COLUMNS", "comparison_family", "decision", "holm_within",
           "apply_family", "pooled_sd", "power", "seeds_needed"]

COMPARISONS: tuple[tuple[str, str, str], ...] = (
    *((f"{m}+{s}", m, "stabiliser vs none") for m in ("pg", "hessian", "rk")
      for s in ("clip", "entropy", "baseline", "clip_same_lr", "lr2")),
    ("hessian", "pg", "method vs pg"), ("rk", "pg", "method vs pg"),
    ("adam", "pg", "method vs pg"), ("npg", "pg", "method vs pg"),
    ("hessian", "adam", "Hessian vs squared-gradient second moment"),
    ("hessian", "npg", "Hessian vs Fisher"),
    ("rk", "pg+clip", "text check (C12)"),
    ("rk+reuse", "rk", "paper's likely version vs our default"),
    ("hessian+surrogate", "hessian", "paper's likely version vs our default"),
)
"""The comparison family (A, B, group): A is compared with its reference B."""

COLUMNS = ["protocol", "group", "a", "b", "n_a", "n_b", "diverged_a", "diverged_b", "mean_a",
           "mean_b", "diff", "diff_ci_low", "diff_ci_high", "welch_t", "welch_df", "p",
           "p_holm", "hedges_g", "g_ci_low", "g_ci_high", "poi", "poi_ci_low", "poi_ci_high",
           "sd_a", "sd_b", "sd_ratio", "sd_ratio_ci_low", "sd_ratio_ci_high", "bf_f", "bf_p",
           "bf_p_holm", "pooled_sd", "power_observed", "seeds_for_80", "decision"]
"""Columns of :func:`comparison_family` (and of ``comparisons.csv``), in order."""


def pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    """Pooled sd (ddof 1 per group) of the non-NaN values of ``x`` and ``y``; NaN with fewer
    than three values in all or an empty group."""
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size + y.size < 3 or x.size < 1 or y.size < 1:
        return math.nan
    vx = np.var(x, ddof=1) if x.size > 1 else 0.0
    vy = np.var(y, ddof=1) if y.size > 1 else 0.0
    return float(np.sqrt(((x.size - 1) * vx + (y.size - 1) * vy) / (x.size + y.size - 2)))


def seeds_needed(diff: float, sd: float, power: float = POWER) -> float:
    """Seeds per arm a two-sided t test at :data:`ALPHA` needs for ``power`` at a true
    difference ``diff`` with sd ``sd``: NaN if undefined or ``diff`` is 0, 2 if ``sd`` is 0,
    inf beyond 10000."""
    if not (finite(diff) and finite(sd)) or diff == 0:
        return math.nan
    if sd == 0:
        return 2.0
    try:
        return float(stats.seeds_for_power(diff, sd, ALPHA, power, max_n=10_000))
    except ValueError:
        return math.inf


def power(n: int, diff: float, sd: float) -> float:
    """Power of a two-sided t test at :data:`ALPHA` with ``n`` seeds per arm at a true
    difference ``diff`` with sd ``sd`` (NaN if undefined)."""
    if n < 2 or not (finite(diff) and finite(sd)):
        return math.nan
    if sd == 0:
        return 1.0 if diff != 0 else ALPHA
    return stats.power_of_test(n, diff, sd, ALPHA)


def holm_within(df: pd.DataFrame, p_col: str, out_col: str, by: Sequence[str]) -> pd.DataFrame:
    """Column ``out_col``: Holm-adjusted ``p_col`` within each group of ``by`` (in place)."""
    df[out_col] = math.nan
    if df.empty:
        return df
    for _, sub in df.groupby(list(by), sort=False):
        idx = sub.index
        p = df.loc[idx, p_col].to_numpy(float)
        df.loc[idx, out_col] = stats.holm(p, ALPHA).p_adjusted
    return df


def comparison_family(finals: pd.DataFrame, *, n_boot: int = 10_000, seed: int = 0,
                      value: str = "final_return",
                      comparisons: Sequence[tuple[str, str, str]] = COMPARISONS) -> pd.DataFrame:
    """One row per (protocol, comparison A vs B) whose two variants were both run.

    Means: ``diff`` = mean(A) - mean(B) with its Welch CI, Welch t / df / p, ``p_holm``
    (Holm over the family of that protocol), Hedges' g with CI, the probability of
    improvement P(A > B) with a bootstrap CI, the power of a t test with these seeds at the
    observed difference and the seeds per arm it would need for 80% (``seeds_for_80``).
    Variances: sds, ``sd_ratio`` = sd(A) / sd(B) with a bootstrap CI, Brown-Forsythe p and
    ``bf_p_holm`` (its own Holm family). ``decision`` says it in words. Diverged runs
    (NaN) are left out of every statistic and counted in ``diverged_a`` / ``diverged_b``.
    """
    rows = []
    for p in dict.fromkeys(finals["protocol"]):
        for a, b, group in comparisons:
            if not has(finals, p, a, b):
                continue
            x, y = values(finals, p, a, value), values(finals, p, b, value)
            key = f"{p}|{a}|{b}|{value}"
            w = stats.welch_test(x, y)
            ci = stats.ci_mean_difference(x, y, LEVEL)
            g = stats.hedges_g(x, y, LEVEL)
            # (stats.probability_of_improvement's bootstrap needs two runs per group)
            boot = min(np.sum(~np.isnan(x)), np.sum(~np.isnan(y))) >= 2
            poi = stats.probability_of_improvement(x, y, rng=row_rng(seed, "poi|" + key) if boot else None,
                                                   level=LEVEL, n_resamples=n_boot)
            bf = stats.brown_forsythe(x, y)
            ratio = stats.ci_sd_ratio(x, y, row_rng(seed, "sd|" + key), LEVEL, n_boot)
            sd = pooled_sd(x, y)
            n = min(w.nx, w.ny)
            rows.append({
                "protocol": p, "group": group, "a": a, "b": b, "n_a": w.nx, "n_b": w.ny,
                "diverged_a": int(np.isnan(x).sum()), "diverged_b": int(np.isnan(y).sum()),
                "mean_a": stats.summary(x).mean if w.nx else math.nan,
                "mean_b": stats.summary(y).mean if w.ny else math.nan,
                "diff": w.mean_diff, "diff_ci_low": ci.low, "diff_ci_high": ci.high,
                "welch_t": w.statistic, "welch_df": w.df, "p": w.p_value,
                "hedges_g": g.estimate, "g_ci_low": g.low, "g_ci_high": g.high,
                "poi": poi.estimate, "poi_ci_low": poi.low, "poi_ci_high": poi.high,
                "sd_a": bf.sd_x, "sd_b": bf.sd_y, "sd_ratio": bf.sd_ratio,
                "sd_ratio_ci_low": ratio.low, "sd_ratio_ci_high": ratio.high,
                "bf_f": bf.statistic, "bf_p": bf.p_value,
                "pooled_sd": sd, "power_observed": power(n, w.mean_diff, sd),
                "seeds_for_80": seeds_needed(w.mean_diff, sd),
            })
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = holm_within(df, "p", "p_holm", ["protocol"])
    df = holm_within(df, "bf_p", "bf_p_holm", ["protocol"])
    df["decision"] = [decision(r) for r in df.to_dict("records")]
    return df[COLUMNS]


def decision(r: Mapping[str, Any]) -> str:
    """What a row of :func:`comparison_family` decides, in words (``comparisons.csv``)."""
    a, b = r["a"], r["b"]
    if not finite(r["p_holm"]):
        return "undefined (fewer than 2 runs with a final return in a group)"
    if r["p_holm"] < ALPHA:
        return f"{a} {'>' if r['diff'] > 0 else '<'} {b} (Holm p < {ALPHA:g})"
    n = min(r["n_a"], r["n_b"])
    need = r["seeds_for_80"]
    if not finite(r["power_observed"]):
        return "not significant"
    tail = ("no difference observed" if not finite(need) and not math.isinf(need or 0)
            else f"more than 10000 seeds per arm would be needed for {POWER:.0%} power" if math.isinf(need)
            else f"{int(need)} seeds per arm would give {POWER:.0%} power at the observed difference")
    return (f"undecided at {n} seeds: power {r['power_observed']:.0%} at the observed "
            f"difference; {tail}")


def apply_family(df: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Rows testing a pair of the comparison family take its Holm-adjusted p-value (the
    family is all of :data:`COMPARISONS` that were run, not only the pairs a claim quotes),
    in place. A row with a finite p-value whose pair is not in the family is an error."""
    lookup = {}
    for r in ([] if comparisons is None else comparisons.to_dict("records")):
        lookup[(r["protocol"], "means", f"{r['a']}|{r['b']}")] = r["p_holm"]
        lookup[(r["protocol"], "variances", f"{r['a']}|{r['b']}")] = r["bf_p_holm"]
    fam = df["family"].isin(["means", "variances"]) & df["kind"].isin(["direction", "absence"])
    for i in df.index[fam]:
        k = (df.at[i, "protocol"], df.at[i, "family"], df.at[i, "pair"])
        if k in lookup:
            df.at[i, "p_holm"] = lookup[k]
        elif np.isfinite(df.at[i, "p_value"]):
            raise ValueError(f"row {df.at[i, 'claim']} {df.at[i, 'key']}: pair {k} is not in "
                             "the comparison family (pgsom.claims.COMPARISONS)")
    return df
