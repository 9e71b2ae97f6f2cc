"""Each strategy on the 16×16 study setting against training the composite from scratch.

Run: ``python -m pytest benchmarks/bench_strategies.py --benchmark-only -s``

The library holds, per layout, every non-empty subset of the four
components at budgets X1, X5 and X10 (45 policies, 24 per component); the
candidate pool is capped at 20 per component, so exhaustive search over
path+gold+hazard composes and scores 20³ = 8,000 combinations. Each
strategy's timed call is a whole ``search`` (index retrieval, composition,
scoring, the final true rollout) on a layout prepared once beforehand;
scratch is SARSA on path+gold+hazard at X1 (γ = 0, the study's regime),
timed in the same run. Speedup = scratch time / strategy time; return ratio
= strategy true return / scratch true return (n/a when scratch earned <= 0).
Every strategy runs once composed and once with planning on the support.
"""

import itertools
import time

import numpy as np
import pytest

from lever import COMPONENTS, Layout, TrainConfig, rollout, train
from lever.library import PolicyLibrary
from lever.retrieval import prepare_layout
from lever.search import search
from lever.strategies import Beam, Exhaustive, Hybrid, Targeted

OBJECTIVE = "path+gold+hazard"
#: Two of the study's main seeds under its layout sampler: on seed 0 training path+gold+hazard from
#: scratch at X1 does not reach the exit, on seed 2 it does. (The earlier seeds 1 and 6 were chosen
#: under the old layouts; seed 6's exit now lies two steps from the start.)
LAYOUT_SEEDS = (0, 2)
POOL = 20
ALL_SUBSETS = tuple("+".join(c) for n in range(1, 5) for c in itertools.combinations(COMPONENTS, n))
STRATEGIES = {
    "targeted": (Targeted(), 50),
    "hybrid(k=3)": (Hybrid(3), 50),
    "beam(width=4,k=3)": (Beam(width=4, k=3), 20),
    "exhaustive": (Exhaustive(), 5),
}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid16-library")
    began = time.perf_counter()
    library = PolicyLibrary.build(root, setting="grid16", layout_seeds=LAYOUT_SEEDS,
                                  budgets=("X1", "X5", "X10"), objectives=ALL_SUBSETS, progress=False)
    print(f"\nlibrary: {len(library)} policies on grid16 seeds {LAYOUT_SEEDS} built in "
          f"{time.perf_counter() - began:.1f} s")
    return library


@pytest.fixture(scope="module")
def scratch():
    """Median time and true return of training path+gold+hazard from scratch at X1, per layout seed."""
    out = {}
    for seed in LAYOUT_SEEDS:
        layout = Layout.generate("grid16", seed=seed)
        config = TrainConfig.from_budget("X1", "grid16")
        train(layout, OBJECTIVE, config)  # compile outside the timing
        times, policy = [], None
        for _ in range(5):
            began = time.perf_counter()
            policy = train(layout, OBJECTIVE, config)
            times.append(time.perf_counter() - began)
        out[seed] = (float(np.median(times)), rollout(layout, policy, OBJECTIVE))
    return out


@pytest.mark.parametrize("plan", [False, True], ids=["composed", "planned"])
@pytest.mark.parametrize("seed", LAYOUT_SEEDS)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_vs_scratch(benchmark, library, scratch, name, seed, plan):
    strategy, rounds = STRATEGIES[name]
    layout_id = Layout.generate("grid16", seed=seed).id
    prepared = prepare_layout(library, layout_id)
    search(prepared, OBJECTIVE, strategy, pool=POOL, plan=plan)  # compile outside the timing
    result = benchmark.pedantic(search, args=(prepared, OBJECTIVE, strategy),
                                kwargs={"pool": POOL, "plan": plan},
                                rounds=rounds, iterations=1, warmup_rounds=1)
    strategy_s = benchmark.stats.stats.median
    scratch_s, scratch_result = scratch[seed]
    # A ratio of returns only reads as "fraction of scratch" when scratch earned something.
    ratio = result.true_return / scratch_result.ret if scratch_result.ret > 0 else float("nan")
    figures = {
        "layout_seed": seed, "strategy": result.strategy, "plan": plan, "planned": result.planned,
        "combinations": result.combinations_tried,
        "strategy_median_s": strategy_s, "scratch_median_s": scratch_s, "speedup": scratch_s / strategy_s,
        "strategy_true_return": result.true_return, "strategy_end": result.true_end,
        "scratch_true_return": scratch_result.ret, "scratch_end": scratch_result.end,
        "return_ratio": ratio, "offline_return": result.offline_return,
        "support_coverage": result.support_coverage, "retrieval_s": result.retrieval_s,
        "composition_s": result.composition_s, "scoring_s": result.scoring_s, "planning_s": result.planning_s,
    }
    benchmark.extra_info.update(figures)
    label = result.strategy + (" +plan" + ("(kept)" if result.planned else "(not kept)") if plan else "")
    print(f"\n{label:<32} seed {seed}: {strategy_s * 1e3:8.2f} ms for {result.combinations_tried:>5} "
          f"combinations (retrieval {result.retrieval_s * 1e3:.2f}, composition "
          f"{result.composition_s * 1e3:.2f}, scoring {result.scoring_s * 1e3:.2f}, planning "
          f"{result.planning_s * 1e3:.2f} ms); offline {result.offline_return:.1f}; scratch X1 "
          f"{scratch_s * 1e3:.1f} ms -> speedup {scratch_s / strategy_s:.1f}x; true return "
          f"{result.true_return:.1f} ({result.true_end}) vs scratch {scratch_result.ret:.1f} "
          f"({scratch_result.end}): ratio {ratio:.2f}")
