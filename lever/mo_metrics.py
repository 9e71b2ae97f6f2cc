"""Multi-objective quality measures: Pareto filtering, utilities, expected utility, hypervolume.

Every measure takes value vectors in the reward's own units, one row per
policy (or per weight's served policy), and treats every component as one to
maximise, as MO-Gymnasium's tasks do. The definitions are the field's
(Zintgraf et al. 2015 for the utility measures; morl-baselines'
``common/performance_indicators.py``):

- ``utilities(vectors, weights)``: the linear utility ``w_i · v_i`` that weight
  ``i`` gets from the vector ``v_i`` served for it;
- ``expected_utility(front, weights)`` (EUM): the mean over weights of the best
  utility any point of ``front`` offers that weight;
- ``max_utility_loss(front, reference, weights)`` (MUL): the largest shortfall of
  ``front``'s best utility against ``reference``'s, over the weights;
- ``hypervolume(front, ref)``: the volume dominated by ``front`` and dominating
  ``ref``. Exact: a sweep in two dimensions, and the WFG algorithm (While,
  Bradstreet and Barone 2012) above, which is quick for the fronts of tabular
  tasks (tens of points, d ≤ 6).

These run a few times per evaluated front, on at most a few hundred points,
so they are plain NumPy; the tests check them against brute-force references.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import LeverError


def _matrix(name: str, values, dim: int | None = None) -> np.ndarray:
    """``values`` as a finite float64 array of shape (n, d), n ≥ 1; LeverError naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise LeverError(f"{name} must be an array of numbers") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise LeverError(f"{name} must have shape (n, d) with n, d >= 1, got {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise LeverError(f"{name} must have {dim} components per row, got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise LeverError(f"{name} must be finite (no NaN or inf)")
    return array


def _weights(weights, dim: int) -> np.ndarray:
    array = _matrix("weights", weights, dim)
    if (array < 0).any():
        raise LeverError("weights must be non-negative")
    return array


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The non-dominated rows of ``points`` (shape (n, d)), duplicates dropped; shape (m, d).

    A row is dominated when another is ≥ in every component and > in one.
    The rows come back sorted lexicographically, largest first component first.
    """
    array = np.unique(_matrix("points", points), axis=0)[::-1]
    keep = np.ones(len(array), dtype=bool)
    for i, point in enumerate(array):
        others = array[keep]
        if (np.all(others >= point, axis=1) & np.any(others > point, axis=1)).any():
            keep[i] = False
    return array[keep].copy()


def utilities(vectors, weights) -> np.ndarray:
    """Per-weight linear utility ``weights[i] · vectors[i]``; vectors and weights (n, d), out (n,)."""
    values = _matrix("vectors", vectors)
    w = _weights(weights, values.shape[1])
    if len(w) != len(values):
        raise LeverError(f"weights must pair with vectors: {len(w)} rows against {len(values)}")
    return np.einsum("nd,nd->n", values, w)


def best_utilities(front, weights) -> np.ndarray:
    """For each weight (rows of ``weights``, (n, d)), the best utility over ``front`` (m, d); out (n,)."""
    points = _matrix("front", front)
    w = _weights(weights, points.shape[1])
    return (w @ points.T).max(axis=1)


def expected_utility(front, weights) -> float:
    """EUM: mean over ``weights`` (n, d) of the best utility any point of ``front`` (m, d) offers."""
    return float(best_utilities(front, weights).mean())


def max_utility_loss(front, reference, weights) -> float:
    """MUL: the largest ``best utility(reference) - best utility(front)`` over ``weights`` (n, d)."""
    return float((best_utilities(reference, weights) - best_utilities(front, weights)).max())


def _hv2(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of points that all dominate ``ref`` strictly."""
    order = np.lexsort((-points[:, 1], -points[:, 0]))
    volume, top = 0.0, ref[1]
    for x, y in points[order]:
        if y > top:
            volume += (x - ref[0]) * (y - top)
            top = y
    return float(volume)


def _non_dominated(points: np.ndarray) -> np.ndarray:
    """The rows of ``points`` (m, d) that no other row weakly dominates, the first of equal rows kept."""
    if len(points) < 2:
        return points
    geq = np.all(points[:, None, :] >= points[None, :, :], axis=2)  # geq[i, j]: i >= j everywhere
    strictly = geq & ~geq.T
    equal = geq & geq.T
    earlier_equal = np.tril(equal, -1).any(axis=1)
    return points[~(strictly.any(axis=0) | earlier_equal)]


def _wfg(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of mutually non-dominated ``points`` (WFG's exclusive-volume recursion)."""
    if len(points) == 1:
        return float(np.prod(points[0] - ref))
    if len(points) == 2:  # inclusion-exclusion
        return float(np.prod(points[0] - ref) + np.prod(points[1] - ref)
                     - np.prod(np.minimum(points[0], points[1]) - ref))
    if points.shape[1] == 2:
        return _hv2(points, ref)
    points = points[np.argsort(-points[:, 0], kind="stable")]
    volume = 0.0
    for i in range(len(points)):
        volume += float(np.prod(points[i] - ref))
        if i + 1 < len(points):
            limited = _non_dominated(np.minimum(points[i + 1:], points[i]))
            limited = limited[np.all(limited > ref, axis=1)]
            if len(limited):
                volume -= _wfg(limited, ref)
    return volume


def hypervolume(front, ref: Sequence[float] | np.ndarray) -> float:
    """Volume dominated by ``front`` (m, d) and dominating the reference point ``ref`` (d,).

    Points that do not dominate ``ref`` strictly in every component add
    nothing (as in pymoo, which morl-baselines uses). Exact in any dimension;
    the unit is the product of the components' units.
    """
    points = _matrix("front", front)
    reference = _matrix("ref", np.atleast_2d(np.asarray(ref, dtype=np.float64)), points.shape[1])
    if len(reference) != 1:
        raise LeverError(f"ref must be one point of {points.shape[1]} components")
    reference = reference[0]
    points = points[np.all(points > reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(points.max() - reference[0])
    return _wfg(_non_dominated(points), reference)
