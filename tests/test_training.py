"""Training: the kernel against the plain-Python loop, the logged support, learning, determinism."""

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lever
from lever import Layout, LeverError, Objective, TrainConfig, rollout, train
from lever.kernels import constants as K
from tests.conftest import ROOT
from tests.reference import (
    all_gold, layouts, reference_rollout, reference_step, reference_train, reference_world,
)


@settings(max_examples=12, deadline=None)
@given(layout=layouts(), seed=st.integers(0, 2**32 - 1), sarsa=st.booleans(),
       gamma=st.sampled_from([0.0, 0.9]), task=st.sampled_from(
           [("path", "study"), ("gold", "study"), ("hazard+lever", "study"),
            ("path+gold+hazard+lever", "study"), ("path+gold*0.5+hazard+lever", "linear")]))
def test_kernel_training_equals_the_plain_python_loop_bit_for_bit(layout, seed, sarsa, gamma, task):
    objective, rules = task
    config = TrainConfig(episodes=120, algorithm="sarsa" if sarsa else "q_learning", gamma=gamma,
                         epsilon_decay=0.98, seed=seed, vector_q=True, rules=rules, snapshot_interval=40)
    policy = train(layout, objective, config)
    ref = reference_train(reference_world(layout), policy.objective.set_weights(rules), 120, gamma=gamma,
                          sarsa=sarsa, epsilon_decay=0.98, seed=seed, snapshot_interval=40)
    for name in ("q", "visits", "first_visit", "next_state", "reward_model", "episode_returns"):
        assert np.array_equal(getattr(policy, name), getattr(ref, name)), name
        assert getattr(policy, name).dtype == getattr(ref, name).dtype, name
    assert np.array_equal(policy.q_vector, ref.q_vector)
    assert np.array_equal(policy.snapshot_q, ref.snapshot_q)
    assert policy.snapshot_episodes.tolist() == [0, 40, 80]


@settings(max_examples=12, deadline=None)
@given(layout=layouts(), seed=st.integers(0, 2**32 - 1), sarsa=st.booleans(),
       gamma=st.sampled_from([0.0, 0.99]), task=st.sampled_from(
           [("path", "first-release"), ("gold", "first-release"), ("hazard+lever", "first-release"),
            ("path+gold+hazard+lever", "first-release"), ("path+gold", "study"),
            ("path+gold*0.5+hazard+lever", "linear")]))
def test_the_first_releases_loop_equals_the_plain_python_loop_bit_for_bit(layout, seed, sarsa, gamma, task):
    # fresh_action: a fresh ε-greedy draw every step, Q ← (1−α)Q + α(r + γQ[s′, a′]), no terminal mask.
    objective, rules = task
    config = TrainConfig(episodes=120, algorithm="sarsa" if sarsa else "q_learning", gamma=gamma,
                         epsilon_decay=0.98, seed=seed, vector_q=True, rules=rules, snapshot_interval=40,
                         fresh_action=True)
    policy = train(layout, objective, config)
    ref = reference_train(reference_world(layout), policy.objective.set_weights(rules), 120, gamma=gamma,
                          sarsa=sarsa, epsilon_decay=0.98, seed=seed, snapshot_interval=40, fresh_action=True,
                          first_release=rules == "first-release")
    for name in ("q", "visits", "first_visit", "next_state", "reward_model", "episode_returns"):
        assert np.array_equal(getattr(policy, name), getattr(ref, name)), name
    assert np.array_equal(policy.q_vector, ref.q_vector)
    assert np.array_equal(policy.snapshot_q, ref.snapshot_q)


def test_the_first_releases_loop_is_an_option():
    layout = Layout.generate("first-release-grid16", seed=0)
    config = TrainConfig.from_budget("X1", "first-release-grid16", episodes=200, seed=1)
    assert config.fresh_action and not TrainConfig.from_budget("X1", "grid16").fresh_action
    fresh = train(layout, "path+gold", config)
    reused = train(layout, "path+gold", TrainConfig.from_budget("X1", "first-release-grid16", episodes=200,
                                                                seed=1, fresh_action=False))
    # Twice the draws per step: the two loops part at once, from the same generator.
    assert not np.array_equal(fresh.visits, reused.visits)
    with pytest.raises(LeverError, match="fresh_action must be True or False"):
        TrainConfig(fresh_action=1)
    table = lever.TabularWorld.from_gymnasium("FrozenLake-v1", env_kwargs={"is_slippery": False})
    with pytest.raises(LeverError, match="GridWorld layouts only"):
        train(table, "1", TrainConfig(episodes=10, fresh_action=True))


def test_snapshots_equal_runs_stopped_at_their_episode():
    layout = Layout.generate("grid8", seed=1)
    config = TrainConfig.from_budget("X1", "grid8", episodes=3000, seed=4)
    policy = train(layout, "path+gold", config)
    assert policy.snapshot_episodes.tolist() == [0, 1000, 2000]
    assert policy.snapshot_q.shape == (3, layout.n_states, K.N_ACTIONS)
    for i, episode in enumerate(policy.snapshot_episodes):
        stopped = train(layout, "path+gold", TrainConfig.from_budget(
            "X1", "grid8", episodes=int(episode) + 1, seed=4, snapshot_interval=0))
        snapshot = policy.snapshot(i)
        for name in ("q", "visits", "first_visit", "next_state", "reward_model", "episode_returns"):
            assert np.array_equal(getattr(snapshot, name), getattr(stopped, name)), (episode, name)
    # The final table is the run itself; snapshots grow the support monotonically.
    supports = [(v > 0).sum() for v in policy.snapshot_visits] + [(policy.visits > 0).sum()]
    assert supports == sorted(supports) and supports[0] < supports[-1]
    with pytest.raises(LeverError, match="snapshot 3"):
        policy.snapshot(3)


def test_the_study_defaults():
    config = TrainConfig.from_budget("X1", "grid16")
    assert (config.algorithm, config.alpha, config.gamma, config.epsilon_start, config.epsilon_min) == \
        ("sarsa", 0.1, 0.0, 1.0, 0.01)
    assert (config.episodes, config.epsilon_decay, config.rules, config.snapshot_interval) == \
        (10_000, 0.99954, "study", 1000)
    assert TrainConfig.from_budget("X10", "grid32").episodes == 100_000


@pytest.fixture(scope="module")
def grid16_policy():
    layout = Layout.generate("grid16", seed=3)
    config = TrainConfig.from_budget("X1", "grid16", seed=2, vector_q=True)
    return layout, train(layout, "path+gold+hazard+lever", config)


def test_trained_policy_carries_its_configuration(grid16_policy):
    layout, policy = grid16_policy
    shape = (layout.n_states, K.N_ACTIONS)
    assert policy.q.shape == shape and policy.q.dtype == np.float64
    assert policy.visits.shape == shape and policy.visits.dtype == np.int64
    assert policy.next_state.shape == shape and policy.next_state.dtype == np.int32
    assert policy.reward_model.shape == shape + (K.N_SETS,)
    assert policy.snapshot_q.shape == (10,) + shape and policy.snapshot_episodes[-1] == 9000
    assert policy.q_vector.shape == shape + (K.N_COMPONENTS,)
    assert policy.episode_returns.shape == (10_000,)
    assert policy.wall_time > 0 and policy.layout_id == layout.id
    assert policy.objective == Objective.parse("path+gold+hazard+lever")
    assert policy.config.episodes == 10_000 and policy.config.epsilon_decay == 0.99954
    assert np.array_equal(policy.support, policy.visits > 0)
    assert train(layout, "path", TrainConfig(episodes=5)).q_vector is None


def test_empirical_model_agrees_with_the_true_step(grid16_policy):
    layout, policy = grid16_policy
    world = reference_world(layout)
    visited = policy.visits > 0
    assert np.array_equal(visited, policy.next_state >= 0)
    assert (policy.reward_model[~visited] == 0).all()
    assert visited.sum() > layout.n_states  # a real support, not a handful of pairs
    assert (policy.first_visit >= 0).sum() == visited.sum()
    for state, action in zip(*np.nonzero(visited)):
        recorded = policy.reward_model[state, action]
        fresh = reference_step(world, int(state), int(action), all_gold(world), False)
        lever_on = reference_step(world, int(state), int(action), all_gold(world), True)
        assert policy.next_state[state, action] == fresh.pos
        # Sets without gold and lever do not depend on the episode's history: exact.
        for mask in (K.PATH_BIT, K.HAZARD_BIT, K.PATH_BIT | K.HAZARD_BIT):
            assert recorded[mask] == pytest.approx(fresh.set_rewards[mask], abs=1e-12)
        # lever: the step as seen with the lever still off or already on.
        assert any(recorded[K.LEVER_BIT] == pytest.approx(r.set_rewards[K.LEVER_BIT], abs=1e-12)
                   for r in (fresh, lever_on))
        if fresh.terminated or fresh.pos == state:
            continue
        # gold: the nearest-gold distance moves by at most one, plus +5 when collecting.
        shaping = recorded[K.GOLD_BIT] + K.STEP_COST_GOLD
        allowed = [-1.0, 0.0, 1.0]
        if layout.cells.flat[fresh.pos] == K.GOLD and fresh.pos != state:
            allowed.append(1.0 + K.GOLD_COLLECT_REWARD)
        assert any(shaping == pytest.approx(v, abs=1e-9) for v in allowed)


def test_first_entry_onto_gold_records_the_collection(pocket):
    # The pocket's gold has a single way in, (3, 2) up, so its first visit collects it.
    policy = train(pocket, "path+gold", TrainConfig(episodes=300, seed=1))
    below = 3 * pocket.width + 2
    assert policy.visits[below, K.UP] > 0 and policy.next_state[below, K.UP] == 12
    assert policy.reward_model[below, K.UP, K.GOLD_BIT] == pytest.approx(
        -K.STEP_COST_GOLD + 1 + K.GOLD_COLLECT_REWARD)


@pytest.mark.parametrize("algorithm", ["sarsa", "q_learning"])
def test_open_grid_path_policy_takes_a_shortest_route(open8, algorithm):
    config = TrainConfig.from_budget("X1", "grid8", algorithm=algorithm, seed=4)
    result = rollout(open8, train(open8, "path", config), "path", record_path=True)
    shortest = reference_world(open8).dist_exit[open8.start]
    assert shortest == 14
    assert result.end == "exit" and result.steps == shortest
    assert result.path[0] == open8.start and result.path[-1] == open8.exit


def test_dense_grid_path_policy_reaches_the_exit_without_hazards():
    # Measured: 10 of 10 layout seeds reach the exit hazard-free (all by a shortest route).
    safe = 0
    for seed in range(10):
        layout = Layout.generate("grid16-dense", seed=seed)
        policy = train(layout, "path", TrainConfig.from_budget("X1", "grid16-dense", seed=seed))
        safe += rollout(layout, policy, "path").end == "exit"
    assert safe >= 8


def test_rollout_of_a_trained_policy_matches_the_reference(grid16_policy):
    layout, policy = grid16_policy
    result = rollout(layout, policy, "path+gold+hazard+lever", record_path=True)
    ref = reference_rollout(reference_world(layout), policy.greedy_actions, policy.objective.set_weights())
    assert result.end == ref.end and result.steps == ref.steps
    assert result.path.tolist() == ref.path
    np.testing.assert_allclose(result.set_returns, ref.set_returns, atol=1e-9)
    np.testing.assert_allclose(result.return_vector, [ref.set_returns[1 << c] for c in range(4)], atol=1e-9)
    assert result.ret == pytest.approx(ref.ret)


@pytest.mark.parametrize("algorithm, gamma", [("sarsa", 0.0), ("sarsa", 0.9), ("q_learning", 0.9)])
def test_vector_q_is_linear_in_the_weights(algorithm, gamma):
    layout = Layout.generate("grid8", seed=2)
    objective = Objective.parse("path+gold*0.5+hazard")
    config = TrainConfig.from_budget("X1", "grid8", algorithm=algorithm, gamma=gamma, seed=3,
                                     vector_q=True, rules="linear")
    policy = train(layout, objective, config)
    np.testing.assert_allclose(policy.q_vector @ objective.array, policy.q, rtol=1e-9, atol=1e-9)
    assert np.abs(policy.q).max() > 1


def test_sarsa_and_q_learning_differ_when_values_propagate():
    layout = Layout.generate("grid8", seed=1)
    sarsa = train(layout, "path+gold", TrainConfig(episodes=2000, gamma=0.9, seed=0))
    qlearn = train(layout, "path+gold", TrainConfig(episodes=2000, gamma=0.9, seed=0,
                                                    algorithm="q_learning"))
    assert np.isfinite(sarsa.q).all() and np.isfinite(qlearn.q).all()
    assert not np.array_equal(sarsa.q, qlearn.q)
    # With gamma = 0 nothing is bootstrapped, so the two algorithms coincide.
    same = [train(layout, "path+gold", TrainConfig(episodes=500, seed=0, algorithm=a)).q
            for a in ("sarsa", "q_learning")]
    assert np.array_equal(*same)


def test_same_seed_same_arrays_other_seed_other_arrays():
    layout = Layout.generate("grid8", seed=0)
    a, b, c = (train(layout, "path+lever", TrainConfig(episodes=500, seed=s)) for s in (7, 7, 8))
    for name in ("q", "visits", "next_state", "reward_model", "episode_returns"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.visits, c.visits)


def _fingerprint():
    """sha256 of layout texts and training arrays; the same code runs in a fresh process."""
    digest = {}
    for preset in ("grid8", "grid16", "grid16-dense"):
        for seed in (0, 1):
            digest[f"{preset}/{seed}"] = hashlib.sha256(
                Layout.generate(preset, seed=seed).to_text().encode()).hexdigest()
    layout = Layout.generate("grid16", seed=1)
    for algorithm, gamma in (("sarsa", 0.0), ("q_learning", 0.99)):
        policy = train(layout, "path+gold", TrainConfig(episodes=1500, algorithm=algorithm,
                                                        gamma=gamma, seed=5, vector_q=True))
        for name in ("q", "q_vector", "visits", "next_state", "reward_model", "episode_returns"):
            digest[f"{algorithm}/{name}"] = hashlib.sha256(getattr(policy, name).tobytes()).hexdigest()
    return digest


def test_layouts_and_training_are_identical_in_a_new_process():
    script = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from tests.test_training import _fingerprint
        print(json.dumps(_fingerprint()))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True,
                         text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == _fingerprint()


@pytest.mark.parametrize("kwargs, message", [
    (dict(episodes=0), "episodes"),
    (dict(episodes=2.5), "integer"),
    (dict(algorithm="dqn"), "sarsa, q_learning"),
    (dict(alpha=0.0), "alpha"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(gamma=1.5), "gamma"),
    (dict(gamma=-0.1), "gamma"),
    (dict(epsilon_start=1.2), "epsilon_start"),
    (dict(epsilon_decay=float("nan")), "epsilon_decay"),
    (dict(epsilon_min=-0.1), "epsilon_min"),
    (dict(max_steps=0), "max_steps"),
    (dict(seed=-1), "seed"),
    (dict(gamma="0.5"), "gamma must be a number"),
    (dict(episodes=True), "episodes must be an integer"),
    (dict(rules="additive"), "unknown rules"),
    (dict(snapshot_interval=-1), "snapshot_interval"),
    (dict(vector_q="yes"), "vector_q"),
])
def test_bad_train_config_is_refused(kwargs, message):
    with pytest.raises(LeverError, match=message):
        TrainConfig(**kwargs)


def test_budgets_by_name():
    assert TrainConfig.from_budget("X10", "grid16").episodes == 100_000
    dense = TrainConfig.from_budget("X5", "grid16-dense", gamma=0.99)
    assert (dense.episodes, dense.epsilon_decay, dense.gamma) == (150_000, 0.99997, 0.99)
    with pytest.raises(LeverError, match="X1, X5, X10"):
        TrainConfig.from_budget("X2", "grid16")
    with pytest.raises(LeverError, match="grid16-dense"):
        TrainConfig.from_budget("X1", "grid99")


@pytest.mark.parametrize("objective, message", [
    ("path+speed", "valid components: path, gold, hazard, lever"),
    ("", "valid components"),
    ("path+path", "twice"),
    ("gold*lots", "not a number"),
    ({"speed": 1.0}, "valid components"),
    ([1.0, 0.0, 0.0], "4 weights"),
    ([[1.0, 0.0, 0.0, 0.0]], "one-dimensional"),
    ([1.0, float("nan"), 0.0, 0.0], "finite"),
    ([0.0, 0.0, 0.0, 0.0], "non-zero"),
    ({"path": None}, "not a number"),
    ("path*1e308", "must lie in"),
    ("path*2", "weighted"),  # the study's rules reward sets only
])
def test_bad_objectives_are_refused(objective, message):
    with pytest.raises(LeverError, match=message):
        train(Layout.generate("grid8"), objective, TrainConfig(episodes=1))


def test_objective_spellings():
    assert Objective.parse("gold+path").array.tolist() == [1.0, 1.0, 0.0, 0.0]
    weighted = Objective.parse({"hazard": 2.0, "lever": 0.5})
    assert Objective.parse(weighted.name) == weighted and weighted.name == "hazard*2+lever*0.5"
    assert Objective.parse(np.array([0, 1, 0, 1])).components == ("gold", "lever")


def test_bad_policies_given_to_rollout(grid16_policy):
    layout, policy = grid16_policy
    q = policy.q.copy()
    q[5, 2] = np.nan
    with pytest.raises(LeverError, match="NaN"):
        rollout(layout, q)
    with pytest.raises(LeverError, match="Q table"):
        rollout(layout, policy.q[:-1])
    with pytest.raises(LeverError, match="Q table"):
        rollout(layout, np.zeros((layout.n_states, 5)))
    with pytest.raises(LeverError, match="action table"):
        rollout(layout, np.zeros(layout.n_states + 1, dtype=np.int32))
    with pytest.raises(LeverError, match="-1 \\(dead end\\) or 0..3"):
        rollout(layout, np.full(layout.n_states, 4, dtype=np.int32))
    with pytest.raises(LeverError, match="max_steps"):
        rollout(layout, policy, max_steps=-3)
    actions = np.full(layout.n_states, -1, dtype=np.int32)
    assert rollout(layout, actions).end == "dead_end"
    assert lever.rollout(layout, actions).steps == 0
