"""A small finite-horizon MDP whose expected return J(theta) is computed exactly.

Used by :mod:`pgsom.derivations` (``notebooks/derivations.ipynb``) and ``tests/test_exact_mdp.py`` to check the paper's
lemmas (Section 3, Appendix A) where the truth is known: the gradient and Hessian of J come
from autograd through an enumeration of every trajectory, and the package's single-episode
estimators (``pgsom.estimators``) are applied to sampled or enumerated episodes exactly as the
runner applies them.

The MDP (:class:`FiniteMDP`, built by :meth:`FiniteMDP.build` from its ``seed`` through a
``numpy.random.SeedSequence``; no global RNG):

* ``initial[s]``            initial-state distribution (Dirichlet(1));
* ``transitions[s, a, s']`` next-state distribution given that the episode goes on (Dirichlet(1));
* ``end[s, a]``             probability that the episode terminates after (s, a), U(0, end_max);
  every episode is also truncated after ``horizon`` steps;
* ``rewards[s, a]``         reward of (s, a), U(reward_low, reward_high) rounded to a multiple
  of 1/64. Rewards on that grid make every return and every advantage with a 1/64-grid
  baseline exactly representable in float32 (the dtype ``compute_advantages`` returns), so
  expectations of the package's estimators computed by enumeration match autograd to float64
  rounding. The default rewards are >= 0 (as CartPole's +1), the "mild assumption" under which
  the surrogate Hessian of an exponential-family policy has a sign (:func:`pgsom.derivations.c4_spectrum`).

Episode: s_0 ~ initial; for t = 0..horizon-1: a_t ~ pi(.|o_t), reward r[s_t, a_t]; the episode
ends with probability end[s_t, a_t], otherwise s_{t+1} ~ transitions[s_t, a_t].

    p(tau) = initial(s_0) prod_t pi(a_t|o_t) prod_{t<L-1} (1 - end) P(s_{t+1}|s_t, a_t)
             * (end[s_{L-1}, a_{L-1}] if L < horizon else 1)
    J(theta) = sum_tau p(tau) R(tau),   R(tau) = sum_t r[s_t, a_t]

Observations o_t given to the policy (``observation``):

* ``"state"``: one-hot of s_t (size n_states); the policy is stationary;
* ``"state_time"``: concatenation [one-hot(s_t), one-hot(t)] (size n_states + horizon).

Policies are the package's own softmax (``pgsom.policy``): ``hidden=()`` is the linear softmax
(log-linear, an exponential family in theta), ``hidden=(k,)`` a one-hidden-layer tanh MLP.
Parameters are flat ``(R, d)`` tensors as everywhere in the package; the exact functions also
take a single ``(d,)`` vector. Use float64 parameters for exact checks: episodes come back with
observations in the parameters' dtype.

Monte Carlo with the package's estimators: to get N independent single-episode estimates at one
theta, repeat it (:func:`repeat`, ``theta.expand(N, d).contiguous()``) and sample N episodes
(:meth:`ExactMDP.sample_episodes`); row i of every estimate is then one independent draw.
Exact expectations of any per-episode quantity: evaluate it on :meth:`ExactMDP.episodes` (every
trajectory, one per row, with ``repeat(theta, K)``) and weight the rows with
:meth:`ExactMDP.expectation`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from pgsom import estimators as est
from pgsom.config import AlgoConfig
from pgsom.policy import PolicySpec, forward, init_params, sample_actions
from pgsom.transforms import UpdateInfo, make_rule

REWARD_GRID = 1.0 / 64
"""Rewards (and the fixed baselines built by :meth:`ExactMDP.grid_baseline`) are multiples of this."""

MAX_TRAJECTORIES = 2_000_000
"""Enumeration refuses MDPs with more trajectories than this."""

OBSERVATIONS = ("state", "state_time")

__all__ = [
    "REWARD_GRID", "OBSERVATIONS", "MDPModel", "FiniteMDP", "Trajectories", "Estimates", "ExactMDP",
    "repeat", "random_thetas", "single_episode_estimates", "evaluate_rule_inputs", "first_update",
    "moment_limit_step", "rk_second_stage",
]


class MDPModel(NamedTuple):
    """The MDP's numbers (float64 numpy arrays)."""

    initial: np.ndarray  # (S,)
    transitions: np.ndarray  # (S, A, S) P[s, a, s'], rows sum to 1
    end: np.ndarray  # (S, A) termination probability after (s, a)
    rewards: np.ndarray  # (S, A) multiples of REWARD_GRID


@dataclass(frozen=True)
class FiniteMDP:
    """Description of a random finite-horizon MDP; :meth:`build` makes its numbers."""

    n_states: int = 3
    n_actions: int = 2
    horizon: int = 4
    seed: int = 0
    end_max: float = 0.3
    """Termination probabilities are U(0, end_max); 0 gives fixed-length episodes."""
    reward_low: float = 0.0
    reward_high: float = 1.0
    observation: str = "state"
    """``state`` (one-hot s) or ``state_time`` ([one-hot s, one-hot t])."""

    def __post_init__(self) -> None:
        for name in ("n_states", "n_actions", "horizon"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.n_actions < 2:
            raise ValueError(f"n_actions must be >= 2, got {self.n_actions}")
        if not (isinstance(self.seed, (int, np.integer)) and self.seed >= 0):
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if not (0 <= self.end_max < 1):
            raise ValueError(f"end_max must be in [0, 1), got {self.end_max!r}")
        if not (self.reward_low <= self.reward_high):
            raise ValueError("reward_low must be <= reward_high")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")

    def build(self) -> MDPModel:
        """Initial distribution, kernel, termination and rewards, from ``SeedSequence(seed)``."""
        s, a = self.n_states, self.n_actions
        k_init, k_trans, k_end, k_rew = np.random.SeedSequence(self.seed).spawn(4)
        initial = np.random.default_rng(k_init).dirichlet(np.ones(s))
        transitions = np.random.default_rng(k_trans).dirichlet(np.ones(s), size=(s, a))
        end = np.random.default_rng(k_end).uniform(0.0, self.end_max, size=(s, a))
        raw = np.random.default_rng(k_rew).uniform(self.reward_low, self.reward_high, size=(s, a))
        rewards = np.round(raw / REWARD_GRID) * REWARD_GRID
        return MDPModel(initial, transitions, end, rewards)

    @property
    def obs_size(self) -> int:
        return self.n_states + (self.horizon if self.observation == "state_time" else 0)

    @property
    def n_obs(self) -> int:
        """Number of distinct observations."""
        return self.n_states * (self.horizon if self.observation == "state_time" else 1)

    def obs_index(self, states: np.ndarray, t: int | np.ndarray) -> np.ndarray:
        """Index of the observation of state ``states`` at time ``t`` in :meth:`observations`."""
        if self.observation == "state":
            return np.asarray(states)
        return np.asarray(t) * self.n_states + np.asarray(states)

    def observations(self) -> np.ndarray:
        """``(n_obs, obs_size)`` table of the distinct observation vectors."""
        eye_s = np.eye(self.n_states)
        if self.observation == "state":
            return eye_s
        eye_t = np.eye(self.horizon)
        return np.stack([np.concatenate([eye_s[s], eye_t[t]]) for t in range(self.horizon)
                         for s in range(self.n_states)])

    def policy_spec(self, hidden: tuple[int, ...] = ()) -> PolicySpec:
        return PolicySpec(self.obs_size, self.n_actions, tuple(hidden))


class Trajectories(NamedTuple):
    """Every trajectory with positive probability (padded to the horizon)."""

    states: torch.Tensor  # (K, T) int64, 0 on padding
    actions: torch.Tensor  # (K, T) int64, 0 on padding
    mask: torch.Tensor  # (K, T) bool
    rewards: torch.Tensor  # (K, T) float64, 0 on padding
    obs_index: torch.Tensor  # (K, T) int64 index into FiniteMDP.observations(), 0 on padding
    env_log_prob: torch.Tensor  # (K,) float64: log of the initial, transition and end factors

    @property
    def total_reward(self) -> torch.Tensor:
        return self.rewards.sum(1)

    @property
    def length(self) -> torch.Tensor:
        return self.mask.sum(1)


class Estimates(NamedTuple):
    """The package's single-episode estimates, one row per episode."""

    g: torch.Tensor  # REINFORCE gradient sum_t A_t s_t
    h: torch.Tensor  # full diag-Hessian estimate g * S + diag grad^2 sum_t A_t log pi_t
    h_surrogate: torch.Tensor  # diag grad^2 sum_t A_t log pi_t alone (hessian_terms="surrogate")
    h_hutchinson: torch.Tensor | None  # full estimate with the Hutchinson surrogate term (if probe)
    score_sum: torch.Tensor  # S = sum_t s_t
    advantages: torch.Tensor  # (R, T) float32 as the runner computes them


def repeat(theta: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, d)`` copy of one parameter vector (``(d,)`` or ``(1, d)``)."""
    return theta.reshape(1, -1).expand(n, -1).contiguous()


def random_thetas(spec: PolicySpec, n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """``(n, d)`` float64 parameters: the package's initialisation (``init_params``, one
    ``SeedSequence(seed).spawn(n)`` child per row) multiplied by ``scale``."""
    rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(n)]
    return init_params(spec, rngs).double() * scale


def _as_rows(theta: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if theta.dim() == 1:
        return theta.unsqueeze(0), True
    if theta.dim() != 2:
        raise ValueError(f"theta must be (d,) or (R, d), got shape {tuple(theta.shape)}")
    return theta, False


class ExactMDP:
    """A :class:`FiniteMDP` with a policy class, solved by enumerating every trajectory.

    ``hidden=()`` is the linear softmax, ``(k,)`` a tanh MLP with k units. ``model`` replaces the
    MDP's numbers (e.g. another transition kernel for Lemma 3.2); by default ``mdp.build()``.
    """

    def __init__(self, mdp: FiniteMDP, hidden: tuple[int, ...] = (), model: MDPModel | None = None):
        self.mdp = mdp
        self.hidden = tuple(hidden)
        self.spec = mdp.policy_spec(self.hidden)
        self.model = mdp.build() if model is None else MDPModel(*(np.asarray(m, float) for m in model))
        self._check_model()
        self.obs_table = torch.from_numpy(mdp.observations())
        self.trajectories = self._enumerate()
        self._counts = self.pair_counts()

    # ------------------------------------------------------------------ construction
    def _check_model(self) -> None:
        s, a = self.mdp.n_states, self.mdp.n_actions
        m = self.model
        shapes = {"initial": (s,), "transitions": (s, a, s), "end": (s, a), "rewards": (s, a)}
        for name, shape in shapes.items():
            if getattr(m, name).shape != shape:
                raise ValueError(f"model.{name} must have shape {shape}, got {getattr(m, name).shape}")
        if not np.allclose(m.initial.sum(), 1) or not np.allclose(m.transitions.sum(-1), 1):
            raise ValueError("initial and transitions[s, a] must be probability distributions")
        if (m.end < 0).any() or (m.end >= 1).any():
            raise ValueError("end probabilities must be in [0, 1)")

    def with_model(self, model: MDPModel) -> ExactMDP:
        """The same MDP description and policy class with other numbers (e.g. another kernel)."""
        return ExactMDP(self.mdp, self.hidden, model)

    @property
    def d(self) -> int:
        return self.spec.n_params

    @property
    def n_trajectories(self) -> int:
        return int(self.trajectories.mask.shape[0])

    def _enumerate(self) -> Trajectories:
        mdp, m = self.mdp, self.model
        S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
        total = sum((S * A) ** length for length in range(1, T + 1))
        if total > MAX_TRAJECTORIES:
            raise ValueError(f"{total} trajectories to enumerate (> {MAX_TRAJECTORIES}); use a smaller MDP")
        with np.errstate(divide="ignore"):
            log_init, log_trans = np.log(m.initial), np.log(m.transitions)
            log_go, log_end = np.log1p(-m.end), np.log(m.end)
        parts = []
        for length in range(1, T + 1):
            combos = np.array(list(itertools.product(range(S), repeat=length)), dtype=np.int64)
            acts = np.array(list(itertools.product(range(A), repeat=length)), dtype=np.int64)
            st = np.repeat(combos, len(acts), axis=0)
            ac = np.tile(acts, (len(combos), 1))
            logp = log_init[st[:, 0]].copy()
            for t in range(length - 1):
                logp += log_go[st[:, t], ac[:, t]] + log_trans[st[:, t], ac[:, t], st[:, t + 1]]
            if length < T:
                logp += log_end[st[:, -1], ac[:, -1]]
            keep = np.isfinite(logp)
            pad = ((0, 0), (0, T - length))
            parts.append((np.pad(st[keep], pad), np.pad(ac[keep], pad), length, logp[keep]))
        states = np.concatenate([p[0] for p in parts])
        actions = np.concatenate([p[1] for p in parts])
        mask = np.concatenate([np.broadcast_to(np.arange(T) < p[2], (len(p[3]), T)) for p in parts])
        env_logp = np.concatenate([p[3] for p in parts])
        rewards = m.rewards[states, actions] * mask
        obs_index = mdp.obs_index(states, np.arange(T)[None, :]) * mask
        t = torch.from_numpy
        return Trajectories(t(states), t(actions), t(mask), t(rewards), t(obs_index), t(env_logp))

    # ------------------------------------------------------------------ policy tables
    def log_prob_table(self, theta: torch.Tensor) -> torch.Tensor:
        """log pi(a | o) for every distinct observation: ``(R, n_obs, A)`` (or ``(n_obs, A)``)."""
        rows, single = _as_rows(theta)
        obs = self.obs_table.to(rows.dtype).unsqueeze(0).expand(rows.shape[0], -1, -1)
        lp = forward(self.spec, rows, obs).log_probs
        return lp[0] if single else lp

    def score_table(self, theta: torch.Tensor) -> torch.Tensor:
        """grad_theta log pi(a | o): ``(n_obs, A, d)`` at a single ``(d,)`` theta (autograd)."""
        return torch.func.jacrev(self.log_prob_table)(theta)

    def log_prob_hessian_table(self, theta: torch.Tensor) -> torch.Tensor:
        """grad^2_theta log pi(a | o): ``(n_obs, A, d, d)`` at a single ``(d,)`` theta."""
        return torch.func.hessian(self.log_prob_table)(theta)

    def _pair_index(self) -> torch.Tensor:
        tr = self.trajectories
        return tr.obs_index * self.mdp.n_actions + tr.actions  # (K, T) into the flat (o, a) table

    def pair_counts(self) -> torch.Tensor:
        """``(K, n_obs * A)`` float64: how often trajectory k takes action a at observation o."""
        tr = self.trajectories
        counts = torch.zeros(self.n_trajectories, self.mdp.n_obs * self.mdp.n_actions, dtype=torch.float64)
        counts.scatter_add_(1, self._pair_index(), tr.mask.double())
        return counts

    # ------------------------------------------------------------------ exact objective
    def policy_log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """sum_t log pi(a_t | o_t) for every trajectory: ``(R, K)`` (or ``(K,)``)."""
        rows, single = _as_rows(theta)
        lp = self.log_prob_table(rows).reshape(rows.shape[0], -1)  # (R, n_obs * A)
        out = lp @ self._counts.T.to(lp.dtype)
        return out[0] if single else out

    def trajectory_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """p_theta(tau_k) for every trajectory: ``(R, K)`` (or ``(K,)``); rows sum to 1."""
        return torch.exp(self.policy_log_prob(theta) + self.trajectories.env_log_prob)

    def exact_J(self, theta: torch.Tensor) -> torch.Tensor:
        """J(theta) = sum_tau p(tau) R(tau), exactly: scalar for ``(d,)``, ``(R,)`` for ``(R, d)``."""
        return self.trajectory_probs(theta) @ self.trajectories.total_reward.to(theta.dtype)

    def exact_grad(self, theta: torch.Tensor) -> torch.Tensor:
        """grad J by autograd through the enumeration: ``(d,)`` or ``(R, d)``."""
        rows, single = _as_rows(theta)
        out = torch.func.grad(lambda th: self.exact_J(th).sum())(rows)
        return out[0] if single else out

    def exact_hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """grad^2 J by autograd: ``(d, d)`` or ``(R, d, d)``."""
        rows, single = _as_rows(theta)
        out = torch.stack([torch.func.hessian(self.exact_J)(r) for r in rows])
        return out[0] if single else out

    # ------------------------------------------------------------------ exact expectations
    def episodes(self, dtype: torch.dtype = torch.float64) -> est.EpisodeBatch:
        """Every trajectory as one padded episode per row (the runner's layout: zero padding,
        float32 rewards); evaluate an estimator on it with ``repeat(theta, K)``."""
        tr = self.trajectories
        obs = self.obs_table.to(dtype)[tr.obs_index] * tr.mask.unsqueeze(-1)
        return est.EpisodeBatch(obs, tr.actions.clone(), tr.rewards.float(), tr.mask.clone())

    def expectation(self, values: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """sum_k p_theta(tau_k) values[k] for per-trajectory ``values`` of shape ``(K, ...)``."""
        p = self.trajectory_probs(theta.reshape(-1))
        return torch.tensordot(p.to(values.dtype), values, dims=1)

    def moments(self, values: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact mean and variance (over episodes) of per-trajectory ``values``."""
        v = values.double()
        mean = self.expectation(v, theta)
        return mean, (self.expectation(v * v, theta) - mean * mean).clamp_min(0)

    def trajectory_scores(self, theta: torch.Tensor) -> torch.Tensor:
        """S(tau_k) = sum_t grad log pi(a_t|o_t) for every trajectory: ``(K, d)`` (autograd)."""
        table = self.score_table(theta).reshape(-1, self.d)
        return self._counts @ table

    def fisher_identity_terms(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[S S^T], E[grad^2 log p(tau)]) by enumeration; their sum is 0 (Fisher identity)."""
        p = self.trajectory_probs(theta)
        S = self.trajectory_scores(theta)
        outer = (S * p.unsqueeze(1)).T @ S
        hess = self.log_prob_hessian_table(theta).reshape(-1, self.d, self.d)
        expected_counts = p @ self._counts
        return outer, torch.tensordot(expected_counts, hess, dims=1)

    def hessian_decomposition(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lemma 3.1's two terms (E[R S S^T], E[R grad^2 log p(tau)]); they sum to grad^2 J."""
        p = self.trajectory_probs(theta)
        R = self.trajectories.total_reward
        S = self.trajectory_scores(theta)
        outer = (S * (p * R).unsqueeze(1)).T @ S
        return outer, self.expected_surrogate_hessian(theta)

    def expected_surrogate_hessian(self, theta: torch.Tensor, advantages: torch.Tensor | None = None
                                   ) -> torch.Tensor:
        """E[grad^2 sum_t A_t log pi(a_t|o_t)] as a full ``(d, d)`` matrix, by enumeration.

        ``advantages``: per-trajectory ``(K, T)`` weights A_t (default R(tau) at every step)."""
        tr = self.trajectories
        p = self.trajectory_probs(theta)
        weights = tr.total_reward.unsqueeze(1) * tr.mask if advantages is None else advantages.double() * tr.mask
        per_pair = torch.zeros(self.n_trajectories, self.mdp.n_obs * self.mdp.n_actions, dtype=torch.float64)
        per_pair.scatter_add_(1, self._pair_index(), weights)
        hess = self.log_prob_hessian_table(theta).reshape(-1, self.d, self.d)
        return torch.tensordot(p @ per_pair, hess, dims=1)

    def state_visitation(self, theta: torch.Tensor) -> torch.Tensor:
        """d_t(s) = P(the episode reaches step t in state s): ``(T, S)``, by forward dynamic
        programming on (initial, transitions, end) -- independent of the enumeration."""
        mdp, m = self.mdp, self.model
        probs = self.log_prob_table(theta.reshape(-1)).exp()  # (n_obs, A)
        P = torch.from_numpy(m.transitions)
        go = torch.from_numpy(1 - m.end)
        d = torch.from_numpy(m.initial).to(probs.dtype)
        out = []
        for t in range(mdp.horizon):
            out.append(d)
            pi_t = probs[torch.from_numpy(mdp.obs_index(np.arange(mdp.n_states), t))]  # (S, A)
            d = torch.einsum("s,sa,sa,sax->x", d, pi_t, go, P)
        return torch.stack(out)

    def trajectory_fisher(self, theta: torch.Tensor) -> torch.Tensor:
        """sum_t E[1{step t reached} F(o_t)], F(o) = E_{a~pi}[s s^T]: the Fisher information of
        the trajectory distribution, E[S S^T], from :meth:`state_visitation` (no enumeration)."""
        mdp = self.mdp
        theta = theta.reshape(-1)
        probs = self.log_prob_table(theta).exp()
        scores = self.score_table(theta)  # (n_obs, A, d)
        per_obs = torch.einsum("oa,oai,oaj->oij", probs, scores, scores)
        vis = self.state_visitation(theta)
        out = torch.zeros(self.d, self.d, dtype=torch.float64)
        for t in range(mdp.horizon):
            idx = torch.from_numpy(mdp.obs_index(np.arange(mdp.n_states), t))
            out += torch.einsum("s,sij->ij", vis[t], per_obs[idx])
        return out

    def expected_reward_to_go(self, theta: torch.Tensor) -> torch.Tensor:
        """E[G_t 1{step t reached}] / P(step t reached): the value a time-indexed baseline tracks."""
        tr = self.trajectories
        g = tr.rewards.flip(1).cumsum(1).flip(1)
        reach = self.expectation(tr.mask.double(), theta)
        return self.expectation(g, theta) / reach.clamp_min(1e-300)

    def grid_baseline(self, theta: torch.Tensor) -> torch.Tensor:
        """A fixed time-indexed baseline b_t: :meth:`expected_reward_to_go` rounded to the
        1/64 grid (so advantages stay exact in float32). ``(T,)`` float64."""
        return torch.round(self.expected_reward_to_go(theta) / REWARD_GRID) * REWARD_GRID

    # ------------------------------------------------------------------ sampling
    def sample_episodes(self, theta: torch.Tensor, n: int, rng: np.random.Generator) -> est.EpisodeBatch:
        """``n`` independent episodes, row i played with ``theta[i]`` (or one ``(d,)``/``(1, d)``
        theta for every row), padded to the horizon as the runner pads them: observations in
        theta's dtype (zero on padding), float32 rewards, boolean mask.

        Only ``rng`` is used: per step, n uniforms for the actions (the package's inverse-CDF
        ``sample_actions``), n for termination and n for the next state, drawn for every row
        (finished rows too) so the stream never depends on the episodes' lengths."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError("rng must be a numpy.random.Generator")
        rows, _ = _as_rows(theta)
        if rows.shape[0] not in (1, n):
            raise ValueError(f"theta has {rows.shape[0]} rows; expected 1 or n={n}")
        mdp, m = self.mdp, self.model
        T = mdp.horizon
        with torch.no_grad():
            probs = self.log_prob_table(rows.detach()).exp().numpy()  # (R, n_obs, A)
        which = np.zeros(n, np.int64) if rows.shape[0] == 1 else np.arange(n)
        obs_table = mdp.observations()
        states = sample_actions(np.broadcast_to(m.initial, (n, mdp.n_states)), rng.random(n))
        alive = np.ones(n, bool)
        obs = np.zeros((n, T, mdp.obs_size))
        actions = np.zeros((n, T), np.int64)
        rewards = np.zeros((n, T), np.float32)
        mask = np.zeros((n, T), bool)
        for t in range(T):
            o = mdp.obs_index(states, t)
            a = sample_actions(probs[which, o], rng.random(n))
            ended = rng.random(n) < m.end[states, a]
            nxt = sample_actions(m.transitions[states, a], rng.random(n))
            obs[alive, t] = obs_table[o[alive]]
            actions[alive, t] = a[alive]
            rewards[alive, t] = m.rewards[states[alive], a[alive]]
            mask[:, t] = alive
            alive = alive & ~ended
            states = nxt
        return est.EpisodeBatch(torch.from_numpy(obs).to(rows.dtype), torch.from_numpy(actions),
                                torch.from_numpy(rewards), torch.from_numpy(mask))

    # ------------------------------------------------------------------ Lemma 3.2
    def trajectory_log_prob(self, theta: torch.Tensor, states, actions, model: MDPModel | None = None
                            ) -> torch.Tensor:
        """log p(tau) of one trajectory (``states``, ``actions`` of its length L) under
        ``model`` (default this MDP's): initial, policy, transition and end factors."""
        m = self.model if model is None else model
        states, actions = np.asarray(states, np.int64), np.asarray(actions, np.int64)
        L, T = len(states), self.mdp.horizon
        if not (1 <= L <= T) or len(actions) != L:
            raise ValueError(f"need 1 <= len(states) = len(actions) <= horizon={T}")
        env = math.log(m.initial[states[0]])
        for t in range(L - 1):
            s, a = states[t], actions[t]
            env += math.log1p(-m.end[s, a]) + math.log(m.transitions[s, a, states[t + 1]])
        if L < T:
            env += math.log(m.end[states[-1], actions[-1]])
        lp = self.log_prob_table(theta.reshape(-1))
        o = torch.from_numpy(self.mdp.obs_index(states, np.arange(L)))
        return lp[o, torch.from_numpy(actions)].sum() + env

    def trajectory_score(self, theta: torch.Tensor, states, actions, model: MDPModel | None = None
                         ) -> torch.Tensor:
        """grad_theta log p(tau) under ``model``, by autograd through every factor of p(tau)."""
        return torch.func.grad(lambda th: self.trajectory_log_prob(th, states, actions, model))(theta.reshape(-1))

    def episode(self, states, actions, dtype: torch.dtype = torch.float64) -> est.EpisodeBatch:
        """One given trajectory as a one-row padded EpisodeBatch."""
        states, actions = np.asarray(states, np.int64), np.asarray(actions, np.int64)
        T, L = self.mdp.horizon, len(states)
        obs = np.zeros((1, T, self.mdp.obs_size))
        obs[0, :L] = self.mdp.observations()[self.mdp.obs_index(states, np.arange(L))]
        act = np.zeros((1, T), np.int64)
        act[0, :L] = actions
        rew = np.zeros((1, T), np.float32)
        rew[0, :L] = self.model.rewards[states, actions]
        mask = np.zeros((1, T), bool)
        mask[0, :L] = True
        return est.EpisodeBatch(torch.from_numpy(obs).to(dtype), torch.from_numpy(act),
                                torch.from_numpy(rew), torch.from_numpy(mask))


# ---------------------------------------------------------------------- the package's estimators


def single_episode_estimates(
    spec: PolicySpec,
    theta: torch.Tensor,
    batch: est.EpisodeBatch,
    *,
    returns: str = "reward_to_go",
    gamma: float = 1.0,
    baseline: torch.Tensor | None = None,
    standardize: bool = False,
    probe: torch.Tensor | None = None,
) -> Estimates:
    """g, h (full), h (surrogate only) and optionally h with a Hutchinson ``probe`` (R, d), by
    the package's functions in the runner's order: ``compute_returns`` -> ``compute_advantages``
    (fixed ``baseline`` b_t of shape (T,) or (R, T)) -> ``policy_gradient`` -> ``diag_hessian``.
    ``theta`` is ``(R, d)``, one row per episode of ``batch``. Defaults are the unbiased setting
    of Lemma 3.1 (undiscounted reward-to-go, no standardisation)."""
    ret = est.compute_returns(batch.rewards, batch.mask, gamma, returns)
    b = None if baseline is None else baseline.double().expand_as(ret)
    adv = est.compute_advantages(ret, batch.mask, b, standardize)
    grad = est.policy_gradient(spec, theta, batch, adv, 0.0, with_score_sum=True)
    h = est.diag_hessian(spec, theta, batch, adv, grad, estimator="exact", terms="full")
    h_sur = est.diag_hessian(spec, theta, batch, adv, grad, estimator="exact", terms="surrogate")
    h_hut = None
    if probe is not None:
        h_hut = est.diag_hessian(spec, theta, batch, adv, grad, estimator="hutchinson", terms="full", probe=probe)
    return Estimates(grad.g, h, h_sur, h_hut, grad.score_sum, adv)


def evaluate_rule_inputs(spec: PolicySpec, algo: AlgoConfig, theta: torch.Tensor, batch: est.EpisodeBatch,
                         adv: torch.Tensor, rng: np.random.Generator | None = None
                         ) -> tuple[torch.Tensor, UpdateInfo]:
    """Gradient estimate and the rule's extra inputs (diag-Hessian h, Fisher-vector product), as
    ``pgsom.runner.VariantGroup._evaluate`` computes them; Hutchinson probes drawn from ``rng``."""
    full = algo.method == "hessian" and algo.hessian_terms == "full"
    grad = est.policy_gradient(spec, theta, batch, adv, algo.entropy_coef, with_score_sum=full)
    info = UpdateInfo()
    if algo.method == "hessian":
        probe = None
        if algo.hessian_estimator == "hutchinson":
            if rng is None:
                raise ValueError("hessian_estimator='hutchinson' needs rng for the probes")
            probe = torch.from_numpy(2.0 * rng.integers(0, 2, tuple(theta.shape)) - 1).to(theta.dtype)
        h = est.diag_hessian(spec, theta, batch, adv, grad, estimator=algo.hessian_estimator,
                             terms=algo.hessian_terms, probe=probe)
        info = UpdateInfo(hessian=h)
    elif algo.method == "npg":
        info = UpdateInfo(fvp=est.fisher_vector_product(spec, theta, batch, algo.fisher))
    return grad.g, info


def _advantages(algo: AlgoConfig, batch: est.EpisodeBatch, baseline: torch.Tensor | None) -> torch.Tensor:
    ret = est.compute_returns(batch.rewards, batch.mask, algo.gamma, algo.returns)
    b = None if baseline is None else baseline.double().expand_as(ret)
    return est.compute_advantages(ret, batch.mask, b, algo.standardize, algo.std_ddof)


def _unbiased_setting(algo: AlgoConfig) -> bool:
    return ((algo.returns == "total" or algo.gamma == 1.0) and not algo.standardize
            and algo.entropy_coef == 0 and algo.clip_norm is None)


def first_update(
    ex: ExactMDP,
    algo: AlgoConfig,
    theta: torch.Tensor,
    batch: est.EpisodeBatch,
    *,
    baseline: torch.Tensor | None = None,
    rng: np.random.Generator | None = None,
    second_stage: str = "sample",
) -> torch.Tensor:
    """The parameter increment of the first update of ``make_rule(algo)`` from a fresh state,
    one row per episode of ``batch`` (``theta``: one ``(d,)`` vector).

    Mirrors ``pgsom.runner.VariantGroup.learn`` with a fixed baseline ``baseline`` (T,):
    returns -> advantages -> gradient (+ h or Fisher) -> ``rule.update``. For ``rk`` both
    stages are taken: ``reuse`` re-scores the same episode at theta~ = theta + alpha k1;
    ``fresh`` needs a second episode at theta~: ``second_stage="sample"`` plays it with ``rng``,
    ``"exact"`` passes the exact grad J(theta~) to the rule instead (the conditional
    expectation of the fresh k2; valid because Heun's second stage is affine in k2 and the
    estimator is unbiased: requires gamma=1 or total returns, no standardisation, no entropy
    and no clipping)."""
    n = batch.mask.shape[0]
    theta_rep = repeat(theta, n)
    rule = make_rule(algo)
    state = rule.init(theta_rep)
    adv = _advantages(algo, batch, baseline)
    g, info = evaluate_rule_inputs(ex.spec, algo, theta_rep, batch, adv, rng)
    inc, state = rule.update(g, state, info)
    if algo.method != "rk":
        return inc
    theta_t = theta_rep + inc
    if algo.rk_stage == "reuse":
        g2, info2 = evaluate_rule_inputs(ex.spec, algo, theta_t, batch, adv, rng)
    elif second_stage == "exact":
        if not _unbiased_setting(algo):
            raise ValueError("second_stage='exact' needs an unbiased, unclipped gradient estimator")
        g2, info2 = ex.exact_grad(theta_t), UpdateInfo()
    elif second_stage == "sample":
        if rng is None:
            raise ValueError("second_stage='sample' needs rng")
        batch2 = ex.sample_episodes(theta_t, n, rng)
        g2, info2 = evaluate_rule_inputs(ex.spec, algo, theta_t, batch2, _advantages(algo, batch2, baseline), rng)
    else:
        raise ValueError(f"second_stage must be 'sample' or 'exact', got {second_stage!r}")
    inc2, state = rule.update(g2, state, info2)
    return inc + inc2


def moment_limit_step(ex: ExactMDP, algo: AlgoConfig, theta: torch.Tensor,
                      baseline: torch.Tensor | None = None) -> torch.Tensor:
    """The direction m_hat / (sqrt(v_hat) + eps) once the moments have converged at a fixed
    theta (beta -> 1): m -> E[g], v -> E[h*h] (``hessian``, second_moment="square") or E[g*g]
    (``adam``). Exact expectations by enumeration; the step is ``effective_lr`` times this."""
    if algo.method not in ("hessian", "adam") or (algo.method == "hessian" and algo.second_moment != "square"):
        raise ValueError("moment_limit_step is defined for adam and hessian with second_moment='square'")
    batch = ex.episodes(theta.dtype)
    theta_rep = repeat(theta, batch.mask.shape[0])
    adv = _advantages(algo, batch, baseline)
    g, info = evaluate_rule_inputs(ex.spec, algo, theta_rep, batch, adv, None)
    second = info.hessian if algo.method == "hessian" else g
    m = ex.expectation(g, theta)
    v = ex.expectation(second * second, theta)
    return algo.effective_lr * m / (v.sqrt() + algo.eps)


def rk_second_stage(ex: ExactMDP, theta: torch.Tensor, alpha: float, *, baseline: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected second-stage gradient of RK2 at theta~ = theta + alpha k1, k1 = g(tau),
    by enumeration over tau (undiscounted reward-to-go, no standardisation):
    (E[g(tau; theta~)] with the *same* episode re-scored (``reuse``),
     E[grad J(theta~)], what fresh episodes at theta~ estimate without bias (``fresh``))."""
    batch = ex.episodes(theta.dtype)
    k = batch.mask.shape[0]
    first = single_episode_estimates(ex.spec, repeat(theta, k), batch, baseline=baseline)
    theta_t = repeat(theta, k) + alpha * first.g
    reuse = est.policy_gradient(ex.spec, theta_t, batch, first.advantages).g
    fresh = ex.exact_grad(theta_t)
    return ex.expectation(reuse, theta), ex.expectation(fresh, theta)
