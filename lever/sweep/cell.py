"""The work of one sweep cell, and of the library it draws on.

For a cell the sweep opens the policy library of (setting, layout seed,
budget), building it first if needed; trains the composite from scratch
with the same budget (timed); and runs every strategy, optionally again
with planning on the support (timed). Library, baseline and searches all
use the sweep's reward rules. These are plain module-level
functions so that both the process pool and Ray ship them by reference.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from ..errors import LeverError
from ..evaluation import rollout
from ..worlds.grid import Layout
from ..library import PolicyLibrary
from ..worlds.objectives import Objective
from ..retrieval import PreparedLayout, prepare_layout
from ..search import StrategyResult, search
from ..strategies import StrategySpec
from ..training import train
from .config import Cell, SweepConfig


@dataclass(frozen=True)
class StrategyRun:
    """One strategy's search in one cell.

    ``label`` the strategy's text form (``hybrid:3``); ``planning`` whether
    planning on the support was asked; ``search_s`` the median wall seconds
    of the whole search call; ``result`` its record (without the policy).
    """

    label: str
    planning: bool
    search_s: float
    result: StrategyResult


@dataclass(frozen=True)
class CellResult:
    """Everything one cell measured: the from-scratch baseline (``scratch_s`` seconds) and every run."""

    cell: Cell
    layout_id: str
    episodes: int
    scratch_return: float
    scratch_end: str
    scratch_s: float
    runs: tuple[StrategyRun, ...]

    def to_dict(self) -> dict:
        """This result as a plain nested dict."""
        runs = [{**asdict(replace(run, result=None)), "result": run.result.to_dict()} for run in self.runs]
        return {**asdict(replace(self, runs=())), "runs": runs}

    @classmethod
    def from_dict(cls, data: dict) -> "CellResult":
        """A result from a dict written by :meth:`to_dict`."""
        runs = tuple(StrategyRun(**{**run, "result": StrategyResult.from_dict(run["result"])})
                     for run in data["runs"])
        return cls(**{**data, "cell": Cell(**data["cell"]), "runs": runs})


def library_root(out: Path, setting: str, layout_seed: int, budget: str) -> Path:
    """Where the sweep caches the library of one (setting, layout seed, budget)."""
    return Path(out) / "libraries" / f"{setting}_s{layout_seed}_{budget}"


def build_cell_library(config: SweepConfig, setting: str, layout_seed: int, budget: str, root: str) -> str:
    """Build (or finish building) the library of one (setting, layout seed, budget) at ``root``; returns ``root``."""
    options = dict(setting=setting, layout_seeds=(layout_seed,), budgets=(budget,),
                   objectives=config.library_objectives, algorithm=config.algorithm, gamma=config.gamma,
                   train_seed=config.train_seed, rules=config.rules, jobs=1, progress=False)
    if config.episodes is not None:
        options["episodes"] = config.episodes
    PolicyLibrary.build(root, **options)
    return root


def run_cell(config: SweepConfig, cell: Cell, root: str) -> CellResult:
    """Compute one cell against the library at ``root`` (already built). Deterministic except times.

    The library's layout is prepared once per cell (stacked tables, index), untimed, as
    loading a trained policy would be; every strategy's timed search then starts from it.
    """
    library = PolicyLibrary.open(root)
    layout = Layout.generate(cell.setting, seed=cell.layout_seed)
    if layout.id not in library.layout_ids:
        raise LeverError(f"library {root} does not hold layout {cell.setting} seed {cell.layout_seed}")
    if library.spec.rules != config.rules:
        raise LeverError(f"library {root} was trained under the {library.spec.rules} rules, the sweep "
                         f"uses the {config.rules} rules")
    objective = Objective.parse(cell.composite)
    scratch_return, scratch_end, scratch_s, episodes = _scratch_baseline(config, cell, layout, objective)
    prepared = prepare_layout(library, layout.id)
    plannings = (False, True) if config.planning else (False,)
    runs = tuple(_strategy_run(prepared, objective, spec, config.operator, planning, config.timing_repeats)
                 for planning in plannings for spec in config.strategy_specs)
    return CellResult(cell, layout.id, episodes, float(scratch_return), scratch_end, scratch_s, runs)


def _median_time(run: Callable[[], object], repeats: int) -> tuple[object, float]:
    """Run once untimed (compilation, caches), then ``repeats`` timed runs; the last result and the median time."""
    result = run()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - began)
    return result, statistics.median(times)


def _scratch_baseline(config: SweepConfig, cell: Cell, layout: Layout,
                      objective: Objective) -> tuple[float, str, float, int]:
    """Train the composite from scratch: (true return, end reason, kernel seconds, episodes)."""
    train_config = config.train_config(cell.setting, cell.budget, config.scratch_seed)
    train(layout, objective, replace(train_config, episodes=1))  # compile or load the kernel untimed
    policy = train(layout, objective, train_config)
    result = rollout(layout, policy, objective, config.rules)
    return result.ret, result.end, policy.wall_time, train_config.episodes


def _strategy_run(prepared: PreparedLayout, objective: Objective, spec: StrategySpec, operator: str,
                  planning: bool, repeats: int) -> StrategyRun:
    """Run one strategy on one cell (one untimed warm-up, then ``repeats`` timed runs) and report it."""
    strategy = spec.strategy()
    result, seconds = _median_time(lambda: search(prepared, objective, strategy, operator=operator,
                                                  plan=planning), repeats)
    return StrategyRun(spec.label, planning, seconds, replace(result, policy=None))
