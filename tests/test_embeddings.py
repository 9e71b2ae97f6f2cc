"""Successor-feature embeddings against a slow rollout-and-sum, value signatures, ridge regression."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lever import COMPONENTS, GridSpec, Layout, LeverError, Objective, TrainConfig, rollout, train
from lever.embeddings import (
    EmbeddingConfig, RidgeRegressor, behaviour_embeddings, canonical_states, embed_policies,
    free_cells, predicted_returns, value_signatures,
)
from lever.kernels import constants as K
from tests.reference import all_gold, layouts, reference_step, reference_world

ALL_OBJECTIVES = ["+".join(c) for n in range(1, 5) for c in itertools.combinations(COMPONENTS, n)]


def slow_successor_features(layout, actions, states, gamma, cell_kinds):
    """ψ by hand, in plain Python: one loop per (policy, start), stepping the reference world rules.

    φ of a step is the study's reward of every component set (16 entries, indexed
    by mask, entry 0 = 0), then optionally a one-hot of the entered cell's kind.
    Every rollout starts fresh: all gold on the floor, the lever off.
    """
    world = reference_world(layout)
    dim = K.N_SETS + (K.N_KINDS if cell_kinds else 0)
    psi = np.zeros((len(actions), len(states), dim))
    steps = np.zeros((len(actions), len(states)), dtype=int)
    ends = [[None] * len(states) for _ in actions]
    for p, table in enumerate(actions):
        for k, start in enumerate(states):
            pos, gold_left, lever_on, t, end = int(start), all_gold(world), False, 0, "step_cap"
            while t < layout.max_steps:
                action = int(table[pos])
                if action < 0:
                    end = "dead_end"
                    break
                result = reference_step(world, pos, action, gold_left, lever_on)
                pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
                for mask, reward in enumerate(result.set_rewards):
                    psi[p, k, mask] += gamma ** t * reward
                if cell_kinds:
                    psi[p, k, K.N_SETS + world.kind(pos)] += gamma ** t
                t += 1
                if result.terminated:
                    end = "hazard" if world.kind(pos) == K.HAZARD else "exit"
                    break
            steps[p, k], ends[p][k] = t, end
    return psi, steps, ends


def slow_greedy(q):
    """Greedy actions by np.argmax (first maximum = lowest index on ties)."""
    return np.array([[int(np.argmax(row)) for row in table] for table in q], dtype=np.int32)


def small_layout(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    free = h * w - 3
    spec = GridSpec(height=h, width=w, n_gold=int(rng.integers(0, min(4, free // 3) + 1)),
                    n_walls=int(rng.integers(0, free // 4 + 1)),
                    n_hazards=int(rng.integers(0, free // 4 + 1)),
                    lever=bool(rng.integers(0, 2)), seed=seed)
    try:
        return Layout.generate(spec)
    except LeverError:
        return Layout.generate(GridSpec(height=h, width=w, n_gold=1, n_walls=0, n_hazards=0, seed=seed))


@pytest.mark.parametrize("seed", range(12))
def test_kernel_matches_slow_rollout_on_random_policies(seed):
    layout = small_layout(seed)
    rng = np.random.default_rng(100 + seed)
    n_policies = 6
    # Small integer Q values make ties common, which exercises the lowest-index tie rule.
    q = rng.integers(0, 3, size=(n_policies, layout.n_states, K.N_ACTIONS)).astype(np.float64)
    if seed % 2:
        q = rng.normal(size=q.shape).astype(np.float32)
    config = EmbeddingConfig(n_states=min(5, len(free_cells(layout))), gamma=[1.0, 0.9, 0.5][seed % 3],
                             cell_kinds=bool(seed % 2), seed=seed)
    states = canonical_states(layout, config.n_states, config.seed)
    fast = embed_policies(layout, q, states, config)
    psi, steps, ends = slow_successor_features(layout, slow_greedy(q), states, config.gamma,
                                               config.cell_kinds)
    np.testing.assert_allclose(fast.psi, psi, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.steps, steps)
    assert [[K.END_NAMES[e] for e in row] for row in fast.ends] == ends


@pytest.mark.parametrize("seed", range(4))
def test_kernel_matches_slow_rollout_on_action_tables_with_dead_ends(seed):
    layout = small_layout(50 + seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(-1, K.N_ACTIONS, size=(5, layout.n_states)).astype(np.int32)
    states = canonical_states(layout, min(4, len(free_cells(layout))), seed)
    config = EmbeddingConfig(n_states=states.size, gamma=0.95, cell_kinds=True)
    fast = embed_policies(layout, actions, states, config)
    psi, steps, ends = slow_successor_features(layout, actions, states, 0.95, True)
    np.testing.assert_allclose(fast.psi, psi, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.steps, steps)
    assert [[K.END_NAMES[e] for e in row] for row in fast.ends] == ends


@settings(max_examples=60, deadline=None)
@given(layout=layouts(), seed=st.integers(0, 2**32 - 1), gamma=st.sampled_from([1.0, 0.9, 0.5]),
       cell_kinds=st.booleans(), dead_ends=st.booleans(), skip_cycles=st.booleans())
def test_kernel_matches_slow_rollout_on_any_layout(layout, seed, gamma, cell_kinds, dead_ends, skip_cycles):
    rng = np.random.default_rng(seed)
    # Small integer Q values make ties common (lowest index wins); -1 entries are dead ends.
    q = rng.integers(0, 3, size=(3, layout.n_states, K.N_ACTIONS)).astype(np.float64)
    actions = slow_greedy(q)
    if dead_ends:
        actions[rng.random(actions.shape) < 0.1] = -1
    n_states = min(4, len(free_cells(layout)))
    config = EmbeddingConfig(n_states=n_states, gamma=gamma, cell_kinds=cell_kinds, seed=seed % 1000)
    states = canonical_states(layout, n_states, config.seed)
    fast = embed_policies(layout, actions if dead_ends else q, states, config, skip_cycles=skip_cycles)
    psi, steps, ends = slow_successor_features(layout, actions, states, gamma, cell_kinds)
    np.testing.assert_allclose(fast.psi, psi, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.steps, steps)
    assert [[K.END_NAMES[e] for e in row] for row in fast.ends] == ends


@pytest.fixture(scope="module")
def trained_grid8():
    layout = Layout.generate("grid8", seed=3)
    config = TrainConfig.from_budget("X1", "grid8", episodes=400)
    policies = [train(layout, objective, config.with_seed(seed))
                for objective in ALL_OBJECTIVES for seed in range(3)]
    return layout, policies


def test_kernel_matches_slow_rollout_on_trained_policies(trained_grid8):
    layout, policies = trained_grid8
    q = np.stack([p.q for p in policies[:10]])
    config = EmbeddingConfig(n_states=8, gamma=0.9, cell_kinds=True, seed=1)
    states = canonical_states(layout, 8, 1)
    fast = embed_policies(layout, q, config=config)
    psi, steps, _ = slow_successor_features(layout, slow_greedy(q), states, 0.9, True)
    np.testing.assert_allclose(fast.psi, psi, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.steps, steps)


@pytest.mark.parametrize("objective, rules", [
    ((1, 0, 0, 0), "study"), ((0, 1, 0, 0), "study"), ((1, 1, 1, 1), "study"),
    ((1, 0, 0, 0), "linear"), ((0, 1, 0, 0), "linear"), ((1, 1, 1, 1), "linear"),
    ((0.5, -2.0, 0.25, 3.0), "linear"),
])
def test_value_signature_dot_weights_is_the_greedy_return(trained_grid8, objective, rules):
    layout, policies = trained_grid8
    rng = np.random.default_rng(7)
    q = np.concatenate([np.stack([p.q for p in policies]),
                        rng.normal(size=(10, layout.n_states, K.N_ACTIONS))])
    signatures = embed_policies(layout, q).value_signatures
    assert signatures.shape == (q.shape[0], K.N_SETS)
    objective = Objective.parse(objective)
    predicted = predicted_returns(signatures, objective, rules)
    for p in range(q.shape[0]):
        truth = rollout(layout, q[p], objective, rules)
        assert predicted[p] == pytest.approx(truth.ret, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(signatures[p], truth.set_returns, rtol=1e-12, atol=1e-9)


def test_value_signatures_predict_every_set_under_both_rules(trained_grid8):
    layout, policies = trained_grid8
    q = np.stack([p.q for p in policies[::4]])
    signatures = embed_policies(layout, q).value_signatures
    for spec in ALL_OBJECTIVES:
        objective = Objective.parse(spec)
        for rules in ("study", "linear"):
            predicted = predicted_returns(signatures, objective, rules)
            truth = [rollout(layout, table, objective, rules).ret for table in q]
            np.testing.assert_allclose(predicted, truth, rtol=1e-12, atol=1e-9)
    # The study's rules are not additive, and the signatures keep them apart: somewhere the
    # return of a set differs from the sum of its parts' returns.
    full = Objective.parse("path+gold+hazard+lever")
    assert not np.allclose(predicted_returns(signatures, full, "study"),
                           predicted_returns(signatures, full, "linear"))
    with pytest.raises(LeverError, match="weighted"):
        predicted_returns(signatures, Objective.parse("path+gold*0.5"))


def test_embedding_shapes_and_layout(trained_grid8):
    layout, policies = trained_grid8
    config = EmbeddingConfig(n_states=6, cell_kinds=True)
    features = embed_policies(layout, np.stack([p.q for p in policies[:3]]), config=config)
    assert features.psi.shape == (3, 6, K.N_SETS + K.N_KINDS)
    assert config.feature_dim == K.N_SETS + K.N_KINDS
    assert EmbeddingConfig().feature_dim == K.N_SETS
    assert config.embedding_dim == 6 * (K.N_SETS + K.N_KINDS)
    np.testing.assert_array_equal(behaviour_embeddings(features.psi)[1], features.psi[1].ravel())
    np.testing.assert_array_equal(value_signatures(features.psi), features.psi[:, 0, :K.N_SETS])
    # The empty set earns nothing.
    np.testing.assert_array_equal(features.psi[:, :, 0], 0.0)
    # Cell-kind counts sum to the number of steps taken.
    np.testing.assert_allclose(features.psi[:, :, K.N_SETS:].sum(axis=2), features.steps)


def test_canonical_states_start_first_distinct_free_and_seeded():
    layout = Layout.generate("grid8", seed=2)
    states = canonical_states(layout, 12, seed=5)
    assert states[0] == layout.start
    assert len(set(states.tolist())) == 12
    assert set(states.tolist()) <= set(free_cells(layout).tolist())
    np.testing.assert_array_equal(states, canonical_states(layout, 12, seed=5))
    assert not np.array_equal(states, canonical_states(layout, 12, seed=6))
    with pytest.raises(LeverError, match="free cells"):
        canonical_states(layout, layout.n_states, seed=0)


def test_bad_policies_are_rejected():
    layout = Layout.generate("grid8", seed=0)
    q = np.zeros((2, layout.n_states, K.N_ACTIONS))
    q[1, 3, 2] = np.nan
    with pytest.raises(LeverError, match="NaN"):
        embed_policies(layout, q)
    with pytest.raises(LeverError, match="shape"):
        embed_policies(layout, np.zeros((2, layout.n_states + 1, K.N_ACTIONS)))
    with pytest.raises(LeverError, match="actions"):
        embed_policies(layout, np.full((1, layout.n_states), 7, dtype=np.int32))
    with pytest.raises(LeverError, match="canonical states"):
        embed_policies(layout, q[:1], states=np.array([layout.n_states]))
    with pytest.raises(LeverError, match="gamma"):
        EmbeddingConfig(gamma=1.5)


# -- ridge regression ------------------------------------------------------------

def test_ridge_beats_the_mean_on_held_out_policies(trained_grid8):
    layout, policies = trained_grid8
    rng = np.random.default_rng(0)
    q = np.concatenate([np.stack([p.q for p in policies]),
                        rng.normal(size=(20, layout.n_states, K.N_ACTIONS))])
    weights = Objective.parse("path+gold+hazard").array
    observed = np.array([rollout(layout, table, weights).ret for table in q])
    config = EmbeddingConfig(n_states=16, seed=3)
    features = embed_policies(layout, q, config=config)
    report = RidgeRegressor(alpha=0.01).held_out_error(features.behaviour, observed, test_fraction=0.3,
                                                       seed=1)
    assert report.n_test == round(0.3 * len(q))
    assert report.beats_mean
    assert report.rmse < 0.5 * report.baseline_rmse, report
    # On the value signatures alone the return is exactly linear, and ridge recovers it.
    exact = RidgeRegressor(alpha=1e-10).held_out_error(features.value_signatures, observed,
                                                       test_fraction=0.3, seed=1)
    assert exact.rmse < 1e-6 * exact.baseline_rmse, exact


def test_ridge_with_no_penalty_is_least_squares():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4)) * [1.0, 10.0, 0.1, 3.0]
    y = X @ [2.0, -1.0, 4.0, 0.5] + 3.0 + rng.normal(scale=0.01, size=50)
    model = RidgeRegressor(alpha=0.0).fit(X, y)
    design = np.column_stack([X, np.ones(50)])
    expected = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-9, atol=1e-9)
    # A penalty shrinks the coefficients.
    shrunk = RidgeRegressor(alpha=100.0).fit(X, y)
    assert np.linalg.norm(shrunk.coef_) < np.linalg.norm(model.coef_)


def test_ridge_rejects_bad_input():
    with pytest.raises(LeverError, match="before fit"):
        RidgeRegressor().predict(np.zeros((2, 2)))
    with pytest.raises(LeverError, match="alpha"):
        RidgeRegressor(alpha=-1)
    with pytest.raises(LeverError, match="targets"):
        RidgeRegressor().fit(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(LeverError, match="NaN"):
        RidgeRegressor().fit(np.array([[np.nan]]), np.zeros(1))
    model = RidgeRegressor().fit(np.ones((3, 2)), np.arange(3.0))
    with pytest.raises(LeverError, match="columns"):
        model.predict(np.ones((1, 3)))
    with pytest.raises(LeverError, match="too few"):
        RidgeRegressor().held_out_error(np.ones((2, 2)), np.zeros(2))


@pytest.mark.parametrize("gamma", [1.0, 0.97, 0.5])
def test_cycle_skipping_equals_stepping_to_the_cap(gamma):
    layout = Layout.generate("grid8", seed=4)
    rng = np.random.default_rng(11)
    # Random tables loop often; gold and the lever on a loop make the first traversal differ.
    q = rng.normal(size=(40, layout.n_states, K.N_ACTIONS))
    config = EmbeddingConfig(n_states=10, gamma=gamma, cell_kinds=True, seed=2)
    skipped = embed_policies(layout, q, config=config)
    stepped = embed_policies(layout, q, config=config, skip_cycles=False)
    assert (skipped.ends == K.END_NAMES.index("step_cap")).sum() > 100  # cycles run to the cap
    np.testing.assert_allclose(skipped.psi, stepped.psi, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(skipped.steps, stepped.steps)
    np.testing.assert_array_equal(skipped.ends, stepped.ends)
    states = canonical_states(layout, 10, 2)
    psi, steps, _ = slow_successor_features(layout, slow_greedy(q[:8]), states, gamma, True)
    np.testing.assert_allclose(stepped.psi[:8], psi, rtol=1e-12, atol=1e-9)
