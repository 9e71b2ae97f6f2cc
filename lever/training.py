"""Tabular training (SARSA, Q-learning) of one objective on one layout, logging the support."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .errors import LeverError
from .gridworld import Layout
from .kernels.constants import N_ACTIONS, N_COMPONENTS
from .kernels.rollout import greedy_policy
from .kernels.training import train_tabular
from .objectives import Objective, ObjectiveLike

ALGORITHMS = ("sarsa", "q_learning")

#: Episode budgets and per-episode ε decay of the study, by grid setting and name.
BUDGETS = {
    "grid8": {"X1": (10_000, 0.99954), "X5": (50_000, 0.99991), "X10": (100_000, 0.99995)},
    "grid16": {"X1": (10_000, 0.99954), "X5": (50_000, 0.99991), "X10": (100_000, 0.99995)},
    "grid16-dense": {"X1": (30_000, 0.99995), "X5": (150_000, 0.99997), "X10": (300_000, 0.99999)},
    "grid32": {"X1": (30_000, 0.99995), "X5": (150_000, 0.99997), "X10": (300_000, 0.99999)},
}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run.

    ``gamma = 0`` (the default) is the study's support-limited regime: each
    Q(s, a) is the shaped immediate reward. ``max_steps`` defaults to the
    layout's H·W. ``vector_q`` also learns one Q per reward component.
    """

    episodes: int = 10_000
    algorithm: str = "sarsa"
    alpha: float = 0.1
    gamma: float = 0.0
    epsilon_start: float = 1.0
    epsilon_decay: float = 0.99954
    epsilon_min: float = 0.01
    seed: int = 0
    max_steps: int | None = None
    vector_q: bool = False

    def __post_init__(self):
        for name in ("episodes", "seed") + (("max_steps",) if self.max_steps is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise LeverError(f"{name} must be an integer, got {value!r}")
        if not 0 <= self.seed < 2**32:
            raise LeverError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.algorithm not in ALGORITHMS:
            raise LeverError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if self.episodes < 1:
            raise LeverError(f"episodes must be >= 1, got {self.episodes}")
        if not 0 < self.alpha <= 1:
            raise LeverError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 <= self.gamma <= 1:
            raise LeverError(f"gamma must be in [0, 1], got {self.gamma}")
        for name in ("epsilon_start", "epsilon_decay", "epsilon_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise LeverError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LeverError(f"max_steps must be >= 1, got {self.max_steps}")

    @classmethod
    def from_budget(cls, budget: str = "X1", setting: str = "grid16", **overrides) -> "TrainConfig":
        """The study's budget ``X1``/``X5``/``X10`` for a grid ``setting``, plus overrides."""
        if setting not in BUDGETS:
            raise LeverError(f"unknown setting {setting!r}; valid: {', '.join(BUDGETS)}")
        if budget not in BUDGETS[setting]:
            raise LeverError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS[setting])}")
        episodes, decay = BUDGETS[setting][budget]
        return cls(**{"episodes": episodes, "epsilon_decay": decay, **overrides})

    def with_seed(self, seed: int) -> "TrainConfig":
        """A copy of this config with training seed ``seed``."""
        return replace(self, seed=seed)


@dataclass(frozen=True, eq=False)
class TrainedPolicy:
    """A trained tabular policy and the support it logged.

    Arrays (S = states, A = 4 actions, C = 4 components):
    ``q`` (S, A); ``visits`` int64 (S, A); ``next_state`` int32 (S, A), -1
    where never visited; ``reward_model`` (S, A, C), the reward vector seen on
    the first visit; ``q_vector`` (S, A, C) or None; ``episode_returns`` (E,).
    ``wall_time`` is the kernel's wall-clock seconds.
    """

    q: np.ndarray
    visits: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray
    q_vector: np.ndarray | None
    episode_returns: np.ndarray
    wall_time: float
    objective: Objective
    config: TrainConfig
    layout_id: str

    @property
    def greedy_actions(self) -> np.ndarray:
        """Greedy action per state, int32 (S,), lowest action index on ties."""
        return greedy_policy(self.q)

    @property
    def support(self) -> np.ndarray:
        """bool (S, A): the (state, action) pairs training visited."""
        return self.visits > 0


def train(layout: Layout, objective: ObjectiveLike = "path", config: TrainConfig | None = None) -> TrainedPolicy:
    """Train a tabular policy for ``objective`` on ``layout``; deterministic in ``config.seed``."""
    config = config or TrainConfig()
    objective = Objective.parse(objective)
    n_states = layout.n_states
    q = np.zeros((n_states, N_ACTIONS))
    shape_vec = (n_states, N_ACTIONS, N_COMPONENTS) if config.vector_q else (0, 0, 0)
    q_vector = np.zeros(shape_vec)
    visits = np.zeros((n_states, N_ACTIONS), dtype=np.int64)
    next_state = np.full((n_states, N_ACTIONS), -1, dtype=np.int32)
    reward_model = np.zeros((n_states, N_ACTIONS, N_COMPONENTS))
    returns = np.zeros(config.episodes)
    began = time.perf_counter()
    train_tabular(layout.world, layout.start, objective.array, config.episodes,
                  config.max_steps or layout.max_steps, config.alpha, config.gamma,
                  config.epsilon_start, config.epsilon_decay, config.epsilon_min,
                  config.algorithm == "sarsa", config.seed,
                  q, q_vector, visits, next_state, reward_model, returns)
    wall_time = time.perf_counter() - began
    return TrainedPolicy(q, visits, next_state, reward_model, q_vector if config.vector_q else None,
                         returns, wall_time, objective, config, layout.id)
