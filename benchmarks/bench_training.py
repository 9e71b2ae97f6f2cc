"""Training: the SARSA kernel against the same loop in plain Python, and the full X1 budget's wall time.

Run: ``python -m pytest benchmarks/bench_training.py --benchmark-only -s``
"""

import time

import numpy as np
import pytest

from benchmarks.conftest import python_timings
from lever import Layout, Objective, TrainConfig, train
from tests.reference import ALL_SETS, all_gold, reference_move, reference_train, reference_world, study_reward

#: The study's library objectives timed side by side, and the episodes the plain-Python loop runs of each.
STUDY_OBJECTIVES = ("path", "gold", "path+gold", "path+gold+hazard+lever")
STUDY_LOOP_EPISODES = 1000


class StudyLoopGridWorld:
    """The GridWorld as the study's Python code steps it: an object with ``reset`` and ``step``.

    ``step(action)`` returns ``(next_state, reward, done, rewards_of_every_set_or_None)``: the
    objective's reward under the study's rules and, on a pair's first visit, every set's reward
    (the log lever keeps, so both sides do the same work).
    """

    def __init__(self, layout, objective: str):
        self.world = reference_world(layout)
        self.sets = [(m, float(w)) for m, w in enumerate(Objective.parse(objective).set_weights()) if w != 0]

    def reset(self) -> int:
        self.state, self.gold_left, self.lever_on = self.world.start, all_gold(self.world), False
        return self.state

    def step(self, action: int, log: bool):
        world, pos, gold_left, lever_on = self.world, self.state, self.gold_left, self.lever_on
        nxt, bumped, self.gold_left, self.lever_on, done = reference_move(world, pos, action, gold_left, lever_on)
        reward = sum(w * study_reward(world, ALL_SETS[m], pos, nxt, bumped, gold_left, lever_on)
                     for m, w in self.sets)
        logged = None
        if log:
            logged = [0.0] + [study_reward(world, ALL_SETS[m], pos, nxt, bumped, gold_left, lever_on)
                              for m in range(1, 16)]
        self.state = nxt
        return nxt, reward, done, logged


def study_loop_sarsa(env: StudyLoopGridWorld, config: TrainConfig, episodes: int, max_steps: int):
    """SARSA in the study's loop structure: a NumPy Q table, ε-greedy, ``env.step`` per update.

    The same draws as lever's kernel (``rng.random() < ε``, then ``rng.integers(0, 4)``), ties to the
    lowest action (``np.argmax``), truncation bootstraps. Returns (q, visits, updates).
    """
    rng = np.random.default_rng(config.seed)
    n_states = env.world.n_states
    q = np.zeros((n_states, 4))
    visits = np.zeros((n_states, 4), dtype=np.int64)
    reward_model = np.zeros((n_states, 4, 16))
    epsilon = config.epsilon_start

    def choose(state):
        if rng.random() < epsilon:
            return int(rng.integers(0, 4))
        return int(np.argmax(q[state]))

    updates = 0
    for _ in range(episodes):
        state = env.reset()
        action = choose(state)
        for _ in range(max_steps):
            nxt, reward, done, logged = env.step(action, visits[state, action] == 0)
            if logged is not None:
                reward_model[state, action] = logged
            visits[state, action] += 1
            next_action = choose(nxt)
            target = reward if done else reward + config.gamma * q[nxt, next_action]
            q[state, action] += config.alpha * (target - q[state, action])
            updates += 1
            if done:
                break
            state, action = nxt, next_action
        epsilon = max(config.epsilon_min, epsilon * config.epsilon_decay)
    return q, visits, updates


@pytest.mark.parametrize("objective", STUDY_OBJECTIVES)
def test_training_vs_study_loop_sarsa_per_policy(benchmark, capsys, neighbour, objective):
    # One cell of the study (grid16, layout seed 0, budget X1): the plain-Python loop runs the first
    # STUDY_LOOP_EPISODES episodes, lever the same episodes (the same Q, bit for bit) and the whole budget.
    layout = Layout.generate("grid16", seed=0)
    config = TrainConfig.from_budget("X1", "grid16")
    short = TrainConfig.from_budget("X1", "grid16", episodes=STUDY_LOOP_EPISODES)
    env = StudyLoopGridWorld(layout, objective)
    python_s = []
    for _ in range(3):
        began = time.perf_counter()
        q, visits, python_updates = study_loop_sarsa(env, short, STUDY_LOOP_EPISODES, layout.max_steps)
        python_s.append(time.perf_counter() - began)
    python_rate = python_updates / float(np.median(python_s))
    train(layout, objective, TrainConfig(episodes=1))  # compile outside the timing
    same = train(layout, objective, short)
    np.testing.assert_array_equal(same.q, q)  # the same rules and the same draws: the same work
    np.testing.assert_array_equal(same.visits, visits)
    short_rates = [int(p.visits.sum()) / p.wall_time for p in (train(layout, objective, short) for _ in range(7))]
    policy = benchmark.pedantic(train, args=(layout, objective, config), rounds=3, iterations=1)
    full_updates = int(policy.visits.sum())
    full_rate = full_updates / benchmark.stats.stats.median
    short_rate = float(np.median(short_rates))
    benchmark.extra_info.update(
        neighbour=neighbour, objective=objective, python_episodes=STUDY_LOOP_EPISODES,
        python_updates_per_s=python_rate, lever_same_episodes_updates_per_s=short_rate,
        lever_full_budget_updates_per_s=full_rate, full_budget_episodes=config.episodes,
        full_budget_updates=full_updates, ratio_same_episodes=short_rate / python_rate,
        ratio_full_budget=full_rate / python_rate)
    with capsys.disabled():
        print(f"\n[SARSA per policy, grid16 seed 0 X1, {objective}, {neighbour}] study-loop Python "
              f"{python_rate / 1e3:,.1f} k updates/s ({STUDY_LOOP_EPISODES} episodes, {python_updates:,} updates); "
              f"lever, same episodes {short_rate / 1e6:,.2f} M updates/s ({short_rate / python_rate:,.0f}x); "
              f"lever, full budget ({config.episodes:,} episodes, {full_updates:,} updates, "
              f"{benchmark.stats.stats.median * 1e3:.1f} ms) {full_rate / 1e6:,.2f} M updates/s "
              f"({full_rate / python_rate:,.0f}x; target >= 300x)")

SHORT_EPISODES = 200
LAYOUT_SEEDS = (0, 1, 2, 3, 4)


def test_training_kernel_vs_plain_python_sarsa(benchmark, capsys, neighbour):
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
        print(f"\n[SARSA, grid16 seed 0, {SHORT_EPISODES} episodes, {steps} steps, {neighbour}] median: kernel "
              f"{SHORT_EPISODES / kernel_median:,.0f} episodes/s ({kernel_median * 1e3:.2f} ms), plain "
              f"Python {SHORT_EPISODES / python_median:,.0f} episodes/s ({python_median:.3f} s): "
              f"{python_median / kernel_median:,.0f}x; best: {python_min / kernel_min:,.0f}x")


@pytest.mark.parametrize("setting", ["grid16-dense", "grid16"])
@pytest.mark.parametrize("objective", ["path", "path+gold+hazard+lever"])
def test_full_x1_budget(benchmark, capsys, neighbour, setting, objective):
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
        print(f"\n[X1 {setting} {objective}, {neighbour}: {config.episodes} episodes] per policy median "
              f"{np.median(per_policy):.3f} s, max {max(per_policy):.3f} s over layout seeds "
              f"{LAYOUT_SEEDS[0]}-{LAYOUT_SEEDS[-1]} (the study's own SARSA: ~25 s for 10,000 episodes on 16x16)")
