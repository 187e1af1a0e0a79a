"""The benchmarks study (claim C13): its cells, the normalisation pilot's rule, the tidy tables
and ``paper/benchmarks.csv`` against hand computations, and C13's rows on constructed runs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pgsom import benchmark_study as bs
from pgsom import claims, stats
from pgsom import experiments as ex
from pgsom.benchmarks import BENCHMARKS, NORMALISATIONS, benchmark
from pgsom.config import RunConfig
from pgsom.variants import lookup


# --------------------------------------------------------------------------- cells


def test_cartpole_cells_are_the_main_experiments_runs():
    """Same config, so the study's CartPole runs are the main experiment's cache entries."""
    main = ex.make_variants(list(bs.BENCHMARK_VARIANTS))
    cells = [c for c in bs.study_cells() if c.env == "CartPole-v1"]
    assert [c.variant for c in cells] == list(bs.BENCHMARK_VARIANTS)
    for c in cells:
        assert c.config == main[c.variant] and c.normalisation == "episode"


def test_each_benchmark_cell_trains_on_its_env_backend_and_budget():
    cells = bs.study_cells()
    assert len(cells) == len(BENCHMARKS) * len(bs.BENCHMARK_VARIANTS)
    for c in cells:
        b = benchmark(c.env)
        assert (c.config.env_id, c.config.backend, c.config.episodes) == (b.env_id, b.backend, b.episodes)
        want = lookup(c.variant).config(RunConfig())
        # the variant's own algorithm (clip, its doubled rate) is kept, the normalisation applied on top
        assert c.config.algo == NORMALISATIONS[b.normalisation].apply(want).algo
    assert {c.config.backend for c in cells if c.env == "LunarLander-v3"} == {"gymnasium"}
    assert {c.config.backend for c in cells if c.env == "Acrobot-v1"} == {"fast"}
    short = bs.study_cells(["Hopper-v5"], ["pg"], episodes=7, eval_episodes=0)
    assert [(c.config.episodes, c.config.eval_episodes) for c in short] == [(7, 0)]
    with pytest.raises(ValueError, match="unknown benchmark 'Pong-v5'"):
        bs.study_cells(["Pong-v5"])


def test_normalisations_are_config_changes():
    base = benchmark("LunarLander-v3").run_config(lookup("pg").config(RunConfig()))
    assert NORMALISATIONS["episode"].apply(base) == base
    ema = NORMALISATIONS["ema_baseline"].apply(base).algo
    assert ema.baseline and ema.standardize and ema.baseline_kind == "time_ema"
    raw = benchmark("LunarLander-v3").run_config(lookup("adam").config(RunConfig()), "raw_ema_baseline").algo
    assert raw.baseline and not raw.standardize and raw.method == "adam"
    with pytest.raises(ValueError, match="normalisation must be one of"):
        dataclasses.replace(benchmark("Hopper-v5"), normalisation="window")


# --------------------------------------------------------------------------- the pilot's rule


def _pilot_finals(means: dict[tuple[str, str, str], list[float]], diverged=()) -> bs.BenchmarkRuns:
    rows = []
    for (env, norm, m), xs in means.items():
        for i, x in enumerate(xs):
            rows.append({"protocol": "pilot", "env": env, "normalisation": norm, "method": m, "variant": m,
                         "seed": i, "last_mean": x, "diverged": (env, norm, m, i) in diverged})
    return bs.BenchmarkRuns(pd.DataFrame(rows), pd.DataFrame(), {})


def test_pilot_ranks_within_method_and_departs_from_the_paper_only_on_a_clear_gain():
    env = "Acrobot-v1"
    runs = _pilot_finals({
        (env, "episode", "pg"): [-200, -220, -210], (env, "episode", "adam"): [-300, -320, -310],
        (env, "ema_baseline", "pg"): [-150, -170, -160], (env, "ema_baseline", "adam"): [-400, -420, -410],
        (env, "raw_ema_baseline", "pg"): [-450, -470, -460], (env, "raw_ema_baseline", "adam"): [-100, -90, -95],
    })
    s = bs.pilot_summary(runs).set_index(["normalisation", "method"])
    assert s.loc[("episode", "pg"), "last_mean"] == -210
    ci = sps.t.interval(0.95, 2, loc=-210, scale=np.std([-200, -220, -210], ddof=1) / math.sqrt(3))
    assert s.loc[("episode", "pg"), "ci_low"] == pytest.approx(ci[0])
    assert s["rank"].to_dict() == {("episode", "pg"): 2, ("episode", "adam"): 2, ("ema_baseline", "pg"): 1,
                                   ("ema_baseline", "adam"): 3, ("raw_ema_baseline", "pg"): 3,
                                   ("raw_ema_baseline", "adam"): 1}
    want = sps.ttest_ind([-150, -170, -160], [-200, -220, -210], equal_var=False, alternative="greater").pvalue
    assert s.loc[("ema_baseline", "pg"), "p_vs_paper"] == pytest.approx(want)
    assert math.isnan(s.loc[("episode", "pg"), "p_vs_paper"])
    # each candidate beats the paper's protocol for one method only: the paper's stays
    assert bs.choose_normalisation(bs.pilot_summary(runs)) == {env: "episode"}
    # better for both methods, clearly: chosen
    runs2 = _pilot_finals({(env, "episode", "pg"): [-200, -220, -210], (env, "episode", "adam"): [-300, -320, -310],
                           (env, "ema_baseline", "pg"): [-100, -120, -110], (env, "ema_baseline", "adam"): [-90, -80, -85]})
    assert bs.choose_normalisation(bs.pilot_summary(runs2)) == {env: "ema_baseline"}
    check = bs.pilot_check(bs.pilot_summary(runs2))
    assert check.to_dict("records") == [{"env": env, "registry": benchmark(env).normalisation,
                                         "pilot": "ema_baseline", "agree": False}]
    # better on average but within the noise of a few seeds: not chosen
    runs3 = _pilot_finals({(env, "episode", "pg"): [-200, -100, -300], (env, "episode", "adam"): [-300, -200, -400],
                           (env, "ema_baseline", "pg"): [-150, -50, -250], (env, "ema_baseline", "adam"): [-250, -150, -350]})
    assert bs.choose_normalisation(bs.pilot_summary(runs3)) == {env: "episode"}
    # a diverged run ranks its normalisation last and rules it out, whatever its mean
    runs4 = _pilot_finals({(env, "episode", "pg"): [-200, -220, -210], (env, "ema_baseline", "pg"): [-100, -120, -110]},
                          diverged={(env, "ema_baseline", "pg", 1)})
    s4 = bs.pilot_summary(runs4).set_index("normalisation")
    assert s4.loc["ema_baseline", "rank"] == 2 and s4.loc["ema_baseline", "diverged"] == 1
    assert bs.choose_normalisation(bs.pilot_summary(runs4)) == {env: "episode"}


# --------------------------------------------------------------------------- training and tables


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench_cache")
    kw = dict(seeds=3, episodes=12, eval_episodes=2, cache_dir=cache, max_workers=1, log=None)
    return bs.run_study(["CartPole-v1", "Acrobot-v1", "InvertedPendulum-v5"], ["pg", "hessian"], **kw), kw


def test_study_tables_follow_the_runs(small):
    runs, kw = small
    f, c = runs.finals, runs.curves
    assert list(dict.fromkeys(f["protocol"])) == ["powered", "replication"]
    assert list(dict.fromkeys(f["env"])) == ["CartPole-v1", "Acrobot-v1", "InvertedPendulum-v5"]
    assert len(f) == 2 * 3 * 2 * 3 and len(c) == len(f) * 12
    assert f.groupby("protocol")["root_seed"].first().to_dict() == {
        "powered": ex.PROTOCOLS["powered"].root_seed, "replication": ex.PROTOCOLS["replication"].root_seed}
    for (p, env, v, seed), g in c.groupby(["protocol", "env", "variant", "seed"]):
        r = f[(f["protocol"] == p) & (f["env"] == env) & (f["variant"] == v) & (f["seed"] == seed)].iloc[0]
        ret = g.sort_values("episode")["return"].to_numpy()
        assert r["final_return"] == ret[-1] and r["last_mean"] == pytest.approx(ret.mean())
        assert r["env_steps"] == g["env_steps"].max()
        thr = benchmark(env).thresholds
        assert r["threshold_1"] == thr[0]
        e = stats.episodes_to_threshold(ret[None], thr[0], window=10).episodes[0]
        assert (math.isnan(e) and math.isnan(r["episodes_to_threshold_1"])) or e == r["episodes_to_threshold_1"]
        assert (len(thr) > 1) == (not math.isnan(r["threshold_2"]))
    # Acrobot's rewards are -1 a step and 0 on reaching the goal: the return is minus the
    # episode's length, plus one when it ended before the 500-step cap
    a = c[c["env"] == "Acrobot-v1"].sort_values(["protocol", "variant", "seed", "episode"])
    steps = a.groupby(["protocol", "variant", "seed"])["env_steps"].diff().fillna(a["env_steps"]).to_numpy()
    np.testing.assert_array_equal(a["return"].to_numpy(), np.where(steps < 500, 1 - steps, -500))
    # the same call again comes from the cache, with the same numbers
    again = bs.run_study(["CartPole-v1", "Acrobot-v1", "InvertedPendulum-v5"], ["pg", "hessian"], **kw)
    assert again.meta["trained"] == 0
    pd.testing.assert_frame_equal(again.finals, f)


def test_summary_table_is_the_hand_computed_one(small):
    runs, _ = small
    t = bs.summary_table(runs)
    assert len(t) == 2 * 3 * 2
    for r in t.to_dict("records"):
        g = runs.finals[(runs.finals["protocol"] == r["protocol"]) & (runs.finals["env"] == r["env"])
                        & (runs.finals["variant"] == r["variant"])]
        x = g["eval_return"].to_numpy(float)
        half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert r["eval_mean"] == pytest.approx(x.mean())
        if half > 0:
            assert (r["eval_ci_low"], r["eval_ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half))
        assert r["final_mean"] == pytest.approx(g["final_return"].mean())
        assert r["env_steps"] == pytest.approx(g["env_steps"].mean())
        assert r["reached_1"] == int(g["episodes_to_threshold_1"].notna().sum())
        if r["env"] != "CartPole-v1":
            assert math.isnan(r["threshold_2"]) and math.isnan(r["reached_2"])


def test_write_outputs_and_figure6(small, tmp_path):
    from pgsom import plots

    runs, _ = small
    paths = bs.write_outputs(runs, tmp_path)
    back = pd.read_csv(paths["benchmark_finals"])
    assert list(back.columns) == list(runs.finals.columns) and len(back) == len(runs.finals)
    assert set(pd.read_csv(paths["benchmarks"])["env"]) == {"CartPole-v1", "Acrobot-v1", "InvertedPendulum-v5"}
    panels = bs.figure6_panels(runs, "powered", ["pg", "hessian", "npg"])
    assert list(panels) == ["CartPole-v1", "Acrobot-v1", "InvertedPendulum-v5"]
    assert set(panels["Acrobot-v1"][0]) == {"pg", "hessian"}  # npg was not run
    assert panels["Acrobot-v1"][0]["pg"].shape == (3, 12) and panels["CartPole-v1"][1] == (200.0, 400.0)
    fig = plots.figure6(panels)
    assert len([ax for ax in fig.axes if ax.axison]) == 3


def test_registry_table_reads_gymnasium():
    t = bs.registry_table().set_index("env")
    assert t.loc["Hopper-v5", "actions"] == f"Box({benchmark('Hopper-v5').spaces().n_actions})"
    assert t.loc["CartPole-v1", "thresholds"] == "200, 400" and t.loc["Acrobot-v1", "backend"] == "fast"


# --------------------------------------------------------------------------- C13


def _bench_frame(effects: dict[str, float], n: int = 12, sd: float = 10.0, seed: int = 0) -> pd.DataFrame:
    """Benchmark finals where ``hessian``'s evaluation return is the baselines' + effect[env]
    (per-seed noise shared across methods: paired)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in ("powered", "replication"):
        for env, eff in effects.items():
            common = rng.normal(100, 30, n)
            for v in ("pg", "hessian", "adam", "npg"):
                x = common + rng.normal(0, sd, n) + (eff if v == "hessian" else 0.0)
                for i in range(n):
                    rows.append({"protocol": p, "env": env, "variant": v, "method": v, "seed": i,
                                 "eval_return": x[i], "final_return": x[i], "diverged": False,
                                 "episodes_to_threshold_1": np.nan, "root_seed": 1})
    return pd.DataFrame(rows)


def _report_with(bench: pd.DataFrame):
    from test_claims import make_data  # tests/ is on sys.path under pytest

    finals, curves = make_data({"powered": {"pg": [100.0] * 4}, "replication": {"pg": [100.0] * 4}})
    return claims.build_report(finals, curves, budget=20, n_boot=200, benchmarks=bench)


def test_c13_gains_loses_and_cannot_tell_per_benchmark_with_holm_across_them():
    effects = {"CartPole-v1": 40.0, "Acrobot-v1": -40.0, "LunarLander-v3": 0.0,
               "InvertedPendulum-v5": 40.0, "Hopper-v5": 0.5}
    bench = _bench_frame(effects)
    rep = _report_with(bench)
    rows = rep.rows[rep.rows["claim"] == "C13"]
    assert set(rows["protocol"]) == {"powered", "replication", "pooled"}
    powered = rows[rows["protocol"] == "powered"].set_index("key")
    assert len(powered) == 5 * 3
    for env, eff in effects.items():
        for base in ("pg", "adam", "npg"):
            r = powered.loc[f"{env}-{base}"]
            g = bench[(bench["protocol"] == "powered") & (bench["env"] == env)]
            x = g[g["variant"] == "hessian"].sort_values("seed")["eval_return"].to_numpy()
            y = g[g["variant"] == base].sort_values("seed")["eval_return"].to_numpy()
            assert r["p_value"] == pytest.approx(sps.ttest_rel(x, y).pvalue)
            assert r["estimate"] == pytest.approx((x - y).mean())
            want = "supported" if eff > 0 and eff > 5 else "contradicted" if eff < 0 else None
            if want:
                assert r["verdict"] == want, (env, base)
            else:
                assert r["verdict"] in ("inconclusive", "not supported"), (env, base)
    # Holm across the five benchmarks, per baseline
    for base in ("pg", "adam", "npg"):
        fam = powered[powered["family"] == f"benchmarks vs {base}"]
        assert len(fam) == 5
        np.testing.assert_allclose(fam["p_holm"], stats.holm(fam["p_value"].to_numpy()).p_adjusted)
    c = rep.claims.set_index("claim").loc["C13"]
    assert c["verdict"] == "contradicted" and c["stable"]  # PG-SOM loses on Acrobot in both samples
    md = rep.markdown()
    assert "vs `pg` gains on 2, loses on 1, cannot be told apart on 2" in md


def test_c13_is_not_tested_without_the_study():
    from test_claims import make_data  # tests/ is on sys.path under pytest

    finals, curves = make_data({"powered": {"pg": [100.0] * 4}})
    rep = claims.build_report(finals, curves, budget=20, n_boot=200)
    assert rep.claims.set_index("claim").loc["C13", "verdict"] == "not tested"


def test_c1_largest_gain_is_taken_over_every_benchmark():
    """C1's 'up to 2.1x' row is the largest episodes ratio over CartPole's rows and the same
    comparisons on the other benchmarks (their rows are candidates only, not rows of C1)."""
    bench = _bench_frame({"Acrobot-v1": 0.0}, n=20)
    sel = (bench["env"] == "Acrobot-v1") & (bench["protocol"] == "powered")
    rng = np.random.default_rng(5)
    for v, scale in (("hessian", 1.0), ("pg", 3.0), ("adam", 1.1), ("npg", 1.1)):
        rows = sel & (bench["variant"] == v)
        bench.loc[rows, "episodes_to_threshold_1"] = np.round(scale * rng.uniform(40, 60, int(rows.sum())))
    rep = _report_with(bench)
    c1 = rep.rows[(rep.rows["claim"] == "C1") & (rep.rows["protocol"] == "powered")].set_index("key")
    assert not any(k.startswith("Acrobot") for k in c1.index)  # candidates, not rows
    best = c1.loc["largest-ratio"]
    assert "`pg` on `Acrobot-v1`" in best["statement"] and best["kind"] == "size"
    h = bench[sel & (bench["variant"] == "hessian")]["episodes_to_threshold_1"].to_numpy(float)
    g = bench[sel & (bench["variant"] == "pg")]["episodes_to_threshold_1"].to_numpy(float)
    assert best["estimate"] == pytest.approx(np.median(g) / np.median(h), rel=0.05)
    # without the study, the largest is CartPole's (here: no ratio defined at all)
    from test_claims import make_data  # tests/ is on sys.path under pytest

    finals, curves = make_data({"powered": {"pg": [100.0] * 4}})
    alone = claims.build_report(finals, curves, budget=20, n_boot=200)
    assert "Acrobot" not in alone.rows[alone.rows["key"] == "largest-ratio"]["statement"].iloc[0]
