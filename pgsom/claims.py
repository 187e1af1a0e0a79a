"""The claims report: each claim of the paper (SPEC section 6, C1-C13) against our runs.

Pure functions from the tidy data of :func:`pgsom.experiments.load_experiment` (``finals``:
one row per run; ``curves``: one row per run and episode), the derivations notebook's table
(``paper/derivations.csv``) and the paper's own numbers to

* :func:`comparison_family`: the family of pairwise tests of the final-episode return
  (:data:`COMPARISONS`: each stabilised variant vs its method, each method vs ``pg``, the
  Hessian vs ``adam`` and ``npg``, and the text check ``rk`` vs ``pg+clip``), per protocol:
  Welch's t with Holm's correction over the family, the Welch CI of the difference, Hedges'
  g, the probability of improvement, Brown-Forsythe on the variances (its own Holm family),
  the bootstrap CI of the sd ratio, and the seeds a t test would need for the observed
  difference at 80% power;
* :func:`claim_rows`: one row per audited statement and protocol, with the paper's number,
  ours with its CI, the test, the Holm-adjusted p-value and a verdict from :func:`verdict`,
  THE rule (stated in :data:`RULE_TEXT` and at the top of ``claims.md``);
* :func:`build_report`: both tables, the per-claim verdicts, ``claims.md``, ``claims.csv``
  and ``numbers.tex`` (every number of ``claims.md`` that comes from our data is a LaTeX
  macro there), deterministic for a fixed ``seed``.

The paper's numbers are data: Table 1 comes from :data:`pgsom.report.PAPER_TABLE1` and the
text's claims from :data:`PAPER_CLAIMS` (transcribed from the paper), nowhere else.
Timings never enter this report (they are not deterministic): claim C7's wall-clock part
points to ``python -m pgsom bench``.
"""

from __future__ import annotations

import math
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.report import PAPER_TABLE1, PAPER_TABLE1_SEEDS, variant_label
from pgsom.store import write_text_atomic

__all__ = [
    "PAPER_CLAIMS", "CLAIM_IDS", "COMPARISONS", "ALPHA", "LEVEL", "POWER", "MEDIUM_EFFECT",
    "REPLICATION_SEEDS", "VERDICTS", "RULE_TEXT", "verdict", "aggregate", "comparison_family",
    "claim_rows", "claim_verdicts", "build_report", "write_report", "Numbers", "macro_name",
    "optimizer_state_floats", "state_memory", "paper_self_checks", "validate_parameters",
    "Report",
]

# --------------------------------------------------------------------------- the paper's text

PAPER_CLAIMS: dict[str, dict[str, Any]] = {
    # Transcribed by hand from the paper's text (section in "where"); the paper's words and
    # numbers, not ours. Table 1's numbers are pgsom.report.PAPER_TABLE1. Numbers are kept
    # as printed (strings) where their precision matters (C12).
    "C1": {"where": "Abstract", "short": "sample efficiency vs first-order and Fisher baselines",
           "text": "Numerical experiments on standard control benchmarks show up to a 2.1x "
                   "increase in sample efficiency ... compared to first-order and "
                   "Fisher-matrix baselines.",
           "ratio": 2.1},
    "C2": {"where": "Abstract", "short": "variance reduction vs the same baselines",
           "text": "... and a substantial reduction in variance compared to first-order and "
                   "Fisher-matrix baselines."},
    "C3": {"where": "Abstract; Lemma 3.1", "short": "the diagonal Hessian estimator is unbiased",
           "text": "We ... establish that the diagonal Hessian estimator is unbiased"},
    "C4": {"where": "Abstract; Section 3.1", "short": "the estimator is positive-definite",
           "text": "... and positive-definite under mild regularity assumptions"},
    "C5": {"where": "Abstract; Section 3.1", "short": "the update is an ascent direction in expectation",
           "text": "... and prove that the resulting update is a descent direction in expectation"},
    "C6": {"where": "Lemma 3.2", "short": "the score does not involve the transition kernel",
           "text": "The policy-gradient score term depends only on the policy's "
                   "log-probabilities ... and thus does not involve the unknown transition kernel"},
    "C7": {"where": "Section 3.7; Abstract", "short": "cost: one extra backward pass, O(d) memory, slower wall clock",
           "text": "PG-SOM adds one extra backward pass for the diagonal Hessian ... yet keeping "
                   "memory overhead negligible. Empirically, this translates to a wall-clock "
                   "slowdown"},
    "C8": {"where": "Section 4.2 (Figure 2)", "short": "episodes to reach 200: RK ~250, PG ~350, Hessian PG ~400",
           "text": "Runge-Kutta (RK) reaches the reward threshold of 200 after ~250 episodes, "
                   "whereas Policy Gradient (PG) requires ~350 episodes and Hessian PG almost 400.",
           "threshold": 200, "episodes": {"rk": 250, "pg": 350, "hessian": 400}},
    "C9": {"where": "Section 4.2 (Figure 2)", "short": "RK's band narrows steadily; Hessian PG's stays wide",
           "text": "RK's confidence band narrows steadily, indicating consistent improvement "
                   "across random seeds. In contrast, Hessian PG exhibits wide bands until late "
                   "in training"},
    "C10": {"where": "Sections 4.2, 4.3 (Table 1)", "short": "clipping raises the mean and cuts the variance of every method",
            "text": "Across the board, gradient clipping boosts the mean return and slashes variance"},
    "C11": {"where": "Table 1", "short": "Table 1's twelve means and stds",
            "text": "Table 1: final-episode return, mean and std over 5 seeds per variant"},
    "C12": {"where": "Sections 4.2, 4.3 vs Table 1", "short": "the text's numbers and comparisons vs its own Table 1",
            "text": "The text's statements about Table 1's variants",
            # (section, quote, variant, statistic, value as printed)
            "numbers": [
                ("4.2", "RK+clip attains the highest score (mean 389.6, std 7.2)", "rk+clip", "mean", "389.6"),
                ("4.2", "RK+clip attains the highest score (mean 389.6, std 7.2)", "rk+clip", "std", "7.2"),
                ("4.2", "followed by Hessian PG+clip (mean 378.4, std 0.6)", "hessian+clip", "mean", "378.4"),
                ("4.2", "followed by Hessian PG+clip (mean 378.4, std 0.6)", "hessian+clip", "std", "0.6"),
                ("4.3", "the mean return leaps from 202.7 to 370.5", "pg", "mean", "202.7"),
                ("4.3", "the mean return leaps from 202.7 to 370.5", "pg+clip", "mean", "370.5"),
                ("4.3", "the standard deviation remains comparable (24.0 38.7)", "pg", "std", "24.0"),
                ("4.3", "the standard deviation remains comparable (24.0 38.7)", "pg+clip", "std", "38.7"),
                ("4.3", "clipping pushes the mean from just 147.0 to 392.8", "hessian", "mean", "147.0"),
                ("4.3", "clipping pushes the mean from just 147.0 to 392.8", "hessian+clip", "mean", "392.8"),
                ("4.3", "slashes the std from 24.5 to 0.6", "hessian", "std", "24.5"),
                ("4.3", "slashes the std from 24.5 to 0.6", "hessian+clip", "std", "0.6"),
                ("4.3", "climbing from 314.2 to 383.1", "rk", "mean", "314.2"),
                ("4.3", "climbing from 314.2 to 383.1", "rk+clip", "mean", "383.1"),
                ("4.3", "std from 66.3 to 7.2", "rk", "std", "66.3"),
                ("4.3", "std from 66.3 to 7.2", "rk+clip", "std", "7.2"),
                ("4.3", "raises the mean from 202.7 to 239.9", "pg+entropy", "mean", "239.9"),
                ("4.3", "increases the variance (std 24.0 59.0)", "pg+entropy", "std", "59.0"),
                ("4.3", "A baseline ... (mean 218.8, std 47.2)", "pg+baseline", "mean", "218.8"),
                ("4.3", "A baseline ... (mean 218.8, std 47.2)", "pg+baseline", "std", "47.2"),
                ("4.3", "the entropy improves the mean to 275.0 ... (std 112.7)", "hessian+entropy", "mean", "275.0"),
                ("4.3", "the entropy improves the mean to 275.0 ... (std 112.7)", "hessian+entropy", "std", "112.7"),
                ("4.3", "a baseline yields only marginal benefit (mean 208.4, std 115.6)", "hessian+baseline", "mean", "208.4"),
                ("4.3", "a baseline yields only marginal benefit (mean 208.4, std 115.6)", "hessian+baseline", "std", "115.6"),
                ("4.3", "strong mean performance (383.1) and low variance (7.2)", "rk+clip", "mean", "383.1"),
                ("4.3", "strong mean performance (383.1) and low variance (7.2)", "rk+clip", "std", "7.2"),
            ],
            # (section, quote, from variant, to variant, percent change as printed)
            "percents": [
                ("4.3", "an increase of 83 %", "pg", "pg+clip", "83"),
                ("4.3", "a 167 % jump", "hessian", "hessian+clip", "167"),
                ("4.3", "a 22 % boost", "rk", "rk+clip", "22"),
                ("4.3", "raises the mean ... (+18 %)", "pg", "pg+entropy", "18"),
                ("4.3", "the entropy improves the mean to 275.0 ( +87 %)", "hessian", "hessian+entropy", "87"),
            ],
            # (section, quote, variant said to be better, variant said to be worse)
            "orderings": [
                ("4.3", "Even the unclipped RK comfortably surpasses PG's clipped version.", "rk", "pg+clip"),
            ],
            "entropy": ("4.2", "Entropy regularisation improves PG and RK but has little effect on Hessian PG",
                        ("pg", "rk"), ("hessian",)),
            "clipping": ("4.2", "Across the board, gradient clipping boosts the mean return and slashes variance",
                         ("pg", "hessian", "rk")),
            },
    "C13": {"where": "Section 1 (contributions)", "short": "gains across five widely used benchmarks",
            "text": "(iii) empirically improves both sample efficiency and final return across "
                    "five widely used benchmarks."},
}
"""The paper's text claims, transcribed by hand (the only place they are typed)."""

CLAIM_IDS = tuple(f"C{k}" for k in range(1, 14))
MAX_DERIVED_ROWS = 8
"""claims.md lists every verdict row of a derived claim (C3-C6) up to this many; beyond,
the derivations notebook's overall rows and counts (claims.csv has them all)."""

# --------------------------------------------------------------------------- the rule

ALPHA = 0.05
"""Significance level of every test, after Holm's correction within its family."""
LEVEL = 0.95
"""Level of every confidence / replication interval."""
POWER = 0.8
"""Target power when the report says how many seeds a comparison would need."""
MEDIUM_EFFECT = {"d": 0.5, "ratio": 1.5, "rho": 0.5}
"""The claimed effect size when the paper gives none ("substantial", "steadily", "little"):
half a pooled standard deviation for means, a factor 1.5 for ratios (sds, episodes, band
widths), a Spearman correlation of 0.5 for trends."""
REPLICATION_SEEDS = PAPER_TABLE1_SEEDS
"""Seeds behind each of the paper's numbers (5, paper 4.1)."""
VERDICTS = ("supported", "not supported", "contradicted", "inconclusive", "not tested")
CONTEXT = "measured"
"""Verdict of context rows (not a statement of the paper; never aggregated)."""

RULE_TEXT = (
    "**The verdict rule** (`pgsom.claims.verdict`, applied mechanically to every row; "
    "level α = {alpha}, intervals at {level}).\n\n"
    "* *Direction statements* (the paper says an effect has a sign: A beats B, clipping raises "
    "the mean, a band narrows). The row's test gives a two-sided p-value, adjusted by Holm's "
    "method within the row's family (column `family`: all tests of that kind in that protocol). "
    "**supported**: p(Holm) < α and our estimate has the claimed sign; **contradicted**: "
    "p(Holm) < α and the opposite sign; **not supported**: p(Holm) ≥ α although our "
    "{level} CI excludes the effect size the paper claims (the data rule out an effect that "
    "large: an equivalence-type decision, the post-data counterpart of 'the test had the power "
    "to see it'); **inconclusive**: otherwise (not significant, and an effect as large as "
    "claimed is still compatible with our data, or the test is undefined).\n"
    "* *Absence statements* ('little effect'): **contradicted** when p(Holm) < α; **supported** "
    "when not significant and our {level} CI lies within ± the claimed-small effect; "
    "**inconclusive** otherwise.\n"
    "* *Number statements* (the paper reports a value computed from its {m} seeds: a mean, a "
    "std, a median number of episodes). The paper's number is compared with the "
    "*{m}-seed replication distribution*: the same statistic of {m} runs drawn from our runs "
    "by a two-stage bootstrap (resample our runs, then draw {m}), so that both our uncertainty "
    "and the paper's own {m}-seed noise are counted. Its two-sided p-value (where the paper's "
    "number falls in that distribution) is Holm-adjusted within the claim. **supported**: "
    "p(Holm) ≥ α (our implementation gives numbers like the paper's); **contradicted**: "
    "p(Holm) < α; **inconclusive**: undefined (fewer than two runs, or a number of episodes "
    "beyond our budget), or too few resamples for Holm's p-value to be able to fall below α. "
    "Our {level} CI is shown "
    "too; whether the paper's number lies inside it is reported, but it is not the verdict, "
    "since a {m}-seed number misses a {level} CI of many seeds far more often than the CI's "
    "nominal error rate (see the statistics notebook).\n"
    "* Claimed effect sizes: the paper's own number where it gives one (its Table 1 "
    "differences, the 2.1x ratio, its episode counts); otherwise a medium effect: {d} pooled "
    "sd for means, a factor {ratio} for ratios, |ρ| = {rho} for trends.\n"
    "* *Derived statements* (C3–C6) keep the verdicts of the derivations notebook "
    "(`paper/derivations.csv`, exact enumeration and Monte Carlo on a small MDP); "
    "*construction* statements (C7 memory) are checked on the code; *self-checks* (C12) compare "
    "the paper's text with its own Table 1 (a printed number agrees when it equals the table's "
    "to the text's precision). **not tested**: the artifact has no data for it.\n"
    "* *A claim's verdict* aggregates its primary rows (the `{primary}` protocol for "
    "experiments; the notebook's first overall row for C3–C6; the self-checks for C12): "
    "contradicted if any primary row is; else supported if all are; else not supported if any "
    "is; else inconclusive ('not tested' rows are skipped unless all are). The same aggregation "
    "over the `paper` protocol's rows shows what {m} seeds would have concluded.\n"
)


def verdict(kind: str, *, p_holm: float = math.nan, claimed_sign: int = 0,
            observed_sign: float = 0.0, sensitive: bool = False, given: str | None = None,
            alpha: float = ALPHA) -> str:
    """THE rule (see :data:`RULE_TEXT`), one row at a time.

    ``kind``: ``direction`` (claimed_sign +1/-1; observed_sign the sign of our estimate;
    sensitive: our CI excludes the claimed effect size), ``absence`` (sensitive: our CI lies
    within +- the claimed-small effect), ``number`` (p_holm: replication p-value; sensitive:
    the smallest p-value the replication could give, Holm-adjusted, is below alpha),
    ``derived`` / ``self-check`` / ``construction`` (``given`` verdict), ``not tested``,
    ``measured`` (context).
    """
    finite = p_holm is not None and np.isfinite(p_holm)
    if kind == "direction":
        if not finite:
            return "inconclusive"
        if p_holm < alpha:
            if np.sign(observed_sign) == 0:
                return "inconclusive"
            return "supported" if np.sign(observed_sign) == np.sign(claimed_sign) else "contradicted"
        return "not supported" if sensitive else "inconclusive"
    if kind == "absence":
        if not finite:
            return "inconclusive"
        if p_holm < alpha:
            return "contradicted"
        return "supported" if sensitive else "inconclusive"
    if kind == "number":
        if not finite:
            return "inconclusive"
        if p_holm < alpha:
            return "contradicted"
        return "supported" if sensitive else "inconclusive"
    if kind in ("derived", "self-check", "construction"):
        if given not in VERDICTS:
            raise ValueError(f"{kind} row needs a given verdict in {VERDICTS}, got {given!r}")
        return given
    if kind == "not tested":
        return "not tested"
    if kind == "measured":
        return CONTEXT
    raise ValueError(f"unknown statement kind {kind!r}")


def aggregate(verdicts: Iterable[str]) -> str:
    """A claim's verdict from its primary rows: contradicted if any is; else supported if
    all are; else not supported if any is; else inconclusive. 'measured' rows are ignored,
    'not tested' rows too unless every row is 'not tested'; no rows -> inconclusive."""
    v = [x for x in verdicts if x != CONTEXT]
    tested = [x for x in v if x != "not tested"]
    if not tested:
        return "not tested" if v else "inconclusive"
    if "contradicted" in tested:
        return "contradicted"
    if all(x == "supported" for x in tested):
        return "supported"
    if "not supported" in tested:
        return "not supported"
    return "inconclusive"


# --------------------------------------------------------------------------- helpers


def _rng(seed: int, key: str) -> np.random.Generator:
    """An rng per (seed, row key): results do not depend on the order rows are computed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(key.encode()),)))


def _values(finals: pd.DataFrame, protocol: str, variant: str, column: str = "final_return") -> np.ndarray | None:
    g = finals[(finals["protocol"] == protocol) & (finals["variant"] == variant)]
    if g.empty:
        return None
    return g.sort_values("seed")[column].to_numpy(float)


def _has(finals: pd.DataFrame, protocol: str, *variants: str) -> bool:
    sub = finals[finals["protocol"] == protocol]
    return all((sub["variant"] == v).any() for v in variants)


def _curve_matrix(curves: pd.DataFrame, protocol: str, variant: str) -> np.ndarray | None:
    g = curves[(curves["protocol"] == protocol) & (curves["variant"] == variant)]
    if g.empty:
        return None
    return g.pivot(index="seed", columns="episode", values="return").sort_index().to_numpy(float)


def _sign(x: float) -> float:
    return float(np.sign(x)) if x is not None and np.isfinite(x) else 0.0


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and bool(np.isfinite(x))


def _pooled_sd(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size + y.size < 3 or x.size < 1 or y.size < 1:
        return math.nan
    vx = np.var(x, ddof=1) if x.size > 1 else 0.0
    vy = np.var(y, ddof=1) if y.size > 1 else 0.0
    return float(np.sqrt(((x.size - 1) * vx + (y.size - 1) * vy) / (x.size + y.size - 2)))


def _seeds_needed(diff: float, sd: float, power: float = POWER) -> float:
    if not (_finite(diff) and _finite(sd)) or diff == 0:
        return math.nan
    if sd == 0:
        return 2.0
    try:
        return float(stats.seeds_for_power(diff, sd, ALPHA, power, max_n=10_000))
    except ValueError:
        return math.inf


def _power(n: int, diff: float, sd: float) -> float:
    if n < 2 or not (_finite(diff) and _finite(sd)):
        return math.nan
    if sd == 0:
        return 1.0 if diff != 0 else ALPHA
    return stats.power_of_test(n, diff, sd, ALPHA)


def _holm_within(df: pd.DataFrame, p_col: str, out_col: str, by: Sequence[str]) -> pd.DataFrame:
    df[out_col] = math.nan
    if df.empty:
        return df
    for _, sub in df.groupby(list(by), sort=False):
        idx = sub.index
        p = df.loc[idx, p_col].to_numpy(float)
        df.loc[idx, out_col] = stats.holm(p, ALPHA).p_adjusted
    return df


# --------------------------------------------------------------------------- comparisons

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
            if not _has(finals, p, a, b):
                continue
            x, y = _values(finals, p, a, value), _values(finals, p, b, value)
            key = f"{p}|{a}|{b}|{value}"
            w = stats.welch_test(x, y)
            ci = stats.ci_mean_difference(x, y, LEVEL)
            g = stats.hedges_g(x, y, LEVEL)
            # (stats.probability_of_improvement's bootstrap needs two runs per group)
            boot = min(np.sum(~np.isnan(x)), np.sum(~np.isnan(y))) >= 2
            poi = stats.probability_of_improvement(x, y, rng=_rng(seed, "poi|" + key) if boot else None,
                                                   level=LEVEL, n_resamples=n_boot)
            bf = stats.brown_forsythe(x, y)
            ratio = stats.ci_sd_ratio(x, y, _rng(seed, "sd|" + key), LEVEL, n_boot)
            sd = _pooled_sd(x, y)
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
                "pooled_sd": sd, "power_observed": _power(n, w.mean_diff, sd),
                "seeds_for_80": _seeds_needed(w.mean_diff, sd),
            })
    cols = ["protocol", "group", "a", "b", "n_a", "n_b", "diverged_a", "diverged_b", "mean_a",
            "mean_b", "diff", "diff_ci_low", "diff_ci_high", "welch_t", "welch_df", "p",
            "p_holm", "hedges_g", "g_ci_low", "g_ci_high", "poi", "poi_ci_low", "poi_ci_high",
            "sd_a", "sd_b", "sd_ratio", "sd_ratio_ci_low", "sd_ratio_ci_high", "bf_f", "bf_p",
            "bf_p_holm", "pooled_sd", "power_observed", "seeds_for_80", "decision"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = _holm_within(df, "p", "p_holm", ["protocol"])
    df = _holm_within(df, "bf_p", "bf_p_holm", ["protocol"])
    df["decision"] = [_decision(r) for r in df.to_dict("records")]
    return df[cols]


def _decision(r: Mapping[str, Any]) -> str:
    a, b = r["a"], r["b"]
    if not _finite(r["p_holm"]):
        return "undefined (fewer than 2 runs with a final return in a group)"
    if r["p_holm"] < ALPHA:
        return f"{a} {'>' if r['diff'] > 0 else '<'} {b} (Holm p < {ALPHA:g})"
    n = min(r["n_a"], r["n_b"])
    need = r["seeds_for_80"]
    if not _finite(r["power_observed"]):
        return "not significant"
    tail = ("no difference observed" if not _finite(need) and not math.isinf(need or 0)
            else f"more than 10000 seeds per arm would be needed for {POWER:.0%} power" if math.isinf(need)
            else f"{int(need)} seeds per arm would give {POWER:.0%} power at the observed difference")
    return (f"undecided at {n} seeds: power {r['power_observed']:.0%} at the observed "
            f"difference; {tail}")


# --------------------------------------------------------------------------- C7 memory


def optimizer_state_floats(method: str, d: int) -> int:
    """Floats a run keeps between updates in ``method``'s update rule for a policy of ``d``
    parameters: the numel of every tensor of ``transforms.make_rule(...).init`` for one run
    (Adam / PG-SOM: m, v and a step count; RK: k1; pg, npg: none)."""
    import torch

    from pgsom.config import AlgoConfig
    from pgsom.transforms import make_rule

    state = make_rule(AlgoConfig(method=method)).init(torch.zeros(1, d, dtype=torch.float64))

    def count(s) -> int:
        if isinstance(s, torch.Tensor):
            return int(s.numel())
        if isinstance(s, tuple):
            return sum(count(t) for t in s)
        return 0

    return count(state)


def state_memory(methods: Sequence[str] = ("pg", "hessian", "rk", "adam", "npg"),
                 d: int | None = None) -> pd.DataFrame:
    """Per method: ``d`` (CartPole policy parameters, default config), the state floats at
    d, 2d and 3d, ``per_param`` (the slope) and ``constant``, and ``linear`` (exactly
    a d + b: O(d) memory, by construction)."""
    if d is None:
        from pgsom.config import RunConfig
        from pgsom.policy import PolicySpec

        d = PolicySpec(4, 2, RunConfig().hidden).n_params  # CartPole: 4 observations, 2 actions
    rows = []
    for m in methods:
        f1, f2, f3 = (optimizer_state_floats(m, k * d) for k in (1, 2, 3))
        a = (f2 - f1) / d
        rows.append({"method": m, "d": d, "floats": f1, "per_param": a, "constant": f1 - a * d,
                     "linear": (f3 - f2) == (f2 - f1)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    claim: str
    key: str                      # short id, unique within (claim, protocol): macro names
    statement: str
    protocol: str
    kind: str                     # direction, absence, number, derived, self-check, construction, not tested, measured
    paper_value: float = math.nan
    paper_text: str = ""          # the paper's number as printed ("" if none)
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    unit: str = "return"          # return, ratio, rho, episodes, count, fraction, value
    test: str = ""
    family: str = ""
    p_value: float = math.nan
    p_holm: float = math.nan
    claimed_sign: int = 0
    observed_sign: float = 0.0
    claimed_effect: float = math.nan
    sensitive: bool = False
    rep_low: float = math.nan     # m-seed replication interval (number rows)
    rep_high: float = math.nan
    paper_in_ci: float = math.nan  # 1 / 0 / NaN: the paper's number inside our CI
    power: float = math.nan       # power at the claimed effect, where a formula exists
    given: str | None = None
    primary: bool = False
    note: str = ""                # may hold {name} fields filled from ``extras`` (counts)
    verdict: str = ""
    pair: str = ""                # "A|B" of a comparison-family row
    extras: dict = field(default_factory=dict)
    decides: bool = True          # counts toward the claim's verdict in its protocol


def _mean_row(claim, key, statement, p, finals, a, b, *, claimed_sign, claimed_effect,
              kind="direction", note="") -> Row:
    """Welch row for mean(A) - mean(B) of the final return, with the claimed sign / effect
    (return units; NaN -> a medium effect, half the pooled sd). Its Holm p-value is the
    comparison family's (``a``, ``b`` must be a pair of :data:`COMPARISONS`)."""
    x, y = _values(finals, p, a), _values(finals, p, b)
    if x is None or y is None:
        return Row(claim, key, statement, p, kind, test="Welch t", family="means",
                   pair=f"{a}|{b}", note="variant not run" + (f"; {note}" if note else ""))
    w = stats.welch_test(x, y)
    ci = stats.ci_mean_difference(x, y, LEVEL)
    sd = _pooled_sd(x, y)
    effect = claimed_effect if _finite(claimed_effect) else MEDIUM_EFFECT["d"] * sd
    if kind == "absence":
        sensitive = _finite(ci.low) and _finite(effect) and -effect < ci.low and ci.high < effect
    elif claimed_sign > 0:
        sensitive = _finite(ci.high) and _finite(effect) and ci.high < effect
    else:
        sensitive = _finite(ci.low) and _finite(effect) and ci.low > -abs(effect)
    return Row(claim, key, statement, p, kind, estimate=w.mean_diff, ci_low=ci.low,
               ci_high=ci.high, unit="return", test="Welch t (difference of means)",
               family="means", p_value=w.p_value, claimed_sign=claimed_sign,
               observed_sign=_sign(w.mean_diff), claimed_effect=effect, sensitive=bool(sensitive),
               power=_power(min(w.nx, w.ny), effect, sd), note=note, pair=f"{a}|{b}")


def _sd_row(claim, key, statement, p, finals, a, b, *, seed, n_boot, note="") -> Row:
    """Brown-Forsythe row: sd(A) / sd(B) of the final return claimed below 1 (claimed
    effect: a factor 1 / medium); Holm p-value from the comparison family."""
    ratio_claim = 1 / MEDIUM_EFFECT["ratio"]
    x, y = _values(finals, p, a), _values(finals, p, b)
    if x is None or y is None:
        return Row(claim, key, statement, p, "direction", unit="ratio", test="Brown-Forsythe",
                   family="variances", pair=f"{a}|{b}", claimed_sign=-1,
                   claimed_effect=ratio_claim, note="variant not run")
    bf = stats.brown_forsythe(x, y)
    ci = stats.ci_sd_ratio(x, y, _rng(seed, f"sd|{p}|{claim}|{key}"), LEVEL, n_boot)
    sensitive = _finite(ci.low) and ci.low > ratio_claim
    obs = _sign(bf.sd_ratio - 1) if _finite(bf.sd_ratio) else (1.0 if bf.sd_ratio == math.inf else 0.0)
    return Row(claim, key, statement, p, "direction", estimate=bf.sd_ratio, ci_low=ci.low,
               ci_high=ci.high, unit="ratio", test="Brown-Forsythe (sd ratio, bootstrap CI)",
               family="variances", p_value=bf.p_value, claimed_sign=-1, observed_sign=obs,
               claimed_effect=ratio_claim, sensitive=bool(sensitive), note=note, pair=f"{a}|{b}")


def _censored(finals, p, v, thr) -> tuple[np.ndarray, np.ndarray] | None:
    e = _values(finals, p, v, f"episodes_to_{thr}")
    if e is None:
        return None
    return e, ~np.isnan(e)


def _episodes_row(claim, key, statement, p, finals, fast, slow, thr, budget, *, claimed_ratio,
                  seed, n_boot) -> Row:
    """``fast`` reaches ``thr`` in fewer episodes than ``slow``: the ratio of Kaplan-Meier
    median episodes slow / fast with :func:`pgsom.stats.median_ratio_test` (bootstrap test
    and CI, censored runs bounded on the conservative side for each end)."""
    a, b = _censored(finals, p, fast, thr), _censored(finals, p, slow, thr)
    if a is None or b is None:
        return Row(claim, key, statement, p, "direction", unit="ratio", test="median ratio",
                   family="episodes", claimed_sign=1, claimed_effect=claimed_ratio,
                   note="variant not run")
    t = stats.median_ratio_test(a[0], a[1], b[0], b[1], budget,
                                _rng(seed, f"ratio|{p}|{fast}|{slow}|{thr}"), LEVEL, n_boot)
    lr = stats.logrank_test(a[0], a[1], b[0], b[1], budget)
    sensitive = _finite(t.high) and t.high < claimed_ratio
    obs = _sign(np.log(t.estimate)) if _finite(t.estimate) and t.estimate > 0 else (
        1.0 if t.estimate == math.inf else -1.0 if t.estimate == 0 else 0.0)
    note = (f"runs reaching {thr}: `{fast}` {{ra}} of {{na}}, `{slow}` {{rb}} of {{nb}} (the "
            "others censored at the budget); log-rank test of the whole distributions, "
            "unadjusted p: {logrank}")
    extras = {"ra": int(a[1].sum()), "na": int(a[1].size), "rb": int(b[1].sum()),
              "nb": int(b[1].size), "logrank": ("p", lr.p_value)}
    return Row(claim, key, statement, p, "direction", estimate=t.estimate, ci_low=t.low,
               ci_high=t.high, unit="ratio",
               test="ratio of Kaplan-Meier median episodes, bootstrap (censoring bounded)",
               family="episodes", p_value=t.p_value, claimed_sign=1, observed_sign=obs,
               claimed_effect=claimed_ratio, sensitive=bool(sensitive), note=note,
               extras=extras)


def _number_row(claim, key, statement, p, x, paper_text, statistic, *, seed, n_boot,
                family, unit="return", note="", ci: stats.CI | None = None,
                extras: dict | None = None, budget: int | None = None) -> Row:
    """Number row: the paper's value vs the 5-seed replication distribution of
    ``statistic`` ('mean', 'std' or 'km_median') of our runs ``x``."""
    value = float(paper_text)
    if x is None:
        return Row(claim, key, statement, p, "number", paper_value=value, paper_text=paper_text,
                   unit=unit, test=f"{REPLICATION_SEEDS}-seed replication", family=family, note="variant not run")
    fn: Callable = {"mean": np.mean, "std": lambda a, axis=-1: np.std(a, axis=axis, ddof=1),
                    "km_median": stats.km_median_administrative}[statistic]
    rep = stats.replication_interval(x, value, REPLICATION_SEEDS,
                                     _rng(seed, f"rep|{p}|{claim}|{key}"), fn, LEVEL, n_boot)
    if statistic == "km_median" and budget is not None and value >= budget:
        # replications censored at the budget say "more than the budget": they cannot
        # contradict a number of episodes the budget does not reach
        rep = rep._replace(p_value=math.nan)
        note = (note + "; " if note else "") + "the paper's number is beyond our budget"
    if ci is None:
        ci = stats.ci_t(x, LEVEL) if statistic == "mean" else stats.ci_std(x, LEVEL)
    in_ci = (float(ci.low <= value <= ci.high) if _finite(ci.low) and _finite(ci.high)
             else math.nan)
    return Row(claim, key, statement, p, "number", paper_value=value, paper_text=paper_text,
               estimate=float(ci.estimate), ci_low=ci.low, ci_high=ci.high, unit=unit,
               test=f"{REPLICATION_SEEDS}-seed replication of the {statistic.replace('_', ' ')}",
               family=family, p_value=rep.p_value, rep_low=rep.low, rep_high=rep.high,
               paper_in_ci=in_ci, note=note, extras=extras or {})


def _slug(*parts: str) -> str:
    return "-".join(str(p) for p in parts)


def _c1(finals, protocols, budget, seed, n_boot) -> list[Row]:
    out = []
    claimed = PAPER_CLAIMS["C1"]["ratio"]
    for p in protocols:
        ratios = []
        for thr in (200, 400):
            for base in ("pg", "adam", "npg"):
                r = _episodes_row("C1", _slug("hessian", base, thr),
                                  f"PG-SOM (`hessian`) reaches {thr} in fewer episodes than `{base}`",
                                  p, finals, "hessian", base, thr, budget, claimed_ratio=claimed,
                                  seed=seed, n_boot=n_boot)
                ratios.append(r.estimate)
                out.append(r)
        best = np.nanmax(ratios) if np.isfinite(ratios).any() else math.nan
        out.append(Row("C1", "largest-ratio", "largest of the six ratios of median episodes "
                       "(the paper's 'up to')", p, "measured", paper_value=claimed,
                       paper_text=f"{claimed:g}", estimate=best, unit="ratio",
                       test="maximum of the rows above"))
    return out


def _c2(finals, protocols, seed, n_boot) -> list[Row]:
    out = []
    for p in protocols:
        for base in ("pg", "adam", "npg"):
            out.append(_sd_row("C2", _slug("hessian", base),
                               f"across-seed sd of the final return: `hessian` smaller than `{base}`",
                               p, finals, "hessian", base, seed=seed, n_boot=n_boot))
    return out


def _derived(derivations: pd.DataFrame | None, claim: str) -> list[Row]:
    proto = "exact MDP (derivations)"
    if derivations is None or derivations.empty:
        return [Row(claim, "missing", "no derivations table (run notebooks/derivations.ipynb)",
                    proto, "derived", given="inconclusive", primary=True,
                    test="derivations notebook")]
    g = derivations[(derivations["claim"] == claim) & (derivations["verdict"] != CONTEXT)]
    g = g[g["verdict"].isin(VERDICTS)]
    if g.empty:
        return [Row(claim, "missing", "the derivations table has no verdict for this claim",
                    proto, "derived", given="inconclusive", primary=True,
                    test="derivations notebook")]
    overall = [i for i, q in zip(g.index, g["quantity"]) if str(q).startswith("overall:")]
    primary = overall[0] if overall else None
    rows = []
    for k, (i, r) in enumerate(g.iterrows()):
        rows.append(Row(claim, f"row{k}", str(r["quantity"]), proto, "derived",
                        estimate=float(r["value"]), ci_low=float(r["ci_low"]),
                        ci_high=float(r["ci_high"]), unit="value",
                        test="derivations notebook", given=str(r["verdict"]),
                        primary=(i == primary) if primary is not None else True))
    return rows


def _c7(state: pd.DataFrame | None) -> list[Row]:
    proto = "code (by construction)"
    rows = []
    if state is not None and not state.empty:
        s = state.set_index("method")
        if "hessian" in s.index:
            h = s.loc["hessian"]
            ok = bool(h["linear"])
            note = "state floats per run: " + ", ".join(f"`{m}` {{{m}}}" for m in s.index)
            extras = {m: int(s.loc[m, "floats"]) for m in s.index}
            rows.append(Row("C7", "state-floats", "PG-SOM's optimiser state per run is O(d) "
                            "(floats kept between updates for the CartPole policy)", proto,
                            "construction", estimate=float(h["floats"]), unit="count",
                            test="numel of the state of transforms.make_rule, at three policy sizes (linear in d?)",
                            given="supported" if ok else "contradicted", primary=True,
                            note=note, extras=extras))
            rows.append(Row("C7", "per-param", "state floats per policy parameter (PG-SOM)",
                            proto, "measured", estimate=float(h["per_param"]), unit="count",
                            test="slope of the state size in d"))
            if "adam" in s.index:
                rows.append(Row("C7", "per-param-adam", "state floats per policy parameter (Adam)",
                                proto, "measured", estimate=float(s.loc["adam", "per_param"]),
                                unit="count", test="slope of the state size in d"))
            rows.append(Row("C7", "d", "policy parameters d (CartPole, default MLP)", proto,
                            "measured", estimate=float(h["d"]), unit="count", test="PolicySpec.n_params"))
    if not rows:
        rows.append(Row("C7", "state-floats", "PG-SOM's optimiser state per run is O(d)", proto,
                        "construction", given="inconclusive", primary=True, test="not computed"))
    rows.append(Row("C7", "timing", "one extra backward pass; wall-clock slowdown per update",
                    "benchmark (not seeded)", "not tested", primary=True,
                    test="`python -m pgsom bench` (README, Performance)",
                    note="timings are not deterministic and are kept out of the seeded report"))
    return rows


def _c8(finals, protocols, budget, seed, n_boot) -> list[Row]:
    info = PAPER_CLAIMS["C8"]
    thr = info["threshold"]
    out = []
    for p in protocols:
        for m, ep in info["episodes"].items():
            c = _censored(finals, p, m, thr)
            if c is None:
                out.append(_number_row("C8", _slug(m, "median"),
                                       f"`{m}`: median episodes to reach {thr}", p, None,
                                       str(ep), "km_median", seed=seed, n_boot=n_boot,
                                       family="numbers C8", unit="episodes"))
                continue
            e = np.where(c[1], c[0], np.inf)
            boot = stats.bootstrap_test(lambda a: stats.km_median_administrative(a, axis=-1), (e,),
                                        _rng(seed, f"km|{p}|{m}"), null=0.0, level=LEVEL,
                                        n_resamples=n_boot)
            ci = stats.CI(float(stats.km_median_administrative(e)), boot.low, boot.high, LEVEL,
                          "percentile bootstrap")
            out.append(_number_row(
                "C8", _slug(m, "median"), f"`{m}`: median episodes to reach {thr} (Kaplan-Meier)",
                p, e, str(ep), "km_median", seed=seed, n_boot=n_boot, family="numbers C8",
                unit="episodes", ci=ci, budget=budget,
                note=f"{{reached}} of {{n}} runs reach {thr}; the others are censored at the budget",
                extras={"reached": int(c[1].sum()), "n": int(c[1].size)}))
        eps = info["episodes"]
        for fast, slow in (("rk", "pg"), ("pg", "hessian")):
            out.append(_episodes_row("C8", _slug(fast, slow, thr),
                                     f"`{fast}` reaches {thr} sooner than `{slow}`", p, finals,
                                     fast, slow, thr, budget,
                                     claimed_ratio=eps[slow] / eps[fast], seed=seed,
                                     n_boot=n_boot))
    return out


def _band(r: np.ndarray, lo: int, hi: int, smooth: int) -> np.ndarray:
    from pgsom.plots import trailing_mean

    return trailing_mean(r, smooth)[:, lo - 1:hi]


def _sd_over_runs(a: np.ndarray) -> np.ndarray:
    """Across-run sd (ddof 1) per episode of a batch (B, runs, episodes) -> (B, episodes);
    a diverged run (NaN after it diverged) is left out of the episodes it has no return for."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(a, axis=-2, ddof=1)


def c9_window(budget: int) -> tuple[int, int, int]:
    """Episodes of claim C9: the band from ``budget/5`` to the end (100..500 for 500), and
    its 'until late' part ending at ``4 budget / 5`` (400)."""
    lo = max(1, int(round(budget / 5)))
    return lo, budget, max(lo, int(round(4 * budget / 5)))


C9_SMOOTH = 10
"""Trailing-mean window (episodes) of the returns whose across-seed sd is C9's band (as
Figure 2 draws them)."""


def _mean_width(a: np.ndarray, part: slice) -> np.ndarray:
    """Mean across-run sd over the episodes ``part`` of a batch (B, runs, episodes)."""
    return _sd_over_runs(a[..., part]).mean(axis=-1)


def _c9(curves, protocols, budget, seed, n_boot, smooth=C9_SMOOTH) -> list[Row]:
    """C9 on the band width w(t) = across-seed sd of the trailing-mean return at episode t,
    over the window ``c9_window``. 'Narrows': the mean width over the last fifth of the
    window divided by that over its first fifth (< 1); 'Hessian stays wide until late':
    the mean width of `hessian` over the window up to the late episode divided by `rk`'s
    (> 1). Both by the percentile bootstrap over runs (ratios of averaged sds are nearly
    unbiased under resampling; a rank correlation of w(t) is not, so Spearman's rho of w(t)
    against t is shown as a description only)."""
    lo, hi, late = c9_window(budget)
    k = max(1, (hi - lo + 1) // 5)
    early, last = slice(0, k), slice(hi - lo + 1 - k, hi - lo + 1)
    out = []
    for p in protocols:
        mats = {m: _curve_matrix(curves, p, m) for m in ("rk", "hessian", "pg")}
        ok = {m: r is not None and r.shape[0] >= 2 for m, r in mats.items()}
        bands = {m: _band(r, lo, hi, smooth) for m, r in mats.items() if ok[m]}
        key, statement = "rk-narrows", ("`rk`'s band narrows: mean band width over the last fifth "
                                        "of the C9 window / over its first fifth")
        if ok["rk"]:
            bt = stats.bootstrap_test(lambda a: _mean_width(a, last) / _mean_width(a, early),
                                      (bands["rk"],), _rng(seed, f"c9n|{p}"), null=1.0,
                                      level=LEVEL, n_resamples=n_boot)
            claim_r = 1 / MEDIUM_EFFECT["ratio"]
            out.append(Row("C9", key, statement, p, "direction", estimate=bt.estimate,
                           ci_low=bt.low, ci_high=bt.high, unit="ratio",
                           test="ratio of mean band widths, percentile bootstrap over runs",
                           family="C9", p_value=bt.p_value, claimed_sign=-1,
                           observed_sign=_sign(bt.estimate - 1), claimed_effect=claim_r,
                           sensitive=bool(_finite(bt.low) and bt.low > claim_r)))
        else:
            out.append(Row("C9", key, statement, p, "direction", unit="ratio", family="C9",
                           test="bootstrap over runs", claimed_sign=-1,
                           note="variant not run or fewer than two runs"))
        key = "hessian-vs-rk-width"
        statement = ("the `hessian` band is wider than the `rk` band until late: ratio of their "
                     "mean band widths from the start of the C9 window to the late episode")
        if ok["rk"] and ok["hessian"]:
            upto = slice(0, late - lo + 1)
            bt = stats.bootstrap_test(lambda a, b: _mean_width(a, upto) / _mean_width(b, upto),
                                      (bands["hessian"], bands["rk"]), _rng(seed, f"c9w|{p}"),
                                      null=1.0, level=LEVEL, n_resamples=n_boot)
            out.append(Row("C9", key, statement, p, "direction", estimate=bt.estimate,
                           ci_low=bt.low, ci_high=bt.high, unit="ratio",
                           test="ratio of mean band widths, percentile bootstrap over runs",
                           family="C9", p_value=bt.p_value, claimed_sign=1,
                           observed_sign=_sign(bt.estimate - 1),
                           claimed_effect=MEDIUM_EFFECT["ratio"],
                           sensitive=bool(_finite(bt.high) and bt.high < MEDIUM_EFFECT["ratio"])))
        else:
            out.append(Row("C9", key, statement, p, "direction", unit="ratio", family="C9",
                           test="bootstrap over runs", claimed_sign=1,
                           note="variant not run or fewer than two runs"))
        for m in ("rk", "hessian", "pg"):
            if ok[m]:
                rho = stats.spearman_trend(_sd_over_runs(bands[m][None])[0])
                out.append(Row("C9", _slug(m, "rho"), f"`{m}`: Spearman ρ of the band width "
                               "against the episode (description: -1 = narrows steadily)", p,
                               "measured", estimate=float(rho), unit="rho",
                               test="Spearman rank correlation over the C9 window"))
    return out


def _paper_diff(a: str, b: str) -> float:
    if a in PAPER_TABLE1 and b in PAPER_TABLE1:
        return PAPER_TABLE1[a][0] - PAPER_TABLE1[b][0]
    return math.nan


def _c10(finals, protocols, seed, n_boot, clip_fraction: pd.DataFrame | None) -> list[Row]:
    out = []
    for p in protocols:
        for m in ("pg", "hessian", "rk"):
            for stab, what in (("clip", "clipping with the doubled rate (`clip`)"),
                               ("clip_same_lr", "clipping alone, at the base rate")):
                v = f"{m}+{stab}"
                out.append(_mean_row("C10", _slug(v, "mean"), f"{what} raises the mean of `{m}` (`{v}` − `{m}`)",
                                     p, finals, v, m, claimed_sign=1,
                                     claimed_effect=_paper_diff(f"{m}+clip", m)))
                out.append(_sd_row("C10", _slug(v, "sd"), f"{what} cuts the across-seed sd of `{m}` (`{v}` / `{m}`)",
                                   p, finals, v, m, seed=seed, n_boot=n_boot))
            v = f"{m}+lr2"
            r = _mean_row("C10", _slug(v, "mean"), f"attribution: the doubled rate alone (`{v}` − `{m}`)",
                          p, finals, v, m, claimed_sign=1, claimed_effect=math.nan)
            r.kind = "measured"
            out.append(r)
            if clip_fraction is not None and not clip_fraction.empty:
                for v2 in (f"{m}+clip", f"{m}+clip_same_lr"):
                    cf = clip_fraction[(clip_fraction["protocol"] == p) & (clip_fraction["variant"] == v2)]
                    if not cf.empty:
                        out.append(Row("C10", _slug(v2, "fired"), f"fraction of the gradient "
                                       f"estimates of `{v2}` whose norm exceeded the clip norm",
                                       p, "measured", estimate=float(cf["fraction_clipped"].iloc[0]),
                                       unit="fraction", test="count over all updates of all runs"))
    return out


def _c11(finals, protocols, seed, n_boot) -> list[Row]:
    out = []
    for p in protocols:
        for v, (mean, sd) in PAPER_TABLE1.items():
            x = _values(finals, p, v)
            out.append(_number_row("C11", _slug(v, "mean"), f"`{v}`: mean final-episode return", p,
                                   x, f"{mean:.2f}", "mean", seed=seed, n_boot=n_boot,
                                   family="numbers C11"))
            out.append(_number_row("C11", _slug(v, "std"), f"`{v}`: std of the final-episode return",
                                   p, x, f"{sd:.2f}", "std", seed=seed, n_boot=n_boot,
                                   family="numbers C11"))
    return out


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def paper_self_checks() -> list[Row]:
    """C12: the paper's text against its own Table 1 (mechanical: a printed number agrees
    when |text - table| <= half a unit of the text's last digit; a percentage when it is
    the table's relative change to within 0.5 points; an ordering when the table's means
    are in that order; 'improves X but little effect on Y' when Y's relative change is
    below every X's; 'across the board' when it holds for every method)."""
    info = PAPER_CLAIMS["C12"]
    proto = "paper text vs its Table 1"
    rows = []
    for k, (sec, quote, v, stat, text) in enumerate(info["numbers"]):
        table = PAPER_TABLE1[v][0 if stat == "mean" else 1]
        ok = abs(float(text) - table) <= 0.5 * 10 ** -_decimals(text) + 1e-9
        rows.append(Row("C12", f"text{k}", f"{sec}: \"{quote}\" — {stat} of `{v}`", proto,
                        "self-check", paper_value=float(text), paper_text=text, estimate=table,
                        unit="return", test="text vs Table 1 (to the text's precision)",
                        given="supported" if ok else "contradicted", primary=True))
    for k, (sec, quote, a, b, text) in enumerate(info["percents"]):
        change = 100 * (PAPER_TABLE1[b][0] / PAPER_TABLE1[a][0] - 1)
        ok = abs(change - float(text)) <= 0.5 + 1e-9
        rows.append(Row("C12", f"pct{k}", f"{sec}: \"{quote}\" — `{a}` to `{b}`", proto,
                        "self-check", paper_value=float(text), paper_text=text, estimate=change,
                        unit="percent", test="text vs Table 1 (relative change, %)",
                        given="supported" if ok else "contradicted", primary=True))
    for k, (sec, quote, hi, lo) in enumerate(info["orderings"]):
        ok = PAPER_TABLE1[hi][0] > PAPER_TABLE1[lo][0]
        rows.append(Row("C12", f"order{k}", f"{sec}: \"{quote}\" (`{hi}` > `{lo}`)", proto,
                        "self-check", estimate=PAPER_TABLE1[hi][0] - PAPER_TABLE1[lo][0],
                        unit="return", test="Table 1 means in the stated order",
                        given="supported" if ok else "contradicted", primary=True,
                        note=f"Table 1: {PAPER_TABLE1[hi][0]:.2f} vs {PAPER_TABLE1[lo][0]:.2f}"))
    sec, quote, improves, little = info["entropy"]
    rel = {m: 100 * (PAPER_TABLE1[f"{m}+entropy"][0] / PAPER_TABLE1[m][0] - 1) for m in (*improves, *little)}
    ok = max(abs(rel[m]) for m in little) < min(rel[m] for m in improves)
    rows.append(Row("C12", "entropy", f"{sec}: \"{quote}\"", proto, "self-check",
                    estimate=rel[little[0]], unit="percent",
                    test="Table 1 relative changes with entropy: the 'little' one below every 'improves' one",
                    given="supported" if ok else "contradicted", primary=True,
                    note="Table 1 mean changes with entropy: " + ", ".join(f"`{m}` {{{m}}}" for m in rel),
                    extras={m: ("percent", rel[m]) for m in rel}))
    sec, quote, methods = info["clipping"]
    up = all(PAPER_TABLE1[f"{m}+clip"][0] > PAPER_TABLE1[m][0] for m in methods)
    down = all(PAPER_TABLE1[f"{m}+clip"][1] < PAPER_TABLE1[m][1] for m in methods)
    rows.append(Row("C12", "clip-mean", f"{sec}: \"{quote}\" — means", proto, "self-check",
                    unit="value", test="Table 1: mean with clip above mean without, every method",
                    given="supported" if up else "contradicted", primary=True))
    rows.append(Row("C12", "clip-sd", f"{sec}: \"{quote}\" — stds", proto, "self-check",
                    unit="value", test="Table 1: std with clip below std without, every method",
                    given="supported" if down else "contradicted", primary=True,
                    note="Table 1 stds: " + ", ".join(
                        f"{m} {PAPER_TABLE1[m][1]:.2f} -> {PAPER_TABLE1[m + '+clip'][1]:.2f}" for m in methods)))
    return rows


def _c12_data(finals, protocols, seed, n_boot) -> list[Row]:
    info = PAPER_CLAIMS["C12"]
    out = []
    for p in protocols:
        for k, (sec, quote, v, stat, text) in enumerate(info["numbers"][:4]):
            out.append(_number_row("C12", _slug(v, stat, "text"),
                                   f"{sec}: `{v}` {stat} as the text states it", p,
                                   _values(finals, p, v), text, stat, seed=seed, n_boot=n_boot,
                                   family="numbers C12"))
        for sec, quote, hi, lo in info["orderings"]:
            out.append(_mean_row("C12", _slug(hi, "beats", lo), f"{sec}: `{hi}` beats `{lo}`", p,
                                 finals, hi, lo, claimed_sign=1, claimed_effect=math.nan))
        sec, quote, improves, little = info["entropy"]
        for m in improves:
            out.append(_mean_row("C12", _slug(m, "entropy"), f"{sec}: entropy improves `{m}`", p,
                                 finals, f"{m}+entropy", m, claimed_sign=1, claimed_effect=math.nan))
        for m in little:
            out.append(_mean_row("C12", _slug(m, "entropy"), f"{sec}: entropy has little effect on `{m}`",
                                 p, finals, f"{m}+entropy", m, claimed_sign=0,
                                 claimed_effect=math.nan, kind="absence"))
    for r in out:
        r.decides = False  # C12's verdict is the paper against itself; these rows inform
    return out


def claim_rows(finals: pd.DataFrame, curves: pd.DataFrame, derivations: pd.DataFrame | None, *,
               budget: int, n_boot: int = 10_000, seed: int = 0,
               clip_fraction: pd.DataFrame | None = None,
               state: pd.DataFrame | None = None, primary: str = "powered") -> pd.DataFrame:
    """Every audited statement as a row (see :class:`Row`), Holm-adjusted within its family
    and protocol, with its verdict from :func:`verdict`. ``primary``: the protocol whose rows
    decide a claim (the last protocol when it is absent)."""
    protocols = list(dict.fromkeys(finals["protocol"]))
    rows: list[Row] = []
    rows += _c1(finals, protocols, budget, seed, n_boot)
    rows += _c2(finals, protocols, seed, n_boot)
    for c in ("C3", "C4", "C5", "C6"):
        rows += _derived(derivations, c)
    rows += _c7(state)
    rows += _c8(finals, protocols, budget, seed, n_boot)
    rows += _c9(curves, protocols, budget, seed, n_boot)
    rows += _c10(finals, protocols, seed, n_boot, clip_fraction)
    rows += _c11(finals, protocols, seed, n_boot)
    rows += paper_self_checks()
    rows += _c12_data(finals, protocols, seed, n_boot)
    rows.append(Row("C13", "benchmarks", "gains on five benchmarks", "—", "not tested",
                    primary=True, test="—",
                    note="only `CartPole-v1` is implemented (`pgsom.envs`); the paper does not "
                         "name its other benchmarks"))
    df = pd.DataFrame([{f.name: getattr(r, f.name) for f in fields(Row)} for r in rows])
    df["decides"] = df["decides"].astype(bool)
    main = primary if primary in protocols else (protocols[-1] if protocols else primary)
    experimental = df["kind"].isin(["direction", "absence", "number"])
    df.loc[experimental, "primary"] = (df.loc[experimental, "protocol"] == main) & df.loc[experimental, "decides"]
    # comparison-family rows ("means", "variances") take the family's Holm p-values
    # (_apply_family); the others are adjusted within (protocol, family) among these rows
    tested = (df["kind"].isin(["direction", "absence", "number"]) & df["family"].ne("")
              & ~df["family"].isin(["means", "variances"]))
    sub = df[tested].copy()
    sub = _holm_within(sub, "p_value", "p_holm", ["protocol", "family"])
    df.loc[tested, "p_holm"] = sub["p_holm"]
    # a number row can only be contradicted if its family's Holm p-value can fall below
    # ALPHA: the smallest replication p-value is 2 / (n_boot + 1), times the family size
    number = df["kind"].eq("number") & df["p_value"].notna()
    size = df[number].groupby(["protocol", "family"])["p_value"].transform("size")
    df.loc[number, "sensitive"] = (size * 2 / (n_boot + 1)) < ALPHA
    df.attrs["primary"] = main
    return df


def _apply_family(df: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Rows testing a pair of the comparison family take its Holm-adjusted p-value (the
    family is all of :data:`COMPARISONS` that were run, not only the pairs a claim quotes)."""
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


def _verdicts(df: pd.DataFrame) -> pd.DataFrame:
    df["verdict"] = [
        verdict(r["kind"], p_holm=r["p_holm"], claimed_sign=int(r["claimed_sign"]),
                observed_sign=r["observed_sign"], sensitive=bool(r["sensitive"]),
                given=r["given"] if isinstance(r["given"], str) else None)
        for r in df.to_dict("records")
    ]
    return df


def claim_verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the verdict of its primary rows (:func:`aggregate`) and what the
    same aggregation gives over the ``paper`` protocol's rows (5 seeds)."""
    out = []
    for c in CLAIM_IDS:
        g = rows[rows["claim"] == c]
        prim = g[g["primary"].astype(bool)]
        exp = g[g["kind"].isin(["direction", "absence", "number"]) & g["decides"].astype(bool)]
        paper_rows = exp[exp["protocol"] == "paper"]
        if not exp.empty:
            five = aggregate(paper_rows["verdict"]) if not paper_rows.empty else "n/a"
        else:
            five = "same (not an experiment)"
        counts = prim["verdict"].value_counts()
        out.append({
            "claim": c, "where": PAPER_CLAIMS[c]["where"], "short": PAPER_CLAIMS[c]["short"],
            "verdict": aggregate(prim["verdict"]), "verdict_paper_protocol": five,
            "n_primary": len(prim),
            **{f"n_{v.replace(' ', '_')}": int(counts.get(v, 0)) for v in VERDICTS},
        })
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- numbers / macros

_ONES = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
         "Eleven", "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen",
         "Eighteen", "Nineteen"]
_TENS = ["", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]


def _words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return _ONES[n // 100] + "Hundred" + (_words(n % 100) if n % 100 else "")
    return "".join(_ONES[int(c)] for c in str(n))


def macro_name(*parts: str, prefix: str = "pgsom") -> str:
    """A LaTeX macro name (letters only) from parts: ``("C8", "rk-median", "powered")`` ->
    ``pgsomCEightRkMedianPowered``; digit runs become words."""
    out = [prefix]
    for part in parts:
        for tok in re.findall(r"[A-Za-z]+|\d+", str(part)):
            out.append(_words(int(tok)) if tok.isdigit() else tok[0].upper() + tok[1:])
    name = "".join(out)
    assert re.fullmatch(r"[A-Za-z]+", name), name
    return name


def _tex_value(s: str) -> str:
    return (s.replace("%", r"\%").replace("−", "-").replace("-", "$-$").replace("> ", "$>$")
            .replace("< ", "$<$").replace("∞", r"$\infty$").replace("n/a", "n/a"))


@dataclass
class Numbers:
    """Formats numbers for claims.md and registers each as a LaTeX macro. With
    ``placeholder`` the formatter returns ``⟪name⟫`` instead (the test's way of checking
    that every number from our data goes through a macro)."""

    placeholder: bool = False
    macros: dict[str, str] = field(default_factory=dict)

    def __call__(self, key: Sequence[str], value: float, unit: str = "return", *,
                 budget: int | None = None) -> str:
        name = macro_name(*key)
        text = format_value(value, unit, budget=budget)
        old = self.macros.get(name)
        if old is not None and old != text:
            raise ValueError(f"macro {name} registered twice with different values: {old} / {text}")
        self.macros[name] = text
        return f"⟪{name}⟫" if self.placeholder else text

    def tex(self) -> str:
        lines = ["% Generated by pgsom.claims (notebooks/statistics.ipynb); do not edit.",
                 "% Every number of paper/claims.md that comes from our runs, as a macro."]
        lines += [rf"\newcommand{{\{n}}}{{{_tex_value(v)}}}" for n, v in self.macros.items()]
        return "\n".join(lines) + "\n"


def format_value(value: float, unit: str = "return", *, budget: int | None = None) -> str:
    """The one number format of the report per unit."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = float(value)
    if math.isinf(v):
        if unit == "episodes" and budget is not None:
            return f"> {budget}"
        return "∞" if v > 0 else "−∞"
    if unit == "p":
        return "< 0.001" if v < 0.001 else f"{v:.3f}"
    if unit in ("count", "episodes", "int"):
        return f"{v:.0f}"
    if unit in ("ratio", "rho", "g", "value"):
        return f"{v:.2f}" if abs(v) < 1000 else f"{v:.3g}"
    if unit == "fraction":
        return f"{100 * v:.1f}%"
    if unit == "percent":
        return f"{v:.1f}%"
    return f"{v:.1f}"


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    rows: pd.DataFrame
    claims: pd.DataFrame
    comparisons: pd.DataFrame
    finals_summary: pd.DataFrame
    meta: dict[str, Any]

    def markdown(self, numbers: Numbers | None = None) -> str:
        return claims_markdown(self, numbers if numbers is not None else Numbers())

    def numbers(self) -> Numbers:
        n = Numbers()
        claims_markdown(self, n)
        return n


def _final_vs_eval(finals: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (p, v), g in finals.groupby(["protocol", "variant"], sort=False):
        f, e = g["final_return"].to_numpy(float), g["eval_return"].to_numpy(float)
        cf, ce = stats.ci_t(f, LEVEL), stats.ci_t(e, LEVEL)
        rows.append({"protocol": p, "variant": v, "n": len(g), "diverged": int(g["diverged"].sum()),
                     "final_mean": cf.estimate, "final_low": cf.low, "final_high": cf.high,
                     "eval_mean": ce.estimate, "eval_low": ce.low, "eval_high": ce.high})
    return pd.DataFrame(rows)


def build_report(finals: pd.DataFrame, curves: pd.DataFrame,
                 derivations: pd.DataFrame | None = None, *, budget: int, n_boot: int = 10_000,
                 seed: int = 0, clip_fraction: pd.DataFrame | None = None,
                 state: pd.DataFrame | None = None, primary: str = "powered",
                 protocol_info: Mapping[str, tuple[int, int]] | None = None,
                 comparisons: pd.DataFrame | None = None) -> Report:
    """The claims report from the tidy data (see the module doc). ``protocol_info``:
    protocol -> (seeds, root seed), for the data section; ``comparisons``: the frame of
    :func:`comparison_family` with the same ``n_boot`` and ``seed`` if already computed."""
    if comparisons is None:
        comparisons = comparison_family(finals, n_boot=n_boot, seed=seed)
    rows = claim_rows(finals, curves, derivations, budget=budget, n_boot=n_boot, seed=seed,
                      clip_fraction=clip_fraction, state=state, primary=primary)
    rows = _apply_family(rows, comparisons)
    rows = _verdicts(rows)
    claims = claim_verdicts(rows)
    if protocol_info is None:
        protocol_info = {p: (int(g["seed"].nunique()), int(g["root_seed"].iloc[0]))
                         for p, g in finals.groupby("protocol", sort=False)}
    from pgsom.experiments import threshold_window

    meta = {"budget": budget, "n_boot": n_boot, "seed": seed, "primary": rows.attrs["primary"],
            "window": threshold_window(budget),
            "protocols": dict(protocol_info),
            "diverged": {p: int(g["diverged"].sum()) for p, g in finals.groupby("protocol", sort=False)},
            "runs": {p: len(g) for p, g in finals.groupby("protocol", sort=False)}}
    return Report(rows, claims, comparisons, _final_vs_eval(finals), meta)


# --------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row_key(r: Mapping[str, Any]) -> tuple[str, ...]:
    proto = {"paper": "Paper", "powered": "Powered"}.get(r["protocol"], "")
    return (r["claim"], r["key"], proto)


def _ours(r: Mapping[str, Any], N: Numbers, budget: int) -> str:
    unit = r["unit"]
    if r["kind"] in ("not tested",):
        return "—"
    if r["kind"] == "self-check":
        if not _finite(r["estimate"]):
            return "—"
        return "Table 1: " + N((*_row_key(r), "table"), r["estimate"], unit)
    est = N((*_row_key(r), "est"), r["estimate"], unit, budget=budget)
    if _finite(r["ci_low"]) or _finite(r["ci_high"]) or (isinstance(r["ci_high"], float) and math.isinf(r["ci_high"])):
        lo = N((*_row_key(r), "low"), r["ci_low"], unit, budget=budget)
        hi = N((*_row_key(r), "high"), r["ci_high"], unit, budget=budget)
        if r["kind"] == "derived" and lo == hi == est:
            return est
        return f"{est} [{lo}, {hi}]"
    return est


def _rep(r: Mapping[str, Any], N: Numbers, budget: int) -> str:
    if r["kind"] != "number":
        return ""
    lo = N((*_row_key(r), "replow"), r["rep_low"], r["unit"], budget=budget)
    hi = N((*_row_key(r), "rephigh"), r["rep_high"], r["unit"], budget=budget)
    return f"[{lo}, {hi}]"


def _p(r: Mapping[str, Any], N: Numbers) -> str:
    if not _finite(r["p_holm"]):
        return "—"
    return N((*_row_key(r), "pholm"), r["p_holm"], "p")


def _paper_cell(r: Mapping[str, Any]) -> str:
    if r["paper_text"]:
        return str(r["paper_text"])
    return ""


def _claim_table(g: pd.DataFrame, N: Numbers, budget: int, *, replication: bool) -> list[str]:
    head = ["Statement", "Protocol", "Paper", f"Ours [{LEVEL:.0%} CI]"]
    if replication:
        head.append(f"{REPLICATION_SEEDS}-seed replication")
    head += ["Test", "p (Holm)", "Verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in g.to_dict("records"):
        cells = [_md_cell(r["statement"]), _md_cell(r["protocol"]), _md_cell(_paper_cell(r)),
                 _ours(r, N, budget)]
        if replication:
            cells.append(_rep(r, N, budget))
        v = r["verdict"]
        cells += [_md_cell(r["test"]), _p(r, N), f"**{v}**" if r["primary"] else v]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _note_text(r: Mapping[str, Any], fmt: Callable[[str, Any], str]) -> str:
    """A row's note with its ``{name}`` fields filled by ``fmt(name, value)``."""
    if not r["note"]:
        return ""
    extras = r["extras"] if isinstance(r["extras"], dict) else {}
    return r["note"].format(**{k: fmt(k, v) for k, v in extras.items()})


def _extra_value(v: Any) -> tuple[str, float]:
    return v if isinstance(v, tuple) else ("count", v)


def _notes(g: pd.DataFrame, N: Numbers) -> list[str]:
    notes = []
    for r in g.to_dict("records"):
        text = _note_text(r, lambda k, v: N((*_row_key(r), "note", k), _extra_value(v)[1],
                                              _extra_value(v)[0]))
        if text:
            notes.append(f"{r['statement']} ({r['protocol']}): {text}")
    return [f"* {n}" for n in dict.fromkeys(notes)]


def claims_markdown(rep: Report, N: Numbers) -> str:
    """``claims.md``: the rule, a summary, one section per claim, the comparison family,
    final-episode vs evaluation return, and the data. Every number from our data goes
    through ``N`` (a macro of numbers.tex)."""
    meta, budget = rep.meta, rep.meta["budget"]
    primary = meta["primary"]
    m = REPLICATION_SEEDS
    paper_n = N(("data", "paper", "seeds"), meta["protocols"].get("paper", (math.nan,))[0], "count")
    out = [
        "# Claims report: the paper's claims against our runs",
        "",
        "Generated by `notebooks/statistics.ipynb` (`pgsom.claims`) from the cached runs, "
        "`paper/derivations.csv` and the paper's own numbers (`pgsom.report.PAPER_TABLE1`, "
        "`pgsom.claims.PAPER_CLAIMS`); do not edit. Every number from our runs is also a LaTeX "
        "macro in `paper/numbers.tex`; the full rows are in `paper/claims.csv`, the family of "
        "pairwise tests in `paper/comparisons.csv`.",
        "",
        RULE_TEXT.format(alpha=f"{ALPHA:g}", level=f"{LEVEL:.0%}", m=m, primary=primary,
                         d=f"{MEDIUM_EFFECT['d']:g}", ratio=f"{MEDIUM_EFFECT['ratio']:g}",
                         rho=f"{MEDIUM_EFFECT['rho']:g}")
        + "Bold verdicts are the primary rows (those that decide the claim).\n",
        "## Data",
        "",
    ]
    for p, (n, root) in meta["protocols"].items():
        out.append(f"* protocol `{p}`: {N(('data', p, 'seeds'), n, 'count')} seeds per variant "
                   f"(root seed {N(('data', p, 'root'), root, 'count')}), "
                   f"{N(('data', p, 'runs'), meta['runs'].get(p, 0), 'count')} runs, "
                   f"{N(('data', p, 'diverged'), meta['diverged'].get(p, 0), 'count')} diverged "
                   "(a diverged run has no final return: it is left out of every statistic of "
                   "final returns and counted in `comparisons.csv`);")
    out += [
        f"* budget: {N(('data', 'budget'), budget, 'count')} training episodes per run; "
        f"bootstrap: {N(('data', 'nboot'), meta['n_boot'], 'count')} resamples, seed "
        f"{N(('data', 'seed'), meta['seed'], 'count')}.",
        "* *Final-episode return* (Table 1, as the paper) is the return of the last training "
        "episode. For RK with fresh second-stage episodes (our default) that last episode is "
        "played at the probe point θ~ = θ + α·(first-stage gradient), the sample of the second "
        "stage, not at the updated parameters; the final policy's *evaluation return* (fresh "
        "episodes) is reported beside it below.",
        "* Episodes to reach a threshold: first episode whose trailing mean of "
        f"{N(('data', 'window'), meta.get('window', 0), 'count')} episodes reaches it; runs that never do are "
        "right-censored at the budget (log-rank tests, Kaplan-Meier medians, ratios with "
        "censored runs counted at the budget: conservative for the faster method). RK fresh "
        "counts the episodes of both stages.",
        "",
        "## Summary",
        "",
        "The last column but one applies the same rule to the `paper` protocol (as many seeds as "
        "the paper) instead of the `" + primary + "` one.",
        "",
        f"| Claim | Where | The paper says | Verdict (`{primary}`) | With {paper_n} seeds (`paper` protocol) | Primary rows |",
        "|---|---|---|---|---|---|",
    ]
    for c in rep.claims.to_dict("records"):
        counts = ", ".join(f"{N((c['claim'], 'count', v), c['n_' + v.replace(' ', '_')], 'count')} {v}"
                           for v in VERDICTS if c["n_" + v.replace(" ", "_")])
        out.append(f"| {c['claim']} | {c['where']} | {_md_cell(c['short'])} | **{c['verdict']}** | "
                   f"{c['verdict_paper_protocol']} | {counts} |")
    out.append("")
    for c in rep.claims.to_dict("records"):
        cid = c["claim"]
        info = PAPER_CLAIMS[cid]
        g = rep.rows[rep.rows["claim"] == cid]
        out += [f"## {cid}: {info['short']}", "", f"> {info['text']} ({info['where']})", "",
                f"**Verdict: {c['verdict']}**" + (f" (with the `paper` protocol's {paper_n} seeds: "
                                                  f"{c['verdict_paper_protocol']})"
                                                  if c["verdict_paper_protocol"] not in ("n/a", "same (not an experiment)") else ""),
                ""]
        out += _claim_specific(cid, rep, N, g)
        shown = g
        if (g["kind"] == "derived").all() and len(g) > MAX_DERIVED_ROWS:
            overall = g["statement"].str.startswith("overall:") | g["primary"].astype(bool)
            shown = g[overall]
            rest = g[~overall]["verdict"].value_counts()
            out += ["The notebook's overall rows are shown; its other "
                    f"{N((cid, 'derived', 'other'), int((~overall).sum()), 'count')} verdict rows "
                    "(all in `paper/claims.csv`): "
                    + ", ".join(f"{N((cid, 'derived', v), int(k), 'count')} {v}" for v, k in rest.items())
                    + ".", ""]
        out += _claim_table(shown, N, budget, replication=(shown["kind"] == "number").any())
        notes = _notes(g, N)
        if notes:
            out += ["", "Notes:", ""] + notes
        out.append("")
    out += _comparisons_md(rep, N)
    out += _final_eval_md(rep, N)
    return "\n".join(out).rstrip("\n") + "\n"


def _claim_specific(cid: str, rep: Report, N: Numbers, g: pd.DataFrame) -> list[str]:
    budget = rep.meta["budget"]
    if cid == "C1":
        return ["Ratio = Kaplan-Meier median episodes of the baseline / those of PG-SOM (> 1: "
                "PG-SOM needs fewer). Test and CI: bootstrap of that ratio, each end computed "
                "with the censored runs placed where they make the ratio least favourable to "
                "that end (`pgsom.stats.median_ratio_test`); the log-rank p-value of the whole "
                "distributions is in the notes. The paper's benchmarks are not named; ours is "
                "`CartPole-v1` only.", ""]
    if cid == "C3" or cid == "C4" or cid == "C5" or cid == "C6":
        return ["The rows are the derivations notebook's verdict rows for this claim, in its "
                "wording; the first 'overall' row is the claim as SPEC section 2 reconstructs "
                "it (primary), the others qualify it.", ""]
    if cid == "C7":
        return ["Memory is checked on the code (deterministic); the per-update cost is timed by "
                "`python -m pgsom bench` (README, Performance) and deliberately left out of this "
                "seeded report: same seed, same files.", ""]
    if cid == "C9":
        lo, hi, late = c9_window(budget)
        return [f"Band = across-seed sd of each run's trailing-mean return at each episode, "
                f"episodes {N(('C9', 'lo'), lo, 'count')}-{N(('C9', 'hi'), hi, 'count')} "
                f"('until late': up to {N(('C9', 'late'), late, 'count')}). 'Narrows' compares "
                "the mean width over the last fifth of that window with the first fifth; "
                "Spearman's ρ of the width against the episode describes how steadily. The "
                f"paper's bands are {REPLICATION_SEEDS}-seed bands read off its Figure 2.", ""]
    if cid == "C10":
        return ["`clip` changes two things (gradient-norm clipping and a doubled rate, paper "
                "Section 4.1); "
                "`+clip_same_lr` (clipping alone) and `+lr2` (the doubled rate alone) split the "
                "effect. Mean rows: claimed effect = the paper's Table 1 difference for that "
                "method.", ""]
    if cid == "C11":
        lines = []
        for p in dict.fromkeys(g["protocol"]):
            gp = g[g["protocol"] == p]
            for stat in ("mean", "std"):
                sub = gp[gp["key"].str.endswith(stat)]
                k = int(np.nansum(sub["paper_in_ci"].to_numpy(float)))
                n = int(np.isfinite(sub["paper_in_ci"].to_numpy(float)).sum())
                ok = int((sub["verdict"] == "supported").sum())
                ci = (f"{LEVEL:.0%} t CI of the mean" if stat == "mean"
                      else f"{LEVEL:.0%} chi-square CI of the std")
                lines.append(f"* `{p}`: the paper's {stat} lies in our {ci} for "
                             f"{N(('C11', p, stat, 'inci'), k, 'count')} of "
                             f"{N(('C11', p, stat, 'n'), n, 'count')} variants; it lies within "
                             f"the {REPLICATION_SEEDS}-seed replication distribution (verdict supported) for "
                             f"{N(('C11', p, stat, 'ok'), ok, 'count')}.")
        return lines + ["", "CIs: Student-t for the means, chi-square (normal theory, not robust to "
                        "capped returns) for the stds.", ""]
    if cid == "C12":
        return ["Self-checks compare the paper's text with its own Table 1 (no data of ours); "
                "the rows with a protocol say what our runs show about the same statements.", ""]
    if cid == "C13":
        return ["Only CartPole-v1 exists in this artifact: **not tested yet**.", ""]
    return []


def _comparisons_md(rep: Report, N: Numbers) -> list[str]:
    c = rep.comparisons
    out = ["## The comparison family", "",
           "Final-episode return, A vs reference B, per protocol: difference of means with the "
           f"Welch {LEVEL:.0%} CI, Holm-adjusted Welch p over the family of the protocol, Hedges' g, "
           "P(A > B), sd ratio with Brown-Forsythe p (Holm), and what the seeds can decide. "
           "All columns: `paper/comparisons.csv`; Figure 4: `figures/fig4_effects.pdf`.", ""]
    if c.empty:
        return out + ["(no pair of variants of the family was run)", ""]
    out += [f"| A vs B | Protocol | A − B [{LEVEL:.0%} CI] | p (Holm) | g | P(A > B) | sd A / sd B | BF p (Holm) | Decision |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in c.to_dict("records"):
        key = ("cmp", r["a"], "vs", r["b"], r["protocol"])
        decision = _decision_md(r, N, key)
        out.append(
            f"| `{r['a']}` vs `{r['b']}` | {r['protocol']} | {N((*key, 'diff'), r['diff'])} "
            f"[{N((*key, 'low'), r['diff_ci_low'])}, {N((*key, 'high'), r['diff_ci_high'])}] | "
            f"{N((*key, 'p'), r['p_holm'], 'p')} | {N((*key, 'g'), r['hedges_g'], 'g')} | "
            f"{N((*key, 'poi'), r['poi'], 'ratio')} | {N((*key, 'sdr'), r['sd_ratio'], 'ratio')} | "
            f"{N((*key, 'bfp'), r['bf_p_holm'], 'p')} | {decision} |")
    return out + [""]


def _decision_md(r: Mapping[str, Any], N: Numbers, key: tuple) -> str:
    if not _finite(r["p_holm"]):
        return "undefined (fewer than 2 runs)"
    if r["p_holm"] < ALPHA:
        return f"A {'>' if r['diff'] > 0 else '<'} B"
    n = min(r["n_a"], r["n_b"])
    need = r["seeds_for_80"]
    power = N((*key, "power"), r["power_observed"], "fraction")
    if not _finite(need):
        tail = "no seeds count would do" if math.isinf(need or 0) else "no difference observed"
    else:
        tail = f"{N((*key, 'need'), need, 'count')} per arm for {POWER:.0%} power"
    return f"undecided at {N((*key, 'n'), n, 'count')} seeds (power {power}; {tail})"


def _final_eval_md(rep: Report, N: Numbers) -> list[str]:
    f = rep.finals_summary
    out = ["## Final-episode vs evaluation return", "",
           f"Mean [{LEVEL:.0%} t CI] per variant. The final-episode return is one episode per run (Table "
           "1's quantity; for RK fresh it is played at the probe point θ~); the evaluation return "
           "is the mean over fresh episodes of the final policy.", "",
           "| Variant | Protocol | Final-episode return | Evaluation return |", "|---|---|---|---|"]
    for r in f.to_dict("records"):
        key = ("fe", r["variant"], r["protocol"])
        out.append(f"| {variant_label(r['variant'])} (`{r['variant']}`) | {r['protocol']} | "
                   f"{N((*key, 'f'), r['final_mean'])} [{N((*key, 'fl'), r['final_low'])}, "
                   f"{N((*key, 'fh'), r['final_high'])}] | {N((*key, 'e'), r['eval_mean'])} "
                   f"[{N((*key, 'el'), r['eval_low'])}, {N((*key, 'eh'), r['eval_high'])}] |")
    return out + [""]


# --------------------------------------------------------------------------- csv / writing

CSV_COLUMNS = ["claim", "statement", "paper_value", "protocol", "estimate", "ci_low", "ci_high",
               "test", "p_holm", "verdict", "kind", "family", "p_value", "primary", "unit",
               "claimed_effect", "sensitive", "rep_low", "rep_high", "paper_in_ci", "power",
               "note", "verdict_paper_protocol"]


def claims_csv(rep: Report) -> str:
    """``claims.csv``: one row per claim (protocol ``overall``: the claim's verdict) followed
    by its statement rows. Floats ``%.6g``, NaN empty."""
    frames = []
    for c in rep.claims.to_dict("records"):
        head = {"claim": c["claim"], "statement": PAPER_CLAIMS[c["claim"]]["text"],
                "protocol": "overall", "verdict": c["verdict"], "kind": "claim",
                "test": f"aggregate of {c['n_primary']} primary rows", "primary": True,
                "verdict_paper_protocol": c["verdict_paper_protocol"]}
        body = rep.rows[rep.rows["claim"] == c["claim"]]
        frames.append(pd.DataFrame([head]))
        frames.append(body)
    df = pd.concat(frames, ignore_index=True)
    df["note"] = [_note_text(r, lambda k, v: format_value(_extra_value(v)[1], _extra_value(v)[0]))
                  if isinstance(r.get("extras"), dict) else "" for r in df.to_dict("records")]
    df = df.reindex(columns=CSV_COLUMNS)
    df["paper_value"] = df["paper_value"].astype(float)
    df["statement"] = df["statement"].str.replace("`", "", regex=False)
    return df.to_csv(index=False, float_format="%.6g", na_rep="", lineterminator="\n")


def write_report(rep: Report, paper_dir: str | Path) -> dict[str, Path]:
    """Write ``claims.md``, ``claims.csv``, ``numbers.tex`` and ``comparisons.csv`` into
    ``paper_dir`` atomically (same report -> same bytes)."""
    d = Path(paper_dir)
    numbers = Numbers()
    md = claims_markdown(rep, numbers)
    cmp_text = rep.comparisons.to_csv(index=False, float_format="%.6g", na_rep="",
                                      lineterminator="\n")
    return {
        "md": write_text_atomic(d / "claims.md", md),
        "csv": write_text_atomic(d / "claims.csv", claims_csv(rep)),
        "tex": write_text_atomic(d / "numbers.tex", numbers.tex()),
        "comparisons": write_text_atomic(d / "comparisons.csv", cmp_text),
    }


# --------------------------------------------------------------------------- parameters


def validate_parameters(**params: Any) -> dict[str, Any]:
    """The statistics notebook's parameters: its own (``fpr_variant``: a variant name;
    ``fpr_trials``: int >= 100) checked here, the others by
    :func:`pgsom.experiments.validate_parameters`. A bad value raises
    :class:`pgsom.experiments.ParameterError` (one line in a notebook)."""
    from pgsom import experiments as ex

    own = {k: params.pop(k) for k in ("fpr_variant", "fpr_trials") if k in params}
    out = ex.validate_parameters(**params)
    if "fpr_trials" in own:
        v = own["fpr_trials"]
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 100):
            raise ex.ParameterError(f"fpr_trials must be an int >= 100 (simulated pairs of groups), got {v!r}")
        out["fpr_trials"] = int(v)
    if "fpr_variant" in own:
        v = own["fpr_variant"]
        allowed = out.get("variants") or list(ex.all_variants())
        if v not in allowed:
            raise ex.ParameterError(f"fpr_variant must be one of the variants {list(allowed)}, got {v!r}")
        out["fpr_variant"] = v
    return out
