"""Frozen configuration dataclasses: what one training run is, and how variants are named.

A *run* is (:class:`RunConfig`, seed). :class:`RunConfig` holds everything that changes what
is computed; its dict form (:meth:`RunConfig.to_dict`) is the results-cache key. Every field is
validated on construction and a bad value raises ``ValueError`` naming the field and what is
allowed. Table 1's variants are built by :func:`variant` from a method and stabiliser names.

Choices the paper leaves open, and where each default comes from (each with the paper's likely
version and why: docs/design.md, 'Choices the paper leaves open'):

* ``standardize=True``: advantages are standardised per episode (pytorch/examples style).
  The paper does not say; a pilot showed plain SGD on raw returns collapses. ``False`` is
  the raw-returns option.
* ``returns="reward_to_go"`` with ``gamma=0.99``; ``"total"`` is the undiscounted episode
  return used by the paper's lemmas.
* ``hessian_estimator="exact"``: the exact diagonal of the surrogate Hessian (closed form);
  ``"hutchinson"`` is the one-sample Rademacher option.
* ``hessian_terms="full"``: ``h = g * S + diag grad^2 (sum_t A_t log pi)`` (Lemma 3.1's
  unbiased estimator of diag grad^2 J); ``"surrogate"`` drops ``g * S`` (what AdaHessian on
  the REINFORCE loss computes, plausibly what the paper ran).
* ``rk_stage="fresh"``: RK's second stage samples new episodes at theta~ (unbiased, counted
  in the budget); ``"reuse"`` re-scores the first episode at theta~ (biased, no new samples,
  plausibly what the paper ran).
* ``std_ddof=0``: the standardisation divides by the population std; ``1`` is the sample std
  (torch's ``Tensor.std()``, what pytorch/examples' reinforce.py uses).
* ``second_moment="square"``: PG-SOM's v tracks h*h (AdaHessian); ``"abs"`` tracks |h|,
  ``"signed"`` the signed EMA of h (a reading of the title's "second-order momentum" without
  squaring).
* ``rk_rule="heun"``: RK2 by Heun's rule; ``"midpoint"`` is the other common RK2.
* ``baseline_kind="time_ema"``: the time-indexed EMA of past reward-to-go; ``"running_mean"``
  is the textbook constant baseline, the mean of past episodes' returns (removed exactly by
  per-episode standardisation, so it matters with ``standardize=False`` only).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pgsom.paper import PAPER_LR

METHODS = ("pg", "hessian", "rk", "adam", "npg")
"""Update rules: REINFORCE/SGD, PG-SOM, Heun RK2, Adam, natural PG (see pgsom.transforms)."""

PAPER_METHODS = ("pg", "hessian", "rk")
"""The paper's three methods (Table 1)."""

def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_unit(name: str, value: float, *, closed_low: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    low_ok = ok and (value >= 0 if closed_low else value > 0)
    if not (low_ok and value < 1):
        interval = "[0, 1)" if closed_low else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


@dataclass(frozen=True)
class AlgoConfig:
    """How one run learns: the update rule, its hyperparameters and the stabilisers."""

    method: str = "pg"
    """Update rule, one of METHODS."""
    lr: float = PAPER_LR
    """Base learning rate alpha (0.002 for every method, paper 4.1)."""
    lr_scale: float = 1.0
    """Multiplier on ``lr``; the paper's clip variant doubles the rate (``variant`` sets 2)."""
    clip_norm: float | None = None
    """Global gradient-norm clipping threshold per run (paper: 50); None disables it."""
    entropy_coef: float = 0.0
    """beta_H: weight of the entropy bonus sum_t H(pi(.|s_t)) in the ascent direction."""
    baseline: bool = False
    """Subtract a baseline built from past episodes (no learned critic), the kind of
    ``baseline_kind``, from every A_t before the optional standardisation."""
    baseline_kind: str = "time_ema"
    """``time_ema``: b_t = the bias-corrected EMA (decay ``baseline_decay``) of past episodes'
    reward-to-go G_t at each time index t. ``running_mean``: one scalar per run,
    b = (1/k) sum_{j<k} G_0^(j), the equal-weight mean over the k past episodes of each
    episode's return G_0 under ``returns``/``gamma`` (R(tau) for ``total`` or gamma = 1, the
    discounted return from the start otherwise), 0 before the first episode, updated after it
    is used. Needs ``baseline=True``. A constant baseline cancels exactly in per-episode
    standardisation ((A - b) - mean(A - b) = A - mean A, up to rounding), so ``running_mean``
    changes the numbers only with ``standardize=False``."""
    baseline_decay: float = 0.9
    """EMA decay of the ``time_ema`` baseline over past episodes (bias-corrected per time
    index); ``running_mean`` does not use it."""
    returns: str = "reward_to_go"
    """``reward_to_go`` (discounted G_t) or ``total`` (undiscounted R(tau) at every t)."""
    gamma: float = 0.99
    """Discount of the reward-to-go."""
    standardize: bool = True
    """Standardise advantages per episode: (A - mean) / (std + 1e-8), std as ``std_ddof`` says."""
    std_ddof: int = 0
    """Delta degrees of freedom of that std over the episode's n steps:
    std = sqrt(sum_t (A_t - mean)^2 / max(n - std_ddof, 1)). 0: the population std; 1: the
    sample std (torch's ``Tensor.std()``, pytorch/examples' reinforce.py). A one-step episode
    gets A = 0 either way. Needs ``standardize=True``."""
    beta1: float = 0.9
    """First-moment decay (adam, hessian)."""
    beta2: float = 0.999
    """Second-moment decay (adam, hessian)."""
    eps: float = 1e-8
    """Denominator epsilon (adam, hessian)."""
    hessian_estimator: str = "exact"
    """``exact`` closed-form diagonal or ``hutchinson`` (one Rademacher probe) for the
    diag grad^2(sum_t A_t log pi) term."""
    hessian_terms: str = "full"
    """``full``: h = g*S + diag grad^2(sum A log pi) (unbiased for diag grad^2 J);
    ``surrogate``: drop g*S (AdaHessian on the REINFORCE loss)."""
    second_moment: str = "square"
    """PG-SOM's v <- b2 v + (1-b2) x tracks x = ``square`` (h*h, step m_hat/(sqrt(v_hat)+eps)),
    ``abs`` (|h|, step m_hat/(v_hat+eps)) or ``signed`` (h itself, the signed EMA of h, step
    m_hat/(|v_hat|+eps))."""
    rk_stage: str = "fresh"
    """RK second stage: ``fresh`` episodes at theta~ or ``reuse`` the first episode."""
    rk_rule: str = "heun"
    """RK2 rule, k1 = g(theta), k2 = g(theta~). ``heun``: theta~ = theta + alpha k1,
    theta <- theta + alpha/2 (k1 + k2). ``midpoint``: theta~ = theta + alpha/2 k1,
    theta <- theta + alpha k2."""
    npg_damping: float = 0.1
    """lambda in (F + lambda I)^-1 g for npg. F is the *mean* of s_t s_t^T over the episode's
    steps while g is the *sum* of A_t s_t (as for every method), so the step grows with the
    episode length like the REINFORCE step does; lambda is on the scale of one step's Fisher."""
    npg_cg_iters: int = 10
    """Conjugate-gradient iterations for the damped Fisher solve."""
    fisher: str = "empirical"
    """npg's F: ``empirical`` mean_t s_t s_t^T with the taken actions, or ``expected`` over
    actions (the KL Hessian)."""

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_positive("lr", self.lr)
        _check_positive("lr_scale", self.lr_scale)
        if self.clip_norm is not None:
            _check_positive("clip_norm", self.clip_norm)
        _check_positive("entropy_coef", self.entropy_coef, allow_zero=True)
        if not isinstance(self.baseline, bool):
            raise ValueError(f"baseline must be True or False, got {self.baseline!r}")
        _check_choice("baseline_kind", self.baseline_kind, ("time_ema", "running_mean"))
        _check_unit("baseline_decay", self.baseline_decay)
        _check_choice("returns", self.returns, ("reward_to_go", "total"))
        if not (isinstance(self.gamma, (int, float)) and not isinstance(self.gamma, bool) and 0 < self.gamma <= 1):
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}")
        if not (isinstance(self.std_ddof, int) and not isinstance(self.std_ddof, bool) and self.std_ddof in (0, 1)):
            raise ValueError(f"std_ddof must be one of (0, 1), got {self.std_ddof!r}")
        _check_unit("beta1", self.beta1)
        _check_unit("beta2", self.beta2)
        _check_positive("eps", self.eps)
        _check_choice("hessian_estimator", self.hessian_estimator, ("exact", "hutchinson"))
        _check_choice("hessian_terms", self.hessian_terms, ("full", "surrogate"))
        _check_choice("second_moment", self.second_moment, ("square", "abs", "signed"))
        _check_choice("rk_stage", self.rk_stage, ("fresh", "reuse"))
        _check_choice("rk_rule", self.rk_rule, ("heun", "midpoint"))
        _check_positive("npg_damping", self.npg_damping)
        if not (isinstance(self.npg_cg_iters, int) and not isinstance(self.npg_cg_iters, bool) and self.npg_cg_iters >= 1):
            raise ValueError(f"npg_cg_iters must be an int >= 1, got {self.npg_cg_iters!r}")
        _check_choice("fisher", self.fisher, ("empirical", "expected"))
        self._reject_options_of_other_methods()
        if self.std_ddof != 0 and not self.standardize:
            raise ValueError(f"std_ddof={self.std_ddof!r} applies only with standardize=True "
                             "(it is the standardisation's std), got standardize=False")
        if self.baseline_kind != "time_ema" and not self.baseline:
            raise ValueError(f"baseline_kind={self.baseline_kind!r} applies only with baseline=True, "
                             "got baseline=False")
        if self.returns == "total" and self.standardize and not self.baseline:
            raise ValueError(
                "returns='total' with standardize=True and no baseline makes every advantage "
                "(R - mean R) / std = 0: set standardize=False (--raw-returns) or baseline=True"
            )
        if self.returns == "total" and self.standardize and self.baseline_kind == "running_mean":
            raise ValueError(
                "returns='total' with standardize=True and baseline_kind='running_mean' makes every "
                "advantage 0 (R - b is the same at every step, and standardising removes it): set "
                "standardize=False (--raw-returns) or baseline_kind='time_ema'"
            )

    def _reject_options_of_other_methods(self) -> None:
        """A non-default option of another method would change nothing but the cache key."""
        defaults = {f.name: f.default for f in dataclasses.fields(AlgoConfig)}
        owners = {
            "rk": ("rk_stage", "rk_rule"),
            "hessian": ("hessian_estimator", "hessian_terms", "second_moment"),
            "npg": ("npg_damping", "npg_cg_iters", "fisher"),
        }
        moments = ("beta1", "beta2", "eps")
        for method, names in owners.items():
            for name in names:
                if self.method != method and getattr(self, name) != defaults[name]:
                    raise ValueError(f"{name} applies to method {method!r} only, got method {self.method!r}")
        if self.method not in ("adam", "hessian"):
            for name in moments:
                if getattr(self, name) != defaults[name]:
                    raise ValueError(f"{name} applies to methods 'adam' and 'hessian' only, got method {self.method!r}")

    @property
    def effective_lr(self) -> float:
        """The step size actually used: lr * lr_scale."""
        return self.lr * self.lr_scale

    @property
    def episodes_per_update(self) -> int:
        """Episodes consumed per update: RK with fresh second-stage samples uses two."""
        return 2 if self.method == "rk" and self.rk_stage == "fresh" else 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run except its seed."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """Update rule and stabilisers."""
    env_id: str = "CartPole-v1"
    """gymnasium environment id, one of :data:`pgsom.envs.ENV_IDS` (the five benchmarks of
    :data:`pgsom.benchmarks.BENCHMARKS`: CartPole-v1, Acrobot-v1, LunarLander-v3 with a Categorical
    policy head; InvertedPendulum-v5 and Hopper-v5, continuous, with a Gaussian head on backend
    ``gymnasium`` only)."""
    backend: str = "fused"
    """``fused``: the compiled kernel (:mod:`pgsom.kernels.fused`: CartPole-v1 only, policy and
    estimates without a Python call per step; one hidden layer); ``fast``: the environment's numpy
    port (CartPole-v1, Acrobot-v1; tested equal to gymnasium) with the torch closed-form estimators,
    the reference implementation; ``gymnasium``: gymnasium's own env with the torch estimators
    (every environment; the only one for LunarLander-v3 and the continuous benchmarks). :func:`pgsom.envs.backends_for` says
    which an environment allows."""
    hidden: tuple[int, ...] = (64,)
    """Hidden-layer widths of the tanh MLP policy (softmax, or Gaussian mean); () is linear."""
    episodes: int = 500
    """Training budget in episodes; every episode used for learning counts (paper 4.1)."""
    eval_episodes: int = 10
    """Episodes of the final stochastic policy for the evaluation return (not in the budget)."""

    def __post_init__(self) -> None:
        if not isinstance(self.algo, AlgoConfig):
            raise ValueError(f"algo must be an AlgoConfig, got {type(self.algo).__name__}")
        from pgsom.envs import BACKENDS, check_env_id

        check_env_id(self.env_id)
        _check_choice("backend", self.backend, BACKENDS)
        hidden = tuple(self.hidden)
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be a tuple of positive ints, got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)
        for name in ("episodes", "eval_episodes"):
            value = getattr(self, name)
            minimum = 1 if name == "episodes" else 0
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
                raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
        if self.episodes % self.algo.episodes_per_update:
            raise ValueError(
                f"episodes must be a multiple of {self.algo.episodes_per_update} for "
                f"method={self.algo.method!r} rk_stage={self.algo.rk_stage!r}, got {self.episodes}"
            )
        if self.algo.method == "hessian" and self.algo.hessian_estimator == "exact" and len(hidden) > 1:
            raise ValueError(
                "hessian_estimator='exact' supports hidden=() or one hidden layer; "
                f"got hidden={hidden!r}: use hessian_estimator='hutchinson'"
            )
        self._check_backend()

    def _check_backend(self) -> None:
        from pgsom.envs import check_backend

        check_backend(self.env_id, self.backend)  # fused: CartPole only; fast: where a numpy port exists
        if self.backend == "fused" and len(self.hidden) != 1:
            raise ValueError(f"backend='fused' supports one hidden layer, got hidden={self.hidden!r}: "
                             "use backend='fast' (the torch reference) for other architectures")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the cache key's config part)."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not ignored."""
        data = dict(data)
        algo = data.pop("algo", {})
        _reject_unknown("RunConfig", data, cls)
        _reject_unknown("AlgoConfig", algo, AlgoConfig)
        if "hidden" in data:
            data["hidden"] = tuple(data["hidden"])
        return cls(algo=AlgoConfig(**algo), **data)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with run-level fields and/or algorithm fields (``lr=...``) changed."""
        run_fields = {f.name for f in dataclasses.fields(self)}
        algo_changes = {k: v for k, v in changes.items() if k not in run_fields}
        run_changes = {k: v for k, v in changes.items() if k in run_fields}
        _reject_unknown("RunConfig/AlgoConfig", algo_changes, AlgoConfig)
        algo = dataclasses.replace(self.algo, **algo_changes)
        return dataclasses.replace(self, algo=algo, **run_changes)


def _reject_unknown(where: str, data: dict, cls: type) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {where} field(s) {unknown}; allowed: {sorted(known)}")
