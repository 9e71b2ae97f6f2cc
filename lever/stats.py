"""Honest statistics over seeds: bootstrap intervals, geometric means, safe ratios.

The study reports plain means over 5 seeds. lever reports each mean with a
percentile-bootstrap interval, and refuses to show an interval when there
are fewer than :data:`MIN_N_FOR_INTERVAL` values, where a bootstrap says more
about the resampling than about the data.

All resampling uses ``numpy.random.default_rng(seed)`` and is vectorised, so
the same values and seed give the same interval, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LeverError

#: Fewest values for which an interval is shown; below it ``low``/``high`` are NaN.
MIN_N_FOR_INTERVAL = 5

#: Resampled means computed per vectorised batch (bounds memory to ~this × n floats).
_BATCH = 2_000


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval over ``n`` values.

    ``mean`` is the point estimate (in the unit of the values); ``low`` and
    ``high`` bound the interval, both NaN when ``n`` < :data:`MIN_N_FOR_INTERVAL`.
    ``str()`` gives ``"12.3 [8.1, 15.0] (n=5)"`` or, with the interval
    hidden, ``"12.3 (n=2, no interval below n=5)"``.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        """Whether ``low`` and ``high`` are defined (n large enough, not NaN)."""
        return not (math.isnan(self.low) or math.isnan(self.high))

    def __str__(self) -> str:
        if self.has_interval:
            return f"{self.mean:.1f} [{self.low:.1f}, {self.high:.1f}] (n={self.n})"
        return f"{self.mean:.1f} (n={self.n}, no interval below n={MIN_N_FOR_INTERVAL})"


def _finite_vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` as a non-empty finite 1-D float64 array; LeverError naming ``name``."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise LeverError(f"{name} must be a sequence of numbers") from None
    if array.ndim != 1:
        raise LeverError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise LeverError(f"{name} must not be empty")
    if not np.isfinite(array).all():
        raise LeverError(f"{name} must be finite (no NaN or inf); drop undefined values first")
    return array


def _check_options(confidence: float, n_resamples: int, seed: int) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.number)) \
            or not 0.0 < confidence < 1.0:
        raise LeverError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) \
            or n_resamples < 1:
        raise LeverError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise LeverError(f"seed must be an integer, got {seed!r}")


def _bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``; shape (n_resamples,)."""
    rng = np.random.default_rng(seed)
    n = values.size
    means = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, _BATCH):
        stop = min(start + _BATCH, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _interval(values: np.ndarray, confidence: float, n_resamples: int, seed: int) -> Interval:
    """Percentile-bootstrap interval of the mean of an already validated vector."""
    mean = float(values.mean())
    n = int(values.size)
    if n < MIN_N_FOR_INTERVAL:
        return Interval(mean, math.nan, math.nan, n)
    means = _bootstrap_means(values, int(n_resamples), int(seed))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(mean, float(low), float(high), n)


def bootstrap_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                 n_resamples: int = 10_000, seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of the mean of ``values`` (shape (n,), finite).

    Draws ``n_resamples`` resamples of size n with replacement using
    ``numpy.random.default_rng(seed)``, and takes the ``(1 - confidence) / 2``
    and ``(1 + confidence) / 2`` quantiles of their means. Deterministic in
    ``seed``. With n < :data:`MIN_N_FOR_INTERVAL` only the mean is returned
    (``low``/``high`` NaN). The interval is in the unit of the values.
    """
    _check_options(confidence, n_resamples, seed)
    return _interval(_finite_vector("values", values), confidence, n_resamples, seed)


def paired_difference_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                         confidence: float = 0.95, n_resamples: int = 10_000,
                         seed: int = 0) -> Interval:
    """Bootstrap interval of mean(a - b) over paired values (shape (n,) each).

    ``a[i]`` and ``b[i]`` must come from the same seed (or other pairing
    unit); pairs are resampled together, so the interval reflects the spread
    of the per-seed differences, not of each side alone.
    """
    _check_options(confidence, n_resamples, seed)
    left = _finite_vector("a", a)
    right = _finite_vector("b", b)
    if left.shape != right.shape:
        raise LeverError(f"b must pair with a: shape {right.shape} differs from {left.shape}")
    return _interval(left - right, confidence, n_resamples, seed)


def _positive_vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = _finite_vector(name, values)
    if (array <= 0).any():
        raise LeverError(f"{name} must all be > 0 for a geometric mean, "
                         f"got minimum {array.min()!r}")
    return array


def geometric_mean(values: Sequence[float] | np.ndarray) -> float:
    """Geometric mean exp(mean(log v)) of ``values`` (shape (n,), all finite and > 0).

    The right average for ratios such as speedups. Raises :class:`LeverError`
    on an empty input or any value <= 0.
    """
    return float(np.exp(np.log(_positive_vector("values", values)).mean()))


def geometric_mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
                      n_resamples: int = 10_000, seed: int = 0) -> Interval:
    """Bootstrap interval of the geometric mean of ``values`` (shape (n,), all > 0).

    Resamples the mean of log(values) as :func:`bootstrap_ci` does and maps the
    mean and both bounds back with exp, so the interval is asymmetric around
    the geometric mean and never crosses zero.
    """
    _check_options(confidence, n_resamples, seed)
    logs = _interval(np.log(_positive_vector("values", values)), confidence, n_resamples, seed)
    return Interval(math.exp(logs.mean), math.exp(logs.low), math.exp(logs.high), logs.n)


def safe_ratio(numerator: float | np.ndarray, denominator: float | np.ndarray
               ) -> float | np.ndarray:
    """``numerator / denominator``, NaN wherever the denominator is <= 0 (or NaN).

    Ratios only mean something over a strictly positive denominator. Times
    are positive, so a speedup (scratch time / strategy time) is safe; returns
    are not: in this GridWorld a return can be negative (a hazard costs -100)
    or zero, and a "ratio of returns" then flips sign or explodes, turning a
    worse policy into an apparently better one. Rather than report such a
    number, this gives NaN, which the caller must count and report apart.
    Accepts scalars or broadcastable arrays; returns a float for scalar input.
    """
    try:
        num = np.asarray(numerator, dtype=np.float64)
        den = np.asarray(denominator, dtype=np.float64)
    except (TypeError, ValueError):
        raise LeverError("numerator and denominator must be numbers or numeric arrays") from None
    try:
        num, den = np.broadcast_arrays(num, den)
    except ValueError:
        raise LeverError(f"denominator shape {den.shape} does not broadcast "
                         f"with numerator shape {num.shape}") from None
    valid = den > 0  # False for NaN as well
    out = np.full(num.shape, np.nan)
    with np.errstate(over="ignore"):  # a ratio beyond float64 is inf, as IEEE division gives it
        np.divide(num, den, out=out, where=valid)
    if out.ndim == 0:
        return float(out)
    return out
