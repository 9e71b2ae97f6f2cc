"""Tabular training (SARSA, Q-learning) of one objective on one layout, logging the support.

The defaults are the study's: SARSA, α = 0.1, γ = 0 (the support-limited
regime: Q(s, a) tracks the immediate reward of visited pairs), ε-greedy from
1.0 multiplied by the budget's decay after each episode down to 0.01, Q
initialised to zero, H·W steps per episode at most, greedy ties to the
lowest action, and a snapshot of the tables every 1,000 episodes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import FileFormatError, LeverError
from .fileio import read_arrays, write_arrays
from .worlds.grid import PRESETS, Layout, setting_rules
from .worlds.tabular import TabularWorld
from .kernels.constants import N_ACTIONS, N_COMPONENTS, N_SETS
from .kernels.rollout import greedy_policy
from .kernels.table import train_table
from .kernels.training import train_tabular
from .kernels.world import N_TERMS
from .worlds.objectives import Objective, ObjectiveLike, check_rules, objective_terms
from .policy_checks import check_trained_arrays
from .resources import check_memory

ALGORITHMS = ("sarsa", "q_learning")

#: The study's budgets: name → (episodes, ε decay per episode). Every spec set
#: uses these, except the first public release's grid16-dense (below).
STUDY_BUDGETS = {"X1": (10_000, 0.99954), "X5": (50_000, 0.99991), "X10": (100_000, 0.99995)}
#: grid16-dense ran 30k/150k/300k episodes; its decays are lever's choice, set
#: (like the study's own) so that ε reaches its 0.01 floor at the end of the budget.
DENSE_BUDGETS = {"X1": (30_000, 0.99985), "X5": (150_000, 0.99997), "X10": (300_000, 0.999985)}
#: The first public release's own budgets (its config.py): episodes and ε decay, which end at
#: ε 0.223 / 0.0111 / 0.0498, never at the floor.
FIRST_RELEASE_BUDGETS = {"X1": (30_000, 0.99995), "X5": (150_000, 0.99997), "X10": (300_000, 0.99999)}
#: The first public release trains with γ = 0.99 (its module constant GAMMA).
FIRST_RELEASE_GAMMA = 0.99
#: Episode budgets and ε decay by spec set and budget name.
BUDGETS = {setting: (FIRST_RELEASE_BUDGETS if setting_rules(setting) == "first-release" else
                     DENSE_BUDGETS if setting == "grid16-dense" else STUDY_BUDGETS) for setting in PRESETS}

#: Episodes between snapshots of the tables, as in the study.
SNAPSHOT_INTERVAL = 1000


def _is_integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _is_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the study's by default, see the module docstring).

    ``max_steps`` defaults to the layout's H·W; ``vector_q`` also learns one
    Q per single component; ``rules`` is ``"study"`` or ``"linear"``;
    ``snapshot_interval`` 0 keeps no snapshots. ``fresh_action`` trains
    with the first public release's loop: a fresh ε-greedy action every step
    (not the a′ drawn for the previous update), the update
    Q ← (1−α)Q + α(r + γQ[s′, a′]) and no masking at termination; GridWorld
    layouts only.
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
    rules: str = "study"
    snapshot_interval: int = SNAPSHOT_INTERVAL
    fresh_action: bool = False

    def __post_init__(self):
        integers = ("episodes", "seed", "snapshot_interval") + (("max_steps",) if self.max_steps is not None else ())
        for name in integers:
            if not _is_integer(getattr(self, name)):
                raise LeverError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("alpha", "gamma", "epsilon_start", "epsilon_decay", "epsilon_min"):
            if not _is_number(getattr(self, name)):
                raise LeverError(f"{name} must be a number, got {getattr(self, name)!r}")
        for name in ("vector_q", "fresh_action"):
            if not isinstance(getattr(self, name), bool):
                raise LeverError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_rules(self.rules)
        if not 0 <= self.seed < 2**32:
            raise LeverError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.algorithm not in ALGORITHMS:
            raise LeverError(f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        if not 1 <= self.episodes <= 10**9:
            raise LeverError(f"episodes must be in 1..10**9, got {self.episodes}")
        if not 0 < self.alpha <= 1:
            raise LeverError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 <= self.gamma <= 1:
            raise LeverError(f"gamma must be in [0, 1], got {self.gamma}")
        for name in ("epsilon_start", "epsilon_decay", "epsilon_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise LeverError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise LeverError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.snapshot_interval < 0:
            raise LeverError(f"snapshot_interval must be >= 0, got {self.snapshot_interval}")

    @classmethod
    def from_budget(cls, budget: str = "X1", setting: str = "grid16", **overrides) -> "TrainConfig":
        """The study's budget ``X1``/``X5``/``X10`` for a spec set ``setting``, plus overrides.

        The first release's sets also train as it does: its rules, γ = 0.99 and its loop
        (``fresh_action``).
        """
        if setting not in BUDGETS:
            raise LeverError(f"unknown setting {setting!r}; valid: {', '.join(BUDGETS)}")
        if budget not in BUDGETS[setting]:
            raise LeverError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS[setting])}")
        episodes, decay = BUDGETS[setting][budget]
        defaults = {"episodes": episodes, "epsilon_decay": decay}
        if setting_rules(setting) == "first-release":
            defaults.update(rules="first-release", gamma=FIRST_RELEASE_GAMMA, fresh_action=True)
        return cls(**{**defaults, **overrides})

    def with_seed(self, seed: int) -> "TrainConfig":
        """A copy of this config with training seed ``seed``."""
        return replace(self, seed=seed)

    @property
    def snapshot_episodes(self) -> np.ndarray:
        """The 0-based episodes after which a snapshot is kept, int64 (N,): 0, interval, 2·interval, …"""
        if self.snapshot_interval == 0:
            return np.zeros(0, dtype=np.int64)
        return np.arange(0, self.episodes, self.snapshot_interval, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class TrainedPolicy:
    """A trained tabular policy, the support it logged and its snapshots.

    Arrays (S states, A = 4 actions, C = 4 components, N_SETS = 16 component
    sets, N snapshots): ``q`` (S, A); ``visits`` int64 (S, A);
    ``first_visit`` int32 (S, A), the episode of the first visit, -1 if
    none; ``next_state`` int32 (S, A), -1 where never visited;
    ``reward_model`` (S, A, N_SETS), every set's reward on the first visit
    (so any objective's reward can be relabelled offline); ``q_vector``
    (S, A, C) or None; ``episode_returns`` (E,); ``snapshot_episodes`` int64
    (N,), ``snapshot_q`` (N, S, A), ``snapshot_visits`` int64 (N, S, A).
    ``wall_time`` is the kernel's wall-clock seconds. ``term_model``
    float64 (S, A, N_TERMS): the step's terms on the first visit (what the
    rules read, see :mod:`lever.kernels.world`), so a step can be relabelled
    in the other lever phase; None for a policy saved before they were
    logged.
    """

    q: np.ndarray
    visits: np.ndarray
    first_visit: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray
    q_vector: np.ndarray | None
    episode_returns: np.ndarray
    snapshot_episodes: np.ndarray
    snapshot_q: np.ndarray
    snapshot_visits: np.ndarray
    wall_time: float
    objective: Objective
    config: TrainConfig
    layout_id: str
    term_model: np.ndarray | None = None

    @property
    def greedy_actions(self) -> np.ndarray:
        """Greedy action per state, int32 (S,), lowest action index on ties."""
        return greedy_policy(self.q)

    @property
    def support(self) -> np.ndarray:
        """bool (S, A): the (state, action) pairs training visited."""
        return self.visits > 0

    def save(self, path) -> Path:
        """Write the policy (every array, its objective, config and layout id) to ``path`` (``.npz``,
        atomic, versioned); returns the path."""
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        write_arrays(path, POLICY_FORMAT, POLICY_VERSION, arrays,
                     {"objective": self.objective.to_json(), "config": asdict(self.config),
                      "layout_id": self.layout_id, "wall_time": self.wall_time})
        return Path(path)

    @classmethod
    def load(cls, path) -> "TrainedPolicy":
        """Read a policy written by :meth:`save`; FileFormatError naming the file otherwise."""
        arrays, meta = read_arrays(path, POLICY_FORMAT, POLICY_VERSION)
        try:
            policy = cls(**{name: arrays.get(name) for name in _ARRAYS}, wall_time=float(meta["wall_time"]),
                         objective=Objective.from_json(meta["objective"]), config=TrainConfig(**meta["config"]),
                         layout_id=meta["layout_id"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # LeverError is a ValueError
            raise FileFormatError(f"{path}: malformed trained policy ({exc})") from None
        if any(getattr(policy, name) is None for name in _ARRAYS if name not in _OPTIONAL):
            raise FileFormatError(f"{path}: malformed trained policy (missing arrays)")
        check_trained_arrays(policy, path)
        return policy

    def snapshot(self, i: int) -> "TrainedPolicy":
        """Snapshot ``i`` as a policy of its own: the tables and support after its episode.

        Equal, array for array, to a run of the same config stopped after
        that episode (without vector Q and snapshots).
        """
        if not -len(self.snapshot_episodes) <= i < len(self.snapshot_episodes):
            raise LeverError(f"snapshot {i} out of range: this policy has {len(self.snapshot_episodes)}")
        episode = int(self.snapshot_episodes[i])
        logged = (self.first_visit >= 0) & (self.first_visit <= episode)
        empty = np.zeros(0, dtype=np.int64)
        return replace(
            self, q=self.snapshot_q[i], visits=self.snapshot_visits[i],
            first_visit=np.where(logged, self.first_visit, -1).astype(np.int32),
            next_state=np.where(logged, self.next_state, -1).astype(np.int32),
            reward_model=np.where(logged[..., None], self.reward_model, 0.0), q_vector=None,
            term_model=None if self.term_model is None else np.where(logged[..., None], self.term_model, 0.0),
            episode_returns=self.episode_returns[:episode + 1], snapshot_episodes=empty,
            snapshot_q=self.snapshot_q[:0], snapshot_visits=self.snapshot_visits[:0],
            config=replace(self.config, episodes=episode + 1, snapshot_interval=0, vector_q=False))


#: The array fields of a :class:`TrainedPolicy`, as saved to file.
_ARRAYS = ("q", "visits", "first_visit", "next_state", "reward_model", "q_vector", "episode_returns",
           "snapshot_episodes", "snapshot_q", "snapshot_visits", "term_model")
#: Arrays a saved policy may lack (term_model: saved before the terms were logged).
_OPTIONAL = ("q_vector", "term_model")
POLICY_FORMAT = "lever-trained-policy"
POLICY_VERSION = 1


def train(layout: Layout | TabularWorld, objective: ObjectiveLike = "path",
          config: TrainConfig | None = None) -> TrainedPolicy:
    """Train a tabular policy for ``objective`` on a GridWorld ``layout`` or a :class:`TabularWorld`;
    deterministic in ``config.seed``.

    On a tabular world the objective is a weight vector over its d
    components (``[0.3, 0.7]``, ``"0.3,0.7"``), ``config.rules`` does not
    apply, episodes start at a uniformly drawn start state, and the logged
    ``reward_model`` and ``q_vector`` are (S, A, d).
    """
    config = config or TrainConfig()
    if isinstance(layout, TabularWorld):
        return _train_table(layout, objective, config)
    if not isinstance(layout, Layout):
        raise LeverError(f"layout must be a lever.Layout or a lever.TabularWorld, got {type(layout).__name__}")
    if not isinstance(config, TrainConfig):
        raise LeverError(f"config must be a lever.TrainConfig, got {type(config).__name__}")
    objective = Objective.parse(objective)
    masks, coefs = objective_terms(objective.set_weights(config.rules))
    out = _training_arrays(config, layout.n_states, N_ACTIONS, N_SETS, N_COMPONENTS, N_TERMS)
    rng = np.random.default_rng(config.seed)
    began = time.perf_counter()
    train_tabular(layout.world_for(config.rules), layout.start, masks, coefs, config.episodes,
                  config.max_steps or layout.max_steps, config.alpha, config.gamma,
                  config.epsilon_start, config.epsilon_decay, config.epsilon_min,
                  config.algorithm == "sarsa", rng, config.snapshot_interval,
                  out["q"], out["q_vector"], out["visits"], out["first_visit"], out["next_state"],
                  out["reward_model"], out["episode_returns"], out["snapshot_q"], out["snapshot_visits"],
                  out["term_model"], config.fresh_action)
    return _trained(out, time.perf_counter() - began, objective, config, layout.id)


def _train_table(world: TabularWorld, objective: ObjectiveLike, config: TrainConfig) -> TrainedPolicy:
    """:func:`train` on a tabular world: the table kernel, features = the world's d components."""
    if not isinstance(config, TrainConfig):
        raise LeverError(f"config must be a lever.TrainConfig, got {type(config).__name__}")
    if config.fresh_action:
        raise LeverError("fresh_action (the first release's training loop) applies to GridWorld layouts only")
    objective = Objective.parse(objective, world.component_names)
    out = _training_arrays(config, world.n_states, world.n_actions, world.n_components, world.n_components)
    rng = np.random.default_rng(config.seed)
    began = time.perf_counter()
    train_table(world.table, world.starts, objective.array, config.episodes, config.max_steps or world.max_steps,
                config.alpha, config.gamma, config.epsilon_start, config.epsilon_decay, config.epsilon_min,
                config.algorithm == "sarsa", rng, config.snapshot_interval, out["q"], out["q_vector"],
                out["visits"], out["first_visit"], out["next_state"], out["reward_model"], out["episode_returns"],
                out["snapshot_q"], out["snapshot_visits"])
    return _trained(out, time.perf_counter() - began, objective, config, world.id)


def _training_arrays(config: TrainConfig, n_states: int, n_actions: int, n_features: int, n_components: int,
                     n_terms: int = 0) -> dict[str, np.ndarray | None]:
    """The zeroed outputs one training kernel call fills in place, after a check that they fit in memory.

    (S, A) = (n_states, n_actions); F reward features (the GridWorld's 16
    component sets, a tabular world's d components); C components of the
    vector Q; T step terms logged on first visits (0: none, ``term_model``
    None). Names and shapes as the fields of :class:`TrainedPolicy`.
    """
    episodes = config.snapshot_episodes
    pair = (n_states, n_actions)
    check_memory(8 * config.episodes + n_states * n_actions * (8 * (n_features + n_terms + n_components) + 40
                                                               + 16 * episodes.size),
                 f"training {config.episodes:,} episodes with {episodes.size:,} snapshots on {n_states:,} states")
    return {"q": np.zeros(pair),
            "q_vector": np.zeros(pair + (n_components,) if config.vector_q else (0, 0, 0)),
            "visits": np.zeros(pair, dtype=np.int64),
            "first_visit": np.full(pair, -1, dtype=np.int32),
            "next_state": np.full(pair, -1, dtype=np.int32),
            "reward_model": np.zeros(pair + (n_features,)),
            "term_model": np.zeros(pair + (n_terms,)) if n_terms else None,
            "episode_returns": np.zeros(config.episodes),
            "snapshot_episodes": episodes,
            "snapshot_q": np.zeros((episodes.size,) + pair),
            "snapshot_visits": np.zeros((episodes.size,) + pair, dtype=np.int64)}


def _trained(out: dict, wall_time: float, objective: Objective, config: TrainConfig, world_id: str) -> TrainedPolicy:
    """The :class:`TrainedPolicy` of a kernel call's filled ``out`` (:func:`_training_arrays`)."""
    return TrainedPolicy(**{**out, "q_vector": out["q_vector"] if config.vector_q else None},
                         wall_time=wall_time, objective=objective, config=config, layout_id=world_id)
