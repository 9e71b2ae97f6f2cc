"""The study's first public release's published rows, per seed: what lever's first-release preset
reproduces like for like.

``lever/data/first_release_published.json`` holds the 90 rows of the
release's result files (``results_16_exnonzero/{X1,X5,X10}``, composition by
its route search): per budget, mode, query and seed the scratch return and
time, the targeted, hybrid and exhaustive returns and times, and the
language-model decomposition time.

One value is corrected here, and only where asked: X10
path-gold-hazard-lever seed 3 reads **+246.47** in the release's files, but
−246.47 is the genuine greedy return (exactly an episode of 7 moves that then
bumps to the 256-step cap; no greedy episode on that layout returns
+246.47; the v3 branch's copy of the same run reads −246.47). See
:data:`CORRECTIONS`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FileFormatError, LeverError
from .published import read_shipped_json

#: The format tag the data file must carry.
FORMAT = "lever-first-release-published/1"
#: The published methods of a row, by the name of its return field's prefix.
METHODS = ("scratch", "targeted", "hybrid", "exhaustive")
#: (budget, query, seed) → the genuine scratch return where the published files altered it.
CORRECTIONS = {("X10", "path+gold+hazard+lever", 3): -246.47}
_NUMBERS = ("scratch_reward", "scratch_time_s", "targeted_reward", "hybrid_reward", "exhaustive_reward",
            "decomp_time", "targeted_time", "hybrid_time", "exhaustive_time")


def _query(setup: str) -> str:
    # The release names a reward system with "-" (path-gold); lever with "+".
    return setup.replace("-", "+")


@dataclass(frozen=True)
class FirstReleasePublished:
    """The release's per-seed rows: ``rows`` dicts with budget, mode, query (lever's spelling), seed
    and the numeric fields of the file (returns; times in seconds)."""

    source: str
    config: str
    rows: tuple

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> "FirstReleasePublished":
        """Parse a ``lever-first-release-published/1`` document; FileFormatError if malformed."""
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise FileFormatError(f"first_release_published.json: format must be {FORMAT!r}")
        rows = []
        for i, row in enumerate(document.get("rows") or ()):
            try:
                parsed = {"budget": str(row["budget"]), "mode": str(row["mode"]), "query": _query(row["setup"]),
                          "seed": int(row["seed"])}
                parsed.update({key: float(row[key]) for key in _NUMBERS})
            except (KeyError, TypeError, ValueError) as exc:
                raise FileFormatError(f"first_release_published.json: rows[{i}] is malformed ({exc})") from None
            rows.append(parsed)
        if not rows:
            raise FileFormatError("first_release_published.json: no rows")
        return cls(str(document.get("source", "")), str(document.get("config", "")), tuple(rows))

    def value(self, budget: str, mode: str, query: str, seed: int, method: str, corrected: bool = True) -> float:
        """One published return (``method`` of :data:`METHODS`); scratch values corrected unless asked not to."""
        if method not in METHODS:
            raise LeverError(f"method must be one of {METHODS}, got {method!r}")
        for row in self.rows:
            if (row["budget"], row["mode"], row["query"], row["seed"]) == (budget, mode, query, seed):
                if corrected and method == "scratch" and (budget, query, seed) in CORRECTIONS:
                    return CORRECTIONS[(budget, query, seed)]
                return row[f"{method}_reward"]
        raise LeverError(f"no published row for {budget} {mode} {query} seed {seed}")

    def cells(self, budget: str | None = None) -> list[tuple[str, str, str, int]]:
        """The (budget, mode, query, seed) of every row, in file order (of one budget if given)."""
        return [(r["budget"], r["mode"], r["query"], r["seed"]) for r in self.rows
                if budget is None or r["budget"] == budget]

    def scratch(self, budget: str, query: str, corrected: bool = True) -> dict[int, float]:
        """seed → published scratch return of ``query`` at ``budget`` (the same run in every mode)."""
        return {seed: self.value(b, mode, q, seed, "scratch", corrected)
                for b, mode, q, seed in self.cells(budget) if q == query}


@functools.lru_cache(maxsize=1)
def load_first_release_published() -> FirstReleasePublished:
    """The shipped ``lever/data/first_release_published.json``, read and parsed once (cached)."""
    return FirstReleasePublished.from_dict(read_shipped_json("first_release_published.json"))
