"""The paper's lemmas (claims C3-C6) checked on an MDP whose J(theta) is exact.

``notebooks/derivations.ipynb`` is prose, plots and one call per output of this module; every
number goes to ``paper/derivations.csv`` (:func:`derivations_table`, :func:`write_table`),
which :mod:`pgsom.claims` reads for claims C3-C6.

The MDP is :class:`pgsom.exact_mdp.FiniteMDP`: every trajectory is enumerated, so J, grad J and
grad^2 J come from autograd, and the package's single-episode estimators
(:func:`pgsom.exact_mdp.single_episode_estimates`) are applied to sampled or enumerated episodes
exactly as the runner applies them. The formulas are the reconstruction in ``docs/design.md``
(section 'Algorithms'):

* REINFORCE gradient g = sum_t A_t s_t, s_t = grad log pi(a_t|s_t), score sum S = sum_t s_t;
* grad^2 J = E[R (S S^T + grad^2 log p(tau))] (Lemma 3.1's decomposition), whose diagonal the
  package estimates by h = g * S + diag grad^2 sum_t A_t log pi(a_t|s_t) (``h``; the second term
  alone is the surrogate-only ``h_surrogate``).

The lemmas hold for undiscounted reward-to-go (gamma = 1) without standardisation, with no
baseline or a fixed time-indexed baseline b_t (:meth:`ExactMDP.grid_baseline`); standardised
advantages (the runner's default) are labelled extras.

One function per check, each returning its detail as a tidy frame (columns in its docstring)
and its rows of ``derivations.csv`` (:class:`Row`); figures by ``*_figure`` (one
``*_panel(..., ax=None)`` per policy class), drawn in :func:`pgsom.plots.style` and saved by
:func:`pgsom.plots.save_figure`. The checks, in the table's order:

=====================  =========  ===================================================
function               claim      what
=====================  =========  ===================================================
:func:`setup_check`    setup      exact J against the Monte Carlo mean return
:func:`c3_exact`       C3         exact identities and exact expectations (enumeration)
:func:`c3_monte_carlo` C3         sampled single-episode estimates against the truth
:func:`c3_convergence` C3         error of the mean against N (slopes)
:func:`c3_overall`     C3         the two overall verdicts
:func:`c4_spectrum`    C4         signs and eigenvalues of grad^2 J and surrogate Hessians
:func:`c5_ascent`      C5         cos(E[first update], grad J) per update rule and eps
:func:`c6_kernel`      C6         the score does not involve the transition kernel
:func:`snr`            SNR        E[x]^2 / Var[x] of the single-episode estimates
:func:`rk_reuse`       RK-reuse   bias of RK's re-scored second stage against alpha
=====================  =========  ===================================================

Verdicts (:data:`VERDICTS`): ``supported`` / ``contradicted`` by the rule in each function's
docstring, ``inconclusive`` where the data cannot decide, ``measured`` for a number that carries
no verdict (its interval is [value, value] when it has no sampling uncertainty).

Randomness: all of it comes from the root ``seed`` through ``SeedSequence(seed).spawn(5)``, one
child per stream of :data:`STREAMS`; each check re-derives its own stream (:func:`stream`), so
the checks can run in any order, or again, and give the same numbers. No global RNG state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from scipy import stats as sps

from pgsom import exact_mdp as xm
from pgsom import plots, stats
from pgsom.config import AlgoConfig
from pgsom.experiments import ParameterError, resolve_path, write_csv

__all__ = [
    "COLUMNS", "VERDICTS", "EXACT_TOL", "STREAMS", "POLICY_CLASSES", "BASELINES", "Case",
    "EXACT_CASES", "MC_CASES", "ASCENT_RULES", "PGSOM_RULE", "EPS_RULES", "BASELINE_RULES", "LIMIT_RULES",
    "CONVERGENCE_CASES", "SPECTRUM_MATRICES", "SNR_ESTIMATES", "UNBIASED_FIGURE_CASES", "N_KERNEL_TRAJECTORIES",
    "ASCENT_EVIDENCE", "Settings", "Parameters", "validate_parameters", "Problem", "make_problem",
    "stream", "Row", "row", "Check", "Truth", "Sample", "MonteCarlo", "Convergence", "Spectrum",
    "Ascent", "AscentVerdict", "truth", "convergence_sizes", "ascent_evidence", "ascent_verdict", "eps_values",
    "setup_check", "c3_exact", "c3_monte_carlo", "c3_convergence", "c3_overall", "c4_spectrum",
    "c5_ascent", "c5_rows", "c6_kernel", "snr", "rk_reuse", "derivations_table", "write_table",
    "unbiased_panel", "unbiased_figure", "convergence_panel", "convergence_figure",
    "spectrum_panel", "spectrum_figure", "ascent_panel", "ascent_figure", "ascent_eps_panel",
    "ascent_eps_figure", "snr_panel", "snr_figure", "rk_reuse_panel", "rk_reuse_figure",
]

COLUMNS = ("claim", "quantity", "value", "ci_low", "ci_high", "verdict")
"""Columns of ``paper/derivations.csv``, one :class:`Row` per line."""

VERDICTS = ("supported", "not supported", "contradicted", "inconclusive", "measured")
"""The verdicts a row may carry."""

EXACT_TOL = 1e-9
"""Relative error allowed for identities computed exactly: rewards and baselines lie on a 1/64
grid, so the float32 advantages are exact and only float64 rounding (~1e-15) remains."""

STREAMS = ("thetas", "mc", "ascent", "lemma32", "setup")
"""The random streams, children 0..4 of ``SeedSequence(seed)`` in this order."""

POLICY_CLASSES = ("linear", "mlp")
"""``linear``: the linear softmax (an exponential family); ``mlp``: one tanh hidden layer."""

BASELINES = ("none", "fixed b_t")
"""No baseline, or the fixed time-indexed baseline :meth:`ExactMDP.grid_baseline` at theta."""

N_KERNEL_TRAJECTORIES = 5
"""Trajectories per policy class in the kernel check (C6)."""


class Case(NamedTuple):
    """An estimate checked against its target.

    ``field``: the :class:`pgsom.exact_mdp.Estimates` field (its target is grad J for ``g``,
    diag grad^2 J otherwise); ``standardize``: standardised advantages; ``expect``: what the
    lemmas say of its expectation, ``unbiased`` (C3's claim), ``biased`` (the surrogate-only
    estimate, which misses E[R S*S]) or ``extra`` (outside the lemmas' setting: shown, not
    part of an overall verdict)."""

    name: str
    field: str
    standardize: bool
    expect: str


EXACT_CASES = (
    Case("g", "g", False, "unbiased"),
    Case("h (full)", "h", False, "unbiased"),
    Case("h (surrogate only)", "h_surrogate", False, "biased"),
    Case("h (full, standardised advantages) [extra]", "h", True, "extra"),
    Case("g (standardised advantages) [extra]", "g", True, "extra"),
)
"""Estimates whose exact expectation :func:`c3_exact` compares with autograd."""

MC_CASES = (
    Case("g", "g", False, "unbiased"),
    Case("h (full)", "h", False, "unbiased"),
    Case("h (full, Hutchinson)", "h_hutchinson", False, "unbiased"),
    Case("h (surrogate only)", "h_surrogate", False, "biased"),
    Case("h (full, standardised) [extra]", "h", True, "extra"),
)
"""Estimates that :func:`c3_monte_carlo` samples."""

_MC_EXACT_CHECK = {  # the exact check of the same expectation (Hutchinson: E over the probe is the full h)
    "g": "E[g] vs autograd",
    "h (full)": "E[h (full)] vs autograd",
    "h (full, Hutchinson)": "E[h (full)] vs autograd",
    "h (surrogate only)": "E[h (surrogate only)] vs autograd",
    "h (full, standardised) [extra]": "E[h (full, standardised advantages) [extra]] vs autograd",
}

_UNB = dict(gamma=1.0, standardize=False)
ASCENT_RULES: tuple[tuple[str, AlgoConfig], ...] = (
    ("pg", AlgoConfig(method="pg", **_UNB)),
    ("adam", AlgoConfig(method="adam", **_UNB)),
    ("PG-SOM (hessian)", AlgoConfig(method="hessian", **_UNB)),
    ("PG-SOM Hutchinson", AlgoConfig(method="hessian", hessian_estimator="hutchinson", **_UNB)),
    ("PG-SOM surrogate-only", AlgoConfig(method="hessian", hessian_terms="surrogate", **_UNB)),
    ("npg", AlgoConfig(method="npg", **_UNB)),
    ("rk fresh", AlgoConfig(method="rk", **_UNB)),
    ("rk reuse", AlgoConfig(method="rk", rk_stage="reuse", **_UNB)),
    ("pg [runner defaults]", AlgoConfig(method="pg")),
    ("PG-SOM [runner defaults]", AlgoConfig(method="hessian")),
)
"""Update rules whose first update :func:`c5_ascent` checks (gamma = 1, raw advantages, except
the two ``[runner defaults]`` extras: standardised advantages, gamma = 0.99)."""

PGSOM_RULE = "PG-SOM (hessian)"
"""The rule of :data:`ASCENT_RULES` that C5's overall row is about."""

EPS_RULES = ("adam", "PG-SOM (hessian)")
"""Rules of :data:`ASCENT_RULES` whose first step divides by sqrt(v) + eps: the eps study of
:func:`c5_ascent` (:func:`eps_values`)."""

BASELINE_RULES = ("pg", "adam", "npg")
"""Rules whose first-step verdicts C5's overall row gives beside PG-SOM's (``pg``: the
reference, E[first step] = lr grad J exactly)."""

LIMIT_RULES: tuple[tuple[str, AlgoConfig], ...] = (
    ("PG-SOM limit E[g]/sqrt(E[h^2])", AlgoConfig(method="hessian", **_UNB)),
    ("adam limit E[g]/sqrt(E[g^2])", AlgoConfig(method="adam", **_UNB)),
)
"""Rules whose converged-moment direction (:func:`pgsom.exact_mdp.moment_limit_step`) C5 checks."""


# --------------------------------------------------------------------------- parameters


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(float(v))


@dataclass(frozen=True)
class Settings:
    """The derivations notebook's parameters (its ``parameters`` cell, output paths aside).

    Checked on construction: a bad value raises :class:`pgsom.experiments.ParameterError`
    naming the parameter, what it allows and the value; ``rk_alphas`` becomes a tuple of
    floats, the float parameters floats."""

    n_states: int = 3
    """MDP states."""
    n_actions: int = 2
    """Actions (>= 2)."""
    horizon: int = 4
    """Steps per episode at most."""
    end_max: float = 0.3
    """Termination probability after each (s, a) is U(0, end_max)."""
    observation: str = "state"
    """``state`` (one-hot s) or ``state_time`` ([one-hot s, one-hot t])."""
    mlp_hidden: int = 4
    """Hidden units of the MLP policy class."""
    n_thetas: int = 4
    """Random parameter vectors per policy class (C4, C5, SNR, RK-reuse)."""
    theta_scale: float = 2.0
    """Thetas are the package's ``init_params`` times this (less uniform policies)."""
    n_mc: int = 20000
    """Monte Carlo episodes per unbiasedness check (C3, setup)."""
    n_mc_ascent: int = 20000
    """Monte Carlo episodes per theta for the ascent check (C5; every rule on the same episodes)."""
    ascent_eps: tuple[float, ...] = (1e-6, 1e-4, 1e-2, 1.0, 100.0)
    """The eps study (C5): eps values besides each rule's own ``AlgoConfig.eps`` (adam, PG-SOM)."""
    rk_alphas: tuple[float, ...] = (0.002, 0.01, 0.05, 0.2, 1.0)
    """RK step sizes for the reuse-bias curve; the first is the one reported (0.002: paper)."""
    ci_level: float = 0.95
    """Family-wise confidence level (Bonferroni within each family)."""
    seed: int = 0
    """Root seed: MDP, thetas, episodes, probes."""

    def __post_init__(self) -> None:
        def fail(name: str, allowed: str) -> None:
            raise ParameterError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

        for name, low in (("n_states", 1), ("n_actions", 2), ("horizon", 1), ("mlp_hidden", 1),
                          ("n_thetas", 1), ("n_mc", 100), ("n_mc_ascent", 2), ("seed", 0)):
            if not (_is_int(getattr(self, name)) and getattr(self, name) >= low):
                fail(name, f"an int >= {low}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if not (_is_real(self.end_max) and 0 <= self.end_max < 1):
            fail("end_max", "a number in [0, 1)")
        if self.observation not in xm.OBSERVATIONS:
            fail("observation", f"one of {list(xm.OBSERVATIONS)}")
        if not (_is_real(self.theta_scale) and self.theta_scale > 0):
            fail("theta_scale", "a finite number > 0")
        if not (_is_real(self.ci_level) and 0 < self.ci_level < 1):
            fail("ci_level", "a number in (0, 1)")
        alphas = self.rk_alphas
        if not (isinstance(alphas, (list, tuple)) and alphas and all(_is_real(a) and a > 0 for a in alphas)
                and len({float(a) for a in alphas if a <= 0.05}) >= 2):
            fail("rk_alphas", "a non-empty list of finite step sizes > 0 with at least two distinct "
                 "values <= 0.05 (the reuse bias's log-log slope is fitted on them)")
        for name in ("end_max", "theta_scale", "ci_level"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "rk_alphas", tuple(float(a) for a in alphas))
        eps = self.ascent_eps
        if not (isinstance(eps, (list, tuple)) and eps and all(_is_real(x) and x > 0 for x in eps)):
            fail("ascent_eps", "a non-empty list of finite numbers > 0")
        object.__setattr__(self, "ascent_eps", tuple(float(x) for x in eps))
        S, A, T = self.n_states, self.n_actions, self.horizon
        n_traj = sum((S * A) ** length for length in range(1, T + 1))
        if n_traj > xm.MAX_TRAJECTORIES:
            raise ParameterError(f"n_states={S}, n_actions={A}, horizon={T} give {n_traj} trajectories "
                                 f"to enumerate; at most {xm.MAX_TRAJECTORIES} are allowed (make the MDP smaller)")


@dataclass(frozen=True)
class Parameters:
    """Validated notebook parameters: the :class:`Settings` and the absolute output paths."""

    settings: Settings
    derivations_csv: Path
    """Where :func:`write_table` writes ``derivations.csv``."""
    figures_dir: Path
    """Where the ``derivations_*.{pdf,png}`` figures go."""


def validate_parameters(**params: Any) -> Parameters:
    """Check the notebook's parameters; :class:`pgsom.experiments.ParameterError` (one line in a
    notebook) names a bad one, what it allows and the value. ``derivations_csv`` and
    ``figures_dir`` are required; relative paths are relative to the repository root
    (:func:`pgsom.experiments.resolve_path`), the others are the fields of :class:`Settings`."""
    allowed = [f.name for f in fields(Settings)] + ["derivations_csv", "figures_dir"]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; allowed: {allowed}")
    paths = {}
    for name in ("derivations_csv", "figures_dir"):
        value = params.pop(name, None)
        if not (isinstance(value, (str, Path)) and str(value).strip()):
            raise ParameterError(f"{name} must be a non-empty path string, got {value!r}")
        paths[name] = resolve_path(value)
    return Parameters(Settings(**params), **paths)


# --------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class Problem:
    """The MDP, one :class:`pgsom.exact_mdp.ExactMDP` per policy class (:data:`POLICY_CLASSES`)
    and ``n_thetas`` random float64 parameter vectors per class; ``thetas[c][0]`` is the theta
    of the single-theta checks (setup, C3, C6)."""

    settings: Settings
    mdp: xm.FiniteMDP
    models: Mapping[str, xm.ExactMDP]
    thetas: Mapping[str, torch.Tensor]

    def describe(self) -> str:
        """One line: the MDP and the number of parameters per policy class."""
        s, e = self.settings, self.models["linear"]
        d = ", ".join(f"{name} {m.d}" for name, m in self.models.items())
        return (f"MDP: {s.n_states} states, {s.n_actions} actions, horizon {s.horizon}, "
                f"observation={s.observation!r}; {e.n_trajectories} trajectories enumerated; "
                f"parameters per policy class: {d}")

    def rewards(self) -> pd.DataFrame:
        """r(s, a): one row per state, one column per action."""
        r = self.models["linear"].model.rewards
        return pd.DataFrame(r, columns=[f"r(s, a={a})" for a in range(r.shape[1])]).rename_axis("s")


def stream(seed: int, name: str) -> np.random.SeedSequence:
    """A fresh copy of random stream ``name`` of root ``seed``: child ``STREAMS.index(name)``
    of ``SeedSequence(seed).spawn(len(STREAMS))`` (fresh: its own ``spawn`` starts at child 0)."""
    if name not in STREAMS:
        raise ValueError(f"stream must be one of {list(STREAMS)}, got {name!r}")
    return np.random.SeedSequence(seed).spawn(len(STREAMS))[STREAMS.index(name)]


def make_problem(settings: Settings) -> Problem:
    """The MDP of ``settings`` (``FiniteMDP(..., seed=settings.seed)``) and its policy classes;
    class k's thetas are ``random_thetas(spec, n_thetas, t + k, theta_scale)`` with t the first
    word of stream ``thetas``."""
    s = settings
    mdp = xm.FiniteMDP(n_states=s.n_states, n_actions=s.n_actions, horizon=s.horizon, seed=s.seed,
                       end_max=s.end_max, observation=s.observation)
    hidden = {"linear": (), "mlp": (s.mlp_hidden,)}
    models = {name: xm.ExactMDP(mdp, hidden[name]) for name in POLICY_CLASSES}
    theta_seed = int(stream(s.seed, "thetas").generate_state(1)[0])
    thetas = {name: xm.random_thetas(e.spec, s.n_thetas, theta_seed + k, s.theta_scale)
              for k, (name, e) in enumerate(models.items())}
    return Problem(s, mdp, models, thetas)


# --------------------------------------------------------------------------- rows


class Row(NamedTuple):
    """One line of ``derivations.csv``: ``value`` with its interval [``ci_low``, ``ci_high``]
    (the value itself when it has no sampling uncertainty) and a verdict of :data:`VERDICTS`."""

    claim: str
    quantity: str
    value: float
    ci_low: float
    ci_high: float
    verdict: str


def row(claim: str, quantity: str, value, low=None, high=None, verdict: str = "measured") -> Row:
    """A :class:`Row`; an exact or descriptive number (no ``low`` / ``high``) gets [value, value]."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {list(VERDICTS)}, got {verdict!r}")
    value = float(value)
    return Row(claim, quantity, value, value if low is None else float(low),
               value if high is None else float(high), verdict)


class Check(NamedTuple):
    """A check's detail (``table``, columns in the check's docstring) and its rows."""

    table: pd.DataFrame
    rows: tuple[Row, ...]


class Truth(NamedTuple):
    """What the estimators estimate at one theta, by autograd through the enumeration."""

    grad: torch.Tensor  # grad J, (d,)
    hessian: torch.Tensor  # grad^2 J, (d, d)
    baseline: torch.Tensor  # the fixed baseline b_t, (T,)

    def target(self, field: str) -> torch.Tensor:
        """grad J for ``g``, diag grad^2 J for the Hessian estimates."""
        return self.grad if field == "g" else self.hessian.diagonal()


def truth(model: xm.ExactMDP, theta: torch.Tensor) -> Truth:
    """grad J, grad^2 J and :meth:`ExactMDP.grid_baseline` at ``theta`` (``(d,)``)."""
    return Truth(model.exact_grad(theta), model.exact_hessian(theta), model.grid_baseline(theta))


def _baselines(t: Truth):
    return ((BASELINES[0], None), (BASELINES[1], t.baseline))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (Euclidean)."""
    return float((a - b).norm() / b.norm())


# --------------------------------------------------------------------------- setup, C3


def setup_check(problem: Problem) -> Check:
    """Sanity check of the enumeration: exact J(theta_0) against the mean return of ``n_mc``
    episodes sampled by :meth:`ExactMDP.sample_episodes` (stream ``setup``, one generator for
    both classes in order), with a ``ci_level`` t interval.

    Verdict (claim ``setup``): supported iff the interval covers the exact J.
    Table: policy, exact_J, mc_mean, ci_low, ci_high."""
    s = problem.settings
    rng = np.random.default_rng(stream(s.seed, "setup"))
    table, rows = [], []
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        batch = e.sample_episodes(th, s.n_mc, rng)
        ci = stats.ci_t(batch.rewards.double().sum(1).numpy(), s.ci_level)
        J = float(e.exact_J(th))
        table.append(dict(policy=name, exact_J=J, mc_mean=ci.estimate, ci_low=ci.low, ci_high=ci.high))
        rows.append(row("setup", f"{name}: Monte Carlo mean return (N={s.n_mc}) vs exact J={J:.6f}",
                        ci.estimate, ci.low, ci.high, "supported" if ci.low <= J <= ci.high else "contradicted"))
    return Check(pd.DataFrame(table), tuple(rows))


def c3_exact(problem: Problem) -> Check:
    """C3 / Lemma 3.1 by enumeration (no sampling), at theta_0 of each class:

    * the Fisher identity E[S S^T + grad^2 log p(tau)] = 0: max |sum| / max |E[S S^T]|;
    * the decomposition grad^2 J = E[R S S^T] + E[R grad^2 log p(tau)]: max |error| / max |grad^2 J|;
    * for each of :data:`EXACT_CASES` and :data:`BASELINES`: the exact expectation
      sum_tau p(tau) x(tau) of the package's estimate x against its target (grad J or
      diag grad^2 J), ||E[x] - target|| / ||target||.

    Verdict of each row: supported iff the relative error is <= :data:`EXACT_TOL` (the row
    claims the identity, or that E[x] equals the target: the surrogate-only and standardised
    cases are expected to be contradicted). Table: policy, check, baseline, case ("-" for the
    two identities), expect ("identity" or the case's), rel_error, verdict."""
    table = []
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        t = truth(e, th)
        outer, second = e.fisher_identity_terms(th)
        fisher_err = float((outer + second).abs().max() / outer.abs().max())
        r_outer, r_second = e.hessian_decomposition(th)
        decomp_err = float((r_outer + r_second - t.hessian).abs().max() / t.hessian.abs().max())
        table += [dict(policy=name, check="Fisher identity E[SS^T + grad^2 log p] = 0", baseline="-",
                       case="-", expect="identity", rel_error=fisher_err),
                  dict(policy=name, check="grad^2 J = E[R SS^T] + E[R grad^2 log p]", baseline="-",
                       case="-", expect="identity", rel_error=decomp_err)]
        batch = e.episodes()
        K = batch.mask.shape[0]
        for bname, b in _baselines(t):
            for case in EXACT_CASES:
                est = xm.single_episode_estimates(e.spec, xm.repeat(th, K), batch, baseline=b,
                                                  standardize=case.standardize)
                err = _rel(e.expectation(getattr(est, case.field), th), t.target(case.field))
                table.append(dict(policy=name, check=f"E[{case.name}] vs autograd", baseline=bname,
                                  case=case.name, expect=case.expect, rel_error=err))
    for r in table:
        r["verdict"] = "supported" if r["rel_error"] <= EXACT_TOL else "contradicted"
    rows = tuple(row("C3", f"{r['policy']}, baseline {r['baseline']}: {r['check']} (exact enumeration, "
                     "relative error)", r["rel_error"], verdict=r["verdict"]) for r in table)
    return Check(pd.DataFrame(table), rows)


class Sample(NamedTuple):
    """``n_mc`` independent single-episode estimates (rows) and their target (exact)."""

    estimates: np.ndarray  # (N, d)
    target: np.ndarray  # (d,)


class MonteCarlo(NamedTuple):
    """:func:`c3_monte_carlo`'s result: its table and rows, the samples by (policy, baseline,
    case), the number of episodes and the Bonferroni-adjusted confidence level."""

    table: pd.DataFrame
    rows: tuple[Row, ...]
    samples: Mapping[tuple[str, str, str], Sample]
    n: int
    level: float


def c3_monte_carlo(problem: Problem, exact: Check) -> MonteCarlo:
    """C3 by Monte Carlo: ``n_mc`` single-episode estimates at theta_0 (theta repeated, one
    sampled episode per row: each row is one independent estimate, as the runner computes it
    per episode; stream ``mc``, one child per class, which also draws the Rademacher probes of
    the Hutchinson variant), for each of :data:`MC_CASES` and :data:`BASELINES`.

    Statistic: the relative bias along the truth, (x - t) . t / ||t||^2 per episode (mean 0 when
    unbiased), with a t interval; per coordinate, t intervals of the mean against t. Intervals
    are at the Bonferroni level 1 - (1 - ci_level) / m, m = (sum over classes of d + 1) times the
    number of cases and baselines, so the family-wise false-alarm rate is <= 1 - ci_level.

    Verdict: contradicted when the bias interval excludes 0 or a coordinate's interval misses
    its target; otherwise supported when the exact check of the same expectation (``exact``,
    :func:`c3_exact`'s result) agrees to :data:`EXACT_TOL`, inconclusive when it shows a bias
    the sample missed. Table: policy, baseline, case, expect, bias, ci_low, ci_high, n_outside
    (coordinates outside their interval), n_coords, exact_rel_error, verdict."""
    s = problem.settings
    exact_err = exact.table.set_index(["policy", "baseline", "check"]).rel_error
    n_tests = sum(e.d + 1 for e in problem.models.values()) * len(MC_CASES) * 2
    level = 1 - (1 - s.ci_level) / n_tests
    rngs = [np.random.default_rng(c) for c in stream(s.seed, "mc").spawn(len(problem.models))]
    samples, table, rows = {}, [], []
    for (name, e), rng in zip(problem.models.items(), rngs):
        th = problem.thetas[name][0]
        t = truth(e, th)
        batch = e.sample_episodes(th, s.n_mc, rng)
        probe = torch.from_numpy(2.0 * rng.integers(0, 2, (s.n_mc, e.d)) - 1)
        for bname, b in _baselines(t):
            out = {std: xm.single_episode_estimates(e.spec, xm.repeat(th, s.n_mc), batch, baseline=b,
                                                    probe=probe, standardize=std) for std in (False, True)}
            for case in MC_CASES:
                x = getattr(out[case.standardize], case.field).numpy()
                target = t.target(case.field).numpy()
                samples[(name, bname, case.name)] = Sample(x, target)
                coord = stats.ci_t(x, level)
                ci = stats.ci_t((x - target) @ target / (target @ target), level)
                covered = bool(np.all((coord.low <= target) & (target <= coord.high)))
                err = exact_err[(name, bname, _MC_EXACT_CHECK[case.name])]
                verdict = ("contradicted" if not (ci.low <= 0 <= ci.high and covered)
                           else "supported" if err <= EXACT_TOL else "inconclusive")
                n_out = int(np.sum((coord.low > target) | (target > coord.high)))
                table.append(dict(policy=name, baseline=bname, case=case.name, expect=case.expect,
                                  bias=ci.estimate, ci_low=ci.low, ci_high=ci.high, n_outside=n_out,
                                  n_coords=e.d, exact_rel_error=err, verdict=verdict))
                rows.append(row("C3", f"{name}, baseline {bname}: {case.name}, relative bias along the truth "
                                f"(Monte Carlo N={s.n_mc}, Bonferroni level {level:.6f}; {n_out}/{e.d} "
                                "coordinates outside their interval)", ci.estimate, ci.low, ci.high, verdict))
    return MonteCarlo(pd.DataFrame(table), tuple(rows), samples, s.n_mc, level)


class Convergence(NamedTuple):
    """:func:`c3_convergence`'s result: ``table`` (policy, case, n, rms_rel_error, theory),
    ``fits`` (policy, case, slope, ci_low, ci_high) and its rows."""

    table: pd.DataFrame
    fits: pd.DataFrame
    rows: tuple[Row, ...]


CONVERGENCE_CASES = (("g", "g"), ("h (full)", "h"), ("h (surrogate only)", "h_surrogate"))
"""(case, estimate field) of the error-vs-N curves (the samples of baseline ``none``)."""


def convergence_sizes(n_mc: int) -> list[int]:
    """Chunk sizes N_k: 8 geometrically spaced integers from 10 to n_mc // 5 (distinct, >= 2)."""
    return [int(n) for n in np.unique(np.geomspace(10, n_mc // 5, 8).astype(int)) if n >= 2]


def c3_convergence(problem: Problem, mc: MonteCarlo) -> Convergence:
    """Error of the mean against N: the ``mc`` samples (baseline ``none``) split into independent
    chunks of N_k episodes (:func:`convergence_sizes`); per N_k the RMS over chunks of
    ||mean - t|| / ||t||. For an unbiased estimator it falls as N^-1/2; the exact curve from the
    enumeration is sqrt(||E[x] - t||^2 + tr Cov[x] / N) / ||t|| (``theory``), which levels off
    at the bias of the surrogate-only estimate.

    Rows (``measured``): the least-squares slope of log error on log N with its ``ci_level``
    t interval (N_k - 2 degrees of freedom)."""
    s = problem.settings
    sizes = convergence_sizes(s.n_mc)
    table, fits, rows = [], [], []
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        batch = e.episodes()
        est_all = xm.single_episode_estimates(e.spec, xm.repeat(th, batch.mask.shape[0]), batch)
        for case, field in CONVERGENCE_CASES:
            x, target = mc.samples[(name, "none", case)]
            errs = []
            for n in sizes:
                chunks = x[: (len(x) // n) * n].reshape(-1, n, x.shape[1]).mean(1)
                errs.append(np.sqrt(np.mean(np.sum((chunks - target) ** 2, 1))) / np.linalg.norm(target))
            fit = sps.linregress(np.log(sizes), np.log(errs))
            half = sps.t.ppf((1 + s.ci_level) / 2, len(sizes) - 2) * fit.stderr
            mean, var = e.moments(getattr(est_all, field), th)
            bias2 = float(((mean - torch.from_numpy(target)) ** 2).sum())
            theory = np.sqrt(bias2 + float(var.sum()) / np.asarray(sizes)) / np.linalg.norm(target)
            table += [dict(policy=name, case=case, n=n, rms_rel_error=err, theory=th_)
                      for n, err, th_ in zip(sizes, errs, theory)]
            fits.append(dict(policy=name, case=case, slope=fit.slope, ci_low=fit.slope - half,
                             ci_high=fit.slope + half))
            rows.append(row("C3", f"{name}: log-log slope of RMS relative error of the mean of {case} vs N "
                            f"(N={sizes[0]}..{sizes[-1]}; unbiased: -0.5)", fit.slope, fit.slope - half,
                            fit.slope + half))
    return Convergence(pd.DataFrame(table), pd.DataFrame(fits), tuple(rows))


def c3_overall(exact: Check, mc: MonteCarlo) -> tuple[Row, Row]:
    """C3's two overall rows, from the verdicts of :func:`c3_exact` and :func:`c3_monte_carlo`:

    * g and the full h are unbiased: supported iff every row of the identities and of the
      ``unbiased`` cases is supported (value: the fraction supported);
    * the surrogate-only h is unbiased: contradicted iff every ``biased`` row is contradicted,
      else inconclusive (value: the fraction contradicted).

    The ``extra`` cases (standardised advantages) and the slopes take no part."""
    verdicts = pd.concat([exact.table[["expect", "verdict"]], mc.table[["expect", "verdict"]]])
    unbiased = list(verdicts.verdict[verdicts.expect.isin(["identity", "unbiased"])])
    surrogate = list(verdicts.verdict[verdicts.expect == "biased"])
    c3 = "supported" if all(v == "supported" for v in unbiased) else "contradicted"
    sur = "contradicted" if all(v == "contradicted" for v in surrogate) else "inconclusive"
    return (row("C3", "overall: g and the full h are unbiased for grad J and diag grad^2 J (gamma=1, no "
                "standardisation, with and without a fixed baseline, linear and MLP; exact enumeration and "
                "Monte Carlo)", sum(v == "supported" for v in unbiased) / len(unbiased), verdict=c3),
            row("C3", "overall: the surrogate-only h (hessian_terms='surrogate', autograd of the REINFORCE "
                "loss) is unbiased", sum(v == "contradicted" for v in surrogate) / len(surrogate), verdict=sur))


# --------------------------------------------------------------------------- C4


class Spectrum(NamedTuple):
    """:func:`c4_spectrum`'s result: ``table`` (policy, theta, matrix, eig_min, eig_max, n_zero,
    frac_diag_neg, frac_diag_pos), ``eigenvalues`` (policy, theta, matrix, eigenvalue: every
    eigenvalue, ascending) and its rows."""

    table: pd.DataFrame
    eigenvalues: pd.DataFrame
    rows: tuple[Row, ...]


SPECTRUM_MATRICES = ("grad^2 J", "-E[surrogate Hessian], A=G", "-E[surrogate Hessian], A=G-b")
"""The matrices of C4, at each theta: the exact Hessian of J and the expected surrogate Hessian
of the loss, -E[grad^2 sum_t A_t log pi_t], with A_t = G_t >= 0 and with A_t = G_t - b_t."""


def c4_spectrum(problem: Problem) -> Spectrum:
    """C4 (positive-definiteness) at every theta of each class, for each of
    :data:`SPECTRUM_MATRICES` M: its eigenvalues (``eigvalsh``), how many are zero
    (|w| <= 1e-9 max |w|) and the fractions of negative and positive diagonal entries.

    E[h] = diag grad^2 J, so "positive" can only hold if that diagonal is. For the linear softmax
    (an exponential family), grad^2 log pi(a|s) = -Cov_pi[phi] is negative semi-definite and
    independent of a, so the loss-sign surrogate Hessian is positive semi-definite when every
    A_t >= 0, never definite (adding a constant to a state's logits changes nothing: null
    directions).

    Verdicts: overall supported iff diag grad^2 J has one sign at every theta for the linear
    class (value: fraction of thetas with both signs); semi-definite rows supported iff the
    smallest eigenvalue is >= -1e-9 times the largest |eigenvalue| of the linear class;
    definite iff also no eigenvalue is zero."""
    s = problem.settings
    table, eigs = [], []
    for name, e in problem.models.items():
        for k, th in enumerate(problem.thetas[name]):
            H = e.exact_hessian(th)
            batch = e.episodes()
            K = batch.mask.shape[0]
            adv_G = xm.single_episode_estimates(e.spec, xm.repeat(th, K), batch).advantages
            adv_Gb = xm.single_episode_estimates(e.spec, xm.repeat(th, K), batch,
                                                 baseline=e.grid_baseline(th)).advantages
            sur_G = -e.expected_surrogate_hessian(th, adv_G)
            sur_Gb = -e.expected_surrogate_hessian(th, adv_Gb)
            for kind, M in zip(SPECTRUM_MATRICES, (H, sur_G, sur_Gb)):
                w = torch.linalg.eigvalsh(M)
                table.append(dict(policy=name, theta=k, matrix=kind, eig_min=float(w.min()), eig_max=float(w.max()),
                                  n_zero=int((w.abs() <= 1e-9 * w.abs().max()).sum()),
                                  frac_diag_neg=float((M.diagonal() < 0).double().mean()),
                                  frac_diag_pos=float((M.diagonal() > 0).double().mean())))
                eigs += [dict(policy=name, theta=k, matrix=kind, eigenvalue=v) for v in w.numpy()]
    df = pd.DataFrame(table)
    n = s.n_thetas
    rows = []
    for name in problem.models:
        sub = df[df.policy == name]
        H = sub[sub.matrix == SPECTRUM_MATRICES[0]]
        rows += [row("C4", f"{name}: fraction of negative diagonal entries of grad^2 J ({n} thetas)",
                     H.frac_diag_neg.mean()),
                 row("C4", f"{name}: fraction of negative diagonal entries of grad^2(-J) ({n} thetas)",
                     H.frac_diag_pos.mean()),
                 row("C4", f"{name}: smallest eigenvalue of grad^2 J ({n} thetas)", H.eig_min.min()),
                 row("C4", f"{name}: largest eigenvalue of grad^2 J ({n} thetas)", H.eig_max.max())]
        for kind in SPECTRUM_MATRICES[1:]:
            S = sub[sub.matrix == kind]
            rows += [row("C4", f"{name}: smallest eigenvalue of {kind} (loss sign; {n} thetas)", S.eig_min.min()),
                     row("C4", f"{name}: zero eigenvalues of {kind} (min over thetas)", S.n_zero.min())]
    lin = df[(df.policy == "linear") & (df.matrix == SPECTRUM_MATRICES[0])]
    definite_sign = bool((lin.frac_diag_neg == 0).all() or (lin.frac_diag_pos == 0).all())
    rows.append(row("C4", "overall: E[h] = diag grad^2 J (the unbiased estimator) has one sign at every theta for the "
                    "exponential-family (linear softmax) policy: fraction of thetas with both signs on the diagonal",
                    float(((lin.frac_diag_neg > 0) & (lin.frac_diag_pos > 0)).mean()),
                    verdict="supported" if definite_sign else "contradicted"))
    linS = df[(df.policy == "linear") & (df.matrix == SPECTRUM_MATRICES[1])]
    tol = 1e-9 * df[df.policy == "linear"].eig_max.abs().max()
    psd = bool((linS.eig_min >= -tol).all())
    strict = bool(psd and (linS.n_zero == 0).all())
    mlpS = df[(df.policy == "mlp") & (df.matrix == SPECTRUM_MATRICES[1])]
    linSb = df[(df.policy == "linear") & (df.matrix == SPECTRUM_MATRICES[2])]
    rows += [
        row("C4", "surrogate-only, loss sign, advantages G_t >= 0, linear softmax: positive SEMI-definite (min "
            "eigenvalue >= -1e-9 max)", linS.eig_min.min(), verdict="supported" if psd else "contradicted"),
        row("C4", "surrogate-only, loss sign, advantages G_t >= 0, linear softmax: positive-DEFINITE (no zero "
            "eigenvalue)", linS.n_zero.min(), verdict="supported" if strict else "contradicted"),
        row("C4", "surrogate-only, loss sign, advantages G_t >= 0, MLP softmax: positive semi-definite "
            "(min eigenvalue)",
            mlpS.eig_min.min(), verdict="supported" if bool((mlpS.eig_min >= -tol).all()) else "contradicted"),
        row("C4", "surrogate-only, loss sign, advantages G_t - b_t (mixed signs), linear softmax: positive "
            "semi-definite (min eigenvalue)", linSb.eig_min.min(),
            verdict="supported" if bool((linSb.eig_min >= -tol).all()) else "contradicted"),
    ]
    return Spectrum(df, pd.DataFrame(eigs), tuple(rows))


# --------------------------------------------------------------------------- C5


class Ascent(NamedTuple):
    """:func:`c5_ascent`'s result.

    ``table``: one row per (policy, theta, rule) of :data:`ASCENT_RULES` and :data:`LIMIT_RULES`
    (columns policy, theta, rule, eps (the rule's ``AlgoConfig.eps``; NaN for a rule without
    one), exact_cos, mc_cos, ci_low, ci_high, evidence (:func:`ascent_evidence`)); ``eps_table``:
    the eps study, one row per (policy, theta, rule of :data:`EPS_RULES`, eps of
    :func:`eps_values`), the same columns (the rule's own eps repeats its ``table`` row);
    ``verdicts``: one row per (policy, rule): verdict, theta (the theta reported), evidence
    (the count of thetas per evidence); ``eps_verdicts``: the same per (policy, rule, eps),
    with ``default`` (the rule's own eps); ``level``: the Bonferroni-adjusted level of every
    Monte Carlo interval; and the rows of ``derivations.csv``."""

    table: pd.DataFrame
    eps_table: pd.DataFrame
    verdicts: pd.DataFrame
    eps_verdicts: pd.DataFrame
    level: float
    rows: tuple[Row, ...]


ASCENT_EVIDENCE = {
    # exact value and Monte Carlo interval
    "exact and CI > 0": "+", "exact and CI < 0": "-", "exact > 0, CI includes 0": "?",
    "exact < 0, CI includes 0": "?", "exact and CI disagree": "?", "exact = 0": "?",
    # exact value only (LIMIT_RULES)
    "exact > 0": "+", "exact < 0": "-",
    # Monte Carlo interval only (Hutchinson)
    "CI > 0": "+", "CI < 0": "-", "CI includes 0": "?",
}
"""What one theta's evidence can be (:func:`ascent_evidence`), in the order the rows count them,
and what it decides: ``+`` an ascent direction there, ``-`` not one, ``?`` undecided."""


def ascent_evidence(exact: float, mc: float, low: float, high: float) -> str:
    """The evidence at one theta, a key of :data:`ASCENT_EVIDENCE`: ``exact`` is the enumerated
    cos (NaN: none), ``mc`` the Monte Carlo mean (NaN: no Monte Carlo) with its interval
    [``low``, ``high``]. A sign is decided only where every piece of evidence there is excludes
    0 on the same side: the exact value and, where it exists, the whole interval."""
    has_exact, has_mc = bool(np.isfinite(exact)), bool(np.isfinite(mc))
    if not (has_exact or has_mc):
        raise ValueError("ascent_evidence needs an exact value or a Monte Carlo interval")
    ci = None if not has_mc else ">" if low > 0 else "<" if high < 0 else "0"
    if not has_exact:
        return {">": "CI > 0", "<": "CI < 0", "0": "CI includes 0"}[ci]
    if exact == 0:
        return "exact = 0"
    e = ">" if exact > 0 else "<"
    if ci is None:
        return f"exact {e} 0"
    if ci == "0":
        return f"exact {e} 0, CI includes 0"
    return f"exact and CI {e} 0" if ci == e else "exact and CI disagree"


class AscentVerdict(NamedTuple):
    """:func:`ascent_verdict`'s result: the verdict, the reported theta's row (value: its exact
    cos, else its Monte Carlo mean; its interval), what the value is the minimum over
    (``scope``), the evidence used (``source``: ``exact``, ``exact and Monte Carlo`` or
    ``Monte Carlo``) and the count of thetas per evidence (``counts``)."""

    verdict: str
    theta: int
    value: float
    ci_low: float
    ci_high: float
    scope: str
    source: str
    counts: str


def ascent_verdict(sub: pd.DataFrame) -> AscentVerdict:
    """C5's rule for one (policy, rule) over its thetas (``sub``: rows with theta, exact_cos,
    mc_cos, ci_low, ci_high; NaN exact_cos: Monte Carlo only, NaN mc_cos: exact only).

    Each theta's evidence (:func:`ascent_evidence`) is ``+`` where the exact value is > 0 and,
    where a Monte Carlo interval exists, the whole interval is > 0 (Monte Carlo only: the
    interval > 0); ``-`` the same on the negative side; ``?`` otherwise (an interval that
    includes 0, or exact and Monte Carlo on opposite sides). **contradicted** iff some theta is
    ``-``; **supported** iff every theta is ``+``; else **inconclusive**. Reported: the minimum
    over the ``-`` thetas when contradicted, over every theta otherwise."""
    if sub.empty:
        raise ValueError("ascent_verdict needs at least one theta")
    ev = [ascent_evidence(r.exact_cos, r.mc_cos, r.ci_low, r.ci_high) for r in sub.itertuples()]
    sign = np.array([ASCENT_EVIDENCE[x] for x in ev])
    verdict = "contradicted" if (sign == "-").any() else "supported" if (sign == "+").all() else "inconclusive"
    value = sub.exact_cos.where(sub.exact_cos.notna(), sub.mc_cos).to_numpy(float)
    pool = np.flatnonzero(sign == "-") if verdict == "contradicted" else np.arange(len(sub))
    k = pool[np.argmin(value[pool])]
    n = len(sub)
    negative = sorted({x for x, s in zip(ev, sign) if s == "-"}, key=list(ASCENT_EVIDENCE).index)
    scope = (f"the {len(pool)} of {n} thetas with {' or '.join(negative)}" if verdict == "contradicted"
             else f"{n} thetas")
    has_exact, has_mc = bool(sub.exact_cos.notna().any()), bool(sub.mc_cos.notna().any())
    source = "exact and Monte Carlo" if has_exact and has_mc else "exact" if has_exact else "Monte Carlo"
    counts = ", ".join(f"{ev.count(x)} with {x}" for x in ASCENT_EVIDENCE if x in ev)
    r = sub.iloc[k]
    return AscentVerdict(verdict, int(r.theta), float(value[k]), float(r.ci_low), float(r.ci_high), scope,
                         source, counts)


def _aggregate(verdicts) -> str:
    """A claim over policy classes: contradicted if any is, supported if all are, else inconclusive."""
    verdicts = list(verdicts)
    return ("contradicted" if "contradicted" in verdicts else
            "supported" if verdicts and all(v == "supported" for v in verdicts) else "inconclusive")


def eps_values(algo: AlgoConfig, settings: Settings) -> list[float]:
    """The eps of the eps study for ``algo``: its own ``algo.eps`` and ``settings.ascent_eps``,
    ascending, without repeats."""
    return sorted({float(algo.eps), *settings.ascent_eps})


def _second_stage(algo: AlgoConfig) -> str:
    # RK's fresh second stage has the conditional mean grad J(theta~) when the estimator is unbiased
    return "exact" if algo.method == "rk" and algo.rk_stage == "fresh" and algo.gamma == 1.0 else "sample"


def _eps_label(eps: float, default: float) -> str:
    return f"eps={eps:g}" + (" (default)" if eps == default else "")


def c5_ascent(problem: Problem) -> Ascent:
    """C5: is each rule's update an ascent direction in expectation? At every theta of each
    class (stream ``ascent``, one child per (class, theta)), for each of :data:`ASCENT_RULES`:
    the first update Delta theta of ``make_rule(algo)`` from a fresh state
    (:func:`pgsom.exact_mdp.first_update`; RK: both Heun stages, alpha/2 (k1 + k2)), and
    cos(E[Delta theta], grad J): exactly by enumeration (``exact_cos``; RK fresh with the exact
    grad J(theta~) as its second stage; not for Hutchinson), and by Monte Carlo over
    ``n_mc_ascent`` episodes, Delta theta . grad J / ||grad J|| divided by ||E[Delta theta]||
    (exact; Hutchinson: of the Monte Carlo mean), with a t interval Bonferroni-adjusted over
    every Monte Carlo interval of C5 (classes x thetas x (rules + the eps study's extra rows)).
    :data:`LIMIT_RULES`: the converged-moment direction E[g] / sqrt(E[h^2]) (or E[g^2]), exact.

    eps study: adam's and PG-SOM's first step is alpha g / (sqrt(v) + eps) with v from one
    episode (g^2 or h^2), i.e. alpha g / (|g| + eps) or alpha g / (|h| + eps): sign-like where
    |h| >> eps, and set by eps where |h| is tiny. For each rule of :data:`EPS_RULES` and each eps
    of :func:`eps_values` (the rule's ``AlgoConfig.eps`` and ``ascent_eps``), the same check on the
    same episodes. As eps grows the step tends to alpha g / eps, whose expectation is
    alpha grad J / eps: cos -> pg's value (1). npg has no eps (its step is (F + lambda I)^-1 g).

    Verdict per (class, rule), and per (class, rule, eps): :func:`ascent_verdict` (a sign is
    decided at a theta only where the exact value and the whole Monte Carlo interval exclude 0
    on the same side; contradicted iff some theta is decided negative, supported iff every
    theta is decided positive, else inconclusive); each row names the evidence that decided.

    Overall rows: PG-SOM (hessian)'s first step: contradicted iff contradicted for some class,
    supported iff supported for every class, else inconclusive (value: fraction of classes
    supported); the row's text also gives, computed, the verdicts of the baselines of
    :data:`BASELINE_RULES` under the same test and PG-SOM's overall verdict at each eps of the
    study, and whether it depends on eps. Its limit direction: the same aggregation (exact only)."""
    s = problem.settings
    rules = dict(ASCENT_RULES)
    study = [(rule, eps) for rule in EPS_RULES for eps in eps_values(rules[rule], s) if eps != rules[rule].eps]
    m = len(problem.models) * s.n_thetas * (len(ASCENT_RULES) + len(study))
    level = 1 - (1 - s.ci_level) / m
    table, extra = [], []
    seeds = stream(s.seed, "ascent").spawn(len(problem.models) * s.n_thetas)
    for ci_name, (name, e) in enumerate(problem.models.items()):
        batch_all = e.episodes()
        for k, th in enumerate(problem.thetas[name]):
            rng = np.random.default_rng(seeds[ci_name * s.n_thetas + k])
            gJ = e.exact_grad(th)
            unit = gJ / gJ.norm()
            batch = e.sample_episodes(th, s.n_mc_ascent, rng)

            def check(algo: AlgoConfig) -> dict:
                sampled = xm.first_update(e, algo, th, batch, rng=rng, second_stage="sample")
                proj = (sampled @ unit).numpy()
                if algo.hessian_estimator == "hutchinson":
                    exact, norm = np.nan, float(sampled.mean(0).norm())
                else:
                    inc = xm.first_update(e, algo, th, batch_all, rng=rng, second_stage=_second_stage(algo))
                    mean_inc = e.expectation(inc, th)
                    norm = float(mean_inc.norm())
                    exact = float(mean_inc @ unit) / norm
                ci = stats.ci_t(proj / norm, level)
                return dict(exact_cos=exact, mc_cos=ci.estimate, ci_low=ci.low, ci_high=ci.high)

            for rule, algo in ASCENT_RULES:
                eps = algo.eps if algo.method in ("adam", "hessian") else np.nan
                table.append(dict(policy=name, theta=k, rule=rule, eps=eps, **check(algo)))
            for rule, algo in LIMIT_RULES:
                step = xm.moment_limit_step(e, algo, th)
                c = float(step @ unit / step.norm())
                table.append(dict(policy=name, theta=k, rule=rule, eps=algo.eps, exact_cos=c, mc_cos=np.nan,
                                  ci_low=c, ci_high=c))
            for rule, eps in study:  # no random draws: the same episodes as the rule's own row
                extra.append(dict(policy=name, theta=k, rule=rule, eps=eps,
                                  **check(dataclasses.replace(rules[rule], eps=eps))))
    asc = pd.DataFrame(table)
    own = asc[asc.rule.isin(EPS_RULES)]
    eps_table = (pd.concat([own, pd.DataFrame(extra, columns=asc.columns)], ignore_index=True)
                 .sort_values(["policy", "rule", "eps", "theta"], key=_study_order, kind="stable")
                 .reset_index(drop=True))
    for df in (asc, eps_table):
        df["evidence"] = [ascent_evidence(r.exact_cos, r.mc_cos, r.ci_low, r.ci_high) for r in df.itertuples()]
    verdicts, eps_verdicts, rows = c5_rows(asc, eps_table, s, level)
    return Ascent(asc, eps_table, verdicts, eps_verdicts, level, rows)


def _study_order(col: pd.Series) -> pd.Series:
    order = {"policy": list(POLICY_CLASSES), "rule": list(EPS_RULES)}.get(col.name)
    return col.map({v: i for i, v in enumerate(order)}) if order else col


def _source_text(v: AscentVerdict, n_mc: int) -> str:
    mc = f"Monte Carlo N={n_mc}, Bonferroni CI"
    return {"exact": "exact (enumeration)", "Monte Carlo": mc,
            "exact and Monte Carlo": f"exact (enumeration) and {mc}"}[v.source]


def _by_verdict(per_class: Mapping[str, str]) -> str:
    """'contradicted (linear, mlp)' or 'contradicted (linear), inconclusive (mlp)'."""
    groups: dict[str, list[str]] = {}
    for name, v in per_class.items():
        groups.setdefault(v, []).append(name)
    return ", ".join(f"{v} ({', '.join(names)})" for v, names in groups.items())


def c5_rows(table: pd.DataFrame, eps_table: pd.DataFrame, settings: Settings, level: float
            ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[Row, ...]]:
    """C5's verdicts and rows from :func:`c5_ascent`'s tables (columns of :class:`Ascent`;
    ``eps_table`` may be empty): one row per (policy, rule) by :func:`ascent_verdict`, then the
    eps study's rows (each eps but the rule's own, whose row is the rule's), then the two
    overall rows (see :func:`c5_ascent`). Returns (verdicts, eps_verdicts, rows)."""
    s = settings
    policies = list(dict.fromkeys(table.policy))
    order = list(dict.fromkeys(table.rule))
    verdicts, eps_verdicts, rows = [], [], []

    def verdict_row(name: str, label: str, sub: pd.DataFrame) -> tuple[AscentVerdict, Row]:
        v = ascent_verdict(sub)
        what = "direction" if "limit" in label else "first update from a fresh state"
        return v, row("C5", f"{name}, {label}: min over {v.scope} of cos(E[{what}], grad J) "
                      f"[{_source_text(v, s.n_mc_ascent)}; thetas: {v.counts}]", v.value, v.ci_low, v.ci_high,
                      v.verdict)

    for name in policies:
        for rule in order:
            v, r = verdict_row(name, rule, table[(table.policy == name) & (table.rule == rule)])
            verdicts.append(dict(policy=name, rule=rule, verdict=v.verdict, theta=v.theta, evidence=v.counts))
            rows.append(r)
    default = {rule: float(algo.eps) for rule, algo in ASCENT_RULES}
    for name in policies:
        for (rule, eps), sub in eps_table[eps_table.policy == name].groupby(["rule", "eps"], sort=False):
            is_default = eps == default.get(rule)
            v, r = verdict_row(name, f"{rule}, {_eps_label(eps, default.get(rule))} [eps study]", sub)
            eps_verdicts.append(dict(policy=name, rule=rule, eps=eps, default=is_default, verdict=v.verdict,
                                     theta=v.theta, evidence=v.counts))
            if not is_default:
                rows.append(r)
    v = pd.DataFrame(verdicts, columns=["policy", "rule", "verdict", "theta", "evidence"])
    ev = pd.DataFrame(eps_verdicts, columns=["policy", "rule", "eps", "default", "verdict", "theta", "evidence"])

    def per_class(rule: str) -> dict[str, str]:
        return dict(zip(v.policy[v.rule == rule], v.verdict[v.rule == rule]))

    first = per_class(PGSOM_RULE)
    baselines = {b: per_class(b) for b in BASELINE_RULES if b in order}
    failing = [b for b, pc in baselines.items() if _aggregate(pc.values()) == "contradicted"]
    note = ("; beside it, the same first-step test for the baselines: "
            + "; ".join(f"{b} {_by_verdict(pc)}" for b, pc in baselines.items())
            + f"; baselines that fail it (contradicted): {', '.join(failing) if failing else 'none'}")
    pgsom_eps = ev[ev.rule == PGSOM_RULE]
    if not pgsom_eps.empty:
        by_eps = {eps: _aggregate(g.verdict) for eps, g in pgsom_eps.groupby("eps", sort=True)}
        own = by_eps.get(default[PGSOM_RULE], _aggregate(first.values()))
        differ = [eps for eps, x in by_eps.items() if x != own]
        note += ("; eps study (PG-SOM's verdict at "
                 + ", ".join(f"{_eps_label(eps, default[PGSOM_RULE])}: {x}" for eps, x in by_eps.items())
                 + "): " + ("the verdict does not depend on eps over this range" if not differ else
                            "the verdict depends on eps (it differs from the default's at "
                            + ", ".join(f"eps={eps:g}" for eps in differ) + ")"))
    limit = per_class(LIMIT_RULES[0][0])

    def fraction(per: dict[str, str]) -> float:
        return float(np.mean([x == "supported" for x in per.values()])) if per else math.nan

    rows += [
        row("C5", "overall: PG-SOM's update (first step from a fresh state, exact diag) is an ascent direction in "
            "expectation at every theta tested (fraction of policy classes where it is; a theta decides only where "
            f"the exact value and the whole Monte Carlo interval exclude 0 on the same side{note})",
            fraction(first), verdict=_aggregate(first.values())),
        row("C5", "overall: PG-SOM's converged-moment direction E[g]/sqrt(E[h^2]) is an ascent direction "
            "(fraction of policy classes where it is)", fraction(limit), verdict=_aggregate(limit.values())),
    ]
    return v, ev, tuple(rows)


# --------------------------------------------------------------------------- C6


def c6_kernel(problem: Problem) -> Check:
    """C6 / Lemma 3.2: the score does not involve the transition kernel. Another kernel P'
    (the MDP with seed + 1: initial distribution, transitions and termination all change; the
    same rewards). For :data:`N_KERNEL_TRAJECTORIES` trajectories per class sampled at theta_0
    (stream ``lemma32``): grad_theta log p(tau) by autograd through every factor of p(tau) under
    P and under P', log p(tau) under both, and the package's score sum S (which never sees the
    kernel); J under both kernels.

    Rows: max |score_P - score_P'| / max |score|, max |S - score_P| / max |score|,
    max |log p_P - log p_P'|, max |J_P - J_P'|; overall supported iff the two score differences
    are <= :data:`EXACT_TOL` while log p and J do change (> 1e-6). Table: policy, trajectory,
    length, log_p, log_p_other_kernel, max_score_diff, score_norm, max_diff_package_S, J,
    J_other_kernel (J of the class, on each of its rows)."""
    s = problem.settings
    n = N_KERNEL_TRAJECTORIES
    other = xm.FiniteMDP(n_states=s.n_states, n_actions=s.n_actions, horizon=s.horizon, seed=s.seed + 1,
                         end_max=s.end_max, observation=s.observation).build()
    other = other._replace(rewards=problem.models["linear"].model.rewards)  # only the dynamics change
    rng = np.random.default_rng(stream(s.seed, "lemma32"))
    table = []
    for name, e in problem.models.items():
        th = problem.thetas[name][0]
        batch = e.sample_episodes(th, n, rng)
        pkg = xm.single_episode_estimates(e.spec, xm.repeat(th, n), batch).score_sum
        J, J2 = float(e.exact_J(th)), float(e.with_model(other).exact_J(th))
        for i in range(n):
            L = int(batch.mask[i].sum())
            obs = batch.obs[i, :L, :s.n_states].argmax(-1).numpy()
            acts = batch.actions[i, :L].numpy()
            s1, s2 = e.trajectory_score(th, obs, acts), e.trajectory_score(th, obs, acts, other)
            lp1, lp2 = float(e.trajectory_log_prob(th, obs, acts)), float(e.trajectory_log_prob(th, obs, acts, other))
            table.append(dict(policy=name, trajectory=i, length=L, log_p=lp1, log_p_other_kernel=lp2,
                              max_score_diff=float((s1 - s2).abs().max()), score_norm=float(s1.norm()),
                              max_diff_package_S=float((s1 - pkg[i]).abs().max()), J=J, J_other_kernel=J2))
    df = pd.DataFrame(table)
    score_diff = df.max_score_diff.max() / df.score_norm.max()
    pkg_diff = df.max_diff_package_S.max() / df.score_norm.max()
    dJ = float(np.nanmax(np.abs(df.J - df.J_other_kernel)))
    dlogp = float(np.abs(df.log_p - df.log_p_other_kernel).max())
    ok = score_diff <= EXACT_TOL and pkg_diff <= EXACT_TOL and dJ > 1e-6 and dlogp > 1e-6
    rows = (
        row("C6", f"max |score under kernel P - score under kernel P'| / max |score| ({n} trajectories per class)",
            score_diff),
        row("C6", "max |package score sum S - autograd score of log p(tau)| / max |score|", pkg_diff),
        row("C6", "max |log p(tau) under P - under P'| (the kernel matters for p)", dlogp),
        row("C6", "max |J under P - J under P'| (the kernel matters for J)", dJ),
        row("C6", "overall: the score is unchanged by the kernel while J changes", score_diff,
            verdict="supported" if ok else "contradicted"),
    )
    return Check(df, rows)


# --------------------------------------------------------------------------- SNR, RK reuse

SNR_ESTIMATES = (("h", "h (full)"), ("h_surrogate", "h (surrogate only)"), ("g", "g"))
"""(estimate field, label) of the signal-to-noise check."""


def snr(problem: Problem) -> Check:
    """Signal-to-noise of the single-episode estimates, exact by enumeration at every theta:
    SNR_j = E[x_j]^2 / Var[x_j] per coordinate with Var > 0. PG-SOM's v tracks
    E[h^2] = E[h]^2 (1 + 1/SNR): with a small SNR, sqrt(v) measures the noise, not the curvature.

    Rows (``measured``) per class and estimate: the median SNR over coordinates and thetas
    (interval: quartiles), the fraction with SNR < 1, the median of 1/(1 + SNR) (the share of
    E[x^2] that is variance). Table: policy, theta, estimate, snr."""
    table = []
    for name, e in problem.models.items():
        batch = e.episodes()
        K = batch.mask.shape[0]
        for k, th in enumerate(problem.thetas[name]):
            est = xm.single_episode_estimates(e.spec, xm.repeat(th, K), batch)
            for field, label in SNR_ESTIMATES:
                mean, var = e.moments(getattr(est, field), th)
                keep = var > 0
                table += [dict(policy=name, theta=k, estimate=label, snr=v)
                          for v in (mean[keep] ** 2 / var[keep]).numpy()]
    df = pd.DataFrame(table)
    n, rows = problem.settings.n_thetas, []
    for name in problem.models:
        for _, label in SNR_ESTIMATES:
            x = df[(df.policy == name) & (df.estimate == label)].snr.to_numpy()
            rows += [row("SNR", f"{name}: median over coordinates and {n} thetas of E[{label}]^2/Var (single episode); "
                         "interval: quartiles", np.median(x), np.quantile(x, 0.25), np.quantile(x, 0.75)),
                     row("SNR", f"{name}: fraction of coordinates with SNR < 1 for {label}", np.mean(x < 1)),
                     row("SNR", f"{name}: median share of E[x^2] that is variance, 1/(1+SNR), for {label}",
                         np.median(1 / (1 + x)))]
    return Check(df, tuple(rows))


def rk_reuse(problem: Problem) -> Check:
    """RK's second stage at theta~ = theta + alpha k1, exact by enumeration
    (:func:`pgsom.exact_mdp.rk_second_stage`), at every theta and alpha of ``rk_alphas``:
    ``fresh`` episodes at theta~ estimate E[grad J(theta~)] without bias, ``reuse`` re-scores
    the first episode with its original advantages.

    Table: policy, theta, alpha, reuse_bias = ||E[k2 reuse] - E[grad J(theta~)]|| / ||grad J(theta)||,
    rk_correction = ||E[grad J(theta~)] - grad J(theta)|| / ||grad J(theta)|| (the size of what RK
    adds). Rows (``measured``) at the first alpha: median over thetas (interval: min, max) of
    both and of their ratio; per class, the least-squares slope of log reuse_bias on log alpha
    over alpha <= 0.05 (1: a bias O(alpha))."""
    s = problem.settings
    table = []
    for name, e in problem.models.items():
        for k, th in enumerate(problem.thetas[name]):
            gJ = e.exact_grad(th)
            for alpha in s.rk_alphas:
                reuse, fresh = xm.rk_second_stage(e, th, alpha)
                table.append(dict(policy=name, theta=k, alpha=alpha,
                                  reuse_bias=_rel(reuse, fresh) * float(fresh.norm() / gJ.norm()),
                                  rk_correction=_rel(fresh, gJ)))
    df = pd.DataFrame(table)
    a0, n, rows = s.rk_alphas[0], s.n_thetas, []
    for name in problem.models:
        sub = df[(df.policy == name) & (df.alpha == a0)]
        ratio = sub.reuse_bias / sub.rk_correction
        small = df[(df.policy == name) & (df.alpha <= 0.05)]
        fit = sps.linregress(np.log(small.alpha), np.log(small.reuse_bias))
        rows += [
            row("RK-reuse", f"{name}: |E[k2 reuse] - E[grad J(theta~)]| / |grad J| at alpha={a0} "
                f"(median over {n} thetas; interval: min, max)", sub.reuse_bias.median(), sub.reuse_bias.min(),
                sub.reuse_bias.max()),
            row("RK-reuse", f"{name}: RK correction |E[grad J(theta~)] - grad J| / |grad J| at alpha={a0} "
                "(median; interval: min, max)", sub.rk_correction.median(), sub.rk_correction.min(),
                sub.rk_correction.max()),
            row("RK-reuse", f"{name}: reuse bias / RK correction at alpha={a0} (median; interval: min, max)",
                ratio.median(), ratio.min(), ratio.max()),
            row("RK-reuse", f"{name}: log-log slope of the reuse bias vs alpha (alpha <= 0.05; 1 = bias O(alpha))",
                fit.slope),
        ]
    return Check(df, tuple(rows))


# --------------------------------------------------------------------------- the table


def derivations_table(*parts) -> pd.DataFrame:
    """``derivations.csv`` as a frame (:data:`COLUMNS`): the rows of ``parts`` in order, each a
    check's result (anything with ``rows``) or a sequence of :class:`Row`; ValueError naming
    a verdict outside :data:`VERDICTS`."""
    rows: list[Row] = []
    for p in parts:
        rows += list(p.rows if hasattr(p, "rows") else p)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    bad = sorted(set(table.verdict) - set(VERDICTS))
    if bad:
        raise ValueError(f"verdicts {bad} are not among {list(VERDICTS)}")
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` atomically as CSV (floats ``%.10g``, ``\\n`` line ends); return the path."""
    return write_csv(table, path, float_format="%.10g")


# --------------------------------------------------------------------------- figures
#
# Drawn in the project's one style (pgsom.plots.style: every panel and figure is made inside it)
# and saved by pgsom.plots.save_figure, which saves in that style too, so that tick labels
# created while saving take the same fonts as those drawn.


def _ax(ax: Axes | None, figsize=(5.5, 4.0)) -> Axes:
    if ax is not None:
        return ax
    with plots.style():
        return plt.figure(figsize=figsize, layout="constrained").add_subplot()


def _figure(nrows: int, ncols: int, figsize, **kw) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows`` x ``ncols`` axes (a 2-d array) in :func:`pgsom.plots.style`, constrained layout."""
    with plots.style():
        return plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", squeeze=False, **kw)


def _no_minor_labels(ax: Axes) -> None:
    """No labels on a log axis's minor ticks (over less than a decade they crowd the major ones)."""
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _detach(fig: Figure) -> Figure:
    """``fig`` closed in pyplot (shown once, where a notebook cell ends with it) and returned."""
    plt.close(fig)
    return fig


UNBIASED_FIGURE_CASES = ("g", "h (full)", "h (surrogate only)", "h (full, standardised) [extra]")
"""Cases of :func:`unbiased_figure`, one column each."""


def unbiased_panel(mc: MonteCarlo, policy: str, case: str, ax: Axes | None = None, *,
                   legend: bool = True) -> Axes:
    """Per coordinate, the Monte Carlo mean of ``case`` with its (Bonferroni) t interval against
    the exact value, both baselines; on the diagonal = unbiased."""
    ax = _ax(ax)
    with plots.style():
        lo, hi = np.inf, -np.inf
        for bname, marker in zip(BASELINES, ("o", "s")):
            x, target = mc.samples[(policy, bname, case)]
            ci = stats.ci_t(x, mc.level)
            ax.errorbar(target, ci.estimate, yerr=[ci.estimate - ci.low, ci.high - ci.estimate], fmt=marker,
                        ms=3.5, alpha=0.8, elinewidth=1, label=f"baseline {bname}")
            lo, hi = min(lo, target.min(), ci.estimate.min()), max(hi, target.max(), ci.estimate.max())
        lim = [lo, hi]
        ax.plot(lim, lim, "k-", lw=0.8, label="unbiased")
        ax.set_title(f"{policy}: {case}", fontsize=9)
        ax.set_xlabel("exact (autograd)")
        ax.set_ylabel("Monte Carlo mean")
        ax.locator_params(nbins=5)
        if legend:
            ax.legend()
    return ax


def unbiased_figure(mc: MonteCarlo) -> Figure:
    """One :func:`unbiased_panel` per policy class (rows) and case of :data:`UNBIASED_FIGURE_CASES`."""
    policies = list(dict.fromkeys(k[0] for k in mc.samples))
    fig, axes = _figure(len(policies), len(UNBIASED_FIGURE_CASES), (13, 6.4))
    for i, name in enumerate(policies):
        for j, case in enumerate(UNBIASED_FIGURE_CASES):
            unbiased_panel(mc, name, case, axes[i, j], legend=False)
    with plots.style():
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
        fig.suptitle(f"Per-coordinate Monte Carlo mean vs exact value (N={mc.n}, Bonferroni CIs); "
                     "on the line = unbiased")
    return _detach(fig)


def convergence_panel(conv: Convergence, policy: str, ax: Axes | None = None) -> Axes:
    """RMS relative error of the mean against N for one class, log-log, each case with its fitted
    slope in the legend and the exact curve dashed."""
    ax = _ax(ax)
    with plots.style():
        for case, _ in CONVERGENCE_CASES:
            t = conv.table[(conv.table.policy == policy) & (conv.table.case == case)]
            slope = conv.fits[(conv.fits.policy == policy) & (conv.fits.case == case)].slope.iloc[0]
            sizes = t.n.to_numpy()
            line, = ax.loglog(sizes, t.rms_rel_error.to_numpy(), "o-", ms=4, label=f"{case}: slope {slope:.2f}")
            ax.loglog(sizes, t.theory.to_numpy(), "--", color=line.get_color(), lw=1)
        ax.set_title(f"{policy} policy (dashed: exact, from the enumeration)")
        _no_minor_labels(ax)
        ax.set_xlabel("episodes N")
        ax.set_ylabel("RMS relative error of the mean")
        ax.legend()
    return ax


def convergence_figure(conv: Convergence) -> Figure:
    """One :func:`convergence_panel` per policy class."""
    policies = list(dict.fromkeys(conv.table.policy))
    fig, axes = _figure(1, len(policies), (10, 3.8))
    for ax, name in zip(axes[0], policies):
        convergence_panel(conv, name, ax)
    return _detach(fig)


def spectrum_panel(spec: Spectrum, policy: str, ax: Axes | None = None, *, legend: bool = True) -> Axes:
    """Every eigenvalue of each matrix of :data:`SPECTRUM_MATRICES` at each theta (symlog axis)."""
    ax = _ax(ax)
    with plots.style():
        n_thetas = int(spec.table.theta.max()) + 1
        for j, kind in enumerate(spec.table.matrix.unique()):
            sub = spec.table[(spec.table.policy == policy) & (spec.table.matrix == kind)]
            for theta in sub.theta:
                w = spec.eigenvalues
                eigs = w[(w.policy == policy) & (w.matrix == kind) & (w.theta == theta)].eigenvalue.to_numpy()
                ax.scatter(np.full(len(eigs), theta + 0.25 * (j - 1)), eigs, s=10, color=f"C{j}",
                           label=kind if theta == 0 else None)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xticks(range(n_thetas))
        ax.set_xlabel("theta index")
        ax.set_ylabel("eigenvalue")
        ax.set_title(f"{policy} policy ({'exponential family' if policy == 'linear' else 'not exponential family'})")
        if legend:
            ax.legend(fontsize=7)
    return ax


def spectrum_figure(spec: Spectrum) -> Figure:
    """One :func:`spectrum_panel` per policy class, one legend below."""
    policies = list(dict.fromkeys(spec.table.policy))
    fig, axes = _figure(1, len(policies), (11, 4.2))
    for ax, name in zip(axes[0], policies):
        spectrum_panel(spec, name, ax, legend=False)
    with plots.style():
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return _detach(fig)


def _ascent_order() -> list[str]:
    return [r for r, _ in ASCENT_RULES + LIMIT_RULES]


def _decided(evidence) -> np.ndarray:
    return np.array([ASCENT_EVIDENCE[x] != "?" for x in evidence], dtype=bool)


def _ascent_points(ax: Axes, x, s: pd.DataFrame, color, label: str | None) -> None:
    """Monte Carlo means with their intervals at ``x``: filled where the theta's sign is decided
    (:func:`ascent_evidence`), open where it is not."""
    has_mc = s.mc_cos.notna().to_numpy()
    decided = _decided(s.evidence)
    for keep, face, lab in ((has_mc & decided, color, label), (has_mc & ~decided, "white", None)):
        if keep.any():
            ax.errorbar(x[keep], s.mc_cos[keep], yerr=[(s.mc_cos - s.ci_low)[keep], (s.ci_high - s.mc_cos)[keep]],
                        fmt="o", ms=3.5, color=color, mfc=face, elinewidth=1, label=lab)


def ascent_panel(asc: Ascent, policy: str, ax: Axes | None = None, *, xticklabels: bool = True) -> Axes:
    """cos(E[update], grad J) per rule (x) and theta (colour): exact (bars) and Monte Carlo with
    its interval (points: filled where the theta's sign is decided, exact and interval on the
    same side of 0; open where not); > 0 is an ascent direction in expectation."""
    ax = _ax(ax, figsize=(12, 3.6))
    with plots.style():
        order = _ascent_order()
        sub = asc.table[asc.table.policy == policy]
        n_thetas = int(sub.theta.max()) + 1
        for k in range(n_thetas):
            s = sub[sub.theta == k].set_index("rule").loc[order]
            x = np.arange(len(order)) + 0.15 * (k - (n_thetas - 1) / 2)
            _ascent_points(ax, x, s, f"C{k}", f"theta {k}: Monte Carlo (CI)")
            ax.scatter(x, s.exact_cos, marker="_", s=120, color=f"C{k}", label=f"theta {k}: exact")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("cos(E[update], grad J)")
        ax.set_title(f"{policy} policy: > 0 is an ascent direction in expectation (open: sign not decided)")
        ax.set_xticks(np.arange(len(order)))
        ax.grid(axis="x", visible=False)
        if xticklabels:
            ax.set_xticklabels(order, rotation=30, ha="right", rotation_mode="anchor")
        else:
            ax.tick_params(labelbottom=False)
    return ax


def ascent_figure(asc: Ascent) -> Figure:
    """One :func:`ascent_panel` per policy class, stacked, rule names on the bottom one, the
    legend below."""
    policies = list(dict.fromkeys(asc.table.policy))
    fig, axes = _figure(len(policies), 1, (12, 7.2), sharex=True)
    axes = axes[:, 0]
    for i, (ax, name) in enumerate(zip(axes, policies)):
        ascent_panel(asc, name, ax, xticklabels=i == len(axes) - 1)
    with plots.style():
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=(len(labels) + 1) // 2)
    return _detach(fig)


def ascent_eps_panel(asc: Ascent, policy: str, rule: str, ax: Axes | None = None, *,
                     legend: bool = True) -> Axes:
    """The eps study for one class and rule of :data:`EPS_RULES`: cos(E[first step], grad J)
    against eps (log axis), one colour per theta: exact (line) and Monte Carlo with its interval
    (points, filled where the theta's sign is decided); dotted: pg's exact value at each theta (the
    large-eps limit); dashed: the rule's own eps."""
    ax = _ax(ax)
    with plots.style():
        sub = asc.eps_table[(asc.eps_table.policy == policy) & (asc.eps_table.rule == rule)]
        pg = asc.table[(asc.table.policy == policy) & (asc.table.rule == "pg")].set_index("theta").exact_cos
        thetas = sorted(sub.theta.unique())
        for k in thetas:
            s = sub[sub.theta == k].sort_values("eps")
            eps = s.eps.to_numpy()
            ax.plot(eps, s.exact_cos, "-", marker="_", ms=10, color=f"C{k}", label=f"theta {k}: exact")
            _ascent_points(ax, eps * 10 ** (0.06 * (k - (len(thetas) - 1) / 2)), s, f"C{k}",
                           f"theta {k}: Monte Carlo (CI)")
            if k in pg.index:
                ax.axhline(pg[k], color="0.4", lw=0.9, ls=":", label="pg (the large-eps limit)" if k == thetas[0] else None)
        ax.axvline(dict(ASCENT_RULES)[rule].eps, color="0.5", lw=0.8, ls="--", label="the rule's own eps")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("eps")
        ax.set_ylabel("cos(E[first step], grad J)")
        ax.set_title(f"{policy} policy: {rule}")
        if legend:
            ax.legend(fontsize=7, ncol=2)
    return ax


def ascent_eps_figure(asc: Ascent) -> Figure:
    """One :func:`ascent_eps_panel` per rule of :data:`EPS_RULES` (rows) and policy class
    (columns), one legend below."""
    policies = list(dict.fromkeys(asc.eps_table.policy))
    rules = [r for r in EPS_RULES if (asc.eps_table.rule == r).any()]
    fig, axes = _figure(len(rules), len(policies), (10, 3.2 * len(rules) + 0.8), sharex=True, sharey=True)
    for i, rule in enumerate(rules):
        for j, name in enumerate(policies):
            ascent_eps_panel(asc, name, rule, axes[i, j], legend=False)
    with plots.style():
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=(len(labels) + 1) // 2)
    return _detach(fig)


def snr_panel(check: Check, policy: str, ax: Axes | None = None) -> Axes:
    """Box plot of log10 SNR (all coordinates and thetas) per estimate, for one class (:func:`snr`)."""
    ax = _ax(ax)
    with plots.style():
        df = check.table
        sub = df[df.policy == policy]
        labels = list(sub.estimate.unique())
        ax.boxplot([np.log10(sub[sub.estimate == l].snr) for l in labels], tick_labels=labels)
        ax.axhline(0, color="k", lw=0.8)
        ax.grid(axis="x", visible=False)
        ax.set_title(f"{policy} policy ({int(sub.theta.max()) + 1} thetas, all coordinates)")
        ax.set_ylabel("log10 E[x]^2 / Var[x] (single episode)")
    return ax


def snr_figure(check: Check) -> Figure:
    """One :func:`snr_panel` per policy class, shared y axis."""
    policies = list(dict.fromkeys(check.table.policy))
    fig, axes = _figure(1, len(policies), (10, 3.8), sharey=True)
    for ax, name in zip(axes[0], policies):
        snr_panel(check, name, ax)
    return _detach(fig)


def rk_reuse_panel(check: Check, policy: str, ax: Axes | None = None, *, legend: bool = True) -> Axes:
    """Reuse bias and RK correction against alpha (log-log), one colour per theta (:func:`rk_reuse`)."""
    ax = _ax(ax)
    with plots.style():
        df = check.table
        for k in range(int(df.theta.max()) + 1):
            s = df[(df.policy == policy) & (df.theta == k)]
            ax.loglog(s.alpha, s.reuse_bias, "o-", ms=4, color=f"C{k}", label=f"theta {k}: reuse bias")
            ax.loglog(s.alpha, s.rk_correction, "x:", color=f"C{k}", label=f"theta {k}: RK correction")
        _no_minor_labels(ax)
        alphas = sorted(df.alpha.unique())
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
        ax.set_xlabel("alpha")
        ax.set_ylabel("relative to |grad J(theta)|")
        ax.set_title(f"{policy} policy")
        if legend:
            ax.legend(fontsize=7)
    return ax


def rk_reuse_figure(check: Check) -> Figure:
    """One :func:`rk_reuse_panel` per policy class, shared y axis, one legend beside them."""
    policies = list(dict.fromkeys(check.table.policy))
    fig, axes = _figure(1, len(policies), (11, 3.8), sharey=True)
    for ax, name in zip(axes[0], policies):
        rk_reuse_panel(check, name, ax, legend=False)
    with plots.style():
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return _detach(fig)
