"""The readings study: its design, the scoring on constructed cases, and a small study end to end."""

import math

import numpy as np
import pandas as pd
import pytest

from pgsom import readings
from pgsom.claims.render import readings_found
from pgsom.config import PAPER_METHODS
from pgsom.paper import PAPER_TABLE1
from pgsom.variants import DEFAULT, Reading, Variant


def test_the_design_is_per_method_and_has_enough_readings():
    counts = {m: len(readings.method_readings(m)) for m in PAPER_METHODS}
    assert counts == {"pg": 10, "hessian": 15, "rk": 12}
    for m in PAPER_METHODS:
        full = readings.study_readings(m)
        assert len({r.name for r in full}) == len(full)                  # no reading twice
        assert DEFAULT in full and all(m in lv.methods for r in full for lv in r.levels)  # own levels only
        for r in full:
            for v in readings.row_variants(m, r).values():
                v.config()                                              # every row is a valid config
    scored = sum(len(readings.study_readings(m)) for m in PAPER_METHODS) * len(readings.STATISTICS) * 2
    assert scored >= 30 * 8
    # rows share configs where the reading does not touch them: entropy_small changes only the entropy row
    small = Reading.of("entropy_small")
    rows, base = readings.row_variants("pg", small), readings.row_variants("pg", DEFAULT)
    assert [s for s in rows if rows[s] != base[s]] == ["entropy"]
    assert rows["entropy"].config().algo.entropy_coef == pytest.approx(0.001)
    # the running-mean baseline is crossed with the raw weightings only (it cancels under standardisation)
    kinds = {(r.choice("weighting").name, r.choice("baseline_kind").name) for r in readings.study_readings("rk")}
    assert ("raw", "running_mean") in kinds and ("std", "running_mean") not in kinds
    assert len(readings.study_variants()) == len({v.name for v in readings.study_variants()})


def test_a_paper_pair_drawn_from_our_distribution_is_consistent_and_a_far_one_is_not():
    rng = np.random.default_rng(7)
    x = rng.normal(200.0, 30.0, 400)
    ok = readings.score_rows(x, 200.0, 30.0, 1, "case", n_resamples=2000)
    assert ok["consistent"] and ok["p"] > 0.2 and ok["n"] == 400 and ok["diverged"] == 0
    assert ok["rep_mean_low"] < 200 < ok["rep_mean_high"] and ok["rep_std_low"] < 30 < ok["rep_std_high"]
    # a 5-seed mean of 200 with an sd of 0.5 is each plausible-ish alone, jointly not
    tight = readings.score_rows(x, 200.0, 0.5, 1, "case", n_resamples=2000)
    far = readings.score_rows(x, 350.0, 30.0, 1, "case", n_resamples=2000)
    assert not tight["consistent"] and not far["consistent"] and far["p"] < 0.01
    # a std printed with ddof 0 is put on the ddof-1 scale exactly: the same test, the same draws
    sd0 = 30.0 * math.sqrt(4 / 5)
    same = readings.score_rows(x, 200.0, sd0, 0, "case", n_resamples=2000)
    assert same["p"] == ok["p"] and same["paper_std"] == sd0
    assert same["rep_std_low"] < ok["rep_std_low"]                      # the ddof-0 interval is lower
    # diverged runs are counted, not scored
    nan = readings.score_rows(np.r_[x[:10], np.nan, np.nan], 200.0, 30.0, 1, "case", n_resamples=500)
    assert (nan["n"], nan["diverged"]) == (10, 2)


def test_rank_orders_by_consistent_rows_then_fishers_statistic():
    def rows(reading, ps):
        return [{"set": "selection", "chosen": False, "method": "pg", "reading": reading, "statistic": "last",
                 "ddof": 1, "row": s, "p": p, "consistent": p >= 0.05} for s, p in zip("abcd", ps)]
    scores = pd.DataFrame(rows("two_good", [0.5, 0.5, 0.01, 0.01]) + rows("three_weak", [0.06, 0.06, 0.06, 1e-4])
                          + rows("two_better", [0.9, 0.9, 0.02, 0.02]) + rows("undefined", [1, 1, 1, np.nan]))
    r = readings.rank(scores)
    assert list(r["reading"]) == ["three_weak", "undefined", "two_better", "two_good"]
    assert list(r["rank"]) == [1, 2, 3, 4]
    assert r.loc[r["reading"] == "two_good", "fisher"].iloc[0] == pytest.approx(-2 * np.log([0.5, 0.5, 0.01, 0.01]).sum())
    assert math.isinf(r.loc[r["reading"] == "undefined", "fisher"].iloc[0])
    # "undefined": a NaN p is not consistent and makes the statistic infinite (ranked last among three)


def test_a_small_study_end_to_end(tmp_path):
    study = readings.run_study(methods=("pg",), selection_seeds=3, confirmation_seeds=3, episodes=4,
                               eval_episodes=2, n_boot=200, cache_dir=tmp_path / "cache", max_workers=1,
                               log=None)
    s = study.scores
    assert list(s.columns) == readings.COLUMNS
    assert set(s["set"]) == {"selection", "confirmation"}
    reading, statistic, ddof = study.best["pg"]
    top = study.ranking[(study.ranking["set"] == "selection") & (study.ranking["rank"] == 1)].iloc[0]
    assert (top["reading"], top["statistic"], top["ddof"]) == (reading.name, statistic, ddof)
    chosen = s[s["chosen"]]
    assert len(chosen) == 8 and set(chosen["set"]) == {"selection", "confirmation"}
    conf = s[s["set"] == "confirmation"]
    assert set(conf["reading"]) <= {reading.name, DEFAULT.name} and DEFAULT.name in set(conf["reading"])
    # the paper's numbers are the Table 1 pairs of the row
    first = s.iloc[0]
    assert (first["paper_mean"], first["paper_std"]) == PAPER_TABLE1[Variant("pg", () if first["row"] == "none"
                                                                              else (first["row"],)).name]
    # our runs' values are the statistic of the runs: rerunning from the cache gives the same table
    again = readings.run_study(methods=("pg",), selection_seeds=3, confirmation_seeds=3, episodes=4,
                               eval_episodes=2, n_boot=200, cache_dir=tmp_path / "cache", max_workers=1,
                               log=None)
    pd.testing.assert_frame_equal(study.scores, again.scores)
    found = readings_found(s)
    assert found["methods"]["pg"]["reading"] == reading.name and found["rows"] == 4
    assert found["confirmation"] == int(chosen[chosen["set"] == "confirmation"]["consistent"].sum())
    md = readings.readings_markdown(study)
    assert "## The confirmed best reading per method" in md and f"`{reading.name}`" in md
    paths = readings.write_outputs(study, tmp_path / "paper")
    back = pd.read_csv(paths["readings_csv"])
    assert len(back) == len(s) and list(back.columns) == readings.COLUMNS
    with pytest.raises(ValueError, match="must differ"):
        readings.run_study(methods=("pg",), selection_root_seed=5, confirmation_root_seed=5, log=None)
