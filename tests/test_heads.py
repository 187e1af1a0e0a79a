"""Both policy heads (categorical, Gaussian) against torch.func, and the Gaussian estimators'
unbiasedness on a linear-Gaussian bandit whose J is known in closed form.

References are written independently of the estimators: log-probabilities and entropies from
``torch.distributions``, derivatives by ``torch.func`` (grad, hessian, jacrev), the expected
Fisher as the Hessian of the KL divergence. The network itself is ``policy.forward``, checked
against ``torch.nn`` below and in test_policy.py.
"""

import numpy as np
import pytest
import torch

from pgsom import estimators as est
from pgsom.policy import (
    INIT_LOG_STD, PolicySpec, action_log_prob, clip_actions, forward, init_params, sample_gaussian, unflatten,
)

HEADS = ["categorical", "gaussian"]
HIDDEN = [(), (5,)]


@pytest.fixture(autouse=True)
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _batch(head, hidden, runs=3, steps=9, seed=0, n_actions=3):
    """Random theta (log_std too), observations, actions, weights; ragged lengths (9, 5, 1)."""
    g = torch.Generator().manual_seed(seed)
    spec = PolicySpec(4, n_actions, hidden, head)
    theta = 2 * init_params(spec, [np.random.default_rng(seed + r) for r in range(runs)]).double()
    if head == "gaussian":
        theta[:, spec.log_std_slice] = torch.rand(runs, n_actions, generator=g) - 0.5
    lengths = torch.tensor([steps, steps - 4, 1][:runs])
    mask = torch.arange(steps)[None] < lengths[:, None]
    obs = torch.randn(runs, steps, 4, generator=g) * mask[..., None]
    if head == "gaussian":
        actions = 1.5 * torch.randn(runs, steps, n_actions, generator=g) * mask[..., None]
    else:
        actions = torch.randint(0, n_actions, (runs, steps), generator=g) * mask
    batch = est.EpisodeBatch(obs, actions, mask.double(), mask)
    weights = torch.randn(runs, steps, generator=g) * mask
    return spec, theta, batch, weights


def _dist(spec, th, obs):
    """The policy at the observations ``obs`` (T, obs_size) for one run's ``th`` (d,)."""
    out = forward(spec, th[None], obs[None]).logits[0]
    if spec.head == "gaussian":
        return torch.distributions.Normal(out, th[spec.log_std_slice].exp().expand_as(out))
    return torch.distributions.Categorical(logits=out)


def _ref_log_prob(spec, dist, actions):
    lp = dist.log_prob(actions)
    return lp.sum(-1) if spec.head == "gaussian" else lp


def _ref_entropy(spec, dist):
    h = dist.entropy()
    return h.sum(-1) if spec.head == "gaussian" else h


def _surrogate(spec, batch, weights, r, entropy_coef=0.0):
    """th -> sum_t mask_t (w_t log pi(a_t|s_t) + entropy_coef H(pi(.|s_t))) for run r."""
    def f(th):
        dist = _dist(spec, th, batch.obs[r])
        lp = _ref_log_prob(spec, dist, batch.actions[r])
        return ((weights[r] * lp + entropy_coef * _ref_entropy(spec, dist)) * batch.mask[r]).sum()

    return f


# --------------------------------------------------------------------------- the head itself


def test_gaussian_layout_and_initialisation():
    cat = PolicySpec(4, 2, (8,))
    gau = PolicySpec(4, 2, (8,), "gaussian")
    assert cat.head == "categorical" and cat.n_params == cat.n_net_params == 4 * 8 + 8 + 8 * 2 + 2
    assert gau.n_net_params == cat.n_params and gau.n_params == cat.n_params + 2
    assert gau.log_std_slice == slice(cat.n_params, cat.n_params + 2)
    a = init_params(cat, [np.random.default_rng(7)])
    b = init_params(gau, [np.random.default_rng(7)])
    assert b.shape == (1, gau.n_params) and b.dtype == torch.float32
    assert torch.equal(b[:, : gau.n_net_params], a)  # the same network draws, whatever the head
    assert torch.equal(b[:, gau.log_std_slice], torch.full((1, 2), INIT_LOG_STD, dtype=torch.float32))
    assert INIT_LOG_STD == 0.0
    assert [tuple(w.shape) for w, _ in unflatten(gau, b)] == [(1, 8, 4), (1, 2, 8)]
    with pytest.raises(ValueError, match="head must be one of"):
        PolicySpec(4, 2, (8,), "beta")
    with pytest.raises(ValueError, match="only the gaussian head"):
        cat.log_std_slice


@pytest.mark.parametrize("hidden", [(), (5,), (5, 6)])
def test_gaussian_forward_matches_torch_nn_and_log_prob_matches_normal(hidden):
    spec, theta, batch, _ = _batch("gaussian", hidden)
    fwd = forward(spec, theta, batch.obs)
    assert fwd.log_probs is None
    torch.testing.assert_close(fwd.log_std, theta[:, spec.log_std_slice])
    lp = action_log_prob(spec, fwd, batch.actions)
    for r in range(theta.shape[0]):
        modules = []
        for k, (w, b) in enumerate(unflatten(spec, theta[r : r + 1])):
            lin = torch.nn.Linear(w.shape[2], w.shape[1]).double()
            lin.weight.data, lin.bias.data = w[0].clone(), b[0].clone()
            modules += [lin, torch.nn.Tanh()] if k < len(hidden) else [lin]
        mean = torch.nn.Sequential(*modules)(batch.obs[r])
        torch.testing.assert_close(fwd.logits[r], mean)
        normal = torch.distributions.Normal(mean, theta[r, spec.log_std_slice].exp())
        torch.testing.assert_close(lp[r], normal.log_prob(batch.actions[r]).sum(-1))


def test_gaussian_sampling_from_given_normals_and_clipping():
    """a = mu + sigma z from the caller's normals (stored unclipped, in the mean's dtype); the
    environment's action is its clip to the bounds; the frequencies are N(mu, sigma^2)."""
    mean = np.array([[0.5, -1.0]], np.float32)
    log_std = np.array([np.log(0.5), np.log(2.0)], np.float32)
    z = np.array([[1.0, -0.25]])
    a = sample_gaussian(mean, log_std, z)
    assert a.dtype == np.float32 and a.shape == (1, 2)
    np.testing.assert_allclose(a, [[0.5 + 0.5, -1.0 - 0.5]], rtol=1e-6)
    np.testing.assert_array_equal(clip_actions(np.array([[1.7, -3.0], [0.2, 0.1]]), -1.0, 1.0),
                                  [[1.0, -1.0], [0.2, 0.1]])
    np.testing.assert_array_equal(clip_actions(np.array([[1.7, -3.0]]), np.array([-1.0, -2.0]), np.array([1.0, 2.0])),
                                  [[1.0, -2.0]])
    rng = np.random.default_rng(0)
    n = 200_000
    draws = sample_gaussian(np.broadcast_to(mean, (n, 2)).astype(np.float64), log_std.astype(np.float64),
                            rng.standard_normal((n, 2)))
    std = np.exp(log_std.astype(np.float64))
    assert np.all(np.abs(draws.mean(0) - mean[0]) < 5 * std / np.sqrt(n))
    assert np.all(np.abs(draws.std(0) / std - 1) < 5 / np.sqrt(2 * n))


# --------------------------------------------------------------------------- against torch.func


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("head", HEADS)
def test_gradient_and_score_sum_match_torch_func(head, hidden):
    spec, theta, batch, weights = _batch(head, hidden)
    grad = est.policy_gradient(spec, theta, batch, weights, entropy_coef=0.05, with_score_sum=True)
    assert grad.g.shape == theta.shape
    ones = batch.mask.double()
    for r in range(theta.shape[0]):
        torch.testing.assert_close(grad.g[r], torch.func.grad(_surrogate(spec, batch, weights, r, 0.05))(theta[r]))
        torch.testing.assert_close(grad.g_return[r], torch.func.grad(_surrogate(spec, batch, weights, r))(theta[r]))
        torch.testing.assert_close(grad.score_sum[r], torch.func.grad(_surrogate(spec, batch, ones, r))(theta[r]))
    if head == "gaussian":  # the entropy's gradient is on log_std only: the number of real steps
        bonus = (grad.g - grad.g_return) / 0.05
        torch.testing.assert_close(bonus[:, : spec.n_net_params], torch.zeros(3, spec.n_net_params))
        torch.testing.assert_close(bonus[:, spec.log_std_slice], torch.tensor([[9.0] * 3, [5.0] * 3, [1.0] * 3]))


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("head", HEADS)
def test_exact_diagonal_and_full_h_match_torch_func(head, hidden):
    spec, theta, batch, weights = _batch(head, hidden)
    grad = est.policy_gradient(spec, theta, batch, weights, with_score_sum=True)
    diag = est.surrogate_diag_hessian_exact(spec, theta, batch, weights)
    surrogate = est.diag_hessian(spec, theta, batch, weights, grad, terms="surrogate")
    full = est.diag_hessian(spec, theta, batch, weights, grad, terms="full")
    assert torch.equal(surrogate, diag)
    ones = batch.mask.double()
    for r in range(theta.shape[0]):
        hess = torch.func.hessian(_surrogate(spec, batch, weights, r))(theta[r])
        torch.testing.assert_close(diag[r], torch.diagonal(hess))
        g_j = torch.func.grad(_surrogate(spec, batch, weights, r))(theta[r])
        s = torch.func.grad(_surrogate(spec, batch, ones, r))(theta[r])
        torch.testing.assert_close(full[r], g_j * s + torch.diagonal(hess))


@pytest.mark.parametrize("head", HEADS)
def test_exact_diagonal_refuses_deep_policies(head):
    spec, theta, batch, weights = _batch(head, (3, 3))
    with pytest.raises(ValueError, match="one layer"):
        est.surrogate_diag_hessian_exact(spec, theta, batch, weights)


@pytest.mark.parametrize("hidden", [(5,), (3, 3)])
@pytest.mark.parametrize("head", HEADS)
def test_hutchinson_is_the_probe_times_the_hessian_probe(head, hidden):
    spec, theta, batch, weights = _batch(head, hidden)
    probe = torch.from_numpy(2.0 * np.random.default_rng(1).integers(0, 2, theta.shape) - 1)
    h = est.surrogate_diag_hessian_hutchinson(spec, theta, batch, weights, probe)
    for r in range(theta.shape[0]):
        hess = torch.func.hessian(_surrogate(spec, batch, weights, r))(theta[r])
        torch.testing.assert_close(h[r], probe[r] * (hess @ probe[r]))


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("head", HEADS)
def test_empirical_fisher_is_the_mean_of_per_step_score_outer_products(head, hidden):
    spec, theta, batch, _ = _batch(head, hidden)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(9))
    fvp = est.fisher_vector_product(spec, theta, batch, "empirical")(v)
    for r in range(theta.shape[0]):
        n = int(batch.mask[r].sum())

        def per_step(th):
            return _ref_log_prob(spec, _dist(spec, th, batch.obs[r, :n]), batch.actions[r, :n])

        scores = torch.func.jacrev(per_step)(theta[r])  # (n, d)
        fisher = sum(torch.outer(scores[t], scores[t]) for t in range(n)) / n
        torch.testing.assert_close(fvp[r], fisher @ v[r])


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("head", HEADS)
def test_expected_fisher_is_the_hessian_of_the_kl(head, hidden):
    """F = grad^2_theta (1/N) sum_t KL(pi_theta0(.|s_t) || pi_theta(.|s_t)) at theta = theta0;
    for the Gaussian head also the closed form: 2 I on log_std, no cross terms."""
    spec, theta, batch, _ = _batch(head, hidden)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(9))
    fvp = est.fisher_vector_product(spec, theta, batch, "expected")(v)
    for r in range(theta.shape[0]):
        n = int(batch.mask[r].sum())
        obs = batch.obs[r, :n]
        p0 = _dist(spec, theta[r], obs)

        def kl(th):
            d = torch.distributions.kl_divergence(p0, _dist(spec, th, obs))
            return (d.sum(-1) if head == "gaussian" else d).mean()

        fisher = torch.func.hessian(kl)(theta[r])
        torch.testing.assert_close(fvp[r], fisher @ v[r])
        if head == "gaussian":
            sl = spec.log_std_slice
            torch.testing.assert_close(fisher[sl, sl], 2 * torch.eye(spec.n_actions))
            torch.testing.assert_close(fisher[sl, : spec.n_net_params], torch.zeros(spec.n_actions, spec.n_net_params))
            torch.testing.assert_close(fvp[r, sl], 2 * v[r, sl])


def test_gaussian_fisher_of_an_empty_episode_is_zero():
    spec, theta, batch, _ = _batch("gaussian", (5,))
    empty = batch._replace(mask=torch.zeros_like(batch.mask))
    v = torch.randn_like(theta)
    for kind in ("empirical", "expected"):
        assert torch.equal(est.fisher_vector_product(spec, theta, empty, kind)(v), torch.zeros_like(v))


def test_gaussian_estimates_are_bitwise_invariant_to_extra_padding():
    """As for the categorical head (test_estimators.py): float32, padded to 250 and to 500."""
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(5)
    spec = PolicySpec(4, 2, (16,), "gaussian")
    theta = init_params(spec, [np.random.default_rng(r) for r in range(4)])
    theta[:, spec.log_std_slice] = torch.rand(4, 2, generator=g) - 0.5
    lengths = torch.tensor([248, 250, 7, 246])
    mask = torch.arange(500)[None] < lengths[:, None]
    obs = torch.randn(4, 500, 4, generator=g) * mask[..., None]
    actions = torch.randn(4, 500, 2, generator=g) * mask[..., None]
    batch = est.EpisodeBatch(obs, actions, torch.randn(4, 500, generator=g) * mask, mask)
    short = est.EpisodeBatch(*(x[:, :250] for x in batch))

    def estimates(b):
        returns = est.compute_returns(b.rewards, b.mask, 0.99, "reward_to_go")
        adv = est.compute_advantages(returns, b.mask, standardize=True)
        grad = est.policy_gradient(spec, theta, b, adv, entropy_coef=0.01, with_score_sum=True)
        h = est.diag_hessian(spec, theta, b, adv, grad)
        fisher = [est.fisher_vector_product(spec, theta, b, kind)(grad.g) for kind in ("empirical", "expected")]
        return [grad.g, grad.score_sum, h, *fisher]

    for a, b in zip(estimates(batch), estimates(short)):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- unbiasedness


def _bandit_samples(spec, theta, s, c, n, seed, chunk=25_000):
    """n one-step episodes from a ~ N(mu(s), sigma^2) (normals from an explicit generator),
    reward -|a - c|^2, raw returns (no baseline, no standardisation): per-sample g, full h and
    the surrogate term alone, each (n, d)."""
    rng = np.random.default_rng(seed)
    fwd0 = forward(spec, theta[None], s[None, None])
    mean = fwd0.logits[0, 0].numpy()
    log_std = fwd0.log_std[0].numpy()
    out = {"g": [], "h": [], "surrogate": []}
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        a = torch.from_numpy(sample_gaussian(np.broadcast_to(mean, (m, len(c))), log_std,
                                             rng.standard_normal((m, len(c)))))[:, None]
        rewards = -((a - c) ** 2).sum(-1)
        mask = torch.ones(m, 1, dtype=torch.bool)
        batch = est.EpisodeBatch(s.expand(m, 1, -1), a, rewards, mask)
        adv = est.compute_advantages(est.compute_returns(rewards, mask, 1.0, "total"), mask, standardize=False)
        adv = adv.double()
        th = theta.expand(m, -1)
        grad = est.policy_gradient(spec, th, batch, adv, with_score_sum=True)
        out["g"].append(grad.g)
        out["h"].append(est.diag_hessian(spec, th, batch, adv, grad, terms="full"))
        out["surrogate"].append(est.diag_hessian(spec, th, batch, adv, grad, terms="surrogate"))
    return {k: torch.cat(v) for k, v in out.items()}


@pytest.mark.parametrize("hidden", [(), (3,)])
def test_linear_gaussian_bandit_gradient_and_hessian_are_unbiased(hidden):
    """One step from a fixed s, a ~ N(mu = f_theta(s), diag sigma^2), r(a) = -|a - c|^2, so
    J(theta) = -sum_i ((mu_i - c_i)^2 + sigma_i^2) in closed form. The Monte Carlo means of g
    and of the full h are within 4.5 standard errors of grad J and diag grad^2 J in every
    coordinate; the surrogate term alone is not (its bias is many standard errors), which
    shows the test can fail."""
    spec = PolicySpec(2, 2, hidden, "gaussian")
    theta = init_params(spec, [np.random.default_rng(3)]).double()[0]
    theta[spec.log_std_slice] = torch.tensor([np.log(0.8), np.log(0.6)])
    s = torch.tensor([0.5, -1.0])
    c = torch.tensor([0.4, -0.3])

    def j(th):
        mu = forward(spec, th[None], s[None, None]).logits[0, 0]
        return -(((mu - c) ** 2) + torch.exp(2 * th[spec.log_std_slice])).sum()

    grad_j = torch.func.grad(j)(theta)
    hess_j = torch.diagonal(torch.func.hessian(j)(theta))
    n = 200_000
    samples = _bandit_samples(spec, theta, s, c, n, seed=0)

    def z_scores(x, target):
        return (x.mean(0) - target) / (x.std(0) / np.sqrt(n))

    assert z_scores(samples["g"], grad_j).abs().max() < 4.5
    assert z_scores(samples["h"], hess_j).abs().max() < 4.5
    assert z_scores(samples["surrogate"], hess_j).abs().max() > 10


@pytest.mark.parametrize("n_actions", [1, 3])
def test_gaussian_estimates_of_a_run_do_not_depend_on_its_batch(n_actions):
    """torch's matrix-vector path (one action dimension) rounds differently alone and in a batch;
    :func:`pgsom.policy.bmm` pads it away: forward, gradient, exact Hessian diagonal and both
    Fisher-vector products of run i alone equal its row in a batch of 3."""
    from pgsom import estimators as est
    from pgsom.policy import forward, init_params

    spec = PolicySpec(4, n_actions, (16,), "gaussian")
    rng = np.random.default_rng(5)
    theta = init_params(spec, [np.random.default_rng(i) for i in range(3)])
    mask = torch.from_numpy(np.arange(50)[None] < np.array([7, 30, 50])[:, None])
    obs = torch.from_numpy(rng.standard_normal((3, 50, 4)).astype(np.float32))
    act = torch.from_numpy(rng.standard_normal((3, 50, n_actions)).astype(np.float32)) * mask.unsqueeze(-1)
    batch = est.EpisodeBatch(obs, act, mask.float(), mask)
    adv = torch.from_numpy(rng.standard_normal((3, 50)).astype(np.float32)) * mask
    v = torch.from_numpy(rng.standard_normal((3, spec.n_params)).astype(np.float32))

    def estimates(th, b, a, vv):
        g = est.policy_gradient(spec, th, b, a, 0.01, with_score_sum=True)
        h = est.diag_hessian(spec, th, b, a, g, estimator="exact", terms="full")
        return [forward(spec, th, b.obs).logits, g.g, h] + [
            est.fisher_vector_product(spec, th, b, kind, est.policy_forward(spec, th, b))(vv)
            for kind in ("empirical", "expected")]

    together = estimates(theta, batch, adv, v)
    for i in range(3):
        alone = estimates(theta[i:i + 1], est.EpisodeBatch(*(x[i:i + 1] for x in batch)), adv[i:i + 1], v[i:i + 1])
        for a, t in zip(alone, together):
            assert torch.equal(a[0], t[i])
