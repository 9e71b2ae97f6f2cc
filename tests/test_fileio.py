"""Atomic writes (lever.fileio)."""

import os
from pathlib import Path

import pytest

from lever import fileio
from lever.errors import LeverError
from lever.fileio import atomic_write, write_json

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
