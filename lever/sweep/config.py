"""What a sweep crosses and how each cell is computed: :class:`SweepConfig` and its presets.

A config crosses grid settings, budgets, layout seeds and composite
objectives; each combination is a :class:`Cell`. Composites are written as
components joined by ``+`` or as group keywords (:data:`COMPOSITE_GROUPS`);
strategies as labels of :class:`lever.strategies.StrategySpec`
(``hybrid:3``). Under the study's rules (the default) every composite is a
set of components; weighted composites (``path+gold*0.5``) need lever's
linear rules (``rules="linear"``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, fields
from typing import Iterable

from ..compose import OPERATORS
from ..errors import LeverError, check_choice
from ..worlds.grid import PRESETS
from ..worlds.objectives import COMPONENTS, Objective, check_rules
from ..strategies import DEFAULT_LABELS, StrategySpec
from ..training import ALGORITHMS, BUDGETS, TrainConfig

#: Keywords accepted among the composites: every composite of that many components.
COMPOSITE_GROUPS = {"single": 1, "double": 2, "triple": 3, "full": 4}
#: The objectives each layout's library holds in the study: every component alone, the lever
#: with the hazard, and the growing composites of path; composites are queried against it.
STUDY_LIBRARY = ("path", "gold", "hazard", "lever", "hazard+lever", "path+gold", "path+gold+hazard",
                 "path+gold+hazard+lever")


def expand_composites(specs: Iterable[str], rules: str = "study") -> tuple[str, ...]:
    """Canonical composite names from names and group keywords (``single``, ``double``, ``triple``, ``full``).

    Order is kept and duplicates are dropped; an unknown component is a
    :class:`LeverError`, and so is a weighted composite (``path+gold*0.5``)
    unless ``rules`` is ``"linear"``: the study's rules reward sets of components only.
    """
    check_rules(rules)
    names: list[str] = []
    for spec in specs:
        spec = str(spec).strip()
        if spec in COMPOSITE_GROUPS:
            size = COMPOSITE_GROUPS[spec]
            names.extend("+".join(group) for group in itertools.combinations(COMPONENTS, size))
            continue
        try:
            objective = Objective.parse(spec)
        except LeverError as exc:
            raise LeverError(f"unknown composite {spec!r} ({exc}); use components joined by '+' "
                             f"or one of {', '.join(COMPOSITE_GROUPS)}") from None
        if rules == "study" and not objective.is_set:
            raise LeverError(f"composite {spec!r} is weighted; the study's rules reward sets of components "
                             f"only (components joined by '+'): weighted composites need rules=\"linear\"")
        names.append(objective.name)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Cell:
    """One point of the sweep's grid: a composite on one layout at one budget."""

    setting: str
    budget: str
    layout_seed: int
    composite: str

    @property
    def key(self) -> str:
        """File-name-safe unique name, e.g. ``grid16_X1_s3_path+gold`` (a weight's ``*`` is written ``x``:
        ``grid16_X1_s3_path+goldx0.5``)."""
        return f"{self.setting}_{self.budget}_s{self.layout_seed}_{self.composite.replace('*', 'x')}"

    @property
    def library_key(self) -> tuple[str, int, str]:
        """(setting, layout seed, budget) of the library this cell draws on."""
        return (self.setting, self.layout_seed, self.budget)


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep crosses and how each cell is computed.

    ``settings`` grid presets (grid8, grid16, grid16-dense, grid32);
    ``budgets`` X1/X5/X10; ``layout_seeds`` one layout each; ``composites``
    composite names (``"path+gold"``) or group keywords (``"double"`` = every
    pair, ``"triple"``, ``"full"``, ``"single"``), expanded on construction;
    ``strategies`` as in :class:`StrategySpec`; ``operator`` ``"sum"`` or
    ``"max"``; ``gamma`` for the library and the baseline alike (0 = the
    support-limited regime); ``rules`` the reward rules of the libraries, the
    baseline and the searches alike (``"study"``, or ``"linear"``, which
    weighted composites need); ``planning`` also runs every strategy with
    planning on the support; ``library_objectives`` what each library holds
    (default: the study's eight objectives, so a composite may itself be in
    the library, as in the study); ``train_seed`` seeds the library, ``scratch_seed`` the from-scratch run.
    ``episodes`` overrides the budget's episode count for the library and the
    baseline alike (for tests and quick looks; None = the study's budget).
    ``timing_repeats`` timed runs per strategy measurement (the median counts).
    """

    settings: tuple[str, ...] = ("grid16",)
    budgets: tuple[str, ...] = ("X1",)
    layout_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    composites: tuple[str, ...] = ("double", "triple", "full")
    strategies: tuple[str, ...] = DEFAULT_LABELS
    operator: str = "sum"
    gamma: float = 0.0
    planning: bool = False
    library_objectives: tuple[str, ...] = STUDY_LIBRARY
    algorithm: str = "sarsa"
    train_seed: int = 0
    scratch_seed: int = 1
    episodes: int | None = None
    timing_repeats: int = 3
    rules: str = "study"

    def __post_init__(self):
        for name in ("settings", "budgets", "layout_seeds", "composites", "strategies", "library_objectives"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        check_rules(self.rules)
        self._check_grid()
        self._check_objectives()
        if not self.strategies:
            raise LeverError("a sweep needs at least one strategy")
        labels = [StrategySpec.parse(s).label for s in self.strategies]
        object.__setattr__(self, "strategies", tuple(dict.fromkeys(labels)))
        check_choice("operator", self.operator, OPERATORS)
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        if not 0 <= self.gamma <= 1:
            raise LeverError(f"gamma must be in [0, 1], got {self.gamma}")
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "planning", bool(self.planning))
        if self.episodes is not None and (isinstance(self.episodes, bool) or not isinstance(self.episodes, int)
                                          or self.episodes < 1):
            raise LeverError(f"episodes must be a positive integer or None, got {self.episodes!r}")
        if self.timing_repeats < 1:
            raise LeverError(f"timing_repeats must be >= 1, got {self.timing_repeats}")

    def _check_grid(self) -> None:
        """Settings, budgets and layout seeds: known, non-empty, seeds without repeats."""
        if not self.settings:
            raise LeverError("a sweep needs at least one setting")
        for setting in self.settings:
            check_choice("setting", setting, PRESETS)
        if not self.budgets:
            raise LeverError("a sweep needs at least one budget")
        for setting, budget in itertools.product(self.settings, self.budgets):
            check_choice("budget", budget, BUDGETS[setting])
        if not self.layout_seeds:
            raise LeverError("a sweep needs at least one layout seed (the seed list is empty)")
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.layout_seeds):
            raise LeverError(f"layout seeds must be non-negative integers, got {self.layout_seeds}")
        object.__setattr__(self, "layout_seeds", tuple(dict.fromkeys(self.layout_seeds)))

    def _check_objectives(self) -> None:
        """Composites and library objectives in canonical form; the library covers every composite."""
        if not self.composites:
            raise LeverError("a sweep needs at least one composite")
        object.__setattr__(self, "composites", expand_composites(self.composites, self.rules))
        library = expand_composites(self.library_objectives, self.rules)
        object.__setattr__(self, "library_objectives", library)
        held = {c for name in library for c in Objective.parse(name).components}
        for composite in self.composites:
            missing = [c for c in Objective.parse(composite).components if c not in held]
            if missing:
                raise LeverError(f"composite {composite!r} needs component(s) {missing} that the library "
                                 f"objectives {list(library)} do not cover")

    @classmethod
    def preset(cls, name: str, **overrides) -> "SweepConfig":
        """A named sweep: ``demo``/``quick`` (grid8, seconds) or ``study16`` (the study's 16×16 setting)."""
        return cls(**{**SWEEP_PRESETS[check_choice('sweep preset', name, SWEEP_PRESETS)], **overrides})

    @property
    def strategy_specs(self) -> tuple[StrategySpec, ...]:
        """The strategies as parsed :class:`StrategySpec` objects."""
        return tuple(StrategySpec.parse(s) for s in self.strategies)

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (setting, budget, layout seed, composite)."""
        return [Cell(*combo) for combo in itertools.product(self.settings, self.budgets,
                                                             self.layout_seeds, self.composites)]

    def to_dict(self) -> dict:
        """This config as a plain dict (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "SweepConfig":
        """A config from a dict; LeverError for an unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise LeverError(f"unknown sweep config field(s) {sorted(unknown)}")
        return cls(**data)

    @property
    def hash(self) -> str:
        """12-hex digest of everything that decides the results."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def train_config(self, setting: str, budget: str, seed: int) -> TrainConfig:
        """The training configuration of the library and the baseline for one setting and budget."""
        overrides = {"algorithm": self.algorithm, "gamma": self.gamma, "seed": seed, "rules": self.rules}
        if self.episodes is not None:
            overrides["episodes"] = self.episodes
        return TrainConfig.from_budget(budget, setting, **overrides)


#: Built-in sweeps. ``quick`` finishes in well under a minute on two cores.
SWEEP_PRESETS: dict[str, dict] = {
    "quick": dict(settings=("grid8",), budgets=("X1",), layout_seeds=(0, 1),
                  composites=("path+gold", "path+hazard", "gold+lever", "path+gold+hazard",
                              "path+hazard+lever", "path+gold+hazard+lever"),
                  planning=True),
    "study16": dict(settings=("grid16",), budgets=("X1", "X5", "X10"), layout_seeds=(0, 1, 2, 3, 4),
                    composites=("single", "double", "triple"), planning=True),
}


