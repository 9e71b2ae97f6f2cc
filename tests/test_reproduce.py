"""The reproduction pipeline: the study's protocol end to end on grid8, resumable, checked."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lever import Layout, LeverError, Objective, TrainConfig
from lever.cli import main
from lever.errors import FileFormatError
from lever.ownership import mark_output_dir
from lever.protocol import LIBRARY_OBJECTIVES, MODES, QUERIES
from lever.reproduction import COLUMNS, ReproduceConfig, SnapshotLibrary, reproduce
from lever.reproduction.cell import search
from lever.reproduction.library import run_file, train_runs
from lever.reproduction.runner import train_cell_library
from lever.training import TrainedPolicy

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    code = main(["reproduce", "--grid", "grid8", "--seeds", "0", "1", "--budgets", "X1", "--out", str(out),
                 "--jobs", "1", "--no-progress"])
    assert code == 0
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    return out, rows


def test_outputs_and_columns(run):
    out, rows = run
    assert (out / "report.md").read_text().startswith("# lever reproduction: grid8")
    for name in ("methods", "k_sweep", "coverage", "long_horizon_coverage"):
        for suffix in (".png", ".svg"):
            assert (out / "figures" / f"{name}{suffix}").stat().st_size > 1000
    assert tuple(rows[0]) == COLUMNS
    assert {r["seed"] for r in rows} == {"0", "1"} and {r["budget"] for r in rows} == {"X1"}


def test_every_mode_query_and_method_is_present(run):
    _, rows = run
    protocol = [r for r in rows if r["experiment"] == "protocol"]
    for seed in ("0", "1"):
        for query in QUERIES:
            methods = {r["method"] for r in protocol
                       if r["seed"] == seed and r["mode"] == query.mode and r["query"] == query.query}
            assert methods == {"scratch", "targeted", "hybrid", "exhaustive"}
            ks = sorted(int(r["k"]) for r in protocol if r["seed"] == seed and r["mode"] == query.mode
                        and r["query"] == query.query and r["k"])
            assert ks == [1, 2, 3, 4, 5]
    assert {r["mode"] for r in protocol} == set(MODES)
    assert {r["experiment"] for r in rows} == {"protocol", "snapshot_cap", "thinning", "long_horizon",
                                               "long_horizon_thinning"}


#: Columns that do not depend on the machine (times do), compared with the rows lever wrote before phase planning.
STABLE = ("setting", "rules", "selection", "operator", "seed", "budget", "experiment", "mode", "query", "method", "k",
          "snapshot_cap", "thin_fraction", "gamma", "true_return", "reached_exit", "pulled_lever", "dead_end", "end",
          "steps", "combinations_tried", "union_coverage", "offline_return", "members")


def test_rows_before_phase_planning_are_unchanged(run):
    # tests/data/reproduce_grid8_rows.json: this very run (grid8, seeds 0 1, X1) as lever wrote it before
    # phase planning: every row it had (the protocol, both coverage ablations, the +plan rows) comes out
    # the same, and only the phase rows are new.
    _, rows = run
    with open(DATA / "reproduce_grid8_rows.json") as handle:
        before = json.load(handle)
    old = [{k: r[k] for k in STABLE} for r in rows
           if not r["method"].endswith("+phase-plan") and r["experiment"] != "long_horizon_thinning"]
    assert old == before
    new = [r for r in rows if r["method"].endswith("+phase-plan")]
    long_queries = {(r["seed"], r["mode"]) for r in rows if r["query"] == "path+gold+hazard+lever"}
    assert {(r["seed"], r["mode"], r["method"]) for r in new if r["experiment"] == "long_horizon"} == {
        (seed, mode, f"{m}+phase-plan") for seed, mode in long_queries for m in ("targeted", "hybrid", "exhaustive")}
    thinned = [r for r in rows if r["experiment"] == "long_horizon_thinning"]
    assert {r["thin_fraction"] for r in thinned} == {"0.0", "0.2", "0.4", "0.6", "0.8"}
    assert {r["method"] for r in thinned} == {"hybrid", "hybrid+plan", "hybrid+phase-plan"}


def test_chosen_members_are_entries_of_the_sub_queries_never_the_query_itself(run):
    _, rows = run
    decomposition = {(q.mode, q.query): q.subqueries for q in QUERIES}
    composed = [r for r in rows if r["members"]]
    assert composed
    for r in composed:
        members = [m.split("@")[0] for m in r["members"].split("|")]
        assert tuple(members) == decomposition[(r["mode"], r["query"])]
        assert r["query"] not in members


def test_combinations_and_costs(run):
    _, rows = run
    for r in rows:
        if r["experiment"] == "protocol" and r["k"]:
            m = len(decompose(r))
            # at most k^m (fewer when a sub-query has fewer entries than k)
            assert 1 <= int(r["combinations_tried"]) <= int(r["k"]) ** m
            assert float(r["time_s"]) > 0 and 0 < float(r["union_coverage"]) <= 1


def decompose(row):
    return next(q.subqueries for q in QUERIES if (q.mode, q.query) == (row["mode"], row["query"]))


def test_rerun_resumes_identically_and_another_config_is_refused(run, tmp_path):
    out, rows = run
    config = ReproduceConfig(setting="grid8", seeds=(0, 1), budgets=("X1",))
    again = reproduce(config, out, jobs=1, progress=False)
    assert again.resumed_cells == 2
    with open(out / "results.csv") as handle:
        assert list(csv.DictReader(handle)) == rows
    with pytest.raises(LeverError, match="another configuration"):
        reproduce(ReproduceConfig(setting="grid8", seeds=(0,), budgets=("X1",)), out, progress=False)


def test_runs_are_a_stage_of_their_own_and_go_once_the_cells_are_written(run, tmp_path):
    out, rows = run
    assert not (out / "runs").exists()
    # An interrupted run left one cell's library runs (one of them damaged): the re-run uses the
    # whole ones, retrains the damaged one, and gives the same rows.
    config = ReproduceConfig(setting="grid8", seeds=(0, 1), budgets=("X1",))
    folder = tmp_path / "again" / "runs" / "1-X1"
    mark_output_dir(tmp_path / "again", "reproduction")  # a run marks its directory before it trains
    train_cell_library(config.to_dict(), 1, "X1", str(folder))
    assert sorted(p.stem for p in folder.iterdir()) == sorted(LIBRARY_OBJECTIVES)
    (folder / "path.npz").write_bytes(b"not a policy")
    again = reproduce(config, tmp_path / "again", jobs=1, progress=False)
    assert again.resumed_cells == 0 and not (tmp_path / "again" / "runs").exists()
    with open(tmp_path / "again" / "results.csv") as handle:
        assert [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(handle)] == \
            [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_saved_runs_are_reused_only_when_they_are_the_same_training(tmp_path):
    layout = Layout.generate("grid8", seed=0)
    config = TrainConfig.from_budget("X1", "grid8", episodes=1500)
    first = train_runs(layout, config, ("path", "gold"), tmp_path)
    again = train_runs(layout, config, ("path", "gold"), tmp_path)
    assert [p.wall_time for p in again] == [p.wall_time for p in first]  # loaded, not trained again
    assert all(np.array_equal(a.snapshot_q, b.snapshot_q) for a, b in zip(first, again))
    other = train_runs(layout, TrainConfig.from_budget("X1", "grid8", episodes=1200), ("path",), tmp_path)
    assert other[0].config.episodes == 1200  # another config: trained again, not taken from the folder
    assert TrainedPolicy.load(run_file(tmp_path, "path")).config.episodes == 1200


def test_a_hand_edited_cell_is_named(run, tmp_path):
    out, _ = run
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(out, copy)
    cell = copy / "cells" / "0-X1.json"
    doc = json.loads(cell.read_text())
    doc["rows"][0]["true_return"] = 1e6
    cell.write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match="0-X1.json"):
        reproduce(ReproduceConfig(setting="grid8", seeds=(0, 1), budgets=("X1",)), copy, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(setting="grid9"), "grid setting"), (dict(seeds=()), "seeds"), (dict(seeds=(1, 1)), "repeat"),
    (dict(budgets=("X2",)), "budgets"), (dict(modes=("quadruple",)), "modes"), (dict(rules="additive"), "rules"),
    (dict(episodes=0), "episodes"),
])
def test_bad_configurations_are_refused(kwargs, message):
    with pytest.raises(LeverError, match=message):
        ReproduceConfig(**kwargs)


def test_the_snapshot_library_follows_the_study_selection():
    layout = Layout.generate("grid8", seed=3)
    config = TrainConfig.from_budget("X1", "grid8")
    library = SnapshotLibrary.build(layout, config)
    per_objective = {o: [e for e in library.entries if e.objective == o] for o in LIBRARY_OBJECTIVES}
    for objective, entries in per_objective.items():
        # 9 snapshots (1000..9000) and the final table: 3 + round(0.6 * 7) = 7 entries, never episode 0
        assert len(entries) == 7, objective
        assert all(e.episode != 0 for e in entries)
    best = library.candidates("path", 5)
    assert [library.entries[r].objective for r in best] == ["path"] * 5
    assert [library.entries[r].greedy_return for r in best] == sorted(
        (library.entries[r].greedy_return for r in best), reverse=True)


def test_thinning_removes_support_and_keeps_q():
    layout = Layout.generate("grid8", seed=3)
    library = SnapshotLibrary.build(layout, TrainConfig.from_budget("X1", "grid8", episodes=2000),
                                    objectives=("path", "gold"))
    thinned = library.thinned(0.5, seed=0)
    for before, after in zip(library.entries, thinned.entries):
        kept = after.policy.visits > 0
        assert kept.sum() == pytest.approx(0.5 * (before.policy.visits > 0).sum(), abs=1)
        assert np.array_equal(after.policy.q, before.policy.q)
        assert (after.policy.next_state[~kept] == -1).all()
    early = library.up_to(1000)
    assert {e.episode for e in early.entries} <= {1000}
    query = QUERIES[0]
    choice = search(library, query, 3, Objective.parse(query.query), "study")
    assert choice.tried <= 9


def test_beyond_the_study_options_run_and_are_recorded(tmp_path):
    out = tmp_path / "beyond"
    assert main(["reproduce", "--grid", "grid8", "--seeds", "0", "--budgets", "X1", "--episodes", "2000",
                 "--modes", "double", "--rules", "linear", "--selection", "all", "--operator", "max",
                 "--no-ablations", "--out", str(out), "--jobs", "1", "--no-progress"]) == 0
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["rules"], r["selection"], r["operator"]) for r in rows} == {("linear", "all", "max")}
    assert {r["mode"] for r in rows} == {"double"}
    assert "rules linear, snapshot selection all, operator max" in (out / "report.md").read_text()
    # every snapshot but episode 0 enters the library: 1 (episode 1000) + the final table per objective
    assert all(len(r["members"].split("|")) == 2 for r in rows if r["members"])
