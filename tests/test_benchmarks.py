"""The benchmark registry: the five benchmarks, their spaces read from gymnasium."""

import gymnasium as gym
import numpy as np
import pytest

from pgsom.benchmarks import BENCHMARKS, Benchmark, benchmark
from pgsom.envs import CartPoleBatch


def test_the_five_benchmarks_and_their_spaces_are_gymnasiums():
    assert list(BENCHMARKS) == ["CartPole-v1", "Acrobot-v1", "LunarLander-v3", "InvertedPendulum-v5", "Hopper-v5"]
    for env_id, b in BENCHMARKS.items():
        s = b.spaces()
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (s.observation_size,)
        assert s.horizon == env.spec.max_episode_steps
        if s.discrete:
            assert env.action_space.n == s.n_actions and s.action_low == ()
        else:
            np.testing.assert_array_equal(env.action_space.low, np.array(s.action_low, np.float32))
            np.testing.assert_array_equal(env.action_space.high, np.array(s.action_high, np.float32))
            assert env.action_space.shape == (s.n_actions,)
        env.close()
    assert [b.spaces().discrete for b in BENCHMARKS.values()] == [True, True, True, False, False]


def test_cartpole_batch_constants_agree_with_gymnasium():
    s = benchmark("CartPole-v1").spaces()
    assert (CartPoleBatch.observation_size, CartPoleBatch.n_actions, CartPoleBatch.max_episode_steps) == (
        s.observation_size, s.n_actions, s.horizon)


def test_thresholds_are_the_papers_for_cartpole_and_gymnasiums_elsewhere():
    assert benchmark("CartPole-v1").thresholds == (200.0, 400.0)
    for env_id in ("Acrobot-v1", "LunarLander-v3", "InvertedPendulum-v5", "Hopper-v5"):
        assert benchmark(env_id).thresholds == (gym.spec(env_id).reward_threshold,)
    assert benchmark("Acrobot-v1").threshold_names == ("m100",)
    assert benchmark("CartPole-v1").threshold_names == ("200", "400")


def test_bad_benchmarks_name_what_is_wrong():
    with pytest.raises(ValueError, match="unknown benchmark 'Pong-v5'; allowed"):
        benchmark("Pong-v5")
    with pytest.raises(ValueError, match="not registered in gymnasium"):
        Benchmark("CartPole-v9", 10, (1.0,), "x", None, "x")
    with pytest.raises(ValueError, match="increasing"):
        Benchmark("CartPole-v1", 10, (400.0, 200.0), "x", None, "x")
    with pytest.raises(ValueError, match="fast_backend"):
        Benchmark("CartPole-v1", 10, (200.0,), "x", "jax", "x")


def test_each_benchmarks_fast_backend_is_the_fastest_the_runner_has_for_it():
    """The registry's ``fast_backend`` agrees with pgsom.envs: ``fused`` for CartPole, ``fast``
    where a numpy port exists (Acrobot), None (gymnasium only) otherwise; continuous ones have none."""
    from pgsom.envs import FAST_BATCHES, backends_for

    for env_id, b in BENCHMARKS.items():
        if not b.spaces().discrete:
            assert b.fast_backend is None and env_id not in FAST_BATCHES
            continue
        fastest = backends_for(env_id)[0]
        assert b.fast_backend == (None if fastest == "gymnasium" else fastest), env_id
    assert [b.fast_backend for b in BENCHMARKS.values()] == ["fused", "fast", None, None, None]
