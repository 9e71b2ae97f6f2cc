"""A composed (or planned) policy: a greedy action per state, callable as a gymnasium policy, saved to file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FileFormatError, LeverError
from .fileio import read_arrays, write_arrays
from .compose import OPERATORS
from .kernels.constants import N_ACTIONS
from .validation import is_int

#: File format of a saved :class:`ComposedPolicy`.
COMPOSED_FORMAT = "lever-composed-policy"
COMPOSED_VERSION = 1


@dataclass(frozen=True, eq=False)
class ComposedPolicy:
    """A composed (or planned) deterministic policy: a greedy action per state.

    ``actions`` int32 (S,), -1 where the combination supports no action;
    ``policy_ids`` the library policies it was composed from. Calling it
    with an observation (the cell index a ``GridWorldEnv`` returns) gives the
    action; a dead end raises :class:`LeverError` instead of moving at random.
    """

    actions: np.ndarray
    policy_ids: tuple[int, ...]
    operator: str
    planned: bool
    layout_id: str

    def __call__(self, observation) -> int:
        state = int(observation)
        if not 0 <= state < self.actions.shape[0]:
            raise LeverError(f"observation {state} is not a state of this policy (0..{self.actions.shape[0] - 1})")
        action = int(self.actions[state])
        if action < 0:
            raise LeverError(f"dead end at state {state}: the composed support has no action there")
        return action

    def save(self, path) -> Path:
        """Write the policy to ``path`` (``.npz``, atomic, versioned); returns the path."""
        write_arrays(path, COMPOSED_FORMAT, COMPOSED_VERSION, {"actions": np.asarray(self.actions, np.int32)},
                     {"policy_ids": [int(p) for p in self.policy_ids], "operator": self.operator,
                      "planned": bool(self.planned), "layout_id": self.layout_id})
        return Path(path)

    @classmethod
    def load(cls, path) -> "ComposedPolicy":
        """Read a policy written by :meth:`save`; FileFormatError naming the file otherwise."""
        arrays, meta = read_arrays(path, COMPOSED_FORMAT, COMPOSED_VERSION)
        actions = arrays.get("actions")
        try:
            ids, operator, planned, layout_id = (meta["policy_ids"], meta["operator"], meta["planned"],
                                                 meta["layout_id"])
            ok = (actions is not None and actions.ndim == 1 and actions.dtype == np.int32
                  and actions.size > 0 and actions.min() >= -1 and actions.max() < N_ACTIONS
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
        """States with no supported action, int64 (D,)."""
        return np.flatnonzero(self.actions < 0)


