"""Planning on a phase-augmented state (cell, lever pulled) over a combination's logged support.

Position-only planning (:meth:`lever.compose.Composer.plan`) reads the
rewards logged on each pair's first visit, so a lever objective keeps its
pre-pull guidance after the pull and never turns to the exit. Here every
logged step is relabelled in both lever phases from the terms logged on its
first visit (see :mod:`lever.kernels.phase_planning` for the rules, and
what happens to the gold terms), and value iteration runs over
(phase, cell): zero new environment steps, the same libraries.

The plan is an action table int32 (2, S): row 0 while the lever is not
pulled, row 1 after. :func:`lever.evaluation.rollout` runs such a table in
the true environment (a greedy episode that tracks the lever flag), and a
:class:`~lever.policy.ComposedPolicy` carries it.

A log without terms (a library of format 3 or older) cannot be relabelled:
phase planning on it is a :class:`~lever.errors.LeverError` that says to
rebuild the library; everything else still works on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compose import PolicyStack
from .errors import LeverError
from .kernels.constants import END_NAMES, N_ACTIONS
from .kernels.phase_planning import N_PHASES, offline_phase_rollout, phase_value_iteration, relabel_phases
from .worlds.objectives import Objective, ObjectiveLike

#: How planning on the support may run: on the cell alone (``position``) or on (cell, lever phase).
PLAN_MODES = ("position", "phase")


@dataclass(frozen=True, eq=False)
class PhaseModel:
    """A combination's union support relabelled per phase under one objective.

    ``rewards`` float64 (2, S, A), -inf off the support; ``successor`` int32
    (S, A), -1 off it; ``next_phase`` int8 (2, S, A).
    """

    rewards: np.ndarray
    successor: np.ndarray
    next_phase: np.ndarray


@dataclass(frozen=True, eq=False)
class PhasePlanResult:
    """Value iteration over (phase, cell): ``q`` float64 (2, S, A) (-inf off the support),
    ``actions`` int32 (2, S) (-1 = dead end), ``iterations`` sweeps done, ``model`` the relabelled model."""

    q: np.ndarray
    actions: np.ndarray
    iterations: int
    model: PhaseModel


def check_terms(stack: PolicyStack) -> None:
    """LeverError unless ``stack`` holds the logged step terms phase planning relabels."""
    if stack.term_model is None:
        raise LeverError("phase planning relabels the step terms logged on each pair's first visit, and these "
                         "policies' logs lack them (a library of format 3 or older, or a policy saved before "
                         "terms were logged): rebuild the library with this lever, or plan on the position "
                         "alone (plan=True / --plan position)")


def _rows(stack: PolicyStack, rows) -> np.ndarray:
    rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1))
    if rows.size == 0 or rows.min() < 0 or rows.max() >= stack.n_policies:
        raise LeverError(f"combination rows must be a non-empty list in 0..{stack.n_policies - 1}")
    return rows


def phase_model(stack: PolicyStack, rows, objective: ObjectiveLike, rules: str = "study") -> PhaseModel:
    """The union support of ``rows`` (k,) relabelled per phase for ``objective`` under ``rules``."""
    check_terms(stack)
    weights = Objective.parse(objective).set_weights(rules)
    combo = _rows(stack, rows)
    n = stack.layout.n_states
    rewards = np.empty((N_PHASES, n, N_ACTIONS))
    successor = np.empty((n, N_ACTIONS), dtype=np.int32)
    next_phase = np.empty((N_PHASES, n, N_ACTIONS), dtype=np.int8)
    relabel_phases(combo, stack.support, stack.next_state, stack.term_model, stack.layout.world, weights,
                   rewards, successor, next_phase)
    return PhaseModel(rewards, successor, next_phase)


def phase_plan_on_support(stack: PolicyStack, rows, objective: ObjectiveLike, rules: str = "study",
                          gamma: float = 0.99, tol: float = 1e-9, max_iters: int = 10_000) -> PhasePlanResult:
    """Value iteration over (phase, cell) on the union support of ``rows``, discount ``gamma`` in [0, 1)."""
    if not 0 <= gamma < 1:
        raise LeverError(f"planning gamma must be in [0, 1), got {gamma}")
    model = phase_model(stack, rows, objective, rules)
    n = stack.layout.n_states
    q = np.empty((N_PHASES, n, N_ACTIONS))
    actions = np.empty((N_PHASES, n), dtype=np.int32)
    sweeps = phase_value_iteration(model.rewards, model.successor, model.next_phase, stack.layout.world.cells,
                                   float(gamma), float(tol), int(max_iters), q, actions)
    return PhasePlanResult(q, actions, int(sweeps), model)


def phased(actions: np.ndarray) -> np.ndarray:
    """An action table as (phase, cell), int32 (2, S): a position-only table (S,) is used in both phases."""
    actions = np.asarray(actions, dtype=np.int32)
    if actions.ndim == 1:
        actions = np.stack([actions, actions])
    return np.ascontiguousarray(actions)


def phase_offline(stack: PolicyStack, model: PhaseModel, actions: np.ndarray,
                  max_steps: int | None = None) -> tuple[float, str]:
    """Undiscounted return and end (a name of END_NAMES) of ``actions`` ((2, S) or (S,)) through ``model``."""
    layout = stack.layout
    ret, _, end = offline_phase_rollout(model.rewards, model.successor, model.next_phase, layout.world.cells,
                                        phased(actions), layout.start, max_steps or layout.max_steps)
    return float(ret), END_NAMES[int(end)]
