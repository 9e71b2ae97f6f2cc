"""The front door: compose a policy for an objective from a library, offline, and what it cost.

:func:`compose` takes a library and names (strategy, operator, scoring);
:func:`search` takes a prepared layout and a :class:`~lever.strategies.Strategy`
object. Both parse the objective once, retrieve candidates
(:mod:`lever.retrieval`), let the strategy choose under a scorer
(:mod:`lever.scoring`), compose the choice (:mod:`lever.compose`), evaluate
it offline and in the real world, and return one :class:`StrategyResult`:
the record the sweep table stores too, under the same field names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .compose import Composer
from .evaluation import true_evaluate
from .policy import ComposedPolicy
from .errors import check_choice
from .worlds.objectives import Objective, ObjectiveLike
from .retrieval import PreparedLayout, prepare_layout, retrieve
from .scoring import SCORINGS, Scorer
from .strategies import DEFAULT_K, DEFAULT_WIDTH, Strategy, make_strategy


@dataclass(frozen=True)
class StrategyResult:
    """What a strategy chose and what it cost.

    ``policy_ids`` the library policies of the chosen combination (one per
    component, in component order); ``score`` the strategy's own score of it
    (offline return, predicted W·ψ(start) sum or ridge prediction); ``offline_return``
    and ``offline_end`` its offline rollout through the empirical model;
    ``true_return``, ``true_return_vector`` (C,), ``true_end``,
    ``true_steps`` its greedy rollout in the real world (reporting only);
    ``combinations_tried`` how many combinations were scored;
    ``support_coverage`` the fraction of (s, a) pairs the union support
    covers; ``route_on_support`` the fraction of the true route's steps on
    it; ``planned`` whether planning on the support replaced the
    composition; seconds: ``retrieval_s``, ``composition_s``, ``scoring_s``,
    ``planning_s`` (``total_s`` their sum). ``policy`` is the
    :class:`~lever.policy.ComposedPolicy` (None once stored).
    """

    strategy: str
    objective: str
    layout_id: str
    operator: str
    scoring: str
    components: tuple[str, ...]
    policy_ids: tuple[int, ...]
    score: float
    offline_return: float
    offline_end: str
    true_return: float
    true_return_vector: tuple[float, ...]
    true_end: str
    true_steps: int
    combinations_tried: int
    support_coverage: float
    route_on_support: float
    planned: bool
    retrieval_s: float
    composition_s: float
    scoring_s: float
    planning_s: float = 0.0
    policy: ComposedPolicy | None = field(default=None, compare=False, repr=False)

    @property
    def total_s(self) -> float:
        """Seconds spent choosing: retrieval + composition + scoring + planning."""
        return self.retrieval_s + self.composition_s + self.scoring_s + self.planning_s

    def to_dict(self) -> dict:
        """Plain JSON-ready fields plus ``total_s`` (the composed policy's actions excluded)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "policy"},
                "total_s": self.total_s}

    @classmethod
    def from_dict(cls, data: dict) -> "StrategyResult":
        """A result (without its policy) from a dict written by :meth:`to_dict`."""
        data = {k: v for k, v in data.items() if k not in ("total_s", "policy")}
        tuples = ("components", "policy_ids", "true_return_vector")
        return cls(**{**data, **{name: tuple(data[name]) for name in tuples}})


@dataclass(frozen=True)
class _Choice:
    """The chosen combination composed (or planned): actions int32 (S,) and its offline rollout."""

    actions: np.ndarray
    offline_return: float
    offline_end: str
    planned: bool
    composition_s: float
    planning_s: float


def compose(library, objective: ObjectiveLike = "path+gold+hazard", layout=None,
            strategy: str = "hybrid", k: int = DEFAULT_K, width: int = DEFAULT_WIDTH, operator: str = "sum",
            scoring: str = "offline", plan: bool = False, pool: int | None = None,
            plan_gamma: float | None = None) -> StrategyResult:
    """Compose a policy for ``objective`` from ``library`` policies, offline.

    library: a :class:`lever.library.PolicyLibrary`; layout: a layout id, a
    :class:`~lever.worlds.grid.Layout` held by the library, or None when it
    holds exactly one; strategy: a name from
    :data:`lever.strategies.STRATEGIES`; k: candidates per component for
    hybrid (and beam's seed grid); width: beam width; operator: a name from
    :data:`lever.compose.OPERATORS`; scoring: a name from
    :data:`lever.scoring.SCORINGS`; plan: also plan on the chosen support
    and keep the plan when it scores better offline; pool: cap on candidates
    per component; plan_gamma: the planning discount (default: the library's
    γ where it is in (0, 1), else 0.99). On a library of a
    :class:`~lever.worlds.tabular.TabularWorld` the objective is a weight
    vector over the world's components (``[0.3, 0.7]``, ``"0.3,0.7"``). Returns a :class:`StrategyResult` (``.policy`` is the
    :class:`~lever.policy.ComposedPolicy`).
    """
    # A misspelt objective is named before any loading; a tabular world's library names its components.
    objective = Objective.parse(objective, getattr(library.spec, "components", None))
    chosen = make_strategy(strategy, k=k, width=width)
    prepared = prepare_layout(library, layout)
    if plan_gamma is None:
        gamma = float(library.spec.gamma)
        plan_gamma = gamma if 0 < gamma < 1 else 0.99
    return _search(prepared, objective, chosen, operator, scoring, plan, pool, plan_gamma)


def search(prepared: PreparedLayout, objective: ObjectiveLike, strategy: Strategy,
           operator: str = "sum", scoring: str = "offline", plan: bool = False,
           pool: int | None = None, plan_gamma: float = 0.99) -> StrategyResult:
    """Retrieve candidates, let ``strategy`` choose, compose the choice and evaluate it.

    With ``plan``, value iteration on the chosen combination's support
    (discount ``plan_gamma``) replaces the composition when its offline
    return is higher.
    """
    return _search(prepared, Objective.parse(objective, prepared.layout.component_names), strategy, operator,
                   scoring, plan, pool, plan_gamma)


def _search(prepared: PreparedLayout, objective: Objective, strategy: Strategy, operator: str,
            scoring: str, plan: bool, pool: int | None, plan_gamma: float = 0.99) -> StrategyResult:
    check_choice("scoring", scoring, SCORINGS)
    composer = Composer(prepared.stack, objective, operator, prepared.rules)
    began = time.perf_counter()
    # GPI composes vector Q tables: policies added without one are left out of its candidates.
    excluded = prepared.stack.lacks_vector_q if operator == "max" else None
    candidates = retrieve(prepared, objective, pool, excluded)
    retrieval_s = time.perf_counter() - began
    scorer = Scorer(prepared, composer, candidates, scoring)
    outcome = strategy.search(candidates, scorer)
    choice = _compose_choice(composer, outcome.rows, plan, plan_gamma)

    stack = prepared.stack
    model = stack.empirical_model(outcome.rows)
    truth = true_evaluate(stack.layout, choice.actions, model.support, objective, prepared.rules)
    policy_ids = tuple(int(stack.policy_ids[r]) for r in outcome.rows)
    return StrategyResult(
        strategy=strategy.name, objective=objective.name, layout_id=stack.layout.id, operator=operator,
        scoring=scoring, components=candidates.components, policy_ids=policy_ids, score=outcome.score,
        offline_return=choice.offline_return, offline_end=choice.offline_end,
        true_return=truth.rollout.ret, true_return_vector=tuple(float(x) for x in truth.rollout.return_vector),
        true_end=truth.rollout.end, true_steps=truth.rollout.steps, combinations_tried=scorer.tried,
        support_coverage=model.coverage, route_on_support=truth.route_on_support, planned=choice.planned,
        retrieval_s=retrieval_s, composition_s=scorer.composition_s + choice.composition_s,
        scoring_s=scorer.scoring_s, planning_s=choice.planning_s,
        policy=ComposedPolicy(choice.actions.copy(), policy_ids, operator, choice.planned, stack.layout.id))


def _compose_choice(composer: Composer, rows: tuple[int, ...], plan: bool, plan_gamma: float) -> _Choice:
    """Compose the chosen rows once more and, if asked, keep the plan on their support when it scores higher."""
    chosen = np.array([rows], dtype=np.int64)
    began = time.perf_counter()
    actions, _ = composer.actions(chosen)
    composition_s = time.perf_counter() - began
    offline = composer.offline(chosen, actions)
    choice = _Choice(actions[0], float(offline.returns[0]), offline.end(0), False, composition_s, 0.0)
    if not plan:
        return choice
    began = time.perf_counter()
    planned = composer.plan(rows, gamma=plan_gamma)
    planned_offline = composer.offline(chosen, planned.actions[None, :])
    planning_s = time.perf_counter() - began
    if planned_offline.returns[0] > choice.offline_return:
        return _Choice(planned.actions, float(planned_offline.returns[0]), planned_offline.end(0), True,
                       composition_s, planning_s)
    return replace(choice, planning_s=planning_s)
