"""lever.protocol: the study's query table, snapshot schedule and library selection."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever.errors import LeverError
from lever.protocol import (
    CANDIDATES_PER_SUBQUERY, COMPONENT_ORDER, HYBRID_K, K_SWEEP, LIBRARY_OBJECTIVES, METHODS,
    MODES, QUERIES, SNAPSHOT_INTERVAL, Query, candidates_per_subquery, n_combinations,
    objective_components, objective_name, queries, rank_candidates, select_snapshots,
    snapshot_episodes,
)


def test_constants_match_the_design():
    assert LIBRARY_OBJECTIVES == ("path", "gold", "hazard", "lever", "hazard+lever", "path+gold",
                                  "path+gold+hazard", "path+gold+hazard+lever")
    assert MODES == ("trivial", "double", "triple")
    assert METHODS == ("scratch", "targeted", "hybrid", "exhaustive")
    assert (CANDIDATES_PER_SUBQUERY, HYBRID_K, K_SWEEP, SNAPSHOT_INTERVAL) == (5, 3, (1, 2, 3, 4, 5), 1000)


def test_query_table_is_the_study_table():
    table = [(q.mode, q.query, q.subqueries) for q in QUERIES]
    assert table == [
        ("trivial", "path+gold", ("path", "gold")),
        ("trivial", "path+gold+hazard", ("path", "gold", "hazard")),
        ("trivial", "path+gold+hazard+lever", ("path", "gold", "hazard", "lever")),
        ("double", "path+gold+hazard", ("path+gold", "hazard")),
        ("double", "path+gold+hazard+lever", ("path+gold", "hazard+lever")),
        ("triple", "path+gold+hazard+lever", ("path+gold+hazard", "lever")),
    ]


def test_every_subquery_is_a_library_objective_and_never_the_query_itself():
    for q in QUERIES:
        assert q.query in LIBRARY_OBJECTIVES
        for sub in q.subqueries:
            assert sub in LIBRARY_OBJECTIVES
            assert sub != q.query


def test_queries_filters_in_fixed_order():
    assert queries() == QUERIES
    assert queries("double") == QUERIES[3:5]
    assert queries(["triple", "trivial"]) == QUERIES[:3] + QUERIES[5:]
    assert queries(()) == ()
    with pytest.raises(LeverError, match="modes"):
        queries(["quadruple"])


def test_query_validates_its_fields():
    with pytest.raises(LeverError, match="mode"):
        Query("single", "path+gold", ("path", "gold"))
    with pytest.raises(LeverError, match="partition"):
        Query("double", "path+gold+hazard", ("path+gold", "gold"))
    with pytest.raises(LeverError, match="canonical"):
        Query("double", "gold+path", ("path", "gold"))
    with pytest.raises(LeverError, match="at least two"):
        Query("double", "path+gold", ("path+gold",))
    q = Query("double", "path+gold", ["path", "gold"])
    assert q.subqueries == ("path", "gold") and q.n_subqueries == 2
    with pytest.raises(AttributeError):
        q.mode = "triple"


def test_objective_names_round_trip():
    assert objective_name(["lever", "path"]) == "path+lever"
    assert objective_components("path+gold+hazard+lever") == COMPONENT_ORDER
    for bad in ("", "path+path", "speed", "hazard+gold"):
        with pytest.raises(LeverError):
            objective_components(bad)
    with pytest.raises(LeverError, match="components"):
        objective_name([])


@given(st.sets(st.sampled_from(COMPONENT_ORDER), min_size=1))
def test_objective_name_is_canonical_for_any_set(parts):
    name = objective_name(sorted(parts, reverse=True))
    assert set(objective_components(name)) == parts


def test_combination_counts():
    assert [n_combinations("targeted", m) for m in (2, 3, 4)] == [1, 1, 1]
    assert [n_combinations("hybrid", m) for m in (2, 3, 4)] == [9, 27, 81]
    assert [n_combinations("exhaustive", m) for m in (2, 3, 4)] == [25, 125, 625]
    assert candidates_per_subquery("hybrid", k=5) == 5
    with pytest.raises(LeverError, match="method"):
        candidates_per_subquery("scratch")
    with pytest.raises(LeverError, match="k"):
        candidates_per_subquery("hybrid", k=6)
    with pytest.raises(LeverError, match="n_subqueries"):
        n_combinations("hybrid", 0)


def test_snapshot_episodes():
    assert snapshot_episodes(10_000) == tuple(range(0, 10_000, 1000))
    assert snapshot_episodes(1) == (0,)
    assert snapshot_episodes(0) == ()
    assert snapshot_episodes(2501, interval=500) == (0, 500, 1000, 1500, 2000, 2500)
    with pytest.raises(LeverError, match="interval"):
        snapshot_episodes(10, interval=0)
    with pytest.raises(LeverError, match="n_episodes"):
        snapshot_episodes(-1)


def _run(n_episodes, seed=0):
    """Snapshot episodes plus the final table, with made-up returns."""
    episodes = list(snapshot_episodes(n_episodes)) + [n_episodes - 1]
    returns = np.random.default_rng(seed).normal(100, 30, len(episodes))
    return episodes, returns


@pytest.mark.parametrize("n_episodes, kept", [(10_000, 7), (50_000, 31), (100_000, 61)])
def test_select_snapshots_counts_per_budget(n_episodes, kept):
    episodes, returns = _run(n_episodes)
    assert len(select_snapshots(episodes, returns, seed=3)) == kept


def test_select_snapshots_keeps_extremes_and_median_and_drops_episode_zero():
    episodes = [0, 1000, 2000, 3000, 4000, 4999]
    returns = [999.0, 5.0, 1.0, 3.0, 4.0, 2.0]
    kept = select_snapshots(episodes, returns, seed=0, fraction=0.0)
    # candidates sorted by return: 2000(1) 4999(2) 3000(3) 4000(4) 1000(5); median index 2 -> 3000
    assert kept == (1, 2, 3)
    assert 0 not in select_snapshots(episodes, returns, seed=0, fraction=1.0)
    assert select_snapshots(episodes, returns, seed=0, fraction=1.0) == (1, 2, 3, 4, 5)


def test_select_snapshots_median_ties_broken_by_episode():
    kept = select_snapshots([3000, 1000, 2000], [7.0, 7.0, 7.0], seed=0, fraction=0.0)
    assert kept == (0, 1, 2)
    kept = select_snapshots([5000, 1000, 2000, 3000, 4000], [1.0, 7.0, 7.0, 7.0, 9.0],
                            seed=0, fraction=0.0)
    # sorted: 5000(1) 1000(7) 2000(7) 3000(7) 4000(9); median index 2 -> episode 2000 at position 2
    assert kept == (0, 2, 4)


def test_select_snapshots_small_and_empty():
    assert select_snapshots([0], [1.0], seed=0) == ()
    assert select_snapshots([], [], seed=0) == ()
    assert select_snapshots([0, 1000], [1.0, 2.0], seed=0) == (1,)


def test_select_snapshots_rejects_bad_input():
    with pytest.raises(LeverError, match="returns"):
        select_snapshots([0, 1000], [1.0], seed=0)
    with pytest.raises(LeverError, match="returns"):
        select_snapshots([0, 1000], [1.0, float("nan")], seed=0)
    with pytest.raises(LeverError, match="episodes"):
        select_snapshots([0.5, 1000], [1.0, 2.0], seed=0)
    with pytest.raises(LeverError, match="fraction"):
        select_snapshots([0, 1000], [1.0, 2.0], seed=0, fraction=1.5)
    with pytest.raises(LeverError, match="seed"):
        select_snapshots([0, 1000], [1.0, 2.0], seed=None)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 2**32 - 1),
       fraction=st.floats(0.0, 1.0), data=st.data())
def test_select_snapshots_properties(n, seed, fraction, data):
    returns = data.draw(st.lists(st.integers(-100, 300).map(float), min_size=n, max_size=n))
    episodes = [1000 * i for i in range(n)]
    kept = select_snapshots(episodes, returns, seed=seed, fraction=fraction)
    assert kept == select_snapshots(episodes, returns, seed=seed, fraction=fraction)
    assert list(kept) == sorted(set(kept))
    assert 0 not in kept  # episode 0 sits at position 0
    candidates = list(range(1, n))
    if not candidates:
        assert kept == ()
        return
    cand_returns = [returns[i] for i in candidates]
    assert any(returns[i] == max(cand_returns) for i in kept)
    assert any(returns[i] == min(cand_returns) for i in kept)
    fixed = min(3, len(candidates))
    assert len(kept) == fixed + round(fraction * (len(candidates) - fixed))


def test_select_snapshots_depends_on_seed():
    episodes, returns = _run(100_000)
    draws = {select_snapshots(episodes, returns, seed=s) for s in range(5)}
    assert len(draws) > 1


def test_rank_candidates():
    assert rank_candidates([3.0, 5.0, 5.0, -1.0, 4.0]) == (1, 2, 4, 0, 3)
    assert rank_candidates([]) == ()
    with pytest.raises(LeverError, match="returns"):
        rank_candidates([[1.0, 2.0]])


@given(st.lists(st.integers(-5, 5).map(float), max_size=30))
def test_rank_candidates_is_a_stable_descending_permutation(returns):
    order = rank_candidates(returns)
    assert sorted(order) == list(range(len(returns)))
    for a, b in zip(order, order[1:]):
        assert returns[a] > returns[b] or (returns[a] == returns[b] and a < b)
