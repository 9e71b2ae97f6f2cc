"""Sweeps: composition against training from scratch, cell by cell, resumable and parallel.

A :class:`SweepConfig` crosses grid settings, budgets, layout seeds and
composite objectives; each combination is a *cell*. For a cell the sweep

1. opens the policy library of (setting, layout seed, budget), building it
   first if needed (libraries are cached under the sweep's output directory
   and shared by every cell that needs them),
2. trains the composite from scratch with the same budget (timed),
3. runs every strategy, optionally again with planning on the support (timed),

and records one :class:`CellResult`. Each finished cell is written atomically
to ``OUT/cells/<key>.json`` the moment it ends, so an interrupted sweep loses
only the cells in flight, and running the same sweep again skips every cell
already on disk. ``OUT/sweep.json`` holds the configuration, its hash and the
lever version; an output directory that holds another configuration is
refused rather than mixed. The final table (one line per cell and strategy,
see :class:`SweepRow`) goes to ``OUT/results.csv`` (and ``results.parquet``
when pyarrow is importable).

Definitions (per table line, all from the same cell computation):

* ``return_ratio = true_return / scratch_return`` when ``scratch_return > 0``;
  when training from scratch earned nothing positive (``scratch_return <= 0``)
  a ratio has no meaningful sign or scale, so it is ``nan`` and the report
  counts such lines apart. ``return_difference = true_return -
  scratch_return`` is always defined.
* ``speedup = scratch_time_s / time_s``: the from-scratch training time of
  the cell divided by the strategy's time, both measured in the same worker
  process after an untimed warm-up (so one-off compilation never counts
  against either side). Scratch time is the training kernel's wall time for
  the whole budget (milliseconds to seconds: one run measures it). Strategy
  time (microseconds to milliseconds) is the median over ``timing_repeats``
  runs of one :func:`lever.strategies.search` call (retrieval, composition,
  scoring, planning when asked, and the final evaluations), starting from
  the layout's tables already loaded, as a trained policy would be.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import FileFormatError, LeverError
from .evaluation import rollout
from .fileio import atomic_write, read_json, write_json
from .gridworld import PRESETS, Layout
from .library import PolicyLibrary
from .objectives import COMPONENTS, Objective
from .strategies import STRATEGIES, Strategy, make_strategy, prepare_layout, search
from .training import ALGORITHMS, BUDGETS, TrainConfig, train

SWEEP_FORMAT = "lever-sweep"
CELL_FORMAT = "lever-sweep-cell"
FORMAT_VERSION = 1

#: Keywords accepted among the composites: every composite of that many components.
COMPOSITE_GROUPS = {"single": 1, "double": 2, "triple": 3, "full": 4}
#: Strategy names; ``hybrid`` takes k (default 3) and ``beam`` a width (default 3), e.g. ``"hybrid:5"``.
#: The size parameter a strategy takes in a sweep ("hybrid:3" is k, "beam:3" the width) and its default.
SIZE_PARAMETERS = {"hybrid": ("k", 3), "beam": ("width", 3)}
OPERATORS = ("sum", "max")
#: The objectives of the study's library for each layout (DESIGN.md §2); composites are queried against it.
STUDY_LIBRARY = ("path", "gold", "hazard", "lever", "hazard+lever", "path+gold", "path+gold+hazard",
                 "path+gold+hazard+lever")
BACKENDS = ("process", "ray")


@dataclass(frozen=True)
class StrategySpec:
    """One strategy with its parameter: ``hybrid`` k, ``beam`` width, else None."""

    name: str
    param: int | None = None

    @classmethod
    def parse(cls, text: str) -> "StrategySpec":
        """Read ``"targeted"``, ``"hybrid:3"``, ``"exhaustive"``, ``"beam:3"`` (parameter optional)."""
        name, _, param = str(text).strip().partition(":")
        if name not in STRATEGIES:
            raise LeverError(f"unknown strategy {text!r}; valid: {', '.join(STRATEGIES)} "
                             f"(hybrid and beam take a size, e.g. hybrid:3)")
        default = SIZE_PARAMETERS[name][1] if name in SIZE_PARAMETERS else None
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
        """The :class:`lever.strategies.Strategy` this spec names."""
        if self.name not in SIZE_PARAMETERS:
            return make_strategy(self.name)
        return make_strategy(self.name, **{SIZE_PARAMETERS[self.name][0]: self.param})


def expand_composites(specs: Iterable[str]) -> tuple[str, ...]:
    """Canonical composite names from names and group keywords (``single``, ``double``, ``triple``, ``full``).

    Order is kept and duplicates are dropped; an unknown component is a :class:`LeverError`.
    """
    names: list[str] = []
    for spec in specs:
        spec = str(spec).strip()
        if spec in COMPOSITE_GROUPS:
            size = COMPOSITE_GROUPS[spec]
            names.extend("+".join(group) for group in itertools.combinations(COMPONENTS, size))
            continue
        try:
            objective = Objective.parse(spec)
        except LeverError as exc:
            raise LeverError(f"unknown composite {spec!r} ({exc}); use components joined by '+' "
                             f"or one of {', '.join(COMPOSITE_GROUPS)}") from None
        if any(w not in (0.0, 1.0) for w in objective.weights):
            raise LeverError(f"composite {spec!r}: sweeps use unit weights (components joined by '+')")
        names.append(objective.name)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Cell:
    """One point of the sweep's grid: a composite on one layout at one budget."""

    setting: str
    budget: str
    layout_seed: int
    composite: str

    @property
    def key(self) -> str:
        """File-name-safe unique name, e.g. ``grid16_X1_s3_path+gold``."""
        return f"{self.setting}_{self.budget}_s{self.layout_seed}_{self.composite}"

    @property
    def library_key(self) -> tuple[str, int, str]:
        """(setting, layout seed, budget) of the library this cell draws on."""
        return (self.setting, self.layout_seed, self.budget)


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep crosses and how each cell is computed.

    ``settings`` grid presets (grid8, grid16, grid16-dense, grid32);
    ``budgets`` X1/X5/X10; ``layout_seeds`` one layout each; ``composites``
    composite names (``"path+gold"``) or group keywords (``"double"`` = every
    pair, ``"triple"``, ``"full"``, ``"single"``), expanded on construction;
    ``strategies`` as in :class:`StrategySpec`; ``operator`` ``"sum"`` or
    ``"max"``; ``gamma`` for the library and the baseline alike (0 = the
    support-limited regime); ``planning`` also runs every strategy with
    planning on the support; ``library_objectives`` what each library holds
    (default: the study's eight objectives, so a composite may itself be in
    the library, as in the study); ``train_seed`` seeds the library, ``scratch_seed`` the from-scratch run.
    ``episodes`` overrides the budget's episode count for the library and the
    baseline alike (for tests and quick looks; None = the study's budget).
    ``timing_repeats`` timed runs per strategy measurement (the median counts).
    """

    settings: tuple[str, ...] = ("grid16",)
    budgets: tuple[str, ...] = ("X1",)
    layout_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    composites: tuple[str, ...] = ("double", "triple", "full")
    strategies: tuple[str, ...] = ("targeted", "hybrid:3", "exhaustive", "beam:3")
    operator: str = "sum"
    gamma: float = 0.0
    planning: bool = False
    library_objectives: tuple[str, ...] = STUDY_LIBRARY
    algorithm: str = "sarsa"
    train_seed: int = 0
    scratch_seed: int = 1
    episodes: int | None = None
    timing_repeats: int = 3

    def __post_init__(self):
        for name in ("settings", "budgets", "layout_seeds", "composites", "strategies", "library_objectives"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.settings:
            raise LeverError("a sweep needs at least one setting")
        for setting in self.settings:
            if setting not in PRESETS:
                raise LeverError(f"unknown setting {setting!r}; valid: {', '.join(PRESETS)}")
        if not self.budgets:
            raise LeverError("a sweep needs at least one budget")
        for budget in self.budgets:
            if budget not in BUDGETS[self.settings[0]]:
                raise LeverError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS[self.settings[0]])}")
        if not self.layout_seeds:
            raise LeverError("a sweep needs at least one layout seed (the seed list is empty)")
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.layout_seeds):
            raise LeverError(f"layout seeds must be non-negative integers, got {self.layout_seeds}")
        object.__setattr__(self, "layout_seeds", tuple(dict.fromkeys(self.layout_seeds)))
        if not self.composites:
            raise LeverError("a sweep needs at least one composite")
        object.__setattr__(self, "composites", expand_composites(self.composites))
        library = expand_composites(self.library_objectives)
        object.__setattr__(self, "library_objectives", library)
        held = {c for name in library for c in name.split("+")}
        for composite in self.composites:
            missing = [c for c in composite.split("+") if c not in held]
            if missing:
                raise LeverError(f"composite {composite!r} needs component(s) {missing} that the library "
                                 f"objectives {list(library)} do not cover")
        if not self.strategies:
            raise LeverError("a sweep needs at least one strategy")
        labels = [StrategySpec.parse(s).label for s in self.strategies]
        object.__setattr__(self, "strategies", tuple(dict.fromkeys(labels)))
        if self.operator not in OPERATORS:
            raise LeverError(f"unknown operator {self.operator!r}; valid: {', '.join(OPERATORS)}")
        if self.algorithm not in ALGORITHMS:
            raise LeverError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if not 0 <= self.gamma <= 1:
            raise LeverError(f"gamma must be in [0, 1], got {self.gamma}")
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "planning", bool(self.planning))
        if self.episodes is not None and (not isinstance(self.episodes, int) or self.episodes < 1):
            raise LeverError(f"episodes must be a positive integer or None, got {self.episodes!r}")
        if self.timing_repeats < 1:
            raise LeverError(f"timing_repeats must be >= 1, got {self.timing_repeats}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "SweepConfig":
        """A named sweep: ``demo``/``quick`` (grid8, seconds) or ``study16`` (the study's 16×16 setting)."""
        if name not in SWEEP_PRESETS:
            raise LeverError(f"unknown sweep preset {name!r}; valid: {', '.join(SWEEP_PRESETS)}")
        return cls(**{**SWEEP_PRESETS[name], **overrides})

    @property
    def strategy_specs(self) -> tuple[StrategySpec, ...]:
        """The strategies as parsed :class:`StrategySpec` objects."""
        return tuple(StrategySpec.parse(s) for s in self.strategies)

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (setting, budget, layout seed, composite)."""
        return [Cell(*combo) for combo in itertools.product(self.settings, self.budgets,
                                                             self.layout_seeds, self.composites)]

    def to_dict(self) -> dict:
        """This config as a plain dict (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        """A config from a dict; LeverError for an unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise LeverError(f"unknown sweep config field(s) {sorted(unknown)}")
        return cls(**data)

    @property
    def hash(self) -> str:
        """12-hex digest of everything that decides the results."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def train_config(self, setting: str, budget: str, seed: int) -> TrainConfig:
        """The training configuration of the library and the baseline for one setting and budget."""
        overrides = {"algorithm": self.algorithm, "gamma": self.gamma, "seed": seed}
        if self.episodes is not None:
            overrides["episodes"] = self.episodes
        return TrainConfig.from_budget(budget, setting, **overrides)


#: Built-in sweeps. ``quick`` finishes in well under a minute on two cores.
SWEEP_PRESETS: dict[str, dict] = {
    "quick": dict(settings=("grid8",), budgets=("X1",), layout_seeds=(0, 1),
                  composites=("path+gold", "path+hazard", "gold+lever", "path+gold+hazard",
                              "path+hazard+lever", "path+gold+hazard+lever"),
                  planning=True),
    "study16": dict(settings=("grid16",), budgets=("X1", "X5", "X10"), layout_seeds=(0, 1, 2, 3, 4),
                    composites=("single", "double", "triple"), planning=True),
}


@dataclass(frozen=True)
class StrategyOutcome:
    """What one strategy did in one cell.

    ``policy_ids`` the chosen library policies; ``offline_return`` the score
    of the chosen composition in the empirical model; ``true_return`` its
    greedy return in the real world and ``end`` why that episode ended;
    ``combinations`` how many combinations it scored; ``support_coverage``
    the fraction of (state, action) pairs the chosen combination's support
    covers; ``route_on_support`` the fraction of the true route's steps that
    stayed on it; ``time_s`` wall seconds of the whole strategy call and its
    split into retrieval, composition and scoring.
    """

    strategy: str
    planning: bool
    planned: bool
    policy_ids: tuple[int, ...]
    offline_return: float
    true_return: float
    end: str
    offline_end: str
    combinations: int
    support_coverage: float
    route_on_support: float
    time_s: float
    retrieval_s: float
    composition_s: float
    scoring_s: float
    planning_s: float


@dataclass(frozen=True)
class CellResult:
    """Everything one cell measured: the from-scratch baseline and every strategy's outcome."""

    cell: Cell
    layout_id: str
    episodes: int
    scratch_return: float
    scratch_end: str
    scratch_time_s: float
    outcomes: tuple[StrategyOutcome, ...]

    def to_dict(self) -> dict:
        """This result as a plain nested dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CellResult":
        """A result from a dict written by :meth:`to_dict`."""
        outcomes = tuple(StrategyOutcome(**{**o, "policy_ids": tuple(o["policy_ids"])}) for o in data["outcomes"])
        return cls(**{**data, "cell": Cell(**data["cell"]), "outcomes": outcomes})


@dataclass(frozen=True)
class SweepRow:
    """One line of the results table: one strategy (with or without planning) in one cell.

    The cell's baseline columns (``scratch_*``) repeat on each of its lines.
    ``return_ratio`` and ``speedup`` are derived from this line's own columns
    (see the module docstring); ``long_horizon`` marks composites with the lever.
    """

    setting: str
    budget: str
    layout_seed: int
    composite: str
    n_components: int
    long_horizon: bool
    layout_id: str
    episodes: int
    strategy: str
    planning: bool
    planned: bool
    scratch_return: float
    scratch_end: str
    scratch_time_s: float
    offline_return: float
    true_return: float
    end: str
    offline_end: str
    return_ratio: float
    return_difference: float
    speedup: float
    time_s: float
    retrieval_s: float
    composition_s: float
    scoring_s: float
    planning_s: float
    combinations: int
    support_coverage: float
    route_on_support: float
    policy_ids: str


#: Columns whose values depend on the machine's speed, not on the configuration.
TIMING_COLUMNS = ("scratch_time_s", "time_s", "retrieval_s", "composition_s", "scoring_s", "planning_s",
                  "speedup")


def return_ratio(true_return: float, scratch_return: float) -> float:
    """``true_return / scratch_return``; ``nan`` when ``scratch_return <= 0`` (see module docstring)."""
    return true_return / scratch_return if scratch_return > 0 else math.nan


def speedup(scratch_time_s: float, strategy_time_s: float) -> float:
    """From-scratch time over strategy time (``inf`` if the strategy took no measurable time)."""
    return scratch_time_s / strategy_time_s if strategy_time_s > 0 else math.inf


def rows_of(result: CellResult) -> list[SweepRow]:
    """The table lines of one cell, in strategy order (without planning first)."""
    cell = result.cell
    n_components = len(cell.composite.split("+"))
    return [SweepRow(
        setting=cell.setting, budget=cell.budget, layout_seed=cell.layout_seed, composite=cell.composite,
        n_components=n_components, long_horizon="lever" in cell.composite.split("+"),
        layout_id=result.layout_id, episodes=result.episodes, strategy=o.strategy, planning=o.planning,
        planned=o.planned,
        scratch_return=result.scratch_return, scratch_end=result.scratch_end,
        scratch_time_s=result.scratch_time_s, offline_return=o.offline_return, true_return=o.true_return,
        end=o.end, offline_end=o.offline_end,
        return_ratio=return_ratio(o.true_return, result.scratch_return),
        return_difference=o.true_return - result.scratch_return,
        speedup=speedup(result.scratch_time_s, o.time_s), time_s=o.time_s, retrieval_s=o.retrieval_s,
        composition_s=o.composition_s, scoring_s=o.scoring_s, planning_s=o.planning_s, combinations=o.combinations,
        support_coverage=o.support_coverage, route_on_support=o.route_on_support,
        policy_ids=";".join(str(i) for i in o.policy_ids),
    ) for o in result.outcomes]


# ----------------------------------------------------------------------------------------------
# The work of one library and of one cell (run in worker processes; plain module-level functions
# so that both the process pool and Ray can ship them by reference).


def library_root(out: Path, setting: str, layout_seed: int, budget: str) -> Path:
    """Where the sweep caches the library of one (setting, layout seed, budget)."""
    return Path(out) / "libraries" / f"{setting}_s{layout_seed}_{budget}"


def build_library(config: SweepConfig, setting: str, layout_seed: int, budget: str, root: str) -> str:
    """Build (or finish building) the library of one (setting, layout seed, budget) at ``root``."""
    options = dict(setting=setting, layout_seeds=(layout_seed,), budgets=(budget,),
                   objectives=config.library_objectives, algorithm=config.algorithm, gamma=config.gamma,
                   train_seed=config.train_seed, jobs=1, progress=False)
    if config.episodes is not None:
        options["episodes"] = config.episodes
    PolicyLibrary.build(root, **options)
    return root


def _median_time(run: Callable[[], object], repeats: int) -> tuple[object, float]:
    """Run once untimed (compilation, caches), then ``repeats`` timed runs; the last result and the median time."""
    result = run()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - began)
    return result, statistics.median(times)


def _scratch_baseline(config: SweepConfig, cell: Cell, layout: Layout) -> tuple[float, str, float, int]:
    """Train the composite from scratch: (true return, end reason, kernel seconds, episodes)."""
    train_config = config.train_config(cell.setting, cell.budget, config.scratch_seed)
    train(layout, cell.composite, replace(train_config, episodes=1))  # compile or load the kernel untimed
    policy = train(layout, cell.composite, train_config)
    result = rollout(layout, policy, cell.composite)
    return result.ret, result.end, policy.wall_time, train_config.episodes


def _strategy_outcome(prepared, cell: Cell, spec: StrategySpec, operator: str, planning: bool,
                      repeats: int) -> StrategyOutcome:
    """Run one strategy on one cell (one untimed warm-up, then ``repeats`` timed runs) and report it."""
    strategy = spec.strategy()
    result, seconds = _median_time(lambda: search(prepared, cell.composite, strategy, operator=operator,
                                                  plan=planning), repeats)
    return StrategyOutcome(
        strategy=spec.label, planning=planning, planned=result.planned, policy_ids=result.policy_ids,
        offline_return=float(result.offline_score), true_return=float(result.true_return),
        end=result.true_end, offline_end=result.offline_end, combinations=int(result.combinations_tried),
        support_coverage=float(result.coverage), route_on_support=float(result.route_on_support),
        time_s=seconds, retrieval_s=result.retrieval_time, composition_s=result.composition_time,
        scoring_s=result.scoring_time, planning_s=result.planning_time)


def run_cell(config: SweepConfig, cell: Cell, root: str) -> CellResult:
    """Compute one cell against the library at ``root`` (already built). Deterministic except times.

    The library's layout is prepared once per cell (stacked tables, index), untimed, as
    loading a trained policy would be; every strategy's timed search then starts from it.
    """
    library = PolicyLibrary.open(root)
    layout = Layout.generate(cell.setting, seed=cell.layout_seed)
    if layout.id not in library.layout_ids:
        raise LeverError(f"library {root} does not hold layout {cell.setting} seed {cell.layout_seed}")
    scratch_return, scratch_end, scratch_time, episodes = _scratch_baseline(config, cell, layout)
    prepared = prepare_layout(library, layout.id)
    plannings = (False, True) if config.planning else (False,)
    outcomes = tuple(_strategy_outcome(prepared, cell, spec, config.operator, planning, config.timing_repeats)
                     for planning in plannings for spec in config.strategy_specs)
    return CellResult(cell, layout.id, episodes, float(scratch_return), scratch_end, scratch_time, outcomes)


def _limit_threads() -> None:
    """Worker initializer: one Numba thread per worker process, since the pool already fills the cores."""
    import numba

    numba.set_num_threads(1)


# ----------------------------------------------------------------------------------------------
# Backends: submit a function, get results back as they finish.


class _ProcessBackend:
    """Local processes (``jobs`` > 1) or the calling process itself (``jobs`` == 1).

    In this process, work runs one item at a time when the loop asks for the next finished
    one, in submission order, so each cell is persisted before the next one starts.
    """

    def __init__(self, jobs: int):
        self.pool = None
        self.queue: list[tuple[Future, Callable, tuple]] = []
        if jobs > 1:
            import multiprocessing

            # spawn: a fresh interpreter per worker, safe whatever threads this process already runs
            self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_limit_threads)

    def submit(self, fn: Callable, *args) -> Future:
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        future: Future = Future()
        self.queue.append((future, fn, args))
        return future

    def next_done(self, pending: set) -> list:
        if self.pool is None:
            future, fn, args = self.queue.pop(0)
            try:
                future.set_result(fn(*args))
            except Exception as exc:  # handed to the caller through the future, as a pool would
                future.set_exception(exc)
            return [future]
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def result(handle: Future):
        return handle.result()

    def close(self, pending: Iterable, cancel: bool) -> None:
        if self.pool is not None:
            # on an interruption, drop queued work and do not wait for cells whose results would be lost anyway
            self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


class _RayBackend:
    """Ray tasks, on the instance at ``address`` (or the one already initialised, or a new local one)."""

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise LeverError("the ray backend needs ray: pip install 'lever[ray]'") from None
        self.ray = ray
        self.owns_instance = not ray.is_initialized()
        if self.owns_instance:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.remote = {}

    def submit(self, fn: Callable, *args):
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1)(fn)
        return self.remote[fn].remote(*args)

    def next_done(self, pending: set) -> list:
        ready, _ = self.ray.wait(list(pending), num_returns=1)
        return ready

    def result(self, handle):
        return self.ray.get(handle)

    def close(self, pending: Iterable, cancel: bool) -> None:
        if cancel:
            for handle in pending:
                self.ray.cancel(handle, force=True)
        if self.owns_instance:
            self.ray.shutdown()


# ----------------------------------------------------------------------------------------------
# The sweep directory.


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: its table and where it lives.

    ``rows`` every table line in cell order; ``computed`` cells computed by
    this run, ``reused`` cells found already on disk; ``csv``/``parquet``
    (None without pyarrow) the table files; ``wall_time`` this run's seconds.
    """

    config: SweepConfig
    out: Path
    rows: tuple[SweepRow, ...]
    computed: int
    reused: int
    csv: Path
    parquet: Path | None
    wall_time: float


def _check_out_dir(config: SweepConfig, out: Path) -> None:
    """Refuse a directory that holds anything but this very sweep; claim it otherwise."""
    manifest = out / "sweep.json"
    if manifest.exists():
        stored = read_json(manifest, SWEEP_FORMAT, FORMAT_VERSION)
        if stored.get("config_hash") != config.hash:
            previous = stored.get("config", {})
            changed = sorted(k for k, v in config.to_dict().items() if previous.get(k) != v)
            raise LeverError(f"{out} holds a sweep with another configuration (hash {stored.get('config_hash')}, "
                             f"this one {config.hash}; differs in {', '.join(changed) or 'format'}): "
                             f"choose another output directory, or delete that one to start over")
        return
    if out.exists() and any(out.iterdir()):
        raise LeverError(f"{out} exists and is not a lever sweep directory (no sweep.json): "
                         f"choose an empty or new output directory")
    _write_manifest(config, out, finished=False)


def _write_manifest(config: SweepConfig, out: Path, finished: bool, n_cells: int | None = None) -> None:
    from . import __version__

    write_json(out / "sweep.json", SWEEP_FORMAT, FORMAT_VERSION,
               {"config": config.to_dict(), "config_hash": config.hash, "lever_version": __version__,
                "finished": finished, "n_cells": n_cells})


def _cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.key}.json"


def _load_cell(path: Path, config: SweepConfig, cell: Cell) -> CellResult:
    document = read_json(path, CELL_FORMAT, FORMAT_VERSION)
    if document.get("config_hash") != config.hash:
        raise FileFormatError(f"{path}: cell of another sweep configuration ({document.get('config_hash')})")
    try:
        result = CellResult.from_dict(document["result"])
    except (KeyError, TypeError) as exc:
        raise FileFormatError(f"{path}: not a valid sweep cell ({exc})") from None
    if result.cell != cell:
        raise FileFormatError(f"{path}: holds cell {result.cell.key}, expected {cell.key}")
    return result


def _save_cell(out: Path, config: SweepConfig, result: CellResult) -> None:
    write_json(_cell_path(out, result.cell), CELL_FORMAT, FORMAT_VERSION,
               {"config_hash": config.hash, "result": result.to_dict()})


def load_finished(config: SweepConfig, out: str | os.PathLike) -> dict[Cell, CellResult]:
    """The cells of ``config`` already persisted under ``out`` (an empty dict for a fresh directory)."""
    out = Path(out)
    finished = {}
    for cell in config.cells():
        path = _cell_path(out, cell)
        if path.exists():
            finished[cell] = _load_cell(path, config, cell)
    return finished


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, jobs: int | None = None,
              backend: str = "process", address: str | None = None, progress: bool = True) -> SweepResult:
    """Run (or resume) ``config`` into the directory ``out``; returns the whole table.

    ``jobs`` worker processes for the ``"process"`` backend (default: the
    number of cores; 1 runs in this process); ``backend="ray"`` runs the
    same cell function as Ray tasks on the instance at ``address`` (an
    already initialised instance is used as is; otherwise ``ray.init`` is
    called with ``address``, None starting a local one); Ray workers
    import lever and write the libraries under ``out``, so on a cluster of
    several machines lever must be installed on every node and ``out`` must
    be a shared filesystem path. Cells already persisted are not
    recomputed. Raises :class:`LeverError` before any work for a bad
    backend or jobs, or an output directory that holds another sweep.
    """
    began = time.perf_counter()
    if backend not in BACKENDS:
        raise LeverError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise LeverError(f"jobs must be >= 1, got {jobs}")
    if backend == "process" and address is not None:
        raise LeverError("an address is for the ray backend only")
    out = Path(out)
    _check_out_dir(config, out)
    cells = config.cells()
    finished = load_finished(config, out)
    todo = [cell for cell in cells if cell not in finished]
    reused = len(finished)

    if todo:
        executor = _RayBackend(address) if backend == "ray" else _ProcessBackend(min(jobs, len(todo)))
        _run_cells(config, out, todo, finished, executor, progress, total=len(cells))

    rows = tuple(row for cell in cells for row in rows_of(finished[cell]))
    csv_path, parquet_path = write_table(rows, out)
    _write_manifest(config, out, finished=True, n_cells=len(cells))
    return SweepResult(config, out, rows, len(todo), reused, csv_path, parquet_path,
                       time.perf_counter() - began)


def _run_cells(config: SweepConfig, out: Path, todo: list[Cell], finished: dict, executor, progress: bool,
               total: int) -> None:
    """Build the missing libraries, then compute cells as their library becomes ready; persist each one."""
    from tqdm.auto import tqdm

    by_library: dict[tuple, list[Cell]] = {}
    for cell in todo:
        by_library.setdefault(cell.library_key, []).append(cell)
    pending: dict = {}  # handle -> ("library", key) or ("cell", cell)
    bar = tqdm(total=total, initial=total - len(todo), unit="cell", desc="sweep", disable=not progress,
               dynamic_ncols=True)
    cancelled = True
    try:
        for key in by_library:
            root = str(library_root(out, *key))
            pending[executor.submit(build_library, config, *key, root)] = ("library", key)
        while pending:
            for handle in executor.next_done(set(pending)):
                kind, what = pending.pop(handle)
                result = executor.result(handle)
                if kind == "library":
                    for cell in by_library[what]:
                        pending[executor.submit(run_cell, config, cell, result)] = ("cell", cell)
                else:
                    _save_cell(out, config, result)
                    finished[what] = result
                    bar.update(1)
        cancelled = False
    finally:
        bar.close()
        executor.close(pending, cancel=cancelled)


# ----------------------------------------------------------------------------------------------
# The table.


def _column_types() -> dict[str, type]:
    hints = {"str": str, "int": int, "float": float, "bool": bool}
    return {f.name: hints[f.type] for f in fields(SweepRow)}


def write_table(rows: Sequence[SweepRow], out: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write ``results.csv`` (and ``results.parquet`` when pyarrow is importable) under ``out``, atomically."""
    out = Path(out)
    names = [f.name for f in fields(SweepRow)]

    def write_csv(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([repr(v) if isinstance(v, float) else v for v in _row_values(row)])

    csv_path = out / "results.csv"
    atomic_write(csv_path, write_csv)
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return csv_path, None
    columns = {name: [getattr(row, name) for row in rows] for name in names}
    table = pyarrow.table(columns)
    parquet_path = out / "results.parquet"
    atomic_write(parquet_path, lambda handle: pyarrow.parquet.write_table(table, handle), binary=True)
    return csv_path, parquet_path


def _row_values(row: SweepRow) -> tuple:
    return tuple(getattr(row, f.name) for f in fields(SweepRow))


def read_table(path: str | os.PathLike) -> list[SweepRow]:
    """Read a results table written by :func:`write_table` (a CSV file, or a sweep directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such results file") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    types = _column_types()
    if header != list(types):
        raise FileFormatError(f"{path}: not a lever sweep table (columns differ from {list(types)})")
    rows = []
    for number, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise FileFormatError(f"{path}: line {number} has {len(values)} fields, expected {len(header)}")
        try:
            parsed = {name: (values[i] == "True") if types[name] is bool else types[name](values[i])
                      for i, name in enumerate(header)}
        except ValueError as exc:
            raise FileFormatError(f"{path}: line {number}: {exc}") from None
        rows.append(SweepRow(**parsed))
    return rows
