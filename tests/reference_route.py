"""Slow, obvious pure-Python versions of the first public release's world and of its route search.

Written from the release's rules as FIRST_RELEASE.md states them (§3, §4),
with the numbers of :mod:`lever.kernels.constants`, without calling any
kernel. Layouts are lists of rows of cell kinds; cells are ``row * W + col``;
an objective is a set of component names.
"""

from __future__ import annotations

import math

from lever.kernels import constants as K

#: (row, col) offset of each of the release's actions: right, down, right2, down2.
MOVES = ((0, 1), (1, 0), (0, 2), (2, 0))


def hazards_beside(cells, cell: int) -> int:
    """Hazards among the 4 in-grid neighbours of ``cell``."""
    height, width = len(cells), len(cells[0])
    row, col = divmod(cell, width)
    return sum(1 for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
               if 0 <= row + dr < height and 0 <= col + dc < width and cells[row + dr][col + dc] == K.HAZARD)


def landing(cells, cell: int, action: int) -> int:
    """Where ``action`` lands from ``cell``: the cell itself off the grid or on a wall."""
    height, width = len(cells), len(cells[0])
    row, col = divmod(cell, width)
    r, c = row + MOVES[action][0], col + MOVES[action][1]
    if not (0 <= r < height and 0 <= c < width) or cells[r][c] == K.WALL:
        return cell
    return r * width + c


def step(cells, pos: int, action: int, taken: set, lever_on: bool, objective: set, legacy: bool):
    """One step: (next cell, lever pulled after, reward, done); ``taken`` (gold cells collected) updated."""
    width = len(cells[0])
    nxt = landing(cells, pos, action)
    if nxt == pos:
        return pos, lever_on, -1.0, False
    kind = cells[nxt // width][nxt % width]
    if kind == K.HAZARD:
        return nxt, lever_on, -100.0, True
    n_gold = sum(row.count(K.GOLD) for row in cells)
    r = 0.0
    if kind == K.LEVER and not lever_on:
        lever_on = True
        if "lever" in objective:
            r += 20.0
    if "gold" in objective and kind == K.GOLD and nxt not in taken:
        taken.add(nxt)
        r += 5.0
    if "hazard" in objective:
        r += -2.0 * hazards_beside(cells, nxt)
    done = kind == K.EXIT
    if done:
        if "path" in objective:
            r += 100.0
        if "hazard" in objective:
            r += 100.0
        if "gold" in objective:
            left = n_gold - len(taken)
            r += 100.0 if left == 0 else (-20.0 if legacy else -10.0 * (left / max(1, n_gold)))
        if "lever" in objective:
            r += 80.0 if lever_on else 20.0
    cost = 0.0
    for name, c in (("path", 1.0), ("gold", 0.01), ("hazard", 0.1), ("lever", 0.1)):
        if name in objective:
            cost += c
    return nxt, lever_on, r - cost, done


def best_route(cells, start: int, union: set, objective: set, legacy: bool) -> float:
    """The best return of any route from ``start`` to the exit using only (cell, action) pairs in
    ``union`` (bumps and hazard entries excluded), by enumerating them all; -inf if there is none."""
    width = len(cells[0])
    best = -math.inf

    def walk(pos, taken, lever_on, total):
        nonlocal best
        for action in range(len(MOVES)):
            if (pos, action) not in union:
                continue
            nxt = landing(cells, pos, action)
            if nxt == pos or cells[nxt // width][nxt % width] == K.HAZARD:
                continue
            taken_after = set(taken)
            nxt, pulled, r, done = step(cells, pos, action, taken_after, lever_on, objective, legacy)
            if done:
                best = max(best, total + r)
            else:
                walk(nxt, taken_after, pulled, total + r)

    walk(start, set(), False, 0.0)
    return best


def best_route_dp(cells, start: int, union: set, objective: set, legacy: bool) -> float:
    """:func:`best_route` by dynamic programming over (cell, lever pulled, gold collected), cells in
    ascending row + col (every move goes forward): polynomial, for layouts too large to enumerate."""
    height, width = len(cells), len(cells[0])
    gold_cells = [r * width + c for r in range(height) for c in range(width) if cells[r][c] == K.GOLD]
    best_at = {(start, False, 0): 0.0}
    best = -math.inf
    for pos in sorted(range(height * width), key=lambda cell: sum(divmod(cell, width))):
        for (cell, lever_on, collected), value in [(key, v) for key, v in best_at.items() if key[0] == pos]:
            for action in range(len(MOVES)):
                nxt = landing(cells, cell, action)
                if (cell, action) not in union or nxt == cell or cells[nxt // width][nxt % width] == K.HAZARD:
                    continue
                # Which gold was taken does not matter, only how much (cells are never entered twice).
                taken = set([g for g in gold_cells if g != nxt][:collected])
                nxt, pulled, r, done = step(cells, cell, action, taken, lever_on, objective, legacy)
                if done:
                    best = max(best, value + r)
                    continue
                key = (nxt, pulled, collected + ("gold" in objective and nxt in gold_cells))
                if value + r > best_at.get(key, -math.inf):
                    best_at[key] = value + r
    return best
