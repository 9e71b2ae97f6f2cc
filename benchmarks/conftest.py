"""Collect ``bench_*.py`` as test modules, so ``python -m pytest benchmarks/ --benchmark-only``
runs them while the default test run (``testpaths = tests``) never sees them.

Every benchmark runs twice (the :func:`neighbour` fixture): as the machine
is, and beside one more process spinning on a core, so one run reports the
figure on an idle machine and with a busy neighbour.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collect_file(parent, file_path):
    # A file named on the command line is already collected by pytest itself.
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


#: How each benchmark runs: alone, and beside a busy neighbour.
NEIGHBOURS = ("idle", "busy")


@pytest.fixture(params=NEIGHBOURS, autouse=True)
def neighbour(request):
    """"idle", or "busy" while one other process spins on a core (stopped afterwards)."""
    spinner = None
    if request.param == "busy":
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)  # let it start spinning
    print(f"\n--- {request.node.name} ({request.param}"
          f"{': one process spinning beside it' if spinner else ''})", end="")
    try:
        yield request.param
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def python_timings(run, repeats: int = 3) -> tuple[float, float]:
    """(median, min) wall seconds of ``run()`` over ``repeats`` calls: the plain-Python side of a ratio.

    Both are reported because the minimum is what survives other processes
    sharing the machine; the median is what a user typically sees.
    """
    import statistics
    import time

    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times), min(times)


def median_seconds(run, repeats: int = 3) -> float:
    """Median wall seconds of ``run()`` over ``repeats`` calls (see :func:`python_timings`)."""
    return python_timings(run, repeats)[0]
