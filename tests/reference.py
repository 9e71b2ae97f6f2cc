"""Slow, obvious pure-Python versions of the GridWorld rules and of tabular training.

Written from the reward table of README.md / DESIGN.md and the numbers in
:mod:`lever.kernels.constants`, without calling any kernel, so the tests can
check the kernels against them and the benchmarks can time them side by side.

Everything works on a :class:`RefWorld`, built from a layout's cell kinds and
start cell only (:func:`reference_world`). Cells are indexed ``row * W + col``.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

import numpy as np

from lever.kernels import constants as K

#: (row, col) offset of each action: up, right, down, left.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


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
    # Shaping Δd = d(before) - d(after), nothing when either end is unknown.
    if dist is None or dist[before] < 0 or dist[after] < 0:
        return 0.0
    return float(dist[before] - dist[after])


def _nearest(world: RefWorld, gold_left: frozenset, cell: int) -> int:
    dists = [world.gold_dist[g][cell] for g in gold_left if world.gold_dist[g][cell] >= 0]
    return min(dists) if dists else -1


@dataclass(frozen=True)
class StepResult:
    """One reference step: the next cell, the reward vector (path, gold, hazard, lever),
    the gold still on the floor afterwards (frozenset of gold indices), the lever flag
    afterwards and whether the episode terminated (exit or hazard)."""

    pos: int
    reward: tuple[float, float, float, float]
    gold_left: frozenset
    lever_on: bool
    terminated: bool


def reference_step(world: RefWorld, pos: int, action: int, gold_left: frozenset,
                   lever_on: bool) -> StepResult:
    """The GridWorld rules for one step, straight from the README's reward table."""
    row, col = divmod(pos, world.width)
    drow, dcol = MOVES[action]
    r, c = row + drow, col + dcol
    if 0 <= r < world.height and 0 <= c < world.width and world.cells[r][c] != K.WALL:
        nxt = r * world.width + c
    else:
        nxt = pos  # bump: stay, pay the step cost
    kind = world.kind(nxt)
    if kind == K.HAZARD:
        penalty = K.HAZARD_PENALTY
        return StepResult(nxt, (penalty, penalty, penalty, penalty), gold_left, lever_on, True)

    path = -K.STEP_COST_PATH + _delta(world.dist_exit, pos, nxt)
    hazard = -K.STEP_COST_HAZARD + K.HAZARD_NEIGHBOUR_REWARD * (
        world.hazard_neighbours(pos) - world.hazard_neighbours(nxt))

    # Nearest remaining gold, measured against the gold left before this step.
    gold = -K.STEP_COST_GOLD
    before, after = _nearest(world, gold_left, pos), _nearest(world, gold_left, nxt)
    if before >= 0 and after >= 0:
        gold += before - after
    if nxt in world.gold_cells and world.gold_cells.index(nxt) in gold_left:
        gold_left = gold_left - {world.gold_cells.index(nxt)}
        gold += K.GOLD_COLLECT_REWARD

    lever = -K.STEP_COST_LEVER
    if not lever_on:
        lever += _delta(world.dist_lever, pos, nxt)
        if kind == K.LEVER:
            lever_on = True
            lever += K.LEVER_ACTIVATION_REWARD

    terminated = kind == K.EXIT
    if terminated:
        path += K.PATH_EXIT_BONUS
        hazard += K.HAZARD_EXIT_BONUS
        n_gold = len(world.gold_cells)
        if not gold_left:
            gold += K.GOLD_ALL_COLLECTED_BONUS
        else:
            gold -= K.GOLD_MISSING_PENALTY * len(gold_left) / n_gold
        lever += K.LEVER_EXIT_BONUS_ON if lever_on else K.LEVER_EXIT_BONUS_OFF
    return StepResult(nxt, (path, gold, hazard, lever), gold_left, lever_on, terminated)


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
    """Greedy episode of an action table: composite return, return vector, steps,
    end ("exit", "hazard", "dead_end", "step_cap") and visited cells (start included)."""

    ret: float
    return_vector: list[float]
    steps: int
    end: str
    path: list[int]


def reference_rollout(world: RefWorld, actions, weights, max_steps: int | None = None) -> RefRollout:
    """Follow ``actions[state]`` (-1 = no action: dead end) from the start."""
    max_steps = world.n_states if max_steps is None else max_steps
    pos, gold_left, lever_on = world.start, all_gold(world), False
    totals = [0.0, 0.0, 0.0, 0.0]
    path, end = [pos], "step_cap"
    for _ in range(max_steps):
        action = int(actions[pos])
        if action < 0:
            end = "dead_end"
            break
        result = reference_step(world, pos, action, gold_left, lever_on)
        pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
        totals = [t + r for t, r in zip(totals, result.reward)]
        path.append(pos)
        if result.terminated:
            end = "hazard" if world.kind(pos) == K.HAZARD else "exit"
            break
    ret = sum(float(w) * t for w, t in zip(weights, totals))
    return RefRollout(ret, totals, len(path) - 1, end, path)


def reference_greedy(q) -> list[int]:
    """Greedy action per state of a Q table (S, A), the lowest index on ties."""
    return [max(range(len(row)), key=lambda a, row=row: (row[a], -a)) for row in np.asarray(q).tolist()]


@dataclass(frozen=True)
class RefTraining:
    """Outputs of :func:`reference_train`, shaped like :class:`lever.TrainedPolicy`'s arrays."""

    q: np.ndarray               # float64 (S, A)
    q_vector: np.ndarray        # float64 (S, A, C)
    visits: np.ndarray          # int64 (S, A)
    next_state: np.ndarray      # int32 (S, A), -1 never visited
    reward_model: np.ndarray    # float64 (S, A, C), reward vector of the first visit
    episode_returns: np.ndarray  # float64 (E,)


def reference_train(world: RefWorld, weights, episodes: int, *, alpha: float = 0.1,
                    gamma: float = 0.0, epsilon_start: float = 1.0, epsilon_decay: float = 0.99954,
                    epsilon_min: float = 0.01, sarsa: bool = True, seed: int = 0,
                    max_steps: int | None = None, numpy_rng: bool = True) -> RefTraining:
    """Tabular SARSA (``sarsa=True``) or Q-learning with ε-greedy, as a plain Python loop.

    ε-greedy explores with probability ε, otherwise takes a greedy action with
    ties broken uniformly (reservoir-style: the k-th tied action replaces the
    choice with probability 1/k). With ``numpy_rng`` the random draws come from
    ``numpy.random.RandomState(seed)`` (the same Mersenne Twister stream the
    kernel's ``np.random.seed`` gives, so the arrays can match exactly);
    otherwise from Python's ``random.Random(seed)``. Truncation at
    ``max_steps`` (default H·W) still bootstraps; termination does not.
    """
    if numpy_rng:
        state_rng = np.random.RandomState(seed)
        uniform, randint = state_rng.random_sample, state_rng.randint
    else:
        py_rng = random.Random(seed)
        uniform, randint = py_rng.random, py_rng.randrange
    weights = [float(w) for w in weights]
    n_states, n_actions, n_comp = world.n_states, K.N_ACTIONS, K.N_COMPONENTS
    max_steps = n_states if max_steps is None else max_steps
    q = [[0.0] * n_actions for _ in range(n_states)]
    q_vec = [[[0.0] * n_comp for _ in range(n_actions)] for _ in range(n_states)]
    visits = [[0] * n_actions for _ in range(n_states)]
    next_state = [[-1] * n_actions for _ in range(n_states)]
    reward_model = [[[0.0] * n_comp for _ in range(n_actions)] for _ in range(n_states)]
    returns = []

    def choose(state, epsilon):
        if uniform() < epsilon:
            return int(randint(n_actions))
        best, n_best = 0, 1
        for a in range(1, n_actions):
            if q[state][a] > q[state][best]:
                best, n_best = a, 1
            elif q[state][a] == q[state][best]:
                n_best += 1
                if randint(n_best) == 0:
                    best = a
        return best

    epsilon = epsilon_start
    for _ in range(episodes):
        state, gold_left, lever_on = world.start, all_gold(world), False
        action = choose(state, epsilon)
        total = 0.0
        for _ in range(max_steps):
            result = reference_step(world, state, action, gold_left, lever_on)
            nxt, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
            reward = 0.0
            for w, r in zip(weights, result.reward):
                reward += w * r
            total += reward
            if visits[state][action] == 0:
                next_state[state][action] = nxt
                reward_model[state][action] = list(result.reward)
            visits[state][action] += 1
            next_action = choose(nxt, epsilon)
            if sarsa:
                bootstrap = next_action
            else:
                bootstrap = max(range(n_actions), key=lambda a: (q[nxt][a], -a))
            target = reward if result.terminated else reward + gamma * q[nxt][bootstrap]
            q[state][action] += alpha * (target - q[state][action])
            for c in range(n_comp):
                target_c = result.reward[c]
                if not result.terminated:
                    target_c += gamma * q_vec[nxt][bootstrap][c]
                q_vec[state][action][c] += alpha * (target_c - q_vec[state][action][c])
            if result.terminated:
                break
            state, action = nxt, next_action
        returns.append(total)
        epsilon = max(epsilon_min, epsilon * epsilon_decay)
    return RefTraining(np.array(q), np.array(q_vec), np.array(visits, dtype=np.int64),
                       np.array(next_state, dtype=np.int32), np.array(reward_model),
                       np.array(returns))


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
    """Hypothesis strategy: a hand-written layout or a generated one from a small random GridSpec."""
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
            return Layout.generate(GridSpec(**spec_args))
        except LeverError:
            assume(False)

    return draw_layout()
