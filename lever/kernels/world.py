"""GridWorld dynamics: BFS distance maps, the single-agent step, the batched step.

A *world* is the tuple of layout arrays every kernel takes, built once per
layout by :meth:`lever.gridworld.Layout.world`::

    (cells int8 (S,), width int, dist_exit int32 (S,), dist_lever int32 (S,),
     gold_id int32 (S,), gold_dist int32 (G, S), hazard_neighbours int8 (S,),
     moves int32 (S, A))

with S = H*W cells indexed ``row * W + col``. ``gold_dist`` is column-major
(Layout builds it so) because every step reads one cell's column of it.
``moves[s, a]`` is the cell action a leads to from s (s itself when the
move would leave the grid or enter a wall), so a step is one table look-up.
Distances are BFS steps through cells that are neither wall nor hazard, -1
where unreachable. Episode state is a ``gold_taken`` uint8 (G,) mask plus a
``lever_on`` 0/1 flag.
"""

import numpy as np
from numba import njit, prange

from .constants import (
    DOWN, EXIT, GOLD_ALL_COLLECTED_BONUS, GOLD_COLLECT_REWARD, GOLD_MISSING_PENALTY,
    HAZARD, HAZARD_EXIT_BONUS, HAZARD_NEIGHBOUR_REWARD, HAZARD_PENALTY, LEFT, LEVER,
    LEVER_ACTIVATION_REWARD, LEVER_EXIT_BONUS_OFF, LEVER_EXIT_BONUS_ON, PATH_EXIT_BONUS,
    RIGHT, STEP_COST_GOLD, STEP_COST_HAZARD, STEP_COST_LEVER, STEP_COST_PATH, UP, WALL,
)


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


@njit(cache=True, inline="always")
def neighbour(row, col, action, height, width):
    """Cell index one move away in direction ``action``, or -1 off the grid."""
    if action == UP:
        row -= 1
    elif action == RIGHT:
        col += 1
    elif action == DOWN:
        row += 1
    elif action == LEFT:
        col -= 1
    if row < 0 or row >= height or col < 0 or col >= width:
        return -1
    return row * width + col


@njit(cache=True, inline="always")
def _progress(dist, before, after):
    # Shaping term Δd = d(before) - d(after); zero where either is unknown.
    if dist[before] < 0 or dist[after] < 0:
        return 0.0
    return float(dist[before] - dist[after])


@njit(cache=True)
def step(world, pos, action, gold_taken, lever_on, reward):
    """Advance one agent by one action.

    world: layout tuple (module docstring); pos: cell index; action: 0..3;
    gold_taken: uint8 (G,), updated in place; lever_on: 0/1;
    reward: float64 (C,), overwritten with the step's reward vector.
    Returns ``(next_pos, lever_on, terminated)``; truncation is the caller's.
    """
    cells, width, dist_exit, dist_lever, gold_id, gold_dist, hazard_neighbours, moves = world
    nxt = moves[pos, action]
    kind = cells[nxt]

    if kind == HAZARD:
        for c in range(reward.shape[0]):
            reward[c] = HAZARD_PENALTY
        return nxt, lever_on, True

    r_path = -STEP_COST_PATH + _progress(dist_exit, pos, nxt)
    r_hazard = -STEP_COST_HAZARD + HAZARD_NEIGHBOUR_REWARD * (
        hazard_neighbours[pos] - hazard_neighbours[nxt])

    # Gold shaping uses the set remaining *before* this step at both ends, so
    # stepping onto a gold is +1 progress rather than a jump to the next one.
    # Written without branches (selects and min) because which gold is left
    # varies from step to step and mispredicted branches dominated the step.
    n_gold = gold_dist.shape[0]
    unknown = cells.shape[0]  # longer than any BFS distance
    near_before = unknown
    near_after = unknown
    for g in range(n_gold):
        remaining = gold_taken[g] == 0
        db = gold_dist[g, pos]
        da = gold_dist[g, nxt]
        near_before = min(near_before, db if remaining & (db >= 0) else unknown)
        near_after = min(near_after, da if remaining & (da >= 0) else unknown)
    r_gold = -STEP_COST_GOLD
    if near_before < unknown and near_after < unknown:
        r_gold += near_before - near_after
    g = gold_id[nxt]
    if g >= 0 and gold_taken[g] == 0:
        gold_taken[g] = 1
        r_gold += GOLD_COLLECT_REWARD

    r_lever = -STEP_COST_LEVER
    if lever_on == 0:
        r_lever += _progress(dist_lever, pos, nxt)
        if kind == LEVER:
            lever_on = 1
            r_lever += LEVER_ACTIVATION_REWARD

    terminated = kind == EXIT
    if terminated:
        r_path += PATH_EXIT_BONUS
        r_hazard += HAZARD_EXIT_BONUS
        taken = 0
        for g in range(n_gold):
            taken += gold_taken[g]
        if taken == n_gold:
            r_gold += GOLD_ALL_COLLECTED_BONUS
        else:
            r_gold -= GOLD_MISSING_PENALTY * (n_gold - taken) / n_gold
        r_lever += LEVER_EXIT_BONUS_ON if lever_on else LEVER_EXIT_BONUS_OFF

    reward[0] = r_path
    reward[1] = r_gold
    reward[2] = r_hazard
    reward[3] = r_lever
    return nxt, lever_on, terminated


@njit(cache=True)
def move_table(cells, width):
    """Cell reached by each action from each cell, int32 (S, A).

    cells: int8 (S,) cell kinds; width: grid width. Moves off the grid or
    into a wall stay put.
    """
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


@njit(cache=True, parallel=True)
def step_batch(world, positions, actions, gold_taken, lever_on, rewards, terminated):
    """Step N independent agents at once, in parallel.

    positions, actions, lever_on: (N,) int arrays, positions and lever_on
    updated in place; gold_taken: uint8 (N, G) in place; rewards: float64
    (N, C) out; terminated: bool (N,) out.
    """
    for i in prange(positions.shape[0]):
        nxt, lever, done = step(world, positions[i], actions[i], gold_taken[i],
                                lever_on[i], rewards[i])
        positions[i] = nxt
        lever_on[i] = lever
        terminated[i] = done
