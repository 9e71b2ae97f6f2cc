"""Value iteration on the union support: against a numpy reference, and never worse offline."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever import Layout, LeverError, TrainConfig, train
from lever.compose import PolicyStack, compose_actions, plan_on_support
from lever.kernels import constants as K
from lever.retrieval import PreparedLayout
from lever.search import search
from lever.strategies import Hybrid, Targeted
from tests.test_compose import random_layout, random_stack, reference_set_weights

N_A = K.N_ACTIONS


def relabel(reward_model, set_weights):
    """The objective's reward of every logged pair, Σ_m set_weights[m] · reward_model[..., m].

    Summed set by set in mask order, as the kernels do, so the values agree
    to the last bit (and ties between actions stay ties).
    """
    total = np.zeros(reward_model.shape[:-1])
    for mask in range(K.N_SETS):
        total = total + set_weights[mask] * reward_model[..., mask]
    return total


def reference_value_iteration(model, cells, set_weights, gamma, sweeps=3000):
    """Jacobi value iteration over one EmpiricalModel, numpy: Q (S, A), -inf off the support.

    set_weights (16,): the objective as weights over the component sets, so
    the reward of (s, a) is set_weights · (every set's logged reward).
    """
    reward = model.reward_model @ set_weights
    next_state = np.where(model.support, model.next_state, 0)
    terminal = (cells[next_state] == K.EXIT) | (cells[next_state] == K.HAZARD)
    q = np.where(model.support, 0.0, -np.inf)
    for _ in range(sweeps):
        best = q.max(axis=1)
        future = np.where(np.isfinite(best), best, 0.0)[next_state]
        q = np.where(model.support, reward + gamma * np.where(terminal, 0.0, future), -np.inf)
    return q


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 3), gamma=st.sampled_from([0.0, 0.5, 0.9]),
       rules=st.sampled_from(["study", "linear"]))
def test_value_iteration_matches_reference(seed, k, gamma, rules):
    rng = np.random.default_rng(seed)
    layout = random_layout(seed % 50, size=5)
    stack = random_stack(rng, layout, 4)
    # Each policy's own (wrong but distinct) rewards make the first-member rule visible.
    reward_model = stack.reward_model + np.arange(4)[:, None, None, None]
    visits = (stack.support[..., None] >> np.arange(N_A)) & 1
    stack = PolicyStack.from_arrays(layout, stack.q, visits, stack.next_state, reward_model)
    rows = rng.integers(0, 4, size=k)
    if rules == "study":  # a random set of components
        weights = ((int(rng.integers(1, K.N_SETS)) >> np.arange(K.N_COMPONENTS)) & 1).astype(np.float64)
    else:
        weights = rng.normal(size=K.N_COMPONENTS)
    result = plan_on_support(stack, rows, weights, rules, gamma=gamma, tol=1e-12)
    want = reference_value_iteration(stack.empirical_model(rows), layout.cells.ravel(),
                                     reference_set_weights(weights, rules), gamma)
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(result.q), finite)
    np.testing.assert_allclose(result.q[finite], want[finite], rtol=1e-8, atol=1e-8)
    dead = ~finite.any(axis=1)
    np.testing.assert_array_equal(result.actions < 0, dead)
    live = np.flatnonzero(~dead)
    chosen = result.q[live, result.actions[live]]
    np.testing.assert_array_equal(chosen, result.q[live].max(axis=1))


def test_terminal_transitions_are_not_bootstrapped():
    layout = Layout.from_text("S..E\n....\n")
    n_states = layout.n_states
    visits = np.zeros((1, n_states, N_A), dtype=np.int64)
    next_state = np.full((1, n_states, N_A), -1, dtype=np.int32)
    reward_model = np.zeros((1, n_states, N_A, K.N_SETS))
    for s in range(3):  # a chain of right moves into the exit, reward 1 per step (the set {path})
        visits[0, s, K.RIGHT] = 1
        next_state[0, s, K.RIGHT] = s + 1
        reward_model[0, s, K.RIGHT, K.PATH_BIT] = 1.0
    visits[0, 3, K.LEFT] = 1  # a logged move out of the exit cell must never be reached
    next_state[0, 3, K.LEFT] = 2
    reward_model[0, 3, K.LEFT, K.PATH_BIT] = 50.0
    stack = PolicyStack.from_arrays(layout, np.zeros((1, n_states, N_A)), visits, next_state, reward_model)
    result = plan_on_support(stack, [0], "path", gamma=0.5, tol=0.0, max_iters=200)
    assert result.q[2, K.RIGHT] == 1.0
    assert result.q[1, K.RIGHT] == 1.5
    assert result.q[0, K.RIGHT] == 1.75
    assert np.all(result.actions[4:] == -1)
    # The study's rules reward the set {path, gold}, which logged nothing here (not path's reward
    # plus gold's); the linear rules add the single components' rewards.
    assert plan_on_support(stack, [0], "path+gold", gamma=0.5, tol=0.0).q[0, K.RIGHT] == 0.0
    assert plan_on_support(stack, [0], "path+gold", "linear", gamma=0.5, tol=0.0).q[0, K.RIGHT] == 1.75
    with pytest.raises(LeverError, match="gamma"):
        plan_on_support(stack, [0], "path", gamma=1.0)


@pytest.fixture(scope="module")
def grid8_layouts():
    out = []
    for layout_seed in range(3):
        layout = Layout.generate("grid8", seed=layout_seed)
        policies = [train(layout, objective, TrainConfig.from_budget("X1", "grid8", episodes=episodes, seed=seed))
                    for objective in ("path", "gold", "hazard", "lever", "path+gold")
                    for seed, episodes in ((0, 200), (1, 1000))]
        out.append(PreparedLayout.from_policies(layout, policies))
    return out


def test_planning_never_worse_offline_and_sometimes_better(grid8_layouts):
    improved = 0
    compared = 0
    for prepared in grid8_layouts:
        for objective in ("path", "path+hazard", "path+gold", "gold+hazard", "path+gold+hazard+lever"):
            for strategy in (Targeted(), Hybrid(2)):
                for operator in ("sum", "max"):
                    plain = search(prepared, objective, strategy, operator=operator)
                    planned = search(prepared, objective, strategy, operator=operator, plan=True)
                    assert planned.policy_ids == plain.policy_ids
                    assert planned.offline_return >= plain.offline_return
                    compared += 1
                    improved += planned.offline_return > plain.offline_return + 1e-9
    assert compared == 60
    assert improved > 0  # planning recovers value somewhere; otherwise this test proves nothing


@pytest.mark.parametrize("weights, rules", [([1.0, 0.0, 1.0, 0.0], "study"), ([1.0, 1.0, 0.0, 1.0], "study"),
                                            ([1.0, 0.0, 1.0, 0.0], "linear"), ([0.5, 1.0, -1.0, 2.0], "linear")])
def test_planning_with_gamma_zero_is_one_step_greedy(weights, rules):
    # With gamma = 0 value iteration leaves each supported Q(s, a) at the
    # objective's reward r_w(s, a) (set weights · every set's reward):
    # exactly the γ = 0 Q tables sum-composition would use if they had converged.
    rng = np.random.default_rng(5)
    layout = random_layout(5, size=5)
    stack = random_stack(rng, layout, 3)
    weights = np.array(weights)
    set_weights = reference_set_weights(weights, rules)
    result = plan_on_support(stack, [0, 1, 2], weights, rules, gamma=0.0)
    model = stack.empirical_model([0, 1, 2])
    np.testing.assert_array_equal(result.q[model.support], relabel(model.reward_model, set_weights)[model.support])
    immediate = PolicyStack.from_arrays(layout, relabel(stack.reward_model, set_weights),
                                        ((stack.support[..., None] >> np.arange(N_A)) & 1),
                                        stack.next_state, stack.reward_model)
    actions, _ = compose_actions(immediate, [[0, 1, 2]], weights, "max", rules=rules)
    np.testing.assert_array_equal(result.actions, actions[0])
