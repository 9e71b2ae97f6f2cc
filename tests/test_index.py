"""PolicyIndex: recall against brute force, persistence, the layout filter, clear errors."""

import numpy as np
import pytest

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


@pytest.fixture(scope="module")
def random_index():
    rng = np.random.default_rng(0)
    n = 3000
    layouts = [f"layout{i % 3}" for i in range(n)]
    # One return per component set, spread like real ones: of order ±100, some sets wider than others.
    signatures = rng.normal(size=(n, N_SETS)) * rng.uniform(20.0, 100.0, size=N_SETS)
    embeddings = rng.normal(size=(n, 48))
    return PolicyIndex.build(np.arange(n), layouts, signatures, embeddings), layouts


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


def test_ties_at_the_kth_place_go_to_the_lowest_policy_ids():
    # Many policies share a greedy route, so equal signatures are common: which of them make
    # the answer is decided by policy id, as brute force decides, not by the graph's walk.
    rng = np.random.default_rng(10)
    n = 400
    ids = rng.permutation(n) + 7000
    signatures = np.repeat(rng.normal(size=(20, N_SETS)) * 50.0, 20, axis=0)
    embeddings = np.repeat(rng.normal(size=(20, 12)), 20, axis=0)
    index = PolicyIndex.build(ids, ["a"] * n, signatures, embeddings)
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


def test_similar_to_excludes_itself_and_finds_a_near_copy():
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(200, 16))
    embeddings[17] = embeddings[5] * 3.0 + 1e-6  # same direction as policy 5
    index = PolicyIndex.build(np.arange(200) + 1000, ["a"] * 200, rng.normal(size=(200, N_SETS)), embeddings)
    found = index.similar_to(1005, 3)
    assert 1005 not in {c.policy_id for c in found}
    assert found[0].policy_id == 1017 and found[0].score == pytest.approx(1.0, abs=1e-6)
    assert index.layout_of(1017) == "a"


def test_save_load_gives_the_same_answers_without_rebuilding(random_index, tmp_path, monkeypatch):
    index, _ = random_index
    index.save(tmp_path / "ix", fingerprint="abc")

    def no_building(*args, **kwargs):
        raise AssertionError("load must not rebuild a graph")

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
    first, second = PolicyIndex.build(*args), PolicyIndex.build(*args)
    weights = rng.normal(size=N_SETS)
    assert first.rank(weights, 20) == second.rank(weights, 20)
    assert first.query("path+hazard", 20) == second.query("path+hazard", 20)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "version"])
def test_corrupt_index_files_are_named(random_index, tmp_path, damage):
    index, _ = random_index
    folder = tmp_path / "ix"
    index.save(folder)
    target = folder / ("manifest.json" if damage == "version" else "group1.mips.bin")
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


def test_clear_errors():
    rng = np.random.default_rng(7)
    index = PolicyIndex.build(np.arange(20), ["a"] * 12 + ["b"] * 8, rng.normal(size=(20, N_SETS)),
                              rng.normal(size=(20, 8)))
    with pytest.raises(LeverError, match="dims"):
        index.rank(np.ones(4), 2)
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
    with pytest.raises(LeverError, match="positive"):
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
