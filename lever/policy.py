"""A composed (or planned) policy: a greedy action per state (or per lever phase and state), callable as a
gymnasium policy, saved to file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FileFormatError, LeverError
from .fileio import read_arrays, write_arrays
from .compose import OPERATORS
from .validation import is_int
from .worlds.tabular import MAX_ACTIONS

#: File format of a saved :class:`ComposedPolicy`.
COMPOSED_FORMAT = "lever-composed-policy"
COMPOSED_VERSION = 2  # 2: actions may be (2, S), by lever phase (a phase plan)
#: Versions :meth:`ComposedPolicy.load` reads (1: actions (S,) only).
COMPOSED_READABLE = (1, 2)


@dataclass(frozen=True, eq=False)
class ComposedPolicy:
    """A composed (or planned) deterministic policy: a greedy action per state.

    ``actions`` int32 (S,), -1 where the combination supports no action, or
    (2, S) for a plan on (lever phase, cell) (:mod:`lever.phase_plan`): row 0
    while the lever is not pulled, row 1 after; ``policy_ids`` the library
    policies it was composed from. Calling it with an observation (the cell
    index a ``GridWorldEnv`` returns) gives the action; a phased policy also
    needs ``lever_on`` (``info["lever_on"]`` of the env). A dead end raises
    :class:`LeverError` instead of moving at random.
    """

    actions: np.ndarray
    policy_ids: tuple[int, ...]
    operator: str
    planned: bool
    layout_id: str

    @property
    def phased(self) -> bool:
        """Whether the policy acts on (lever phase, cell): actions (2, S)."""
        return self.actions.ndim == 2

    def __call__(self, observation, lever_on: bool | None = None) -> int:
        state = int(observation)
        n_states = self.actions.shape[-1]
        if not 0 <= state < n_states:
            raise LeverError(f"observation {state} is not a state of this policy (0..{n_states - 1})")
        if self.phased:
            if lever_on is None:
                raise LeverError("this policy acts on (lever phase, cell): pass lever_on (info['lever_on'] "
                                 "of the env) with the observation")
            action = int(self.actions[int(bool(lever_on)), state])
        else:
            action = int(self.actions[state])
        if action < 0:
            raise LeverError(f"dead end at state {state}: the composed support has no action there")
        return action

    def save(self, path) -> Path:
        """Write the policy to ``path`` (``.npz``, atomic, versioned); returns the path."""
        version = COMPOSED_VERSION if self.phased else 1  # a plain table stays readable by older levers
        write_arrays(path, COMPOSED_FORMAT, version, {"actions": np.asarray(self.actions, np.int32)},
                     {"policy_ids": [int(p) for p in self.policy_ids], "operator": self.operator,
                      "planned": bool(self.planned), "layout_id": self.layout_id})
        return Path(path)

    @classmethod
    def load(cls, path) -> "ComposedPolicy":
        """Read a policy written by :meth:`save`; FileFormatError naming the file otherwise."""
        arrays, meta = read_arrays(path, COMPOSED_FORMAT, COMPOSED_READABLE)
        actions = arrays.get("actions")
        try:
            ids, operator, planned, layout_id = (meta["policy_ids"], meta["operator"], meta["planned"],
                                                 meta["layout_id"])
            shape_ok = actions is not None and (actions.ndim == 1 or (
                actions.ndim == 2 and actions.shape[0] == 2 and meta.get("version") == COMPOSED_VERSION))
            # A tabular world has up to MAX_ACTIONS actions; the GridWorld's tables stop at its 4.
            ok = (shape_ok and actions.dtype == np.int32
                  and actions.size > 0 and actions.min() >= -1 and actions.max() < MAX_ACTIONS
                  and isinstance(ids, list) and all(is_int(p) and p >= 0 for p in ids)
                  and operator in OPERATORS and isinstance(planned, bool) and isinstance(layout_id, str))
            policy = cls(actions, tuple(int(p) for p in ids), operator, planned, layout_id) if ok else None
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise FileFormatError(f"{path}: malformed composed policy")
        return policy

    @property
    def dead_ends(self) -> np.ndarray:
        """States with no supported action (in either phase of a phased policy), int64 (D,)."""
        dead = self.actions < 0
        return np.flatnonzero(dead.any(axis=0) if self.phased else dead)


