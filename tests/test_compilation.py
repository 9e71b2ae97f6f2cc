"""Each kernel compiles once per process in a typical run: one Numba type per argument."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

TYPICAL_RUN = textwrap.dedent("""
    import sys, tempfile
    sys.path.insert(0, sys.argv[1])
    import gymnasium, lever
    from lever.kernels import compose as kc, world as kw, rollout as kr, training as kt
    from lever.reproduction import CellRunner
    # the demo's work (two layouts of the study's protocol) ...
    for seed in (0, 1):
        CellRunner("grid8", seed, "X1", episodes=1500, ablations=True).run()
    env = gymnasium.make("lever/GridWorld-v0", layout="grid16", objective="path+gold")
    env.reset()
    env.step(0)
    kernels = (("step", kw.step), ("train_tabular", kt.train_tabular), ("rollout_actions", kr.rollout_actions),
               ("compose_batch_serial", kc.compose_batch_serial),
               ("offline_rollout_batch_serial", kc.offline_rollout_batch_serial))
    print({name: len(kernel.signatures) for name, kernel in kernels})
    # ... then a library on disk (read-only memory maps) composed through the front door, and the env
    root = tempfile.mkdtemp()
    library = lever.PolicyLibrary.build(root, setting="grid8", layout_seeds=(0, 1), episodes=300, jobs=1,
                                        progress=False)
    for layout_id in library.layout_ids:
        for strategy in ("targeted", "exhaustive"):
            lever.compose(library, "path+gold", layout=layout_id, strategy=strategy)
    print({name: len(kernel.signatures) for name, kernel in kernels})
""")


def test_kernels_compile_once_in_a_typical_run(tmp_path):
    # A cold cache: compiling a caller also compiles the kernels it calls, for the types it passes.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    out = subprocess.run([sys.executable, "-c", TYPICAL_RUN, str(ROOT)], capture_output=True, text=True,
                         check=True, timeout=900, env=env)
    demo, with_library = (eval(line) for line in out.stdout.strip().splitlines()[-2:])
    # The demo's work (in-memory stacks, many layouts) and the env: one signature per kernel.
    assert demo == {"step": 1, "train_tabular": 1, "rollout_actions": 1, "compose_batch_serial": 1,
                    "offline_rollout_batch_serial": 1}, demo
    # A float32 library adds exactly its Q dtype to the composition kernel; its read-only memory
    # maps reach every kernel as the same type as in-memory tables.
    assert with_library == {**demo, "compose_batch_serial": 2}, with_library


def test_a_cold_start_compiles_up_front_once_and_covers_a_typical_run(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "lever.cli", "train", "--grid", "grid8", "--episodes", "200"]
    first = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900, env=env, cwd=ROOT)
    assert "lever: compiling kernels (first run only)" in first.stderr
    assert "kernels compiled in" in first.stderr
    compiled = sorted(p.name for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc"))
    again = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900, env=env, cwd=ROOT)
    assert "compiling" not in again.stderr
    assert again.stdout.splitlines()[-2:] == first.stdout.splitlines()[-2:]  # the same rollout
    # The demo's work, a library on disk composed through the front door, and the env after the
    # warm-up: every kernel they call was compiled by it, so nothing new is cached.
    subprocess.run([sys.executable, "-c", TYPICAL_RUN, str(ROOT)], capture_output=True, text=True, check=True,
                   timeout=900, env=env)
    assert sorted(p.name for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc")) == compiled
