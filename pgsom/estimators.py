"""Single-episode estimators: returns, baselines, the REINFORCE gradient, the diagonal Hessian
of J, and Fisher-vector products. Everything is batched over runs.

Shapes: ``R`` runs, ``T`` padded steps (a multiple of ``policy.TIME_BLOCK``; every sum over
time is padding-invariant, see ``policy.time_sum``), ``d`` parameters, ``A`` actions (or the
action dimension of a Gaussian head). ``mask[r, t]`` is True
on real steps. Notation and derivations as in docs/design.md, 'Algorithms': per-step score
``s_t = grad log pi(a_t|s_t)``, summed score ``S = sum_t s_t``, advantage ``A_t``.

    g = sum_t A_t s_t + beta_H grad sum_t H(pi(.|s_t))                       (ascent direction)
    h = g_J * S + diag grad^2 (sum_t A_t log pi(a_t|s_t))                    (Lemma 3.1)

where ``g_J`` is the return part of ``g``. With undiscounted returns (``total`` or reward-to-go
with gamma = 1) and no standardisation, ``E[g] = grad J`` and ``E[h] = diag grad^2 J``: the
score outer-product term ``E[R S S^T]`` has diagonal ``E[g_J * S]`` (future scores have zero
conditional mean) and the second term is the exact diagonal of the surrogate Hessian. A
baseline built from *past* episodes keeps both unbiased (Fisher identity
``E[s_t s_t^T + grad^2 log pi] = 0``). ``tests/test_estimators.py`` checks this by enumerating
a small MDP.

Both policy heads (``PolicySpec.head``) share these functions; each dispatches on the head
inside (the categorical arithmetic is the same as before the Gaussian head existed). With
o = the network's output (logits, or the Gaussian mean mu), ``delta = dlog pi/do`` and
``H_o = d^2 log pi/do^2``:

    categorical:  delta = onehot(a) - p,         H_o = -(diag p - p p^T)
    gaussian:     delta = (a - mu) / sigma^2,    H_o = -diag(1 / sigma^2),
                  dlog pi/dlog sigma = z^2 - 1,  d^2 log pi/dlog sigma^2 = -2 z^2,  z = (a - mu) / sigma

(the mean-log sigma cross terms are off the diagonal of the Hessian; the Gaussian's entropy
``sum_i log sigma_i + A (1 + log 2 pi) / 2`` per step depends on ``log_std`` only).
``tests/test_heads.py`` checks both heads against ``torch.func`` and the Gaussian estimators'
unbiasedness on a linear-Gaussian bandit.
"""

from __future__ import annotations

import functools

from typing import NamedTuple

import torch

from pgsom.policy import (
    Forward, PolicySpec, action_log_prob, bmm, forward, logits_jvp, logits_vjp, time_contract, time_sum, unflatten,
)

ADV_EPS = 1e-8


class EpisodeBatch(NamedTuple):
    """One episode per run, padded to ``T`` steps."""

    obs: torch.Tensor  # (R, T, obs_size) float32
    actions: torch.Tensor  # (R, T) int64; Gaussian head: (R, T, A) float32, the unclipped samples, 0 on padding
    rewards: torch.Tensor  # (R, T) float32, 0 on padding
    mask: torch.Tensor  # (R, T) bool


class BaselineState(NamedTuple):
    """Bias-corrected EMA over past episodes of the reward-to-go at each time index t."""

    weighted_sum: torch.Tensor  # (R, T) float64
    weight: torch.Tensor  # (R, T) float64: 1 - decay^(episodes that reached t)


class RunningMeanState(NamedTuple):
    """Equal-weight mean over past episodes of each episode's return G_0: ``total / count``."""

    total: torch.Tensor  # (R, 1) float64: sum of the past episodes' G_0
    count: torch.Tensor  # (R, 1) float64: number of past episodes


class GradientEstimate(NamedTuple):
    g: torch.Tensor  # (R, d) ascent direction incl. the entropy term
    g_return: torch.Tensor  # (R, d) return part sum_t A_t s_t
    score_sum: torch.Tensor | None  # (R, d) S = sum_t s_t, when asked for


# --------------------------------------------------------------------------- returns


def compute_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float, kind: str) -> torch.Tensor:
    """``reward_to_go``: G_t = sum_{t'>=t} gamma^(t'-t) r_t'; ``total``: R(tau) at every step.

    Computed in float64 as a reversed cumulative sum; zero on padding.
    """
    r = rewards.double() * mask
    if kind == "total":
        return time_sum(r).unsqueeze(1) * mask
    if kind != "reward_to_go":
        raise ValueError(f"returns must be 'reward_to_go' or 'total', got {kind!r}")
    if gamma == 1.0:
        return r.flip(1).cumsum(1).flip(1) * mask
    if gamma >= 0.5:
        # G_t = gamma^-t sum_{t'>=t} gamma^t' r_t': a sequential scan, exact in float64 range for
        # T <= 1000 (0.5^1000 ~ 1e-301); smaller gammas use the recursion below.
        # Python's float power per index: the same bits for step t whatever the padded length T
        # (torch's vectorised pow rounds the tail of a vector differently from its body).
        disc = _discounts(gamma, r.shape[1])
        return (r * disc).flip(1).cumsum(1).flip(1) / disc * mask
    out = torch.zeros_like(r)
    running = torch.zeros(r.shape[0], dtype=torch.float64)
    for k in range(r.shape[1] - 1, -1, -1):
        running = r[:, k] + gamma * running
        out[:, k] = running
    return out * mask


@functools.lru_cache(maxsize=64)
def _discounts(gamma: float, steps: int) -> torch.Tensor:
    """``[gamma**0, ..., gamma**(steps - 1)]`` (float64; Python's power per index, see
    :func:`compute_returns`), computed once per (gamma, steps): callers must not write to it."""
    return torch.tensor([gamma**k for k in range(steps)], dtype=torch.float64)


def init_baseline(n_runs: int, horizon: int) -> BaselineState:
    zeros = torch.zeros(n_runs, horizon, dtype=torch.float64)
    return BaselineState(zeros, zeros.clone())


def baseline_value(state: BaselineState) -> torch.Tensor:
    """b_t = bias-corrected EMA of past G_t; 0 where no past episode reached step t."""
    w = state.weight
    return torch.where(w > 0, state.weighted_sum / w.clamp_min(1e-300), torch.zeros_like(w))


def update_baseline(state: BaselineState, returns: torch.Tensor, mask: torch.Tensor, decay: float) -> BaselineState:
    """Fold this episode's G_t into the EMA at the steps it reached (call after using b_t).
    ``returns``/``mask`` may be shorter than the state's horizon (the rest is unreached)."""
    pad = state.weight.shape[1] - returns.shape[1]
    returns = torch.nn.functional.pad(returns.double(), (0, pad))
    m = torch.nn.functional.pad(mask.double(), (0, pad))
    keep = 1 - (1 - decay) * m
    return BaselineState(state.weighted_sum * keep + (1 - decay) * m * returns, state.weight * keep + (1 - decay) * m)


def init_running_mean(n_runs: int) -> RunningMeanState:
    zeros = torch.zeros(n_runs, 1, dtype=torch.float64)
    return RunningMeanState(zeros, zeros.clone())


def running_mean_value(state: RunningMeanState) -> torch.Tensor:
    """b = (1/k) sum_{j<k} G_0^(j), the plain mean of the k past episodes' returns G_0, shape
    (R, 1) (it broadcasts over time); 0 before the first episode."""
    c = state.count
    return torch.where(c > 0, state.total / c.clamp_min(1), torch.zeros_like(c))


def update_running_mean(state: RunningMeanState, returns: torch.Tensor, mask: torch.Tensor) -> RunningMeanState:
    """Fold this episode's G_0 = ``returns[:, 0]`` (the output of :func:`compute_returns`: R(tau)
    for ``total`` or gamma = 1, the discounted return from the start otherwise) into the mean
    (call after using b). An episode with no real step (a diverged run's) does not count."""
    reached = mask[:, :1].double()
    return RunningMeanState(state.total + returns[:, :1].double() * reached, state.count + reached)


def compute_advantages(
    returns: torch.Tensor, mask: torch.Tensor, baseline: torch.Tensor | None = None, standardize: bool = True,
    ddof: int = 0,
) -> torch.Tensor:
    """A_t = G_t - b_t (``baseline`` (R, T), or (R, 1) for a constant one), then (optionally)
    standardised over the episode's n real steps: (A - mean) / (std + 1e-8) with
    std = sqrt(sum_t (A_t - mean)^2 / max(n - ddof, 1)): ``ddof=0`` the population std, ``1``
    the sample std (``torch.std``'s default). A one-step episode gets A = 0 either way.
    Returns float32, zero on padding."""
    if not (isinstance(ddof, int) and not isinstance(ddof, bool) and ddof >= 0):
        raise ValueError(f"ddof must be an int >= 0, got {ddof!r}")
    adv = returns.double() - (0 if baseline is None else baseline)
    m = mask.double()
    if standardize:
        n = m.sum(1, keepdim=True).clamp_min(1)  # an exact integer count
        dof = n if ddof == 0 else (n - ddof).clamp_min(1)
        mean = time_sum(adv * m).unsqueeze(1) / n
        std = (time_sum((adv - mean) ** 2 * m).unsqueeze(1) / dof).sqrt()
        adv = (adv - mean) / (std + ADV_EPS)
    return (adv * m).float()


# --------------------------------------------------------------------------- gradients


def _logit_cotangents(log_probs: torch.Tensor, batch: EpisodeBatch, weights: torch.Tensor) -> torch.Tensor:
    """d/dlogits of sum_t w_t log pi(a_t|s_t): w_t (onehot(a_t) - p_t)."""
    p = log_probs.exp()
    onehot = torch.nn.functional.one_hot(batch.actions, p.shape[-1]).to(p.dtype)
    return (weights * batch.mask).unsqueeze(-1) * (onehot - p)


def _entropy_cotangents(log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """d/dlogits of sum_t H(pi(.|s_t)): -p_k (log p_k + H)."""
    p = log_probs.exp()
    entropy = -(p * log_probs).sum(-1, keepdim=True)
    return -p * (log_probs + entropy) * mask.unsqueeze(-1)


def _gaussian_z(fwd: Forward, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """z_t = (a_t - mu_t) / sigma, (R, T, A), and 1 / sigma, (R, 1, A)."""
    inv_std = torch.exp(-fwd.log_std).unsqueeze(1)
    return (batch.actions - fwd.logits) * inv_std, inv_std


def _weighted_score(
    spec: PolicySpec, theta: torch.Tensor, fwd: Forward, batch: EpisodeBatch, weights: torch.Tensor
) -> torch.Tensor:
    """sum_t w_t s_t, (R, d): the network part as one VJP of output cotangents w_t delta_t; the
    Gaussian head's log_std part sum_t w_t (z_t^2 - 1) appended."""
    if not spec.gaussian:
        return logits_vjp(spec, theta, fwd, _logit_cotangents(fwd.log_probs, batch, weights))
    c = (weights * batch.mask).unsqueeze(-1)
    z, inv_std = _gaussian_z(fwd, batch)
    net = logits_vjp(spec, theta, fwd, c * z * inv_std)
    return torch.cat([net, time_sum(c * (z * z - 1))], dim=1)


def _entropy_gradient(spec: PolicySpec, theta: torch.Tensor, fwd: Forward, mask: torch.Tensor) -> torch.Tensor:
    """grad sum_t H(pi(.|s_t)), (R, d). Gaussian: H = sum_i log sigma_i + const, so zero on the
    network and the number of real steps on each log_std."""
    if not spec.gaussian:
        return logits_vjp(spec, theta, fwd, _entropy_cotangents(fwd.log_probs, mask))
    steps = time_sum(mask.to(theta.dtype).unsqueeze(-1))  # (R, 1)
    return torch.cat([theta.new_zeros(theta.shape[0], spec.n_net_params), steps.expand(-1, spec.n_actions)], dim=1)


def policy_forward(spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch) -> Forward:
    """The forward pass every estimator below can share (no autograd graph)."""
    with torch.no_grad():
        return forward(spec, theta, batch.obs)


def policy_gradient(
    spec: PolicySpec,
    theta: torch.Tensor,
    batch: EpisodeBatch,
    advantages: torch.Tensor,
    entropy_coef: float = 0.0,
    with_score_sum: bool = False,
    fwd: Forward | None = None,
) -> GradientEstimate:
    """g = sum_t A_t s_t + entropy_coef * grad sum_t H_t per run: each term is one
    vector-Jacobian product of per-step logit cotangents (``policy.logits_vjp``); the Gaussian
    head's log_std entries in closed form (``_weighted_score``, ``_entropy_gradient``)."""
    fwd = fwd or policy_forward(spec, theta, batch)
    with torch.no_grad():
        g_return = _weighted_score(spec, theta, fwd, batch, advantages)
        g = g_return
        if entropy_coef:
            g = g + entropy_coef * _entropy_gradient(spec, theta, fwd, batch.mask)
        score_sum = None
        if with_score_sum:
            ones = torch.ones_like(advantages)
            score_sum = _weighted_score(spec, theta, fwd, batch, ones)
    return GradientEstimate(g, g_return, score_sum)


# --------------------------------------------------------------------------- Hessian diagonal


def surrogate_diag_hessian_exact(
    spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch, weights: torch.Tensor, fwd: Forward | None = None
) -> torch.Tensor:
    """Exact diag grad^2 sum_t w_t log pi(a_t|s_t) for a linear or one-hidden-layer policy.

    With q = p(1 - p), delta = onehot(a) - p, last layer (input x):
        d2/db_k^2 = -q_k,   d2/dW_kj^2 = -q_k x_j^2;
    hidden tanh layer (a = tanh(z), z = W1 x + b1, w_j = W2[:, j]):
        d2/dz_j^2 = -2 a_j (1 - a_j^2) (w_j . delta) - (1 - a_j^2)^2 (sum_k p_k w_kj^2 - (p . w_j)^2),
        d2/db1_j^2 = d2/dz_j^2,   d2/dW1_ji^2 = d2/dz_j^2 x_i^2.
    Gaussian head: the same with the Gaussian's delta and H_o (``_gaussian_diag_hessian``).
    Checked against ``torch.func.hessian`` in tests.
    """
    if len(spec.hidden) > 1:
        raise ValueError(f"exact diagonal supports hidden=() or one layer, got {spec.hidden}")
    fwd = fwd or policy_forward(spec, theta, batch)
    if spec.gaussian:
        return _gaussian_diag_hessian(spec, theta, batch, weights, fwd)
    with torch.no_grad():
        p = fwd.log_probs.exp()
        c = (weights * batch.mask).unsqueeze(-1)  # (R, T, 1)
        x_last = fwd.inputs[-1]
        cq = -c * p * (1 - p)  # (R, T, A)
        x_last_sq = x_last * x_last
        parts = [time_contract(cq, x_last_sq), time_sum(cq)]
        if spec.hidden:
            x, act = fwd.inputs[0], fwd.inputs[1]
            w2 = theta[:, -spec.n_actions * (spec.hidden[0] + 1) : -spec.n_actions]
            w2 = w2.reshape(-1, spec.n_actions, spec.hidden[0])
            onehot = torch.nn.functional.one_hot(batch.actions, spec.n_actions).to(p.dtype)
            slope = 1 - x_last_sq  # x_last is the tanh activation here
            # variance of w_j under p: sum_k p_k w_kj^2 - (p . w_j)^2, all (R, T, H)
            pw = torch.matmul(p, w2)
            var = torch.matmul(p, w2 * w2).sub_(pw.mul_(pw))
            # d2z = slope * (-2 act (w_j . delta) - slope var), then weighted by c_t
            cz = torch.matmul(onehot - p, w2).mul_(act).mul_(-2.0).sub_(var.mul_(slope)).mul_(slope).mul_(c)
            parts = [time_contract(cz, x * x), time_sum(cz), *parts]
        return torch.cat([q.reshape(q.shape[0], -1) for q in parts], dim=1)


@torch.no_grad()
def _gaussian_diag_hessian(
    spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch, weights: torch.Tensor, fwd: Forward
) -> torch.Tensor:
    """The Gaussian head's exact diag grad^2 sum_t c_t log pi(a_t|s_t), c_t = w_t on real steps.

    With H_o = -diag(1/sigma^2) and delta = (a - mu)/sigma^2, last layer (input x):
        d2/db_k^2 = -sum_t c_t / sigma_k^2,   d2/dW_kj^2 = -sum_t c_t x_tj^2 / sigma_k^2;
    hidden tanh layer (a = tanh(z), w_j = W2[:, j]):
        d2/dz_j^2 = -2 a_j (1 - a_j^2) (w_j . delta) - (1 - a_j^2)^2 sum_k w_kj^2 / sigma_k^2;
    log_std:  d2/dlog sigma_i^2 = -2 sum_t c_t z_ti^2.
    """
    c = (weights * batch.mask).unsqueeze(-1)  # (R, T, 1)
    z, inv_std = _gaussian_z(fwd, batch)
    inv_var = inv_std * inv_std  # (R, 1, A)
    x_last = fwd.inputs[-1]
    cq = -c * inv_var  # (R, T, A)
    parts = [time_contract(cq, x_last * x_last), time_sum(cq)]
    if spec.hidden:
        x, act = fwd.inputs[0], fwd.inputs[1]
        w2 = unflatten(spec, theta)[-1].weight  # (R, A, H)
        slope = 1 - act * act
        w_delta = bmm(z * inv_std, w2)  # (R, T, H): w_j . delta_t
        w_var = bmm(inv_var, w2 * w2)  # (R, 1, H): sum_k w_kj^2 / sigma_k^2
        cz = (-2 * act * w_delta - slope * w_var) * slope * c
        parts = [time_contract(cz, x * x), time_sum(cz), *parts]
    parts.append(time_sum(-2 * c * z * z))
    return torch.cat([q.reshape(q.shape[0], -1) for q in parts], dim=1)


def surrogate_diag_hessian_hutchinson(
    spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch, weights: torch.Tensor, probe: torch.Tensor
) -> torch.Tensor:
    """z * (H z) with H = grad^2 sum_t w_t log pi(a_t|s_t) and a Rademacher probe z (R, d):
    unbiased for diag H (E[z z^T] = I); one Hessian-vector product by double backward."""
    th = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        chosen = action_log_prob(spec, forward(spec, th, batch.obs), batch.actions)
        objective = (weights * batch.mask * chosen).sum()
        (grad,) = torch.autograd.grad(objective, th, create_graph=True)
        (hvp,) = torch.autograd.grad(grad, th, probe)
    return probe * hvp


def diag_hessian(
    spec: PolicySpec,
    theta: torch.Tensor,
    batch: EpisodeBatch,
    advantages: torch.Tensor,
    estimate: GradientEstimate,
    *,
    estimator: str = "exact",
    terms: str = "full",
    probe: torch.Tensor | None = None,
    fwd: Forward | None = None,
) -> torch.Tensor:
    """h = g_J * S + diag grad^2 (sum_t A_t log pi) (``terms="full"``), or the second term
    alone (``"surrogate"``); the second term ``exact`` or by ``hutchinson`` with ``probe``."""
    if estimator == "exact":
        h = surrogate_diag_hessian_exact(spec, theta, batch, advantages, fwd)
    elif estimator == "hutchinson":
        if probe is None:
            raise ValueError("hessian_estimator='hutchinson' needs a Rademacher probe")
        h = surrogate_diag_hessian_hutchinson(spec, theta, batch, advantages, probe)
    else:
        raise ValueError(f"hessian_estimator must be 'exact' or 'hutchinson', got {estimator!r}")
    if terms == "full":
        if estimate.score_sum is None:
            raise ValueError("hessian_terms='full' needs the score sum (with_score_sum=True)")
        return h + estimate.g_return * estimate.score_sum
    if terms != "surrogate":
        raise ValueError(f"hessian_terms must be 'full' or 'surrogate', got {terms!r}")
    return h


# --------------------------------------------------------------------------- Fisher


def fisher_vector_product(
    spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch, kind: str = "empirical", fwd: Forward | None = None
):
    """Return ``v -> F v`` per run, F = mean over the episode's steps of
    ``s_t s_t^T`` (``empirical``, taken actions) or ``E_a[s s^T]`` (``expected``, the KL Hessian).

    F v = (1/N) sum_t J_t^T M_t J_t v with J_t = dlogits_t/dtheta and, in logit space,
    M_t = delta_t delta_t^T (empirical) or diag(p_t) - p_t p_t^T (expected): one JVP and one VJP.

    Gaussian head: s_t = (J_t^T delta_t, z_t^2 - 1) with delta_t = (a_t - mu_t)/sigma^2 (network,
    log_std); empirical F v = (1/N) sum_t s_t (s_t . v); expected, in closed form,
    F = ((1/N) sum_t J_t^T diag(1/sigma^2) J_t) (+) 2 I on log_std (no cross terms:
    E[z (z^2 - 1)] = 0, and E[(z_i^2 - 1)(z_j^2 - 1)] = 2 [i = j]); an episode with no real
    step gets F v = 0, as for the categorical head.
    """
    if kind not in ("empirical", "expected"):
        raise ValueError(f"fisher must be 'empirical' or 'expected', got {kind!r}")
    fwd = fwd or policy_forward(spec, theta, batch)
    if spec.gaussian:
        return _gaussian_fisher_vector_product(spec, theta, batch, kind, fwd)
    p = fwd.log_probs.exp()
    onehot = torch.nn.functional.one_hot(batch.actions, spec.n_actions).to(p.dtype)
    delta = onehot - p
    mask = batch.mask.to(p.dtype)
    scale = (mask / mask.sum(1, keepdim=True).clamp_min(1)).unsqueeze(-1)

    @torch.no_grad()
    def fvp(v: torch.Tensor) -> torch.Tensor:
        jv = logits_jvp(spec, theta, fwd, v)
        if kind == "empirical":
            m = delta * (delta * jv).sum(-1, keepdim=True)
        else:
            m = p * jv - p * (p * jv).sum(-1, keepdim=True)
        return logits_vjp(spec, theta, fwd, m * scale)

    return fvp


def _gaussian_fisher_vector_product(spec: PolicySpec, theta: torch.Tensor, batch: EpisodeBatch, kind: str,
                                    fwd: Forward):
    z, inv_std = _gaussian_z(fwd, batch)
    delta = z * inv_std  # dlog pi/dmu
    ls_score = z * z - 1  # dlog pi/dlog sigma
    inv_var = inv_std * inv_std
    mask = batch.mask.to(z.dtype)
    n = mask.sum(1, keepdim=True)
    scale = (mask / n.clamp_min(1)).unsqueeze(-1)  # (R, T, 1)
    has_steps = (n > 0).to(z.dtype)  # (R, 1)
    sl = spec.log_std_slice

    @torch.no_grad()
    def fvp(v: torch.Tensor) -> torch.Tensor:
        jv = logits_jvp(spec, theta, fwd, v)
        if kind == "empirical":
            sv = (delta * jv).sum(-1, keepdim=True) + (ls_score * v[:, None, sl]).sum(-1, keepdim=True)
            m = sv * scale  # (R, T, 1): (s_t . v) / N on real steps
            return torch.cat([logits_vjp(spec, theta, fwd, delta * m), time_sum(ls_score * m)], dim=1)
        return torch.cat([logits_vjp(spec, theta, fwd, inv_var * jv * scale), 2 * has_steps * v[:, sl]], dim=1)

    return fvp


def damped_solve(fvp, g: torch.Tensor, damping: float, iters: int) -> torch.Tensor:
    """Solve (F + damping I) x = g per run by ``iters`` steps of conjugate gradient (TRPO's
    choice); exact after d steps, and SPD, so CG is well posed."""
    x = torch.zeros_like(g)
    r = g.clone()
    p = r.clone()
    rs = (r * r).sum(-1, keepdim=True)
    for _ in range(iters):
        ap = fvp(p) + damping * p
        pap = (p * ap).sum(-1, keepdim=True)
        alpha = torch.where(pap > 0, rs / pap.clamp_min(1e-30), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum(-1, keepdim=True)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    return x
