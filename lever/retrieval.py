"""Retrieval: one layout's policies prepared for searches, and ranked candidates per component.

For an objective with m components, each component c gets a ranked list of
candidate policies of the layout: the policies whose own objective includes
c, best first by the predicted return of the objective restricted to c
(its set weights · ψ(start), under the library's rules), from the
library's index or, without one, from the value signatures directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compose import PolicyStack
from .errors import LeverError
from .evaluation import rollout
from .worlds.grid import Layout
from .worlds.objectives import Objective
from .worlds.tabular import TabularWorld


@dataclass(frozen=True, eq=False)
class PreparedLayout:
    """One layout's policies, ready for repeated searches.

    ``stack`` the checked tables; ``objectives`` the objective each row was
    trained on; ``signatures`` float64 (P, N_SETS), ψ(start) of each row (the
    return of every component set along its greedy rollout); ``index`` a
    ``PolicyIndex`` (queried filtered by layout) or None to rank by
    ``signatures`` directly (brute force); ``rules`` the rule set the
    policies were trained under and searches are scored with.
    """

    stack: PolicyStack
    objectives: tuple[Objective, ...]
    signatures: np.ndarray
    index: object | None = None
    rules: str = "study"

    @property
    def layout(self) -> Layout | TabularWorld:
        """The layout the stacked policies were trained on."""
        return self.stack.layout

    @classmethod
    def from_policies(cls, layout: Layout | TabularWorld, policies, policy_ids=None) -> "PreparedLayout":
        """From ``TrainedPolicy`` objects (all of one rule set), ranking candidates by brute force (no index)."""
        policies = list(policies)
        rules = {p.config.rules for p in policies}
        if len(rules) > 1:
            raise LeverError(f"policies trained under different rules {sorted(rules)} cannot be searched together")
        rules = rules.pop() if rules else "study"
        stack = PolicyStack.from_policies(layout, policies, policy_ids)
        signatures = np.array([rollout(layout, p, p.objective, rules).set_returns for p in policies])
        return cls(stack, tuple(p.objective for p in policies), signatures, None, rules)


def prepare_layout(library, layout=None) -> PreparedLayout:
    """The :class:`PreparedLayout` of one layout a ``PolicyLibrary`` holds.

    layout: a layout id, a :class:`Layout`, or None when the library holds
    exactly one layout. LeverError for a layout the library does not hold.
    """
    held = tuple(library.layout_ids)
    if layout is None:
        if len(held) != 1:
            raise LeverError(f"the library holds {len(held)} layouts; name one of them "
                             f"({', '.join(held) or 'none'})")
        layout_id = held[0]
    else:
        layout_id = layout.id if isinstance(layout, (Layout, TabularWorld)) else str(layout)
    if layout_id not in held:
        raise LeverError(f"the library holds no layout {layout_id!r}; it holds {', '.join(held) or 'none'}")
    grid = library.layout(layout_id)
    stack = PolicyStack.from_tables(grid, library.tables(layout_id))
    by_id = {r.policy_id: r for r in library.records_for(layout_id)}
    missing = [int(p) for p in stack.policy_ids if int(p) not in by_id]
    if missing:
        raise LeverError(f"tables of layout {layout_id} hold policies {missing} with no record")
    records = [by_id[int(p)] for p in stack.policy_ids]
    signatures = np.array([r.greedy_return for r in records], dtype=np.float64)
    return PreparedLayout(stack, tuple(r.objective for r in records), signatures, library.index(),
                          library.spec.rules)


@dataclass(frozen=True, eq=False)
class Candidates:
    """Ranked candidates per objective component: ``rows[j]`` int64 and ``scores[j]`` float64,
    best first, for component ``components[j]``."""

    components: tuple[str, ...]
    rows: tuple[np.ndarray, ...]
    scores: tuple[np.ndarray, ...]

    def prefix(self, k: int) -> tuple[np.ndarray, ...]:
        """The first ``k`` candidate rows of each component."""
        return tuple(r[:k] for r in self.rows)


def retrieve(prepared: PreparedLayout, objective: Objective, pool: int | None = None,
             excluded: np.ndarray | None = None) -> Candidates:
    """Rank, per component of ``objective``, the layout's policies trained on that component.

    Each component c is queried with the objective restricted to c; ``pool``
    caps the list length; ``excluded`` bool (P,) marks stack rows that are
    never candidates. LeverError if a component has no candidate.
    """
    weights = objective.array
    if pool is not None and pool < 1:
        raise LeverError(f"pool must be >= 1, got {pool}")
    stack = prepared.stack
    relevant = np.array([o.array for o in prepared.objectives]) != 0  # (P, C)
    components, rows_out, scores_out = [], [], []
    for c in np.flatnonzero(weights):
        alone = np.zeros_like(weights)
        alone[c] = weights[c]
        query = Objective(tuple(alone), objective.names).set_weights(prepared.rules)
        if prepared.index is not None:
            found = prepared.index.rank(query, stack.n_policies, layout_id=stack.layout.id)
            rows = stack.rows([cand.policy_id for cand in found])
            scores = np.array([cand.score for cand in found], dtype=np.float64)
        else:
            predicted = prepared.signatures @ query
            rows = np.argsort(-predicted, kind="stable").astype(np.int64)
            scores = predicted[rows]
        keep = relevant[rows, c] if excluded is None else relevant[rows, c] & ~excluded[rows]
        if not keep.any() and relevant[rows, c].any():
            raise LeverError(f"no candidate policy for component {objective.names[c]!r} on layout {stack.layout.id}: "
                             f"its policies were added without a vector Q table, which the max operator (GPI) "
                             f"needs: use operator='sum', or add them with an (S, A, C) table")
        rows, scores = rows[keep][:pool], scores[keep][:pool]
        if rows.size == 0:
            raise LeverError(f"no candidate policy for component {objective.names[c]!r} on layout "
                             f"{stack.layout.id}: the library has no policy trained on it")
        components.append(objective.names[c])
        rows_out.append(rows)
        scores_out.append(scores)
    return Candidates(tuple(components), tuple(rows_out), tuple(scores_out))
