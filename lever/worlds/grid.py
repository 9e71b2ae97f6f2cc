"""Layouts of the deterministic GridWorld: spec sets, the study's seeded sampler, text form, files.

A layout is an H×W grid of cell kinds plus a start cell. The tabular state
is the agent's cell index ``row * W + col`` only: whether gold was collected
or the lever pulled is episode state that the reward sees but the state index
does not (as in the study). Policies are therefore functions of position.

Layouts of a seed are drawn exactly as the study draws them (see
:meth:`Layout.generate`), so ``Layout.generate("grid16", seed=s)`` is the
study's own layout of seed s.
"""

from __future__ import annotations

import hashlib
import random
import warnings
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, LeverError
from ..fileio import read_json, write_json
from ..resources import check_memory
from ..kernels import constants as K
from ..kernels.world import World, bfs_distances, move_table

#: Characters of the text form, by cell kind; ``S`` marks the (empty) start cell.
KIND_CHARS = {K.EMPTY: ".", K.WALL: "#", K.GOLD: "G", K.HAZARD: "H", K.LEVER: "L", K.EXIT: "E"}
START_CHAR = "S"
_CHAR_KINDS = {c: k for k, c in KIND_CHARS.items()}

LAYOUT_FORMAT = "lever-layout"
LAYOUT_VERSION = 1
#: Largest grid lever builds (cells); the study's largest is 32×32.
MAX_CELLS = 1 << 20
#: Checked draws of the sampler before it takes one unchecked.
MAX_DRAWS = 200


@dataclass(frozen=True)
class GridSpec:
    """What the sampler is asked for: grid size, object counts and a seed.

    ``start``/``exit`` fix those cells as (row, col); left as None they are
    drawn by the seed like everything else (the study's way).
    """

    height: int = 16
    width: int = 16
    n_gold: int = 24
    n_walls: int = 16
    n_hazards: int = 16
    lever: bool = True
    seed: int = 0
    start: tuple[int, int] | None = None
    exit: tuple[int, int] | None = None

    def __post_init__(self):
        for name in ("height", "width", "n_gold", "n_walls", "n_hazards", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise LeverError(f"{name} must be an integer, got {value!r}")
        if self.seed < 0:
            raise LeverError(f"seed must be >= 0, got {self.seed}")
        if self.height < 1 or self.width < 1:
            raise LeverError(f"grid must be at least 1×1, got {self.height}×{self.width}")
        for name in ("n_gold", "n_walls", "n_hazards"):
            if getattr(self, name) < 0:
                raise LeverError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("start", "exit"):
            cell = getattr(self, name)
            if cell is not None:
                cell = tuple(int(v) for v in cell)
                object.__setattr__(self, name, cell)
                if not (0 <= cell[0] < self.height and 0 <= cell[1] < self.width):
                    raise LeverError(f"{name} {cell} lies outside the {self.height}×{self.width} grid")
        if self.start is not None and self.start == self.exit:
            raise LeverError(f"start and exit are the same cell {self.start}")
        if self.height * self.width > MAX_CELLS:
            raise LeverError(f"a {self.height}×{self.width} grid has {self.height * self.width:,} cells; lever's "
                             f"tabular world takes at most {MAX_CELLS:,} (1024×1024)")
        # A layout's arrays: the gold distance table (S, G) int32 dominates, plus BFS maps and moves.
        check_memory(self.height * self.width * (4 * self.n_gold + 48), f"a {self.height}×{self.width} grid "
                     f"with {self.n_gold} gold")
        needed = 2 + self.n_gold + self.n_walls + self.n_hazards + int(self.lever)
        if needed > self.height * self.width:
            raise LeverError(
                f"{self.height}×{self.width} grid has {self.height * self.width} cells but the spec "
                f"needs {needed} (start, exit, {self.n_gold} gold, {self.n_walls} walls, "
                f"{self.n_hazards} hazards, {int(self.lever)} lever)")

    @classmethod
    def preset(cls, name: str, seed: int = 0) -> "GridSpec":
        """A named spec set of the study (:data:`PRESETS`) at layout seed ``seed``."""
        if name not in PRESETS:
            raise LeverError(f"unknown grid preset {name!r}; valid presets: {', '.join(PRESETS)}")
        return cls(**PRESETS[name], seed=seed)

    @property
    def n_cells(self) -> int:
        """Number of grid cells, height × width."""
        return self.height * self.width


#: The study's spec sets, one lever each. ``grid16`` is its main experiments'
#: setting; ``grid16-dense`` that of its first public release.
PRESETS = {
    "grid8": dict(height=8, width=8, n_gold=6, n_walls=4, n_hazards=4),
    "grid16": dict(height=16, width=16, n_gold=24, n_walls=16, n_hazards=16),
    "grid16-default": dict(height=16, width=16, n_gold=25, n_walls=15, n_hazards=15),
    "grid16-small": dict(height=16, width=16, n_gold=6, n_walls=4, n_hazards=4),
    "grid32": dict(height=32, width=32, n_gold=25, n_walls=15, n_hazards=15),
    "grid16-dense": dict(height=16, width=16, n_gold=50, n_walls=25, n_hazards=30),
}


@dataclass(frozen=True, eq=False)
class Layout:
    """One concrete grid: ``cells`` int8 (H, W) of cell kinds and a ``start`` cell index.

    Constructing a Layout validates it: exactly one exit, at most one lever,
    a start on a free cell, and (what the study's sampler checks) routes
    avoiding walls and hazards from the start to the exit and the lever, and
    from the lever to the exit. Gold may be unreachable: the rules ignore
    it. ``checked=False`` skips the routes, for the sampler's last, unchecked
    draw. Derived arrays are computed once, on first use.
    """

    cells: np.ndarray
    start: int
    spec: GridSpec | None = None
    checked: bool = True

    def __post_init__(self):
        cells = np.array(self.cells, dtype=np.int8)
        if cells.ndim != 2 or cells.size == 0:
            raise LeverError(f"layout cells must be a non-empty 2-D array, got shape {cells.shape}")
        if cells.min() < 0 or cells.max() >= K.N_KINDS:
            raise LeverError(f"layout cells must be kinds 0..{K.N_KINDS - 1}")
        cells.setflags(write=False)
        object.__setattr__(self, "cells", cells)
        n_exit = int(np.sum(cells == K.EXIT))
        if n_exit != 1:
            raise LeverError(f"layout needs exactly one exit, found {n_exit}")
        if np.sum(cells == K.LEVER) > 1:
            raise LeverError("layout has more than one lever")
        start = int(self.start)
        object.__setattr__(self, "start", start)
        if not 0 <= start < cells.size:
            raise LeverError(f"start {start} lies outside the {cells.shape[0]}×{cells.shape[1]} grid")
        if cells.flat[start] != K.EMPTY:
            raise LeverError(f"start cell {divmod(start, cells.shape[1])} must be empty, "
                             f"it is {KIND_CHARS[int(cells.flat[start])]!r}")
        unreachable = self._unreachable_targets() if self.checked else []
        if unreachable:
            raise LeverError(f"layout is unreachable: no path from the start avoiding walls and "
                             f"hazards to {', '.join(unreachable)}")

    # -- geometry -----------------------------------------------------------
    @property
    def height(self) -> int:
        """Number of grid rows H."""
        return self.cells.shape[0]

    @property
    def width(self) -> int:
        """Number of grid columns W."""
        return self.cells.shape[1]

    @property
    def n_states(self) -> int:
        """Number of tabular states, H·W."""
        return self.cells.size

    @property
    def exit(self) -> int:
        """Cell index of the exit."""
        return int(np.flatnonzero(self.cells.ravel() == K.EXIT)[0])

    @property
    def lever(self) -> int | None:
        """Cell index of the lever, or None when the layout has none."""
        found = np.flatnonzero(self.cells.ravel() == K.LEVER)
        return int(found[0]) if found.size else None

    @property
    def gold(self) -> np.ndarray:
        """Cell indices of the gold, int64 (G,), in row-major order."""
        return np.flatnonzero(self.cells.ravel() == K.GOLD)

    @property
    def max_steps(self) -> int:
        """Episode step cap, H·W."""
        return self.cells.size

    @property
    def n_actions(self) -> int:
        """Number of actions, 4 (:data:`lever.kernels.constants.ACTION_NAMES`)."""
        return K.N_ACTIONS

    @property
    def n_features(self) -> int:
        """Reward features a logged step keeps: every component set, N_SETS (the rules are not additive)."""
        return K.N_SETS

    @property
    def component_names(self) -> tuple[str, ...]:
        """The reward components objectives weigh, :data:`lever.kernels.constants.COMPONENT_NAMES`."""
        return K.COMPONENT_NAMES

    @cached_property
    def passable(self) -> np.ndarray:
        """bool (S,): cells an agent can stand on safely (not wall, not hazard)."""
        flat = self.cells.ravel()
        return (flat != K.WALL) & (flat != K.HAZARD)

    def distances_from(self, cell: int) -> np.ndarray:
        """BFS steps from ``cell`` avoiding walls and hazards, int32 (S,), -1 if unreachable."""
        return bfs_distances(self.passable, self.width, int(cell))

    def _unreachable_targets(self) -> list[str]:
        from_start = self.distances_from(self.start) >= 0
        missing = [] if from_start[self.exit] else [f"the exit at {divmod(self.exit, self.width)}"]
        if self.lever is not None:
            if not from_start[self.lever]:
                missing.append(f"the lever at {divmod(self.lever, self.width)}")
            elif self.distances_from(self.lever)[self.exit] < 0:
                missing.append("the exit from the lever")
        return missing

    @cached_property
    def world(self) -> World:
        """The arrays the kernels take (see :class:`lever.kernels.world.World`)."""
        flat = self.cells.ravel().copy()
        gold = self.gold
        gold_id = np.full(self.n_states, -1, dtype=np.int32)
        gold_id[gold] = np.arange(gold.size, dtype=np.int32)
        # Row s holds every gold's distance from cell s: a step reads one row.
        gold_dist = np.empty((self.n_states, gold.size), dtype=np.int32)
        for g, cell in enumerate(gold):
            gold_dist[:, g] = self.distances_from(cell)
        dist_lever = (self.distances_from(self.lever) if self.lever is not None
                      else np.full(self.n_states, -1, dtype=np.int32))
        hazard = np.pad(self.cells == K.HAZARD, 1)
        hazard_neighbours = (hazard[:-2, 1:-1].astype(np.int8) + hazard[2:, 1:-1]
                             + hazard[1:-1, :-2] + hazard[1:-1, 2:]).ravel().astype(np.int8)
        return World(flat, int(self.width), self.distances_from(self.exit), dist_lever, gold_id,
                     gold_dist, hazard_neighbours, move_table(flat, self.width))

    @cached_property
    def id(self) -> str:
        """Stable short identifier: a hash of the text form (same grid → same id)."""
        return hashlib.sha256(self.to_text().encode()).hexdigest()[:12]

    # -- text form ----------------------------------------------------------
    def to_text(self) -> str:
        """One line per row, one character per cell (see :data:`KIND_CHARS`, ``S`` = start)."""
        chars = np.vectorize(KIND_CHARS.get)(self.cells).astype("<U1")
        chars.flat[self.start] = START_CHAR
        return "\n".join("".join(row) for row in chars) + "\n"

    @classmethod
    def from_text(cls, text: str, spec: GridSpec | None = None) -> "Layout":
        """Parse the text form; raises :class:`LeverError` on ragged rows or unknown characters."""
        if not isinstance(text, str):
            raise LeverError(f"layout text must be a str, got {type(text).__name__}")
        rows = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if not rows:
            raise LeverError("layout text is empty")
        if len({len(r) for r in rows}) != 1:
            raise LeverError(f"layout rows have different lengths: {sorted({len(r) for r in rows})}")
        starts = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == START_CHAR]
        if len(starts) != 1:
            raise LeverError(f"layout text needs exactly one {START_CHAR!r}, found {len(starts)}")
        bad = sorted({c for r in rows for c in r} - set(_CHAR_KINDS) - {START_CHAR})
        if bad:
            raise LeverError(f"unknown layout characters {bad}; valid: "
                             f"{''.join(_CHAR_KINDS)}{START_CHAR}")
        cells = np.array([[_CHAR_KINDS.get(c, K.EMPTY) for c in r] for r in rows], dtype=np.int8)
        return cls(cells, starts[0][0] * len(rows[0]) + starts[0][1], spec)

    def __str__(self) -> str:
        return self.to_text()

    # -- files ----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the layout (text form and spec) atomically, with a format version."""
        write_json(path, LAYOUT_FORMAT, LAYOUT_VERSION,
                   {"text": self.to_text(), "spec": asdict(self.spec) if self.spec else None})

    @classmethod
    def load(cls, path: str | Path) -> "Layout":
        """Read a file written by :meth:`save`; clear error if it is not one."""
        doc = read_json(path, LAYOUT_FORMAT, LAYOUT_VERSION)
        text, spec = doc.get("text"), doc.get("spec")
        if not isinstance(text, str) or not (spec is None or isinstance(spec, dict)):
            raise FileFormatError(f"{path}: layout file lacks its text or has a malformed spec")
        try:
            spec = GridSpec(**spec) if spec else None
        except TypeError as exc:
            raise FileFormatError(f"{path}: malformed layout spec ({exc})") from None
        return cls.from_text(text, spec)

    # -- generation -----------------------------------------------------------
    @classmethod
    def generate(cls, spec: GridSpec | str = "grid16", seed: int | None = None) -> "Layout":
        """The layout of ``spec`` (a GridSpec or a :data:`PRESETS` name) at its seed, as the study draws it.

        With Python's ``random.Random(seed)``: shuffle every cell (row-major
        list); the first is the start, the second the exit (unless the spec
        fixes them). Then, up to :data:`MAX_DRAWS` times, shuffle the other
        cells (row-major list) with the same generator and take hazards,
        then gold, then walls, then the lever; keep the first draw with
        routes avoiding walls and hazards from the start to the exit and
        the lever and from the lever to the exit. If none is valid, one more
        draw is taken unchecked.
        """
        if isinstance(spec, str):
            spec = GridSpec.preset(spec, seed=0 if seed is None else seed)
        elif seed is not None:
            spec = GridSpec(**{**asdict(spec), "seed": seed})
        rng = random.Random(spec.seed)
        every = [(r, c) for r in range(spec.height) for c in range(spec.width)]
        order = list(every)
        rng.shuffle(order)
        start = tuple(spec.start) if spec.start is not None else order[0]
        exit_ = tuple(spec.exit) if spec.exit is not None else order[1]
        for attempt in range(MAX_DRAWS + 1):
            others = [cell for cell in every if cell != start and cell != exit_]
            rng.shuffle(others)
            cells = np.zeros((spec.height, spec.width), dtype=np.int8)
            taken = 0
            for kind, count in ((K.HAZARD, spec.n_hazards), (K.GOLD, spec.n_gold), (K.WALL, spec.n_walls),
                                (K.LEVER, int(spec.lever))):
                for row, col in others[taken:taken + count]:
                    cells[row, col] = kind
                taken += count
            cells[exit_] = K.EXIT
            if attempt == MAX_DRAWS:
                warnings.warn(f"no draw of {spec} in {MAX_DRAWS} has the exit and lever reachable; "
                              f"using one more draw unchecked, as the study does", RuntimeWarning,
                              stacklevel=2)
            try:
                return cls(cells, start[0] * spec.width + start[1], spec, checked=attempt < MAX_DRAWS)
            except LeverError:
                continue
        raise AssertionError("unreachable: the last draw is unchecked")  # pragma: no cover
