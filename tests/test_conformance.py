"""lever's default world is the study's: its recorded steps and its layouts, replayed exactly.

The data in ``tests/data`` was recorded from the study's own public code:
``study_traces.json`` holds 10 layouts × all 15 component sets × 7 episodes
(random walks with bumps and hazards, routes to the exit, via the lever, via
all gold); ``study_layouts.json`` the layout of every spec set for seeds 0–4.
"""

import json
import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import lever
from lever.kernels.constants import N_SETS
from lever.kernels.world import N_TERMS, set_rewards, step

DATA = Path(__file__).parent / "data"
TRACES = json.loads((DATA / "study_traces.json").read_text())
LAYOUTS = json.loads((DATA / "study_layouts.json").read_text())
ACTION = {name: i for i, name in enumerate(lever.ACTIONS)}


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def cases_by_layout():
    grouped = {}
    for case in TRACES["cases"]:
        grouped.setdefault("\n".join(case["layout"]), []).append(case)
    return grouped


def test_actions_are_numbered_as_the_study_numbers_them():
    assert lever.ACTIONS == ("right", "down", "left", "up")


@pytest.mark.parametrize("rules", ["study", "linear"])
def test_every_recorded_step_replays_exactly_through_the_env(rules):
    singles = {}
    for case in TRACES["cases"]:
        singles[("\n".join(case["layout"]), case["objective"])] = case
    steps = matched = 0
    for case in TRACES["cases"]:
        text = "\n".join(case["layout"])
        layout = lever.Layout.from_text(text)
        env = gymnasium.make("lever/GridWorld-v0", layout=layout, objective=case["objective"], rules=rules)
        for e, episode in enumerate(case["episodes"]):
            want = episode["rewards"]
            if rules == "linear":  # a set earns the sum of its singletons' recorded rewards
                parts = case["objective"].split("+")
                want = [sum(singles[(text, p)]["episodes"][e]["rewards"][t] for p in parts)
                        for t in range(len(want))]
            env.reset()
            for t, name in enumerate(episode["actions"]):
                obs, reward, terminated, truncated, info = env.step(ACTION[name])
                steps += 1
                matched += (close(reward, want[t]) and divmod(int(obs), layout.width) == tuple(episode["positions"][t + 1])
                            and terminated == episode["done"][t])
                assert len(info["reward_vector"]) == 4
                if terminated or truncated:
                    break
    assert steps > 25_000
    assert matched == steps


def test_every_recorded_step_replays_exactly_through_the_step_kernel():
    # The kernel keeps stepping after the end, so every one of the recorded steps is replayed.
    steps = 0
    for text, cases in cases_by_layout().items():
        layout = lever.Layout.from_text(text)
        for e in range(len(cases[0]["episodes"])):
            actions = cases[0]["episodes"][e]["actions"]
            assert all(case["episodes"][e]["actions"] == actions for case in cases)
            gold_taken = np.zeros(layout.gold.size, dtype=np.uint8)
            terms, rewards = np.zeros(N_TERMS), np.zeros(N_SETS)
            pos, lever_on = layout.start, 0
            for t, name in enumerate(actions):
                pos, lever_on, done = step(layout.world, pos, ACTION[name], gold_taken, lever_on, terms)
                set_rewards(terms, rewards)
                for case in cases:
                    episode = case["episodes"][e]
                    mask = lever.Objective.parse(case["objective"]).mask
                    assert close(rewards[mask], episode["rewards"][t]), (case["objective"], e, t)
                    assert divmod(int(pos), layout.width) == tuple(episode["positions"][t + 1])
                    assert done == episode["done"][t]
                steps += len(cases)
    assert steps == sum(len(ep["actions"]) for case in TRACES["cases"] for ep in case["episodes"]) == 35_640


@pytest.mark.parametrize("entry", LAYOUTS["layouts"], ids=lambda e: f"{e['spec_set']}-{e['seed']}")
def test_the_sampler_draws_the_study_layout_of_every_set_and_seed(entry):
    layout = lever.Layout.generate(entry["spec_set"], seed=entry["seed"])
    assert layout.to_text().splitlines() == entry["layout"]
    spec = lever.GridSpec.preset(entry["spec_set"])
    assert (spec.height, spec.n_gold, spec.n_walls, spec.n_hazards) == \
        (entry["size"], entry["gold"], entry["walls"], entry["hazards"])


def test_every_spec_set_of_the_study_is_a_preset():
    assert set(lever.PRESETS) == {"grid8", "grid16", "grid16-default", "grid16-small", "grid32", "grid16-dense",
                                  "first-release-grid16", "first-release-grid32"}
    assert {e["spec_set"] for e in LAYOUTS["layouts"]} <= set(lever.PRESETS)
