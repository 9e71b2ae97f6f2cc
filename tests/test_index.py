"""PolicyIndex: recall against brute force, persistence, the layout filter, clear errors.

Most tests run on both search paths: the exact numpy path (groups smaller
than ``IndexParams.exact_below``, the default for these sizes) and the
hnswlib path (forced with ``exact_below=exact_below_similarity=0``).
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lever.index as index_module
from lever import FileFormatError, LeverError, Objective
from lever.index import Candidate, IndexParams, PolicyIndex
from lever.kernels.constants import N_SETS
from lever.library import PolicyLibrary


def brute_force_ip(signatures, weights, k):
    scores = signatures @ weights
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


def brute_force_cosine(embeddings, vector, k):
    norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(vector)
    return set(np.argsort(-(embeddings @ vector) / norms, kind="stable")[:k].tolist())


GRAPHS = IndexParams(exact_below=0, exact_below_similarity=0)


@pytest.fixture(scope="module", params=["exact", "graphs"])
def random_index(request):
    params = GRAPHS if request.param == "graphs" else IndexParams()
    rng = np.random.default_rng(0)
    n = 3000
    layouts = [f"layout{i % 3}" for i in range(n)]
    # One return per component set, spread like real ones: of order ±100, some sets wider than others.
    signatures = rng.normal(size=(n, N_SETS)) * rng.uniform(20.0, 100.0, size=N_SETS)
    embeddings = rng.normal(size=(n, 48))
    index = PolicyIndex.build(np.arange(n), layouts, signatures, embeddings, params)
    assert index.exact() == index.exact("layout0") == (request.param == "exact",) * 2
    return index, layouts


def recall_at_10(search, exact, dim: int, seed: int) -> float:
    """Mean fraction of the exact top 10 that ``search`` finds, over 60 random query vectors (dim,)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(60):
        vector = rng.normal(size=dim)
        hits += len({c.policy_id for c in search(vector, 10)} & exact(vector, 10))
    return hits / 600


def test_weight_query_recall_at_10_on_random_vectors(random_index):
    index, _ = random_index
    assert recall_at_10(index.rank, lambda w, k: brute_force_ip(index.signatures, w, k), N_SETS,
                        seed=1) >= 0.99


def test_similarity_recall_at_10_on_random_vectors(random_index):
    index, _ = random_index
    assert recall_at_10(index.similar, lambda v, k: brute_force_cosine(index.embeddings, v, k), 48, seed=2) >= 0.99


def test_scores_are_exact_and_ranked_best_first(random_index):
    index, _ = random_index
    weights = np.random.default_rng(9).normal(size=N_SETS)
    candidates = index.rank(weights, 10)
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    for c in candidates:
        assert c.score == pytest.approx(float(index.signatures[c.policy_id] @ weights), rel=1e-12)


@pytest.mark.parametrize("rules", ["study", "linear"])
@pytest.mark.parametrize("objective", ["path", "gold+lever", "path+gold+hazard+lever", "hazard*0.5+lever*2"])
def test_objective_queries_rank_by_the_set_weights_of_the_rules(random_index, objective, rules):
    index, _ = random_index
    if rules == "study" and not Objective.parse(objective).is_set:
        with pytest.raises(LeverError, match="weighted"):
            index.query(objective, 10, rules=rules)
        return
    weights = Objective.parse(objective).set_weights(rules)
    candidates = index.query(objective, 10, rules=rules)
    assert candidates == index.rank(weights, 10)
    for c in candidates:
        assert c.score == pytest.approx(float(index.signatures[c.policy_id] @ weights), rel=1e-12)
    # Asking for a whole layout ranks it exactly as brute force does (best first, ties by id).
    members = np.flatnonzero(index.layout_codes == index.layouts.index("layout2"))
    ranked = index.query(objective, members.size, "layout2", rules)
    scores = index.signatures[members] @ weights
    assert [c.policy_id for c in ranked] == members[np.lexsort((members, -scores))].tolist()


def test_layout_filter_never_returns_another_layout(random_index):
    index, layouts = random_index
    rng = np.random.default_rng(3)
    for layout_id in ("layout0", "layout1", "layout2"):
        members = {i for i, x in enumerate(layouts) if x == layout_id}
        for _ in range(5):
            weights = rng.normal(size=N_SETS)
            found = index.rank(weights, 50, layout_id=layout_id)
            assert {c.policy_id for c in found} <= members
            similar = index.similar(rng.normal(size=48), 20, layout_id=layout_id)
            assert {c.policy_id for c in similar} <= members
        # Asking for every member of the layout returns exactly the layout.
        everything = index.rank(rng.normal(size=N_SETS), len(members), layout_id=layout_id)
        assert {c.policy_id for c in everything} == members
        everything = index.query("path+gold", len(members), layout_id=layout_id)
        assert {c.policy_id for c in everything} == members


@pytest.mark.parametrize("params", [IndexParams(), GRAPHS], ids=["exact", "graphs"])
def test_ties_at_the_kth_place_go_to_the_lowest_policy_ids(params):
    # Many policies share a greedy route, so equal signatures are common: which of them make
    # the answer is decided by policy id, as brute force decides, not by the graph's walk.
    rng = np.random.default_rng(10)
    n = 400
    ids = rng.permutation(n) + 7000
    signatures = np.repeat(rng.normal(size=(20, N_SETS)) * 50.0, 20, axis=0)
    embeddings = np.repeat(rng.normal(size=(20, 12)), 20, axis=0)
    index = PolicyIndex.build(ids, ["a"] * n, signatures, embeddings, params)
    for _ in range(10):
        weights = rng.normal(size=N_SETS)
        for k in (1, 5, 10, 30):
            scores = signatures @ weights
            expected = ids[np.lexsort((ids, -scores))][:k].tolist()
            assert [c.policy_id for c in index.rank(weights, k)] == expected
        row = int(rng.integers(n))
        cosine = embeddings @ embeddings[row] / (np.linalg.norm(embeddings, axis=1) * np.linalg.norm(embeddings[row]))
        others = np.flatnonzero(ids != ids[row])
        expected = ids[others][np.lexsort((ids[others], -cosine[others]))][:10].tolist()
        assert [c.policy_id for c in index.similar_to(int(ids[row]), 10)] == expected


@pytest.mark.parametrize("params", [IndexParams(), GRAPHS], ids=["exact", "graphs"])
def test_similar_to_excludes_itself_and_finds_a_near_copy(params):
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(200, 16))
    embeddings[17] = embeddings[5] * 3.0 + 1e-6  # same direction as policy 5
    index = PolicyIndex.build(np.arange(200) + 1000, ["a"] * 200, rng.normal(size=(200, N_SETS)), embeddings,
                              params)
    found = index.similar_to(1005, 3)
    assert 1005 not in {c.policy_id for c in found}
    assert found[0].policy_id == 1017 and found[0].score == pytest.approx(1.0, abs=1e-6)
    assert index.layout_of(1017) == "a"


def test_save_load_gives_the_same_answers_without_rebuilding(random_index, tmp_path, monkeypatch):
    index, _ = random_index
    index.save(tmp_path / "ix", fingerprint="abc")

    def no_building(*args, **kwargs):
        raise AssertionError("load must not rebuild a graph")

    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["params"]["exact_below"] == \
        index.params.exact_below

    monkeypatch.setattr(index_module, "build_graph", no_building)
    loaded = PolicyIndex.load(tmp_path / "ix", fingerprint="abc")
    rng = np.random.default_rng(5)
    for layout_id in (None, "layout1"):
        for _ in range(10):
            weights = rng.normal(size=N_SETS)
            assert loaded.rank(weights, 7, layout_id) == index.rank(weights, 7, layout_id)
            vector = rng.normal(size=48)
            assert loaded.similar(vector, 7, layout_id) == index.similar(vector, 7, layout_id)
        for rules in ("study", "linear"):
            assert loaded.query("gold+lever", 7, layout_id, rules) == index.query("gold+lever", 7, layout_id, rules)
    with pytest.raises(FileFormatError, match="other data"):
        PolicyIndex.load(tmp_path / "ix", fingerprint="xyz")


def test_same_inputs_build_the_same_index():
    rng = np.random.default_rng(6)
    args = (np.arange(500), ["a"] * 250 + ["b"] * 250, rng.normal(size=(500, N_SETS)),
            rng.normal(size=(500, 8)))
    first, second = PolicyIndex.build(*args, GRAPHS), PolicyIndex.build(*args, GRAPHS)
    weights = rng.normal(size=N_SETS)
    assert first.rank(weights, 20) == second.rank(weights, 20)
    assert first.query("path+hazard", 20) == second.query("path+hazard", 20)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "version"])
def test_corrupt_index_files_are_named(random_index, tmp_path, damage):
    index, _ = random_index
    folder = tmp_path / "ix"
    index.save(folder)
    # An exact index has no graph file: its arrays are checked the same way.
    data_file = "signatures.npy" if any(index.exact()) else "group1.mips.bin"
    target = folder / ("manifest.json" if damage == "version" else data_file)
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text(target.read_text().replace(f'"version": {index_module.INDEX_VERSION}', '"version": 99'))
    with pytest.raises(FileFormatError, match=target.name):
        PolicyIndex.load(folder)


@pytest.mark.parametrize("params", [IndexParams(), GRAPHS], ids=["exact", "graphs"])
def test_clear_errors(params):
    rng = np.random.default_rng(7)
    index = PolicyIndex.build(np.arange(20), ["a"] * 12 + ["b"] * 8, rng.normal(size=(20, N_SETS)),
                              rng.normal(size=(20, 8)), params)
    with pytest.raises(LeverError, match="dims"):
        index.rank(np.ones(4), 2)
    with pytest.raises(LeverError, match="NaN or infinity"):
        index.rank(np.full(N_SETS, np.nan), 2)
    # All-zero weights give every policy 0: the lowest ids, on either path (no NaN query for a graph).
    assert index.rank(np.zeros(N_SETS), 3, "b") == [Candidate(p, 0.0) for p in (12, 13, 14)]
    assert index.rank(np.zeros(N_SETS), 2) == [Candidate(0, 0.0), Candidate(1, 0.0)]
    with pytest.raises(LeverError, match="weighted"):
        index.query("path+gold*0.5", 2)
    with pytest.raises(LeverError, match="unknown rules"):
        index.query("path", 2, rules="additive")
    with pytest.raises(LeverError, match="8-dim"):
        index.similar(np.ones(5), 2)
    with pytest.raises(LeverError, match="only 8"):
        index.query("path", 9, layout_id="b")
    with pytest.raises(LeverError, match="only 20"):
        index.query("path", 21)
    with pytest.raises(LeverError, match="no policy of layout 'zzz'"):
        index.query("path", 1, layout_id="zzz")
    with pytest.raises(LeverError, match="k must be an integer >= 1"):
        index.query("path", 0)
    with pytest.raises(LeverError, match="not in the index"):
        index.similar_to(99, 1)
    empty = PolicyIndex.build(np.zeros(0, dtype=np.int64), [], np.zeros((0, N_SETS)), np.zeros((0, 8)))
    with pytest.raises(LeverError, match="empty"):
        empty.query("path", 1)
    with pytest.raises(LeverError, match="disagree"):
        PolicyIndex.build(np.arange(3), ["a"] * 2, np.zeros((3, N_SETS)), np.zeros((3, 8)))
    with pytest.raises(LeverError, match="ef_min"):
        IndexParams(ef_min=0)
    with pytest.raises(LeverError, match="exact_below"):
        IndexParams(exact_below=-1)
    with pytest.raises(LeverError, match="exact_below_similarity"):
        IndexParams(exact_below_similarity=-1)
    with pytest.raises(LeverError, match="M_similarity"):
        IndexParams(M_similarity=0)
    with pytest.raises(LeverError, match="integer"):
        IndexParams(exact_below=1.5)


def test_recall_on_real_library_embeddings(tmp_path):
    library = PolicyLibrary.build(tmp_path / "lib", setting="grid8", layout_seeds=(0, 1, 2),
                                  objectives=("path", "gold", "hazard", "lever", "path+gold",
                                              "gold+lever", "path+hazard", "path+gold+hazard+lever"),
                                  train_seed=1, episodes=300, jobs=1, progress=False)
    index = library.index()
    signatures, embeddings = library.value_signatures(), library.behaviour_embeddings()
    rng = np.random.default_rng(8)
    hits = total = 0
    for _ in range(40):
        weights = rng.uniform(0, 1, size=N_SETS)
        found = {c.policy_id for c in index.rank(weights, 10)}
        hits += len(found & brute_force_ip(signatures, weights, 10))
        pid = int(rng.integers(len(library)))
        found = {c.policy_id for c in index.similar(embeddings[pid], 10)}
        hits += len(found & brute_force_cosine(embeddings, embeddings[pid], 10))
        total += 20
    assert hits / total >= 0.99
    # The signatures are the 16 set returns of each record's greedy rollout, and an objective's
    # query ranks by its own set weights under either rule set.
    assert signatures.shape == (len(library), N_SETS)
    for record in library.records_for():
        np.testing.assert_allclose(signatures[record.policy_id], record.greedy_return, rtol=1e-12, atol=1e-9)
    for objective in ("path", "gold+lever", "path+gold+hazard+lever"):
        for rules in ("study", "linear"):
            weights = Objective.parse(objective).set_weights(rules)
            scores = signatures @ weights
            found = index.query(objective, 10, rules=rules)
            assert [c.score for c in found] == pytest.approx(np.sort(scores)[::-1][:10], rel=1e-12, abs=1e-9)
    for layout_id in library.layout_ids:
        own = {r.policy_id for r in library.records_for(layout_id)}
        assert {c.policy_id for c in index.query("path+gold", len(own), layout_id)} == own
    assert all(isinstance(c, Candidate) for c in index.query("path", 3))


# -- the exact path against a slow, obvious reference ------------------------------------------------

def reference_ranking(ids, layouts, score, k, layout_id=None, exclude=None):
    """(policy id, score) of the best k by a plain Python sort over every row: score down, id up."""
    rows = [r for r in range(len(ids)) if (layout_id is None or layouts[r] == layout_id) and ids[r] != exclude]
    return sorted(((int(ids[r]), score(r)) for r in rows), key=lambda pair: (-pair[1], pair[0]))[:k]


def python_dot(a, b):
    return sum(float(x) * float(y) for x, y in zip(a, b))


def python_cosine(a, b):
    norms = python_dot(a, a) ** 0.5 * python_dot(b, b) ** 0.5
    return python_dot(a, b) / norms if norms > 0 else 0.0


@st.composite
def small_libraries(draw):
    """Policies with small integer signatures and embeddings (so scores are exact and ties frequent)."""
    n = draw(st.integers(1, 40))
    ids = draw(st.permutations(range(n))).copy()
    ids = [3 * i + 100 for i in ids]
    layouts = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    distinct = draw(st.integers(1, 6))  # few distinct rows: many tied scores
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    pool_s = rng.integers(-3, 4, size=(distinct, N_SETS)).astype(float)
    pool_e = rng.integers(-2, 3, size=(distinct, 6)).astype(float)
    pick = rng.integers(0, distinct, size=n)
    return np.array(ids), layouts, pool_s[pick], pool_e[pick], rng


def check_against_reference(index, ids, layouts, signatures, embeddings, rng):
    """Every query kind, with and without the layout filter, equals the reference ranking."""
    for layout_id in [None, *sorted(set(layouts))]:
        size = len(ids) if layout_id is None else layouts.count(layout_id)
        for k in sorted({1, max(1, size // 2), size}):
            weights = rng.integers(-3, 4, size=N_SETS).astype(float)
            if not weights.any():
                weights[1] = 1.0
            expected = reference_ranking(ids, layouts, lambda r: python_dot(signatures[r], weights), k, layout_id)
            assert [(c.policy_id, c.score) for c in index.rank(weights, k, layout_id)] == expected
            vector = rng.integers(-2, 3, size=6).astype(float)
            expected = reference_ranking(ids, layouts, lambda r: python_cosine(embeddings[r], vector), k, layout_id)
            found = index.similar(vector, k, layout_id)
            assert [c.policy_id for c in found] == [pid for pid, _ in expected]
            assert [c.score for c in found] == pytest.approx([score for _, score in expected], abs=1e-12)
        if size >= 2:
            row = int(rng.choice([r for r in range(len(ids)) if layout_id in (None, layouts[r])]))
            pid = int(ids[row])
            expected = reference_ranking(ids, layouts, lambda r: python_cosine(embeddings[r], embeddings[row]),
                                         size - 1, layout_id, exclude=pid)
            found = index.similar_to(pid, size - 1, layout_id)
            assert [c.policy_id for c in found] == [p for p, _ in expected]


@settings(max_examples=60, deadline=None)
@given(small_libraries())
def test_exact_path_equals_a_plain_python_sort(case):
    ids, layouts, signatures, embeddings, rng = case
    index = PolicyIndex.build(ids, layouts, signatures, embeddings)
    assert index.exact() == (True, True) and all(index.exact(x) == (True, True) for x in set(layouts))
    check_against_reference(index, ids, layouts, signatures, embeddings, rng)


@settings(max_examples=25, deadline=None)
@given(small_libraries())
def test_graph_path_agrees_with_the_exact_path_on_small_groups(case):
    # With ef (512) above the group size, the graph search keeps every member, so after exact
    # re-scoring its answers are the exact path's, ties included.
    ids, layouts, signatures, embeddings, rng = case
    index = PolicyIndex.build(ids, layouts, signatures, embeddings,
                              IndexParams(exact_below=1, exact_below_similarity=1))
    assert index.exact() == (False, False) and all(index.exact(x) == (False, False) for x in set(layouts))
    check_against_reference(index, ids, layouts, signatures, embeddings, rng)


# -- files: both kinds of groups, the manifest, older versions -----------------------------------------

@pytest.fixture(scope="module")
def mixed_index():
    """Weight queries: layout "big" (300 policies) and the whole index (340) through a graph, layout
    "small" (40) exact; similarity queries: only the whole index through a graph."""
    rng = np.random.default_rng(11)
    n = 340
    layouts = ["big"] * 300 + ["small"] * 40
    index = PolicyIndex.build(np.arange(n) * 2, layouts, rng.normal(size=(n, N_SETS)) * 50.0,
                              rng.normal(size=(n, 24)),
                              IndexParams(exact_below=100, exact_below_similarity=320))
    assert [index.exact(x) for x in (None, "big", "small")] == [(False, False), (False, True), (True, True)]
    return index


def test_round_trip_of_an_index_with_exact_and_graph_groups(mixed_index, tmp_path, monkeypatch):
    mixed_index.save(tmp_path / "ix")
    doc = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert doc["version"] == index_module.INDEX_VERSION == 3
    assert doc["params"] == {"M": 32, "M_similarity": 16, "ef_construction": 200, "ef_min": 512,
                             "exact_below": 100, "exact_below_similarity": 320, "seed": 0}
    groups = {g["key"]: g for g in doc["groups"]}
    assert groups["small"]["mips"] is None and groups["small"]["cos"] is None and groups["big"]["cos"] is None
    graph_files = sorted(name for name in doc["files"] if name.endswith(".bin"))
    assert graph_files == sorted([groups["all"]["mips"], groups["all"]["cos"], groups["big"]["mips"]])
    assert sorted(p.name for p in (tmp_path / "ix").glob("*.bin")) == graph_files

    def no_building(*args, **kwargs):
        raise AssertionError("load must not rebuild a graph")

    monkeypatch.setattr(index_module, "build_graph", no_building)
    loaded = PolicyIndex.load(tmp_path / "ix")
    assert loaded.params == mixed_index.params
    assert [loaded.exact(x) for x in (None, "big", "small")] == [(False, False), (False, True), (True, True)]
    rng = np.random.default_rng(12)
    for layout_id in (None, "big", "small"):
        for _ in range(5):
            weights = rng.normal(size=N_SETS)
            assert loaded.rank(weights, 7, layout_id) == mixed_index.rank(weights, 7, layout_id)
            vector = rng.normal(size=24)
            assert loaded.similar(vector, 7, layout_id) == mixed_index.similar(vector, 7, layout_id)
        assert loaded.similar_to(600, 5, layout_id) == mixed_index.similar_to(600, 5, layout_id)


def test_exact_below_in_the_manifest_must_match_the_groups(mixed_index, tmp_path):
    mixed_index.save(tmp_path / "ix")
    manifest = tmp_path / "ix" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["params"]["exact_below"] = 50  # "small" (40 policies) still exact, "big" has graphs: consistent
    manifest.write_text(json.dumps(doc))
    assert PolicyIndex.load(tmp_path / "ix").params.exact_below == 50
    for value in (20, 1000):  # "small" would need graphs / "big" and "all" would have none
        doc["params"]["exact_below"] = value
        manifest.write_text(json.dumps(doc))
        with pytest.raises(FileFormatError, match=f"exact_below is {value}"):
            PolicyIndex.load(tmp_path / "ix")
    doc["params"]["exact_below"] = 100
    for value in (200, 400):  # "big" would need a cosine graph / "all" would have none
        doc["params"]["exact_below_similarity"] = value
        manifest.write_text(json.dumps(doc))
        with pytest.raises(FileFormatError, match=f"exact_below_similarity is {value}"):
            PolicyIndex.load(tmp_path / "ix")
    doc["params"]["exact_below_similarity"] = 320
    manifest.write_text(json.dumps(doc))
    assert PolicyIndex.load(tmp_path / "ix").params == IndexParams(exact_below=100, exact_below_similarity=320)
    del doc["params"]["exact_below"]
    manifest.write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match="params: expected"):
        PolicyIndex.load(tmp_path / "ix")


def test_an_index_of_an_older_format_is_refused_by_name(mixed_index, tmp_path):
    mixed_index.save(tmp_path / "ix")
    manifest = tmp_path / "ix" / "manifest.json"
    doc = json.loads(manifest.read_text())
    assert index_module.saved_version(tmp_path / "ix") == 3
    doc["version"] = 2
    manifest.write_text(json.dumps(doc))
    assert index_module.saved_version(tmp_path / "ix") == 2
    assert index_module.saved_version(tmp_path / "nothing") is None
    with pytest.raises(FileFormatError, match=r"format version 2, this lever reads 3; rebuild it"):
        PolicyIndex.load(tmp_path / "ix")


def test_the_only_layout_shares_the_whole_index_graphs(tmp_path):
    rng = np.random.default_rng(13)
    index = PolicyIndex.build(np.arange(150), ["only"] * 150, rng.normal(size=(150, N_SETS)),
                              rng.normal(size=(150, 10)), GRAPHS)
    index.save(tmp_path / "ix")
    doc = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    first, second = doc["groups"]
    assert (first["mips"], first["cos"]) == (second["mips"], second["cos"]) != (None, None)
    assert sorted(name for name in doc["files"] if name.endswith(".bin")) == sorted([first["mips"], first["cos"]])
    loaded = PolicyIndex.load(tmp_path / "ix")
    weights = rng.normal(size=N_SETS)
    assert loaded.rank(weights, 9, "only") == loaded.rank(weights, 9) == index.rank(weights, 9)
    assert loaded.similar_to(3, 9, "only") == index.similar_to(3, 9)


@pytest.mark.parametrize("k", [1, 10, 45, 400])
def test_graph_over_distinct_signatures_ranks_every_tied_policy(k):
    # 3,000 policies but only 40 distinct signatures: the MIPS graph holds each once, and a
    # search's points expand into their policies, lowest ids first, so the graph path still
    # answers exactly as brute force does, whatever k.
    rng = np.random.default_rng(14)
    n = 3000
    ids = rng.permutation(n) * 3 + 1
    signatures = rng.normal(size=(40, N_SETS))[rng.integers(0, 40, size=n)] * 30.0
    index = PolicyIndex.build(ids, ["a"] * 2000 + ["b"] * 1000, signatures, rng.normal(size=(n, 4)), GRAPHS)
    assert index._distinct["all"].distinct.shape == (40, N_SETS)
    assert index._graphs["all"][0].get_current_count() == 40
    for layout_id in (None, "a", "b"):
        rows = np.arange(n) if layout_id is None else np.arange(2000) if layout_id == "a" else np.arange(2000, n)
        for _ in range(3):
            weights = rng.normal(size=N_SETS)
            scores = signatures[rows] @ weights
            expected = ids[rows][np.lexsort((ids[rows], -scores))][:k].tolist()
            assert [c.policy_id for c in index.rank(weights, k, layout_id)] == expected


@pytest.mark.parametrize("params", [IndexParams(), GRAPHS], ids=["exact", "graphs"])
def test_excluding_a_policy_of_another_layout_changes_nothing(params):
    rng = np.random.default_rng(15)
    index = PolicyIndex.build(np.arange(60), ["a"] * 30 + ["b"] * 30, rng.normal(size=(60, N_SETS)),
                              rng.normal(size=(60, 8)), params)
    vector = rng.normal(size=8)
    assert index.similar(vector, 30, "a", exclude=45) == index.similar(vector, 30, "a")
    assert 5 not in {c.policy_id for c in index.similar(vector, 29, "a", exclude=5)}
    with pytest.raises(LeverError, match="only 29 other"):
        index.similar(vector, 30, "a", exclude=5)


def test_query_ef_grows_with_a_mips_graph_only():
    params = IndexParams()
    assert params.ef_for(1_000, 10) == params.ef_for(250_000, 10) == 512
    assert params.ef_for(1_000_000, 10) == 2048 and params.ef_for(2_000_000, 10) == 4096
    assert params.ef_for(1_000_000, 10, similarity=True) == 512 and params.ef_for(10, 600, similarity=True) == 600


def test_cosine_graphs_use_their_own_degree():
    rng = np.random.default_rng(16)
    index = PolicyIndex.build(np.arange(100), ["a"] * 100, rng.normal(size=(100, N_SETS)), rng.normal(size=(100, 6)),
                              IndexParams(exact_below=0, exact_below_similarity=0, M=24, M_similarity=8))
    mips, cosine = index._graphs["all"]
    assert (mips.M, cosine.M) == (24, 8)


def test_all_zero_weights_rank_by_policy_id_on_a_graph_too():
    # A zero weight vector has no direction for the graph to follow (its MIPS query would be NaN).
    rng = np.random.default_rng(11)
    n = 3000
    signatures = rng.normal(size=(n, N_SETS)) * 50.0
    index = PolicyIndex.build(np.arange(n)[::-1].copy(), ["a"] * n, signatures, rng.normal(size=(n, 8)),
                              IndexParams(exact_below=0, exact_below_similarity=0, ef_min=16))
    assert index.exact() == (False, False)
    assert index.rank(np.zeros(N_SETS), 4) == [Candidate(p, 0.0) for p in range(4)]
