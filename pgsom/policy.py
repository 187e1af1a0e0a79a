"""MLP policies whose parameters are stacked over runs: a softmax (Categorical) head for
discrete actions, a diagonal Gaussian head for continuous ones.

Shape convention: ``theta`` is ``(R, d)``, one flat parameter vector per run; observations are
``(R, T, obs_size)`` (or ``(R, obs_size)`` while acting). Layer ``k`` is stored as its weight
``W_k`` (out, in) followed by its bias ``b_k``, row-major, so that one batched matmul serves
every run and a run's numbers never depend on which other runs share the batch. The network

    f_theta(s) = W_L tanh(... tanh(W_1 s + b_1) ...) + b_L

gives, by ``PolicySpec.head``:

* ``"categorical"`` (the default): ``pi_theta(. | s) = softmax(f_theta(s))`` over
  ``n_actions`` actions; ``theta`` is the network's parameters only.
* ``"gaussian"``: ``pi_theta(. | s) = N(mu = f_theta(s), diag sigma^2)`` with ``n_actions``
  the action *dimension* A and a state-independent ``log_std`` (log sigma, one per action
  dimension) stored after the network: ``theta[:, spec.n_net_params:]`` (the last A entries,
  ``spec.log_std_slice``).

Initialisation is ``torch.nn.Linear``'s default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
weights and biases, drawn from the run's own ``numpy.random.Generator`` (the same draws for
both heads); the Gaussian's ``log_std`` starts at ``INIT_LOG_STD`` = 0 (no draw).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


HEADS = ("categorical", "gaussian")
"""The policy heads (``PolicySpec.head``)."""

INIT_LOG_STD = 0.0
"""Initial log sigma of the Gaussian head: sigma = 1 in every action dimension.

The common default (Stable-Baselines3's ``log_std_init``; Spinning Up uses -0.5): with
observations and actions of order one (gymnasium's MuJoCo and Box2D tasks, bounds [-1, 1])
it explores the whole action box at first (often clipped: see :func:`clip_actions`) and lets
the gradient shrink sigma. Nothing in the paper fixes it."""

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class PolicySpec:
    """Architecture of the policy: the MLP and its head."""

    obs_size: int
    """Observation dimension."""
    n_actions: int
    """The network's output width: the number of discrete actions (``categorical``) or the
    action dimension A (``gaussian``, the mean's dimension and the number of ``log_std``)."""
    hidden: tuple[int, ...] = (64,)
    """Hidden widths (tanh); () gives a linear (log-linear, exponential-family) softmax, or a
    linear-Gaussian policy."""
    head: str = "categorical"
    """``"categorical"`` (softmax over ``n_actions`` discrete actions; actions int64) or
    ``"gaussian"`` (N(mu(s), diag sigma^2), ``log_std`` after the network; actions float,
    ``(..., n_actions)``)."""

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.obs_size, *self.hidden, self.n_actions)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each linear layer."""
        sizes = self.layer_sizes
        return [(sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)]

    @property
    def gaussian(self) -> bool:
        return self.head == "gaussian"

    @property
    def n_net_params(self) -> int:
        """Parameters of the network (the first ``n_net_params`` entries of theta)."""
        return sum(o * i + o for o, i in self.layer_shapes)

    @property
    def n_params(self) -> int:
        """d: the network's parameters, then (Gaussian head) the ``n_actions`` log-stds."""
        return self.n_net_params + (self.n_actions if self.gaussian else 0)

    @property
    def log_std_slice(self) -> slice:
        """Where the Gaussian head's ``log_std`` lies in theta: the last ``n_actions`` entries."""
        if not self.gaussian:
            raise ValueError("only the gaussian head has log_std parameters")
        return slice(self.n_net_params, self.n_params)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.matmul(a, b)`` of batched matrices ``(..., M, K) @ (..., K, N)``, each output matrix
    independent of the batch size also where M, K or N is 1.

    torch's batched matrix-vector path (N = 1: a Gaussian head with one action dimension, such as
    InvertedPendulum's) rounds a run's numbers differently alone and inside a batch; a dimension of
    1 is therefore padded to 2 with zeros (the product is mathematically the same, the extra
    row/column is sliced off). Where every dimension is at least 2 this is ``torch.matmul``
    itself, the same numbers as before (every Categorical head here has at least 2 actions)."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if m > 1 and k > 1 and n > 1:
        return torch.matmul(a, b)
    if m == 1:
        a = torch.cat([a, torch.zeros_like(a)], dim=-2)
    if k == 1:
        a = torch.cat([a, torch.zeros_like(a)], dim=-1)
        b = torch.cat([b, torch.zeros_like(b)], dim=-2)
    if n == 1:
        b = torch.cat([b, torch.zeros_like(b)], dim=-1)
    return torch.matmul(a, b)[..., :m, :n]


class Layer(NamedTuple):
    weight: torch.Tensor  # (R, out, in)
    bias: torch.Tensor  # (R, out)


class Forward(NamedTuple):
    """Intermediates of a forward pass (inputs of the closed-form derivatives)."""

    inputs: list[torch.Tensor]  # input of each layer: obs, then each hidden activation
    logits: torch.Tensor  # (R, T, A) the network's output: logits, or the Gaussian mean mu
    log_probs: torch.Tensor | None  # (R, T, A) log-softmax; None for the Gaussian head
    log_std: torch.Tensor | None = None  # (R, A) the Gaussian head's log sigma; None otherwise


def unflatten(spec: PolicySpec, theta: torch.Tensor) -> list[Layer]:
    """Views of the flat ``(R, d)`` parameters as per-layer weights and biases (the network's;
    the Gaussian head's trailing ``log_std`` is not a layer)."""
    layers, start = [], 0
    for out, inp in spec.layer_shapes:
        w = theta[:, start : start + out * inp].reshape(-1, out, inp)
        start += out * inp
        b = theta[:, start : start + out]
        start += out
        layers.append(Layer(w, b))
    return layers


def flatten(layers: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Inverse of :func:`unflatten` for per-layer ``(R, out, in)`` / ``(R, out)`` tensors (the
    network part of theta: append ``log_std`` for the Gaussian head)."""
    parts = []
    for w, b in layers:
        parts += [w.reshape(w.shape[0], -1), b]
    return torch.cat(parts, dim=1)


def init_params(spec: PolicySpec, rngs: Sequence[np.random.Generator]) -> torch.Tensor:
    """``(R, d)`` float32 parameters, run ``r`` drawn from ``rngs[r]`` only. The network's draws
    do not depend on the head; the Gaussian head's ``log_std`` is ``INIT_LOG_STD``."""
    rows = []
    for rng in rngs:
        parts = []
        for out, inp in spec.layer_shapes:
            bound = 1.0 / np.sqrt(inp)
            parts.append(rng.uniform(-bound, bound, size=out * inp))
            parts.append(rng.uniform(-bound, bound, size=out))
        if spec.gaussian:
            parts.append(np.full(spec.n_actions, INIT_LOG_STD))
        rows.append(np.concatenate(parts))
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh; numpy's kernel (several times faster than torch's on CPU, and the one the runner's
    numpy actor uses) when no autograd is involved, torch's otherwise."""
    if torch.is_grad_enabled() or x.requires_grad or x.device.type != "cpu":
        return torch.tanh(x)
    return torch.from_numpy(np.tanh(x.numpy()))


def _transposed(w: torch.Tensor) -> torch.Tensor:
    """``W^T`` of batched weights ``(R, out, in)`` as a contiguous ``(R, in, out)`` tensor. A
    product with the transposed *view* rounds some rows differently with the number of rows
    (the padded episode length), which made a run's numbers depend on its batch; with a
    contiguous operand each row's product is the same whatever the padding (tested)."""
    return w.transpose(1, 2).contiguous()


def forward(spec: PolicySpec, theta: torch.Tensor, obs: torch.Tensor) -> Forward:
    """Logits and log-probabilities for ``obs`` of shape ``(R, T, obs_size)``; for the Gaussian
    head the mean (in ``logits``) and ``log_std`` (a copy of theta's, differentiable)."""
    layers = unflatten(spec, theta)
    x, inputs = obs, []
    for k, (w, b) in enumerate(layers):
        inputs.append(x)
        x = bmm(x, _transposed(w)) + b.unsqueeze(1)
        if k < len(layers) - 1:
            x = _tanh(x)
    if spec.gaussian:
        return Forward(inputs, x, None, theta[:, spec.log_std_slice].clone())
    return Forward(inputs, x, torch.log_softmax(x, dim=-1))


def action_log_prob(spec: PolicySpec, fwd: Forward, actions: torch.Tensor) -> torch.Tensor:
    """``(R, T)``: log pi(a_t | s_t) of the taken actions (differentiable when ``fwd`` is).

    ``actions`` is ``(R, T)`` int64 (categorical) or ``(R, T, A)`` float (gaussian: the
    *unclipped* samples, whose density this is):
    ``log N(a; mu, diag sigma^2) = sum_i -z_i^2 / 2 - log sigma_i - log sqrt(2 pi)``,
    ``z = (a - mu) / sigma``.
    """
    if not spec.gaussian:
        return fwd.log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    log_std = fwd.log_std.unsqueeze(1)
    z = (actions - fwd.logits) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - LOG_SQRT_2PI).sum(-1)


TIME_BLOCK = 50
"""Sums over time run in fixed blocks of this many steps, then block by block in order.

A run's numbers must not depend on the batch it trains in, and the batch decides how far its
episodes are padded (to the longest episode, rounded up to a multiple of TIME_BLOCK). A plain
``sum`` over T groups additions by the vector width and the tail, which changes with T, so
padding with zeros could change the rounding. Summing fixed-size blocks and then adding the
block totals one after another (``cumsum``) makes trailing all-zero blocks add exact zeros.
"""


def pad_time(t: int) -> int:
    """The padded length for episodes of at most ``t`` steps."""
    return max(1, -(-t // TIME_BLOCK)) * TIME_BLOCK


def _pad_to_block(x: torch.Tensor) -> torch.Tensor:
    extra = pad_time(x.shape[1]) - x.shape[1]
    if extra == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], dim=1)


def time_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over dim 1 (time), invariant to trailing zero padding."""
    x = _pad_to_block(x)
    r, t = x.shape[:2]
    blocks = x.reshape(r, t // TIME_BLOCK, TIME_BLOCK, *x.shape[2:]).sum(2)
    return blocks.cumsum(1)[:, -1]


def time_contract(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(R, I, J)`` = sum_t a[:, t, :, None] * b[:, t, None, :], padding-invariant like time_sum."""
    a, b = _pad_to_block(a), _pad_to_block(b)
    r, t, i = a.shape
    nb = t // TIME_BLOCK
    ab = bmm(a.reshape(r * nb, TIME_BLOCK, i).transpose(1, 2), b.reshape(r * nb, TIME_BLOCK, -1))
    return ab.reshape(r, nb, i, -1).cumsum(1)[:, -1]


def logits_vjp(spec: PolicySpec, theta: torch.Tensor, fwd: Forward, cotangent: torch.Tensor) -> torch.Tensor:
    """``(R, n_net_params)``: sum_t J_t^T c_t with J_t = dlogits_t/dtheta (backprop written out):
    the network's parameters (all of d for the categorical head, all but ``log_std`` for the
    Gaussian one, whose ``logits`` are the mean).

    ``cotangent`` is ``(R, T, A)``. The tanh derivative is taken from the stored activations.
    Equal to ``torch.autograd.grad(logits, theta, cotangent)`` (tested), without the graph.
    """
    layers = unflatten(spec, theta)
    grads: list[tuple[torch.Tensor, torch.Tensor]] = []
    delta = cotangent
    for k in range(len(layers) - 1, -1, -1):
        x = fwd.inputs[k]
        grads.append((time_contract(delta, x), time_sum(delta)))
        if k > 0:
            delta = bmm(delta, layers[k].weight).mul_((x * x).neg_().add_(1))
    return flatten(grads[::-1])


def logits_jvp(spec: PolicySpec, theta: torch.Tensor, fwd: Forward, tangent: torch.Tensor) -> torch.Tensor:
    """``(R, T, A)``: J_t v for a parameter tangent ``v`` of shape ``(R, d)`` (forward mode; a
    Gaussian head's ``log_std`` entries of ``v`` do not move the mean and are ignored)."""
    layers, dlayers = unflatten(spec, theta), unflatten(spec, tangent)
    dx = None
    for k, ((w, _), (dw, db)) in enumerate(zip(layers, dlayers)):
        x = fwd.inputs[k]
        dpre = bmm(x, _transposed(dw)) + db.unsqueeze(1)
        if dx is not None:
            dpre = dpre + bmm(dx, _transposed(w))
        if k < len(layers) - 1:
            out = fwd.inputs[k + 1]
            dx = (out * out).neg_().add_(1).mul_(dpre)
    return dpre


def sample_actions(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: action = number of cumulative probabilities below ``u``.

    Comparing pre-drawn uniforms with the probabilities is exact in distribution and several
    times cheaper than ``Categorical.sample`` (docs/design.md, 'Numerics and pitfalls').
    """
    cdf = np.cumsum(probs[:, :-1], axis=1)
    return (uniforms[:, None] >= cdf).sum(axis=1).astype(np.int64)


def sample_gaussian(mean: np.ndarray, log_std: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """The Gaussian head's actions ``a = mu + exp(log_std) * z`` from caller-drawn standard
    normals ``z`` (the counterpart of :func:`sample_actions`' pre-drawn uniforms).

    ``mean`` (R, A), ``log_std`` (R, A) or (A,), ``normals`` (R, A); e.g. run r's row of
    ``gens[r].standard_normal((horizon, A))`` at step t, one stream per run. Computed in
    numpy's promoted precision (float64 with float64 normals) and returned in ``mean``'s dtype:
    that value is the action to store (unclipped) and to score; the environment gets
    :func:`clip_actions` of it.
    """
    return np.asarray(mean + np.exp(log_std) * normals, dtype=mean.dtype)


def clip_actions(actions: np.ndarray, low, high) -> np.ndarray:
    """The action the environment executes: the sample clipped to the action bounds.

    The policy's log-probability (and every estimator) is that of the *unclipped* sample,
    which is what an ``EpisodeBatch`` stores: clipping is then part of the environment, the
    score function stays the Gaussian's, and the gradient is unbiased for J of the clipped
    environment (the common practice, e.g. Stable-Baselines3's PPO/A2C).
    """
    return np.clip(actions, low, high)
