"""Composition kernels, the empirical model and offline evaluation against slow references."""

import gymnasium
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lever
from lever import GridSpec, Layout, LeverError, TrainConfig, train
from lever.policy import ComposedPolicy
from lever.compose import EmpiricalModel, PolicyStack, compose_actions, offline_evaluate
from lever.evaluation import true_evaluate
from lever.kernels import constants as K
from lever.kernels.world import N_TERMS, set_rewards, step

N_A, N_C, N_SETS = K.N_ACTIONS, K.N_COMPONENTS, K.N_SETS
#: Masks of the single-component sets, in component order (path, gold, hazard, lever).
SINGLETONS = [1 << c for c in range(N_C)]
#: Masks of the sets whose reward does not depend on the episode's history (no gold, no lever bit).
HISTORY_FREE = [m for m in range(N_SETS) if not m & (K.GOLD_BIT | K.LEVER_BIT)]


# -- slow references ------------------------------------------------------------

def reference_set_weights(weights, rules):
    """An objective's weights (C,) as weights over the 16 component sets, written out by hand.

    Study rules: 1 at the set of the non-zero components (weights must be 0 or 1).
    Linear rules: w_c at the single-component set 1 << c.
    """
    weights = np.asarray(weights, dtype=np.float64)
    out = np.zeros(N_SETS)
    if rules == "study":
        assert set(weights.tolist()) <= {0.0, 1.0}
        out[sum(1 << c for c in range(N_C) if weights[c])] = 1.0
    else:
        out[SINGLETONS] = weights
    return out


def reference_step_cost(mask):
    """What set ``mask`` pays per move: the step cost of each component in it."""
    costs = (K.STEP_COST_PATH, K.STEP_COST_GOLD, K.STEP_COST_HAZARD, K.STEP_COST_LEVER)
    return sum(cost for c, cost in enumerate(costs) if mask >> c & 1)

def reference_compose(values, visits, combos, betas, operator):
    """Numpy version of compose_batch: mask, combine, argmax (lowest index on ties)."""
    n_combos, _ = combos.shape
    n_states = values.shape[1]
    actions = np.full((n_combos, n_states), -1, dtype=np.int32)
    covered = np.zeros(n_combos, dtype=np.int64)
    for b in range(n_combos):
        members = values[combos[b]].astype(np.float64)            # (k, S, A)
        visited = visits[combos[b]] > 0                           # (k, S, A)
        union = visited.any(axis=0)
        weighted = betas[b][:, None, None] * members
        if operator == "sum":
            combined = weighted.sum(axis=0)
        else:
            combined = np.where(visited, weighted, -np.inf).max(axis=0)
        combined = np.where(union, combined, -np.inf)
        for s in range(n_states):
            if union[s].any():
                actions[b, s] = int(np.argmax(combined[s]))
        covered[b] = union.sum()
    return actions, covered


def reference_offline(model: EmpiricalModel, actions, cells, start, max_steps, set_weights):
    """Plain-Python rollout of one action table through one empirical model.

    Returns (set_weights · set returns, set returns (16,), steps, end, path).
    """
    pos, total, steps, path = start, np.zeros(N_SETS), 0, [start]
    end = "step_cap"
    while steps < max_steps:
        a = actions[pos]
        if a < 0 or not model.support[pos, a]:
            end = "dead_end"
            break
        reward = model.reward_model[pos, a].copy()
        nxt = int(model.next_state[pos, a])
        if pos in path[:-1] and nxt != pos:
            # A lap of a cycle: every set with gold or lever pays only its
            # step cost (a bump keeps its logged reward).
            for mask in range(N_SETS):
                if mask & (K.GOLD_BIT | K.LEVER_BIT):
                    reward[mask] = -reference_step_cost(mask)
        total += reward
        pos = nxt
        steps += 1
        path.append(pos)
        if cells[pos] == K.EXIT:
            end = "exit"
            break
        if cells[pos] == K.HAZARD:
            end = "hazard"
            break
    return float(set_weights @ total), total, steps, end, np.array(path)


# -- random inputs ----------------------------------------------------------------

def random_layout(seed: int, size: int = 6) -> Layout:
    return Layout.generate(GridSpec(height=size, width=size, n_gold=2, n_walls=3, n_hazards=3,
                                    seed=seed))


def random_stack(rng, layout: Layout, n_policies: int, q_dtype=np.float64, vector=False) -> PolicyStack:
    """Random tables on ``layout`` whose logged next states are the true ones."""
    n_states = layout.n_states
    # Values on a coarse grid: sums are exact, so ties are real ties and the
    # kernel and the reference must break them the same way.
    q = (rng.integers(-6, 7, size=(n_policies, n_states, N_A)) / 2).astype(q_dtype)
    visits = rng.integers(0, 3, size=(n_policies, n_states, N_A)) * (rng.random((n_policies, n_states, N_A)) < 0.6)
    next_state, reward_model = true_model(layout)
    next_state = np.where(visits > 0, next_state[None], -1).astype(np.int32)
    reward_model = np.where((visits > 0)[..., None], reward_model[None], 0.0)
    q_vector = (rng.integers(-6, 7, size=(n_policies, n_states, N_A, N_C)) / 2) if vector else None
    return PolicyStack.from_arrays(layout, q, visits, next_state, reward_model, q_vector)


def true_model(layout: Layout):
    """Next state (S, A) and every set's first-step reward (S, A, 16) of each (s, a) from a fresh episode state."""
    n_states = layout.n_states
    next_state = np.zeros((n_states, N_A), dtype=np.int32)
    reward_model = np.zeros((n_states, N_A, N_SETS))
    terms = np.zeros(N_TERMS)
    for s in range(n_states):
        for a in range(N_A):
            gold = np.zeros(layout.gold.size, dtype=np.uint8)
            nxt, _, _ = step(layout.world, s, a, gold, 0, terms)
            next_state[s, a] = nxt
            set_rewards(terms, reward_model[s, a])
    return next_state, reward_model


def visits_of(stack: PolicyStack) -> np.ndarray:
    return ((stack.support[..., None] >> np.arange(N_A)) & 1).astype(np.int64)


# -- the composition kernel ------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_policies=st.integers(1, 6), k=st.integers(1, 4),
       n_combos=st.integers(1, 12), operator=st.sampled_from(["sum", "max"]),
       q32=st.booleans())
def test_compose_matches_reference(seed, n_policies, k, n_combos, operator, q32):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 50, size=5)
    stack = random_stack(rng, layout, n_policies, np.float32 if q32 else np.float64)
    combos = rng.integers(0, n_policies, size=(n_combos, k))
    betas = rng.integers(1, 4, size=(n_combos, k)) / 2
    actions, covered = compose_actions(stack, combos, "path", operator, betas)
    want_actions, want_covered = reference_compose(stack.q, visits_of(stack), combos, betas, operator)
    np.testing.assert_array_equal(actions, want_actions)
    np.testing.assert_array_equal(covered, want_covered)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), operator=st.sampled_from(["sum", "max"]))
def test_unsupported_action_never_chosen_and_dead_ends_reported(seed, operator):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 50, size=5)
    stack = random_stack(rng, layout, 4)
    # Unsupported actions get huge Q values: a mask that leaked would pick them.
    visits = visits_of(stack)
    q = np.where(visits > 0, stack.q, 1e6)
    stack = PolicyStack.from_arrays(layout, q, visits, stack.next_state, stack.reward_model)
    combos = rng.integers(0, 4, size=(8, 2))
    actions, _ = compose_actions(stack, combos, "path", operator)
    for b, combo in enumerate(combos):
        union = visits[combo].any(axis=0).any(axis=1)
        assert np.array_equal(actions[b] < 0, ~union)
        chosen = actions[b] >= 0
        states = np.flatnonzero(chosen)
        assert visits[combo][:, states, actions[b][states]].any(axis=0).all()
    policy = ComposedPolicy(actions[0], (0, 1), operator, False, layout.id)
    if policy.dead_ends.size:
        with pytest.raises(LeverError, match="dead end"):
            policy(int(policy.dead_ends[0]))


def test_max_uses_vector_q_under_w():
    rng = np.random.default_rng(3)
    layout = random_layout(3, size=5)
    stack = random_stack(rng, layout, 3, vector=True)
    combos = np.array([[0, 1, 2], [2, 0, 0]])
    # A weighted objective (linear rules) and a set of components (the study's rules).
    for w, rules in ((np.array([1.0, 0.0, -0.5, 2.0]), "linear"), (np.array([1.0, 1.0, 0.0, 1.0]), "study")):
        actions, _ = compose_actions(stack, combos, w, "max", rules=rules)
        want, _ = reference_compose(stack.q_vector @ w, visits_of(stack), combos, np.ones((2, 3)), "max")
        np.testing.assert_array_equal(actions, want)
    with pytest.raises(LeverError, match="weighted"):
        compose_actions(stack, combos, np.array([1.0, 0.0, -0.5, 2.0]), "max")


# -- the empirical model and the offline rollout ------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), rules=st.sampled_from(["study", "linear"]))
def test_offline_rollout_matches_reference(seed, k, rules):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 50, size=6)
    n_policies = 4
    stack = random_stack(rng, layout, n_policies)
    # Give each policy its own (wrong but distinct) rewards so the first-member rule is visible.
    reward_model = stack.reward_model + np.arange(n_policies)[:, None, None, None]
    stack = PolicyStack.from_arrays(layout, stack.q, visits_of(stack), stack.next_state, reward_model)
    combos = rng.integers(0, n_policies, size=(6, k))
    actions = rng.integers(0, N_A, size=(6, layout.n_states)).astype(np.int32)
    actions[rng.random(actions.shape) < 0.1] = -1
    if rules == "study":  # a random set of components
        w = ((int(rng.integers(1, N_SETS)) >> np.arange(N_C)) & 1).astype(np.float64)
    else:
        w = rng.normal(size=N_C)
    set_weights = reference_set_weights(w, rules)
    batch = offline_evaluate(stack, combos, actions, w, rules, record_path=True)
    assert batch.return_vectors.shape == (combos.shape[0], N_SETS)
    for b in range(combos.shape[0]):
        model = stack.empirical_model(combos[b])
        ret, vec, steps, end, path = reference_offline(model, actions[b], layout.cells.ravel(),
                                                       layout.start, layout.max_steps, set_weights)
        assert batch.end(b) == end
        assert batch.steps[b] == steps
        np.testing.assert_allclose(batch.return_vectors[b], vec, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(batch.returns[b], ret, rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(batch.path(b), path)


def test_empirical_model_takes_first_member_and_counts_coverage():
    rng = np.random.default_rng(0)
    layout = random_layout(0, size=5)
    stack = random_stack(rng, layout, 3)
    reward_model = stack.reward_model + np.arange(3)[:, None, None, None]
    stack = PolicyStack.from_arrays(layout, stack.q, visits_of(stack), stack.next_state, reward_model)
    model = stack.empirical_model([2, 0])
    visits = visits_of(stack)
    np.testing.assert_array_equal(model.support, (visits[2] > 0) | (visits[0] > 0))
    only_first = visits[2] > 0
    np.testing.assert_array_equal(model.reward_model[only_first], reward_model[2][only_first])
    from_second = (visits[0] > 0) & ~only_first
    np.testing.assert_array_equal(model.reward_model[from_second], reward_model[0][from_second])
    _, covered = compose_actions(stack, [[2, 0]])
    assert model.coverage == pytest.approx(covered[0] / (layout.n_states * N_A))


# -- offline vs true evaluation on trained policies ---------------------------------------

@pytest.fixture(scope="module")
def trained_grid8():
    """Small libraries on three grid8 layouts: few episodes, several objectives and seeds."""
    out = []
    for layout_seed in range(3):
        layout = Layout.generate("grid8", seed=layout_seed)
        policies = [train(layout, objective, TrainConfig.from_budget(
                        "X1", "grid8", episodes=episodes, seed=seed))
                    for objective in ("path", "gold", "hazard", "lever", "path+gold+hazard")
                    for seed, episodes in ((0, 300), (1, 1500))]
        out.append((layout, PolicyStack.from_policies(layout, policies)))
    return out


def test_offline_equals_true_for_path_and_hazard_and_routes_match_for_all(trained_grid8):
    # The world is deterministic and a composition only takes supported
    # actions, so the offline route *is* the true route (same states, steps,
    # end). The logged reward vector is exact for path and hazard, so for
    # objectives over those components the offline return equals the true
    # return. Gold and lever rewards depend on what the episode collected
    # before (the state is position only) and the model holds the first
    # visit's, so for them only the route identity holds. Whatever the
    # objective, the returns of the sets without gold and lever (path,
    # hazard, path+hazard) along the route are exact.
    rng = np.random.default_rng(0)
    n_checked = {"exact": 0, "route": 0}
    for layout, stack in trained_grid8:
        combos = rng.integers(0, stack.n_policies, size=(60, 3))
        for operator in ("sum", "max"):
            for objective, rules in (("path", "study"), ("hazard", "study"), ("path+hazard", "study"),
                                     ("path+hazard", "linear"), ({"path": 0.7, "hazard": -1.3}, "linear"),
                                     ("gold", "study"), ("lever", "study"),
                                     ("path+gold+hazard+lever", "study"), ("gold*0.5+lever", "linear")):
                weights = lever.Objective.parse(objective)
                actions, _ = compose_actions(stack, combos, weights, operator, rules=rules)
                offline = offline_evaluate(stack, combos, actions, weights, rules, record_path=True)
                exact = not (set(weights.components) & {"gold", "lever"})
                for b in range(0, combos.shape[0], 3):
                    model = stack.empirical_model(combos[b])
                    truth = true_evaluate(layout, actions[b], model.support, weights, rules)
                    assert truth.route_on_support == 1.0  # the mask keeps every step on the support
                    np.testing.assert_array_equal(offline.path(b), truth.rollout.path)
                    assert offline.end(b) == truth.rollout.end
                    np.testing.assert_allclose(offline.return_vectors[b][HISTORY_FREE],
                                               truth.rollout.set_returns[HISTORY_FREE], atol=1e-9)
                    if exact:
                        assert offline.returns[b] == pytest.approx(truth.rollout.ret, abs=1e-9)
                        n_checked["exact"] += 1
                    else:
                        n_checked["route"] += 1
    assert n_checked["exact"] >= 300 and n_checked["route"] >= 300


# -- GPI theorem ----------------------------------------------------------------------

def policy_evaluation(next_state, reward, terminal, actions, gamma, sweeps=600):
    """Exact-to-float vector Q of a deterministic action table: (S, A, C)."""
    q = np.zeros(reward.shape)
    follow = np.where(terminal[next_state], 0.0, 1.0)[..., None]
    for _ in range(sweeps):
        q = reward + gamma * follow * q[next_state, actions[next_state]]
    return q


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_base=st.integers(2, 4))
def test_gpi_is_at_least_as_good_as_every_base_policy(seed, n_base):
    # Path and hazard rewards do not depend on history, so each (s, a) has
    # one true next state and reward vector and the vector Q of a fixed
    # policy is exact. Under the linear rules the reward of w is w · r, so
    # GPI over exact Q_w tables gives a policy whose value under w is at
    # least each base policy's, in every state (the GPI theorem).
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 40, size=5)
    n_states, gamma = layout.n_states, 0.9
    next_state, set_reward_model = true_model(layout)
    reward = set_reward_model[..., SINGLETONS].copy()  # (S, A, C): the single-component rewards
    reward[..., [K.GOLD_C, K.LEVER_C]] = 0.0
    cells = layout.cells.ravel()
    terminal = (cells == K.EXIT) | (cells == K.HAZARD)
    w = np.array([rng.uniform(0.1, 2), 0.0, rng.uniform(-1, 2), 0.0])
    bases = rng.integers(0, N_A, size=(n_base, n_states))
    q_vectors = np.stack([policy_evaluation(next_state, reward, terminal, pi, gamma) for pi in bases])
    visits = np.ones((n_base, n_states, N_A), dtype=np.int64)
    stack = PolicyStack.from_arrays(layout, q_vectors @ w, visits, np.repeat(next_state[None], n_base, 0),
                                    np.repeat(set_reward_model[None], n_base, 0), q_vectors)
    actions, _ = compose_actions(stack, [list(range(n_base))], w, "max", rules="linear")
    gpi_value = policy_evaluation(next_state, reward, terminal, actions[0], gamma) @ w
    live = ~terminal
    v_gpi = gpi_value[np.arange(n_states), actions[0]][live]
    for pi, q in zip(bases, q_vectors):
        v_base = (q @ w)[np.arange(n_states), pi][live]
        assert np.all(v_gpi >= v_base - 1e-9)


# -- checks, and the composed policy as a gymnasium policy --------------------------------

def test_bad_tables_are_rejected():
    layout = random_layout(1, size=5)
    rng = np.random.default_rng(1)
    stack = random_stack(rng, layout, 2)
    visits = visits_of(stack)
    q = stack.q.copy()
    q[0, 0, 0] = np.nan
    with pytest.raises(LeverError, match="NaN"):
        PolicyStack.from_arrays(layout, q, visits, stack.next_state, stack.reward_model)
    with pytest.raises(LeverError, match="visits has shape"):
        PolicyStack.from_arrays(layout, stack.q, visits[:, :-1], stack.next_state, stack.reward_model)
    with pytest.raises(LeverError, match="Q tables must have shape"):
        PolicyStack.from_arrays(layout, stack.q[:, :-1], visits, stack.next_state, stack.reward_model)
    with pytest.raises(LeverError, match="reward_model has shape"):  # one reward per component, not per set
        PolicyStack.from_arrays(layout, stack.q, visits, stack.next_state, stack.reward_model[..., SINGLETONS])
    with pytest.raises(LeverError, match="q_vector has shape"):
        PolicyStack.from_arrays(layout, stack.q, visits, stack.next_state, stack.reward_model,
                                np.zeros(stack.reward_model.shape))
    with pytest.raises(LeverError, match="rows must be in"):
        compose_actions(stack, [[0, 2]])
    with pytest.raises(LeverError, match="operator"):
        compose_actions(stack, [[0, 1]], operator="min")
    with pytest.raises(LeverError, match="unknown objective"):
        compose_actions(stack, [[0, 1]], "path+treasure")
    with pytest.raises(LeverError, match="weighted"):  # the study's rules reward sets only
        offline_evaluate(stack, [[0, 1]], np.zeros((1, layout.n_states), dtype=np.int32), "path*0.5+gold")
    with pytest.raises(LeverError, match="unknown rules"):
        offline_evaluate(stack, [[0, 1]], np.zeros((1, layout.n_states), dtype=np.int32), "path", "additive")


def test_composed_policy_drives_the_gymnasium_env(trained_grid8):
    layout, stack = trained_grid8[0]
    actions, _ = compose_actions(stack, [[0, 5, 8]], "path+hazard")
    policy = ComposedPolicy(actions[0], (0, 5, 8), "sum", False, layout.id)
    expected = lever.rollout(layout, policy.actions, "path+hazard")
    env = gymnasium.make("lever/GridWorld-v0", layout=layout, objective="path+hazard")
    obs, _ = env.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        if policy.actions[obs] < 0:
            break
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += reward
        steps += 1
        done = terminated or truncated
    assert steps == expected.steps
    assert total == pytest.approx(expected.ret)


def test_parallel_and_serial_kernels_agree_on_a_large_batch():
    # Batches of PARALLEL_MIN_BATCH or more take the threaded kernels; smaller ones the serial twins.
    from lever.compose import PARALLEL_MIN_BATCH

    rng = np.random.default_rng(11)
    layout = random_layout(11, size=6)
    stack = random_stack(rng, layout, 8, np.float32)
    combos = rng.integers(0, 8, size=(PARALLEL_MIN_BATCH + 37, 3))
    for operator, w, rules in (("sum", np.array([1.0, 0.5, 1.0, 0.0]), "linear"),
                               ("max", np.array([1.0, 0.5, 1.0, 0.0]), "linear"),
                               ("sum", "path+gold+lever", "study"), ("max", "gold+hazard", "study")):
        actions, covered = compose_actions(stack, combos, w, operator, rules=rules)
        batch = offline_evaluate(stack, combos, actions, w, rules, record_path=True)
        for lo in range(0, combos.shape[0], 100):
            part = combos[lo:lo + 100]
            small_actions, small_covered = compose_actions(stack, part, w, operator, rules=rules)
            np.testing.assert_array_equal(actions[lo:lo + 100], small_actions)
            np.testing.assert_array_equal(covered[lo:lo + 100], small_covered)
            small = offline_evaluate(stack, part, small_actions, w, rules, record_path=True)
            np.testing.assert_array_equal(batch.returns[lo:lo + 100], small.returns)
            np.testing.assert_array_equal(batch.return_vectors[lo:lo + 100], small.return_vectors)
            np.testing.assert_array_equal(batch.paths[lo:lo + 100], small.paths)
            np.testing.assert_array_equal(batch.ends[lo:lo + 100], small.ends)
