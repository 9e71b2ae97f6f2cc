"""A deterministic tabular world: next-state, reward-vector and termination tables over keyed observations.

:class:`TabularWorld` is the second kind of world lever runs on, beside the
study's GridWorld. S states, A actions (at most :data:`MAX_ACTIONS`), d
reward components: a step from (s, a) goes to ``next_state[s, a]``, pays
the vector ``reward[s, a]`` (d,) and ends the episode where
``terminates[s, a]``. An episode starts at a state drawn uniformly from
``starts`` and is truncated after ``max_steps`` steps. A state is known by
its *observation key*: an int for a Discrete observation, a flat tuple of
ints otherwise (:func:`observation_key`). An objective is a weight vector
over the d components. Build one by hand, or from any deterministic
gymnasium env with :meth:`TabularWorld.from_gymnasium`
(:mod:`lever.worlds.gymnasium_import`).

The world's terminal observations are states too: every action there
stays put, pays 0 and terminates, so a policy table covers every key the
env can return.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, LeverError
from ..fileio import read_arrays, write_arrays
from ..kernels.table import Table, value_iteration_table
from .gymnasium_import import DEFAULT_CHECKS, DEFAULT_RESETS, enumerate_env, observation_key

#: The support of a policy is a bit mask of one byte per state.
MAX_ACTIONS = 8
WORLD_FORMAT = "lever-tabular-world"
WORLD_VERSION = 1


@dataclass(frozen=True, eq=False)
class TabularWorld:
    """A deterministic tabular world (see the module docstring).

    ``next_state`` int32 (S, A); ``reward`` float64 (S, A, d); ``terminates``
    bool (S, A); ``starts`` int64 (K,) start states, drawn uniformly;
    ``max_steps`` the step cap; ``component_names`` (d,); ``keys`` the
    observation key of each state (S,); ``name`` free text (the env id).
    Constructing one checks every shape, range and value; the arrays are
    then read-only.
    """

    next_state: np.ndarray
    reward: np.ndarray
    terminates: np.ndarray
    starts: np.ndarray
    max_steps: int
    component_names: tuple[str, ...]
    keys: tuple
    name: str = "tabular"

    def __post_init__(self):
        next_state = np.array(self.next_state, dtype=np.int32, order="C")
        reward = np.array(self.reward, dtype=np.float64, order="C")
        terminates = np.array(self.terminates, dtype=bool, order="C")
        starts = np.array(self.starts, dtype=np.int64).ravel()
        if next_state.ndim != 2 or next_state.shape[0] < 1 or not 1 <= next_state.shape[1] <= MAX_ACTIONS:
            raise LeverError(f"next_state must be (S >= 1, A in 1..{MAX_ACTIONS}), got shape {next_state.shape}")
        n_states, n_actions = next_state.shape
        if reward.ndim != 3 or reward.shape[:2] != (n_states, n_actions) or reward.shape[2] < 1:
            raise LeverError(f"reward must be (S={n_states}, A={n_actions}, d >= 1), got shape {reward.shape}")
        if terminates.shape != (n_states, n_actions):
            raise LeverError(f"terminates must be (S={n_states}, A={n_actions}), got shape {terminates.shape}")
        if next_state.min() < 0 or next_state.max() >= n_states:
            raise LeverError(f"next_state entries must be states 0..{n_states - 1}")
        if not np.all(np.isfinite(reward)):
            raise LeverError("reward contains NaN or infinity")
        if starts.size == 0 or starts.min() < 0 or starts.max() >= n_states:
            raise LeverError(f"starts must be a non-empty list of states 0..{n_states - 1}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)) \
                or self.max_steps < 1:
            raise LeverError(f"max_steps must be an integer >= 1, got {self.max_steps!r}")
        names = tuple(str(n) for n in self.component_names)
        if len(names) != reward.shape[2] or len(set(names)) != len(names) or not all(names):
            raise LeverError(f"component_names must be {reward.shape[2]} distinct names, got {names!r}")
        keys = tuple(self.keys)
        if len(keys) != n_states:
            raise LeverError(f"keys must name each of the {n_states} states, got {len(keys)}")
        for array in (next_state, reward, terminates, starts):
            array.setflags(write=False)
        for field, value in (("next_state", next_state), ("reward", reward), ("terminates", terminates),
                             ("starts", starts), ("max_steps", int(self.max_steps)),
                             ("component_names", names), ("keys", keys), ("name", str(self.name))):
            object.__setattr__(self, field, value)
        if len(self._key_index) != n_states:
            raise LeverError("keys repeat an observation: each state needs its own key")

    # -- sizes and identity ---------------------------------------------------------
    @property
    def n_states(self) -> int:
        """Number of states S."""
        return self.next_state.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return self.next_state.shape[1]

    @property
    def n_components(self) -> int:
        """Number of reward components d."""
        return self.reward.shape[2]

    @property
    def n_features(self) -> int:
        """Reward features a logged step keeps: the d components (a table world's rewards are additive)."""
        return self.reward.shape[2]

    @property
    def start(self) -> int:
        """The first start state: where rollouts, embeddings and evaluation begin."""
        return int(self.starts[0])

    @cached_property
    def id(self) -> str:
        """Stable short identifier: a hash of the tables, starts, step cap and component names."""
        digest = hashlib.sha256()
        for array in (self.next_state, self.reward, self.terminates, self.starts):
            digest.update(str((array.dtype.str, array.shape)).encode())
            digest.update(array.tobytes())
        digest.update(repr((self.max_steps, self.component_names)).encode())
        return digest.hexdigest()[:12]

    @cached_property
    def table(self) -> Table:
        """The arrays the table kernels take (see :class:`lever.kernels.table.Table`)."""
        return Table(self.next_state, self.reward, self.terminates)

    @cached_property
    def terminal_states(self) -> np.ndarray:
        """States where every action stays put, pays 0 and terminates (terminal observations), int64."""
        stay = self.next_state == np.arange(self.n_states)[:, None]
        still = np.all(self.reward == 0, axis=2)
        return np.flatnonzero(np.all(stay & still & self.terminates, axis=1))

    # -- observations ---------------------------------------------------------------
    @cached_property
    def _key_index(self) -> dict:
        return {key: s for s, key in enumerate(self.keys)}

    def index(self, obs) -> int:
        """The state index of an observation (any form :func:`observation_key` reads); LeverError if unknown."""
        key = observation_key(obs)
        try:
            return self._key_index[key]
        except (KeyError, TypeError):
            raise LeverError(f"observation {obs!r} (key {key!r}) is not a state of world {self.name!r}") from None

    # -- values ---------------------------------------------------------------------
    def optimal_q(self, weights, gamma: float = 0.99, tol: float = 1e-10, max_iters: int = 100_000) -> np.ndarray:
        """Optimal Q float64 (S, A) of the objective ``weights`` (d,) by value iteration on the true tables.

        γ in [0, 1]; with γ = 1 it converges only where every policy
        terminates, else it stops after ``max_iters`` sweeps.
        """
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if weights.shape != (self.n_components,) or not np.all(np.isfinite(weights)):
            raise LeverError(f"weights must be {self.n_components} finite numbers, got {weights!r}")
        if not 0 <= gamma <= 1:
            raise LeverError(f"gamma must be in [0, 1], got {gamma}")
        q = np.empty((self.n_states, self.n_actions))
        value_iteration_table(self.table, weights, float(gamma), float(tol), int(max_iters), q)
        return q

    # -- files ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the world (every table, its keys, names and cap) to ``path`` (``.npz``, atomic, versioned)."""
        kind, keys = _keys_array(self.keys)
        write_arrays(path, WORLD_FORMAT, WORLD_VERSION,
                     {"next_state": self.next_state, "reward": self.reward, "terminates": self.terminates,
                      "starts": self.starts, "keys": keys},
                     {"max_steps": self.max_steps, "component_names": list(self.component_names),
                      "name": self.name, "key_kind": kind, "id": self.id})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "TabularWorld":
        """Read a world written by :meth:`save`; FileFormatError naming the file otherwise."""
        arrays, meta = read_arrays(path, WORLD_FORMAT, WORLD_VERSION)
        try:
            keys = arrays["keys"]
            if meta["key_kind"] == "int" and keys.ndim == 1:
                keys = tuple(keys.tolist())
            elif meta["key_kind"] == "tuple" and keys.ndim == 2:
                keys = tuple(map(tuple, keys.tolist()))
            else:
                raise ValueError("keys do not match their kind")
            world = cls(arrays["next_state"], arrays["reward"], arrays["terminates"], arrays["starts"],
                        int(meta["max_steps"]), tuple(meta["component_names"]), keys, str(meta["name"]))
        except (KeyError, TypeError, ValueError, LeverError) as exc:
            raise FileFormatError(f"{path}: malformed tabular world ({exc})") from None
        if world.id != meta.get("id"):
            raise FileFormatError(f"{path}: tables do not match the world id {meta.get('id')!r} (modified)")
        return world

    @classmethod
    def from_gymnasium(cls, env_or_id, *, max_states: int | None = None, max_steps: int | None = None,
                       env_kwargs: dict | None = None, checks: int = DEFAULT_CHECKS,
                       resets: int = DEFAULT_RESETS, read_table: bool = True) -> "TabularWorld":
        """Read a deterministic gymnasium (or MO-Gymnasium) env, or an env id, into a world.

        Reads a toy-text ``P`` table where there is one, else enumerates the
        reachable states breadth-first over snapshots of the env, stepping
        each (state, action) under ``checks`` reseeded generators; starts
        are the distinct observations of ``resets`` seeded resets.
        LeverError in one line for a stochastic env or past ``max_states``
        (default 1,000,000); ``read_table=False`` searches even where a ``P``
        table exists. See :mod:`lever.worlds.gymnasium_import`.
        """
        found = enumerate_env(env_or_id, max_states=max_states, max_steps=max_steps, env_kwargs=env_kwargs,
                              checks=checks, resets=resets, read_table=read_table)
        return cls(*found)

    def __repr__(self) -> str:
        return (f"TabularWorld({self.name!r}: {self.n_states} states, {self.n_actions} actions, "
                f"{self.n_components} components, {self.starts.size} starts, max_steps {self.max_steps})")


def _keys_array(keys: tuple) -> tuple[str, np.ndarray]:
    """Keys as ("int", int64 (S,)) or ("tuple", int64 (S, L)); LeverError for keys of mixed shapes."""
    if all(isinstance(k, (int, np.integer)) for k in keys):
        return "int", np.array(keys, dtype=np.int64)
    if all(isinstance(k, tuple) for k in keys) and len({len(k) for k in keys}) == 1:
        return "tuple", np.array(keys, dtype=np.int64).reshape(len(keys), -1)
    raise LeverError("keys must be all ints or all tuples of ints of one length to be saved")
