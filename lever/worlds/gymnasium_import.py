"""Reading a deterministic gymnasium (or MO-Gymnasium) env into tables: the toy-text ``P`` or a search of snapshots.

:func:`enumerate_env` returns the arrays of a :class:`~lever.worlds.tabular.TabularWorld`
(which :meth:`TabularWorld.from_gymnasium` builds). Two ways in:

- the env has a toy-text ``P`` table (FrozenLake, CliffWalking, Taxi):
  it is read directly, and refused unless every entry is one transition
  with probability 1; the starts are the support of
  ``initial_state_distrib`` (it must be uniform);
- otherwise the reachable states are enumerated breadth-first from the
  observations of ``resets`` seeded resets. Each state keeps a *snapshot*
  of ``env.unwrapped.__dict__`` (arrays and containers copied, the rest
  shared: ``copy.deepcopy`` of an MO-Gymnasium env would reset its
  episode, and some attributes, such as a pygame font, cannot be copied);
  every (state, action) is stepped from its snapshot under ``checks``
  reseeded ``np_random`` generators, and an env whose outcomes differ is
  refused in one line that names the first such (state, action).

Only the states actually reached are indexed (declared observation spaces
are looser). A terminal observation is a state whose every action stays
put, pays 0 and terminates. The step cap is the argument, else the env's
``TimeLimit``, else :data:`DEFAULT_MAX_STEPS`. Observations are keyed by
:func:`observation_key`. An env whose observation does not determine its
state (hidden state) cannot be read correctly this way: lever trusts the
observation to be the state.
"""

from __future__ import annotations

import importlib
import numbers
from collections import deque
from typing import Any, Mapping, NamedTuple

import gymnasium
import numpy as np

from ..errors import LeverError
from .snapshots import Snapshots, Watched

#: States enumerated at most by default (four-room has 593,920); raise it with ``max_states``.
DEFAULT_MAX_STATES = 1_000_000
#: Step cap of a world whose env has no TimeLimit (CliffWalking, fruit-tree): gymnasium's usual toy-text cap.
DEFAULT_MAX_STEPS = 200
#: Reseeded generators each (state, action) is stepped under to check that the env is deterministic.
DEFAULT_CHECKS = 3
#: Seeded resets whose observations give the start states (toy-text envs read theirs from the table).
DEFAULT_RESETS = 16


class Enumerated(NamedTuple):
    """The arrays and names of a tabular world read from an env (see :class:`~lever.worlds.tabular.TabularWorld`)."""

    next_state: np.ndarray
    reward: np.ndarray
    terminates: np.ndarray
    starts: np.ndarray
    max_steps: int
    component_names: tuple[str, ...]
    keys: tuple
    name: str


def observation_key(obs: Any):
    """The key of an observation: an int for an integer scalar, else a flat tuple of ints.

    Arrays (Box, MultiDiscrete, MultiBinary) are flattened in C order,
    Tuple observations in order and Dict observations in key order, each
    part flattened in turn. A value that is not an integer (3.5) is a
    LeverError: lever keys discrete observations only.
    """
    if isinstance(obs, np.ndarray) and obs.dtype.kind in "iub":  # the common case, fast
        return int(obs) if obs.ndim == 0 else tuple(obs.ravel().tolist())
    if isinstance(obs, (int, np.integer)) and not isinstance(obs, bool):
        return int(obs)
    flat: list[int] = []
    _flatten(obs, flat)
    scalar = isinstance(obs, (numbers.Real, np.number, np.bool_)) or (isinstance(obs, np.ndarray) and obs.ndim == 0)
    return flat[0] if scalar else tuple(flat)


def _flatten(obs: Any, out: list[int]) -> None:
    if isinstance(obs, Mapping):
        for key in sorted(obs):
            _flatten(obs[key], out)
    elif isinstance(obs, (tuple, list)):
        for part in obs:
            _flatten(part, out)
    else:
        array = np.asarray(obs)
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise LeverError(f"cannot key an observation of type {type(obs).__name__}")
        values = array.ravel()
        if np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating):
            if not np.all(np.isfinite(values)) or not np.all(values == np.round(values.real)):
                raise LeverError(f"observation {obs!r} is not integer: lever keys discrete observations only")
            values = values.real
        out.extend(int(v) for v in values)


def make_env(env_or_id, env_kwargs: dict | None = None) -> gymnasium.Env:
    """An env from an instance or an id (``"FrozenLake-v1"``, ``"module:Env-v0"``); MO-Gymnasium's ids
    are found when mo-gymnasium is installed."""
    if not isinstance(env_or_id, str):
        if env_kwargs:
            raise LeverError("env_kwargs apply to an env id, not to an env instance")
        if not isinstance(getattr(env_or_id, "unwrapped", None), gymnasium.Env):
            raise LeverError(f"expected a gymnasium env or an env id, got {type(env_or_id).__name__}")
        return env_or_id
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise LeverError(f"env_kwargs must be a dict, got {type(env_kwargs).__name__}")
    if ":" not in env_or_id and env_or_id not in gymnasium.registry:
        try:
            importlib.import_module("mo_gymnasium")  # registers its envs
        except ImportError:
            pass
    try:
        return gymnasium.make(env_or_id, disable_env_checker=True, **(env_kwargs or {}))
    except (gymnasium.error.Error, ModuleNotFoundError, ImportError, TypeError) as exc:
        raise LeverError(f"cannot make env {env_or_id!r}: {exc}") from None


def reward_dimension(env: gymnasium.Env) -> int:
    """d: the length of an MO env's reward vector (``reward_space``), 1 for a scalar env."""
    space = getattr(env.unwrapped, "reward_space", None)
    if space is None:
        return 1
    shape = getattr(space, "shape", None)
    if not shape or len(shape) != 1 or shape[0] < 1:
        raise LeverError(f"reward_space must be one-dimensional, got shape {shape}")
    return int(shape[0])


def enumerate_env(env_or_id, *, max_states: int | None = None, max_steps: int | None = None,
                  env_kwargs: dict | None = None, checks: int = DEFAULT_CHECKS,
                  resets: int = DEFAULT_RESETS, read_table: bool = True) -> Enumerated:
    """Read a deterministic discrete env into tables (module docstring).

    env_or_id: an env or an id for ``gymnasium.make`` (with ``env_kwargs``);
    max_states: cap on the states indexed (default
    :data:`DEFAULT_MAX_STATES`), a LeverError past it; max_steps: the step
    cap (default: the env's TimeLimit, else :data:`DEFAULT_MAX_STEPS`);
    read_table: False searches snapshots even where a ``P`` table exists.
    LeverError, in one line, for a stochastic env, an action space that is
    not Discrete (at most 8 actions) or an observation that is not integer.
    """
    max_states = DEFAULT_MAX_STATES if max_states is None else max_states
    for name, value, low in (("max_states", max_states, 1), ("checks", checks, 1), ("resets", resets, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise LeverError(f"{name} must be an integer >= {low}, got {value!r}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):
        raise LeverError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    env = make_env(env_or_id, env_kwargs)
    name = env_or_id if isinstance(env_or_id, str) else (env.spec.id if env.spec else type(env.unwrapped).__name__)
    space = env.unwrapped.action_space
    if not isinstance(space, gymnasium.spaces.Discrete) or not 1 <= int(space.n) <= 8:
        raise LeverError(f"{name}: lever needs a Discrete action space of 1..8 actions, got {space}")
    n_actions, start_action = int(space.n), int(space.start)
    d = reward_dimension(env)
    names = ("reward",) if getattr(env.unwrapped, "reward_space", None) is None else tuple(f"r{i}" for i in range(d))
    if max_steps is None:
        max_steps = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else None
    table = getattr(env.unwrapped, "P", None)
    if read_table and isinstance(table, dict) and table:
        found = _read_toy_text(env, name, table, n_actions, max_states)
    else:
        found = _search(env, name, n_actions, start_action, d, max_states, checks, resets)
    next_state, reward, terminates, starts, keys = found
    return Enumerated(next_state, reward, terminates, starts, int(max_steps or DEFAULT_MAX_STEPS), names, keys,
                      name)


# -- toy text --------------------------------------------------------------------------------

def _read_toy_text(env, name: str, table: dict, n_actions: int, max_states: int):
    """Tables from a toy-text ``P``: BFS over its deterministic entries from the start distribution."""
    isd = np.asarray(getattr(env.unwrapped, "initial_state_distrib", []), dtype=np.float64).ravel()
    if isd.size == 0:
        raise LeverError(f"{name}: has a P table but no initial_state_distrib to start from")
    support = np.flatnonzero(isd > 0)
    if not np.allclose(isd[support], isd[support[0]]):
        raise LeverError(f"{name}: its start distribution is not uniform over its starts; lever draws starts uniformly")

    def outcome(s: int, a: int):
        entries = table.get(s, {}).get(a) if isinstance(table.get(s), dict) else None
        if not entries:
            raise LeverError(f"{name}: P has no entry for state {s}, action {a}")
        distinct = {(int(nxt), float(r), bool(done)) for p, nxt, r, done in entries if p > 0}
        if len(distinct) != 1:
            raise LeverError(f"{name} is stochastic: state {s}, action {a} has {len(distinct)} possible "
                             f"outcomes in P; lever needs a deterministic env")
        return distinct.pop()

    keys = [int(s) for s in support]
    index = {k: i for i, k in enumerate(keys)}
    rows: list[list[tuple[int, float, bool]] | None] = []
    queue = deque(keys)
    expand = set(keys)
    while queue:
        s = queue.popleft()
        row = []
        for a in range(n_actions):
            nxt, r, done = outcome(s, a)
            if nxt not in index:
                if len(index) >= max_states:
                    raise LeverError(f"{name}: more than {max_states:,} states; raise max_states")
                index[nxt] = len(keys)
                keys.append(nxt)
            if not done and nxt not in expand:
                expand.add(nxt)
                queue.append(nxt)
            row.append((index[nxt], r, done))
        rows.append((index[s], row))
    n_states = len(keys)
    next_state = np.repeat(np.arange(n_states, dtype=np.int32)[:, None], n_actions, axis=1)
    reward = np.zeros((n_states, n_actions, 1))
    terminates = np.ones((n_states, n_actions), dtype=bool)
    for s, row in rows:
        for a, (nxt, r, done) in enumerate(row):
            next_state[s, a], reward[s, a, 0], terminates[s, a] = nxt, r, done
    return next_state, reward, terminates, np.arange(support.size, dtype=np.int64), tuple(keys)


# -- search over snapshots -------------------------------------------------------------------

def _search(env, name: str, n_actions: int, start_action: int, d: int, max_states: int, checks: int, resets: int):
    """Tables by breadth-first search over snapshots of the env, each step checked under reseeded generators."""
    unwrapped = env.unwrapped
    snapshots = Snapshots(unwrapped)
    keys: list = []
    index: dict = {}
    saved: dict[int, dict] = {}
    for seed in range(resets):
        obs, _ = unwrapped.reset(seed=seed)
        key = observation_key(obs)
        if key not in index:
            index[key] = len(keys)
            keys.append(key)
            saved[index[key]] = snapshots.take()
    starts = np.arange(len(keys), dtype=np.int64)
    generators = [Watched(np.random.default_rng([trial, 1])) for trial in range(checks)]
    next_state: list[list[int]] = []
    rewards: list[list[np.ndarray]] = []
    terminal: list[list[bool]] = []
    expanded: dict[int, int] = {}
    queue = deque(starts.tolist())
    while queue:
        s = queue.popleft()
        snapshot = saved.pop(s)
        expanded[s] = len(next_state)
        row_next, row_reward, row_done = [], [], []
        for a in range(n_actions):
            first = None
            for trial in range(checks):
                rng = generators[trial]  # each trial its own stream, continued from pair to pair
                rng.touched = False
                snapshots.restore(snapshot, rng)
                obs, r, terminated, _, _ = unwrapped.step(a + start_action)
                seen = (observation_key(obs), np.asarray(r, dtype=np.float64).reshape(-1), bool(terminated))
                if seen[1].shape != (d,):
                    raise LeverError(f"{name}: reward of shape {seen[1].shape}, expected ({d},)")
                if first is None:
                    first = seen
                    after = snapshots.take() if not seen[2] and seen[0] not in index else None
                elif seen[0] != first[0] or seen[2] != first[2] or not np.array_equal(seen[1], first[1]):
                    raise LeverError(f"{name} is stochastic: state {keys[s]!r}, action {a} gave different "
                                     f"outcomes under reseeded generators; lever needs a deterministic env")
                if not rng.touched and unwrapped.np_random is rng:
                    break  # the step drew nothing from the env's generator: reseeding cannot change it
            key, r, done = first
            if key not in index:
                if len(keys) >= max_states:
                    raise LeverError(f"{name}: more than {max_states:,} reachable states; raise max_states")
                index[key] = len(keys)
                keys.append(key)
                if after is not None:
                    saved[index[key]] = after
                    queue.append(index[key])
            elif not done and index[key] not in expanded and index[key] not in saved:
                # reached before only by terminating transitions: expand it from this snapshot
                snapshots.restore(snapshot, generators[0])
                unwrapped.step(a + start_action)
                saved[index[key]] = snapshots.take()
                queue.append(index[key])
            row_next.append(index[key])
            row_reward.append(r.tolist())
            row_done.append(done)
        next_state.append(row_next)
        rewards.append(row_reward)
        terminal.append(row_done)
    n_states = len(keys)
    out_next = np.repeat(np.arange(n_states, dtype=np.int32)[:, None], n_actions, axis=1)
    out_reward = np.zeros((n_states, n_actions, d))
    out_done = np.ones((n_states, n_actions), dtype=bool)
    rows = np.fromiter(expanded.keys(), dtype=np.int64, count=len(expanded))
    order = np.fromiter(expanded.values(), dtype=np.int64, count=len(expanded))
    if rows.size:
        out_next[rows] = np.asarray(next_state, dtype=np.int32)[order]
        out_reward[rows] = np.asarray(rewards, dtype=np.float64)[order]
        out_done[rows] = np.asarray(terminal, dtype=bool)[order]
    return out_next, out_reward, out_done, starts, tuple(keys)
