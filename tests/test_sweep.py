"""The sweep runner: every column, resume after a kill, Ray = process pool, clear errors before work."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

import lever
from lever import Layout, compose, rollout, train
from lever.cli import main
from lever.errors import FileFormatError, LeverError
from lever.library import PolicyLibrary
from lever.strategies import STRATEGIES, StrategySpec
from lever.search import StrategyResult
from lever.sweep import (
    RECORD_COLUMNS, TIMING_COLUMNS, Cell, SweepConfig, SweepRow, expand_composites, library_root, read_table,
    run_cell, run_sweep,
)

ROOT = Path(__file__).resolve().parent.parent
ENDS = {"exit", "hazard", "dead_end", "step_cap"}


def tiny(**overrides) -> SweepConfig:
    """Two composites (one with the lever) on one grid8 layout, short training, one timed repeat."""
    base = dict(settings=("grid8",), budgets=("X1",), layout_seeds=(0,),
                composites=("path+gold", "path+hazard+lever"), planning=True, episodes=400, timing_repeats=1)
    return SweepConfig(**{**base, **overrides})


def stable(rows) -> list[tuple]:
    """Rows without their timing columns, NaN made comparable."""
    keep = [f.name for f in fields(SweepRow) if f.name not in TIMING_COLUMNS]
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                  for v in (getattr(row, name) for name in keep)) for row in rows]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "sweep"
    return run_sweep(tiny(), out, jobs=1, progress=False)


def test_tiny_sweep_fills_every_column(tiny_sweep):
    config = tiny_sweep.config
    rows = tiny_sweep.rows
    assert len(rows) == len(config.cells()) * len(config.strategies) * 2
    assert tiny_sweep.computed == len(config.cells()) and tiny_sweep.reused == 0
    keys = [(r.setting, r.budget, r.layout_seed, r.composite, r.strategy, r.planning) for r in rows]
    assert len(set(keys)) == len(keys)
    assert {r.strategy for r in rows} == set(config.strategies) == {"targeted", "hybrid:3", "exhaustive", "beam:3"}
    layout = Layout.generate("grid8", seed=0)
    for row in rows:
        assert (row.setting, row.budget, row.layout_seed, row.episodes) == ("grid8", "X1", 0, 400)
        assert row.layout_id == layout.id
        assert row.n_components == len(row.composite.split("+"))
        assert row.long_horizon == ("lever" in row.composite)
        assert row.true_end in ENDS and row.offline_end in ENDS and row.scratch_end in ENDS
        assert 0 < row.support_coverage <= 1 and 0 <= row.route_on_support <= 1
        assert row.combinations_tried >= 1
        assert len(row.policy_ids.split(";")) == row.n_components
        assert row.planned <= row.planning
        for name in ("scratch_s", "search_s"):
            assert getattr(row, name) > 0
        for name in ("retrieval_s", "composition_s", "scoring_s", "planning_s"):
            assert getattr(row, name) >= 0
        # ratio, difference and speedup come from this very line's columns
        if row.scratch_return > 0:
            assert row.return_ratio == row.true_return / row.scratch_return
        else:
            assert math.isnan(row.return_ratio)
        assert row.return_difference == row.true_return - row.scratch_return
        assert row.speedup == row.scratch_s / row.search_s
    targeted = [r for r in rows if r.strategy == "targeted"]
    assert all(r.combinations_tried == 1 for r in targeted)
    exhaustive = {(r.composite, r.planning): r.combinations_tried for r in rows if r.strategy == "exhaustive"}
    hybrid = {(r.composite, r.planning): r.combinations_tried for r in rows if r.strategy == "hybrid:3"}
    assert all(exhaustive[key] >= hybrid[key] for key in hybrid)
    # one cell's baseline repeats on each of its lines, measured once
    by_cell = {}
    for row in rows:
        by_cell.setdefault(row.composite, set()).add((row.scratch_return, row.scratch_s))
    assert all(len(values) == 1 for values in by_cell.values())


def test_rows_are_the_real_computation(tiny_sweep):
    """The baseline is the composite trained from scratch; each strategy's returns are lever.compose's."""
    config = tiny_sweep.config
    layout = Layout.generate("grid8", seed=0)
    library = PolicyLibrary.open(library_root(tiny_sweep.out, "grid8", 0, "X1"))
    for row in tiny_sweep.rows:
        spec = StrategySpec.parse(row.strategy)
        if row.strategy == "targeted":
            policy = train(layout, row.composite, config.train_config("grid8", "X1", config.scratch_seed))
            assert row.scratch_return == rollout(layout, policy, row.composite, rules=config.rules).ret
        size = STRATEGIES[spec.name].size
        options = {size: spec.param} if size else {}
        result = compose(library, row.composite, layout=layout.id, strategy=spec.name, plan=row.planning,
                         **options)
        assert row.true_return == result.true_return
        assert row.offline_return == result.offline_return
        assert row.policy_ids == ";".join(map(str, result.policy_ids))
        assert row.combinations_tried == result.combinations_tried
        for name in set(RECORD_COLUMNS) - set(TIMING_COLUMNS) - {"policy_ids"}:  # one record, same names
            assert getattr(row, name) == getattr(result, name), name


def test_rows_carry_the_result_record_under_its_own_field_names():
    record = {f.name for f in fields(StrategyResult)}
    row = {f.name for f in fields(SweepRow)}
    assert set(RECORD_COLUMNS) <= record & row
    # Every other field is constant across a sweep, a vector, or the policy itself. The row's
    # ``strategy`` and ``layout_id`` are cell columns (``strategy`` is the label, e.g. hybrid:3).
    assert record - row == {"objective", "operator", "scoring", "components", "true_return_vector", "policy"}


def test_table_files_and_manifest(tiny_sweep):
    out = tiny_sweep.out
    assert stable(read_table(out)) == stable(tiny_sweep.rows)
    assert stable(read_table(out / "results.csv")) == stable(tiny_sweep.rows)
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["config_hash"] == tiny_sweep.config.hash
    assert manifest["lever_version"] == lever.__version__
    assert SweepConfig.from_dict(manifest["config"]) == tiny_sweep.config
    assert manifest["finished"] and manifest["n_cells"] == 2
    assert len(list((out / "cells").glob("*.json"))) == 2
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert tiny_sweep.parquet is None
    else:
        assert pq.read_table(tiny_sweep.parquet).num_rows == len(tiny_sweep.rows)


def test_rerun_skips_finished_cells_and_is_deterministic(tiny_sweep, tmp_path):
    again = run_sweep(tiny_sweep.config, tiny_sweep.out, jobs=1, progress=False)
    assert (again.computed, again.reused) == (0, 2)
    assert stable(again.rows) == stable(tiny_sweep.rows)
    assert [r.scratch_s for r in again.rows] == [r.scratch_s for r in tiny_sweep.rows]  # not rerun
    fresh = run_sweep(tiny_sweep.config, tmp_path / "fresh", jobs=2, progress=False)  # process pool
    assert fresh.computed == 2
    assert stable(fresh.rows) == stable(tiny_sweep.rows)


RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import lever.sweep.runner as runner
    from lever.sweep import SweepConfig, run_sweep

    config = SweepConfig(settings=("grid8",), budgets=("X1",), layout_seeds=(0, 1),
                         composites=("path+gold", "gold+hazard", "path+hazard+lever"),
                         strategies=("targeted", "hybrid:2"), planning=False, timing_repeats=1)
    if __name__ == "__main__":
        kill_after = int(sys.argv[2])
        save, compute = runner._save_cell, runner.run_cell
        saved, started = [], []

        def compute_counted(*args):
            started.append(1)
            return compute(*args)

        def save_then_die(*args):
            save(*args)
            saved.append(1)
            if len(started) != len(saved):  # every cell is persisted before the next one starts
                os._exit(3)
            if len(saved) == kill_after:  # a hard crash right after a cell was persisted
                os.kill(os.getpid(), signal.SIGKILL)

        runner._save_cell, runner.run_cell = save_then_die, compute_counted
        run_sweep(config, sys.argv[1], jobs=1, progress=False)
""")


def resume_config() -> SweepConfig:
    namespace = {"__name__": "resume"}
    exec(RESUME_SCRIPT, namespace)
    return namespace["config"]


def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    config = resume_config()
    total = len(config.cells())
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(out), "4"], env=env, timeout=300)
    assert process.returncode == -signal.SIGKILL
    cells = out / "cells"
    persisted = len(list(cells.glob("*.json")))
    assert persisted == 4 < total

    resumed = run_sweep(config, out, jobs=1, progress=False)
    assert resumed.reused == persisted and resumed.computed == total - persisted
    assert len(list(cells.glob("*.json"))) == total
    whole = run_sweep(config, tmp_path / "whole", jobs=2, progress=False)
    assert stable(resumed.rows) == stable(whole.rows)
    keys = [(r.layout_seed, r.composite, r.strategy) for r in resumed.rows]
    assert len(keys) == len(set(keys)) == total * 2


INTERRUPT_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import lever.sweep.runner as runner
    from lever.cli import main

    save = runner._save_cell
    saved = []

    def save_then_interrupt(*args):
        save(*args)
        saved.append(1)
        if len(saved) == 2:  # Ctrl-C while the pool still has cells queued and running
            os.kill(os.getpid(), signal.SIGINT)

    runner._save_cell = save_then_interrupt
    sys.exit(main(sys.argv[1:]))
""")


def test_interrupted_pool_keeps_finished_cells_and_resumes(tmp_path, capsys):
    out = tmp_path / "interrupted"
    argv = ["sweep", "--preset", "quick", "--seeds", "0", "1", "--episodes", "300", "--out", str(out),
            "--jobs", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, *argv], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 130, done.stderr
    assert "interrupted; finished cells are kept" in done.stderr
    kept = sorted(p.name for p in (out / "cells").iterdir())
    assert 2 <= len(kept) < 12 and all(name.endswith(".json") for name in kept)  # no temporary files left
    assert main(argv) == 0
    assert f"12 cells ({12 - len(kept)} computed, {len(kept)} already done)" in capsys.readouterr().out


def test_ray_backend_gives_the_process_table(tiny_sweep, tmp_path):
    ray = pytest.importorskip("ray", reason="the ray backend needs ray (pip install 'lever[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_sweep(tiny_sweep.config, tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert result.computed == 2
    assert stable(result.rows) == stable(tiny_sweep.rows)


@pytest.mark.parametrize("overrides, message", [
    (dict(composites=("path+silver",)), "unknown composite"),
    (dict(composites=()), "at least one composite"),
    (dict(budgets=("X3",)), "unknown budget"),
    (dict(strategies=("greedy",)), "unknown strategy"),
    (dict(strategies=("targeted:2",)), "takes no parameter"),
    (dict(strategies=("hybrid:0",)), ">= 1"),
    (dict(layout_seeds=()), "seed list is empty"),
    (dict(settings=("grid12",)), "unknown setting"),
    (dict(operator="min"), "unknown operator"),
    (dict(episodes=0), "episodes"),
    (dict(library_objectives=("path", "gold")), "do not cover"),
    (dict(rules="additive"), "unknown rules"),
    (dict(composites=("path+gold*0.5",)), "weighted.*rules=\"linear\""),  # the study's rules reward sets only
    (dict(library_objectives=("path", "gold*2", "hazard", "lever")), "weighted"),
])
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(LeverError, match=message):
        tiny(**overrides)


def test_linear_rules_sweep_runs_weighted_composites(tiny_sweep, tmp_path):
    """rules="linear" reaches the config file, the libraries, the baseline and every search."""
    config = tiny(composites=("path+gold*0.5", "path+hazard+lever"), rules="linear", planning=False,
                  strategies=("targeted", "exhaustive"))
    assert config.composites == ("path+gold*0.5", "path+hazard+lever") and tiny(rules="linear").hash != tiny().hash
    assert [cell.key for cell in config.cells()] == ["grid8_X1_s0_path+goldx0.5", "grid8_X1_s0_path+hazard+lever"]
    result = run_sweep(config, tmp_path / "linear", jobs=1, progress=False)
    manifest = json.loads((result.out / "sweep.json").read_text())
    assert manifest["config"]["rules"] == "linear" and SweepConfig.from_dict(manifest["config"]) == config
    library = PolicyLibrary.open(library_root(result.out, "grid8", 0, "X1"))
    assert library.spec.rules == "linear"
    layout = Layout.generate("grid8", seed=0)
    assert len(result.rows) == 2 * 2
    for row in result.rows:
        assert row.n_components == (2 if row.composite == "path+gold*0.5" else 3)
        assert row.long_horizon == (row.composite == "path+hazard+lever")
        policy = train(layout, row.composite, config.train_config("grid8", "X1", config.scratch_seed))
        assert policy.config.rules == "linear"
        assert row.scratch_return == rollout(layout, policy, row.composite, rules="linear").ret
        found = compose(library, row.composite, layout=layout.id, strategy=StrategySpec.parse(row.strategy).name)
        assert (row.true_return, row.offline_return) == (found.true_return, found.offline_return)
        assert row.policy_ids == ";".join(map(str, found.policy_ids))
    # A cell never runs against a library trained under other rules.
    study_root = library_root(tiny_sweep.out, "grid8", 0, "X1")
    with pytest.raises(LeverError, match="study rules"):
        run_cell(config, Cell("grid8", "X1", 0, "path+gold*0.5"), str(study_root))


def test_composite_groups_expand():
    assert expand_composites(["double"]) == ("path+gold", "path+hazard", "path+lever", "gold+hazard",
                                             "gold+lever", "hazard+lever")
    assert len(expand_composites(["single", "double", "triple", "full"])) == 15
    assert expand_composites(["gold+path", "path+gold"]) == ("path+gold",)
    assert expand_composites(["gold*0.5+path", "path+gold"], rules="linear") == ("path+gold*0.5", "path+gold")
    with pytest.raises(LeverError, match="weighted"):
        expand_composites(["gold*0.5+path"])
    assert len(SweepConfig.preset("study16").cells()) == 5 * 3 * 14


def test_output_dir_of_another_config_is_refused_before_work(tiny_sweep, tmp_path):
    other = tiny(episodes=401)
    before = sorted(p.relative_to(tiny_sweep.out) for p in tiny_sweep.out.rglob("*"))
    with pytest.raises(LeverError, match="another configuration.*episodes"):
        run_sweep(other, tiny_sweep.out, jobs=1, progress=False)
    assert sorted(p.relative_to(tiny_sweep.out) for p in tiny_sweep.out.rglob("*")) == before
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(LeverError, match="not a lever sweep directory"):
        run_sweep(tiny(), stranger, jobs=1, progress=False)
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]
    with pytest.raises(LeverError, match="unknown backend"):
        run_sweep(tiny(), tmp_path / "b", backend="dask")
    with pytest.raises(LeverError, match="jobs"):
        run_sweep(tiny(), tmp_path / "j", jobs=0)
    assert not (tmp_path / "b").exists() and not (tmp_path / "j").exists()


def test_corrupt_cell_file_is_named(tiny_sweep, tmp_path):
    out = tmp_path / "copy"
    run_sweep(tiny_sweep.config, out, jobs=1, progress=False)
    victim = next((out / "cells").glob("*.json"))
    victim.write_text(victim.read_text()[:40])
    with pytest.raises(FileFormatError, match=re.escape(victim.name)):
        run_sweep(tiny_sweep.config, out, jobs=1, progress=False)


def test_cli_sweep_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(["sweep", "--preset", "quick", "--seeds", "0", "--composites", "path+gold",
                   "--episodes", "300", "--out", str(out), "--jobs", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "1 cells (1 computed, 0 already done)" in printed
    for strategy in ("targeted", "hybrid:3", "exhaustive", "beam:3", "beam:3+plan"):
        assert strategy in printed
    assert len(read_table(out)) == 8
    assert main(["sweep", "--out", str(tmp_path / "bad"), "--composites", "path+silver"]) == 2
    assert "unknown composite" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
