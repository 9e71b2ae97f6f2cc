"""lever on the standard multi-objective tasks, side by side with morl-baselines' tabular GPI-LS (and PQL).

Run (repository root; the peer needs ``pip install -e ".[compare]"``, torch's
CPU build first, see README)::

    python -m pytest benchmarks/bench_mo_tasks.py --benchmark-only -s

Tasks: deep-sea-treasure (the convex, concave and mirrored maps), fruit-tree
at depths 5, 6 and 7, four-room; FrozenLake (not slippery), CliffWalking and
Taxi as single-objective smoke tests.

The protocol, per task and seed:

- **lever**: the env read into a :class:`lever.TabularWorld` (once per task,
  timed apart); a library of the d one-hot policies, each trained with
  Q-learning at the peer's γ for ``Task.episodes`` episodes (N environment
  steps, counted from the logged support); then, for each of the 50 equally
  spaced weights (12 on four-room), ``lever.compose(...,
  operator="max", plan=True)``: GPI over the library with planning on its
  logged support, zero new environment steps. Each composed policy is rolled
  out greedily in the true gymnasium env, and its discounted vector return is
  that weight's value.
- **the peer** (``benchmarks/mo_peer.py``): tabular GPI-LS at d·N steps, the
  same total, and on a ladder of larger step counts (``LADDER`` × d·N); PQL at
  d·N as context (the only peer that reaches a concave front's inner points).
- **measures** (:mod:`lever.mo_metrics`): each weight's utility, its mean,
  EUM and hypervolume of the values' Pareto front, against the task's
  known front (``pareto_front(γ)``) or, for four-room, which has none, the
  per-weight optimum by value iteration on lever's enumerated table. Also:
  environment steps, wall time split into library training and per-weight
  composition, the share of the world's (state, action) pairs the library's
  support covers, and bootstrap intervals over seeds (:mod:`lever.stats`).

Size (environment variables; the defaults fit in about 25 minutes on two
busy cores, the peer being pure Python):

- ``LEVER_BENCH_MO_SEEDS`` lever's seeds (default 10);
- ``LEVER_BENCH_MO_PEER_SEEDS`` the peer's seeds (default 3, and fewer where a
  task's ``peer_seeds`` caps them for the peer's cost; 10 on every rung with
  ``LEVER_BENCH_FULL=1``);
- ``LEVER_BENCH_MO_LADDER`` GPI-LS's step counts as multiples of lever's d·N
  (default ``1,3,10``; a task's own ladder may be shorter, see ``TASKS``);
- ``LEVER_BENCH_MO_TASKS`` a comma-separated subset of the task names;
- ``LEVER_BENCH_MO_EPISODES_SCALE`` multiplies lever's episodes per policy;
- ``LEVER_BENCH_MO_THREADS`` Numba threads for lever's side (default 1, as
  the peer runs on one core; the serve time is also measured with every thread);
- ``LEVER_BENCH_MO_JSON`` a path to write every figure to (merged by task).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pytest

from benchmarks import mo_peer
from lever.mo_metrics import expected_utility, hypervolume, pareto_front, utilities
from lever.mo_weights import equally_spaced_weights
from lever.stats import bootstrap_ci

FULL = os.environ.get("LEVER_BENCH_FULL") == "1"
SEEDS = int(os.environ.get("LEVER_BENCH_MO_SEEDS", "10"))
PEER_SEEDS = int(os.environ.get("LEVER_BENCH_MO_PEER_SEEDS", "10" if FULL else "3"))
LADDER = tuple(float(x) for x in os.environ.get("LEVER_BENCH_MO_LADDER", "1,3,10").split(","))
ONLY = {t for t in os.environ.get("LEVER_BENCH_MO_TASKS", "").split(",") if t}
JSON_OUT = os.environ.get("LEVER_BENCH_MO_JSON")
EPISODES_SCALE = float(os.environ.get("LEVER_BENCH_MO_EPISODES_SCALE", "1"))
THREADS = int(os.environ.get("LEVER_BENCH_MO_THREADS", "1"))


@dataclass(frozen=True)
class Task:
    """One benchmark task: the env, the peer's γ and reference point, and lever's steps per policy."""

    name: str
    env_id: str
    env_kwargs: dict = field(default_factory=dict)
    gamma: float = 0.99
    ref_point: tuple = ()
    episodes: int = 300      # lever's training episodes per one-hot policy
    ladder: tuple = LADDER   # GPI-LS steps as multiples of lever's d·N
    peer_seeds: tuple = (10,)  # at most this many peer seeds per ladder rung (the last repeats), within PEER_SEEDS
    pql: bool = True
    iterations: int = 10     # GPI-LS policies (outer iterations)
    smoke: bool = False      # single objective: lever alone, against value iteration
    n_weights: int = 50      # equally spaced weights evaluated
    lever_seeds: int = 10    # at most this many lever seeds, within SEEDS (all of SEEDS with LEVER_BENCH_FULL=1)


TASKS = [
    Task("dst", "deep-sea-treasure-v0", ref_point=(0.0, -50.0), episodes=1_000, peer_seeds=(3, 2, 1)),
    Task("dst-concave", "deep-sea-treasure-concave-v0", ref_point=(0.0, -50.0), episodes=3_000, ladder=(1.0,),
         peer_seeds=(2,)),
    Task("dst-mirrored", "deep-sea-treasure-mirrored-v0", ref_point=(0.0, -50.0), episodes=4_000, ladder=(1.0,),
         peer_seeds=(1,)),
    Task("fruit-tree-5", "fruit-tree-v0", {"depth": 5}, ref_point=(-1.0,) * 6, episodes=200, ladder=(1.0,),
         iterations=6),
    Task("fruit-tree-6", "fruit-tree-v0", {"depth": 6}, ref_point=(-1.0,) * 6, episodes=300, ladder=(1.0,),
         iterations=6),
    Task("fruit-tree-7", "fruit-tree-v0", {"depth": 7}, ref_point=(-1.0,) * 6, episodes=500, ladder=(1.0,),
         iterations=6, peer_seeds=(2,)),
    # 598,016 states: enumeration ~1 min, value iteration ~6 s and compose + plan ~1 s per weight, so
    # 12 weights and one seed; the peer at lever's 0.3 M steps would take hours in pure Python, so its
    # rows run only with LEVER_BENCH_FULL=1.
    Task("four-room", "four-room-v0", ref_point=(-1.0,) * 3, episodes=500, ladder=(1.0,), pql=False,
         iterations=6, peer_seeds=(0,), n_weights=12, lever_seeds=1),
    Task("frozenlake", "FrozenLake-v1", {"is_slippery": False}, episodes=2_000, smoke=True),
    Task("cliffwalking", "CliffWalking-v1", episodes=5_000, smoke=True),
    Task("taxi", "Taxi-v4", episodes=50_000, smoke=True),
]
SELECTED = [t for t in TASKS if not ONLY or t.name in ONLY]


# --- evaluation in the true env ----------------------------------------------------------------

def make_env(task: Task):
    """The task's gymnasium env, with its registered step cap (MO-Gymnasium's ``make`` for MO tasks)."""
    import gymnasium
    import mo_gymnasium

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (gymnasium if task.smoke else mo_gymnasium).make(task.env_id, **task.env_kwargs)


def reset_seeds(world) -> range:
    """The env reset seeds an evaluation averages over: one for a single start state, 20 otherwise (Taxi)."""
    return range(1 if world.starts.size == 1 else 20)


def greedy_return(env, world, actions: np.ndarray, gamma: float, d: int) -> tuple[np.ndarray, bool]:
    """Discounted vector return (d,) of greedy episodes in the true ``env``, acting ``actions[state]``,
    averaged over :func:`reset_seeds`; and whether one met a state without an action (-1: the support
    has none), where it takes action 0."""
    totals, missing = [], False
    for seed in reset_seeds(world):
        obs, _ = env.reset(seed=seed)
        total, discount = np.zeros(d), 1.0
        while True:
            action = int(actions[world.index(obs)])
            missing |= action < 0
            obs, reward, terminated, truncated, _ = env.step(max(action, 0))
            total += discount * np.atleast_1d(np.asarray(reward, dtype=np.float64))
            discount *= gamma
            if terminated or truncated:
                break
        totals.append(total)
    return np.mean(totals, axis=0), missing


def start_states(task: Task, world) -> np.ndarray:
    """The world's states the evaluation starts from (those :func:`reset_seeds` give), int64 (K,)."""
    env = make_env(task)
    return np.array([world.index(env.reset(seed=seed)[0]) for seed in reset_seeds(world)], dtype=np.int64)


def known_front(task: Task, world) -> np.ndarray | None:
    """The task's true discounted front (m, d) where the env provides one."""
    env = make_env(task)
    if hasattr(env.unwrapped, "pareto_front"):
        return np.asarray(env.unwrapped.pareto_front(gamma=task.gamma), dtype=np.float64)
    return None


def optimal_utilities(task: Task, world, weights: np.ndarray, front: np.ndarray | None) -> np.ndarray:
    """Each weight's optimal utility (n,): the best point of the known front, or value iteration on the table."""
    if front is not None:
        return (weights @ front.T).max(axis=1)
    best, starts = np.empty(len(weights)), start_states(task, world)
    for i, w in enumerate(weights):
        best[i] = float(np.mean(world.optimal_q(w, task.gamma)[starts].max(axis=1)))
    return best


# --- lever's side -------------------------------------------------------------------------------

@dataclass
class LeverRun:
    """One lever seed: per-weight values, steps, seconds and support coverage."""

    vectors: np.ndarray       # (n, d) discounted vector return per weight, greedy rollout in the true env
    steps: int                # environment steps, the whole library
    train_s: float            # library build wall time (training, embeddings, index, files)
    kernel_s: float           # the training kernels' own time, summed over the d policies
    compose_ms: list          # per-weight compose time (first call dropped), one Numba thread
    compose_ms_threads: list  # the same with Numba's default threads (seed 0 only; else empty)
    unsupported: int          # weights whose greedy route met a state the composition had no action for
    coverage_pairs: float     # share of the world's (s, a) pairs (terminal observations aside) in the support
    coverage_states: float    # share of its states with at least one supported action


def episodes(task: Task) -> int:
    """Lever's training episodes per one-hot policy for ``task`` (scaled by ``LEVER_BENCH_MO_EPISODES_SCALE``)."""
    return max(1, int(round(task.episodes * EPISODES_SCALE)))


def lever_side(task: Task, world, weights: np.ndarray, seed: int, root: Path) -> LeverRun:
    """Library of the d one-hot policies (``task.episodes`` each) → GPI + planning per weight → true rollouts."""
    import lever

    d = world.n_components
    began = time.perf_counter()
    library = lever.PolicyLibrary.build(root / f"lib-{seed}", world=world,
                                        objectives=[tuple(row) for row in np.eye(d)], algorithm="q_learning",
                                        gamma=task.gamma, episodes=episodes(task), train_seed=seed, jobs=1,
                                        progress=False)
    train_s = time.perf_counter() - began
    tables = library.tables(world.id)
    visits = np.asarray(tables.visits)
    union = visits.sum(axis=0) > 0
    live = np.ones(world.n_states, dtype=bool)
    live[world.terminal_states] = False

    env = make_env(task)
    vectors = np.empty((len(weights), d))
    compose_ms, unsupported = [], 0
    for i, w in enumerate(list(weights) + [weights[0]] * (len(weights) == 1)):
        began = time.perf_counter()
        result = lever.compose(library, objective=w, operator="max", plan=True)
        compose_ms.append((time.perf_counter() - began) * 1e3)
        if i < len(weights):
            vectors[i], missing = greedy_return(env, world, result.policy.actions, task.gamma, d)
            unsupported += missing
    threaded = []
    if seed == 0:  # the serve time again with every Numba thread (the compose kernels are parallel)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        try:
            for w in weights:
                began = time.perf_counter()
                lever.compose(library, objective=w, operator="max", plan=True)
                threaded.append((time.perf_counter() - began) * 1e3)
        finally:
            numba.set_num_threads(THREADS)
    return LeverRun(vectors, int(visits.sum()), train_s, sum(r.train_time for r in library.records),
                    compose_ms[1:], threaded, unsupported, library.support_coverage(world.id),
                    float(union[live].any(axis=1).mean()))


# --- the report ---------------------------------------------------------------------------------

def interval(values) -> str:
    """``median (mean [95% bootstrap interval of the mean])`` of per-seed values; the interval from n = 5."""
    values = [float(v) for v in values]
    if len(values) == 1:
        return f"{values[0]:.4g}"
    ci = bootstrap_ci(values)
    middle = statistics.median(values)
    if ci.has_interval:
        return f"{middle:.4g} (mean {ci.mean:.4g} [{ci.low:.4g}, {ci.high:.4g}])"
    return f"{middle:.4g} (mean {ci.mean:.4g})"


def scores(vectors: np.ndarray, weights: np.ndarray, ref, optimum: np.ndarray, per_weight: bool) -> dict:
    """Mean utility (per-weight vectors only), EUM and HV of the values' front, and EUM / optimal EUM."""
    front = pareto_front(vectors)
    eum = expected_utility(front, weights)
    out = {"eum": eum, "eum_share": eum / float(optimum.mean()), "front_size": len(front)}
    if per_weight:
        out["mean_utility"] = float(utilities(vectors, weights).mean())
        out["utility_share"] = out["mean_utility"] / float(optimum.mean())
    if len(ref) == vectors.shape[1]:
        out["hv"] = hypervolume(front, ref)
    return out


def record(results: dict) -> None:
    if not JSON_OUT:
        return
    path = Path(JSON_OUT)
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing[results["task"]] = results
    path.write_text(json.dumps(existing, indent=1, default=float))


@pytest.mark.parametrize("task", SELECTED, ids=[t.name for t in SELECTED])
def test_mo_task(benchmark, task: Task):
    import lever

    began = time.perf_counter()
    world = lever.TabularWorld.from_gymnasium(task.env_id, env_kwargs=task.env_kwargs)
    enumerate_s = time.perf_counter() - began
    d = world.n_components
    weights = equally_spaced_weights(d, task.n_weights) if d > 1 else np.ones((1, 1))
    seeds = SEEDS if FULL else min(SEEDS, task.lever_seeds)
    front = None if task.smoke else known_front(task, world)
    optimum = optimal_utilities(task, world, weights, front)
    out = {"task": task.name, "env_id": task.env_id, "env_kwargs": task.env_kwargs, "gamma": task.gamma,
           "states": world.n_states, "actions": world.n_actions, "d": d, "max_steps": world.max_steps,
           "enumerate_s": enumerate_s, "episodes_per_policy": episodes(task),
           "optimal_eum": float(optimum.mean())}
    if front is not None:
        out["known_front"] = {"size": len(front), "hv": hypervolume(front, task.ref_point),
                              "eum": expected_utility(front, weights)}
        # Value iteration on lever's table agrees with the env's own front.
        vi = optimal_utilities(task, world, weights, None)
        out["known_front"]["vi_max_abs_gap"] = float(np.abs(vi - optimum).max())

    numba.set_num_threads(THREADS)
    try:
        with tempfile.TemporaryDirectory(prefix="lever-bench-mo-") as tmp:
            def run_lever():
                return [lever_side(task, world, weights, seed, Path(tmp)) for seed in range(seeds)]
            runs = benchmark.pedantic(run_lever, rounds=1, iterations=1)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    lever_scores = [scores(r.vectors, weights, task.ref_point, optimum, True) for r in runs]
    out["lever"] = {"seeds": seeds, "threads": THREADS, "steps": [r.steps for r in runs],
                    "train_s": [r.train_s for r in runs], "kernel_s": [r.kernel_s for r in runs],
                    "compose_ms_median": [statistics.median(r.compose_ms) for r in runs],
                    "compose_ms_max": [max(r.compose_ms) for r in runs],
                    "compose_ms_all_threads_median": statistics.median(runs[0].compose_ms_threads),
                    "unsupported_weights": [r.unsupported for r in runs],
                    "coverage_pairs": [r.coverage_pairs for r in runs],
                    "coverage_states": [r.coverage_states for r in runs],
                    "scores": lever_scores}
    print(f"\n{task.name}: {task.env_id} {task.env_kwargs or ''} S={world.n_states} A={world.n_actions} d={d} "
          f"T={world.max_steps} γ={task.gamma}; enumerated in {enumerate_s:.1f} s; optimal EUM "
          f"{optimum.mean():.4f}" + (f", known front HV {out['known_front']['hv']:.2f} (value iteration on "
                                    f"the table within {out['known_front']['vi_max_abs_gap']:.1e})"
                                    if front is not None else " (value iteration on the table)"))
    print(f"  lever, {seeds} seeds, {len(weights)} weights, d={d} one-hot policies x {episodes(task)} episodes: env steps "
          f"{interval(out['lever']['steps'])}; EUM {interval([s['eum'] for s in lever_scores])} = "
          f"{interval([100 * s['eum_share'] for s in lever_scores])} % of optimal; mean utility "
          f"{interval([100 * s['utility_share'] for s in lever_scores])} % of optimal"
          + (f"; HV {interval([s['hv'] for s in lever_scores])}" if 'hv' in lever_scores[0] else "")
          + f"; weights whose route left the support: {interval(out['lever']['unsupported_weights'])}")
    print(f"  lever time: library build {interval(out['lever']['train_s'])} s (training kernels "
          f"{interval(out['lever']['kernel_s'])} s); a new weight served (compose + plan, warm, median) in "
          f"{interval(out['lever']['compose_ms_median'])} ms on {THREADS} thread(s), worst "
          f"{max(out['lever']['compose_ms_max']):.2f} ms; {out['lever']['compose_ms_all_threads_median']:.2f} ms "
          f"with {numba.config.NUMBA_NUM_THREADS} threads; support covers "
          f"{interval([100 * c for c in out['lever']['coverage_pairs']])} % of (s, a) pairs, "
          f"{interval([100 * c for c in out['lever']['coverage_states']])} % of states")

    if not task.smoke and PEER_SEEDS > 0 and mo_peer.available():
        mo_peer.warm_up(d)
        peer_weights = mo_peer.field_weights(d, task.n_weights)
        out["weights_equal_the_peers"] = bool(np.array_equal(peer_weights, weights))
        if front is not None:
            hv_peer, eum_peer = mo_peer.field_metrics(front, task.ref_point, weights)
            out["metrics_cross_check"] = {"hv_peer": hv_peer, "eum_peer": eum_peer}
            print(f"  cross-check: weights equal the peer's: {out['weights_equal_the_peers']}; the peer's HV "
                  f"{hv_peer:.4f} / EUM {eum_peer:.5f} of the known front against lever's "
                  f"{out['known_front']['hv']:.4f} / {out['known_front']['eum']:.5f}")
        lever_total = int(statistics.median(out["lever"]["steps"]))
        out["gpi_ls"] = {}
        for rung, multiple in enumerate(task.ladder):
            total = int(round(multiple * lever_total))
            peer_seeds = PEER_SEEDS if FULL else min(PEER_SEEDS, task.peer_seeds[min(rung, len(task.peer_seeds) - 1)])
            if peer_seeds == 0:
                print(f"  GPI-LS at {multiple:g} x lever's steps ({total}): not run (LEVER_BENCH_FULL=1 runs it)")
                continue
            peer_runs = [mo_peer.gpi_ls(task.env_id, task.env_kwargs, task.gamma, task.ref_point, weights,
                                        total, task.iterations, seed) for seed in range(peer_seeds)]
            peer_scores = [scores(r.vectors, weights, task.ref_point, optimum, True) for r in peer_runs]
            out["gpi_ls"][str(multiple)] = {
                "steps": total, "seeds": peer_seeds, "train_s": [r.train_s for r in peer_runs],
                "selection_steps": [r.extra_steps for r in peer_runs],
                "policies": [r.n_policies for r in peer_runs], "scores": peer_scores}
            print(f"  GPI-LS at {multiple:g} x lever's steps ({total}), {peer_seeds} seeds: EUM "
                  f"{interval([s['eum'] for s in peer_scores])} = "
                  f"{interval([100 * s['eum_share'] for s in peer_scores])} %; HV "
                  f"{interval([s.get('hv', 0.0) for s in peer_scores])}; training {interval([r.train_s for r in peer_runs])} s "
                  f"(+{interval([r.extra_steps for r in peer_runs])} steps of weight selection)")
        if out["gpi_ls"]:
            equal = out["gpi_ls"][str(task.ladder[0])]
            ratio = statistics.median(equal["train_s"]) / statistics.median(out["lever"]["train_s"])
            kernel_ratio = statistics.median(equal["train_s"]) / statistics.median(out["lever"]["kernel_s"])
            out["wall_ratio_equal_steps"] = ratio
            out["wall_ratio_equal_steps_kernels"] = kernel_ratio
            lever_eum = statistics.median([s["eum"] for s in lever_scores])
            reached = [float(m) for m, row in out["gpi_ls"].items()
                       if statistics.median([s["eum"] for s in row["scores"]]) >= lever_eum]
            out["gpi_ls_steps_to_lever_eum"] = min(reached) if reached else None
            print(f"  wall time at equal steps: GPI-LS training / lever's library build = {ratio:,.0f}x "
                  f"(/ lever's training kernels {kernel_ratio:,.0f}x); GPI-LS reaches lever's median "
                  f"EUM at " + (f"{min(reached):g} x lever's steps" if reached else
                                f"none of the rungs tried (> {max(task.ladder):g} x lever's steps)"))
        if task.pql:
            peer_seeds = PEER_SEEDS if FULL else min(PEER_SEEDS, task.peer_seeds[0])
            pql_runs = [mo_peer.pql(task.env_id, task.env_kwargs, task.gamma, task.ref_point, lever_total, seed)
                        for seed in range(peer_seeds)]
            pql_scores = [scores(r.vectors, weights, task.ref_point, optimum, False) for r in pql_runs]
            out["pql"] = {"steps": lever_total, "seeds": peer_seeds, "train_s": [r.train_s for r in pql_runs],
                          "front_sizes": [r.n_policies for r in pql_runs], "scores": pql_scores}
            print(f"  PQL at lever's steps ({lever_total}), {peer_seeds} seeds: EUM "
                  f"{interval([s['eum'] for s in pql_scores])}; HV {interval([s.get('hv', 0.0) for s in pql_scores])}; "
                  f"training {interval([r.train_s for r in pql_runs])} s")
    benchmark.extra_info.update({k: v for k, v in out.items() if not isinstance(v, dict)})
    record(out)
