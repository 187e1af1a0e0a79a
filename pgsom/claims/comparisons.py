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
from pgsom.claims.data import finite, has, once, row_rng, values
from pgsom.claims.rule import ALPHA, LEVEL, MEDIUM_EFFECT, POWER
from pgsom.config import PAPER_METHODS
from pgsom.variants import REUSE, STABILISERS, SURROGATE, Variant

__all__ = ["COMPARISONS", "COLUMNS", "comparison_family", "decision", "holm_within",
           "apply_family", "pooled_sd", "power", "seeds_needed", "family_alpha", "spread_ratio_ci",
           "pair_key", "paired_power", "paired_seeds_needed"]

COMPARISONS: tuple[tuple[str, str, str], ...] = (
    *((Variant(m, (s,)).name, m, "stabiliser vs none") for m in PAPER_METHODS for s in STABILISERS),
    ("hessian", "pg", "method vs pg"), ("rk", "pg", "method vs pg"),
    ("adam", "pg", "method vs pg"), ("npg", "pg", "method vs pg"),
    ("hessian", "adam", "Hessian vs squared-gradient second moment"),
    ("hessian", "npg", "Hessian vs Fisher"),
    ("rk", Variant("pg", ("clip",)).name, "text check (C12)"),
    (Variant("rk", reading=REUSE).name, "rk", "paper's likely version vs our default"),
    (Variant("hessian", reading=SURROGATE).name, "hessian", "paper's likely version vs our default"),
)
"""The comparison family (A, B, group): A is compared with its reference B."""

COLUMNS = ["protocol", "group", "a", "b", "n_a", "n_b", "diverged_a", "diverged_b", "mean_a",
           "mean_b", "n_pairs", "corr", "diff", "diff_ci_low", "diff_ci_high", "paired_t", "p",
           "p_holm", "wilcoxon_p", "welch_diff_ci_low", "welch_diff_ci_high", "welch_t", "welch_df",
           "welch_p", "welch_p_holm", "hedges_g", "g_ci_low", "g_ci_high", "poi", "poi_ci_low",
           "poi_ci_high", "sd_a", "sd_b", "sd_ratio", "spread_a", "spread_b", "spread_ratio",
           "spread_ratio_ci_low", "spread_ratio_ci_high", "spread_p", "spread_p_holm", "fk_chi2",
           "fk_p", "fk_p_holm",
           "sd_diff", "power_medium", "seeds_for_80", "decision"]
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


def family_alpha(k: int) -> float:
    """The level a test must reach in a Holm family of ``k`` tests to be rejected whatever the
    others give: ALPHA / k (Holm's first step). Power and seeds-needed are computed there, so
    that "n seeds give 80% power" means power to pass Holm's correction."""
    return ALPHA / max(int(k), 1)


def spread_ratio_ci(x: np.ndarray, y: np.ndarray, key: str, seed: int, n_boot: int) -> stats.BootTest:
    """THE bootstrap of the spread ratio of a pair (:func:`pgsom.stats.spread_ratio_test`, rng
    from ``key``): its interval and its p-value against 1. Every output that shows this
    quantity (``comparisons.csv``, the claims' rows) reads this one bootstrap
    (:func:`pgsom.claims.data.once`)."""
    return once(("spread", key, seed, n_boot, x.tobytes(), y.tobytes()),
                lambda: stats.spread_ratio_test(x, y, row_rng(seed, "spread|" + key), LEVEL, n_boot))


def pair_key(protocol: str, a: str, b: str, value: str = "final_return") -> str:
    """The key of pair (a, b) in ``protocol``: names its bootstrap streams."""
    return f"{protocol}|{a}|{b}|{value}"


def comparison_family(finals: pd.DataFrame, *, n_boot: int = 10_000, seed: int = 0,
                      value: str = "final_return",
                      comparisons: Sequence[tuple[str, str, str]] = COMPARISONS) -> pd.DataFrame:
    """One row per (protocol, comparison A vs B) whose two variants were both run.

    Means. The variants of a protocol share their seeds (seed i of every variant starts from
    the same initial parameters and environment streams: common random numbers), so the
    **paired** test decides: over the ``n_pairs`` seeds with both final returns,
    ``diff`` = mean of A_i - B_i with its t interval, the paired t and its p-value ``p``,
    ``p_holm`` (Holm over the family of that protocol) and the Wilcoxon signed-rank p beside
    it (:func:`pgsom.stats.paired_test`); ``corr`` is the correlation of the pairs. The
    unpaired Welch test (``welch_*``, Holm-adjusted in its own family) is shown beside,
    decides nothing. Hedges' g with CI, the probability of improvement P(A > B) with a
    bootstrap CI. ``power_medium``: power of the paired test at a medium effect
    (:data:`~pgsom.claims.rule.MEDIUM_EFFECT` pooled sds) at the Holm level
    (:func:`family_alpha`), and ``seeds_for_80`` the pairs that would give
    :data:`~pgsom.claims.rule.POWER` there (from the observed ``sd_diff``).
    Spread: sds and their ratio (context); ``spread_*``: the mean absolute deviation from the
    median of each and their ratio, with one bootstrap (:func:`spread_ratio_ci`) giving its CI
    and its p-value against 1, ``spread_p`` and ``spread_p_holm`` (its own Holm family): one
    scale for the test and the effect, defined when most runs are tied at the 500 cap. The
    rank-based Fligner-Killeen test of the same deviations (``fk_p``, ``fk_p_holm``) is shown
    beside it; it decides nothing. ``decision`` says it in words. Diverged
    runs (NaN) are left out of every statistic and counted in ``diverged_a`` / ``diverged_b``.
    """
    rows = []
    for p in dict.fromkeys(finals["protocol"]):
        run = [(a, b, group) for a, b, group in comparisons if has(finals, p, a, b)]
        level_k = family_alpha(len(run))
        for a, b, group in run:
            x, y = values(finals, p, a, value), values(finals, p, b, value)
            key = pair_key(p, a, b, value)
            w = stats.welch_test(x, y)
            wci = stats.ci_mean_difference(x, y, LEVEL)
            pt = (stats.paired_test(x, y, LEVEL) if x.size == y.size
                  else stats.PairedResult(*(math.nan,) * 7, 0, False, LEVEL, 0))
            g = stats.hedges_g(x, y, LEVEL)
            # (stats.probability_of_improvement's bootstrap needs two runs per group)
            boot = min(np.sum(~np.isnan(x)), np.sum(~np.isnan(y))) >= 2
            poi = stats.probability_of_improvement(x, y, rng=row_rng(seed, "poi|" + key) if boot else None,
                                                   level=LEVEL, n_resamples=n_boot)
            fk = stats.fligner_killeen(x, y)
            ratio = spread_ratio_ci(x, y, key, seed, n_boot)
            sd = pooled_sd(x, y)
            ok = ~(np.isnan(x) | np.isnan(y)) if x.size == y.size else np.zeros(0, bool)
            corr = (float(np.corrcoef(x[ok], y[ok])[0, 1])
                    if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0 else math.nan)
            effect = MEDIUM_EFFECT["d"] * sd if finite(sd) else math.nan
            sd_a, sd_b = _sd(x), _sd(y)
            rows.append({
                "protocol": p, "group": group, "a": a, "b": b, "n_a": w.nx, "n_b": w.ny,
                "diverged_a": int(np.isnan(x).sum()), "diverged_b": int(np.isnan(y).sum()),
                "mean_a": stats.summary(x).mean if w.nx else math.nan,
                "mean_b": stats.summary(y).mean if w.ny else math.nan,
                "n_pairs": pt.n_pairs, "corr": corr,
                "diff": pt.mean_diff, "diff_ci_low": pt.low, "diff_ci_high": pt.high,
                "paired_t": pt.statistic, "p": pt.p_value, "wilcoxon_p": pt.wilcoxon_p,
                "welch_diff_ci_low": wci.low, "welch_diff_ci_high": wci.high,
                "welch_t": w.statistic, "welch_df": w.df, "welch_p": w.p_value,
                "hedges_g": g.estimate, "g_ci_low": g.low, "g_ci_high": g.high,
                "poi": poi.estimate, "poi_ci_low": poi.low, "poi_ci_high": poi.high,
                "sd_a": sd_a, "sd_b": sd_b, "sd_ratio": _ratio(sd_a, sd_b),
                "spread_a": fk.sd_x, "spread_b": fk.sd_y, "spread_ratio": fk.sd_ratio,
                "spread_ratio_ci_low": ratio.low, "spread_ratio_ci_high": ratio.high,
                "spread_p": ratio.p_value, "fk_chi2": fk.statistic, "fk_p": fk.p_value,
                "sd_diff": pt.sd_diff, "power_medium": paired_power(pt.n_pairs, effect, pt.sd_diff, level_k),
                "seeds_for_80": paired_seeds_needed(effect, pt.sd_diff, level_k),
            })
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = holm_within(df, "p", "p_holm", ["protocol"])
    df = holm_within(df, "welch_p", "welch_p_holm", ["protocol"])
    df = holm_within(df, "spread_p", "spread_p_holm", ["protocol"])
    df = holm_within(df, "fk_p", "fk_p_holm", ["protocol"])
    df["decision"] = [decision(r) for r in df.to_dict("records")]
    return df[COLUMNS]


def _sd(x: np.ndarray) -> float:
    """Sample sd (ddof 1) of the non-NaN values; NaN with fewer than two."""
    x = x[~np.isnan(x)]
    return float(np.std(x, ddof=1)) if x.size >= 2 else math.nan


def _ratio(a: float, b: float) -> float:
    """a / b, inf for b = 0 < a, NaN for 0 / 0 or NaN."""
    if not (finite(a) and finite(b)) or (a == 0 and b == 0):
        return math.nan
    return math.inf if b == 0 else a / b


def paired_power(n: int, effect: float, sd_diff: float, alpha: float) -> float:
    """Power of the paired t test with ``n`` pairs at a true difference ``effect`` with sd of
    the differences ``sd_diff``, at level ``alpha`` (NaN if undefined; 1 with no spread)."""
    if n < 2 or not (finite(effect) and finite(sd_diff)):
        return math.nan
    if sd_diff == 0:
        return 1.0 if effect != 0 else alpha
    return stats.power_paired(n, effect, sd_diff, alpha)


def paired_seeds_needed(effect: float, sd_diff: float, alpha: float, target: float = POWER) -> float:
    """Pairs (shared seeds) the paired t test needs for ``target`` power at a true difference
    ``effect`` at level ``alpha``: NaN if undefined, 2 with no spread, inf beyond 10000."""
    if not (finite(effect) and finite(sd_diff)) or effect == 0:
        return math.nan
    if sd_diff == 0:
        return 2.0
    for n in range(2, 10_001):
        if stats.power_paired(n, effect, sd_diff, alpha) >= target:
            return float(n)
    return math.inf


def decision(r: Mapping[str, Any]) -> str:
    """What a row of :func:`comparison_family` decides, in words (``comparisons.csv``)."""
    a, b = r["a"], r["b"]
    if not finite(r["p_holm"]):
        return "undefined (fewer than 2 seeds with a final return in both variants)"
    if r["p_holm"] < ALPHA:
        return f"{a} {'>' if r['diff'] > 0 else '<'} {b} (paired, Holm p < {ALPHA:g})"
    n = r["n_pairs"]
    need = r["seeds_for_80"]
    if not finite(r["power_medium"]):
        return "not significant"
    tail = ("" if not finite(need) and not math.isinf(need or 0)
            else f"; more than 10000 seeds would be needed for {POWER:.0%} power" if math.isinf(need)
            else f"; {int(need)} seeds would give {POWER:.0%} power")
    return (f"undecided at {n} seeds: power {r['power_medium']:.0%} at a medium effect and the Holm "
            f"level{tail}")


def apply_family(df: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Rows testing a pair of the comparison family take its Holm-adjusted p-value (the
    family is all of :data:`COMPARISONS` that were run, not only the pairs a claim quotes),
    in place. A row with a finite p-value whose pair is not in the family is an error."""
    lookup = {}
    for r in ([] if comparisons is None else comparisons.to_dict("records")):
        lookup[(r["protocol"], "means", f"{r['a']}|{r['b']}")] = r["p_holm"]
        lookup[(r["protocol"], "variances", f"{r['a']}|{r['b']}")] = r["spread_p_holm"]
    fam = df["family"].isin(["means", "variances"]) & df["kind"].isin(["direction", "absence"])
    for i in df.index[fam]:
        k = (df.at[i, "protocol"], df.at[i, "family"], df.at[i, "pair"])
        if k in lookup:
            df.at[i, "p_holm"] = lookup[k]
        elif np.isfinite(df.at[i, "p_value"]):
            raise ValueError(f"row {df.at[i, 'claim']} {df.at[i, 'key']}: pair {k} is not in "
                             "the comparison family (pgsom.claims.COMPARISONS)")
    return df
