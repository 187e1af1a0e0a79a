"""Batched CartPole-v1 environments: a fast numpy path and gymnasium itself.

Both classes expose the same small batch interface used by :mod:`pgsom.runner`:

* ``reset(active)`` starts a new episode in every environment where ``active`` is True and
  returns the observations of all environments, ``(n, 4)`` float32 (C-contiguous);
* ``step(actions, active)`` advances the environments where ``active`` is True and returns
  ``(obs, reward, terminated, truncated)``; inactive environments are left untouched.

Episodes are reset explicitly by the caller, so gymnasium's vector-env autoreset (the step
after ``done`` being a reset with reward 0, docs/design.md, 'Numerics and pitfalls') never
arises here.

Seeding follows gymnasium exactly: environment ``i`` owns the generator
``gymnasium.utils.seeding.np_random(seeds[i])``, the first episode draws its initial state
from it and every later episode continues the same stream, as ``env.reset(seed=s)`` followed
by plain ``env.reset()`` calls does in gymnasium. ``tests/test_envs.py`` checks
:class:`CartPoleBatch` against ``gymnasium.make("CartPole-v1")`` step for step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils import seeding

ENV_IDS = ("CartPole-v1",)
"""Environments the runner knows; CartPole-v1 is the paper's benchmark."""

BACKENDS = ("fused", "fast", "gymnasium")
"""``fused`` (default): the compiled kernel :mod:`pgsom.kernels.fused` steps :class:`CartPoleBatch`'s
states and computes the estimates; ``fast``: :class:`CartPoleBatch` in numpy with the torch
estimators (the reference implementation); ``gymnasium``: :class:`GymnasiumBatch` (the reference
environment) with the torch estimators."""


class StepResult(NamedTuple):
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class CartPoleBatch:
    """``n`` independent copies of gymnasium's ``CartPole-v1``, stepped together in numpy.

    The dynamics, constants, float64 state, float32 observations, reward of 1 on every step
    (including the terminating one), termination (|x| > 2.4 or |theta| > 12 degrees) and the
    500-step truncation are those of ``gymnasium.envs.classic_control.CartPoleEnv`` with the
    ``TimeLimit(500)`` wrapper that ``gymnasium.make("CartPole-v1")`` adds. The physics
    constants are read from gymnasium's class, not copied.
    """

    observation_size = 4
    n_actions = 2
    max_episode_steps = 500

    def __init__(self, seeds: Sequence[int]):
        self.n = len(seeds)
        ref = CartPoleEnv()
        self._gravity = ref.gravity
        self._total_mass = ref.total_mass
        self._polemass_length = ref.polemass_length
        self._masspole = ref.masspole
        self._length = ref.length
        self._force_mag = ref.force_mag
        self._tau = ref.tau
        self._x_threshold = ref.x_threshold
        self._theta_threshold = ref.theta_threshold_radians
        if ref.kinematics_integrator != "euler":  # pragma: no cover - gymnasium's default
            raise NotImplementedError("only the default euler integrator is implemented")
        ref.close()
        self._rngs = [seeding.np_random(int(s))[0] for s in seeds]
        self.state = np.zeros((self.n, 4), dtype=np.float64)
        self.steps = np.zeros(self.n, dtype=np.int64)

    def reset(self, active: np.ndarray | None = None) -> np.ndarray:
        active = np.ones(self.n, bool) if active is None else active
        for i in np.flatnonzero(active):
            self.state[i] = self._rngs[i].uniform(low=-0.05, high=0.05, size=(4,))
        self.steps[active] = 0
        return self.state.astype(np.float32)

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        x, x_dot, theta, theta_dot = (self.state[:, k].copy() for k in range(4))
        force = np.where(actions == 1, self._force_mag, -self._force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self._polemass_length * np.square(theta_dot) * sintheta) / self._total_mass
        thetaacc = (self._gravity * sintheta - costheta * temp) / (
            self._length * (4.0 / 3.0 - self._masspole * np.square(costheta) / self._total_mass)
        )
        xacc = temp - self._polemass_length * thetaacc * costheta / self._total_mass
        new = np.stack(
            (
                x + self._tau * x_dot,
                x_dot + self._tau * xacc,
                theta + self._tau * theta_dot,
                theta_dot + self._tau * thetaacc,
            ),
            axis=1,
        )
        self.state = np.where(active[:, None], new, self.state)
        self.steps += active
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (
            (x < -self._x_threshold)
            | (x > self._x_threshold)
            | (theta < -self._theta_threshold)
            | (theta > self._theta_threshold)
        ) & active
        truncated = (self.steps >= self.max_episode_steps) & active  # TimeLimit: independent of terminated
        reward = active.astype(np.float32)
        return StepResult(self.state.astype(np.float32), reward, terminated, truncated)


class GymnasiumBatch:
    """The reference backend: one ``gymnasium.make("CartPole-v1")`` per run, stepped in a loop.

    Slow (a Python call per environment and step) but it *is* gymnasium; the runner can use it
    (``backend="gymnasium"``) to confirm that results do not depend on the fast path.
    """

    observation_size = 4
    n_actions = 2
    max_episode_steps = 500

    def __init__(self, seeds: Sequence[int], env_id: str = "CartPole-v1"):
        self.n = len(seeds)
        self._envs = [gym.make(env_id) for _ in seeds]
        self._seeds: list[int | None] = [int(s) for s in seeds]
        self._obs = np.zeros((self.n, 4), dtype=np.float32)

    def reset(self, active: np.ndarray | None = None) -> np.ndarray:
        active = np.ones(self.n, bool) if active is None else active
        for i in np.flatnonzero(active):
            obs, _ = self._envs[i].reset(seed=self._seeds[i])
            self._seeds[i] = None  # later episodes continue the env's own stream
            self._obs[i] = obs
        return self._obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        reward = np.zeros(self.n, np.float32)
        terminated = np.zeros(self.n, bool)
        truncated = np.zeros(self.n, bool)
        for i in np.flatnonzero(active):
            obs, r, term, trunc, _ = self._envs[i].step(int(actions[i]))
            self._obs[i], reward[i], terminated[i], truncated[i] = obs, r, term, trunc
        return StepResult(self._obs.copy(), reward, terminated, truncated)

    def close(self) -> None:
        for env in self._envs:
            env.close()


def make_batch(env_id: str, seeds: Sequence[int], backend: str = "fast"):
    """Build ``len(seeds)`` seeded copies of ``env_id`` with the chosen backend."""
    if env_id not in ENV_IDS:
        raise ValueError(f"env_id must be one of {ENV_IDS}, got {env_id!r}")
    if backend in ("fast", "fused"):
        return CartPoleBatch(seeds)
    if backend == "gymnasium":
        return GymnasiumBatch(seeds, env_id)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
