"""PolicyLibrary: round trip, resume after an interrupted build, corrupt files, the CLI."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lever import FileFormatError, Layout, LeverError, Objective, TrainConfig, rollout, train
from lever.cli import main
from lever.embeddings import EmbeddingConfig, canonical_states, embed_policies
from lever.library import STAGING, PolicyLibrary
from lever.index import IndexParams, PolicyIndex

SMALL = dict(setting="grid8", layout_seeds=(0, 1),
             objectives=("path", "gold", "hazard", "lever", "path+gold"), episodes=300, progress=False)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def array_files(root: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(root).items() if k.startswith("layouts/")}


def without_time(records):
    return [{**r.to_json(), "train_time": None} for r in records]


@pytest.fixture(scope="module")
def small_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib") / "small"
    return PolicyLibrary.build(root, jobs=1, **SMALL)


def test_round_trip_matches_direct_training(small_library):
    library = PolicyLibrary.open(small_library.root)
    assert library.records == small_library.records
    assert library.layout_ids == small_library.layout_ids and len(library.layout_ids) == 2
    assert [r.policy_id for r in library.records] == list(range(10))
    for layout_id, seed in zip(library.layout_ids, (0, 1)):
        layout = Layout.generate("grid8", seed=seed)
        assert library.layout(layout_id).to_text() == layout.to_text() and layout.id == layout_id
        tables = library.tables(layout_id)
        assert isinstance(tables.q, np.memmap) and not tables.q.flags.writeable
        assert tables.q.dtype == np.float32 and tables.q_vector.dtype == np.float32
        config = TrainConfig.from_budget("X1", "grid8", episodes=300, vector_q=True)
        for row, record in enumerate(library.records_for(layout_id)):
            assert record.row == row and record.layout_seed == seed and record.budget == "X1"
            assert tables.policy_ids[row] == record.policy_id
            policy = train(layout, record.objective, config)
            np.testing.assert_array_equal(tables.q[row], policy.q.astype(np.float32))
            np.testing.assert_array_equal(tables.q_vector[row], policy.q_vector.astype(np.float32))
            np.testing.assert_array_equal(tables.visits[row], policy.visits)
            np.testing.assert_array_equal(tables.next_state[row], policy.next_state)
            np.testing.assert_array_equal(tables.reward_model[row], policy.reward_model)
            truth = rollout(layout, np.asarray(tables.q[row]), record.objective)
            # The study's rules are not additive, so a record keeps the return of every component
            # set (indexed by mask) along the greedy route, not only the four single components'.
            assert record.greedy_return == tuple(truth.set_returns)
            assert record.greedy_return[record.objective.mask] == truth.ret
            assert tuple(record.greedy_return[1 << c] for c in range(4)) == tuple(truth.return_vector)
        states = library.canonical_states(layout_id)
        np.testing.assert_array_equal(states, canonical_states(layout, 16, 0))
        features = embed_policies(layout, np.asarray(tables.q), states, EmbeddingConfig())
        np.testing.assert_array_equal(library.features(layout_id).psi, features.psi)
        # ψ(start) is the stored greedy return (γ_embed = 1).
        np.testing.assert_allclose(library.features(layout_id).value_signatures,
                                   [r.greedy_return for r in library.records_for(layout_id)], atol=1e-9)
    assert [o.name for o in library.spec.objectives] == ["path", "gold", "hazard", "lever", "path+gold"]
    assert library.record(7).policy_id == 7
    assert len(library.records_for()) == 10


def test_parallel_build_equals_serial_build(small_library, tmp_path):
    parallel = PolicyLibrary.build(tmp_path / "par", jobs=2, **SMALL)
    assert array_files(parallel.root) == array_files(small_library.root)
    assert without_time(parallel.records) == without_time(small_library.records)


def test_interrupted_build_resumes_without_retraining(small_library, tmp_path):
    root = tmp_path / "resumed"
    done = []

    def interrupt(event):
        done.append(event.policy_id)
        if len(done) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PolicyLibrary.build(root, jobs=1, on_policy=interrupt, **SMALL)
    assert not (root / "manifest.json").exists()
    with pytest.raises(FileFormatError, match="unfinished build"):
        PolicyLibrary.open(root)
    staged = sorted(p.name for p in (root / STAGING).glob("p*.npz"))
    assert len(staged) == 4
    # A half-written shard (as a crash mid-write would leave under its temporary name) is ignored.
    (root / STAGING / ".p0000009.npz.tmp").write_bytes(b"partial")
    events = []
    library = PolicyLibrary.build(root, jobs=1, on_policy=events.append, **SMALL)
    assert sorted(e.policy_id for e in events if e.resumed) == done
    assert sorted(e.policy_id for e in events if not e.resumed) == sorted(set(range(10)) - set(done))
    assert array_files(root) == array_files(small_library.root)
    assert without_time(library.records) == without_time(small_library.records)
    assert not (root / STAGING).exists()
    # Building again opens the finished library and trains nothing.
    again = []
    PolicyLibrary.build(root, jobs=1, on_policy=again.append, **SMALL)
    assert again == []


def test_build_interrupted_while_writing_the_library_resumes(small_library, tmp_path, monkeypatch):
    import lever.library.build as library_module
    root = tmp_path / "finalize"
    real_write_json = library_module.write_json

    def crash_on_manifest(path, *args, **kwargs):
        if Path(path).name == "manifest.json":
            raise OSError("disk full")
        return real_write_json(path, *args, **kwargs)

    monkeypatch.setattr(library_module, "write_json", crash_on_manifest)
    with pytest.raises(OSError, match="disk full"):
        PolicyLibrary.build(root, jobs=1, **SMALL)
    monkeypatch.setattr(library_module, "write_json", real_write_json)
    assert (root / "layouts").is_dir() and not (root / "manifest.json").exists()
    with pytest.raises(FileFormatError, match="unfinished build"):
        PolicyLibrary.open(root)
    events = []
    PolicyLibrary.build(root, jobs=1, on_policy=events.append, **SMALL)
    assert len(events) == 10 and all(e.resumed for e in events)
    assert array_files(root) == array_files(small_library.root)


def test_resume_retrains_a_corrupt_staged_policy(small_library, tmp_path):
    root = tmp_path / "corrupt-stage"
    with pytest.raises(KeyboardInterrupt):
        PolicyLibrary.build(root, jobs=1, on_policy=lambda e: (_ for _ in ()).throw(KeyboardInterrupt)
                            if e.policy_id == 2 else None, **SMALL)
    shard = root / STAGING / "p0000001.npz"
    shard.write_bytes(shard.read_bytes()[:50])
    events = []
    PolicyLibrary.build(root, jobs=1, on_policy=events.append, **SMALL)
    assert sorted(e.policy_id for e in events if e.resumed) == [0, 2]
    assert array_files(root) == array_files(small_library.root)


def test_other_settings_never_overwrite(small_library, tmp_path):
    with pytest.raises(LeverError, match="other settings"):
        PolicyLibrary.build(small_library.root, jobs=1, **{**SMALL, "episodes": 301})
    root = tmp_path / "staged"
    with pytest.raises(KeyboardInterrupt):
        PolicyLibrary.build(root, jobs=1, on_policy=lambda e: (_ for _ in ()).throw(KeyboardInterrupt),
                            **SMALL)
    before = snapshot(root)
    with pytest.raises(LeverError, match="interrupted build with other settings"):
        PolicyLibrary.build(root, jobs=1, **{**SMALL, "train_seed": 5})
    assert snapshot(root) == before


@pytest.mark.parametrize("kwargs, message", [
    ({"setting": "grid9"}, "unknown grid setting"),
    ({"budgets": ("X2",)}, "unknown budget"),
    ({"objectives": ()}, "at least one"),
    ({"objectives": ("path", "path")}, "repeat"),
    ({"objectives": ("speed",)}, "unknown objective"),
    ({"algorithm": "td"}, "unknown algorithm"),
    ({"gamma": 2.0}, "gamma"),
    ({"jobs": 0}, "jobs"),
    ({"q_dtype": "float16"}, "q_dtype"),
    ({"episodes": 0}, "episodes"),
    ({"embedding": EmbeddingConfig(n_states=500)}, "free cells"),
    ({"rules": "additive"}, "unknown rules"),
    ({"objectives": ("path", "path*0.5+gold")}, "weighted"),  # the study's rules reward sets only
])
def test_bad_build_input_fails_before_any_work(tmp_path, kwargs, message):
    root = tmp_path / "never"
    with pytest.raises(LeverError, match=message):
        PolicyLibrary.build(root, **{**SMALL, **kwargs})
    assert not root.exists()


def test_linear_rules_library(small_library, tmp_path):
    """Under linear rules a library takes weighted objectives and records returns under those rules."""
    options = {**SMALL, "layout_seeds": (0,), "objectives": ("path", "gold*0.5+lever", "path+gold")}
    library = PolicyLibrary.build(tmp_path / "linear", jobs=1, rules="linear", **options)
    again = PolicyLibrary.open(library.root)
    assert again.spec.rules == "linear" and again.records == library.records
    assert [o.name for o in again.spec.objectives] == ["path", "gold*0.5+lever", "path+gold"]
    layout_id = again.layout_ids[0]
    layout = again.layout(layout_id)
    tables = again.tables(layout_id)
    config = TrainConfig.from_budget("X1", "grid8", episodes=300, vector_q=True, rules="linear")
    for row, record in enumerate(again.records_for(layout_id)):
        policy = train(layout, record.objective, config)
        np.testing.assert_array_equal(tables.q[row], policy.q.astype(np.float32))
        truth = rollout(layout, np.asarray(tables.q[row]), record.objective, rules="linear")
        assert record.greedy_return == tuple(truth.set_returns)
        # Linear rules: the objective's return is w · (single-component returns), exactly.
        signature = np.asarray(record.greedy_return)
        assert signature @ record.objective.set_weights("linear") == pytest.approx(truth.ret, abs=1e-9)
    # The rules are part of the spec: a build with the other rules never reuses this one.
    with pytest.raises(LeverError, match="other settings"):
        PolicyLibrary.build(library.root, jobs=1, rules="study", **{**options, "objectives": ("path",)})
    with pytest.raises(LeverError, match="other settings"):
        PolicyLibrary.build(small_library.root, jobs=1, rules="linear", **SMALL)


def _rewrite_manifest(root: Path, change) -> None:
    path = root / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _corrupt(root: Path, case: str, layout_id: str) -> str:
    """Damage the copy at ``root``; returns the file name the error must mention."""
    folder = root / "layouts" / layout_id
    if case == "truncated":
        target = folder / "q.npy"
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif case == "flipped":
        target = folder / "visits.npy"
        data = bytearray(target.read_bytes())
        data[-5] ^= 0x40
        target.write_bytes(bytes(data))
    elif case == "version":
        target = root / "manifest.json"
        _rewrite_manifest(root, lambda d: d.update(version=99))
    elif case == "missing":
        target = folder / "psi.npy"
        target.unlink()
    elif case == "other-kind":
        target = root / "manifest.json"
        Layout.generate("grid8", seed=0).save(target)
    elif case == "not-json":
        target = root / "manifest.json"
        target.write_text("{not json")
    elif case == "shape":
        # A well-formed array of the wrong shape whose checksum the manifest agrees with:
        # only the shape check can catch it.
        target = folder / "next_state.npy"
        np.save(target, np.zeros((3, 2), dtype=np.int32))
        key = target.relative_to(root).as_posix()
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        _rewrite_manifest(root, lambda d: d["files"][key].update(
            sha256=digest, bytes=target.stat().st_size, shape=[3, 2]))
    elif case == "layout":
        target = folder / "layout.json"
        target.write_text(target.read_text().replace('"version": 1', '"version": 7'))
        key = target.relative_to(root).as_posix()
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        _rewrite_manifest(root, lambda d: d["files"][key].update(sha256=digest, bytes=target.stat().st_size))
    else:
        raise AssertionError(case)
    return target.name


@pytest.mark.parametrize("case", ["truncated", "flipped", "version", "missing", "other-kind", "not-json",
                                  "shape", "layout"])
def test_corrupt_files_are_named_and_left_alone(small_library, tmp_path, case):
    root = tmp_path / "copy"
    shutil.copytree(small_library.root, root)
    name = _corrupt(root, case, small_library.layout_ids[1])
    before = snapshot(root)
    with pytest.raises(FileFormatError, match=name.replace(".", r"\.")):
        PolicyLibrary.open(root)
    # Neither opening nor a build over it changes anything on disk.
    with pytest.raises(FileFormatError):
        PolicyLibrary.build(root, jobs=1, **SMALL)
    assert snapshot(root) == before


def test_corrupt_index_is_named(small_library, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(small_library.root, root)
    PolicyLibrary.open(root).index(rebuild=True, params=IndexParams(exact_below=0, exact_below_similarity=0))  # graphs to damage
    target = root / "index" / "group0.mips.bin"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    library = PolicyLibrary.open(root)
    with pytest.raises(FileFormatError, match="group0.mips.bin"):
        library.index()
    fresh = library.index(rebuild=True)
    assert fresh.query("path", 3) == small_library.index().query("path", 3)
    assert PolicyLibrary.open(root).index().query("gold", 2) == small_library.index().query("gold", 2)


def test_index_is_persisted_and_answers_like_brute_force(small_library):
    index = PolicyLibrary.open(small_library.root).index()
    signatures = small_library.value_signatures()
    for objective in ("path", "path+gold", "gold+lever", "path+gold+hazard+lever"):
        # Signatures are returns of the 16 component sets; under the study's rules an objective's
        # predicted return is its set's entry (set weights W, one-hot), not w · (single returns).
        w = Objective.parse(objective).set_weights("study")
        expected = sorted(range(len(signatures)), key=lambda i: (-(signatures[i] @ w), i))[:4]
        assert [c.policy_id for c in index.query(objective, 4)] == expected
        for layout_id in small_library.layout_ids:
            for c in index.query(objective, 5, layout_id):
                assert small_library.record(c.policy_id).layout_id == layout_id


def test_access_errors(small_library):
    with pytest.raises(LeverError, match="not in this library"):
        small_library.tables("nope")
    with pytest.raises(LeverError, match="not in this library"):
        small_library.records_for("nope")
    with pytest.raises(LeverError, match="policy id"):
        small_library.record(10)
    with pytest.raises(FileFormatError, match="manifest.json"):
        PolicyLibrary.open(small_library.root / "does-not-exist")


def test_cli_build_info_search(tmp_path, capsys):
    root = tmp_path / "cli-lib"
    assert main(["library", "build", "--grid", "grid8", "--seeds", "0", "1", "--objectives", "path", "gold",
                 "--episodes", "200", "--jobs", "1", "--no-progress", "--out", str(root)]) == 0
    assert "4 policies on 2 layouts" in capsys.readouterr().out
    assert main(["library", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 policies, 2 layouts" in out and out.count("support covers") == 2
    # Policies of different layouts are never ranked together (a layout must be chosen), and k is
    # capped at the layout's policies rather than refused.
    assert main(["search", str(root), "--objective", "path+gold", "--seed", "0", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 2 and lines[2].split()[0] == "1"
    assert main(["search", str(root), "--objective", "path", "-k", "9"]) == 2
    assert "choose one with --seed or --layout" in capsys.readouterr().err
    assert main(["library", "info", str(tmp_path / "missing")]) == 2


def test_an_index_of_an_older_format_is_rebuilt(small_library, tmp_path):
    # An intact index saved by an older lever (format version 2: graphs for every group) is not
    # damage: the library rebuilds it in the current format and records the new one.
    root = tmp_path / "copy"
    shutil.copytree(small_library.root, root)
    index_manifest = root / "index" / "manifest.json"
    doc = json.loads(index_manifest.read_text())
    doc["version"] = 2
    index_manifest.write_text(json.dumps(doc))
    library_manifest = json.loads((root / "manifest.json").read_text())
    library_manifest["index"] = {"sha256": hashlib.sha256(index_manifest.read_bytes()).hexdigest(),
                                 "bytes": index_manifest.stat().st_size}
    (root / "manifest.json").write_text(json.dumps(library_manifest, indent=1, sort_keys=True))
    with pytest.raises(FileFormatError, match="format version 2, this lever reads 3"):
        PolicyIndex.load(root / "index")
    index = PolicyLibrary.open(root).index()
    assert index.query("path", 3) == small_library.index().query("path", 3)
    assert json.loads(index_manifest.read_text())["version"] == 3
    assert PolicyLibrary.open(root).index().query("gold", 2) == small_library.index().query("gold", 2)
