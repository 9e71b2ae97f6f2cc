"""Planning on (cell, lever phase): relabelling per phase against a pure-Python replay of the study's rules,
value iteration against a numpy reference, and a layout where planning on the cell alone provably loops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever import Layout, LeverError, TrainConfig, train
from lever.compose import PolicyStack, plan_on_support
from lever.evaluation import rollout
from lever.kernels import constants as K
from lever.kernels.support import log_pairs_from_start
from lever.kernels.world import N_TERMS, T_GOLD_LEFT
from lever.phase_plan import phase_model, phase_offline, phase_plan_on_support
from lever.policy import ComposedPolicy
from tests.reference import ALL_SETS, reference_move, reference_world
from tests.test_compose import random_layout

N_A = K.N_ACTIONS


def phase_reward(world, objective, pos, nxt, bumped, lever_on_before, gold_left_count):
    """The study's reward of one step in a lever phase, rule by rule, with the gold read as the phase plan reads it.

    The gold guidance is the change in steps to the nearest of *every* gold, no collection reward is
    counted, and ``gold_left_count`` (the count logged on the first visit) is the gold left before the
    step for the exit's penalty and the gold component's switch to the exit guidance.
    """
    if bumped:
        return -0.1
    kind = world.kind(nxt)
    if kind == K.HAZARD:
        return -100.0

    def delta(dist):
        if dist is None or dist[pos] < 0 or dist[nxt] < 0:
            return 0.0
        return float(dist[pos] - dist[nxt])

    def nearest(cell):
        found = [d[cell] for d in world.gold_dist if d[cell] >= 0]
        return min(found) if found else -1

    path, gold, hazard, lever = (name in objective for name in K.COMPONENT_NAMES)
    pulled_now = kind == K.LEVER and not lever_on_before
    lever_on = lever_on_before or pulled_now
    reward = 0.0
    if pulled_now and lever:
        reward += 20
    if gold:
        if gold_left_count:
            before, after = nearest(pos), nearest(nxt)
            if before >= 0 and after >= 0:
                reward += before - after
        elif not path and (not lever or lever_on):
            reward += delta(world.dist_exit)
    if lever:
        if not lever_on:
            reward += delta(world.dist_lever)
        elif not path:
            reward += delta(world.dist_exit)
    if hazard and not path and (not gold or not gold_left_count) and (not lever or lever_on):
        reward += delta(world.dist_exit)
    if path:
        reward += delta(world.dist_exit)
    if hazard:
        reward += 2 * (world.hazard_neighbours(pos) - world.hazard_neighbours(nxt))
    if kind == K.EXIT:
        if path:
            reward += 100
        if hazard:
            reward += 100
        if gold:
            reward += 100 if gold_left_count == 0 else -10 * gold_left_count / max(1, len(world.gold_cells))
        if lever:
            reward += 80 if lever_on else 20
    reward -= 0.1 * (path + hazard + lever) + (0.01 if gold else 0.0)
    return reward


def reference_relabel(layout, stack, rows, mask):
    """Pure Python: (rewards (2, S, A) with -inf off the union support, next phase (2, S, A)) of ``rows``."""
    world = reference_world(layout)
    n = layout.n_states
    rewards = np.full((2, n, N_A), -np.inf)
    after = np.zeros((2, n, N_A), dtype=np.int64)
    for s in range(n):
        for a in range(N_A):
            member = next((r for r in rows if stack.support[r, s] >> a & 1), None)
            if member is None:
                after[1, s, a] = 1
                continue
            logged = int(stack.next_state[member, s, a])
            nxt, bumped, _, _, _ = reference_move(world, s, a, frozenset(), False)
            assert nxt == logged
            left = int(stack.term_model[member, s, a, T_GOLD_LEFT])
            for phase in (0, 1):
                rewards[phase, s, a] = phase_reward(world, ALL_SETS[mask], s, nxt, bumped, bool(phase), left)
                pulls = not bumped and world.kind(nxt) == K.LEVER
                after[phase, s, a] = 1 if phase == 1 or pulls else 0
    return rewards, after


def trained_stack(layout, objectives, episodes, seed):
    """Policies trained on ``layout`` (varied first-visit contexts), stacked with their logged terms."""
    config = TrainConfig(episodes=episodes, seed=seed, epsilon_decay=0.99)
    return PolicyStack.from_policies(layout, [train(layout, o, config) for o in objectives])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mask=st.integers(1, 15), k=st.integers(1, 3))
def test_relabelling_per_phase_matches_a_replay_of_the_rules(seed, mask, k):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 40, size=5)
    stack = trained_stack(layout, ["path", "gold+lever", "hazard"], 30, seed % 1000)
    rows = [int(r) for r in rng.integers(0, 3, size=k)]
    objective = "+".join(sorted(ALL_SETS[mask], key=K.COMPONENT_NAMES.index))
    model = phase_model(stack, rows, objective)
    want, after = reference_relabel(layout, stack, rows, mask)
    supported = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(model.rewards), supported)
    np.testing.assert_allclose(model.rewards[supported], want[supported], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(model.next_phase[supported], after[supported])


def reference_phase_iteration(model, cells, gamma, sweeps=4000):
    """Jacobi value iteration over (phase, cell), numpy: Q (2, S, A), -inf off the support."""
    supported = np.isfinite(model.rewards)
    reward = np.where(supported, model.rewards, 0.0)
    successor = np.where(model.successor >= 0, model.successor, 0)
    terminal = (cells[successor] == K.EXIT) | (cells[successor] == K.HAZARD)
    phase_after = model.next_phase.astype(np.int64)
    q = np.where(supported, 0.0, -np.inf)
    for _ in range(sweeps):
        best = q.max(axis=2)
        best = np.where(np.isfinite(best), best, 0.0)
        future = best[phase_after, successor[None]]
        q = np.where(supported, reward + gamma * np.where(terminal[None], 0.0, future), -np.inf)
    return q


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), gamma=st.sampled_from([0.0, 0.5, 0.9]), k=st.integers(1, 3))
def test_phase_value_iteration_matches_reference(seed, gamma, k):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 40, size=5)
    stack = trained_stack(layout, ["path", "lever", "gold+hazard"], 20, seed % 1000)
    rows = [int(r) for r in rng.integers(0, 3, size=k)]
    plan = phase_plan_on_support(stack, rows, "path+gold+hazard+lever", gamma=gamma, tol=1e-12)
    want = reference_phase_iteration(plan.model, layout.world.cells, gamma)
    np.testing.assert_array_equal(np.isfinite(plan.q), np.isfinite(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(plan.q[finite], want[finite], rtol=0, atol=1e-6)
    # The greedy action is one of the best where the best is clear.
    for phase in (0, 1):
        for s in range(layout.n_states):
            row = want[phase, s]
            if not np.isfinite(row).any():
                assert plan.actions[phase, s] == -1
                continue
            best = np.nanmax(np.where(np.isfinite(row), row, np.nan))
            assert row[plan.actions[phase, s]] >= best - 1e-6


#: A corridor: start, an empty cell, the lever, an empty cell, the exit.
CORRIDOR = "S.L.E"


def corridor_stack(layout):
    """One policy that logged every pair of the corridor from the start context (lever not pulled)."""
    n = layout.n_states
    cells = layout.cells.ravel()
    support = np.zeros((n, N_A), dtype=bool)
    support[(cells != K.EXIT)] = True
    next_state = np.full((n, N_A), -1, dtype=np.int32)
    reward_model = np.zeros((n, N_A, K.N_SETS))
    term_model = np.zeros((n, N_A, N_TERMS))
    log_pairs_from_start(layout.world, support, next_state, reward_model, term_model)
    q = np.zeros((1, n, N_A))
    return PolicyStack.from_arrays(layout, q, support[None].astype(np.int64), next_state[None], reward_model[None],
                                   term_model=term_model[None])


def test_position_plan_provably_loops_and_the_phase_plan_exits():
    layout = Layout.from_text(CORRIDOR)
    lever, exit_ = layout.lever, layout.exit
    stack = corridor_stack(layout)
    objective = "path+lever"
    # Cell only: every step into the lever was logged as a pull (+20), so from the cell right of the lever
    # going back to it (+20 - 0.2) and out again (-0.2) is worth 19.6 every two steps, about 985 at
    # γ = 0.99, more than the exit's 119.8 (its lever bonus logged with the lever off).
    position = plan_on_support(stack, [0], objective, gamma=0.99)
    assert position.actions[lever + 1] == K.LEFT and position.actions[lever] == K.RIGHT
    looped = rollout(layout, position.actions, objective, record_path=True)
    assert looped.end == "step_cap"
    assert set(looped.path[2:].tolist()) == {lever, lever + 1}
    # By (cell, phase): after the pull, stepping into the lever pays nothing and the exit pays 80 more.
    phase = phase_plan_on_support(stack, [0], objective, gamma=0.99)
    assert phase.actions[1, lever + 1] == K.RIGHT
    result = rollout(layout, phase.actions, objective, record_path=True)
    assert result.end == "exit" and lever in result.path.tolist() and result.path[-1] == exit_
    # 4 steps of path progress net of the cost (0.8 each), the first step's lever guidance (the second
    # pulls it, and guidance stops), the pull, and the exit's path and lever-on bonuses.
    assert result.ret == pytest.approx(4 * 0.8 + 1 + 20 + 100 + 80)
    assert phase_offline(stack, phase.model, phase.actions) == (pytest.approx(result.ret), "exit")


def test_a_log_without_terms_refuses_phase_planning():
    layout = Layout.from_text(CORRIDOR)
    stack = corridor_stack(layout)
    bare = PolicyStack.from_arrays(layout, stack.q, (stack.support[..., None] >> np.arange(N_A)) & 1,
                                   stack.next_state, stack.reward_model)
    assert bare.term_model is None
    with pytest.raises(LeverError, match="rebuild the library"):
        phase_plan_on_support(bare, [0], "path+lever")
    plan_on_support(bare, [0], "path+lever")  # planning on the cell alone still works


def test_bad_inputs_are_refused():
    layout = Layout.from_text(CORRIDOR)
    stack = corridor_stack(layout)
    with pytest.raises(LeverError, match="gamma"):
        phase_plan_on_support(stack, [0], "path", gamma=1.0)
    with pytest.raises(LeverError, match="rows"):
        phase_plan_on_support(stack, [3], "path")
    with pytest.raises(LeverError, match="term_model has shape"):
        PolicyStack.from_arrays(layout, stack.q, (stack.support[..., None] >> np.arange(N_A)) & 1,
                                stack.next_state, stack.reward_model, term_model=np.zeros((1, 2, N_A, N_TERMS)))


def test_phased_policy_acts_by_phase_saves_and_loads(tmp_path):
    layout = Layout.from_text(CORRIDOR)
    plan = phase_plan_on_support(corridor_stack(layout), [0], "path+lever")
    policy = ComposedPolicy(plan.actions, (0,), "sum", True, layout.id)
    assert policy.phased
    with pytest.raises(LeverError, match="lever_on"):
        policy(0)
    assert policy(layout.lever + 1, lever_on=True) == K.RIGHT
    assert rollout(layout, policy, "path+lever").end == "exit"  # the env's lever flag picks the row
    loaded = ComposedPolicy.load(policy.save(tmp_path / "phased.npz"))
    np.testing.assert_array_equal(loaded.actions, plan.actions)
    assert loaded.phased and loaded.planned
    plain = ComposedPolicy(plan.actions[0].copy(), (0,), "sum", False, layout.id)
    assert not ComposedPolicy.load(plain.save(tmp_path / "plain.npz")).phased


def test_rollout_tracks_the_lever_flag():
    layout = Layout.from_text(CORRIDOR)
    # Phase 0 walks right to the lever; phase 1 walks right to the exit, and would walk left before the pull.
    actions = np.array([[K.RIGHT] * 5, [K.RIGHT] * 5], dtype=np.int32)
    actions[1, 0] = K.LEFT
    assert rollout(layout, actions, "path").end == "exit"
    with pytest.raises(LeverError, match="phase action table"):
        rollout(layout, np.full((2, 4), 0, dtype=np.int32), "path")
