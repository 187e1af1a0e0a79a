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
    "VarianceTest", "BootTest", "Replication", "LogRank", "brown_forsythe", "ci_std",
    "ci_sd_ratio", "ci_mean_difference", "bootstrap_test", "replication_interval",
    "fraction_outside", "logrank_test", "logrank_power", "km_median_administrative",
    "spearman_trend", "median_ratio_test", "PairedResult", "paired_test", "mean_abs_deviation",
    "fligner_killeen", "spread_ratio_test", "PairReplication", "replication_pair_test",
    "replication_variance_factor",
    "power_paired",
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
    Degenerate case (every seed at the 500 cap, docs/design.md, 'Numerics and pitfalls'):
    both samples constant makes t 0/0 or c/0 and scipy returns NaN.  Reported instead, with
    ``degenerate=True``:
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
    if rng is None or min(x.size, y.size) < 2:  # no resampling distribution from one run
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


# ----------------------------------------------------------------------------- variances
class VarianceTest(NamedTuple):
    statistic: float   # Brown-Forsythe F (1, nx + ny - 2)
    p_value: float
    sd_x: float        # sample sds, ddof=1
    sd_y: float
    sd_ratio: float    # sd_x / sd_y (inf when sd_y = 0 < sd_x, NaN when both are 0)
    nx: int
    ny: int
    degenerate: bool   # every absolute deviation equal within each group (see brown_forsythe)
    n_nan: int


def brown_forsythe(x: ArrayLike, y: ArrayLike) -> VarianceTest:
    """Brown-Forsythe test of equal variances (scipy.stats.levene, center="median"): the
    one-way ANOVA F on z = |x - median(x)| and |y - median(y)|, i.e. for two groups
    F = (N - 2) sum_i n_i (zbar_i - zbar)^2 / sum_ij (z_ij - zbar_i)^2,  df (1, N - 2).
    Robust to the non-normal, capped returns of CartPole (a plain F test is not).
    Degenerate case: when every z is equal within each group the F is c/0 or 0/0 (scipy
    gives NaN): equal group means of z -> F = 0, p = 1; different -> F = inf, p = 0
    (as :func:`welch_test`).  nx < 2 or ny < 2 -> NaN."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    nx, ny, n_nan = x.size, y.size, nan_x + nan_y
    sx = float(np.std(x, ddof=1)) if nx >= 2 else np.nan
    sy = float(np.std(y, ddof=1)) if ny >= 2 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.divide(sx, sy)) if not (sx == 0 and sy == 0) else np.nan
    if nx < 2 or ny < 2:
        return VarianceTest(np.nan, np.nan, sx, sy, ratio, nx, ny, False, n_nan)
    zx, zy = np.abs(x - np.median(x)), np.abs(y - np.median(y))
    if np.ptp(zx) == 0 and np.ptp(zy) == 0:
        f = 0.0 if zx[0] == zy[0] else np.inf
        return VarianceTest(f, 1.0 if f == 0 else 0.0, sx, sy, ratio, nx, ny, True, n_nan)
    res = stats.levene(x, y, center="median")
    return VarianceTest(float(res.statistic), float(res.pvalue), sx, sy, ratio, nx, ny, False,
                        n_nan)


def ci_std(x: ArrayLike, level: float = 0.95) -> CI:
    """Chi-square interval of the standard deviation (exact for normal data):
    [s sqrt((n-1) / chi2_{(1+level)/2, n-1}),  s sqrt((n-1) / chi2_{(1-level)/2, n-1})].
    Not robust to non-normal data (capped returns): use it as the paper-style check it is.
    n < 2 -> NaN bounds; s = 0 -> [0, 0]."""
    x, n_nan = _drop_nan(x)
    n = x.size
    if n < 2:
        return CI(np.nan, np.nan, np.nan, level, "chi-square", n_nan)
    s = float(np.std(x, ddof=1))
    lo = s * np.sqrt((n - 1) / stats.chi2.ppf((1 + level) / 2, n - 1))
    hi = s * np.sqrt((n - 1) / stats.chi2.ppf((1 - level) / 2, n - 1))
    return CI(s, float(lo), float(hi), level, "chi-square", n_nan)


def _sd_ratio_stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.std(x, axis=axis, ddof=1) / np.std(y, axis=axis, ddof=1)


def ci_sd_ratio(x: ArrayLike, y: ArrayLike, rng: np.random.Generator | int,
                level: float = 0.95, n_resamples: int = 10_000, method: str = "BCa") -> CI:
    """Bootstrap CI (scipy.stats.bootstrap, runs resampled within each group) of
    sd(x) / sd(y) (ddof 1).  Undefined (NaN bounds, method says why) when a group has fewer
    than 2 values or sd(y) = 0; both groups constant with sd 0 -> NaN estimate."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    n_nan = nan_x + nan_y
    if x.size < 2 or y.size < 2:
        return CI(np.nan, np.nan, np.nan, level, "undefined (fewer than 2 runs)", n_nan)
    est = float(_sd_ratio_stat(x, y))
    if np.ptp(y) == 0:
        return CI(est, np.nan, np.nan, level, "undefined (zero sd in the reference)", n_nan)
    if np.ptp(x) == 0:   # every resample has ratio 0 or 0/0: the interval is [0, 0]
        return CI(0.0, 0.0, 0.0, level, method + " (degenerate: constant data)", n_nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high, used = _bootstrap_ci((x, y), _sd_ratio_stat, est, _rng(rng), level,
                                        n_resamples, method)
    return CI(est, low, high, level, used, n_nan)


def ci_mean_difference(x: ArrayLike, y: ArrayLike, level: float = 0.95) -> CI:
    """Welch interval of mean(x) - mean(y):  d +- t_{(1+level)/2, df} sqrt(vx/nx + vy/ny),
    df the Welch-Satterthwaite degrees of freedom (as :func:`welch_test`).  Both samples
    constant -> [d, d]; nx < 2 or ny < 2 -> NaN bounds."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    n_nan = nan_x + nan_y
    d = float(x.mean() - y.mean()) if x.size and y.size else np.nan
    if x.size < 2 or y.size < 2:
        return CI(d, np.nan, np.nan, level, "Welch t", n_nan)
    a, b = np.var(x, ddof=1) / x.size, np.var(y, ddof=1) / y.size
    if a + b == 0:
        return CI(d, d, d, level, "Welch t (degenerate: constant data)", n_nan)
    df = (a + b) ** 2 / (a**2 / (x.size - 1) + b**2 / (y.size - 1))
    half = float(stats.t.ppf((1 + level) / 2, df) * np.sqrt(a + b))
    return CI(d, d - half, d + half, level, "Welch t", n_nan)


# ----------------------------------------------------------------------------- bootstrap tests
class BootTest(NamedTuple):
    estimate: float
    low: float          # percentile interval at ``level``
    high: float
    p_value: float      # two-sided percentile-bootstrap p-value against ``null``
    level: float
    n_resamples: int    # resamples with a defined statistic (NaN ones are dropped)
    n_nan: int          # resamples whose statistic was NaN


def _two_sided_p(dist: np.ndarray, value: float) -> float:
    """min(1, 2 min((1 + #{d <= value}) / (B + 1), (1 + #{d >= value}) / (B + 1)))."""
    B = dist.size
    below, above = np.sum(dist <= value), np.sum(dist >= value)
    return float(min(1.0, 2 * min((1 + below) / (B + 1), (1 + above) / (B + 1))))


def _tail_quantiles(dist: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile bounds without interpolation (``lower`` / ``higher``), so infinite values
    (censored statistics) give infinite bounds instead of NaN."""
    a = (1 - level) / 2
    return (float(np.quantile(dist, a, method="lower")),
            float(np.quantile(dist, 1 - a, method="higher")))


def bootstrap_test(statistic: Callable, samples: tuple, rng: np.random.Generator | int,
                   null: float = 0.0, level: float = 0.95,
                   n_resamples: int = 10_000) -> BootTest:
    """Percentile bootstrap of a statistic of one or more groups of runs, with its two-sided
    p-value against ``null`` (the inversion of the percentile interval).

    ``samples``: arrays whose FIRST axis is runs (curves allowed); each is resampled along
    axis 0 independently.  ``statistic(*arrays)`` receives arrays with an extra leading batch
    axis, shapes ``(B, n_i, ...)``, and returns shape ``(B,)``; the estimate is
    ``statistic(*(s[None] for s in samples))[0]``.  p = min(1, 2 min((1 + #{T* <= null}),
    (1 + #{T* >= null})) / (B + 1)).  Resamples whose statistic is NaN are dropped and
    counted.  (Percentile intervals under-cover with 5 runs per group: docs/design.md,
    'Numerics and pitfalls'; and a statistic that resampling biases, such as a rank
    correlation of an across-run sd,
    can lie outside its own bootstrap distribution: prefer smooth statistics.)"""
    rng = _rng(rng)
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    est = float(np.asarray(statistic(*(s[None] for s in samples))).reshape(-1)[0])
    if any(s.shape[0] < 2 for s in samples):
        return BootTest(est, np.nan, np.nan, np.nan, level, 0, 0)
    dists, chunk = [], max(1, 2_000_000 // max(1, sum(s.size for s in samples)))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = [rng.integers(0, s.shape[0], (b, s.shape[0])) for s in samples]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            dists.append(np.asarray(statistic(*(s[i] for s, i in zip(samples, idx))), float))
        done += b
    dist = np.concatenate(dists)
    ok = ~np.isnan(dist)
    dist = dist[ok]
    if dist.size == 0 or np.isnan(est):
        return BootTest(est, np.nan, np.nan, np.nan, level, int(dist.size), int((~ok).sum()))
    low, high = _tail_quantiles(dist, level)
    p = _two_sided_p(dist, null)
    return BootTest(est, low, high, p, level, int(dist.size), int((~ok).sum()))


class Replication(NamedTuple):
    estimate: float     # the statistic on all of our runs
    low: float          # 95% (``level``) interval of the statistic of m replicated runs
    high: float
    p_value: float      # two-sided: how far ``value`` lies in that distribution
    m: int
    n: int              # our runs (non-NaN)
    n_resamples: int


def replication_interval(x: ArrayLike, value: float, m: int, rng: np.random.Generator | int,
                         statistic: Callable = np.mean, level: float = 0.95,
                         n_resamples: int = 10_000) -> Replication:
    """Where would a statistic of ``m`` runs (e.g. a paper's 5-seed mean) land if the runs
    came from our procedure?  Two-stage (predictive) bootstrap: resample our n runs with
    replacement (our uncertainty about the population), then draw m runs with replacement
    from that resample (the m-run sampling error).  For the mean its variance is about
    s^2 (n-1)/n (1/m + 1/n), the predictive variance of an m-run mean.  Returns the
    ``level`` interval of the m-run statistic (percentiles, no interpolation) and the
    two-sided p-value of ``value`` (the reported number) in that distribution:
    p = min(1, 2 min(1 + #{T* <= value}, 1 + #{T* >= value}) / (B + 1)).
    ``statistic(a, axis=-1)`` reduces the last axis (np.mean, np.std with ddof, ...); NaN
    runs (diverged) are dropped.  Fewer than 2 runs or a non-finite ``value`` -> NaN p."""
    x, _ = _drop_nan(x)
    n = x.size
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = float(statistic(x, axis=-1)) if n else np.nan
    if n < 2:
        return Replication(est, np.nan, np.nan, np.nan, m, n, 0)
    rng = _rng(rng)
    first = rng.integers(0, n, (n_resamples, n))
    second = rng.integers(0, n, (n_resamples, m))
    draws = x[np.take_along_axis(first, second, axis=1)]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dist = np.asarray(statistic(draws, axis=-1), float)
    dist = dist[~np.isnan(dist)]
    if dist.size == 0:
        return Replication(est, np.nan, np.nan, np.nan, m, n, 0)
    low, high = _tail_quantiles(dist, level)
    p = _two_sided_p(dist, value) if np.isfinite(value) else np.nan
    return Replication(est, low, high, p, m, n, int(dist.size))


def replication_variance_factor(n: int) -> float:
    """How much the two-stage bootstrap of :func:`replication_interval` (and
    :func:`replication_pair_test`) shrinks the spread of a replicated sample drawn from ``n``
    runs: a replicate's expected sample variance (ddof 1) is ((n - 1) / n)^2 times our runs'
    s^2. (Given the first-stage resample R, E[s*^2] = v(R), its plug-in variance; and
    E[v(R)] = (n - 1)/n v(x) = ((n - 1)/n)^2 s^2.) 0.64 for n = 5: a replication from as few
    runs as the paper's understates its spread; about 1 for many runs. NaN for n < 1."""
    return ((n - 1) / n) ** 2 if n >= 1 else float("nan")


def fraction_outside(x: ArrayLike, m: int, low: float, high: float,
                     rng: np.random.Generator | int, n_trials: int = 10_000,
                     statistic: Callable = np.mean) -> FPR:
    """How often the statistic of ``m`` runs drawn without replacement from ``x`` falls
    outside [low, high] (e.g. a 5-seed mean outside the 50-seed CI).  NaNs dropped."""
    pool, n_nan = _drop_nan(x)
    if not 1 <= m <= pool.size:
        raise ValueError(f"need 1 <= m <= {pool.size} runs, got m={m}")
    rng = _rng(rng)
    idx = np.argsort(rng.random((n_trials, pool.size)), axis=1)[:, :m]
    s = np.asarray(statistic(pool[idx], axis=-1), float)
    k = int(np.sum((s < low) | (s > high)))
    rate = k / n_trials
    return FPR(rate, k, n_trials, float(np.sqrt(rate * (1 - rate) / n_trials)), n_nan)


# ----------------------------------------------------------------------------- censored times
class LogRank(NamedTuple):
    statistic: float   # z = (O_x - E_x) / sqrt(V): > 0 when x reaches the threshold sooner
    p_value: float     # two-sided
    events_x: int
    events_y: int
    degenerate: bool   # no run of either group reached it: identical data, z = 0, p = 1


def logrank_test(episodes_x: ArrayLike, reached_x: ArrayLike, episodes_y: ArrayLike,
                 reached_y: ArrayLike, budget: int) -> LogRank:
    """Log-rank test (scipy.stats.logrank) of episodes-to-threshold, runs that did not reach
    it right-censored at ``budget``.  z > 0: x's runs reach it sooner than expected under
    equal hazards.  No events at all -> z = 0, p = 1 (degenerate); a group with no runs ->
    NaN."""
    rx, ry = np.asarray(reached_x, bool), np.asarray(reached_y, bool)
    ex_, ey = np.asarray(episodes_x, float), np.asarray(episodes_y, float)
    kx, ky = int(rx.sum()), int(ry.sum())
    if rx.size == 0 or ry.size == 0:
        return LogRank(np.nan, np.nan, kx, ky, False)
    if kx + ky == 0:
        return LogRank(0.0, 1.0, 0, 0, True)
    data = [stats.CensoredData(uncensored=e[r], right=np.full(int((~r).sum()), float(budget)))
            for e, r in ((ex_, rx), (ey, ry))]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.logrank(*data)
    return LogRank(float(res.statistic), float(res.pvalue), kx, ky, False)


def logrank_power(n_events: int, hazard_ratio: float, alpha: float = 0.05) -> float:
    """Schoenfeld's approximation to the power of the two-sided log-rank test with equal
    allocation:  power = Phi(|ln HR| sqrt(D) / 2 - z) + Phi(-|ln HR| sqrt(D) / 2 - z),
    z = z_{1 - alpha/2}, D the number of events (runs reaching the threshold) in both groups.
    Under exponential times HR equals the ratio of median times."""
    if not (np.isfinite(hazard_ratio) and hazard_ratio > 0) or n_events < 0:
        return np.nan
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(np.log(hazard_ratio)) * np.sqrt(n_events) / 2
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def km_median_administrative(episodes: ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Kaplan-Meier median of episodes-to-threshold when every censoring happens at the end
    of the budget (NaN = not reached): then S(t) = 1 - #{reached by t} / n, and the median
    (smallest t with S(t) <= 0.5) is the ceil(n/2)-th smallest time, +inf when fewer than
    half of the runs reach the threshold ("> budget").  Vectorised over the other axes;
    equals :func:`censored_median_episodes` (tested)."""
    e = np.moveaxis(np.asarray(episodes, dtype=float), axis, -1)
    n = e.shape[-1]
    if n == 0:
        return np.nan
    k = -(-n // 2)
    s = np.sort(np.where(np.isnan(e), np.inf, e), axis=-1)[..., k - 1]
    return float(s) if np.ndim(s) == 0 else s


def spearman_trend(values: ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Spearman rank correlation between ``values`` and their position along ``axis``
    (1, 2, ...): -1 = strictly decreasing, +1 = strictly increasing.  Ties get mid-ranks
    (Pearson correlation of the ranks).  NaN when the values are constant or contain NaN."""
    v = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    n = v.shape[-1]
    r = stats.rankdata(v, axis=-1)
    pos = np.arange(1, n + 1, dtype=float)
    rc = r - r.mean(axis=-1, keepdims=True)
    pc = pos - pos.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (rc * pc).sum(axis=-1) / np.sqrt((rc**2).sum(axis=-1) * (pc**2).sum())
    rho = np.where(np.isnan(v).any(axis=-1), np.nan, rho)
    return float(rho) if np.ndim(rho) == 0 else rho


def median_ratio_test(episodes_a: ArrayLike, reached_a: ArrayLike, episodes_b: ArrayLike,
                      reached_b: ArrayLike, budget: int, rng: np.random.Generator | int,
                      level: float = 0.95, n_resamples: int = 10_000) -> BootTest:
    """Test and CI of the ratio of median episodes-to-threshold  r = med(B) / med(A)
    (> 1: A reaches the threshold sooner), censoring handled by bounds.

    Medians are Kaplan-Meier medians under censoring at the budget
    (:func:`km_median_administrative`).  A censored run's time is only known to exceed the
    budget, so each side of the interval uses the censoring that is conservative for it:
    the LOWER bound and the p-value for r > 1 come from the bootstrap of r with A's censored
    runs at +inf and B's at the budget (r as small as the data allow); the UPPER bound and
    the p-value for r < 1 from A's at the budget and B's at +inf (r as large as they allow).
    p = min(1, 2 min((1 + #{r_low* <= 1}), (1 + #{r_high* >= 1})) / (B + 1)); percentile
    bounds (no interpolation), each from its own bootstrap (runs resampled within groups,
    the same resampling indices for both).  Estimate: med(B) / med(A) with censored runs
    at +inf (inf / inf -> NaN).  Resamples with an undefined ratio are dropped (counted)."""
    ra, rb = np.asarray(reached_a, bool), np.asarray(reached_b, bool)
    ea, eb = np.asarray(episodes_a, float), np.asarray(episodes_b, float)
    inf, cap = np.inf, float(budget)
    a_inf, a_cap = np.where(ra, ea, inf), np.where(ra, ea, cap)
    b_inf, b_cap = np.where(rb, eb, inf), np.where(rb, eb, cap)

    def ratio(b, a):
        with np.errstate(all="ignore"):
            return km_median_administrative(b, -1) / km_median_administrative(a, -1)

    est = float(ratio(b_inf, a_inf))
    if ra.size < 2 or rb.size < 2:
        return BootTest(est, np.nan, np.nan, np.nan, level, 0, 0)
    rng = _rng(rng)
    ia = rng.integers(0, ra.size, (n_resamples, ra.size))
    ib = rng.integers(0, rb.size, (n_resamples, rb.size))
    low_d = ratio(b_cap[ib], a_inf[ia])     # conservative for r > 1
    high_d = ratio(b_inf[ib], a_cap[ia])    # conservative for r < 1
    bad = np.isnan(low_d) | np.isnan(high_d)
    low_d, high_d = low_d[~bad], high_d[~bad]
    if low_d.size == 0:
        return BootTest(est, np.nan, np.nan, np.nan, level, 0, int(bad.sum()))
    a = (1 - level) / 2
    low = float(np.quantile(low_d, a, method="lower"))
    high = float(np.quantile(high_d, 1 - a, method="higher"))
    B = low_d.size
    p = min(1.0, 2 * min((1 + np.sum(low_d <= 1)) / (B + 1), (1 + np.sum(high_d >= 1)) / (B + 1)))
    return BootTest(est, low, high, float(p), level, int(B), int(bad.sum()))


# ----------------------------------------------------------------------------- paired samples
class PairedResult(NamedTuple):
    mean_diff: float   # mean over pairs of x_i - y_i
    low: float         # t interval of the mean difference at ``level``
    high: float
    statistic: float   # paired t
    p_value: float     # two-sided paired t
    wilcoxon_p: float  # two-sided Wilcoxon signed-rank (zero differences: Pratt), shown beside
    sd_diff: float     # sd of the differences (ddof 1)
    n_pairs: int       # pairs with both values
    degenerate: bool   # every difference equal: t undefined, p set by rule
    level: float
    n_nan: int         # pairs dropped (a NaN on either side)


def paired_test(x: ArrayLike, y: ArrayLike, level: float = 0.95) -> PairedResult:
    """Paired comparison of runs that share their seed (``x[i]`` and ``y[i]`` trained from the
    same seed: common random numbers). With d_i = x_i - y_i over the n pairs where both are
    defined: mean dbar, sd s_d, t = dbar / (s_d / sqrt(n)) on n - 1 df (scipy.stats.ttest_rel),
    the interval dbar +- t_{(1+level)/2, n-1} s_d / sqrt(n), and the Wilcoxon signed-rank
    p-value (scipy.stats.wilcoxon, zero differences kept by Pratt's method). Positive
    correlation between the pair makes s_d smaller than the unpaired standard error, which is
    the point of pairing. Degenerate case: every d_i equal (s_d = 0): dbar = 0 gives p = 1,
    otherwise p = 0 (as :func:`welch_test`). Fewer than 2 pairs -> NaN."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n, n_nan = int(d.size), int(x.size - keep.sum())
    if n < 2:
        m = float(d.mean()) if n else np.nan
        return PairedResult(m, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, n, False, level, n_nan)
    dbar, sd = float(d.mean()), float(np.std(d, ddof=1))
    if np.ptp(d) == 0:
        p = 1.0 if dbar == 0 else 0.0
        return PairedResult(dbar, dbar, dbar, np.nan if dbar == 0 else np.copysign(np.inf, dbar), p, p,
                            0.0, n, True, level, n_nan)
    res = stats.ttest_rel(x[keep], y[keep])
    half = stats.t.ppf((1 + level) / 2, n - 1) * sd / np.sqrt(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small n: scipy notes the normal approximation
        wp = float(stats.wilcoxon(d, zero_method="pratt").pvalue) if np.any(d != 0) else 1.0
    return PairedResult(dbar, dbar - half, dbar + half, float(res.statistic), float(res.pvalue), wp, sd, n,
                        False, level, n_nan)


def power_paired(n: int, effect: float, sd_diff: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t test with n pairs, true mean difference ``effect`` and
    sd of the differences ``sd_diff``: ncp = effect / sd_diff sqrt(n), df = n - 1,
    power = P(T > c) + P(T < -c), T ~ nct(df, ncp), c = t_{1 - alpha/2, df}."""
    if n < 2 or not np.isfinite(sd_diff) or sd_diff <= 0:
        return np.nan
    df, ncp = n - 1, abs(effect) / sd_diff * np.sqrt(n)
    c = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(c, df, ncp) + stats.nct.cdf(-c, df, ncp))


# ----------------------------------------------------------------------------- spread
def mean_abs_deviation(x: ArrayLike, axis: int = -1) -> np.ndarray | float:
    """Mean absolute deviation from the median, mean_i |x_i - median(x)|: the spread that
    :func:`fligner_killeen` and :func:`brown_forsythe` compare (both work on |x - median|),
    defined and informative when most runs sit at the 500 cap (where the IQR is 0)."""
    x = np.asarray(x, dtype=float)
    med = np.median(x, axis=axis, keepdims=True)
    out = np.mean(np.abs(x - med), axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def fligner_killeen(x: ArrayLike, y: ArrayLike) -> VarianceTest:
    """Fligner-Killeen test of equal spread (scipy.stats.fligner, center="median"): ranks of
    |x - median| pooled over both groups, scored by normal quantiles, and a chi-square (1 df)
    statistic; rank-based, so it does not degenerate into a test of means when most values
    are tied at a cap (Brown-Forsythe does). The ``sd_*`` fields hold the
    :func:`mean_abs_deviation` of each group, ``sd_ratio`` their ratio (the effect on the
    test's own scale). Every |x - median| equal within and across groups -> statistic 0,
    p = 1. Fewer than 2 values in a group -> NaN."""
    x, nan_x = _drop_nan(x)
    y, nan_y = _drop_nan(y)
    nx, ny, n_nan = x.size, y.size, nan_x + nan_y
    mx = mean_abs_deviation(x) if nx else np.nan
    my = mean_abs_deviation(y) if ny else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.divide(np.float64(mx), np.float64(my))) if not (mx == 0 and my == 0) else np.nan
    if nx < 2 or ny < 2:
        return VarianceTest(np.nan, np.nan, mx, my, ratio, nx, ny, False, n_nan)
    z = np.concatenate([np.abs(x - np.median(x)), np.abs(y - np.median(y))])
    if np.ptp(z) == 0:
        return VarianceTest(0.0, 1.0, mx, my, ratio, nx, ny, True, n_nan)
    res = stats.fligner(x, y, center="median")
    return VarianceTest(float(res.statistic), float(res.pvalue), mx, my, ratio, nx, ny, False, n_nan)


def _spread_ratio_stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(np.asarray(mean_abs_deviation(x, axis=axis), float),
                         np.asarray(mean_abs_deviation(y, axis=axis), float))


def spread_ratio_test(x: ArrayLike, y: ArrayLike, rng: np.random.Generator | int,
                      level: float = 0.95, n_resamples: int = 10_000) -> BootTest:
    """Percentile bootstrap (runs resampled within each group) of :func:`mean_abs_deviation`
    (x) / :func:`mean_abs_deviation` (y), with its two-sided p-value against 1 (equal
    spread): the interval and the test come from one bootstrap distribution, so they agree
    (:func:`bootstrap_test`). Fewer than 2 runs in a group or no spread in ``y``: NaN."""
    x, _ = _drop_nan(x)
    y, _ = _drop_nan(y)
    if x.size < 2 or y.size < 2 or np.ptp(y) == 0:
        est = float(_spread_ratio_stat(x, y)) if x.size and y.size else np.nan
        return BootTest(est, np.nan, np.nan, np.nan, level, 0, 0)
    return bootstrap_test(_spread_ratio_stat, (x, y), rng, null=1.0, level=level, n_resamples=n_resamples)


# ----------------------------------------------------------------------------- a reported pair
class PairReplication(NamedTuple):
    p_value: float      # P(D* >= D(paper)) under the m-run replication distribution
    distance: float     # D of the paper's pair
    mean: tuple         # centre of the replication distribution of (mean, sd)
    m: int
    n: int
    n_resamples: int


def replication_pair_test(x: ArrayLike, paper_mean: float, paper_sd: float, m: int,
                          rng: np.random.Generator | int, n_resamples: int = 10_000) -> PairReplication:
    """Is a reported (mean, sd) of ``m`` runs, taken together, what ``m`` runs of our
    procedure give? The two-stage bootstrap of :func:`replication_interval` draws B replicate
    samples of m runs; each gives the pair T*_b = (mean, sd ddof 1). With mu and S their mean
    and covariance, D(t) = (t - mu)^T S^+ (t - mu) (Mahalanobis; S^+ the pseudo-inverse,
    so a degenerate direction, e.g. every run at the cap, is measured along the others), and
    p = (1 + #{D(T*_b) >= D(paper)}) / (B + 1): the fraction of replicates at least as far
    from the centre as the paper's pair. A paper's pair off the span of the replicates (the
    residual (I - S S^+)(t - mu) is not 0: e.g. our runs all at the cap, the paper's not)
    is where no replicate can be: D = inf, p = 1 / (B + 1). Two numbers that are each
    plausible alone can be jointly improbable (a high mean with a small sd). Fewer than 2
    runs -> NaN."""
    x, _ = _drop_nan(x)
    n = x.size
    if n < 2 or not (np.isfinite(paper_mean) and np.isfinite(paper_sd)):
        return PairReplication(np.nan, np.nan, (np.nan, np.nan), m, n, 0)
    g = _rng(rng)
    first = g.integers(0, n, (n_resamples, n))
    second = g.integers(0, n, (n_resamples, m))
    draws = x[np.take_along_axis(first, second, axis=1)]
    t = np.stack([draws.mean(axis=1), draws.std(axis=1, ddof=1)], axis=1)
    mu = t.mean(axis=0)
    cov = np.cov(t, rowvar=False)
    inv = np.linalg.pinv(cov)
    dev = t - mu
    dist = np.einsum("bi,ij,bj->b", dev, inv, dev)
    pv = np.array([paper_mean, paper_sd]) - mu
    off = pv - cov @ inv @ pv                       # the part no replicate can reach
    scale = float(np.abs(pv).sum() + np.abs(mu).sum() + 1.0)
    d0 = np.inf if float(np.abs(off).sum()) > 1e-9 * scale else float(pv @ inv @ pv)
    p = float((1 + np.sum(dist >= d0 * (1 - 1e-12))) / (n_resamples + 1))
    return PairReplication(p, d0, (float(mu[0]), float(mu[1])), m, n, n_resamples)
