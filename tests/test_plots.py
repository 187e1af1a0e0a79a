"""Tests for pgsom.plots: axes returned, fixed palette, curve helpers, deterministic files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from pgsom import plots  # noqa: E402


def _curves(seed: int, n: int = 4, episodes: int = 30):
    rng = np.random.default_rng(seed)
    returns = np.cumsum(rng.integers(0, 20, size=(n, episodes)), axis=1).astype(float) + 10
    steps = np.cumsum(returns, axis=1)
    return returns, steps


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_palette_is_okabe_ito_and_fixed_per_method():
    assert set(plots.METHOD_COLORS.values()) <= set(plots.OKABE_ITO.values())
    assert len(set(plots.METHOD_COLORS.values())) == len(plots.METHOD_COLORS)
    assert plots.variant_color("rk+clip") == plots.variant_color("rk") == plots.OKABE_ITO["green"]
    assert plots.variant_linestyle("rk+clip") != plots.variant_linestyle("rk")


def test_trailing_mean_by_hand():
    r = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    np.testing.assert_allclose(plots.trailing_mean(r, 3), [[1.0, 1.5, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(plots.trailing_mean(r, 1), r)
    with_nan = np.array([[1.0, 2.0, np.nan, np.nan]])
    out = plots.trailing_mean(with_nan, 2)
    assert out[0, 1] == 1.5 and np.isnan(out[0, 2:]).all()


def test_interp_on_grid_never_extrapolates():
    x = np.array([[10.0, 20.0, 30.0], [5.0, 10.0, np.nan]])
    y = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, np.nan]])
    out = plots.interp_on_grid(x, y, np.array([0.0, 10.0, 15.0, 30.0, 40.0]))
    np.testing.assert_allclose(out[0], [np.nan, 1.0, 1.5, 3.0, np.nan])
    np.testing.assert_allclose(out[1], [np.nan, 1.0, np.nan, np.nan, np.nan])


def test_plot_functions_return_axes():
    r1, s1 = _curves(1)
    r2, s2 = _curves(2)
    ax = plots.learning_curves({"pg": r1, "rk": r2})
    assert isinstance(ax, Axes)
    assert [to_hex(line.get_color()).upper() for line in ax.get_lines()[:2]] == [
        plots.METHOD_COLORS["pg"], plots.METHOD_COLORS["rk"]]
    assert {line.get_ydata()[0] for line in ax.get_lines()[2:]} == {200, 400}  # thresholds
    fig, (a, b, c) = plt.subplots(1, 3)
    assert plots.learning_curves({"pg": r1}, ax=a) is a
    assert plots.learning_curves_env_steps({"pg": (s1, r1), "rk": (s2, r2)}, ax=b) is b
    assert plots.final_returns({"pg": r1[:, -1], "rk": r2[:, -1]}, ax=c, paper={"pg": (202.7, 24.0)}) is c
    assert isinstance(plots.final_returns({"pg": r1[:, -1]}), Axes)
    assert isinstance(plots.learning_curves_env_steps({"pg": (s1, r1)}), Axes)


def test_env_step_curve_stops_at_the_shortest_run():
    r = np.full((2, 5), 100.0)
    steps = np.array([[10, 20, 30, 40, 50], [10, 20, 30, 40, 200]], dtype=float)
    ax = plots.learning_curves_env_steps({"pg": (steps, r)}, smooth=1, n_grid=21)
    line = ax.get_lines()[0]
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), float)
    assert np.all(np.isnan(y[x > 50])) and np.all(y[(x >= 10) & (x <= 50)] == 100.0)


def test_final_returns_points_and_diverged_label():
    vals = {"hessian": np.array([1.0, 2.0, np.nan]), "npg": np.array([5.0, 6.0, 7.0])}
    ax = plots.final_returns(vals)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Hessian Policy Gradient (1 diverged)", "Natural PG"]
    offsets = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) >= 2]
    assert sorted(len(o) for o in offsets)[:2] == [2, 3]  # every finite seed drawn


def _figures(tmp, stem):
    r1, s1 = _curves(1)
    r2, s2 = _curves(2)
    fig2 = plots.figure2({"pg": r1, "hessian": r2}, {"pg": (s1, r1), "hessian": (s2, r2)}, smooth=5)
    p2 = plots.save_figure(fig2, tmp / f"{stem}_fig2")
    fig3 = plots.figure3({"paper": {"pg": r1[:, -1], "hessian": r2[:, -1]},
                          "powered": {"pg": r2[:, -1], "hessian": r1[:, -1]}},
                         paper={"pg": (202.7, 23.99)})
    p3 = plots.save_figure(fig3, tmp / f"{stem}_fig3")
    plt.close("all")
    return p2 + p3


def test_save_figure_is_deterministic(tmp_path):
    a = _figures(tmp_path / "a", "x")
    b = _figures(tmp_path / "b", "x")
    assert [p.suffix for p in a] == [".pdf", ".png", ".pdf", ".png"]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    pdf = a[0].read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    assert a[1].read_bytes().startswith(b"\x89PNG")
    assert not list((tmp_path / "a").glob(".*"))  # no temp files left behind


def _comparisons():
    import pandas as pd

    rows = []
    for p, shift in (("paper", 0.0), ("powered", 5.0)):
        rows += [
            {"protocol": p, "a": "pg+clip", "b": "pg", "diff": 40.0 + shift, "diff_ci_low": 10.0,
             "diff_ci_high": 70.0, "p_holm": 0.01},
            {"protocol": p, "a": "hessian", "b": "adam", "diff": -5.0, "diff_ci_low": -60.0,
             "diff_ci_high": 50.0, "p_holm": 0.8},
            {"protocol": p, "a": "rk", "b": "pg+clip", "diff": 0.0, "diff_ci_low": float("nan"),
             "diff_ci_high": float("nan"), "p_holm": float("nan")},   # 2 runs, both capped
        ]
    return pd.DataFrame(rows)


def test_effects_one_row_per_comparison_filled_when_significant(tmp_path):
    cmp = _comparisons()
    ax = plots.effects(cmp)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["pg+clip − pg", "hessian − adam", "rk − pg+clip"]
    lines = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(lines) == 6                                   # 3 comparisons x 2 protocols
    filled = [to_hex(line.get_markerfacecolor()) != "#ffffff" for line in lines]
    assert filled == [True, True, False, False, False, False]
    xs = sorted(float(line.get_xdata()[0]) for line in lines)
    assert xs == [-5.0, -5.0, 0.0, 0.0, 40.0, 45.0]
    fig_a = plots.figure4(cmp, title="t")
    fig_b = plots.figure4(cmp, title="t")
    a = plots.save_figure(fig_a, tmp_path / "a" / "fig4")
    b = plots.save_figure(fig_b, tmp_path / "b" / "fig4")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_style_leaves_interactive_mode_and_other_rcparams_alone():
    # plt.rc_context would restore "interactive" on exit: a notebook backend that switches it on
    # while the kernel's first figure is made inside the style would leave it off for good
    for state in (True, False):
        matplotlib.interactive(state)
        with plots.style():
            matplotlib.interactive(not state)  # what the notebook backend does on first use
            assert matplotlib.rcParams["font.size"] == plots.STYLE["font.size"]
        assert matplotlib.is_interactive() is (not state)
    matplotlib.interactive(False)
    before = matplotlib.rcParams["font.size"]
    with plots.style():
        matplotlib.rcParams["lines.markersize"] = 17.0  # not a style key: kept
    assert matplotlib.rcParams["font.size"] == before and matplotlib.rcParams["lines.markersize"] == 17.0
    matplotlib.rcdefaults()


def test_figures_are_returned_detached_from_pyplot():
    # a notebook cell ends with the figure: the inline backend must not show it a second time
    r, s = _curves(3)
    plt.close("all")
    figs = [plots.figure2({"pg": r}, {"pg": (s, r)}), plots.figure3({"paper": {"pg": r[:, -1]}})]
    assert plt.get_fignums() == []
    for fig in figs:
        buf = __import__("io").BytesIO()
        fig.savefig(buf, format="png")  # still drawable and savable after the close
        assert fig.axes and buf.getvalue().startswith(b"\x89PNG")


def test_figure2b_rule_is_what_is_drawn_and_stated_in_the_captions():
    # two runs, one much longer in steps: thick mean + band up to the shorter run's last step,
    # then a thin line of the longer run's curve (coverage 1/2 >= min_coverage), no band
    r = np.full((2, 5), 100.0)
    r[1] = 300.0
    steps = np.array([[10, 20, 30, 40, 50], [10, 20, 30, 40, 200]], dtype=float)
    ax = plots.learning_curves_env_steps({"pg": (steps, r)}, smooth=1, n_grid=21)
    thick, thin = ax.get_lines()[0], ax.get_lines()[1]
    assert thin.get_linewidth() < thick.get_linewidth()
    x, y = np.asarray(thin.get_xdata()), np.asarray(thin.get_ydata(), float)
    assert x.min() > 50 and np.all(y == 300.0)  # only the remaining run, beyond the shorter one
    bands = [c for c in ax.collections if c.get_paths()]
    assert len(bands) == 1 and bands[0].get_paths()[0].vertices[:, 0].max() <= 50 + 1e-9
    ax3 = plots.learning_curves_env_steps({"pg": (steps, r)}, smooth=1, n_grid=21, min_coverage=0.6)
    assert len(ax3.get_lines()) == 1 + 2  # no thin line under 60% coverage (+2 thresholds)
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parent.parent
    nb = nbformat.read(root / "notebooks" / "main_results.ipynb", as_version=4)
    caption = next(c.source for c in nb.cells if c.cell_type == "markdown" and "**Figure 2.**" in c.source)
    assert plots.FIGURE2B_RULE in caption
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    assert plots.FIGURE2B_RULE in readme
