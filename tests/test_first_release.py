"""The study's first public release: its recorded steps and layouts replayed exactly, its budgets,
and its protocol as a reproduction preset.

``tests/data/first_release_traces.json`` holds 30 layouts × 15 objectives of
steps recorded from the release's own code (with ``rewards_legacy`` where its
−20 gold exit rule changes a reward); ``first_release_layouts.json`` its
layouts of seeds 0–4; ``first_release_published.json`` its 90 published rows.
"""

import csv
import json
import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import lever
from lever.errors import LeverError
from lever.kernels import constants as K
from lever.kernels.world import N_TERMS, set_rewards, step
from lever.protocol import first_release_log_rows, top_overall
from lever.published_first_release import CORRECTIONS, load_first_release_published
from lever.reproduction import ReproduceConfig, reproduce

DATA = Path(__file__).parent / "data"
TRACES = json.loads((DATA / "first_release_traces.json").read_text())
LAYOUTS = json.loads((DATA / "first_release_layouts.json").read_text())
NAMES = {"grid16-dense": "first-release-grid16", "grid32-dense": "first-release-grid32"}
ACTION = {name: i for i, name in enumerate(TRACES["actions"])}


def test_the_action_table_is_the_releases():
    assert TRACES["actions"] == list(lever.worlds.env.FIRST_RELEASE_ACTIONS) == ["right", "down", "right2", "down2"]
    assert [tuple(TRACES["moves"][name]) for name in TRACES["actions"]] == list(K.FIRST_RELEASE_MOVES)


@pytest.mark.parametrize("legacy", [False, True])
def test_every_recorded_step_replays_exactly_through_the_env(legacy):
    steps = matched = 0
    for case in TRACES["cases"]:
        layout = lever.Layout.from_text("\n".join(case["layout"]))
        env = gymnasium.make("lever/GridWorld-v0", layout=layout, objective=case["objective"],
                             rules="first-release", legacy_gold_exit=legacy).unwrapped
        for episode in case["episodes"]:
            want = episode.get("rewards_legacy", episode["rewards"]) if legacy else episode["rewards"]
            env.reset()
            for t, name in enumerate(episode["actions"]):
                obs, reward, terminated, truncated, _ = env.step(ACTION[name])
                steps += 1
                matched += (math.isclose(reward, want[t], rel_tol=1e-9, abs_tol=1e-9)
                            and list(divmod(int(obs), layout.width)) == episode["positions"][t + 1]
                            and terminated == episode["done"][t])
                if terminated or truncated:
                    break
    assert steps == matched == 42_630


@pytest.mark.parametrize("legacy", [False, True])
def test_every_recorded_reward_is_bit_exact_through_the_step_kernel(legacy):
    steps = 0
    for case in TRACES["cases"]:
        layout = lever.Layout.from_text("\n".join(case["layout"]))
        world = layout.world_for("first-release", legacy)
        mask = lever.Objective.parse(case["objective"]).mask
        for episode in case["episodes"]:
            want = episode.get("rewards_legacy", episode["rewards"]) if legacy else episode["rewards"]
            gold_taken = np.zeros(layout.gold.size, dtype=np.uint8)
            terms, rewards = np.zeros(N_TERMS), np.zeros(K.N_SETS)
            pos, lever_on = layout.start, 0
            for t, name in enumerate(episode["actions"]):
                pos, lever_on, done = step(world, pos, ACTION[name], gold_taken, lever_on, terms)
                set_rewards(terms, rewards)
                assert rewards[mask] == want[t], (case["objective"], t)  # the same float, not only close
                steps += 1
                if done:
                    break
    assert steps == 42_630


def test_the_legacy_rule_changes_only_gold_exits():
    changed = [(case["objective"], ep) for case in TRACES["cases"] for ep in case["episodes"] if "rewards_legacy" in ep]
    assert changed and all("gold" in objective for objective, _ in changed)


@pytest.mark.parametrize("entry", LAYOUTS["layouts"], ids=lambda e: f"{e['spec_set']}-{e['seed']}")
def test_the_sampler_draws_the_release_layout_of_every_set_and_seed(entry):
    layout = lever.Layout.generate(NAMES[entry["spec_set"]], seed=entry["seed"])
    assert layout.to_text().splitlines() == entry["layout"]
    spec = lever.GridSpec.preset(NAMES[entry["spec_set"]])
    assert (spec.height, spec.n_gold, spec.n_walls, spec.n_hazards) == \
        (entry["size"], entry["gold"], entry["walls"], entry["hazards"])
    assert layout.start == 0 and layout.exit == layout.n_states - 1


def test_a_double_move_looks_only_at_its_landing_cell():
    # right2 from S jumps the wall, the hazard jumps nothing: it lands on it; down2 jumps the lever and gold.
    layout = lever.Layout.from_text("S#.H\nL...\nG..E\n")
    env = lever.GridWorldEnv(layout, "path+gold+hazard+lever", rules="first-release")
    env.reset()
    obs, reward, terminated, _, info = env.step(2)  # right2 over the wall
    assert obs == 2 and not terminated and not info["lever_on"]
    env.reset()
    obs, reward, terminated, _, info = env.step(3)  # down2 over the lever, onto the gold
    assert obs == 8 and not info["lever_on"] and info["gold_left"] == 0
    obs, reward, terminated, _, _ = env.step(0)  # right: fine; then a bump off the grid costs 1.0 only
    obs, reward, terminated, _, _ = env.step(1)
    assert reward == -1.0 and obs == 9


def test_the_study_world_is_untouched():
    layout = lever.Layout.generate("grid16", seed=0)
    assert layout.world_for("study") is layout.world and layout.world_for("linear") is layout.world
    assert layout.world.rules == K.RULES_STUDY and layout.world.legacy_gold_exit == 0
    first = layout.world_for("first-release")
    assert first is layout.world_for("first-release") and first.rules == K.RULES_FIRST_RELEASE
    assert first.cells is layout.world.cells and not np.array_equal(first.moves, layout.world.moves)
    with pytest.raises(LeverError, match="unknown rules"):
        layout.world_for("v2")


def test_the_releases_budgets_and_gamma():
    config = lever.TrainConfig.from_budget("X1", "first-release-grid16")
    assert (config.episodes, config.epsilon_decay, config.gamma, config.rules) == (30_000, 0.99995, 0.99,
                                                                                     "first-release")
    assert config.fresh_action  # its loop: a fresh ε-greedy action every step
    ends = [lever.TrainConfig.from_budget(b, "first-release-grid32") for b in ("X1", "X5", "X10")]
    assert [c.episodes for c in ends] == [30_000, 150_000, 300_000]
    assert [round(c.epsilon_decay ** c.episodes, 4) for c in ends] == [0.2231, 0.0111, 0.0498]
    assert lever.TrainConfig.from_budget("X1", "grid16").gamma == 0.0


def test_the_library_rows_and_the_targeted_choice():
    assert first_release_log_rows(30) == (6, 18, 24)
    assert first_release_log_rows(150) == (30, 90, 120)
    assert first_release_log_rows(300) == (60, 180, 240)
    # The 2 best pooled, possibly of one sub-query; ties to the earlier list, then the earlier entry.
    assert top_overall([[10, 11], [20, 21]], [[5, 4], [7, 6]], 2) == (20, 21)
    assert top_overall([[10, 11], [20, 21]], [[7, 4], [7, 6]], 2) == (10, 20)


def test_the_published_rows_and_the_one_correction():
    published = load_first_release_published()
    assert len(published.rows) == 90
    assert published.scratch("X10", "path+gold+hazard+lever", corrected=False)[3] == 246.47
    assert published.scratch("X10", "path+gold+hazard+lever")[3] == -246.47 == CORRECTIONS[
        ("X10", "path+gold+hazard+lever", 3)]
    assert published.value("X1", "trivial", "path+gold", 0, "targeted") == 110.81


def test_reproduce_config_of_a_first_release_set():
    config = ReproduceConfig(setting="first-release-grid16", seeds=(0, 1), budgets=("X1", "X5"))
    assert config.rules == "first-release" and config.first_release
    assert config.cells == [(0, "X1+X5"), (1, "X1+X5")]
    with pytest.raises(LeverError, match="first release's rules"):
        ReproduceConfig(setting="first-release-grid16", rules="linear")
    with pytest.raises(LeverError, match="defaults"):
        ReproduceConfig(setting="first-release-grid16", operator="max")
    with pytest.raises(LeverError, match="spec sets"):
        ReproduceConfig(setting="grid16", rules="first-release")


def test_a_small_first_release_reproduction(tmp_path):
    config = ReproduceConfig(setting="first-release-grid16", seeds=(0,), budgets=("X1",), episodes=3000)
    result = reproduce(config, tmp_path, jobs=1, progress=False)
    with open(tmp_path / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["operator"] for r in rows} == {"", "route", "sum"}
    assert {r["method"] for r in rows} == {"scratch", "targeted", "hybrid", "exhaustive"}
    assert len(rows) == 6 * (1 + 3 * 2)
    route = [r for r in rows if r["operator"] == "route"]
    # A route is replayed in the true world: it ends at the exit with the value the search gave it; a union
    # without a logged route to the exit (short runs, small unions) is a dead end with no value.
    found = [r for r in route if r["offline_return"]]
    assert all(r["end"] == "exit" and float(r["true_return"]) == float(r["offline_return"]) for r in found)
    assert all(r["end"] == "dead_end" for r in route if not r["offline_return"])
    assert len(found) >= 12
    assert all(r["members"].count("|") + 1 == (2 if r["method"] == "targeted" else len(r["members"].split("|")))
               for r in route)
    report = result.report.read_text()
    assert "cell by cell" in report and "as distributions" in report and "−246.47" in report
