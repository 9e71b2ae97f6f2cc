"""Atomic writes, strict JSON, manifest paths and field types (lever.fileio)."""

import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lever import fileio
from lever.errors import FileFormatError, LeverError
from lever.fileio import (MAX_JSON_DEPTH, atomic_write, check_type, read_json, resolve_inside,
                          write_json)

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(AS_ROOT, reason="root ignores permission bits")


@pytest.fixture
def umask():
    """Set the process umask for one test: ``umask(0o077)``; the old one comes back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def leftovers(directory: Path) -> list[str]:
    """Temporary files atomic_write would leave behind in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# atomic_write ---------------------------------------------------------------------------------

def test_atomic_write_text_and_binary(tmp_path):
    atomic_write(tmp_path / "sub" / "a.txt", lambda h: h.write("hello"))
    atomic_write(tmp_path / "b.bin", lambda h: h.write(b"\x00\x01"), binary=True)
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == leftovers(tmp_path / "sub") == []


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write(tmp_path / "a.txt", lambda h: h.write("x"))
    write_json(tmp_path / "a.json", "thing", 1, {})
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "a.json") == expected
    assert os.umask(mask) == mask  # and the umask itself is left as it was


def test_atomic_write_replaces_and_takes_the_umask_again(tmp_path, umask):
    umask(0o077)
    atomic_write(tmp_path / "a.txt", lambda h: h.write("old"))
    umask(0o022)
    atomic_write(tmp_path / "a.txt", lambda h: h.write("new"))
    assert (tmp_path / "a.txt").read_text() == "new"
    assert mode(tmp_path / "a.txt") == 0o644


def test_atomic_write_below_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file" / "a.json", tmp_path / "file" / "deeper" / "a.json"):
        with pytest.raises(LeverError, match=rf"^cannot write {target}: "):
            atomic_write(target, lambda h: h.write("x"))
    assert leftovers(tmp_path) == []


def test_atomic_write_over_a_directory_leaves_no_temp_file(tmp_path):
    (tmp_path / "a.json").mkdir()
    with pytest.raises(LeverError, match=rf"^cannot write {tmp_path / 'a.json'}: "):
        atomic_write(tmp_path / "a.json", lambda h: h.write("x"))
    assert leftovers(tmp_path) == []


@needs_non_root
def test_atomic_write_in_an_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(LeverError, match=rf"^cannot write {locked / 'a.json'}: Permission denied"):
            atomic_write(locked / "a.json", lambda h: h.write("x"))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_atomic_write_translates_a_refused_temp_file(tmp_path, monkeypatch):
    def refuse(**_):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(LeverError, match=rf"^cannot write {tmp_path / 'a.json'}: Permission denied$"):
        atomic_write(tmp_path / "a.json", lambda h: h.write("x"))


def test_atomic_write_cleans_up_when_writing_fails(tmp_path):
    (tmp_path / "a.txt").write_text("old")

    def disk_full(handle):
        handle.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(LeverError, match="No space left on device"):
        atomic_write(tmp_path / "a.txt", disk_full)

    def bug(handle):
        raise RuntimeError("not an I/O problem")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", bug)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert leftovers(tmp_path) == []


# write_json / read_json -------------------------------------------------------------------------

def test_json_round_trip(tmp_path):
    write_json(tmp_path / "a.json", "thing", 2, {"x": [1, 2.5, None, "é"], "y": {"z": True}})
    document = read_json(tmp_path / "a.json", "thing", 2)
    assert document == {"format": "thing", "version": 2, "x": [1, 2.5, None, "é"], "y": {"z": True}}


finite = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)


@settings(max_examples=30, deadline=None)
@given(payload=st.dictionaries(st.text().filter(lambda k: k not in ("format", "version")), finite))
def test_json_round_trip_of_any_finite_payload(payload):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "a.json"
        write_json(path, "thing", 1, payload)
        assert read_json(path, "thing", 1) == {"format": "thing", "version": 1, **payload}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_write_json_refuses_nan_and_infinity(tmp_path, bad):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(LeverError, match="contains NaN or infinity; not written"):
        write_json(path, "thing", 1, {"rows": [{"ratio": bad}]})
    assert path.read_text() == "old"
    assert leftovers(tmp_path) == []
    with pytest.raises(LeverError):
        write_json(tmp_path / "new.json", "thing", 1, {"x": bad})
    assert not (tmp_path / "new.json").exists()


def test_write_json_circular_payload_is_a_plain_value_error(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular") as info:
        write_json(tmp_path / "a.json", "thing", 1, {"x": loop})
    assert not isinstance(info.value, LeverError)


def write_raw(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "a.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_read_json_refuses_nan_and_infinity(tmp_path, token):
    path = write_raw(tmp_path, f'{{"format": "thing", "version": 1, "x": [1, {token}]}}')
    with pytest.raises(FileFormatError, match=rf"^{path}: not a valid thing file \({token} is not allowed\)"):
        read_json(path, "thing", 1)


def nested(depth: int) -> str:
    """A thing document whose lists and dicts nest ``depth`` levels deep in all."""
    return '{"format": "thing", "version": 1, "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_read_json_depth_limit(tmp_path):
    path = write_raw(tmp_path, nested(MAX_JSON_DEPTH))
    assert read_json(path, "thing", 1)["format"] == "thing"
    path = write_raw(tmp_path, nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(FileFormatError, match=rf"^{path}: .*nested more than {MAX_JSON_DEPTH} levels"):
        read_json(path, "thing", 1)


def test_read_json_far_too_deep_is_a_format_error_not_a_recursion_error(tmp_path):
    path = write_raw(tmp_path, nested(200_000))
    with pytest.raises(FileFormatError, match=rf"^{path}: "):
        read_json(path, "thing", 1)


def test_read_json_of_a_directory(tmp_path):
    with pytest.raises(FileFormatError, match=rf"^{tmp_path}: is a directory, not a thing file$"):
        read_json(tmp_path, "thing", 1)


@needs_non_root
def test_read_json_of_an_unreadable_file(tmp_path):
    path = write_raw(tmp_path, nested(1))
    path.chmod(0)
    with pytest.raises(FileFormatError, match=rf"^{path}: cannot read \(Permission denied\)$"):
        read_json(path, "thing", 1)


def test_read_json_translates_a_permission_error(tmp_path, monkeypatch):
    path = write_raw(tmp_path, nested(1))

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(FileFormatError, match=rf"^{path}: cannot read \(Permission denied\)$"):
        read_json(path, "thing", 1)


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",  # binary
    b"\xff\xfe{\x00}\x00",  # UTF-16
    b'{"format": "thing", "version": 1, "x": "caf\xe9"}',  # Latin-1
    b"\x00" * 16,
    b"",
    b'{"format": "thing", "version": 1',  # truncated
    b'{"format": "thing", "version": 1, "x": ' + b"1" * 5000 + b"}",  # an integer too long to convert
])
def test_read_json_of_garbage_names_the_file(tmp_path, content):
    path = write_raw(tmp_path, content)
    with pytest.raises(FileFormatError, match=rf"^{path}: not a valid thing file \("):
        read_json(path, "thing", 1)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "not a thing file"),
    ('{"format": "other", "version": 1}', "not a thing file"),
    ('{"format": "thing", "version": 2}', "thing format version 2, this lever reads 1"),
    ('{"format": "thing", "version": true}', "thing format version True, this lever reads 1"),
    ('{"format": "thing", "version": 1.0}', "thing format version 1.0, this lever reads 1"),
    ('{"format": "thing"}', "thing format version None, this lever reads 1"),
])
def test_read_json_checks_kind_and_version(tmp_path, text, message):
    path = write_raw(tmp_path, text)
    with pytest.raises(FileFormatError, match=rf"^{path}: {message}$"):
        read_json(path, "thing", 1)


def test_read_json_of_a_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_json(tmp_path / "nope.json", "thing", 1)


# check_type ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, got", [(None, "null"), ([1], "an array"), ("x", "a string"),
                                        (3, "an integer"), (True, "true or false")])
def test_check_type_refuses_what_is_not_a_dict(value, got):
    with pytest.raises(FileFormatError, match=rf"^m\.json: entries: expected an object, got {got}$"):
        check_type(value, dict, "m.json: entries")


def test_check_type_returns_the_value():
    entries = {"a": 1}
    assert check_type(entries, dict, "x") is entries
    assert check_type(3, (int, float), "x") == 3
    assert check_type(True, bool, "x") is True


def test_check_type_does_not_take_a_bool_for_a_number():
    with pytest.raises(FileFormatError, match="^x: expected an integer or a number, got true or false$"):
        check_type(False, (int, float), "x")


def test_check_type_names_other_types_by_class_name():
    with pytest.raises(FileFormatError, match="^x: expected Path, got a string$"):
        check_type("a", Path, "x")


# resolve_inside --------------------------------------------------------------------------------

def test_resolve_inside_accepts_plain_relative_names(tmp_path):
    (tmp_path / "shards").mkdir()
    assert resolve_inside(tmp_path, "a.npy") == tmp_path.resolve() / "a.npy"
    assert resolve_inside(tmp_path, "shards/b.npz") == tmp_path.resolve() / "shards" / "b.npz"
    assert resolve_inside(str(tmp_path), "./c.npy") == tmp_path.resolve() / "c.npy"


def test_resolve_inside_follows_symlinks_that_stay_inside(tmp_path):
    (tmp_path / "real.npy").write_text("x")
    (tmp_path / "link.npy").symlink_to("real.npy")
    assert resolve_inside(tmp_path, "link.npy") == tmp_path.resolve() / "real.npy"


@pytest.mark.parametrize("relative", ["/etc/passwd", "//etc/passwd", "..", "../x", "a/../../x",
                                      "a/../b", "a/.."])
def test_resolve_inside_refuses_absolute_paths_and_dotdot(tmp_path, relative):
    (tmp_path / "a").mkdir()
    with pytest.raises(FileFormatError) as info:
        resolve_inside(tmp_path, relative)
    assert str(info.value) == f"{tmp_path}: manifest entry {relative!r} points outside the directory"


def test_resolve_inside_refuses_a_symlink_pointing_outside(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    (root / "a.npy").symlink_to(tmp_path / "secret")
    (root / "b.npy").symlink_to("../secret")
    for relative in ("a.npy", "b.npy"):
        with pytest.raises(FileFormatError, match="points outside the directory"):
            resolve_inside(root, relative)


def test_resolve_inside_refuses_a_symlinked_directory_pointing_outside(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "shards").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(FileFormatError, match="points outside the directory"):
        resolve_inside(root, "shards/a.npz")


def test_resolve_inside_works_when_the_root_itself_is_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert resolve_inside(tmp_path / "alias", "a.npy") == (tmp_path / "real").resolve() / "a.npy"


def test_resolve_inside_refuses_a_symlink_loop(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(FileFormatError, match="'a'"):
        resolve_inside(tmp_path, "a")


@pytest.mark.parametrize("relative", [None, 3, b"a.npy", Path("a.npy"), ["a.npy"], "", ".", "./", "a\0b"])
def test_resolve_inside_refuses_what_is_not_a_file_name(tmp_path, relative):
    with pytest.raises(FileFormatError) as info:
        resolve_inside(tmp_path, relative)
    assert str(info.value) == f"{tmp_path}: manifest entry {relative!r} is not a valid file name"
