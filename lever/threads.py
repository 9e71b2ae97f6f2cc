"""How many threads lever's parallel kernels use, and when a kernel runs on one thread instead.

Every ``parallel=True`` kernel in :mod:`lever.kernels` has a serial twin
that computes the same result, bit for bit, and a work-size threshold
measured beside it. :func:`pick` chooses between the two for one call: the
serial twin when the work is below the kernel's threshold, when the
calling thread runs kernels on one thread, or when fewer than two cores
are idle right now; otherwise the parallel kernel, on as many threads as
there are idle cores (at most the thread count). A parallel region waits
for its slowest thread, and a thread that shares its core with a busy
process waits a whole scheduler slice (milliseconds), so a small batch is
never worth waking the pool for, and a busy machine is never asked for
more threads than it has idle cores.

Idle cores are counted from the kernel's count of runnable threads
(``/proc/loadavg``, Linux) against the cores this process may use; where
that count cannot be read, only the threshold and the thread count decide.

The thread count is Numba's own, per calling thread (lever keeps no state
of its own): :func:`set_threads` sets it, :func:`using_threads` sets it for a
block and restores the previous count afterwards, and worker processes
(a library build's, a sweep's, the reproduction's) run on one thread
(:func:`run_on_one_thread`).
"""

from __future__ import annotations

import operator
import os
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import numba

from .errors import LeverError


def check_threads(n) -> int:
    """``n`` as an int if it is an integer in 1..the threads Numba started with, else :class:`LeverError`."""
    try:
        value = None if isinstance(n, bool) else operator.index(n)
    except TypeError:
        value = None
    limit = numba.config.NUMBA_NUM_THREADS
    if value is None or not 1 <= value <= limit:
        raise LeverError(f"threads must be an integer from 1 to {limit} (NUMBA_NUM_THREADS), got {n!r}")
    return value


def get_threads() -> int:
    """Threads the parallel kernels use when called from this thread."""
    return numba.get_num_threads()


def set_threads(n: int) -> None:
    """Run the parallel kernels called from this thread on ``n`` threads (1 = always the serial twins).

    ``n`` must be in 1..``NUMBA_NUM_THREADS`` (the cores, unless that
    variable says otherwise); :class:`LeverError` otherwise.
    """
    numba.set_num_threads(check_threads(n))


@contextmanager
def using_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` kernel threads (None: leave them as they are); restore the count afterwards.

    Yields the count in force inside the block.
    """
    previous = numba.get_num_threads()
    if n is not None:
        set_threads(n)
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_num_threads(previous)


def idle_cores() -> int | None:
    """Cores this process may use that no other thread is running on now; None where unknown (not Linux).

    The runnable count of ``/proc/loadavg`` includes the calling thread, so
    a quiet 2-core machine has 2 idle cores, one spinning neighbour leaves 1.
    """
    try:
        with open("/proc/loadavg") as file:
            running = int(file.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cores - (running - 1))


def pick(parallel: Callable, serial: Callable, work: int, threshold: int) -> Callable:
    """The kernel to call for ``work`` units: ``serial``, or ``parallel`` on the threads idle cores allow.

    ``threshold`` is the kernel's own, measured constant (a ``PARALLEL_MIN_*``
    beside it). Below it, on one thread, or with fewer than two idle cores:
    ``serial`` itself. Otherwise ``parallel``, run on min(thread count, idle
    cores) threads and the count restored afterwards.
    """
    threads_now = numba.get_num_threads()
    if work < threshold or threads_now < 2:
        return serial
    idle = idle_cores()
    n = threads_now if idle is None else min(threads_now, idle)
    if n < 2:
        return serial
    if n == threads_now:
        return parallel
    return partial(_run_with_threads, parallel, n)


def _run_with_threads(kernel: Callable, n: int, *args):
    with using_threads(n):
        return kernel(*args)


def run_on_one_thread(fn: Callable, *args):
    """``fn(*args)`` with this thread's kernels on one thread: how worker processes run their work."""
    with using_threads(1):
        return fn(*args)
