"""How many threads lever's parallel kernels use, and when a kernel runs on one thread instead.

Every ``parallel=True`` kernel in :mod:`lever.kernels` has a serial twin
that computes the same result, bit for bit, and a work-size threshold
measured beside it. :func:`pick` chooses between the two for one call: the
serial twin when the work is below the kernel's threshold or when the
calling thread runs kernels on one thread. A parallel region waits for its
slowest thread, and a thread that shares its core with a busy process
waits a whole scheduler slice (milliseconds), so a small batch is never
worth waking the pool for, and on one thread it is never woken at all.

The thread count is Numba's own, per calling thread (lever keeps no state
of its own): :func:`set_threads` sets it, :func:`using_threads` sets it for a
block and restores the previous count afterwards, and worker processes
(a library build's, a sweep's, the reproduction's) run on one thread
(:func:`run_on_one_thread`).
"""

from __future__ import annotations

import operator
from contextlib import contextmanager
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


def pick(parallel: Callable, serial: Callable, work: int, threshold: int) -> Callable:
    """The kernel to call for ``work`` units: ``parallel`` from ``threshold`` units up on more than one thread.

    ``threshold`` is the kernel's own, measured constant (a ``PARALLEL_MIN_*``
    beside it); below it, or on one thread, ``serial``.
    """
    return parallel if work >= threshold and numba.get_num_threads() > 1 else serial


def run_on_one_thread(fn: Callable, *args):
    """``fn(*args)`` with this thread's kernels on one thread: how worker processes run their work."""
    with using_threads(1):
        return fn(*args)
