"""The fused kernel (pgsom.kernels.fused) against the references: gymnasium's CartPole-v1 step for
step (near the termination edges too), the torch closed-form estimators on random batches, and
the torch reference path (backend "fast") in training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgsom import estimators as est
from pgsom.config import RunConfig
from pgsom.variants import REUSE, variant
from pgsom.envs import CartPoleBatch
from pgsom.kernels import fused
from pgsom.policy import PolicySpec, forward, init_params
from pgsom.runner import FusedBuffers, RunSpec, _cartpole_consts, make_train, rollout, rollout_fused

SPEC = PolicySpec(4, 2, (16,))


def always(action: int, n: int, spec: PolicySpec = SPEC) -> torch.Tensor:
    """Parameters of a policy that picks ``action`` with probability 1 (float32 exp underflows)."""
    theta = torch.zeros(n, spec.n_params)
    theta[:, -2 + action] = 200.0
    return theta


def kernel_episode(theta, states, max_steps=500, uniforms=None):
    n = theta.shape[0]
    buf = FusedBuffers(SPEC, n, max_steps)
    env = CartPoleBatch(list(range(n)))
    state = np.array(states, np.float64)
    u = np.full((n, max_steps), 0.5) if uniforms is None else uniforms
    fused.rollout(theta.numpy(), state, u, np.ones(n, bool), SPEC.hidden[0], _cartpole_consts(env), max_steps,
                  buf.obs, buf.act, buf.logits, buf.actions, buf.lengths, buf.prev, fused.every(n))
    return buf, state


def gymnasium_episode(state, actions):
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, np.float64)
    obs, steps = [np.array(state, np.float32)], 0
    for a in actions:
        o, _, term, trunc, _ = env.step(int(a))
        steps += 1
        obs.append(o)
        if term or trunc:
            break
    return np.array(obs[:-1]), steps, np.asarray(env.unwrapped.state)


# --------------------------------------------------------------------------- CartPole


@pytest.mark.parametrize("action", [0, 1])
def test_termination_near_the_edges_matches_gymnasium(action):
    rng = np.random.default_rng(3)
    n = 400
    # states just inside the edges, moving outwards at speeds that cross the thresholds by a
    # little (a threshold moved by 2% would change the termination step)
    states = np.zeros((n, 4))
    side = rng.choice([-1.0, 1.0], n)
    edge_x = rng.random(n) < 0.5
    states[:, 0] = np.where(edge_x, side * rng.uniform(2.30, 2.399, n), rng.uniform(-0.5, 0.5, n))
    states[:, 1] = np.where(edge_x, side * rng.uniform(0.05, 2.0, n), rng.uniform(-0.5, 0.5, n))
    states[:, 2] = np.where(edge_x, rng.uniform(-0.05, 0.05, n), side * rng.uniform(0.19, 0.2094, n))
    states[:, 3] = np.where(edge_x, rng.uniform(-0.2, 0.2, n), side * rng.uniform(0.05, 1.0, n))
    buf, final = kernel_episode(always(action, n), states, max_steps=40)
    assert (buf.actions[np.arange(n), 0] == action).all()
    numpy_env = CartPoleBatch(list(range(n)))
    numpy_env.state = states.copy()
    numpy_steps = np.zeros(n, np.int64)
    alive = np.ones(n, bool)
    for _ in range(40):
        res = numpy_env.step(np.full(n, action), alive)
        numpy_steps += alive
        alive &= ~(res.terminated | res.truncated)
    for i in range(n):
        obs, steps, state = gymnasium_episode(states[i], [action] * 40)
        assert buf.lengths[i] == steps == numpy_steps[i], (i, states[i])
        np.testing.assert_array_equal(buf.obs[i, :steps], obs)
        np.testing.assert_array_equal(final[i], state)
    assert (buf.lengths < 40).mean() > 0.9  # nearly every state does terminate within the window


def test_a_kernel_episode_is_gymnasiums_step_for_step():
    rng = np.random.default_rng(0)
    n = 6
    theta = init_params(SPEC, [np.random.default_rng(i) for i in range(n)])
    env = CartPoleBatch([11 * i for i in range(n)])
    buf = FusedBuffers(SPEC, n, 500)
    uniforms = rng.random((n, 500))
    batch = rollout_fused(SPEC, theta, env, uniforms, np.ones(n, bool), buf)
    for i in range(n):
        g = gym.make("CartPole-v1")
        first, _ = g.reset(seed=11 * i)
        np.testing.assert_array_equal(buf.obs[i, 0], first)
        steps = int(buf.lengths[i])
        for t in range(steps):
            np.testing.assert_array_equal(buf.obs[i, t], first if t == 0 else obs)
            obs, r, term, trunc, _ = g.step(int(buf.actions[i, t]))
            assert r == 1.0
            assert (term or trunc) == (t == steps - 1)
    assert batch.mask.sum(1).tolist() == buf.lengths.tolist()


def test_kernel_acts_like_the_reference_rollout():
    """Same resets, same uniforms: the same episodes (actions and lengths) as the numpy actor."""
    n = 8
    theta = init_params(SPEC, [np.random.default_rng(100 + i) for i in range(n)])
    uniforms = np.random.default_rng(1).random((n, 500))
    ref = rollout(SPEC, theta, CartPoleBatch(list(range(n))), uniforms, np.ones(n, bool))
    buf = FusedBuffers(SPEC, n, 500)
    got = rollout_fused(SPEC, theta, CartPoleBatch(list(range(n))), uniforms, np.ones(n, bool), buf)
    assert torch.equal(ref.mask, got.mask)
    assert torch.equal(ref.actions * ref.mask, got.actions * got.mask)
    m3 = got.mask.unsqueeze(-1)
    torch.testing.assert_close(ref.obs * m3, got.obs, rtol=0, atol=0)  # the kernel pads with zeros
    # activations and logits are the policy's at the episode's observations
    fwd = forward(SPEC, theta, got.obs)
    m = got.mask.numpy()
    np.testing.assert_allclose(buf.logits[:, : m.shape[1]][m], fwd.logits.numpy()[m], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(buf.act[:, : m.shape[1]][m], fwd.inputs[1].numpy()[m], rtol=1e-5, atol=1e-6)


def test_tanh_is_correctly_rounded_on_a_dense_grid():
    from numba import njit

    @njit
    def many(z):
        out = np.empty_like(z)
        for i in range(z.shape[0]):
            out[i] = fused.tanh_f32(z[i])
        return out

    z = np.concatenate([np.linspace(-12, 12, 400_001), np.geomspace(1e-30, 0.1, 20_000),
                        -np.geomspace(1e-30, 0.1, 20_000), [0.0, np.inf, -np.inf]]).astype(np.float32)
    got = many(z)
    exact = np.tanh(z.astype(np.float64))
    ulps = np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulps.max() <= 1.0
    assert np.mean(got != exact.astype(np.float32)) < 1e-4

    @njit
    def staged(z):  # the rollout's array version, in blocks of 64 hidden units
        out = z.copy()
        rbuf, sbuf = np.empty(64), np.empty(64, np.int64)
        for b in range(0, z.shape[0] - 63, 64):
            fused.tanh_f32_inplace(out[b : b + 64], rbuf, sbuf)
        return out

    head = z.shape[0] - z.shape[0] % 64
    assert staged(z)[:head].tobytes() == got[:head].tobytes()


# --------------------------------------------------------------------------- estimates


def random_episodes(n=5, horizon=60, seed=0, spec=SPEC):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, horizon + 1, n)
    lengths[0] = horizon
    obs = np.zeros((n, horizon, 4), np.float32)
    actions = np.zeros((n, horizon), np.int64)
    adv = np.zeros((n, horizon), np.float32)
    for i, L in enumerate(lengths):
        obs[i, :L] = rng.normal(0, 1, (L, 4))
        actions[i, :L] = rng.integers(0, 2, L)
        adv[i, :L] = rng.normal(0, 1, L)
    theta = torch.from_numpy(rng.normal(0, 0.6, (n, spec.n_params)).astype(np.float32))
    mask = np.arange(horizon)[None] < lengths[:, None]
    batch = est.EpisodeBatch(torch.from_numpy(obs), torch.from_numpy(actions),
                             torch.from_numpy(mask.astype(np.float32)), torch.from_numpy(mask))
    return theta, batch, lengths, torch.from_numpy(adv)


def kernel_estimates(theta, batch, lengths, adv, entropy_coef):
    n, d = theta.shape
    horizon = batch.obs.shape[1]
    act = np.zeros((n, horizon, SPEC.hidden[0]), np.float32)
    logits = np.zeros((n, horizon, 2), np.float32)
    rows = np.arange(n, dtype=np.int64)
    fused.forward(theta.numpy(), batch.obs.numpy(), lengths, rows, act, logits, fused.every(n))
    out = [np.empty((n, d), np.float32) for _ in range(4)]
    fused.estimates(theta.numpy(), batch.obs.numpy(), act, logits, batch.actions.numpy(), lengths, rows, rows,
                    adv.numpy(), entropy_coef, True, True, *out, fused.every(n))
    return out, act, logits, rows


@pytest.mark.parametrize("entropy_coef", [0.0, 0.01])
def test_gradient_score_and_hessian_diagonal_equal_the_torch_reference(entropy_coef):
    theta, batch, lengths, adv = random_episodes()
    (g, g_ret, score, hess), *_ = kernel_estimates(theta, batch, lengths, adv, entropy_coef)
    ref = est.policy_gradient(SPEC, theta, batch, adv, entropy_coef, with_score_sum=True)
    ref_h = est.surrogate_diag_hessian_exact(SPEC, theta, batch, adv)
    for got, want in ((g, ref.g), (g_ret, ref.g_return), (score, ref.score_sum), (hess, ref_h)):
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=2e-5, atol=2e-5)
    assert np.abs(hess).max() > 1e-2 and np.abs(g).max() > 1e-2  # not a trivial comparison


@pytest.mark.parametrize("kind", ["empirical", "expected"])
def test_fisher_vector_product_equals_the_torch_reference(kind):
    theta, batch, lengths, adv = random_episodes(seed=4)
    _, act, logits, rows = kernel_estimates(theta, batch, lengths, adv, 0.0)
    v = torch.from_numpy(np.random.default_rng(9).normal(0, 1, theta.shape).astype(np.float32))
    out = np.empty(theta.shape, np.float32)
    fused.fisher_vector_product(theta.numpy(), batch.obs.numpy(), act, logits, batch.actions.numpy(), lengths,
                                rows, rows, v.numpy(), kind == "expected", out, fused.every(len(rows)))
    want = est.fisher_vector_product(SPEC, theta, batch, kind)(v)
    torch.testing.assert_close(torch.from_numpy(out), want, rtol=2e-5, atol=2e-5)


def test_estimates_use_only_each_episodes_real_steps():
    """Garbage after an episode's end changes nothing (the batch's padding never enters)."""
    theta, batch, lengths, adv = random_episodes(seed=2)
    (g1, _, s1, h1), *_ = kernel_estimates(theta, batch, lengths, adv, 0.01)
    noisy_obs = batch.obs.clone()
    mask = batch.mask
    noisy_obs[~mask] = 7.0
    noisy_adv = adv.clone()
    noisy_adv[~mask] = 3.0
    noisy = est.EpisodeBatch(noisy_obs, batch.actions, batch.rewards, mask)
    (g2, _, s2, h2), *_ = kernel_estimates(theta, noisy, lengths, noisy_adv, 0.01)
    for a, b in ((g1, g2), (s1, s2), (h1, h2)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("method,stabiliser", [("pg", "none"), ("hessian", "clip"), ("npg", "none"),
                                               ("rk", "entropy"), ("adam", "baseline")])
def test_fused_training_follows_the_reference_path_for_a_short_budget(method, stabiliser):
    base = RunConfig(episodes=4, eval_episodes=0)
    name, cfg = variant(method, stabiliser, base=base)
    runs = [RunSpec(name, cfg, i) for i in range(4)]
    fused_res = make_train(runs)()
    ref_res = make_train([RunSpec(name, cfg.replace(backend="fast"), i) for i in range(4)])()
    for a, b in zip(fused_res, ref_res):
        np.testing.assert_array_equal(a["episode_length"], b["episode_length"])
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-3, atol=1e-6 * b["grad_norm"].max())


def test_the_numbers_do_not_depend_on_the_kernel_threads():
    """Every method (npg's Fisher products, RK's recomputed stage, the entropy and baseline paths
    included), mixed in one batch, trained with 1, 2 and 3 kernel threads: the same bytes."""
    base = RunConfig(episodes=6, eval_episodes=2)
    variants = [variant("pg", base=base), variant("hessian", "clip", base=base), variant("npg", base=base),
                variant("rk", reading=REUSE, base=base), variant("rk", "entropy", base=base),
                variant("adam", "baseline", base=base), ("npg-expected", variant("npg", base=base)[1].replace(fisher="expected"))]
    runs = [RunSpec(name, cfg, i) for name, cfg in variants for i in range(5)]
    one = make_train(runs)()
    for threads in (2, 3):
        many = make_train(runs, threads=threads)()
        for a, b in zip(one, many):
            for f in a:
                if f != "update_seconds":
                    assert a[f].tobytes() == b[f].tobytes(), (threads, f)


def test_row_split_gives_every_row_to_exactly_one_thread():
    with fused.RowSplit(3) as split:
        parts = split.parts(8)
        assert sorted(np.concatenate(parts).tolist()) == list(range(8))
        assert [p.tolist() for p in parts] == [[0, 3, 6], [1, 4, 7], [2, 5]]
        assert [p.tolist() for p in split.parts(2)] == [[0], [1]]
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        make_train([RunSpec("pg", RunConfig(episodes=1), 0)], threads=0)


# RK2 rules: (the probe point theta~ as a multiple of lr k1, the final point from k1 and k2)
RK_RULES = {"heun": (1.0, lambda theta, lr, k1, k2: theta + lr / 2 * (k1 + k2)),
            "midpoint": (0.5, lambda theta, lr, k1, k2: theta + lr * k2)}


@pytest.mark.parametrize("rule", list(RK_RULES))
def test_rk_reuse_evaluates_the_second_stage_at_the_probe_point(rule):
    """rk reuse, Heun: theta' = theta + lr/2 (g(theta) + g(theta + lr g(theta))) on one episode,
    midpoint: theta' = theta + lr g(theta + lr/2 g(theta)); the second gradient recomputed at
    the probe point (not the first one repeated)."""
    base = RunConfig(episodes=1, eval_episodes=0)
    cfg = base.replace(method="rk", rk_stage="reuse", rk_rule=rule, lr=0.5)
    probe_factor, final = RK_RULES[rule]
    from pgsom.runner import VariantGroup, run_streams

    spec = PolicySpec(4, 2, (64,))
    streams = run_streams(0, 0)
    theta0 = init_params(spec, [streams.init])
    env = CartPoleBatch([streams.env_seed])
    buf = FusedBuffers(spec, 1, 500)
    uniforms = streams.actions.random(500)[None]
    batch = rollout_fused(spec, theta0, env, uniforms, np.ones(1, bool), buf)
    group = VariantGroup(cfg.algo, spec, torch.tensor([0]), theta0.clone(), 500, buf)
    group.learn(batch, [streams.probes], torch.ones(1, dtype=torch.bool))
    steps = int(batch.mask.sum())
    b = est.EpisodeBatch(*(x[:, : max(steps, 1)] for x in batch))
    adv = est.compute_advantages(est.compute_returns(b.rewards, b.mask, 0.99, "reward_to_go"), b.mask)
    g1 = est.policy_gradient(spec, theta0, b, adv).g
    g2 = est.policy_gradient(spec, theta0 + probe_factor * 0.5 * g1, b, adv).g
    expected = final(theta0, 0.5, g1, g2)
    torch.testing.assert_close(group.theta, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(g1, g2, atol=1e-3)  # the two stages differ: reuse is not fresh


def _manual_episode(spec, theta, env, streams, buf):
    uniforms = streams.actions.random(500)[None]
    batch = rollout_fused(spec, theta, env, uniforms, np.ones(1, bool), buf)
    steps = int(batch.mask.sum())
    b = est.EpisodeBatch(*(x[:, : max(steps, 1)] for x in batch))
    adv = est.compute_advantages(est.compute_returns(b.rewards, b.mask, 0.99, "reward_to_go"), b.mask)
    return steps, est.policy_gradient(spec, theta, b, adv).g


@pytest.mark.parametrize("rule", list(RK_RULES))
def test_rk_fresh_plays_its_second_episode_at_the_probe_point(rule):
    """rk fresh: episode 1 at theta gives k1, episode 2 is played at theta~ (theta + lr k1 for
    Heun, theta + lr/2 k1 for midpoint) and gives k2 (a run's grad_norm and episode_length
    record both); reuse would play episode 2 after a whole RK2 step instead."""
    from pgsom.runner import run_streams

    lr = 0.5
    cfg = RunConfig(episodes=2, eval_episodes=0).replace(method="rk", rk_stage="fresh", rk_rule=rule, lr=lr)
    probe_factor = RK_RULES[rule][0]
    res = make_train([RunSpec("rk", cfg, 0)])()[0]
    spec = PolicySpec(4, 2, (64,))
    streams = run_streams(0, 0)
    theta0 = init_params(spec, [streams.init])
    env, buf = CartPoleBatch([streams.env_seed]), FusedBuffers(spec, 1, 500)
    len1, g1 = _manual_episode(spec, theta0, env, streams, buf)
    len2, g2 = _manual_episode(spec, theta0 + probe_factor * lr * g1, env, streams, buf)
    assert res["episode_length"].tolist() == [len1, len2]
    np.testing.assert_allclose(res["grad_norm"], [float(g1.norm()), float(g2.norm())], rtol=1e-4)
    reuse = make_train([RunSpec("rk", cfg.replace(rk_stage="reuse"), 0)])()[0]
    assert reuse["episode_length"][0] == len1 and reuse["grad_norm"][1] != res["grad_norm"][1]


@pytest.mark.parametrize("backend", ["fused", "fast"])
def test_the_baseline_is_used_before_it_learns_from_the_episode(backend):
    """With no past episode the baseline is 0: the first gradient equals the no-baseline one
    (a baseline updated before use would subtract the episode's own returns: gradient 0)."""
    base = RunConfig(episodes=3, eval_episodes=0, backend=backend)
    _, plain = variant("pg", base=base)
    _, with_b = variant("pg", "baseline", base=base)
    a = make_train([RunSpec("pg", plain, i) for i in range(3)])()
    b = make_train([RunSpec("pg+baseline", with_b, i) for i in range(3)])()
    for x, y in zip(a, b):
        assert x["grad_norm"][0] == y["grad_norm"][0] and x["grad_norm"][0] > 0.1
        # it acts from the third episode on (at the second, with reward 1 per step, both the
        # episode's G_t and G_t - b_t are affine in gamma^-t: standardised, they are equal)
        assert abs(x["grad_norm"][2] - y["grad_norm"][2]) > 1e-3 * x["grad_norm"][2]


# Expected learning on fixed seeds (root seed 2024, 24 seeds, 200 episodes, default backend):
# the mean of the last 20 training returns per method, measured by
#   python -c "from tests.test_kernels import learning_means; print(learning_means())"
# The band is +- 4 standard errors of that mean, the standard error taken from the run's own
# spread over seeds, so a change that moves learning by a few SE (a broken estimator, a wrong
# sign, a rule that ignores its second moment) fails, and rounding-level changes do not.
EXPECTED_LEARNING = {"pg": 73.5, "hessian": 345.0, "rk": 44.9, "adam": 205.9, "npg": 217.4}


def learning_means(methods=tuple(EXPECTED_LEARNING), seeds=24, episodes=200):
    out = {}
    for m in methods:
        name, cfg = variant(m, base=RunConfig(episodes=episodes, eval_episodes=0))
        res = make_train([RunSpec(name, cfg, i, root_seed=2024) for i in range(seeds)])()
        last = np.array([r["episode_return"][-20:].mean() for r in res])
        out[m] = (float(last.mean()), float(last.std(ddof=1) / np.sqrt(seeds)))
    return out


def test_each_method_learns_within_its_expected_band():
    got = learning_means()
    for m, (mean, se) in got.items():
        expected = EXPECTED_LEARNING[m]
        assert abs(mean - expected) <= 4 * se, (m, mean, se, expected)
    # and the bands say something: PG-SOM and Adam learn far beyond plain PG at this budget
    assert got["hessian"][0] - got["pg"][0] > 4 * np.hypot(got["hessian"][1], got["pg"][1])


def test_empirical_fisher_from_step_scores_equals_the_torch_reference():
    theta, batch, lengths, adv = random_episodes(seed=6)
    _, act, logits, rows = kernel_estimates(theta, batch, lengths, adv, 0.0)
    n, d = theta.shape
    scores = np.empty((n, int(lengths.max()), d), np.float32)
    fused.step_scores(theta.numpy(), batch.obs.numpy(), act, logits, batch.actions.numpy(), lengths, rows, rows,
                      scores, fused.every(n))
    # the per-step scores sum to the score sum, and give F v
    ref = est.policy_gradient(SPEC, theta, batch, adv, with_score_sum=True)
    torch.testing.assert_close(torch.from_numpy(scores.sum(1)), ref.score_sum, rtol=2e-5, atol=2e-5)
    v = torch.from_numpy(np.random.default_rng(8).normal(0, 1, theta.shape).astype(np.float32))
    out = np.empty((n, d), np.float32)
    fused.empirical_fvp(scores, lengths, rows, v.numpy(), out, fused.every(n))
    want = est.fisher_vector_product(SPEC, theta, batch, "empirical")(v)
    torch.testing.assert_close(torch.from_numpy(out), want, rtol=2e-5, atol=2e-5)
