"""Compiling lever's kernels once, up front, before a run spreads its work over processes.

Numba compiles a kernel on its first call and caches the machine code on
disk (``cache=True``). On a cold cache (the first run after installing, or
after the kernels' sources changed) every worker process of a parallel run
would otherwise compile the same kernels at once, while the progress bar
sits at zero. :func:`compile_kernels` instead runs a tiny version of lever's
work in this process, with the argument types of a real run, so that every
later call — here or in a worker — loads the cached code.
"""

from __future__ import annotations

import logging
import tempfile
import time

from .kernels import TABLE_MODULES, cache_is_cold

log = logging.getLogger(__name__)


def compile_kernels() -> float:
    """Call every main kernel once on tiny inputs (grid8, a few episodes); returns the seconds taken.

    Covers stepping the env, training, rollouts, successor features, a float32
    library's composition and offline scoring, planning, and the study's
    protocol on in-memory snapshot stacks.
    """
    import gymnasium

    from .library import PolicyLibrary
    from .reproduction.cell import CellRunner
    from .search import compose

    began = time.perf_counter()
    env = gymnasium.make("lever/GridWorld-v0", layout="grid8", objective="path+gold")
    env.reset(seed=0)
    env.step(0)
    CellRunner("grid8", 0, "X1", episodes=1001, ablations=False).run()
    with tempfile.TemporaryDirectory(prefix="lever-warmup-") as root:
        library = PolicyLibrary.build(root, setting="grid8", layout_seeds=(0,), episodes=50, jobs=1,
                                      progress=False)
        compose(library, "path+gold", strategy="hybrid", plan=True)
    elapsed = time.perf_counter() - began
    log.info("kernels compiled in %.1f s", elapsed)
    return elapsed


def compile_if_cold(announce=None) -> float | None:
    """:func:`compile_kernels` when no kernel is cached yet; None (and nothing done) otherwise.

    ``announce(message)`` is called first, so a command can say why it pauses.
    """
    if not cache_is_cold():
        return None
    if announce is not None:
        announce("compiling kernels (first run only) ...")
    return compile_kernels()


def compile_table_kernels() -> float:
    """Call every kernel of a tabular world once on a tiny hand-made world; returns the seconds taken.

    Covers training, rollouts, successor features, a float32 library's
    composition (both operators), offline scoring, planning and value iteration.
    """
    import numpy as np

    from .library import PolicyLibrary
    from .search import compose
    from .worlds.tabular import TabularWorld

    began = time.perf_counter()
    # A corridor of 5 states, 2 actions, 2 components: the ends pay (1, 0) and (0, 1) and end the episode.
    nxt = np.array([[0, 0], [0, 2], [1, 3], [2, 4], [4, 4]], dtype=np.int32)
    reward = np.zeros((5, 2, 2))
    reward[1, 0, 0] = reward[3, 1, 1] = 1.0
    done = np.zeros((5, 2), dtype=bool)
    done[[0, 4]] = True
    done[1, 0] = done[3, 1] = True
    world = TabularWorld(nxt, reward, done, [2], 10, ("r0", "r1"), tuple(range(5)), "warm-up corridor")
    world.optimal_q([0.5, 0.5], 0.9)
    with tempfile.TemporaryDirectory(prefix="lever-warmup-") as root:
        library = PolicyLibrary.build(root, world=world, episodes=20, gamma=0.9, algorithm="q_learning", jobs=1,
                                      progress=False)
        for operator in ("sum", "max"):
            compose(library, [0.5, 0.5], operator=operator, plan=True)
    elapsed = time.perf_counter() - began
    log.info("tabular-world kernels compiled in %.1f s", elapsed)
    return elapsed


def compile_table_if_cold(announce=None) -> float | None:
    """:func:`compile_table_kernels` when a tabular world's kernels are not cached yet; None otherwise."""
    if not cache_is_cold(modules=TABLE_MODULES):
        return None
    if announce is not None:
        announce("compiling the tabular world's kernels (first run only) ...")
    return compile_table_kernels()
