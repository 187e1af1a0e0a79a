"""pgsom.bench's report: the ratios it prints are computed from the timings of one run."""

from __future__ import annotations

from pgsom import bench


def _report(reproduce):
    return bench.BenchReport(
        bench.SequentialTiming(2, 500, 40.0, 210.0), bench.TrainTiming(100, 500, 8.0),
        [bench.SweepRow("pg", 100, 500, 16.0, 6_000_000, 4.0, 6_100_000)], "83d5a80", 2, reproduce)


def test_ratios_are_computed_from_the_timings():
    rep = _report([])
    assert rep.run_ratio == (100 / 8.0) / (2 / 40.0)
    row = rep.sweeps[0]
    assert row.ratio == (6_100_000 / 4.0) / (6_000_000 / 16.0)
    text = bench.format_markdown(rep)
    assert f"**{rep.run_ratio:.3g}x**" in text and f"**{row.ratio:.1f}x**" in text
    assert "Cold `make reproduce`" not in text


def test_both_reproduce_scopes_are_reported():
    text = bench.format_markdown(_report([bench.ReproduceTiming(110.0, 0.8, "issue10", 1.5),
                                          bench.ReproduceTiming(170.0, 0.9, "full", 1.75)]))
    assert "as it stood when the speed issue was filed" in text and ": 110 s" in text
    assert "as it stands" in text and ": 170 s" in text
    assert "0.80 GB in one process, 1.50 GB in all its processes together" in text
    assert "0.90 GB in one process, 1.75 GB" in text
    assert "protocols=" in " ".join(bench.ISSUE10_SCOPE) and "n_mc_ascent=2000" in bench.ISSUE10_SCOPE
    assert "readings" not in bench.ISSUE10_SCOPE and "statistics" in bench.ISSUE10_SCOPE  # the notebooks of then
