"""The readings study: which reading of the paper reproduces its Table 1?

The paper lost its equations and leaves most details open (:mod:`pgsom.variants`: a
*reading* is a set of such choices). This module searches the readings systematically and
scores each against the paper's Table 1, honest about the selection:

1. **The readings** (:func:`method_readings`, :func:`study_readings`). Per method, not a full
   factorial: factors that do not touch a method are not crossed with it.

   * every method: the return weighting (:data:`~pgsom.variants.LEVELS` factor
     ``weighting``: standardised reward-to-go with the population std (ours) or the sample
     std (pytorch/examples), standardised with gamma = 1, raw reward-to-go, raw R(tau));
   * ``pg``: the optimiser behind "Policy Gradient" (SGD, ours; Adam, pytorch/examples),
     crossed with every weighting;
   * ``hessian``: the Hessian's terms (full, surrogate) x the second moment (h^2, |h|, the
     signed EMA), exact diagonal; the surrogate with one Hutchinson probe (AdaHessian proper;
     the full Hessian with a probe is left out: ten times the cost per step of the exact
     diagonal, :mod:`pgsom.runner`); each other weighting with the full and with the surrogate
     Hessian;
   * ``rk``: the rule (Heun, midpoint) x the second stage (fresh, reuse); each other
     weighting with fresh and with reused second stages;
   * the rows' own refinements: the entropy coefficient (0.01, the paper's; 0.001) for the
     readings at the default weighting, and the baseline (time-indexed EMA; a running mean of
     past returns) for the raw weightings (with per-episode standardisation a constant
     baseline cancels exactly, so there it would repeat the ``none`` row);
   * what Table 1 reports (:data:`STATISTICS`, no training): the last training episode's
     return, the mean return of the final policy over its evaluation episodes, the mean of
     the last 10 or 50 training episodes; and the std with ddof 1 or 0.

2. **Scoring** (:func:`score_rows`, :func:`rank`). Each of a reading's four rows (none,
   clip, entropy, baseline) is compared with the paper's (mean, std) pair jointly under the
   distribution of 5-seed replications of our runs (:func:`pgsom.stats.replication_pair_test`,
   the machinery of claim C11); a row is *consistent* when p >= ``ALPHA`` (unadjusted: the
   stricter reading for a claim of reproduction). A reading is summarised by its number of
   consistent rows and by Fisher's statistic -2 sum ln p over its rows (smaller: closer),
   ranked by the first and then the second.

3. **Selection, then confirmation** (:func:`run_study`). The best reading per method is
   chosen on the :data:`SELECTION` seeds; the chosen readings and the default are then run on
   the fresh :data:`CONFIRMATION` seeds (another root seed) and scored again. A reading
   picked among dozens fits its selection seeds partly by chance; the confirmation says how
   much.

Diverged runs (NaN) are left out of a row's values and counted in its ``diverged`` column.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from pgsom import stats
from pgsom.claims.data import row_rng
from pgsom.claims.rule import ALPHA, LEVEL
from pgsom.config import PAPER_METHODS, RunConfig
from pgsom.experiments import DEFAULT_CACHE_DIR, Experiment, Protocol, run_experiment, write_csv
from pgsom.paper import PAPER_TABLE1, PAPER_TABLE1_SEEDS
from pgsom.store import write_text_atomic
from pgsom.variants import DEFAULT, FACTORS, PAPER_STABILISERS, Reading, Variant, level, register

__all__ = ["SELECTION", "CONFIRMATION", "STATISTICS", "TableStatistic", "method_readings",
           "study_readings", "row_variants", "study_variants", "statistic_values", "score_rows",
           "rank", "Study", "run_study", "readings_markdown", "COLUMNS", "RANK_COLUMNS"]

SELECTION = Protocol("readings_selection", 20, 20250200,
                     "the readings study's selection seeds: the best reading per method is chosen on them")
"""20 seeds per (reading, row), root seed 20250200."""
CONFIRMATION = Protocol("readings_confirmation", 50, 20250250,
                        "the readings study's confirmation seeds: the chosen readings and the default "
                        "run again on a fresh sample")
"""50 seeds per (reading, row), root seed 20250250."""


@dataclass(frozen=True)
class TableStatistic:
    """What the paper's Table 1 may report of each run."""

    name: str
    label: str
    last: int | None = None
    """Mean of the last ``last`` training episodes; None: the evaluation episodes' mean."""

    def values(self, runs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The statistic of each run of one variant (NaN for a diverged run)."""
        if self.last is None:
            ev = np.asarray(runs["eval_return"], float)
            ev = ev.reshape(ev.shape[0], -1)
            if ev.shape[1] == 0:
                return np.full(ev.shape[0], np.nan)
            return ev.mean(axis=1)
        ret = np.asarray(runs["episode_return"], float)
        return ret[:, -min(self.last, ret.shape[1]):].mean(axis=1)


STATISTICS: dict[str, TableStatistic] = {
    "last": TableStatistic("last", "return of the last training episode (ours)", 1),
    "eval": TableStatistic("eval", "mean return of the final policy over its evaluation episodes"),
    "last10": TableStatistic("last10", "mean return of the last 10 training episodes", 10),
    "last50": TableStatistic("last50", "mean return of the last 50 training episodes", 50),
}
"""What Table 1 may report; ``last`` is the artifact's (the paper's 'final-episode return')."""
DDOFS = (1, 0)
"""The std of Table 1 with ddof 1 (ours, the sample std) or 0 (numpy's default)."""

COLUMNS = ["set", "chosen", "method", "reading", "training_reading", *FACTORS, "statistic", "ddof", "row",
           "variant", "n", "diverged", "mean", "std", "paper_mean", "paper_std", "p", "distance",
           "consistent", "rep_mean_low", "rep_mean_high", "rep_std_low", "rep_std_high"]
"""``paper/readings.csv``: one row per (set, reading, method, row). ``chosen``: the reading
chosen for its method on the selection seeds (in both sets). ``reading``: the full
reading (training choices and row refinements); ``training_reading``: its training part at
the method level; one column per factor with the level taken; ``statistic``/``ddof``: what
Table 1 reports; ``mean``/``std`` of that statistic over our runs (std ddof 1, our
sample); ``p``: the joint replication test of the paper's pair; ``distance``: its
Mahalanobis distance D; ``rep_*``: the ``LEVEL`` replication intervals of a 5-seed mean
and std (the reading's ddof)."""

RANK_COLUMNS = ["set", "method", "reading", "statistic", "ddof", "consistent", "rows", "fisher",
                "p_combined", "rank"]


# --------------------------------------------------------------------------- the readings


def _r(*names: str) -> Reading:
    return Reading.of(*names)


def method_readings(method: str) -> list[Reading]:
    """The training readings of ``method`` at the method level (see the module docstring)."""
    weightings = [lv.name for lv in FACTORS["weighting"]]
    others = weightings[1:]
    if method == "pg":
        return [_r(w, o) for o in ("sgd", "adam_opt") for w in weightings]
    if method == "hessian":
        own = [_r(t, s) for t in ("full", "surrogate") for s in ("square", "abs", "signed")]
        own.append(_r("surrogate", "hutchinson"))
        return own + [_r(w, t) for t in ("full", "surrogate") for w in others]
    if method == "rk":
        own = [_r(rule, stage) for rule in ("heun", "midpoint") for stage in ("fresh", "reuse")]
        return own + [_r(w, stage) for stage in ("fresh", "reuse") for w in others]
    raise ValueError(f"method must be one of {PAPER_METHODS}, got {method!r}")


def _row_options(training: Reading) -> dict[str, list[str]]:
    """The row refinements crossed with a training reading (see the module docstring)."""
    w = training.choice("weighting")
    entropy = ["entropy_paper", "entropy_small"] if w.is_default else ["entropy_paper"]
    raw = w.changes.get("standardize") is False
    baseline = ["time_ema", "running_mean"] if raw else ["time_ema"]
    return {"entropy": entropy, "baseline": baseline}


def study_readings(method: str) -> list[Reading]:
    """Every full reading of ``method``: each training reading with each row refinement."""
    out = []
    for training in method_readings(method):
        opts = _row_options(training)
        for e in opts["entropy"]:
            for b in opts["baseline"]:
                out.append(Reading(training.levels + (level(e), level(b))))
    return out


def row_variants(method: str, reading: Reading) -> dict[str, Variant]:
    """The four Table 1 rows of ``method`` under ``reading``: each row takes the reading's
    levels that apply to it (the entropy coefficient only on ``entropy``, ...). Rows whose
    configs coincide across readings are the same :class:`Variant` (trained once)."""
    out = {}
    for s in PAPER_STABILISERS:
        stabs = () if s == "none" else (s,)
        kept = tuple(lv for lv in reading.levels if lv.rows is None or s in lv.rows)
        out[s] = Variant(method, stabs, Reading(kept))
    return out


def study_variants(methods: Sequence[str] = PAPER_METHODS,
                   readings: Mapping[str, Sequence[Reading]] | None = None) -> list[Variant]:
    """The distinct variants of the study (registered for :func:`pgsom.variants.lookup`)."""
    seen: dict[str, Variant] = {}
    for m in methods:
        for r in (readings or {}).get(m, study_readings(m)):
            for v in row_variants(m, r).values():
                seen.setdefault(v.name, v)
    out = list(seen.values())
    register(out)
    return out


# --------------------------------------------------------------------------- scoring


def statistic_values(data: Experiment, protocol: str, variant: str, statistic: str) -> np.ndarray:
    """The Table 1 ``statistic`` of every run of ``variant`` (NaN: diverged)."""
    return STATISTICS[statistic].values(data.runs[protocol][variant])


def score_rows(x: np.ndarray, paper_mean: float, paper_sd: float, ddof: int, rng_key: str, *,
               seed: int = 0, n_resamples: int = 10_000, m: int = PAPER_TABLE1_SEEDS) -> dict[str, Any]:
    """One row's score: our runs ``x`` against the paper's printed (mean, sd) read with
    ``ddof``. The joint test compares the paper's pair with the pairs (mean, sd ddof 1) of
    ``m``-run replications; a sd printed with ddof 0 is put on that scale first (sd_1 =
    sd_0 sqrt(m / (m - 1)), exact). The replication intervals of the mean and of the sd
    (with ``ddof``) are beside it. Every bootstrap draws from ``row_rng(seed, rng_key)``,
    so the score does not depend on what else is scored."""
    x = np.asarray(x, float)
    finite = x[np.isfinite(x)]
    sd1 = paper_sd * math.sqrt(m / (m - 1)) if ddof == 0 else paper_sd
    t = stats.replication_pair_test(finite, paper_mean, sd1, m, row_rng(seed, rng_key), n_resamples=n_resamples)
    rm = stats.replication_interval(finite, paper_mean, m, row_rng(seed, rng_key + "|mean"),
                                    level=LEVEL, n_resamples=n_resamples)
    rs = stats.replication_interval(finite, paper_sd, m, row_rng(seed, rng_key + "|std"),
                                    statistic=lambda a, axis=-1: np.std(a, axis=axis, ddof=ddof),
                                    level=LEVEL, n_resamples=n_resamples)
    p = t.p_value
    return {"n": int(finite.size), "diverged": int(x.size - finite.size),
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
            "paper_mean": paper_mean, "paper_std": paper_sd, "p": p, "distance": t.distance,
            "consistent": bool(np.isfinite(p) and p >= ALPHA),
            "rep_mean_low": rm.low, "rep_mean_high": rm.high, "rep_std_low": rs.low, "rep_std_high": rs.high}


def _score_set(data: Experiment, protocol: str, set_name: str,
               chosen: Mapping[str, Sequence[tuple[Reading, str, int]]], *, seed: int,
               n_resamples: int) -> pd.DataFrame:
    """Score rows of ``(reading, statistic, ddof)`` per method on ``protocol``'s runs."""
    rows, scored = [], {}  # readings share rows (a level touches one row): each is scored once
    for method, items in chosen.items():
        for reading, statistic, ddof in items:
            training = Reading(tuple(lv for lv in reading.levels if lv.rows is None))
            for s, v in row_variants(method, reading).items():
                if (v.name, statistic, ddof) not in scored:
                    paper_mean, paper_sd = PAPER_TABLE1[Variant(method, () if s == "none" else (s,)).name]
                    x = statistic_values(data, protocol, v.name, statistic)
                    key = f"readings|{protocol}|{v.name}|{statistic}"
                    scored[v.name, statistic, ddof] = score_rows(x, paper_mean, paper_sd, ddof, key, seed=seed,
                                                                 n_resamples=n_resamples)
                sc = scored[v.name, statistic, ddof]
                rows.append({"set": set_name, "chosen": False, "method": method, "reading": reading.name,
                             "training_reading": training.name,
                             **{f: reading.choice(f).name for f in FACTORS},
                             "statistic": statistic, "ddof": ddof, "row": s, "variant": v.name, **sc})
    return pd.DataFrame(rows, columns=COLUMNS)


def rank(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (set, method, reading, statistic, ddof): consistent rows, rows scored, Fisher's
    statistic -2 sum ln p (inf when a row has no p) and its chi-square p (2k degrees of
    freedom), ranked within (set, method) by most consistent rows, then smallest statistic
    (ties keep the study's order)."""
    keys = ["set", "method", "reading", "statistic", "ddof"]
    out = []
    for k, g in scores.groupby(keys, sort=False):
        p = g["p"].to_numpy(float)
        fisher = float(-2 * np.log(p).sum()) if np.isfinite(p).all() else math.inf
        out.append(dict(zip(keys, k), consistent=int(g["consistent"].sum()), rows=len(g), fisher=fisher,
                        p_combined=0.0 if not np.isfinite(fisher) else float(chi2.sf(fisher, 2 * len(g)))))
    df = pd.DataFrame(out)
    df["_order"] = np.arange(len(df))
    df = df.sort_values(["set", "method", "consistent", "fisher", "_order"],
                        ascending=[True, True, False, True, True], kind="stable")
    df["rank"] = df.groupby(["set", "method"], sort=False).cumcount() + 1
    return df.drop(columns="_order").reset_index(drop=True)[RANK_COLUMNS]


# --------------------------------------------------------------------------- the study


@dataclass
class Study:
    """The readings study's results: ``scores`` (``paper/readings.csv``, :data:`COLUMNS`),
    ``ranking`` (:data:`RANK_COLUMNS`, both sets), ``best`` (method -> the chosen
    (reading, statistic, ddof)), and ``meta`` (seeds, runs, seconds)."""

    scores: pd.DataFrame
    ranking: pd.DataFrame
    best: dict[str, tuple[Reading, str, int]]
    meta: dict[str, Any]

    def table1(self, set_name: str = "confirmation") -> pd.DataFrame:
        """Per method and row of ``set_name``: the paper's pair, the default reading's and the
        chosen reading's (mean, std, p, consistent)."""
        s = self.scores[self.scores["set"] == set_name]
        out = []
        for method, (reading, statistic, ddof) in self.best.items():
            for row in PAPER_STABILISERS:
                d = s[(s["method"] == method) & (s["row"] == row) & (s["reading"] == DEFAULT.name)
                      & (s["statistic"] == "last") & (s["ddof"] == 1)]
                b = s[(s["method"] == method) & (s["row"] == row) & (s["reading"] == reading.name)
                      & (s["statistic"] == statistic) & (s["ddof"] == ddof)]
                rec = {"method": method, "row": row, "variant": Variant(method, () if row == "none" else (row,)).name}
                for tag, g in (("default", d), ("best", b)):
                    g = g.iloc[0] if len(g) else None
                    for c in ("paper_mean", "paper_std"):
                        if g is not None:
                            rec[c] = g[c]
                    for c in ("n", "mean", "std", "p", "consistent", "rep_mean_low", "rep_mean_high",
                              "rep_std_low", "rep_std_high"):
                        rec[f"{tag}_{c}"] = g[c] if g is not None else math.nan
                out.append(rec)
        return pd.DataFrame(out)


def run_study(*, methods: Sequence[str] = PAPER_METHODS, selection_seeds: int = SELECTION.n_seeds,
              confirmation_seeds: int = CONFIRMATION.n_seeds, selection_root_seed: int | None = None,
              confirmation_root_seed: int | None = None, episodes: int = 500, eval_episodes: int = 10,
              n_boot: int = 10_000, stats_seed: int = 0, cache_dir: str | Path = DEFAULT_CACHE_DIR,
              max_workers: int | None = None, scheduler: str | None = None, progress: bool = False,
              log: Callable[[str], Any] | None = print) -> Study:
    """Train (or load from the cache) every reading's rows on the selection seeds, score every
    (reading, statistic, ddof), choose the best per method, train the chosen readings and the
    default on the confirmation seeds and score them there (see the module docstring)."""
    base = RunConfig(episodes=episodes, eval_episodes=eval_episodes)
    sel = SELECTION.replace(selection_seeds, selection_root_seed)
    conf = CONFIRMATION.replace(confirmation_seeds, confirmation_root_seed)
    if sel.root_seed == conf.root_seed:
        raise ValueError(f"selection and confirmation root seeds must differ (both {sel.root_seed}): "
                         "the confirmation must be a fresh sample")
    kw = dict(cache_dir=cache_dir, max_workers=max_workers, scheduler=scheduler, progress=progress, log=log)
    readings = {m: study_readings(m) for m in methods}
    variants = study_variants(methods, readings)
    t0 = time.perf_counter()
    data = run_experiment({sel.name: sel}, {v.name: v.config(base) for v in variants}, **kw)
    seconds_sel = time.perf_counter() - t0
    everything = {m: [(r, s, d) for r in readings[m] for s in STATISTICS for d in DDOFS] for m in methods}
    scores = _score_set(data, sel.name, "selection", everything, seed=stats_seed, n_resamples=n_boot)
    ranking = rank(scores)
    best = {}
    for m in methods:
        top = ranking[(ranking["method"] == m) & (ranking["rank"] == 1)].iloc[0]
        reading = next(r for r in readings[m] if r.name == top["reading"])
        best[m] = (reading, str(top["statistic"]), int(top["ddof"]))
    chosen = {m: list(dict.fromkeys([best[m], (DEFAULT, "last", 1)])) for m in methods}
    conf_variants = {v.name: v for m in methods for r, _, _ in chosen[m] for v in row_variants(m, r).values()}
    t0 = time.perf_counter()
    cdata = run_experiment({conf.name: conf}, {n: v.config(base) for n, v in conf_variants.items()}, **kw)
    seconds_conf = time.perf_counter() - t0
    cscores = _score_set(cdata, conf.name, "confirmation", chosen, seed=stats_seed, n_resamples=n_boot)
    scores = pd.concat([scores, cscores], ignore_index=True)
    for m, (r, stat, ddof) in best.items():
        scores.loc[(scores["method"] == m) & (scores["reading"] == r.name) & (scores["statistic"] == stat)
                   & (scores["ddof"] == ddof), "chosen"] = True
    ranking = pd.concat([ranking, rank(cscores)], ignore_index=True)
    meta = {"selection": sel, "confirmation": conf, "episodes": episodes,
            "training_readings": {m: len(method_readings(m)) for m in methods},
            "readings": {m: len(readings[m]) for m in methods},
            "scored": {m: len(everything[m]) for m in methods},
            "selection_runs": len(variants) * sel.n_seeds, "confirmation_runs": len(conf_variants) * conf.n_seeds,
            "selection_variants": len(variants), "seconds": seconds_sel + seconds_conf, "n_boot": n_boot}
    return Study(scores, ranking, best, meta)


# --------------------------------------------------------------------------- outputs


def _fmt(x: float, digits: int = 1) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _p(x: float) -> str:
    return "" if not np.isfinite(x) else (f"{x:.3f}" if x >= 0.001 else f"{x:.1e}")


def readings_markdown(study: Study, top: int = 10) -> str:
    """``paper/readings.md``: the study's design, the ranking per method on the selection
    seeds, the confirmed best reading per method, and Table 1 under it beside the paper's and
    our default's (both on the confirmation seeds)."""
    m = study.meta
    sel, conf = m["selection"], m["confirmation"]
    n_training = sum(m["training_readings"].values())
    n_full = sum(m["readings"].values())
    n_scored = sum(m["scored"].values())
    lines = ["# Which reading of the paper reproduces its Table 1?", "",
             "Generated by `notebooks/readings.ipynb` (`pgsom.readings.run_study`); design and scoring: "
             "the docstring of `pgsom/readings.py`.", "",
             f"* {n_training} training readings ({', '.join(f'{k}: {v}' for k, v in m['training_readings'].items())}), "
             f"{n_full} with the rows' refinements; each with {len(STATISTICS)} statistics x "
             f"{len(DDOFS)} std conventions of what Table 1 reports: {n_scored} scored readings.",
             f"* Selection: {sel.n_seeds} seeds per (reading, row), root seed {sel.root_seed}, "
             f"{m['selection_variants']} distinct configs, {m['selection_runs']} runs of {m['episodes']} episodes. "
             f"Confirmation: {conf.n_seeds} seeds, root seed {conf.root_seed}, {m['confirmation_runs']} runs.",
             f"* A row is consistent when the joint {PAPER_TABLE1_SEEDS}-seed replication test of the paper's "
             f"(mean, std) gives p >= {ALPHA:g}; readings are ranked by consistent rows, then Fisher's "
             "-2 sum ln p (smaller: closer).", ""]
    lines += ["## The confirmed best reading per method", "",
              "| method | reading | Table 1 reports | consistent rows, selection | consistent rows, confirmation |"
              " confirmation Fisher | default's consistent rows, confirmation |", "|---|---|---|---|---|---|---|"]
    rk = study.ranking
    for method, (reading, statistic, ddof) in study.best.items():
        def at(set_name, r=reading.name, s=statistic, d=ddof):
            g = rk[(rk["set"] == set_name) & (rk["method"] == method) & (rk["reading"] == r)
                   & (rk["statistic"] == s) & (rk["ddof"] == d)]
            return g.iloc[0] if len(g) else None
        s_, c_, d_ = at("selection"), at("confirmation"), at("confirmation", DEFAULT.name, "last", 1)
        lines.append(f"| `{method}` | `{reading.name}` ({reading.label}) | {STATISTICS[statistic].label}, "
                     f"std ddof {ddof} | {s_['consistent']} of {s_['rows']} | {c_['consistent']} of {c_['rows']} | "
                     f"{_fmt(c_['fisher'])} | {d_['consistent']} of {d_['rows']} |")
    t = study.table1()
    lines += ["", "## Table 1 under the chosen readings (confirmation seeds)", "",
              "Mean ± std; p: the joint replication test of the paper's pair; ✓ consistent.", "",
              "| variant | paper | our default | p | chosen reading | p |", "|---|---|---|---|---|---|"]
    for _, r in t.iterrows():
        mark = lambda c: " ✓" if c is True or c == 1.0 else ""  # noqa: E731
        lines.append(f"| `{r['variant']}` | {_fmt(r['paper_mean'], 2)} ± {_fmt(r['paper_std'], 2)} | "
                     f"{_fmt(r['default_mean'])} ± {_fmt(r['default_std'])} | {_p(r['default_p'])}{mark(r['default_consistent'])} | "
                     f"{_fmt(r['best_mean'])} ± {_fmt(r['best_std'])} | {_p(r['best_p'])}{mark(r['best_consistent'])} |")
    k_best = int(t["best_consistent"].astype(bool).sum())
    k_def = int(t["default_consistent"].astype(bool).sum())
    lines += ["", f"On the confirmation seeds the chosen readings reproduce {k_best} of {len(t)} rows of "
              f"Table 1; our default reproduces {k_def} of {len(t)}.", ""]
    lines += ["## Ranking on the selection seeds", "",
              f"The {top} best scored readings per method (of {n_scored} in all: `paper/readings.csv`).", ""]
    for method in study.best:
        g = rk[(rk["set"] == "selection") & (rk["method"] == method)].head(top)
        lines += [f"### `{method}`", "", "| rank | reading | Table 1 reports | std ddof | consistent | Fisher | combined p |",
                  "|---|---|---|---|---|---|---|"]
        for _, r in g.iterrows():
            lines.append(f"| {r['rank']} | `{r['reading']}` | {r['statistic']} | {r['ddof']} | {r['consistent']} of "
                         f"{r['rows']} | {_fmt(r['fisher'])} | {_p(r['p_combined'])} |")
        d = rk[(rk["set"] == "selection") & (rk["method"] == method) & (rk["reading"] == DEFAULT.name)
               & (rk["statistic"] == "last") & (rk["ddof"] == 1)]
        if len(d):
            d = d.iloc[0]
            lines += ["", f"Our default (`default`, last episode, ddof 1) ranks {d['rank']} of "
                      f"{int(((rk['set'] == 'selection') & (rk['method'] == method)).sum())} with "
                      f"{d['consistent']} of {d['rows']} rows consistent.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(study: Study, paper_dir: str | Path) -> dict[str, Path]:
    """``readings.csv`` and ``readings.md`` into ``paper_dir`` (atomically)."""
    from pgsom.experiments import resolve_path

    d = resolve_path(paper_dir)
    return {"readings_csv": write_csv(study.scores, d / "readings.csv"),
            "readings_md": write_text_atomic(d / "readings.md", readings_markdown(study))}
