"""Successor features of deterministic greedy policies, for a batch of policies at once.

For a policy π (an action per state) and a start state s, the successor
feature is ψ(s) = Σ_t γ^t φ_t along the rollout of π from s in the true
world, where φ_t holds the reward of every component set at step t (N_SETS
entries, indexed by set mask) optionally followed by a one-hot of the kind
of the cell entered at step t (N_KINDS entries). Every rollout carries its own episode state (gold taken, lever)
and starts fresh: nothing is collected and the lever is off at step 0.
With γ = 1 the reward part of ψ(start) is exactly the return of every set
along the greedy rollout, so ``W · ψ(start)`` is the return of any
objective written as set weights W (either rule set).
"""

import numpy as np
from numba import njit, prange

from .constants import END_DEAD_END, END_EXIT, END_HAZARD, END_STEP_CAP, HAZARD, N_SETS
from .rollout import greedy_action
from .world import N_TERMS, set_rewards, step


#: States (P·S) from which :func:`greedy_policies` runs in parallel, and rollouts (P·K) from which
#: :func:`successor_features` does (see :func:`lever.threads.pick`), measured by
#: ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_STATES = 1 << 20
PARALLEL_MIN_ROLLOUTS = 256

#: (policy, start) pairs per parallel task of :func:`successor_features` (scratch is allocated once per task).
ROLLOUT_BLOCK = 16


@njit(cache=True, parallel=True)
def greedy_policies(q):
    """Greedy action per state of a stack of Q tables (P, S, A) → int32 (P, S), lowest index on ties."""
    out = np.empty((q.shape[0], q.shape[1]), dtype=np.int32)
    for p in prange(q.shape[0]):
        _greedy_of(q, out, p)
    return out


@njit(cache=True)
def greedy_policies_serial(q):
    """:func:`greedy_policies` on one thread."""
    out = np.empty((q.shape[0], q.shape[1]), dtype=np.int32)
    for p in range(q.shape[0]):
        _greedy_of(q, out, p)
    return out


@njit(cache=True, inline="always")
def _greedy_of(q, out, p):
    for s in range(q.shape[1]):
        out[p, s] = greedy_action(q[p], s)


@njit(cache=True, parallel=True)
def successor_features(world, actions, starts, max_steps, gamma, cell_kinds, skip_cycles,
                       psi, steps, ends):
    """ψ for every (policy, start) pair, one rollout each, in parallel over pairs.

    world: :class:`~lever.kernels.world.World`; actions: int32 (P, S), -1 = no action (the rollout
    stops as a dead end); starts: int64 (K,) start cells; max_steps: step
    cap; gamma: discount of step t is γ^t (t = 0 for the first step);
    cell_kinds: also sum one-hots
    of the entered cell's kind; skip_cycles: sum the cycle of a looping
    rollout in closed form instead of stepping it to the cap (see below).
    Filled in place: psi float64 (P, K, D) with D = N_SETS (+ N_KINDS when
    ``cell_kinds``); steps int32 (P, K), steps taken; ends int8 (P, K), one
    of the ``END_*`` codes.

    A policy acts on position only, so a rollout that re-enters a cell has
    entered a cycle of positions it never leaves (a cycle holds no exit or
    hazard, or the rollout would have ended). Its first traversal may still
    collect gold or pull the lever; from the second traversal on nothing
    changes, so every later traversal has the same rewards. With
    ``skip_cycles`` the kernel steps the second traversal, then adds the
    whole number of further traversals that fit under the cap as a
    geometric sum and steps only the remainder. The result equals stepping
    to the cap up to float rounding.
    """
    n_jobs = actions.shape[0] * starts.shape[0]
    for block in prange((n_jobs + ROLLOUT_BLOCK - 1) // ROLLOUT_BLOCK):
        _successor_range(world, actions, starts, max_steps, gamma, cell_kinds, skip_cycles, psi, steps, ends,
                         block * ROLLOUT_BLOCK, min(n_jobs, (block + 1) * ROLLOUT_BLOCK))


@njit(cache=True)
def successor_features_serial(world, actions, starts, max_steps, gamma, cell_kinds, skip_cycles,
                              psi, steps, ends):
    """:func:`successor_features` on one thread, the same results."""
    _successor_range(world, actions, starts, max_steps, gamma, cell_kinds, skip_cycles, psi, steps, ends,
                     0, actions.shape[0] * starts.shape[0])


@njit(cache=True)
def _successor_range(world, actions, starts, max_steps, gamma, cell_kinds, skip_cycles, psi, steps, ends,
                     lo, hi):
    # (policy, start) pairs lo..hi-1 of successor_features, with the scratch allocated once.
    n_starts = starts.shape[0]
    n_gold = world.gold_dist.shape[1]
    cells = world.cells
    n_components = N_SETS
    n_states = cells.shape[0]
    dim = psi.shape[2]
    # Scratch, reset for every rollout and reused for every step of it.
    gold_taken = np.zeros(n_gold, dtype=np.uint8)
    reward = np.zeros(N_SETS)
    terms = np.empty(N_TERMS)
    entered_at = np.full(n_states, -1, dtype=np.int64)
    cycle = np.zeros(dim)
    for job in range(lo, hi):
        p = job // n_starts
        k = job - p * n_starts
        gold_taken[:] = 0
        entered_at[:] = -1
        cycle[:] = 0.0
        for d in range(dim):
            psi[p, k, d] = 0.0
        pos = starts[k]
        entered_at[pos] = 0
        lever_on = np.int64(0)
        discount = 1.0
        t = 0
        end = END_STEP_CAP
        phase = 0 if skip_cycles else 2  # 0 looking for a cycle, 1 in its second traversal, 2 done
        cycle_len = 0
        cycle_discount = 1.0
        while t < max_steps:
            action = actions[p, pos]
            if action < 0:
                end = END_DEAD_END
                break
            pos, lever_on, done = step(world, pos, np.int64(action), gold_taken, lever_on, terms)
            set_rewards(terms, reward)
            for c in range(n_components):
                psi[p, k, c] += discount * reward[c]
            if cell_kinds:
                psi[p, k, n_components + cells[pos]] += discount
            if phase == 1:
                for c in range(n_components):
                    cycle[c] += cycle_discount * reward[c]
                if cell_kinds:
                    cycle[n_components + cells[pos]] += cycle_discount
                cycle_discount *= gamma
            t += 1
            discount *= gamma
            if done:
                end = END_HAZARD if cells[pos] == HAZARD else END_EXIT
                break
            if phase == 0:
                if entered_at[pos] >= 0:
                    phase = 1
                    cycle_len = t - entered_at[pos]
                    cycle_end = t + cycle_len
                else:
                    entered_at[pos] = t
            elif phase == 1 and t == cycle_end:
                phase = 2
                repeats = (max_steps - t) // cycle_len
                if cycle_discount == 1.0:
                    factor = float(repeats)
                else:
                    factor = (1.0 - cycle_discount ** repeats) / (1.0 - cycle_discount)
                for d in range(dim):
                    psi[p, k, d] += discount * factor * cycle[d]
                t += repeats * cycle_len
                discount *= cycle_discount ** repeats
        steps[p, k] = t
        ends[p, k] = end
