"""Composition by route search on the union of logged transitions (operator ``route``).

The study's first public release composes a query without the members' Q
tables: it unions the logged transitions of the chosen policies, finds the
best route from the start to the exit on that union with the exact step
rewards (a longest-path DP over the DAG its right/down moves make), and
reports the return of replaying that route in the true environment. This
module is that search for a :class:`~lever.compose.PolicyStack` of one
layout, batched over combinations (:mod:`lever.kernels.route`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compose import PolicyStack
from .errors import LeverError
from .threads import pick
from .worlds.grid import Layout
from .kernels.constants import GOLD_BIT, N_ACTIONS
from .kernels.route import PARALLEL_MIN_ROUTE_STATES, best_routes, best_routes_serial, route_rewards
from .worlds.objectives import Objective, ObjectiveLike

#: The rule set whose world the route search needs (every move raises row + col).
ROUTE_RULES = "first-release"


@dataclass(frozen=True)
class Routes:
    """The best route of each combination: ``values`` float64 (B,) (-inf where none reaches the
    exit), ``lengths`` int32 (B,) and ``actions`` int32 (B, L), padded with -1."""

    values: np.ndarray
    lengths: np.ndarray
    actions: np.ndarray

    def found(self, b: int) -> bool:
        """Whether combination ``b`` has a logged route to the exit."""
        return bool(np.isfinite(self.values[b]))

    def route(self, b: int) -> np.ndarray:
        """The actions of combination ``b``'s route, int32 (length,)."""
        return self.actions[b, : self.lengths[b]].copy()


def topological_order(layout: Layout) -> np.ndarray:
    """The cells by ascending row + col, int64 (S,): every first-release move goes forward in it."""
    rows, cols = np.divmod(np.arange(layout.n_states), layout.width)
    return np.argsort(rows + cols, kind="stable").astype(np.int64)


class RouteSearch:
    """Best routes on the union support of combinations of ``stack``'s rows, for one objective.

    The rewards are those of ``objective`` in the first release's world,
    with its flat -20 gold exit penalty when ``legacy_gold_exit`` (the rule
    its published evaluations used). Computed once per search object.
    """

    def __init__(self, stack: PolicyStack, objective: ObjectiveLike, legacy_gold_exit: bool = True):
        objective = Objective.parse(objective)
        if not objective.is_set:
            raise LeverError(f"the route search rewards a set of components, not the weighted {objective.name!r}")
        self.stack = stack
        self.objective = objective
        self.world = stack.layout.world_for(ROUTE_RULES, legacy_gold_exit)
        n_gold = stack.layout.gold.size
        shape = (stack.layout.n_states, N_ACTIONS, 2)
        self.edge_reward = np.zeros(shape)
        self.exit_reward = np.zeros(shape + (n_gold + 1 if objective.mask & GOLD_BIT else 1,))
        route_rewards(self.world, objective.mask, self.edge_reward, self.exit_reward)
        self.order = topological_order(stack.layout)

    def search(self, combos) -> Routes:
        """The best route of every combination, combos int (B, m) rows of the stack."""
        combos = np.ascontiguousarray(combos, dtype=np.int64)
        if combos.ndim != 2 or combos.shape[1] == 0:
            raise LeverError(f"combinations must have shape (B, m >= 1), got {combos.shape}")
        if combos.size and (combos.min() < 0 or combos.max() >= self.stack.n_policies):
            raise LeverError(f"combination rows must lie in 0..{self.stack.n_policies - 1}")
        layout = self.stack.layout
        n = combos.shape[0]
        routes = Routes(np.empty(n), np.zeros(n, dtype=np.int32),
                        np.full((n, layout.height + layout.width), -1, dtype=np.int32))
        kernel = pick(best_routes, best_routes_serial, n * (self.exit_reward.size // N_ACTIONS),
                      PARALLEL_MIN_ROUTE_STATES)
        kernel(self.world, layout.start, self.order, self.stack.support, combos, self.objective.mask,
               self.edge_reward, self.exit_reward, routes.values, routes.lengths, routes.actions)
        return routes


def route_action_table(layout: Layout, actions: np.ndarray) -> np.ndarray:
    """A route's actions as an action table int32 (S,) (-1 off the route), to replay it greedily.

    A route enters no cell twice in the first release's world, so following
    the table from the start replays the route exactly.
    """
    world = layout.world_for(ROUTE_RULES)
    table = np.full(layout.n_states, -1, dtype=np.int32)
    cell = layout.start
    for action in np.asarray(actions, dtype=np.int64):
        if table[cell] >= 0:
            raise LeverError(f"the route enters cell {cell} twice")
        table[cell] = action
        cell = int(world.moves[cell, action])
    return table
