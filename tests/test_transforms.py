"""Update rules against torch.optim.Adam, hand-written recursions and degenerate cases."""

import pytest
import torch

from pgsom.config import AlgoConfig
from pgsom.transforms import (
    UpdateInfo, chain, clip_by_global_norm, heun, make_rule, midpoint, scale, scale_by_adam,
    scale_by_hessian_moments, scale_by_natural_gradient, select_state,
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


def test_hessian_signed_option_is_the_signed_ema_of_h_over_its_absolute_value():
    """v <- b2 v + (1-b2) h (no square, no abs), step m_hat / (|v_hat| + eps), against a loop of
    the formula over steps whose h changes sign (so v_hat crosses zero in some coordinates)."""
    grads = _grads(8)
    g = torch.Generator().manual_seed(4)
    hs = [torch.randn(3, 5, generator=g, dtype=torch.float64) * (-1) ** k + 0.3 for k in range(8)]
    b1, b2, eps, lr = 0.9, 0.8, 1e-8, 0.1
    rule = make_rule(AlgoConfig(method="hessian", second_moment="signed", beta2=b2, lr=lr))
    theta, state = _apply(rule, torch.zeros(3, 5, dtype=torch.float64), grads, [UpdateInfo(hessian=h) for h in hs])
    m, v = torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, 5, dtype=torch.float64)
    expected = torch.zeros(3, 5, dtype=torch.float64)
    for k, (gk, hk) in enumerate(zip(grads, hs), start=1):
        m = b1 * m + (1 - b1) * gk
        v = b2 * v + (1 - b2) * hk
        expected = expected + lr * (m / (1 - b1**k)) / ((v / (1 - b2**k)).abs() + eps)
    torch.testing.assert_close(theta, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state[0].v, v, rtol=1e-12, atol=1e-12)  # signed: v keeps its sign
    assert (v < 0).any() and (v > 0).any()
    square, _ = _apply(make_rule(AlgoConfig(method="hessian", beta2=b2, lr=lr)), torch.zeros(3, 5, dtype=torch.float64),
                       grads, [UpdateInfo(hessian=h) for h in hs])
    assert not torch.allclose(theta, square)


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


def _two_stages(rule, theta, field):
    state = rule.init(theta)
    inc, state = rule.update(field(theta), state, UpdateInfo())
    probe = theta + inc
    inc, state = rule.update(field(probe), state, UpdateInfo())
    return probe, probe + inc, state


def test_rk_midpoint_rule_solves_flows_like_the_midpoint_formula():
    """Midpoint RK2: theta~ = theta + h/2 f(theta), theta <- theta + h f(theta~). On the linear
    flow f = A theta both RK2 rules give (I + hA + h^2 A^2 / 2) theta; on the nonlinear field
    f = -theta^3 (elementwise) they differ, each equal to its own hand formula."""
    h = 0.1
    a_mat = torch.tensor([[-1.0, 0.5], [0.3, -2.0]], dtype=torch.float64)
    linear = lambda th: th @ a_mat.T  # noqa: E731
    theta = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=torch.float64)
    taylor = theta @ (torch.eye(2, dtype=torch.float64) + h * a_mat + h**2 / 2 * a_mat @ a_mat).T
    probe, end, state = _two_stages(midpoint(h), theta, linear)
    torch.testing.assert_close(probe, theta + h / 2 * linear(theta))
    torch.testing.assert_close(end, taylor, rtol=1e-14, atol=1e-14)
    assert state.stage == 0
    torch.testing.assert_close(_two_stages(heun(h), theta, linear)[1], taylor, rtol=1e-14, atol=1e-14)

    cubic = lambda th: -th**3  # noqa: E731
    theta = torch.tensor([[0.5, -1.2, 2.0]], dtype=torch.float64)
    h = 0.2
    probe, mid_end, _ = _two_stages(make_rule(AlgoConfig(method="rk", rk_rule="midpoint", lr=h)), theta, cubic)
    torch.testing.assert_close(probe, theta - h / 2 * theta**3)
    torch.testing.assert_close(mid_end, theta - h * (theta - h / 2 * theta**3) ** 3, rtol=1e-14, atol=1e-14)
    heun_end = _two_stages(make_rule(AlgoConfig(method="rk", lr=h)), theta, cubic)[1]
    heun_formula = theta - h / 2 * (theta**3 + (theta - h * theta**3) ** 3)
    torch.testing.assert_close(heun_end, heun_formula, rtol=1e-14, atol=1e-14)
    assert not torch.allclose(mid_end, heun_end)


def test_rk_midpoint_with_equal_stages_is_pg_and_clips_each_stage():
    g = _grads(1)[0]
    theta_mid, _ = _apply(make_rule(AlgoConfig(method="rk", rk_rule="midpoint", lr=0.1)), torch.zeros_like(g), [g, g])
    theta_pg, _ = _apply(make_rule(AlgoConfig(method="pg", lr=0.1)), torch.zeros_like(g), [g])
    torch.testing.assert_close(theta_mid, theta_pg)
    big = torch.tensor([[30.0, 40.0]], dtype=torch.float64)
    rule = make_rule(AlgoConfig(method="rk", rk_rule="midpoint", lr=1.0, clip_norm=5.0))
    # k1 = 5 * (0.6, 0.8) after clipping: theta~ = k1 / 2; k2 clipped to norm 5 too: theta = k2
    inc1, state = rule.update(big, rule.init(torch.zeros_like(big)), UpdateInfo())
    torch.testing.assert_close(inc1, torch.tensor([[1.5, 2.0]], dtype=torch.float64))
    inc2, _ = rule.update(-2 * big, state, UpdateInfo())
    torch.testing.assert_close(inc1 + inc2, torch.tensor([[-3.0, -4.0]], dtype=torch.float64))


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
        (midpoint, {"step_size": -1.0}, "step_size must be a number > 0"),
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
