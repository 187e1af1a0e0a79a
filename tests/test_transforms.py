"""Update rules against torch.optim.Adam, hand-written recursions and degenerate cases."""

import pytest
import torch

from pgsom.config import AlgoConfig
from pgsom.transforms import (
    UpdateInfo, chain, clip_by_global_norm, heun, make_rule, scale, scale_by_adam, scale_by_hessian_moments,
    scale_by_natural_gradient, select_state,
)


def _grads(steps, runs=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(runs, d, generator=g, dtype=torch.float64) * (1 + k) for k in range(steps)]


def _apply(rule, theta, grads, infos=None):
    state = rule.init(theta)
    for k, g in enumerate(grads):
        inc, state = rule.update(g, state, infos[k] if infos else UpdateInfo())
        theta = theta + inc
    return theta, state


def test_adam_rule_equals_torch_optim_adam_over_20_steps():
    grads = _grads(20)
    theta0 = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    ours, _ = _apply(make_rule(AlgoConfig(method="adam", lr=0.01)), theta0.clone(), grads)
    param = torch.nn.Parameter(theta0.clone())
    opt = torch.optim.Adam([param], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    for g in grads:  # Adam minimises: the ascent direction g is the gradient of -J
        opt.zero_grad()
        param.grad = -g.clone()
        opt.step()
    torch.testing.assert_close(ours, param.detach(), rtol=1e-12, atol=1e-12)


def test_hessian_rule_with_h_equal_g_is_adam():
    grads = _grads(10)
    theta0 = torch.zeros(3, 5, dtype=torch.float64)
    som, _ = _apply(make_rule(AlgoConfig(method="hessian")), theta0, grads, [UpdateInfo(hessian=g) for g in grads])
    adam, _ = _apply(make_rule(AlgoConfig(method="adam")), theta0, grads)
    assert torch.equal(som, adam)


def test_hessian_rule_with_unit_curvature_is_bias_corrected_momentum_sgd():
    grads = _grads(6)
    ones = [UpdateInfo(hessian=torch.ones_like(g)) for g in grads]
    rule = chain(scale_by_hessian_moments(0.9, 0.999, 1e-8), scale(0.1))
    theta, _ = _apply(rule, torch.zeros(3, 5, dtype=torch.float64), grads, ones)
    m, expected = torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, 5, dtype=torch.float64)
    for k, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        expected += 0.1 * (m / (1 - 0.9**k)) / (1 + 1e-8)  # v_hat = 1 exactly
    torch.testing.assert_close(theta, expected)


def test_hessian_abs_option_divides_by_v_without_square_root():
    g = _grads(1)[0]
    h = torch.full_like(g, -4.0)
    inc, _ = _apply(chain(scale_by_hessian_moments(second_moment="abs", eps=1e-12), scale(1.0)), torch.zeros_like(g), [g],
                    [UpdateInfo(hessian=h)])
    torch.testing.assert_close(inc, g / 4.0)
    with pytest.raises(ValueError, match="needs info.hessian"):
        _apply(scale_by_hessian_moments(), torch.zeros_like(g), [g])


def test_pg_is_plain_sgd_ascent_and_clip_is_per_run():
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    theta, _ = _apply(make_rule(AlgoConfig(method="pg", lr=0.5)), torch.zeros_like(g), [g])
    torch.testing.assert_close(theta, 0.5 * g)
    clipped, _ = _apply(clip_by_global_norm(1.0), torch.zeros_like(g), [g])
    torch.testing.assert_close(clipped, torch.tensor([[0.6, 0.8], [0.3, 0.4]], dtype=torch.float64))


def test_rk_with_equal_stages_is_pg_and_solves_linear_flow_like_heun():
    g = _grads(1)[0]
    rk = make_rule(AlgoConfig(method="rk", lr=0.1))
    pg = make_rule(AlgoConfig(method="pg", lr=0.1))
    theta_rk, state = _apply(rk, torch.zeros_like(g), [g, g])  # a zero-change second stage
    theta_pg, _ = _apply(pg, torch.zeros_like(g), [g])
    torch.testing.assert_close(theta_rk, theta_pg)
    assert state[-1].stage == 0
    # d theta/dt = A theta + b: Heun's step is theta + a/2 (f(theta) + f(theta + a f(theta)))
    a_mat = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    f = lambda th: th @ a_mat.T + b  # noqa: E731
    theta = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    rule = heun(0.1)
    state = rule.init(theta)
    inc, state = rule.update(f(theta), state, UpdateInfo())
    mid = theta + inc
    inc, state = rule.update(f(mid), state, UpdateInfo())
    torch.testing.assert_close(mid + inc, theta + 0.05 * (f(theta) + f(theta + 0.1 * f(theta))))


def test_rk_clips_each_stage():
    big = torch.tensor([[30.0, 40.0]], dtype=torch.float64)
    rule = make_rule(AlgoConfig(method="rk", lr=1.0, clip_norm=5.0))
    theta, _ = _apply(rule, torch.zeros_like(big), [big, 2 * big])
    torch.testing.assert_close(theta, torch.tensor([[3.0, 4.0]], dtype=torch.float64))


def test_npg_solves_the_damped_fisher_system():
    fisher = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    info = UpdateInfo(fvp=lambda v: v @ fisher.T)
    rule = chain(scale_by_natural_gradient(damping=0.1, cg_iters=2), scale(1.0))
    inc, _ = _apply(rule, torch.zeros_like(g), [g], [info])
    torch.testing.assert_close(inc[0], torch.linalg.solve(fisher + 0.1 * torch.eye(2, dtype=torch.float64), g[0]))


@pytest.mark.parametrize(
    "factory, kwargs, fragment",
    [
        (scale, {"step_size": -0.1}, "step_size must be a number > 0"),
        (clip_by_global_norm, {"max_norm": 0}, "max_norm must be a number > 0"),
        (scale_by_adam, {"b1": 1.0}, r"beta1 must be in \[0, 1\)"),
        (scale_by_hessian_moments, {"second_moment": "cube"}, "second_moment must be"),
        (scale_by_natural_gradient, {"damping": -1.0}, "damping must be a number > 0"),
        (heun, {"step_size": 0.0}, "step_size must be a number > 0"),
    ],
)
def test_bad_hyperparameters_raise(factory, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        factory(**kwargs)


def test_select_state_takes_rows_of_every_tensor():
    rule = make_rule(AlgoConfig(method="adam"))
    state = rule.init(torch.zeros(4, 3))
    sub = select_state(state, torch.tensor([1, 3]))
    assert sub[0].m.shape == (2, 3) and sub[0].count.shape == (2, 1)
