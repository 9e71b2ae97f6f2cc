"""The study's experimental protocol as data and small pure functions.

This module pins down what "reproduce the study" means:
which objectives a policy library holds, which composite queries are asked
and how each is decomposed into sub-queries, how many candidates each
strategy draws per sub-query, when training snapshots are taken and which of
them enter the library.

Objective names are component names joined by ``'+'`` in the canonical order
path, gold, hazard, lever (``"path+gold+hazard"``, never ``"gold+path+hazard"``).

Nothing here touches an environment or a Q-table; everything is
deterministic given its arguments (a seed where sampling is involved).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LeverError
from .worlds.objectives import COMPONENTS, Objective

#: The four reward components in canonical order; objective names list them in this order.
COMPONENT_ORDER: tuple[str, ...] = COMPONENTS

#: The 8 objectives a library holds for every (set, seed, budget), in the study's order.
LIBRARY_OBJECTIVES: tuple[str, ...] = (
    "path", "gold", "hazard", "lever",
    "hazard+lever", "path+gold", "path+gold+hazard", "path+gold+hazard+lever",
)

#: Decomposition modes: one sub-query per component, two sub-queries, or three-plus-one.
MODES: tuple[str, ...] = ("trivial", "double", "triple")

#: Library entries of a sub-query's objective considered as candidates (ranked best first).
CANDIDATES_PER_SUBQUERY = 5

#: Candidates per sub-query that the hybrid strategy combines (k^m combinations).
HYBRID_K = 3

#: The k values of the study's hybrid-k sweep (k = 1 is targeted, k = 5 exhaustive).
K_SWEEP: tuple[int, ...] = (1, 2, 3, 4, 5)

#: The four methods the study reports: training from scratch and three reuse strategies.
METHODS: tuple[str, ...] = ("scratch", "targeted", "hybrid", "exhaustive")

#: Training episodes between two snapshots (a snapshot after episodes 0, 1000, 2000, ...).
SNAPSHOT_INTERVAL = 1000


def objective_components(name: str) -> tuple[str, ...]:
    """Split a canonical objective name into its components.

    ``name`` must be non-empty '+'-joined component names from
    :data:`COMPONENT_ORDER`, each once, in canonical order; the components are
    returned as a tuple in that order. Raises :class:`LeverError` otherwise.
    """
    if not isinstance(name, str) or not name:
        raise LeverError(f"objective name must be a non-empty string, got {name!r}")
    objective = Objective.parse(name)  # unknown or repeated components are named there
    if not objective.is_set or objective.name != name:
        raise LeverError(f"objective name {name!r} is not a set of components in canonical order; "
                         f"write {'+'.join(objective.components)!r}")
    return objective.components


def objective_name(components: Iterable[str]) -> str:
    """Canonical name of a set of components: '+'-joined in :data:`COMPONENT_ORDER`.

    ``components`` is any iterable of distinct component names, in any order.
    Raises :class:`LeverError` on an unknown, repeated or empty set.
    """
    parts = list(components)
    if not parts:
        raise LeverError("components must name at least one component")
    if len(set(parts)) != len(parts):
        raise LeverError(f"components: {parts} repeats a component")
    return Objective.parse(dict.fromkeys(parts, 1.0)).name


@dataclass(frozen=True)
class Query:
    """One composite query and its decomposition.

    ``mode`` is one of :data:`MODES`; ``query`` the canonical name of the
    composite objective; ``subqueries`` the canonical names of the sub-objectives
    whose library policies are composed (Q-sum), disjoint and together covering
    exactly the query's components. Validated on construction.
    """

    mode: str
    query: str
    subqueries: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LeverError(f"mode must be one of {MODES}, got {self.mode!r}")
        wanted = objective_components(self.query)
        subs = tuple(self.subqueries)
        object.__setattr__(self, "subqueries", subs)
        if len(subs) < 2:
            raise LeverError(f"subqueries of {self.query!r} must be at least two, got {subs}")
        covered: list[str] = []
        for sub in subs:
            covered.extend(objective_components(sub))
        if sorted(covered) != sorted(wanted):
            raise LeverError(f"subqueries {subs} must partition the components of "
                             f"{self.query!r} (disjoint, covering all of them)")

    @property
    def n_subqueries(self) -> int:
        """Number of sub-queries m (the exponent of the hybrid and exhaustive combination counts)."""
        return len(self.subqueries)


#: The study's full query table, in a fixed order: mode, then query.
QUERIES: tuple[Query, ...] = (
    Query("trivial", "path+gold", ("path", "gold")),
    Query("trivial", "path+gold+hazard", ("path", "gold", "hazard")),
    Query("trivial", "path+gold+hazard+lever", ("path", "gold", "hazard", "lever")),
    Query("double", "path+gold+hazard", ("path+gold", "hazard")),
    Query("double", "path+gold+hazard+lever", ("path+gold", "hazard+lever")),
    Query("triple", "path+gold+hazard+lever", ("path+gold+hazard", "lever")),
)


def queries(modes: str | Iterable[str] = MODES) -> tuple[Query, ...]:
    """The queries of the given modes, in the fixed order of :data:`QUERIES`.

    ``modes`` is one mode name or an iterable of them (each in :data:`MODES`);
    the order in which they are given does not change the order returned.
    """
    wanted = (modes,) if isinstance(modes, str) else tuple(modes)
    bad = [m for m in wanted if m not in MODES]
    if bad:
        raise LeverError(f"modes must be drawn from {MODES}, got {bad}")
    return tuple(q for q in QUERIES if q.mode in wanted)


def candidates_per_subquery(method: str, k: int = HYBRID_K) -> int:
    """Library entries per sub-query that ``method`` combines.

    targeted → 1, hybrid → ``k`` (default :data:`HYBRID_K`), exhaustive →
    :data:`CANDIDATES_PER_SUBQUERY`. ``scratch`` uses no library and raises
    :class:`LeverError`, as does ``k`` outside 1..:data:`CANDIDATES_PER_SUBQUERY`.
    """
    if method == "targeted":
        return 1
    if method == "exhaustive":
        return CANDIDATES_PER_SUBQUERY
    if method == "hybrid":
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) \
                or not 1 <= k <= CANDIDATES_PER_SUBQUERY:
            raise LeverError(f"k must be an integer in 1..{CANDIDATES_PER_SUBQUERY}, got {k!r}")
        return int(k)
    raise LeverError(f"method must be one of {METHODS[1:]} (scratch composes nothing), "
                     f"got {method!r}")


def n_combinations(method: str, n_subqueries: int, k: int = HYBRID_K) -> int:
    """Composed policies ``method`` evaluates for a query of ``n_subqueries`` parts.

    ``candidates_per_subquery(method, k) ** n_subqueries``: 1 for targeted,
    k^m for hybrid, 5^m for exhaustive.
    """
    if isinstance(n_subqueries, bool) or not isinstance(n_subqueries, (int, np.integer)) \
            or n_subqueries < 1:
        raise LeverError(f"n_subqueries must be a positive integer, got {n_subqueries!r}")
    return candidates_per_subquery(method, k) ** int(n_subqueries)


def snapshot_episodes(n_episodes: int, interval: int = SNAPSHOT_INTERVAL) -> tuple[int, ...]:
    """0-based episode indices after which a training snapshot is taken.

    Every ``e`` in ``range(n_episodes)`` with ``e % interval == 0``: 0, 1000,
    2000, ... for the default interval. The final Q-table, kept after the last
    episode, is separate and not listed here. ``n_episodes`` ≥ 0 and
    ``interval`` ≥ 1 are integers.
    """
    for label, value, low in (("n_episodes", n_episodes, 0), ("interval", interval, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise LeverError(f"{label} must be an integer >= {low}, got {value!r}")
    return tuple(range(0, int(n_episodes), int(interval)))


def _as_vector(name: str, values: Sequence[float] | np.ndarray, integer: bool) -> np.ndarray:
    """``values`` as a 1-D int64 (``integer``) or float64 array; LeverError naming ``name``."""
    try:
        raw = np.asarray(values)
        if integer and raw.size and raw.dtype.kind not in "iu":
            raise TypeError
        array = raw.astype(np.int64 if integer else np.float64)
    except (TypeError, ValueError):
        kind = "integers" if integer else "numbers"
        raise LeverError(f"{name} must be a sequence of {kind}") from None
    if array.ndim != 1:
        raise LeverError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not integer and np.isnan(array).any():
        raise LeverError(f"{name} must not contain NaN")
    return array


def select_snapshots(episodes: Sequence[int] | np.ndarray,
                     returns: Sequence[float] | np.ndarray,
                     seed: int, fraction: float = 0.6) -> tuple[int, ...]:
    """The study's choice of library entries among the snapshots of ONE training run.

    ``episodes`` (shape (n,), integers) gives each snapshot's episode and
    ``returns`` (shape (n,)) its greedy return; the final table is passed like
    any other entry with its own episode value (e.g. ``n_episodes - 1``).
    Candidates are all entries whose episode is not 0. Kept: the worst-, the
    best- and the median-return candidate (candidates sorted by return, ties
    broken by episode, then position; the median is the one at index
    ``len // 2``), plus a sample drawn with ``numpy.random.default_rng(seed)``,
    without replacement, of ``round(fraction * n_rest)`` of the ``n_rest``
    remaining candidates (Python's ``round``, half to even).

    Returns the kept positions (indices into the input arrays), ascending.

    The count is 3 + round(0.6 * (n - 3)) for n ≥ 3 candidates: 7 of 10
    candidates (X1: snapshots 1000..9000 plus the final table), 31 of 50 (X5)
    and 61 of 100 (X10). The study's "about 6, 31 and 61" matches X5 and X10
    exactly; at X1 this rule keeps 7, and we keep the rule rather than special-
    casing one budget.
    """
    eps = _as_vector("episodes", episodes, integer=True)
    rets = _as_vector("returns", returns, integer=False)
    if eps.shape != rets.shape:
        raise LeverError(f"returns must have the shape of episodes {eps.shape}, got {rets.shape}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)) \
            or not 0.0 <= fraction <= 1.0:
        raise LeverError(f"fraction must lie in [0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise LeverError(f"seed must be an integer, got {seed!r}")
    candidates = np.flatnonzero(eps != 0)
    if candidates.size == 0:
        return ()
    # lexsort: the last key is primary -> by return, then episode, then position.
    order = candidates[np.lexsort((candidates, eps[candidates], rets[candidates]))]
    kept = {int(order[0]), int(order[-1]), int(order[len(order) // 2])}
    rest = np.array([c for c in candidates if int(c) not in kept], dtype=np.int64)
    n_sample = round(fraction * rest.size)
    if n_sample:
        rng = np.random.default_rng(int(seed))
        kept.update(int(c) for c in rng.choice(rest, size=n_sample, replace=False))
    return tuple(sorted(kept))


def rank_candidates(returns: Sequence[float] | np.ndarray) -> tuple[int, ...]:
    """Positions of ``returns`` (shape (n,)) ordered best first, ties to the lower position.

    A stable sort of the negated returns; the first ``k`` positions are the
    candidates targeted (k = 1) and hybrid (k = :data:`HYBRID_K`) combine.
    """
    rets = _as_vector("returns", returns, integer=False)
    return tuple(int(i) for i in np.argsort(-rets, kind="stable"))
