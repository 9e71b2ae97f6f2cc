"""Directory locks between real processes: exclusive_lock and shared_lock."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lever import fileio
from lever.errors import LeverError
from lever.fileio import LOCK_NAME, exclusive_lock, shared_lock

pytestmark = pytest.mark.skipif(fileio.fcntl is None, reason="no fcntl: locks are no-ops here")

LEVER_DIR = Path(fileio.__file__).parent

# Each child loads lever.fileio under a bare "lever" package, without the
# package's __init__ (numba, gymnasium...), so that it starts in milliseconds.
CHILD = """
import sys, time, types
from pathlib import Path
package = types.ModuleType("lever")
package.__path__ = [sys.argv[1]]
sys.modules["lever"] = package
from lever.errors import LeverError
from lever.fileio import exclusive_lock, shared_lock

mode, directory, ready, release = sys.argv[2:6]
lock = exclusive_lock if mode in ("exclusive", "try") else shared_lock
try:
    with lock(directory, wait=0):
        if mode == "try":
            sys.exit(0)
        Path(ready).write_text("locked")
        deadline = time.monotonic() + 60
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
except LeverError as exc:
    print(exc)
    sys.exit(3)
"""


class Holder:
    """A child process that takes a lock on a directory and holds it until released."""

    def __init__(self, tmp_path: Path, directory: Path, mode: str):
        self.ready = tmp_path / f"ready-{mode}"
        self.release_file = tmp_path / f"release-{mode}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(LEVER_DIR), mode, str(directory),
             str(self.ready), str(self.release_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"lock holder exited early: {self.proc.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("lock holder never took the lock")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self, after: float = 0.0) -> None:
        """Let the holder leave its lock and exit, ``after`` seconds from now."""
        threading.Timer(after, self.release_file.touch).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def holders(tmp_path):
    """Start lock holders with ``holders(directory, mode)``; all are stopped afterwards."""
    started = []

    def start(directory: Path, mode: str) -> Holder:
        started.append(Holder(tmp_path, directory, mode))
        return started[-1]

    yield start
    for holder in started:
        holder.stop()


def try_exclusive_in_child(directory: Path) -> int:
    """Exit status of another process taking the exclusive lock with wait=0 (0 locked, 3 refused)."""
    return subprocess.run([sys.executable, "-c", CHILD, str(LEVER_DIR), "try", str(directory), "-", "-"],
                          capture_output=True, timeout=60).returncode


def writing_message(directory: Path, pid: int) -> str:
    return (f"library {directory} is being written by another lever process (pid {pid}); "
            "wait for it to finish or choose another directory")


def test_second_writer_is_refused_at_once_with_the_holders_pid(tmp_path, holders):
    library = tmp_path / "lib"
    holder = holders(library, "exclusive")
    start = time.monotonic()
    with pytest.raises(LeverError) as info:
        with exclusive_lock(library):
            pass
    assert time.monotonic() - start < 2
    assert str(info.value) == writing_message(library, holder.pid)
    assert (library / LOCK_NAME).read_text().strip() == str(holder.pid)


def test_what_names_the_directory_in_the_message(tmp_path, holders):
    holder = holders(tmp_path / "idx", "exclusive")
    with pytest.raises(LeverError, match=rf"^index .*idx is being written .*\(pid {holder.pid}\)"):
        with exclusive_lock(tmp_path / "idx", what="index"):
            pass


def test_second_writer_waits_for_the_first_to_exit(tmp_path, holders):
    library = tmp_path / "lib"
    holder = holders(library, "exclusive")
    holder.release(after=0.3)
    start = time.monotonic()
    with exclusive_lock(library, wait=30):
        assert time.monotonic() - start >= 0.3
        assert (library / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert holder.proc.wait(timeout=30) == 0


def test_wait_runs_out_while_the_holder_keeps_the_lock(tmp_path, holders):
    holder = holders(tmp_path, "exclusive")
    start = time.monotonic()
    with pytest.raises(LeverError, match=f"pid {holder.pid}"):
        with exclusive_lock(tmp_path, wait=0.3):
            pass
    assert time.monotonic() - start >= 0.3


def test_kill_9_of_the_holder_frees_the_lock(tmp_path, holders):
    library = tmp_path / "lib"
    holder = holders(library, "exclusive")
    holder.proc.kill()  # SIGKILL: no cleanup code runs in the holder
    holder.proc.wait(timeout=30)
    assert (library / LOCK_NAME).read_text().strip() == str(holder.pid)  # a stale pid stays behind
    with exclusive_lock(library):
        assert (library / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_lock_is_released_on_leaving_the_block(tmp_path):
    with exclusive_lock(tmp_path):
        assert try_exclusive_in_child(tmp_path) == 3
    assert try_exclusive_in_child(tmp_path) == 0


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with exclusive_lock(tmp_path):
            raise KeyError("boom")
    assert try_exclusive_in_child(tmp_path) == 0


def test_reader_waits_for_the_writer(tmp_path, holders):
    holder = holders(tmp_path, "exclusive")
    with pytest.raises(LeverError) as info:
        with shared_lock(tmp_path, wait=0):
            pass
    assert str(info.value) == writing_message(tmp_path, holder.pid)
    holder.release(after=0.3)
    start = time.monotonic()
    with shared_lock(tmp_path, wait=30):
        assert time.monotonic() - start >= 0.3


def test_readers_share_and_keep_writers_out(tmp_path, holders):
    holders(tmp_path, "shared")
    with shared_lock(tmp_path, wait=0):
        pass
    with pytest.raises(LeverError) as info:
        with exclusive_lock(tmp_path):
            pass
    assert str(info.value) == (f"library {tmp_path} is being read by another lever process; "
                               "wait for it to finish or choose another directory")


def test_not_reentrant_within_one_process(tmp_path):
    with exclusive_lock(tmp_path):
        with pytest.raises(LeverError, match=f"pid {os.getpid()}"):
            with exclusive_lock(tmp_path):
                pass


def test_writer_creates_the_directory_and_a_lock_file_with_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with exclusive_lock(tmp_path / "a" / "b"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b").is_dir()
    assert (tmp_path / "a" / "b" / LOCK_NAME).stat().st_mode & 0o777 == 0o600
    old = os.umask(0o022)
    try:
        with exclusive_lock(tmp_path / "c"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "c" / LOCK_NAME).stat().st_mode & 0o777 == 0o644


def test_reader_of_a_missing_directory_creates_nothing(tmp_path):
    with shared_lock(tmp_path / "nope"):
        pass
    assert not (tmp_path / "nope").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permission bits")
def test_reader_of_a_read_only_directory_reads_unlocked(tmp_path):
    (tmp_path / "lib").mkdir(mode=0o500)
    try:
        with shared_lock(tmp_path / "lib", wait=0):
            pass
        assert list((tmp_path / "lib").iterdir()) == []
    finally:
        (tmp_path / "lib").chmod(0o700)


def test_writer_cannot_lock_below_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LeverError, match="cannot lock library"):
        with exclusive_lock(tmp_path / "file" / "lib"):
            pass


def test_without_fcntl_locks_do_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "fcntl", None)
    with exclusive_lock(tmp_path / "lib"):
        with exclusive_lock(tmp_path / "lib"), shared_lock(tmp_path / "lib", wait=0):
            pass
    assert (tmp_path / "lib").is_dir()
    assert not (tmp_path / "lib" / LOCK_NAME).exists()
