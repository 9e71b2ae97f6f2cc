"""Value iteration over a phase-augmented state (cell, lever phase) on a combination's union support.

The tabular state of the logged support is the cell alone, but the study's
rules also read whether the lever is pulled: the lever's guidance, its pull
reward, the other components' switch to the exit and the lever's exit
bonus. Planning on the cell alone follows rewards logged before the pull
forever after it. Here the state is (cell, phase), phase 0 = lever not
pulled, 1 = pulled, and each logged step is relabelled per phase from the
terms logged on its first visit (:data:`~lever.kernels.world.N_TERMS`),
with the same :func:`~lever.kernels.world.set_reward` the world uses:

- phase 1: ``T_LEVER_ON`` = 1, ``T_PULLED_NOW`` = 0; the next phase is 1;
- phase 0: a step into the lever cell pulls it (``T_PULLED_NOW`` =
  ``T_LEVER_ON`` = 1, next phase 1), any other step leaves it off (both 0,
  next phase 0);
- a bump or a hazard earns what it earns in every phase (the phase stays).

The distances to the exit and the lever, the hazard neighbours and the
exit flag depend on the cells alone, so the logged terms are exact in both
phases. The phase holds the lever flag only (2^G gold phases would not
fit), so the gold terms cannot be exact, and a stationary model must not
let a cycle earn them:

- ``T_D_GOLD`` is read in one fixed context, every gold still there (the
  change in steps to the nearest gold, from the cells alone). It is then a
  difference of potentials, which no cycle earns; the first visit's value
  (nearest among the gold left in that episode) mixes contexts from pair
  to pair, and a cycle through pairs logged in different episodes can earn
  it forever;
- ``T_GOLD_HERE`` is 0: the plan does not count the collection reward,
  which the model would pay again on every entry into a gold cell (the
  loop planning on the cell alone falls into);
- ``T_GOLD_LEFT`` stays as logged on the first visit (it feeds the exit's
  missing-gold penalty and a gold component's switch to the exit guidance).

Transitions, termination (a step into the exit or a hazard is not
bootstrapped) and the first-member rule are those of
:func:`lever.kernels.planning.plan_batch`.
"""

import numpy as np
from numba import njit

from .compose import logging_member
from .constants import END_DEAD_END, END_EXIT, END_HAZARD, END_STEP_CAP, EXIT, HAZARD, LEVER, N_SETS
from .world import (
    BUMPED, HAZARD_ENTERED, N_TERMS, T_D_GOLD, T_GOLD_HERE, T_LEVER_ON, T_OUTCOME, T_PULLED_NOW, set_reward,
    set_rewards, step,
)

#: Phases of the augmented state: 0 = lever not pulled, 1 = pulled.
N_PHASES = 2


@njit(cache=True, inline="always")
def gold_progress(gold_dist, before, after):
    """Δ_gold with every gold still there: nearest(before) - nearest(after), 0 if either is unknown.

    gold_dist int32 (S, G), -1 where unreachable (as :func:`~lever.kernels.world.step` reads it).
    """
    unknown = gold_dist.shape[0]
    near_before = unknown
    near_after = unknown
    for g in range(gold_dist.shape[1]):
        db = gold_dist[before, g]
        da = gold_dist[after, g]
        if db >= 0 and db < near_before:
            near_before = db
        if da >= 0 and da < near_after:
            near_after = da
    if near_before < unknown and near_after < unknown:
        return float(near_before - near_after)
    return 0.0


@njit(cache=True)
def relabel_phases(combo, support, next_state, term_model, world, weights, rewards, successor, next_phase):
    """Every union-supported pair of one combination, relabelled in both phases.

    combo: int64 (k,) rows; support: uint8 (P, S) action bit masks;
    next_state: int32 (P, S, A); term_model: float64 (P, S, A, N_TERMS),
    the terms on each pair's first visit; world: the layout's
    :class:`~lever.kernels.world.World`; weights:
    float64 (N_SETS,), the objective as set weights.
    Out: rewards float64 (2, S, A), weights · every set's reward in each
    phase, -inf outside the union support; successor int32 (S, A), the next
    cell, -1 outside it; next_phase int8 (2, S, A), the phase after the step.
    Each pair comes from the first member of ``combo`` that logged it.
    """
    n_states = rewards.shape[1]
    n_actions = rewards.shape[2]
    cells = world.cells
    terms = np.empty(N_TERMS)
    for s in range(n_states):
        union = 0
        for i in range(combo.shape[0]):
            union |= support[combo[i], s]
        for a in range(n_actions):
            if not (union >> a) & 1:
                successor[s, a] = -1
                for phase in range(N_PHASES):
                    rewards[phase, s, a] = -np.inf
                    next_phase[phase, s, a] = phase
                continue
            p = logging_member(combo, support, s, a)
            nxt = next_state[p, s, a]
            successor[s, a] = nxt
            outcome = term_model[p, s, a, T_OUTCOME]
            for phase in range(N_PHASES):
                for t in range(N_TERMS):
                    terms[t] = term_model[p, s, a, t]
                after = phase
                if outcome != BUMPED and outcome != HAZARD_ENTERED:
                    terms[T_D_GOLD] = gold_progress(world.gold_dist, s, nxt)
                    terms[T_GOLD_HERE] = 0.0
                    pulls = phase == 0 and cells[nxt] == LEVER
                    terms[T_PULLED_NOW] = 1.0 if pulls else 0.0
                    if pulls:
                        after = 1
                    terms[T_LEVER_ON] = float(after)
                r = 0.0
                for mask in range(weights.shape[0]):
                    if weights[mask] != 0.0:
                        r += weights[mask] * set_reward(terms, mask)
                rewards[phase, s, a] = r
                next_phase[phase, s, a] = after


#: Sweeps between two exact evaluations of the greedy plan in :func:`phase_value_iteration`.
EVALUATE_EVERY = 8


@njit(cache=True)
def phase_value_iteration(rewards, successor, next_phase, cells, gamma, tol, max_iters, q, actions):
    """Value iteration over (phase, cell) given the relabelled model of :func:`relabel_phases`.

    rewards float64 (2, S, A), -inf off the support; successor int32 (S, A);
    next_phase int8 (2, S, A); cells int8 (S,); gamma in [0, 1); stop when
    no Q entry moved more than ``tol`` in a sweep, or after ``max_iters``.
    Out: q float64 (2, S, A), -inf off the support; actions int32 (2, S),
    greedy per phase (lowest index on ties), -1 where nothing is supported.
    Q(φ, s, a) = r(φ, s, a) + γ max_a' Q(φ', s', a'), not bootstrapped into
    an exit or hazard cell, a dead-end successor worth 0; Gauss-Seidel
    sweeps. Every :data:`EVALUATE_EVERY` sweeps the greedy plan is evaluated
    exactly (the model is deterministic: each chain ends or closes a cycle)
    and Q set to its one-step backup, a policy-iteration step: regions
    with no way out (cycles of bumps) otherwise converge at rate γ only.
    Returns the sweeps done.
    """
    n_states = q.shape[1]
    n_actions = q.shape[2]
    for phase in range(N_PHASES):
        for s in range(n_states):
            for a in range(n_actions):
                q[phase, s, a] = 0.0 if rewards[phase, s, a] > -np.inf else -np.inf
    values = np.empty(N_PHASES * n_states)
    marks = np.empty(N_PHASES * n_states, dtype=np.int8)
    chain = np.empty(N_PHASES * n_states, dtype=np.int64)
    sweeps = 0
    while sweeps < max_iters:
        sweeps += 1
        delta = _sweep(rewards, successor, next_phase, cells, gamma, q)
        if delta <= tol:
            break
        if sweeps % EVALUATE_EVERY == 0:
            _greedy(q, actions)
            _evaluate(rewards, successor, next_phase, cells, gamma, actions, values, marks, chain)
            _backup(rewards, successor, next_phase, cells, gamma, values, q)
    _greedy(q, actions)
    return sweeps


@njit(cache=True)
def _sweep(rewards, successor, next_phase, cells, gamma, q):
    # One Gauss-Seidel sweep, phase 1 first (its values do not depend on phase 0's); the largest change.
    n_states = q.shape[1]
    n_actions = q.shape[2]
    delta = 0.0
    for phase in range(N_PHASES - 1, -1, -1):
        for s in range(n_states):
            for a in range(n_actions):
                if rewards[phase, s, a] == -np.inf:
                    continue
                nxt = successor[s, a]
                target = rewards[phase, s, a]
                if cells[nxt] != EXIT and cells[nxt] != HAZARD:
                    after = next_phase[phase, s, a]
                    best = -np.inf
                    for a2 in range(n_actions):
                        if q[after, nxt, a2] > best:
                            best = q[after, nxt, a2]
                    if best > -np.inf:
                        target += gamma * best
                change = abs(target - q[phase, s, a])
                if change > delta:
                    delta = change
                q[phase, s, a] = target
    return delta


@njit(cache=True)
def _greedy(q, actions):
    # Greedy action per (phase, cell), lowest index on ties, -1 where nothing is supported.
    for phase in range(q.shape[0]):
        for s in range(q.shape[1]):
            best = -1
            for a in range(q.shape[2]):
                if q[phase, s, a] > -np.inf and (best < 0 or q[phase, s, a] > q[phase, s, best]):
                    best = a
            actions[phase, s] = best


@njit(cache=True)
def _evaluate(rewards, successor, next_phase, cells, gamma, actions, values, marks, chain):
    # Exact value of the plan ``actions`` at every node x = phase * S + cell, into ``values``.
    # A chain is followed until it ends (a dead end: 0 after it; an exit or hazard: no bootstrap),
    # meets a node already valued, or closes a cycle, whose value is solved in closed form.
    n_states = successor.shape[0]
    marks[:] = 0  # 0 not seen, 1 on the current chain, 2 valued
    for start in range(values.shape[0]):
        if marks[start] != 0:
            continue
        length = 0
        x = start
        tail = 0.0  # the value after the chain's last node
        while True:
            if marks[x] == 2:
                tail = values[x]
                break
            if marks[x] == 1:
                # A cycle from x back to x: V(x) = Σ γ^i r_i / (1 - γ^L) around it.
                first = 0
                while chain[first] != x:
                    first += 1
                total = 0.0
                scale = 1.0
                for i in range(first, length):
                    phase, s = chain[i] // n_states, chain[i] % n_states
                    total += scale * rewards[phase, s, actions[phase, s]]
                    scale *= gamma
                tail_value = total / (1.0 - scale)
                # Value the cycle backwards from its last node, which leads to x.
                after = tail_value
                for i in range(length - 1, first - 1, -1):
                    node = chain[i]
                    if i == first:
                        values[node] = tail_value
                    else:
                        phase, s = node // n_states, node % n_states
                        values[node] = rewards[phase, s, actions[phase, s]] + gamma * after
                        after = values[node]
                    marks[node] = 2
                length = first
                tail = tail_value
                break
            marks[x] = 1
            chain[length] = x
            length += 1
            phase, s = x // n_states, x % n_states
            a = actions[phase, s]
            if a < 0:
                # A dead end: nothing supported here (worth 0 as a successor).
                length -= 1
                values[x] = 0.0
                marks[x] = 2
                tail = 0.0
                break
            nxt = successor[s, a]
            if cells[nxt] == EXIT or cells[nxt] == HAZARD:
                length -= 1
                values[x] = rewards[phase, s, a]
                marks[x] = 2
                tail = values[x]
                break
            x = next_phase[phase, s, a] * n_states + nxt
        for i in range(length - 1, -1, -1):
            node = chain[i]
            phase, s = node // n_states, node % n_states
            values[node] = rewards[phase, s, actions[phase, s]] + gamma * tail
            tail = values[node]
            marks[node] = 2


@njit(cache=True)
def _backup(rewards, successor, next_phase, cells, gamma, values, q):
    # Q(x, a) = r + γ V(x') for every supported pair, V from _evaluate (a dead end's V is 0).
    n_states = q.shape[1]
    for phase in range(N_PHASES):
        for s in range(n_states):
            for a in range(q.shape[2]):
                if rewards[phase, s, a] == -np.inf:
                    continue
                nxt = successor[s, a]
                target = rewards[phase, s, a]
                if cells[nxt] != EXIT and cells[nxt] != HAZARD:
                    target += gamma * values[next_phase[phase, s, a] * n_states + nxt]
                q[phase, s, a] = target


@njit(cache=True)
def phase_plan(combo, support, next_state, term_model, world, weights, gamma, tol, max_iters, q, actions):
    """Relabel one combination's union support per phase, then plan on it (one call, one thread).

    Arguments as :func:`relabel_phases` (world: the layout's World) and :func:`phase_value_iteration`;
    q float64 (2, S, A) and actions int32 (2, S) out. Returns the sweeps done.
    """
    n_states = q.shape[1]
    n_actions = q.shape[2]
    rewards = np.empty((N_PHASES, n_states, n_actions))
    successor = np.empty((n_states, n_actions), dtype=np.int32)
    next_phase = np.empty((N_PHASES, n_states, n_actions), dtype=np.int8)
    relabel_phases(combo, support, next_state, term_model, world, weights, rewards, successor, next_phase)
    return phase_value_iteration(rewards, successor, next_phase, world.cells, gamma, tol, max_iters, q, actions)


@njit(cache=True)
def rollout_phase_actions(world, start, actions, max_steps, set_weights, set_return, path):
    """Follow a (phase, cell) action table in the true environment, from ``start``.

    actions: int32 (2, S), row 0 while the lever is not pulled, row 1 after;
    -1 stops the rollout as a dead end. Everything else as
    :func:`lever.kernels.rollout.rollout_actions`: set_return float64
    (N_SETS,) out, path int32 (max_steps+1,) out or empty. Returns
    ``(return, steps, end)``.
    """
    gold_taken = np.zeros(world.gold_dist.shape[1], dtype=np.uint8)
    terms = np.empty(N_TERMS)
    rewards = np.empty(N_SETS)
    set_return[:] = 0.0
    record = path.shape[0] > 0
    if record:
        path[:] = -1
        path[0] = start
    pos = start
    lever_on = np.int64(0)
    steps = 0
    end = END_STEP_CAP
    while steps < max_steps:
        action = actions[lever_on, pos]
        if action < 0:
            end = END_DEAD_END
            break
        pos, lever_on, done = step(world, pos, np.int64(action), gold_taken, lever_on, terms)
        set_rewards(terms, rewards)
        steps += 1
        for m in range(N_SETS):
            set_return[m] += rewards[m]
        if record:
            path[steps] = pos
        if done:
            end = END_HAZARD if world.cells[pos] == HAZARD else END_EXIT
            break
    total = 0.0
    for m in range(N_SETS):
        total += set_weights[m] * set_return[m]
    return total, steps, end


@njit(cache=True)
def offline_phase_rollout(rewards, successor, next_phase, cells, actions, start, max_steps):
    """Follow a (phase, cell) action table through the relabelled model of :func:`relabel_phases`.

    actions: int32 (2, S); start: start cell, phase 0. Stops at an exit or
    hazard cell (END_EXIT / END_HAZARD), an action of -1 or one off the
    support (END_DEAD_END), or after ``max_steps`` steps (END_STEP_CAP).
    Returns ``(return, steps, end)``, the return undiscounted.
    """
    pos = start
    phase = 0
    total = 0.0
    steps = 0
    end = END_STEP_CAP
    while steps < max_steps:
        action = actions[phase, pos]
        if action < 0 or rewards[phase, pos, action] == -np.inf:
            end = END_DEAD_END
            break
        total += rewards[phase, pos, action]
        nxt = successor[pos, action]
        phase = next_phase[phase, pos, action]
        pos = nxt
        steps += 1
        if cells[pos] == EXIT:
            end = END_EXIT
            break
        if cells[pos] == HAZARD:
            end = END_HAZARD
            break
    return total, steps, end
