"""The logged support of a policy that arrives as a table: derived by a greedy replay, or read from what is given.

A library policy carries the log its training left: visit counts, and for
each visited (state, action) pair the next state and the reward of every
component set on its first visit (see :class:`lever.training.TrainedPolicy`).
A policy added as a Q table (:mod:`lever.library.add`) gets the same log
in one of three ways:

- **derived** (:func:`replay_support`): the greedy policy (lowest-index
  ties) replayed once from the start in the true world, to the exit, a
  hazard or the step cap (H·W): the pairs it visits with their counts, and
  on each pair's first visit its next state and every set's reward as the
  step kernel gives it in that episode's context (gold taken, lever state),
  exactly as training logs a visit;
- **given pairs** (:func:`pairs_support`): a bool mask or visit counts
  (S, A); each supported pair's next state and rewards come from one step of
  the kernel in the episode's starting context (no gold taken, lever not
  pulled), which is how a log without history is read. Sets without gold
  and lever do not depend on that context, so for them this is exact;
- **a given log** (:func:`checked_log`): visits, next states and rewards, as
  an exported library policy or a trained policy holds them, checked
  against the world: every next state must be where the world leads, and
  the rewards of the sets without gold and lever must be the world's.

Entries outside the support are stored as -1 (next state) and 0 (rewards).
Pairs at cells no agent acts from (walls, hazards, the exit) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LeverError
from ..worlds.grid import Layout
from ..kernels.constants import EXIT, HAZARD, HISTORY_BITS, N_ACTIONS, N_SETS, WALL
from ..kernels.rollout import greedy_policy
from ..kernels.support import log_pairs_from_start, replay_greedy_log
from ..kernels.table import replay_greedy_log_table
from ..worlds.tabular import TabularWorld

#: Component sets whose reward does not depend on the episode's history (no gold, no lever), by mask.
HISTORY_FREE_SETS = np.array([m for m in range(N_SETS) if not m & HISTORY_BITS])
#: Largest difference accepted between a given history-free reward and the world's.
REWARD_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class SupportLog:
    """A policy's logged support on one layout (S states, A actions, N_SETS component sets).

    ``visits`` int64 (S, A), > 0 on the support; ``next_state`` int32 (S, A),
    -1 outside it; ``reward_model`` float64 (S, A, N_SETS), every set's
    reward (indexed by mask) as logged, zeros outside it.
    """

    visits: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray

    @property
    def support(self) -> np.ndarray:
        """bool (S, A): the logged pairs."""
        return self.visits > 0


def replay_support(layout: Layout, q: np.ndarray) -> SupportLog:
    """The log of one greedy episode of Q table ``q`` (S, A) from the start, to its end or H·W steps."""
    actions = greedy_policy(np.ascontiguousarray(q))
    n = layout.n_states
    log = SupportLog(np.zeros((n, N_ACTIONS), dtype=np.int64), np.full((n, N_ACTIONS), -1, dtype=np.int32),
                     np.zeros((n, N_ACTIONS, N_SETS)))
    replay_greedy_log(layout.world, layout.start, actions, layout.max_steps, log.visits, log.next_state,
                      log.reward_model)
    return log


def pairs_support(layout: Layout, support) -> SupportLog:
    """The log of a bool mask or visit counts (S, A): every supported pair stepped from the start context."""
    visits = checked_visits(layout, support)
    n = layout.n_states
    next_state = np.full((n, N_ACTIONS), -1, dtype=np.int32)
    reward_model = np.zeros((n, N_ACTIONS, N_SETS))
    log_pairs_from_start(layout.world, visits > 0, next_state, reward_model)
    return SupportLog(visits, next_state, reward_model)


def checked_log(layout: Layout, log) -> SupportLog:
    """A given log (any object with ``visits``, ``next_state`` and ``reward_model``), checked against the world.

    LeverError if a shape or dtype is wrong, a next state is not where the
    world leads, a reward is not finite, or a history-free set's reward
    differs from the world's by more than :data:`REWARD_TOLERANCE`.
    """
    visits = checked_visits(layout, log.visits)
    supported = visits > 0
    shape = visits.shape
    next_state = np.asarray(log.next_state)
    if next_state.shape != shape or not np.issubdtype(next_state.dtype, np.integer):
        raise LeverError(f"next_state must be integer {shape}, got {next_state.dtype} {next_state.shape}")
    wrong = supported & (next_state != layout.world.moves)
    if wrong.any():
        s, a = (int(x) for x in np.argwhere(wrong)[0])
        raise LeverError(f"next_state[{s}, {a}] is {int(next_state[s, a])}, but on layout {layout.id} that "
                         f"action leads to {int(layout.world.moves[s, a])}: {int(wrong.sum())} logged next "
                         f"states disagree with the world")
    rewards = np.asarray(log.reward_model)
    if rewards.shape != shape + (N_SETS,) or not np.issubdtype(rewards.dtype, np.floating):
        raise LeverError(f"reward_model must be float {shape + (N_SETS,)}, got {rewards.dtype} {rewards.shape}")
    rewards = np.where(supported[..., None], rewards.astype(np.float64), 0.0)
    if not np.all(np.isfinite(rewards)):
        raise LeverError("reward_model holds NaN or infinity on the support")
    world = pairs_support(layout, supported)
    gap = np.abs(rewards[..., HISTORY_FREE_SETS] - world.reward_model[..., HISTORY_FREE_SETS])
    if gap.max(initial=0.0) > REWARD_TOLERANCE:
        s, a, j = (int(x) for x in np.unravel_index(int(np.argmax(gap)), gap.shape))
        raise LeverError(f"reward_model[{s}, {a}, {int(HISTORY_FREE_SETS[j])}] is {rewards[s, a, HISTORY_FREE_SETS[j]]}"
                         f", but the world gives {world.reward_model[s, a, HISTORY_FREE_SETS[j]]} for that set, "
                         f"whatever the history: the log is not of layout {layout.id}")
    return SupportLog(visits, np.where(supported, next_state, -1).astype(np.int32), rewards)


def checked_visits(layout: Layout, support) -> np.ndarray:
    """Visit counts int64 (S, A) from a bool mask (1 per supported pair) or non-negative integer counts.

    LeverError for another shape or dtype, negative counts, an empty
    support, or supported pairs at walls, hazards or the exit.
    """
    shape = (layout.n_states, N_ACTIONS)
    array = np.asarray(support)
    if array.shape != shape:
        raise LeverError(f"support must have shape (S={shape[0]}, A={shape[1]}) for layout {layout.id}, "
                         f"got {array.shape}")
    if array.dtype == bool:
        visits = array.astype(np.int64)
    elif np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int64).max):
            raise LeverError(f"visit counts must lie in 0..2**63-1, got values in [{array.min()}, {array.max()}]")
        visits = array.astype(np.int64)
    else:
        raise LeverError(f"support must be a bool mask or integer visit counts, got {array.dtype}")
    if not visits.any():
        raise LeverError("support is empty: no (state, action) pair is marked")
    cells = layout.cells.ravel()
    idle = (cells == WALL) | (cells == HAZARD) | (cells == EXIT)
    bad = np.flatnonzero(idle & visits.any(axis=1))
    if bad.size:
        raise LeverError(f"support marks pairs at cells {bad[:5].tolist()}{' ...' if bad.size > 5 else ''}: "
                         f"walls, hazards or the exit, where no agent acts")
    return visits


def table_support(world: TabularWorld, q: np.ndarray, support=None) -> SupportLog:
    """The log of a policy added to a tabular world's library (A actions, d components as the features).

    ``support`` None: one greedy episode of ``q`` (S, A) from the world's
    first start, to its end or the step cap; a bool mask or visit counts
    (S, A): those pairs, with the world's next states and reward vectors
    (a tabular world has no history, so this is exact); a log with
    ``visits``, ``next_state``, ``reward_model``: checked against the world.
    Pairs at terminal observations are refused.
    """
    shape = (world.n_states, world.n_actions)
    if support is None:
        actions = greedy_policy(np.ascontiguousarray(q, dtype=np.float64))
        log = SupportLog(np.zeros(shape, dtype=np.int64), np.full(shape, -1, dtype=np.int32),
                         np.zeros(shape + (world.n_components,)))
        replay_greedy_log_table(world.table, world.start, actions, world.max_steps, log.visits, log.next_state,
                                log.reward_model)
        return log
    given = support.visits if all(hasattr(support, n) for n in ("visits", "next_state", "reward_model")) else support
    array = np.asarray(given)
    if array.shape != shape or not (array.dtype == bool or np.issubdtype(array.dtype, np.integer)):
        raise LeverError(f"support must be a bool mask or integer visit counts of shape {shape}, got "
                         f"{array.dtype} {array.shape}")
    if array.size and array.min() < 0:
        raise LeverError("visit counts must be >= 0")
    visits = array.astype(np.int64)
    if not visits.any():
        raise LeverError("support is empty: no (state, action) pair is marked")
    idle = np.intersect1d(np.flatnonzero(visits.any(axis=1)), world.terminal_states)
    if idle.size:
        raise LeverError(f"support marks pairs at terminal states {idle[:5].tolist()}, where no agent acts")
    supported = visits > 0
    next_state = np.where(supported, world.next_state, -1).astype(np.int32)
    rewards = np.where(supported[..., None], world.reward, 0.0)
    if given is not support:  # a whole log: its next states and rewards must be the world's
        logged = np.asarray(support.next_state)
        logged_rewards = np.asarray(support.reward_model, dtype=np.float64)
        if logged.shape != shape or logged_rewards.shape != rewards.shape:
            raise LeverError(f"next_state and reward_model must have shapes {shape} and {rewards.shape}")
        if np.any(logged[supported] != next_state[supported]) or np.any(
                np.abs(logged_rewards[supported] - rewards[supported]) > REWARD_TOLERANCE):
            raise LeverError(f"the log's next states or rewards disagree with world {world.id}: not its log")
    return SupportLog(visits, next_state, rewards)
