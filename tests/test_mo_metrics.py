"""lever.mo_metrics and lever.mo_weights against brute-force references and the field's recorded values."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever.errors import LeverError
from lever.mo_metrics import (
    best_utilities, expected_utility, hypervolume, max_utility_loss, pareto_front, utilities,
)
from lever.mo_weights import equally_spaced_weights

DATA = Path(__file__).parent / "data" / "energy_weights.json"


# --- brute-force references ------------------------------------------------------------------

def pareto_reference(points):
    """Rows no other row dominates (>= everywhere, > somewhere), as a set of tuples."""
    rows = {tuple(map(float, p)) for p in points}
    return {p for p in rows
            if not any(all(b >= a for a, b in zip(p, q)) and q != p for q in rows)}


def hypervolume_reference(points, ref):
    """Cut space at every coordinate present and add each grid cell some point dominates."""
    points = [p for p in points if all(x > r for x, r in zip(p, ref))]
    axes = [sorted({ref[k]} | {p[k] for p in points}) for k in range(len(ref))]
    volume = 0.0
    for cell in itertools.product(*[range(len(axis) - 1) for axis in axes]):
        upper = [axes[k][i + 1] for k, i in enumerate(cell)]
        if any(all(x >= u for x, u in zip(p, upper)) for p in points):
            size = 1.0
            for k, i in enumerate(cell):
                size *= axes[k][i + 1] - axes[k][i]
            volume += size
    return volume


def expected_utility_reference(front, weights):
    total = 0.0
    for w in weights:
        total += max(sum(a * b for a, b in zip(w, p)) for p in front)
    return total / len(weights)


def fronts(max_dim=4, max_points=7):
    """Small point sets on an integer grid (ties and duplicates included) with a reference below them."""
    return st.integers(1, max_dim).flatmap(lambda d: st.tuples(
        st.lists(st.lists(st.integers(-5, 5), min_size=d, max_size=d), min_size=1,
                 max_size=max_points),
        st.lists(st.integers(-7, 0), min_size=d, max_size=d)))


# --- Pareto filtering ------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(fronts(max_points=10))
def test_pareto_front_matches_brute_force(case):
    points, _ = case
    got = pareto_front(np.array(points, dtype=float))
    assert {tuple(row) for row in got} == pareto_reference(points)
    assert len(got) == len({tuple(row) for row in got})  # duplicates dropped


def test_pareto_front_order_and_errors():
    got = pareto_front([[1, 0], [0, 1], [0.5, 0.5], [0.2, 0.2], [1, 0]])
    assert got.tolist() == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    for bad in ([], [[np.nan, 1.0]], [1.0, 2.0]):
        with pytest.raises(LeverError):
            pareto_front(bad)


# --- utilities -------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(fronts(), st.integers(0, 2**31))
def test_expected_utility_matches_brute_force(case, seed):
    points, _ = case
    d = len(points[0])
    weights = np.random.default_rng(seed).dirichlet(np.ones(d), size=7)
    front = np.array(points, dtype=float)
    assert expected_utility(front, weights) == pytest.approx(
        expected_utility_reference(points, weights), abs=1e-9)
    assert max_utility_loss(front, front, weights) == 0.0
    # Adding a point can only raise each weight's best utility.
    better = np.vstack([front, front.max(axis=0) + 1.0])
    assert (best_utilities(better, weights) >= best_utilities(front, weights)).all()
    assert max_utility_loss(front, better, weights) > 0.0


def test_utilities_pair_rows_and_refuse_bad_weights():
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert utilities(v, w).tolist() == [1.5, 3.0]
    with pytest.raises(LeverError, match="pair"):
        utilities(v, w[:1])
    with pytest.raises(LeverError, match="non-negative"):
        utilities(v, -w)
    with pytest.raises(LeverError, match="components"):
        expected_utility(v, np.ones((2, 3)) / 3)


# --- hypervolume -----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(fronts())
def test_hypervolume_matches_grid_count(case):
    points, ref = case
    assert hypervolume(np.array(points, dtype=float), ref) == pytest.approx(
        hypervolume_reference(points, ref), rel=1e-12, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(3, 6), st.integers(2, 12), st.integers(0, 2**31))
def test_hypervolume_continuous_fronts_up_to_six_dims(d, n, seed):
    rng = np.random.default_rng(seed)
    # Points on a sphere's positive orthant: mutually non-dominated, no ties.
    points = np.abs(rng.normal(size=(n, d)))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    ref = np.full(d, -0.1)
    if n <= 5 or d <= 3:
        assert hypervolume(points, ref) == pytest.approx(
            hypervolume_reference(points.tolist(), ref.tolist()), rel=1e-9)
    # Invariant to order and to adding dominated points.
    shuffled = points[rng.permutation(n)]
    dominated = points * 0.5
    assert hypervolume(np.vstack([shuffled, dominated]), ref) == pytest.approx(
        hypervolume(points, ref), rel=1e-12)


def test_hypervolume_edges():
    assert hypervolume([[1.0, 1.0]], [0.0, 0.0]) == 1.0
    assert hypervolume([[-1.0, 5.0]], [0.0, 0.0]) == 0.0  # does not dominate the reference
    assert hypervolume([[3.0]], [1.0]) == 2.0
    with pytest.raises(LeverError):
        hypervolume([[1.0, 1.0]], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("env_id, ref, hv, eum", [
    ("deep-sea-treasure-v0", [0.0, -50.0], 854.85, 5.610),
    ("deep-sea-treasure-concave-v0", [0.0, -50.0], 3688.38, 44.356),
    ("fruit-tree-v0", [-1.0] * 6, 46034.8, 6.144),
])
def test_known_fronts_give_the_fields_values(env_id, ref, hv, eum):
    mo_gymnasium = pytest.importorskip("mo_gymnasium")
    front = np.array(mo_gymnasium.make(env_id).unwrapped.pareto_front(0.99))
    d = front.shape[1]
    assert hypervolume(front, ref) == pytest.approx(hv, abs=0.01)
    assert expected_utility(front, equally_spaced_weights(d, 50)) == pytest.approx(eum, abs=5e-4)


# --- equally spaced weights ------------------------------------------------------------------

def recorded():
    data = json.loads(DATA.read_text())
    return [(key, np.array([[float.fromhex(x) for x in row] for row in rows]))
            for key, rows in data["weights"].items()]


@pytest.mark.parametrize("key, expected", recorded(), ids=[k for k, _ in recorded()])
def test_weights_equal_the_fields_bit_for_bit(key, expected):
    d, n = map(int, key.split("x"))
    got = equally_spaced_weights(d, n)
    assert got.shape == (n, d)
    assert np.array_equal(got, expected)
    assert (got >= 0).all() and np.allclose(got.sum(axis=1), 1.0)
    corners = {tuple(row) for row in np.eye(d)}
    assert corners <= {tuple(row) for row in got}


def test_weights_depend_on_the_seed_only_as_documented():
    a = equally_spaced_weights(3, 10, seed=5)
    assert np.array_equal(a, equally_spaced_weights(3, 10, seed=5))
    assert not np.array_equal(a, equally_spaced_weights(3, 10, seed=6))
    assert equally_spaced_weights(1, 4).tolist() == [[1.0]]
    for bad in [dict(dim=0, n=5), dict(dim=3, n=2), dict(dim=2, n=5, seed=-1),
                dict(dim=True, n=5)]:
        with pytest.raises(LeverError):
            equally_spaced_weights(**bad)
