"""Sweeps under hostile conditions: two sweeps into one directory, bad --jobs, damaged cell files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lever.sweep.runner as runner
from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.library.workers import check_jobs, worker_count
from lever.sweep import SweepConfig, run_sweep
from tests.test_hardening_library import is_locked

ROOT = Path(__file__).resolve().parent.parent
ARGV = ["sweep", "--grid", "grid8", "--seeds", "0", "--composites", "path+gold", "gold+hazard",
        "--strategies", "targeted", "--no-planning", "--episodes", "200", "--no-progress"]


def tiny() -> SweepConfig:
    """The sweep of :data:`ARGV`: two cells on one grid8 layout, one strategy, short training."""
    return SweepConfig(settings=("grid8",), layout_seeds=(0,), composites=("path+gold", "gold+hazard"),
                       strategies=("targeted",), planning=False, episodes=200)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("hardening-sweep") / "sweep"
    return run_sweep(tiny(), out, jobs=1, progress=False)


@pytest.fixture
def sweep_copy(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished.out, out)
    return out


# -- one sweep per directory ---------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import lever.sweep.runner as runner
    from lever.cli import main

    release = Path(sys.argv[1])
    compute, save = runner.run_cell, runner._save_cell

    def gated(*args):
        deadline = time.monotonic() + 120
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return compute(*args)

    def save_then_die(*args):  # a hard crash right after the first cell is persisted
        save(*args)
        os.kill(os.getpid(), signal.SIGKILL)

    runner.run_cell, runner._save_cell = gated, save_then_die
    sys.exit(main(sys.argv[2:]))
""")


def test_a_second_sweep_into_the_same_directory_stops_and_a_rerun_resumes(tmp_path, capsys):
    out, release = tmp_path / "contested", tmp_path / "release"
    argv = [*ARGV, "--out", str(out), "--jobs", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(release), *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (is_locked(out / ".lock") and (out / "libraries").exists()):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first sweep never took its lock"
            time.sleep(0.05)
        began = time.monotonic()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert time.monotonic() - began < 2
        assert "being written by another lever process" in err and f"pid {first.pid}" in err
        assert err.count("\n") == 1 and "Traceback" not in err
        with pytest.raises(LeverError, match="being written by another lever process"):
            run_sweep(tiny(), out, jobs=1, progress=False)
    finally:
        release.touch()
        returncode = first.wait(timeout=120)
        first.communicate()
    assert returncode == -signal.SIGKILL
    assert len(list((out / "cells").glob("*.json"))) == 1
    assert main(argv) == 0  # the lock died with the first process
    assert "2 cells (1 computed, 1 already done)" in capsys.readouterr().out


def test_a_foreign_directory_is_refused_before_it_gets_a_lock_file(tmp_path):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(LeverError, match="not a lever sweep directory"):
        run_sweep(tiny(), stranger, jobs=1, progress=False)
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(LeverError, match="is a file"):
        run_sweep(tiny(), tmp_path / "file", jobs=1, progress=False)


# -- --jobs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs", [0, -3, 1.5, 2.0, "2", True])
def test_bad_jobs_fail_before_any_work(tmp_path, jobs):
    out = tmp_path / "jobs"
    with pytest.raises(LeverError, match="jobs must be an integer >= 1"):
        run_sweep(tiny(), out, jobs=jobs, progress=False)
    assert not out.exists()


def test_jobs_are_capped_by_the_cores_and_the_work(tmp_path, monkeypatch):
    cores = os.cpu_count() or 1
    assert worker_count(10_000, 3) == min(3, cores) and worker_count(None, 1) == 1
    assert worker_count(1, 0) == 1 and worker_count(None, 10_000) == cores and check_jobs(None) is None
    asked = []

    class Stop(Exception):
        pass

    def make_backend(name, jobs, address=None):
        asked.append(jobs)
        raise Stop

    monkeypatch.setattr(runner, "make_backend", make_backend)
    with pytest.raises(Stop):
        run_sweep(tiny(), tmp_path / "capped", jobs=512, progress=False)
    assert asked == [min(cores, len(tiny().cells()))]


# -- damaged cell files ---------------------------------------------------------------------------------

def _edit_number(path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["result"]["scratch_return"] += 1.0
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))


CELL_DAMAGE = {
    "truncated": lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
    "number edited": _edit_number,
    "result null": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "result": None})),
    "result array": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "result": []})),
    "checksum removed": lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items()
                                                           if k != "sha256"})),
    "other config": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "config_hash": "x"})),
    "empty": lambda p: p.write_bytes(b""),
    "old version": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": 2})),
}


@pytest.mark.parametrize("damage", sorted(CELL_DAMAGE))
def test_a_damaged_cell_is_named_and_recomputed_once_deleted(finished, sweep_copy, damage):
    victim = sorted((sweep_copy / "cells").glob("*.json"))[0]
    CELL_DAMAGE[damage](victim)
    with pytest.raises(FileFormatError, match=re.escape(victim.name) + ".*delete it to recompute that cell"):
        run_sweep(finished.config, sweep_copy, jobs=1, progress=False)
    victim.unlink()
    again = run_sweep(finished.config, sweep_copy, jobs=1, progress=False)
    assert (again.computed, again.reused) == (1, 1)
    assert [r.true_return for r in again.rows] == [r.true_return for r in finished.rows]


def test_a_consistent_hand_edit_with_a_matching_checksum_is_the_only_one_accepted(finished, sweep_copy):
    victim = sorted((sweep_copy / "cells").glob("*.json"))[0]
    doc = json.loads(victim.read_text())
    doc["result"]["scratch_return"] = 123.0
    doc["sha256"] = runner._result_digest(doc["result"])
    victim.write_text(json.dumps(doc))
    again = run_sweep(finished.config, sweep_copy, jobs=1, progress=False)
    assert again.reused == 2 and 123.0 in {r.scratch_return for r in again.rows}
