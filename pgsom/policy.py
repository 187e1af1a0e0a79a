"""Softmax MLP policies whose parameters are stacked over runs.

Shape convention: ``theta`` is ``(R, d)``, one flat parameter vector per run; observations are
``(R, T, obs_size)`` (or ``(R, obs_size)`` while acting). Layer ``k`` is stored as its weight
``W_k`` (out, in) followed by its bias ``b_k``, row-major, so that one batched matmul serves
every run and a run's numbers never depend on which other runs share the batch.

    pi_theta(. | s) = softmax(W_L tanh(... tanh(W_1 s + b_1) ...) + b_L)

Initialisation is ``torch.nn.Linear``'s default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
weights and biases, drawn from the run's own ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


@dataclass(frozen=True)
class PolicySpec:
    """Architecture of the softmax MLP."""

    obs_size: int
    """Observation dimension."""
    n_actions: int
    """Number of discrete actions."""
    hidden: tuple[int, ...] = (64,)
    """Hidden widths (tanh); () gives a linear (log-linear, exponential-family) softmax."""

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.obs_size, *self.hidden, self.n_actions)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of each linear layer."""
        sizes = self.layer_sizes
        return [(sizes[k + 1], sizes[k]) for k in range(len(sizes) - 1)]

    @property
    def n_params(self) -> int:
        return sum(o * i + o for o, i in self.layer_shapes)


class Layer(NamedTuple):
    weight: torch.Tensor  # (R, out, in)
    bias: torch.Tensor  # (R, out)


class Forward(NamedTuple):
    """Intermediates of a forward pass (inputs of the closed-form derivatives)."""

    inputs: list[torch.Tensor]  # input of each layer: obs, then each hidden activation
    logits: torch.Tensor  # (R, T, A)
    log_probs: torch.Tensor  # (R, T, A) log-softmax


def unflatten(spec: PolicySpec, theta: torch.Tensor) -> list[Layer]:
    """Views of the flat ``(R, d)`` parameters as per-layer weights and biases."""
    layers, start = [], 0
    for out, inp in spec.layer_shapes:
        w = theta[:, start : start + out * inp].reshape(-1, out, inp)
        start += out * inp
        b = theta[:, start : start + out]
        start += out
        layers.append(Layer(w, b))
    return layers


def flatten(layers: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Inverse of :func:`unflatten` for per-layer ``(R, out, in)`` / ``(R, out)`` tensors."""
    parts = []
    for w, b in layers:
        parts += [w.reshape(w.shape[0], -1), b]
    return torch.cat(parts, dim=1)


def init_params(spec: PolicySpec, rngs: Sequence[np.random.Generator]) -> torch.Tensor:
    """``(R, d)`` float32 parameters, run ``r`` drawn from ``rngs[r]`` only."""
    rows = []
    for rng in rngs:
        parts = []
        for out, inp in spec.layer_shapes:
            bound = 1.0 / np.sqrt(inp)
            parts.append(rng.uniform(-bound, bound, size=out * inp))
            parts.append(rng.uniform(-bound, bound, size=out))
        rows.append(np.concatenate(parts))
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh; numpy's kernel (several times faster than torch's on CPU, and the one the runner's
    numpy actor uses) when no autograd is involved, torch's otherwise."""
    if torch.is_grad_enabled() or x.requires_grad or x.device.type != "cpu":
        return torch.tanh(x)
    return torch.from_numpy(np.tanh(x.numpy()))


def forward(spec: PolicySpec, theta: torch.Tensor, obs: torch.Tensor) -> Forward:
    """Logits and log-probabilities for ``obs`` of shape ``(R, T, obs_size)``."""
    layers = unflatten(spec, theta)
    x, inputs = obs, []
    for k, (w, b) in enumerate(layers):
        inputs.append(x)
        x = torch.matmul(x, w.transpose(1, 2)) + b.unsqueeze(1)
        if k < len(layers) - 1:
            x = _tanh(x)
    return Forward(inputs, x, torch.log_softmax(x, dim=-1))


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
    ab = torch.matmul(a.reshape(r * nb, TIME_BLOCK, i).transpose(1, 2), b.reshape(r * nb, TIME_BLOCK, -1))
    return ab.reshape(r, nb, i, -1).cumsum(1)[:, -1]


def logits_vjp(spec: PolicySpec, theta: torch.Tensor, fwd: Forward, cotangent: torch.Tensor) -> torch.Tensor:
    """``(R, d)``: sum_t J_t^T c_t with J_t = dlogits_t/dtheta (backprop written out).

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
            delta = torch.matmul(delta, layers[k].weight).mul_((x * x).neg_().add_(1))
    return flatten(grads[::-1])


def logits_jvp(spec: PolicySpec, theta: torch.Tensor, fwd: Forward, tangent: torch.Tensor) -> torch.Tensor:
    """``(R, T, A)``: J_t v for a parameter tangent ``v`` of shape ``(R, d)`` (forward mode)."""
    layers, dlayers = unflatten(spec, theta), unflatten(spec, tangent)
    dx = None
    for k, ((w, _), (dw, db)) in enumerate(zip(layers, dlayers)):
        x = fwd.inputs[k]
        dpre = torch.matmul(x, dw.transpose(1, 2)) + db.unsqueeze(1)
        if dx is not None:
            dpre = dpre + torch.matmul(dx, w.transpose(1, 2))
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
