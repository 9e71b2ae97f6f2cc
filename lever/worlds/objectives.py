"""Objectives: weights over the reward components, and the two rule sets that give them a reward.

Under the study's rules (``rules="study"``, the default everywhere) an
objective is a *set* of components, ``"path+gold"``, and its reward is the
study's reward of that set, which is not the sum of its parts. Under
lever's linear rules (``rules="linear"``) the reward vector of a step is the
four single-component study rewards and an objective ``w`` earns ``w · r``.
Both are written as weights over the 16 component sets (:meth:`Objective.set_weights`),
which is how the kernels, the logged support and the embeddings see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

from ..errors import LeverError
from ..kernels.constants import COMPONENT_NAMES, N_COMPONENTS, N_SETS

#: Reward component names, in reward-vector order.
COMPONENTS: tuple[str, ...] = COMPONENT_NAMES

#: Entries of a set-return vector that hold the single components, in component order.
SINGLETONS = np.array([1 << c for c in range(N_COMPONENTS)])

#: The rule sets: the study's (objectives are sets of components) and lever's linear extension.
RULES = ("study", "linear")

#: Largest weight magnitude accepted: keeps every reward, Q value and return finite in float32.
MAX_WEIGHT = 1e6

ObjectiveLike = Union["Objective", str, Mapping[str, float], Sequence[float], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """Weights ``w`` (one per component); the composite reward is ``w · r``.

    Build one with :meth:`parse` from ``"path+gold"``, ``{"path": 1, "gold": 0.5}``,
    ``"1,0,0.5,0"`` or a length-4 array in :data:`COMPONENTS` order.
    ``names`` are the components the weights are over: the GridWorld's
    :data:`COMPONENTS` by default, or a tabular world's own
    ``component_names`` (``parse(spec, names=world.component_names)``).
    """

    weights: tuple[float, ...]
    names: tuple[str, ...] = COMPONENTS

    def __post_init__(self):
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise LeverError(f"objective component names must be distinct non-empty strings, got {names!r}")
        object.__setattr__(self, "names", names)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (len(names),):
            raise LeverError(f"objective needs {len(names)} weights ({', '.join(names)}), got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise LeverError(f"objective weights must be finite, got {tuple(w)}")
        if np.any(np.abs(w) > MAX_WEIGHT):
            raise LeverError(f"objective weights must lie in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}], got {tuple(w)}")
        if not np.any(w != 0):
            raise LeverError("objective needs at least one non-zero weight")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))

    @classmethod
    def parse(cls, spec: ObjectiveLike, names: Sequence[str] | None = None) -> "Objective":
        """Normalise any accepted spelling of an objective (see class docstring) over ``names``
        (default :data:`COMPONENTS`); an Objective over other names is a LeverError."""
        names = COMPONENTS if names is None else tuple(names)
        if isinstance(spec, Objective):
            if spec.names != names:
                raise LeverError(f"objective {spec.name!r} is over components ({', '.join(spec.names)}), "
                                 f"not ({', '.join(names)})")
            return spec
        if isinstance(spec, str) and ("," in spec or _is_number(spec)):
            # "0.3,0.7" (or "1" for one component): one weight per component, in order (the command line's).
            try:
                spec = [float(part) for part in spec.split(",")]
            except ValueError:
                raise LeverError(f"objective {spec!r} has a weight that is not a number") from None
        if isinstance(spec, str):
            # "path+gold*0.5": the spelling :attr:`name` produces, so names round-trip.
            terms = [part.strip().partition("*") for part in spec.split("+")]
            spelled = [name.strip() for name, _, _ in terms]
            if len(set(spelled)) != len(spelled):
                raise LeverError(f"objective {spec!r} names a component twice")
            try:
                weights = [float(weight) if star else 1.0 for _, star, weight in terms]
            except ValueError:
                raise LeverError(f"objective {spec!r} has a weight that is not a number") from None
            spec = dict(zip(spelled, weights))
        if isinstance(spec, Mapping):
            unknown = [name for name in spec if name not in names]
            if unknown or not spec:
                raise LeverError(f"unknown objective component(s) {unknown or [spec]!r}; "
                                 f"valid components: {', '.join(names)}")
            try:
                weights = tuple(float(spec.get(name, 0.0)) for name in names)
            except (TypeError, ValueError):
                raise LeverError(f"objective {dict(spec)!r} has a weight that is not a number") from None
            return cls(weights, names)
        try:
            weights = np.asarray(spec, dtype=np.float64)
        except (TypeError, ValueError):
            raise LeverError(f"cannot read an objective from {spec!r}") from None
        if weights.ndim != 1:
            raise LeverError(f"objective weights must be one-dimensional, got shape {weights.shape}")
        return cls(tuple(weights), names)

    def to_json(self):
        """A JSON-ready form: the weight list over :data:`COMPONENTS`, else {"weights", "names"}."""
        if self.names == COMPONENTS:
            return list(self.weights)
        return {"weights": list(self.weights), "names": list(self.names)}

    @classmethod
    def from_json(cls, doc) -> "Objective":
        """The objective of :meth:`to_json`'s form; LeverError for anything else."""
        if isinstance(doc, Mapping) and set(doc) == {"weights", "names"}:
            if not isinstance(doc["names"], (list, tuple)):
                raise LeverError(f"objective names must be a list, got {doc['names']!r}")
            return cls.parse(doc["weights"], tuple(doc["names"]))
        return cls.parse(doc)

    @property
    def on_grid(self) -> bool:
        """Whether the weights are over the GridWorld's :data:`COMPONENTS` (else a tabular world's)."""
        return self.names == COMPONENTS

    @property
    def array(self) -> np.ndarray:
        """The weights as a float64 array of shape (C,)."""
        return np.asarray(self.weights, dtype=np.float64)

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the components with a non-zero weight."""
        return tuple(name for name, w in zip(self.names, self.weights) if w != 0)

    @property
    def name(self) -> str:
        """``"path+gold"`` for unit weights, ``"path*0.5+gold"`` otherwise; :meth:`parse` reads it back exactly."""
        return "+".join(name if w == 1 else f"{name}*{_weight_text(w)}"
                        for name, w in zip(self.names, self.weights) if w != 0)

    @property
    def is_set(self) -> bool:
        """True when every weight is 0 or 1: the objective is a set of components."""
        return all(w in (0.0, 1.0) for w in self.weights)

    @property
    def mask(self) -> int:
        """The component set as a bit mask (bit c for component c with a non-zero weight)."""
        return sum(1 << c for c, w in enumerate(self.weights) if w != 0)

    def set_weights(self, rules: str = "study") -> np.ndarray:
        """The objective as weights over the component sets, float64 (N_SETS,), indexed by mask.

        Study rules: 1 at this objective's set (a weighted objective is a
        LeverError: the study's rules reward sets only). Linear rules: w_c at
        each single component's set. An objective over a tabular world's
        components has one rule, ``w · r``: its features are the components
        themselves, so this is the weights, float64 (C,), under either name.
        """
        check_rules(rules)
        if not self.on_grid:
            return self.array
        out = np.zeros(N_SETS)
        if rules == "study":
            if not self.is_set:
                raise LeverError(f"objective {self.name!r} is weighted; the study's rules reward a set of "
                                 f"components only (\"path+gold\"): use rules=\"linear\" for weights")
            out[self.mask] = 1.0
        else:
            for c, w in enumerate(self.weights):
                out[1 << c] = w
        return out

    def __str__(self) -> str:
        return self.name


def _weight_text(weight: float) -> str:
    # The shortest text that reads back as the same float; never an exponent with "+", which
    # would split the name (weights are bounded by MAX_WEIGHT, below repr's exponent range).
    text = repr(float(weight))
    return text[:-2] if text.endswith(".0") else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_rules(rules: str) -> str:
    """``rules`` if it names a rule set of :data:`RULES`, else a LeverError."""
    if not isinstance(rules, str) or rules not in RULES:
        raise LeverError(f"unknown rules {rules!r}; valid: {', '.join(RULES)}")
    return rules


def objective_terms(set_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero entries of set weights as (masks int64 (M,), coefs float64 (M,)) for the kernels."""
    masks = np.flatnonzero(set_weights).astype(np.int64)
    return masks, np.ascontiguousarray(set_weights[masks], dtype=np.float64)

