"""lever.stats: bootstrap intervals over seeds, geometric means, safe ratios."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever.errors import LeverError
from lever.stats import (
    MIN_N_FOR_INTERVAL, Interval, bootstrap_ci, geometric_mean, geometric_mean_ci,
    paired_difference_ci, safe_ratio,
)

finite = st.floats(-1e6, 1e6, allow_nan=False)
positive = st.floats(1e-3, 1e6, allow_nan=False)


def test_interval_str():
    assert str(Interval(12.34, 8.06, 15.0, 5)) == "12.3 [8.1, 15.0] (n=5)"
    hidden = Interval(12.34, math.nan, math.nan, 2)
    assert str(hidden) == "12.3 (n=2, no interval below n=5)"
    assert not hidden.has_interval and Interval(1.0, 0.0, 2.0, 5).has_interval


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    values = [10.0, 12.0, 9.0, 15.0, 11.0, 13.0]
    a = bootstrap_ci(values, seed=7)
    assert a == bootstrap_ci(values, seed=7)
    assert a.mean == pytest.approx(np.mean(values))
    assert min(values) <= a.low <= a.mean <= a.high <= max(values)
    assert a.n == 6
    noisy = np.random.default_rng(0).normal(size=12)
    assert bootstrap_ci(noisy, seed=7) != bootstrap_ci(noisy, seed=8)


def test_bootstrap_matches_a_plain_loop():
    values = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    got = bootstrap_ci(values, n_resamples=3000, seed=1)
    rng = np.random.default_rng(1)
    means = [values[rng.integers(0, 5, size=(3000, 5))[i]].mean() for i in range(3000)]
    low, high = np.quantile(means, [0.025, 0.975])
    assert (got.low, got.high) == pytest.approx((low, high))


def test_bootstrap_batches_do_not_change_the_result():
    values = np.random.default_rng(0).normal(size=9)
    # 4500 resamples span three internal batches; the draw sequence must not depend on them.
    batched = bootstrap_ci(values, n_resamples=4500, seed=2)
    rng = np.random.default_rng(2)
    means = values[rng.integers(0, 9, size=(4500, 9))].mean(axis=1)
    assert (batched.low, batched.high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_interval_hidden_below_min_n():
    assert MIN_N_FOR_INTERVAL == 5
    small = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert small.mean == 2.5 and math.isnan(small.low) and math.isnan(small.high)
    assert "no interval below n=5" in str(small)
    assert bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0]).has_interval


def test_wider_confidence_gives_wider_interval():
    values = np.random.default_rng(3).normal(size=20)
    narrow, wide = bootstrap_ci(values, confidence=0.5), bootstrap_ci(values, confidence=0.99)
    assert wide.low <= narrow.low and narrow.high <= wide.high


@pytest.mark.parametrize("kwargs, name", [
    (dict(values=[]), "values"),
    (dict(values=[1.0, float("nan")]), "values"),
    (dict(values=[[1.0]]), "values"),
    (dict(values=["a"]), "values"),
    (dict(values=[1.0], confidence=1.0), "confidence"),
    (dict(values=[1.0], n_resamples=0), "n_resamples"),
    (dict(values=[1.0], seed=1.5), "seed"),
])
def test_bootstrap_rejects_bad_input(kwargs, name):
    with pytest.raises(LeverError, match=name):
        bootstrap_ci(**kwargs)


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=5, max_size=30), st.integers(0, 2**32 - 1))
def test_bootstrap_interval_lies_within_the_data(values, seed):
    ci = bootstrap_ci(values, n_resamples=500, seed=seed)
    slack = 1e-9 * (1 + max(abs(v) for v in values))
    assert min(values) - slack <= ci.low <= ci.high <= max(values) + slack
    assert ci == bootstrap_ci(values, n_resamples=500, seed=seed)


def test_paired_difference():
    a = [10.0, 20.0, 30.0, 40.0, 50.0]
    b = [9.0, 18.0, 27.0, 36.0, 45.0]
    ci = paired_difference_ci(a, b, seed=0)
    assert ci == bootstrap_ci(np.subtract(a, b), seed=0)
    assert ci.mean == pytest.approx(3.0) and 1.0 <= ci.low <= ci.high <= 5.0
    with pytest.raises(LeverError, match="b"):
        paired_difference_ci(a, b[:4])


def test_geometric_mean():
    assert geometric_mean([1.0, 100.0]) == pytest.approx(10.0)
    assert geometric_mean([4.0]) == pytest.approx(4.0)
    for bad in ([], [1.0, 0.0], [2.0, -3.0]):
        with pytest.raises(LeverError, match="values"):
            geometric_mean(bad)


@settings(max_examples=40, deadline=None)
@given(st.lists(positive, min_size=1, max_size=20))
def test_geometric_mean_between_min_and_max_and_below_arithmetic(values):
    g = geometric_mean(values)
    assert min(values) * (1 - 1e-9) <= g <= max(values) * (1 + 1e-9)
    assert g <= np.mean(values) * (1 + 1e-9)


def test_geometric_mean_ci():
    values = [2.0, 4.0, 8.0, 16.0, 32.0]
    ci = geometric_mean_ci(values, seed=0)
    assert ci.mean == pytest.approx(8.0)
    assert 2.0 <= ci.low < 8.0 < ci.high <= 32.0
    log_ci = bootstrap_ci(np.log(values), seed=0)
    assert (ci.low, ci.high) == pytest.approx((math.exp(log_ci.low), math.exp(log_ci.high)))
    assert not geometric_mean_ci([2.0, 8.0]).has_interval
    with pytest.raises(LeverError, match="values"):
        geometric_mean_ci([1.0, -1.0, 2.0, 3.0, 4.0])


def test_safe_ratio():
    assert safe_ratio(10.0, 4.0) == 2.5
    assert isinstance(safe_ratio(10, 4), float)
    assert math.isnan(safe_ratio(10.0, 0.0))
    assert math.isnan(safe_ratio(10.0, -5.0))
    assert math.isnan(safe_ratio(10.0, float("nan")))
    got = safe_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, -1.0]))
    np.testing.assert_array_equal(got, [0.5, np.nan, np.nan])
    np.testing.assert_array_equal(safe_ratio([6.0, 8.0], 2.0), [3.0, 4.0])
    with pytest.raises(LeverError, match="denominator"):
        safe_ratio([1.0, 2.0], [1.0, 2.0, 3.0])


@given(finite, finite)
def test_safe_ratio_defined_exactly_for_positive_denominators(num, den):
    r = safe_ratio(num, den)
    if den > 0:
        assert r == num / den
    else:
        assert math.isnan(r)
