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


def forward(spec: PolicySpec, theta: torch.Tensor, obs: torch.Tensor) -> Forward:
    """Logits and log-probabilities for ``obs`` of shape ``(R, T, obs_size)``."""
    layers = unflatten(spec, theta)
    x, inputs = obs, []
    for k, (w, b) in enumerate(layers):
        inputs.append(x)
        x = torch.matmul(x, w.transpose(1, 2)) + b.unsqueeze(1)
        if k < len(layers) - 1:
            x = torch.tanh(x)
    return Forward(inputs, x, torch.log_softmax(x, dim=-1))


@torch.no_grad()
def action_probs(spec: PolicySpec, theta: torch.Tensor, obs: np.ndarray) -> np.ndarray:
    """``(R, A)`` action probabilities for one observation per run (acting)."""
    x = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)).unsqueeze(1)
    return torch.softmax(forward(spec, theta, x).logits[:, 0], dim=-1).numpy()


def sample_actions(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: action = number of cumulative probabilities below ``u``.

    Comparing pre-drawn uniforms with the probabilities is exact in distribution and several
    times cheaper than ``Categorical.sample`` (SPEC section 8).
    """
    cdf = np.cumsum(probs[:, :-1], axis=1)
    return (uniforms[:, None] >= cdf).sum(axis=1).astype(np.int64)
