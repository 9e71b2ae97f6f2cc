"""One layout seed of the study's first public release, as it ran (FIRST_RELEASE.md §6–§9).

Its world (``rules="first-release"``), γ = 0.99 and 30k/150k/300k episodes
train the 8 library objectives once per budget. **One library serves every
budget** of the seed: of each (budget, objective) run it keeps 3 snapshots,
the log rows at 20/60/80% (:func:`lever.protocol.first_release_log_rows`).

Per query and mode, the candidates of a sub-query are the 5 best entries of
exactly its objective, ranked by their own greedy return (rounded to an
integer, as the release's log keeps it; lever's stand-in for the release's
regressor, which predicts that return from a text and a behaviour embedding
lever does not have). targeted takes the **2 best of all sub-queries pooled**,
hybrid the 3^m combinations of each sub-query's best 3, exhaustive all 5^m.

Each method is composed two ways (the ``operator`` column): ``route``, the
release's published method, the best route on the union of the members'
logged transitions (:mod:`lever.route`; the combination with the best
route value is kept), replayed in the true environment; and ``sum``, the
Q-sum masked to the union support, chosen by its offline return and rolled
out greedily. Evaluation uses the −20 gold exit rule, as the published
returns do. Scratch is the query's own run at that budget: its final table,
one greedy episode (H·W steps at most); its time is the run's training time.
Composition does not depend on the budget (the pool is shared), so it is
computed once and reported under every budget.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..compose import compose_actions, offline_evaluate
from ..evaluation import rollout
from ..worlds.grid import Layout
from ..protocol import (
    CANDIDATES_PER_SUBQUERY, FIRST_RELEASE_TARGETED, HYBRID_K, LIBRARY_OBJECTIVES, Query,
    first_release_log_rows, queries, top_overall,
)
from ..route import RouteSearch, route_action_table
from ..strategies import grid
from ..training import TrainConfig, TrainedPolicy
from .cell import COLUMNS, free_pairs
from .library import Entry, SnapshotLibrary, train_runs

#: The rule set of the first release's world.
RULES = "first-release"
#: The composition operators a first-release cell reports: its published route search, and the Q-sum.
OPERATORS = ("route", "sum")
#: The snapshot selection recorded in the rows.
SELECTION = "first-release"
#: The methods, with the candidates per sub-query each combines (targeted pools, see the module docstring).
METHOD_CANDIDATES = {"targeted": None, "hybrid": HYBRID_K, "exhaustive": CANDIDATES_PER_SUBQUERY}


def library_entries(layout: Layout, runs: dict) -> list[Entry]:
    """The 3 entries of each (budget, objective) run, ``runs`` budget → objective → TrainedPolicy."""
    entries = []
    for budget, by_objective in runs.items():
        for objective, policy in by_objective.items():
            n_snapshots = len(policy.snapshot_episodes)
            for row in first_release_log_rows(n_snapshots):
                final = row >= n_snapshots
                snapshot = policy if final else policy.snapshot(row)
                episode = policy.config.episodes - 1 if final else int(policy.snapshot_episodes[row])
                greedy = round(rollout(layout, snapshot, objective, RULES).ret)
                entries.append(Entry(objective, episode, final, float(greedy), snapshot))
    return entries


def _union_pairs(library: SnapshotLibrary, rows) -> int:
    bits = np.bitwise_or.reduce(library.stack.support[list(rows)], axis=0)
    return int(np.unpackbits(bits.astype(np.uint8)).sum())


class FirstReleaseCell:
    """The rows of one layout seed of a first-release set, for every budget given."""

    def __init__(self, setting: str, seed: int, budgets, train_seed: int = 0, episodes: int | None = None,
                 modes=None):
        self.setting, self.seed, self.budgets = setting, seed, tuple(budgets)
        self.layout = Layout.generate(setting, seed=seed)
        overrides = {"seed": train_seed}
        if episodes is not None:
            overrides["episodes"] = episodes
        self.configs = {b: TrainConfig.from_budget(b, setting, **overrides) for b in self.budgets}
        self.queries = queries(modes) if modes is not None else queries()
        self.pairs = free_pairs(self.layout)

    def train_library(self, runs_folder) -> None:
        """Train every budget's 8 runs into ``runs_folder`` (one sub-folder per budget)."""
        self.runs(runs_folder)

    def runs(self, runs_folder=None) -> dict:
        """budget → objective → TrainedPolicy, trained or loaded from ``runs_folder``."""
        return {budget: dict(zip(LIBRARY_OBJECTIVES, train_runs(
                    self.layout, config, folder=None if runs_folder is None else Path(runs_folder) / budget)))
                for budget, config in self.configs.items()}

    def row(self, budget: str, query: Query, method: str, operator: str, **values) -> dict:
        """A result row with this cell's columns filled in."""
        base = {name: None for name in COLUMNS}
        base.update(setting=self.setting, rules=RULES, selection=SELECTION, operator=operator, seed=self.seed,
                    budget=budget, experiment="protocol", mode=query.mode, query=query.query, method=method)
        base.update(values)
        return base

    def outcome(self, actions: np.ndarray, objective: str) -> dict:
        """One greedy episode of an action table in the true world, −20 gold exit rule, as row columns."""
        result = rollout(self.layout, actions, objective, RULES, record_path=True, legacy_gold_exit=True)
        return {"true_return": result.ret, "reached_exit": result.end == "exit",
                "pulled_lever": self.layout.lever is not None and bool(np.any(result.path == self.layout.lever)),
                "dead_end": result.end == "dead_end", "end": result.end, "steps": result.steps}

    def combos(self, library: SnapshotLibrary, query: Query, method: str) -> np.ndarray:
        """The combinations ``method`` tries for ``query``, int64 (B, m), best-ranked first."""
        lists = [library.candidates(sub, CANDIDATES_PER_SUBQUERY) for sub in query.subqueries]
        n = METHOD_CANDIDATES[method]
        if n is None:
            scores = [[library.entries[r].greedy_return for r in rows] for rows in lists]
            return np.array([top_overall(lists, scores, FIRST_RELEASE_TARGETED)], dtype=np.int64)
        return grid([rows[:n] for rows in lists])

    def composed(self, library: SnapshotLibrary, query: Query, method: str, operator: str) -> dict:
        """Search, compose and evaluate one query with one method and operator: the row's values."""
        began = time.perf_counter()
        combos = self.combos(library, query, method)
        if operator == "route":
            routes = RouteSearch(library.stack, query.query, legacy_gold_exit=True).search(combos)
            best = int(np.argmax(routes.values))
            actions = route_action_table(self.layout, routes.route(best))
            offline = float(routes.values[best])
        else:
            actions_all, _ = compose_actions(library.stack, combos, query.query, "sum", rules=RULES)
            returns = offline_evaluate(library.stack, combos, actions_all, query.query, RULES).returns
            best = int(np.argmax(returns))
            actions, offline = actions_all[best], float(returns[best])
        elapsed = time.perf_counter() - began
        rows = combos[best]
        return dict(k=METHOD_CANDIDATES[method], time_s=elapsed, combinations_tried=int(combos.shape[0]),
                    union_coverage=_union_pairs(library, rows) / self.pairs,
                    offline_return=offline if np.isfinite(offline) else None,
                    members="|".join(library.entries[r].label for r in rows),
                    **self.outcome(actions, query.query))

    def run(self, runs_folder=None) -> list[dict]:
        """Every row of the seed: per budget, scratch and every method under both operators."""
        runs = self.runs(runs_folder)
        library = SnapshotLibrary.of(self.layout, library_entries(self.layout, runs),
                                     {(b, o): p.wall_time for b, by in runs.items() for o, p in by.items()})
        # Warm-up: the first call of each kernel in a process loads it; that is not the search's cost.
        widest = max(self.queries, key=lambda q: q.n_subqueries)
        for operator in OPERATORS:
            self.composed(library, widest, "targeted", operator)
        composed = {(query, method, operator): self.composed(library, query, method, operator)
                    for query in self.queries for method in METHOD_CANDIDATES for operator in OPERATORS}
        rows = []
        for budget in self.budgets:
            for query in self.queries:
                own: TrainedPolicy = runs[budget][query.query]
                rows.append(self.row(budget, query, "scratch", None, gamma=own.config.gamma,
                                     time_s=own.wall_time, **self.outcome(own.greedy_actions, query.query)))
                for method in METHOD_CANDIDATES:
                    for operator in OPERATORS:
                        rows.append(self.row(budget, query, method, operator,
                                             **composed[(query, method, operator)]))
        return rows

