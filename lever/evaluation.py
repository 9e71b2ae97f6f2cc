"""Rolling out a policy: greedy, deterministic, in the true environment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeverError
from .gridworld import Layout
from .kernels.constants import END_NAMES, N_ACTIONS, N_COMPONENTS, N_SETS
from .kernels.rollout import greedy_policy, rollout_actions
from .objectives import Objective, ObjectiveLike

#: Entries of a set-return vector that hold the single components, in component order.
SINGLETONS = np.array([1 << c for c in range(N_COMPONENTS)])


@dataclass(frozen=True)
class RolloutResult:
    """Outcome of one greedy episode.

    ``ret`` is the undiscounted return of the objective under the rules it
    was rolled out with; ``return_vector`` (C,) the return of each single
    component; ``set_returns`` (N_SETS,) the return of every component set
    (indexed by mask) along the same route; ``end`` one of ``"exit"``, ``"hazard"``,
    ``"dead_end"`` (no action for the state), ``"step_cap"``; ``path`` the
    visited cells (start included) when recorded, else None.
    """

    ret: float
    return_vector: np.ndarray
    set_returns: np.ndarray
    steps: int
    end: str
    path: np.ndarray | None = None

    @property
    def reached_exit(self) -> bool:
        """Whether the episode ended at the exit."""
        return self.end == "exit"


def as_actions(policy, n_states: int) -> np.ndarray:
    """Action table int32 (S,) from a Q table (S, A), an action table (S,), or an object with ``.q`` or
    ``.actions`` (a TrainedPolicy, a ComposedPolicy)."""
    table = getattr(policy, "q", getattr(policy, "actions", policy))
    table = np.asarray(table)
    if table.ndim == 2:
        if table.shape != (n_states, N_ACTIONS) or not np.issubdtype(table.dtype, np.floating):
            raise LeverError(f"Q table must be float (S={n_states}, A={N_ACTIONS}), "
                             f"got {table.dtype} {table.shape}")
        if not np.isfinite(table).all():  # an infinite entry ranks nothing: every tie goes to action 0
            raise LeverError("Q table contains NaN or infinity")
        return greedy_policy(table)
    if table.shape != (n_states,) or not np.issubdtype(table.dtype, np.integer):
        raise LeverError(f"action table must be integer (S={n_states},), got {table.dtype} {table.shape}")
    if table.size and (table.min() < -1 or table.max() >= N_ACTIONS):
        raise LeverError(f"action table entries must be -1 (dead end) or 0..{N_ACTIONS - 1}, "
                         f"got values in [{table.min()}, {table.max()}]")
    return table.astype(np.int32, copy=False)


def rollout(layout: Layout, policy, objective: ObjectiveLike = "path", rules: str = "study",
            max_steps: int | None = None, record_path: bool = False) -> RolloutResult:
    """Greedy rollout of ``policy`` (Q table, action table or TrainedPolicy) from the start.

    Greedy ties go to the lowest action; actions of -1 in an action table
    end the episode as a dead end. ``max_steps`` defaults to the layout's H·W.
    """
    set_weights = Objective.parse(objective).set_weights(rules)
    made_for = getattr(policy, "layout_id", None)
    if isinstance(made_for, str) and made_for != layout.id:
        raise LeverError(f"the policy was made for layout {made_for}, not this layout {layout.id}")
    actions = as_actions(policy, layout.n_states)
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):
        raise LeverError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    max_steps = max_steps or layout.max_steps
    set_returns = np.zeros(N_SETS)
    path = np.empty(max_steps + 1 if record_path else 0, dtype=np.int32)
    ret, steps, end = rollout_actions(layout.world, layout.start, actions, max_steps, set_weights,
                                      set_returns, path)
    return RolloutResult(float(ret), set_returns[SINGLETONS].copy(), set_returns, int(steps), END_NAMES[end],
                         path[: steps + 1].copy() if record_path else None)
