"""The fast CartPole path against gymnasium's own CartPole-v1, step for step."""

import gymnasium as gym
import numpy as np
import pytest

from pgsom.envs import CartPoleBatch, GymnasiumBatch, make_batch


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
