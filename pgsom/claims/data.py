"""What every part of the claims report reads from the tidy data, and its rng per row.

``finals``: one row per run (columns ``protocol``, ``variant``, ``seed``, ``final_return``,
``episodes_to_<threshold>``, ...); ``curves``: one row per run and episode (``return``), as
:func:`pgsom.experiments.load_experiment` gives them.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

__all__ = ["row_rng", "values", "has", "curve_matrix", "censored", "sign", "finite", "with_pooled", "once"]

_ONCE: dict = {}


def row_rng(seed: int, key: str) -> np.random.Generator:
    """An rng per (seed, row key): results do not depend on the order rows are computed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(key.encode()),)))


def values(finals: pd.DataFrame, protocol: str, variant: str, column: str = "final_return") -> np.ndarray | None:
    """``column`` of the runs of ``variant`` in ``protocol``, by seed; None if none was run."""
    g = finals[(finals["protocol"] == protocol) & (finals["variant"] == variant)]
    if g.empty:
        return None
    return g.sort_values("seed")[column].to_numpy(float)


def has(finals: pd.DataFrame, protocol: str, *variants: str) -> bool:
    """Whether every one of ``variants`` was run in ``protocol``."""
    sub = finals[finals["protocol"] == protocol]
    return all((sub["variant"] == v).any() for v in variants)


def curve_matrix(curves: pd.DataFrame, protocol: str, variant: str) -> np.ndarray | None:
    """Returns of ``variant`` in ``protocol`` as (runs by seed, episodes); None if not run."""
    g = curves[(curves["protocol"] == protocol) & (curves["variant"] == variant)]
    if g.empty:
        return None
    return g.pivot(index="seed", columns="episode", values="return").sort_index().to_numpy(float)


def censored(finals: pd.DataFrame, p: str, v: str, thr: int,
             column: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Episodes to reach ``thr`` of ``v``'s runs in ``p`` (column ``episodes_to_<thr>``, or
    ``column``) and whether each run reached it (NaN episodes: censored at the budget); None if
    not run."""
    e = values(finals, p, v, column or f"episodes_to_{thr}")
    if e is None:
        return None
    return e, ~np.isnan(e)


def sign(x: float) -> float:
    """The sign of ``x``; 0 for None or a non-finite value."""
    return float(np.sign(x)) if x is not None and np.isfinite(x) else 0.0


def finite(x) -> bool:
    """Whether ``x`` is a finite real number (not None, NaN or infinite)."""
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and bool(np.isfinite(x))


def with_pooled(frame: pd.DataFrame, parts: tuple[str, str] = ("powered", "replication"),
                name: str = "pooled") -> pd.DataFrame:
    """``frame`` (finals or curves) with one more protocol, ``name``: the rows of both
    ``parts`` together, the second part's seeds renumbered after the first's (seed ``i`` of
    the second becomes ``n_first + i``), so seeds stay unique and seed ``k`` of two variants
    is still one shared seed (common random numbers). Unchanged when a part is missing."""
    present = set(frame["protocol"])
    if not set(parts) <= present or name in present:
        return frame
    a = frame[frame["protocol"] == parts[0]]
    b = frame[frame["protocol"] == parts[1]].copy()
    b["seed"] = b["seed"] + int(a["seed"].max()) + 1
    pooled = pd.concat([a, b], ignore_index=True)
    pooled["protocol"] = name
    return pd.concat([frame, pooled], ignore_index=True)


def once(key: tuple, compute):
    """``compute()`` the first time ``key`` is seen in this process, the same object after:
    one bootstrap per quantity, whichever output asks for it first. ``key`` must hold
    everything the value depends on (the data's bytes, the seed, the resamples)."""
    if key not in _ONCE:
        if len(_ONCE) > 100_000:  # a long-lived process: forget, never grow without bound
            _ONCE.clear()
        _ONCE[key] = compute()
    return _ONCE[key]
