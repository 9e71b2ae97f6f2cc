"""One cell of the reproduction: every query, mode and method for one (layout seed, budget).

A cell builds the snapshot library, trains each query from scratch (the
baseline, timed), runs the study's strategies (the hybrid-k sweep: k = 1 is
targeted, k = 3 hybrid, k = 5 exhaustive), composes the chosen entries by
unweighted Q-sum, and evaluates every composed policy with one greedy
episode in the true environment. It also runs the controlled experiments
behind the study's findings 2 and 3 (see :data:`EXPERIMENTS`). The output is
a list of tidy rows (one per experiment, query, mode and method), plain
dicts with the columns of :data:`COLUMNS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..compose import compose_actions, offline_evaluate, plan_on_support
from ..evaluation import rollout
from ..worlds.grid import Layout
from ..kernels import constants as K
from ..worlds.objectives import Objective
from ..protocol import CANDIDATES_PER_SUBQUERY, HYBRID_K, K_SWEEP, Query, queries
from ..strategies import grid
from ..training import TrainConfig, train
from .library import SnapshotLibrary, train_runs

#: What each row belongs to: the study's protocol (with its k-sweep), the two coverage
#: ablations (finding 2) and the long-horizon comparison (finding 3).
EXPERIMENTS = ("protocol", "snapshot_cap", "thinning", "long_horizon")
#: Support thinning fractions of the second coverage ablation.
THIN_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8)
#: The discount of planning on the support and of the value-propagating scratch baseline.
LONG_GAMMA = 0.99
#: The query of the long-horizon comparison: the only one whose route needs the lever.
LONG_QUERY = "path+gold+hazard+lever"

#: The columns of a result row, in table order.
COLUMNS = ("setting", "rules", "selection", "operator", "seed", "budget", "experiment", "mode", "query", "method", "k",
           "snapshot_cap", "thin_fraction", "gamma", "true_return", "reached_exit", "pulled_lever",
           "dead_end", "end", "steps", "time_s", "combinations_tried", "union_coverage",
           "offline_return", "members")


def method_name(k: int) -> str:
    """The study's name of hybrid(k): targeted at k = 1, exhaustive at 5 (all candidates)."""
    return {1: "targeted", CANDIDATES_PER_SUBQUERY: "exhaustive"}.get(k, "hybrid")


@dataclass(frozen=True)
class Choice:
    """What one search chose: stack ``rows``, its greedy ``actions`` (S,), offline return, the
    (state, action) pairs its union support covers, and the search's cost."""

    rows: tuple[int, ...]
    actions: np.ndarray
    offline_return: float
    covered: int
    tried: int
    time_s: float


def search(library: SnapshotLibrary, query: Query, k: int, objective: Objective, rules: str,
           operator: str = "sum") -> Choice:
    """hybrid(k): the best of the k^m combinations of each sub-query's top k entries, by offline return.

    Candidates are ranked by their own greedy return; every combination is
    composed by unweighted Q-sum (or ``operator`` ``"max"``, GPI), masked to its union support, and scored by
    a greedy rollout through its empirical model with rewards relabelled for
    the query (no environment interaction). Ties go to the earlier-ranked.
    """
    began = time.perf_counter()
    lists = [library.candidates(sub, k) for sub in query.subqueries]
    combos = grid(lists)
    actions, covered = compose_actions(library.stack, combos, objective, operator, rules=rules)
    offline = offline_evaluate(library.stack, combos, actions, objective, rules)
    best = int(np.argmax(offline.returns))
    elapsed = time.perf_counter() - began
    return Choice(tuple(int(r) for r in combos[best]), actions[best], float(offline.returns[best]),
                  int(covered[best]), combos.shape[0], elapsed)


def free_pairs(layout: Layout) -> int:
    """(state, action) pairs of the cells an agent can stand in before the episode ends."""
    cells = layout.cells.ravel()
    return int(np.sum((cells != K.WALL) & (cells != K.HAZARD) & (cells != K.EXIT))) * K.N_ACTIONS


def outcome(layout: Layout, actions: np.ndarray, objective: Objective, rules: str) -> dict:
    """One greedy episode of an action table in the true environment, as row columns."""
    result = rollout(layout, actions, objective, rules, record_path=True)
    return {"true_return": result.ret, "reached_exit": result.end == "exit",
            "pulled_lever": layout.lever is not None and bool(np.any(result.path == layout.lever)),
            "dead_end": result.end == "dead_end", "end": result.end, "steps": result.steps}


class CellRunner:
    """Computes the rows of one (setting, layout seed, budget) cell; see the module docstring."""

    def __init__(self, setting: str, seed: int, budget: str, rules: str = "study", train_seed: int = 0,
                 episodes: int | None = None, modes=None, ablations: bool = True, selection: str = "study",
                 operator: str = "sum"):
        self.setting, self.seed, self.budget, self.rules = setting, seed, budget, rules
        self.layout = Layout.generate(setting, seed=seed)
        overrides = {"seed": train_seed, "rules": rules}
        if episodes is not None:
            overrides["episodes"] = episodes
        self.config = TrainConfig.from_budget(budget, setting, **overrides)
        self.queries = queries(modes) if modes is not None else queries()
        self.ablations = ablations
        self.selection, self.operator = selection, operator
        self.pairs = free_pairs(self.layout)

    def row(self, experiment: str, query: Query, method: str, **values) -> dict:
        """A result row with this cell's columns filled in."""
        base = {name: None for name in COLUMNS}
        base.update(setting=self.setting, rules=self.rules, selection=self.selection, operator=self.operator,
                    seed=self.seed, budget=self.budget,
                    experiment=experiment, mode=query.mode, query=query.query, method=method)
        base.update(values)
        return base

    def composed_row(self, library: SnapshotLibrary, query: Query, k: int, experiment: str, **extra) -> dict:
        """Search, compose and evaluate one query with hybrid(k) on ``library``."""
        objective = Objective.parse(query.query)
        choice = search(library, query, k, objective, self.rules, self.operator)
        return self.row(experiment, query, method_name(k), k=k, time_s=choice.time_s,
                        combinations_tried=choice.tried, union_coverage=choice.covered / self.pairs,
                        offline_return=choice.offline_return,
                        members="|".join(library.entries[r].label for r in choice.rows),
                        **outcome(self.layout, choice.actions, objective, self.rules), **extra)

    def train_library(self, runs_folder) -> None:
        """Train the library's runs into ``runs_folder`` (the first stage of :meth:`run`, done apart)."""
        train_runs(self.layout, self.config, folder=runs_folder)

    def run(self, runs_folder=None) -> list[dict]:
        """Every row of the cell; the library's runs are taken from ``runs_folder`` where saved there."""
        library = SnapshotLibrary.build(self.layout, self.config, selection=self.selection,
                                        runs_folder=runs_folder)
        # Warm-up: the first call of each kernel in a process loads or compiles it (and the largest
        # batch starts the thread pool); that is not the search's cost.
        widest = max(self.queries, key=lambda q: q.n_subqueries)
        for k in (1, CANDIDATES_PER_SUBQUERY):
            search(library, widest, k, Objective.parse(widest.query), self.rules, self.operator)
        rows = []
        scratch = {}
        for query in self.queries:
            objective = Objective.parse(query.query)
            if query.query not in scratch:
                policy = train(self.layout, objective, self.config)
                scratch[query.query] = (policy.wall_time, outcome(self.layout, policy.greedy_actions,
                                                                  objective, self.rules))
            wall, result = scratch[query.query]
            rows.append(self.row("protocol", query, "scratch", gamma=self.config.gamma, time_s=wall, **result))
            for k in K_SWEEP:
                rows.append(self.composed_row(library, query, k, "protocol"))
        rows += self.long_horizon(library)
        if self.ablations:
            rows += self.coverage_ablations(library)
        return rows

    def long_horizon(self, library: SnapshotLibrary) -> list[dict]:
        """Finding 3: the lever query composed, planned on the union support, and trained at γ = 0.99."""
        rows = []
        objective = Objective.parse(LONG_QUERY)
        long_queries = [q for q in self.queries if q.query == LONG_QUERY]
        if not long_queries:
            return rows
        policy = train(self.layout, objective, replace(self.config, gamma=LONG_GAMMA))
        result = outcome(self.layout, policy.greedy_actions, objective, self.rules)
        for query in long_queries:
            rows.append(self.row("long_horizon", query, "scratch", gamma=LONG_GAMMA, time_s=policy.wall_time,
                                 **result))
            for k in (1, HYBRID_K, CANDIDATES_PER_SUBQUERY):
                choice = search(library, query, k, objective, self.rules, self.operator)
                began = time.perf_counter()
                plan = plan_on_support(library.stack, choice.rows, objective, self.rules, gamma=LONG_GAMMA)
                planning = time.perf_counter() - began
                rows.append(self.row("long_horizon", query, f"{method_name(k)}+plan", k=k, gamma=LONG_GAMMA,
                                     time_s=choice.time_s + planning, combinations_tried=choice.tried,
                                     members="|".join(library.entries[r].label for r in choice.rows),
                                     **outcome(self.layout, plan.actions, objective, self.rules)))
        return rows

    def coverage_ablations(self, library: SnapshotLibrary) -> list[dict]:
        """Finding 2: hybrid(3) on libraries cut at snapshot episode e, and on thinned supports."""
        rows = []
        last = max(e.episode for e in library.entries)
        for cap in sorted(_doubling(last) | {last}):
            restricted = library.up_to(cap)
            for query in self.queries:
                if all(restricted.entries_of(sub) for sub in query.subqueries):
                    rows.append(self.composed_row(restricted, query, HYBRID_K, "snapshot_cap", snapshot_cap=cap))
        for i, fraction in enumerate(THIN_FRACTIONS):
            thinned = library.thinned(fraction, seed=1000 * self.seed + i)
            for query in self.queries:
                rows.append(self.composed_row(thinned, query, HYBRID_K, "thinning", thin_fraction=fraction))
        return rows


def _doubling(last: int) -> set[int]:
    # Snapshot episodes 1000, 2000, 4000, 8000, ...: a handful of caps whatever the budget.
    caps, cap = set(), 1000
    while cap <= last:
        caps.add(cap)
        cap *= 2
    return caps
