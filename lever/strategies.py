"""Strategies: how many candidate combinations to explore before composing.

For an objective with m components, each component c gets a ranked list of
candidate policies of the layout: the policies whose own objective includes
c, best first by the index's predicted return under w restricted to c
(``w_c e_c · ψ(start)``). A combination takes one candidate per component.

- ``targeted``: the first candidate of each component, one combination;
- ``hybrid(k)``: the first k of each, all k^m combinations;
- ``exhaustive``: every candidate of each, all combinations;
- ``beam(width, k)``: grows combinations one component at a time over every
  candidate, keeping the ``width`` best partial combinations, and also
  scores the hybrid(k) grid.

All strategies share one ranked candidate list, so their scored sets are
nested (targeted ⊆ hybrid(k) ⊆ beam(width, k) ⊆ exhaustive) and their best
scores are ordered the same way by construction.

Scoring a combination: ``offline`` (default) rolls the composed policy out
through the combination's empirical model; ``sf`` adds the members'
predicted component returns w_c · ψ(start) (no composition at all);
``ridge`` fits a closed-form ridge regressor from the members' ψ(start) to
the offline score on a seeded sample and predicts the rest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .compose import (
    ComposedPolicy, PolicyStack, _operator_code, compose_actions, offline_evaluate,
    plan_on_support, true_evaluate,
)
from .embeddings import RidgeRegressor
from .errors import LeverError
from .evaluation import rollout
from .gridworld import Layout
from .kernels.constants import COMPONENT_NAMES
from .objectives import Objective, ObjectiveLike

SCORINGS = ("offline", "sf", "ridge")
STRATEGIES = ("targeted", "hybrid", "exhaustive", "beam")

#: Combinations composed per kernel call; bounds the (B, S) action buffer.
CHUNK = 32_768
#: Refuse searches larger than this many combinations (ask for a pool or beam instead).
MAX_COMBINATIONS = 5_000_000
#: Combinations the ridge scorer fits on (scored offline), seeded.
RIDGE_SAMPLE = 32


@dataclass(frozen=True, eq=False)
class PreparedLayout:
    """One layout's policies, ready for repeated searches.

    ``stack`` the checked tables; ``objectives`` the objective each row was
    trained on; ``signatures`` float64 (P, C), ψ(start) of each row (its
    greedy return vector); ``index`` a ``PolicyIndex`` (queried filtered by
    layout) or None to rank by ``signatures`` directly (brute force).
    """

    stack: PolicyStack
    objectives: tuple[Objective, ...]
    signatures: np.ndarray
    index: object | None = None

    @property
    def layout(self) -> Layout:
        """The layout the stacked policies were trained on."""
        return self.stack.layout

    @classmethod
    def from_policies(cls, layout: Layout, policies, policy_ids=None) -> "PreparedLayout":
        """From ``TrainedPolicy`` objects, ranking candidates by brute force (no index)."""
        policies = list(policies)
        stack = PolicyStack.from_policies(layout, policies, policy_ids)
        signatures = np.array([rollout(layout, p, p.objective).return_vector for p in policies])
        return cls(stack, tuple(p.objective for p in policies), signatures)


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
        layout_id = layout.id if isinstance(layout, Layout) else str(layout)
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
    return PreparedLayout(stack, tuple(r.objective for r in records), signatures, library.index())


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


def retrieve(prepared: PreparedLayout, objective: ObjectiveLike, pool: int | None = None) -> Candidates:
    """Rank, per component of ``objective``, the layout's policies trained on that component.

    Each component c is queried with w restricted to c; ``pool`` caps the
    list length. LeverError if a component has no candidate.
    """
    weights = Objective.parse(objective).array
    if pool is not None and pool < 1:
        raise LeverError(f"pool must be >= 1, got {pool}")
    stack = prepared.stack
    relevant = np.array([o.array for o in prepared.objectives]) != 0  # (P, C)
    components, rows_out, scores_out = [], [], []
    for c in np.flatnonzero(weights):
        query = np.zeros_like(weights)
        query[c] = weights[c]
        if prepared.index is not None:
            found = prepared.index.query(query, stack.n_policies, layout_id=stack.layout.id)
            rows = stack.rows([cand.policy_id for cand in found])
            scores = np.array([cand.score for cand in found], dtype=np.float64)
        else:
            predicted = prepared.signatures @ query
            rows = np.argsort(-predicted, kind="stable").astype(np.int64)
            scores = predicted[rows]
        keep = relevant[rows, c]
        rows, scores = rows[keep][:pool], scores[keep][:pool]
        if rows.size == 0:
            raise LeverError(f"no candidate policy for component {COMPONENT_NAMES[c]!r} on layout "
                             f"{stack.layout.id}: the library has no policy trained on it")
        components.append(COMPONENT_NAMES[c])
        rows_out.append(rows)
        scores_out.append(scores)
    return Candidates(tuple(components), tuple(rows_out), tuple(scores_out))


def grid(lists) -> np.ndarray:
    """All combinations, one entry per list, in ``itertools.product`` order: int64 (Π n_j, m)."""
    mesh = np.meshgrid(*lists, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int64)


class Scorer:
    """Scores batches of combinations under one objective and tallies cost.

    Call it with rows int64 (B, j); returns float64 (B,). Accumulates
    ``composition_time``, ``scoring_time`` (seconds) and ``tried``.
    """

    def __init__(self, prepared: PreparedLayout, objective: ObjectiveLike, candidates: Candidates,
                 operator: str = "sum", scoring: str = "offline", seed: int = 0):
        if scoring not in SCORINGS:
            raise LeverError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORINGS)}")
        _operator_code(operator)
        self.prepared = prepared
        self.objective = Objective.parse(objective)
        self.operator = operator
        self.scoring = scoring
        self.seed = seed
        self.composition_time = 0.0
        self.scoring_time = 0.0
        self.tried = 0
        self._values = None  # the operator's tables, computed on first composition
        n_policies = prepared.stack.n_policies
        # Predicted return of each row as the candidate of slot j (its own component).
        self._sf = np.full((len(candidates.rows), n_policies), -np.inf)
        for j, (rows, scores) in enumerate(zip(candidates.rows, candidates.scores)):
            self._sf[j, rows] = scores

    @property
    def values(self) -> np.ndarray:
        """The tables the operator composes under this objective (P, S, A), computed once."""
        if self._values is None:
            self._values = self.prepared.stack.values(self.objective, self.operator)
        return self._values

    def offline(self, combos: np.ndarray) -> np.ndarray:
        """Offline rollout returns of the compositions, in chunks."""
        out = np.empty(combos.shape[0])
        for lo in range(0, combos.shape[0], CHUNK):
            chunk = combos[lo:lo + CHUNK]
            began = time.perf_counter()
            actions, _ = compose_actions(self.prepared.stack, chunk, self.objective, self.operator,
                                         values=self.values)
            composed = time.perf_counter()
            out[lo:lo + CHUNK] = offline_evaluate(self.prepared.stack, chunk, actions, self.objective).returns
            self.composition_time += composed - began
            self.scoring_time += time.perf_counter() - composed
        return out

    def __call__(self, combos: np.ndarray) -> np.ndarray:
        combos = np.ascontiguousarray(combos, dtype=np.int64)
        self.tried += combos.shape[0]
        if self.scoring == "offline":
            return self.offline(combos)
        if self.scoring == "sf":
            began = time.perf_counter()
            scores = self._sf[np.arange(combos.shape[1]), combos].sum(axis=1)
            self.scoring_time += time.perf_counter() - began
            return scores
        if combos.shape[0] <= RIDGE_SAMPLE:
            return self.offline(combos)
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(combos.shape[0], RIDGE_SAMPLE, replace=False))
        targets = self.offline(combos[sample])
        began = time.perf_counter()
        features = self.prepared.signatures[combos].reshape(combos.shape[0], -1)
        model = RidgeRegressor(alpha=1.0).fit(features[sample], targets)
        scores = model.predict(features)
        scores[sample] = targets
        self.scoring_time += time.perf_counter() - began
        return scores


@dataclass(frozen=True)
class SearchOutcome:
    """A strategy's choice: ``rows`` of the best combination, its ``score``."""

    rows: tuple[int, ...]
    score: float


def _best(combos: np.ndarray, scores: np.ndarray) -> SearchOutcome:
    b = int(np.argmax(scores))  # first best: ties go to the earlier-ranked candidates
    return SearchOutcome(tuple(int(r) for r in combos[b]), float(scores[b]))


class Strategy:
    """Common interface: ``search(candidates, scorer) -> SearchOutcome``; ``name`` for reports."""

    name = "strategy"

    def search(self, candidates: Candidates, scorer: Scorer) -> SearchOutcome:  # pragma: no cover
        """Choose the best combination of ``candidates`` under ``scorer``.

        candidates: the ranked candidate rows per objective component (m components);
        scorer: called with int64 rows (B, j) and returning float64 scores (B,).
        Returns the best-scoring full combination (one row per component) and its
        score; ties go to the earlier-ranked candidates.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Targeted(Strategy):
    """The best candidate per component: one composition."""

    @property
    def name(self) -> str:
        """Report name, ``targeted``."""
        return "targeted"

    def search(self, candidates, scorer):
        """Score the single combination of each component's first candidate."""
        combos = grid(candidates.prefix(1))
        return _best(combos, scorer(combos))


@dataclass(frozen=True)
class Hybrid(Strategy):
    """The top ``k`` candidates per component: all k^m combinations, one batch."""

    k: int = 3

    def __post_init__(self):
        if self.k < 1:
            raise LeverError(f"hybrid k must be >= 1, got {self.k}")

    @property
    def name(self) -> str:
        """Report name, e.g. ``hybrid(k=3)``."""
        return f"hybrid(k={self.k})"

    def search(self, candidates, scorer):
        """Score every combination of each component's first ``k`` candidates."""
        combos = grid(candidates.prefix(self.k))
        return _best(combos, scorer(combos))


@dataclass(frozen=True)
class Exhaustive(Strategy):
    """Every candidate per component: all combinations, in batches."""

    @property
    def name(self) -> str:
        """Report name, ``exhaustive``."""
        return "exhaustive"

    def search(self, candidates, scorer):
        """Score every combination of all candidates; LeverError beyond :data:`MAX_COMBINATIONS`."""
        total = int(np.prod([r.size for r in candidates.rows]))
        if total > MAX_COMBINATIONS:
            raise LeverError(f"exhaustive search over {total:,} combinations exceeds "
                             f"{MAX_COMBINATIONS:,}; cap candidates with pool= or use beam")
        combos = grid(candidates.rows)
        return _best(combos, scorer(combos))


@dataclass(frozen=True)
class Beam(Strategy):
    """Grow combinations one component at a time, keeping the ``width`` best partial ones.

    Every candidate of the next component extends every kept partial
    combination; partial combinations are scored by composing only their
    members. The final round also scores the hybrid(``k``) grid, so the
    result is never worse than hybrid(k) on the same candidates.
    """

    width: int = 4
    k: int = 3

    def __post_init__(self):
        if self.width < 1 or self.k < 1:
            raise LeverError(f"beam width and k must be >= 1, got width={self.width}, k={self.k}")

    @property
    def name(self) -> str:
        """Report name, e.g. ``beam(width=4, k=3)``."""
        return f"beam(width={self.width}, k={self.k})"

    def search(self, candidates, scorer):
        """Grow combinations one component at a time over every candidate, plus the hybrid(``k``) grid."""
        beam = np.zeros((1, 0), dtype=np.int64)
        m = len(candidates.rows)
        for j, rows in enumerate(candidates.rows):
            grown = np.concatenate([np.repeat(beam, rows.size, axis=0),
                                    np.tile(rows, beam.shape[0])[:, None]], axis=1)
            if j == m - 1:
                seen = {tuple(row) for row in grown.tolist()}
                extra = [row for row in grid(candidates.prefix(self.k)).tolist() if tuple(row) not in seen]
                if extra:
                    grown = np.concatenate([grown, np.array(extra, dtype=np.int64)])
                return _best(grown, scorer(grown))
            scores = scorer(grown)
            keep = np.argsort(-scores, kind="stable")[: self.width]
            beam = grown[keep]
        raise LeverError("objective has no component")  # pragma: no cover


def make_strategy(name: str, k: int = 3, width: int = 4) -> Strategy:
    """A strategy by name: ``targeted``, ``hybrid`` (k), ``exhaustive``, ``beam`` (width, k)."""
    if name == "targeted":
        return Targeted()
    if name == "hybrid":
        return Hybrid(k)
    if name == "exhaustive":
        return Exhaustive()
    if name == "beam":
        return Beam(width, k)
    raise LeverError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class StrategyResult:
    """What a strategy chose and what it cost.

    ``policy_ids`` the library policies of the chosen combination (one per
    component, in component order); ``score`` the strategy's own score of it
    (offline return, predicted w·ψ or ridge prediction); ``offline_score``
    and ``offline_end`` its offline rollout through the empirical model;
    ``true_return``, ``true_return_vector`` (C,), ``true_end``,
    ``true_steps`` its greedy rollout in the real world (reporting only);
    ``coverage`` the fraction of (s, a) pairs the union support covers;
    ``route_on_support`` the fraction of the true route's steps on it;
    ``planned`` whether planning on the support replaced the composition;
    times in seconds: retrieval, composition, scoring, planning.
    """

    strategy: str
    objective: str
    layout_id: str
    operator: str
    scoring: str
    components: tuple[str, ...]
    policy_ids: tuple[int, ...]
    score: float
    offline_score: float
    offline_end: str
    true_return: float
    true_return_vector: tuple[float, ...]
    true_end: str
    true_steps: int
    combinations_tried: int
    coverage: float
    route_on_support: float
    planned: bool
    retrieval_time: float
    composition_time: float
    scoring_time: float
    planning_time: float = 0.0
    policy: ComposedPolicy | None = field(default=None, compare=False, repr=False)

    @property
    def total_time(self) -> float:
        """Seconds spent choosing: retrieval + composition + scoring + planning."""
        return self.retrieval_time + self.composition_time + self.scoring_time + self.planning_time

    def to_dict(self) -> dict:
        """Plain JSON-ready fields (the composed policy's actions excluded)."""
        out = asdict(self)
        out.pop("policy")
        out["total_time"] = self.total_time
        return out


def search(prepared: PreparedLayout, objective: ObjectiveLike, strategy: Strategy,
           operator: str = "sum", scoring: str = "offline", plan: bool = False,
           pool: int | None = None, plan_gamma: float = 0.99) -> StrategyResult:
    """Retrieve candidates, let ``strategy`` choose, compose the choice and evaluate it.

    With ``plan``, value iteration on the chosen combination's support
    (discount ``plan_gamma``) replaces the composition when its offline
    return is higher.
    """
    objective = Objective.parse(objective)
    if scoring not in SCORINGS:
        raise LeverError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORINGS)}")
    _operator_code(operator)
    began = time.perf_counter()
    candidates = retrieve(prepared, objective, pool)
    retrieval_time = time.perf_counter() - began
    scorer = Scorer(prepared, objective, candidates, operator, scoring)
    outcome = strategy.search(candidates, scorer)

    stack = prepared.stack
    chosen = np.array([outcome.rows], dtype=np.int64)
    began = time.perf_counter()
    actions, _ = compose_actions(stack, chosen, objective, operator, values=scorer.values)
    composition_time = scorer.composition_time + time.perf_counter() - began
    offline = offline_evaluate(stack, chosen, actions, objective)
    offline_score, offline_end = float(offline.returns[0]), offline.end(0)
    planned = False
    planning_time = 0.0
    if plan:
        began = time.perf_counter()
        plan_result = plan_on_support(stack, outcome.rows, objective, gamma=plan_gamma)
        planned_offline = offline_evaluate(stack, chosen, plan_result.actions[None, :], objective)
        planning_time = time.perf_counter() - began
        if planned_offline.returns[0] > offline_score:
            planned = True
            actions = plan_result.actions[None, :]
            offline_score, offline_end = float(planned_offline.returns[0]), planned_offline.end(0)

    model = stack.empirical_model(outcome.rows)
    truth = true_evaluate(stack.layout, actions[0], model.support, objective)
    policy_ids = tuple(int(stack.policy_ids[r]) for r in outcome.rows)
    policy = ComposedPolicy(actions[0].copy(), policy_ids, operator, planned, stack.layout.id)
    return StrategyResult(
        strategy=strategy.name, objective=objective.name, layout_id=stack.layout.id,
        operator=operator, scoring=scoring, components=candidates.components,
        policy_ids=policy_ids, score=outcome.score, offline_score=offline_score,
        offline_end=offline_end, true_return=truth.rollout.ret,
        true_return_vector=tuple(float(x) for x in truth.rollout.return_vector),
        true_end=truth.rollout.end, true_steps=truth.rollout.steps,
        combinations_tried=scorer.tried, coverage=model.coverage,
        route_on_support=truth.route_on_support, planned=planned,
        retrieval_time=retrieval_time, composition_time=composition_time,
        scoring_time=scorer.scoring_time, planning_time=planning_time, policy=policy)


__all__ = [
    "Beam", "Candidates", "Exhaustive", "Hybrid", "PreparedLayout", "SCORINGS", "STRATEGIES",
    "Scorer", "SearchOutcome", "Strategy", "StrategyResult", "Targeted", "grid", "make_strategy",
    "prepare_layout", "retrieve", "search",
]
