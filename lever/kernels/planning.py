"""Value iteration over the empirical model of a combination's union support.

Pure composition cannot carry value further than one logged step when the
library was trained with γ = 0; planning on the support propagates it along
the transitions the library already logged, and nothing else.
"""

import numpy as np
from numba import njit

from .compose import logging_member
from .constants import EXIT, HAZARD


@njit(cache=True)
def plan_batch(combos, support, next_state, reward_model, cells, weights, gamma, tol,
               max_iters, q_out, actions, iterations):
    """Value iteration under ``weights`` on each combination's union support.

    combos: int64 (B, k); support: uint8 (P, S); next_state: int32
    (P, S, A); reward_model: float64 (P, S, A, N_SETS); cells: int8 (S,);
    weights: float64 (N_SETS,), the objective as set weights; gamma in
    [0, 1); tol: stop when no Q entry moved more than this in a sweep;
    max_iters: sweep cap.
    Out: q_out float64 (B, S, A), -inf outside the support; actions int32
    (B, S), greedy on the support (lowest index on ties), -1 where the union
    supports no action; iterations int64 (B,), sweeps done.

    Q(s, a) = weights · r(s, a) + γ max_a' Q(s', a') with (s', r) from the first
    member that logged (s, a); a transition into an exit or hazard cell is
    terminal (not bootstrapped), and a dead-end successor is worth 0, as the
    offline rollout stops there. Sweeps are in place (Gauss-Seidel). Runs
    on one thread: planning is done for the chosen combination only.
    """
    for b in range(combos.shape[0]):
        _plan_one(combos, support, next_state, reward_model, cells, weights, gamma, tol, max_iters,
                  q_out, actions, iterations, b)


@njit(cache=True)
def _plan_one(combos, support, next_state, reward_model, cells, weights, gamma, tol, max_iters,
              q_out, actions, iterations, b):
    # Value iteration of combination b of plan_batch.
    n_states = q_out.shape[1]
    n_actions = q_out.shape[2]
    n_sets = weights.shape[0]
    combo = combos[b]
    for s in range(n_states):
        union = 0
        for i in range(combo.shape[0]):
            union |= support[combo[i], s]
        for a in range(n_actions):
            q_out[b, s, a] = 0.0 if (union >> a) & 1 else -np.inf
    sweeps = 0
    while sweeps < max_iters:
        sweeps += 1
        delta = 0.0
        for s in range(n_states):
            for a in range(n_actions):
                if q_out[b, s, a] == -np.inf:
                    continue
                p = logging_member(combo, support, s, a)
                nxt = next_state[p, s, a]
                target = 0.0
                for mask in range(n_sets):
                    target += weights[mask] * reward_model[p, s, a, mask]
                if cells[nxt] != EXIT and cells[nxt] != HAZARD:
                    best = -np.inf
                    for a2 in range(n_actions):
                        if q_out[b, nxt, a2] > best:
                            best = q_out[b, nxt, a2]
                    if best > -np.inf:
                        target += gamma * best
                change = abs(target - q_out[b, s, a])
                if change > delta:
                    delta = change
                q_out[b, s, a] = target
        if delta <= tol:
            break
    iterations[b] = sweeps
    for s in range(n_states):
        best = -1
        for a in range(n_actions):
            if q_out[b, s, a] > -np.inf and (best < 0 or q_out[b, s, a] > q_out[b, s, best]):
                best = a
        actions[b, s] = best
