"""Support-aware composition of library policies, offline evaluation and planning on the support.

Everything offline here uses the *empirical model* of a combination and
nothing else: the union of its members' logged (state, action) pairs, with
the next state and the reward of every component set each pair was logged
with. The world is deterministic, so logged next states are exact; so are
the rewards of the sets without gold or lever (path, hazard, path+hazard).
Sets with gold or lever depend on the episode's history (the state is
position only), so the model holds them as seen in the first visit's
context, and offline returns on those sets are estimates.

A :class:`Composer` binds a :class:`PolicyStack` to one objective and
operator; :func:`compose_actions`, :func:`offline_evaluate` and
:func:`plan_on_support` do one call's worth for any objective spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LeverError, check_choice
from .worlds.grid import Layout
from .worlds.tabular import TabularWorld
from .kernels.compose import (
    OP_MAX, OP_SUM, PARALLEL_MIN_COMPOSE_ENTRIES, PARALLEL_MIN_ENTRIES, PARALLEL_MIN_ROLLOUTS, compose_batch,
    compose_batch_serial, mask_unvisited, mask_unvisited_serial, offline_rollout_batch,
    offline_rollout_batch_serial, support_bits, support_bits_serial,
)
from .kernels.constants import END_NAMES, N_ACTIONS
from .kernels.planning import plan_batch
from .kernels.table_compose import (
    PARALLEL_MIN_ANY_COMPOSE_ENTRIES, PARALLEL_MIN_TABLE_OFFLINE_ROLLOUTS, compose_any_batch,
    compose_any_batch_serial, offline_rollout_table_batch, offline_rollout_table_batch_serial,
    plan_table,
)
from .kernels.world import N_TERMS
from .threads import pick
from .worlds.objectives import Objective, ObjectiveLike

#: Composition operators by name: ``sum`` composes each member's own Q, ``max`` is GPI.
OPERATORS = {"sum": OP_SUM, "max": OP_MAX}

def _frozen(array, dtype=None) -> np.ndarray:
    """A C-contiguous, read-only plain-ndarray view of ``array`` (copied only to fix dtype or layout).

    Every table a kernel reads goes through here, so in-memory stacks and
    memory-mapped library files reach the kernels as one Numba type (a
    read-only memmap and a writeable array would otherwise compile twice).
    """
    view = np.ascontiguousarray(array, dtype=dtype).view(np.ndarray)
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class PolicyStack:
    """Every policy of one layout, stacked and checked, ready for the kernels.

    Arrays (P policies, S states, A actions, C components, N_SETS component
    sets): ``q`` float (P, S, A); ``support`` uint8 (P, S) bit masks of
    visited actions; ``next_state`` int32 (P, S, A); ``reward_model``
    float64 (P, S, A, N_SETS), every set's reward on the first visit;
    ``q_vector`` float (P, S, A, C) or None; ``policy_ids`` int64 (P,);
    ``lacks_vector_q`` bool (P,): rows whose vector Q is a placeholder (a
    library policy added from a plain Q table), which the ``max`` operator
    refuses to compose; ``term_model`` float64 (P, S, A, N_TERMS), the step
    terms on the first visit (phase planning relabels them), or None when
    the log lacks them (a library of format 3 or older, or a tabular world).
    Build it with :meth:`from_tables` (a library's ``PolicyTables``) or
    :meth:`from_policies` (``TrainedPolicy`` objects). On a :class:`TabularWorld` ``layout``
    A is the world's action count and both N_SETS and C are its d components.
    """

    layout: Layout | TabularWorld
    policy_ids: np.ndarray
    q: np.ndarray
    support: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray
    q_vector: np.ndarray | None
    lacks_vector_q: np.ndarray | None = None
    term_model: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, layout: Layout | TabularWorld, q, visits, next_state, reward_model, q_vector=None,
                    policy_ids=None, has_vector_q=None, term_model=None) -> "PolicyStack":
        """Check shapes and values of stacked tables, then pack the support bits.

        ``has_vector_q`` bool (P,): whether each row's ``q_vector`` is real (None: all are);
        ``term_model`` (P, S, A, N_TERMS) or None.
        """
        q = np.asarray(q)
        visits = np.asarray(visits)
        next_state = np.asarray(next_state)
        reward_model = np.asarray(reward_model)
        n_actions, n_features, n_components = layout.n_actions, layout.n_features, len(layout.component_names)
        if q.ndim != 3 or q.shape[1:] != (layout.n_states, n_actions) or q.shape[0] == 0:
            raise LeverError(f"Q tables must have shape (P>0, S={layout.n_states}, A={n_actions}) "
                             f"for layout {layout.id}, got {q.shape}")
        if not np.issubdtype(q.dtype, np.floating):
            raise LeverError(f"Q tables must be float, got {q.dtype}")
        shape = q.shape
        for name, array, want in (("visits", visits, shape), ("next_state", next_state, shape),
                                  ("reward_model", reward_model, shape + (n_features,))):
            if array.shape != want:
                raise LeverError(f"{name} has shape {array.shape}, expected {want} to match the Q tables")
        if not np.all(np.isfinite(q)):
            raise LeverError("Q tables contain NaN or infinity")
        if q_vector is not None:
            q_vector = np.asarray(q_vector)
            if q_vector.shape != shape + (n_components,):
                raise LeverError(f"q_vector has shape {q_vector.shape}, expected {shape + (n_components,)}")
            if not np.all(np.isfinite(q_vector)):
                raise LeverError("vector Q tables contain NaN or infinity")
        visited = visits > 0
        logged = next_state[visited]
        if logged.size and (logged.min() < 0 or logged.max() >= layout.n_states):
            raise LeverError("next_state of a visited pair lies outside the layout")
        if policy_ids is None:
            policy_ids = np.arange(shape[0], dtype=np.int64)
        policy_ids = np.asarray(policy_ids, dtype=np.int64)
        if policy_ids.shape != (shape[0],):
            raise LeverError(f"policy_ids has shape {policy_ids.shape}, expected ({shape[0]},)")
        lacks = None
        if q_vector is not None and has_vector_q is not None:
            has_vector_q = np.asarray(has_vector_q, dtype=bool)
            if has_vector_q.shape != (shape[0],):
                raise LeverError(f"has_vector_q has shape {has_vector_q.shape}, expected ({shape[0]},)")
            lacks = _frozen(~has_vector_q) if not has_vector_q.all() else None
        if term_model is not None:
            term_model = np.asarray(term_model)
            if term_model.shape != shape + (N_TERMS,):
                raise LeverError(f"term_model has shape {term_model.shape}, expected {shape + (N_TERMS,)}")
            term_model = _frozen(term_model, np.float64)
        support = np.empty(shape[:2], dtype=np.uint8)
        pick(support_bits, support_bits_serial, visits.size, PARALLEL_MIN_ENTRIES)(
            np.ascontiguousarray(visits), support)
        return cls(layout, _frozen(policy_ids), _frozen(q), _frozen(support), _frozen(next_state, np.int32),
                   _frozen(reward_model, np.float64), None if q_vector is None else _frozen(q_vector), lacks,
                   term_model)

    @classmethod
    def from_tables(cls, layout: Layout | TabularWorld, tables) -> "PolicyStack":
        """From a library's ``PolicyTables`` of ``layout``."""
        return cls.from_arrays(layout, tables.q, tables.visits, tables.next_state, tables.reward_model,
                               tables.q_vector, tables.policy_ids, getattr(tables, "has_vector_q", None),
                               getattr(tables, "term_model", None))

    @classmethod
    def from_policies(cls, layout: Layout | TabularWorld, policies, policy_ids=None) -> "PolicyStack":
        """From ``TrainedPolicy`` objects of ``layout`` (vector Q and terms kept only if every one has them)."""
        policies = list(policies)
        if not policies:
            raise LeverError("no policies to stack")
        wrong = [p.layout_id for p in policies if p.layout_id != layout.id]
        if wrong:
            raise LeverError(f"policies trained on layout(s) {sorted(set(wrong))}, not {layout.id}")
        have_vector = all(p.q_vector is not None for p in policies)
        have_terms = all(getattr(p, "term_model", None) is not None for p in policies)
        return cls.from_arrays(layout, np.stack([p.q for p in policies]),
                               np.stack([p.visits for p in policies]),
                               np.stack([p.next_state for p in policies]),
                               np.stack([p.reward_model for p in policies]),
                               np.stack([p.q_vector for p in policies]) if have_vector else None,
                               policy_ids,
                               term_model=np.stack([p.term_model for p in policies]) if have_terms else None)

    @property
    def n_policies(self) -> int:
        """Number of stacked policies P."""
        return self.q.shape[0]

    def rows(self, policy_ids) -> np.ndarray:
        """Rows (int64) of the given policy ids; LeverError for an id this stack lacks."""
        index = {int(pid): row for row, pid in enumerate(self.policy_ids)}
        missing = [int(p) for p in policy_ids if int(p) not in index]
        if missing:
            raise LeverError(f"policy ids {missing} are not policies of layout {self.layout.id}")
        return np.array([index[int(p)] for p in policy_ids], dtype=np.int64)

    def values(self, objective: Objective, operator: str) -> np.ndarray:
        """The per-policy table the operator composes, (P, S, A).

        ``sum`` composes each policy's own scalar Q (the study's operator).
        ``max`` (GPI) evaluates every policy under the new objective, w · Qvec,
        when vector Q tables exist, else falls back to the scalar Q; either
        is -inf where the policy did not visit (s, a).
        """
        if operator != "max":
            return self.q
        values = self.q if self.q_vector is None else self.q_vector @ objective.array
        masked = np.empty(values.shape, dtype=values.dtype)
        pick(mask_unvisited, mask_unvisited_serial, values.size, PARALLEL_MIN_ENTRIES)(
            np.ascontiguousarray(values), self.support, masked)
        return _frozen(masked)

    def empirical_model(self, rows) -> "EmpiricalModel":
        """The empirical model of the union support of ``rows``."""
        return EmpiricalModel.of(self, rows)


@dataclass(frozen=True, eq=False)
class EmpiricalModel:
    """Logged dynamics of a combination's union support.

    ``support`` bool (S, A); ``next_state`` int32 (S, A), -1 outside the
    support; ``reward_model`` float64 (S, A, N_SETS), zeros outside it. Each pair
    comes from the first member (in ``rows`` order) that visited it, the
    same rule the offline kernels use.
    """

    rows: tuple[int, ...]
    support: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray

    @classmethod
    def of(cls, stack: PolicyStack, rows) -> "EmpiricalModel":
        """The empirical model of the union support of ``stack``'s ``rows``."""
        rows = tuple(int(r) for r in rows)
        n_states, n_actions, n_features = stack.reward_model.shape[1:]
        support = np.zeros((n_states, n_actions), dtype=bool)
        next_state = np.full((n_states, n_actions), -1, dtype=np.int32)
        reward_model = np.zeros((n_states, n_actions, n_features))
        bits = np.arange(n_actions)
        for row in rows:
            visited = ((stack.support[row][:, None] >> bits) & 1).astype(bool)
            new = visited & ~support
            next_state[new] = stack.next_state[row][new]
            reward_model[new] = stack.reward_model[row][new]
            support |= visited
        return cls(rows, support, next_state, reward_model)

    @property
    def coverage(self) -> float:
        """Fraction of all (state, action) pairs the union support covers."""
        return float(self.support.mean())


@dataclass(frozen=True)
class OfflineBatch:
    """Offline rollouts of B composed policies through their empirical models.

    ``returns`` float64 (B,) = set weights · return vector; ``return_vectors``
    (B, N_SETS), the undiscounted return of every component set (by mask);
    ``steps`` int64 (B,); ``ends`` int8 (B,) codes into :data:`END_NAMES`;
    ``paths`` int32 (B, max_steps + 1) padded with -1, or None.
    """

    returns: np.ndarray
    return_vectors: np.ndarray
    steps: np.ndarray
    ends: np.ndarray
    paths: np.ndarray | None = None

    def end(self, b: int) -> str:
        """How rollout ``b`` ended, as a name from :data:`END_NAMES`."""
        return END_NAMES[int(self.ends[b])]

    def path(self, b: int) -> np.ndarray:
        """Visited cells of rollout ``b`` (start included); needs ``record_path``."""
        if self.paths is None:
            raise LeverError("offline paths were not recorded (pass record_path=True)")
        return self.paths[b, : int(self.steps[b]) + 1].copy()


def _check_combos(stack: PolicyStack, combos) -> np.ndarray:
    combos = np.ascontiguousarray(combos, dtype=np.int64)
    if combos.ndim != 2 or combos.shape[1] == 0:
        raise LeverError(f"combinations must be an int array (B, k>0), got shape {combos.shape}")
    if combos.size and (combos.min() < 0 or combos.max() >= stack.n_policies):
        raise LeverError(f"combination rows must be in 0..{stack.n_policies - 1}")
    return combos


def _betas(betas, combos: np.ndarray) -> np.ndarray:
    if betas is None:
        return np.ones(combos.shape, dtype=np.float64)
    betas = np.asarray(betas, dtype=np.float64)
    if not np.all(np.isfinite(betas)):
        raise LeverError("member weights (betas) must be finite")
    try:
        return np.ascontiguousarray(np.broadcast_to(betas, combos.shape))
    except ValueError:
        raise LeverError(f"betas of shape {betas.shape} do not fit combinations {combos.shape}") from None


@dataclass(frozen=True, eq=False)
class PlanResult:
    """Value iteration on one union support: ``q`` float64 (S, A) (-inf off the support),
    ``actions`` int32 (S,) (-1 = dead end), ``iterations`` sweeps done."""

    q: np.ndarray
    actions: np.ndarray
    iterations: int


class Composer:
    """Composes, evaluates and plans combinations of one :class:`PolicyStack` under one objective.

    ``objective`` is an :class:`Objective` (parse other spellings first);
    ``operator`` a name from :data:`OPERATORS`, used by :meth:`actions`;
    ``rules`` the rule set whose rewards the offline evaluation and planning
    relabel from the log (every component set's logged reward). The
    operator's per-policy tables (P, S, A) are computed on first use and
    kept, so every batch of a search shares them.
    """

    def __init__(self, stack: PolicyStack, objective: Objective, operator: str = "sum", rules: str = "study"):
        self.code = OPERATORS[check_choice("composition operator", operator, OPERATORS)]
        self.stack = stack
        self.objective = objective
        self.operator = operator
        self.rules = rules
        self.set_weights = objective.set_weights(rules)
        self._values: np.ndarray | None = None

    @property
    def values(self) -> np.ndarray:
        """``stack.values(objective, operator)``, (P, S, A), computed once."""
        if self._values is None:
            self._values = self.stack.values(self.objective, self.operator)
        return self._values

    def actions(self, combos, betas=None) -> tuple[np.ndarray, np.ndarray]:
        """Greedy action tables of B compositions, one kernel call.

        combos: int (B, k) rows of the stack; betas: per-member weights,
        broadcast to (B, k) (default 1). Returns actions int32 (B, S), -1 at
        dead ends, and the number of (s, a) pairs each union support covers,
        int64 (B,).
        """
        combos = _check_combos(self.stack, combos)
        betas = _betas(betas, combos)
        if self.code == OP_MAX and not np.all(betas > 0):
            raise LeverError("the max operator needs positive member weights (betas)")
        lacks = self.stack.lacks_vector_q
        if self.code == OP_MAX and lacks is not None and lacks[combos].any():
            # Their stored vector Q is zeros, not a value: GPI over it would pick actions at random.
            ids = sorted({int(self.stack.policy_ids[r]) for r in np.unique(combos) if lacks[r]})
            raise LeverError(f"policies {ids} were added from a plain Q table and have no vector Q table; "
                             f"the max operator (GPI) needs one: use operator='sum', or add them with an "
                             f"(S, A, C) table")
        actions = np.empty((combos.shape[0], self.stack.layout.n_states), dtype=np.int32)
        covered = np.empty(combos.shape[0], dtype=np.int64)
        if isinstance(self.stack.layout, TabularWorld):
            parallel, serial, threshold = compose_any_batch, compose_any_batch_serial, PARALLEL_MIN_ANY_COMPOSE_ENTRIES
        else:
            parallel, serial, threshold = compose_batch, compose_batch_serial, PARALLEL_MIN_COMPOSE_ENTRIES
        kernel = pick(parallel, serial, combos.size * self.values[0].size, threshold)
        kernel(self.values, self.stack.support, combos, betas, self.code, actions, covered)
        return actions, covered

    def offline(self, combos, actions, record_path: bool = False,
                max_steps: int | None = None) -> OfflineBatch:
        """Roll each action table (B, S) out through its combination's (B, k) empirical model."""
        stack = self.stack
        combos = _check_combos(stack, combos)
        actions = np.ascontiguousarray(actions, dtype=np.int32)
        if actions.shape != (combos.shape[0], stack.layout.n_states):
            raise LeverError(f"actions must have shape {(combos.shape[0], stack.layout.n_states)}, "
                             f"got {actions.shape}")
        max_steps = max_steps or stack.layout.max_steps
        n = combos.shape[0]
        returns = np.empty(n)
        vectors = np.empty((n, self.set_weights.shape[0]))
        steps = np.empty(n, dtype=np.int64)
        ends = np.empty(n, dtype=np.int8)
        paths = np.empty((n, max_steps + 1) if record_path else (0, 0), dtype=np.int32)
        world = stack.layout
        if isinstance(world, TabularWorld):
            kernel = pick(offline_rollout_table_batch, offline_rollout_table_batch_serial, n,
                          PARALLEL_MIN_TABLE_OFFLINE_ROLLOUTS)
            kernel(combos, actions, stack.support, stack.next_state, stack.reward_model, world.terminates,
                   world.start, max_steps, self.set_weights, returns, vectors, steps, ends, paths)
            return OfflineBatch(returns, vectors, steps, ends, paths if record_path else None)
        kernel = pick(offline_rollout_batch, offline_rollout_batch_serial, n, PARALLEL_MIN_ROLLOUTS)
        kernel(combos, actions, stack.support, stack.next_state, stack.reward_model, stack.layout.world.cells,
               stack.layout.start, max_steps, self.set_weights, returns, vectors, steps, ends, paths)
        return OfflineBatch(returns, vectors, steps, ends, paths if record_path else None)

    def plan(self, rows, gamma: float = 0.99, tol: float = 1e-9, max_iters: int = 10_000) -> PlanResult:
        """Value iteration over the empirical model of ``rows`` (k,) only, discount ``gamma`` in [0, 1)."""
        if not 0 <= gamma < 1:
            raise LeverError(f"planning gamma must be in [0, 1), got {gamma}")
        stack = self.stack
        combos = _check_combos(stack, np.asarray(rows).reshape(1, -1))
        n_states = stack.layout.n_states
        if isinstance(stack.layout, TabularWorld):
            q = np.empty((n_states, stack.layout.n_actions))
            actions = np.empty(n_states, dtype=np.int32)
            sweeps = plan_table(combos[0], stack.support, stack.next_state, stack.reward_model,
                                stack.layout.terminates, self.set_weights, float(gamma), float(tol), int(max_iters),
                                q, actions)
            return PlanResult(q, actions, int(sweeps))
        q = np.empty((1, n_states, N_ACTIONS))
        actions = np.empty((1, n_states), dtype=np.int32)
        iterations = np.empty(1, dtype=np.int64)
        plan_batch(combos, stack.support, stack.next_state, stack.reward_model, stack.layout.world.cells,
                   self.set_weights, float(gamma), float(tol), int(max_iters), q, actions, iterations)
        return PlanResult(q[0], actions[0], int(iterations[0]))


def compose_actions(stack: PolicyStack, combos, objective: ObjectiveLike = "path",
                    operator: str = "sum", betas=None, rules: str = "study") -> tuple[np.ndarray, np.ndarray]:
    """Greedy action tables of B compositions: :meth:`Composer.actions` for one call.

    combos: int (B, k) rows of ``stack``; betas: per-member weights (B, k);
    rules: the rule set ``objective`` is read under (a weighted objective
    needs ``"linear"``). Returns actions int32 (B, S), -1 at dead ends, and
    covered pairs int64 (B,).
    """
    return Composer(stack, Objective.parse(objective, stack.layout.component_names), operator,
                    rules).actions(combos, betas)


def offline_evaluate(stack: PolicyStack, combos, actions, objective: ObjectiveLike, rules: str = "study",
                     record_path: bool = False, max_steps: int | None = None) -> OfflineBatch:
    """Roll each action table (B, S) out through its combination's empirical model (:meth:`Composer.offline`)."""
    return Composer(stack, Objective.parse(objective, stack.layout.component_names),
                    rules=rules).offline(combos, actions, record_path, max_steps)


def plan_on_support(stack: PolicyStack, rows, objective: ObjectiveLike, rules: str = "study",
                    gamma: float = 0.99, tol: float = 1e-9, max_iters: int = 10_000) -> PlanResult:
    """Value iteration under ``objective`` over the empirical model of ``rows`` only (:meth:`Composer.plan`)."""
    return Composer(stack, Objective.parse(objective, stack.layout.component_names),
                    rules=rules).plan(rows, gamma, tol, max_iters)
