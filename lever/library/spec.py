"""What a library build trains: :class:`BuildSpec`, stored in the library's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..embeddings import EmbeddingConfig
from ..errors import LeverError, check_choice
from ..worlds.grid import PRESETS
from ..worlds.objectives import COMPONENTS, Objective, check_rules
from ..training import ALGORITHMS, STUDY_BUDGETS, TrainConfig

#: dtypes a library may store its Q tables in; the first is the default.
Q_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class BuildSpec:
    """What a library build trains: every objective × budget × layout seed of one grid setting.

    ``episodes`` overrides the budget's episode count (quick builds, tests);
    the budget's ε decay is kept. ``rules`` is the rule set the policies are
    trained under (the study's by default); the support logs every
    component set's reward, so offline evaluation may relabel for either.

    A library of a :class:`~lever.worlds.tabular.TabularWorld` has
    ``components``, the world's component names (its objectives are weight
    vectors over them), ``setting`` the world's name, ``layout_seeds`` (0,),
    and ``env``/``env_kwargs`` the env it was read from, for information
    (None when built from a world). Its budgets give the episodes
    (X1/X5/X10: 10k/50k/100k, or ``episodes``) and ε decays to its floor
    at the end of them.
    """

    setting: str = "grid16"
    layout_seeds: tuple[int, ...] = (0,)
    budgets: tuple[str, ...] = ("X1",)
    objectives: tuple[Objective, ...] = tuple(Objective.parse(c) for c in COMPONENTS)
    algorithm: str = "sarsa"
    gamma: float = 0.0
    train_seed: int = 0
    episodes: int | None = None
    q_dtype: str = Q_DTYPES[0]
    embedding: EmbeddingConfig = EmbeddingConfig()
    rules: str = "study"
    components: tuple[str, ...] | None = None
    env: str | None = None
    env_kwargs: dict | None = None

    def __post_init__(self):
        if self.components is None:
            check_choice("grid setting", self.setting, PRESETS)
            if self.env is not None or self.env_kwargs is not None:
                raise LeverError("env and env_kwargs belong to a library of a tabular world (components)")
        else:
            object.__setattr__(self, "components", tuple(str(c) for c in self.components))
            if not isinstance(self.setting, str) or not self.setting:
                raise LeverError(f"a tabular world's library needs its name as setting, got {self.setting!r}")
            if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
                raise LeverError(f"env_kwargs must be a dict, got {type(self.env_kwargs).__name__}")
        object.__setattr__(self, "layout_seeds", tuple(int(s) for s in self.layout_seeds))
        object.__setattr__(self, "budgets", tuple(str(b) for b in self.budgets))
        object.__setattr__(self, "objectives", tuple(Objective.parse(o, self.components) for o in self.objectives))
        for name in ("layout_seeds", "budgets", "objectives"):
            values = getattr(self, name)
            if not values:
                raise LeverError(f"a library build needs at least one of {name}")
            if len(set(values)) != len(values):
                raise LeverError(f"{name} repeat an entry: {[str(v) for v in values]}")
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_rules(self.rules)
        for objective in self.objectives:
            objective.set_weights(self.rules)  # a weighted objective under the study's rules is refused here
        if self.q_dtype not in Q_DTYPES:
            raise LeverError(f"q_dtype must be one of {', '.join(Q_DTYPES)}, got {self.q_dtype!r}")
        for budget in self.budgets:
            self.train_config(budget)  # validates budget, gamma and episodes before any work

    def train_config(self, budget: str) -> TrainConfig:
        """The training configuration of this build at ``budget``."""
        overrides = {"algorithm": self.algorithm, "gamma": float(self.gamma), "seed": self.train_seed,
                     "vector_q": True, "rules": self.rules, "snapshot_interval": 0}
        if self.episodes is not None:
            overrides["episodes"] = int(self.episodes)
        if self.components is not None:
            if budget not in STUDY_BUDGETS:
                raise LeverError(f"unknown budget {budget!r}; valid: {', '.join(STUDY_BUDGETS)}")
            episodes = overrides.pop("episodes", STUDY_BUDGETS[budget][0])
            if not isinstance(episodes, int) or episodes < 1:
                raise LeverError(f"episodes must be an integer >= 1, got {episodes!r}")
            # ε reaches its floor at the end of the episodes, as the study's decays do at the end of its budgets
            return TrainConfig(episodes=episodes, epsilon_decay=TrainConfig.epsilon_min ** (1 / episodes),
                               **overrides)
        return TrainConfig.from_budget(budget, self.setting, **overrides)

    @property
    def policies_per_layout(self) -> int:
        """Policies trained per layout: budgets × objectives."""
        return len(self.budgets) * len(self.objectives)

    def task(self, policy_id: int) -> tuple[int, str, Objective, int]:
        """(layout seed, budget, objective, row) of a policy id.

        Ids run seed-major, then budget, then objective.
        """
        layout_index, row = divmod(policy_id, self.policies_per_layout)
        budget_index, objective_index = divmod(row, len(self.objectives))
        return (self.layout_seeds[layout_index], self.budgets[budget_index],
                self.objectives[objective_index], row)

    @property
    def n_policies(self) -> int:
        """Policies in the whole build: layout seeds × policies per layout."""
        return len(self.layout_seeds) * self.policies_per_layout

    def to_json(self) -> dict:
        """This spec as a JSON-ready dict (a tabular world's library adds components, env, env_kwargs)."""
        doc = {"setting": self.setting, "layout_seeds": list(self.layout_seeds),
               "budgets": list(self.budgets), "objectives": [list(o.weights) for o in self.objectives],
               "algorithm": self.algorithm, "gamma": self.gamma, "train_seed": self.train_seed,
               "episodes": self.episodes, "q_dtype": self.q_dtype, "embedding": asdict(self.embedding),
               "rules": self.rules}
        if self.components is not None:
            doc.update(components=list(self.components), env=self.env, env_kwargs=self.env_kwargs)
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> "BuildSpec":
        """A spec from a dict written by :meth:`to_json`."""
        components = tuple(doc["components"]) if doc.get("components") is not None else None
        return cls(**{**doc, "layout_seeds": tuple(doc["layout_seeds"]), "budgets": tuple(doc["budgets"]),
                      "objectives": tuple(Objective.parse(w, components) for w in doc["objectives"]),
                      "embedding": EmbeddingConfig(**doc["embedding"]), "components": components})

    @property
    def tabular(self) -> bool:
        """Whether this is the library of a tabular world (else of GridWorld layouts)."""
        return self.components is not None
