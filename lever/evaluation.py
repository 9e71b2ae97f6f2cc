"""Rolling out a policy: greedy, deterministic, in the true environment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeverError
from .worlds.grid import Layout
from .worlds.tabular import TabularWorld
from .kernels.constants import END_NAMES, N_ACTIONS, N_SETS
from .kernels.phase_planning import rollout_phase_actions
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
    """Action table int32 (S,) from a Q table (S, A), an action table (S,), or an object with ``.q`` or
    ``.actions`` (a TrainedPolicy, a ComposedPolicy)."""
    table = getattr(policy, "q", getattr(policy, "actions", policy))
    table = np.asarray(table)
    if table.ndim == 2:
        if table.shape != (n_states, n_actions) or not np.issubdtype(table.dtype, np.floating):
            raise LeverError(f"Q table must be float (S={n_states}, A={n_actions}), "
                             f"got {table.dtype} {table.shape}")
        if not np.isfinite(table).all():  # an infinite entry ranks nothing: every tie goes to action 0
            raise LeverError("Q table contains NaN or infinity")
        return greedy_policy(table)
    if table.shape != (n_states,) or not np.issubdtype(table.dtype, np.integer):
        raise LeverError(f"action table must be integer (S={n_states},), got {table.dtype} {table.shape}")
    if table.size and (table.min() < -1 or table.max() >= n_actions):
        raise LeverError(f"action table entries must be -1 (dead end) or 0..{n_actions - 1}, "
                         f"got values in [{table.min()}, {table.max()}]")
    return table.astype(np.int32, copy=False)


def as_phase_actions(table, n_states: int) -> np.ndarray:
    """A (phase, cell) action table int32 (2, S), checked: entries -1 (dead end) or 0..A-1."""
    table = np.asarray(table)
    if table.shape != (2, n_states) or not np.issubdtype(table.dtype, np.integer):
        raise LeverError(f"a phase action table must be integer (2, S={n_states}), got {table.dtype} {table.shape}")
    if table.min() < -1 or table.max() >= N_ACTIONS:
        raise LeverError(f"action table entries must be -1 (dead end) or 0..{N_ACTIONS - 1}, "
                         f"got values in [{table.min()}, {table.max()}]")
    return np.ascontiguousarray(table, dtype=np.int32)


def rollout(layout: Layout | TabularWorld, policy, objective: ObjectiveLike = "path", rules: str = "study",
            max_steps: int | None = None, record_path: bool = False, gamma: float = 1.0,
            start: int | None = None, legacy_gold_exit: bool = False) -> RolloutResult:
    """Greedy rollout of ``policy`` (Q table, action table, TrainedPolicy or ComposedPolicy) from the start.

    Greedy ties go to the lowest action; actions of -1 in an action table
    end the episode as a dead end. ``max_steps`` defaults to the world's
    cap (a layout's H·W); ``legacy_gold_exit``: the flat -20 gold exit
    penalty (GridWorld). On a GridWorld layout an integer table of shape
    (2, S) acts on (lever phase, cell): row 0 until the lever is pulled,
    row 1 after (a phase plan, see :mod:`lever.phase_plan`). On a
    :class:`TabularWorld` the objective is a weight vector over its
    components, ``rules`` does not apply, the episode starts at ``start``
    (default: the world's first start state) and ``gamma`` discounts
    ``discounted_return_vector``; on a GridWorld layout ``gamma`` and
    ``start`` must be left at their defaults.
    """
    made_for = getattr(policy, "layout_id", None)
    if isinstance(made_for, str) and made_for != layout.id:
        raise LeverError(f"the policy was made for layout {made_for}, not this layout {layout.id}")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 1):
        raise LeverError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    source = getattr(policy, "actions", policy)  # a ComposedPolicy's action table
    if isinstance(layout, TabularWorld):
        return _rollout_table(layout, source, objective, max_steps, record_path, gamma, start)
    if gamma != 1.0 or start is not None:
        raise LeverError("gamma and start of a rollout apply to a TabularWorld only")
    set_weights = Objective.parse(objective).set_weights(rules)
    table = np.asarray(source) if not hasattr(source, "q") else None
    phases = table is not None and table.ndim == 2 and table.shape[0] == 2 and np.issubdtype(table.dtype, np.integer)
    actions = as_phase_actions(table, layout.n_states) if phases else as_actions(source, layout.n_states)
    max_steps = max_steps or layout.max_steps
    set_returns = np.zeros(N_SETS)
    path = np.empty(max_steps + 1 if record_path else 0, dtype=np.int32)
    kernel = rollout_phase_actions if phases else rollout_actions
    ret, steps, end = kernel(layout.world_for(rules, legacy_gold_exit), layout.start, actions, max_steps,
                             set_weights, set_returns, path)
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
    :class:`TabularWorld` only). On a GridWorld layout ``actions`` (2, S)
    acts by lever phase (a phase plan): row 1 once the route has entered
    the lever cell.
    """
    actions = np.asarray(actions, dtype=np.int32)
    if isinstance(layout, TabularWorld):
        result = rollout(layout, actions, objective, rules, record_path=True, gamma=gamma)
    else:
        result = rollout(layout, actions, objective, rules, record_path=True)
    states = result.path[:-1]
    if actions.ndim == 2:
        lever = -1 if layout.lever is None else layout.lever
        phases = np.maximum.accumulate(states == lever).astype(np.int64) if states.size else states
        taken = actions[phases, states]
    else:
        taken = actions[states]
    return TrueEvaluation(result, float(support[states, taken].mean()) if result.steps else 1.0)
