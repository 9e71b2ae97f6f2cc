"""The world kernels (BFS, step and the study's rules, batched step, greedy rollout) against the
pure-Python reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lever import Layout
from lever.kernels import constants as K
from lever.kernels.rollout import greedy_policy, rollout_actions
from lever.kernels.world import N_TERMS, set_rewards, step, step_batch
from tests.reference import (
    all_gold, bfs, layouts, reference_episode, reference_greedy, reference_rollout,
    reference_step, reference_world,
)

PROPERTY = settings(max_examples=60, deadline=None)


def kernel_episode(layout: Layout, actions, max_steps: int | None = None):
    """Play ``actions`` through the step kernel like :func:`reference_episode` does.

    Returns one (pos, the reward of every component set (16,), gold left as a frozenset,
    lever_on, terminated) per step.
    """
    max_steps = layout.max_steps if max_steps is None else max_steps
    gold_taken = np.zeros(layout.gold.size, dtype=np.uint8)
    terms, rewards = np.zeros(N_TERMS), np.zeros(K.N_SETS)
    pos, lever_on, records = layout.start, 0, []
    for action in list(actions)[:max_steps]:
        pos, lever_on, done = step(layout.world, pos, action, gold_taken, lever_on, terms)
        set_rewards(terms, rewards)
        gold_left = frozenset(int(g) for g in np.flatnonzero(gold_taken == 0))
        records.append((int(pos), rewards.copy(), gold_left, bool(lever_on), bool(done)))
        if done:
            break
    return records


def assert_same_episode(layout: Layout, actions):
    ours = kernel_episode(layout, actions)
    ref = reference_episode(reference_world(layout), actions)
    assert len(ours) == len(ref)
    for t, ((pos, reward, gold_left, lever_on, done), expected) in enumerate(zip(ours, ref)):
        assert pos == expected.pos, f"step {t}"
        np.testing.assert_allclose(reward, expected.set_rewards, rtol=0, atol=1e-12, err_msg=f"step {t}")
        assert gold_left == expected.gold_left, f"step {t}"
        assert lever_on == expected.lever_on, f"step {t}"
        assert done == expected.terminated, f"step {t}"


@PROPERTY
@given(layout=layouts())
def test_distance_maps_match_reference_bfs(layout):
    world = layout.world
    cells, width, dist_exit, dist_lever, gold_id = world.cells, world.width, world.dist_exit, \
        world.dist_lever, world.gold_id
    gold_dist, hazard_neighbours, moves = world.gold_dist, world.hazard_neighbours, world.moves
    ref = reference_world(layout)
    assert width == layout.width
    assert dist_exit.tolist() == ref.dist_exit
    assert dist_lever.tolist() == (ref.dist_lever or [-1] * layout.n_states)
    assert gold_dist.T.tolist() == ref.gold_dist
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
        # A bump costs the same for every objective (and 0 for the empty set).
        np.testing.assert_allclose(reward[1:], K.BUMP_REWARD)


def test_walls_and_borders_keep_the_agent_in_place(pocket):
    # Start (0, 0): up and left leave the grid; from (1, 0) right is a wall.
    world = reference_world(pocket)
    for action in (K.UP, K.LEFT):
        assert kernel_episode(pocket, [action])[0][0] == pocket.start
    (_, _, _, _, _), (pos, reward, *_) = kernel_episode(pocket, [K.DOWN, K.RIGHT])
    assert pos == 5
    assert reward[K.PATH_BIT] == reward[K.GOLD_BIT | K.LEVER_BIT] == pytest.approx(K.BUMP_REWARD)
    assert reference_step(world, 5, K.RIGHT, all_gold(world), False).pos == 5


def test_gold_is_collected_once_and_lever_activated_once(pocket):
    # Walk to (3, 2), up into the gold pocket, out, in again; then onto the lever, bump
    # against the bottom border while standing on it, leave and step on it again.
    to_gold = [K.DOWN, K.DOWN, K.DOWN, K.RIGHT, K.RIGHT, K.UP]
    actions = to_gold + [K.DOWN, K.UP, K.DOWN, K.DOWN, K.DOWN, K.UP, K.DOWN]
    episode = kernel_episode(pocket, actions)
    gold_rewards = [reward[K.GOLD_BIT] for _, reward, *_ in episode]
    entering_gold = [t for t, (pos, *_) in enumerate(episode) if pos == 12]
    assert entering_gold == [5, 7]
    assert gold_rewards[5] == pytest.approx(-K.STEP_COST_GOLD + 1 + K.GOLD_COLLECT_REWARD)
    assert gold_rewards[7] < K.GOLD_COLLECT_REWARD - 1  # second entry: no +5
    lever_rewards = [reward[K.LEVER_BIT] for _, reward, *_ in episode]
    on_lever = [t for t, (pos, *_) in enumerate(episode) if pos == pocket.lever]
    assert on_lever == [9, 10, 12]
    assert lever_rewards[9] == pytest.approx(-K.STEP_COST_LEVER + 1 + K.LEVER_PULL_REWARD)
    assert lever_rewards[10] == pytest.approx(K.BUMP_REWARD)  # bumped against the border
    # Pulled: the lever's guidance now leads to the exit, one step closer again.
    assert lever_rewards[12] == pytest.approx(-K.STEP_COST_LEVER + 1)
    assert episode[-1][3] is True and episode[-1][2] == frozenset()
    assert_same_episode(pocket, actions)


def test_hazard_ends_the_episode_with_the_penalty_for_every_objective():
    layout = Layout.from_text("SH.\n..E\n")
    (pos, reward, _, _, done), = kernel_episode(layout, [K.RIGHT, K.RIGHT])
    assert pos == 1 and done
    assert reward[1:].tolist() == [K.HAZARD_PENALTY] * (K.N_SETS - 1)


def test_exit_guidance_switches_with_the_other_components():
    # Gold alone is guided to the exit once no gold is left; with path in the set the
    # path term does the guiding instead, so the set is not the sum of its parts.
    layout = Layout.from_text("SGL.E\n")
    episode = kernel_episode(layout, [K.RIGHT] * 4)
    _, after_gold, *_ = episode[1]  # (0, 2): the gold is taken, the lever just pulled
    gold, path_gold = after_gold[K.GOLD_BIT], after_gold[K.PATH_BIT | K.GOLD_BIT]
    assert gold == pytest.approx(1 - K.STEP_COST_GOLD)  # Δ_exit: no gold left
    assert path_gold == pytest.approx(1 - K.STEP_COST_GOLD - K.STEP_COST_PATH)  # only the path's Δ_exit
    assert path_gold != pytest.approx(gold + after_gold[K.PATH_BIT])


def test_exit_bonuses():
    # Exit without the gold or the lever, then with both.
    layout = Layout.from_text("SGLE\n")
    bare = Layout.from_text("G.\nSE\nL.\n")
    pos, reward, _, _, done = kernel_episode(bare, [K.RIGHT])[-1]
    assert done and pos == bare.exit
    assert reward[K.PATH_BIT] == pytest.approx(-K.STEP_COST_PATH + 1 + K.PATH_EXIT_BONUS)
    # The exit is one step further from the gold and from the lever than the start.
    assert reward[K.GOLD_BIT] == pytest.approx(-K.STEP_COST_GOLD - 1 - K.GOLD_MISSING_PENALTY)
    assert reward[K.LEVER_BIT] == pytest.approx(-K.STEP_COST_LEVER - 1 + K.LEVER_EXIT_BONUS_OFF)
    pos, reward, gold_left, lever_on, done = kernel_episode(layout, [K.RIGHT] * 3)[-1]
    assert done and not gold_left and lever_on
    assert reward[K.GOLD_BIT] == pytest.approx(1 - K.STEP_COST_GOLD + K.GOLD_ALL_COLLECTED_BONUS)
    assert reward[K.HAZARD_BIT] == pytest.approx(1 - K.STEP_COST_HAZARD + K.HAZARD_EXIT_BONUS)
    assert reward[K.LEVER_BIT] == pytest.approx(1 - K.STEP_COST_LEVER + K.LEVER_EXIT_BONUS_ON)


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
    masks, coefs = np.array([K.PATH_BIT | K.GOLD_BIT, K.LEVER_BIT]), np.array([1.0, 0.5])
    rewards = np.zeros(n_agents)
    all_sets = np.zeros((n_agents, K.N_SETS))
    terminated = np.zeros(n_agents, dtype=np.bool_)
    single = []
    for i in range(n_agents):
        taken, terms, reward = gold_taken[i].copy(), np.zeros(N_TERMS), np.zeros(K.N_SETS)
        nxt, lever, done = step(layout.world, positions[i], actions[i], taken, lever_on[i], terms)
        set_rewards(terms, reward)
        single.append((nxt, lever, done, taken, reward))
    world = reference_world(layout)
    expected = [reference_step(world, int(positions[i]), int(actions[i]),
                               frozenset(np.flatnonzero(gold_taken[i] == 0).tolist()),
                               bool(lever_on[i])) for i in range(n_agents)]
    step_batch(layout.world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, all_sets,
               terminated)
    for i, (nxt, lever, done, taken, reward) in enumerate(single):
        assert positions[i] == nxt and lever_on[i] == lever and terminated[i] == done
        assert np.array_equal(gold_taken[i], taken) and np.array_equal(all_sets[i], reward)
        assert rewards[i] == reward[K.PATH_BIT | K.GOLD_BIT] + 0.5 * reward[K.LEVER_BIT]
        assert positions[i] == expected[i].pos and terminated[i] == expected[i].terminated
        np.testing.assert_allclose(all_sets[i], expected[i].set_rewards, rtol=0, atol=1e-12)


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
    weights = rng.normal(size=K.N_SETS)
    for record in (True, False):
        ret_vec = np.zeros(K.N_SETS)
        path = np.empty(layout.max_steps + 1 if record else 0, dtype=np.int32)
        ret, steps, end_code = rollout_actions(layout.world, layout.start, actions, layout.max_steps,
                                               weights, ret_vec, path)
        ref = reference_rollout(reference_world(layout), actions, weights)
        assert steps == ref.steps
        end = K.END_NAMES[end_code]
        assert end == ref.end
        np.testing.assert_allclose(ret_vec, ref.set_returns, rtol=1e-12, atol=1e-9)
        assert ret == pytest.approx(ref.ret, rel=1e-12, abs=1e-9)
        if record:
            assert path[: steps + 1].tolist() == ref.path and (path[steps + 1:] == -1).all()


def test_reference_bfs_agrees_on_a_hand_case():
    # A direct check of the reference itself: the wall forces a detour.
    cells = [[0, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert bfs(cells, 0) == [0, -1, 6, 1, -1, 5, 2, 3, 4]
