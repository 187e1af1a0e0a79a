"""The benchmark registry: each benchmark is data, its spaces and horizon read from gymnasium.

The paper claims gains "across five widely used benchmarks" (Section 1, claim C13) without
naming them. The five here, :data:`BENCHMARKS`, are the ones a pilot found to learn within a
few hundred episodes of plain REINFORCE (``docs/design.md``, 'Experimental protocol'):
CartPole-v1 (the paper's), Acrobot-v1, LunarLander-v3 (Box2D), InvertedPendulum-v5 and
Hopper-v5 (MuJoCo, continuous actions).

What a :class:`Benchmark` types is only what gymnasium does not say: the training budget, the
return thresholds of "episodes to reach" and where they come from, and the fast backend if
one exists, and the advantage normalisation trained there (:data:`NORMALISATIONS`, chosen by
the pilot of :func:`pgsom.benchmark_study.normalisation_pilot`). Everything gymnasium does say (observation size, action space, episode horizon,
its own "solved" threshold) is read from ``gymnasium.spec`` and the environment's spaces
(:meth:`Benchmark.spaces`), never copied. Box2D and MuJoCo come with the lock file
(``gymnasium[box2d]``, ``mujoco``); MuJoCo writes ``MUJOCO_LOG.TXT`` into the working
directory on warnings (ignored by git).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pgsom.config import RunConfig

__all__ = ["Spaces", "Normalisation", "NORMALISATIONS", "Benchmark", "BENCHMARKS", "benchmark"]


class Spaces(NamedTuple):
    """What gymnasium says about an environment's interface."""

    observation_size: int
    """Length of the (flat, float32) observation."""
    discrete: bool
    """Discrete actions (a Categorical head) or a Box (a Gaussian head)."""
    n_actions: int
    """Number of discrete actions, or the dimension of a continuous action."""
    action_low: tuple[float, ...]
    """The Box's lower bounds (empty for discrete actions)."""
    action_high: tuple[float, ...]
    """The Box's upper bounds (empty for discrete actions)."""
    horizon: int
    """``max_episode_steps`` of ``gymnasium.make``'s TimeLimit."""
    reward_threshold: float | None
    """gymnasium's own "solved" return (its registry's ``reward_threshold``)."""


@functools.lru_cache(maxsize=None)
def _spaces(env_id: str) -> Spaces:
    spec = gym.spec(env_id)
    env = gym.make(env_id)
    try:
        obs, act = env.observation_space, env.action_space
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ValueError(f"{env_id}: observations must be a flat Box, got {obs}")
        if isinstance(act, gym.spaces.Discrete):
            out = Spaces(int(obs.shape[0]), True, int(act.n), (), (), int(spec.max_episode_steps),
                         spec.reward_threshold)
        elif isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
            out = Spaces(int(obs.shape[0]), False, int(act.shape[0]),
                         tuple(float(x) for x in np.asarray(act.low, float)),
                         tuple(float(x) for x in np.asarray(act.high, float)),
                         int(spec.max_episode_steps), spec.reward_threshold)
        else:
            raise ValueError(f"{env_id}: actions must be Discrete or a flat Box, got {act}")
    finally:
        env.close()
    return out


@dataclass(frozen=True)
class Normalisation:
    """How the advantages A_t are built from the reward-to-go on a benchmark: changes to the
    :class:`~pgsom.config.AlgoConfig` defaults (which are CartPole's paper protocol)."""

    name: str
    changes: tuple[tuple[str, Any], ...]
    """(field, value) pairs applied to every method's :class:`~pgsom.config.AlgoConfig`."""
    description: str

    def apply(self, config: RunConfig) -> RunConfig:
        """``config`` with these changes (nothing for the paper's ``episode``)."""
        return config.replace(**dict(self.changes)) if self.changes else config


NORMALISATIONS: dict[str, Normalisation] = {n.name: n for n in (
    Normalisation("episode", (), "standardise each episode's discounted reward-to-go, (G_t - mean) / std "
                  "(the paper's protocol, as on CartPole)"),
    Normalisation("ema_baseline", (("baseline", True),),
                  "subtract the time-indexed EMA baseline of past episodes' reward-to-go, then standardise "
                  "each episode"),
    Normalisation("raw_ema_baseline", (("baseline", True), ("standardize", False)),
                  "subtract the time-indexed EMA baseline, no standardisation (the reward's own scale)"),
)}
"""The candidate advantage normalisations of the pilot (:func:`pgsom.benchmark_study.normalisation_pilot`).
Each is a combination of existing :class:`~pgsom.config.AlgoConfig` options, so every candidate
is the same tested code path as CartPole's rows."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: a gymnasium id and what gymnasium does not say about training on it."""

    env_id: str
    """gymnasium id; :meth:`spaces` reads the rest from gymnasium."""
    episodes: int
    """Training budget in episodes per run."""
    thresholds: tuple[float, ...]
    """Returns for "episodes to reach" (the first episode whose trailing mean reaches each)."""
    thresholds_source: str
    """Where the thresholds come from."""
    fast_backend: str | None
    """The batched backend that steps it without gymnasium (``fused``: the compiled kernel;
    ``fast``: a numpy port tested step for step against gymnasium), or None: gymnasium itself,
    one environment per run, sharded across processes."""
    why: str
    """Why this benchmark is one of the five (the pilot that chose it)."""
    episode_cost: float | None = None
    """Work of one run-episode on :attr:`backend`, in ``pg`` episodes of the fused CartPole
    kernel, for the sweep's shard sizes only (:func:`pgsom.sweep.run_work`; the numbers never
    depend on it); None: the kernel's per-method costs (:data:`pgsom.sweep.METHOD_COST`).
    Elsewhere the environment's steps dominate and a run costs far less per step in a shard of
    several runs stepped in lockstep (the policy and the update are batched): measured with
    :func:`pgsom.runner.make_train`, InvertedPendulum-v5 ``adam`` 129 us per run-step alone
    against 45 us in 8 runs, Hopper-v5 ``hessian`` 388 against 106. The cost is set so that a
    shard holds about five runs (LunarLander-v3 and the MuJoCo tasks: 15-35 s of one core, within
    :data:`pgsom.sweep.SHARD_SECONDS`) or ten (Acrobot-v1's numpy port)."""
    normalisation: str = "episode"
    """The advantage normalisation trained on it, a key of :data:`NORMALISATIONS`: CartPole keeps
    the paper's protocol; elsewhere the choice of the normalisation pilot."""
    normalisation_why: str = "the paper's protocol"
    """What chose it (the pilot's result is in ``paper/benchmark_pilot.csv``)."""

    def __post_init__(self) -> None:
        if self.env_id not in gym.registry:
            raise ValueError(f"env_id {self.env_id!r} is not registered in gymnasium")
        if not (isinstance(self.episodes, int) and self.episodes >= 1):
            raise ValueError(f"episodes must be an int >= 1, got {self.episodes!r}")
        if not self.thresholds or list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"thresholds must be a non-empty increasing tuple, got {self.thresholds!r}")
        if self.fast_backend not in (None, "fused", "fast"):
            raise ValueError(f"fast_backend must be None, 'fused' or 'fast', got {self.fast_backend!r}")
        if self.episode_cost is not None and not (isinstance(self.episode_cost, (int, float))
                                                  and self.episode_cost > 0):
            raise ValueError(f"episode_cost must be None or a number > 0, got {self.episode_cost!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {list(NORMALISATIONS)}, got {self.normalisation!r}")

    @property
    def backend(self) -> str:
        """The backend it trains on: its fast backend, else ``gymnasium``."""
        return self.fast_backend or "gymnasium"

    def run_config(self, config: RunConfig, normalisation: str | None = None) -> RunConfig:
        """``config`` (a variant's, :meth:`pgsom.variants.Variant.config`) moved to this benchmark:
        its environment, backend and budget, with its normalisation (or the named one) applied.
        On CartPole-v1 with the paper's normalisation this is the main experiment's config, so
        those runs come from the same cache entries."""
        moved = config.replace(env_id=self.env_id, backend=self.backend, episodes=self.episodes)
        return NORMALISATIONS[normalisation or self.normalisation].apply(moved)

    def spaces(self) -> Spaces:
        """Observation size, action space, horizon and solved threshold, read from gymnasium
        (once per process)."""
        return _spaces(self.env_id)

    @property
    def threshold_names(self) -> tuple[str, ...]:
        """Column suffixes of the thresholds: ``episodes_to_<name>`` (``200``, ``m100``)."""
        return tuple(f"{t:g}".replace("-", "m").replace(".", "p") for t in self.thresholds)


def _solved(env_id: str) -> tuple[float, ...]:
    threshold = gym.spec(env_id).reward_threshold
    if threshold is None:  # pragma: no cover - every benchmark here has one
        raise ValueError(f"{env_id} has no reward_threshold in gymnasium's registry")
    return (float(threshold),)


_PILOT = ("the normalisation pilot (paper/benchmark_pilot.csv): no candidate beats per-episode "
          "standardisation for both pg and adam (one-sided Welch p < 0.05), so the paper's protocol stays")

BENCHMARKS: dict[str, Benchmark] = {b.env_id: b for b in (
    Benchmark("CartPole-v1", 500, (200.0, 400.0), "the paper (Sections 3.7 and 4.2)", "fused",
              "the paper's benchmark"),
    Benchmark("Acrobot-v1", 500, _solved("Acrobot-v1"), "gymnasium's reward_threshold", "fast",
              "discrete, learns within 500 episodes in the pilot (some seeds stay at the 500-step cap)",
              episode_cost=14.0, normalisation="episode", normalisation_why=_PILOT),
    Benchmark("LunarLander-v3", 500, _solved("LunarLander-v3"), "gymnasium's reward_threshold", None,
              "discrete Box2D task that every learner in the pilot improves on", episode_cost=29.0,
              normalisation="episode", normalisation_why=_PILOT),
    Benchmark("InvertedPendulum-v5", 500, _solved("InvertedPendulum-v5"), "gymnasium's reward_threshold",
              None, "continuous (MuJoCo); separates the learners clearly in the pilot", episode_cost=29.0,
              normalisation="episode", normalisation_why=_PILOT),
    Benchmark("Hopper-v5", 500, _solved("Hopper-v5"), "gymnasium's reward_threshold", None,
              "continuous (MuJoCo) locomotion; learns within 500 episodes in the pilot", episode_cost=29.0,
              normalisation="episode", normalisation_why=_PILOT),
)}
"""The five benchmarks of claim C13, CartPole-v1 first."""


def benchmark(env_id: str) -> Benchmark:
    """The registered benchmark ``env_id``; ValueError listing the five otherwise."""
    if env_id not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {env_id!r}; allowed: {list(BENCHMARKS)}")
    return BENCHMARKS[env_id]
