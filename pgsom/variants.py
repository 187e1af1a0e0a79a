"""Variants: one of the paper's methods, the stabilisers on it, and the reading of the paper it follows.

A :class:`Variant` is structured data, not a name: ``Variant("rk", ("clip",))`` is Table 1's
"Runge–Kutta + clip", ``Variant("rk", reading=REUSE)`` is RK as the paper plausibly ran it.
Its :attr:`~Variant.name` (``rk+clip``, ``rk@reuse``) is for display and for the paper's own
tables (:data:`pgsom.paper.PAPER_TABLE1` is keyed by it); nothing parses a name. Code that
needs the parts reads them from the object, or from the ``method``, ``stabiliser`` and
``reading`` columns of the tidy frames (:meth:`Variant.columns`); :func:`lookup` maps a
name given by a user (a notebook parameter) back to its variant through a table of the known
variants.

* A *stabiliser* is a Table 1 row: ``clip`` (gradient norm clipped at 50 with the learning
  rate doubled, paper 4.1), ``entropy`` (beta_H = 0.01), ``baseline`` (a baseline of past
  returns), and the two halves of ``clip`` that split claim C10: ``clip_same_lr`` (clipping
  at the base rate) and ``lr2`` (the doubled rate alone). :data:`STABILISER_CHANGES`.
* A *reading* (:class:`Reading`) is a set of choices the paper leaves open, each a
  :class:`Level` of a factor (:data:`LEVELS`). A level applies to some methods (a reading may
  touch several methods, and each variant takes the levels of its own method only) and, for
  levels that refine a stabiliser (the entropy coefficient, the kind of baseline), to the
  rows that carry it. The default reading, :data:`DEFAULT`, is the artifact's defensible
  version; :data:`REUSE` (RK re-scores the first episode at its probe point) and
  :data:`SURROGATE` (PG-SOM's surrogate-only Hessian, AdaHessian's) are the versions the
  paper plausibly ran, trained beside the defaults in every protocol. The readings study
  (:mod:`pgsom.readings`) searches many more.

The paper's own constants (lr 0.002, clip 50 with the rate doubled, beta_H = 0.01) live in
:mod:`pgsom.paper`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pgsom.config import METHODS, PAPER_METHODS, RunConfig
from pgsom.paper import PAPER_CLIP_LR_SCALE, PAPER_CLIP_NORM, PAPER_ENTROPY_COEF

__all__ = [
    "STABILISERS", "PAPER_STABILISERS", "STABILISER_CHANGES", "Level", "LEVELS", "level",
    "Reading", "DEFAULT", "REUSE", "SURROGATE", "Variant", "variant", "table1_variants",
    "main_variants", "lookup", "METHOD_LABELS", "STABILISER_LABELS",
]

STABILISER_CHANGES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "clip": MappingProxyType({"clip_norm": PAPER_CLIP_NORM, "lr_scale": PAPER_CLIP_LR_SCALE}),
    "entropy": MappingProxyType({"entropy_coef": PAPER_ENTROPY_COEF}),
    "baseline": MappingProxyType({"baseline": True}),
    "clip_same_lr": MappingProxyType({"clip_norm": PAPER_CLIP_NORM}),
    "lr2": MappingProxyType({"lr_scale": PAPER_CLIP_LR_SCALE}),
})
"""The config changes of each stabiliser (applied before the reading's)."""

STABILISERS: tuple[str, ...] = tuple(STABILISER_CHANGES)
"""Stabiliser names, in Table 1 order then the two halves of ``clip``."""

PAPER_STABILISERS = ("none", "clip", "entropy", "baseline")
"""Table 1's four rows per method (``none``: no stabiliser)."""

METHOD_LABELS = {
    "pg": "Policy Gradient",
    "hessian": "Hessian Policy Gradient",
    "rk": "Runge–Kutta",
    "adam": "Adam",
    "npg": "Natural PG",
}
"""Display names; the paper's three are its own Table 1 names."""

STABILISER_LABELS = {
    "clip": "clip",
    "entropy": "entropy",
    "baseline": "baseline",
    "clip_same_lr": "clip at base lr",
    "lr2": "doubled lr",
}


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Level:
    """One choice of a factor the paper leaves open: its config changes and where it applies."""

    factor: str
    """The factor, e.g. ``rk_stage``."""
    name: str
    """The level, e.g. ``reuse``; unique among all levels (it names the level in readings)."""
    label: str
    """What it means, for tables and figures."""
    changes: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """:meth:`pgsom.config.RunConfig.replace` arguments; empty for a factor's default level
    (not compared: a level is identified by its unique name, so levels and readings hash)."""
    methods: tuple[str, ...] = METHODS
    """The methods it applies to; a variant of another method ignores it."""
    rows: tuple[str, ...] | None = None
    """The stabilisers whose rows it refines (``None``: every row)."""
    source: str = ""
    """Whose choice it is (ours, the paper's likely one, pytorch/examples' ...)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "changes", _frozen(self.changes))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"Level {self.name!r}: methods {unknown} not in {METHODS}")

    @property
    def is_default(self) -> bool:
        return not self.changes

    def applies(self, method: str, stabilisers: tuple[str, ...]) -> bool:
        """Whether a variant of ``method`` with ``stabilisers`` takes this level's changes."""
        return method in self.methods and (self.rows is None or any(s in self.rows for s in stabilisers))


_ALL = METHODS
LEVELS: tuple[Level, ...] = (
    # how the return weights the score (every method)
    Level("weighting", "std", "standardised reward-to-go, gamma 0.99, population std", {},
          source="ours (pytorch/examples' weighting)"),
    Level("weighting", "std_sample", "standardised reward-to-go, sample std (torch's std())",
          {"std_ddof": 1}, source="pytorch/examples' reinforce.py"),
    Level("weighting", "std_undiscounted", "standardised reward-to-go, gamma 1",
          {"gamma": 1.0}, source="the undiscounted J of the paper's lemmas"),
    Level("weighting", "raw", "raw reward-to-go, gamma 0.99", {"standardize": False},
          source="REINFORCE without normalisation"),
    Level("weighting", "raw_total", "raw total return R(tau) at every step",
          {"standardize": False, "returns": "total"}, source="the paper's lemmas"),
    # the optimiser behind "Policy Gradient"
    Level("optimiser", "sgd", "plain SGD ascent", {}, methods=("pg",), source="ours"),
    Level("optimiser", "adam_opt", "Adam at the same rate (torch.optim.Adam)", {"method": "adam"},
          methods=("pg",), source="pytorch/examples' reinforce.py"),
    # PG-SOM
    Level("hessian_terms", "full", "full diagonal Hessian g*S + surrogate", {}, methods=("hessian",),
          source="ours (Lemma 3.1, unbiased)"),
    Level("hessian_terms", "surrogate", "surrogate-only Hessian (AdaHessian on the REINFORCE loss)",
          {"hessian_terms": "surrogate"}, methods=("hessian",), source="the paper's likely one"),
    Level("hessian_estimator", "exact", "exact diagonal", {}, methods=("hessian",), source="ours"),
    Level("hessian_estimator", "hutchinson", "one Hutchinson (Rademacher) probe",
          {"hessian_estimator": "hutchinson"}, methods=("hessian",), source="AdaHessian proper"),
    Level("second_moment", "square", "v tracks h^2, step m/(sqrt v + eps)", {}, methods=("hessian",),
          source="ours (AdaHessian)"),
    Level("second_moment", "abs", "v tracks |h|, step m/(v + eps)", {"second_moment": "abs"},
          methods=("hessian",), source="a Newton-like reading"),
    Level("second_moment", "signed", "v the signed EMA of h, step m/(|v| + eps)",
          {"second_moment": "signed"}, methods=("hessian",), source="'second-order momentum' unsquared"),
    # RK
    Level("rk_rule", "heun", "Heun's RK2", {}, methods=("rk",), source="ours"),
    Level("rk_rule", "midpoint", "RK2 midpoint rule", {"rk_rule": "midpoint"}, methods=("rk",),
          source="the other common RK2"),
    Level("rk_stage", "fresh", "second stage on fresh episodes", {}, methods=("rk",),
          source="ours (unbiased)"),
    Level("rk_stage", "reuse", "second stage re-scores the first episode", {"rk_stage": "reuse"},
          methods=("rk",), source="the paper's likely one"),
    # refinements of two stabilisers
    Level("baseline_kind", "time_ema", "time-indexed EMA of past reward-to-go", {}, rows=("baseline",),
          source="ours"),
    Level("baseline_kind", "running_mean", "running mean of past episode returns",
          {"baseline_kind": "running_mean"}, rows=("baseline",), source="the textbook constant baseline"),
    Level("entropy_coef", "entropy_paper", "entropy coefficient 0.01", {}, rows=("entropy",),
          source="the paper (4.1)"),
    Level("entropy_coef", "entropy_small", "entropy coefficient 0.001",
          {"entropy_coef": PAPER_ENTROPY_COEF / 10}, rows=("entropy",), source="a common smaller choice"),
)
"""Every level of every factor; a factor's first level is its default (no changes)."""

_BY_NAME = {lv.name: lv for lv in LEVELS}
assert len(_BY_NAME) == len(LEVELS), "level names must be unique"
FACTORS: dict[str, tuple[Level, ...]] = {}
for _lv in LEVELS:
    FACTORS.setdefault(_lv.factor, ())
    FACTORS[_lv.factor] += (_lv,)
assert all(levels[0].is_default and not any(lv.is_default for lv in levels[1:])
           for levels in FACTORS.values()), "a factor's first level, and only it, is its default"


def level(name: str) -> Level:
    """The level named ``name``; ValueError listing the levels otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown level {name!r}; allowed: {list(_BY_NAME)}")
    return _BY_NAME[name]


@dataclass(frozen=True)
class Reading:
    """A set of choices the paper leaves open: at most one level per factor. Default levels
    are dropped (a reading *is* its non-default choices), so equal choices give equal
    readings whatever the order they are given in."""

    levels: tuple[Level, ...] = ()

    def __post_init__(self) -> None:
        chosen = [lv for lv in self.levels if not lv.is_default]
        factors = [lv.factor for lv in chosen]
        dup = sorted({f for f in factors if factors.count(f) > 1})
        if dup:
            raise ValueError(f"a reading takes one level per factor; factor(s) {dup} given twice")
        order = {lv.name: i for i, lv in enumerate(LEVELS)}
        object.__setattr__(self, "levels", tuple(sorted(chosen, key=lambda lv: order[lv.name])))

    @classmethod
    def of(cls, *names: str) -> Reading:
        """The reading with the named levels (``Reading.of("reuse", "midpoint")``)."""
        return cls(tuple(level(n) for n in names))

    @property
    def name(self) -> str:
        """``default``, or its levels' names in :data:`LEVELS` order (display only)."""
        return ",".join(lv.name for lv in self.levels) or "default"

    @property
    def label(self) -> str:
        return "; ".join(lv.label for lv in self.levels) or "the artifact's defaults"

    def choice(self, factor: str) -> Level:
        """The level this reading takes for ``factor`` (its default when not chosen)."""
        if factor not in FACTORS:
            raise ValueError(f"unknown factor {factor!r}; allowed: {list(FACTORS)}")
        return next((lv for lv in self.levels if lv.factor == factor), FACTORS[factor][0])

    def touches(self, method: str) -> bool:
        """Whether any level of the reading applies to some row of ``method``."""
        return any(method in lv.methods for lv in self.levels)

    def restricted(self, method: str) -> Reading:
        """The part of the reading that applies to ``method``."""
        return Reading(tuple(lv for lv in self.levels if method in lv.methods))

    def changes(self, method: str, stabilisers: tuple[str, ...]) -> dict[str, Any]:
        """Config changes for a variant of ``method`` with ``stabilisers``."""
        out: dict[str, Any] = {}
        for lv in self.levels:
            if lv.applies(method, stabilisers):
                out.update(lv.changes)
        return out


DEFAULT = Reading()
"""The artifact's defensible reading (every factor at its default)."""
REUSE = Reading.of("reuse")
"""RK's second stage re-scores the first episode (the paper's likely RK)."""
SURROGATE = Reading.of("surrogate")
"""PG-SOM with the surrogate-only Hessian (the paper's likely PG-SOM)."""


@dataclass(frozen=True)
class Variant:
    """A method, the stabilisers on it, and the reading it follows; see the module docstring.

    ``Variant("hessian", ("clip",))`` is Table 1's "Hessian Policy Gradient + clip".
    Construction validates: an unknown method or stabiliser, a stabiliser given twice, or a
    reading none of whose levels apply to the method raises ValueError naming what is allowed.
    """

    method: str
    stabilisers: tuple[str, ...] = ()
    reading: Reading = DEFAULT

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.stabilisers, str):
            raise ValueError(f"stabilisers must be a tuple of names, got the string {self.stabilisers!r}")
        stabs = tuple(s for s in self.stabilisers if s != "none")
        for s in stabs:
            if s not in STABILISERS:
                raise ValueError(f"stabiliser must be one of {STABILISERS}, got {s!r}")
        if len(set(stabs)) != len(stabs):
            raise ValueError(f"stabilisers lists one twice: {stabs}")
        object.__setattr__(self, "stabilisers", stabs)
        if not isinstance(self.reading, Reading):
            raise ValueError(f"reading must be a Reading, got {type(self.reading).__name__}")
        foreign = [lv.name for lv in self.reading.levels if self.method not in lv.methods]
        if foreign:
            raise ValueError(f"reading {self.reading.name!r}: level(s) {foreign} do not apply to "
                             f"method {self.method!r}; use reading.restricted({self.method!r})")

    @property
    def stabiliser(self) -> str:
        """The tidy frames' ``stabiliser`` column: ``none``, ``clip``, ``clip+entropy``..."""
        return "+".join(self.stabilisers) or "none"

    @property
    def name(self) -> str:
        """Display name: ``pg``, ``pg+clip``, ``rk@reuse``, ``rk+clip@midpoint,reuse``."""
        base = "+".join((self.method, *self.stabilisers))
        return base if self.reading == DEFAULT else f"{base}@{self.reading.name}"

    @property
    def label(self) -> str:
        """``Runge–Kutta + clip`` (the paper's naming), the reading in brackets."""
        parts = [METHOD_LABELS[self.method], *(STABILISER_LABELS[s] for s in self.stabilisers)]
        text = " + ".join(parts)
        return text if self.reading == DEFAULT else f"{text} [{self.reading.label}]"

    def config(self, base: RunConfig | None = None) -> RunConfig:
        """``base`` (default :class:`RunConfig`) with the method, the stabilisers' changes
        (:data:`STABILISER_CHANGES`) and then the reading's applied."""
        changes: dict[str, Any] = {"method": self.method}
        for s in self.stabilisers:
            changes.update(STABILISER_CHANGES[s])
        changes.update(self.reading.changes(self.method, self.stabilisers))
        return (base or RunConfig()).replace(**changes)

    def columns(self) -> dict[str, str]:
        """The tidy frames' columns naming this variant."""
        return {"variant": self.name, "method": self.method, "stabiliser": self.stabiliser,
                "reading": self.reading.name}


def variant(method: str, *stabilisers: str, reading: Reading = DEFAULT,
            base: RunConfig | None = None) -> tuple[str, RunConfig]:
    """``(name, config)`` of ``Variant(method, stabilisers, reading)`` on ``base``."""
    v = Variant(method, tuple(stabilisers), reading)
    return v.name, v.config(base)


def table1_variants() -> list[Variant]:
    """Table 1's 12 variants (the paper's 3 methods x none/clip/entropy/baseline), in its order."""
    return [Variant(m, () if s == "none" else (s,)) for m in PAPER_METHODS for s in PAPER_STABILISERS]


def main_variants(*, baselines: bool = True, attribution: bool = True,
                  paper_likely: bool = True) -> list[Variant]:
    """The main experiment's variants: Table 1's 12, then the adam and npg baselines, then the
    clip-attribution rows (clip at the base rate; the doubled rate alone), then the paper's
    plausible versions of RK and PG-SOM (``rk@reuse``, ``hessian@surrogate``)."""
    out = table1_variants()
    if baselines:
        out += [Variant("adam"), Variant("npg")]
    if attribution:
        out += [Variant(m, (s,)) for m in PAPER_METHODS for s in ("clip_same_lr", "lr2")]
    if paper_likely:
        out += [Variant("rk", reading=REUSE), Variant("hessian", reading=SURROGATE)]
    return out


_KNOWN: dict[str, Variant] = {}


def register(variants: Iterable[Variant]) -> None:
    """Make ``variants`` known to :func:`lookup` (the readings study registers its own)."""
    for v in variants:
        _KNOWN.setdefault(v.name, v)


register(main_variants())
for _m in METHODS:
    register(Variant(_m, () if s == "none" else (s,)) for s in (*PAPER_STABILISERS, "clip_same_lr", "lr2"))


def lookup(name: str) -> Variant:
    """The known variant displayed as ``name``; ValueError listing the known names otherwise.
    (A table lookup, not a parse: names are display only.)"""
    if isinstance(name, Variant):
        return name
    if name not in _KNOWN:
        raise ValueError(f"unknown variant {name!r}; known: {list(_KNOWN)}")
    return _KNOWN[name]
