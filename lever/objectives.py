"""Composite objectives: a weight vector over the reward components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np

from .errors import LeverError
from .kernels.constants import COMPONENT_NAMES, N_COMPONENTS

#: Reward component names, in reward-vector order.
COMPONENTS: tuple[str, ...] = COMPONENT_NAMES

ObjectiveLike = Union["Objective", str, Mapping[str, float], Sequence[float], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """Weights ``w`` (one per component); the composite reward is ``w · r``.

    Build one with :meth:`parse` from ``"path+gold"``, ``{"path": 1, "gold": 0.5}``
    or a length-4 array in :data:`COMPONENTS` order.
    """

    weights: tuple[float, ...]

    def __post_init__(self):
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (N_COMPONENTS,):
            raise LeverError(f"objective needs {N_COMPONENTS} weights ({', '.join(COMPONENTS)}), got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise LeverError(f"objective weights must be finite, got {tuple(w)}")
        if not np.any(w != 0):
            raise LeverError("objective needs at least one non-zero weight")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))

    @classmethod
    def parse(cls, spec: ObjectiveLike) -> "Objective":
        """Normalise any accepted spelling of an objective (see class docstring)."""
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, str):
            # "path+gold*0.5": the spelling :attr:`name` produces, so names round-trip.
            terms = [part.strip().partition("*") for part in spec.split("+")]
            names = [name.strip() for name, _, _ in terms]
            if len(set(names)) != len(names):
                raise LeverError(f"objective {spec!r} names a component twice")
            try:
                weights = [float(weight) if star else 1.0 for _, star, weight in terms]
            except ValueError:
                raise LeverError(f"objective {spec!r} has a weight that is not a number") from None
            spec = dict(zip(names, weights))
        if isinstance(spec, Mapping):
            unknown = [name for name in spec if name not in COMPONENTS]
            if unknown or not spec:
                raise LeverError(f"unknown objective component(s) {unknown or [spec]!r}; "
                                 f"valid components: {', '.join(COMPONENTS)}")
            return cls(tuple(float(spec.get(name, 0.0)) for name in COMPONENTS))
        try:
            weights = np.asarray(spec, dtype=np.float64)
        except (TypeError, ValueError):
            raise LeverError(f"cannot read an objective from {spec!r}") from None
        if weights.ndim != 1:
            raise LeverError(f"objective weights must be one-dimensional, got shape {weights.shape}")
        return cls(tuple(weights))

    @property
    def array(self) -> np.ndarray:
        """The weights as a float64 array of shape (C,)."""
        return np.asarray(self.weights, dtype=np.float64)

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the components with a non-zero weight."""
        return tuple(name for name, w in zip(COMPONENTS, self.weights) if w != 0)

    @property
    def name(self) -> str:
        """``"path+gold"`` for unit weights, ``"path*0.5+gold"`` otherwise."""
        return "+".join(name if w == 1 else f"{name}*{w:g}"
                        for name, w in zip(COMPONENTS, self.weights) if w != 0)

    def __str__(self) -> str:
        return self.name

