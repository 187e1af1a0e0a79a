"""Policy layout, initialisation, sampling and the written-out derivatives vs autograd."""

import numpy as np
import pytest
import torch

from pgsom.policy import (
    PolicySpec, flatten, forward, init_params, logits_jvp, logits_vjp, sample_actions, time_contract,
    time_sum, unflatten,
)


def _setup(hidden, runs=3, steps=7, seed=0):
    spec = PolicySpec(4, 3, hidden)
    theta = init_params(spec, [np.random.default_rng(seed + r) for r in range(runs)]).double()
    obs = torch.randn(runs, steps, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return spec, theta, obs


def test_layout_round_trip_and_size():
    spec = PolicySpec(4, 2, (64,))
    assert spec.n_params == 4 * 64 + 64 + 64 * 2 + 2
    theta = torch.arange(2 * spec.n_params, dtype=torch.float32).reshape(2, -1)
    layers = unflatten(spec, theta)
    assert [tuple(w.shape) for w, _ in layers] == [(2, 64, 4), (2, 2, 64)]
    assert torch.equal(flatten(layers), theta)


def test_init_matches_torch_linear_bounds_and_is_per_run():
    spec = PolicySpec(4, 2, (64,))
    a = init_params(spec, [np.random.default_rng(1), np.random.default_rng(2)])
    b = init_params(spec, [np.random.default_rng(2)])
    assert torch.equal(a[1], b[0])  # a run's parameters come from its own generator only
    w1, b1 = unflatten(spec, a)[0]
    w2 = unflatten(spec, a)[1].weight
    assert w1.abs().max() <= 0.5 and w1.abs().max() > 0.45  # U(-1/sqrt(4), 1/sqrt(4))
    assert w2.abs().max() <= 1 / 8 and w2.abs().max() > 0.11  # U(-1/sqrt(64), ...)


@pytest.mark.parametrize("hidden", [(), (5,), (5, 6)])
def test_forward_matches_torch_nn(hidden):
    spec, theta, obs = _setup(hidden)
    for r in range(theta.shape[0]):
        modules = []
        for k, (w, b) in enumerate(unflatten(spec, theta[r : r + 1])):
            lin = torch.nn.Linear(w.shape[2], w.shape[1]).double()
            lin.weight.data, lin.bias.data = w[0].clone(), b[0].clone()
            modules += [lin, torch.nn.Tanh()] if k < len(hidden) else [lin]
        net = torch.nn.Sequential(*modules)
        torch.testing.assert_close(forward(spec, theta[r : r + 1], obs[r : r + 1]).logits[0], net(obs[r]))


@pytest.mark.parametrize("hidden", [(), (5,), (5, 6)])
def test_vjp_and_jvp_match_autograd(hidden):
    spec, theta, obs = _setup(hidden)
    cot = torch.randn(3, 7, 3, dtype=torch.float64)
    tangent = torch.randn_like(theta)
    fwd = forward(spec, theta, obs)
    th = theta.clone().requires_grad_(True)
    expected_vjp = torch.autograd.grad(forward(spec, th, obs).logits, th, cot)[0]
    torch.testing.assert_close(logits_vjp(spec, theta, fwd, cot), expected_vjp)
    _, expected_jvp = torch.func.jvp(lambda t: forward(spec, t, obs).logits, (theta,), (tangent,))
    torch.testing.assert_close(logits_jvp(spec, theta, fwd, tangent), expected_jvp)


def test_time_sums_are_exact_sums_and_padding_invariant():
    x = torch.randn(4, 137, 3, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(time_sum(x), x.sum(1), rtol=1e-5, atol=1e-5)
    padded = torch.cat([x, torch.zeros(4, 363, 3)], dim=1)
    assert torch.equal(time_sum(x), time_sum(padded))
    y = torch.randn(4, 137, 2, generator=torch.Generator().manual_seed(2))
    yp = torch.cat([y, torch.zeros(4, 363, 2)], dim=1)
    torch.testing.assert_close(time_contract(x, y), torch.einsum("rti,rtj->rij", x, y), rtol=1e-5, atol=1e-5)
    assert torch.equal(time_contract(x, y), time_contract(padded, yp))


def test_inverse_cdf_sampling_frequencies():
    rng = np.random.default_rng(0)
    probs = np.tile([[0.2, 0.5, 0.3]], (200_000, 1))
    counts = np.bincount(sample_actions(probs, rng.random(200_000)), minlength=3) / 200_000
    sd = np.sqrt(np.array([0.2, 0.5, 0.3]) * (1 - np.array([0.2, 0.5, 0.3])) / 200_000)
    assert np.all(np.abs(counts - [0.2, 0.5, 0.3]) < 5 * sd)
    assert sample_actions(np.array([[0.3, 0.7]]), np.array([0.2999]))[0] == 0
    assert sample_actions(np.array([[0.3, 0.7]]), np.array([0.3001]))[0] == 1
