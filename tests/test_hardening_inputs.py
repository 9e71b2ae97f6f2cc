"""Hardening II: API input checked before any work, tampered values refused on open, nothing waits forever,
clear messages. One test (or case) per item of the second hostile pass."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import lever.cli.library as cli_library
import lever.reproduction.runner as repro_runner
from lever import GridSpec, GridWorldEnv, GridWorldVectorEnv, Layout, SweepConfig, TrainConfig, train
from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.evaluation import rollout
from lever.fileio import read_arrays
from lever.library import PolicyLibrary
from lever.policy import ComposedPolicy
from lever.reproduction import ReproduceConfig, reproduce
from lever.search import compose
from lever.show import save_policy_figure
from lever.sweep import run_sweep
from lever.training import TrainedPolicy
from lever.validation import LeverTypeError, check_int, check_real, printable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return PolicyLibrary.build(tmp_path_factory.mktemp("inputs") / "lib", setting="grid8", layout_seeds=(0,),
                               objectives=("path", "gold"), episodes=200, jobs=1, progress=False)


@pytest.fixture
def lib(library, tmp_path):
    root = tmp_path / "lib"
    shutil.copytree(library.root, root)
    return root


# -- the validation module ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, np.bool_(False), 2.0, 2.5, "3", None, np.float64(1.0)])
def test_check_int_refuses_what_is_not_an_integer(value):
    with pytest.raises(LeverTypeError, match="must be an integer") as error:
        check_int(value, "k", 1)
    assert isinstance(error.value, TypeError) and isinstance(error.value, LeverError)


def test_check_int_takes_numpy_integers_and_checks_the_range():
    assert check_int(np.uint64(2 ** 63 + 5), "seed") == 2 ** 63 + 5
    assert type(check_int(np.int32(3), "k", 1)) is int
    with pytest.raises(LeverError, match=r"k must be an integer >= 1, got 0") as error:
        check_int(0, "k", 1)
    assert not isinstance(error.value, TypeError)


@pytest.mark.parametrize("value", ["a", "0.5", True, None, 1j])
def test_check_real_refuses_text_and_booleans(value):
    with pytest.raises(LeverTypeError):
        check_real(value, "gamma")
    with pytest.raises(LeverError, match="finite"):
        check_real(float("nan"), "gamma")


# -- API boundaries -----------------------------------------------------------------------------------

@pytest.mark.parametrize("episodes", [2.5, "10", True])
def test_a_build_with_a_bad_episode_count_stops_before_any_work(tmp_path, episodes):
    with pytest.raises(LeverError, match="episodes must be an integer"):
        PolicyLibrary.build(tmp_path / "lib", setting="grid8", episodes=episodes, jobs=1, progress=False)
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"layout_seeds": ["a"]}, "layout_seeds"), ({"layout_seeds": [1.7]}, "layout_seeds"),
    ({"gamma": "a"}, "gamma must be a number"), ({"train_seed": True}, "train_seed")])
def test_build_options_are_checked(tmp_path, kwargs, message):
    with pytest.raises(LeverError, match=message):
        PolicyLibrary.build(tmp_path / "lib", **{"setting": "grid8", "jobs": 1, "progress": False, **kwargs})


@pytest.mark.parametrize("kwargs", [{"k": 2.5}, {"k": "3"}, {"k": True}, {"width": 2.5}, {"pool": 1.5},
                                    {"plan": "no"}])
def test_compose_checks_its_sizes(library, kwargs):
    with pytest.raises(LeverError):
        compose(library, "path+gold", **kwargs)


def test_compose_given_a_path_says_to_open_it(library):
    for where in ("lib8", library.root):
        with pytest.raises(LeverError, match="open it first: PolicyLibrary.open"):
            compose(where, "path+gold")


@pytest.mark.parametrize("kwargs", [{"timing_repeats": "3"}, {"gamma": "a"}, {"layout_seeds": ["a"]},
                                    {"layout_seeds": [1.7]}, {"episodes": 2.5}, {"planning": "no"}])
def test_sweep_config_is_checked(kwargs):
    with pytest.raises(LeverError):
        SweepConfig(**kwargs)


def test_sweep_config_takes_numpy_seeds():
    assert SweepConfig(layout_seeds=(np.uint64(2), np.int64(3))).layout_seeds == (2, 3)


def test_layouts_check_their_cells_and_seeds():
    with pytest.raises(LeverError, match="integer array"):
        Layout([["a", "b"]], 0)
    with pytest.raises(LeverError):
        Layout([[0, 5], [0]], 0)
    with pytest.raises(LeverError, match="start"):
        GridSpec(start="ab")
    with pytest.raises(LeverError, match="start"):
        Layout(np.array([[0, 5]]), 0.5)
    assert Layout.generate("grid8", seed=np.uint64(3)).id == Layout.generate("grid8", seed=3).id
    big = np.uint64(2 ** 63 + 5)
    assert Layout.generate("grid8", seed=big).cells.shape == (8, 8)


def test_the_cell_cap_comes_before_parsing():
    began = time.perf_counter()
    with pytest.raises(LeverError, match="at most"):
        Layout.from_text("S" + "." * 10 ** 8 + "E")
    assert time.perf_counter() - began < 30  # it used to give up after 37 s with MemoryError


def test_drawing_a_huge_layout_is_refused(tmp_path):
    cells = np.zeros((200, 200), dtype=np.int8)
    cells[-1, -1] = 5
    layout = Layout(cells, 0, checked=False)
    with pytest.raises(LeverError, match="too large to draw"):
        save_policy_figure(tmp_path / "x.png", layout, np.zeros(layout.n_states, dtype=np.int32))
    with pytest.raises(LeverError, match="memory"):
        save_policy_figure(tmp_path / "x.png", Layout.generate("grid8"), np.zeros(64, dtype=np.int32),
                           figsize=(1e4, 1e4))
    assert not (tmp_path / "x.png").exists()


def test_a_billion_sub_envs_are_refused_before_allocating():
    with pytest.raises(LeverError, match="memory"):
        GridWorldVectorEnv(num_envs=10 ** 9, layout="grid8")


def test_envs_refuse_a_step_before_reset_and_boolean_actions():
    env = GridWorldEnv("grid8")
    with pytest.raises(LeverError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(LeverError, match="invalid action True"):
        env.step(True)
    vector = GridWorldVectorEnv(num_envs=2, layout="grid8")
    with pytest.raises(LeverError, match="reset"):
        vector.step(np.zeros(2, dtype=np.int64))
    vector.reset(seed=0)
    with pytest.raises(LeverError):
        vector.step(np.array([True, False]))


def test_booleans_and_floats_are_not_ids_or_counts(library):
    with pytest.raises(LeverError):
        library.index().query("path", True)
    for bad in (1.9, True):
        with pytest.raises(LeverError, match="policy id"):
            library.record(bad)


def test_rollout_refuses_an_infinite_q_table():
    layout = Layout.generate("grid8")
    with pytest.raises(LeverError, match="NaN or infinity"):
        rollout(layout, np.full((layout.n_states, 4), np.inf))


# -- files: sizes from headers, values on open --------------------------------------------------------

def _huge_npy(path: Path) -> Path:
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (10 ** 12, 4)})
        handle.write(b"\0" * 64)
    return path


def test_a_header_claiming_a_huge_array_is_refused_before_reading(tmp_path, capsys):
    q = _huge_npy(tmp_path / "q.npy")
    assert main(["library", "add", str(tmp_path), "--objective", "path", "--q", str(q)]) == 2
    assert "its header declares" in capsys.readouterr().err
    archive = tmp_path / "policy.npz"
    with __import__("zipfile").ZipFile(archive, "w") as zf:
        zf.writestr("header.npy", (tmp_path / "q.npy").read_bytes())
    with pytest.raises(LeverError, match="declares"):
        read_arrays(archive, "lever-composed-policy", 1)


def test_an_npz_given_as_q_is_named_as_such(lib, tmp_path, capsys):
    np.savez(tmp_path / "q.npz", q=np.zeros((64, 4)))
    assert main(["library", "add", str(lib), "--objective", "path", "--q", str(tmp_path / "q.npz")]) == 2
    assert "is an .npz archive" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--q", "--support"])
def test_a_fifo_is_refused_at_once(lib, tmp_path, option):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    q = tmp_path / "q.npy"
    np.save(q, np.zeros((64, 4)))
    files = {"--q": fifo, "--support": q} if option == "--support" else {"--q": fifo}
    args = [sys.executable, "-m", "lever.cli", "library", "add", str(lib), "--objective", "path"]
    args += ["--q", str(files["--q"] if option == "--q" else q)]
    if option == "--support":
        args += ["--support", str(fifo)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 2 and "is a FIFO" in run.stderr


def _reseal(root: Path, relative: str) -> None:
    """Record a modified file's new checksum and size in the library manifest, as a forger would."""
    path = root / relative
    doc = json.loads((root / "manifest.json").read_text())
    doc["files"][relative].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size)
    (root / "manifest.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


@pytest.mark.parametrize("name, change, message", [
    ("reward_model", lambda a, layout: a.__setitem__((0, 0, 0, 1), np.nan), "NaN or infinity"),
    ("reward_model", lambda a, layout: a.__setitem__((0, 0, 0, 1), np.inf), "NaN or infinity"),
    ("visits", lambda a, layout: a.__setitem__((0, 0, 0), -3), "negative visit"),
    ("next_state", lambda a, layout: a.__setitem__((0, 0, 0), int(np.flatnonzero(layout.cells.ravel() == 1)[0])),
     "on a wall"),
    ("next_state", lambda a, layout: a.__setitem__((0, 0, 0), 10 ** 6), "outside"),
    ("psi", lambda a, layout: a.__setitem__((0, 0, 0), 1e308), "beyond"),
    ("canonical_states", lambda a, layout: a.__setitem__(1, 10 ** 6), "outside"),
])
def test_tampered_arrays_with_valid_checksums_are_refused(lib, name, change, message):
    library = PolicyLibrary.open(lib)
    layout_id = library.layout_ids[0]
    relative = f"layouts/{layout_id}/{name}.npy"
    array = np.load(lib / relative)
    change(array, library.layout(layout_id))
    np.save(lib / relative, array)
    _reseal(lib, relative)
    with pytest.raises(FileFormatError, match=message):
        PolicyLibrary.open(lib)


def test_a_record_with_terminal_escapes_is_refused(lib, capsys):
    doc = json.loads((lib / "manifest.json").read_text())
    doc["records"][0]["budget"] = "\x1b[2J\x1b[31mX1"
    (lib / "manifest.json").write_text(json.dumps(doc))
    assert main(["library", "info", str(lib)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "control character" in err
    assert printable("a\x1b[31mb\u202e") == "a\\x1b[31mb\\u202e"


def test_add_refuses_terminal_escapes_in_names(lib, tmp_path, capsys):
    q = tmp_path / "q.npy"
    np.save(q, np.zeros((64, 4)))
    assert main(["library", "add", str(lib), "--objective", "path", "--q", str(q), "--label", "\x1b[31mred"]) == 2
    assert "control character" in capsys.readouterr().err


def _save_trained(tmp_path: Path, change) -> Path:
    policy = train(Layout.generate("grid8"), "path", TrainConfig(episodes=20))
    path = tmp_path / "p.npz"
    policy.save(path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["header"]))
    change(arrays, meta)
    arrays["header"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change", [
    lambda a, m: m.__setitem__("wall_time", "fast"), lambda a, m: m.__setitem__("layout_id", 5),
    lambda a, m: m.__setitem__("config", [1]), lambda a, m: m.__setitem__("objective", "nonsense"),
    lambda a, m: a.__setitem__("next_state", np.full_like(a["next_state"], 999)),
    lambda a, m: a.__setitem__("visits", -a["visits"] - 1), lambda a, m: a.__setitem__("q", a["q"][:3]),
    lambda a, m: a.__setitem__("q", a["q"].astype(np.int64)),
])
def test_trained_policy_files_with_bad_fields_are_clear_errors(tmp_path, change):
    with pytest.raises(FileFormatError, match="malformed trained policy"):
        TrainedPolicy.load(_save_trained(tmp_path, change))


@pytest.mark.parametrize("field, value", [("operator", "min"), ("planned", "no"), ("policy_ids", [-1]),
                                          ("layout_id", 7)])
def test_tampered_composed_policies_are_refused(tmp_path, field, value):
    path = tmp_path / "c.npz"
    ComposedPolicy(np.zeros(64, dtype=np.int32), (0, 1), "sum", False, "abc").save(path)
    with np.load(path) as archive:
        meta = json.loads(str(archive["header"]))
        actions = archive["actions"]
    meta[field] = value
    np.savez(path, header=np.array(json.dumps(meta)), actions=actions)
    with pytest.raises(FileFormatError, match="malformed composed policy"):
        ComposedPolicy.load(path)


def test_a_policy_of_another_layout_is_refused():
    policy = ComposedPolicy(np.zeros(64, dtype=np.int32), (0,), "sum", False, "another")
    with pytest.raises(LeverError, match="made for layout another"):
        rollout(Layout.generate("grid8"), policy)


def test_a_sweep_json_with_a_null_config_is_a_clear_error(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"format": "lever-sweep", "version": 1, "config": None,
                                                "config_hash": "x"}))
    with pytest.raises(FileFormatError, match="config: expected an object"):
        run_sweep(SweepConfig(settings=("grid8",), layout_seeds=(0,), episodes=10), out, progress=False)


# -- the command line ------------------------------------------------------------------------------------

def test_compose_repeats_are_capped(lib, capsys):
    assert main(["compose", str(lib), "--objective", "path", "--repeats", str(10 ** 9)]) == 2
    assert "--repeats must be >= 0 and <= 1000" in capsys.readouterr().err


def test_conflicting_flags_are_refused(lib, capsys):
    layout_id = PolicyLibrary.open(lib).layout_ids[0]
    assert main(["search", str(lib), "--objective", "path", "--layout", layout_id, "--seed", "99"]) == 2
    assert "--layout and --seed" in capsys.readouterr().err
    assert main(["show", "--library", str(lib), "--policy", "0", "--objective", "nonsense",
                 "--out", str(lib.parent / "x.png")]) == 2
    assert "--objective and --episodes are for a policy trained now" in capsys.readouterr().err
    assert main(["reproduce", "--grid", "grid8", "--seeds", "0", "--budgets", "X1", "--address", "ray://x",
                 "--out", str(lib.parent / "r")]) == 2
    assert "ray backend only" in capsys.readouterr().err
    assert not (lib.parent / "r").exists()


def test_ctrl_c_says_resume_only_where_there_is_something_to_resume(lib, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_library.PolicyLibrary, "open", interrupted)
    assert main(["compose", str(lib), "--objective", "path"]) == 130
    err = capsys.readouterr().err
    assert "resume" not in err and "nothing was changed" in err
    monkeypatch.setattr(cli_library.PolicyLibrary, "build", interrupted)
    assert main(["library", "build", "--grid", "grid8", "--seeds", "0", "--episodes", "10",
                 "--out", str(lib.parent / "new")]) == 130
    assert "run the same command to resume" in capsys.readouterr().err


def test_reproduce_caps_jobs_at_the_cores(tmp_path, monkeypatch):
    asked = []

    def backend(name, jobs, address):
        asked.append(jobs)
        raise KeyboardInterrupt
    monkeypatch.setattr(repro_runner, "make_backend", backend)
    with pytest.raises(KeyboardInterrupt):
        reproduce(ReproduceConfig(setting="grid8", seeds=(0, 1, 2, 3), budgets=("X1", "X5"), episodes=10),
                  tmp_path / "r", jobs=64, progress=False)
    assert asked == [min(os.cpu_count() or 1, 8)]


def test_wrong_types_at_other_entry_points_are_lever_errors(library, tmp_path):
    with pytest.raises(LeverError, match="layout_seeds must be a list"):
        SweepConfig(layout_seeds=None)
    with pytest.raises(LeverError, match="weights must be numbers"):
        library.index().rank("abc")
    with pytest.raises(LeverError, match="config must be a SweepConfig"):
        run_sweep("abc", tmp_path / "s")
    with pytest.raises(LeverError, match="config must be a ReproduceConfig"):
        reproduce("abc", tmp_path / "r")
