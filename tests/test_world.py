"""The world kernels (BFS, step, batched step, greedy rollout) against the pure-Python reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lever import Layout
from lever.kernels import constants as K
from lever.kernels.rollout import greedy_policy, rollout_actions
from lever.kernels.world import step, step_batch
from tests.reference import (
    all_gold, bfs, layouts, reference_episode, reference_greedy, reference_rollout,
    reference_step, reference_world,
)

PROPERTY = settings(max_examples=60, deadline=None)


def kernel_episode(layout: Layout, actions, max_steps: int | None = None):
    """Play ``actions`` through the step kernel like :func:`reference_episode` does.

    Returns one (pos, reward vector, gold left as a frozenset, lever_on, terminated) per step.
    """
    max_steps = layout.max_steps if max_steps is None else max_steps
    gold_taken = np.zeros(layout.gold.size, dtype=np.uint8)
    reward = np.zeros(K.N_COMPONENTS)
    pos, lever_on, records = layout.start, 0, []
    for action in list(actions)[:max_steps]:
        pos, lever_on, done = step(layout.world, pos, action, gold_taken, lever_on, reward)
        gold_left = frozenset(int(g) for g in np.flatnonzero(gold_taken == 0))
        records.append((int(pos), reward.copy(), gold_left, bool(lever_on), bool(done)))
        if done:
            break
    return records


def assert_same_episode(layout: Layout, actions):
    ours = kernel_episode(layout, actions)
    ref = reference_episode(reference_world(layout), actions)
    assert len(ours) == len(ref)
    for t, ((pos, reward, gold_left, lever_on, done), expected) in enumerate(zip(ours, ref)):
        assert pos == expected.pos, f"step {t}"
        np.testing.assert_allclose(reward, expected.reward, rtol=0, atol=1e-12, err_msg=f"step {t}")
        assert gold_left == expected.gold_left, f"step {t}"
        assert lever_on == expected.lever_on, f"step {t}"
        assert done == expected.terminated, f"step {t}"


@PROPERTY
@given(layout=layouts())
def test_distance_maps_match_reference_bfs(layout):
    cells, width, dist_exit, dist_lever, gold_id, gold_dist, hazard_neighbours, moves = layout.world
    ref = reference_world(layout)
    assert width == layout.width
    assert dist_exit.tolist() == ref.dist_exit
    assert dist_lever.tolist() == (ref.dist_lever or [-1] * layout.n_states)
    assert gold_dist.tolist() == ref.gold_dist
    assert [int(g) for g in np.flatnonzero(gold_id >= 0)] == ref.gold_cells
    assert hazard_neighbours.tolist() == [ref.hazard_neighbours(c) for c in range(layout.n_states)]
    # The move table holds where the reference's rules move the agent (ignoring rewards).
    no_gold = frozenset()
    assert moves.tolist() == [[reference_step(ref, c, a, no_gold, False).pos for a in range(K.N_ACTIONS)]
                              for c in range(layout.n_states)]


@PROPERTY
@given(layout=layouts(), actions=st.lists(st.integers(0, 3), min_size=1, max_size=80))
def test_step_matches_reference_on_random_episodes(layout, actions):
    assert_same_episode(layout, actions)


def test_step_matches_reference_on_hand_layouts(hand_layout):
    rng = np.random.default_rng(7)
    for _ in range(30):
        assert_same_episode(hand_layout, rng.integers(0, 4, size=2 * hand_layout.max_steps).tolist())


def test_truncation_leaves_the_episode_unterminated():
    layout = Layout.from_text("S..\n.L.\nG.E\n")
    episode = kernel_episode(layout, [K.UP] * 50)  # bump against the top border forever
    assert len(episode) == layout.max_steps == 9
    assert not any(done for *_, done in episode)
    for pos, reward, *_ in episode:
        assert pos == layout.start
        np.testing.assert_allclose(reward, [-K.STEP_COST_PATH, -K.STEP_COST_GOLD,
                                            -K.STEP_COST_HAZARD, -K.STEP_COST_LEVER])


def test_walls_and_borders_keep_the_agent_in_place(pocket):
    # Start (0, 0): up and left leave the grid; from (1, 0) right is a wall.
    world = reference_world(pocket)
    for action in (K.UP, K.LEFT):
        assert kernel_episode(pocket, [action])[0][0] == pocket.start
    (_, _, _, _, _), (pos, reward, *_) = kernel_episode(pocket, [K.DOWN, K.RIGHT])
    assert pos == 5
    assert reward[0] == pytest.approx(-K.STEP_COST_PATH)
    assert reference_step(world, 5, K.RIGHT, all_gold(world), False).pos == 5


def test_gold_is_collected_once_and_lever_activated_once(pocket):
    # Walk to (3, 2), up into the gold pocket, out, in again; then onto the lever, bump
    # against the bottom border while standing on it, leave and step on it again.
    to_gold = [K.DOWN, K.DOWN, K.DOWN, K.RIGHT, K.RIGHT, K.UP]
    actions = to_gold + [K.DOWN, K.UP, K.DOWN, K.DOWN, K.DOWN, K.UP, K.DOWN]
    episode = kernel_episode(pocket, actions)
    gold_rewards = [reward[1] for _, reward, *_ in episode]
    entering_gold = [t for t, (pos, *_) in enumerate(episode) if pos == 12]
    assert entering_gold == [5, 7]
    assert gold_rewards[5] == pytest.approx(-K.STEP_COST_GOLD + 1 + K.GOLD_COLLECT_REWARD)
    assert gold_rewards[7] < K.GOLD_COLLECT_REWARD - 1  # second entry: no +5
    lever_rewards = [reward[3] for _, reward, *_ in episode]
    on_lever = [t for t, (pos, *_) in enumerate(episode) if pos == pocket.lever]
    assert on_lever == [9, 10, 12]
    assert lever_rewards[9] == pytest.approx(-K.STEP_COST_LEVER + 1 + K.LEVER_ACTIVATION_REWARD)
    assert lever_rewards[10] == lever_rewards[12] == pytest.approx(-K.STEP_COST_LEVER)
    assert episode[-1][3] is True and episode[-1][2] == frozenset()
    assert_same_episode(pocket, actions)


def test_hazard_ends_the_episode_with_the_penalty_in_every_component():
    layout = Layout.from_text("SH.\n..E\n")
    (pos, reward, _, _, done), = kernel_episode(layout, [K.RIGHT, K.RIGHT])
    assert pos == 1 and done
    assert reward.tolist() == [K.HAZARD_PENALTY] * K.N_COMPONENTS


def test_exit_bonuses():
    # Exit without the gold or the lever, then with both.
    layout = Layout.from_text("SGLE\n")
    bare = Layout.from_text("G.\nSE\nL.\n")
    pos, reward, _, _, done = kernel_episode(bare, [K.RIGHT])[-1]
    assert done and pos == bare.exit
    assert reward[0] == pytest.approx(-K.STEP_COST_PATH + 1 + K.PATH_EXIT_BONUS)
    # The exit is one step further from the gold and from the lever than the start.
    assert reward[1] == pytest.approx(-K.STEP_COST_GOLD - 1 - K.GOLD_MISSING_PENALTY)
    assert reward[3] == pytest.approx(-K.STEP_COST_LEVER - 1 + K.LEVER_EXIT_BONUS_OFF)
    pos, reward, gold_left, lever_on, done = kernel_episode(layout, [K.RIGHT] * 3)[-1]
    assert done and not gold_left and lever_on
    assert reward[1] == pytest.approx(-K.STEP_COST_GOLD + K.GOLD_ALL_COLLECTED_BONUS)
    assert reward[2] == pytest.approx(-K.STEP_COST_HAZARD + K.HAZARD_EXIT_BONUS)
    assert reward[3] == pytest.approx(-K.STEP_COST_LEVER + K.LEVER_EXIT_BONUS_ON)


@settings(max_examples=25, deadline=None)
@given(layout=layouts(), seed=st.integers(0, 2**32 - 1))
def test_batched_step_equals_single_steps(layout, seed):
    rng = np.random.default_rng(seed)
    n_agents, n_gold = 64, layout.gold.size
    free = np.flatnonzero(layout.passable & (layout.cells.ravel() != K.EXIT))
    positions = rng.choice(free, size=n_agents).astype(np.int64)
    actions = rng.integers(0, 4, size=n_agents).astype(np.int64)
    gold_taken = rng.integers(0, 2, size=(n_agents, n_gold)).astype(np.uint8)
    lever_on = rng.integers(0, 2, size=n_agents).astype(np.int64)
    rewards = np.zeros((n_agents, K.N_COMPONENTS))
    terminated = np.zeros(n_agents, dtype=np.bool_)
    single = []
    for i in range(n_agents):
        taken, reward = gold_taken[i].copy(), np.zeros(K.N_COMPONENTS)
        nxt, lever, done = step(layout.world, positions[i], actions[i], taken, lever_on[i], reward)
        single.append((nxt, lever, done, taken, reward))
    world = reference_world(layout)
    expected = [reference_step(world, int(positions[i]), int(actions[i]),
                               frozenset(np.flatnonzero(gold_taken[i] == 0).tolist()),
                               bool(lever_on[i])) for i in range(n_agents)]
    step_batch(layout.world, positions, actions, gold_taken, lever_on, rewards, terminated)
    for i, (nxt, lever, done, taken, reward) in enumerate(single):
        assert positions[i] == nxt and lever_on[i] == lever and terminated[i] == done
        assert np.array_equal(gold_taken[i], taken) and np.array_equal(rewards[i], reward)
        assert positions[i] == expected[i].pos and terminated[i] == expected[i].terminated
        np.testing.assert_allclose(rewards[i], expected[i].reward, rtol=0, atol=1e-12)


@PROPERTY
@given(layout=layouts(), seed=st.integers(0, 2**32 - 1), dead_ends=st.booleans())
def test_greedy_rollout_matches_reference(layout, seed, dead_ends):
    rng = np.random.default_rng(seed)
    # Coarse values make ties common, which pins the lowest-index tie rule.
    q = rng.integers(-2, 3, size=(layout.n_states, K.N_ACTIONS)).astype(np.float64)
    actions = greedy_policy(q)
    assert actions.tolist() == reference_greedy(q)
    if dead_ends:
        actions[rng.random(layout.n_states) < 0.1] = -1
    weights = rng.normal(size=K.N_COMPONENTS)
    for record in (True, False):
        ret_vec = np.zeros(K.N_COMPONENTS)
        path = np.empty(layout.max_steps + 1 if record else 0, dtype=np.int32)
        ret, steps, end_code = rollout_actions(layout.world, layout.start, actions, layout.max_steps,
                                               weights, ret_vec, path)
        ref = reference_rollout(reference_world(layout), actions, weights)
        assert steps == ref.steps
        end = K.END_NAMES[end_code]
        assert end == ref.end
        np.testing.assert_allclose(ret_vec, ref.return_vector, rtol=1e-12, atol=1e-9)
        assert ret == pytest.approx(ref.ret, rel=1e-12, abs=1e-9)
        if record:
            assert path[: steps + 1].tolist() == ref.path and (path[steps + 1:] == -1).all()


def test_reference_bfs_agrees_on_a_hand_case():
    # A direct check of the reference itself: the wall forces a detour.
    cells = [[0, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert bfs(cells, 0) == [0, -1, 6, 1, -1, 5, 2, 3, 4]
