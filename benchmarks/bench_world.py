"""The batched step kernel against the same step in plain Python (tests/reference.py), study rules."""

import numpy as np
from benchmarks.conftest import python_timings
from lever import Layout
from lever.kernels import constants as K
from lever.kernels.world import step_batch
from tests.reference import ALL_SETS, reference_move, reference_world, study_reward

N_AGENTS = 4096


def test_batched_step_vs_plain_python(benchmark, capsys, neighbour):
    layout = Layout.generate("grid16-dense", seed=1)
    rng = np.random.default_rng(0)
    free = np.flatnonzero(layout.passable & (layout.cells.ravel() != K.EXIT))
    positions = rng.choice(free, size=N_AGENTS).astype(np.int64)
    actions = rng.integers(0, 4, size=N_AGENTS).astype(np.int64)
    gold_taken = rng.integers(0, 2, size=(N_AGENTS, layout.gold.size)).astype(np.uint8)
    lever_on = rng.integers(0, 2, size=N_AGENTS).astype(np.int64)
    masks, coefs = np.array([K.PATH_BIT | K.GOLD_BIT | K.HAZARD_BIT | K.LEVER_BIT]), np.array([1.0])
    rewards = np.zeros(N_AGENTS)
    no_sets = np.zeros((0, 0))
    terminated = np.zeros(N_AGENTS, dtype=np.bool_)

    world = reference_world(layout)
    start_states = [(int(p), int(a), frozenset(np.flatnonzero(g == 0).tolist()), bool(on))
                    for p, a, g, on in zip(positions, actions, gold_taken, lever_on)]

    full = ALL_SETS[15]

    def python_batch():  # the same work: the move and the objective's reward
        for pos, action, gold_left, on in start_states:
            nxt, bumped, *_ = reference_move(world, pos, action, gold_left, on)
            study_reward(world, full, pos, nxt, bumped, gold_left, on)

    python_median, python_min = python_timings(python_batch)
    step_batch(layout.world, positions.copy(), actions, gold_taken.copy(), lever_on.copy(),
               masks, coefs, rewards, no_sets, terminated)  # compile outside the timing
    # Agents keep walking from wherever the previous call left them; every call is N steps.
    benchmark(step_batch, layout.world, positions, actions, gold_taken, lever_on, masks, coefs, rewards,
              no_sets, terminated)
    kernel_median, kernel_min = benchmark.stats.stats.median, benchmark.stats.stats.min
    benchmark.extra_info.update(
        agents=N_AGENTS, kernel_steps_per_s=N_AGENTS / kernel_median,
        python_steps_per_s=N_AGENTS / python_median, ratio_of_medians=python_median / kernel_median,
        ratio_of_minimums=python_min / kernel_min)
    with capsys.disabled():
        print(f"\n[batched step, {N_AGENTS} agents, 16x16 dense, {neighbour}] median: kernel "
              f"{N_AGENTS / kernel_median:,.0f} steps/s ({kernel_median * 1e6:.1f} us per batch), plain "
              f"Python {N_AGENTS / python_median:,.0f} steps/s: {python_median / kernel_median:,.0f}x; "
              f"best: kernel {N_AGENTS / kernel_min:,.0f} steps/s, plain Python "
              f"{N_AGENTS / python_min:,.0f} steps/s: {python_min / kernel_min:,.0f}x")
    assert np.isfinite(rewards).all()
