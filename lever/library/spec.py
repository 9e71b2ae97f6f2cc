"""What a library build trains: :class:`BuildSpec`, stored in the library's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..embeddings import EmbeddingConfig
from ..errors import LeverError, check_choice
from ..gridworld import PRESETS
from ..objectives import COMPONENTS, Objective, check_rules
from ..training import ALGORITHMS, TrainConfig
from ..validation import check_int, check_int_sequence, check_real, check_str

#: dtypes a library may store its Q tables in; the first is the default.
Q_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class BuildSpec:
    """What a library build trains: every objective × budget × layout seed of one grid setting.

    ``episodes`` overrides the budget's episode count (quick builds, tests);
    the budget's ε decay is kept. ``rules`` is the rule set the policies are
    trained under (the study's by default); the support logs every
    component set's reward, so offline evaluation may relabel for either.
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

    def __post_init__(self):
        check_choice("grid setting", self.setting, PRESETS)
        object.__setattr__(self, "layout_seeds", check_int_sequence(self.layout_seeds, "layout_seeds", 0))
        object.__setattr__(self, "budgets", tuple(check_str(b, "budget") for b in self.budgets))
        object.__setattr__(self, "gamma", check_real(self.gamma, "gamma"))
        object.__setattr__(self, "train_seed", check_int(self.train_seed, "train_seed", 0))
        if self.episodes is not None:
            object.__setattr__(self, "episodes", check_int(self.episodes, "episodes", 1))
        object.__setattr__(self, "objectives", tuple(Objective.parse(o) for o in self.objectives))
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
        """This spec as a JSON-ready dict."""
        return {"setting": self.setting, "layout_seeds": list(self.layout_seeds),
                "budgets": list(self.budgets), "objectives": [list(o.weights) for o in self.objectives],
                "algorithm": self.algorithm, "gamma": self.gamma, "train_seed": self.train_seed,
                "episodes": self.episodes, "q_dtype": self.q_dtype, "embedding": asdict(self.embedding),
                "rules": self.rules}

    @classmethod
    def from_json(cls, doc: dict) -> "BuildSpec":
        """A spec from a dict written by :meth:`to_json`."""
        return cls(**{**doc, "layout_seeds": tuple(doc["layout_seeds"]), "budgets": tuple(doc["budgets"]),
                      "objectives": tuple(Objective.parse(w) for w in doc["objectives"]),
                      "embedding": EmbeddingConfig(**doc["embedding"])})
