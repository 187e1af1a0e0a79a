"""One audited statement in one protocol (:class:`Row`), and the row makers the builders share.

A :class:`Row` is immutable: a builder that needs a changed copy derives it with
:func:`dataclasses.replace`. The makers compute one kind of test each, on the final-episode
return or the episodes to a threshold:

* :func:`mean_row`: the paired t on the per-seed differences A_i - B_i (family ``means``;
  the variants share their seeds);
* :func:`spread_row`: the ratio of mean absolute deviations from the median, its bootstrap
  test and CI (family ``variances``; Fligner-Killeen beside);
* :func:`episodes_row`: episodes to a threshold: the ratio of Kaplan-Meier median episodes
  with a bootstrap CI, tested by the log-rank test (``test="logrank"``, censoring-aware) or
  by the bootstrap of the ratio (family ``episodes``);
* :func:`number_row`: the paper's number against the
  :data:`~pgsom.claims.rule.REPLICATION_SEEDS`-seed replication distribution of our runs
  (:func:`replication_caveat`: the note of a replication from as few runs as the paper's).

Their p-values are raw; :func:`pgsom.claims.claim_rows` adjusts them (Holm) and
:func:`pgsom.claims.rule.verdict` gives the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.claims.comparisons import (COMPARISONS, family_alpha, pair_key, paired_power, pooled_sd,
                                     spread_ratio_ci)
from pgsom.claims.data import censored, finite, row_rng, sign, values
from pgsom.claims.rule import LEVEL, MEDIUM_EFFECT, REPLICATION_SEEDS

__all__ = ["Row", "slug", "mean_row", "spread_row", "episodes_row", "number_row", "replication_caveat",
           "frame"]


@dataclass(frozen=True)
class Row:
    """One audited statement in one protocol: the paper's number, ours with its CI, the test
    and what the rule needs (the columns of ``claims.csv``)."""

    claim: str
    key: str                      # short id, unique within (claim, protocol): macro names
    statement: str
    protocol: str
    kind: str                     # direction, absence, size, number, derived, self-check, construction, not tested, measured
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


def slug(*parts: str) -> str:
    """A row key from parts: ``("hessian", "pg", 200)`` -> ``hessian-pg-200``."""
    return "-".join(str(p) for p in parts)


def mean_row(claim, key, statement, p, finals, a, b, *, claimed_sign, claimed_effect,
             kind="direction", note="") -> Row:
    """Paired row for A - B of the final return: the mean of the per-seed differences A_i - B_i
    (the variants share their seeds) with its t CI and the paired t's p-value
    (:func:`pgsom.stats.paired_test`), with the claimed sign / effect (return units; NaN -> a
    medium effect, half the pooled sd). Its Holm p-value is the comparison family's (``a``,
    ``b`` must be a pair of :data:`~pgsom.claims.comparisons.COMPARISONS`); ``power``: the
    paired test's at the claimed effect and the Holm level of a full family
    (:func:`~pgsom.claims.comparisons.family_alpha`)."""
    x, y = values(finals, p, a), values(finals, p, b)
    if x is None or y is None or x.size != y.size:
        return Row(claim, key, statement, p, kind, test="paired t", family="means",
                   pair=f"{a}|{b}", note="variant not run" + (f"; {note}" if note else ""))
    t = stats.paired_test(x, y, LEVEL)
    sd = pooled_sd(x, y)
    effect = claimed_effect if finite(claimed_effect) else MEDIUM_EFFECT["d"] * sd
    if kind == "absence":
        sensitive = finite(t.low) and finite(effect) and -effect < t.low and t.high < effect
    elif claimed_sign > 0:
        sensitive = finite(t.high) and finite(effect) and t.high < effect
    else:
        sensitive = finite(t.low) and finite(effect) and t.low > -abs(effect)
    return Row(claim, key, statement, p, kind, estimate=t.mean_diff, ci_low=t.low,
               ci_high=t.high, unit="return", test="paired t (per-seed differences; Welch beside)",
               family="means", p_value=t.p_value, claimed_sign=claimed_sign,
               observed_sign=sign(t.mean_diff), claimed_effect=effect, sensitive=bool(sensitive),
               power=paired_power(t.n_pairs, effect, t.sd_diff, family_alpha(len(COMPARISONS))),
               note=note, pair=f"{a}|{b}")


def spread_row(claim, key, statement, p, finals, a, b, *, seed, n_boot, note="") -> Row:
    """Spread row: spread(A) / spread(B) of the final return claimed below 1 (claimed effect:
    a factor 1 / medium), the spread being the mean absolute deviation from the median
    (:func:`pgsom.stats.mean_abs_deviation`), defined and informative when most runs are tied
    at the 500 cap (where the IQR is 0 and Brown-Forsythe turns into a test of means). The
    estimate, its CI and the test (p-value against a ratio of 1) come from one bootstrap of
    that ratio, the comparison family's (:func:`~pgsom.claims.comparisons.spread_ratio_ci`),
    so the test and the effect are on one scale; its Holm p-value is the family's. The
    rank-based Fligner-Killeen p of the same deviations is in the note."""
    ratio_claim = 1 / MEDIUM_EFFECT["ratio"]
    x, y = values(finals, p, a), values(finals, p, b)
    if x is None or y is None:
        return Row(claim, key, statement, p, "direction", unit="ratio", test="spread ratio, bootstrap",
                   family="variances", pair=f"{a}|{b}", claimed_sign=-1,
                   claimed_effect=ratio_claim, note="variant not run")
    fk = stats.fligner_killeen(x, y)
    t = spread_ratio_ci(x, y, pair_key(p, a, b), seed, n_boot)
    sensitive = finite(t.low) and t.low > ratio_claim
    obs = sign(fk.sd_ratio - 1) if finite(fk.sd_ratio) else (1.0 if fk.sd_ratio == math.inf else 0.0)
    extra = ("Fligner-Killeen test of the same deviations (rank-based), unadjusted p: {fk}"
             + (f"; {note}" if note else ""))
    return Row(claim, key, statement, p, "direction", estimate=fk.sd_ratio, ci_low=t.low,
               ci_high=t.high, unit="ratio",
               test="ratio of mean absolute deviations from the median, bootstrap test and CI",
               family="variances", p_value=t.p_value, claimed_sign=-1, observed_sign=obs,
               claimed_effect=ratio_claim, sensitive=bool(sensitive), note=extra, pair=f"{a}|{b}",
               extras={"fk": ("p", fk.p_value)})


def episodes_row(claim, key, statement, p, finals, fast, slow, thr, budget, *, claimed_ratio,
                 seed, n_boot, test: str = "median", column: str | None = None,
                 label: str | None = None) -> Row:
    """``fast`` reaches ``thr`` in fewer episodes than ``slow``: the ratio of Kaplan-Meier
    median episodes slow / fast with the CI of :func:`pgsom.stats.median_ratio_test`
    (bootstrap, censored runs bounded on the conservative side for each end). ``test``:
    ``"median"``: that bootstrap's p-value decides; ``"logrank"``: the log-rank test of the
    whole censored distributions (:func:`pgsom.stats.logrank_test`) decides, the median's
    bootstrap p-value is in the note (``power``: the log-rank power at the claimed ratio as a
    hazard ratio, at the Holm level of the claim's six comparisons). ``column``: the column of
    the episodes (default ``episodes_to_<thr>``); ``label``: how the notes name the threshold
    (default ``thr``)."""
    if test not in ("median", "logrank"):
        raise ValueError(f"test must be 'median' or 'logrank', got {test!r}")
    a, b = censored(finals, p, fast, thr, column), censored(finals, p, slow, thr, column)
    label = thr if label is None else label
    name = "log-rank" if test == "logrank" else "median ratio"
    if a is None or b is None:
        return Row(claim, key, statement, p, "direction", unit="ratio", test=name,
                   family="episodes", claimed_sign=1, claimed_effect=claimed_ratio,
                   note="variant not run")
    t = stats.median_ratio_test(a[0], a[1], b[0], b[1], budget,
                                row_rng(seed, f"ratio|{p}|{fast}|{slow}|{thr}"), LEVEL, n_boot)
    lr = stats.logrank_test(a[0], a[1], b[0], b[1], budget)
    sensitive = finite(t.high) and t.high < claimed_ratio
    obs = sign(np.log(t.estimate)) if finite(t.estimate) and t.estimate > 0 else (
        1.0 if t.estimate == math.inf else -1.0 if t.estimate == 0 else 0.0)
    extras = {"ra": int(a[1].sum()), "na": int(a[1].size), "rb": int(b[1].sum()),
              "nb": int(b[1].size)}
    reach = (f"runs reaching {label}: `{fast}` {{ra}} of {{na}}, `{slow}` {{rb}} of {{nb}} (the "
             "others censored at the budget); ")
    if test == "logrank":
        note = reach + "bootstrap test of the median ratio, unadjusted p: {median_p}"
        extras["median_p"] = ("p", t.p_value)
        events = int(a[1].sum() + b[1].sum())
        pw = stats.logrank_power(events, claimed_ratio, family_alpha(6)) if events and claimed_ratio > 0 else math.nan
        return Row(claim, key, statement, p, "direction", estimate=t.estimate, ci_low=t.low,
                   ci_high=t.high, unit="ratio",
                   test="log-rank (censoring-aware); ratio of Kaplan-Meier median episodes, bootstrap CI",
                   family="episodes", p_value=lr.p_value, claimed_sign=1, observed_sign=obs,
                   claimed_effect=claimed_ratio, sensitive=bool(sensitive), note=note, extras=extras,
                   power=pw)
    note = reach + "log-rank test of the whole distributions, unadjusted p: {logrank}"
    extras["logrank"] = ("p", lr.p_value)
    return Row(claim, key, statement, p, "direction", estimate=t.estimate, ci_low=t.low,
               ci_high=t.high, unit="ratio",
               test="ratio of Kaplan-Meier median episodes, bootstrap (censoring bounded)",
               family="episodes", p_value=t.p_value, claimed_sign=1, observed_sign=obs,
               claimed_effect=claimed_ratio, sensitive=bool(sensitive), note=note,
               extras=extras)


def replication_caveat(n: int, m: int = REPLICATION_SEEDS) -> tuple[str, dict]:
    """The note (and its ``extras``) of a row whose ``m``-seed replication is drawn from only
    ``n <= m`` runs of ours: a replicated sample's variance is on average
    :func:`pgsom.stats.replication_variance_factor` (n) = ((n - 1)/n)^2 of our runs' (0.64
    for n = 5), so the replication distribution is too narrow and its verdict not reliable.
    ``("", {})`` for more runs than ``m`` or fewer than two (no replication at all)."""
    if n > m or n < 2:
        return "", {}
    return ("replication from only {n_ours} runs of ours: a replicated sample's variance is on "
            "average ((n−1)/n)² = {shrink} of our runs' variance, so the replication distribution "
            "understates the spread and this verdict is not reliable",
            {"n_ours": int(n), "shrink": ("ratio", stats.replication_variance_factor(n))})


def number_row(claim, key, statement, p, x, paper_text, statistic, *, seed, n_boot,
               family, unit="return", note="", ci: stats.CI | None = None,
               extras: dict | None = None, budget: int | None = None) -> Row:
    """Number row: the paper's value vs the 5-seed replication distribution of
    ``statistic`` ('mean', 'std' or 'km_median') of our runs ``x``; with no more runs than
    the paper's, the note says the replication is not reliable (:func:`replication_caveat`)."""
    value = float(paper_text)
    if x is None:
        return Row(claim, key, statement, p, "number", paper_value=value, paper_text=paper_text,
                   unit=unit, test=f"{REPLICATION_SEEDS}-seed replication", family=family, note="variant not run")
    fn: Callable = {"mean": np.mean, "std": lambda a, axis=-1: np.std(a, axis=axis, ddof=1),
                    "km_median": stats.km_median_administrative}[statistic]
    rep = stats.replication_interval(x, value, REPLICATION_SEEDS,
                                     row_rng(seed, f"rep|{p}|{claim}|{key}"), fn, LEVEL, n_boot)
    if statistic == "km_median" and budget is not None and value >= budget:
        # replications censored at the budget say "more than the budget": they cannot
        # contradict a number of episodes the budget does not reach
        rep = rep._replace(p_value=math.nan)
        note = (note + "; " if note else "") + "the paper's number is beyond our budget"
    if ci is None:
        ci = stats.ci_t(x, LEVEL) if statistic == "mean" else stats.ci_std(x, LEVEL)
    in_ci = (float(ci.low <= value <= ci.high) if finite(ci.low) and finite(ci.high)
             else math.nan)
    caveat, more = replication_caveat(rep.n)
    if caveat and finite(rep.p_value):
        note = (note + "; " if note else "") + caveat
        extras = {**(extras or {}), **more}
    return Row(claim, key, statement, p, "number", paper_value=value, paper_text=paper_text,
               estimate=float(ci.estimate), ci_low=ci.low, ci_high=ci.high, unit=unit,
               test=f"{REPLICATION_SEEDS}-seed replication of the {statistic.replace('_', ' ')}",
               family=family, p_value=rep.p_value, rep_low=rep.low, rep_high=rep.high,
               paper_in_ci=in_ci, note=note, extras=extras or {})


def frame(rows: Sequence[Row]) -> pd.DataFrame:
    """The rows as a frame, one column per field of :class:`Row` (in field order)."""
    return pd.DataFrame([{f.name: getattr(r, f.name) for f in fields(Row)} for r in rows])
