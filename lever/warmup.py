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

from .kernels import cache_is_cold

log = logging.getLogger(__name__)


def compile_kernels() -> float:
    """Call every main kernel once on tiny inputs (grid8, a few episodes); returns the seconds taken.

    Covers stepping the env, training, rollouts, successor features, a float32
    library's composition and offline scoring, planning, and the study's
    protocol on in-memory snapshot stacks (and its first release's, with the
    route search).
    """
    import gymnasium

    from .library import PolicyLibrary
    from .reproduction.cell import CellRunner
    from .reproduction.first_release import FirstReleaseCell
    from .search import compose

    began = time.perf_counter()
    env = gymnasium.make("lever/GridWorld-v0", layout="grid8", objective="path+gold")
    env.reset(seed=0)
    env.step(0)
    CellRunner("grid8", 0, "X1", episodes=1001, ablations=False).run()
    FirstReleaseCell("first-release-grid16", 0, ("X1",), episodes=1001, modes=("triple",)).run()
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
