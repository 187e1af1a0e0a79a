"""The batched runner: batch independence, seeding, the gymnasium backend, caching, learning."""

import concurrent.futures as cf

import numpy as np
import torch
import pytest
from scipy import stats as sps

from pgsom import runner
from pgsom.config import AlgoConfig, RunConfig
from pgsom.variants import variant
from pgsom.runner import RunSpec, make_train, run_sweep
from pgsom.store import CorruptCacheError, ResultStore

DETERMINISTIC = [f for f in runner.RESULT_FIELDS if f != "update_seconds"]
SHORT = RunConfig(episodes=6, eval_episodes=2)


def _mixed_variants():
    out = dict(
        variant(m, s, base=SHORT)
        for m, s in [("pg", "none"), ("hessian", "clip"), ("rk", "entropy"), ("adam", "baseline"), ("npg", "none")]
    )
    out["rk+reuse"] = SHORT.replace(method="rk", rk_stage="reuse")
    out["hessian+hutchinson+surrogate"] = SHORT.replace(
        method="hessian", hessian_estimator="hutchinson", hessian_terms="surrogate"
    )
    return out


def _same(a, b):
    return all(np.array_equal(a[f], b[f], equal_nan=True) for f in DETERMINISTIC)


def test_a_run_alone_equals_the_same_run_inside_a_batch_of_20():
    variants = _mixed_variants()
    names = list(variants)
    batch = [RunSpec(names[k % len(names)], variants[names[k % len(names)]], k // len(names)) for k in range(20)]
    together = make_train(batch)()
    for k in (0, 3, 5, 6, 13, 19):
        alone = make_train([batch[k]])()[0]
        assert _same(alone, together[k]), batch[k]


def test_same_seed_same_numbers_different_seed_different():
    _, cfg = variant("hessian", base=SHORT)
    a = make_train([RunSpec("h", cfg, 0), RunSpec("h", cfg, 1)])()
    b = make_train([RunSpec("h", cfg, 0)])()
    assert _same(a[0], b[0])
    assert not np.array_equal(a[0]["episode_return"], a[1]["episode_return"])
    c = make_train([RunSpec("h", cfg, 0, root_seed=1)])()
    assert not np.array_equal(a[0]["episode_return"], c[0]["episode_return"])


def test_fast_backend_trains_exactly_like_gymnasium():
    _, cfg = variant("rk", "clip", base=SHORT.replace(backend="fast"))
    runs = [RunSpec("rk", cfg, i) for i in range(3)]
    fast = make_train(runs)()
    real = make_train([RunSpec("rk", cfg.replace(backend="gymnasium"), i) for i in range(3)])()
    for f, r in zip(fast, real):
        assert _same(f, r)


def test_acrobot_fast_backend_trains_exactly_like_gymnasium():
    """The analogue of the CartPole test above on Acrobot-v1 (AcrobotBatch against gymnasium's
    own env), pg and hessian in one batch. A larger rate than the paper's makes some episodes
    reach the goal within 6 episodes, so terminating steps (reward 0) are in the comparison; the
    returns are the environment's rewards, not the step mask: -(length - 1) for an episode that
    reached the goal, -500 for one truncated at the 500-step limit."""
    base = RunConfig(env_id="Acrobot-v1", backend="fast", episodes=6, eval_episodes=2, algo=AlgoConfig(lr=0.05))
    cfgs = {"pg": base, "hessian": base.replace(method="hessian")}
    runs = [RunSpec(name, cfg, i) for name, cfg in cfgs.items() for i in range(3)]
    fast = make_train(runs)()
    real = make_train([RunSpec(r.variant, r.config.replace(backend="gymnasium"), r.seed_index) for r in runs])()
    for f, r in zip(fast, real):
        assert _same(f, r)
    lengths = np.stack([f["episode_length"] for f in fast])
    returns = np.stack([f["episode_return"] for f in fast])
    reached = lengths < 500
    assert reached.any() and (~reached).any()
    np.testing.assert_array_equal(returns, np.where(reached, -(lengths - 1.0), -500.0))
    assert all(np.all(f["eval_return"] <= 0) and np.isfinite(f["grad_norm"]).all() for f in fast)
    assert all(f["diverged_at"] == -1 for f in fast)


def test_lunar_lander_trains_on_gymnasium_with_float_rewards_and_its_own_horizon(monkeypatch):
    """LunarLander-v3 (gymnasium backend only): float, partly negative returns, episodes within
    gymnasium's 1000-step limit. The horizon is gymnasium's: with the registration's limit set to
    51 every episode (random-ish policy, none lands or crashes that soon) is truncated at step 51,
    and all 51 steps are kept (51 is one past a whole time block of 50)."""
    import gymnasium as gym

    from pgsom.envs import make_batch

    assert make_batch("LunarLander-v3", [0], "gymnasium").max_episode_steps == gym.spec("LunarLander-v3").max_episode_steps == 1000
    cfg = RunConfig(env_id="LunarLander-v3", backend="gymnasium", episodes=3, eval_episodes=1)
    res = make_train([RunSpec("pg", cfg, i) for i in range(2)] + [RunSpec("h", cfg.replace(method="hessian"), 0)])()
    returns = np.stack([r["episode_return"] for r in res])
    lengths = np.stack([r["episode_length"] for r in res])
    assert returns.dtype == np.float64 and np.isfinite(returns).all()
    assert (returns < 0).any() and not np.array_equal(returns, np.round(returns))
    assert (lengths >= 1).all() and (lengths <= 1000).all()
    assert all(np.isfinite(r["eval_return"]).all() and r["diverged_at"] == -1 for r in res)

    monkeypatch.setattr(gym.registry["LunarLander-v3"], "max_episode_steps", 51)
    assert make_batch("LunarLander-v3", [0], "gymnasium").max_episode_steps == 51
    short = make_train([RunSpec("pg", cfg, i) for i in range(2)])()
    for r in short:
        np.testing.assert_array_equal(r["episode_length"], 51)
        np.testing.assert_array_equal(r["env_steps"], 51 * np.arange(1, 4))


def test_result_fields_are_consistent():
    _, cfg = variant("pg", "clip", base=RunConfig(episodes=8, eval_episodes=3))
    res = make_train([RunSpec("pg+clip", cfg, 0)])()[0]
    assert set(res) == set(runner.RESULT_FIELDS)
    assert res["episode_return"].shape == (8,) and res["eval_return"].shape == (3,)
    np.testing.assert_array_equal(res["episode_return"], res["episode_length"])  # reward 1 per step
    np.testing.assert_array_equal(res["env_steps"], np.cumsum(res["episode_length"]))
    np.testing.assert_array_equal(res["clipped"], res["grad_norm"] > 50.0)
    assert res["diverged_at"] == -1


def test_divergence_is_recorded_not_hidden():
    cfg = RunConfig(algo=AlgoConfig(method="pg", lr=1e38, standardize=False), episodes=6, eval_episodes=1)
    res = make_train([RunSpec("pg", cfg, 0)])()[0]
    k = int(res["diverged_at"])
    assert 0 <= k < 6
    assert np.all(np.isnan(res["episode_return"][k + 1 :])) and np.isnan(res["eval_return"]).all()


def test_rk_fresh_spends_one_episode_per_stage_and_reuse_one_per_update():
    """Fresh: k1 from odd rounds, k2 from even ones -> gradients recorded every episode; after an
    odd number of rounds the policy sits at theta~ (the probe point), so two runs with the same
    seed differing only in rk_stage agree on the first episode and then differ."""
    fresh = SHORT.replace(method="rk")
    reuse = SHORT.replace(method="rk", rk_stage="reuse")
    a, b = make_train([RunSpec("f", fresh, 0), RunSpec("r", reuse, 0)])()
    assert a["episode_return"][0] == b["episode_return"][0]
    assert np.isfinite(a["grad_norm"]).all() and np.isfinite(b["grad_norm"]).all()
    with pytest.raises(ValueError, match="multiple of 2"):
        SHORT.replace(method="rk", episodes=5)


def test_runs_with_different_budgets_cannot_share_a_batch():
    with pytest.raises(ValueError, match="must share episodes"):
        make_train([RunSpec("a", SHORT, 0), RunSpec("b", SHORT.replace(episodes=8), 0)])


def test_sweep_caches_loads_and_resumes(tmp_path, monkeypatch):
    variants = dict([variant("pg", base=SHORT), variant("adam", base=SHORT)])
    store = ResultStore(tmp_path / "cache")
    first = run_sweep(variants, 3, store=store, max_workers=1, progress=False)
    assert len(store.keys()) == 6

    def refuse(*args, **kwargs):
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(runner, "train_runs", refuse)
    second = run_sweep(variants, 3, store=store, max_workers=1, progress=False)
    for name in variants:
        for f in DETERMINISTIC:
            np.testing.assert_array_equal(first[name][f], second[name][f])
    monkeypatch.undo()

    # an interrupted sweep: two runs lost; only those are retrained
    lost = [runner.run_key(RunSpec("adam", variants["adam"], i)) for i in (1, 2)]
    for key in lost:
        store.discard(key)
    trained = []
    original = runner.train_runs

    def spy(runs, progress=False, expected_numerics=None, threads=1):
        trained.extend((r.variant, r.seed_index) for r in runs)
        return original(runs, progress, expected_numerics, threads)

    monkeypatch.setattr(runner, "train_runs", spy)
    third = run_sweep(variants, 3, store=store, max_workers=1, progress=False)
    assert sorted(trained) == [("adam", 1), ("adam", 2)]
    np.testing.assert_array_equal(third["adam"]["episode_return"], first["adam"]["episode_return"])


def test_corrupt_cache_file_is_detected(tmp_path):
    variants = dict([variant("pg", base=SHORT)])
    store = ResultStore(tmp_path)
    run_sweep(variants, 1, store=store, max_workers=1, progress=False)
    path = store.path(store.keys()[0])
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CorruptCacheError, match=str(path.name)):
        run_sweep(variants, 1, store=store, max_workers=1, progress=False)


def test_process_pool_gives_the_same_numbers(tmp_path):
    import json

    from pgsom.experiments import ProgressFile

    variants = dict([variant("pg", base=SHORT), variant("hessian", base=SHORT)])
    calls = []
    inline = run_sweep(variants, 4, max_workers=1, progress=lambda *a: calls.append(a))
    # inline: one shard of 8 runs, a call after each of the SHORT.episodes rounds
    assert calls == [(0, 1, 8, k, SHORT.episodes) for k in range(1, SHORT.episodes + 1)]
    log = tmp_path / "progress.jsonl"
    with cf.ProcessPoolExecutor(2, mp_context=__import__("multiprocessing").get_context("spawn")) as pool:
        pooled = run_sweep(variants, 4, executor=pool, runs_per_shard=3,
                           progress=ProgressFile(str(log), "p", 8))  # pickled into the workers
    for name in variants:
        for f in DETERMINISTIC:
            np.testing.assert_array_equal(inline[name][f], pooled[name][f])
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    finished = {m["shard"]: m["shard_runs"] for m in lines if m["round"] == m["rounds"] == SHORT.episodes}
    assert sum(finished.values()) == 8 and len(finished) == lines[0]["shards"] >= 2
    assert {m["protocol"] for m in lines} == {"p"} and {m["runs"] for m in lines} == {8}


def test_bad_sweep_arguments():
    with pytest.raises(ValueError, match="n_seeds must be an int >= 1"):
        run_sweep({"pg": SHORT}, 0)
    with pytest.raises(ValueError, match="seed_index must be an int >= 0"):
        RunSpec("pg", SHORT, -1)


@pytest.mark.parametrize("method", ["pg", "hessian", "rk", "adam", "npg"])
def test_each_method_learns_better_than_a_random_policy(method):
    """Mean return over the last 20 of 80 episodes beats a uniform-random policy (one-sided
    Welch, p < 0.01). Larger steps than the paper's 0.002 make the short budget enough."""
    seeds, episodes = 16, 80
    lr = {"pg": 0.02, "rk": 0.02, "npg": 0.01}.get(method, 0.005)
    cfg = RunConfig(algo=AlgoConfig(method=method, lr=lr), episodes=episodes, eval_episodes=0)
    res = make_train([RunSpec(method, cfg, i) for i in range(seeds)])()
    learned = np.array([r["episode_return"][-20:].mean() for r in res])
    random_cfg = RunConfig(algo=AlgoConfig(method="pg", lr=1e-30), episodes=20, eval_episodes=0)
    rand = np.array([r["episode_return"].mean() for r in make_train([RunSpec("r", random_cfg, 100 + i) for i in range(seeds)])()])
    p = sps.ttest_ind(learned, rand, equal_var=False, alternative="greater").pvalue
    assert p < 0.01, (learned.mean(), rand.mean(), p)


def test_cache_key_modules_follow_module_level_imports():
    names = {p.relative_to(p.parents[1]).as_posix() for p in runner.training_modules()}
    assert {"pgsom/runner.py", "pgsom/estimators.py", "pgsom/policy.py", "pgsom/transforms.py",
            "pgsom/config.py", "pgsom/envs.py", "kernels/fused.py"} <= names
    # orchestration and statistics do not retrain the cache when they change
    assert not names & {"pgsom/sweep.py", "pgsom/stats.py", "pgsom/store.py", "pgsom/experiments.py"}
    # the benchmark registry validates env ids (imported lazily by pgsom.envs); it changes no numbers
    assert "pgsom/benchmarks.py" not in names


# --------------------------------------------------------------------------- the options std_ddof,
# second_moment="signed", rk_rule and baseline_kind in training


def test_runs_with_the_new_options_train_alike_alone_and_in_a_batch():
    variants = {
        "pg": SHORT,
        "pg+sample_std": SHORT.replace(std_ddof=1),
        "hessian+signed": SHORT.replace(method="hessian", second_moment="signed"),
        "rk+midpoint": SHORT.replace(method="rk", rk_rule="midpoint"),
        "rk+midpoint+reuse": SHORT.replace(method="rk", rk_rule="midpoint", rk_stage="reuse"),
        "pg+running_mean+raw": SHORT.replace(baseline=True, baseline_kind="running_mean", standardize=False),
    }
    batch = [RunSpec(name, cfg, i) for i in range(2) for name, cfg in variants.items()]
    together = make_train(batch)()
    for k in range(len(variants)):  # one run of each variant
        assert _same(make_train([batch[k]])()[0], together[k]), batch[k].variant
    for k in range(1, len(variants)):  # and each option changes the numbers
        assert not np.array_equal(together[k]["grad_norm"], together[0]["grad_norm"]), batch[k].variant


@pytest.mark.parametrize("rk_stage", ["fresh", "reuse"])
def test_rk_midpoint_differs_from_heun_and_both_backends_agree(rk_stage):
    """Same seeds, the same first episode: from the second gradient on the rules differ (fresh:
    episode 2 is played at theta + lr/2 k1 instead of theta + lr k1; reuse: k2 is evaluated
    there, and the update differs). The compiled kernel and the torch reference follow each
    other as in test_kernels (equal episodes, gradient norms within float32 rounding). A larger
    rate than the paper's makes the rules' difference far exceed that rounding."""
    base = RunConfig(episodes=4, eval_episodes=0).replace(method="rk", rk_stage=rk_stage, lr=0.05)
    midpoint = base.replace(rk_rule="midpoint")
    heun = make_train([RunSpec("heun", base, i) for i in range(3)])()
    fused = make_train([RunSpec("mid", midpoint, i) for i in range(3)])()
    fast = make_train([RunSpec("mid", midpoint.replace(backend="fast"), i) for i in range(3)])()
    for h, a, b in zip(heun, fused, fast):
        assert h["episode_return"][0] == a["episode_return"][0] and h["grad_norm"][0] == a["grad_norm"][0]
        assert np.all(np.abs(h["grad_norm"][1:] - a["grad_norm"][1:]) > 1e-2 * a["grad_norm"][1:])
        np.testing.assert_array_equal(a["episode_length"], b["episode_length"])
        np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-3, atol=1e-6 * b["grad_norm"].max())


@pytest.mark.parametrize("backend", ["fused", "fast"])
def test_running_mean_baseline_cancels_under_standardisation_and_acts_on_raw_returns(backend):
    """The first gradient equals the no-baseline one (b = 0 before any episode: it is updated
    after use). With per-episode standardisation a constant baseline cancels exactly in
    (A - b - mean(A - b)) / std = (A - mean A) / std, so training equals no baseline up to
    float64 rounding of the shift (the advantages are float32: equal, or a last bit off); with
    raw returns it changes every later gradient."""
    base = RunConfig(episodes=6, eval_episodes=0, backend=backend)
    running = base.replace(baseline=True, baseline_kind="running_mean")
    for cfg_plain, cfg_b in ((base, running), (base.replace(standardize=False), running.replace(standardize=False))):
        plain = make_train([RunSpec("pg", cfg_plain, i) for i in range(3)])()
        with_b = make_train([RunSpec("pg+b", cfg_b, i) for i in range(3)])()
        for x, y in zip(plain, with_b):
            assert x["grad_norm"][0] == y["grad_norm"][0] and x["grad_norm"][0] > 0.1
            if cfg_plain.algo.standardize:
                np.testing.assert_array_equal(x["episode_length"], y["episode_length"])
                np.testing.assert_allclose(x["grad_norm"], y["grad_norm"], rtol=1e-5)
            else:
                assert np.all(np.abs(x["grad_norm"][1:] - y["grad_norm"][1:]) > 1e-3 * x["grad_norm"][1:])


def test_the_group_keeps_the_running_mean_of_its_episodes_first_returns():
    """After k rounds the group's b is the mean of its k episodes' G_0 (discounted from the
    start, gamma = 0.99); each round subtracts the mean of the rounds before it."""
    import torch

    from pgsom import estimators as est
    from pgsom.policy import PolicySpec, init_params
    from pgsom.runner import VariantGroup

    spec = PolicySpec(4, 2, (8,))
    algo = AlgoConfig(baseline=True, baseline_kind="running_mean", standardize=False)
    theta = init_params(spec, [np.random.default_rng(r) for r in range(2)])
    group = VariantGroup(algo, spec, torch.tensor([0, 1]), theta.clone(), 32)
    assert isinstance(group.baseline, est.RunningMeanState)
    g = torch.Generator().manual_seed(0)
    firsts = [[], []]
    for lengths in ([5, 12], [9, 3], [16, 7]):
        mask = torch.arange(16)[None] < torch.tensor(lengths)[:, None]
        batch = est.EpisodeBatch(torch.randn(2, 16, 4, generator=g) * mask[..., None],
                                 torch.randint(0, 2, (2, 16), generator=g) * mask, mask.float(), mask)
        before = [float(np.mean(f)) if f else 0.0 for f in firsts]
        torch.testing.assert_close(group._baseline_value(16), torch.tensor([[b] for b in before], dtype=torch.float64))
        group.learn(batch, [], torch.ones(2, dtype=torch.bool))
        for r, n in enumerate(lengths):
            firsts[r].append(sum(0.99**t for t in range(n)))
    torch.testing.assert_close(est.running_mean_value(group.baseline),
                               torch.tensor([[np.mean(f)] for f in firsts], dtype=torch.float64))


# --------------------------------------------------------------------------- continuous actions


def _spy_rollouts(monkeypatch):
    """Record every episode batch the runner builds and every action GymnasiumBatch.step gets."""
    from pgsom import envs

    batches, executed = [], []
    real_rollout, real_step = runner.rollout, envs.GymnasiumBatch.step

    def rollout(*args, **kwargs):
        batches.append(real_rollout(*args, **kwargs))
        return batches[-1]

    def step(self, actions, active):
        executed.append((np.array(actions, copy=True), active.copy()))
        return real_step(self, actions, active)

    monkeypatch.setattr(runner, "rollout", rollout)
    monkeypatch.setattr(envs.GymnasiumBatch, "step", step)
    return batches, executed


def test_inverted_pendulum_trains_the_gaussian_head_storing_unclipped_actions(monkeypatch):
    """InvertedPendulum-v5 on gymnasium, pg and hessian, 2 runs x 3 episodes: finite positive
    returns (+1 per step, 0 on the terminating one), episodes within gymnasium's horizon. With sigma = e^2 at the start and a
    tiny step size, the stored (unclipped) actions leave the Box [-3, 3] while every action the
    environment gets is inside it, and equals the clipped stored one."""
    import gymnasium as gym

    from pgsom import policy
    from pgsom.envs import make_batch

    horizon = gym.spec("InvertedPendulum-v5").max_episode_steps
    assert make_batch("InvertedPendulum-v5", [0], "gymnasium").max_episode_steps == horizon == 1000
    cfg = RunConfig(env_id="InvertedPendulum-v5", backend="gymnasium", episodes=3, eval_episodes=1)
    res = make_train([RunSpec("pg", cfg, i) for i in range(2)] + [RunSpec("h", cfg.replace(method="hessian"), i)
                                                                  for i in range(2)])()
    returns = np.stack([r["episode_return"] for r in res])
    lengths = np.stack([r["episode_length"] for r in res])
    assert np.isfinite(returns).all() and (returns > 0).all()
    assert (lengths >= 1).all() and (lengths <= horizon).all()
    np.testing.assert_array_equal(returns, lengths - (lengths < horizon))  # v5: reward 1, 0 on termination
    assert all(np.isfinite(r["eval_return"]).all() and r["diverged_at"] == -1 for r in res)
    assert all(np.isfinite(r["grad_norm"]).all() for r in res)

    monkeypatch.setattr(policy, "INIT_LOG_STD", 2.0)
    batches, executed = _spy_rollouts(monkeypatch)
    wide = RunConfig(env_id="InvertedPendulum-v5", backend="gymnasium", episodes=3, eval_episodes=1,
                     algo=AlgoConfig(lr=1e-9))
    make_train([RunSpec("pg", wide, i) for i in range(2)])()
    assert len(batches) == 4  # 3 training episodes, 1 evaluation
    # time-major, as the environment got them
    stored = np.concatenate([b.actions.transpose(0, 1)[b.mask.transpose(0, 1)].numpy() for b in batches])
    assert stored.dtype == np.float32 and stored.shape[1] == 1
    assert (np.abs(stored) > 3).any()  # unclipped samples, sigma ~ 7.4
    np.testing.assert_array_equal(np.concatenate([b.actions[~b.mask].numpy() for b in batches]), 0)
    sent = np.concatenate([a[act] for a, act in executed])
    assert len(sent) == len(stored) and sent.dtype == np.float32
    assert (np.abs(sent) <= 3).all() and (np.abs(sent) == 3).any()
    np.testing.assert_array_equal(sent, np.clip(stored, -3, 3))  # the same steps, in the same order


def test_gaussian_actions_are_mu_plus_sigma_times_the_action_streams_standard_normals(monkeypatch):
    """The first step of run i's first episode is mu(s_0) + exp(log_std) * z with z the first row
    of ``run_streams(...).actions.standard_normal((horizon, A))``."""
    from pgsom.envs import make_batch
    from pgsom.policy import init_params, sample_gaussian

    batches, _ = _spy_rollouts(monkeypatch)
    cfg = RunConfig(env_id="InvertedPendulum-v5", backend="gymnasium", episodes=1, eval_episodes=0)
    make_train([RunSpec("pg", cfg, i) for i in range(2)])()
    for i in range(2):
        s = runner.run_streams(0, i)
        env = make_batch("InvertedPendulum-v5", [s.env_seed], "gymnasium")
        spec = runner.policy_spec(env, cfg.hidden)
        assert spec.head == "gaussian" and spec.n_actions == 1
        theta = init_params(spec, [s.init])
        z = s.actions.standard_normal((env.max_episode_steps, 1))
        a0 = sample_gaussian(runner.make_actor(spec, theta)(env.reset()), theta[:, spec.log_std_slice].numpy(), z[:1])
        np.testing.assert_array_equal(batches[0].actions[i, 0].numpy(), a0[0])


def test_a_gaussian_run_alone_equals_the_same_run_inside_a_batch_of_3():
    cfg = RunConfig(env_id="InvertedPendulum-v5", backend="gymnasium", episodes=4, eval_episodes=1)
    cfgs = [cfg.replace(method="hessian", hessian_estimator="hutchinson", clip_norm=1.0),
            cfg.replace(method="rk", rk_stage="reuse", entropy_coef=0.01),
            cfg.replace(method="npg", baseline=True)]
    batch = [RunSpec("a", cfgs[0], 0), RunSpec("a", cfgs[0], 1), RunSpec("b", cfgs[1], 2)]
    together = make_train(batch)()
    for r, t in zip(batch, together):
        alone = make_train([r])()[0]
        assert _same(alone, t), r
    npg = make_train([RunSpec("c", cfgs[2], 0), RunSpec("c", cfgs[2], 1), RunSpec("c", cfgs[2], 2)])()
    assert _same(make_train([RunSpec("c", cfgs[2], 1)])()[0], npg[1])
    assert not np.array_equal(together[0]["grad_norm"], together[1]["grad_norm"])


def test_hopper_trains_with_three_dimensional_actions(monkeypatch):
    batches, executed = _spy_rollouts(monkeypatch)
    cfg = RunConfig(env_id="Hopper-v5", backend="gymnasium", episodes=2, eval_episodes=1,
                    algo=AlgoConfig(method="hessian"))
    res = make_train([RunSpec("h", cfg, 0)])()[0]
    assert np.isfinite(res["episode_return"]).all() and np.isfinite(res["eval_return"]).all()
    assert res["diverged_at"] == -1 and (res["episode_length"] <= 1000).all()
    assert all(b.actions.shape[2] == 3 and b.actions.dtype == torch.float32 for b in batches)
    assert all(a.shape == (1, 3) and (np.abs(a) <= 1).all() for a, _ in executed)
    stored = np.concatenate([b.actions[b.mask].numpy() for b in batches])
    assert (np.abs(stored) > 1).any()  # sigma = 1 against bounds of +-1: clipped often


def test_the_fused_buffers_refuse_the_gaussian_head():
    from pgsom.policy import PolicySpec

    with pytest.raises(ValueError, match="Categorical head only"):
        runner.FusedBuffers(PolicySpec(4, 1, (8,), "gaussian"), 1, 10)
