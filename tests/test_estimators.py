"""Estimators against autograd references (torch.func) and hand computations.

Unbiasedness against the exact gradient / Hessian of a small MDP is in test_exact_mdp.py.
"""

import numpy as np
import pytest
import torch

from pgsom import estimators as est
from pgsom.policy import PolicySpec, forward, init_params, pad_time



@pytest.fixture(autouse=True)
def float64_default():
    """These comparisons run in float64; the default is restored for other modules."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _batch(hidden=(5,), runs=3, steps=9, seed=0, n_actions=3):
    g = torch.Generator().manual_seed(seed)
    spec = PolicySpec(4, n_actions, hidden)
    theta = 2 * init_params(spec, [np.random.default_rng(seed + r) for r in range(runs)]).double()
    lengths = torch.tensor([steps, steps - 4, 1][:runs])
    mask = torch.arange(steps)[None] < lengths[:, None]
    obs = torch.randn(runs, steps, 4, generator=g) * mask[..., None]
    actions = torch.randint(0, n_actions, (runs, steps), generator=g) * mask
    batch = est.EpisodeBatch(obs, actions, mask.double(), mask)
    weights = torch.randn(runs, steps, generator=g) * mask
    return spec, theta, batch, weights


def _surrogate(spec, batch, weights, r, entropy_coef=0.0):
    def f(th):
        lp = forward(spec, th[None], batch.obs[r : r + 1]).log_probs[0]
        chosen = lp.gather(-1, batch.actions[r][:, None])[:, 0]
        entropy = -(lp.exp() * lp).sum(-1)
        return ((weights[r] * chosen + entropy_coef * entropy) * batch.mask[r]).sum()

    return f


def test_returns_against_a_loop():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    for gamma in (0.99, 0.3, 1.0):
        expected = torch.zeros(2, 4)
        for r in range(2):
            running = 0.0
            for t in range(int(mask[r].sum()) - 1, -1, -1):
                running = rewards[r, t].item() + gamma * running
                expected[r, t] = running
        torch.testing.assert_close(est.compute_returns(rewards, mask, gamma, "reward_to_go"), expected)
    total = est.compute_returns(rewards, mask, 0.5, "total")
    torch.testing.assert_close(total, torch.tensor([[6.0, 6, 6, 0], [2, 2, 0, 0]]))
    with pytest.raises(ValueError, match="returns must be"):
        est.compute_returns(rewards, mask, 0.9, "td")


def test_advantages_standardised_over_real_steps_only():
    returns = torch.tensor([[3.0, 2.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    adv = est.compute_advantages(returns, mask, standardize=True)
    sd = np.sqrt(2 / 3)  # population std of (3, 2, 1)
    torch.testing.assert_close(adv[0], torch.tensor([1 / sd, 0, -1 / sd, 0], dtype=torch.float32), rtol=1e-6, atol=1e-6)
    assert torch.equal(adv[1], torch.zeros(4, dtype=torch.float32))  # one step: A = 0, not NaN
    raw = est.compute_advantages(returns, mask, baseline=torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1]]), standardize=False)
    torch.testing.assert_close(raw, torch.tensor([[2.0, 1, 0, 0], [4, 0, 0, 0]], dtype=torch.float32))


def test_baseline_is_a_bias_corrected_ema_of_past_returns():
    state = est.init_baseline(1, 3)
    assert torch.equal(est.baseline_value(state), torch.zeros(1, 3))
    episodes = [([10.0, 9.0], [1, 1]), ([20.0, 0.0], [1, 0]), ([30.0, 28.0], [1, 1])]
    d = 0.9
    for returns, mask in episodes:
        state = est.update_baseline(state, torch.tensor([returns]), torch.tensor([mask], dtype=torch.bool), d)
    # step 0 saw 10, 20, 30; step 1 saw 9 then 28; step 2 never reached
    b0 = ((1 - d) * d**2 * 10 + (1 - d) * d * 20 + (1 - d) * 30) / (1 - d**3)
    b1 = ((1 - d) * d * 9 + (1 - d) * 28) / (1 - d**2)
    torch.testing.assert_close(est.baseline_value(state), torch.tensor([[b0, b1, 0.0]]))


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_gradient_and_score_sum_match_autograd(hidden):
    spec, theta, batch, weights = _batch(hidden)
    grad = est.policy_gradient(spec, theta, batch, weights, entropy_coef=0.05, with_score_sum=True)
    for r in range(theta.shape[0]):
        torch.testing.assert_close(grad.g[r], torch.func.grad(_surrogate(spec, batch, weights, r, 0.05))(theta[r]))
        torch.testing.assert_close(grad.g_return[r], torch.func.grad(_surrogate(spec, batch, weights, r))(theta[r]))
        ones = batch.mask.double()
        torch.testing.assert_close(grad.score_sum[r], torch.func.grad(_surrogate(spec, batch, ones, r))(theta[r]))


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_exact_diagonal_matches_torch_func_hessian(hidden):
    spec, theta, batch, weights = _batch(hidden)
    diag = est.surrogate_diag_hessian_exact(spec, theta, batch, weights)
    for r in range(theta.shape[0]):
        hess = torch.func.hessian(_surrogate(spec, batch, weights, r))(theta[r])
        torch.testing.assert_close(diag[r], torch.diagonal(hess))


def test_exact_diagonal_refuses_deep_policies():
    spec, theta, batch, weights = _batch((3, 3))
    with pytest.raises(ValueError, match="one layer"):
        est.surrogate_diag_hessian_exact(spec, theta, batch, weights)


def test_full_hessian_estimate_adds_the_score_outer_product_diagonal():
    spec, theta, batch, weights = _batch()
    grad = est.policy_gradient(spec, theta, batch, weights, with_score_sum=True)
    full = est.diag_hessian(spec, theta, batch, weights, grad, terms="full")
    surrogate = est.diag_hessian(spec, theta, batch, weights, grad, terms="surrogate")
    torch.testing.assert_close(full, surrogate + grad.g_return * grad.score_sum)
    with pytest.raises(ValueError, match="hessian_terms must be"):
        est.diag_hessian(spec, theta, batch, weights, grad, terms="both")
    with pytest.raises(ValueError, match="needs a Rademacher probe"):
        est.diag_hessian(spec, theta, batch, weights, grad, estimator="hutchinson")


def test_hutchinson_is_unbiased_for_the_exact_diagonal():
    spec, theta, batch, weights = _batch((5,), runs=1)
    exact = est.surrogate_diag_hessian_exact(spec, theta, batch, weights)[0]
    hess = torch.func.hessian(_surrogate(spec, batch, weights, 0))(theta[0])
    n = 4000
    rng = np.random.default_rng(0)
    probes = torch.from_numpy(2.0 * rng.integers(0, 2, (n, theta.shape[1])) - 1)
    samples = est.surrogate_diag_hessian_hutchinson(
        spec, theta.expand(n, -1).contiguous(), est.EpisodeBatch(*(x.expand(n, *x.shape[1:]) for x in batch)),
        weights.expand(n, -1), probes,
    )
    # Var[z_i (Hz)_i] = sum_{j != i} H_ij^2 exactly; allow 5 standard errors per coordinate.
    off = (hess**2).sum(1) - torch.diagonal(hess) ** 2
    assert torch.all((samples.mean(0) - exact).abs() <= 5 * off.sqrt() / np.sqrt(n) + 1e-12)
    torch.testing.assert_close(samples.var(0), off, rtol=0.15, atol=1e-8)


@pytest.mark.parametrize("kind", ["empirical", "expected"])
def test_fisher_vector_product_matches_explicit_fisher(kind):
    spec, theta, batch, _ = _batch((5,))
    v = torch.randn_like(theta)
    fvp = est.fisher_vector_product(spec, theta, batch, kind)(v)
    for r in range(theta.shape[0]):
        steps = int(batch.mask[r].sum())
        jac = torch.func.jacrev(lambda th: forward(spec, th[None], batch.obs[r : r + 1, :steps]).log_probs[0])(theta[r])
        p = forward(spec, theta[r : r + 1], batch.obs[r : r + 1, :steps]).log_probs[0].exp()
        fisher = torch.zeros(theta.shape[1], theta.shape[1])
        for t in range(steps):
            if kind == "empirical":
                s = jac[t, batch.actions[r, t]]
                fisher += torch.outer(s, s)
            else:
                for a in range(spec.n_actions):
                    fisher += p[t, a] * torch.outer(jac[t, a], jac[t, a])
        torch.testing.assert_close(fvp[r], fisher @ v[r] / steps)


def test_damped_conjugate_gradient_solves_the_system():
    g = torch.Generator().manual_seed(3)
    d = 6
    a = torch.randn(2, d, d, generator=g)
    fisher = a @ a.transpose(1, 2) / d
    rhs = torch.randn(2, d, generator=g)
    x = est.damped_solve(lambda v: (fisher @ v.unsqueeze(-1)).squeeze(-1), rhs, 0.1, iters=d)
    torch.testing.assert_close(x, torch.linalg.solve(fisher + 0.1 * torch.eye(d), rhs))
    zero = est.damped_solve(lambda v: v, torch.zeros(1, d), 0.1, iters=3)
    assert torch.equal(zero, torch.zeros(1, d))


@pytest.mark.parametrize("gamma", [0.99, 1.0, 0.3])
def test_every_estimate_is_bitwise_invariant_to_extra_padding(gamma):
    """The batch decides how far episodes are padded (its longest episode); a run's numbers must
    not change with it: compare padding to 250 and to 500 steps, float32 as in training (torch's
    vectorised pow gives gamma**245 other last bits in a 250-vector than in a 500-vector)."""
    g = torch.Generator().manual_seed(5)
    spec = PolicySpec(4, 2, (16,))
    theta = init_params(spec, [np.random.default_rng(r) for r in range(4)])
    lengths = torch.tensor([248, 250, 7, 246])
    long_t = 500
    mask = torch.arange(long_t)[None] < lengths[:, None]
    obs = (torch.randn(4, long_t, 4, generator=g) * mask[..., None]).float()
    actions = torch.randint(0, 2, (4, long_t), generator=g) * mask
    batch = est.EpisodeBatch(obs, actions, mask.float(), mask)
    short = est.EpisodeBatch(*(x[:, :250] for x in batch))
    base = est.update_baseline(est.init_baseline(4, long_t), torch.rand(4, long_t, generator=g, dtype=torch.float32),
                               mask, 0.9)

    def estimates(b):
        t = b.mask.shape[1]
        returns = est.compute_returns(b.rewards, b.mask, gamma, "reward_to_go")
        adv = est.compute_advantages(returns, b.mask, est.baseline_value(base)[:, :t], standardize=True)
        grad = est.policy_gradient(spec, theta, b, adv, entropy_coef=0.01, with_score_sum=True)
        h = est.diag_hessian(spec, theta, b, adv, grad)
        fv = est.fisher_vector_product(spec, theta, b)(grad.g)
        new_base = est.update_baseline(base, returns, b.mask, 0.9)
        return [returns[:, :250], adv[:, :250], grad.g, grad.score_sum, h, fv, *new_base]

    for a, b in zip(estimates(batch), estimates(short)):
        assert torch.equal(a, b)


def test_the_gradient_is_invariant_to_padding_on_a_benchmarks_shapes():
    """LunarLander-v3's policy (8 observations, 4 actions, 64 hidden units): one episode padded to
    its own whole time blocks and to the 1000-step horizon gives the same gradient, bit for bit,
    in 200 random episodes. With the products against a transposed weight view
    (``policy._transposed`` before it made them contiguous) 5 of these 200 differed, and a
    LunarLander run's returns differed alone and in a batch of five from episode 330 on."""
    g = torch.Generator().manual_seed(3)
    spec = PolicySpec(8, 4, (64,))
    d = 8 * 64 + 64 + 64 * 4 + 4
    differ = []
    for _ in range(200):
        n = int(torch.randint(20, 900, (1,), generator=g))
        theta = torch.randn(1, d, generator=g) * 0.3
        obs = torch.randn(1, n, 8, generator=g)
        actions = torch.randint(0, 4, (1, n), generator=g)
        rewards = torch.randn(1, n, generator=g) * 3
        grads = []
        for t in (pad_time(n), 1000):
            pad = t - n
            b = est.EpisodeBatch(torch.nn.functional.pad(obs, (0, 0, 0, pad)), torch.nn.functional.pad(actions, (0, pad)),
                                 torch.nn.functional.pad(rewards, (0, pad)),
                                 torch.nn.functional.pad(torch.ones(1, n, dtype=torch.bool), (0, pad)))
            adv = est.compute_advantages(est.compute_returns(b.rewards, b.mask, 0.99, "reward_to_go"), b.mask)
            grads.append(est.policy_gradient(spec, theta, b, adv).g)
        if not torch.equal(*grads):
            differ.append(n)
    assert differ == []


def test_sample_std_option_equals_torch_std_per_episode_and_ddof0_is_unchanged():
    """ddof=1 standardises each episode with torch.std(x, correction=1) over its own real steps
    (episodes of different lengths in one padded batch); ddof=0 is the population std, the
    default's very bits; a one-step episode gets A = 0 under both."""
    g = torch.Generator().manual_seed(11)
    lengths = torch.tensor([7, 2, 1, 12])
    steps = 16
    mask = torch.arange(steps)[None] < lengths[:, None]
    returns = torch.randn(4, steps, generator=g) * 5 * mask
    baseline = torch.randn(4, steps, generator=g)
    sample = est.compute_advantages(returns, mask, baseline, standardize=True, ddof=1)
    population = est.compute_advantages(returns, mask, baseline, standardize=True, ddof=0)
    assert torch.equal(population, est.compute_advantages(returns, mask, baseline, standardize=True))
    for r, n in enumerate(lengths.tolist()):
        x = (returns[r, :n] - baseline[r, :n]).double()
        if n == 1:
            assert torch.equal(sample[r], torch.zeros(steps, dtype=torch.float32))
            assert torch.equal(population[r], torch.zeros(steps, dtype=torch.float32))
            continue
        for adv, correction in ((sample, 1), (population, 0)):
            want = ((x - x.mean()) / (torch.std(x, correction=correction) + est.ADV_EPS)).float()
            torch.testing.assert_close(adv[r, :n], want, rtol=1e-6, atol=1e-6)
            assert torch.equal(adv[r, n:], torch.zeros(steps - n, dtype=torch.float32))
    # the two differ by the factor sqrt(n / (n - 1)) exactly as the formula says
    torch.testing.assert_close(population[0, :7] / sample[0, :7], torch.full((7,), np.sqrt(7 / 6), dtype=torch.float32))
    assert not torch.equal(sample, population)
    with pytest.raises(ValueError, match="ddof must be an int >= 0"):
        est.compute_advantages(returns, mask, ddof=-1)


def test_running_mean_baseline_is_the_plain_mean_of_past_first_returns():
    """b after k episodes = (G_0^(1) + ... + G_0^(k)) / k per run, 0 before the first; an
    episode with no real step (a diverged run's) does not count; it broadcasts over time and
    survives row selection like every other state."""
    from pgsom.transforms import select_state

    state = est.init_running_mean(2)
    assert torch.equal(est.running_mean_value(state), torch.zeros(2, 1))
    rewards = [torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]]), torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 1]]),
               torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0]])]
    masks = [r > 0 for r in rewards]
    for kind, gamma in (("total", 0.5), ("reward_to_go", 0.9), ("reward_to_go", 1.0)):
        state, firsts = est.init_running_mean(2), [[], []]
        for rew, mask in zip(rewards, masks):
            ret = est.compute_returns(rew, mask, gamma, kind)
            state = est.update_running_mean(state, ret, mask)
            for r in range(2):
                n = int(mask[r].sum())
                if n:
                    firsts[r].append(sum(1.0 if kind == "total" else gamma**t for t in range(n)))
        want = torch.tensor([[float(np.mean(f))] for f in firsts])
        torch.testing.assert_close(est.running_mean_value(state), want)
    assert state.count.tolist() == [[3.0], [2.0]]
    sub = select_state(state, torch.tensor([1]))
    assert isinstance(sub, est.RunningMeanState) and torch.equal(sub.total, state.total[1:])
    # a constant baseline is subtracted from every step of the episode
    ret = est.compute_returns(rewards[0], masks[0], 1.0, "reward_to_go")
    raw = est.compute_advantages(ret, masks[0], est.running_mean_value(state), standardize=False)
    torch.testing.assert_close(raw, ((ret - est.running_mean_value(state)) * masks[0]).float())
