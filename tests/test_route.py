"""The route search (operator ``route``) against an exhaustive pure-Python enumeration of routes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lever
from lever.compose import PolicyStack
from lever.errors import LeverError
from lever.kernels import constants as K
from lever.kernels.constants import N_ACTIONS, N_SETS
from lever.route import RouteSearch, route_action_table, topological_order

from tests.reference_route import best_route, best_route_dp, step as reference_step

OBJECTIVES = ["path", "gold", "hazard", "lever", "path+gold", "path+gold+hazard", "path+gold+hazard+lever",
              "hazard+lever"]


def random_layout(rng: np.random.Generator, height: int, width: int) -> lever.Layout:
    kinds = rng.choice([K.EMPTY, K.EMPTY, K.EMPTY, K.GOLD, K.GOLD, K.WALL, K.HAZARD], size=(height, width))
    kinds[0, 0] = K.EMPTY
    kinds[-1, -1] = K.EXIT
    if rng.random() < 0.8:
        lever_cell = rng.integers(1, height * width - 1)
        kinds.flat[lever_cell] = K.LEVER
    return lever.Layout(kinds.astype(np.int8), 0, checked=False)


def random_stack(layout: lever.Layout, rng: np.random.Generator, n_policies: int, density: float) -> PolicyStack:
    shape = (n_policies, layout.n_states, N_ACTIONS)
    visits = (rng.random(shape) < density).astype(np.int64)
    moves = layout.world_for("first-release").moves
    next_state = np.where(visits > 0, moves[None], -1).astype(np.int32)
    return PolicyStack.from_arrays(layout, np.zeros(shape), visits, next_state, np.zeros(shape + (N_SETS,)))


def union_pairs(stack: PolicyStack, combo) -> set:
    bits = np.bitwise_or.reduce(stack.support[list(combo)], axis=0)
    return {(s, a) for s in range(bits.size) for a in range(N_ACTIONS) if (int(bits[s]) >> a) & 1}


def cells_of(layout):
    return layout.cells.tolist()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), height=st.integers(2, 5), width=st.integers(2, 5),
       objective=st.sampled_from(OBJECTIVES), legacy=st.booleans(), density=st.sampled_from([0.4, 0.7, 1.0]))
def test_best_route_matches_exhaustive_enumeration(seed, height, width, objective, legacy, density):
    rng = np.random.default_rng(seed)
    layout = random_layout(rng, height, width)
    stack = random_stack(layout, rng, 3, density)
    combos = np.array([[0, 0], [1, 2], [0, 1], [2, 2]])
    routes = RouteSearch(stack, objective, legacy_gold_exit=legacy).search(combos)
    parts = set(objective.split("+"))
    env = lever.GridWorldEnv(layout, objective, rules="first-release", legacy_gold_exit=legacy)
    for b, combo in enumerate(combos):
        want = best_route(cells_of(layout), layout.start, union_pairs(stack, combo), parts, legacy)
        assert best_route_dp(cells_of(layout), layout.start, union_pairs(stack, combo), parts, legacy) == want
        if want == -math.inf:
            assert not routes.found(b) and routes.lengths[b] == 0
            continue
        assert routes.found(b)
        assert math.isclose(routes.values[b], want, rel_tol=1e-12, abs_tol=1e-9)
        # The route itself: logged pairs only, ends at the exit, and its replay returns its value exactly.
        env.reset()
        total, pos = 0.0, layout.start
        for t, action in enumerate(routes.route(b)):
            assert (pos, int(action)) in union_pairs(stack, combo)
            pos, reward, terminated, truncated, _ = env.step(int(action))
            total += reward
            assert terminated == (t == routes.lengths[b] - 1)
        assert pos == layout.exit and total == routes.values[b]
        replay = lever.rollout(layout, route_action_table(layout, routes.route(b)), objective, "first-release",
                               legacy_gold_exit=legacy)
        assert replay.end == "exit" and replay.ret == routes.values[b]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), objective=st.sampled_from(OBJECTIVES), legacy=st.booleans())
def test_reference_step_is_the_env_step(seed, objective, legacy):
    # The reference rules the route search is checked against are the env's, on random walks.
    rng = np.random.default_rng(seed)
    layout = random_layout(rng, 6, 6)
    env = lever.GridWorldEnv(layout, objective, rules="first-release", legacy_gold_exit=legacy)
    env.reset()
    pos, taken, lever_on = layout.start, set(), False
    for _ in range(30):
        action = int(rng.integers(0, 4))
        pos, lever_on, reward, done = reference_step(cells_of(layout), pos, action, taken, lever_on,
                                                     set(objective.split("+")), legacy)
        obs, got, terminated, _, _ = env.step(action)
        assert (obs, terminated) == (pos, done) and math.isclose(got, reward, rel_tol=1e-12, abs_tol=1e-12)
        if done:
            break


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 5), objective=st.sampled_from(OBJECTIVES), legacy=st.booleans())
def test_best_route_matches_the_reference_dp_on_the_releases_layouts(seed, objective, legacy):
    layout = lever.Layout.generate("first-release-grid16", seed=seed)
    stack = random_stack(layout, np.random.default_rng(seed), 2, 0.8)
    routes = RouteSearch(stack, objective, legacy_gold_exit=legacy).search(np.array([[0, 1]]))
    want = best_route_dp(cells_of(layout), layout.start, union_pairs(stack, (0, 1)), set(objective.split("+")), legacy)
    assert math.isclose(routes.values[0], want, rel_tol=1e-12, abs_tol=1e-9)


def test_topological_order_puts_every_move_forward():
    layout = lever.Layout.generate("first-release-grid16", seed=0)
    position = np.empty(layout.n_states, dtype=np.int64)
    position[topological_order(layout)] = np.arange(layout.n_states)
    moves = layout.world_for("first-release").moves
    for s in range(layout.n_states):
        for a in range(N_ACTIONS):
            assert moves[s, a] == s or position[moves[s, a]] > position[s]


def test_full_support_finds_the_published_optimum_of_seed_0():
    # FIRST_RELEASE.md §10: every published composed return is the layout's optimum (-20 rule);
    # path-gold, seed 0 reads 110.81.
    layout = lever.Layout.generate("first-release-grid16", seed=0)
    shape = (1, layout.n_states, N_ACTIONS)
    stack = PolicyStack.from_arrays(layout, np.zeros(shape), np.ones(shape, dtype=np.int64),
                                    layout.world_for("first-release").moves[None], np.zeros(shape + (N_SETS,)))
    routes = RouteSearch(stack, "path+gold").search(np.array([[0]]))
    assert routes.values[0] == pytest.approx(110.81, abs=1e-9)


def test_bad_input_is_refused():
    layout = lever.Layout.generate("first-release-grid16", seed=0)
    stack = random_stack(layout, np.random.default_rng(0), 2, 0.5)
    search = RouteSearch(stack, "path+gold")
    with pytest.raises(LeverError, match="rows"):
        search.search(np.array([[0, 2]]))
    with pytest.raises(LeverError, match="shape"):
        search.search(np.zeros((2, 0), dtype=np.int64))
    with pytest.raises(LeverError, match="weighted"):
        RouteSearch(stack, "path+gold*0.5")
    with pytest.raises(LeverError, match="twice"):
        route_action_table(layout, [0, 0, 1, 1, 2, 2, 3, 3] * 10)
