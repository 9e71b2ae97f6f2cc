"""``lever.GridWorldEnv``: the gymnasium face of the step kernel.

The env keeps only episode state (position, gold mask, lever flag, step
count) and calls :func:`lever.kernels.world.step` for every rule, so it
cannot disagree with training or rollouts.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .gridworld import KIND_CHARS, Layout
from .kernels import constants as K
from .kernels.world import step
from .objectives import Objective, ObjectiveLike

ENV_ID = "lever/GridWorld-v0"

#: RGB colour of each cell kind in ``rgb_array`` renders.
KIND_COLOURS = {K.EMPTY: (235, 235, 235), K.WALL: (60, 60, 60), K.GOLD: (230, 190, 30),
                K.HAZARD: (200, 40, 40), K.LEVER: (120, 70, 200), K.EXIT: (40, 160, 70)}
AGENT_COLOUR = (30, 90, 220)


class GridWorldEnv(gym.Env):
    """Deterministic GridWorld with a composite objective.

    Observation: the agent's cell index (``Discrete(H·W)``). Action: 0 up,
    1 right, 2 down, 3 left. Reward: ``w · r`` for the objective's weights w;
    ``info["reward_vector"]`` holds r. Episodes terminate at the exit or a
    hazard and are truncated after ``max_steps`` (default H·W) steps.

    layout: a :class:`Layout`, or a preset name / GridSpec to generate one
    (``layout_seed`` overrides the GridSpec's seed; presets default to 0);
    render_mode: ``"ansi"`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(self, layout: Layout | str = "grid16", objective: ObjectiveLike = "path",
                 render_mode: str | None = None, max_steps: int | None = None,
                 layout_seed: int | None = None, cell_pixels: int = 16):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; valid: {self.metadata['render_modes']}")
        self.layout = layout if isinstance(layout, Layout) else Layout.generate(layout, seed=layout_seed)
        self.objective = Objective.parse(objective)
        self.render_mode = render_mode
        self.max_steps = max_steps or self.layout.max_steps
        self.cell_pixels = cell_pixels
        self.observation_space = spaces.Discrete(self.layout.n_states)
        self.action_space = spaces.Discrete(K.N_ACTIONS)
        self._world = self.layout.world
        self._weights = self.objective.array
        self._gold_taken = np.zeros(self.layout.gold.size, dtype=np.uint8)
        self._reward = np.zeros(K.N_COMPONENTS)
        self._pos = self.layout.start
        self._lever_on = 0
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode at the layout's start: (observation, info)."""
        super().reset(seed=seed)
        self._gold_taken[:] = 0
        self._pos = self.layout.start
        self._lever_on = 0
        self._steps = 0
        return self._pos, self._info(np.zeros(K.N_COMPONENTS))

    def step(self, action):
        """Take one action: (observation, scalar reward w·r, terminated, truncated, info)."""
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; valid: 0..{K.N_ACTIONS - 1}")
        pos, lever_on, terminated = step(self._world, self._pos, int(action), self._gold_taken,
                                         self._lever_on, self._reward)
        self._pos, self._lever_on = int(pos), int(lever_on)
        self._steps += 1
        reward_vector = self._reward.copy()
        truncated = not terminated and self._steps >= self.max_steps
        return (self._pos, float(self._weights @ reward_vector), bool(terminated), truncated,
                self._info(reward_vector))

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
