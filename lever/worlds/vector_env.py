"""``GridWorldVectorEnv``: N GridWorld episodes stepped at once by the batched step kernel.

``gymnasium.make_vec("lever/GridWorld-v0", num_envs=N, vectorization_mode="vector_entry_point")``
builds it. It follows gymnasium 1.x's next-step autoreset: the step after a
sub-env terminates or truncates resets it (the action is ignored, the
observation is the start, reward 0, neither flag set). Rewards follow the
same rules as :class:`lever.GridWorldEnv`; ``infos["reward_vector"]``
float64 (N, 4) holds the four single-component rewards.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .env import GridWorldEnv
from ..errors import LeverError
from .grid import Layout
from ..kernels.constants import N_ACTIONS, N_SETS
from ..kernels.world import step_batch
from .objectives import SINGLETONS, ObjectiveLike, objective_terms


class GridWorldVectorEnv(VectorEnv):
    """``num_envs`` copies of one layout and objective, stepped in one kernel call (see module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, layout: Layout | str = "grid16", objective: ObjectiveLike = "path",
                 max_steps: int | None = None, layout_seed: int | None = None, rules: str = "study"):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise LeverError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        single = GridWorldEnv(layout, objective, max_steps=max_steps, layout_seed=layout_seed, rules=rules)
        self.layout, self.objective, self.rules = single.layout, single.objective, single.rules
        self.max_steps = single.max_steps
        self.num_envs = int(num_envs)
        self.single_observation_space = spaces.Discrete(self.layout.n_states)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._masks, self._coefs = objective_terms(self.objective.set_weights(rules))
        n = self.num_envs
        self._positions = np.full(n, self.layout.start, dtype=np.int64)
        self._gold_taken = np.zeros((n, self.layout.gold.size), dtype=np.uint8)
        self._lever_on = np.zeros(n, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._rewards = np.zeros(n)
        self._set_rewards = np.zeros((n, N_SETS))
        self._terminated = np.zeros(n, dtype=np.bool_)
        self._needs_reset = np.zeros(n, dtype=np.bool_)

    def _restart(self, which: np.ndarray) -> None:
        self._positions[which] = self.layout.start
        self._gold_taken[which] = 0
        self._lever_on[which] = 0
        self._steps[which] = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start every sub-env at the layout's start: (observations int64 (N,), infos)."""
        super().reset(seed=seed)
        self._restart(slice(None))
        self._needs_reset[:] = False
        return self._positions.copy(), {}

    def step(self, actions):
        """Step every sub-env: (observations (N,), rewards (N,), terminations, truncations, infos)."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise LeverError(f"actions must be integers of shape ({self.num_envs},), got {actions.dtype} "
                             f"{actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= N_ACTIONS):
            raise LeverError(f"actions must be in 0..{N_ACTIONS - 1}")
        resetting = self._needs_reset.copy()
        step_batch(self.layout.world, self._positions, actions.astype(np.int64, copy=False), self._gold_taken,
                   self._lever_on, self._masks, self._coefs, self._rewards, self._set_rewards, self._terminated)
        self._steps += 1
        truncated = ~self._terminated & (self._steps >= self.max_steps)
        if resetting.any():
            self._restart(resetting)
            self._rewards[resetting] = 0.0
            self._set_rewards[resetting] = 0.0
            self._terminated[resetting] = False
            truncated[resetting] = False
        self._needs_reset = self._terminated | truncated
        infos = {"reward_vector": self._set_rewards[:, SINGLETONS]}
        return (self._positions.copy(), self._rewards.copy(), self._terminated.copy(), truncated, infos)
