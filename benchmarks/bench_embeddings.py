"""Successor-feature kernel vs a plain-Python rollout-and-sum, on the same policies.

Run: ``python -m pytest benchmarks/bench_embeddings.py --benchmark-only -s``

128 policies on a 16×16 layout (32 trained: the four components × 8
training seeds; 96 random Q tables, which often wander until the step cap),
K = 16 canonical states, so 2,048 greedy rollouts per batch. The kernel runs
them in one ``prange`` call. Two Python versions run on a subset of 16 of
the same policies: plain Python (the pure-Python world rules of
``tests/reference.py``, greedy actions, a discounted sum of the reward of
every component set, 16 per step), and a Python loop that calls the
compiled ``step`` and ``set_rewards`` (which isolates the cost of the
rollout loop itself). The kernel is also timed with cycle skipping off
(``skip_cycles=False``: every looping rollout stepped to the cap, the same
algorithm as the Python versions), so the ratio of compilation alone is
reported beside the ratio of the kernel as shipped, and on one thread (a
figure that a busy machine disturbs less than the parallel one). Policies per second of
each, and the ratios, are printed.
"""

import numba
import numpy as np
import pytest

from benchmarks.conftest import median_seconds
from lever import Layout, TrainConfig, train
from lever.embeddings import EmbeddingConfig, canonical_states, embed_policies
from lever.kernels import constants as K
from lever.kernels.world import N_TERMS, set_rewards, step
from tests.reference import all_gold, reference_greedy, reference_step, reference_world

N_TRAINED_SEEDS = 8
N_RANDOM = 96
N_PYTHON = 16


def plain_python_successor_features(layout, q, states, gamma):
    """ψ in plain Python: the reference world rules, one step at a time, φ = every set's reward."""
    world = reference_world(layout)
    psi = np.zeros((q.shape[0], len(states), K.N_SETS))
    for p in range(q.shape[0]):
        actions = reference_greedy(q[p])
        for k, start in enumerate(states):
            pos, gold_left, lever_on = int(start), all_gold(world), False
            totals, discount = [0.0] * K.N_SETS, 1.0
            for _ in range(layout.max_steps):
                result = reference_step(world, pos, actions[pos], gold_left, lever_on)
                pos, gold_left, lever_on = result.pos, result.gold_left, result.lever_on
                totals = [t + discount * r for t, r in zip(totals, result.set_rewards)]
                discount *= gamma
                if result.terminated:
                    break
            psi[p, k] = totals
    return psi


def python_loop_successor_features(layout, q, states, gamma):
    """ψ by a Python loop over policies, start states and steps, calling the compiled step."""
    psi = np.zeros((q.shape[0], len(states), K.N_SETS))
    terms = np.zeros(N_TERMS)
    reward = np.zeros(K.N_SETS)
    world = layout.world
    for p in range(q.shape[0]):
        actions = q[p].argmax(axis=1)
        for k, start in enumerate(states):
            gold_taken = np.zeros(len(layout.gold), dtype=np.uint8)
            pos, lever_on, discount = int(start), 0, 1.0
            for _ in range(layout.max_steps):
                pos, lever_on, done = step(world, pos, int(actions[pos]), gold_taken, lever_on, terms)
                set_rewards(terms, reward)
                psi[p, k] += discount * reward
                discount *= gamma
                if done:
                    break
    return psi


@pytest.fixture(scope="module")
def policies():
    layout = Layout.generate("grid16", seed=0)
    config = TrainConfig.from_budget("X1", "grid16", episodes=2000)
    trained = [train(layout, c, config.with_seed(s)).q for c in K.COMPONENT_NAMES
               for s in range(N_TRAINED_SEEDS)]
    random = np.random.default_rng(0).normal(size=(N_RANDOM, layout.n_states, K.N_ACTIONS))
    return layout, np.concatenate([np.stack(trained), random]).astype(np.float32)


def test_embedding_kernel_vs_python(benchmark, policies):
    layout, q = policies
    config = EmbeddingConfig(n_states=16)
    states = canonical_states(layout, config.n_states, config.seed)
    features = embed_policies(layout, q, states, config)  # compile
    subset = np.linspace(0, q.shape[0] - 1, N_PYTHON).astype(int)
    for slow in (plain_python_successor_features, python_loop_successor_features):
        np.testing.assert_allclose(slow(layout, q[subset], states, config.gamma),
                                   features.psi[subset], rtol=1e-9, atol=1e-6)
    benchmark.pedantic(embed_policies, args=(layout, q, states, config), rounds=15, iterations=1,
                       warmup_rounds=1)
    kernel_s = benchmark.stats.stats.median
    python_s = median_seconds(
        lambda: plain_python_successor_features(layout, q[subset], states, config.gamma))
    loop_s = median_seconds(lambda: python_loop_successor_features(layout, q[subset], states, config.gamma))
    stepping_s = median_seconds(lambda: embed_policies(layout, q, states, config, skip_cycles=False),
                                repeats=7)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single_s = median_seconds(lambda: embed_policies(layout, q, states, config), repeats=15)
    finally:
        numba.set_num_threads(threads)
    kernel_rate = q.shape[0] / kernel_s
    single_rate = q.shape[0] / single_s
    stepping_rate = q.shape[0] / stepping_s
    python_rate = N_PYTHON / python_s
    loop_rate = N_PYTHON / loop_s
    figures = {
        "policies": int(q.shape[0]), "canonical_states": config.n_states,
        "mean_rollout_steps": float(features.steps.mean()),
        "kernel_median_s": kernel_s, "python_median_s_for_subset": python_s,
        "python_subset": N_PYTHON, "kernel_policies_per_s": kernel_rate,
        "python_policies_per_s": python_rate, "speedup": kernel_rate / python_rate,
        "kernel_threads": threads, "kernel_one_thread_median_s": single_s,
        "kernel_one_thread_policies_per_s": single_rate, "speedup_one_thread": single_rate / python_rate,
        "kernel_no_cycle_skip_median_s": stepping_s,
        "kernel_no_cycle_skip_policies_per_s": stepping_rate,
        "speedup_no_cycle_skip": stepping_rate / python_rate,
        "python_loop_compiled_step_policies_per_s": loop_rate,
        "speedup_vs_python_loop_compiled_step": kernel_rate / loop_rate,
    }
    benchmark.extra_info.update(figures)
    print(f"\nembeddings: kernel {kernel_rate:,.0f} policies/s ({q.shape[0]} policies x {config.n_states} "
          f"states in {kernel_s * 1e3:.2f} ms, mean {features.steps.mean():.0f} steps per rollout), "
          f"plain Python {python_rate:,.1f} policies/s: {kernel_rate / python_rate:,.0f}x; "
          f"kernel on 1 thread {single_rate:,.0f} policies/s: {single_rate / python_rate:,.0f}x; "
          f"kernel stepping every loop to the cap {stepping_rate:,.0f} policies/s: "
          f"{stepping_rate / python_rate:,.0f}x; "
          f"Python loop over the compiled step {loop_rate:,.1f} policies/s: {kernel_rate / loop_rate:,.0f}x")
