"""Equally spaced weight vectors on the simplex, as the multi-objective RL field draws them.

The field evaluates a multi-objective method on ``equally_spaced_weights(d,
50, seed=42)``: morl-baselines takes them from pymoo's Riesz s-energy
reference directions. mo-gymnasium provides no such helper, and pymoo is not
one of lever's dependencies, so this module implements the same steps:

1. 10,000 points drawn uniformly on the simplex (Kraemer's sorted-uniforms
   mapping) from ``numpy.random.default_rng(seed)``, plus the edge points of
   the Das-Dennis lattice with the largest partition that gives at most ``n``
   points;
2. ``n`` of them chosen greedily by maximum distance, starting from those edges,
   then refined by k-means on the simplex (the edges held fixed);
3. at most 1,000 steps of Adam on the log Riesz s-energy (s = 2d), the gradient
   projected onto the simplex and the points projected back onto it, halving the
   step size after 30 steps without improvement;
4. the result sorted lexicographically.

Every array operation follows pymoo 0.6.2's order, so the vectors equal pymoo's
bit for bit (tests/data/energy_weights.json holds pymoo's output for the
dimensions the benchmarks use, and the tests compare with it).

The seed: morl-baselines calls ``get_reference_directions("energy", d, n,
seed=42)``, but pymoo 0.6.2's factory takes ``seed`` into ``**kwargs`` and
drops it, and ``do()`` then draws from ``default_rng(1)``, its default. So the
field's ``equally_spaced_weights(d, 50, seed=42)`` are, today, this module's
``equally_spaced_weights(d, 50, seed=1)``, and 1 is the default here.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .errors import LeverError

#: Points sampled on the simplex before the greedy selection (pymoo's default).
N_SAMPLE_POINTS = 10_000


def _check(dim: int, n: int, seed: int) -> None:
    for name, value, least in (("dim", dim, 1), ("n", n, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise LeverError(f"{name} must be an integer >= {least}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LeverError(f"seed must be a non-negative integer, got {seed!r}")
    if dim > 1 and n < dim:
        raise LeverError(f"n must be at least dim ({dim}) to hold the simplex's corners, got {n}")


def _distances(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Euclidean distances, shape (len(points), len(to)), summed coordinate by coordinate."""
    total = np.zeros((len(points), len(to)))
    for k in range(points.shape[1]):
        diff = points[:, None, k] - to[None, :, k]
        total += diff * diff
    return np.sqrt(total)


def _n_lattice_points(partitions: int, dim: int) -> int:
    return math.comb(dim + partitions - 1, partitions)


def _das_dennis(partitions: int, dim: int) -> np.ndarray:
    """The Das-Dennis lattice on the simplex with ``partitions`` steps; shape (P, dim)."""
    if partitions == 0:
        return np.full((1, dim), 1 / dim)
    rows: list[np.ndarray] = []

    def recurse(point: np.ndarray, beta: int, depth: int) -> None:
        if depth == dim - 1:
            point[depth] = beta / (1.0 * partitions)
            rows.append(point[None, :])
            return
        for i in range(beta + 1):
            point[depth] = 1.0 * i / (1.0 * partitions)
            recurse(np.copy(point), beta - i, depth + 1)

    recurse(np.full(dim, np.nan), partitions, 0)
    return np.concatenate(rows, axis=0)


def _project_on_plane(y: np.ndarray, p: np.ndarray, normal: np.ndarray) -> np.ndarray:
    is_1d = y.ndim == 1
    y = np.atleast_2d(y)
    normal = normal / np.linalg.norm(normal)
    projected = y - normal[None, :] * ((y - p) @ normal)[:, None]
    return projected[0] if is_1d else projected


def _project_on_simplex(points: np.ndarray) -> np.ndarray:
    """Clip each row with a negative coordinate back onto the simplex, in place; returns ``points``."""
    for j in np.where(np.any(points < 0, axis=1))[0]:
        while True:
            points[j, points[j] < 0] = 0
            inside = points[j] > 0
            size = int(inside.sum())
            points[j, inside] = _project_on_plane(points[j][inside], np.eye(size)[0], np.ones(size))
            if np.all(points[j] >= 0):
                break
    return points


def _initial_points(dim: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Step 1 and 2 of the module docstring: shape (n, dim)."""
    big = sys.maxsize
    sample = rng.random((N_SAMPLE_POINTS, dim)) * big
    sample = np.column_stack([np.zeros(N_SAMPLE_POINTS), sample[:, : dim - 1],
                              np.full(N_SAMPLE_POINTS, big)])
    sample = np.sort(sample, axis=1)
    uniform = np.full((N_SAMPLE_POINTS, dim), np.nan)
    for i in range(1, dim + 1):
        uniform[:, i - 1] = sample[:, i] - sample[:, i - 1]
    uniform /= big

    partitions = 1
    while _n_lattice_points(partitions, dim) <= n:
        partitions += 1
    edges = _das_dennis(partitions - 1, dim)
    edges = edges[np.any(edges == 0, axis=1)]
    points = np.vstack([edges, uniform])

    selected = list(range(len(edges)))
    not_selected = list(range(len(edges), len(points)))
    closest = _distances(points, points[selected]).min(axis=1)
    while len(selected) < n:
        at = int(closest[not_selected].argmax())
        chosen = not_selected[at]
        row = _distances(points[chosen:chosen + 1], points)[0]
        nearer = row < closest
        closest[nearer] = row[nearer]
        selected.append(chosen)
        del not_selected[at]

    centroids = points[selected].copy()
    for _ in range(1000):
        last = np.copy(centroids)
        nearest = _distances(points, centroids).argmin(axis=1)
        members: list[list[int]] = [[] for _ in range(len(centroids))]
        for j, k in enumerate(nearest):
            members[k].append(j)
        for j in range(len(edges), len(centroids)):
            centroids[j] = np.mean(points[members[j]], axis=0)
        _project_on_simplex(centroids)
        centroids /= centroids.sum(axis=1)[:, None]
        if np.abs(centroids - last).sum(axis=1).mean() < 1e-4:
            break
    return centroids


def _energy_and_gradient(x: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """Log mean Riesz s-energy of the rows of ``x`` and its gradient, shape (n, dim)."""
    diff = x[:, None] - x[None, :]
    dist = np.sqrt((diff ** 2).sum(axis=2))
    np.fill_diagonal(dist, np.inf)
    eps = 10 ** (-320 / (s + 2))
    dist[dist < eps] = eps
    mutual = dist[np.triu_indices(len(x), 1)]
    energy = (1 / mutual ** s).sum()
    log_energy = -np.log(len(mutual)) + np.log(energy)
    grad = (-s * diff) / (dist ** (s + 2))[..., None]
    grad = np.sum(grad, axis=1)
    grad /= energy
    return log_energy, grad


class _Adam:
    def __init__(self, alpha: float) -> None:
        self.alpha, self.m, self.v, self.t = alpha, 0.0, 0.0, 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = 0.9 * self.m + (1 - 0.9) * grad
        self.v = 0.999 * self.v + (1 - 0.999) * (grad * grad)
        m_cap = self.m / (1 - (0.9 ** self.t))
        v_cap = self.v / (1 - (0.999 ** self.t))
        return x - (self.alpha * m_cap) / (np.sqrt(v_cap) + 1e-8)


def _minimise_energy(x: np.ndarray, s: int) -> np.ndarray:
    """Step 3 of the module docstring: shape (n, dim)."""
    best, best_energy, stale = x, np.inf, 0
    adam = _Adam(0.005)
    dim = x.shape[1]
    for _ in range(1000):
        energy, grad = _energy_and_gradient(x, s)
        grad = _project_on_plane(grad, np.zeros(dim), np.ones(dim))
        grad = grad / max(np.linalg.norm(grad, axis=1).max(), 1e-24)
        moved = adam.step(x, grad)
        moved = _project_on_simplex(moved)
        moved /= moved.sum(axis=1)[:, None]
        if energy < best_energy:
            best, best_energy, stale = moved, energy, 0
        else:
            stale += 1
        delta = np.sqrt((moved - x) ** 2).mean(axis=1).mean()
        if delta < 1e-5 or np.isnan(energy):
            break
        if stale > 30:
            adam = _Adam(adam.alpha / 2)
            moved, stale = best, 0
        x = moved
    return best


def equally_spaced_weights(dim: int, n: int, seed: int = 1) -> np.ndarray:
    """``n`` weight vectors spread evenly over the ``dim``-simplex; shape (n, dim), float64.

    The Riesz s-energy construction of the module docstring, the one the field
    evaluates on: the default ``seed=1`` gives morl-baselines'
    ``equally_spaced_weights(d, n, seed=42)`` (see the module docstring for why
    its 42 is not used). Deterministic in ``seed``; rows are non-negative, sum to 1 and include the simplex's corners
    (the one-hot weights). Takes about a second for n = 50.
    """
    _check(dim, n, seed)
    if dim == 1:
        return np.array([[1.0]])
    rng = np.random.default_rng(int(seed))
    points = _minimise_energy(_initial_points(int(dim), int(n), rng), 2 * int(dim))
    order = np.lexsort([points[:, j] for j in range(points.shape[1])][::-1])
    return points[order]
