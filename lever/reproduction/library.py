"""The study's snapshot library of one (spec set, layout seed, budget), held in memory.

Each of the 8 library objectives is trained once (the study's SARSA at the
budget); its library entries are training snapshots chosen by the study's
rule (:func:`lever.protocol.select_snapshots`: best-, worst- and
median-return snapshot plus a seeded 60% of the others, episode 0 excluded;
the final table counts as a snapshot). Every entry keeps its own Q table and
the support logged up to its episode, so a composition of entries sees only
the transitions they covered.

A reproduction trains a cell's runs as a stage of its own and keeps them in
a folder (:func:`train_runs`, one ``<objective>.npz`` per run, each written
atomically), so an interrupted run resumes without retraining them and the
progress bar shows the training stage apart from the searches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..compose import PolicyStack
from ..errors import FileFormatError, LeverError
from ..evaluation import rollout
from ..worlds.grid import Layout
from ..protocol import LIBRARY_OBJECTIVES, rank_candidates, select_snapshots
from ..training import TrainConfig, TrainedPolicy, train

#: How many snapshots of a run enter the library: the study's selection, or every one.
SELECTIONS = ("study", "all")


@dataclass(frozen=True)
class Entry:
    """One library entry: a snapshot of one training run.

    ``episode`` is the 0-based episode after which the snapshot was taken
    (the final table has the run's last episode); ``greedy_return`` the true
    return of its greedy policy under its own objective.
    """

    objective: str
    episode: int
    final: bool
    greedy_return: float
    policy: TrainedPolicy

    @property
    def label(self) -> str:
        """``objective@episode`` (``@final`` for the final table)."""
        return f"{self.objective}@{'final' if self.final else self.episode}"


def run_entries(layout: Layout, objective: str, policy: TrainedPolicy, rules: str, selection: str,
                seed: int) -> list[Entry]:
    """The library entries of one training run: its selected snapshots and final table."""
    snapshots = [policy.snapshot(i) for i in range(len(policy.snapshot_episodes))]
    last = policy.config.episodes - 1
    candidates = [(int(e), False, snap) for e, snap in zip(policy.snapshot_episodes, snapshots)
                  if int(e) != last] + [(last, True, policy)]
    returns = np.array([rollout(layout, p, objective, rules).ret for _, _, p in candidates])
    episodes = np.array([e for e, _, _ in candidates], dtype=np.int64)
    if selection == "study":
        kept = select_snapshots(episodes, returns, seed)
    else:
        kept = [i for i, e in enumerate(episodes) if e != 0]
    return [Entry(objective, int(episodes[i]), candidates[i][1], float(returns[i]), candidates[i][2])
            for i in kept]


def run_file(folder: Path, objective: str) -> Path:
    """Where :func:`train_runs` keeps the training run of ``objective``."""
    return Path(folder) / f"{objective}.npz"


def _saved_run(path: Path, layout: Layout, objective: str, config: TrainConfig) -> TrainedPolicy | None:
    # A run saved by an earlier, interrupted attempt, if it is whole and of this very training.
    if not path.exists():
        return None
    try:
        policy = TrainedPolicy.load(path)
    except FileFormatError:
        return None  # a damaged file is trained again
    same = policy.layout_id == layout.id and policy.objective.name == objective and policy.config == config
    return policy if same else None


def train_runs(layout: Layout, config: TrainConfig, objectives=LIBRARY_OBJECTIVES,
               folder: str | Path | None = None) -> list[TrainedPolicy]:
    """Train every objective under ``config``, one run each, in ``objectives`` order.

    With a ``folder``, each run is saved there as it finishes and a run
    already saved there (of the same layout, objective and config) is
    loaded instead of trained again.
    """
    runs = []
    for objective in objectives:
        path = run_file(folder, objective) if folder is not None else None
        policy = _saved_run(path, layout, objective, config) if path is not None else None
        if policy is None:
            policy = train(layout, objective, config)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                policy.save(path)
        runs.append(policy)
    return runs


@dataclass(frozen=True, eq=False)
class SnapshotLibrary:
    """Every entry of one (set, seed, budget), stacked for the composition kernels.

    ``entries`` in stack row order; ``stack`` the :class:`PolicyStack` of
    their tables; ``train_times`` seconds per objective's training run.
    """

    layout: Layout
    entries: tuple[Entry, ...]
    stack: PolicyStack
    train_times: dict

    @classmethod
    def build(cls, layout: Layout, config: TrainConfig, objectives=LIBRARY_OBJECTIVES,
              selection: str = "study", selection_seed: int = 0,
              runs_folder: str | Path | None = None) -> "SnapshotLibrary":
        """Train every objective under ``config`` and keep the selected snapshots of each run.

        ``runs_folder``: where the runs are kept and resumed from (see :func:`train_runs`).
        """
        if selection not in SELECTIONS:
            raise LeverError(f"unknown snapshot selection {selection!r}; valid: {', '.join(SELECTIONS)}")
        entries, times = [], {}
        runs = train_runs(layout, config, objectives, runs_folder)
        for i, (objective, policy) in enumerate(zip(objectives, runs)):
            times[objective] = policy.wall_time
            entries += run_entries(layout, objective, policy, config.rules, selection, selection_seed + i)
        return cls.of(layout, entries, times)

    @classmethod
    def of(cls, layout: Layout, entries, train_times=None) -> "SnapshotLibrary":
        """A library of the given entries (for ablations that restrict or thin a library)."""
        entries = tuple(entries)
        if not entries:
            raise LeverError("a snapshot library needs at least one entry")
        stack = PolicyStack.from_policies(layout, [e.policy for e in entries])
        return cls(layout, entries, stack, dict(train_times or {}))

    def entries_of(self, objective: str) -> list[int]:
        """Stack rows of the entries of exactly ``objective``, in stack order."""
        return [r for r, e in enumerate(self.entries) if e.objective == objective]

    def candidates(self, objective: str, n: int) -> np.ndarray:
        """Stack rows of the best ``n`` entries of exactly ``objective``, best first, int64 (≤ n,)."""
        rows = np.array(self.entries_of(objective), dtype=np.int64)
        if rows.size == 0:
            raise LeverError(f"the library holds no entry of objective {objective!r}")
        order = rank_candidates([self.entries[r].greedy_return for r in rows])
        return rows[list(order)][:n]

    def up_to(self, episode: int) -> "SnapshotLibrary":
        """The entries taken no later than ``episode`` (the final table counts at its episode)."""
        return SnapshotLibrary.of(self.layout, [e for e in self.entries if e.episode <= episode],
                                  self.train_times)

    def thinned(self, fraction: float, seed: int) -> "SnapshotLibrary":
        """Each entry's logged support with a seeded ``fraction`` of its visited pairs removed.

        The Q tables stay; removed pairs are no longer supported, so
        composition masks them and the empirical model loses them.
        """
        if not 0 <= fraction < 1:
            raise LeverError(f"thinning fraction must be in [0, 1), got {fraction}")
        rng = np.random.default_rng(seed)
        thinned = []
        for entry in self.entries:
            policy = entry.policy
            visited = np.flatnonzero(policy.visits.ravel() > 0)
            drop = rng.choice(visited, size=int(round(fraction * visited.size)), replace=False)
            keep = np.ones(policy.visits.size, dtype=bool)
            keep[drop] = False
            keep = keep.reshape(policy.visits.shape)
            thinned.append(replace(entry, policy=replace(
                policy, visits=np.where(keep, policy.visits, 0),
                next_state=np.where(keep, policy.next_state, -1).astype(np.int32),
                reward_model=np.where(keep[..., None], policy.reward_model, 0.0))))
        return SnapshotLibrary.of(self.layout, thinned, self.train_times)
