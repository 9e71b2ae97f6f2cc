"""Interrupted runs in real processes: Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
and ``kill -9`` of the main process, during sweeps and parallel library builds.

After Ctrl-C the command exits with status 130 and one line on stderr, no traceback, keeping finished
work; after ``kill -9`` no worker process outlives its parent by more than a few seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lever.library import STAGING
from lever.sweep import SweepConfig, load_finished

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: Seconds a worker may outlive its parent: it checks on its parent every second.
ORPHAN_GRACE_S = 5.0
#: A parallel build slow enough to interrupt: 8 policies of about half a second each on grid32.
SLOW_BUILD = ["library", "build", "--grid", "grid32", "--seeds", "0", "1", "--objectives", "path", "gold", "hazard",
              "lever", "--episodes", "200000", "--jobs", "2", "--no-progress"]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, ...), or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped has ended)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def wait_until(condition, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def assert_orphans_exit(pids: list[int]) -> None:
    began = time.monotonic()
    while any(alive(pid) for pid in pids) and time.monotonic() - began < ORPHAN_GRACE_S:
        time.sleep(0.1)
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:  # leave nothing running behind a failed test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their parent by {ORPHAN_GRACE_S} s"


def workers_of(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    def is_worker(child: int) -> bool:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            return False
        return b"spawn_main" in command
    return [child for child in children(pid) if is_worker(child)]


# The child loads lever.library.workers under bare packages (no numba, no gymnasium): it starts at once.
WATCHED = textwrap.dedent("""
    import os, sys, time, types
    from pathlib import Path
    for name, path in (("lever", sys.argv[1]), ("lever.library", sys.argv[1] + "/library")):
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package
    from lever.library.workers import watch_parent

    watch_parent(os.getppid(), interval=0.1)
    Path(sys.argv[2]).write_text("watching")
    time.sleep(60)
""")
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
    time.sleep(60)
""")


def test_the_watch_thread_alone_ends_an_orphan(tmp_path):
    """Without the kernel's parent-death signal (not set here), the polling thread notices the death."""
    ready = tmp_path / "ready"
    lever_dir = str(ROOT / "lever")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, WATCHED, lever_dir, str(ready)])
    try:
        wait_until(ready.exists, 30, "the child to watch its parent", parent)
        kids = children(parent.pid)
    finally:
        parent.kill()
        parent.wait()
    assert len(kids) == 1
    began = time.monotonic()
    assert_orphans_exit(kids)
    assert time.monotonic() - began < 2


POOL = textwrap.dedent("""
    import time
    from lever.sweep.backends import make_backend

    backend = make_backend("process", 2)
    for _ in range(2):
        backend.submit(time.sleep, 120)
    time.sleep(300)
""")


def test_kill_9_of_a_sweep_pool_leaves_no_worker_running():
    process = subprocess.Popen([sys.executable, "-c", POOL], env=ENV)
    try:
        wait_until(lambda: len(workers_of(process.pid)) == 2, 60, "two workers", process)
        time.sleep(1.0)  # let them pick up their work
        kids = children(process.pid)
    finally:
        process.kill()  # kill -9
        process.wait()
    assert len(kids) >= 2
    assert_orphans_exit(kids)


def test_kill_9_of_a_parallel_build_leaves_no_worker_running(tmp_path):
    root = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "lever.cli", *SLOW_BUILD, "--out", str(root)], env=ENV)
    try:
        wait_until(lambda: any((root / STAGING).glob("p*.npz")), 120, "a staged policy", process)
        kids = children(process.pid)
    finally:
        process.kill()
        process.wait()
    assert len(workers_of(process.pid)) <= len(kids) and len(kids) >= 2
    assert_orphans_exit(kids)
    assert not (root / "manifest.json").exists()


def _interrupt(argv: list[str], started) -> tuple[subprocess.CompletedProcess, float, list[int]]:
    """Run ``lever ARGV`` in its own process group and Ctrl-C it once ``started()``.

    Returns the finished process, the seconds it took to exit after Ctrl-C, and its children before it.
    """
    process = subprocess.Popen([sys.executable, "-m", "lever.cli", *argv], env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(started, 120, "work to finish", process)
        kids = children(process.pid)
        began = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = process.communicate(timeout=60)
        seconds = time.monotonic() - began
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), seconds, kids


def _one_line_130(done: subprocess.CompletedProcess, seconds: float) -> None:
    assert done.returncode == 130, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("lever: interrupted")
    assert seconds < 5, f"took {seconds:.1f} s to stop"


def test_ctrl_c_stops_a_parallel_sweep_at_once_and_keeps_finished_cells(tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--grid", "grid8", "--seeds", "0", "1", "--composites", "double", "triple",
            "--strategies", "targeted", "--no-planning", "--episodes", "200", "--jobs", "2", "--no-progress",
            "--out", str(out)]
    done, seconds, kids = _interrupt(argv, lambda: any((out / "cells").glob("*.json")))
    _one_line_130(done, seconds)
    assert "finished cells are kept" in done.stderr
    names = [p.name for p in (out / "cells").iterdir()]
    assert names and all(name.endswith(".json") and not name.startswith(".") for name in names)
    config = SweepConfig(settings=("grid8",), layout_seeds=(0, 1), composites=("double", "triple"),
                         strategies=("targeted",), planning=False, episodes=200)
    kept = load_finished(config, out)  # every kept cell is whole and checks out
    assert 1 <= len(kept) == len(names) < len(config.cells())
    assert_orphans_exit(kids)


def test_ctrl_c_stops_a_parallel_build_at_once_and_keeps_staged_policies(tmp_path):
    root = tmp_path / "library"
    done, seconds, kids = _interrupt([*SLOW_BUILD, "--out", str(root)],
                                     lambda: any((root / STAGING).glob("p*.npz")))
    _one_line_130(done, seconds)
    staged = sorted((root / STAGING).glob("p*.npz"))
    assert 1 <= len(staged) < 8 and not (root / "manifest.json").exists()
    assert not list((root / STAGING).glob(".*.tmp"))
    assert_orphans_exit(kids)
    for shard in staged:  # each staged policy is whole, ready for the resumed build
        with np.load(shard) as arrays:
            assert np.all(np.isfinite(arrays["q"])) and str(arrays["key"]).startswith("[")
