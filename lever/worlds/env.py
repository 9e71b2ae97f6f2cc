"""``lever.GridWorldEnv``: the gymnasium face of the step kernel.

The env keeps only episode state (position, gold mask, lever flag, step
count) and calls :func:`lever.kernels.world.step` for every rule, so it
cannot disagree with training or rollouts. ``lever/MOGridWorld-v0``
(:class:`MOGridWorldEnv`) is the multi-objective face: its reward is the
float32 vector of the four single-component rewards, as MO-Gymnasium expects.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import LeverError
from .grid import KIND_CHARS, Layout
from ..kernels import constants as K
from ..kernels.world import N_TERMS, set_rewards, step
from .objectives import COMPONENTS, SINGLETONS, Objective, ObjectiveLike, check_rules

ENV_ID = "lever/GridWorld-v0"
MO_ENV_ID = "lever/MOGridWorld-v0"
#: Action names by number, as the study numbers them.
ACTIONS = K.ACTION_NAMES

#: RGB colour of each cell kind in ``rgb_array`` renders.
KIND_COLOURS = {K.EMPTY: (235, 235, 235), K.WALL: (60, 60, 60), K.GOLD: (230, 190, 30),
                K.HAZARD: (200, 40, 40), K.LEVER: (120, 70, 200), K.EXIT: (40, 160, 70)}
AGENT_COLOUR = (30, 90, 220)
#: Accepted range of ``cell_pixels``.
CELL_PIXELS_RANGE = (1, 128)


class GridWorldEnv(gym.Env):
    """Deterministic GridWorld with an objective under the study's rules (default) or linear rules.

    Observation: the agent's cell index (``Discrete(H·W)``). Action: 0
    right, 1 down, 2 left, 3 up (:data:`ACTIONS`). Reward: the study's
    reward of the objective's component set (``rules="study"``) or ``w · r``
    (``rules="linear"``); ``info["reward_vector"]`` holds r, the four
    single-component rewards, under both. Episodes terminate at the exit or
    a hazard and are truncated after ``max_steps`` (default H·W) steps;
    stepping a finished episode without ``reset()`` is an error.

    layout: a :class:`Layout`, or a preset name / GridSpec to generate one
    (``layout_seed`` overrides the GridSpec's seed; presets default to 0);
    render_mode: ``"ansi"`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}
    #: Whether ``step`` returns the reward vector (the multi-objective face) instead of a scalar.
    vector_reward = False

    def __init__(self, layout: Layout | str = "grid16", objective: ObjectiveLike | None = "path",
                 render_mode: str | None = None, max_steps: int | None = None,
                 layout_seed: int | None = None, cell_pixels: int = 16, rules: str = "study"):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise LeverError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                      or max_steps < 1):
            raise LeverError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        low, high = CELL_PIXELS_RANGE
        if isinstance(cell_pixels, bool) or not isinstance(cell_pixels, (int, np.integer)) \
                or not low <= cell_pixels <= high:
            raise LeverError(f"cell_pixels must be an integer in {low}..{high}, got {cell_pixels!r}")
        if isinstance(layout, Layout):
            self.layout = layout
        elif isinstance(layout, str) or layout.__class__.__name__ == "GridSpec":
            self.layout = Layout.generate(layout, seed=layout_seed)
        else:
            raise LeverError(f"layout must be a lever.Layout, a preset name or a GridSpec, got {layout!r}")
        self.rules = check_rules(rules)
        if objective is None and not self.vector_reward:
            raise LeverError("objective is required (or use lever/MOGridWorld-v0 for the reward vector)")
        self.objective = None if objective is None else Objective.parse(objective)
        # The objective as set weights; None for the multi-objective face.
        self._set_weights = None if self.objective is None else self.objective.set_weights(rules)
        self.render_mode = render_mode
        self.max_steps = int(max_steps or self.layout.max_steps)
        self.cell_pixels = int(cell_pixels)
        self.observation_space = spaces.Discrete(self.layout.n_states)
        self.action_space = spaces.Discrete(K.N_ACTIONS)
        self._world = self.layout.world
        self._gold_taken = np.zeros(self.layout.gold.size, dtype=np.uint8)
        self._terms = np.zeros(N_TERMS)
        self._rewards = np.zeros(K.N_SETS)
        self._pos = self.layout.start
        self._lever_on = 0
        self._steps = 0
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode at the layout's start: (observation, info)."""
        super().reset(seed=seed)
        self._gold_taken[:] = 0
        self._pos = self.layout.start
        self._lever_on = 0
        self._steps = 0
        self._done = False
        return self._pos, self._info(np.zeros(K.N_COMPONENTS))

    def _advance(self, action) -> tuple[np.ndarray, bool, bool]:
        # One kernel step; fills self._rewards with every set's reward.
        if not self.action_space.contains(action):
            raise LeverError(f"invalid action {action!r}; valid: 0..{K.N_ACTIONS - 1} ({', '.join(ACTIONS)})")
        if self._done:
            raise LeverError("the episode has ended (terminated or truncated); call reset() before step()")
        pos, lever_on, terminated = step(self._world, self._pos, int(action), self._gold_taken,
                                         self._lever_on, self._terms)
        set_rewards(self._terms, self._rewards)
        self._pos, self._lever_on = int(pos), int(lever_on)
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_steps
        self._done = bool(terminated or truncated)
        return self._rewards[SINGLETONS].copy(), bool(terminated), truncated

    def step(self, action):
        """Take one action: (observation, reward, terminated, truncated, info)."""
        reward_vector, terminated, truncated = self._advance(action)
        reward = float(self._set_weights @ self._rewards)
        return self._pos, reward, terminated, truncated, self._info(reward_vector)

    def _info(self, reward_vector: np.ndarray) -> dict:
        return {"reward_vector": reward_vector,
                "gold_left": int(self._gold_taken.size - self._gold_taken.sum()),
                "lever_on": bool(self._lever_on)}

    def _current_kinds(self) -> np.ndarray:
        # Collected gold shows as empty floor.
        kinds = self.layout.cells.copy().ravel()
        kinds[self.layout.gold[self._gold_taken.astype(bool)]] = K.EMPTY
        return kinds.reshape(self.layout.cells.shape)

    def render(self):
        """The current grid: text for ``ansi``; for ``rgb_array`` an RGB image,
        uint8 (H·cell_pixels, W·cell_pixels, 3); else None."""
        if self.render_mode == "ansi":
            chars = np.vectorize(KIND_CHARS.get)(self._current_kinds()).astype("<U1")
            chars.flat[self._pos] = "A"
            return "\n".join("".join(row) for row in chars) + "\n"
        if self.render_mode == "rgb_array":
            palette = np.zeros((K.N_KINDS, 3), dtype=np.uint8)
            for kind, colour in KIND_COLOURS.items():
                palette[kind] = colour
            image = palette[self._current_kinds()]
            image.reshape(-1, 3)[self._pos] = AGENT_COLOUR
            return np.kron(image, np.ones((self.cell_pixels, self.cell_pixels, 1), dtype=np.uint8))
        return None


class MOGridWorldEnv(GridWorldEnv):
    """The multi-objective GridWorld: ``step`` returns the float32 reward vector (C = 4,).

    The vector holds the study's reward of each single component (path,
    gold, hazard, lever), so ``w · r`` is lever's linear rules and
    MO-Gymnasium wrappers (``LinearReward``, ``MORecordEpisodeStatistics``)
    apply directly. ``reward_space`` is a Box of shape (4,); ``reward_dim`` 4.
    """

    vector_reward = True

    def __init__(self, layout: Layout | str = "grid16", render_mode: str | None = None,
                 max_steps: int | None = None, layout_seed: int | None = None, cell_pixels: int = 16):
        super().__init__(layout, None, render_mode, max_steps, layout_seed, cell_pixels, rules="linear")
        self.reward_dim = K.N_COMPONENTS
        self.reward_space = spaces.Box(low=K.HAZARD_PENALTY, high=1000.0, shape=(K.N_COMPONENTS,),
                                       dtype=np.float32)
        self.reward_names = COMPONENTS

    def step(self, action):
        """Take one action: (observation, reward vector float32 (4,), terminated, truncated, info)."""
        reward_vector, terminated, truncated = self._advance(action)
        return (self._pos, reward_vector.astype(np.float32), terminated, truncated,
                self._info(reward_vector))
