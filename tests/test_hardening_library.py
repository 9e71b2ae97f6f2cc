"""Policy libraries under hostile conditions: concurrent writers, hand-edited manifests, paths leading
outside, rewritten index files, Q tables that are not finite."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import lever.index_graphs as graphs_module
import lever.library.build as build_module
import lever.library.store as store_module
from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.index import IndexParams
from lever.library import STAGING, PolicyLibrary
from lever.library.checks import UnusableTables, manifest_fingerprint

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(setting="grid8", layout_seeds=(0,), objectives=("path", "gold"), episodes=200, jobs=1,
            progress=False)


@pytest.fixture(scope="module")
def tiny_library(tmp_path_factory):
    return PolicyLibrary.build(tmp_path_factory.mktemp("hardening") / "tiny", **TINY)


@pytest.fixture
def copy(tiny_library, tmp_path):
    """A fresh copy of the tiny library to damage."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_library.root, root)
    return root


def read_manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def write_manifest(root: Path, doc: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(doc))


def is_locked(path: Path) -> bool:
    """Whether another process holds a lock on ``path`` (a lock file)."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError as exc:
        assert exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
        return True
    finally:
        os.close(fd)


# -- one writer at a time ------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lever.library import PolicyLibrary

    root, release = Path(sys.argv[1]), Path(sys.argv[2])

    def wait_for_release(event):
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    PolicyLibrary.build(root, setting="grid8", layout_seeds=(0,), objectives=("path", "gold"), episodes=200,
                        jobs=1, progress=False, on_policy=wait_for_release)
""")


@pytest.fixture
def building(tmp_path):
    """A library build in another process, stopped after its first policy until ``release`` is touched."""
    root, release = tmp_path / "contested", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(release)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (is_locked(root / ".lock") and list((root / STAGING).glob("p*.npz"))):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the build never took its lock"
        time.sleep(0.05)
    yield root, release, process
    release.touch()
    if process.poll() is None:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    process.communicate()


def test_a_second_build_stops_at_once_and_readers_wait(building, monkeypatch):
    root, release, process = building
    began = time.monotonic()
    with pytest.raises(LeverError, match="being written by another lever process") as error:
        PolicyLibrary.build(root, **TINY)
    assert time.monotonic() - began < 2 and "\n" not in str(error.value)
    assert f"pid {process.pid}" in str(error.value)
    # A reader waits for the writer, then gives up with the same clear error rather than read half a library.
    monkeypatch.setattr(store_module, "LOCK_WAIT_S", 0.3)
    with pytest.raises(LeverError, match="being written by another lever process"):
        PolicyLibrary.open(root)
    release.touch()
    assert process.wait(timeout=120) == 0, process.communicate()
    library = PolicyLibrary.build(root, **TINY)  # the finished library opens; nothing is retrained
    assert len(library) == 2 and not (root / STAGING).exists()


def test_reindex_waits_for_no_one_else_writing(tiny_library, copy, monkeypatch):
    library = PolicyLibrary.open(copy)
    monkeypatch.setattr(store_module, "LOCK_WAIT_S", 0.2)
    from lever.fileio import exclusive_lock

    with exclusive_lock(copy, "library"):  # another writer (a lock is per open file, so this counts)
        with pytest.raises(LeverError, match="being written"):
            library.index(rebuild=True)
    assert library.index(rebuild=True).query("gold", 1) == tiny_library.index().query("gold", 1)


# -- the index is checked against the library manifest before hnswlib reads it -------------------------

class NoHnswlib:
    """Stands in for hnswlib: any use of it fails the test."""

    class Index:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a damaged index file reached hnswlib")


def _damage_bin(root: Path, how: str, rng: np.random.Generator) -> Path:
    # A library this small is searched exactly by default: give its index graphs to damage.
    PolicyLibrary.open(root).index(rebuild=True, params=IndexParams(exact_below=0, exact_below_similarity=0))
    target = root / "index" / "group0.mips.bin"
    data = bytearray(target.read_bytes())
    if how == "random":
        data = bytearray(rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes())
    else:
        for position in rng.choice(len(data), size=20, replace=False):
            data[position] ^= int(rng.integers(1, 256))
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("how", ["random", "20 bytes"])
@pytest.mark.parametrize("consistent", [False, True], ids=["bin only", "index manifest updated too"])
def test_rewritten_index_file_never_reaches_hnswlib(copy, monkeypatch, how, consistent):
    target = _damage_bin(copy, how, np.random.default_rng(len(how) + consistent))
    if consistent:  # the index's own manifest agrees with the new bytes: only the library's record catches it
        index_manifest = copy / "index" / "manifest.json"
        doc = json.loads(index_manifest.read_text())
        doc["files"][target.name] = {"sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                                     "bytes": target.stat().st_size}
        index_manifest.write_text(json.dumps(doc, indent=1, sort_keys=True))
    library = PolicyLibrary.open(copy)
    monkeypatch.setattr(graphs_module, "hnswlib", NoHnswlib)
    with pytest.raises(FileFormatError, match=f"run `lever library reindex {copy}`") as error:
        library.index()
    assert ("manifest.json" if consistent else target.name) in str(error.value)


def test_reindex_command_repairs_a_damaged_index(tiny_library, copy, capsys):
    _damage_bin(copy, "random", np.random.default_rng(3))
    assert main(["search", str(copy), "--objective", "gold", "-k", "1"]) == 2
    err = capsys.readouterr().err
    assert f"lever library reindex {copy}" in err and err.count("\n") == 1
    assert main(["library", "reindex", str(copy)]) == 0
    assert "rebuilt: 2 policies, 1 layouts" in capsys.readouterr().out
    again = PolicyLibrary.open(copy).index()
    assert again.query("path", 2) == tiny_library.index().query("path", 2)
    assert main(["library", "reindex", str(copy.parent / "missing")]) == 2


def test_index_of_other_data_or_a_stale_record_names_reindex(tiny_library, copy, tmp_path):
    other = PolicyLibrary.build(tmp_path / "other", **{**TINY, "objectives": ("path", "hazard")})
    shutil.rmtree(copy / "index")
    shutil.copytree(other.root / "index", copy / "index")  # a whole, self-consistent index of other data
    with pytest.raises(FileFormatError, match="stale, modified or from other data.*; run `lever library reindex"):
        PolicyLibrary.open(copy).index()
    # The record names the index of other data too: then its fingerprint gives it away.
    doc = read_manifest(copy)
    doc["index"] = read_manifest(other.root)["index"]
    write_manifest(copy, doc)
    with pytest.raises(FileFormatError, match="built from other data; run `lever library reindex"):
        PolicyLibrary.open(copy).index()
    PolicyLibrary.open(copy).index(rebuild=True)
    assert PolicyLibrary.open(copy).index().query("gold", 2) == tiny_library.index().query("gold", 2)


def test_a_missing_index_is_rebuilt_and_recorded_and_the_fingerprint_is_kept(tiny_library, copy):
    fingerprint = PolicyLibrary.open(copy).fingerprint
    assert fingerprint == tiny_library.fingerprint
    shutil.rmtree(copy / "index")
    doc = read_manifest(copy)
    del doc["index"]  # a library saved before its index was recorded
    (copy / "manifest.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    assert hashlib.sha256((copy / "manifest.json").read_bytes()).hexdigest() == fingerprint
    library = PolicyLibrary.open(copy)
    assert library.fingerprint == fingerprint
    assert library.index().query("path", 2) == tiny_library.index().query("path", 2)
    assert "index" in read_manifest(copy) and manifest_fingerprint(read_manifest(copy)) == fingerprint
    assert PolicyLibrary.open(copy).index().query("gold", 2) == tiny_library.index().query("gold", 2)


# -- opening never reads outside the library ---------------------------------------------------------

@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "secret.npy"
    path.parent.mkdir()
    np.save(path, np.full(7, 12345, dtype=np.int64))
    return path


def _first_array(doc: dict) -> str:
    return next(name for name in doc["files"] if name.endswith("/q.npy"))


def _escape(root: Path, secret: Path, case: str) -> str:
    """Make the copy at ``root`` point outside itself; returns the manifest entry the error must name."""
    doc = read_manifest(root)
    name = _first_array(doc)
    entry = doc["files"][name]
    if case == "absolute":
        doc["files"][str(secret)] = entry
        write_manifest(root, doc)
        return str(secret)
    if case == "dotdot":
        escape = os.path.relpath(secret, root)
        doc["files"][escape] = entry
        write_manifest(root, doc)
        return escape
    if case == "symlinked file":
        (root / name).unlink()
        (root / name).symlink_to(secret)
        return name
    if case == "symlinked folder":
        folder = (root / name).parent
        shutil.rmtree(folder)
        folder.symlink_to(secret.parent, target_is_directory=True)
        return f"manifest entry '{folder.relative_to(root).as_posix()}/"
    if case == "layout id":
        doc["layouts"][0]["layout_id"] = "../outside"
        write_manifest(root, doc)
        return "layout id"
    if case == "symlinked manifest":
        outside = secret.parent / "manifest.json"
        shutil.move(root / "manifest.json", outside)
        (root / "manifest.json").symlink_to(outside)
        return "manifest.json"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlinked file", "symlinked folder", "layout id",
                                  "symlinked manifest"])
def test_manifest_paths_never_lead_outside(copy, secret, case, monkeypatch):
    named = _escape(copy, secret, case)
    leaks = (f"{secret.stat().st_size} bytes", hashlib.sha256(secret.read_bytes()).hexdigest()[:12], "12345")
    read = []
    real_open = io.open

    def watching_open(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            read.append(Path(path).resolve())
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    monkeypatch.setattr(io, "open", watching_open)
    with pytest.raises(FileFormatError) as error:
        PolicyLibrary.open(copy)
    message = str(error.value)
    assert named in message and "\n" not in message
    # Nothing about the outside file: neither its size nor its checksum nor its contents.
    assert not any(leak in message for leak in leaks)
    assert secret.resolve() not in read and (secret.parent / "manifest.json").resolve() not in read


def test_a_symlink_that_stays_inside_is_fine(copy):
    name = _first_array(read_manifest(copy))
    (copy / "elsewhere").mkdir()
    shutil.move(copy / name, copy / "elsewhere" / "q.npy")
    (copy / name).symlink_to(copy / "elsewhere" / "q.npy")
    assert len(PolicyLibrary.open(copy)) == 2


def test_an_index_folder_leading_outside_is_refused(copy, tmp_path):
    shutil.move(copy / "index", tmp_path / "index-outside")
    (copy / "index").symlink_to(tmp_path / "index-outside", target_is_directory=True)
    with pytest.raises(FileFormatError, match="'index/manifest.json' points outside"):
        PolicyLibrary.open(copy).index()


# -- every manifest field is type-checked ------------------------------------------------------------

def _set(path: str, value):
    """A change of the manifest document: set the field at dotted ``path`` (list indices as numbers)."""
    def change(doc):
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if last.isdigit():
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return change


_DELETE = object()
FIELD_CASES = {
    "spec null": _set("spec", None), "spec array": _set("spec", []), "spec string": _set("spec", "grid8"),
    "spec.gamma string": _set("spec.gamma", "0.5"), "spec.gamma true": _set("spec.gamma", True),
    "spec.layout_seeds string": _set("spec.layout_seeds", "0"),
    "spec.layout_seeds[0] null": _set("spec.layout_seeds.0", None),
    "spec.objectives[0] string": _set("spec.objectives.0", "path"),
    "spec.objectives[0][0] string": _set("spec.objectives.0.0", "1"),
    "spec.objectives[0] short": _set("spec.objectives.0", [1, 0]),
    "spec.embedding null": _set("spec.embedding", None),
    "spec.embedding.n_states string": _set("spec.embedding.n_states", "16"),
    "spec.embedding extra": _set("spec.embedding.extra", 1),
    "spec.setting number": _set("spec.setting", 8), "spec.setting unknown": _set("spec.setting", "grid99"),
    "spec.episodes string": _set("spec.episodes", "200"), "spec.q_dtype array": _set("spec.q_dtype", ["f4"]),
    "spec missing rules": _set("spec.rules", _DELETE), "spec extra": _set("spec.colour", "red"),
    "records null": _set("records", None), "records object": _set("records", {}),
    "records string": _set("records", "all"), "records[0] null": _set("records.0", None),
    "records[0] array": _set("records.0", []), "records[0].policy_id string": _set("records.0.policy_id", "0"),
    "records[0].objective null": _set("records.0.objective", None),
    "records[0].objective string": _set("records.0.objective", "path"),
    "records[0].objective zero": _set("records.0.objective", [0, 0, 0, 0]),
    "records[0].greedy_return short": _set("records.0.greedy_return", [1.0, 2.0]),
    "records[0].greedy_return strings": _set("records.0.greedy_return", ["a"] * 16),
    "records[0].train_time string": _set("records.0.train_time", "1"),
    "records[0].row float": _set("records.0.row", 1.5), "records[0].layout_id number": _set("records.0.layout_id", 7),
    "records[0] missing budget": _set("records.0.budget", _DELETE),
    "layouts null": _set("layouts", None), "layouts object": _set("layouts", {}),
    "layouts[0] null": _set("layouts.0", None), "layouts[0].layout_id null": _set("layouts.0.layout_id", None),
    "layouts[0].n_policies string": _set("layouts.0.n_policies", "2"),
    "layouts[0].n_policies negative": _set("layouts.0.n_policies", -1),
    "layouts repeated": lambda doc: doc["layouts"].append(dict(doc["layouts"][0])),
    "files null": _set("files", None), "files array": _set("files", []), "files string": _set("files", "x"),
    "index array": _set("index", []), "index string": _set("index", "abc"),
    "index.sha256 number": _set("index.sha256", 5), "unknown top-level field": _set("extra", 1),
}


def _file_case(field: str, value):
    def change(doc):
        name = _first_array(doc)
        if field is None:
            doc["files"][name] = value
        else:
            doc["files"][name][field] = value
    return change


FIELD_CASES.update({
    "files[q] null": _file_case(None, None), "files[q] string": _file_case(None, "abc"),
    "files[q].bytes string": _file_case("bytes", "12"), "files[q].shape string": _file_case("shape", "3"),
    "files[q].shape[0] null": _file_case("shape", [None]), "files[q].sha256 number": _file_case("sha256", 5),
    "files[q] extra": _file_case("mode", "rw"),
})


@pytest.mark.parametrize("case", sorted(FIELD_CASES))
def test_a_hand_edited_manifest_field_is_a_clear_error(copy, case):
    doc = read_manifest(copy)
    FIELD_CASES[case](doc)
    write_manifest(copy, doc)
    with pytest.raises(FileFormatError, match="manifest.json") as error:  # never AttributeError, TypeError...
        PolicyLibrary.open(copy)
    assert "\n" not in str(error.value)


def test_numbers_out_of_range_and_deep_nesting_are_clear_errors(copy):
    raw = (copy / "manifest.json").read_text()
    doc = json.loads(raw)
    assert '"gamma": 0.0' in raw
    # 1e400 would read as infinity: refused when the JSON is parsed, naming the token.
    (copy / "manifest.json").write_text(raw.replace('"gamma": 0.0', '"gamma": 1e400', 1))
    with pytest.raises(FileFormatError, match="manifest.json.*1e400 is not allowed"):
        PolicyLibrary.open(copy)
    doc["spec"] = "PLACEHOLDER"
    (copy / "manifest.json").write_text(json.dumps(doc).replace('"PLACEHOLDER"', "[" * 5000 + "]" * 5000))
    with pytest.raises(FileFormatError, match="manifest.json.*nested"):
        PolicyLibrary.open(copy)


# -- an unusable library is never saved --------------------------------------------------------------

def _poisoned_train(table: str, value: float, on_call: int = 1):
    real = build_module.train
    calls = []

    def train(*args, **kwargs):
        policy = real(*args, **kwargs)
        calls.append(1)
        if len(calls) < on_call:
            return policy
        bad = getattr(policy, table).copy()
        bad.flat[3] = value
        return dataclasses.replace(policy, **{table: bad})
    return train


@pytest.mark.parametrize("table, value", [("q", np.nan), ("q_vector", np.inf), ("q", 1e39)])
def test_non_finite_tables_stop_the_build_and_leave_nothing(tmp_path, monkeypatch, table, value):
    monkeypatch.setattr(build_module, "train", _poisoned_train(table, value))
    root = tmp_path / "never"
    with pytest.raises(UnusableTables, match="training path at budget X1 on layout seed 0") as error:
        PolicyLibrary.build(root, **TINY)
    assert isinstance(error.value, LeverError) and "NaN or infinity" in str(error.value)
    assert not root.exists()  # the build created it, so nothing of it is left
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(UnusableTables):
        PolicyLibrary.build(existing, **TINY)
    assert [p.name for p in existing.iterdir()] == [".lock"]  # no staging, no manifest


def test_a_resumed_build_keeps_its_earlier_staged_policies(tmp_path, monkeypatch):
    root = tmp_path / "resumed"

    def interrupt(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PolicyLibrary.build(root, on_policy=interrupt, **TINY)
    staged = sorted(p.name for p in (root / STAGING).glob("p*.npz"))
    assert len(staged) == 1
    monkeypatch.setattr(build_module, "train", _poisoned_train("q", np.nan))
    with pytest.raises(UnusableTables, match="gold"):
        PolicyLibrary.build(root, **TINY)
    assert sorted(p.name for p in (root / STAGING).glob("p*.npz")) == staged
    assert not (root / "manifest.json").exists()


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2", True])
def test_bad_jobs_fail_before_any_work(tmp_path, jobs):
    root = tmp_path / "jobs"
    with pytest.raises(LeverError, match="jobs must be an integer >= 1"):
        PolicyLibrary.build(root, **{**TINY, "jobs": jobs})
    assert not root.exists()
