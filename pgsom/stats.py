"""Statistics for comparing training runs: CIs, tests, corrections, effect sizes, thresholds, power.

Array convention (every function):
    * the FIRST axis is runs (seeds);
    * ``x`` of shape ``(n_runs,)`` is one value per run (e.g. the final-episode return);
    * ``curves`` of shape ``(n_runs, n_episodes)`` are per-episode values of each run.
  ``summary``, ``ci_t`` and ``iqm`` reduce over axis 0, so they accept curves too and return
  one value per episode; the other functions take 1-D samples.

NaN policy: NaN means "this run diverged / has no value".  Unless a docstring says
otherwise, NaNs are DROPPED and the number dropped is reported in the result's ``n_nan``
field (never silently).  The exceptions: ``holm`` / ``benjamini_hochberg`` leave a NaN
p-value out of the family (adjusted NaN, never rejected, counted in ``n_nan``), and
``episodes_to_threshold`` treats a NaN return as "not reached" (the run stays in, censored).
Infinite values are data, not missing.

Randomness: no global RNG state.  Every random function takes ``rng``, a
``numpy.random.Generator`` (an int seed is accepted and turned into one with
``numpy.random.default_rng``).  Same rng seed => identical numbers.

scipy does the work wherever it has the method: ``bootstrap`` (BCa), ``ttest_ind``
(Welch), ``trim_mean``, ``mannwhitneyu``, ``ecdf`` (Kaplan-Meier), ``t`` / ``nct``.
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "Summary", "CI", "WelchResult", "Adjusted", "Estimate", "Threshold", "KMMedian", "FPR",
    "summary", "ci_t", "ci_bootstrap", "welch_test", "holm", "benjamini_hochberg",
    "hedges_g", "iqm", "probability_of_improvement", "episodes_to_threshold",
    "censored_median_episodes", "sample_efficiency_ratio", "power_of_test",
    "seeds_for_power", "false_positive_rate_identical",
]


# ----------------------------------------------------------------------------- results
class Summary(NamedTuple):
    n: int | np.ndarray          # number of non-NaN runs used
    mean: float | np.ndarray
    std: float | np.ndarray      # sample sd, ddof=1
    sem: float | np.ndarray      # std / sqrt(n)
    n_nan: int | np.ndarray      # NaNs dropped


class CI(NamedTuple):
    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    method: str
    n_nan: int | np.ndarray = 0


class WelchResult(NamedTuple):
    statistic: float   # Welch t
    p_value: float     # two-sided
    df: float          # Welch-Satterthwaite degrees of freedom
    mean_diff: float   # mean(x) - mean(y)
    nx: int
    ny: int
    degenerate: bool   # both samples constant: t undefined, p set by rule (see welch_test)
    n_nan: int


class Adjusted(NamedTuple):
    p_adjusted: np.ndarray  # original order
    reject: np.ndarray      # p_adjusted <= alpha
    alpha: float
    n_nan: int


class Estimate(NamedTuple):
    value: float | np.ndarray
    n: int | np.ndarray
    n_nan: int | np.ndarray


class Threshold(NamedTuple):
    episodes: np.ndarray     # 1-based episode count when the threshold is reached; NaN = censored
    reached: np.ndarray      # bool
    fraction_reached: float
    budget: int              # episodes observed per run (censoring time)


class KMMedian(NamedTuple):
    median: float      # Kaplan-Meier median episodes; NaN when not defined (report "> budget")
    defined: bool      # True iff the KM survival curve falls to <= 0.5 within the budget
    budget: int
    n_reached: int
    n: int


class FPR(NamedTuple):
    rate: float        # fraction of trials with p < alpha
    n_rejected: int
    n_trials: int
    mc_se: float       # Monte Carlo sd of rate: sqrt(rate (1 - rate) / n_trials)
    n_nan: int


# ----------------------------------------------------------------------------- helpers
def _rng(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _drop_nan(x: ArrayLike) -> tuple[np.ndarray, int]:
    """1-D float array without NaNs, and how many were dropped."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D sample (one value per run), got shape {x.shape}")
    keep = ~np.isnan(x)
    return x[keep], int(x.size - keep.sum())


def _bootstrap_ci(data: tuple, statistic: Callable, estimate: float, rng: np.random.Generator,
                  level: float, n_resamples: int, method: str) -> tuple[float, float, str]:
    """scipy.stats.bootstrap; a constant bootstrap distribution gives [estimate, estimate];
    if BCa is undefined otherwise (scipy returns NaN) the percentile interval is reported and
    the method string says so."""
    if all(np.ptp(d) == 0 for d in data) and all(d.size for d in data):
        return estimate, estimate, method + " (degenerate: constant data)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=level,
                              method=method, rng=rng)
    dist = res.bootstrap_distribution
    if np.ptp(dist) == 0:
        v = float(dist.flat[0])
        return v, v, method + " (degenerate: constant bootstrap)"
    low, high = res.confidence_interval
    if method.lower() == "bca" and not (np.isfinite(low) and np.isfinite(high)):
        a = (1 - level) / 2
        low, high = np.quantile(dist, [a, 1 - a])
        method = "percentile (BCa undefined)"
    return float(low), float(high), method


# ----------------------------------------------------------------------------- one sample
def summary(x: ArrayLike) -> Summary:
    """n, mean, sd (ddof=1) and sem = sd / sqrt(n) over axis 0, NaNs dropped per column.

    n = 1 gives sd = sem = NaN; n = 0 gives NaN mean too."""
    x = np.asarray(x, dtype=float)
    n = np.sum(~np.isnan(x), axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        std = np.where(n >= 2, np.nanstd(x, axis=0, ddof=1), np.nan)
        sem = std / np.sqrt(n)
    n_nan = x.shape[0] - n
    if x.ndim == 1:
        return Summary(int(n), float(mean), float(std), float(sem), int(n_nan))
    return Summary(n, mean, std, sem, n_nan)


def ci_t(x: ArrayLike, level: float = 0.95) -> CI:
    """Student-t interval  mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)  over axis 0.

    Zero variance -> the degenerate interval [mean, mean]; n < 2 -> NaN bounds."""
    s = summary(x)
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf((1 + level) / 2, np.maximum(np.asarray(s.n) - 1, 1)) * s.sem
        half = np.where(np.asarray(s.std) == 0, 0.0, half)
    low, high = s.mean - half, s.mean + half
    if np.ndim(low) == 0:
        low, high = float(low), float(high)
    return CI(s.mean, low, high, level, "t", s.n_nan)


def ci_bootstrap(x: ArrayLike, rng: np.random.Generator | int, level: float = 0.95,
                 n_resamples: int = 10_000, statistic: Callable = np.mean,
                 method: str = "BCa") -> CI:
    """Bootstrap CI of ``statistic`` (default the mean) by scipy.stats.bootstrap (BCa).

    All-equal samples give [v, v]; if BCa is undefined otherwise, the percentile interval
    is returned and ``method`` says so.  Fewer than 2 values -> NaN bounds."""
    x, n_nan = _drop_nan(x)
    est = float(statistic(x)) if x.size else np.nan
    if x.size < 2:
        return CI(est, np.nan, np.nan, level, method, n_nan)
    low, high, used = _bootstrap_ci((x,), statistic, est, _rng(rng), level, n_resamples, method)
    return CI(est, low, high, level, used, n_nan)


def iqm(x: ArrayLike) -> Estimate:
    """Interquartile mean over axis 0: scipy.stats.trim_mean(x, 0.25), which removes
    floor(0.25 n) values from each end and averages the rest.  NaNs dropped per column."""
    x = np.asarray(x, dtype=float)
    nan = np.isnan(x)
    n = np.sum(~nan, axis=0)
    if not nan.any():
        value = stats.trim_mean(x, 0.25, axis=0)
    else:
        cols = x.reshape(x.shape[0], -1).T
        value = np.array([stats.trim_mean(c[~np.isnan(c)], 0.25) if (~np.isnan(c)).any()
                          else np.nan for c in cols]).reshape(x.shape[1:])
    if x.ndim == 1:
        return Estimate(float(value), int(n), int(x.shape[0] - n))
    return Estimate(value, n, x.shape[0] - n)


# ----------------------------------------------------------------------------- two samples
def _welch_degenerate(mx: float, my: float) -> tuple[float, float]:
    """(t, p) when both samples are constant: equal -> (0, 1); different -> (+-inf, 0)."""
    if mx == my:
        return 0.0, 1.0
    return float(np.sign(mx - my) * np.inf), 0.0


def welch_test(x: ArrayLike, y: ArrayLike) -> WelchResult:
    """Welch's two-sided t test (scipy.stats.ttest_ind, equal_var=False).

    t = (mx - my) / sqrt(vx/nx + vy/ny),
    df = (vx/nx + vy/ny)^2 / ((vx/nx)^2/(nx-1) + (vy/ny)^2/(ny-1)).
    Degenerate case (SPEC 8: every seed at the 500 cap): both samples constant makes t 0/0
    or c/0 and scipy returns NaN.  Reported instead, with ``degenerate=True``:
    equal constants -> t = 0, p = 1.0; different constants -> t = +-inf, p = 0.0 (the
    difference is certain at these samples).  df is NaN then.  nx < 2 or ny < 2 -> NaN."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    nx, ny, n_nan = x.size, y.size, nan_x + nan_y
    diff = float(x.mean() - y.mean()) if nx and ny else np.nan
    if nx < 2 or ny < 2:
        return WelchResult(np.nan, np.nan, np.nan, diff, nx, ny, False, n_nan)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        t, p = _welch_degenerate(x[0], y[0])
        return WelchResult(t, p, np.nan, diff, nx, ny, True, n_nan)
    with warnings.catch_warnings():   # one exactly constant sample is fine for Welch
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        res = stats.ttest_ind(x, y, equal_var=False)
    return WelchResult(float(res.statistic), float(res.pvalue), float(res.df), diff, nx, ny,
                      False, n_nan)


def hedges_g(x: ArrayLike, y: ArrayLike, level: float = 0.95) -> CI:
    """Bias-corrected standardised mean difference g = J d, with
    d = (mx - my) / s_p,  s_p^2 = ((nx-1) sx^2 + (ny-1) sy^2) / (nx + ny - 2),
    J = 1 - 3 / (4 (nx + ny) - 9).
    CI: normal approximation g +- z * J sqrt((nx+ny)/(nx ny) + d^2 / (2 (nx+ny)))
    (Hedges & Olkin 1985).  s_p = 0: g = NaN if the means are equal, +-inf otherwise
    (CI equal to g).  nx + ny < 3 or an empty sample -> NaN."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    nx, ny, n_nan = x.size, y.size, nan_x + nan_y
    N = nx + ny
    if nx < 1 or ny < 1 or N < 3:
        return CI(np.nan, np.nan, np.nan, level, "normal approx.", n_nan)
    sp = np.sqrt(((nx - 1) * np.var(x, ddof=1 if nx > 1 else 0)
                  + (ny - 1) * np.var(y, ddof=1 if ny > 1 else 0)) / (N - 2))
    diff = x.mean() - y.mean()
    J = 1 - 3 / (4 * N - 9)
    if sp == 0:
        g = np.nan if diff == 0 else float(np.sign(diff) * np.inf)
        return CI(g, g, g, level, "normal approx. (degenerate: zero sd)", n_nan)
    d = diff / sp
    se = J * np.sqrt(N / (nx * ny) + d**2 / (2 * N))
    z = stats.norm.ppf((1 + level) / 2)
    g = J * d
    return CI(float(g), float(g - z * se), float(g + z * se), level, "normal approx.", n_nan)


def _poi_stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean over pairs of 1[x > y] + 0.5 * 1[x == y] = (R_x - nx (nx + 1) / 2) / (nx ny),
    R_x the sum of x's mid-ranks in the pooled sample (vectorised, O(nx + ny) memory)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    nx, ny = x.shape[-1], y.shape[-1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    return (ranks[..., :nx].sum(axis=-1) - nx * (nx + 1) / 2) / (nx * ny)


def probability_of_improvement(x: ArrayLike, y: ArrayLike,
                               rng: np.random.Generator | int | None = None,
                               level: float = 0.95, n_resamples: int = 10_000,
                               method: str = "BCa") -> CI:
    """P(X > Y) + 0.5 P(X = Y) = U_x / (nx ny), U_x from scipy.stats.mannwhitneyu(x, y).

    With ``rng`` a bootstrap CI (runs resampled within each group, scipy.stats.bootstrap);
    without it the bounds are NaN and method is "none"."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    n_nan = nan_x + nan_y
    if x.size == 0 or y.size == 0:
        return CI(np.nan, np.nan, np.nan, level, "none", n_nan)
    est = float(stats.mannwhitneyu(x, y).statistic / (x.size * y.size))
    if rng is None:
        return CI(est, np.nan, np.nan, level, "none", n_nan)
    low, high, used = _bootstrap_ci((x, y), _poi_stat, est, _rng(rng), level, n_resamples, method)
    return CI(est, low, high, level, used, n_nan)


# ----------------------------------------------------------------------------- multiplicity
def _family(p_values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p_values must be 1-D")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    return p, ~np.isnan(p)


def holm(p_values: ArrayLike, alpha: float = 0.05) -> Adjusted:
    """Holm step-down adjustment.  With p_(1) <= ... <= p_(m) sorted,
    adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j));  reject where adj <= alpha.
    NaN p-values are left out of the family (m counts only the others)."""
    p, ok = _family(p_values)
    q = p[ok]
    m = q.size
    order = np.argsort(q, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    out = np.full(p.shape, np.nan)
    out[np.flatnonzero(ok)[order]] = adj
    return Adjusted(out, out <= alpha, alpha, int((~ok).sum()))


def benjamini_hochberg(p_values: ArrayLike, alpha: float = 0.05) -> Adjusted:
    """Benjamini-Hochberg (FDR) adjustment.  With p_(1) <= ... <= p_(m) sorted,
    adj_(i) = min(1, min_{j >= i} m p_(j) / j);  reject where adj <= alpha.
    NaN p-values are left out of the family."""
    p, ok = _family(p_values)
    q = p[ok]
    m = q.size
    order = np.argsort(q, kind="stable")
    scaled = m * q[order] / np.arange(1, m + 1)
    adj = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.full(p.shape, np.nan)
    out[np.flatnonzero(ok)[order]] = adj
    return Adjusted(out, out <= alpha, alpha, int((~ok).sum()))


# ----------------------------------------------------------------------------- thresholds
def episodes_to_threshold(curves: ArrayLike, threshold: float, window: int = 10,
                          episode_axis: int = -1) -> Threshold:
    """First episode k (1-based: episodes consumed) whose trailing mean
    mean(r[k - window], ..., r[k - 1]) >= threshold.  Only full windows count, so the
    earliest possible k is ``window``.  Runs that never reach it within the budget
    (n_episodes) are CENSORED: episodes = NaN, reached = False; they are never dropped.
    A window containing a NaN return does not count as reaching."""
    r = np.moveaxis(np.asarray(curves, dtype=float), episode_axis, -1)
    budget = r.shape[-1]
    if not 1 <= window <= budget:
        raise ValueError(f"window must be in [1, {budget}], got {window}")
    # trailing[..., k - window] is the mean of episodes k - window + 1 .. k (1-based)
    trailing = np.lib.stride_tricks.sliding_window_view(r, window, axis=-1).mean(axis=-1)
    with np.errstate(invalid="ignore"):
        hit = trailing >= threshold
    reached = hit.any(axis=-1)
    episodes = np.where(reached, hit.argmax(axis=-1) + window, np.nan).astype(float)
    return Threshold(episodes, reached, float(reached.mean()) if reached.size else np.nan, budget)


def censored_median_episodes(episodes: ArrayLike, reached: ArrayLike, budget: int) -> KMMedian:
    """Kaplan-Meier median of episodes-to-threshold (scipy.stats.ecdf on CensoredData):
    reached runs are events at ``episodes``, the others are right-censored at ``budget``.
    median = smallest event time t with S(t) <= 0.5; undefined (NaN, defined=False,
    report "> budget") when fewer than half of the runs reach the threshold."""
    reached = np.asarray(reached, dtype=bool)
    t = np.asarray(episodes, dtype=float)
    n, n_reached = reached.size, int(reached.sum())
    if n_reached == 0:
        return KMMedian(np.nan, False, budget, 0, n)
    data = stats.CensoredData(uncensored=t[reached], right=np.full(n - n_reached, float(budget)))
    sf = stats.ecdf(data).sf
    below = sf.probabilities <= 0.5
    if not below.any():
        return KMMedian(np.nan, False, budget, n_reached, n)
    return KMMedian(float(sf.quantiles[below.argmax()]), True, budget, n_reached, n)


def sample_efficiency_ratio(episodes_a: ArrayLike, reached_a: ArrayLike,
                            episodes_b: ArrayLike, reached_b: ArrayLike, budget: int,
                            rng: np.random.Generator | int, statistic: str = "median",
                            level: float = 0.95, n_resamples: int = 10_000,
                            method: str = "BCa") -> CI:
    """Ratio stat(B) / stat(A) of episodes-to-threshold (stat = median or mean over runs):
    > 1 means A needs fewer episodes ("A is ratio-x more sample efficient than B").
    Censored runs count at ``budget``, a lower bound on their true time: a censored B
    run makes the ratio too small (conservative for A), a censored A run too large.
    CI by scipy.stats.bootstrap, resampling runs within each group independently."""
    f = {"median": np.median, "mean": np.mean}[statistic]
    a = np.where(np.asarray(reached_a, bool), np.asarray(episodes_a, float), float(budget))
    b = np.where(np.asarray(reached_b, bool), np.asarray(episodes_b, float), float(budget))

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return f(b, axis=axis) / f(a, axis=axis)

    est = float(ratio(a, b))
    low, high, used = _bootstrap_ci((a, b), ratio, est, _rng(rng), level, n_resamples, method)
    return CI(est, low, high, level, f"{used}, {statistic}, censored at budget={budget}")


# ----------------------------------------------------------------------------- power
def power_of_test(n: int, effect: float, sd: float, alpha: float = 0.05) -> float:
    """Power of the two-sided two-sample t test with n runs per arm, true mean difference
    ``effect`` and common sd: with d = effect / sd, df = 2n - 2, ncp = d sqrt(n / 2) and
    c = t_{1 - alpha/2, df},  power = P(T > c) + P(T < -c),  T ~ nct(df, ncp).
    (Welch's df equals 2n - 2 when both sample variances are equal.)"""
    if n < 2:
        return np.nan
    df, ncp = 2 * n - 2, abs(effect) / sd * np.sqrt(n / 2)
    c = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(c, df, ncp) + stats.nct.cdf(-c, df, ncp))


def seeds_for_power(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8,
                    max_n: int = 100_000) -> int:
    """Smallest n per arm with power_of_test(n, effect, sd, alpha) >= power (n from 2 up)."""
    for n in range(2, max_n + 1):
        if power_of_test(n, effect, sd, alpha) >= power:
            return n
    raise ValueError(f"more than {max_n} seeds per arm needed")


def false_positive_rate_identical(samples: ArrayLike, n_per_arm: int,
                                  rng: np.random.Generator | int, n_trials: int = 10_000,
                                  alpha: float = 0.05) -> FPR:
    """Why few seeds mislead: from a pool of per-run values of ONE variant, draw two
    disjoint groups of ``n_per_arm`` runs (without replacement) ``n_trials`` times and
    Welch-test them; the rate of p < alpha is the false-positive rate.  Both groups
    constant follows welch_test's rule (different constants count as a rejection)."""
    pool, n_nan = _drop_nan(samples)
    if n_per_arm < 2:
        raise ValueError("n_per_arm must be >= 2 for a t test")
    if 2 * n_per_arm > pool.size:
        raise ValueError(f"pool of {pool.size} runs is too small for 2 x {n_per_arm}")
    rng = _rng(rng)
    idx = np.stack([rng.choice(pool.size, 2 * n_per_arm, replace=False) for _ in range(n_trials)])
    x, y = pool[idx[:, :n_per_arm]], pool[idx[:, n_per_arm:]]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue
    const = (np.ptp(x, axis=1) == 0) & (np.ptp(y, axis=1) == 0)
    p[const] = [_welch_degenerate(a, b)[1] for a, b in zip(x[const, 0], y[const, 0])]
    k = int(np.sum(p < alpha))
    rate = k / n_trials
    return FPR(rate, k, n_trials, float(np.sqrt(rate * (1 - rate) / n_trials)), n_nan)
