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
