"""Phase planning through the front door and the library: compose(plan="phase"), ``lever compose --plan phase``,
library format 4 (the step terms) and an older library that opens but refuses phase planning."""

import json
import shutil

import numpy as np
import pytest

import lever
from lever import LeverError, PolicyLibrary
from lever.cli import main
from lever.library.store import LIBRARY_VERSION, TERMS_VERSION

BUILD = dict(setting="grid8", layout_seeds=(0,), objectives=("path", "gold", "hazard", "lever"), episodes=300,
             jobs=1, progress=False)
LONG = "path+gold+hazard+lever"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return PolicyLibrary.build(tmp_path_factory.mktemp("phase") / "base", **BUILD)


@pytest.fixture
def lib(base, tmp_path) -> PolicyLibrary:
    root = tmp_path / "lib"
    shutil.copytree(base.root, root)
    return PolicyLibrary.open(root)


def make_version_3(root) -> None:
    """Turn a library into what a format-3 lever wrote: no term_model arrays, manifest version 3."""
    path = root / "manifest.json"
    doc = json.loads(path.read_text())
    for name in [n for n in doc["files"] if "/term_model" in n]:
        (root / name).unlink()
        del doc["files"][name]
    doc["version"] = 3
    doc.pop("index", None)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))


def test_a_new_library_logs_the_terms_of_every_first_visit(lib):
    assert lib.version == LIBRARY_VERSION == TERMS_VERSION and lib.has_terms
    tables = lib.tables(lib.layout_ids[0])
    terms = np.asarray(tables.term_model)
    assert terms.shape == tables.reward_model.shape[:3] + (lever.kernels.world.N_TERMS,)
    # Every set's logged reward is what the rules give for the logged terms.
    from lever.kernels.world import set_rewards
    visited = np.argwhere(np.asarray(tables.visits) > 0)[:200]
    out = np.empty(16)
    for p, s, a in visited:
        set_rewards(np.ascontiguousarray(terms[p, s, a]), out)
        np.testing.assert_allclose(out, tables.reward_model[p, s, a], rtol=0, atol=1e-12)


def test_compose_plan_phase_reaches_the_exit_and_acts_by_phase(lib):
    result = lever.compose(lib, LONG, strategy="hybrid", plan="phase")
    assert result.planned and result.policy.phased and result.policy.actions.shape == (2, 64)
    assert result.true_end == "exit"
    assert 0 < result.route_on_support <= 1 and result.planning_s > 0
    # plan=True keeps its meaning: planning on the cell alone, actions (S,).
    position = lever.compose(lib, LONG, strategy="hybrid", plan=True)
    assert position.policy.actions.shape == (64,)
    with pytest.raises(LeverError, match="plan must be"):
        lever.compose(lib, LONG, plan="cells")


def test_an_older_library_opens_and_refuses_only_phase_planning(lib):
    make_version_3(lib.root)
    old = PolicyLibrary.open(lib.root)
    assert old.version == 3 and not old.has_terms and old.tables(old.layout_ids[0]).term_model is None
    assert lever.compose(old, LONG, plan=True).policy_ids  # everything else works
    with pytest.raises(LeverError, match="rebuild the library"):
        lever.compose(old, LONG, plan="phase")
    assert old.export(0).term_model is None
    # A policy added to it is stored without terms, and the library stays in format 3.
    record = old.add(old.export(0).q, "path", old.layout_ids[0])
    reopened = PolicyLibrary.open(lib.root)
    assert json.loads((lib.root / "manifest.json").read_text())["version"] == 3
    assert reopened.record(record.policy_id) == record and not reopened.has_terms


def test_add_to_a_new_library_logs_terms(lib):
    exported = lib.export(0)
    assert exported.term_model is not None
    record = lib.add(exported.q, "path", lib.layout_ids[0], support=exported)
    again = PolicyLibrary.open(lib.root).export(record.policy_id)
    np.testing.assert_array_equal(again.term_model, exported.term_model)
    derived = lib.add(exported.q, "path", lib.layout_ids[0])  # a greedy replay logs its own terms
    assert np.asarray(PolicyLibrary.open(lib.root).export(derived.policy_id).term_model).any()


def test_cli_compose_plan_phase(lib, tmp_path, capsys):
    assert main(["compose", str(lib.root), "--objective", LONG, "--plan", "phase", "--json", "--repeats", "0",
                 "--save", str(tmp_path / "p.npz")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["planned"] and result["true_end"] == "exit"
    assert lever.ComposedPolicy.load(tmp_path / "p.npz").phased
    # A bare --plan keeps its meaning: the position plan.
    assert main(["compose", str(lib.root), "--objective", LONG, "--plan", "--repeats", "0"]) == 0
    assert "planned on (cell, lever phase)" not in capsys.readouterr().out
    make_version_3(lib.root)
    assert main(["compose", str(lib.root), "--objective", LONG, "--plan", "phase", "--repeats", "0"]) != 0
    assert "rebuild the library" in capsys.readouterr().err
