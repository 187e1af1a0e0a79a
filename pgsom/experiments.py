"""The paper's experiments: protocols, variants, parameter checks and tidy results.

Every notebook gets its data from :func:`load_experiment`, which runs (or loads from the
results cache) :func:`pgsom.sweep.run_many` for all protocols at once. The cache is keyed by content
(run config, root seed, seed index, training source), so the ``ablation`` notebook trains and
``main_results`` / ``statistics`` load the same runs.

Protocols (each with its own fixed root seed, so they are independent samples; per-run
seeds are ``SeedSequence(root_seed, spawn_key=(i,))``, see :mod:`pgsom.runner`):

* ``paper``: 5 seeds per variant, as the paper (4.1); root seed ``20250005``.
* ``powered``: 50 seeds per variant by default; root seed ``20250050``.
* ``replication``: 50 more seeds per variant; root seed ``20250150``. The claims report
  decides each experimental claim on ``powered`` and on ``replication`` separately and calls
  a verdict decided only where the two agree (:mod:`pgsom.claims`).

Definitions used by every output (and stated in the notebooks):

* final-episode return: the return of the last training episode of a run (Table 1, as the
  paper); NaN for a run whose parameters diverged (it is counted, not dropped, in the tables);
* eval return: mean of ``eval_return`` (fresh episodes of the final stochastic policy);
* episodes to reach 200 / 400: :func:`pgsom.stats.episodes_to_threshold` with the trailing
  mean of ``THRESHOLD_WINDOW`` = 10 episodes (of fewer when a run is shorter than 10
  episodes); a run that never reaches it is censored: NaN, written as an empty cell.

Why the protocol is what it is: docs/design.md, 'Experimental protocol'.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pgsom import stats
from pgsom.config import METHODS, RunConfig
from pgsom.variants import PAPER_STABILISERS, STABILISERS, lookup, main_variants
from pgsom.store import write_text_atomic

__all__ = [
    "PROTOCOLS", "Protocol", "FIG2_METHODS", "THRESHOLDS", "THRESHOLD_WINDOW", "REPO_ROOT",
    "DEFAULT_CACHE_DIR", "Experiment", "all_variants", "make_variants", "load_experiment",
    "validate_parameters", "experiment_kwargs", "resolve_path", "write_csv",
    "threshold_summary", "stabiliser_means", "summary_statistics", "write_run_tables",
    "clip_fraction", "ParameterError", "PROGRESS_FILE_ENV", "ProgressFile",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout holding this package; relative paths in notebook parameters are relative to it
(so a notebook opened from ``notebooks/`` in JupyterLab writes where the pipeline does)."""

DEFAULT_CACHE_DIR = "results/cache"


@dataclass(frozen=True)
class Protocol:
    """A named experiment protocol: how many seeds per variant and from which root seed."""

    name: str
    n_seeds: int
    root_seed: int
    description: str

    def replace(self, n_seeds: int | None = None, root_seed: int | None = None) -> Protocol:
        return dataclasses.replace(
            self,
            n_seeds=self.n_seeds if n_seeds is None else int(n_seeds),
            root_seed=self.root_seed if root_seed is None else int(root_seed),
        )


PROTOCOLS: dict[str, Protocol] = {
    "paper": Protocol("paper", 5, 20250005,
                      "the paper's protocol: 5 seeds per variant (paper 4.1)"),
    "powered": Protocol("powered", 50, 20250050,
                        "a powered rerun: 50 seeds per variant, an independent sample "
                        "(its own root seed)"),
    "replication": Protocol("replication", 50, 20250150,
                            "a replication of the powered rerun: 50 more seeds per variant from "
                            "their own root seed; a claim's verdict stands only where both agree"),
}
"""The fixed root seeds are 20250005 (paper), 20250050 (powered) and 20250150 (replication).
Changing one changes every number of that protocol; never reuse one protocol's root seed for
another (their runs would be the same runs, not independent samples)."""

FIG2_METHODS = ("pg", "hessian", "rk", "adam", "npg")
"""Variants drawn in Figure 2 (the paper's three methods and the two baselines)."""

THRESHOLDS = (200, 400)
"""Return thresholds for episodes-to-threshold (paper 4.2 and 3.7)."""

THRESHOLD_WINDOW = 10
"""Trailing-mean window (episodes) for episodes-to-threshold."""


def all_variants() -> tuple[str, ...]:
    """Every main-experiment variant's name, in Table 1 order: the paper's 12, adam, npg, the
    attribution rows, the paper's likely versions (:func:`pgsom.variants.main_variants`)."""
    return tuple(v.name for v in main_variants())


def resolve_path(path: str | Path) -> Path:
    """``path`` if absolute, else ``REPO_ROOT / path``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def make_variants(names: Sequence[str] | None = None, *, episodes: int = 500,
                  eval_episodes: int = 10) -> dict[str, RunConfig]:
    """Configs of the named variants (all of :func:`all_variants` when ``names`` is None, in
    that order), with the given training budget; ValueError naming an unknown variant or a
    budget that does not suit a variant (RK with fresh second stages needs an even one)."""
    known = all_variants()
    names = list(known) if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"variants: unknown variant(s) {unknown}; allowed: {list(known)}")
    base = RunConfig(episodes=episodes, eval_episodes=eval_episodes)
    return {n: lookup(n).config(base) for n in names}


# --------------------------------------------------------------------------- parameters


class ParameterError(ValueError):
    """A notebook parameter with a value it does not allow. The message names the parameter,
    what it allows and the value given.

    IPython shows an exception through its ``_render_traceback_`` when it has one: this one
    renders as a single line, ``ParameterError: <message>``, with no traceback through the
    package (the error is the reader's value, not the code). papermill still fails the run
    (the error's ``ename`` is ``ParameterError``, its ``evalue`` the message).
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mParameterError\x1b[0m: {self}"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(name: str, value: Any, minimum: int, what: str, *, optional: bool = False) -> int | None:
    if optional and value is None:
        return None
    if not (_is_int(value) and value >= minimum):
        extra = " or None" if optional else ""
        raise ValueError(f"{name} must be an int >= {minimum}{extra} ({what}), got {value!r}")
    return int(value)


def _names(name: str, value: Any, allowed: Sequence[str], *, optional: bool) -> list[str] | None:
    """A list of names from a list/tuple or a comma-separated string (papermill -p)."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)):
        none = " or None (all)" if optional else ""
        raise ValueError(f"{name} must be a non-empty list of names (or a comma-separated "
                         f"string){none}; allowed: {list(allowed)}; got {value!r}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown name(s) {unknown}; allowed: {list(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a name twice: {list(value)!r}")
    return list(value)


def _path(name: str, value: Any) -> Path:
    if not (isinstance(value, (str, Path)) and str(value).strip()):
        raise ValueError(f"{name} must be a non-empty path string, got {value!r}")
    return resolve_path(value)


def _check(name: str, value: Any) -> Any:
    """Normalised value of one notebook parameter, or ValueError naming it."""
    if name == "protocols":
        return _names(name, value, list(PROTOCOLS), optional=False)
    if name.endswith("_seeds") and name[: -len("_seeds")] in PROTOCOLS:
        return _int(name, value, 1, "seeds per variant")
    if name.endswith("_root_seed") and name[: -len("_root_seed")] in PROTOCOLS:
        default = PROTOCOLS[name[: -len("_root_seed")]].root_seed
        return _int(name, value, 0, f"None uses the protocol's fixed root seed {default}",
                    optional=True)
    if name in ("selection_seeds", "confirmation_seeds"):
        return _int(name, value, 2, "seeds per (reading, row) of the readings study")
    if name in ("selection_root_seed", "confirmation_root_seed"):
        return _int(name, value, 0, "None uses the readings study's fixed root seed", optional=True)
    if name == "reading_methods":
        from pgsom.config import PAPER_METHODS

        return _names(name, value, PAPER_METHODS, optional=False)
    if name == "episodes":
        return _int(name, value, 1, "training episodes per run")
    if name == "budget":
        return _int(name, value, 1, "training episodes per run on every benchmark; None: each "
                    "benchmark's own budget", optional=True)
    if name == "benchmarks":
        from pgsom.benchmarks import BENCHMARKS

        return _names(name, value, list(BENCHMARKS), optional=True)
    if name == "seeds":
        return _int(name, value, 2, "seeds per (protocol, benchmark, variant)")
    if name == "pilot_seeds":
        return _int(name, value, 2, "seeds per (benchmark, normalisation, method) of the pilot")
    if name == "eval_episodes":
        return _int(name, value, 0, "evaluation episodes of the final policy")
    if name == "variants":
        return _names(name, value, all_variants(), optional=True)
    if name == "methods":
        return _names(name, value, all_variants(), optional=False)
    if name == "figure_protocol":
        if value not in PROTOCOLS:
            raise ValueError(f"figure_protocol must be one of {list(PROTOCOLS)}, got {value!r}")
        return value
    if name == "smooth_window":
        return _int(name, value, 1, "trailing-mean window of the plotted curves")
    if name == "max_workers":
        return _int(name, value, 1, "training processes; None uses every core", optional=True)
    if name == "scheduler":
        if value is None or (isinstance(value, str) and value.strip()):
            return None if value is None else value.strip()
        raise ValueError("scheduler must be None (the local process pool) or the address of a "
                         f"running Dask scheduler such as 'tcp://10.0.0.5:8786', got {value!r}")
    if name in ("n_boot",):
        return _int(name, value, 100, "bootstrap resamples")
    if name in ("stats_seed",):
        return _int(name, value, 0, "seed of the bootstrap")
    if name == "dpi":
        return _int(name, value, 10, "PNG resolution")
    if name == "progress":
        if not isinstance(value, bool):
            raise ValueError(f"progress must be True or False, got {value!r}")
        return value
    if name.endswith("_dir") or name.endswith("_csv") or name.endswith("_path"):
        return _path(name, value)
    raise ValueError(f"no check is defined for parameter {name!r} (pgsom.experiments._check)")


def validate_parameters(**params: Any) -> dict[str, Any]:
    """Check notebook parameters; return them normalised (lists, absolute paths).

    Raises :class:`ParameterError` (a ValueError) naming the parameter, what is allowed and
    the value given (papermill passes strings when a user writes ``-p episodes abc``).
    Cross-checks: ``methods`` and the figure protocol must be among ``variants`` /
    ``protocols``, and ``episodes`` must suit every variant (RK with fresh second-stage
    episodes needs an even budget).
    """
    try:
        return _validate(params)
    except ParameterError:
        raise
    except ValueError as e:
        raise ParameterError(str(e)) from None


def _validate(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: _check(name, value) for name, value in params.items()}
    protocols = out.get("protocols")
    variants = out.get("variants")
    if variants is None and "variants" in out:
        variants = list(all_variants())
    if protocols is not None and out.get("figure_protocol") is not None:
        if out["figure_protocol"] not in protocols:
            raise ValueError(f"figure_protocol={out['figure_protocol']!r} must be one of "
                             f"protocols={protocols}")
    if variants is not None and out.get("methods") is not None:
        missing = [m for m in out["methods"] if m not in variants]
        if missing:
            raise ValueError(f"methods {missing} are not among variants={variants}; add them "
                             "to variants or remove them from methods")
    if "episodes" in out:
        episodes = out["episodes"]
        for name in variants or []:
            try:
                make_variants([name], episodes=episodes, eval_episodes=out.get("eval_episodes", 0))
            except ValueError as e:
                raise ValueError(f"episodes={episodes} does not suit variant {name!r}: {e}") from None
    return out


def experiment_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`load_experiment` arguments in validated notebook parameters."""
    protocols = params["protocols"]
    return {
        "protocols": protocols,
        "n_seeds": {p: params.get(f"{p}_seeds") for p in protocols},
        "root_seeds": {p: params.get(f"{p}_root_seed") for p in protocols},
        "variants": params.get("variants"),
        "episodes": params.get("episodes", 500),
        "eval_episodes": params.get("eval_episodes", 10),
        "cache_dir": params.get("cache_dir", DEFAULT_CACHE_DIR),
        "max_workers": params.get("max_workers"),
        "scheduler": params.get("scheduler"),
        "progress": params.get("progress", False),
    }


# --------------------------------------------------------------------------- results


@dataclass
class Experiment:
    """Runs of every (protocol, variant): raw arrays and tidy tables.

    ``finals``: one row per (protocol, variant, seed) with ``env`` (the gymnasium id),
    ``final_return`` (last training
    episode), ``eval_return`` (mean over evaluation episodes), ``episodes_to_200`` and
    ``episodes_to_400`` (NaN = never reached), ``diverged`` (bool), ``root_seed``.
    Both frames name the variant by ``variant`` (its display name) and by its parts
    ``method``, ``stabiliser`` and ``reading`` (:meth:`pgsom.variants.Variant.columns`).
    ``curves``: one row per (protocol, variant, seed, episode) with ``return`` and
    ``env_steps`` (cumulative environment steps); episodes are 1-based.
    """

    protocols: dict[str, Protocol]
    variants: list[str]
    episodes: int
    runs: dict[str, dict[str, dict[str, np.ndarray]]]
    finals: pd.DataFrame
    curves: pd.DataFrame

    def returns(self, protocol: str, variant: str) -> np.ndarray:
        """Training-episode returns, shape (n_seeds, episodes)."""
        return self.runs[protocol][variant]["episode_return"]

    def env_steps(self, protocol: str, variant: str) -> np.ndarray:
        """Cumulative environment steps after each episode, shape (n_seeds, episodes)."""
        return self.runs[protocol][variant]["env_steps"]

    def final_returns(self, protocol: str, variant: str) -> np.ndarray:
        """Final-episode return of each seed (NaN if the run diverged)."""
        return self.returns(protocol, variant)[:, -1]


def threshold_window(episodes: int) -> int:
    return min(THRESHOLD_WINDOW, episodes)


def variant_columns(name: str) -> dict[str, str]:
    """The tidy frames' ``variant``, ``method``, ``stabiliser`` and ``reading`` columns of the
    variant displayed as ``name`` (:meth:`pgsom.variants.Variant.columns`)."""
    return lookup(name).columns()


def _env_of(env: str | Mapping[str, str], variant: str) -> str:
    return env if isinstance(env, str) else env[variant]


def eval_means(ev: np.ndarray) -> np.ndarray:
    """Per run (row of ``ev``, its evaluation returns): the mean of the non-NaN returns, NaN
    when there are none (no evaluation episodes, or a diverged run)."""
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(ev), axis=1)
        return np.where(counts > 0, np.nansum(ev, axis=1) / np.maximum(counts, 1), np.nan)


def tidy_finals(protocol: Protocol, runs: Mapping[str, Mapping[str, np.ndarray]],
                env: str | Mapping[str, str] = "CartPole-v1") -> pd.DataFrame:
    """The ``finals`` rows of one protocol (see :class:`Experiment`); ``env``: the gymnasium id
    of the runs (or variant -> id), the ``env`` column."""
    frames = []
    for variant, r in runs.items():
        ret = np.asarray(r["episode_return"], float)
        n, episodes = ret.shape
        window = threshold_window(episodes)
        eval_mean = eval_means(np.asarray(r["eval_return"], float).reshape(n, -1))
        cols = {
            "protocol": protocol.name,
            "env": _env_of(env, variant),
            **variant_columns(variant),
            "seed": np.arange(n),
            "root_seed": protocol.root_seed,
            "final_return": ret[:, -1],
            "eval_return": eval_mean,
        }
        for thr in THRESHOLDS:
            cols[f"episodes_to_{thr}"] = stats.episodes_to_threshold(ret, thr, window=window).episodes
        cols["diverged"] = np.asarray(r["diverged_at"]).reshape(n) >= 0
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def tidy_curves(protocol: Protocol, runs: Mapping[str, Mapping[str, np.ndarray]],
                env: str | Mapping[str, str] = "CartPole-v1") -> pd.DataFrame:
    """The ``curves`` rows of one protocol (see :class:`Experiment`), with an ``env`` column as
    :func:`tidy_finals`."""
    frames = []
    for variant, r in runs.items():
        ret = np.asarray(r["episode_return"], float)
        n, episodes = ret.shape
        frames.append(pd.DataFrame({
            "protocol": protocol.name,
            "env": _env_of(env, variant),
            **variant_columns(variant),
            "seed": np.repeat(np.arange(n), episodes),
            "episode": np.tile(np.arange(1, episodes + 1), n),
            "return": ret.reshape(-1),
            "env_steps": np.asarray(r["env_steps"], np.int64).reshape(-1),
        }))
    return pd.concat(frames, ignore_index=True)


PROGRESS_FILE_ENV = "PGSOM_PROGRESS_FILE"
"""Environment variable naming a file: while it is set, :func:`load_experiment` reports the
training progress of every shard by appending JSON lines to it (:class:`ProgressFile`)
instead of showing progress bars. ``make reproduce`` (:mod:`pgsom.pipeline`) sets it for the
notebooks' kernels and relays the lines to the terminal; the notebooks' outputs do not change."""


@dataclass(frozen=True)
class ProgressFile:
    """Progress callback of :func:`pgsom.runner.run_sweep` that appends one JSON line per
    report to ``path``: ``{"protocol", "runs" (runs to train in the protocol), "shard",
    "shards", "shard_runs", "round", "rounds", "time"}``. Called in the process that trains the
    shard (picklable: a worker process gets a copy). It writes after the first round, about
    every ``1/steps`` of a shard's rounds and after the last one."""

    path: str
    protocol: str
    runs: int
    steps: int = 100

    def __call__(self, shard: int, shards: int, shard_runs: int, done: int, rounds: int) -> None:
        every = max(1, rounds // self.steps)
        if done != 1 and done != rounds and done % every:
            return
        line = json.dumps({"protocol": self.protocol, "runs": self.runs, "shard": shard,
                           "shards": shards, "shard_runs": shard_runs, "round": done,
                           "rounds": rounds, "time": time.time()})
        with open(self.path, "a", encoding="utf-8") as f:  # one short append per report
            f.write(line + "\n")


def load_experiment(protocols: Sequence[str] = ("paper", "powered"), *,
                    n_seeds: Mapping[str, int | None] | None = None,
                    root_seeds: Mapping[str, int | None] | None = None,
                    variants: Sequence[str] | None = None, episodes: int = 500,
                    eval_episodes: int = 10, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                    max_workers: int | None = None, progress: bool = False,
                    log: Callable[[str], Any] | None = print, executor=None,
                    scheduler: str | None = None) -> Experiment:
    """Train or load every variant of every protocol through :func:`pgsom.sweep.run_many`.

    ``n_seeds`` / ``root_seeds`` override a protocol's defaults (None keeps them).
    Runs already in the results cache ``cache_dir`` are loaded, the others trained and cached;
    the runs of all protocols are submitted together. ``scheduler``: None trains on a local
    process pool (or on ``executor`` when given), an address (``"tcp://host:8786"``) on that
    Dask cluster (:func:`pgsom.sweep.executor_for`; an unreachable address raises naming it).
    ``progress`` shows tqdm bars while training, unless the environment variable
    :data:`PROGRESS_FILE_ENV` names a file: then progress goes to that file
    (:class:`ProgressFile`) and no bar is shown.
    """
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"protocols: unknown protocol(s) {unknown}; allowed: {list(PROTOCOLS)}")
    configs = make_variants(variants, episodes=episodes, eval_episodes=eval_episodes)
    n_seeds, root_seeds = dict(n_seeds or {}), dict(root_seeds or {})
    resolved = {p: PROTOCOLS[p].replace(n_seeds.get(p), root_seeds.get(p)) for p in protocols}
    return run_experiment(resolved, configs, cache_dir=cache_dir, max_workers=max_workers,
                          progress=progress, log=log, executor=executor, scheduler=scheduler)


def run_experiment(protocols: Mapping[str, Protocol], configs: Mapping[str, RunConfig], *,
                   cache_dir: str | Path = DEFAULT_CACHE_DIR, max_workers: int | None = None,
                   progress: bool = False, log: Callable[[str], Any] | None = print, executor=None,
                   scheduler: str | None = None) -> Experiment:
    """Train or load every config (name -> :class:`RunConfig`, the names those of known
    variants: :func:`pgsom.variants.lookup`) under every protocol; what
    :func:`load_experiment` does once it has resolved its arguments (the readings study,
    :mod:`pgsom.readings`, calls it with its own protocols and variants)."""
    from pgsom.runner import RESULT_FIELDS, RunSpec, training_source_version
    from pgsom.store import ResultStore
    from pgsom.sweep import close_executor, executor_for, run_key, run_many

    episodes = {c.episodes for c in configs.values()}
    if len(episodes) != 1:
        raise ValueError(f"configs must share one episode budget, got {sorted(episodes)}")
    episodes = episodes.pop()
    store = ResultStore(resolve_path(cache_dir))
    version = training_source_version()
    if scheduler is not None and executor is not None:
        raise ValueError(f"pass scheduler or executor, not both (scheduler={scheduler!r}, "
                         f"executor={executor!r})")
    resolved, specs, to_train = dict(protocols), {}, 0
    for p, proto in resolved.items():
        specs[p] = [RunSpec(v, c, i, proto.root_seed) for v, c in configs.items()
                    for i in range(proto.n_seeds)]
        total = len(specs[p])
        cached = sum(run_key(r, version) in store for r in specs[p])
        to_train += total - cached
        if log:
            log(f"protocol {p!r}: {len(configs)} variants x {proto.n_seeds} seeds = {total} runs "
                f"of {episodes} episodes, root seed {proto.root_seed}; {cached} cached, "
                f"{total - cached} to train")
    protocols = list(resolved)
    t0 = time.perf_counter()
    cluster = executor_for(scheduler)
    try:
        relay = os.environ.get(PROGRESS_FILE_ENV)
        report = ProgressFile(relay, "+".join(protocols), to_train) if relay else progress
        flat = run_many([r for p in protocols for r in specs[p]], store=store,
                        executor=cluster if cluster is not None else executor,
                        max_workers=max_workers, progress=report)
    finally:
        close_executor(cluster)
    if log and to_train:
        log(f"trained {to_train} runs of {len(protocols)} protocol(s) in "
            f"{time.perf_counter() - t0:.0f} s")
    runs, k = {}, 0
    for p in protocols:
        n = resolved[p].n_seeds
        runs[p] = {}
        for v in configs:
            runs[p][v] = {f: np.stack([r[f] for r in flat[k : k + n]]) for f in RESULT_FIELDS}
            k += n
    envs = {v: c.env_id for v, c in configs.items()}
    finals = pd.concat([tidy_finals(resolved[p], runs[p], envs) for p in protocols], ignore_index=True)
    curves = pd.concat([tidy_curves(resolved[p], runs[p], envs) for p in protocols], ignore_index=True)
    return Experiment(resolved, list(configs), episodes, runs, finals, curves)


# --------------------------------------------------------------------------- summaries


def write_csv(df: pd.DataFrame, path: str | Path, float_format: str = "%.6g") -> Path:
    """Write ``df`` atomically as CSV: no index, ``\\n`` line ends, fixed float format,
    NaN as an empty cell. Same frame -> same bytes."""
    text = df.to_csv(index=False, float_format=float_format, na_rep="", lineterminator="\n")
    return write_text_atomic(resolve_path(path), text)


def write_run_tables(data: Experiment, paper_dir: str | Path) -> dict[str, Path]:
    """Write ``final_returns.csv`` (one row per protocol, variant, seed, with the run's ``env``
    and the variant's ``method``, ``stabiliser`` and ``reading``) and ``curves.csv`` (one row
    per protocol, variant, seed, episode; the ``env`` and the variant's parts are left out of
    this, the largest file, and joined from ``final_returns.csv`` on ``variant``) into
    ``paper_dir``; floats ``%.6g``, censored / missing values as empty cells."""
    d = resolve_path(paper_dir)
    slim = data.curves.drop(columns=["env", "method", "stabiliser", "reading"], errors="ignore")
    return {
        "final_returns": write_csv(data.finals, d / "final_returns.csv"),
        "curves": write_csv(slim, d / "curves.csv"),
    }


def clip_fraction(data: Experiment) -> pd.DataFrame:
    """Per (protocol, variant) with a clip norm: the fraction of gradient estimates whose norm
    exceeded it (clipping fired), over all episodes of all runs, and its largest per-run
    value. Tells whether ``clip`` acts through clipping or through its doubled rate."""
    rows = []
    for p, runs in data.runs.items():
        for v, r in runs.items():
            if lookup(v).config().algo.clip_norm is None:
                continue
            fired = np.asarray(r["clipped"], bool)
            rows.append({"protocol": p, "variant": v, "fraction_clipped": float(fired.mean()),
                         "max_run_fraction": float(fired.mean(axis=1).max())})
    return pd.DataFrame(rows, columns=["protocol", "variant", "fraction_clipped", "max_run_fraction"])


def threshold_summary(finals: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per (protocol, variant) and threshold: runs reaching it and the Kaplan-Meier median
    episodes to reach it (censored at ``budget``; NaN when fewer than half reach it)."""
    rows = []
    for (p, v), g in finals.groupby(["protocol", "variant"], sort=False):
        row = {"protocol": p, "variant": v, "n": len(g)}
        for thr in THRESHOLDS:
            ep = g[f"episodes_to_{thr}"].to_numpy(float)
            reached = ~np.isnan(ep)
            km = stats.censored_median_episodes(ep, reached, budget)
            row[f"reached_{thr}"] = int(reached.sum())
            row[f"median_episodes_to_{thr}"] = km.median
        rows.append(row)
    return pd.DataFrame(rows)


def stabiliser_means(finals: pd.DataFrame, protocol: str, value: str = "final_return") -> pd.DataFrame:
    """Mean ``value`` per method (rows) and stabiliser (columns: none, clip, ...) for one
    protocol; NaN where a variant was not run. Diverged runs (NaN) are left out of the mean."""
    g = finals[(finals["protocol"] == protocol) & (finals["reading"] == "default")]
    table = g.pivot_table(index="method", columns="stabiliser", values=value, aggfunc="mean", sort=False)
    order = [s for s in (*PAPER_STABILISERS, *STABILISERS) if s in table.columns]
    rows = [m for m in METHODS if m in table.index]
    return table.loc[rows, list(dict.fromkeys(order))]


def summary_statistics(finals: pd.DataFrame, budget: int, *, n_boot: int = 10_000,
                       seed: int = 0, level: float = 0.95,
                       value: str = "final_return") -> pd.DataFrame:
    """Per (protocol, variant): n, diverged, mean, std, t CI, bootstrap (BCa) CI, IQM of
    ``value``, and runs reaching 200 / 400 with the Kaplan-Meier median episodes.
    The bootstrap of each row uses ``SeedSequence(seed, spawn_key=(row,))``."""
    rows = []
    groups = finals.groupby(["protocol", "variant"], sort=False)
    thresholds = {(r["protocol"], r["variant"]): r
                  for r in threshold_summary(finals, budget).to_dict("records")}
    for k, ((p, v), g) in enumerate(groups):
        x = g[value].to_numpy(float)
        s = stats.summary(x)
        t = stats.ci_t(x, level)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
        b = stats.ci_bootstrap(x, rng, level, n_resamples=n_boot)
        row = {"protocol": p, "variant": v, "n": s.n, "diverged": int(g["diverged"].sum()),
               "mean": s.mean, "std": s.std, "ci_t_low": t.low, "ci_t_high": t.high,
               "ci_boot_low": b.low, "ci_boot_high": b.high, "ci_boot_method": b.method,
               "iqm": stats.iqm(x[~np.isnan(x)]).value if s.n else math.nan}
        row.update({k: x for k, x in thresholds[(p, v)].items()
                    if k not in ("protocol", "variant", "n")})
        rows.append(row)
    return pd.DataFrame(rows)

