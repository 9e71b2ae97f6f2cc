"""A tabular world: its training kernel against the same loop in plain Python, and reading envs into tables."""

import time
import warnings

from benchmarks.conftest import python_timings
from lever import TabularWorld, TrainConfig, train
from tests.test_tabular import ref_train

warnings.filterwarnings("ignore", module="gymnasium")

EPISODES = 300


def test_table_training_kernel_vs_plain_python(benchmark, capsys):
    # Q-learning of the treasure component on deep-sea-treasure (72 states, 4 actions, 2 components).
    world = TabularWorld.from_gymnasium("deep-sea-treasure-v0")
    config = TrainConfig(episodes=EPISODES, algorithm="q_learning", gamma=0.99, epsilon_decay=0.99,
                         snapshot_interval=0)

    def python_loop():
        ref_train(world, [1.0, 0.0], EPISODES, world.max_steps, 0.1, 0.99, 1.0, 0.99, 0.01, False, 0)

    python_median, python_min = python_timings(python_loop, repeats=3)
    train(world, [1.0, 0.0], config)  # compile outside the timing
    policy = benchmark(train, world, [1.0, 0.0], config)
    kernel_median, kernel_min = benchmark.stats.stats.median, benchmark.stats.stats.min
    steps = int(policy.visits.sum())
    benchmark.extra_info.update(episodes=EPISODES, steps=steps, ratio_of_medians=python_median / kernel_median,
                                ratio_of_minimums=python_min / kernel_min)
    with capsys.disabled():
        print(f"\n[Q-learning, deep-sea-treasure, {EPISODES} episodes, {steps} steps] median: kernel "
              f"{steps / kernel_median:,.0f} steps/s ({kernel_median * 1e3:.2f} ms), plain Python "
              f"{steps / python_median:,.0f} steps/s ({python_median:.3f} s): {python_median / kernel_median:,.0f}x; "
              f"best: {python_min / kernel_min:,.0f}x")


def test_reading_envs_into_tables(benchmark, capsys):
    # Seconds to read each env (toy-text P tables, or the breadth-first search over snapshots).
    envs = {"FrozenLake-v1": {"is_slippery": False}, "Taxi-v4": None, "deep-sea-treasure-v0": None,
            "fruit-tree-v0": None, "deep-sea-treasure-mirrored-v0": None}
    seconds = {}
    for env_id, kwargs in envs.items():
        began = time.perf_counter()
        world = TabularWorld.from_gymnasium(env_id, env_kwargs=kwargs)
        seconds[env_id] = (time.perf_counter() - began, world.n_states)
    benchmark.pedantic(TabularWorld.from_gymnasium, args=("deep-sea-treasure-v0",), rounds=3, iterations=1)
    benchmark.extra_info.update({k: v[0] for k, v in seconds.items()})
    with capsys.disabled():
        for env_id, (s, n) in seconds.items():
            print(f"\n[read {env_id}] {n} states in {s:.3f} s", end="")
        print()
