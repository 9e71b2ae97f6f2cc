"""Policies in and out of a library on disk: PolicyLibrary.add (support derived or given, plain or vector Q),
PolicyLibrary.export, round trips, bad inputs refused before any write, crashes mid-add, version-2 libraries."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import lever
import lever.library.add as add_module
import lever.library.build as build_module
from lever import Layout, LeverError, Objective, TrainConfig, rollout, train
from lever.compose import Composer
from lever.embeddings import embed_policies
from lever.kernels.constants import WALL
from lever.library import PolicyLibrary, SupportLog
from tests.reference import all_gold, reference_greedy, reference_rollout, reference_step, reference_world

BUILD = dict(setting="grid8", layout_seeds=(0, 1), objectives=("path", "gold", "hazard", "path+gold"),
             episodes=200, jobs=1, progress=False)
TABLES = ("q", "q_vector", "visits", "next_state", "reward_model")


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return PolicyLibrary.build(tmp_path_factory.mktemp("add") / "base", **BUILD)


@pytest.fixture
def lib(base, tmp_path) -> PolicyLibrary:
    """A fresh copy of the base library, opened."""
    root = tmp_path / "lib"
    shutil.copytree(base.root, root)
    return PolicyLibrary.open(root)


@pytest.fixture(scope="module")
def trained(base):
    """A policy trained on the base library's first layout, outside the library (another seed)."""
    layout = base.layout(base.layout_ids[0])
    return train(layout, "path+gold", TrainConfig.from_budget("X1", "grid8", episodes=300, seed=7, vector_q=True))


# -- slow, obvious references --------------------------------------------------------------------

def reference_replay(layout: Layout, q):
    """visits, next_state, reward_model of one greedy episode, from the pure-Python world."""
    world = reference_world(layout)
    actions = reference_greedy(q)
    visits = np.zeros((layout.n_states, 4), dtype=np.int64)
    next_state = np.full((layout.n_states, 4), -1, dtype=np.int32)
    rewards = np.zeros((layout.n_states, 4, 16))
    pos, gold_left, lever_on = world.start, all_gold(world), False
    for _ in range(layout.n_states):  # H·W steps at most
        a = actions[pos]
        result = reference_step(world, pos, a, gold_left, lever_on)
        if visits[pos, a] == 0:
            next_state[pos, a] = result.pos
            rewards[pos, a] = result.set_rewards
        visits[pos, a] += 1
        if result.terminated:
            break
        pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
    return visits, next_state, rewards


def reference_pairs(layout: Layout, mask):
    """next_state, reward_model of each marked pair, stepped from a fresh episode's state."""
    world = reference_world(layout)
    next_state = np.full((layout.n_states, 4), -1, dtype=np.int32)
    rewards = np.zeros((layout.n_states, 4, 16))
    for s, a in np.argwhere(mask):
        result = reference_step(world, int(s), int(a), all_gold(world), False)
        next_state[s, a] = result.pos
        rewards[s, a] = result.set_rewards
    return next_state, rewards


def check_derived_from_stored_q(library: PolicyLibrary, record) -> None:
    """Greedy return and ψ of an added record equal those of its stored Q table, computed afresh."""
    layout = library.layout(record.layout_id)
    q = np.asarray(library.tables(record.layout_id).q[record.row])
    assert record.greedy_return == tuple(rollout(layout, q, record.objective).set_returns)
    ref = reference_rollout(reference_world(layout), reference_greedy(q), record.objective.set_weights())
    np.testing.assert_allclose(record.greedy_return, ref.set_returns, atol=1e-9)
    expected = embed_policies(layout, q[None], library.canonical_states(layout.id), library.spec.embedding)
    np.testing.assert_array_equal(library.features(layout.id).psi[record.row], expected.psi[0])


# -- adding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["trained", "zeros"])
def test_add_plain_q_derives_support_by_greedy_replay(lib, trained, which):
    layout_id = lib.layout_ids[0]
    layout = lib.layout(layout_id)
    q = trained.q if which == "trained" else np.zeros((layout.n_states, 4))  # zeros: always right, loops
    other = lib.layout_ids[1]
    other_files = {k: v for k, v in snapshot(lib.root).items() if k.startswith(f"layouts/{other}/")}
    before = len(lib)
    record = lib.add(q, "path+gold", layout_id, label=which)
    assert (record.policy_id, record.row, record.layout_id) == (before, 4, layout_id)
    assert (record.source, record.vector_q, record.label, record.algorithm) == ("added", False, which, "added")
    assert len(lib) == before + 1 and lib.record(before) == record
    tables = lib.tables(layout_id)
    assert tables.policy_ids.tolist() == [0, 1, 2, 3, before]
    np.testing.assert_array_equal(tables.q[4], q.astype(np.float32))
    np.testing.assert_array_equal(tables.q_vector[4], 0.0)
    assert tables.has_vector_q.tolist() == [True] * 4 + [False]
    visits, next_state, rewards = reference_replay(layout, tables.q[4])
    np.testing.assert_array_equal(tables.visits[4], visits)
    np.testing.assert_array_equal(tables.next_state[4], next_state)
    np.testing.assert_allclose(tables.reward_model[4], rewards, atol=1e-9)
    # The support is exactly the greedy route's pairs.
    route = rollout(layout, np.asarray(tables.q[4]), "path+gold", record_path=True)
    actions = reference_greedy(tables.q[4])
    assert {(s, actions[s]) for s in route.path[:-1].tolist()} == {tuple(p) for p in np.argwhere(visits).tolist()}
    assert visits.sum() == route.steps
    if which == "zeros":
        assert visits.max() > 1  # the loop's pair is counted every time
    check_derived_from_stored_q(lib, record)
    # The other layout is untouched, and the library reopens with every sum checked.
    assert {k: v for k, v in snapshot(lib.root).items() if k.startswith(f"layouts/{other}/")} == other_files
    reopened = PolicyLibrary.open(lib.root)
    assert reopened.records == lib.records
    for name in TABLES:
        np.testing.assert_array_equal(getattr(reopened.tables(layout_id), name), getattr(tables, name))


@pytest.mark.parametrize("kind", ["counts", "mask"])
def test_add_plain_q_with_given_support(lib, trained, kind):
    layout_id = lib.layout_ids[0]
    layout = lib.layout(layout_id)
    support = trained.visits if kind == "counts" else trained.visits > 0
    record = lib.add(trained.q, "path+gold", layout, support=support)
    tables = lib.tables(layout_id)
    np.testing.assert_array_equal(tables.visits[record.row], np.asarray(support, dtype=np.int64))
    next_state, rewards = reference_pairs(layout, trained.visits > 0)
    np.testing.assert_array_equal(tables.next_state[record.row], next_state)
    np.testing.assert_allclose(tables.reward_model[record.row], rewards, atol=1e-9)
    # Sets without gold and lever do not depend on the episode's history: the log training left agrees.
    free = [0, 1, 4, 5]
    np.testing.assert_allclose(tables.reward_model[record.row][..., free], trained.reward_model[..., free],
                               atol=1e-9)
    check_derived_from_stored_q(lib, record)


def test_add_vector_q_stores_it_and_derives_q_for_the_objective(lib, trained):
    layout_id = lib.layout_ids[0]
    record = lib.add(trained.q_vector, "path+gold", layout_id)
    tables = lib.tables(layout_id)
    stored = trained.q_vector.astype(np.float32)
    np.testing.assert_array_equal(tables.q_vector[record.row], stored)
    # Under the study's rules the scalar Q is the sum of the set's components' Qs (a linear stand-in).
    np.testing.assert_array_equal(tables.q[record.row], (stored.astype(np.float64) @ [1, 1, 0, 0]).astype(np.float32))
    assert record.vector_q and tables.has_vector_q.all()
    check_derived_from_stored_q(lib, record)
    result = lever.compose(lib, "path+gold", layout=layout_id, strategy="exhaustive", operator="max")
    assert result.combinations_tried > 0


def test_added_policy_is_retrieved_and_composed(lib, trained):
    layout_id = lib.layout_ids[0]
    lever_q = train(lib.layout(layout_id), "lever", TrainConfig.from_budget("X1", "grid8", episodes=300)).q
    record = lib.add(lever_q, "lever", layout_id)
    found = lib.index().query("lever", k=5, layout_id=layout_id)
    assert record.policy_id in [c.policy_id for c in found]
    # A fresh open loads the saved index, rebuilt by add, rather than a stale one.
    again = PolicyLibrary.open(lib.root)
    assert record.policy_id in [c.policy_id for c in again.index().query("lever", k=5, layout_id=layout_id)]
    # It is the library's only lever policy, so composing path+lever must use it.
    result = lever.compose(again, "path+lever", layout=layout_id, strategy="targeted")
    assert record.policy_id in result.policy_ids
    # Without a vector Q table it is no candidate of GPI, which composes vector Q tables ...
    with pytest.raises(LeverError, match="added without a vector Q table"):
        lever.compose(again, "path+lever", layout=layout_id, strategy="targeted", operator="max")
    # ... which takes a lever policy that has one, however well the other one ranks.
    trained_lever = train(lib.layout(layout_id), "lever",
                          TrainConfig.from_budget("X1", "grid8", episodes=300, vector_q=True))
    with_vector = again.add(trained_lever.q_vector, "lever", layout_id)
    result = lever.compose(again, "path+lever", layout=layout_id, strategy="exhaustive", operator="max")
    assert with_vector.policy_id in result.policy_ids and record.policy_id not in result.policy_ids
    # The kernel-level guard still names such a policy if a combination holds one.
    stack = lever.PolicyStack.from_tables(again.layout(layout_id), again.tables(layout_id))
    composer = Composer(stack, Objective.parse("path+lever"), "max", again.spec.rules)
    row = int(stack.rows([record.policy_id])[0])
    with pytest.raises(LeverError, match=rf"policies \[{record.policy_id}\] .* no vector Q table"):
        composer.actions(np.array([[row]], dtype=np.int64))


def test_export_add_round_trip(lib):
    layout_id = lib.layout_ids[1]
    original = lib.record(6)
    exported = lib.export(6)
    assert exported.record == original and exported.q.flags.writeable
    record = lib.add(exported.q, original.objective, original.layout_id, q_vector=exported.q_vector,
                     support=exported)
    assert record.greedy_return == original.greedy_return and record.objective == original.objective
    back = lib.export(record.policy_id)
    for name in TABLES:
        np.testing.assert_array_equal(getattr(back, name), getattr(exported, name))
    psi = lib.features(layout_id).psi
    np.testing.assert_array_equal(psi[record.row], psi[original.row])
    # An added plain-Q policy exports without a vector Q and round-trips as one.
    plain = lib.add(exported.q, "path", layout_id)
    out = lib.export(plain.policy_id)
    assert out.q_vector is None
    again = lib.add(out.q, "path", layout_id, support=SupportLog(out.visits, out.next_state, out.reward_model))
    assert not again.vector_q
    for name in ("q", "visits", "next_state", "reward_model"):
        np.testing.assert_array_equal(getattr(lib.export(again.policy_id), name), getattr(out, name))


def test_trained_policy_is_added_with_its_own_log(lib, trained):
    record = lib.add(trained.q, trained.objective, lib.layout_ids[0], q_vector=trained.q_vector, support=trained)
    tables = lib.tables(record.layout_id)
    np.testing.assert_array_equal(tables.visits[record.row], trained.visits)
    np.testing.assert_array_equal(tables.next_state[record.row], trained.next_state)
    np.testing.assert_array_equal(tables.reward_model[record.row], trained.reward_model)


# -- bad inputs: refused before anything is written -----------------------------------------------

def _wall_pair(layout: Layout) -> np.ndarray:
    mask = np.zeros((layout.n_states, 4), dtype=bool)
    mask[int(np.flatnonzero(layout.cells.ravel() == WALL)[0]), 0] = True
    return mask


def _bad_next_state(layout, exported):
    ns = exported.next_state.copy()
    s, a = np.argwhere(exported.visits > 0)[0]
    ns[s, a] = (ns[s, a] + 1) % layout.n_states
    return SupportLog(exported.visits, ns, exported.reward_model)


def _bad_reward(layout, exported):
    rm = exported.reward_model.copy()
    s, a = np.argwhere(exported.visits > 0)[0]
    rm[s, a, 1] += 1.0  # path: history-free, so the world fixes it
    return SupportLog(exported.visits, exported.next_state, rm)


BAD = {
    "q shape": (lambda L, e: dict(q=np.zeros((L.n_states + 1, 4))), "shape"),
    "q 1-D": (lambda L, e: dict(q=np.zeros(L.n_states)), "shape"),
    "q NaN": (lambda L, e: dict(q=np.where(np.eye(L.n_states, 4) > 0, np.nan, 0.0)), "NaN"),
    "q inf": (lambda L, e: dict(q=np.full((L.n_states, 4), -np.inf)), "infinity"),
    "q bool": (lambda L, e: dict(q=np.zeros((L.n_states, 4), dtype=bool)), "real numbers"),
    "q text": (lambda L, e: dict(q=np.full((L.n_states, 4), "a")), "real numbers"),
    "q beyond float32": (lambda L, e: dict(q=np.full((L.n_states, 4), 1e39)), "float32"),
    "vector q beside vector q": (lambda L, e: dict(q=np.zeros((L.n_states, 4, 4)),
                                                   q_vector=np.zeros((L.n_states, 4, 4))), "already"),
    "q_vector shape": (lambda L, e: dict(q_vector=np.zeros((L.n_states, 4, 3))), "q_vector must have shape"),
    "unknown objective": (lambda L, e: dict(objective="speed"), "unknown objective"),
    "weighted objective": (lambda L, e: dict(objective="path*0.5"), "weighted"),
    "unknown layout": (lambda L, e: dict(layout="nope"), "new layout is not supported"),
    "no layout named": (lambda L, e: dict(layout=None), "name the one"),
    "layout of other seed": (lambda L, e: dict(layout=Layout.generate("grid8", seed=5)), "no layout"),
    "support shape": (lambda L, e: dict(support=np.ones((L.n_states, 3), dtype=bool)), "support must have"),
    "support float": (lambda L, e: dict(support=np.ones((L.n_states, 4))), "bool mask or integer"),
    "support negative": (lambda L, e: dict(support=-np.ones((L.n_states, 4), dtype=np.int64)), "0..2"),
    "support empty": (lambda L, e: dict(support=np.zeros((L.n_states, 4), dtype=bool)), "empty"),
    "support at a wall": (lambda L, e: dict(support=_wall_pair(L)), "walls, hazards or the exit"),
    "log next state": (lambda L, e: dict(support=_bad_next_state(L, e)), "leads to"),
    "log reward": (lambda L, e: dict(support=_bad_reward(L, e)), "the world gives"),
    "budget not text": (lambda L, e: dict(budget=5), "budget must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_before_any_write(lib, case):
    layout_id = lib.layout_ids[0]
    layout = lib.layout(layout_id)
    exported = lib.export(0)
    make, message = BAD[case]
    args = {"q": exported.q, "objective": "path", "layout": layout_id, **make(layout, exported)}
    before = snapshot(lib.root)
    with pytest.raises(LeverError, match=message):
        lib.add(args.pop("q"), args.pop("objective"), args.pop("layout"), **args)
    assert snapshot(lib.root) == before
    assert len(lib) == 8 and PolicyLibrary.open(lib.root).records == lib.records


def test_a_library_changed_by_another_writer_is_refused(lib):
    other = PolicyLibrary.open(lib.root)
    other.add(other.export(0).q, "path", lib.layout_ids[0])
    before = snapshot(lib.root)
    with pytest.raises(LeverError, match="changed on disk"):
        lib.add(lib.export(0).q, "path", lib.layout_ids[0])
    assert snapshot(lib.root) == before


# -- crashes in the middle of an add ---------------------------------------------------------------

@pytest.mark.parametrize("where", ["between arrays", "before manifest"])
def test_crash_mid_add_leaves_the_library_as_before(lib, monkeypatch, where):
    layout_id = lib.layout_ids[0]
    q = lib.export(0).q
    listed = {k: v for k, v in snapshot(lib.root).items() if k != ".lock"}
    if where == "before manifest":
        def crash(*args, **kwargs):
            raise RuntimeError("power cut")
        monkeypatch.setattr(add_module, "write_json", crash)
    else:
        real, calls = build_module.atomic_write, []

        def crash(path, *args, **kwargs):
            calls.append(path)
            if len(calls) == 4:
                raise RuntimeError("power cut")
            return real(path, *args, **kwargs)
        monkeypatch.setattr(build_module, "atomic_write", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        lib.add(q, "path", layout_id)
    monkeypatch.undo()
    after = snapshot(lib.root)
    assert {k: after[k] for k in listed} == listed  # every old file intact
    leftovers = sorted(set(after) - set(listed) - {".lock"})
    assert leftovers and all(".g1." in name for name in leftovers)
    # What a crash inside a write leaves: a temporary file beside its target.
    (lib.root / "layouts" / layout_id / ".q.g1.npy.x1y2.tmp").write_bytes(b"partial")
    reopened = PolicyLibrary.open(lib.root)
    assert reopened.records == lib.records and reopened.fingerprint == lib.fingerprint
    reopened.index()  # the saved index still matches
    # The next add removes the leftovers and succeeds.
    record = reopened.add(q, "path", layout_id)
    files = set(snapshot(reopened.root))
    manifest = json.loads((reopened.root / "manifest.json").read_text())
    assert files - {".lock", ".lever-library", "manifest.json"} == set(manifest["files"]) | {
        p.relative_to(reopened.root).as_posix() for p in (reopened.root / "index").rglob("*") if p.is_file()}
    assert PolicyLibrary.open(reopened.root).record(record.policy_id) == record


# -- version-2 libraries ----------------------------------------------------------------------------

def test_version_2_library_opens_and_is_upgraded_by_add(lib):
    path = lib.root / "manifest.json"
    doc = json.loads(path.read_text())
    doc["version"] = 2
    doc.pop("index")
    for record in doc["records"]:
        for name in ("source", "vector_q", "label"):
            record.pop(name)
    for entry in doc["layouts"]:
        entry.pop("generation")
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    old = PolicyLibrary.open(lib.root)
    assert [(r.source, r.vector_q, r.label) for r in old.records] == [("trained", True, "")] * 8
    old.index()  # built and saved: the manifest keeps version 2
    assert json.loads(path.read_text())["version"] == 2
    assert PolicyLibrary.open(lib.root).index().query("path", k=2, layout_id=old.layout_ids[0])
    record = old.add(old.export(0).q, "path", old.layout_ids[0])
    assert json.loads(path.read_text())["version"] == 3
    reopened = PolicyLibrary.open(lib.root)
    assert reopened.record(record.policy_id) == record and reopened.record(0).source == "trained"


# -- the command line -----------------------------------------------------------------------------

def test_cli_library_add(lib, trained, tmp_path, capsys):
    from lever.cli import main
    q_file, support_file = tmp_path / "q.npy", tmp_path / "visits.npy"
    np.save(q_file, trained.q)
    np.save(support_file, trained.visits)
    seed = lib.record(0).layout_seed
    assert main(["library", "add", str(lib.root), "--seed", str(seed), "--objective", "path+gold",
                 "--q", str(q_file), "--support", str(support_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["policy_id"], doc["support"], doc["label"], doc["source"]) == (8, "given", "q.npy", "added")
    assert doc["support_pairs"] == int(np.count_nonzero(trained.visits))
    assert main(["library", "add", str(lib.root), "--layout", lib.layout_ids[0], "--objective", "path",
                 "--q", str(q_file)]) == 0
    assert "added policy 9 (path)" in capsys.readouterr().out
    reopened = PolicyLibrary.open(lib.root)
    np.testing.assert_array_equal(reopened.tables(lib.layout_ids[0]).visits[4], trained.visits)
    before = snapshot(lib.root)
    assert main(["library", "add", str(lib.root), "--seed", str(seed), "--objective", "path",
                 "--q", str(tmp_path / "missing.npy")]) == 2
    assert main(["library", "add", str(lib.root), "--objective", "path", "--q", str(q_file)]) == 2  # 2 layouts
    assert "name the one" in capsys.readouterr().err
    assert snapshot(lib.root) == before
    assert main(["library", "info", str(lib.root), "--json"]) == 0
    layouts = json.loads(capsys.readouterr().out)["layouts"]
    added = {x["layout_id"]: x["added"] for x in layouts}
    assert added == {x: sum(r.source == "added" for r in reopened.records_for(x)) for x in lib.layout_ids}
    assert added[lib.layout_ids[0]] >= 2
    assert main(["library", "info", str(lib.root)]) == 0
    assert f"({added[lib.layout_ids[0]]} added)" in capsys.readouterr().out
