"""The fast CartPole path against gymnasium's own CartPole-v1, step for step; make_batch's choice of
backend per environment; GymnasiumBatch's spaces read from gymnasium."""

import gymnasium as gym
import numpy as np
import pytest

from pgsom.envs import AcrobotBatch, CartPoleBatch, GymnasiumBatch, make_batch


def _rollout_reference(seed: int, actions_rng: np.random.Generator, episodes: int):
    """gymnasium.make('CartPole-v1'): reset(seed) once, then plain resets; random actions."""
    env = gym.make("CartPole-v1")
    traj = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        steps = [(obs, None, None, None, None)]
        done = False
        while not done:
            a = int(actions_rng.integers(2))
            obs, r, term, trunc, _ = env.step(a)
            steps.append((obs, a, r, term, trunc))
            done = term or trunc
        traj.append(steps)
    env.close()
    return traj


@pytest.mark.parametrize("seeds", [[0, 1, 2], [12345, 7, 2**31 - 1, 99]])
def test_fast_cartpole_matches_gymnasium_step_for_step(seeds):
    episodes = 3
    refs = [_rollout_reference(s, np.random.default_rng(100 + i), episodes) for i, s in enumerate(seeds)]
    batch = CartPoleBatch(seeds)
    for ep in range(episodes):
        obs = batch.reset(np.ones(len(seeds), bool))
        active = np.ones(len(seeds), bool)
        t = 0
        for i in range(len(seeds)):
            np.testing.assert_array_equal(obs[i], refs[i][ep][0][0])
        while active.any():
            t += 1
            actions = np.array([refs[i][ep][t][1] if active[i] else 0 for i in range(len(seeds))])
            res = batch.step(actions, active)
            for i in np.flatnonzero(active):
                ref_obs, _, ref_r, ref_term, ref_trunc = refs[i][ep][t]
                np.testing.assert_array_equal(res.obs[i], ref_obs)
                assert res.reward[i] == ref_r
                assert bool(res.terminated[i]) == ref_term
                assert bool(res.truncated[i]) == ref_trunc
            active &= ~(res.terminated | res.truncated)
        assert t == max(len(r[ep]) - 1 for r in refs)


def test_truncation_at_500_steps_matches_timelimit():
    """A balancing controller reaches the 500-step limit: truncated on step 500, not before."""
    seeds = [3, 4]
    batch = CartPoleBatch(seeds)
    ref = GymnasiumBatch(seeds)
    obs_f, obs_g = batch.reset(), ref.reset()
    active = np.ones(2, bool)
    for t in range(1, 501):
        # PD controller on the pole angle keeps CartPole up for 500 steps.
        actions = (obs_f[:, 2] + 0.5 * obs_f[:, 3] > 0).astype(np.int64)
        f, g = batch.step(actions, active), ref.step(actions, active)
        np.testing.assert_array_equal(f.obs, g.obs)
        np.testing.assert_array_equal(f.terminated, g.terminated)
        np.testing.assert_array_equal(f.truncated, g.truncated)
        obs_f = f.obs
        if t < 500:
            assert not f.truncated.any()
        if (f.terminated | f.truncated).any():
            break
    assert t == 500 and f.truncated.all()


def test_inactive_envs_are_frozen():
    batch = CartPoleBatch([0, 1])
    batch.reset()
    before = batch.state.copy()
    res = batch.step(np.array([1, 1]), np.array([True, False]))
    assert res.reward.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(batch.state[1], before[1])
    assert not np.array_equal(batch.state[0], before[0])


def test_make_batch_rejects_unknown_names():
    with pytest.raises(ValueError, match="env_id must be one of"):
        make_batch("MountainCar-v0", [0])
    with pytest.raises(ValueError, match="backend must be one of"):
        make_batch("CartPole-v1", [0], backend="jax")


@pytest.mark.parametrize("env_id, backend, cls", [
    ("CartPole-v1", "fused", CartPoleBatch), ("CartPole-v1", "fast", CartPoleBatch),
    ("CartPole-v1", "gymnasium", GymnasiumBatch), ("Acrobot-v1", "fast", AcrobotBatch),
    ("Acrobot-v1", "gymnasium", GymnasiumBatch), ("LunarLander-v3", "gymnasium", GymnasiumBatch),
])
def test_make_batch_picks_the_environments_own_backend(env_id, backend, cls):
    batch = make_batch(env_id, [0, 1], backend)
    assert type(batch) is cls and batch.n == 2
    env = gym.make(env_id)
    assert (batch.observation_size, batch.n_actions, batch.max_episode_steps) == (
        env.observation_space.shape[0], env.action_space.n, env.spec.max_episode_steps)
    obs = batch.reset()
    assert obs.shape == (2, batch.observation_size) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[0], env.reset(seed=0)[0])
    env.close()


@pytest.mark.parametrize("env_id, backend, allowed", [
    ("LunarLander-v3", "fast", "'gymnasium'"), ("LunarLander-v3", "fused", "'gymnasium'"),
    ("Acrobot-v1", "fused", "'fast' or 'gymnasium'"),
])
def test_make_batch_refuses_a_backend_the_environment_lacks(env_id, backend, allowed):
    with pytest.raises(ValueError, match=f"backend='{backend}' .*got env_id='{env_id}': use backend={allowed}$"):
        make_batch(env_id, [0], backend)
    with pytest.raises(ValueError, match="continuous actions .*use backend='gymnasium'$"):
        make_batch("Hopper-v5", [0], backend)


def test_gymnasium_batch_reads_its_spaces_from_the_environment():
    """LunarLander-v3: 8 float32 observations, 4 actions, 1000 steps; float rewards (rounded to
    float32) straight from gymnasium."""
    batch = GymnasiumBatch([7, 8], "LunarLander-v3")
    assert (batch.observation_size, batch.n_actions, batch.max_episode_steps) == (8, 4, 1000)
    ref = gym.make("LunarLander-v3")
    obs, ref_obs = batch.reset(), ref.reset(seed=7)[0]
    np.testing.assert_array_equal(obs[0], ref_obs)
    active = np.array([True, False])
    for a in (0, 1, 2, 3, 2, 2):
        res = batch.step(np.array([a, 0]), active)
        ref_obs, ref_r, term, trunc, _ = ref.step(a)
        np.testing.assert_array_equal(res.obs[0], ref_obs)
        assert res.reward[0] == np.float32(ref_r) and res.reward[1] == 0.0
        assert res.reward.dtype == np.float32 and (bool(res.terminated[0]), bool(res.truncated[0])) == (term, trunc)
    np.testing.assert_array_equal(res.obs[1], obs[1])  # the inactive one is left as it was
    ref.close()
    batch.close()
    assert batch.discrete and batch.action_low is None


def test_gymnasium_batch_steps_box_actions_as_gymnasium_does():
    """Hopper-v5: 11 observations, 3-dim float32 actions in [-1, 1], 1000 steps; each row of the
    (n, A) actions goes to its own environment, the inactive one is left alone."""
    batch = GymnasiumBatch([3, 4], "Hopper-v5")
    assert (batch.observation_size, batch.n_actions, batch.max_episode_steps, batch.discrete) == (11, 3, 1000, False)
    np.testing.assert_array_equal(batch.action_low, -np.ones(3, np.float32))
    np.testing.assert_array_equal(batch.action_high, np.ones(3, np.float32))
    ref = gym.make("Hopper-v5")
    obs, ref_obs = batch.reset(), ref.reset(seed=3)[0]
    np.testing.assert_array_equal(obs[0], ref_obs.astype(np.float32))
    active = np.array([True, False])
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
        res = batch.step(a, active)
        ref_obs, ref_r, term, trunc, _ = ref.step(a[0])
        np.testing.assert_array_equal(res.obs[0], ref_obs.astype(np.float32))
        assert res.reward[0] == np.float32(ref_r) and res.reward[1] == 0.0
    np.testing.assert_array_equal(res.obs[1], obs[1])
    with pytest.raises(ValueError, match="Box actions must be"):
        batch.step(np.zeros(2, np.float32), active)
    ref.close()
    batch.close()
