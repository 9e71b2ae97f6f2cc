"""Training: the SARSA kernel against the same loop in plain Python, and the full X1 budget's wall time."""

import numpy as np
import pytest

from benchmarks.conftest import python_timings
from lever import Layout, Objective, TrainConfig, train
from tests.reference import reference_train, reference_world

SHORT_EPISODES = 200
LAYOUT_SEEDS = (0, 1, 2, 3, 4)


def test_training_kernel_vs_plain_python_sarsa(benchmark, capsys):
    # The study's training (SARSA, γ = 0, its X1 ε decay) on a study layout.
    layout = Layout.generate("grid16", seed=0)
    config = TrainConfig.from_budget("X1", "grid16", episodes=SHORT_EPISODES)
    world = reference_world(layout)
    set_weights = Objective.parse("path+gold").set_weights()

    def python_loop():
        reference_train(world, set_weights, SHORT_EPISODES, epsilon_decay=config.epsilon_decay, seed=0,
                        learn_vector=False)

    python_median, python_min = python_timings(python_loop, repeats=7)
    train(layout, "path+gold", config)  # compile outside the timing
    policy = benchmark(train, layout, "path+gold", config)
    kernel_median, kernel_min = benchmark.stats.stats.median, benchmark.stats.stats.min
    steps = int(policy.visits.sum())
    benchmark.extra_info.update(
        episodes=SHORT_EPISODES, steps=steps, kernel_episodes_per_s=SHORT_EPISODES / kernel_median,
        python_episodes_per_s=SHORT_EPISODES / python_median,
        ratio_of_medians=python_median / kernel_median, ratio_of_minimums=python_min / kernel_min)
    with capsys.disabled():
        print(f"\n[SARSA, grid16 seed 0, {SHORT_EPISODES} episodes, {steps} steps] median: kernel "
              f"{SHORT_EPISODES / kernel_median:,.0f} episodes/s ({kernel_median * 1e3:.2f} ms), plain "
              f"Python {SHORT_EPISODES / python_median:,.0f} episodes/s ({python_median:.3f} s): "
              f"{python_median / kernel_median:,.0f}x; best: {python_min / kernel_min:,.0f}x")


@pytest.mark.parametrize("setting", ["grid16-dense", "grid16"])
@pytest.mark.parametrize("objective", ["path", "path+gold+hazard+lever"])
def test_full_x1_budget(benchmark, capsys, setting, objective):
    layouts = [Layout.generate(setting, seed=s) for s in LAYOUT_SEEDS]
    config = TrainConfig.from_budget("X1", setting)
    train(layouts[0], objective, TrainConfig(episodes=1))  # compile outside the timing

    def train_all():
        return [train(layout, objective, config) for layout in layouts]

    policies = benchmark.pedantic(train_all, rounds=3, iterations=1)
    per_policy = [p.wall_time for p in policies]
    benchmark.extra_info.update(episodes=config.episodes, layout_seeds=list(LAYOUT_SEEDS),
                                median_s_per_policy=float(np.median(per_policy)),
                                max_s_per_policy=max(per_policy))
    with capsys.disabled():
        print(f"\n[X1 {setting} {objective}: {config.episodes} episodes] per policy median "
              f"{np.median(per_policy):.3f} s, max {max(per_policy):.3f} s over layout seeds "
              f"{LAYOUT_SEEDS[0]}-{LAYOUT_SEEDS[-1]} (the study's own SARSA: ~25 s for 10,000 episodes on 16x16)")
