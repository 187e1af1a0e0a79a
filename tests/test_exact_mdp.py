"""Tests of pgsom.exact_mdp and, through it, of the package's estimators on an MDP whose J is exact.

Two kinds of tolerance, both derived rather than guessed:

* Exact identities (enumeration vs autograd): rewards and baselines lie on a 1/64 grid, so the
  float32 advantages are exact and the only error is float64 rounding (~1e-15 relative); the
  tolerance is 1e-10 relative (EXACT_RTOL), five orders above it.
* Monte Carlo checks: a z-test per coordinate, |mean - exact| <= z * sqrt(Var / N), with Var the
  *exact* variance of the single-episode estimate (by enumeration) and z the two-sided normal
  quantile Bonferroni-corrected over the coordinates and cases of the test, so that a correct
  estimator fails a test with probability at most FALSE_FAILURE (1e-3) (CLT approximation; N >= 4000).
  Seeds are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps

from pgsom import estimators as est
from pgsom.config import AlgoConfig
from pgsom.policy import forward
from pgsom import exact_mdp as xm

EXACT_RTOL = 1e-10
FALSE_FAILURE = 1e-3
N_MC = 4000
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "derivations.ipynb"


def z_bound(n_comparisons: int, alpha: float = FALSE_FAILURE) -> float:
    """Two-sided normal quantile with Bonferroni over ``n_comparisons``."""
    return float(sps.norm.ppf(1 - alpha / (2 * n_comparisons)))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


MDP = xm.FiniteMDP(n_states=3, n_actions=2, horizon=3, seed=11)
CLASSES = {"linear": (), "mlp": (4,)}


@pytest.fixture(scope="module")
def models():
    return {name: xm.ExactMDP(MDP, hidden) for name, hidden in CLASSES.items()}


@pytest.fixture(scope="module")
def thetas(models):
    return {name: xm.random_thetas(e.spec, 2, seed=5 + k, scale=2.0) for k, (name, e) in enumerate(models.items())}


# --------------------------------------------------------------------------- construction


def test_build_is_seeded_valid_and_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    a, b, c = MDP.build(), MDP.build(), xm.FiniteMDP(n_states=3, n_actions=2, horizon=3, seed=12).build()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a.transitions, c.transitions)
    assert np.allclose(a.initial.sum(), 1) and np.allclose(a.transitions.sum(-1), 1)
    assert ((a.end >= 0) & (a.end < MDP.end_max)).all()
    assert np.array_equal(a.rewards / xm.REWARD_GRID, np.round(a.rewards / xm.REWARD_GRID))
    e = xm.ExactMDP(MDP)
    e.sample_episodes(torch.zeros(e.d, dtype=torch.float64), 10, np.random.default_rng(0))
    assert np.array_equal(np.random.get_state()[1], state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_invalid_descriptions_are_rejected():
    with pytest.raises(ValueError, match="observation"):
        xm.FiniteMDP(observation="pixels")
    with pytest.raises(ValueError, match="end_max"):
        xm.FiniteMDP(end_max=1.0)
    with pytest.raises(ValueError, match="n_actions"):
        xm.FiniteMDP(n_actions=1)


@pytest.mark.parametrize("observation", ["state", "state_time"])
@pytest.mark.parametrize("end_max", [0.0, 0.3])
def test_enumeration_is_a_distribution_and_matches_dynamic_programming(observation, end_max):
    mdp = xm.FiniteMDP(n_states=3, n_actions=2, horizon=3, seed=3, end_max=end_max, observation=observation)
    e = xm.ExactMDP(mdp, (3,))
    th = xm.random_thetas(e.spec, 3, seed=1, scale=2.0)
    p = e.trajectory_probs(th)
    assert torch.allclose(p.sum(1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    if end_max == 0:
        assert bool(e.trajectories.mask.all())
    # J by forward dynamic programming (no enumeration): sum_t sum_s d_t(s) sum_a pi(a|o) r(s, a)
    for row in th:
        vis = e.state_visitation(row)
        probs = e.log_prob_table(row).exp()
        dp = sum(float(vis[t] @ (probs[torch.from_numpy(mdp.obs_index(np.arange(3), t))]
                                 * torch.from_numpy(e.model.rewards)).sum(1)) for t in range(mdp.horizon))
        assert abs(float(e.exact_J(row)) - dp) <= EXACT_RTOL * abs(dp)
        reach = e.expectation(e.trajectories.mask.double(), row)
        assert torch.allclose(reach, vis.sum(1), rtol=EXACT_RTOL, atol=0)


def test_exact_J_equals_monte_carlo_estimate(models, thetas):
    e, th = models["mlp"], thetas["mlp"][0]
    n = 20000
    batch = e.sample_episodes(th, n, np.random.default_rng(2024))
    returns = batch.rewards.double().sum(1)
    mean, var = e.moments(e.trajectories.total_reward, th)
    assert abs(float(mean - e.exact_J(th))) <= EXACT_RTOL
    z = abs(float(returns.mean() - mean)) / math.sqrt(float(var) / n)
    assert z <= z_bound(1)
    # the sampler's step-reaching frequencies, too (one comparison per step)
    reach, reach_var = e.moments(e.trajectories.mask.double(), th)
    zs = (batch.mask.double().mean(0) - reach).abs()[1:] / (reach_var[1:] / n).sqrt()
    assert float(zs.max()) <= z_bound(MDP.horizon - 1)


def test_sample_episodes_layout_and_reproducibility(models, thetas):
    e, th = models["linear"], thetas["linear"][0]
    a = e.sample_episodes(th, 50, np.random.default_rng(7))
    b = e.sample_episodes(th, 50, np.random.default_rng(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a.obs.shape == (50, MDP.horizon, MDP.obs_size) and a.obs.dtype == torch.float64
    assert a.rewards.dtype == torch.float32 and a.mask.dtype == torch.bool
    assert bool(a.mask[:, 0].all())
    assert bool((a.mask[:, 1:] <= a.mask[:, :-1]).all())  # a prefix of real steps
    assert float(a.obs[~a.mask].abs().sum()) == 0 and float(a.rewards[~a.mask].abs().sum()) == 0
    # one theta per row: row i is played with theta[i]
    rows = xm.random_thetas(e.spec, 50, seed=9, scale=3.0)
    assert e.sample_episodes(rows, 50, np.random.default_rng(1)).mask.shape == (50, MDP.horizon)
    with pytest.raises(ValueError):
        e.sample_episodes(rows[:3], 50, np.random.default_rng(1))


# --------------------------------------------------------------------------- exact identities


@pytest.mark.parametrize("name", list(CLASSES))
def test_fisher_identity_holds_exactly(models, thetas, name):
    e = models[name]
    for th in thetas[name]:
        outer, hess = e.fisher_identity_terms(th)
        scale = float(outer.abs().max())
        assert scale > 0.1  # the two terms are large: the cancellation is not trivial
        assert float((outer + hess).abs().max()) <= EXACT_RTOL * scale
        # E[S S^T] is the Fisher information from forward dynamic programming
        assert rel_err(outer, e.trajectory_fisher(th)) <= EXACT_RTOL


@pytest.mark.parametrize("name", list(CLASSES))
def test_lemma_3_1_decomposition_and_gradient(models, thetas, name):
    e = models[name]
    th = thetas[name][0]
    H = e.exact_hessian(th)
    outer, second = e.hessian_decomposition(th)
    assert rel_err(outer + second, H) <= EXACT_RTOL
    R = e.trajectories.total_reward
    assert rel_err(e.expectation(R.unsqueeze(1) * e.trajectory_scores(th), th), e.exact_grad(th)) <= EXACT_RTOL
    # batched (R, d) input agrees with the single-vector form
    assert rel_err(e.exact_grad(thetas[name])[1], e.exact_grad(thetas[name][1])) <= EXACT_RTOL
    assert rel_err(e.exact_hessian(thetas[name])[1], e.exact_hessian(thetas[name][1])) <= EXACT_RTOL


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("returns", ["reward_to_go", "total"])
@pytest.mark.parametrize("with_baseline", [False, True])
def test_package_estimators_are_exactly_unbiased_by_enumeration(models, thetas, name, returns, with_baseline):
    e = models[name]
    batch = e.episodes()
    k = batch.mask.shape[0]
    for th in thetas[name]:
        b = e.grid_baseline(th) if with_baseline else None
        out = xm.single_episode_estimates(e.spec, xm.repeat(th, k), batch, returns=returns, baseline=b)
        grad, diag = e.exact_grad(th), e.exact_hessian(th).diagonal()
        assert rel_err(e.expectation(out.g, th), grad) <= EXACT_RTOL
        assert rel_err(e.expectation(out.h, th), diag) <= EXACT_RTOL
        # the surrogate-only term misses E[R S*S]: far from the diagonal (relative error > 10%)
        assert rel_err(e.expectation(out.h_surrogate, th), diag) > 0.1


# --------------------------------------------------------------------------- Monte Carlo


def _mc_z(e, th, field, baseline, seed, standardize=False):
    """Per-coordinate z of the Monte Carlo mean of N_MC single-episode estimates, with the exact
    variance; also the exact mean's z (the bias in units of the Monte Carlo standard error)."""
    batch = e.sample_episodes(th, N_MC, np.random.default_rng(seed))
    out = xm.single_episode_estimates(e.spec, xm.repeat(th, N_MC), batch, baseline=baseline, standardize=standardize)
    every = e.episodes()
    exact_out = xm.single_episode_estimates(e.spec, xm.repeat(th, every.mask.shape[0]), every, baseline=baseline,
                                            standardize=standardize)
    mean, var = e.moments(getattr(exact_out, field), th)
    truth = e.exact_grad(th) if field == "g" else e.exact_hessian(th).diagonal()
    sem = (var / N_MC).sqrt()
    keep = sem > 0
    z = ((getattr(out, field).mean(0) - truth).abs() / sem)[keep]
    bias_z = ((mean - truth).abs() / sem)[keep]
    return z, bias_z


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("with_baseline", [False, True])
def test_gradient_and_diag_hessian_unbiased_monte_carlo(models, thetas, name, with_baseline):
    e, th = models[name], thetas[name][0]
    b = e.grid_baseline(th) if with_baseline else None
    bound = z_bound(2 * e.d)
    for k, field in enumerate(("g", "h")):
        z, _ = _mc_z(e, th, field, b, seed=100 + k)
        assert float(z.max()) <= bound, f"{field}: max |z| = {float(z.max()):.2f} > {bound:.2f}"


@pytest.mark.parametrize("name", list(CLASSES))
def test_surrogate_only_hessian_is_biased_monte_carlo(models, thetas, name):
    e, th = models[name], thetas[name][0]
    bound = z_bound(e.d)
    z, bias_z = _mc_z(e, th, "h_surrogate", None, seed=200)
    # power: the exact bias is >= bound + 4 standard errors on some coordinate, so a sample mean
    # inside the bound there has probability < 4e-5; the test then checks the sample shows it.
    assert float(bias_z.max()) >= bound + 4
    assert float(z.max()) > bound


def test_standardised_advantages_bias_the_gradient_exactly(models, thetas):
    e, th = models["linear"], thetas["linear"][0]
    batch = e.episodes()
    out = xm.single_episode_estimates(e.spec, xm.repeat(th, batch.mask.shape[0]), batch, standardize=True)
    assert rel_err(e.expectation(out.g, th), e.exact_grad(th)) > 0.05


@pytest.mark.parametrize("name", list(CLASSES))
def test_hutchinson_mean_equals_exact_surrogate_diagonal(models, thetas, name):
    e, th = models[name], thetas[name][0]
    episode = e.sample_episodes(th, 1, np.random.default_rng(3))
    weights = est.compute_advantages(est.compute_returns(episode.rewards, episode.mask, 1.0, "reward_to_go"),
                                     episode.mask, None, False)
    exact = est.surrogate_diag_hessian_exact(e.spec, th.unsqueeze(0), episode, weights)[0]

    def surrogate(t):
        lp = forward(e.spec, t.unsqueeze(0), episode.obs).log_probs[0]
        return (weights[0] * episode.mask[0] * lp.gather(-1, episode.actions[0].unsqueeze(-1)).squeeze(-1)).sum()

    H = torch.func.hessian(surrogate)(th)
    assert rel_err(exact, H.diagonal()) <= EXACT_RTOL
    if e.d <= 12:  # every Rademacher probe: the mean is exact
        probes = torch.tensor(list(np.ndindex(*(2,) * e.d)), dtype=torch.float64) * 2 - 1
        n, tol = probes.shape[0], EXACT_RTOL * float(H.diagonal().abs().max())
        bound = None
    else:
        n = 20000
        probes = torch.from_numpy(2.0 * np.random.default_rng(4).integers(0, 2, (n, e.d)) - 1)
        # z_j (Hz)_j = H_jj + sum_{k != j} z_j z_k H_jk: variance sum_{k != j} H_jk^2
        sd = ((H**2).sum(1) - H.diagonal() ** 2).sqrt()
        bound = z_bound(e.d) * sd / math.sqrt(n)
    rep = est.EpisodeBatch(*(x.expand(n, *x.shape[1:]).contiguous() for x in episode))
    hut = est.surrogate_diag_hessian_hutchinson(e.spec, xm.repeat(th, n), rep, weights.expand(n, -1), probes)
    err = (hut.mean(0) - exact).abs()
    assert bool((err <= (tol if bound is None else bound)).all())


@pytest.mark.parametrize("name", list(CLASSES))
@pytest.mark.parametrize("kind", ["empirical", "expected"])
def test_fisher_vector_product_equals_exact_fisher(models, thetas, name, kind):
    e, th = models[name], thetas[name][0]
    batch = e.episodes()
    k = batch.mask.shape[0]
    v = torch.from_numpy(np.random.default_rng(5).standard_normal((k, e.d)))
    fvp = est.fisher_vector_product(e.spec, xm.repeat(th, k), batch, kind)(v)
    # per episode: F_tau = (1/L) sum_t M_t with M_t = s_t s_t^T or E_a[s s^T], from autograd scores
    scores = e.score_table(th)  # (n_obs, A, d)
    probs = e.log_prob_table(th).exp()
    tr = e.trajectories
    s_t = scores[tr.obs_index, tr.actions]  # (K, T, d)
    if kind == "empirical":
        Fv = (s_t * (s_t * v.unsqueeze(1)).sum(-1, keepdim=True))
    else:
        sv = torch.einsum("oad,kd->koa", scores, v)  # (K, n_obs, A)
        per_obs = torch.einsum("oa,koa,oad->kod", probs, sv, scores)
        Fv = per_obs[torch.arange(k).unsqueeze(1), tr.obs_index]
    Fv = (Fv * tr.mask.unsqueeze(-1)).sum(1) / tr.mask.sum(1, keepdim=True)
    assert rel_err(fvp, Fv) <= EXACT_RTOL


def test_expected_fisher_by_enumeration_equals_dynamic_programming_fisher():
    mdp = xm.FiniteMDP(n_states=3, n_actions=2, horizon=3, seed=11, end_max=0.0)
    e = xm.ExactMDP(mdp, (4,))
    th = xm.random_thetas(e.spec, 1, seed=2, scale=2.0)[0]
    batch = e.episodes()
    k = batch.mask.shape[0]
    F = e.trajectory_fisher(th) / mdp.horizon  # fixed length: E[F_tau] = (1/T) sum_t E[F(o_t)]
    for kind in ("empirical", "expected"):
        fvp = est.fisher_vector_product(e.spec, xm.repeat(th, k), batch, kind)
        columns = []
        for j in range(e.d):
            v = torch.zeros(k, e.d, dtype=torch.float64)
            v[:, j] = 1
            columns.append(e.expectation(fvp(v), th))
        assert rel_err(torch.stack(columns, 1), F) <= EXACT_RTOL


# --------------------------------------------------------------------------- Lemma 3.2, rules


@pytest.mark.parametrize("name", list(CLASSES))
def test_lemma_3_2_score_ignores_the_kernel(models, thetas, name):
    e, th = models[name], thetas[name][0]
    other = xm.FiniteMDP(n_states=3, n_actions=2, horizon=3, seed=99).build()._replace(rewards=e.model.rewards)
    e2 = e.with_model(other)
    batch = e.sample_episodes(th, 4, np.random.default_rng(8))
    package_S = xm.single_episode_estimates(e.spec, xm.repeat(th, 4), batch).score_sum
    for i in range(4):
        L = int(batch.mask[i].sum())
        states = batch.obs[i, :L, : MDP.n_states].argmax(-1).numpy()
        actions = batch.actions[i, :L].numpy()
        s1 = e.trajectory_score(th, states, actions)
        s2 = e.trajectory_score(th, states, actions, other)
        assert rel_err(s1, s2) <= EXACT_RTOL
        assert rel_err(package_S[i], s1) <= EXACT_RTOL
        log_p, log_p_other = e.trajectory_log_prob(th, states, actions), e.trajectory_log_prob(th, states, actions, other)
        assert abs(float(log_p - log_p_other)) > 1e-3  # the kernel does change p(tau)
        assert torch.equal(e.episode(states, actions).actions[0, :L], batch.actions[i, :L])
    assert abs(float(e.exact_J(th) - e2.exact_J(th))) > 1e-3


def test_first_update_rules(models, thetas):
    e, th = models["mlp"], thetas["mlp"][0]
    batch = e.episodes()
    grad = e.exact_grad(th)
    unb = dict(gamma=1.0, standardize=False)
    pg = AlgoConfig(method="pg", **unb)
    assert rel_err(e.expectation(xm.first_update(e, pg, th, batch), th), pg.effective_lr * grad) <= EXACT_RTOL
    rk = AlgoConfig(method="rk", **unb)
    step = e.expectation(xm.first_update(e, rk, th, batch, second_stage="exact"), th)
    reuse, fresh = xm.rk_second_stage(e, th, rk.effective_lr)
    assert rel_err(step, 0.5 * rk.effective_lr * (grad + fresh)) <= EXACT_RTOL
    step_reuse = e.expectation(xm.first_update(e, AlgoConfig(method="rk", rk_stage="reuse", **unb), th, batch), th)
    assert rel_err(step_reuse, 0.5 * rk.effective_lr * (grad + reuse)) <= EXACT_RTOL
    # converged moments: E[g] / sqrt(E[h^2]) is an ascent direction (a positive diagonal rescaling)
    limit = xm.moment_limit_step(e, AlgoConfig(method="hessian", **unb), th)
    assert float(limit @ grad) > 0
    with pytest.raises(ValueError, match="unbiased"):
        xm.first_update(e, AlgoConfig(method="rk"), th, batch, second_stage="exact")


# --------------------------------------------------------------------------- notebook


def test_notebook_is_committed_clean():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert all(c.get("outputs") == [] and c.get("execution_count") is None for c in code)


def test_notebook_smoke(tmp_path):
    papermill = pytest.importorskip("papermill")
    import pandas as pd

    csv = tmp_path / "paper" / "derivations.csv"
    params = dict(horizon=3, n_thetas=2, n_mc=500, n_mc_ascent=100, rk_alphas=[0.002, 0.01, 0.05],
                  derivations_csv=str(csv), figures_dir=str(tmp_path / "figures"))
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters=params,
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    from pgsom.pipeline import figure_cells_without_image

    assert figure_cells_without_image(tmp_path / "out.ipynb") == []  # every figure shows
    df = pd.read_csv(csv)
    assert list(df.columns) == ["claim", "quantity", "value", "ci_low", "ci_high", "verdict"]
    assert np.isfinite(df[["value", "ci_low", "ci_high"]].to_numpy()).all()
    allowed = {"supported", "not supported", "contradicted", "inconclusive", "measured"}
    assert set(df.verdict) <= allowed
    for claim in ("C3", "C4", "C5", "C6"):
        assert (df[df.claim == claim].verdict != "measured").any(), claim
    assert {"SNR", "RK-reuse"} <= set(df.claim)
    for name in ("unbiased", "convergence", "spectrum", "ascent", "ascent_eps", "snr", "rk_reuse"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"derivations_{name}.{ext}").stat().st_size > 0
