"""pgsom.bench's report: the ratios it prints are computed from the timings of one run."""

from __future__ import annotations

import pytest

from pgsom import bench


def _report(reproduce):
    return bench.BenchReport(
        bench.SequentialTiming(2, 500, 40.0, 210.0), bench.TrainTiming(100, 500, (9.0, 8.0, 30.0)),
        [bench.SweepRow("pg", 100, 500, (16.0, 20.0, 15.0), 6_000_000, (4.0, 2.0, 6.0), 6_100_000)], "83d5a80", 2,
        reproduce)


def test_ratios_are_computed_from_the_median_timings():
    rep = _report([])
    assert rep.run_ratio == (100 / 9.0) / (2 / 40.0)  # the median train time: an outlier (30 s) does not move it
    row = rep.sweeps[0]
    assert row.ratio == (6_100_000 / 4.0) / (6_000_000 / 16.0)  # the medians of either side
    assert row.pair_ratios == ((6_100_000 / 4.0) / (6_000_000 / 16.0), (6_100_000 / 2.0) / (6_000_000 / 20.0),
                               (6_100_000 / 6.0) / (6_000_000 / 15.0))
    text = bench.format_markdown(rep)
    assert f"**{rep.run_ratio:.3g}x**" in text and f"**{row.ratio:.1f}x**" in text
    assert "4.1x, 10.2x, 2.5x" in text and "9.0 s (median of 9.0, 8.0, 30.0)" in text
    assert "Cold `make reproduce`" not in text


def test_bad_repeats_are_refused_before_anything_runs():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="repeats must be a positive integer"):
            bench.run_bench(repeats=bad, log=lambda m: pytest.fail("ran"))


def test_both_reproduce_scopes_are_reported():
    text = bench.format_markdown(_report([bench.ReproduceTiming((110.0, 130.0, 100.0), 0.8, "issue10", 1.5),
                                          bench.ReproduceTiming((170.0,), 0.9, "full", 1.75, 40, ("paper/x.csv",))]))
    assert "as it stood when the speed issue was filed" in text and ": 110 s, the median of 3 cold runs (110, 130, 100 s)" in text
    assert "as it stands" in text and ": 170 s;" in text
    assert "40 files byte-identical, 1 differ: `paper/x.csv`" in text
    assert "0.80 GB in one process, 1.50 GB in all its processes together" in text
    assert "0.90 GB in one process, 1.75 GB" in text
    assert "protocols=" in " ".join(bench.ISSUE10_SCOPE) and "n_mc_ascent=2000" in bench.ISSUE10_SCOPE
    assert "readings" not in bench.ISSUE10_SCOPE and "statistics" in bench.ISSUE10_SCOPE  # the notebooks of then
