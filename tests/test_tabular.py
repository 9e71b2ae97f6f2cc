"""The tabular world: reading gymnasium envs into tables, refusing stochastic ones, and lever end to end on them.

The kernels of :mod:`lever.kernels.table` and :mod:`lever.kernels.table_compose`
are checked against the slow Python versions below on random worlds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings, strategies as st

import lever
from lever.compose import Composer, PolicyStack
from lever.errors import FileFormatError, LeverError
from lever.kernels.compose import OP_MAX, OP_SUM
from lever.kernels.table import Table, rollout_table, successor_features_table, value_iteration_table
from lever.kernels.table_compose import compose_any_batch_serial, offline_rollout_table_batch_serial, plan_table
from lever.worlds.gymnasium_import import observation_key
from lever.worlds.objectives import Objective

warnings.filterwarnings("ignore", module="gymnasium")


# -- a tiny multi-objective env, defined here --------------------------------------------------

class TinyMO(gymnasium.Env):
    """A 2×3 grid of (row, col) observations, 3 actions (right, down, stay), 2 rewards; (1, 2) ends it."""

    def __init__(self):
        self.observation_space = spaces.MultiDiscrete([2, 3])
        self.action_space = spaces.Discrete(3)
        self.reward_space = spaces.Box(-1.0, 5.0, (2,))
        self.pos = np.array([0, 0])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = np.array([0, 0])
        return self.pos.copy(), {}

    def step(self, action):
        if action == 0:
            self.pos[1] = min(2, self.pos[1] + 1)
        elif action == 1:
            self.pos[0] = min(1, self.pos[0] + 1)
        done = bool(self.pos[0] == 1 and self.pos[1] == 2)
        reward = np.array([5.0 if done else 0.0, -1.0], dtype=np.float32)
        return self.pos.copy(), reward, done, False, {}


def tiny_tables():
    """TinyMO's tables written by hand, in the order a breadth-first search from the start meets the states."""
    keys = [(0, 0), (0, 1), (1, 0), (0, 2), (1, 1), (1, 2)]
    index = {k: i for i, k in enumerate(keys)}
    nxt = np.zeros((6, 3), dtype=np.int32)
    reward = np.zeros((6, 3, 2))
    done = np.zeros((6, 3), dtype=bool)
    for (r, c), s in index.items():
        if (r, c) == (1, 2):
            nxt[s] = s
            done[s] = True
            continue
        for a, (r2, c2) in enumerate(((r, min(2, c + 1)), (min(1, r + 1), c), (r, c))):
            nxt[s, a] = index[(r2, c2)]
            done[s, a] = (r2, c2) == (1, 2)
            reward[s, a] = (5.0 if done[s, a] else 0.0, -1.0)
    return keys, nxt, reward, done


def test_a_hand_made_mo_env_is_read_into_its_tables():
    world = lever.TabularWorld.from_gymnasium(TinyMO(), max_steps=10)
    keys, nxt, reward, done = tiny_tables()
    assert world.keys == tuple(keys)
    np.testing.assert_array_equal(world.next_state, nxt)
    np.testing.assert_array_equal(world.reward, reward)
    np.testing.assert_array_equal(world.terminates, done)
    assert world.starts.tolist() == [0] and world.max_steps == 10 and world.component_names == ("r0", "r1")
    assert world.terminal_states.tolist() == [5]
    assert world.index(np.array([1, 1])) == 4
    with pytest.raises(LeverError, match="not a state"):
        world.index(np.array([7, 7]))


def test_frozenlake_read_from_p_and_by_search_agree_with_the_map():
    kwargs = {"is_slippery": False}
    from_p = lever.TabularWorld.from_gymnasium("FrozenLake-v1", env_kwargs=kwargs)
    searched = lever.TabularWorld.from_gymnasium("FrozenLake-v1", env_kwargs=kwargs, read_table=False)
    for name in ("next_state", "reward", "terminates", "starts"):
        np.testing.assert_array_equal(getattr(from_p, name), getattr(searched, name))
    assert from_p.keys == searched.keys and from_p.id == searched.id
    # The 4x4 map by hand: SFFF / FHFH / FFFH / HFFG; actions left, down, right, up; holes and goal end it.
    rows = ["SFFF", "FHFH", "FFFH", "HFFG"]
    assert from_p.n_states == 16 and len(from_p.terminal_states) == 5 and from_p.max_steps == 100
    for s_key in range(16):
        r, c = divmod(s_key, 4)
        if rows[r][c] in "HG":
            continue
        s = from_p.index(s_key)
        for a, (dr, dc) in enumerate(((0, -1), (1, 0), (0, 1), (-1, 0))):
            r2, c2 = min(3, max(0, r + dr)), min(3, max(0, c + dc))
            assert from_p.keys[from_p.next_state[s, a]] == r2 * 4 + c2
            assert from_p.terminates[s, a] == (rows[r2][c2] in "HG")
            assert from_p.reward[s, a, 0] == (1.0 if rows[r2][c2] == "G" else 0.0)


def test_deep_sea_treasure_facts():
    world = lever.TabularWorld.from_gymnasium("deep-sea-treasure-v0")
    assert (world.n_states - len(world.terminal_states), len(world.terminal_states)) == (62, 10)
    assert (world.n_actions, world.n_components, world.max_steps) == (4, 2, 100)
    assert world.keys[world.start] == (0, 0)
    acting = ~np.isin(np.arange(world.n_states), world.terminal_states)
    ending = world.terminates & acting[:, None]
    treasures = sorted({round(x, 4) for x in world.reward[ending][:, 0].tolist()})
    assert treasures == [0.7, 8.2, 11.5, 14.0, 15.1, 16.1, 19.6, 20.3, 22.4, 23.7]
    assert np.all(world.reward[acting][..., 1] == -1.0)  # time: -1 per step


def test_fruit_tree_and_mirrored_dst_sizes():
    tree = lever.TabularWorld.from_gymnasium("fruit-tree-v0")
    assert (tree.n_states - len(tree.terminal_states), tree.n_components, tree.n_actions) == (63, 6, 2)
    mirrored = lever.TabularWorld.from_gymnasium("deep-sea-treasure-mirrored-v0")
    assert mirrored.n_states - len(mirrored.terminal_states) == 112


def test_taxi_has_its_300_starts_and_cliffwalking_the_default_cap():
    taxi = lever.TabularWorld.from_gymnasium("Taxi-v4")
    assert taxi.starts.size == 300 and taxi.n_actions == 6
    cliff = lever.TabularWorld.from_gymnasium("CliffWalking-v1")
    assert cliff.max_steps == 200  # no TimeLimit: lever's documented default
    assert cliff.reward.min() == -100.0


@pytest.mark.parametrize("env_id, kwargs, where", [
    ("FrozenLake-v1", None, "state 0, action 0"),
    ("resource-gathering-v0", None, "state"),
])
def test_stochastic_envs_are_refused_in_one_line(env_id, kwargs, where):
    with pytest.raises(LeverError) as caught:
        lever.TabularWorld.from_gymnasium(env_id, env_kwargs=kwargs)
    message = str(caught.value)
    assert "stochastic" in message and where in message and "\n" not in message


def test_max_states_caps_the_search():
    with pytest.raises(LeverError, match="more than 100 reachable states"):
        lever.TabularWorld.from_gymnasium("four-room-v0", max_states=100)


def test_observation_keys():
    assert observation_key(np.int64(3)) == 3 and observation_key(4) == 4
    assert observation_key(np.array([[1, 2], [3, 4]])) == (1, 2, 3, 4)
    assert observation_key((1, np.array([2.0, 3.0]))) == (1, 2, 3)
    assert observation_key({"b": 2, "a": np.array([1])}) == (1, 2)
    with pytest.raises(LeverError, match="not integer"):
        observation_key(np.array([0.5]))


def test_world_files_round_trip_and_refuse_tampering(tmp_path):
    world = lever.TabularWorld.from_gymnasium(TinyMO())
    path = world.save(tmp_path / "w.npz")
    loaded = lever.TabularWorld.load(path)
    assert loaded.id == world.id and loaded.keys == world.keys and loaded.component_names == world.component_names
    arrays = dict(np.load(path))
    arrays["reward"] = arrays["reward"] + 1
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FileFormatError, match="modified"):
        lever.TabularWorld.load(tmp_path / "bad.npz")


def test_bad_worlds_are_refused():
    keys, nxt, reward, done = tiny_tables()
    with pytest.raises(LeverError, match="next_state entries"):
        lever.TabularWorld(nxt + 10, reward, done, [0], 10, ("a", "b"), keys)
    with pytest.raises(LeverError, match="component_names"):
        lever.TabularWorld(nxt, reward, done, [0], 10, ("a",), keys)
    with pytest.raises(LeverError, match="repeat"):
        lever.TabularWorld(nxt, reward, done, [0], 10, ("a", "b"), [0] * 6)
    with pytest.raises(LeverError, match="2 weights"):
        Objective.parse([1.0, 0.0, 0.0], ("a", "b"))


# -- kernels against Python references -----------------------------------------------------------

def random_world(seed: int, n_states: int, n_actions: int, d: int):
    rng = np.random.default_rng(seed)
    nxt = rng.integers(0, n_states, (n_states, n_actions)).astype(np.int32)
    reward = rng.normal(size=(n_states, n_actions, d)).round(2)
    done = rng.random((n_states, n_actions)) < 0.15
    return Table(nxt, reward, done), rng


def ref_rollout(table, start, actions, max_steps, gamma):
    vec = np.zeros(table.reward.shape[2])
    disc = np.zeros_like(vec)
    s, t, g = start, 0, 1.0
    while t < max_steps:
        a = actions[s]
        if a < 0:
            return vec, disc, t, 3
        vec = vec + table.reward[s, a]
        disc = disc + g * table.reward[s, a]
        done, s = table.terminates[s, a], table.next_state[s, a]
        t, g = t + 1, g * gamma
        if done:
            return vec, disc, t, 4
    return vec, disc, t, 0


def ref_value_iteration(table, w, gamma, tol, max_iters):
    q = np.zeros(table.next_state.shape)
    for sweep in range(1, max_iters + 1):
        delta = 0.0
        for s in range(q.shape[0]):
            for a in range(q.shape[1]):
                target = sum(w[f] * table.reward[s, a, f] for f in range(len(w)))
                if not table.terminates[s, a]:
                    target += gamma * max(q[table.next_state[s, a]])
                delta = max(delta, abs(target - q[s, a]))
                q[s, a] = target
        if delta <= tol:
            return q, sweep
    return q, max_iters


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_states=st.integers(1, 12), n_actions=st.integers(1, 8), d=st.integers(1, 3),
       gamma=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_rollout_and_successor_features_match_the_reference(seed, n_states, n_actions, d, gamma):
    table, rng = random_world(seed, n_states, n_actions, d)
    actions = rng.integers(-1, n_actions, (3, n_states)).astype(np.int32)
    actions[actions < 0] = np.where(rng.random((actions < 0).sum()) < 0.5, -1, 0)
    max_steps = int(rng.integers(1, 40))
    for p in range(3):
        vec, disc, path = np.zeros(d), np.zeros(d), np.empty(max_steps + 1, dtype=np.int32)
        steps, end = rollout_table(table, 0, actions[p], max_steps, gamma, vec, disc, path)
        want = ref_rollout(table, 0, actions[p], max_steps, gamma)
        np.testing.assert_allclose(vec, want[0], atol=1e-9)
        np.testing.assert_allclose(disc, want[1], atol=1e-9)
        assert (steps, end) == want[2:]
    starts = np.arange(min(n_states, 3), dtype=np.int64)
    for skip in (False, True):
        psi = np.empty((3, starts.size, d))
        steps = np.empty((3, starts.size), dtype=np.int32)
        ends = np.empty((3, starts.size), dtype=np.int8)
        successor_features_table(table, actions, starts, max_steps, gamma, skip, psi, steps, ends)
        for p in range(3):
            for k, s in enumerate(starts):
                want = ref_rollout(table, s, actions[p], max_steps, gamma)
                np.testing.assert_allclose(psi[p, k], want[1], rtol=1e-9, atol=1e-9)
                assert (steps[p, k], ends[p, k]) == want[2:]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n_states=st.integers(1, 10), n_actions=st.integers(1, 6),
       gamma=st.sampled_from([0.0, 0.5, 0.9]))
def test_value_iteration_matches_the_reference(seed, n_states, n_actions, gamma):
    table, rng = random_world(seed, n_states, n_actions, 2)
    w = rng.normal(size=2)
    q = np.empty((n_states, n_actions))
    sweeps = value_iteration_table(table, w, gamma, 1e-9, 500, q)
    want, want_sweeps = ref_value_iteration(table, w, gamma, 1e-9, 500)
    np.testing.assert_allclose(q, want, atol=1e-9)
    assert sweeps == want_sweeps


def ref_train(world, w, episodes, max_steps, alpha, gamma, eps0, decay, eps_min, sarsa, seed):
    """Tabular SARSA / Q-learning drawing from the same generator as the kernel, in plain Python."""
    rng = np.random.default_rng(seed)
    S, A, d = world.reward.shape
    q = np.zeros((S, A))
    visits = np.zeros((S, A), dtype=np.int64)

    def greedy(s):
        return int(np.argmax(q[s]))

    def act(s, eps):
        return int(rng.integers(0, A)) if rng.random() < eps else greedy(s)

    eps = eps0
    returns = []
    for _ in range(episodes):
        s = int(world.starts[0]) if world.starts.size == 1 else int(world.starts[rng.integers(0, world.starts.size)])
        a = act(s, eps)
        total = 0.0
        for _ in range(max_steps):
            nxt, done = int(world.next_state[s, a]), bool(world.terminates[s, a])
            r = sum(w[f] * world.reward[s, a, f] for f in range(d))
            total += r
            visits[s, a] += 1
            a2 = act(nxt, eps)
            b = a2 if sarsa else greedy(nxt)
            target = r + (0.0 if done else gamma * q[nxt, b])
            q[s, a] += alpha * (target - q[s, a])
            if done:
                break
            s, a = nxt, a2
        returns.append(total)
        eps = max(eps_min, eps * decay)
    return q, visits, np.array(returns)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), sarsa=st.booleans(), many_starts=st.booleans())
def test_training_matches_the_reference_bit_for_bit(seed, sarsa, many_starts):
    table, rng = random_world(seed, 8, 3, 2)
    keys = list(range(8))
    world = lever.TabularWorld(table.next_state, table.reward, table.terminates, [0, 3] if many_starts else [0],
                               15, ("a", "b"), keys)
    config = lever.TrainConfig(episodes=60, algorithm="sarsa" if sarsa else "q_learning", gamma=0.9,
                               epsilon_decay=0.97, seed=seed, snapshot_interval=0)
    policy = lever.train(world, [0.7, 0.3], config)
    q, visits, returns = ref_train(world, [0.7, 0.3], 60, 15, 0.1, 0.9, 1.0, 0.97, 0.01, sarsa, seed)
    np.testing.assert_array_equal(policy.q, q)
    np.testing.assert_array_equal(policy.visits, visits)
    np.testing.assert_array_equal(policy.episode_returns, returns)


def ref_compose(values, support, combo, operator):
    S, A = values.shape[1:]
    out = []
    for s in range(S):
        union = 0
        for p in combo:
            union |= int(support[p, s])
        best, best_value = -1, -np.inf
        for a in range(A):
            if not (union >> a) & 1:
                continue
            v = sum(values[p, s, a] for p in combo) if operator == OP_SUM else max(values[p, s, a] for p in combo)
            if best < 0 or v > best_value:
                best, best_value = a, v
        out.append(best)
    return out


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n_actions=st.integers(1, 8), operator=st.sampled_from([OP_SUM, OP_MAX]))
def test_compose_offline_and_plan_kernels_match_the_reference(seed, n_actions, operator):
    table, rng = random_world(seed, 9, n_actions, 2)
    P = 3
    visits = (rng.random((P, 9, n_actions)) < 0.6).astype(np.int64)
    support = np.zeros((P, 9), dtype=np.uint8)
    for a in range(n_actions):
        support |= (visits[..., a].astype(np.uint8) << a)
    values = rng.normal(size=(P, 9, n_actions))
    combos = np.array([[0, 1], [2, 0], [1, 2]], dtype=np.int64)
    actions = np.empty((3, 9), dtype=np.int32)
    covered = np.empty(3, dtype=np.int64)
    compose_any_batch_serial(values, support, combos, np.ones((3, 2)), operator, actions, covered)
    for b in range(3):
        assert actions[b].tolist() == ref_compose(values, support, combos[b], operator)
        assert covered[b] == int((visits[combos[b]].sum(axis=0) > 0).sum())
    next_state = np.where(visits > 0, table.next_state[None], -1).astype(np.int32)
    reward_model = np.where(visits[..., None] > 0, table.reward[None], 0.0)
    w = np.array([0.4, 0.6])
    returns, vecs = np.empty(3), np.empty((3, 2))
    steps, ends = np.empty(3, dtype=np.int64), np.empty(3, dtype=np.int8)
    offline_rollout_table_batch_serial(combos, actions, support, next_state, reward_model, table.terminates, 0, 25,
                                       w, returns, vecs, steps, ends, np.empty((0, 0), dtype=np.int32))
    for b in range(3):
        # Composed actions are supported (or -1), and every logged pair is the world's: the offline
        # rollout is the true one.
        vec, _, t, end = ref_rollout(table, 0, actions[b], 25, 1.0)
        np.testing.assert_allclose(vecs[b], vec, atol=1e-9)
        assert (steps[b], ends[b]) == (t, end) and returns[b] == pytest.approx(w @ vec)
    q_out = np.empty((9, n_actions))
    planned = np.empty(9, dtype=np.int32)
    plan_table(combos[0], support, next_state, reward_model, table.terminates, w, 0.8, 1e-10, 2000, q_out, planned)
    union = visits[combos[0]].sum(axis=0) > 0
    q = np.where(union, 0.0, -np.inf)
    for _ in range(2000):
        old = q.copy()
        for s in range(9):
            for a in range(n_actions):
                if not union[s, a]:
                    continue
                target = w @ table.reward[s, a]
                best = q[table.next_state[s, a]].max()
                if not table.terminates[s, a] and best > -np.inf:
                    target += 0.8 * best
                q[s, a] = target
        if np.abs(np.where(union, q, 0.0) - np.where(union, old, 0.0)).max() <= 1e-10:
            break
    np.testing.assert_allclose(np.where(union, q_out, 0.0), np.where(union, q, 0.0), atol=1e-8)


# -- lever end to end on a tabular world -------------------------------------------------------------

@pytest.fixture(scope="module")
def dst_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("dst") / "lib"
    return lever.PolicyLibrary.build(root, env="deep-sea-treasure-v0", episodes=2000, gamma=0.99,
                                     algorithm="q_learning", jobs=1, progress=False)


def test_an_env_library_opens_without_the_env_and_composes_with_every_strategy(dst_library):
    library = lever.PolicyLibrary.open(dst_library.root)
    world = library.layout(library.layout_ids[0])
    assert isinstance(world, lever.TabularWorld) and library.spec.env == "deep-sea-treasure-v0"
    assert [r.objective.weights for r in library.records] == [(1.0, 0.0), (0.0, 1.0)]
    for strategy in ("targeted", "hybrid", "exhaustive", "beam"):
        for operator in ("sum", "max"):
            result = lever.compose(library, [0.5, 0.5], strategy=strategy, operator=operator, plan=True)
            assert len(result.true_return_vector) == 2 and result.true_end in ("terminated", "step_cap",
                                                                              "dead_end")
            truth = lever.rollout(world, result.policy.actions, [0.5, 0.5])
            assert truth.ret == pytest.approx(result.true_return)
    assert [c.policy_id for c in library.index().query("1,0", k=1)] == [0]


def test_planning_on_the_support_reaches_a_treasure(dst_library):
    result = lever.compose(dst_library, "0.9,0.1", operator="max", plan=True)
    assert result.true_end == "terminated" and result.true_return_vector[0] > 0


def test_adding_a_table_to_an_env_library(dst_library, tmp_path):
    world = dst_library.layout(dst_library.layout_ids[0])
    q = world.optimal_q([1.0, 0.0], 0.99)
    record = dst_library.add(q, [1.0, 0.0])
    assert record.source == "added" and record.greedy_return[0] == pytest.approx(23.7, abs=1e-4)


def test_train_and_rollout_on_frozenlake_reach_the_goal():
    world = lever.TabularWorld.from_gymnasium("FrozenLake-v1", env_kwargs={"is_slippery": False})
    config = lever.TrainConfig(episodes=2000, algorithm="q_learning", gamma=0.9, epsilon_decay=0.998,
                               vector_q=True)
    policy = lever.train(world, [1.0], config)
    result = lever.rollout(world, policy, "1", gamma=0.9)
    assert result.end == "terminated" and result.ret == 1.0 and result.steps == 6
    assert result.discounted_return_vector[0] == pytest.approx(0.9 ** 5)
    assert policy.q_vector.shape == (world.n_states, 4, 1)


CORRIDOR = '''
    """A deterministic two-objective corridor of the user's own."""
    import gymnasium
    import numpy as np
    from gymnasium import spaces

    gymnasium.register(id="Corridor-v0", entry_point="user_corridor:Corridor", max_episode_steps=20)


    class Corridor(gymnasium.Env):
        def __init__(self, length=7):
            self.length = length
            self.observation_space = spaces.Discrete(length)
            self.action_space = spaces.Discrete(2)
            self.reward_space = spaces.Box(0.0, 2.0, (2,))
            self.pos = length // 2

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.pos = self.length // 2
            return self.pos, {}

        def step(self, action):
            self.pos += 1 if action == 1 else -1
            reward = np.zeros(2, dtype=np.float32)
            if self.pos == 0:
                reward[0] = 1.0
            elif self.pos == self.length - 1:
                reward[1] = 2.0
            return self.pos, reward, self.pos in (0, self.length - 1), False, {}
'''


def test_a_users_own_env_goes_through_from_gymnasium_library_build_and_compose(tmp_path):
    (tmp_path / "user_corridor.py").write_text(textwrap.dedent(CORRIDOR))
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lever_cli = [sys.executable, "-m", "lever.cli"]
    check = subprocess.run([sys.executable, "-c", "import lever; w = lever.TabularWorld.from_gymnasium("
                            "'user_corridor:Corridor-v0'); print(w.n_states, w.terminal_states.tolist())"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split()[0] == "7"
    build = subprocess.run(lever_cli + ["library", "build", "--env", "user_corridor:Corridor-v0", "--gamma", "0.9",
                                        "--algorithm", "q_learning", "--episodes", "300", "--jobs", "1",
                                        "--no-progress", "--out", str(tmp_path / "lib")],
                           env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    for plan in ([], ["--plan"]):
        composed = subprocess.run(lever_cli + ["compose", str(tmp_path / "lib"), "--objective", "0.3,0.7",
                                               "--operator", "max", "--json", "--repeats", "1"] + plan,
                                  env=env, capture_output=True, text=True, timeout=300)
        assert composed.returncode == 0, composed.stderr
        out = json.loads(composed.stdout)
        # 0.3·1 (left, 3 steps) against 0.7·2 (right, 3 steps): the right end.
        assert out["vector_return"] == [0.0, 2.0] and out["true_end"] == "terminated"
        assert out["discounted_vector_return"] == pytest.approx([0.0, 2.0 * 0.9 ** 2])
    refused = subprocess.run(lever_cli + ["compose", str(tmp_path / "lib"), "--objective", "0.3,0.7,1"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "2 weights" in refused.stderr
