"""THE verdict rule of the claims report: its constants, one row's verdict, a claim's verdict.

The rule's prose is the markdown template ``rule.md`` beside this module (read with
:mod:`importlib.resources`, so an installed package finds it): :data:`RULE_TEXT` is that
template and :func:`rule_markdown` fills it with the constants below, as printed at the top of
``claims.md``. Changing the rule means changing :func:`verdict` / :func:`aggregate` and
``rule.md`` together, here and nowhere else.

* :data:`ALPHA`, :data:`LEVEL`, :data:`POWER`, :data:`MEDIUM_EFFECT`,
  :data:`REPLICATION_SEEDS`: the rule's parameters;
* :func:`verdict`: one row's verdict from its kind, Holm p-value, signs and sensitivity;
  :func:`apply_verdicts` applies it to every row of a frame;
* :func:`mark_primary`, :func:`mark_number_sensitivity`: which rows decide a claim, and
  whether a number row's family could ever reach ``ALPHA``;
* :func:`aggregate`, :func:`claim_verdicts`: a claim's verdict from its rows, decided on
  two independent samples (:data:`DECIDING`) and called decided only where they agree
  (:func:`stable_verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np
import pandas as pd

from pgsom.paper import CLAIM_IDS, PAPER_CLAIMS, PAPER_TABLE1_SEEDS

__all__ = [
    "ALPHA", "LEVEL", "POWER", "MEDIUM_EFFECT", "REPLICATION_SEEDS", "VERDICTS", "CONTEXT",
    "EXPERIMENTAL_KINDS", "RULE_TEXT", "rule_markdown", "verdict", "aggregate",
    "apply_verdicts", "mark_primary", "mark_number_sensitivity", "claim_verdicts", "DECIDING",
    "POOLED", "protocol_verdict", "stable_verdict",
]

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
EXPERIMENTAL_KINDS = ("direction", "absence", "number", "size")
"""Row kinds tested on our runs (the others are given, measured or not tested)."""

RULE_TEXT: str = resources.files(__package__).joinpath("rule.md").read_text(encoding="utf-8")
"""The rule in words: the template ``rule.md`` (``str.format`` fields ``alpha``, ``level``,
``m``, ``primary``, ``d``, ``ratio``, ``rho``; see :func:`rule_markdown`)."""


def rule_markdown(primary: str, m: int = REPLICATION_SEEDS) -> str:
    """:data:`RULE_TEXT` filled with the rule's constants: ``primary`` is the protocol whose
    rows decide a claim, ``m`` the seeds behind the paper's numbers."""
    return RULE_TEXT.format(alpha=f"{ALPHA:g}", level=f"{LEVEL:.0%}", m=m, primary=primary,
                            d=f"{MEDIUM_EFFECT['d']:g}", ratio=f"{MEDIUM_EFFECT['ratio']:g}",
                            rho=f"{MEDIUM_EFFECT['rho']:g}")


def verdict(kind: str, *, p_holm: float = math.nan, claimed_sign: int = 0,
            observed_sign: float = 0.0, sensitive: bool = False, given: str | None = None,
            alpha: float = ALPHA) -> str:
    """THE rule (see :data:`RULE_TEXT`), one row at a time.

    ``kind``: ``direction`` (claimed_sign +1/-1; observed_sign the sign of our estimate;
    sensitive: our CI excludes the claimed effect size), ``absence`` (sensitive: our CI lies
    within +- the claimed-small effect), ``size`` (a claimed effect *size*, "up to 2.1x":
    contradicted when significant in the opposite direction, not supported when our CI rules
    the claimed size out (sensitive), supported when significant in the claimed direction
    with the claimed size inside the CI's reach), ``number`` (p_holm: replication p-value; sensitive:
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
    if kind == "size":
        if not finite:
            return "inconclusive"
        if p_holm < alpha and np.sign(observed_sign) == -np.sign(claimed_sign) != 0:
            return "contradicted"
        if sensitive:
            return "not supported"
        if p_holm < alpha and np.sign(observed_sign) == np.sign(claimed_sign) != 0:
            return "supported"
        return "inconclusive"
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


def apply_verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """Column ``verdict`` of the rows frame: :func:`verdict` of each row (in place)."""
    df["verdict"] = [
        verdict(r["kind"], p_holm=r["p_holm"], claimed_sign=int(r["claimed_sign"]),
                observed_sign=r["observed_sign"], sensitive=bool(r["sensitive"]),
                given=r["given"] if isinstance(r["given"], str) else None)
        for r in df.to_dict("records")
    ]
    return df


def mark_primary(df: pd.DataFrame, protocols: Sequence[str], primary: str) -> str:
    """Experimental rows decide their claim in the ``primary`` protocol (the last protocol
    when it is absent) and when their ``decides`` flag is set: column ``primary`` of those
    rows (in place; the other rows keep the flag their builder gave). Returns the protocol."""
    main = primary if primary in protocols else (protocols[-1] if protocols else primary)
    experimental = df["kind"].isin(list(EXPERIMENTAL_KINDS))
    df.loc[experimental, "primary"] = (df.loc[experimental, "protocol"] == main) & df.loc[experimental, "decides"]
    return main


def mark_number_sensitivity(df: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """Column ``sensitive`` of the number rows (in place): a number row can only be
    contradicted if its family's Holm p-value can fall below :data:`ALPHA`; the smallest
    replication p-value is 2 / (n_boot + 1), times the family's size."""
    number = df["kind"].eq("number") & df["p_value"].notna()
    size = df[number].groupby(["protocol", "family"])["p_value"].transform("size")
    df.loc[number, "sensitive"] = (size * 2 / (n_boot + 1)) < ALPHA
    return df


DECIDING = ("powered", "replication")
"""The two independent samples every experimental claim is decided on: its verdict stands only
where both give it (:func:`claim_verdicts`)."""
NO_RUNS = "no runs"
"""A protocol's verdict column where the claim has no rows in it."""
NOT_EXPERIMENT = "not an experiment"
"""The per-sample verdict columns of a claim that is not decided on runs (C3-C7, C12, C13)."""
POOLED = "pooled"
"""The protocol of both deciding samples together (:func:`pgsom.claims.data.with_pooled`):
shown, never deciding."""


def protocol_verdict(rows: pd.DataFrame, protocol: str) -> str:
    """A claim's experimental rows that decide (``decides``), in ``protocol``, aggregated
    (:func:`aggregate`); ``"no runs"`` when the claim has none there."""
    sel = rows[rows["kind"].isin(list(EXPERIMENTAL_KINDS)) & rows["decides"].astype(bool)
               & (rows["protocol"] == protocol)]
    return aggregate(sel["verdict"]) if not sel.empty else NO_RUNS


def stable_verdict(first: str, second: str) -> tuple[str, bool, str]:
    """(verdict, stable, reason) of a claim decided on two independent samples: the verdict
    both give, or ``inconclusive`` with the reason when they differ; a sample without rows
    (``n/a``) leaves the other's verdict, marked not stable."""
    a, b = DECIDING
    if first == second:
        return first, True, ""
    if "n/a" in (first, second):
        have, which = (first, a) if second == "n/a" else (second, b)
        return have, False, f"decided on `{which}` alone (no `{b if which == a else a}` runs)"
    return "inconclusive", False, f"{first} on `{a}`, {second} on `{b}`"


def claim_verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim.

    An experimental claim (rows of kinds direction / absence / number that decide) is decided
    on the two independent samples of :data:`DECIDING` separately: ``verdict_powered`` and
    ``verdict_replication`` aggregate its deciding rows in each (:func:`protocol_verdict`);
    ``verdict`` is theirs when they agree (``stable``), else ``inconclusive`` with ``reason``
    (:func:`stable_verdict`). Without a ``replication`` protocol in the rows the primary
    rows decide alone (``stable`` False, the reason says so). ``verdict_pooled``: the same
    aggregation on both samples together (shown, not deciding); ``verdict_paper_protocol``:
    on the ``paper`` protocol (as many seeds as the paper). Other claims (derived,
    construction, self-checks) are not a draw of seeds: their primary rows decide, stable.
    """
    out = []
    protocols = set(rows["protocol"])
    for c in CLAIM_IDS:
        g = rows[rows["claim"] == c]
        prim = g[g["primary"].astype(bool)]
        exp = g[g["kind"].isin(list(EXPERIMENTAL_KINDS)) & g["decides"].astype(bool)]
        main = aggregate(prim["verdict"])
        if not exp.empty:
            five = protocol_verdict(g, "paper")
            per = {p: protocol_verdict(g, p) for p in (*DECIDING, POOLED)}
            if set(DECIDING) <= protocols:
                final, stable, reason = stable_verdict(per[DECIDING[0]], per[DECIDING[1]])
            else:
                final, stable, reason = main, False, "no `replication` protocol: decided on one sample"
        else:
            five = "same (not an experiment)"
            per = {p: NOT_EXPERIMENT for p in (*DECIDING, POOLED)}
            final, stable, reason = main, True, ""
        counts = prim["verdict"].value_counts()
        out.append({
            "claim": c, "where": PAPER_CLAIMS[c]["where"], "short": PAPER_CLAIMS[c]["short"],
            "verdict": final, "verdict_powered": per[DECIDING[0]],
            "verdict_replication": per[DECIDING[1]], "verdict_pooled": per[POOLED],
            "stable": stable, "reason": reason, "verdict_paper_protocol": five,
            "n_primary": len(prim),
            **{f"n_{v.replace(' ', '_')}": int(counts.get(v, 0)) for v in VERDICTS},
        })
    return pd.DataFrame(out)
