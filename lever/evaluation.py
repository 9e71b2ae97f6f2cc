"""Rolling out a policy: greedy, deterministic, in the true environment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeverError
from .worlds.grid import Layout
from .worlds.tabular import TabularWorld
from .kernels.constants import END_NAMES, N_ACTIONS, N_SETS
from .kernels.rollout import greedy_policy, rollout_actions
from .kernels.table import rollout_table
from .worlds.objectives import SINGLETONS, Objective, ObjectiveLike


@dataclass(frozen=True)
class RolloutResult:
    """Outcome of one greedy episode.

    ``ret`` is the undiscounted return of the objective under the rules it
    was rolled out with; ``return_vector`` (C,) the return of each single
    component; ``set_returns`` (N_SETS,) the return of every component set
    (indexed by mask) along the same route; ``end`` one of ``"exit"``, ``"hazard"``,
    ``"dead_end"`` (no action for the state), ``"step_cap"``; ``path`` the
    visited cells (start included) when recorded, else None.
    On a :class:`TabularWorld` the features are its d components:
    ``return_vector`` and ``set_returns`` are both the undiscounted return
    of each component (d,), ``discounted_return_vector`` (d,) the same
    discounted by the ``gamma`` of the rollout, and ``end`` is
    ``"terminated"`` where a transition ended the episode.
    """

    ret: float
    return_vector: np.ndarray
    set_returns: np.ndarray
    steps: int
    end: str
    path: np.ndarray | None = None
    discounted_return_vector: np.ndarray | None = None

    @property
    def reached_exit(self) -> bool:
        """Whether the episode ended at the exit."""
        return self.end == "exit"


def as_actions(policy, n_states: int, n_actions: int = N_ACTIONS) -> np.ndarray:
    """Action table int32 (S,) from a Q table (S, A), an action table (S,), or an object with ``.q``."""
    table = getattr(policy, "q", policy)
    table = np.asarray(table)
    if table.ndim == 2:
        if table.shape != (n_states, n_actions) or not np.issubdtype(table.dtype, np.floating):
            raise LeverError(f"Q table must be float (S={n_states}, A={n_actions}), "
                             f"got {table.dtype} {table.shape}")
        if np.isnan(table).any():
            raise LeverError("Q table contains NaN")
        return greedy_policy(table)
    if table.shape != (n_states,) or not np.issubdtype(table.dtype, np.integer):
        raise LeverError(f"action table must be integer (S={n_states},), got {table.dtype} {table.shape}")
    if table.size and (table.min() < -1 or table.max() >= n_actions):
        raise LeverError(f"action table entries must be -1 (dead end) or 0..{n_actions - 1}, "
                         f"got values in [{table.min()}, {table.max()}]")
    return table.astype(np.int32, copy=False)


def rollout(layout: Layout | TabularWorld, policy, objective: ObjectiveLike = "path", rules: str = "study",
            max_steps: int | None = None, record_path: bool = False, gamma: float = 1.0,
            start: int | None = None) -> RolloutResult:
    """Greedy rollout of ``policy`` (Q table, action table or TrainedPolicy) from the start.

    Greedy ties go to the lowest action; actions of -1 in an action table
    end the episode as a dead end. ``max_steps`` defaults to the world's
    cap (a layout's H·W). On a :class:`TabularWorld` the objective is a
    weight vector over its components, ``rules`` does not apply, the
    episode starts at ``start`` (default: the world's first start state)
    and ``gamma`` discounts ``discounted_return_vector``; on a GridWorld
    layout ``gamma`` and ``start`` must be left at their defaults.
    """
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):
        raise LeverError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if isinstance(layout, TabularWorld):
        return _rollout_table(layout, policy, objective, max_steps, record_path, gamma, start)
    if gamma != 1.0 or start is not None:
        raise LeverError("gamma and start of a rollout apply to a TabularWorld only")
    set_weights = Objective.parse(objective).set_weights(rules)
    actions = as_actions(policy, layout.n_states)
    max_steps = max_steps or layout.max_steps
    set_returns = np.zeros(N_SETS)
    path = np.empty(max_steps + 1 if record_path else 0, dtype=np.int32)
    ret, steps, end = rollout_actions(layout.world, layout.start, actions, max_steps, set_weights,
                                      set_returns, path)
    return RolloutResult(float(ret), set_returns[SINGLETONS].copy(), set_returns, int(steps), END_NAMES[end],
                         path[: steps + 1].copy() if record_path else None)


def _rollout_table(world: TabularWorld, policy, objective: ObjectiveLike, max_steps: int | None,
                   record_path: bool, gamma: float, start: int | None) -> RolloutResult:
    """:func:`rollout` on a tabular world (the table kernel)."""
    weights = Objective.parse(objective, world.component_names).array
    actions = as_actions(policy, world.n_states, world.n_actions)
    if not 0 <= gamma <= 1:
        raise LeverError(f"gamma must be in [0, 1], got {gamma}")
    start = world.start if start is None else int(start)
    if not 0 <= start < world.n_states:
        raise LeverError(f"start {start} is not a state of the world (0..{world.n_states - 1})")
    max_steps = max_steps or world.max_steps
    vector = np.zeros(world.n_components)
    discounted = np.zeros(world.n_components)
    path = np.empty(max_steps + 1 if record_path else 0, dtype=np.int32)
    steps, end = rollout_table(world.table, start, actions, max_steps, float(gamma), vector, discounted, path)
    return RolloutResult(float(weights @ vector), vector, vector.copy(), int(steps), END_NAMES[end],
                         path[: steps + 1].copy() if record_path else None, discounted)


@dataclass(frozen=True, eq=False)
class TrueEvaluation:
    """A composed policy's greedy rollout in the real world, and how much of it the support covered."""

    rollout: RolloutResult
    route_on_support: float


def true_evaluate(layout: Layout | TabularWorld, actions: np.ndarray, support: np.ndarray,
                  objective: ObjectiveLike, rules: str = "study", gamma: float = 1.0) -> TrueEvaluation:
    """Greedy rollout of ``actions`` (S,) in the real environment (:func:`lever.evaluation.rollout`).

    ``route_on_support`` is the fraction of the route's steps whose (s, a)
    lies in ``support`` bool (S, A) (1.0 for a route with no steps).
    ``gamma`` discounts the rollout's ``discounted_return_vector`` (a
    :class:`TabularWorld` only).
    """
    actions = np.asarray(actions, dtype=np.int32)
    if isinstance(layout, TabularWorld):
        result = rollout(layout, actions, objective, rules, record_path=True, gamma=gamma)
    else:
        result = rollout(layout, actions, objective, rules, record_path=True)
    states = result.path[:-1]
    return TrueEvaluation(result, float(support[states, actions[states]].mean()) if result.steps else 1.0)
