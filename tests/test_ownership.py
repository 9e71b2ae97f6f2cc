"""Each command that writes knows what it owns: it refuses another kind's directory, an empty path, a file
where a directory belongs, a policy file inside an output directory or of the wrong extension, and it never
replaces a file it did not create."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lever.cli import main
from lever.errors import LeverError
from lever.library import PolicyLibrary
from lever.ownership import check_output_dir, check_save_path, marker_name, owner
from lever.policy import COMPOSED_FORMAT, ComposedPolicy
from lever.reproduction import ReproduceConfig, reproduce
from lever.sweep import SweepConfig, run_sweep


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return PolicyLibrary.build(tmp_path_factory.mktemp("own") / "lib", setting="grid8", layout_seeds=(0,),
                               objectives=("path", "gold"), episodes=200, jobs=1, progress=False).root


@pytest.fixture
def lib(library, tmp_path):
    root = tmp_path / "lib"
    shutil.copytree(library, root)
    return root


def snapshot(directory: Path) -> dict:
    """Every file under ``directory`` (lock files aside) and its bytes."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def made_by_earlier_lever(tmp_path: Path, kind: str) -> Path:
    """A directory of ``kind`` as a lever without markers left it: its manifest, a results file."""
    folder = tmp_path / f"old-{kind}"
    folder.mkdir()
    name = {"sweep": "sweep.json", "reproduction": "reproduction.json", "library": "manifest.json"}[kind]
    form = {"sweep": "lever-sweep", "reproduction": "lever-reproduction", "library": "lever-policy-library"}[kind]
    (folder / name).write_text(json.dumps({"format": form, "version": 1}))
    (folder / "results.csv").write_text("precious\n")
    return folder


def test_a_build_marks_its_directory(library):
    assert (library / marker_name("library")).is_file() and owner(library) == "library"


def test_compose_save_never_overwrites_a_library_manifest(lib, capsys):
    before = snapshot(lib)
    for target in (lib / "manifest.json", lib / "layouts" / "new.npz", lib / "policy.npz"):
        assert main(["compose", str(lib), "--objective", "path+gold", "--repeats", "0", "--save", str(target)]) == 2
        assert "lies inside the lever library" in capsys.readouterr().err or target.suffix != ".npz"
    assert snapshot(lib) == before
    (lib / marker_name("library")).unlink()  # a library an earlier lever built: known by its manifest
    assert main(["compose", str(lib), "--objective", "path+gold", "--repeats", "0",
                 "--save", str(lib / "p.npz")]) == 2
    assert "lies inside the lever library" in capsys.readouterr().err
    PolicyLibrary.open(lib)


@pytest.mark.parametrize("name, message", [("policy.txt", "must end in .npz"), ("policy", "must end in .npz"),
                                           ("", "--save is empty")])
def test_compose_save_needs_an_npz_name(lib, tmp_path, name, message, capsys):
    assert main(["compose", str(lib), "--objective", "path", "--repeats", "0", "--save", name]) == 2
    assert message in capsys.readouterr().err


def test_save_replaces_only_its_own_kind_of_file(lib, tmp_path, capsys):
    foreign = tmp_path / "mine.npz"
    np.savez(foreign, data=np.arange(3))
    before = foreign.read_bytes()
    assert main(["compose", str(lib), "--objective", "path", "--repeats", "0", "--save", str(foreign)]) == 2
    assert "is not a lever lever-composed-policy file" in capsys.readouterr().err
    assert foreign.read_bytes() == before
    ours = tmp_path / "ours.npz"
    for _ in range(2):  # written, then replaced by a new one of its own kind
        assert main(["compose", str(lib), "--objective", "path", "--repeats", "0", "--save", str(ours)]) == 0
    ComposedPolicy.load(ours)
    trained = tmp_path / "trained.npz"
    np.savez(trained, header=np.array(json.dumps({"format": "lever-trained-policy"})))
    with pytest.raises(LeverError, match="not a lever lever-composed-policy"):
        check_save_path(trained, ".npz", COMPOSED_FORMAT, "--save")


@pytest.mark.parametrize("kind", ["sweep", "library"])
def test_reproduce_refuses_another_kinds_directory(lib, tmp_path, kind, capsys):
    target = lib if kind == "library" else made_by_earlier_lever(tmp_path, kind)
    before = snapshot(target)
    assert main(["reproduce", "--grid", "grid8", "--seeds", "0", "--budgets", "X1", "--episodes", "10",
                 "--out", str(target), "--no-progress"]) == 2
    assert f"holds a lever {kind}, not a reproduction" in capsys.readouterr().err
    assert snapshot(target) == before


def test_reproduce_refuses_a_directory_of_other_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["reproduce", "--grid", "grid8", "--seeds", "0", "--budgets", "X1", "--episodes", "10",
                 "--out", str(tmp_path), "--no-progress"]) == 2
    assert "is not a lever reproduction directory (it holds notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kind", ["sweep", "reproduction"])
def test_library_build_refuses_another_kinds_directory(tmp_path, kind, capsys):
    target = made_by_earlier_lever(tmp_path, kind)
    before = snapshot(target)
    assert main(["library", "build", "--grid", "grid8", "--seeds", "0", "--episodes", "10", "--out", str(target),
                 "--no-progress"]) == 2
    assert f"holds a lever {kind}, not a library" in capsys.readouterr().err
    assert snapshot(target) == before


def test_sweep_refuses_a_reproduction_or_library(lib, tmp_path):
    for target in (lib, made_by_earlier_lever(tmp_path, "reproduction")):
        with pytest.raises(LeverError, match="holds a lever (library|reproduction), not a sweep"):
            run_sweep(SweepConfig(settings=("grid8",), layout_seeds=(0,), episodes=10), target, progress=False)


@pytest.mark.parametrize("command", [
    ["reproduce", "--grid", "grid8", "--seeds", "0", "--budgets", "X1", "--episodes", "10", "--out", ""],
    ["sweep", "--preset", "quick", "--out", ""],
    ["library", "build", "--grid", "grid8", "--seeds", "0", "--episodes", "10", "--out", ""],
    ["library", "build", "--grid", "grid8", "--seeds", "0", "--episodes", "10", "--out", "  "],
])
def test_an_empty_out_is_refused_and_the_current_directory_untouched(tmp_path, monkeypatch, command, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    assert "is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_api_refuses_an_empty_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LeverError, match="is empty"):
        reproduce(ReproduceConfig(setting="grid8", seeds=(0,), budgets=("X1",), episodes=10), "", progress=False)
    with pytest.raises(LeverError, match="is empty"):
        PolicyLibrary.build("", setting="grid8", layout_seeds=(0,), episodes=10, jobs=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_build_out_a_file_says_so(tmp_path, capsys):
    target = tmp_path / "afile.txt"
    target.write_text("mine")
    assert main(["library", "build", "--grid", "grid8", "--seeds", "0", "--episodes", "10", "--out", str(target),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "cannot lock" not in err
    assert target.read_text() == "mine"


@pytest.mark.parametrize("kind", ["library", "sweep", "reproduction"])
def test_directories_of_an_earlier_lever_are_still_their_kind(tmp_path, kind):
    folder = made_by_earlier_lever(tmp_path, kind)
    assert owner(folder) == kind
    assert check_output_dir(folder, kind) == folder
    others = [k for k in ("library", "sweep", "reproduction") if k != kind]
    for other in others:
        with pytest.raises(LeverError, match=f"holds a lever {kind}"):
            check_output_dir(folder, other)


def test_figures_stay_out_of_output_directories(lib, capsys):
    before = snapshot(lib)
    assert main(["show", "--library", str(lib), "--policy", "0", "--out", str(lib / "fig.png")]) == 2
    assert "lies inside the lever library" in capsys.readouterr().err
    assert snapshot(lib) == before


def test_train_save_checks_before_training(tmp_path, capsys):
    foreign = tmp_path / "data.npz"
    foreign.write_bytes(b"not mine to replace")
    assert main(["train", "--grid", "grid8", "--episodes", "10", "--save", str(foreign)]) == 2
    assert "not a lever lever-trained-policy file" in capsys.readouterr().err
    assert foreign.read_bytes() == b"not mine to replace"


def test_report_figures_stay_out_of_other_outputs(lib, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.csv").write_text("setting\n")
    before = snapshot(lib)
    assert main(["report", str(sweep), "--out", str(lib / "figures")]) == 2
    assert "lies inside the lever library" in capsys.readouterr().err
    assert snapshot(lib) == before
