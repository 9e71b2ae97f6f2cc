"""Slow, obvious pure-Python versions of the GridWorld rules and of tabular training.

Written from the study's reward rules as README.md states them, with the
numbers of :mod:`lever.kernels.constants`, without calling any kernel, so
the tests can check the kernels against them and the benchmarks can time
them side by side. An objective here is a set of component names.

Everything works on a :class:`RefWorld`, built from a layout's cell kinds and
start cell only (:func:`reference_world`). Cells are indexed ``row * W + col``.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass

import numpy as np

from lever.kernels import constants as K
from tests.reference_route import step as release_step

#: (row, col) offset of each action, in the study's numbering: right, down, left, up.
MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))


def bfs(cells: list[list[int]], source: int) -> list[int]:
    """Steps from ``source`` to every cell of the (H, W) kind grid ``cells``.

    Moves go to the 4 neighbours that are neither wall nor hazard; the source
    itself counts as reached whatever its kind. Returns a list of S ints, -1
    where unreachable.
    """
    height, width = len(cells), len(cells[0])
    dist = [-1] * (height * width)
    dist[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        row, col = divmod(cell, width)
        for drow, dcol in MOVES:
            r, c = row + drow, col + dcol
            if 0 <= r < height and 0 <= c < width and cells[r][c] not in (K.WALL, K.HAZARD):
                if dist[r * width + c] < 0:
                    dist[r * width + c] = dist[cell] + 1
                    queue.append(r * width + c)
    return dist


@dataclass(frozen=True)
class RefWorld:
    """A layout as plain Python data: kinds, start, and the BFS maps the rewards use.

    ``gold_cells`` lists the gold cells in row-major order; ``gold_dist[g]``
    is the BFS map from gold ``g``; ``dist_lever`` is None without a lever.
    """

    cells: list[list[int]]
    start: int
    exit: int
    lever: int | None
    gold_cells: list[int]
    dist_exit: list[int]
    dist_lever: list[int] | None
    gold_dist: list[list[int]]

    @property
    def height(self) -> int:
        return len(self.cells)

    @property
    def width(self) -> int:
        return len(self.cells[0])

    @property
    def n_states(self) -> int:
        return self.height * self.width

    def kind(self, cell: int) -> int:
        """Cell kind of cell index ``cell``."""
        return self.cells[cell // self.width][cell % self.width]

    def hazard_neighbours(self, cell: int) -> int:
        """How many of the 4 neighbours of ``cell`` are hazards."""
        row, col = divmod(cell, self.width)
        count = 0
        for drow, dcol in MOVES:
            r, c = row + drow, col + dcol
            if 0 <= r < self.height and 0 <= c < self.width and self.cells[r][c] == K.HAZARD:
                count += 1
        return count


def reference_world(layout) -> RefWorld:
    """Plain-Python world of a :class:`lever.Layout` (uses only ``cells`` and ``start``)."""
    cells = [[int(v) for v in row] for row in np.asarray(layout.cells)]
    flat = [v for row in cells for v in row]
    exit_ = flat.index(K.EXIT)
    lever = flat.index(K.LEVER) if K.LEVER in flat else None
    gold_cells = [i for i, v in enumerate(flat) if v == K.GOLD]
    return RefWorld(cells=cells, start=int(layout.start), exit=exit_, lever=lever,
                    gold_cells=gold_cells, dist_exit=bfs(cells, exit_),
                    dist_lever=bfs(cells, lever) if lever is not None else None,
                    gold_dist=[bfs(cells, g) for g in gold_cells])


def _delta(dist: list[int] | None, before: int, after: int) -> float:
    # Δ = d(before) - d(after), nothing when either end is unknown.
    if dist is None or dist[before] < 0 or dist[after] < 0:
        return 0.0
    return float(dist[before] - dist[after])


def _nearest(world: RefWorld, gold_left: frozenset, cell: int) -> int:
    dists = [world.gold_dist[g][cell] for g in gold_left if world.gold_dist[g][cell] >= 0]
    return min(dists) if dists else -1


#: Every non-empty component set, as frozensets of names, and its bit mask.
ALL_SETS = {mask: frozenset(name for c, name in enumerate(K.COMPONENT_NAMES) if mask >> c & 1)
            for mask in range(1, 16)}


def study_reward(world: RefWorld, objective: frozenset, pos: int, nxt: int, bumped: bool,
                 gold_left: frozenset, lever_on_before: bool) -> float:
    """The study's reward of one step for the component set ``objective``, rule by rule.

    ``gold_left`` is the gold not collected before this step (the gold at
    ``nxt``, if any, included); ``lever_on_before`` the lever before it.
    """
    if bumped:
        return -0.1
    kind = world.kind(nxt)
    if kind == K.HAZARD:
        return -100.0
    path, gold, hazard, lever = (name in objective for name in K.COMPONENT_NAMES)
    pulled_now = kind == K.LEVER and not lever_on_before
    lever_on = lever_on_before or pulled_now
    gold_here = nxt in world.gold_cells and world.gold_cells.index(nxt) in gold_left
    reward = 0.0
    if pulled_now and lever:                                            # (a)
        reward += 20
    if gold:                                                            # (b)
        if gold_left:
            before, after = _nearest(world, gold_left, pos), _nearest(world, gold_left, nxt)
            if before >= 0 and after >= 0:
                reward += before - after
        elif not path and (not lever or lever_on):
            reward += _delta(world.dist_exit, pos, nxt)
        if gold_here:
            reward += 5
    if lever:                                                           # (c)
        if not lever_on:
            reward += _delta(world.dist_lever, pos, nxt)
        elif not path:
            reward += _delta(world.dist_exit, pos, nxt)
    if hazard and not path and (not gold or not gold_left) and (not lever or lever_on):   # (d)
        reward += _delta(world.dist_exit, pos, nxt)
    if path:                                                            # (e)
        reward += _delta(world.dist_exit, pos, nxt)
    if hazard:                                                          # (f)
        reward += 2 * (world.hazard_neighbours(pos) - world.hazard_neighbours(nxt))
    if kind == K.EXIT:                                                  # (g)
        left_after = len(gold_left) - int(gold_here)
        if path:
            reward += 100
        if hazard:
            reward += 100
        if gold:
            reward += 100 if left_after == 0 else -10 * left_after / max(1, len(world.gold_cells))
        if lever:
            reward += 80 if lever_on else 20
    reward -= 0.1 * (path + hazard + lever) + (0.01 if gold else 0.0)  # (h)
    return reward


@dataclass(frozen=True)
class StepResult:
    """One reference step: the next cell, the reward of every component set (a list of 16,
    indexed by mask, entry 0 = 0), the gold still on the floor afterwards (frozenset of
    gold indices), the lever flag afterwards and whether the episode terminated."""

    pos: int
    set_rewards: list
    gold_left: frozenset
    lever_on: bool
    terminated: bool

    @property
    def reward_vector(self) -> tuple[float, float, float, float]:
        """The four single-component rewards (path, gold, hazard, lever)."""
        return tuple(self.set_rewards[1 << c] for c in range(4))


def reference_move(world: RefWorld, pos: int, action: int, gold_left: frozenset, lever_on: bool):
    """Where one action leads and the episode state after it:
    (next cell, bumped, gold left after, lever after, terminated)."""
    row, col = divmod(pos, world.width)
    drow, dcol = MOVES[action]
    r, c = row + drow, col + dcol
    if not (0 <= r < world.height and 0 <= c < world.width and world.cells[r][c] != K.WALL):
        return pos, True, gold_left, lever_on, False
    nxt = r * world.width + c
    kind = world.kind(nxt)
    if kind == K.HAZARD:
        return nxt, False, gold_left, lever_on, True
    if nxt in world.gold_cells:
        gold_left = gold_left - {world.gold_cells.index(nxt)}
    return nxt, False, gold_left, lever_on or kind == K.LEVER, kind == K.EXIT


def reference_step(world: RefWorld, pos: int, action: int, gold_left: frozenset,
                   lever_on: bool) -> StepResult:
    """The GridWorld's move for one step and the study's reward of every component set."""
    nxt, bumped, left_after, lever_after, terminated = reference_move(world, pos, action, gold_left, lever_on)
    rewards = [0.0] + [study_reward(world, ALL_SETS[m], pos, nxt, bumped, gold_left, lever_on)
                       for m in range(1, 16)]
    return StepResult(nxt, rewards, left_after, lever_after, terminated)


def all_gold(world: RefWorld) -> frozenset:
    """The gold set of a fresh episode: every gold index."""
    return frozenset(range(len(world.gold_cells)))


def reference_episode(world: RefWorld, actions, max_steps: int | None = None) -> list[StepResult]:
    """Play ``actions`` from the start until termination, truncation at ``max_steps``
    (default H·W) or the end of ``actions``; one StepResult per step taken."""
    max_steps = world.n_states if max_steps is None else max_steps
    pos, gold_left, lever_on = world.start, all_gold(world), False
    results = []
    for action in list(actions)[:max_steps]:
        result = reference_step(world, pos, int(action), gold_left, lever_on)
        results.append(result)
        pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
        if result.terminated:
            break
    return results


@dataclass(frozen=True)
class RefRollout:
    """Greedy episode of an action table: objective return, the return of every set (16),
    steps, end ("exit", "hazard", "dead_end", "step_cap") and visited cells (start included)."""

    ret: float
    set_returns: list[float]
    steps: int
    end: str
    path: list[int]


def reference_rollout(world: RefWorld, actions, set_weights, max_steps: int | None = None) -> RefRollout:
    """Follow ``actions[state]`` (-1 = no action: dead end) from the start; return = Σ W_m · R_m."""
    max_steps = world.n_states if max_steps is None else max_steps
    pos, gold_left, lever_on = world.start, all_gold(world), False
    totals = [0.0] * 16
    path, end = [pos], "step_cap"
    for _ in range(max_steps):
        action = int(actions[pos])
        if action < 0:
            end = "dead_end"
            break
        result = reference_step(world, pos, action, gold_left, lever_on)
        pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
        totals = [t + r for t, r in zip(totals, result.set_rewards)]
        path.append(pos)
        if result.terminated:
            end = "hazard" if world.kind(pos) == K.HAZARD else "exit"
            break
    ret = sum(float(w) * t for w, t in zip(set_weights, totals))
    return RefRollout(ret, totals, len(path) - 1, end, path)


def reference_greedy(q) -> list[int]:
    """Greedy action per state of a Q table (S, A), the lowest index on ties."""
    return [max(range(len(row)), key=lambda a, row=row: (row[a], -a)) for row in np.asarray(q).tolist()]


@dataclass(frozen=True)
class RefTraining:
    """Outputs of :func:`reference_train`, shaped like :class:`lever.TrainedPolicy`'s arrays."""

    q: np.ndarray               # float64 (S, A)
    q_vector: np.ndarray        # float64 (S, A, C), TD on each single component's reward
    visits: np.ndarray          # int64 (S, A)
    first_visit: np.ndarray     # int32 (S, A), episode of the first visit, -1 never
    next_state: np.ndarray      # int32 (S, A), -1 never visited
    reward_model: np.ndarray    # float64 (S, A, 16), every set's reward on the first visit
    episode_returns: np.ndarray  # float64 (E,)
    snapshot_q: np.ndarray      # float64 (N, S, A), after episodes 0, interval, ...


def reference_train(world: RefWorld, set_weights, episodes: int, *, alpha: float = 0.1,
                    gamma: float = 0.0, epsilon_start: float = 1.0, epsilon_decay: float = 0.99954,
                    epsilon_min: float = 0.01, sarsa: bool = True, seed: int = 0,
                    max_steps: int | None = None, snapshot_interval: int = 1000,
                    learn_vector: bool = True, fresh_action: bool = False,
                    first_release: bool = False) -> RefTraining:
    """Tabular SARSA (``sarsa=True``) or Q-learning with ε-greedy, as a plain Python loop.

    The reward of a step is Σ_m set_weights[m] · (reward of set m). ε-greedy
    explores with probability ε (``rng.random() < ε``, then
    ``rng.integers(0, 4)``), otherwise takes the greedy action, the lowest
    on ties; ``rng = numpy.random.default_rng(seed)``. Truncation at
    ``max_steps`` (default H·W) still bootstraps; termination does not.
    ``learn_vector=False`` skips the per-component Q (left at zeros).

    ``fresh_action=True`` is the first public release's loop: a fresh
    ε-greedy draw before every step (a′ is still drawn after it, for the
    update only), Q ← (1−α)Q + α(r + γQ[s′, a′]) with no masking at
    termination. ``first_release=True`` moves and rewards by the release's
    rules (:func:`tests.reference_route.step`, default gold exit rule).
    """
    rng = np.random.default_rng(seed)
    objective_sets = [(m, float(w)) for m, w in enumerate(set_weights) if w != 0]
    n_states, n_actions, n_comp = world.n_states, K.N_ACTIONS, K.N_COMPONENTS
    max_steps = n_states if max_steps is None else max_steps
    q = [[0.0] * n_actions for _ in range(n_states)]
    q_vec = [[[0.0] * n_comp for _ in range(n_actions)] for _ in range(n_states)]
    visits = [[0] * n_actions for _ in range(n_states)]
    first_visit = [[-1] * n_actions for _ in range(n_states)]
    next_state = [[-1] * n_actions for _ in range(n_states)]
    reward_model = [[[0.0] * 16 for _ in range(n_actions)] for _ in range(n_states)]
    returns, snapshots = [], []

    def greedy(state):
        return max(range(n_actions), key=lambda a: (q[state][a], -a))

    def choose(state, epsilon):
        if rng.random() < epsilon:
            return int(rng.integers(0, n_actions))
        return greedy(state)

    epsilon = epsilon_start
    for episode in range(episodes):
        state, gold_left, lever_on = world.start, all_gold(world), False
        action = None if fresh_action else choose(state, epsilon)
        total = 0.0
        for _ in range(max_steps):
            if fresh_action:
                action = choose(state, epsilon)
            # Only the objective's sets each step; every set on a first visit (the log).
            if first_release:
                # The gold cells taken before the step; the move itself collects gold whatever the set.
                before = frozenset(world.gold_cells[g] for g in all_gold(world) - gold_left)
                taken = set(before)
                nxt, lever_after, _, terminated = release_step(world.cells, state, action, taken, lever_on,
                                                               {"gold"}, False)
                left_after = frozenset(g for g in gold_left if world.gold_cells[g] not in taken)

                def set_reward(objective, state=state, action=action, before=before, lever_on=lever_on):
                    return release_step(world.cells, state, action, set(before), lever_on, objective, False)[2]
            else:
                nxt, bumped, left_after, lever_after, terminated = reference_move(
                    world, state, action, gold_left, lever_on)

                def set_reward(objective, state=state, nxt=nxt, bumped=bumped, gold_left=gold_left,
                               lever_on=lever_on):
                    return study_reward(world, objective, state, nxt, bumped, gold_left, lever_on)
            reward = sum(w * set_reward(ALL_SETS[m]) for m, w in objective_sets)
            total += reward
            if visits[state][action] == 0:
                first_visit[state][action] = episode
                next_state[state][action] = nxt
                reward_model[state][action] = [0.0] + [set_reward(ALL_SETS[m]) for m in range(1, 16)]
            visits[state][action] += 1
            next_action = choose(nxt, epsilon)
            bootstrap = next_action if sarsa else greedy(nxt)
            if fresh_action:
                q[state][action] = (1 - alpha) * q[state][action] + alpha * (reward + gamma * q[nxt][bootstrap])
            else:
                target = reward if terminated else reward + gamma * q[nxt][bootstrap]
                q[state][action] += alpha * (target - q[state][action])
            for c in range(n_comp if learn_vector else 0):
                target_c = set_reward(ALL_SETS[1 << c])
                if fresh_action:
                    q_vec[state][action][c] = ((1 - alpha) * q_vec[state][action][c]
                                               + alpha * (target_c + gamma * q_vec[nxt][bootstrap][c]))
                    continue
                if not terminated:
                    target_c += gamma * q_vec[nxt][bootstrap][c]
                q_vec[state][action][c] += alpha * (target_c - q_vec[state][action][c])
            gold_left, lever_on = left_after, lever_after
            if terminated:
                break
            state, action = nxt, next_action
        returns.append(total)
        if snapshot_interval and episode % snapshot_interval == 0:
            snapshots.append([row[:] for row in q])
        epsilon = max(epsilon_min, epsilon * epsilon_decay)
    return RefTraining(np.array(q), np.array(q_vec), np.array(visits, dtype=np.int64),
                       np.array(first_visit, dtype=np.int32), np.array(next_state, dtype=np.int32),
                       np.array(reward_model), np.array(returns),
                       np.array(snapshots).reshape(len(snapshots), n_states, n_actions))


# -- inputs for property tests --------------------------------------------------

#: Hand-written layouts that pin exact cases: a gold pocket with a single way in,
#: hazards beside the path, a lever behind walls, a one-row corridor, no gold.
HAND_LAYOUTS = {
    "pocket": "S....\n.###.\n.#G#.\n.....\n..L.E\n",
    "hazards": "S.H..\n.G.H.\n..L..\n#H.GE\n",
    "walled_lever": "S.#L.\n..#..\n.G...\n##.#.\nE....\n",
    "corridor": "SG.GE\n",
    "no_gold": "S.H\n.L.\n..E\n",
    "no_lever": "SG\nHE\n",
}


def layouts():
    """Hypothesis strategy: a hand-written layout or a sampled one from a small random GridSpec."""
    from hypothesis import assume, strategies as st

    from lever import GridSpec, Layout, LeverError

    @st.composite
    def draw_layout(draw):
        if draw(st.integers(0, 3)) == 0:
            return Layout.from_text(HAND_LAYOUTS[draw(st.sampled_from(sorted(HAND_LAYOUTS)))])
        height, width = draw(st.integers(1, 7)), draw(st.integers(2, 7))
        room = height * width - 3
        n_walls = draw(st.integers(0, max(0, room // 4)))
        n_hazards = draw(st.integers(0, max(0, room // 4)))
        n_gold = draw(st.integers(0, max(0, room // 3)))
        spec_args = dict(height=height, width=width, n_gold=n_gold, n_walls=n_walls,
                         n_hazards=n_hazards, lever=draw(st.booleans()),
                         seed=draw(st.integers(0, 2**31)))
        try:
            with warnings.catch_warnings():  # cramped random specs often need the unchecked last draw
                warnings.simplefilter("ignore", RuntimeWarning)
                return Layout.generate(GridSpec(**spec_args))
        except LeverError:
            assume(False)

    return draw_layout()
