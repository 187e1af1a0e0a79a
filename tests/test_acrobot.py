"""The numpy Acrobot (AcrobotBatch) against gymnasium's own Acrobot-v1, step for step, bit for bit."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from pgsom import envs
from pgsom.envs import AcrobotBatch


def _policy(kind: str, obs: np.ndarray, rng: np.random.Generator) -> int:
    """``uniform``: random actions (episodes run into the 500-step limit); ``pump``: mostly the
    torque along the second joint's velocity (reaches the goal in about 100 steps)."""
    if kind == "uniform":
        return int(rng.integers(3))
    if rng.random() < 0.8:
        return 2 if obs[5] > 0 else 0
    return int(rng.integers(3))


def _rollout_reference(seed: int, kind: str, actions_rng: np.random.Generator, episodes: int):
    """gymnasium.make('Acrobot-v1'): reset(seed) once, then plain resets; per step
    (obs, action, reward, terminated, truncated, state)."""
    env = gym.make("Acrobot-v1")
    traj = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        steps = [(obs, None, None, None, None, np.array(env.unwrapped.state))]
        done = False
        while not done:
            a = _policy(kind, obs, actions_rng)
            obs, r, term, trunc, _ = env.step(a)
            steps.append((obs, a, r, term, trunc, np.array(env.unwrapped.state)))
            done = term or trunc
        traj.append(steps)
    env.close()
    return traj


@pytest.mark.parametrize("kind,seeds", [("uniform", [0, 1, 2]), ("pump", [12345, 7, 2**31 - 1, 99]),
                                        ("pump", [5])])
def test_acrobot_matches_gymnasium_step_for_step(kind, seeds):
    episodes = 3
    refs = [_rollout_reference(s, kind, np.random.default_rng(100 + i), episodes) for i, s in enumerate(seeds)]
    batch = AcrobotBatch(seeds)
    ends = set()
    for ep in range(episodes):
        obs = batch.reset(np.ones(len(seeds), bool))
        active = np.ones(len(seeds), bool)
        t = 0
        for i in range(len(seeds)):
            np.testing.assert_array_equal(obs[i], refs[i][ep][0][0])
            np.testing.assert_array_equal(batch.state[i], refs[i][ep][0][5])
        assert obs.dtype == np.float32 and batch.state.dtype == np.float64
        while active.any():
            t += 1
            actions = np.array([refs[i][ep][t][1] if active[i] else 0 for i in range(len(seeds))])
            res = batch.step(actions, active)
            for i in np.flatnonzero(active):
                ref_obs, _, ref_r, ref_term, ref_trunc, ref_state = refs[i][ep][t]
                np.testing.assert_array_equal(res.obs[i], ref_obs)
                np.testing.assert_array_equal(batch.state[i], ref_state)
                assert res.reward[i] == ref_r
                assert bool(res.terminated[i]) == ref_term
                assert bool(res.truncated[i]) == ref_trunc
                if ref_term or ref_trunc:
                    ends.add("terminated" if ref_term else f"truncated@{t}")
            active &= ~(res.terminated | res.truncated)
        assert t == max(len(r[ep]) - 1 for r in refs)
    assert ends == ({"truncated@500"} if kind == "uniform" else {"terminated"})


def test_acrobot_reset_observations_match_gymnasium_for_many_seeds():
    """gymnasium's reset state is float32 and so are the cos/sin of its first observation
    (float32 trig differs from float64 trig rounded to float32 for about 1 value in 2000)."""
    seeds = list(range(3000))
    env = gym.make("Acrobot-v1")
    ref = np.stack([env.reset(seed=s)[0] for s in seeds])
    env.close()
    np.testing.assert_array_equal(AcrobotBatch(seeds).reset(), ref)


def _gym_step(state, action):
    """One step of gymnasium's Acrobot-v1 from ``state`` (float64): (obs, reward, term, next state)."""
    env = gym.make("Acrobot-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    obs, r, term, _, _ = env.step(action)
    out = obs, r, term, np.array(env.unwrapped.state)
    env.close()
    return out


def _batch_step(states, actions):
    batch = AcrobotBatch(list(range(len(states))))
    batch.reset()
    batch.state[:] = np.asarray(states, dtype=np.float64)
    res = batch.step(np.asarray(actions), np.ones(len(states), bool))
    return res, batch.state.copy()


def _assert_same_steps(states, actions):
    res, nxt = _batch_step(states, actions)
    for i, (s, a) in enumerate(zip(states, actions)):
        obs, r, term, ref_state = _gym_step(s, a)
        np.testing.assert_array_equal(nxt[i], ref_state)
        np.testing.assert_array_equal(res.obs[i], obs)
        assert res.reward[i] == r
        assert bool(res.terminated[i]) == term
    return res, nxt


def _height(state) -> float:
    return float(-np.cos(state[0]) - np.cos(state[1] + state[0]))


def _pre_state(family: int, lam: float) -> list[float]:
    return [[lam, 0.0, 0.0, 0.0], [lam, 0.5, 1.0, -2.0], [-lam, -0.3, -0.7, 1.5]][family]


def _straddle(family: int, action: int, target: float):
    """Adjacent floats ``lam`` whose post-step heights (gymnasium's) lie either side of ``target``."""
    lo, hi = 1.5, 3.0  # post-step height below ``target`` at lo, above at hi (checked)
    h = lambda lam: _height(_gym_step(_pre_state(family, lam), action)[3])  # noqa: E731
    assert h(lo) < target < h(hi)
    while np.nextafter(lo, hi) != hi:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if h(mid) <= target else (lo, mid)
    return lo, hi


@pytest.mark.parametrize("family,action", [(0, 1), (1, 0), (2, 2)])
def test_acrobot_termination_boundary_matches_gymnasium(family, action):
    lo, hi = _straddle(family, action, 1.0)
    states = [_pre_state(family, lo), _pre_state(family, hi)]
    res, nxt = _assert_same_steps(states, [action, action])
    assert res.terminated.tolist() == [False, True]
    assert res.reward.tolist() == [-1.0, 0.0]
    assert abs(_height(nxt[0]) - 1.0) < 1e-12 and abs(_height(nxt[1]) - 1.0) < 1e-12


def test_acrobot_threshold_is_exactly_one():
    below = _pre_state(0, _straddle(0, 1, 1.0 - 1e-9)[0])
    above = _pre_state(0, _straddle(0, 1, 1.0 + 1e-9)[1])
    res, nxt = _assert_same_steps([below, above], [1, 1])
    assert 1.0 - 1e-9 - 1e-12 < _height(nxt[0]) <= 1.0 - 1e-9
    assert 1.0 + 1e-9 < _height(nxt[1]) < 1.0 + 1e-9 + 1e-12
    assert res.terminated.tolist() == [False, True]
    assert [_gym_step(below, 1)[2], _gym_step(above, 1)[2]] == [False, True]


def test_acrobot_velocity_bounds_and_wrap_match_gymnasium():
    v1, v2 = AcrobotEnv.MAX_VEL_1, AcrobotEnv.MAX_VEL_2
    up1, up2 = np.nextafter(v1, np.inf), np.nextafter(v2, np.inf)
    states = [
        [0.1, 0.2, v1, v2], [0.1, 0.2, -v1, -v2], [0.0, 0.0, up1, -up2], [0.0, 0.0, -up1, up2],
        [1.0, -1.0, 3 * v1, -3 * v2], [2.0, 1.0, np.nextafter(v1, 0), np.nextafter(-v2, 0)],
        [np.pi - 1e-12, -np.pi + 1e-12, v1, -v2], [np.pi, -np.pi, 0.0, 0.0],
        [np.nextafter(np.pi, 4), np.nextafter(-np.pi, -4), 0.0, 0.0], [20.0, -20.0, 0.5, -0.5],
        [-0.3, 3.1, -v1, v2],
    ]
    actions = [0, 2, 1, 0, 2, 1, 2, 0, 1, 2, 0]
    _, nxt = _assert_same_steps(states, actions)
    assert np.isin(nxt[:, 2], [v1, -v1]).sum() >= 4 and np.isin(nxt[:, 3], [v2, -v2]).sum() >= 4
    assert (np.abs(nxt[:, :2]) <= np.pi).all()
    assert np.abs(nxt[:, :2]).max() > 3.0  # some angles wrapped from beyond +-pi


def test_acrobot_inactive_envs_are_frozen():
    batch = AcrobotBatch([0, 1, 2])
    obs0 = batch.reset()
    before, steps = batch.state.copy(), batch.steps.copy()
    active = np.array([True, False, True])
    res = batch.step(np.array([2, 2, 0]), active)
    assert res.reward.tolist() == [-1.0, 0.0, -1.0]
    assert not res.terminated[1] and not res.truncated[1]
    np.testing.assert_array_equal(batch.state[1], before[1])
    np.testing.assert_array_equal(res.obs[1], obs0[1])
    assert batch.steps.tolist() == [steps[0] + 1, steps[1], steps[2] + 1]
    assert not np.array_equal(batch.state[0], before[0]) and not np.array_equal(batch.state[2], before[2])
    obs = batch.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(obs[[0, 2]], res.obs[[0, 2]])
    assert not np.array_equal(batch.state[1], before[1])  # the second episode continues env 1's stream


def test_acrobot_batch_size_does_not_change_numbers():
    seeds, steps = [0, 1, 2, 3, 4], 120
    rng = np.random.default_rng(7)
    actions = rng.integers(3, size=(steps, 5))
    pattern = rng.random((steps, 5)) < 0.8
    big = AcrobotBatch(seeds)
    singles = [AcrobotBatch([s]) for s in seeds]
    obs_b = big.reset()
    for i, one in enumerate(singles):
        np.testing.assert_array_equal(one.reset()[0], obs_b[i])
    for t in range(steps):
        if t % 40 == 39:  # a reset mid-way for some envs
            reset = np.array([True, False, True, False, False])
            obs_b = big.reset(reset)
            for i in np.flatnonzero(reset):
                np.testing.assert_array_equal(singles[i].reset()[0], obs_b[i])
        res = big.step(actions[t], pattern[t])
        for i, one in enumerate(singles):
            r1 = one.step(actions[t, i : i + 1], pattern[t, i : i + 1])
            for a, b in zip(res, r1):
                np.testing.assert_array_equal(a[i], b[0])
            np.testing.assert_array_equal(big.state[i], one.state[0])


def test_acrobot_squares_are_libm_pow():
    x = np.random.default_rng(3).uniform(-30.0, 30.0, 20000)
    scalar = np.array([np.float64(v) ** 2 for v in x])
    assert (scalar != x * x).sum() > 0
    for pow2 in (AcrobotBatch([0])._pow2, envs._scalar_pow2):
        np.testing.assert_array_equal(pow2(x), scalar)
        np.testing.assert_array_equal(pow2(x[:1]), scalar[:1])
        np.testing.assert_array_equal(pow2(x[::3]), scalar[::3])


def test_acrobot_reads_constants_from_gymnasium(monkeypatch):
    changed = {"LINK_LENGTH_1": 1.2, "LINK_MASS_1": 0.9, "LINK_MASS_2": 1.5, "LINK_COM_POS_1": 0.4,
               "LINK_COM_POS_2": 0.6, "LINK_MOI": 1.1, "dt": 0.1, "MAX_VEL_1": 1.0, "MAX_VEL_2": 2.0,
               "AVAIL_TORQUE": [-2.0, 0.0, 3.0]}
    for name, value in changed.items():
        monkeypatch.setattr(AcrobotEnv, name, value)
    ref = _rollout_reference(11, "pump", np.random.default_rng(0), 1)[0]
    batch = AcrobotBatch([11])
    np.testing.assert_array_equal(batch.reset()[0], ref[0][0])
    at_bounds = np.zeros(2, int)
    for obs, a, r, term, trunc, state in ref[1:]:
        res = batch.step(np.array([a]), np.ones(1, bool))
        np.testing.assert_array_equal(res.obs[0], obs)
        np.testing.assert_array_equal(batch.state[0], state)
        assert (res.reward[0], bool(res.terminated[0]), bool(res.truncated[0])) == (r, term, trunc)
        at_bounds += np.abs(state[2:]) == [1.0, 2.0]
    assert (at_bounds > 0).all()


@pytest.mark.parametrize("name,value", [("torque_noise_max", 0.1), ("book_or_nips", "nips")])
def test_acrobot_unsupported_settings_raise(monkeypatch, name, value):
    monkeypatch.setattr(AcrobotEnv, name, value)
    with pytest.raises(NotImplementedError):
        AcrobotBatch([0])


def test_acrobot_spaces_match_gymnasium():
    env = gym.make("Acrobot-v1")
    assert AcrobotBatch.observation_size == env.observation_space.shape[0] == 6
    assert AcrobotBatch.n_actions == env.action_space.n == 3
    assert AcrobotBatch.max_episode_steps == env.spec.max_episode_steps == 500
    obs = AcrobotBatch([0, 1]).reset()
    assert obs.shape == (2, 6) and obs.dtype == env.observation_space.dtype
    env.close()
