"""Support-aware composition of stacked Q tables, and offline rollouts through the support.

Every kernel here works on one layout's stacked tables (P policies, S states,
A actions, N_SETS component sets) and a batch of B candidate combinations,
``combos`` int64 (B, k): row indices into the stacked tables. One call
handles the whole batch, in parallel over combinations.

The support of a policy is stored as a bit mask per state,
``support`` uint8 (P, S), bit ``a`` set when training visited (s, a)
(see :func:`support_bits`); the union support of a combination is the OR of
its members' masks. Reading one byte per state instead of A visit counts is
what keeps the batched kernels close to the speed of reading the Q values.
"""

import numpy as np
from numba import njit, prange

from .constants import END_DEAD_END, END_EXIT, END_HAZARD, END_STEP_CAP, EXIT, HAZARD, HISTORY_BITS
from .world import step_cost

#: Composition operators.
OP_SUM = 0  # the study's Q-sum: sum_i beta_i Q_i
OP_MAX = 1  # generalized policy improvement: max_i beta_i Q_i over the policies that visited (s, a)



#: Table entries (P·S·A) from which :func:`support_bits` and :func:`mask_unvisited` run in parallel
#: (see :func:`lever.threads.pick`), measured by
#: ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_ENTRIES = 1 << 18


@njit(cache=True, parallel=True)
def support_bits(visits, out):
    """Pack visit counts int (P, S, A) into per-state action bit masks ``out`` uint8 (P, S)."""
    for p in prange(visits.shape[0]):
        _support_bits_of(visits, out, p)


@njit(cache=True)
def support_bits_serial(visits, out):
    """:func:`support_bits` on one thread."""
    for p in range(visits.shape[0]):
        _support_bits_of(visits, out, p)


@njit(cache=True, inline="always")
def _support_bits_of(visits, out, p):
    for s in range(visits.shape[1]):
        bits = 0
        for a in range(visits.shape[2]):
            if visits[p, s, a] > 0:
                bits |= 1 << a
        out[p, s] = bits


@njit(cache=True, inline="always")
def _popcount(bits):
    # Branch-free count of the set bits of one byte.
    bits = bits - ((bits >> 1) & 0x55)
    bits = (bits & 0x33) + ((bits >> 2) & 0x33)
    return (bits + (bits >> 4)) & 0x0F


@njit(cache=True, inline="always")
def _masked_argmax4(v0, v1, v2, v3, bits):
    # Argmax over the actions whose bit is set, lowest index on ties, -1 if
    # none; written as selects, not branches: values are finite on the
    # support, so -inf stands for "not supported".
    ninf = -np.inf
    v0 = v0 if bits & 1 else ninf
    v1 = v1 if bits & 2 else ninf
    v2 = v2 if bits & 4 else ninf
    v3 = v3 if bits & 8 else ninf
    low = 1 if v1 > v0 else 0
    low_value = max(v0, v1)
    high = 3 if v3 > v2 else 2
    high_value = max(v2, v3)
    best = high if high_value > low_value else low
    return best if max(low_value, high_value) > ninf else -1


#: Combinations per parallel task of the batched kernels (scratch is allocated once per task).
BLOCK = 64

#: Q entries read (B·k·S·A) from which :func:`compose_batch` runs in parallel, and combinations (B) from
#: which :func:`offline_rollout_batch` does (see :func:`lever.threads.pick`), measured by
#: ``python -m pytest benchmarks/bench_dispatch.py --benchmark-only -s``.
PARALLEL_MIN_COMPOSE_ENTRIES = 1 << 21
PARALLEL_MIN_ROLLOUTS = 4096


@njit(cache=True, parallel=True)
def compose_batch(values, support, combos, betas, operator, actions, covered):
    """Greedy action per state of B composed policies, masked to each combination's support.

    values: float (P, S, A = 4) C-contiguous, the table of each policy that
    the operator combines; support: uint8 (P, S) bit masks; combos: int64
    (B, k) rows; betas: float64 (B, k) per-member weights; operator:
    ``OP_SUM`` or ``OP_MAX``.
    Out: actions int32 (B, S), the supported action of largest composite
    value (lowest index on ties), -1 where no member visited any action of
    that state (a dead end); covered int64 (B,), the number of (s, a) pairs
    in the union support.

    ``OP_SUM`` adds every member's Q (a pair a member never visited keeps
    its initial Q of 0, as in the study). ``OP_MAX`` takes the maximum over
    members; the caller passes ``values`` = -inf where a policy did not
    visit (s, a) (an unvisited entry is no estimate) and betas > 0 (see
    :func:`mask_unvisited`). Each combination accumulates its members'
    tables in one contiguous pass per member (vectorizable), then takes the
    masked argmax per state.
    """
    n_blocks = (combos.shape[0] + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _compose_range(values, support, combos, betas, operator, actions, covered,
                       block * BLOCK, min(combos.shape[0], (block + 1) * BLOCK))


@njit(cache=True)
def compose_batch_serial(values, support, combos, betas, operator, actions, covered):
    """:func:`compose_batch` on one thread: for small batches, where waking threads costs more."""
    _compose_range(values, support, combos, betas, operator, actions, covered, 0, combos.shape[0])


@njit(cache=True)
def _compose_range(values, support, combos, betas, operator, actions, covered, lo, hi):
    # Combinations lo..hi-1 of compose_batch, with scratch allocated once.
    k = combos.shape[1]
    n_states = values.shape[1]
    n_entries = n_states * values.shape[2]
    acc = np.empty(n_entries)
    union = np.empty(n_states, dtype=np.uint8)
    for b in range(lo, hi):
        union[:] = 0
        if operator == OP_SUM:
            acc[:] = 0.0
        else:
            acc[:] = -np.inf
        for i in range(k):
            p = combos[b, i]
            beta = betas[b, i]
            member = values[p].reshape(n_entries)
            bits = support[p]
            for s in range(n_states):
                union[s] |= bits[s]
            if operator == OP_SUM:
                for j in range(n_entries):
                    acc[j] += beta * member[j]
            else:
                for j in range(n_entries):
                    acc[j] = max(acc[j], beta * member[j])
        n_covered = 0
        for s in range(n_states):
            bits = np.int64(union[s])
            n_covered += _popcount(bits)
            row = s * 4
            actions[b, s] = _masked_argmax4(acc[row], acc[row + 1], acc[row + 2], acc[row + 3], bits)
        covered[b] = n_covered


@njit(cache=True, parallel=True)
def mask_unvisited(values, support, out):
    """``out`` float (P, S, A) = ``values`` where the policy visited (s, a), else -inf (for ``OP_MAX``)."""
    for p in prange(values.shape[0]):
        _mask_unvisited_of(values, support, out, p)


@njit(cache=True)
def mask_unvisited_serial(values, support, out):
    """:func:`mask_unvisited` on one thread."""
    for p in range(values.shape[0]):
        _mask_unvisited_of(values, support, out, p)


@njit(cache=True, inline="always")
def _mask_unvisited_of(values, support, out, p):
    for s in range(values.shape[1]):
        bits = support[p, s]
        for a in range(values.shape[2]):
            out[p, s, a] = values[p, s, a] if (bits >> a) & 1 else -np.inf


@njit(cache=True, inline="always")
def logging_member(combo, support, state, action):
    """The first member of ``combo`` (in order) that visited (state, action), or -1.

    Its log is as good as any other's for next states (the world is
    deterministic), and taking the first fixes which first-visit reward
    context the empirical model uses for history-dependent sets.
    """
    for i in range(combo.shape[0]):
        if (support[combo[i], state] >> action) & 1:
            return combo[i]
    return -1


@njit(cache=True, parallel=True)
def offline_rollout_batch(combos, actions, support, next_state, reward_model, cells, start,
                          max_steps, weights, returns, return_vecs, steps, ends, paths):
    """Roll B action tables out through their combination's empirical model only.

    combos: int64 (B, k); actions: int32 (B, S) (-1 = dead end); support:
    uint8 (P, S); next_state: int32 (P, S, A); reward_model: float64
    (P, S, A, N_SETS), every component set's logged reward; cells: int8
    (S,) layout cell kinds; start: cell; weights: float64 (N_SETS,), the
    objective as set weights.
    Out: returns float64 (B,) = weights · set returns; return_vecs float64
    (B, N_SETS), undiscounted sums of the logged set rewards; steps int64 (B,);
    ends int8 (B,) ``END_*`` codes; paths int32 (B, max_steps + 1) visited
    cells padded with -1, or shape (0, 0) to skip recording.

    The transition of (s, a) is taken from the first member of the
    combination that visited it (all members agree on the next state: the
    world is deterministic). An episode ends where the logged next state is
    an exit or hazard cell: the kind of the entered cell is part of what the
    agent observed, so termination is read from ``cells`` rather than logged.
    A state whose action is -1, or whose pair no member visited, ends it as a
    dead end; the offline rollout never leaves the support.

    Sets without gold and lever do not depend on history, so their logged
    rewards are used on every step. Sets with gold or lever were logged in
    the first visit's context; a deterministic policy that enters a state a
    second time is in a cycle, along which nothing is collected twice and
    distance guidance telescopes to zero, so a repeated move earns only the
    set's step cost (a bump its logged bump reward; exact for whole cycles,
    the cycle cut by the step cap keeps its guidance error). Without this a
    loop through a logged gold would be paid its bonus on every lap.
    """
    n_blocks = (combos.shape[0] + BLOCK - 1) // BLOCK
    for block in prange(n_blocks):
        _offline_range(combos, actions, support, next_state, reward_model, cells, start, max_steps,
                       weights, returns, return_vecs, steps, ends, paths,
                       block * BLOCK, min(combos.shape[0], (block + 1) * BLOCK))


@njit(cache=True)
def offline_rollout_batch_serial(combos, actions, support, next_state, reward_model, cells, start,
                                 max_steps, weights, returns, return_vecs, steps, ends, paths):
    """:func:`offline_rollout_batch` on one thread, for small batches."""
    _offline_range(combos, actions, support, next_state, reward_model, cells, start, max_steps,
                   weights, returns, return_vecs, steps, ends, paths, 0, combos.shape[0])


@njit(cache=True)
def _offline_range(combos, actions, support, next_state, reward_model, cells, start, max_steps,
                   weights, returns, return_vecs, steps, ends, paths, lo, hi):
    # Rollouts lo..hi-1 of offline_rollout_batch, with the revisit marks allocated once.
    n_sets = weights.shape[0]
    record = paths.shape[0] > 0
    seen = np.zeros(actions.shape[1], dtype=np.uint8)
    for b in range(lo, hi):
        for mask in range(n_sets):
            return_vecs[b, mask] = 0.0
        if record:
            for t in range(paths.shape[1]):
                paths[b, t] = -1
            paths[b, 0] = start
        seen[:] = 0
        pos = start
        n_steps = 0
        end = END_STEP_CAP
        while n_steps < max_steps:
            action = actions[b, pos]
            if action < 0:
                end = END_DEAD_END
                break
            p = logging_member(combos[b], support, pos, action)
            if p < 0:
                end = END_DEAD_END
                break
            nxt = next_state[p, pos, action]
            lap = seen[pos] != 0 and nxt != pos
            seen[pos] = 1
            for mask in range(n_sets):
                if lap and (mask & HISTORY_BITS) != 0:
                    return_vecs[b, mask] -= step_cost(mask)
                else:
                    return_vecs[b, mask] += reward_model[p, pos, action, mask]
            n_steps += 1
            if record:
                paths[b, n_steps] = nxt
            pos = nxt
            if cells[nxt] == EXIT:
                end = END_EXIT
                break
            if cells[nxt] == HAZARD:
                end = END_HAZARD
                break
        total = 0.0
        for mask in range(n_sets):
            total += weights[mask] * return_vecs[b, mask]
        returns[b] = total
        steps[b] = n_steps
        ends[b] = end
