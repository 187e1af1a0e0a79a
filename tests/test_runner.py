"""The batched runner: batch independence, seeding, the gymnasium backend, caching, learning."""

import concurrent.futures as cf

import numpy as np
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
