"""The five benchmarks study (claim C13): every method on every benchmark, and the pilot that
chose each benchmark's advantage normalisation.

The paper claims gains "across five widely used benchmarks" without naming them; the five are
:data:`pgsom.benchmarks.BENCHMARKS`. This module trains, on each of them, the methods of
:data:`BENCHMARK_VARIANTS` (the paper's three, ``adam`` and ``npg``, and the paper's ``+clip``
rows) with the benchmark's budget, backend and normalisation (:meth:`Benchmark.run_config`),
under two independent protocols, ``powered`` and ``replication`` (the root seeds of
:data:`pgsom.experiments.PROTOCOLS`; the claims report decides C13 on each and calls a verdict
decided only where both agree). On CartPole-v1 those are the main experiment's runs (same
configs, same seeds: the same cache entries).

* :func:`normalisation_pilot`: ``pg`` and ``adam`` with each candidate of
  :data:`pgsom.benchmarks.NORMALISATIONS` on the four benchmarks other than CartPole, from the
  pilot's own root seed (:data:`PILOT`, so the study's seeds play no part in the choice), and
  :func:`choose_normalisation`, the rule that picks one per benchmark from it (the paper's
  per-episode standardisation unless a candidate is significantly better for both learners);
* :func:`run_study`: train (or load from the results cache) every (protocol, benchmark, variant,
  seed); the tidy tables of :class:`BenchmarkRuns` carry an ``env`` column;
* :func:`summary_table`: ``paper/benchmarks.csv``, one row per (protocol, env, variant).

Values (stated in the notebook): the final return is the last training episode's; the
evaluation return the mean over ``eval_episodes`` fresh episodes of the final stochastic
policy; episodes to a threshold use the trailing mean of
:data:`~pgsom.experiments.THRESHOLD_WINDOW` episodes (censored, NaN, when never reached).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.benchmarks import BENCHMARKS, NORMALISATIONS, benchmark
from pgsom.config import RunConfig
from pgsom.experiments import (DEFAULT_CACHE_DIR, PROTOCOLS, THRESHOLD_WINDOW, Protocol,
                               ProgressFile, PROGRESS_FILE_ENV, eval_means, resolve_path, write_csv)
from pgsom.variants import lookup

__all__ = ["BENCHMARK_VARIANTS", "STUDY_PROTOCOLS", "BENCHMARK_SEEDS", "PILOT", "PILOT_METHODS",
           "PILOT_LAST", "PAPER_NORMALISATION", "Cell", "BenchmarkRuns", "train_cells", "study_cells", "run_study",
           "normalisation_pilot", "pilot_summary", "choose_normalisation", "pilot_check",
           "registry_table", "figure6_panels", "summary_table", "write_outputs", "check_benchmarks"]

BENCHMARK_VARIANTS = ("pg", "hessian", "rk", "adam", "npg", "pg+clip", "hessian+clip", "rk+clip")
"""The variants trained on every benchmark: the paper's methods (PG-SOM is ``hessian``), the
first-order and Fisher baselines of claim C1, and the paper's ``+clip`` rows."""

STUDY_PROTOCOLS = ("powered", "replication")
"""The study's two independent samples (their root seeds are those of
:data:`pgsom.experiments.PROTOCOLS`)."""

BENCHMARK_SEEDS = 3
"""Seeds per (protocol, benchmark, variant) by default, so the cold notebook (pilot and study)
stays near ten minutes on a 2-core machine (it prints the runs and the time): the gymnasium
benchmarks are bound by their environments' own steps (Hopper-v5's MuJoCo step alone is some
85 us). That is few: most comparisons cannot be told apart at three seeds per sample, and the
claims report says so. A cluster takes many more (the notebook's ``seeds`` and ``scheduler``
parameters; README, 'Running on a cluster')."""

PILOT = Protocol("pilot", 3, 20250300,
                 "the normalisation pilot: its own root seed, so the study's seeds play no part in the choice")
PILOT_METHODS = ("pg", "adam")
"""The pilot's learners: plain SGD REINFORCE and the Adam baseline."""
PILOT_LAST = 50
"""The pilot scores a run by the mean return of its last ``PILOT_LAST`` training episodes."""


@dataclass(frozen=True)
class Cell:
    """One trained cell: a variant on a benchmark with a normalisation."""

    env: str
    variant: str
    normalisation: str
    config: RunConfig


def check_benchmarks(names: Sequence[str] | None) -> list[str]:
    """The benchmark ids (all five when None); ValueError naming an unknown one."""
    if names is None:
        return list(BENCHMARKS)
    for n in names:
        benchmark(n)
    return list(names)


@dataclass
class BenchmarkRuns:
    """Runs of every (protocol, cell). ``finals``: one row per run with ``protocol``, ``env``,
    ``normalisation``, the variant's columns, ``seed``, ``root_seed``, ``final_return``,
    ``eval_return``, ``last_mean`` (mean of the last :data:`PILOT_LAST` training episodes, or of
    all when fewer), ``threshold_1`` / ``episodes_to_threshold_1`` and ``threshold_2`` /
    ``episodes_to_threshold_2`` (the benchmark's thresholds in order, empty where it has fewer;
    episodes NaN: never reached), ``env_steps`` (total training steps), ``diverged``.
    ``curves``: one row per (protocol, env, normalisation, variant, seed, episode) with
    ``return`` and cumulative ``env_steps``."""

    finals: pd.DataFrame
    curves: pd.DataFrame
    meta: dict[str, Any]

    def returns(self, protocol: str, env: str, variant: str, normalisation: str | None = None) -> np.ndarray:
        """Training returns, (seeds, episodes)."""
        c = self.curves
        sel = (c["protocol"] == protocol) & (c["env"] == env) & (c["variant"] == variant)
        if normalisation is not None:
            sel &= c["normalisation"] == normalisation
        g = c[sel]
        return g.pivot(index="seed", columns="episode", values="return").to_numpy(float)


MAX_THRESHOLDS = 2


def _tidy(protocol: Protocol, cell: Cell, results: Sequence[Mapping[str, np.ndarray]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ret = np.stack([np.asarray(r["episode_return"], float) for r in results])
    steps = np.stack([np.asarray(r["env_steps"], np.int64) for r in results])
    n, episodes = ret.shape
    eval_mean = eval_means(np.stack([np.asarray(r["eval_return"], float).reshape(-1) for r in results]))
    head = {"protocol": protocol.name, "env": cell.env, "normalisation": cell.normalisation,
            **lookup(cell.variant).columns()}
    cols = {**head, "seed": np.arange(n), "root_seed": protocol.root_seed,
            "final_return": ret[:, -1], "eval_return": eval_mean,
            "last_mean": ret[:, -min(PILOT_LAST, episodes):].mean(axis=1)}
    thresholds = benchmark(cell.env).thresholds
    window = min(THRESHOLD_WINDOW, episodes)
    for k in range(MAX_THRESHOLDS):
        thr = thresholds[k] if k < len(thresholds) else math.nan
        cols[f"threshold_{k + 1}"] = thr
        cols[f"episodes_to_threshold_{k + 1}"] = (
            stats.episodes_to_threshold(ret, thr, window=window).episodes if k < len(thresholds)
            else np.full(n, np.nan))
    cols["env_steps"] = steps[:, -1]
    cols["diverged"] = np.array([int(np.asarray(r["diverged_at"]).reshape(())) >= 0 for r in results])
    curves = pd.DataFrame({**head, "seed": np.repeat(np.arange(n), episodes),
                           "episode": np.tile(np.arange(1, episodes + 1), n),
                           "return": ret.reshape(-1), "env_steps": steps.reshape(-1)})
    return pd.DataFrame(cols), curves


def train_cells(protocols: Mapping[str, Protocol], cells: Sequence[Cell], *,
                cache_dir: str | Path = DEFAULT_CACHE_DIR, max_workers: int | None = None,
                scheduler: str | None = None, progress: bool = False,
                log: Callable[[str], Any] | None = print) -> BenchmarkRuns:
    """Train (or load from the cache) every cell under every protocol, all submitted together
    (:func:`pgsom.sweep.run_many`: shards never mix benchmarks), and tidy them."""
    from pgsom.runner import RunSpec, training_source_version
    from pgsom.store import ResultStore
    from pgsom.sweep import close_executor, executor_for, run_key, run_many

    store = ResultStore(resolve_path(cache_dir))
    version = training_source_version()
    specs = [RunSpec(c.variant, c.config, i, p.root_seed) for p in protocols.values() for c in cells
             for i in range(p.n_seeds)]
    cached = sum(run_key(r, version) in store for r in specs)
    if log:
        envs = list(dict.fromkeys(c.env for c in cells))
        log(f"{len(cells)} cells on {len(envs)} benchmark(s) x {', '.join(f'{p.name} {p.n_seeds}' for p in protocols.values())} "
            f"seeds = {len(specs)} runs; {cached} cached, {len(specs) - cached} to train")
    t0 = time.perf_counter()
    cluster = executor_for(scheduler)
    try:
        relay = os.environ.get(PROGRESS_FILE_ENV)
        report = ProgressFile(relay, "+".join(protocols), len(specs) - cached) if relay else progress
        flat = run_many(specs, store=store, executor=cluster, max_workers=max_workers, progress=report)
    finally:
        close_executor(cluster)
    seconds = time.perf_counter() - t0
    if log and len(specs) > cached:
        log(f"trained {len(specs) - cached} runs in {seconds:.0f} s")
    finals, curves, k = [], [], 0
    for p in protocols.values():
        for c in cells:
            f, cu = _tidy(p, c, flat[k : k + p.n_seeds])
            finals.append(f)
            curves.append(cu)
            k += p.n_seeds
    meta = {"protocols": dict(protocols), "runs": len(specs), "trained": len(specs) - cached,
            "seconds": seconds, "env_steps": int(sum(int(r["env_steps"][-1]) for r in flat))}
    return BenchmarkRuns(pd.concat(finals, ignore_index=True), pd.concat(curves, ignore_index=True), meta)


def study_cells(benchmarks: Sequence[str] | None = None, variants: Sequence[str] = BENCHMARK_VARIANTS, *,
                episodes: int | None = None, eval_episodes: int = 10) -> list[Cell]:
    """The study's cells: each variant on each benchmark with the benchmark's normalisation
    (``episodes`` None: each benchmark's own budget)."""
    cells = []
    for env in check_benchmarks(benchmarks):
        b = benchmark(env)
        for v in variants:
            config = b.run_config(lookup(v).config(RunConfig(eval_episodes=eval_episodes)))
            if episodes is not None:
                config = config.replace(episodes=episodes)
            cells.append(Cell(env, v, b.normalisation, config))
    return cells


def run_study(benchmarks: Sequence[str] | None = None, variants: Sequence[str] = BENCHMARK_VARIANTS, *,
              seeds: int = BENCHMARK_SEEDS, protocols: Sequence[str] = STUDY_PROTOCOLS,
              episodes: int | None = None, eval_episodes: int = 10, **kw) -> BenchmarkRuns:
    """Every variant on every benchmark under each protocol of ``protocols`` with ``seeds``
    seeds (:func:`train_cells`; ``kw``: its cache, worker and progress arguments)."""
    resolved = {p: PROTOCOLS[p].replace(seeds) for p in protocols}
    return train_cells(resolved, study_cells(benchmarks, variants, episodes=episodes,
                                             eval_episodes=eval_episodes), **kw)


# --------------------------------------------------------------------------- the pilot


def normalisation_pilot(benchmarks: Sequence[str] | None = None, *, seeds: int = PILOT.n_seeds,
                        episodes: int | None = None, **kw) -> BenchmarkRuns:
    """``pg`` and ``adam`` (:data:`PILOT_METHODS`) with every normalisation of
    :data:`~pgsom.benchmarks.NORMALISATIONS` on ``benchmarks`` (None: all but CartPole-v1,
    whose paper protocol is not up for choice), ``seeds`` seeds from :data:`PILOT`'s root seed,
    no evaluation episodes."""
    envs = check_benchmarks(benchmarks) if benchmarks is not None else \
        [e for e in BENCHMARKS if e != "CartPole-v1"]
    cells = []
    for env in envs:
        b = benchmark(env)
        for norm in NORMALISATIONS:
            for m in PILOT_METHODS:
                config = b.run_config(lookup(m).config(RunConfig(eval_episodes=0)), norm)
                if episodes is not None:
                    config = config.replace(episodes=episodes)
                cells.append(Cell(env, m, norm, config))
    return train_cells({PILOT.name: PILOT.replace(seeds)}, cells, **kw)


PAPER_NORMALISATION = "episode"
"""The paper's protocol, which the pilot keeps unless a candidate is clearly better."""


def pilot_summary(pilot: BenchmarkRuns) -> pd.DataFrame:
    """Per (env, normalisation, method): seeds, diverged runs, the mean of ``last_mean`` with
    its 95% t CI, the rank of the normalisation within (env, method) (1: highest mean; a
    normalisation with a diverged run ranks last), and ``p_vs_paper``: the one-sided Welch p
    that its ``last_mean`` exceeds that of the paper's normalisation
    (:data:`PAPER_NORMALISATION`; NaN for the paper's own rows)."""
    from scipy.stats import ttest_ind

    rows, f = [], pilot.finals
    for (env, norm, m), g in f.groupby(["env", "normalisation", "method"], sort=False):
        x = g["last_mean"].to_numpy(float)
        ci = stats.ci_t(x)
        ref = f[(f["env"] == env) & (f["normalisation"] == PAPER_NORMALISATION) & (f["method"] == m)]
        y = ref["last_mean"].to_numpy(float)
        p = math.nan
        if norm != PAPER_NORMALISATION and len(x) >= 2 and len(y) >= 2:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a constant sample (all at the cap)
                p = float(ttest_ind(x, y, equal_var=False, alternative="greater", nan_policy="omit").pvalue)
        rows.append({"env": env, "normalisation": norm, "method": m, "n": len(g),
                     "diverged": int(g["diverged"].sum()), "last_mean": ci.estimate,
                     "ci_low": ci.low, "ci_high": ci.high, "p_vs_paper": p})
    df = pd.DataFrame(rows)
    key = df["last_mean"].where(df["diverged"] == 0, -np.inf).fillna(-np.inf)
    df["rank"] = key.groupby([df["env"], df["method"]]).rank(ascending=False, method="min").astype(int)
    return df


def choose_normalisation(summary: pd.DataFrame, alpha: float = 0.05) -> dict[str, str]:
    """The rule: per benchmark, the paper's normalisation (:data:`PAPER_NORMALISATION`) unless a
    candidate beats it for *every* pilot method (``p_vs_paper`` < ``alpha``, one-sided Welch on
    the last-episodes return) without a diverged run; among such candidates the one with the
    smallest mean rank (then the earlier in :data:`~pgsom.benchmarks.NORMALISATIONS`). A
    pilot of a few seeds departs from the paper's protocol only on a clear difference."""
    order = {n: i for i, n in enumerate(NORMALISATIONS)}
    out = {}
    for env, g in summary.groupby("env", sort=False):
        better = []
        for norm, gn in g.groupby("normalisation", sort=False):
            if norm == PAPER_NORMALISATION:
                continue
            if (gn["diverged"] == 0).all() and (gn["p_vs_paper"] < alpha).all():
                better.append((gn["rank"].mean(), order[norm], norm))
        out[env] = min(better)[2] if better else PAPER_NORMALISATION
    return out


def pilot_check(summary: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark of the pilot: the registry's normalisation, the pilot's choice
    (:func:`choose_normalisation`) and whether they agree."""
    chosen = choose_normalisation(summary)
    return pd.DataFrame([{"env": env, "registry": benchmark(env).normalisation, "pilot": pick,
                          "agree": benchmark(env).normalisation == pick} for env, pick in chosen.items()])


# --------------------------------------------------------------------------- outputs


def registry_table(benchmarks: Sequence[str] | None = None) -> pd.DataFrame:
    """The benchmarks as a table: what gymnasium says (spaces, horizon) and what the registry
    adds (budget, thresholds and their source, backend, normalisation, why)."""
    rows = []
    for env in check_benchmarks(benchmarks):
        b, s = benchmark(env), benchmark(env).spaces()
        rows.append({"env": env, "observations": s.observation_size,
                     "actions": f"{s.n_actions} discrete" if s.discrete else f"Box({s.n_actions})",
                     "horizon": s.horizon, "episodes": b.episodes,
                     "thresholds": ", ".join(f"{t:g}" for t in b.thresholds),
                     "thresholds from": b.thresholds_source, "backend": b.backend,
                     "normalisation": b.normalisation, "chosen by": b.normalisation_why, "why": b.why})
    return pd.DataFrame(rows)


def figure6_panels(runs: BenchmarkRuns, protocol: str, variants: Sequence[str]) -> dict:
    """The input of :func:`pgsom.plots.figure6`: per benchmark, variant -> returns (seeds,
    episodes) in ``protocol``, and the benchmark's thresholds."""
    envs = list(dict.fromkeys(runs.finals["env"]))
    return {env: ({v: runs.returns(protocol, env, v) for v in variants
                   if ((runs.finals["env"] == env) & (runs.finals["variant"] == v)).any()},
                  benchmark(env).thresholds) for env in envs}


def summary_table(runs: BenchmarkRuns, level: float = 0.95) -> pd.DataFrame:
    """``paper/benchmarks.csv``: per (protocol, env, variant): n, diverged runs, the mean final
    and evaluation return with Student-t CIs, per threshold its value, the runs reaching it and
    the Kaplan-Meier median episodes (NaN when fewer than half reach it), and the mean total
    environment steps of a run."""
    rows = []
    f = runs.finals
    for (p, env, v), g in f.groupby(["protocol", "env", "variant"], sort=False):
        b = benchmark(env)
        row: dict[str, Any] = {"protocol": p, "env": env, "variant": v, "method": g["method"].iloc[0],
                               "stabiliser": g["stabiliser"].iloc[0],
                               "normalisation": g["normalisation"].iloc[0], "n": len(g),
                               "diverged": int(g["diverged"].sum())}
        for col, name in (("final_return", "final"), ("eval_return", "eval")):
            ci = stats.ci_t(g[col].to_numpy(float), level)
            row.update({f"{name}_mean": ci.estimate, f"{name}_ci_low": ci.low, f"{name}_ci_high": ci.high})
        for k in range(MAX_THRESHOLDS):
            ep = g[f"episodes_to_threshold_{k + 1}"].to_numpy(float)
            has = k < len(b.thresholds)
            reached = ~np.isnan(ep)
            km = stats.censored_median_episodes(ep, reached, b.episodes) if has else None
            row[f"threshold_{k + 1}"] = b.thresholds[k] if has else math.nan
            row[f"reached_{k + 1}"] = int(reached.sum()) if has else math.nan
            row[f"median_episodes_{k + 1}"] = km.median if has else math.nan
        row["env_steps"] = float(g["env_steps"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def write_outputs(runs: BenchmarkRuns, paper_dir: str | Path, pilot: BenchmarkRuns | None = None) -> dict[str, Path]:
    """Write ``benchmarks.csv`` (:func:`summary_table`), ``benchmark_finals.csv`` (one row per
    run, :class:`BenchmarkRuns`), and with ``pilot`` ``benchmark_pilot.csv``
    (:func:`pilot_summary`) into ``paper_dir``. The per-episode curves are not written (they
    are in the results cache; Figure 6 draws them)."""
    d = resolve_path(paper_dir)
    out = {"benchmarks": write_csv(summary_table(runs), d / "benchmarks.csv"),
           "benchmark_finals": write_csv(runs.finals, d / "benchmark_finals.csv")}
    if pilot is not None:
        out["benchmark_pilot"] = write_csv(pilot_summary(pilot), d / "benchmark_pilot.csv")
    return out
