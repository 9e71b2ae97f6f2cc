"""Building the study's library: 16×16 (grid16), 5 layout seeds × the 4 components at X1.

Run: ``python -m pytest benchmarks/bench_library.py --benchmark-only -s``

One full build into a fresh directory (training 20 policies of 10,000
SARSA episodes each across every core, stacking, embedding, checksums and
the index), timed end to end; printed: total wall time, policies per second,
seconds per policy, the summed training-kernel time, and the ratio to the
study's ~11 s per policy.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

from lever.library import PolicyLibrary

STUDY_SECONDS_PER_POLICY = 11.0
SEEDS = (0, 1, 2, 3, 4)
COMPONENTS = ("path", "gold", "hazard", "lever")


def test_library_build_grid16_x1(benchmark):
    workdir = Path(tempfile.mkdtemp(prefix="lever-bench-library-"))
    try:
        def build():
            return PolicyLibrary.build(workdir / "library", setting="grid16", layout_seeds=SEEDS,
                                       budgets=("X1",), objectives=COMPONENTS, progress=False)

        began = time.perf_counter()
        library = benchmark.pedantic(build, rounds=1, iterations=1)
        wall = time.perf_counter() - began
        n = len(library)
        training = sum(r.train_time for r in library.records)
        figures = {"policies": n, "jobs": os.cpu_count(), "wall_s": wall, "policies_per_s": n / wall,
                   "seconds_per_policy": wall / n, "summed_training_kernel_s": training,
                   "study_seconds_per_policy": STUDY_SECONDS_PER_POLICY,
                   "speedup_vs_study": STUDY_SECONDS_PER_POLICY / (wall / n),
                   "library_bytes": library.nbytes()}
        benchmark.extra_info.update(figures)
        print(f"\nlibrary grid16 X1, {len(SEEDS)} seeds x {len(COMPONENTS)} components: {n} policies in "
              f"{wall:.2f} s on {os.cpu_count()} cores ({n / wall:.2f} policies/s, {wall / n:.3f} s/policy; "
              f"training kernels {training:.2f} s in all); study ~{STUDY_SECONDS_PER_POLICY:.0f} s/policy: "
              f"{STUDY_SECONDS_PER_POLICY / (wall / n):,.0f}x; {library.nbytes() / 1e6:.2f} MB on disk")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
