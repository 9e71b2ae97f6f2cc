"""The arrays of a saved :class:`lever.training.TrainedPolicy`, checked when it is read.

A policy file is read back into compiled kernels (rollouts, planning on its
support), which trust shapes and indices. So beyond its format and fields,
:func:`check_trained_arrays` refuses any array of another shape or dtype
kind than training writes, and values training never writes: Q tables,
reward models and returns that are not finite, negative visit counts, next
states outside ``-1..S-1``, first visits below -1, snapshots out of order.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import FileFormatError
from .kernels.constants import N_ACTIONS, N_COMPONENTS, N_SETS
from .kernels.world import N_TERMS
from .worlds.tabular import MAX_ACTIONS


def check_trained_arrays(policy, path) -> None:
    """FileFormatError naming ``path`` unless ``policy``'s arrays have the shapes, dtype kinds and values of
    a trained policy (see the module docstring; S from ``q``, N snapshots from ``snapshot_episodes``)."""
    def bad(reason: str) -> FileFormatError:
        return FileFormatError(f"{path}: malformed trained policy ({reason})")

    q = policy.q
    # The GridWorld: 4 actions, the 16 component sets as features; a tabular world: its actions and
    # its d components (the objective's length).
    on_grid = policy.objective.on_grid
    A = N_ACTIONS if on_grid else (q.shape[1] if q.ndim == 2 and 1 <= q.shape[1] <= MAX_ACTIONS else -1)
    F, C = (N_SETS, N_COMPONENTS) if on_grid else (len(policy.objective.weights),) * 2
    if q.ndim != 2 or q.shape[1] != A or q.shape[0] < 1:
        raise bad(f"q has shape {q.shape}, expected (S, {N_ACTIONS if on_grid else f'1..{MAX_ACTIONS}'})")
    S = q.shape[0]
    n = policy.snapshot_episodes.shape[0] if policy.snapshot_episodes.ndim == 1 else -1
    expected = {"q": ((S, A), "f"), "visits": ((S, A), "iu"),
                "first_visit": ((S, A), "i"), "next_state": ((S, A), "i"),
                "reward_model": ((S, A, F), "f"), "episode_returns": (None, "f"),
                "snapshot_episodes": ((n,), "iu"), "snapshot_q": ((n, S, A), "f"),
                "snapshot_visits": ((n, S, A), "iu")}
    if policy.q_vector is not None:
        expected["q_vector"] = ((S, A, C), "f")
    if getattr(policy, "term_model", None) is not None:
        expected["term_model"] = ((S, A, N_TERMS), "f")
    for name, (shape, kinds) in expected.items():
        array = getattr(policy, name)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds \
                or (shape is None and array.ndim != 1) or (shape is not None and array.shape != shape):
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
            raise bad(f"{name} is {got}, expected shape {shape or '(E,)'} of kind {kinds}")
    for name in ("q", "q_vector", "reward_model", "episode_returns", "snapshot_q", "term_model"):
        array = getattr(policy, name, None)
        if array is not None and not np.all(np.isfinite(array)):
            raise bad(f"{name} holds NaN or infinity")
    for name in ("visits", "snapshot_visits", "snapshot_episodes"):
        if getattr(policy, name).size and getattr(policy, name).min() < 0:
            raise bad(f"{name} holds a negative count")
    if policy.next_state.min() < -1 or policy.next_state.max() >= S:
        raise bad(f"next_state holds a state outside -1..{S - 1}")
    if policy.first_visit.min() < -1:
        raise bad("first_visit holds an episode below -1")
    if np.any(np.diff(policy.snapshot_episodes.astype(np.int64)) <= 0):
        raise bad("snapshot_episodes are not increasing")
    if not (isinstance(policy.wall_time, float) and math.isfinite(policy.wall_time) and policy.wall_time >= 0):
        raise bad(f"wall_time is {policy.wall_time!r}")
    if not isinstance(policy.layout_id, str):
        raise bad("layout_id is not a string")
