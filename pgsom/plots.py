"""Figures of the artifact, in one style (rliable-like: open axes, light grid, CI bands).

Every plotting function takes ``ax=None`` (a new figure when None) and returns the axes.
Colours come from the Okabe-Ito colour-blind-safe palette and are fixed per method
(:data:`METHOD_COLORS`); stabilisers are told apart by line style / marker. Figures are saved
by :func:`save_figure`: PDF without a creation date and PNG at a fixed dpi, written atomically,
so the same inputs give the same bytes.

Figure 2 (:func:`figure2`): return against episode and against environment steps, mean over
seeds with a 95% Student-t band, thresholds 200 and 400 marked. Figure 3 (:func:`figure3`):
the final-episode return of every seed of every variant over its mean and 95% CI. Figure 4
(:func:`figure4`): the comparison family, A - B with its Welch CI per protocol. Figure 5
(:func:`figure5`): the readings study. Figure 6 (:func:`figure6`): learning curves on each of
the five benchmarks.
"""

from __future__ import annotations

import warnings

import io
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pgsom import stats
from pgsom.store import write_bytes_atomic

__all__ = [
    "figure5", "figure6",
    "OKABE_ITO", "METHOD_COLORS", "STABILISER_LINESTYLES", "STYLE", "DPI", "style",
    "variant_color", "variant_linestyle", "trailing_mean", "interp_on_grid", "learning_curves",
    "learning_curves_env_steps", "final_returns", "figure2", "figure3", "effects", "figure4",
    "PROTOCOL_COLORS", "save_figure", "FIGURE2B_RULE",
]

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
"""Okabe & Ito (2008) colour-blind-safe palette."""

METHOD_COLORS = {
    "pg": OKABE_ITO["blue"],
    "hessian": OKABE_ITO["vermillion"],
    "rk": OKABE_ITO["green"],
    "adam": OKABE_ITO["orange"],
    "npg": OKABE_ITO["purple"],
}
"""One colour per update rule, used by every figure."""

STABILISER_LINESTYLES = {
    "none": "-", "clip": "--", "entropy": ":", "baseline": "-.",
    "clip_same_lr": (0, (3, 1, 1, 1)), "lr2": (0, (5, 2)),
}
STABILISER_MARKERS = {"none": "o", "clip": "s", "entropy": "^", "baseline": "v",
                      "clip_same_lr": "D", "lr2": "P"}

FIGURE2B_RULE = (
    "Panel (b): each run's smoothed curve is interpolated on a common grid of environment "
    "steps. A method's mean and 95% band are drawn as a thick line with a band up to the step "
    "count that every one of its non-diverged runs reaches; beyond it, while at least half of "
    "those runs still have data, the mean of the runs that remain continues as a thin line "
    "without a band (it favours the runs that play long episodes, the good ones)."
)
"""What Figure 2(b) draws (:func:`learning_curves_env_steps` with ``min_coverage=0.5``): the
caption text of the notebook and the README state it word for word (a test checks)."""

THRESHOLD_COLOR = "#7F7F7F"
DPI = 150
"""PNG resolution (fixed: part of what makes the bytes reproducible)."""

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "pdf.fonttype": 42,
    "svg.hashsalt": "pgsom",
}
"""The one style of every figure (applied by :func:`style`)."""


@contextmanager
def style():
    """Context in which figures are made: :data:`STYLE` over the current rcParams.

    On exit only the keys of :data:`STYLE` are restored; nothing else is touched. In
    particular matplotlib's interactive mode is left as it is: ``plt.rc_context`` would restore
    ``interactive`` too, and a kernel's first figure (when the notebook backend switches
    interactive mode on) made inside it would leave interactive mode off, so that no later
    figure of the kernel is displayed.
    """
    saved = {key: matplotlib.rcParams[key] for key in STYLE}
    matplotlib.rcParams.update(STYLE)
    try:
        yield
    finally:
        matplotlib.rcParams.update(saved)


def _detach(fig: Figure) -> Figure:
    """``fig`` taken out of pyplot's figure list (``plt.close``) and returned: it is displayed
    exactly once, where a notebook cell returns it or calls ``display(fig)``, and not a
    second time by the inline backend at the end of the cell; saving still works."""
    plt.close(fig)
    return fig


def _parts(variant: str) -> tuple[str, str]:
    """(method, stabiliser) of the variant displayed as ``variant`` (a table lookup:
    :func:`pgsom.variants.lookup`); an unknown name draws in black, solid."""
    from pgsom.variants import lookup

    try:
        v = lookup(variant)
    except ValueError:
        return "", "none"
    return v.method, v.stabiliser


def variant_color(variant: str) -> str:
    """The colour of the variant's method (black for an unknown one)."""
    return METHOD_COLORS.get(_parts(variant)[0], OKABE_ITO["black"])


def variant_linestyle(variant: str):
    return STABILISER_LINESTYLES.get(_parts(variant)[1], "-")


def _label(variant: str) -> str:
    from pgsom.report import variant_label

    return variant_label(variant)


def _ax(ax: Axes | None, figsize=(5.5, 3.6)) -> Axes:
    if ax is not None:
        return ax
    with style():
        return plt.figure(figsize=figsize).add_subplot()


# --------------------------------------------------------------------------- curves


def trailing_mean(curves: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` episodes of each run (axis -1); the first
    ``window - 1`` episodes average what exists so far. A NaN in the window gives NaN."""
    r = np.asarray(curves, dtype=float)
    if window <= 1:
        return r.copy()
    c = np.cumsum(np.nan_to_num(r, nan=0.0), axis=-1)
    bad = np.cumsum(np.isnan(r), axis=-1)
    zero = np.zeros(r.shape[:-1] + (1,))
    c0, b0 = np.concatenate([zero, c], axis=-1), np.concatenate([zero, bad], axis=-1)
    k = np.arange(1, r.shape[-1] + 1)
    lo = np.maximum(k - window, 0)
    sums = c0[..., k] - c0[..., lo]
    nans = b0[..., k] - b0[..., lo]
    out = sums / (k - lo)
    return np.where(nans > 0, np.nan, out)


def interp_on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each run's curve ``y`` (runs, points) at increasing abscissae ``x`` interpolated
    linearly on ``grid``; NaN outside the run's finite range (no extrapolation)."""
    x, y = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(y, float))
    out = np.full((x.shape[0], len(grid)), np.nan)
    for i in range(x.shape[0]):
        ok = np.isfinite(x[i]) & np.isfinite(y[i])
        if not ok.any():
            continue
        xi, yi = x[i, ok], y[i, ok]
        inside = (grid >= xi[0]) & (grid <= xi[-1])
        out[i, inside] = np.interp(grid[inside], xi, yi)
    return out


def _band(ax: Axes, x, curves, label, color, linestyle, level) -> None:
    ci = stats.ci_t(curves, level)
    mean = np.asarray(ci.estimate, float)
    ax.plot(x, mean, color=color, linestyle=linestyle, label=label)
    ax.fill_between(x, np.asarray(ci.low, float), np.asarray(ci.high, float), color=color,
                    alpha=0.18, linewidth=0)


def _thresholds(ax: Axes, thresholds: Sequence[float]) -> None:
    for thr in thresholds:
        ax.axhline(thr, color=THRESHOLD_COLOR, linestyle=(0, (2, 2)), linewidth=0.9, zorder=1)
        ax.annotate(f"{thr:g}", xy=(1.0, thr), xycoords=("axes fraction", "data"),
                    xytext=(2, 0), textcoords="offset points", va="center", ha="left",
                    fontsize=7, color=THRESHOLD_COLOR)


def learning_curves(curves: Mapping[str, np.ndarray], ax: Axes | None = None, *,
                    smooth: int = 10, thresholds: Sequence[float] = (200, 400),
                    level: float = 0.95, legend: bool = True) -> Axes:
    """Return against training episode: for each variant, the mean over runs of the trailing
    mean of ``smooth`` episodes, with a ``level`` Student-t band over runs.

    ``curves``: variant -> array (runs, episodes).
    """
    ax = _ax(ax)
    with style():
        for variant, r in curves.items():
            r = trailing_mean(r, smooth)
            x = np.arange(1, r.shape[1] + 1)
            _band(ax, x, r, _label(variant), variant_color(variant), variant_linestyle(variant), level)
        _thresholds(ax, thresholds)
        ax.set_xlabel("training episode")
        ax.set_ylabel(f"return (trailing mean of {smooth} episodes)" if smooth > 1 else "return")
        if legend:
            ax.legend(loc="upper left")
    return ax


def learning_curves_env_steps(curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                              ax: Axes | None = None, *, smooth: int = 10,
                              thresholds: Sequence[float] = (200, 400), level: float = 0.95,
                              n_grid: int = 200, legend: bool = False,
                              min_coverage: float = 0.5) -> Axes:
    """Return against cumulative environment steps.

    ``curves``: variant -> (env_steps, returns), both (runs, episodes). Each run's smoothed
    curve is interpolated on a common grid of ``n_grid`` points (0 to the largest step count
    of any run). Runs spend their 500 episodes in very different numbers of steps (a policy
    that collapsed plays 10-step episodes), so a mean over the runs still "running" at a step
    count favours the good ones. The variant's mean and band are therefore drawn solid only
    where every run that did not diverge has data; beyond that the mean of the remaining runs
    continues as a thin line while at least ``min_coverage`` of them remain, without a band.
    :data:`FIGURE2B_RULE` states this rule for the figure's caption.
    """
    ax = _ax(ax)
    top = max(float(np.nanmax(s)) for s, _ in curves.values())
    grid = np.linspace(0.0, top, n_grid)
    with style():
        for variant, (steps, r) in curves.items():
            r = trailing_mean(r, smooth)
            on_grid = interp_on_grid(steps, r, grid)
            alive = np.isfinite(r[:, -1])
            need = on_grid[alive] if alive.any() else on_grid
            coverage = np.isfinite(need).mean(axis=0)
            full = on_grid.copy()
            full[:, coverage < 1] = np.nan
            color, linestyle = variant_color(variant), variant_linestyle(variant)
            _band(ax, grid, full, _label(variant), color, linestyle, level)
            partial = (coverage >= min_coverage) & (coverage < 1)
            if partial.any():
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    survivors = np.nanmean(need[:, partial], axis=0)
                ax.plot(grid[partial], survivors, color=color, linestyle=linestyle, linewidth=0.7,
                        alpha=0.6)
        _thresholds(ax, thresholds)
        ax.set_xlim(left=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"return (trailing mean of {smooth} episodes)" if smooth > 1 else "return")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))
        if legend:
            ax.legend(loc="upper left")
    return ax


# --------------------------------------------------------------------------- final returns


def final_returns(values: Mapping[str, np.ndarray], ax: Axes | None = None, *,
                  paper: Mapping[str, tuple[float, float]] | None = None,
                  level: float = 0.95, jitter: float = 0.22, legend: bool = True) -> Axes:
    """Every run's value as a point (deterministic jitter), over its variant's mean and
    ``level`` Student-t CI; ``paper`` (variant -> (mean, std)) adds the paper's mean +- std.

    ``values``: variant -> array (runs,), NaN for diverged runs (counted in the label).
    Variants run top to bottom in the given order.
    """
    ax = _ax(ax, figsize=(5.5, 0.32 * len(values) + 1.2))
    names = list(values)
    paper_labelled = False
    with style():
        for k, variant in enumerate(names):
            x = np.asarray(values[variant], float)
            y = -k
            color = variant_color(variant)
            ok = ~np.isnan(x)
            rng = np.random.default_rng(k)  # fixed jitter: same figure every time
            offsets = rng.uniform(-jitter, jitter, size=x.size)
            ax.scatter(x[ok], y + offsets[ok], s=11, color=color, alpha=0.5, linewidths=0,
                       zorder=2, label="one seed" if k == 0 else None)
            ci = stats.ci_t(x, level)
            if ok.sum() >= 1:
                err = None
                if np.isfinite(ci.low):
                    err = [[ci.estimate - ci.low], [ci.high - ci.estimate]]
                ax.errorbar([ci.estimate], [y], xerr=err, fmt="o", color=color, markersize=5,
                            markeredgecolor="black", markeredgewidth=0.6, capsize=3, zorder=3,
                            elinewidth=1.4, label=f"mean, {level:.0%} CI (t)" if k == 0 else None)
            if paper and variant in paper:
                pm, ps = paper[variant]
                ax.errorbar([pm], [y + 0.3], xerr=[[ps], [ps]], fmt="D", color="black",
                            markerfacecolor="white", markersize=4, capsize=2, elinewidth=0.8,
                            zorder=3, label=None if paper_labelled else "paper: mean ± std")
                paper_labelled = True
        labels = []
        for variant in names:
            n_nan = int(np.isnan(np.asarray(values[variant], float)).sum())
            labels.append(_label(variant) + (f" ({n_nan} diverged)" if n_nan else ""))
        ax.set_yticks([-k for k in range(len(names))], labels)
        ax.set_ylim(-len(names) + 0.4, 0.7)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("final-episode return")
        if legend:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, borderaxespad=0.2)
    return ax


# --------------------------------------------------------------------------- effects

PROTOCOL_COLORS = {"paper": OKABE_ITO["sky_blue"], "powered": OKABE_ITO["black"]}
"""Colour per protocol in the effect plot (Figure 4)."""


def effects(comparisons, ax: Axes | None = None, *, alpha: float = 0.05,
            legend: bool = True) -> Axes:
    """One row per comparison (A vs B, in the frame's order), one marker per protocol: the
    difference of mean final-episode returns ``diff`` with its CI (``diff_ci_low`` /
    ``diff_ci_high``); filled where ``p_holm`` < ``alpha``, hollow otherwise; 0 marked.

    ``comparisons``: the frame of :func:`pgsom.claims.comparison_family` (columns
    ``protocol``, ``a``, ``b``, ``diff``, ``diff_ci_low``, ``diff_ci_high``, ``p_holm``).
    A difference or bound that is not finite is not drawn (the row and its label stay).
    """
    pairs = list(dict.fromkeys(zip(comparisons["a"], comparisons["b"])))
    protocols = list(dict.fromkeys(comparisons["protocol"]))
    ax = _ax(ax, figsize=(6.0, 0.26 * max(len(pairs), 1) + 1.3))
    step = 0.5 / max(len(protocols), 1)
    labelled: set = set()
    with style():
        ax.axvline(0.0, color=THRESHOLD_COLOR, linewidth=0.9, zorder=1)
        for k, (a, b) in enumerate(pairs):
            for j, p in enumerate(protocols):
                r = comparisons[(comparisons["a"] == a) & (comparisons["b"] == b)
                                & (comparisons["protocol"] == p)]
                if r.empty:
                    continue
                r = r.iloc[0]
                y = -k + (j - (len(protocols) - 1) / 2) * step
                d, lo, hi = float(r["diff"]), float(r["diff_ci_low"]), float(r["diff_ci_high"])
                if not np.isfinite(d):
                    continue
                color = PROTOCOL_COLORS.get(p, OKABE_ITO["orange"])
                sig = np.isfinite(r["p_holm"]) and r["p_holm"] < alpha
                err = None
                if np.isfinite(lo) and np.isfinite(hi):
                    err = [[d - lo], [hi - d]]
                key = (p, bool(sig))
                label = None
                if key not in labelled:
                    labelled.add(key)
                    label = f"{p}: " + ("Holm p < " + f"{alpha:g}" if sig else "not significant")
                ax.errorbar([d], [y], xerr=err, fmt="o", color=color, markersize=4.5,
                            markerfacecolor=color if sig else "white", markeredgecolor=color,
                            capsize=2, elinewidth=1.1, zorder=3, label=label)
        ax.set_yticks([-k for k in range(len(pairs))], [f"{a} − {b}" for a, b in pairs])
        ax.set_ylim(-len(pairs) + 0.4, 0.6)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("difference in mean final-episode return (A − B), 95% Welch CI")
        if legend and labelled:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, borderaxespad=0.2)
    return ax


def figure4(comparisons, *, alpha: float = 0.05, title: str | None = None) -> Figure:
    """Figure 4: the comparison family as an effect plot (see :func:`effects`).

    Like :func:`figure2` and :func:`figure3` the figure is closed in pyplot before it is
    returned: a notebook cell shows it by ending with it (or ``display(fig)``)."""
    n = len(dict.fromkeys(zip(comparisons["a"], comparisons["b"])))
    with style():
        fig, ax = plt.subplots(figsize=(7.0, 0.27 * max(n, 1) + 1.6), layout="constrained")
        effects(comparisons, ax, alpha=alpha)
        if title:
            fig.suptitle(title)
    return _detach(fig)


# --------------------------------------------------------------------------- figures


def figure2(by_episode: Mapping[str, np.ndarray],
            by_env_steps: Mapping[str, tuple[np.ndarray, np.ndarray]], *, smooth: int = 10,
            thresholds: Sequence[float] = (200, 400), level: float = 0.95,
            title: str | None = None) -> Figure:
    """Figure 2: (a) return vs episode, (b) return vs environment steps (see
    :func:`learning_curves_env_steps` for what (b) draws: :data:`FIGURE2B_RULE`).

    The figure is closed in pyplot before it is returned (not shown twice, not leaked): a
    notebook cell shows it by ending with it (or ``display(fig)``); :func:`save_figure` saves it."""
    with style():
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
        learning_curves(by_episode, a, smooth=smooth, thresholds=thresholds, level=level)
        learning_curves_env_steps(by_env_steps, b, smooth=smooth, thresholds=thresholds, level=level)
        b.set_ylabel("")  # shared with (a)
        a.set_title("(a) return vs training episode", loc="left")
        b.set_title("(b) return vs environment steps", loc="left")
        if title:
            fig.suptitle(title)
    return _detach(fig)


def figure3(values: Mapping[str, Mapping[str, np.ndarray]], *,
            paper: Mapping[str, tuple[float, float]] | None = None, level: float = 0.95,
            titles: Mapping[str, str] | None = None) -> Figure:
    """Figure 3: one panel per protocol (``values``: protocol -> variant -> runs), with one
    legend below the panels. Default titles: ``<protocol> protocol (<n> seeds)``. Closed in
    pyplot before it is returned (shown where a cell ends with it, see :func:`figure2`)."""
    n_var = max(len(v) for v in values.values())
    with style():
        fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 0.3 * n_var + 1.8),
                                 sharey=True, layout="constrained", squeeze=False)
        for ax, (protocol, vals) in zip(axes[0], values.items()):
            final_returns(vals, ax, paper=paper, level=level, legend=False)
            n = max((len(np.asarray(x)) for x in vals.values()), default=0)
            ax.set_title((titles or {}).get(protocol, f"{protocol} protocol ({n} seeds)"), loc="left")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    return _detach(fig)


def figure5(table, *, titles: Sequence[str] = ("(a) mean of the 5 seeds", "(b) std of the 5 seeds"),
            title: str | None = None) -> Figure:
    """Figure 5, the readings study: Table 1's cells (``table``: one row per variant, the frame
    of :meth:`pgsom.readings.Study.table1`), the mean in (a) and the std in (b). Per cell: the
    paper's number (black diamond); for our default reading and for the reading chosen per
    method, the value over all our runs (point) and the 95% replication interval of what 5 of
    our runs would print (bar, the ``rep_*`` columns). A paper's number outside a bar is one
    that reading would rarely print. Closed in pyplot before it is returned."""
    names = list(table["variant"])
    y = np.arange(len(names))[::-1]
    series = (("default", "our default reading", OKABE_ITO["blue"], "o", -0.15),
              ("best", "chosen reading (per method)", OKABE_ITO["orange"], "s", 0.15))
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 0.32 * len(names) + 1.9), sharey=True,
                                 layout="constrained")
        for ax, stat, text in zip(axes, ("mean", "std"), titles):
            for tag, label, color, marker, dy in series:
                lo, hi = table[f"{tag}_rep_{stat}_low"].to_numpy(float), table[f"{tag}_rep_{stat}_high"].to_numpy(float)
                ax.hlines(y + dy, lo, hi, color=color, linewidth=2.2, alpha=0.8)
                ax.plot(table[f"{tag}_{stat}"].to_numpy(float), y + dy, marker, color=color, markersize=4,
                        linestyle="none", label=f"{label}: our runs, and where 5 of them land (95%)")
            ax.plot(table[f"paper_{stat}"].to_numpy(float), y, "D", color=OKABE_ITO["black"], markersize=5,
                    linestyle="none", label="paper's Table 1")
            ax.set_title(text, loc="left")
            ax.set_xlabel("final return" if stat == "mean" else "std across seeds")
        axes[0].set_yticks(y, [_label(n) for n in names])
        if title:
            fig.suptitle(title, x=0.01, ha="left")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=3)
    return _detach(fig)


def figure6(panels: Mapping[str, tuple[Mapping[str, np.ndarray], Sequence[float]]], *,
            smooth: int = 10, level: float = 0.95, title: str | None = None,
            ncols: int = 3) -> Figure:
    """Figure 6, the benchmarks: one panel per benchmark (``panels``: env id -> (variant ->
    returns (runs, episodes), the benchmark's thresholds)), the learning curves of
    :func:`learning_curves` (trailing mean of ``smooth`` episodes, mean over runs and its
    ``level`` Student-t band), the thresholds dashed; one legend for all. Closed in pyplot
    before it is returned."""
    n = len(panels)
    rows = max(1, -(-n // ncols))
    with style():
        fig, axes = plt.subplots(rows, ncols, figsize=(4.0 * ncols, 3.1 * rows), layout="constrained",
                                 squeeze=False)
        flat = list(axes.ravel())
        for ax, (env, (curves, thresholds)) in zip(flat, panels.items()):
            learning_curves(curves, ax, smooth=smooth, thresholds=thresholds, level=level, legend=False)
            ax.set_title(env, loc="left")
            ax.set_ylabel("return" if smooth <= 1 else f"return (mean of {smooth})")
        for ax in flat[n:]:
            ax.axis("off")
        if title:
            fig.suptitle(title, x=0.01, ha="left")
        if n:
            handles, labels = flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncol=min(6, len(labels)))
    return _detach(fig)


def save_figure(fig: Figure, stem: str | Path, *, dpi: int = DPI,
                formats: Sequence[str] = ("pdf", "png")) -> list[Path]:
    """Save ``fig`` as ``stem.pdf`` / ``stem.png`` atomically and deterministically:
    PDF without CreationDate (fixed Producer), PNG at ``dpi`` with fixed metadata."""
    meta = {
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": "pgsom (matplotlib)"},
        "png": {"Software": "pgsom (matplotlib)"},
        "svg": {"Date": None},
    }
    paths = []
    stem = Path(stem)
    for fmt in formats:
        buf = io.BytesIO()
        with style():
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta.get(fmt), facecolor="white")
        paths.append(write_bytes_atomic(stem.with_name(f"{stem.name}.{fmt}"), buf.getvalue()))
    return paths
