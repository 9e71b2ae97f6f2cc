"""Strategies: how many candidate combinations to explore before composing.

A combination takes one candidate per objective component (see
:mod:`lever.retrieval` for the ranked candidate lists).

- ``targeted``: the first candidate of each component, one combination;
- ``hybrid(k)``: the first k of each, all k^m combinations;
- ``exhaustive``: every candidate of each, all combinations;
- ``beam(width, k)``: grows combinations one component at a time over every
  candidate, keeping the ``width`` best partial combinations, and also
  scores the hybrid(k) grid.

All strategies share one ranked candidate list, so their scored sets are
nested (targeted ⊆ hybrid(k) ⊆ beam(width, k) ⊆ exhaustive) and their best
scores are ordered the same way by construction.

:data:`STRATEGIES` is the one registry of strategy names, with the size
parameter each takes in text form (``hybrid:3`` sets k, ``beam:3`` the
width) and its default; :func:`make_strategy`, :class:`StrategySpec`, the
sweep and the command line all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .errors import LeverError, check_choice
from .retrieval import Candidates
from .scoring import Scorer

#: Candidates per component of hybrid (and of beam's seed grid), for every caller.
DEFAULT_K = 3
#: Partial combinations beam keeps per round, for every caller.
DEFAULT_WIDTH = 3
#: Refuse searches larger than this many combinations (ask for a pool or beam instead).
MAX_COMBINATIONS = 5_000_000


def grid(lists) -> np.ndarray:
    """All combinations, one entry per list, in ``itertools.product`` order: int64 (Π n_j, m)."""
    mesh = np.meshgrid(*lists, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1).astype(np.int64)


@dataclass(frozen=True)
class SearchOutcome:
    """A strategy's choice: ``rows`` of the best combination, its ``score``."""

    rows: tuple[int, ...]
    score: float


def _best(combos: np.ndarray, scores: np.ndarray) -> SearchOutcome:
    b = int(np.argmax(scores))  # first best: ties go to the earlier-ranked candidates
    return SearchOutcome(tuple(int(r) for r in combos[b]), float(scores[b]))


def _best_of_grid(lists, scorer: Scorer) -> SearchOutcome:
    combos = grid(lists)
    return _best(combos, scorer(combos))


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
        return _best_of_grid(candidates.prefix(1), scorer)


@dataclass(frozen=True)
class Hybrid(Strategy):
    """The top ``k`` candidates per component: all k^m combinations, one batch."""

    k: int = DEFAULT_K

    def __post_init__(self):
        if self.k < 1:
            raise LeverError(f"hybrid k must be >= 1, got {self.k}")

    @property
    def name(self) -> str:
        """Report name, e.g. ``hybrid(k=3)``."""
        return f"hybrid(k={self.k})"

    def search(self, candidates, scorer):
        """Score every combination of each component's first ``k`` candidates."""
        return _best_of_grid(candidates.prefix(self.k), scorer)


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
        return _best_of_grid(candidates.rows, scorer)


@dataclass(frozen=True)
class Beam(Strategy):
    """Grow combinations one component at a time, keeping the ``width`` best partial ones.

    Every candidate of the next component extends every kept partial
    combination; partial combinations are scored by composing only their
    members. The final round also scores the hybrid(``k``) grid, so the
    result is never worse than hybrid(k) on the same candidates.
    """

    width: int = DEFAULT_WIDTH
    k: int = DEFAULT_K

    def __post_init__(self):
        if self.width < 1 or self.k < 1:
            raise LeverError(f"beam width and k must be >= 1, got width={self.width}, k={self.k}")

    @property
    def name(self) -> str:
        """Report name, e.g. ``beam(width=3, k=3)``."""
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


@dataclass(frozen=True)
class StrategyKind:
    """A registered strategy: its class and the size parameter its text form sets (``k``, ``width``)."""

    cls: type
    size: str | None = None

    @property
    def default(self) -> int | None:
        """Default of the size parameter (:data:`DEFAULT_K` or :data:`DEFAULT_WIDTH`), None without one."""
        return {"k": DEFAULT_K, "width": DEFAULT_WIDTH}[self.size] if self.size else None


#: Every strategy name, in report order.
STRATEGIES: dict[str, StrategyKind] = {
    "targeted": StrategyKind(Targeted),
    "hybrid": StrategyKind(Hybrid, "k"),
    "exhaustive": StrategyKind(Exhaustive),
    "beam": StrategyKind(Beam, "width"),
}


def make_strategy(name: str, k: int = DEFAULT_K, width: int = DEFAULT_WIDTH) -> Strategy:
    """A strategy by registry name; each takes the sizes it has (``hybrid`` k, ``beam`` width and k)."""
    cls = STRATEGIES[check_choice("strategy", name, STRATEGIES)].cls
    sizes = {"k": k, "width": width}
    return cls(**{f.name: sizes[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class StrategySpec:
    """A strategy in text form: a registry name and its size parameter (None for a strategy without one)."""

    name: str
    param: int | None = None

    @classmethod
    def parse(cls, text: str) -> "StrategySpec":
        """Read ``"targeted"``, ``"hybrid:3"``, ``"exhaustive"``, ``"beam:3"`` (size optional)."""
        name, _, param = str(text).strip().partition(":")
        if name not in STRATEGIES:
            raise LeverError(f"unknown strategy {text!r}; valid: {', '.join(STRATEGIES)} "
                             f"(hybrid and beam take a size, e.g. hybrid:3)")
        default = STRATEGIES[name].default
        if not param:
            return cls(name, default)
        if default is None:
            raise LeverError(f"strategy {name!r} takes no parameter, got {text!r}")
        try:
            value = int(param)
        except ValueError:
            raise LeverError(f"strategy {text!r}: {param!r} is not an integer") from None
        if value < 1:
            raise LeverError(f"strategy {text!r}: the size must be >= 1")
        return cls(name, value)

    @property
    def label(self) -> str:
        """Text form that :meth:`parse` reads back, e.g. ``hybrid:3``."""
        return self.name if self.param is None else f"{self.name}:{self.param}"

    def strategy(self) -> Strategy:
        """The :class:`Strategy` this spec names."""
        size = STRATEGIES[self.name].size
        return make_strategy(self.name, **({size: self.param} if size else {}))


#: Every registered strategy at its default size, as labels (``hybrid:3``).
DEFAULT_LABELS = tuple(StrategySpec.parse(name).label for name in STRATEGIES)
