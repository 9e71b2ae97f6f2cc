"""The native vector env against the scalar env step for step, and the MO-Gymnasium face."""

import gymnasium
import numpy as np
import pytest

import lever
from lever import GridWorldEnv, GridWorldVectorEnv, Layout, LeverError


@pytest.mark.parametrize("objective, rules", [("path+gold+hazard+lever", "study"), ("gold*0.5+lever", "linear")])
def test_vector_env_equals_scalar_envs_with_next_step_autoreset(objective, rules):
    layout = Layout.generate("grid8", seed=2)
    n = 16
    vec = gymnasium.make_vec("lever/GridWorld-v0", num_envs=n, vectorization_mode="vector_entry_point",
                             layout=layout, objective=objective, rules=rules, max_steps=20)
    assert isinstance(vec.unwrapped, GridWorldVectorEnv)
    singles = [GridWorldEnv(layout, objective, rules=rules, max_steps=20) for _ in range(n)]
    obs, _ = vec.reset(seed=0)
    assert obs.tolist() == [env.reset()[0] for env in singles]
    rng = np.random.default_rng(3)
    needs_reset = [False] * n
    ended = 0
    for _ in range(120):
        actions = rng.integers(0, 4, size=n)
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        for i, env in enumerate(singles):
            if needs_reset[i]:  # gymnasium 1.x next-step autoreset
                expected = (env.reset()[0], 0.0, False, False, np.zeros(4))
            else:
                o, r, te, tr, info = env.step(int(actions[i]))
                expected = (o, r, te, tr, info["reward_vector"])
            assert obs[i] == expected[0] and rewards[i] == pytest.approx(expected[1], abs=1e-12)
            assert terminated[i] == expected[2] and truncated[i] == expected[3]
            np.testing.assert_allclose(infos["reward_vector"][i], expected[4], atol=1e-12)
            needs_reset[i] = bool(terminated[i] or truncated[i])
            ended += needs_reset[i]
    assert ended > n  # episodes ended and restarted, by termination and truncation


def test_vector_env_refuses_bad_input():
    with pytest.raises(LeverError, match="num_envs"):
        GridWorldVectorEnv(0, "grid8")
    vec = GridWorldVectorEnv(4, "grid8")
    vec.reset()
    with pytest.raises(LeverError, match="shape"):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(LeverError, match="0..3"):
        vec.step(np.full(4, 7))


def test_mo_env_returns_the_reward_vector_and_works_with_mo_gymnasium():
    mo_gym = pytest.importorskip("mo_gymnasium")
    from mo_gymnasium.wrappers import LinearReward, MORecordEpisodeStatistics

    env = mo_gym.make("lever/MOGridWorld-v0", layout="grid8", layout_seed=1)
    assert env.unwrapped.reward_dim == 4 and env.unwrapped.reward_space.shape == (4,)
    env = MORecordEpisodeStatistics(env, gamma=1.0)
    env.reset(seed=0)
    scalar = GridWorldEnv("grid8", "path", layout_seed=1, rules="linear")
    scalar.reset()
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = int(rng.integers(0, 4))
        obs, vector, terminated, truncated, info = env.step(action)
        assert vector.dtype == np.float32 and vector.shape == (4,)
        _, _, _, _, expected = scalar.step(action)
        np.testing.assert_allclose(vector, expected["reward_vector"], rtol=1e-6, atol=1e-5)
        if terminated or truncated:
            assert info["episode"]["r"].shape == (4,)
            break
    weighted = LinearReward(gymnasium.make("lever/MOGridWorld-v0", layout="grid8", layout_seed=1),
                            weight=np.array([1.0, 0.0, 0.0, 0.5], dtype=np.float32))
    weighted.reset(seed=0)
    _, reward, *_, info = weighted.step(0)
    assert np.isscalar(reward) or np.ndim(reward) == 0
    assert reward == pytest.approx(info["vector_reward"][0] + 0.5 * info["vector_reward"][3], rel=1e-5)
