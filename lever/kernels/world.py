"""GridWorld dynamics: BFS distance maps, the move table, the study's reward rules, the step.

A :class:`World` holds one layout's arrays, built once per layout by
:attr:`lever.layouts.Layout.world`; every kernel takes it. S = H·W cells
indexed ``row * W + col``; G gold. Distances are BFS steps through cells
that are neither wall nor hazard, -1 where unreachable. Episode state is a
``gold_taken`` uint8 (G,) mask plus a ``lever_on`` 0/1 flag.

A step is computed in two parts. :func:`step` moves the agent, updates the
episode state and fills ``terms`` float64 (N_TERMS,) with everything the
rules look at (the distance changes, what was entered, what is left);
:func:`set_reward` turns those terms into the reward of one set of
components (a bit mask) under the study's rules. The rules are not additive
(a component's exit guidance switches with the others in the set), so the
reward of every set is what a logged step keeps (:func:`set_rewards`).

A World also carries its rule set (``rules``, a ``RULES_*`` code): the
study's first public release moves by its own action table (:func:`move_table`
with its offsets) and rewards by :func:`first_release_reward`; :func:`step`
passes the code on in ``terms``, so :func:`set_reward` needs nothing else.
``legacy_gold_exit`` selects the study's flat -20 gold exit penalty.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .constants import (
    BUMP_REWARD, DOWN, EXIT, FIRST_RELEASE_BUMP_REWARD, FIRST_RELEASE_HAZARD_LEVEL,
    FIRST_RELEASE_STEP_COST_PATH, GOLD_ALL_COLLECTED_BONUS, GOLD_BIT, GOLD_COLLECT_REWARD,
    GOLD_MISSING_PENALTY, GOLD_MISSING_PENALTY_LEGACY, HAZARD, HAZARD_BIT, HAZARD_EXIT_BONUS,
    HAZARD_NEIGHBOUR_REWARD, HAZARD_PENALTY, LEFT, LEVER, LEVER_BIT, LEVER_EXIT_BONUS_OFF,
    LEVER_EXIT_BONUS_ON, LEVER_PULL_REWARD, N_SETS, PATH_BIT, PATH_EXIT_BONUS, RIGHT, RULES_FIRST_RELEASE,
    RULES_STUDY, STEP_COST_GOLD, STEP_COST_HAZARD, STEP_COST_LEVER, STEP_COST_PATH, UP, WALL,
)


class World(NamedTuple):
    """The arrays of one layout, C-contiguous and writeable (one Numba type for every layout).

    cells int8 (S,) cell kinds; width: grid width; dist_exit, dist_lever
    int32 (S,) BFS steps to the exit / lever (-1 unreachable, all -1 without
    a lever); gold_id int32 (S,) gold number of a cell or -1; gold_dist
    int32 (S, G), row s = BFS steps from cell s to every gold;
    hazard_neighbours int8 (S,) hazards among a cell's 4 neighbours; moves
    int32 (S, A) the cell an action leads to (the cell itself on a bump);
    rules: a ``RULES_*`` code; legacy_gold_exit: 1 for the flat -20 gold
    exit penalty, else 0.
    """

    cells: np.ndarray
    width: int
    dist_exit: np.ndarray
    dist_lever: np.ndarray
    gold_id: np.ndarray
    gold_dist: np.ndarray
    hazard_neighbours: np.ndarray
    moves: np.ndarray
    rules: int = RULES_STUDY
    legacy_gold_exit: int = 0


# Entries of the ``terms`` array filled by :func:`step`.
T_OUTCOME = 0        # MOVED, BUMPED or HAZARD_ENTERED
T_D_EXIT = 1         # Δ_exit = d_exit(p) - d_exit(p'), 0 if either is unknown
T_D_GOLD = 2         # Δ_gold over the gold left before the step (p' included)
T_D_LEVER = 3        # Δ_lever
T_H_DIFF = 4         # h(p) - h(p'), hazard neighbours
T_GOLD_HERE = 5      # 1 if p' held gold not collected before
T_GOLD_LEFT = 6      # gold not collected before this step (p' included); first release: at the exit only
T_PULLED_NOW = 7     # 1 if this step pulled the lever
T_LEVER_ON = 8       # 1 if the lever is pulled after this step
T_AT_EXIT = 9        # 1 if p' is the exit
T_N_GOLD = 10        # gold in the layout
T_H_NEXT = 11        # h(p'), hazard neighbours of the landing cell
T_RULES = 12         # the world's RULES_* code
T_LEGACY = 13        # 1 under the flat -20 gold exit penalty
N_TERMS = 14

MOVED = 0.0
BUMPED = 1.0
HAZARD_ENTERED = 2.0


@njit(cache=True, inline="always")
def neighbour(row, col, action, height, width):
    """Cell index one move away in direction ``action``, or -1 off the grid."""
    if action == RIGHT:
        col += 1
    elif action == DOWN:
        row += 1
    elif action == LEFT:
        col -= 1
    elif action == UP:
        row -= 1
    if row < 0 or row >= height or col < 0 or col >= width:
        return -1
    return row * width + col


@njit(cache=True)
def bfs_distances(passable, width, source):
    """Steps from ``source`` to every cell through ``passable`` cells.

    passable: bool (S,); width: grid width; source: cell index.
    Returns int32 (S,), -1 for cells that cannot be reached.
    """
    n_cells = passable.shape[0]
    height = n_cells // width
    dist = np.full(n_cells, -1, dtype=np.int32)
    queue = np.empty(n_cells, dtype=np.int64)
    dist[source] = 0
    queue[0] = source
    head = 0
    tail = 1
    while head < tail:
        cell = queue[head]
        head += 1
        row = cell // width
        col = cell - row * width
        for action in range(4):
            nxt = neighbour(row, col, action, height, width)
            if nxt >= 0 and passable[nxt] and dist[nxt] < 0:
                dist[nxt] = dist[cell] + 1
                queue[tail] = nxt
                tail += 1
    return dist


@njit(cache=True)
def offset_move_table(cells, width, offsets):
    """Cell reached by each action from each cell, int32 (S, A), for actions given as (row, col) offsets.

    offsets: int64 (A, 2). Only the landing cell is looked at (a move of two
    jumps the cell between); landing off the grid or on a wall: stay.
    """
    n_cells = cells.shape[0]
    height = n_cells // width
    moves = np.empty((n_cells, offsets.shape[0]), dtype=np.int32)
    for cell in range(n_cells):
        row = cell // width
        col = cell - row * width
        for action in range(offsets.shape[0]):
            r = row + offsets[action, 0]
            c = col + offsets[action, 1]
            inside = 0 <= r < height and 0 <= c < width
            nxt = r * width + c
            moves[cell, action] = nxt if inside and cells[nxt] != WALL else cell
    return moves


@njit(cache=True)
def move_table(cells, width):
    """Cell reached by each action from each cell, int32 (S, A); off the grid or into a wall: stay."""
    n_cells = cells.shape[0]
    height = n_cells // width
    moves = np.empty((n_cells, 4), dtype=np.int32)
    for cell in range(n_cells):
        row = cell // width
        col = cell - row * width
        for action in range(4):
            nxt = neighbour(row, col, action, height, width)
            moves[cell, action] = cell if nxt < 0 or cells[nxt] == WALL else nxt
    return moves


@njit(cache=True, inline="always")
def _progress(dist, before, after):
    # Δ = d(before) - d(after); zero where either is unknown.
    if dist[before] < 0 or dist[after] < 0:
        return 0.0
    return float(dist[before] - dist[after])


@njit(cache=True)
def step(world, pos, action, gold_taken, lever_on, terms):
    """Advance one agent by one action and describe the step for the reward rules.

    world: :class:`World`; pos: cell index; action: 0..3; gold_taken: uint8
    (G,), updated in place (gold is collected on entry whatever the
    objective); lever_on: 0/1; terms: float64 (N_TERMS,), overwritten.
    Returns ``(next_pos, lever_on, terminated)``; truncation is the caller's.
    """
    nxt = world.moves[pos, action]
    for t in range(N_TERMS):
        terms[t] = 0.0
    terms[T_RULES] = world.rules
    terms[T_LEGACY] = world.legacy_gold_exit
    if nxt == pos:
        terms[T_OUTCOME] = BUMPED
        return pos, lever_on, False
    kind = world.cells[nxt]
    if kind == HAZARD:
        terms[T_OUTCOME] = HAZARD_ENTERED
        return nxt, lever_on, True

    terms[T_D_EXIT] = _progress(world.dist_exit, pos, nxt)
    terms[T_D_LEVER] = _progress(world.dist_lever, pos, nxt)
    terms[T_H_DIFF] = float(world.hazard_neighbours[pos] - world.hazard_neighbours[nxt])
    terms[T_H_NEXT] = world.hazard_neighbours[nxt]
    # d_gold over the gold left before this step; unreachable gold is ignored. Written as selects,
    # not branches: on 25-50 gold this loop is much of a step's cost (ints, so the result is the same).
    n_gold = world.gold_dist.shape[1]
    unknown = world.cells.shape[0]  # longer than any BFS distance
    near_before = unknown
    near_after = unknown
    left = 0
    # The first release's rules read no distance, and the gold left only at the exit: skip the O(G) scan.
    for g in range(n_gold if world.rules == RULES_STUDY or kind == EXIT else 0):
        free = gold_taken[g] == 0
        left += free
        db = world.gold_dist[pos, g]
        da = world.gold_dist[nxt, g]
        near_before = min(near_before, db if free and db >= 0 else unknown)
        near_after = min(near_after, da if free and da >= 0 else unknown)
    if near_before < unknown and near_after < unknown:
        terms[T_D_GOLD] = float(near_before - near_after)
    terms[T_GOLD_LEFT] = left
    terms[T_N_GOLD] = n_gold
    g = world.gold_id[nxt]
    if g >= 0 and gold_taken[g] == 0:
        gold_taken[g] = 1
        terms[T_GOLD_HERE] = 1.0
    if kind == LEVER and lever_on == 0:
        lever_on = 1
        terms[T_PULLED_NOW] = 1.0
    terms[T_LEVER_ON] = lever_on
    terminated = kind == EXIT
    terms[T_AT_EXIT] = 1.0 if terminated else 0.0
    return nxt, lever_on, terminated


@njit(cache=True)
def set_reward(terms, mask):
    """The study's reward of one step for the component set ``mask`` (bit 1 << c per component).

    terms: float64 (N_TERMS,) from :func:`step`. The rules, in order: a bump
    pays BUMP_REWARD and a hazard HAZARD_PENALTY whatever the set; otherwise
    the lever pull, the gold, lever, hazard and path guidance (a component's
    guidance to the exit switches on only when the components before it in
    the set are done), the hazard-neighbour term, the exit bonuses and the
    step cost of each component in the set. A first-release step (see
    :data:`T_RULES`) is rewarded by :func:`first_release_reward` instead.
    """
    if terms[T_RULES] == RULES_FIRST_RELEASE:
        return first_release_reward(terms, mask)
    outcome = terms[T_OUTCOME]
    if outcome == BUMPED:
        return BUMP_REWARD
    if outcome == HAZARD_ENTERED:
        return HAZARD_PENALTY
    path = (mask & PATH_BIT) != 0
    gold = (mask & GOLD_BIT) != 0
    hazard = (mask & HAZARD_BIT) != 0
    lever = (mask & LEVER_BIT) != 0
    lever_on = terms[T_LEVER_ON] != 0.0
    gold_empty = terms[T_GOLD_LEFT] == 0.0
    d_exit = terms[T_D_EXIT]
    r = 0.0
    if lever and terms[T_PULLED_NOW] != 0.0:
        r += LEVER_PULL_REWARD
    if gold:
        if not gold_empty:
            r += terms[T_D_GOLD]
        elif not path and (not lever or lever_on):
            r += d_exit
        if terms[T_GOLD_HERE] != 0.0:
            r += GOLD_COLLECT_REWARD
    if lever:
        if not lever_on:
            r += terms[T_D_LEVER]
        elif not path:
            r += d_exit
    if hazard and not path and (not gold or gold_empty) and (not lever or lever_on):
        r += d_exit
    if path:
        r += d_exit
    if hazard:
        r += HAZARD_NEIGHBOUR_REWARD * terms[T_H_DIFF]
    if terms[T_AT_EXIT] != 0.0:
        if path:
            r += PATH_EXIT_BONUS
        if hazard:
            r += HAZARD_EXIT_BONUS
        if gold:
            uncollected = terms[T_GOLD_LEFT] - terms[T_GOLD_HERE]
            if uncollected == 0.0:
                r += GOLD_ALL_COLLECTED_BONUS
            elif terms[T_LEGACY] != 0.0:
                r -= GOLD_MISSING_PENALTY_LEGACY
            else:
                r -= GOLD_MISSING_PENALTY * uncollected / max(1.0, terms[T_N_GOLD])
        if lever:
            r += LEVER_EXIT_BONUS_ON if lever_on else LEVER_EXIT_BONUS_OFF
    return r - step_cost(mask)


@njit(cache=True)
def first_release_reward(terms, mask):
    """The study's first public release's reward of one step for the component set ``mask``.

    terms: float64 (N_TERMS,) from :func:`step`. A bump earns
    FIRST_RELEASE_BUMP_REWARD and a hazard HAZARD_PENALTY whatever the set;
    otherwise, added in this order (for bit-exact sums): the lever pull, the
    gold collected, -2 per hazard beside the landing cell (a level, also on
    the exit step), the exit bonuses (the gold penalty is 10 × (left / gold),
    that product), and last the step cost built as 0.0
    (+1.0 path) (+0.01 gold) (+0.1 hazard) (+0.1 lever). No distance terms.
    """
    outcome = terms[T_OUTCOME]
    if outcome == BUMPED:
        return FIRST_RELEASE_BUMP_REWARD
    if outcome == HAZARD_ENTERED:
        return HAZARD_PENALTY
    path = (mask & PATH_BIT) != 0
    gold = (mask & GOLD_BIT) != 0
    hazard = (mask & HAZARD_BIT) != 0
    lever = (mask & LEVER_BIT) != 0
    r = 0.0
    if lever and terms[T_PULLED_NOW] != 0.0:
        r += LEVER_PULL_REWARD
    if gold and terms[T_GOLD_HERE] != 0.0:
        r += GOLD_COLLECT_REWARD
    if hazard:
        r += -FIRST_RELEASE_HAZARD_LEVEL * terms[T_H_NEXT]
    if terms[T_AT_EXIT] != 0.0:
        if path:
            r += PATH_EXIT_BONUS
        if hazard:
            r += HAZARD_EXIT_BONUS
        if gold:
            uncollected = terms[T_GOLD_LEFT] - terms[T_GOLD_HERE]
            if uncollected == 0.0:
                r += GOLD_ALL_COLLECTED_BONUS
            elif terms[T_LEGACY] != 0.0:
                r -= GOLD_MISSING_PENALTY_LEGACY
            else:
                r -= GOLD_MISSING_PENALTY * (uncollected / max(1.0, terms[T_N_GOLD]))
        if lever:
            r += LEVER_EXIT_BONUS_ON if terms[T_LEVER_ON] != 0.0 else LEVER_EXIT_BONUS_OFF
    cost = 0.0
    if path:
        cost += FIRST_RELEASE_STEP_COST_PATH
    if gold:
        cost += STEP_COST_GOLD
    if hazard:
        cost += STEP_COST_HAZARD
    if lever:
        cost += STEP_COST_LEVER
    return r - cost


@njit(cache=True, inline="always")
def step_cost(mask):
    """The per-move cost of the component set ``mask`` (what a move that changes nothing earns)."""
    cost = 0.0
    if mask & PATH_BIT:
        cost += STEP_COST_PATH
    if mask & HAZARD_BIT:
        cost += STEP_COST_HAZARD
    if mask & LEVER_BIT:
        cost += STEP_COST_LEVER
    if mask & GOLD_BIT:
        cost += STEP_COST_GOLD
    return cost


@njit(cache=True)
def set_rewards(terms, out):
    """The reward of every component set, ``out`` float64 (N_SETS,) indexed by mask (out[0] = 0)."""
    out[0] = 0.0
    for mask in range(1, N_SETS):
        out[mask] = set_reward(terms, mask)


@njit(cache=True)
def objective_reward(terms, masks, coefs):
    """Σ_i coefs[i] · set_reward(terms, masks[i]): an objective as a combination of sets.

    masks: int64 (M,); coefs: float64 (M,). The study's rules use one set
    with coefficient 1; linear rules the singletons weighted by w.
    """
    r = 0.0
    for i in range(masks.shape[0]):
        r += coefs[i] * set_reward(terms, masks[i])
    return r


#: Agents per parallel task of :func:`step_batch` (scratch is allocated once per task).
BLOCK = 256

#: Batches of fewer agents go to :func:`step_batch_serial` (see :func:`lever.threads.pick`). Measured by
#: ``python -m pytest benchmarks/bench_dispatch.py -k step_batch --benchmark-only -s``: below it the
#: parallel kernel loses to the serial one, idle or beside a busy process.
PARALLEL_MIN_AGENTS = 4096


@njit(cache=True, parallel=True)
def step_batch(world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, set_out,
               terminated):
    """Step N independent agents at once, in parallel.

    positions, actions, lever_on: int (N,), positions and lever_on updated
    in place; gold_taken: uint8 (N, G) in place; masks, coefs: the
    objective (see :func:`objective_reward`); rewards: float64 (N,) out;
    set_out: float64 (N, N_SETS) out, every set's reward, or (N, N_COMPONENTS),
    the single components' rewards (the reward vector, a quarter of the
    work), or shape (0, 0) to skip; terminated: bool (N,) out.
    """
    n = positions.shape[0]
    for block in prange((n + BLOCK - 1) // BLOCK):
        _step_range(world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, set_out,
                    terminated, block * BLOCK, min(n, (block + 1) * BLOCK))


@njit(cache=True)
def step_batch_serial(world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, set_out,
                      terminated):
    """:func:`step_batch` on one thread, the same results: for small batches and busy machines."""
    _step_range(world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, set_out,
                terminated, 0, positions.shape[0])


@njit(cache=True)
def _step_range(world, positions, actions, gold_taken, lever_on, masks, coefs, rewards, set_out,
                terminated, lo, hi):
    # Agents lo..hi-1 of step_batch, with the terms scratch allocated once.
    record = set_out.shape[0] > 0
    every_set = set_out.shape[1] == N_SETS
    terms = np.empty(N_TERMS)
    for i in range(lo, hi):
        nxt, lever, done = step(world, positions[i], actions[i], gold_taken[i], lever_on[i], terms)
        positions[i] = nxt
        lever_on[i] = lever
        terminated[i] = done
        rewards[i] = objective_reward(terms, masks, coefs)
        if record and every_set:
            set_rewards(terms, set_out[i])
        elif record:
            for c in range(set_out.shape[1]):
                set_out[i, c] = set_reward(terms, 1 << c)
