"""Tests for pgsom.stats: expected values are computed here from the formulas (plain numpy /
by hand), never by calling the function under test."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

import pgsom.stats as st

X = np.array([1.0, 2.0, 3.0, 4.0])          # mean 2.5, var 5/3
Y = np.array([2.0, 4.0, 6.0, 8.0, 10.0])    # mean 6,   var 10


# ------------------------------------------------------------------ summary, t CI
def test_summary_by_hand_and_nan_count():
    s = st.summary([1.0, 2.0, 3.0, 4.0, np.nan])
    assert s.n == 4 and s.n_nan == 1
    assert s.mean == pytest.approx(2.5)
    assert s.std == pytest.approx(math.sqrt(5 / 3))        # (2.25+.25+.25+2.25)/3
    assert s.sem == pytest.approx(math.sqrt(5 / 3) / 2)


def test_summary_curves_column_wise():
    curves = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 20.0]])
    s = st.summary(curves)
    np.testing.assert_array_equal(s.n, [3, 2])
    np.testing.assert_array_equal(s.n_nan, [0, 1])
    np.testing.assert_allclose(s.mean, [3.0, 15.0])
    np.testing.assert_allclose(s.std, [2.0, math.sqrt(50.0)])


def test_ci_t_by_hand_and_against_scipy():
    ci = st.ci_t(X, level=0.95)
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2       # t_{0.975, 3} (table value)
    assert (ci.low, ci.high) == pytest.approx((2.5 - half, 2.5 + half))
    ref = stats.t.interval(0.95, 3, loc=2.5, scale=stats.sem(X))
    assert (ci.low, ci.high) == pytest.approx(ref)
    assert ci.method == "t" and ci.level == 0.95


def test_ci_t_degenerate_cases():
    zero_var = st.ci_t([5.0, 5.0, 5.0])
    assert (zero_var.low, zero_var.high) == (5.0, 5.0)
    one = st.ci_t([5.0, np.nan])
    assert one.estimate == 5.0 and math.isnan(one.low) and math.isnan(one.high)
    assert one.n_nan == 1


def test_ci_t_curves():
    curves = np.array([[1.0, 7.0], [2.0, 7.0], [3.0, 7.0], [4.0, 7.0]])
    ci = st.ci_t(curves)
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    np.testing.assert_allclose(ci.low, [2.5 - half, 7.0])
    np.testing.assert_allclose(ci.high, [2.5 + half, 7.0])


# ------------------------------------------------------------------ bootstrap CI
def test_ci_bootstrap_reproducible_contains_mean_and_matches_scipy():
    x = np.random.default_rng(0).normal(200.0, 30.0, size=12)
    a = st.ci_bootstrap(x, np.random.default_rng(42), n_resamples=2000)
    b = st.ci_bootstrap(x, np.random.default_rng(42), n_resamples=2000)
    c = st.ci_bootstrap(x, np.random.default_rng(43), n_resamples=2000)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)            # the rng is really used
    assert a.low < x.mean() < a.high and a.estimate == pytest.approx(x.mean())
    ref = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa",
                          rng=np.random.default_rng(42)).confidence_interval
    assert (a.low, a.high) == pytest.approx((ref.low, ref.high))
    assert a.method == "BCa"


def test_ci_bootstrap_degenerate_and_nan():
    ci = st.ci_bootstrap([500.0] * 5 + [np.nan], np.random.default_rng(0), n_resamples=500)
    assert (ci.estimate, ci.low, ci.high) == (500.0, 500.0, 500.0)
    assert ci.n_nan == 1 and "degenerate" in ci.method


# ------------------------------------------------------------------ Welch
def test_welch_by_hand_and_against_scipy():
    vx, vy = (5 / 3) / 4, 10 / 5                          # var/n of each group
    t = (2.5 - 6.0) / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / 3 + vy**2 / 4)
    p = 2 * stats.t.sf(abs(t), df)
    r = st.welch_test(X, Y)
    assert r.statistic == pytest.approx(t)
    assert r.df == pytest.approx(df) and df == pytest.approx(5.5208, abs=1e-4)
    assert r.p_value == pytest.approx(p)
    assert r.p_value == pytest.approx(stats.ttest_ind(X, Y, equal_var=False).pvalue)
    assert r.mean_diff == pytest.approx(-3.5) and not r.degenerate
    assert (r.nx, r.ny, r.n_nan) == (4, 5, 0)


def test_welch_degenerate_all_at_cap():
    cap = np.full(5, 500.0)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        assert math.isnan(stats.ttest_ind(cap, cap, equal_var=False).pvalue)  # why the rule exists
    same = st.welch_test(cap, cap)
    assert same.degenerate and same.p_value == 1.0 and same.statistic == 0.0
    diff = st.welch_test(cap, np.full(5, 499.0))
    assert diff.degenerate and diff.p_value == 0.0 and diff.statistic == math.inf
    assert diff.mean_diff == 1.0


def test_welch_one_constant_is_not_degenerate_and_small_n_is_nan():
    r = st.welch_test(np.full(5, 500.0), Y)
    assert not r.degenerate
    assert r.statistic == pytest.approx((500 - 6) / math.sqrt(10 / 5))
    assert r.df == pytest.approx(4.0)                     # all weight on the second group
    small = st.welch_test([1.0, np.nan], Y)
    assert math.isnan(small.p_value) and small.n_nan == 1 and small.nx == 1


# ------------------------------------------------------------------ multiplicity
def test_holm_textbook_example():
    r = st.holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(r.p_adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(r.reject, [True, False, False, True])
    assert r.n_nan == 0


def test_holm_caps_at_one_and_drops_nan_from_family():
    np.testing.assert_allclose(st.holm([0.5, 0.6]).p_adjusted, [1.0, 1.0])
    r = st.holm([0.01, np.nan, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(r.p_adjusted, [0.03, np.nan, 0.06, 0.06, 0.02])
    assert r.n_nan == 1 and not r.reject[1]


def test_benjamini_hochberg_by_hand():
    # sorted scaled m p_(i)/i: 0.04, 0.04, 0.0333.., 0.5 -> running min from the right
    r = st.benjamini_hochberg([0.02, 0.5, 0.01, 0.025], alpha=0.05)
    np.testing.assert_allclose(r.p_adjusted, [1 / 30, 0.5, 1 / 30, 1 / 30])
    np.testing.assert_array_equal(r.reject, [True, False, True, True])
    r2 = st.benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(r2.p_adjusted, [0.02, 0.04, 0.04, 0.02])


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(3).uniform(0, 0.2, size=25)
    np.testing.assert_allclose(st.benjamini_hochberg(p).p_adjusted,
                               stats.false_discovery_control(p, method="bh"))


def test_adjustments_reject_invalid_p():
    with pytest.raises(ValueError):
        st.holm([0.1, 1.5])


# ------------------------------------------------------------------ effect sizes
def test_hedges_g_by_hand():
    sp = math.sqrt((3 * 5 / 3 + 4 * 10) / 7)
    d = -3.5 / sp
    J = 1 - 3 / (4 * 9 - 9)                               # 8/9
    se = J * math.sqrt(9 / 20 + d**2 / 18)
    r = st.hedges_g(X, Y)
    assert r.estimate == pytest.approx(J * d)
    assert (r.low, r.high) == pytest.approx((J * d - 1.959963984540054 * se,
                                             J * d + 1.959963984540054 * se))


def test_hedges_g_degenerate():
    assert math.isnan(st.hedges_g([5.0, 5.0], [5.0, 5.0, 5.0]).estimate)
    assert st.hedges_g([6.0, 6.0], [5.0, 5.0, 5.0]).estimate == math.inf


def test_iqm_by_hand_and_curves():
    x = [1.0, 64.0, 2.0, 4.0, 1000.0, 8.0, 16.0, 32.0]   # drop 2 each end: mean(4,8,16,32)
    assert st.iqm(x).value == pytest.approx(15.0)
    assert st.iqm(x).value == pytest.approx(stats.trim_mean(x, 0.25))
    r = st.iqm(x + [np.nan])
    assert r.value == pytest.approx(15.0) and r.n == 8 and r.n_nan == 1
    curves = np.column_stack([x, np.arange(8.0)])
    np.testing.assert_allclose(st.iqm(curves).value, [15.0, 3.5])
    curves[0, 1] = np.nan                                 # column 2 -> 1..7, drop 1 each end
    np.testing.assert_allclose(st.iqm(curves).value, [15.0, 4.0])
    np.testing.assert_array_equal(st.iqm(curves).n_nan, [0, 1])


def test_probability_of_improvement_by_hand():
    x, y = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    hand = sum((a > b) + 0.5 * (a == b) for a in x for b in y) / 9   # = 6/9
    r = st.probability_of_improvement(x, y)
    assert r.estimate == pytest.approx(hand) and hand == pytest.approx(2 / 3)
    assert math.isnan(r.low) and r.method == "none"


def test_probability_of_improvement_bootstrap():
    g = np.random.default_rng(1)
    x, y = g.normal(1.0, 1.0, 15), g.normal(0.0, 1.0, 15)
    a = st.probability_of_improvement(x, y, rng=np.random.default_rng(7), n_resamples=2000)
    b = st.probability_of_improvement(x, y, rng=np.random.default_rng(7), n_resamples=2000)
    assert a == b and a.low < a.estimate < a.high and 0 <= a.low and a.high <= 1
    xi, yi = np.round(x), np.round(y)                     # integer data: many ties

    def hand(a, b, axis=-1):   # (#{x > y} + 0.5 #{x = y}) / (nx ny); one division, so the
        a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)   # floats match exactly
        gt = (a[..., :, None] > b[..., None, :]).sum(axis=(-2, -1))
        eq = (a[..., :, None] == b[..., None, :]).sum(axis=(-2, -1))
        return (gt + 0.5 * eq) / (a.shape[-1] * b.shape[-1])

    ref = stats.bootstrap((xi, yi), hand, n_resamples=2000, method="BCa",
                          rng=np.random.default_rng(7)).confidence_interval
    c = st.probability_of_improvement(xi, yi, rng=np.random.default_rng(7), n_resamples=2000)
    assert (c.low, c.high) == pytest.approx((ref.low, ref.high))
    sep = st.probability_of_improvement([5.0, 6.0], [1.0, 2.0], rng=0, n_resamples=200)
    assert (sep.estimate, sep.low, sep.high) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------ thresholds
def _threshold_curves():
    return np.array([
        [0, 0, 10, 10, 10, 0, 0, 0],      # full-window mean 10 first at episode 5
        [5, 5, 5, 5, 5, 5, 5, 5],         # never: censored
        [0, 0, 0, 0, 0, 10, 10, 10],      # only in the last window: episode 8 = budget
        [40, 0, 0, 0, 0, 0, 0, 0],        # a partial window would say 1; full window says 3
        [30, np.nan, 0, 0, 10, 10, 10, 0],  # windows with the NaN never count: episode 7
    ], dtype=float)


def test_episodes_to_threshold_censoring():
    r = st.episodes_to_threshold(_threshold_curves(), threshold=10.0, window=3)
    np.testing.assert_array_equal(r.episodes, [5, np.nan, 8, 3, 7])
    np.testing.assert_array_equal(r.reached, [True, False, True, True, True])
    assert r.fraction_reached == pytest.approx(0.8) and r.budget == 8
    t = st.episodes_to_threshold(_threshold_curves().T, threshold=10.0, window=3, episode_axis=0)
    np.testing.assert_array_equal(t.episodes, r.episodes)


def test_episodes_to_threshold_window_one_is_first_crossing():
    r = st.episodes_to_threshold(_threshold_curves(), threshold=10.0, window=1)
    np.testing.assert_array_equal(r.episodes, [3, np.nan, 6, 1, 1])
    with pytest.raises(ValueError):
        st.episodes_to_threshold(_threshold_curves(), threshold=10.0, window=9)


def test_censored_median_kaplan_meier_by_hand():
    episodes = np.array([10.0, 20.0, np.nan, np.nan, 30.0])
    reached = ~np.isnan(episodes)
    # KM: S(10) = 4/5, S(20) = 4/5 * 3/4 = 0.6, S(30) = 0.6 * 2/3 = 0.4 -> median 30
    r = st.censored_median_episodes(episodes, reached, budget=50)
    assert r.defined and r.median == 30.0 and (r.n_reached, r.n) == (3, 5)
    assert np.median(episodes[reached]) == 20.0          # naive median ignores censoring
    # uncensored: S = .75, .5 at 20 -> smallest t with S <= 0.5 is 20
    full = st.censored_median_episodes([10.0, 20.0, 30.0, 40.0], [True] * 4, budget=50)
    assert full.median == 20.0


def test_censored_median_undefined_when_half_censored():
    r = st.censored_median_episodes([10.0, 20.0, np.nan, np.nan, np.nan],
                                    [True, True, False, False, False], budget=50)
    assert not r.defined and math.isnan(r.median)       # S stays at 0.6: report "> 50"
    none = st.censored_median_episodes([np.nan] * 3, [False] * 3, budget=50)
    assert not none.defined and none.n_reached == 0


def test_sample_efficiency_ratio_counts_censored_at_budget():
    ea, ra = [100.0, 120.0, 140.0], [True, True, True]
    eb, rb = [200.0, 240.0, np.nan], [True, True, False]
    med = st.sample_efficiency_ratio(ea, ra, eb, rb, budget=500, rng=0, n_resamples=2000)
    assert med.estimate == pytest.approx(240 / 120)     # B counted as [200, 240, 500]
    assert med.low <= med.estimate <= med.high
    assert "budget=500" in med.method
    mean = st.sample_efficiency_ratio(ea, ra, eb, rb, budget=500, rng=0, statistic="mean",
                                      n_resamples=2000)
    assert mean.estimate == pytest.approx((940 / 3) / 120)
    again = st.sample_efficiency_ratio(ea, ra, eb, rb, budget=500, rng=0, statistic="mean",
                                       n_resamples=2000)
    assert again == mean


# ------------------------------------------------------------------ power, false positives
def test_seeds_for_power_known_values():
    # two-sample t, alpha 0.05 two-sided, power 0.8: d=1 -> 17 per arm, d=0.5 -> 64 (Cohen)
    assert st.seeds_for_power(1.0, 1.0) == 17
    assert st.seeds_for_power(0.5, 1.0) == 64
    assert st.seeds_for_power(5.0, 10.0) == 64           # only d = effect/sd matters
    assert st.power_of_test(64, 0.5, 1.0) == pytest.approx(0.8014596, abs=1e-7)  # R pwr.t.test
    assert st.power_of_test(63, 0.5, 1.0) < 0.8


def test_power_of_test_against_simulation():
    n, trials = 10, 20_000
    g = np.random.default_rng(11)
    x, y = g.normal(1.0, 1.0, (trials, n)), g.normal(0.0, 1.0, (trials, n))
    sim = np.mean(stats.ttest_ind(x, y, axis=1).pvalue < 0.05)
    p = st.power_of_test(n, 1.0, 1.0)
    assert abs(sim - p) < 4 * math.sqrt(p * (1 - p) / trials)


def test_false_positive_rate_near_alpha_on_normal_pool():
    pool = np.random.default_rng(5).normal(300.0, 50.0, size=5000)
    trials, alpha = 20_000, 0.05
    r = st.false_positive_rate_identical(pool, n_per_arm=20, rng=np.random.default_rng(6),
                                         n_trials=trials, alpha=alpha)
    # Welch's exact size at n=20 is ~0.049; binomial sd of the estimate sqrt(a(1-a)/T)
    assert abs(r.rate - alpha) < 4 * math.sqrt(alpha * (1 - alpha) / trials)
    assert r.n_trials == trials and r.n_rejected == round(r.rate * trials)
    again = st.false_positive_rate_identical(pool, 20, np.random.default_rng(6), trials, alpha)
    assert again == r


def test_false_positive_rate_matches_exact_split_distribution():
    # pool of exactly 2 x 5 runs: every trial is one of the C(10, 5) = 252 disjoint splits,
    # so the expected rate is the exact fraction over all splits (enumerated here)
    pool = np.array([0, 1, 2, 3, 5, 8, 13, 21, 34, 55.0])
    ps = []
    for c in itertools.combinations(range(10), 5):
        m = np.isin(np.arange(10), c)
        ps.append(stats.ttest_ind(pool[m], pool[~m], equal_var=False).pvalue)
    exact, trials = np.mean(np.array(ps) < 0.05), 20_000
    r = st.false_positive_rate_identical(pool, 5, rng=np.random.default_rng(8), n_trials=trials)
    assert abs(r.rate - exact) < 4 * math.sqrt(exact * (1 - exact) / trials)


def test_false_positive_rate_capped_pool_and_nan():
    pool = np.r_[np.full(10, 500.0), np.nan]              # every seed at the cap
    r = st.false_positive_rate_identical(pool, 5, rng=0, n_trials=100)
    assert r.rate == 0.0 and r.n_nan == 1                 # both constant and equal -> p = 1
    with pytest.raises(ValueError):
        st.false_positive_rate_identical(pool, 6, rng=0)


# ------------------------------------------------------------------ variances
def test_brown_forsythe_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0, 10.0], [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    # z = |x - median|: x median 3 -> [2, 1, 0, 1, 7] (mean 2.2); y median 7 -> [5, 3, 1, 1, 3, 5] (mean 3)
    # grand mean 29/11; between = 5 (2.2 - 29/11)^2 + 6 (3 - 29/11)^2 = 211.2 / 121
    # within = (.04 + 1.44 + 4.84 + 1.44 + 23.04) + (4 + 0 + 4 + 4 + 0 + 4) = 46.8
    f = (11 - 2) / (2 - 1) * (211.2 / 121) / 46.8
    r = st.brown_forsythe(x + [np.nan], y)
    assert r.statistic == pytest.approx(f) and f == pytest.approx(0.3356643, abs=1e-6)
    assert r.p_value == pytest.approx(stats.f.sf(f, 1, 9))
    assert r.sd_x == pytest.approx(math.sqrt(12.5)) and r.sd_y == pytest.approx(math.sqrt(14.0))
    assert r.sd_ratio == pytest.approx(math.sqrt(12.5 / 14.0))
    assert (r.nx, r.ny, r.n_nan, r.degenerate) == (5, 6, 1, False)


def test_brown_forsythe_degenerate_and_small():
    cap = st.brown_forsythe([500.0] * 5, [500.0] * 5)        # levene gives NaN here
    assert cap.degenerate and (cap.statistic, cap.p_value) == (0.0, 1.0)
    assert math.isnan(cap.sd_ratio)                         # 0 / 0
    spread = st.brown_forsythe([1.0, 3.0], [2.0, 6.0])      # z = [1, 1] vs [2, 2]
    assert spread.degenerate and spread.p_value == 0.0 and spread.statistic == math.inf
    assert spread.sd_ratio == pytest.approx(0.5)
    one_constant = st.brown_forsythe([500.0] * 5, Y)
    assert not one_constant.degenerate and one_constant.sd_ratio == 0.0
    assert 0.0 < one_constant.p_value < 1.0
    assert math.isnan(st.brown_forsythe([1.0], Y).p_value)


def test_ci_std_chi_square_by_hand():
    ci = st.ci_std(X, 0.95)
    s = math.sqrt(5 / 3)
    # chi-square table, 3 df: 0.975 quantile 9.348404, 0.025 quantile 0.2157953
    assert ci.estimate == pytest.approx(s)
    assert ci.low == pytest.approx(s * math.sqrt(3 / 9.348404), rel=1e-6)
    assert ci.high == pytest.approx(s * math.sqrt(3 / 0.2157953), rel=1e-6)
    assert st.ci_std([5.0, 5.0, 5.0])[1:3] == (0.0, 0.0)
    assert math.isnan(st.ci_std([1.0, np.nan]).low)


def test_ci_mean_difference_welch_by_hand():
    vx, vy = (5 / 3) / 4, 10 / 5
    df = (vx + vy) ** 2 / (vx**2 / 3 + vy**2 / 4)
    half = stats.t.ppf(0.975, df) * math.sqrt(vx + vy)
    ci = st.ci_mean_difference(X, Y)
    assert ci.estimate == pytest.approx(-3.5)
    assert (ci.low, ci.high) == pytest.approx((-3.5 - half, -3.5 + half))
    flat = st.ci_mean_difference([500.0] * 3, [499.0] * 4)
    assert (flat.estimate, flat.low, flat.high) == (1.0, 1.0, 1.0)
    assert math.isnan(st.ci_mean_difference([1.0], Y).low)


def test_ci_sd_ratio_bootstrap_and_degenerate():
    g = np.random.default_rng(0)
    x, y = g.normal(0, 1, 30), g.normal(0, 2, 40)
    ci = st.ci_sd_ratio(x, y, np.random.default_rng(1), n_resamples=2000)
    assert ci.estimate == pytest.approx(np.std(x, ddof=1) / np.std(y, ddof=1))
    ref = stats.bootstrap((x, y), lambda a, b, axis=-1: np.std(a, ddof=1, axis=axis) / np.std(b, ddof=1, axis=axis),
                          n_resamples=2000, method="BCa", rng=np.random.default_rng(1)).confidence_interval
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))
    assert st.ci_sd_ratio(x, y, 1, n_resamples=2000) == st.ci_sd_ratio(x, y, 1, n_resamples=2000)
    ref0 = st.ci_sd_ratio(x, [3.0] * 5, 0, n_resamples=200)
    assert math.isnan(ref0.low) and "zero sd" in ref0.method and ref0.estimate == math.inf
    zero = st.ci_sd_ratio([500.0] * 5, y, 0, n_resamples=200)
    assert (zero.estimate, zero.low, zero.high) == (0.0, 0.0, 0.0)


# ------------------------------------------------------------------ bootstrap tests, replication
def test_bootstrap_test_replays_by_hand():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    B = 500
    r = st.bootstrap_test(lambda a: a.mean(axis=-1), (x,), np.random.default_rng(3), null=2.0,
                          n_resamples=B)
    idx = np.random.default_rng(3).integers(0, x.size, (B, x.size))
    d = x[idx].mean(axis=1)
    assert r.estimate == pytest.approx(x.mean())
    assert r.low == np.quantile(d, 0.025, method="lower")
    assert r.high == np.quantile(d, 0.975, method="higher")
    p = min(1.0, 2 * min((1 + np.sum(d <= 2.0)) / (B + 1), (1 + np.sum(d >= 2.0)) / (B + 1)))
    assert r.p_value == pytest.approx(p) and r.n_resamples == B and r.n_nan == 0


def test_bootstrap_test_constant_and_two_groups():
    c = st.bootstrap_test(lambda a: a.mean(axis=-1), (np.full(4, 7.0),), 0, null=0.0, n_resamples=99)
    assert (c.low, c.high) == (7.0, 7.0) and c.p_value == pytest.approx(2 / 100)  # never <= 0
    same = st.bootstrap_test(lambda a: a.mean(axis=-1), (np.full(4, 7.0),), 0, null=7.0, n_resamples=99)
    assert same.p_value == 1.0
    two = st.bootstrap_test(lambda a, b: a.mean(axis=-1) - b.mean(axis=-1),
                            (np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])), 0, n_resamples=200)
    assert two.estimate == pytest.approx(-0.5)
    assert math.isnan(st.bootstrap_test(lambda a: a.mean(axis=-1), (np.array([1.0]),), 0).p_value)


def test_replication_interval_replays_by_hand_and_predictive_variance():
    x = np.array([0.0, 1.0])
    B = 4000
    r = st.replication_interval(x, 0.5, m=1, rng=np.random.default_rng(2), n_resamples=B)
    g = np.random.default_rng(2)
    first, second = g.integers(0, 2, (B, 2)), g.integers(0, 2, (B, 1))
    d = x[np.take_along_axis(first, second, axis=1)].mean(axis=1)    # Bernoulli(1/2)
    assert (r.low, r.high) == (0.0, 1.0) and r.m == 1 and r.n == 2
    assert r.p_value == pytest.approx(min(1, 2 * min((1 + (d <= .5).sum()), (1 + (d >= .5).sum())) / (B + 1)))
    far = st.replication_interval(x, 2.0, 1, 2, n_resamples=B)
    assert far.p_value == pytest.approx(2 / (B + 1))                # never reached
    pool = np.random.default_rng(4).normal(100.0, 10.0, 50)
    s2 = np.var(pool, ddof=1)
    g = np.random.default_rng(5)
    B = 20_000
    first, second = g.integers(0, 50, (B, 50)), g.integers(0, 50, (B, 5))
    means = pool[np.take_along_axis(first, second, axis=1)].mean(axis=1)
    # predictive variance of a 5-run mean given 50 runs: about s^2 (49/50) (1/5 + 1/50)
    assert np.var(means) == pytest.approx(s2 * 49 / 50 * (1 / 5 + 1 / 50), rel=0.05)
    rr = st.replication_interval(pool, 100.0, 5, np.random.default_rng(5), n_resamples=B)
    assert (rr.low, rr.high) == (np.quantile(means, 0.025, method="lower"),
                                 np.quantile(means, 0.975, method="higher"))


def test_replication_interval_std_and_degenerate():
    std = lambda a, axis=-1: np.std(a, axis=axis, ddof=1)  # noqa: E731
    cap = st.replication_interval([500.0] * 50, 0.55, 5, 0, std, n_resamples=200)
    assert (cap.low, cap.high, cap.estimate) == (0.0, 0.0, 0.0)
    assert cap.p_value == pytest.approx(2 / 201)                     # 0.55 > every replicate
    assert math.isnan(st.replication_interval([1.0, np.nan], 1.0, 5, 0).p_value)


def test_replication_pair_test_joint_and_degenerate():
    # half our runs at the cap, half well below it (Table 1's hessian+clip: 392.79, 0.55)
    pool = np.concatenate([np.full(25, 500.0), np.random.default_rng(6).normal(250.0, 80.0, 25)])
    B = 4000
    # each number alone is plausible for 5 runs of ours; the pair (a mean below the cap with
    # almost no spread) is not: 5 runs that close together are all at the cap
    std = lambda a, axis=-1: np.std(a, axis=axis, ddof=1)  # noqa: E731
    assert st.replication_interval(pool, 392.79, 5, 0, n_resamples=B).p_value > 0.5
    assert st.replication_interval(pool, 0.55, 5, 0, std, n_resamples=B).p_value > 0.05
    pair = st.replication_pair_test(pool, 392.79, 0.55, 5, 0, n_resamples=B)
    assert pair.p_value < 0.05 and pair.n == 50 and pair.n_resamples == B
    typical = st.replication_pair_test(pool, np.mean(pool), np.std(pool, ddof=1), 5, 0, n_resamples=B)
    assert typical.p_value > 0.5
    # replay by hand: the same draws, Mahalanobis distance, p = (1 + #{D* >= D}) / (B + 1)
    g = np.random.default_rng(3)
    first, second = g.integers(0, 50, (B, 50)), g.integers(0, 50, (B, 5))
    d = pool[np.take_along_axis(first, second, axis=1)]
    t = np.stack([d.mean(axis=1), d.std(axis=1, ddof=1)], axis=1)
    mu, inv = t.mean(axis=0), np.linalg.inv(np.cov(t, rowvar=False))
    dist = np.einsum("bi,ij,bj->b", t - mu, inv, t - mu)
    d0 = (np.array([392.79, 0.55]) - mu) @ inv @ (np.array([392.79, 0.55]) - mu)
    r = st.replication_pair_test(pool, 392.79, 0.55, 5, np.random.default_rng(3), n_resamples=B)
    assert r.distance == pytest.approx(d0) and r.p_value == pytest.approx((1 + (dist >= d0).sum()) / (B + 1))
    # every run of ours at the cap: a pair off the cap is where no replicate can be
    cap = st.replication_pair_test([500.0] * 5, 147.0, 24.53, 5, 0, n_resamples=200)
    assert cap.distance == math.inf and cap.p_value == pytest.approx(1 / 201)
    same = st.replication_pair_test([500.0] * 5, 500.0, 0.0, 5, 0, n_resamples=200)
    assert same.distance == 0.0 and same.p_value == 1.0
    assert math.isnan(st.replication_pair_test([1.0, np.nan], 1.0, 0.0, 5, 0).p_value)


@pytest.mark.parametrize("n", [5, 50])
def test_replication_variance_factor_is_the_two_stage_shrinkage(n):
    assert st.replication_variance_factor(n) == pytest.approx(((n - 1) / n) ** 2)
    x = np.random.default_rng(7).normal(0.0, 1.0, n)
    g = np.random.default_rng(8)
    B = 40_000
    first, second = g.integers(0, n, (B, n)), g.integers(0, n, (B, 5))
    rep = x[np.take_along_axis(first, second, axis=1)]
    ratio = np.var(rep, axis=1, ddof=1).mean() / np.var(x, ddof=1)
    assert ratio == pytest.approx(st.replication_variance_factor(n), rel=0.03)
    assert st.replication_variance_factor(5) == pytest.approx(0.64)


def test_fraction_outside_by_hand():
    pool = np.arange(10.0)
    r = st.fraction_outside(pool, 1, 2.0, 7.0, np.random.default_rng(0), n_trials=20_000)
    assert abs(r.rate - 0.4) < 4 * math.sqrt(0.24 / 20_000)      # 0, 1, 8, 9 of 10 are outside
    full = st.fraction_outside(pool, 10, 4.0, 5.0, 0, n_trials=100)
    assert full.rate == 0.0                                       # the mean of all is 4.5
    with pytest.raises(ValueError):
        st.fraction_outside(pool, 11, 0.0, 1.0, 0)


# ------------------------------------------------------------------ censored times
def test_logrank_by_hand():
    # x: events at 1 and 3; y: event at 2, censored at the budget 4
    # t=1: n=(2,2), E_x=1/2, V=2*2*1*3/(16*3)=1/4; t=2: n=(1,2), E_x=1/3, V=1*2*1*2/(9*2)=2/9;
    # t=3: n=(1,1), E_x=1/2, V=1/4  ->  z = (2 - 4/3) / sqrt(13/18)
    r = st.logrank_test([1.0, 3.0], [True, True], [2.0, np.nan], [True, False], budget=4)
    z = (2 - 4 / 3) / math.sqrt(1 / 4 + 2 / 9 + 1 / 4)
    assert r.statistic == pytest.approx(z) and r.p_value == pytest.approx(2 * stats.norm.sf(z))
    assert (r.events_x, r.events_y, r.degenerate) == (2, 1, False)
    none = st.logrank_test([np.nan] * 3, [False] * 3, [np.nan] * 2, [False] * 2, budget=4)
    assert none.degenerate and (none.statistic, none.p_value) == (0.0, 1.0)


def test_logrank_power_schoenfeld_by_hand():
    shift = math.log(2.1) * math.sqrt(40) / 2
    z = stats.norm.ppf(0.975)
    assert st.logrank_power(40, 2.1) == pytest.approx(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))
    assert st.logrank_power(40, 1 / 2.1) == pytest.approx(st.logrank_power(40, 2.1))
    assert st.logrank_power(0, 2.1) == pytest.approx(0.05)
    assert math.isnan(st.logrank_power(10, 0.0))


def test_km_median_administrative_matches_kaplan_meier():
    assert st.km_median_administrative([1.0, np.nan, 3.0, 4.0]) == 3.0       # 2nd of 4
    assert st.km_median_administrative([np.nan, np.nan, np.nan, 1.0]) == math.inf
    np.testing.assert_array_equal(st.km_median_administrative([[5.0, 1.0, 3.0], [np.nan, 2.0, np.nan]]),
                                  [3.0, np.inf])
    g = np.random.default_rng(9)
    for _ in range(30):
        n = int(g.integers(1, 12))
        e = np.where(g.random(n) < 0.3, np.nan, g.integers(1, 100, n).astype(float))
        km = st.censored_median_episodes(e, ~np.isnan(e), budget=100)
        fast = st.km_median_administrative(e)
        assert (fast == km.median) if km.defined else fast == math.inf


def test_spearman_trend_by_hand():
    assert st.spearman_trend([1.0, 3.0, 2.0]) == pytest.approx(1 - 6 * 2 / (3 * 8))  # d = 0, 1, 1
    assert st.spearman_trend([5.0, 4.0, 1.0, 0.0]) == pytest.approx(-1.0)
    ties = st.spearman_trend([1.0, 1.0, 2.0])   # ranks 1.5, 1.5, 3 vs 1, 2, 3
    assert ties == pytest.approx(np.corrcoef([1.5, 1.5, 3.0], [1, 2, 3])[0, 1])
    assert math.isnan(st.spearman_trend([2.0, 2.0, 2.0])) and math.isnan(st.spearman_trend([1.0, np.nan, 2.0]))
    np.testing.assert_allclose(st.spearman_trend(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])), [1.0, -1.0])


def test_median_ratio_test_by_hand_and_censoring_bounds():
    B = 199
    r = st.median_ratio_test([10.0] * 3, [True] * 3, [20.0] * 3, [True] * 3, 50, 0, n_resamples=B)
    assert (r.estimate, r.low, r.high) == (2.0, 2.0, 2.0)
    assert r.p_value == pytest.approx(2 / (B + 1))                 # no resample with ratio <= 1
    # B never reaches it: its time is only known to exceed 50 -> ratio >= 50 / 10, no upper bound
    cens = st.median_ratio_test([10.0] * 3, [True] * 3, [np.nan] * 3, [False] * 3, 50, 0, n_resamples=B)
    assert cens.estimate == math.inf and cens.low == 5.0 and cens.high == math.inf
    # A never reaches it: ratio <= 20 / 50 = 0.4
    slow = st.median_ratio_test([np.nan] * 3, [False] * 3, [20.0] * 3, [True] * 3, 50, 0, n_resamples=B)
    assert slow.estimate == 0.0 and (slow.low, slow.high) == (0.0, 0.4)
    g = np.random.default_rng(1)
    a, b = g.integers(50, 150, 40).astype(float), g.integers(100, 300, 40).astype(float)
    t = st.median_ratio_test(a, [True] * 40, b, [True] * 40, 500, 3, n_resamples=2000)
    assert t.estimate == pytest.approx(st.km_median_administrative(b) / st.km_median_administrative(a))
    assert t.low <= t.estimate <= t.high and t.p_value < 0.01


def test_probability_of_improvement_with_a_single_run_has_no_bootstrap_ci():
    res = st.probability_of_improvement(np.array([3.0, np.nan]), np.array([1.0, 2.0, 4.0]),
                                           rng=np.random.default_rng(0))
    assert res.estimate == pytest.approx(2 / 3) and np.isnan(res.low) and np.isnan(res.high)


# --------------------------------------------------------------------------- paired, spread


def test_paired_test_matches_scipy_and_the_hand_formula():
    from scipy import stats as sps

    rng = np.random.default_rng(21)
    x = rng.normal(0, 1, 15)
    y = 0.7 * x + rng.normal(0.3, 0.4, 15)
    y[3] = np.nan                                   # a diverged run: its pair is dropped
    r = st.paired_test(x, y)
    keep = ~np.isnan(y)
    d = x[keep] - y[keep]
    half = sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    assert (r.n_pairs, r.n_nan) == (14, 1)
    assert r.mean_diff == pytest.approx(d.mean()) and r.sd_diff == pytest.approx(d.std(ddof=1))
    assert (r.low, r.high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    assert r.p_value == pytest.approx(sps.ttest_rel(x[keep], y[keep]).pvalue)
    assert r.wilcoxon_p == pytest.approx(sps.wilcoxon(d, zero_method="pratt").pvalue)
    # pairing removes the shared part: far smaller p than the unpaired Welch test
    assert r.p_value < st.welch_test(x[keep], y[keep]).p_value
    # degenerate: every difference equal
    c = st.paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert c.degenerate and c.p_value == 0.0 and c.low == c.high == 1.0
    assert st.paired_test([1.0, 2.0], [1.0, 2.0]).p_value == 1.0
    with pytest.raises(ValueError, match="equal length"):
        st.paired_test([1.0, 2.0], [1.0])


def test_power_paired_is_the_noncentral_t_and_matches_simulation():
    from scipy import stats as sps

    n, effect, sd, alpha = 12, 0.6, 1.0, 0.05 / 3
    rng = np.random.default_rng(4)
    d = rng.normal(effect, sd, (20_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))
    simulated = np.mean(np.abs(t) > sps.t.ppf(1 - alpha / 2, n - 1))
    assert st.power_paired(n, effect, sd, alpha) == pytest.approx(simulated, abs=0.01)
    assert st.power_paired(n, effect, sd, alpha) < st.power_paired(n, effect, sd, 0.05)
    assert np.isnan(st.power_paired(1, effect, sd)) and np.isnan(st.power_paired(5, effect, 0.0))


def test_spread_is_the_mean_absolute_deviation_from_the_median():
    x = np.array([500.0, 500.0, 500.0, 100.0, 460.0])
    assert st.mean_abs_deviation(x) == pytest.approx((0 + 0 + 0 + 400 + 40) / 5)
    assert np.allclose(st.mean_abs_deviation(np.stack([x, 2 * x]), axis=1), [88.0, 176.0])


def test_fligner_killeen_matches_scipy_and_reports_the_spreads():
    from scipy import stats as sps

    rng = np.random.default_rng(8)
    x, y = rng.normal(0, 1, 30), rng.normal(0, 3, 25)
    r = st.fligner_killeen(x, y)
    assert r.p_value == pytest.approx(sps.fligner(x, y, center="median").pvalue)
    assert r.sd_ratio == pytest.approx(st.mean_abs_deviation(x) / st.mean_abs_deviation(y))
    same = st.fligner_killeen([1.0, 3.0], [5.0, 7.0])       # every deviation 1: no difference
    assert same.statistic == 0.0 and same.p_value == 1.0 and same.degenerate


def test_spread_ratio_test_agrees_with_its_interval():
    rng = np.random.default_rng(9)
    wide, narrow = rng.normal(0, 3, 40), rng.normal(0, 1, 40)
    t = st.spread_ratio_test(narrow, wide, 1, n_resamples=2000)
    assert t.estimate == pytest.approx(st.mean_abs_deviation(narrow) / st.mean_abs_deviation(wide))
    assert t.high < 1 and t.p_value < 0.05                  # the CI excludes 1 <=> significant
    same = st.spread_ratio_test(rng.normal(0, 1, 40), rng.normal(0, 1, 40), 2, n_resamples=2000)
    assert same.low < 1 < same.high and same.p_value > 0.05
    assert st.spread_ratio_test(narrow, wide, 1, n_resamples=2000) == t   # seeded: same numbers
    assert np.isnan(st.spread_ratio_test([1.0], wide, 1).p_value)
