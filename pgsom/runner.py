"""Train many runs at once: lockstep episodes over a batch of runs, batched updates per variant.

``make_train(runs)`` returns a function that trains every :class:`RunSpec` in ``runs`` (any
mix of variants and seeds) in one process: each *round*, every live run plays one episode with
its own policy, then each variant updates its runs. With ``backend="fused"`` (the default) the
compiled kernel :mod:`pgsom.kernels.fused` plays the episodes and computes the gradient, score
sum, exact Hessian diagonal and Fisher-vector products with no Python call per step; with
``"fast"`` or ``"gymnasium"`` the torch reference does (one batched forward per step, one
batched backward per update), and the kernel is tested against it. The update rules
(:mod:`pgsom.transforms`) are the same torch code for both. A round is one episode of every run, so all runs
spend the same budget; RK with ``fresh`` second stages uses odd rounds for k1 and even ones for
k2, RK ``reuse`` takes both stages from one episode.

:mod:`pgsom.sweep` (``run_many``, ``run_sweep``, re-exported here) splits runs into shards,
trains them through a ``concurrent.futures.Executor`` (a spawn process pool by default, or a
Dask cluster), caches every run in a :class:`pgsom.store.ResultStore` as its shard finishes,
and loads what is cached instead of retraining it.

Seeding: run ``i`` of an experiment with root seed ``s`` owns
``SeedSequence(s, spawn_key=(i,))`` (= ``SeedSequence(s).spawn(n)[i]``) and its children give
the initial parameters, the environment seed, the action noise, the Hutchinson probes and the
evaluation streams. The action noise is one row per episode drawn from the run's action stream:
``horizon`` uniforms ``gens[r].random(horizon)`` for the Categorical head (inverse-CDF sampling),
``(horizon, A)`` standard normals ``gens[r].standard_normal((horizon, A))`` for the Gaussian head
(``a = mu + exp(log_std) * z``); evaluation draws the same way from its own stream. Variants share seeds (common random numbers). A run's numbers therefore
depend only on (config, root seed, seed index), not on the batch it was trained in; a test
checks a run alone against the same run inside a batch of 20.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from pgsom import estimators as est
from pgsom.config import AlgoConfig, RunConfig
from pgsom.kernels import fused
from pgsom.envs import CartPoleBatch, make_batch
from pgsom.policy import PolicySpec, clip_actions, init_params, pad_time, sample_actions, sample_gaussian, unflatten
from pgsom.transforms import UpdateInfo, make_rule

_IMPORT = re.compile(r"^(?:from[ \t]+(pgsom[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)"
                     r"|import[ \t]+(pgsom[\w.]*))", re.M)


def training_modules() -> list[Path]:
    """The modules whose source is hashed into the cache key (a change to them retrains): this
    module and every ``pgsom`` module it imports at module level, transitively, found by
    reading their import statements (so a new training module joins the key without a list to
    keep in sync). Imports inside functions are orchestration (the sweep, the cache, the
    numerics check, whose settings the key covers separately) and do not count.

    The statements are matched as text (``from pgsom... import ...`` and ``import pgsom...``
    at the start of a line), not parsed: ``ast.parse`` is not safe in a thread on Python 3.11,
    and a Dask client runs one."""
    root = Path(__file__).resolve().parent
    todo, seen = [Path(__file__).resolve()], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for m in _IMPORT.finditer(path.read_text(encoding="utf-8")):
            module, names, plain = m.groups()
            candidates = [plain] if plain else [module] + [
                f"{module}.{n.split(' as ')[0].strip()}" for n in names.strip("()").replace("\n", " ").split(",")
                if n.strip() and not n.strip().startswith("#")]
            for name in candidates:
                parts = name.split(".")[1:]
                if not parts:
                    continue
                rel = Path(*parts)
                for cand in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
                    if cand.is_file():
                        todo.append(cand.resolve())
    return sorted(seen)

RESULT_FIELDS = {
    "episode_return": "return of each training episode, the sum of the environment's rewards (float32 "
                      "each, summed in float64; negative on Acrobot and LunarLander) (NaN after "
                      "divergence); for rk with fresh "
                      "second stages every second episode (the last one too) is played at the probe "
                      "point theta~, the sample of k2",
    "episode_length": "steps of each training episode",
    "env_steps": "cumulative environment steps after each training episode",
    "grad_norm": "norm of the (first) gradient estimate computed from each episode, before clipping",
    "clipped": "whether clipping fired on that gradient",
    "update_seconds": "wall time of the batched update that used the episode (shared by its variant group)",
    "eval_return": "returns of the final stochastic policy on fresh evaluation episodes",
    "diverged_at": "episode index at which parameters became non-finite, -1 if never",
}
"""Arrays in every run's result (``update_seconds`` is timing: excluded from determinism)."""


@dataclass(frozen=True)
class RunSpec:
    """One run: a named variant config and a seed (root seed + index)."""

    variant: str
    config: RunConfig
    seed_index: int
    root_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("seed_index", "root_seed"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")

    def cache_config(self) -> dict:
        """What identifies the run's numbers (the variant's *name* is not part of it)."""
        return {"run": self.config.to_dict(), "root_seed": int(self.root_seed), "seed_index": int(self.seed_index)}


class RunStreams(NamedTuple):
    init: np.random.Generator
    env_seed: int
    actions: np.random.Generator
    probes: np.random.Generator
    eval_env_seed: int
    eval_actions: np.random.Generator


def run_streams(root_seed: int, seed_index: int) -> RunStreams:
    """Independent random streams of one run, from ``SeedSequence(root_seed, spawn_key=(i,))``."""
    seq = np.random.SeedSequence(root_seed, spawn_key=(seed_index,))
    init, env, actions, probes, eval_env, eval_actions = seq.spawn(6)
    return RunStreams(
        np.random.default_rng(init),
        int(env.generate_state(1)[0]),
        np.random.default_rng(actions),
        np.random.default_rng(probes),
        int(eval_env.generate_state(1)[0]),
        np.random.default_rng(eval_actions),
    )


# --------------------------------------------------------------------------- rollouts


def make_actor(spec: PolicySpec, theta: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """``obs (R, obs_size) -> probs (R, A)``, the policy of ``pgsom.policy.forward`` in numpy; for
    the Gaussian head ``obs -> mean (R, A)`` (float32, the network's output; the standard deviation
    ``exp(theta[:, spec.log_std_slice])`` does not depend on the state).

    Acting is one tiny matrix-vector product per run and step, where numpy's elementwise
    kernels beat batched matmul several times (``torch.tanh`` alone costs 7x numpy's here);
    the learning side recomputes log-probabilities with torch. Each output row depends on its
    own run's numbers only, whatever the batch.
    """
    layers = [(w.numpy(), b.numpy()) for w, b in unflatten(spec, theta.detach().contiguous())]
    columns = [[np.ascontiguousarray(w[:, :, i]) for i in range(w.shape[2])] for w, _ in layers]

    def probs(obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        for k, (w, b) in enumerate(layers):
            if w.shape[2] <= 8:  # few inputs: accumulate column by column
                out = b + x[:, :1] * columns[k][0]
                for i in range(1, w.shape[2]):
                    out += x[:, i : i + 1] * columns[k][i]
            else:
                out = np.einsum("roi,ri->ro", w, x) + b
            x = np.tanh(out) if k < len(layers) - 1 else out
        if spec.gaussian:
            return x
        x = np.exp(x - x.max(axis=1, keepdims=True))
        return x / x.sum(axis=1, keepdims=True)

    return probs


def rollout(spec: PolicySpec, theta: torch.Tensor, env, uniforms: np.ndarray, active: np.ndarray) -> est.EpisodeBatch:
    """One episode in every ``active`` environment, lockstep, padded to whole time blocks.

    Categorical head: actions come from ``uniforms[r, t]`` by inverse CDF. Gaussian head:
    ``uniforms`` is ``(R, horizon, A)`` standard normals and ``a = mu + exp(log_std) * z``
    (:func:`pgsom.policy.sample_gaussian`, float32); the batch stores ``a`` unclipped ((R, T, A),
    zero on padding) and the environment executes ``clip_actions(a, env.action_low,
    env.action_high)``. The policy is computed for every run at every step (constant shapes keep
    each run's numbers independent of the batch). The buffers are sized by the environment's
    horizon and its observation size (``spec.obs_size``); the rewards stored are the environment's
    own (0 on padding).
    """
    n, horizon = len(active), env.max_episode_steps
    gaussian = spec.gaussian
    if gaussian != (not env.discrete):
        raise ValueError(f"policy head {spec.head!r} does not fit the environment's "
                         f"{'discrete' if env.discrete else 'continuous'} actions")
    # time-major buffers: each step writes one contiguous row
    obs_buf = np.zeros((horizon, n, spec.obs_size), np.float32)
    if gaussian:
        act_buf = np.zeros((horizon, n, spec.n_actions), np.float32)
        log_std = np.ascontiguousarray(theta[:, spec.log_std_slice].detach().numpy())
    else:
        act_buf = np.zeros((horizon, n), np.int64)
    rew_buf = np.zeros((horizon, n), np.float32)
    mask = np.zeros((horizon, n), bool)
    actor = make_actor(spec, theta)
    obs = env.reset(active)
    alive = active.copy()
    used = horizon  # steps played by the longest episode
    for t in range(horizon):
        if not alive.any():
            used = t
            break
        if gaussian:
            actions = sample_gaussian(actor(obs), log_std, uniforms[:, t])
            obs_buf[t], mask[t] = obs, alive
            act_buf[t] = np.where(alive[:, None], actions, np.float32(0))
            res = env.step(clip_actions(actions, env.action_low, env.action_high), alive)
        else:
            actions = sample_actions(actor(obs), uniforms[:, t])
            obs_buf[t], act_buf[t], mask[t] = obs, actions, alive
            res = env.step(actions, alive)
        rew_buf[t] = res.reward
        alive &= ~(res.terminated | res.truncated)
        obs = res.obs
    steps = min(pad_time(used), horizon)  # padding beyond a whole time block is not needed
    return est.EpisodeBatch(*(torch.from_numpy(np.ascontiguousarray(a[:steps].swapaxes(0, 1)))
                              for a in (obs_buf, act_buf, rew_buf, mask)))


class FusedBuffers:
    """Per-run episode storage of the fused kernel (:mod:`pgsom.kernels.fused`), reused every
    round: observations, hidden activations, logits and actions of the last episode; steps
    beyond an episode's length stay zero. ``split``: the threads that run each kernel call's
    rows (:class:`pgsom.kernels.fused.RowSplit`; one by default; the same numbers)."""

    def __init__(self, spec: PolicySpec, n: int, horizon: int, split: fused.RowSplit | None = None):
        if spec.gaussian:
            raise ValueError("the fused kernel has the Categorical head only (CartPole's discrete actions); "
                             "the Gaussian head trains on the torch path (backend 'gymnasium')")
        if len(spec.hidden) != 1:
            raise ValueError(f"the fused kernel supports one hidden layer, got {spec.hidden}")
        self.split = split or fused.RowSplit(1)
        self.obs = np.zeros((n, horizon, spec.obs_size), np.float32)
        self.act = np.zeros((n, horizon, spec.hidden[0]), np.float32)
        self.logits = np.zeros((n, horizon, spec.n_actions), np.float32)
        self.actions = np.zeros((n, horizon), np.int64)
        self.lengths = np.zeros(n, np.int64)
        self.prev = np.zeros(n, np.int64)


def _cartpole_consts(env) -> np.ndarray:
    return np.array([env._gravity, env._masspole, env._total_mass, env._length, env._polemass_length,
                     env._force_mag, env._tau, env._x_threshold, env._theta_threshold], np.float64)


def rollout_fused(spec: PolicySpec, theta: torch.Tensor, env, uniforms: np.ndarray, active: np.ndarray,
                  buf: FusedBuffers) -> est.EpisodeBatch:
    """:func:`rollout` by the compiled kernel: the same episodes (gymnasium's resets, the
    kernel's CartPole steps and float32 policy), stored in ``buf`` for the learning side. CartPole
    only: the rewards returned are the step mask (CartPole's reward of 1 per step)."""
    if not isinstance(env, CartPoleBatch):
        raise TypeError(f"the fused kernel steps CartPoleBatch only, got {type(env).__name__}")
    env.reset(active)
    buf.split(fused.rollout, len(active), theta.detach().numpy(), env.state, uniforms, active, spec.hidden[0], _cartpole_consts(env),
                  env.max_episode_steps, buf.obs, buf.act, buf.logits, buf.actions, buf.lengths, buf.prev)
    steps = min(pad_time(int(buf.lengths.max(initial=0))), env.max_episode_steps)
    mask = np.arange(steps)[None, :] < buf.lengths[:, None]
    return est.EpisodeBatch(torch.from_numpy(buf.obs[:, :steps]), torch.from_numpy(buf.actions[:, :steps]),
                            torch.from_numpy(mask.astype(np.float32)), torch.from_numpy(mask))


def _select(batch: est.EpisodeBatch, index: torch.Tensor) -> est.EpisodeBatch:
    """The group's rows of ``batch``: fresh contiguous tensors (copies), the same layout
    whatever the group's position in the batch; a group that is the whole batch, in order,
    gets the batch itself (already contiguous, the same layout)."""
    if len(index) == batch.mask.shape[0] and bool((index == torch.arange(len(index))).all()):
        return batch  # the group is the whole batch
    return est.EpisodeBatch(*(x[index] for x in batch))


def _draw(gens: Sequence[np.random.Generator], out: np.ndarray) -> np.ndarray:
    """Row ``i`` of ``out`` = ``gens[i].random(out.shape[1])`` (the same numbers, no copy): the
    Categorical head's action uniforms."""
    for g, row in zip(gens, out):
        g.random(out=row)
    return out


def _draw_normals(gens: Sequence[np.random.Generator], out: np.ndarray) -> np.ndarray:
    """Row ``i`` of ``out`` (``(horizon, A)``) = ``gens[i].standard_normal((horizon, A))`` (float64,
    no copy): the Gaussian head's action noise, from the same per-run action stream."""
    for g, row in zip(gens, out):
        g.standard_normal(out=row)
    return out


def _noise(spec: PolicySpec, n: int, horizon: int) -> tuple[Callable, np.ndarray]:
    """The draw function and buffer of one round's action noise: uniforms ``(n, horizon)`` for the
    Categorical head, standard normals ``(n, horizon, A)`` for the Gaussian one."""
    if spec.gaussian:
        return _draw_normals, np.empty((n, horizon, spec.n_actions))
    return _draw, np.empty((n, horizon))


def policy_spec(env, hidden: tuple[int, ...]) -> PolicySpec:
    """The policy of a batch of environments: a Categorical head over discrete actions, a Gaussian
    head over a Box (``n_actions`` its dimension)."""
    return PolicySpec(env.observation_size, env.n_actions, tuple(hidden),
                      head="categorical" if env.discrete else "gaussian")


# --------------------------------------------------------------------------- one variant


@dataclass
class VariantGroup:
    """The runs of one variant inside a batch, with their rule state and baseline."""

    algo: AlgoConfig
    spec: PolicySpec
    index: torch.Tensor  # positions of the group's runs in the batch
    theta: torch.Tensor
    horizon: int
    fused: FusedBuffers | None = None  # the kernel's episode storage (backend "fused")
    rule: object = field(init=False)
    state: object = field(init=False)
    baseline: est.BaselineState | est.RunningMeanState = field(init=False)  # of algo.baseline_kind

    def __post_init__(self) -> None:
        self.rule = make_rule(self.algo)
        self.state = self.rule.init(self.theta[self.index])
        if self.algo.baseline_kind == "running_mean":
            self.baseline = est.init_running_mean(len(self.index))
        else:
            self.baseline = est.init_baseline(len(self.index), self.horizon)

    def _baseline_value(self, steps: int) -> torch.Tensor | None:
        """The baseline subtracted from this round's returns: (R, steps), (R, 1) if constant."""
        if not self.algo.baseline:
            return None
        if self.algo.baseline_kind == "running_mean":
            return est.running_mean_value(self.baseline)
        return est.baseline_value(self.baseline)[:, :steps]

    def _update_baseline(self, returns: torch.Tensor, mask: torch.Tensor) -> None:
        """Fold this round's episodes into the baseline (after it was used)."""
        if not self.algo.baseline:
            return
        if self.algo.baseline_kind == "running_mean":
            self.baseline = est.update_running_mean(self.baseline, returns, mask)
        else:
            self.baseline = est.update_baseline(self.baseline, returns, mask, self.algo.baseline_decay)

    def _evaluate_fused(self, theta, batch, adv, probes, at_episode: bool) -> tuple[torch.Tensor, UpdateInfo]:
        """:meth:`_evaluate` by the compiled kernel. ``at_episode``: ``theta`` is the parameter
        the episode was played with (its stored activations serve); otherwise (RK's reused
        second stage) the kernel recomputes them at ``theta``."""
        algo, buf = self.algo, self.fused
        rows = self.index.numpy().astype(np.int64)
        th = np.ascontiguousarray(theta.detach().numpy())
        n, d = th.shape
        if at_episode:
            act, logits, arows = buf.act, buf.logits, rows
        else:
            act = np.zeros((n, buf.act.shape[1], buf.act.shape[2]), np.float32)
            logits = np.zeros((n, buf.logits.shape[1], buf.logits.shape[2]), np.float32)
            buf.split(fused.forward, n, th, buf.obs, buf.lengths, rows, act, logits)
            arows = np.arange(n, dtype=np.int64)
        hessian = algo.method == "hessian"
        exact = hessian and algo.hessian_estimator == "exact"
        want_score = hessian and algo.hessian_terms == "full"
        g, g_ret = np.empty((n, d), np.float32), np.empty((n, d), np.float32)
        score = np.empty((n, d) if want_score else (0, d), np.float32)
        hess = np.empty((n, d) if exact else (0, d), np.float32)
        a = np.ascontiguousarray(adv.numpy(), dtype=np.float32)
        buf.split(fused.estimates, n, th, buf.obs, act, logits, buf.actions, buf.lengths, rows, arows, a,
                        float(algo.entropy_coef), want_score, exact, g, g_ret, score, hess)
        info = UpdateInfo()
        if hessian:
            if exact:
                h = torch.from_numpy(hess)
            else:  # Hutchinson's autograd Hessian-vector product stays on the torch path
                probe = torch.from_numpy(np.stack([2.0 * p.integers(0, 2, d) - 1 for p in probes])).to(theta.dtype)
                h = est.surrogate_diag_hessian_hutchinson(self.spec, theta, batch, adv, probe)
            if want_score:
                h = h + torch.from_numpy(g_ret) * torch.from_numpy(score)
            info = UpdateInfo(hessian=h)
        elif algo.method == "npg":
            expected = algo.fisher == "expected"
            if not expected:  # F = mean_t s_t s_t^T: the per-step scores once, then two products per v
                steps = max(int(buf.lengths[rows].max(initial=0)), 1)
                scores = np.empty((n, steps, d), np.float32)
                buf.split(fused.step_scores, n, th, buf.obs, act, logits, buf.actions, buf.lengths, rows, arows, scores)

            def fvp(v: torch.Tensor) -> torch.Tensor:
                out = np.empty((n, d), np.float32)
                vv = np.ascontiguousarray(v.numpy(), dtype=np.float32)
                if expected:
                    buf.split(fused.fisher_vector_product, n, th, buf.obs, act, logits, buf.actions, buf.lengths, rows, arows,
                                                vv, True, out)
                else:
                    buf.split(fused.empirical_fvp, n, scores, buf.lengths, rows, vv, out)
                return torch.from_numpy(out)

            info = UpdateInfo(fvp=fvp)
        return torch.from_numpy(g), info

    def _evaluate(self, theta, batch, adv, probes, at_episode: bool = True) -> tuple[torch.Tensor, UpdateInfo]:
        """Gradient estimate at ``theta`` on ``batch`` and what the rule needs besides it."""
        if self.fused is not None:
            return self._evaluate_fused(theta, batch, adv, probes, at_episode)
        algo = self.algo
        full = algo.method == "hessian" and algo.hessian_terms == "full"
        fwd = est.policy_forward(self.spec, theta, batch)
        grad = est.policy_gradient(self.spec, theta, batch, adv, algo.entropy_coef, with_score_sum=full, fwd=fwd)
        info = UpdateInfo()
        if algo.method == "hessian":
            probe = None
            if algo.hessian_estimator == "hutchinson":
                probe = torch.from_numpy(np.stack([2.0 * p.integers(0, 2, theta.shape[1]) - 1 for p in probes]))
                probe = probe.to(theta.dtype)
            h = est.diag_hessian(self.spec, theta, batch, adv, grad, estimator=algo.hessian_estimator,
                                 terms=algo.hessian_terms, probe=probe, fwd=fwd)
            info = UpdateInfo(hessian=h)
        elif algo.method == "npg":
            info = UpdateInfo(fvp=est.fisher_vector_product(self.spec, theta, batch, algo.fisher, fwd))
        return grad.g, info

    def _trim(self, batch: est.EpisodeBatch) -> est.EpisodeBatch:
        """Drop padding beyond the group's longest episode (rounded up to a whole time block).

        Every sum over time in the closed-form estimators is padding-invariant; Hutchinson's
        autograd Hessian-vector product is not, so it keeps the full horizon."""
        if self.algo.method == "hessian" and self.algo.hessian_estimator == "hutchinson" and self.fused is None:
            extra = self.horizon - batch.mask.shape[1]
            return est.EpisodeBatch(*(torch.nn.functional.pad(x, (0, 0) * (x.dim() - 2) + (0, extra))
                                      for x in batch))
        steps = pad_time(int(batch.mask.sum(1).max()))
        return est.EpisodeBatch(*(x[:, :steps] for x in batch))

    def learn(self, batch: est.EpisodeBatch, probes: Sequence[np.random.Generator], alive: torch.Tensor):
        """Use this round's episodes; return (grad_norm, clipped, diverged) per run of the group."""
        algo, theta = self.algo, self.theta[self.index]
        batch = self._trim(batch)
        returns = est.compute_returns(batch.rewards, batch.mask, algo.gamma, algo.returns)
        b = self._baseline_value(batch.mask.shape[1])
        adv = est.compute_advantages(returns, batch.mask, b, algo.standardize, algo.std_ddof)
        g, info = self._evaluate(theta, batch, adv, probes)
        inc, self.state = self.rule.update(g, self.state, info)
        new = theta + inc
        if algo.method == "rk" and algo.rk_stage == "reuse":  # new = theta~, whatever the RK2 rule
            g2, info2 = self._evaluate(new, batch, adv, probes, at_episode=False)
            inc2, self.state = self.rule.update(g2, self.state, info2)
            new = new + inc2
        self._update_baseline(returns, batch.mask)
        norm = g.norm(dim=-1)
        clipped = norm > algo.clip_norm if algo.clip_norm is not None else torch.zeros_like(norm, dtype=torch.bool)
        diverged = alive & ~torch.isfinite(new).all(dim=-1)
        keep = alive & ~diverged
        self.theta[self.index[keep]] = new[keep]
        return norm, clipped, diverged


# --------------------------------------------------------------------------- training


def _check_compatible(runs: Sequence[RunSpec]) -> RunConfig:
    if not runs:
        raise ValueError("runs must not be empty")
    first = runs[0].config
    shared = ("env_id", "backend", "hidden", "episodes", "eval_episodes")
    for r in runs[1:]:
        for name in shared:
            if getattr(r.config, name) != getattr(first, name):
                raise ValueError(
                    f"runs trained together must share {name}: {getattr(first, name)!r} vs "
                    f"{getattr(r.config, name)!r} (variant {r.variant!r}); train them separately"
                )
    return first


def check_threads(threads) -> int:
    """``threads`` (kernel threads of one training process) as an int >= 1, or a ValueError
    naming it."""
    if not (isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) and threads >= 1):
        raise ValueError(f"threads must be an int >= 1 (kernel threads of this process), got {threads!r}")
    return int(threads)


def make_train(runs: Sequence[RunSpec], *, progress: bool | str = False,
               threads: int = 1) -> Callable[[], list[dict[str, np.ndarray]]]:
    """A function that trains ``runs`` together and returns one result dict per run (in order).

    ``progress``: False, True, or a description for the tqdm bar (rounds of episodes); or a
    callable, called as ``progress(rounds_done, rounds)`` after every round (no bar).
    ``threads``: the fused kernels' threads (backend ``"fused"``; the runs are split between
    them, the numbers do not change); other backends use one.
    """
    runs = list(runs)
    first = _check_compatible(runs)
    threads = check_threads(threads)

    def train() -> list[dict[str, np.ndarray]]:
        with fused.RowSplit(threads if first.backend == "fused" else 1) as split:
            return _train(runs, first, progress, split)

    return train


def _train(runs: list[RunSpec], first: RunConfig, progress, split: fused.RowSplit) -> list[dict[str, np.ndarray]]:
    n, episodes = len(runs), first.episodes
    streams = [run_streams(r.root_seed, r.seed_index) for r in runs]
    env = make_batch(first.env_id, [s.env_seed for s in streams], first.backend)
    spec = policy_spec(env, first.hidden)
    horizon = env.max_episode_steps
    theta = init_params(spec, [s.init for s in streams])
    buf = FusedBuffers(spec, n, horizon, split) if first.backend == "fused" else None
    groups = _make_groups(runs, spec, theta, horizon, buf)

    out = {
        "episode_return": np.full((n, episodes), np.nan),
        "episode_length": np.zeros((n, episodes), np.int64),
        "grad_norm": np.full((n, episodes), np.nan),
        "clipped": np.zeros((n, episodes), bool),
        "update_seconds": np.zeros((n, episodes)),
    }
    diverged_at = np.full(n, -1, np.int64)
    alive = np.ones(n, bool)
    action_gens = [s.actions for s in streams]
    group_probes = [[streams[i].probes for i in g.index.tolist()] for g in groups]
    draw, uniforms = _noise(spec, n, horizon)
    report = progress if callable(progress) else None
    desc = progress if isinstance(progress, str) else f"training {n} runs"
    bar = tqdm(range(episodes), desc=desc, disable=not progress or report is not None, unit="ep", leave=False)
    for ep in bar:
        uniforms = draw(action_gens, uniforms)
        batch = (rollout_fused(spec, theta, env, uniforms, alive, buf) if buf is not None
                 else rollout(spec, theta, env, uniforms, alive))
        lengths = batch.mask.sum(1).numpy()
        out["episode_length"][:, ep] = lengths
        out["episode_return"][alive, ep] = batch.rewards.double().sum(1).numpy()[alive]
        alive_t = torch.from_numpy(alive)
        for g, probes in zip(groups, group_probes):
            t0 = time.perf_counter()
            idx = g.index
            norm, clipped, diverged = g.learn(_select(batch, idx), probes, alive_t[idx])
            rows = idx.numpy()
            out["grad_norm"][rows, ep] = np.where(alive[rows], norm.double().numpy(), np.nan)
            out["clipped"][rows, ep] = clipped.numpy()
            out["update_seconds"][rows, ep] = time.perf_counter() - t0
            for i in rows[diverged.numpy()]:
                diverged_at[i], alive[i] = ep, False
        if report is not None:
            report(ep + 1, episodes)
        elif progress:
            bar.set_postfix(mean_return=f"{np.nanmean(out['episode_return'][:, ep]):.1f}")
    out["env_steps"] = np.cumsum(out["episode_length"], axis=1)
    out["eval_return"] = evaluate(spec, theta, first, streams, alive, split)
    out["diverged_at"] = diverged_at
    return [{k: np.asarray(v[i]) for k, v in out.items()} for i in range(n)]


def _make_groups(runs, spec, theta, horizon, buf=None) -> list[VariantGroup]:
    by_algo: dict[AlgoConfig, list[int]] = {}
    for i, r in enumerate(runs):
        by_algo.setdefault(r.config.algo, []).append(i)
    return [VariantGroup(algo, spec, torch.tensor(ix), theta, horizon, buf) for algo, ix in by_algo.items()]


def evaluate(spec: PolicySpec, theta: torch.Tensor, config: RunConfig, streams: Sequence[RunStreams],
             alive: np.ndarray, split: fused.RowSplit | None = None) -> np.ndarray:
    """Returns of ``config.eval_episodes`` fresh episodes of each final stochastic policy: sampled
    as in training (inverse CDF of fresh uniforms; for the Gaussian head ``mu + sigma * z`` with
    fresh standard normals, clipped for the environment), from the run's evaluation streams."""
    n = len(streams)
    returns = np.full((n, config.eval_episodes), np.nan)
    if config.eval_episodes == 0:
        return returns
    env = make_batch(config.env_id, [s.eval_env_seed for s in streams], config.backend)
    buf = FusedBuffers(spec, n, env.max_episode_steps, split) if config.backend == "fused" else None
    gens = [s.eval_actions for s in streams]
    draw, uniforms = _noise(spec, n, env.max_episode_steps)
    for k in range(config.eval_episodes):
        uniforms = draw(gens, uniforms)
        batch = (rollout_fused(spec, theta, env, uniforms, alive, buf) if buf is not None
                 else rollout(spec, theta, env, uniforms, alive))
        returns[alive, k] = batch.rewards.double().sum(1).numpy()[alive]
    return returns


def _keep_freed_memory() -> None:
    """Ask glibc to reuse freed blocks instead of returning big ones to the OS: every update
    allocates tensors of several MB, and fresh pages cost a page fault each (~15% of an update).
    A no-op where glibc's ``mallopt`` is absent."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class NumericsMismatch(RuntimeError):
    """A worker computes under other numerics than the driver that sent it work."""


def train_runs(runs: Sequence[RunSpec], progress: bool | str = False,
               expected_numerics: str | None = None, threads: int = 1) -> list[dict[str, np.ndarray]]:
    """Train ``runs`` in this process with one torch thread and ``threads`` kernel threads
    (the shard worker).

    ``expected_numerics``: the driver's :func:`pgsom.numerics.signature`; a worker whose own
    differs refuses the shard (its runs would be cached under the driver's key)."""
    from pgsom import numerics

    torch.set_num_threads(1)
    if expected_numerics is not None and numerics.signature() != expected_numerics:
        raise NumericsMismatch(
            f"worker (pid {os.getpid()}) computes under numerics {numerics.signature()!r}, the driver "
            f"under {expected_numerics!r}: start the workers in the same mode (export the variables "
            "of pgsom.numerics.PORTABLE_ENV before they start, or PGSOM_NUMERICS=native on both)")
    numerics.warn_if_outside()
    _keep_freed_memory()
    return make_train(runs, progress=progress, threads=threads)()


# --------------------------------------------------------------------------- sweeps


def training_source_version() -> str:
    """Hash of the training modules' source, of the libraries that compute the numbers
    (python, numpy, torch, gymnasium, numba) and of the numerics mode (:func:`pgsom.numerics.signature`):
    a lock-file upgrade retrains rather than reusing runs, and a run computed natively on one
    CPU is never served as a portable one (or as a native run of another CPU)."""
    import hashlib
    import platform

    import gymnasium

    from pgsom import numerics
    from pgsom.store import source_version

    here = Path(__file__).parent
    import numba

    libraries = (f"python {platform.python_version()} numpy {np.__version__} torch {torch.__version__} "
                 f"gymnasium {gymnasium.__version__} numba {numba.__version__}")
    text = f"{source_version(training_modules())} {libraries} {numerics.signature()}"
    return hashlib.sha256(text.encode()).hexdigest()


# The sweep half (sharding, executors, caching) lives in pgsom.sweep; these names stay importable
# from here for code written before the move.
_SWEEP_NAMES = ("run_key", "plan_shards", "run_sweep", "run_many")


def __getattr__(name: str):
    if name in _SWEEP_NAMES:
        from pgsom import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
