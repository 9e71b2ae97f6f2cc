"""The ``lever demo`` and ``lever train`` commands."""

import subprocess
import sys

import pytest

from lever import Layout, TrainConfig, rollout, train
from lever.cli import main
from tests.conftest import ROOT


def test_demo_runs_the_built_in_default(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert capsys.readouterr().out.startswith("lever demo")
    assert any((tmp_path / "demo").iterdir())


def test_train_prints_the_trained_policy_and_its_rollout(capsys):
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    layout = Layout.generate("grid16", seed=0)
    result = rollout(layout, train(layout, "path", TrainConfig.from_budget("X1", "grid16")), "path")
    assert f"id {layout.id}" in out and layout.to_text() in out
    assert "trained path with sarsa, 10000 episodes, gamma=0.0" in out
    assert f"greedy rollout: return {result.ret:.2f}, {result.steps} steps, ended at {result.end}" in out


def test_train_with_options(capsys):
    argv = ["train", "--grid", "grid8", "--seed", "3", "--objective", "path+gold+hazard",
            "--algorithm", "q_learning", "--gamma", "0.9", "--train-seed", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    layout = Layout.generate("grid8", seed=3)
    config = TrainConfig.from_budget("X1", "grid8", algorithm="q_learning", gamma=0.9, seed=2)
    result = rollout(layout, train(layout, "path+gold+hazard", config), "path+gold+hazard")
    assert "trained path+gold+hazard with q_learning, 10000 episodes, gamma=0.9" in out
    assert f"return {result.ret:.2f}, {result.steps} steps, ended at {result.end}" in out


def test_bad_objective_is_one_line_and_status_2(capsys):
    assert main(["train", "--grid", "grid8", "--objective", "path+speed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lever: error:") and "valid components: path, gold, hazard, lever" in err
    assert main(["train", "--grid", "grid8", "--gamma", "2"]) == 2
    assert "gamma" in capsys.readouterr().err


def test_bad_choices_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--grid", "grid99"])
    assert exit_info.value.code == 2
    assert "grid16-dense" in capsys.readouterr().err


def test_demo_as_a_module_in_a_new_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lever.cli", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("lever demo")


def test_version_and_json_outputs_and_policy_files(tmp_path, capsys):
    import json

    import lever

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"lever {lever.__version__}"
    lib = tmp_path / "lib"
    assert main(["library", "build", "--grid", "grid8", "--seeds", "0", "1", "--episodes", "300", "--out",
                 str(lib), "--jobs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    # policies of two layouts are never ranked together; k is capped at the layout's policies
    assert main(["search", str(lib), "--objective", "path"]) == 2
    assert "--seed or --layout" in capsys.readouterr().err
    assert main(["search", str(lib), "--objective", "path", "--seed", "1", "-k", "50", "--json"]) == 0
    ranking = json.loads(capsys.readouterr().out)
    assert len(ranking) == 4 and {r["layout_seed"] for r in ranking} == {1}
    assert main(["library", "info", str(lib), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policies"] == 8
    assert main(["compose", str(lib), "--seed", "0", "--objective", "path+gold", "--json",
                 "--save", str(tmp_path / "c.npz"), "--show", str(tmp_path / "c.svg")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # status lines went to stderr
    assert "policy:" in captured.err and (tmp_path / "c.svg").stat().st_size > 1000
    assert lever.ComposedPolicy.load(tmp_path / "c.npz").policy_ids == tuple(result["policy_ids"])
    assert main(["train", "--grid", "grid8", "--episodes", "300", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 300


def test_verbose_shows_what_lever_logs_and_quiet_by_default(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--preset", "quick", "--seeds", "0", "--budgets", "X1", "--composites", "path+gold",
            "--episodes", "300", "--out", str(out), "--jobs", "1", "--no-progress"]
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err
    assert main(["-v", *args]) == 0  # everything is done: the re-run resumes, and says so
    assert f"lever: resuming {out}: 1 of 1 cells already done" in capsys.readouterr().err
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err


def test_every_command_shows_an_example_in_its_help():
    import argparse

    from lever.cli import build_parser

    def commands(parser, prefix=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield (*prefix, name), sub
                    yield from commands(sub, (*prefix, name))

    found = dict(commands(build_parser()))
    assert {"train", "show", "compose", "search", "demo", "reproduce", "sweep", "report"} <= {c[0] for c in found}
    for command, parser in found.items():
        # The example names the command itself, so it can be pasted.
        assert (parser.epilog or "").startswith(f"example: lever {' '.join(command)}"), command
