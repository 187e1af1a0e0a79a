"""Batched environments for the runner: numpy ports of CartPole-v1 (:class:`CartPoleBatch`) and
Acrobot-v1 (:class:`AcrobotBatch`), and gymnasium itself (:class:`GymnasiumBatch`, any
environment with discrete actions or a flat Box of continuous ones).

Every batch class exposes the same small interface used by :mod:`pgsom.runner`:

* ``observation_size``, ``n_actions`` (the number of discrete actions, or the dimension of a
  continuous action), ``discrete`` (a Categorical or a Gaussian policy head), ``action_low`` and
  ``action_high`` (the Box's float32 bounds, ``None`` for discrete actions) and
  ``max_episode_steps`` (the horizon the runner sizes its buffers by);
* ``reset(active)`` starts a new episode in every environment where ``active`` is True and
  returns the observations of all environments, ``(n, observation_size)`` float32
  (C-contiguous);
* ``step(actions, active)`` (actions ``(n,)`` int64, or ``(n, A)`` float32 already clipped to the
  bounds for a Box) advances the environments where ``active`` is True and returns
  ``(obs, reward, terminated, truncated)`` (rewards float32, 0 for an inactive environment);
  inactive environments are left untouched.

Episodes are reset explicitly by the caller, so gymnasium's vector-env autoreset (the step
after ``done`` being a reset with reward 0, docs/design.md, 'Numerics and pitfalls') never
arises here.

Which environments and backends the runner accepts: :data:`ENV_IDS` (the five benchmarks of
:data:`pgsom.benchmarks.BENCHMARKS`; the continuous ones, InvertedPendulum-v5 and Hopper-v5,
train the Gaussian policy head), and per environment :func:`backends_for` (``fused`` for
CartPole-v1 only, ``fast`` where a numpy port exists, :data:`FAST_BATCHES`; ``gymnasium`` for all,
and the only one for the continuous benchmarks: they have no numpy port). The registry is
read for validation only, lazily: nothing it says changes a run's numbers (the spaces and horizon
of a batch come from its own class or gymnasium environment), so it is not one of the runner's
cache-key modules (:func:`pgsom.runner.training_modules`), and importing this module does not
build Box2D or MuJoCo environments.

Seeding follows gymnasium exactly: environment ``i`` owns the generator
``gymnasium.utils.seeding.np_random(seeds[i])``, the first episode draws its initial state
from it and every later episode continues the same stream, as ``env.reset(seed=s)`` followed
by plain ``env.reset()`` calls does in gymnasium. ``tests/test_envs.py`` checks
:class:`CartPoleBatch` against ``gymnasium.make("CartPole-v1")`` step for step, and
``tests/test_acrobot.py`` :class:`AcrobotBatch` against ``gymnasium.make("Acrobot-v1")``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.utils import seeding

BACKENDS = ("fused", "fast", "gymnasium")
"""``fused`` (default; CartPole-v1 only): the compiled kernel :mod:`pgsom.kernels.fused` steps
:class:`CartPoleBatch`'s states and computes the estimates; ``fast``: the environment's numpy port
(:data:`FAST_BATCHES`) with the torch estimators (the reference implementation); ``gymnasium``:
:class:`GymnasiumBatch` (the reference environment) with the torch estimators."""

FUSED_ENV_IDS = ("CartPole-v1",)
"""Environments the ``fused`` backend steps: the kernel has CartPole's dynamics and uses its
reward of 1 per step (the step mask is the reward)."""


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
    discrete = True
    action_low = action_high = None

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


def _acrobot_spaces() -> tuple[int, int, np.dtype, int]:
    """Observation size, number of actions, observation dtype and time limit of gymnasium's
    ``Acrobot-v1``, read from its class and its registration."""
    ref = AcrobotEnv()
    spaces = (int(ref.observation_space.shape[0]), int(ref.action_space.n), np.dtype(ref.observation_space.dtype))
    ref.close()
    return (*spaces, int(gym.spec("Acrobot-v1").max_episode_steps))


_ACROBOT_OBS, _ACROBOT_ACTIONS, _ACROBOT_DTYPE, _ACROBOT_STEPS = _acrobot_spaces()


def _scalar_pow2(x: np.ndarray) -> np.ndarray:
    """``v ** 2`` for every float64 ``v`` of ``x``, by numpy's scalar power (libm ``pow``): what
    gymnasium computes on its scalars, one Python operation per element."""
    return np.fromiter((v**2 for v in x), np.float64, count=len(x))


def _ufunc_pow2(x: np.ndarray) -> np.ndarray:
    """``v ** 2`` for every element by the ``np.power`` loop with an exponent *array*: libm ``pow``
    per element where numpy's float64 power loop is the baseline one. (``x ** 2`` and
    ``np.power(x, 2)`` are ``x * x``, which differs from ``pow(x, 2.0)`` in the last bit for
    about one value in 1200.)"""
    return np.power(x, np.full(len(x), 2.0))


@functools.cache
def _exact_pow2():
    """The vectorised :func:`_ufunc_pow2` where it equals :func:`_scalar_pow2` on 16384 test
    values, else :func:`_scalar_pow2` (numpy's AVX-512 float64 power, which the portable numerics
    mode disables, rounds differently from libm). Decided once per process, on first use."""
    x = np.random.default_rng(20240611).uniform(-30.0, 30.0, 16384)
    return _ufunc_pow2 if np.array_equal(_ufunc_pow2(x), _scalar_pow2(x)) else _scalar_pow2


class AcrobotBatch:
    """``n`` independent copies of gymnasium's ``Acrobot-v1``, stepped together in numpy.

    Mirrored: ``gymnasium.envs.classic_control.acrobot.AcrobotEnv`` ("book" dynamics, no torque
    noise) with the ``TimeLimit`` wrapper that ``gymnasium.make("Acrobot-v1")`` adds. Actions
    0, 1, 2 apply the torques ``AVAIL_TORQUE``; one step is one RK4 step of length ``dt`` of the
    state augmented with the torque; the angles are then wrapped into [-pi, pi] and the
    velocities clipped to +-``MAX_VEL_1``/``MAX_VEL_2``. Observations are ``(n, 6)`` float32
    (cos and sin of both angles, both velocities), the state ``(n, 4)`` float64. An episode
    terminates when ``-cos(s0) - cos(s1 + s0) > 1.0`` (reward 0.0 on that step, -1.0 on every
    other step; 0.0 for an inactive environment) and is truncated on its
    ``max_episode_steps``-th step, independently of termination, as ``TimeLimit`` does.
    Observation size, number of actions, observation dtype and time limit are read from
    gymnasium's spaces and registration; the physics constants (link lengths, masses,
    centres of mass, moment of inertia, ``dt``, velocity bounds, torques) from
    ``AcrobotEnv``, not copied. Copied because gymnasium has them only as literals in its
    code: gravity 9.8 (in ``_dsdt``) and the initial-state bounds +-0.1 (in ``reset``).

    Seeding: as :class:`CartPoleBatch`, environment ``i`` owns
    ``gymnasium.utils.seeding.np_random(seeds[i])``; every episode's initial state is
    ``uniform(-0.1, 0.1, size=4)`` from it, rounded to float32 as gymnasium does (until the
    first step the observation's cos and sin are computed in float32 too, as gymnasium's are on
    its float32 reset state).

    Bit-exact: the same float64 arithmetic as gymnasium's ``_dsdt``, ``rk4``, ``wrap``, ``bound``
    and ``_terminal``, operation for operation and in the same order, elementwise over the
    batch (numpy's elementwise ops round each element as its scalar ops do, and its sin/cos
    loops give an element the same value alone or in an array). The exception is ``**2``:
    gymnasium squares numpy scalars with libm's ``pow``, which is not ``x * x`` in the last bit
    for about one value in 1200, so squares go through ``np.power`` with an exponent array
    (checked against the scalar path once per process; a per-element fallback otherwise).
    ``tests/test_acrobot.py`` checks observations, rewards, flags and states against
    ``gymnasium.make("Acrobot-v1")`` with ``assert_array_equal``. A non-finite angle, on which
    gymnasium's ``wrap`` loops forever, is left as is.

    Raises ``NotImplementedError`` if ``AcrobotEnv.torque_noise_max > 0`` (gymnasium would draw
    the noise from the environment's generator each step) or ``AcrobotEnv.book_or_nips`` is not
    ``"book"``.
    """

    observation_size = _ACROBOT_OBS
    n_actions = _ACROBOT_ACTIONS
    max_episode_steps = _ACROBOT_STEPS
    obs_dtype = _ACROBOT_DTYPE
    discrete = True
    action_low = action_high = None

    GRAVITY = 9.8
    """``g`` of ``AcrobotEnv._dsdt`` (a literal there, not an attribute)."""
    RESET_LOW, RESET_HIGH = -0.1, 0.1
    """The default initial-state bounds of ``AcrobotEnv.reset`` (literals there)."""

    def __init__(self, seeds: Sequence[int]):
        self.n = len(seeds)
        ref = AcrobotEnv()
        if ref.torque_noise_max > 0:
            raise NotImplementedError("torque noise (AcrobotEnv.torque_noise_max > 0) is not implemented")
        if ref.book_or_nips != "book":
            raise NotImplementedError(f"only the default 'book' dynamics are implemented, got {ref.book_or_nips!r}")
        self._m1, self._m2 = ref.LINK_MASS_1, ref.LINK_MASS_2
        self._l1 = ref.LINK_LENGTH_1
        self._lc1, self._lc2 = ref.LINK_COM_POS_1, ref.LINK_COM_POS_2
        self._i1 = self._i2 = ref.LINK_MOI
        self._dt = ref.dt
        self._max_vel_1, self._max_vel_2 = ref.MAX_VEL_1, ref.MAX_VEL_2
        self._torques = np.array(ref.AVAIL_TORQUE, dtype=np.float64)
        ref.close()
        self._pow2 = _exact_pow2()
        self._rngs = [seeding.np_random(int(s))[0] for s in seeds]
        self.state = np.zeros((self.n, 4), dtype=np.float64)
        self.steps = np.zeros(self.n, dtype=np.int64)
        self._fresh = np.zeros(self.n, dtype=bool)  # reset, not stepped since: gymnasium's state is float32

    def reset(self, active: np.ndarray | None = None) -> np.ndarray:
        active = np.ones(self.n, bool) if active is None else active
        for i in np.flatnonzero(active):
            draw = self._rngs[i].uniform(low=self.RESET_LOW, high=self.RESET_HIGH, size=(4,))
            self.state[i] = draw.astype(np.float32)
        self.steps[active] = 0
        self._fresh |= active
        return self._observe()

    def _observe(self) -> np.ndarray:
        s = self.state
        obs = np.stack((np.cos(s[:, 0]), np.sin(s[:, 0]), np.cos(s[:, 1]), np.sin(s[:, 1]), s[:, 2], s[:, 3]),
                       axis=1).astype(self.obs_dtype)
        if self._fresh.any():
            f = s[self._fresh].astype(np.float32)
            obs[self._fresh] = np.stack((np.cos(f[:, 0]), np.sin(f[:, 0]), np.cos(f[:, 1]), np.sin(f[:, 1]),
                                         f[:, 2], f[:, 3]), axis=1)
        return obs

    def _dsdt(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        """``AcrobotEnv._dsdt`` ("book") for rows ``s`` (m, 4) and torques ``a`` (m,): the four
        derivatives (m, 4); the torque's derivative 0.0 is left out."""
        m1, m2, l1, lc1, lc2, I1, I2, g = (self._m1, self._m2, self._l1, self._lc1, self._lc2, self._i1, self._i2,
                                           self.GRAVITY)
        pi, cos, sin, pow2 = np.pi, np.cos, np.sin, self._pow2
        theta1, theta2, dtheta1, dtheta2 = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        cos_theta2, sin_theta2 = cos(theta2), sin(theta2)  # computed once: the same values each time
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos_theta2) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos_theta2) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * pow2(dtheta2) * sin_theta2
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin_theta2
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (
            a + d2 / d1 * phi1 - m2 * l1 * lc2 * pow2(dtheta1) * sin_theta2 - phi2
        ) / (m2 * lc2**2 + I2 - pow2(d2) / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return np.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), axis=1)

    def _rk4(self, y0: np.ndarray, a: np.ndarray) -> np.ndarray:
        """gymnasium's ``rk4(self._dsdt, s_augmented, [0, self.dt])``: one step from t=0 to dt."""
        t = [0, self._dt]
        dt = t[1] - t[0]
        dt2 = dt / 2.0
        k1 = self._dsdt(y0, a)
        k2 = self._dsdt(y0 + dt2 * k1, a)
        k3 = self._dsdt(y0 + dt2 * k2, a)
        k4 = self._dsdt(y0 + dt * k3, a)
        return y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    @staticmethod
    def _wrap(x: np.ndarray, m: float, M: float) -> np.ndarray:
        diff = M - m
        while (above := (x > M) & np.isfinite(x)).any():
            x = np.where(above, x - diff, x)
        while (below := (x < m) & np.isfinite(x)).any():
            x = np.where(below, x + diff, x)
        return x

    @staticmethod
    def _bound(x: np.ndarray, m: float, M: float) -> np.ndarray:
        """``min(max(x, m), M)`` of Python's builtins, elementwise."""
        x = np.where(m > x, m, x)
        return np.where(M < x, M, x)

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        idx = np.flatnonzero(active)
        ns = self._rk4(self.state[idx], self._torques[np.asarray(actions)[idx]])
        ns[:, 0] = self._wrap(ns[:, 0], -np.pi, np.pi)
        ns[:, 1] = self._wrap(ns[:, 1], -np.pi, np.pi)
        ns[:, 2] = self._bound(ns[:, 2], -self._max_vel_1, self._max_vel_1)
        ns[:, 3] = self._bound(ns[:, 3], -self._max_vel_2, self._max_vel_2)
        self.state[idx] = ns
        self._fresh[idx] = False
        self.steps += active
        s = self.state
        terminated = (-np.cos(s[:, 0]) - np.cos(s[:, 1] + s[:, 0]) > 1.0) & active
        truncated = (self.steps >= self.max_episode_steps) & active  # TimeLimit: independent of terminated
        reward = np.where(active & ~terminated, np.float32(-1.0), np.float32(0.0))
        return StepResult(self._observe(), reward, terminated, truncated)


class GymnasiumBatch:
    """The reference backend: one ``gymnasium.make(env_id)`` per run, stepped in a loop.

    Slow (a Python call per environment and step) but it *is* gymnasium; the runner can use it
    (``backend="gymnasium"``) to confirm that results do not depend on the fast path, and it is
    the only backend of environments without a numpy port (LunarLander-v3, InvertedPendulum-v5,
    Hopper-v5). ``observation_size``, ``n_actions``, ``discrete``, ``action_low``/``action_high``
    and ``max_episode_steps`` are read from the environment (its flat Box observation space, its
    ``Discrete(n)`` or flat ``Box`` action space and the ``TimeLimit`` of its registration);
    observations are stored as float32, rewards as float32 (a float reward such as LunarLander's is
    rounded to float32, as every backend's rewards are).

    Box actions: ``step`` passes row ``i`` of the ``(n, A)`` actions to environment ``i`` as a
    float32 array of its own (the caller clips to the bounds first:
    :func:`pgsom.policy.clip_actions`; gymnasium's MuJoCo environments do not clip).
    """

    def __init__(self, seeds: Sequence[int], env_id: str = "CartPole-v1"):
        self.n = len(seeds)
        self._envs = [gym.make(env_id) for _ in seeds]
        ref = self._envs[0] if self._envs else gym.make(env_id)
        try:
            obs_space, act_space = ref.observation_space, ref.action_space
            horizon = ref.spec.max_episode_steps if ref.spec is not None else None
        finally:
            if not self._envs:
                ref.close()
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"{env_id}: observations must be a flat Box, got {obs_space}")
        if isinstance(act_space, gym.spaces.Discrete) and int(act_space.start) == 0:
            self.discrete, self.n_actions = True, int(act_space.n)
            self.action_low = self.action_high = None
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            self.discrete, self.n_actions = False, int(act_space.shape[0])
            self.action_low = np.asarray(act_space.low, np.float32)
            self.action_high = np.asarray(act_space.high, np.float32)
            if not (np.isfinite(self.action_low).all() and np.isfinite(self.action_high).all()):
                raise ValueError(f"{env_id}: a Box of actions must have finite bounds, got {act_space}")
        else:
            raise ValueError(f"{env_id}: actions must be Discrete(n) starting at 0 or a flat Box, got {act_space}")
        if not (isinstance(horizon, int) and horizon >= 1):
            raise ValueError(f"{env_id}: needs a TimeLimit (max_episode_steps) to size the episode buffers, "
                             f"got {horizon!r}")
        self.observation_size = int(obs_space.shape[0])
        self.max_episode_steps = horizon
        self._seeds: list[int | None] = [int(s) for s in seeds]
        self._obs = np.zeros((self.n, self.observation_size), dtype=np.float32)

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
        if self.discrete:
            def action(i):
                return int(actions[i])
        else:
            actions = np.asarray(actions, np.float32)
            if actions.shape != (self.n, self.n_actions):
                raise ValueError(f"Box actions must be (n, A) = {(self.n, self.n_actions)}, got {actions.shape}")

            def action(i):
                return actions[i].copy()
        for i in np.flatnonzero(active):
            obs, r, term, trunc, _ = self._envs[i].step(action(i))
            self._obs[i], reward[i], terminated[i], truncated[i] = obs, r, term, trunc
        return StepResult(self._obs.copy(), reward, terminated, truncated)

    def close(self) -> None:
        for env in self._envs:
            env.close()


FAST_BATCHES = {"CartPole-v1": CartPoleBatch, "Acrobot-v1": AcrobotBatch}
"""The numpy ports (backend ``fast``; ``fused`` steps CartPole's states too), each tested step for
step against gymnasium."""


@functools.cache
def env_ids() -> tuple[str, ...]:
    """:data:`ENV_IDS`: the benchmarks of :data:`pgsom.benchmarks.BENCHMARKS`, in the registry's
    order (discrete ones train a Categorical head, continuous ones a Gaussian head)."""
    from pgsom.benchmarks import BENCHMARKS

    return tuple(BENCHMARKS)


def __getattr__(name: str):
    if name == "ENV_IDS":  # computed on first use: it builds every benchmark's environment once
        return env_ids()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_env_id(env_id: str) -> None:
    """ValueError unless the runner can train on ``env_id``: one of :data:`ENV_IDS`."""
    from pgsom.benchmarks import BENCHMARKS

    if not (isinstance(env_id, str) and env_id in BENCHMARKS):
        raise ValueError(f"env_id must be one of {env_ids()}, got {env_id!r}")


def _continuous(env_id: str) -> bool:
    from pgsom.benchmarks import BENCHMARKS

    b = BENCHMARKS.get(env_id)
    return b is not None and not b.spaces().discrete


def backends_for(env_id: str) -> tuple[str, ...]:
    """The backends that can step ``env_id``: ``fused`` for :data:`FUSED_ENV_IDS`, ``fast`` for
    :data:`FAST_BATCHES`, ``gymnasium`` for every environment."""
    return tuple(name for name, ok in (("fused", env_id in FUSED_ENV_IDS), ("fast", env_id in FAST_BATCHES),
                                       ("gymnasium", True)) if ok)


def check_backend(env_id: str, backend: str) -> None:
    """ValueError unless ``backend`` is one of :data:`BACKENDS` and can step ``env_id``; the
    message names the environment and the backends it allows."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    allowed = backends_for(env_id)
    if backend in allowed:
        return
    use = " or ".join(repr(b) for b in allowed)
    if _continuous(env_id):
        raise ValueError(f"backend={backend!r} cannot step env_id={env_id!r}: it has continuous actions "
                         "(a Gaussian policy head), which train on gymnasium's own environment only (no "
                         f"numpy port, no compiled kernel): use backend={use}")
    if backend == "fused":
        raise ValueError(f"backend='fused' (the compiled kernel) steps {' and '.join(FUSED_ENV_IDS)} only (its "
                         f"dynamics, reward 1 per step), got env_id={env_id!r}: use backend={use}")
    raise ValueError(f"backend='fast' needs a numpy port of the environment, which exists for "
                     f"{tuple(FAST_BATCHES)} only, got env_id={env_id!r}: use backend={use}")


def make_batch(env_id: str, seeds: Sequence[int], backend: str = "fast"):
    """Build ``len(seeds)`` seeded copies of ``env_id`` with the chosen backend: the numpy port of
    :data:`FAST_BATCHES` for ``fast`` and ``fused`` (whose kernel steps :class:`CartPoleBatch`'s
    states), :class:`GymnasiumBatch` for ``gymnasium``. ValueError (naming the environment and the
    backends it allows) for an environment the runner does not train on, or one the backend cannot
    step."""
    check_env_id(env_id)
    check_backend(env_id, backend)
    if backend == "gymnasium":
        return GymnasiumBatch(seeds, env_id)
    return FAST_BATCHES[env_id](seeds)
