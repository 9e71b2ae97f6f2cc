"""The on-disk kernel cache follows every edit under ``lever/kernels/``, callee files included."""

import os
import shutil
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

PROBE = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import lever.kernels
    from lever.kernels.world import N_TERMS, set_reward, step
    from lever import Layout
    layout = Layout.from_text("S.E")
    terms = np.zeros(N_TERMS)
    step(layout.world, layout.start, 3, np.zeros(0, dtype=np.uint8), 0, terms)  # up: a bump
    print(set_reward(terms, 1), lever.kernels.__file__)
""")


def run_probe(root):
    out = subprocess.run([sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True,
                         check=True, timeout=300)
    value, path = out.stdout.split()
    assert path.startswith(str(root))  # the copy, not the installed package
    return float(value)


def test_editing_a_callee_file_recompiles_its_callers(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "lever", copy / "lever", ignore=shutil.ignore_patterns("__pycache__"))
    assert run_probe(copy) == -0.1
    assert list((copy / "lever" / "kernels" / "__pycache__").glob("world.*.nbi"))  # cached on disk
    assert run_probe(copy) == -0.1  # served from the cache
    # world.py, whose kernels are cached, is untouched: only the constant it imports changes.
    constants = copy / "lever" / "kernels" / "constants.py"
    constants.write_text(constants.read_text().replace("BUMP_REWARD = -0.1", "BUMP_REWARD = -0.25"))
    assert run_probe(copy) == -0.25


def test_a_new_cache_directory_is_stamped_before_numba_writes_there(tmp_path):
    # Unstamped, the kernels Numba cached in a directory it created would be purged as stale on
    # the next run, and every other run would compile again.
    code = ("import lever.kernels as k; print(k.active_cache_directory()); "
            "print((k.active_cache_directory() / k.STAMP_NAME).read_text() == k.source_hash())")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "fresh")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=ROOT).stdout.split()
    assert out[0].startswith(str(tmp_path / "fresh")) and out[1] == "True"
