"""The gymnasium env: registration, check_env, rewards equal to the kernel's, renders, seeding."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lever
from lever import GridSpec, GridWorldEnv, Layout, Objective
from lever.worlds.env import AGENT_COLOUR, KIND_COLOURS
from lever.kernels import constants as K
from tests.reference import all_gold, reference_step, reference_world


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array", None])
def test_check_env_passes(render_mode):
    env = gymnasium.make(lever.ENV_ID, layout="grid8", objective="path+gold+hazard+lever",
                         render_mode=render_mode)
    check_env(env.unwrapped)


def test_registered_id_makes_the_env(pocket):
    env = gymnasium.make("lever/GridWorld-v0", layout=pocket, objective="path+gold")
    assert env.spec.id == "lever/GridWorld-v0"
    assert isinstance(env.unwrapped, GridWorldEnv)
    assert env.observation_space == gymnasium.spaces.Discrete(pocket.n_states)
    assert env.action_space == gymnasium.spaces.Discrete(K.N_ACTIONS)
    obs, info = env.reset(seed=0)
    assert obs == pocket.start and info["gold_left"] == 1 and info["lever_on"] is False
    obs, *_ = env.step(K.DOWN)
    assert obs == pocket.start + pocket.width


def test_layout_from_a_preset_or_a_spec():
    assert GridWorldEnv("grid8", layout_seed=3).layout.to_text() == \
        Layout.generate("grid8", seed=3).to_text()
    spec = GridSpec(height=6, width=6, n_gold=2, n_walls=2, n_hazards=2, seed=9)
    assert GridWorldEnv(spec).layout.to_text() == Layout.generate(spec).to_text()


@pytest.mark.parametrize("objective, rules", [
    ("path", "study"), ("path+gold+hazard+lever", "study"), ("gold+hazard", "study"),
    ("path+gold+hazard+lever", "linear"), ("gold*0.5+lever*2", "linear"),
    ({"hazard": -1.5, "path": 0.25}, "linear")])
def test_scalar_reward_follows_the_rules(hand_layout, objective, rules):
    env = GridWorldEnv(hand_layout, objective=objective, rules=rules)
    objective = Objective.parse(objective)
    weights = objective.array
    world = reference_world(hand_layout)
    rng = np.random.default_rng(1)
    for episode in range(10):
        pos, info = env.reset()
        gold_left, lever_on = all_gold(world), False
        done = False
        while not done:
            action = int(rng.integers(0, 4))
            obs, reward, terminated, truncated, info = env.step(action)
            expected = reference_step(world, pos, action, gold_left, lever_on)
            pos, gold_left, lever_on = expected.pos, expected.gold_left, expected.lever_on
            vector = info["reward_vector"]
            if rules == "linear":  # exactly w · r
                assert reward == pytest.approx(sum(w * r for w, r in zip(weights, vector)),
                                               rel=1e-12, abs=1e-12)
            else:  # the study's reward of the set
                assert reward == pytest.approx(expected.set_rewards[objective.mask], rel=1e-12, abs=1e-12)
            np.testing.assert_allclose(vector, expected.reward_vector, rtol=0, atol=1e-12)
            assert obs == expected.pos and terminated == expected.terminated
            assert info["gold_left"] == len(gold_left) and info["lever_on"] == lever_on
            done = terminated or truncated


def test_truncation_after_max_steps():
    env = GridWorldEnv(Layout.from_text("S..\n...\n..E\n"))
    env.reset()
    for t in range(1, 10):
        _, _, terminated, truncated, _ = env.step(K.UP)
        assert not terminated and truncated == (t == 9)
    short = GridWorldEnv(Layout.from_text("S..\n...\n..E\n"), max_steps=2)
    short.reset()
    assert not short.step(K.LEFT)[3] and short.step(K.LEFT)[3]


def test_reset_honours_the_seed_and_restores_the_episode(pocket):
    env = GridWorldEnv(pocket, objective="gold")
    env.reset(seed=5)
    first = env.np_random.integers(0, 1_000_000, size=8)
    for action in (K.DOWN, K.DOWN, K.DOWN, K.RIGHT, K.RIGHT, K.UP):
        env.step(action)
    assert env.step(K.DOWN)[4]["gold_left"] == 0
    obs, info = env.reset(seed=5)
    assert np.array_equal(env.np_random.integers(0, 1_000_000, size=8), first)
    assert obs == pocket.start and info["gold_left"] == 1 and not info["lever_on"]
    env.reset(seed=6)
    assert not np.array_equal(env.np_random.integers(0, 1_000_000, size=8), first)


def test_ansi_render_shows_the_agent_and_collected_gold_disappears(pocket):
    env = GridWorldEnv(pocket, render_mode="ansi")
    env.reset()
    frame = env.render()
    rows = frame.splitlines()
    assert len(rows) == pocket.height and {len(r) for r in rows} == {pocket.width}
    assert rows[0][0] == "A" and frame.count("A") == 1 and frame.count("G") == 1
    for action in (K.DOWN, K.DOWN, K.DOWN, K.RIGHT, K.RIGHT, K.UP, K.DOWN):
        env.step(action)
    frame = env.render()
    assert frame.count("G") == 0 and frame.splitlines()[3][2] == "A"
    assert frame.splitlines()[2][2] == "."


def test_rgb_render_shows_the_agent_and_collected_gold_disappears(pocket):
    env = GridWorldEnv(pocket, render_mode="rgb_array", cell_pixels=4)
    env.reset()
    image = env.render()
    assert image.shape == (pocket.height * 4, pocket.width * 4, 3) and image.dtype == np.uint8

    def colour(row, col):
        block = image[row * 4:(row + 1) * 4, col * 4:(col + 1) * 4].reshape(-1, 3)
        assert (block == block[0]).all()
        return tuple(int(v) for v in block[0])

    assert colour(0, 0) == AGENT_COLOUR and colour(2, 2) == KIND_COLOURS[K.GOLD]
    assert colour(4, 4) == KIND_COLOURS[K.EXIT] and colour(1, 1) == KIND_COLOURS[K.WALL]
    for action in (K.DOWN, K.DOWN, K.DOWN, K.RIGHT, K.RIGHT, K.UP, K.DOWN):
        env.step(action)
    image = env.render()
    assert colour(2, 2) == KIND_COLOURS[K.EMPTY] and colour(3, 2) == AGENT_COLOUR
    assert colour(0, 0) == KIND_COLOURS[K.EMPTY]


def test_no_render_mode_renders_nothing(pocket):
    env = GridWorldEnv(pocket)
    env.reset()
    assert env.render() is None


def test_bad_env_arguments(pocket):
    with pytest.raises(ValueError, match="render_mode"):
        GridWorldEnv(pocket, render_mode="human")
    with pytest.raises(lever.LeverError, match="valid components"):
        GridWorldEnv(pocket, objective="speed")
    with pytest.raises(lever.LeverError, match="weighted"):
        GridWorldEnv(pocket, objective="path*2")
    with pytest.raises(lever.LeverError, match="unknown rules"):
        GridWorldEnv(pocket, rules="additive")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(lever.LeverError, match="max_steps"):
            GridWorldEnv(pocket, max_steps=bad)
    for bad in (0, 1000, 1.5):
        with pytest.raises(lever.LeverError, match="cell_pixels"):
            GridWorldEnv(pocket, cell_pixels=bad)
    with pytest.raises(lever.LeverError, match="layout"):
        GridWorldEnv(None)
    env = GridWorldEnv(pocket)
    env.reset()
    with pytest.raises(ValueError, match="invalid action"):
        env.step(4)


def test_stepping_a_finished_episode_needs_a_reset():
    env = GridWorldEnv(Layout.from_text("SE\n"), objective="path")
    env.reset()
    assert env.step(K.RIGHT)[2]
    with pytest.raises(lever.LeverError, match="reset"):
        env.step(K.LEFT)
    env.reset()
    short = GridWorldEnv(Layout.from_text("S..\n..E\n"), max_steps=1)
    short.reset()
    assert short.step(K.UP)[3]
    with pytest.raises(lever.LeverError, match="reset"):
        short.step(K.RIGHT)
