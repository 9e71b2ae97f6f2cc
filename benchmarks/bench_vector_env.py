"""The native vector env (one batched kernel call per step) against gymnasium's SyncVectorEnv.

Run: ``python -m pytest benchmarks/bench_vector_env.py --benchmark-only -s``

At 1 env it is also timed against the plain gymnasium env (``gymnasium.make``, one ``step`` per call).
"""

import time

import gymnasium
import numpy as np
import pytest

import lever  # noqa: F401  (registers the env)

STEPS = 200


def steps_per_second(env, n_envs: int, steps: int = STEPS) -> float:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, size=(steps, n_envs))
    env.reset(seed=0)
    env.step(actions[0])  # warm up (compilation, caches)
    began = time.perf_counter()
    for t in range(steps):
        env.step(actions[t])
    return steps * n_envs / (time.perf_counter() - began)


def plain_env_steps_per_second(env, steps: int = 2000) -> float:
    actions = np.random.default_rng(0).integers(0, 4, size=steps).tolist()
    env.reset(seed=0)
    env.step(actions[0])
    began = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - began)


@pytest.mark.parametrize("n_envs", [1, 64, 1024])
def test_native_vector_env_vs_sync_vector_env(benchmark, capsys, neighbour, n_envs):
    kwargs = dict(layout="grid16", objective="path+gold+hazard+lever")
    native = gymnasium.make_vec("lever/GridWorld-v0", num_envs=n_envs,
                                vectorization_mode="vector_entry_point", **kwargs)
    sync = gymnasium.make_vec("lever/GridWorld-v0", num_envs=n_envs, vectorization_mode="sync", **kwargs)
    sync_rate = np.median([steps_per_second(sync, n_envs, max(5, STEPS // max(1, n_envs // 16)))
                           for _ in range(3)])
    native_rate = benchmark.pedantic(steps_per_second, args=(native, n_envs), rounds=5, iterations=1)
    native_rate = np.median([steps_per_second(native, n_envs) for _ in range(5)])
    benchmark.extra_info.update(n_envs=n_envs, native_steps_per_s=native_rate, sync_steps_per_s=sync_rate,
                                ratio=native_rate / sync_rate, neighbour=neighbour)
    plain = ""
    if n_envs == 1:
        plain_rate = np.median([plain_env_steps_per_second(gymnasium.make("lever/GridWorld-v0", **kwargs))
                                for _ in range(3)])
        benchmark.extra_info.update(plain_env_steps_per_s=plain_rate)
        plain = f"; plain gymnasium env {plain_rate:,.0f} steps/s: native {native_rate / plain_rate:.2f}x (target >= 1x)"
    with capsys.disabled():
        print(f"\n[vector env, {n_envs} envs, grid16, {neighbour}] native {native_rate:,.0f} steps/s, "
              f"SyncVectorEnv {sync_rate:,.0f} steps/s: {native_rate / sync_rate:,.1f}x (target >= 50x at 1024)"
              f"{plain}")
