"""Worker processes for lever's process pools: how many, and how they start and stop.

Every pool lever starts (a library build's, a sweep's) is a
:class:`WorkerPool`: spawned interpreters that ignore Ctrl-C (the parent
process handles it and stops them), exit on their own within about a
second if their parent dies (even by ``kill -9``), and can be terminated
at once, queued work dropped, after an interruption.

A worker notices its parent's death in two ways: a daemon thread polls
``os.getppid()`` every second (:func:`watch_parent`), and on Linux the
kernel also sends it SIGKILL when the parent dies (``PR_SET_PDEATHSIG``).
The second matters while a Numba kernel runs: compiled code holds the
interpreter lock for as long as it runs, so the polling thread only gets
to run between kernels, which can be minutes apart.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import operator
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import LeverError

#: Seconds between two checks of a worker that its parent is still alive.
PARENT_POLL_S = 1.0


def check_jobs(jobs) -> int | None:
    """``jobs`` as an int if it is None or an integer >= 1, else :class:`LeverError` (``True`` is not an integer)."""
    if jobs is None:
        return None
    try:
        value = None if isinstance(jobs, bool) else operator.index(jobs)
    except TypeError:
        value = None
    if value is None or value < 1:
        raise LeverError(f"jobs must be an integer >= 1, got {jobs!r}")
    return value


def worker_count(jobs: int | None, work: int) -> int:
    """Workers to start for ``work`` items: ``jobs`` (None: every core), at most the cores and the work, at least 1."""
    cores = os.cpu_count() or 1
    jobs = check_jobs(jobs)
    return max(1, min(cores if jobs is None else jobs, cores, work))


def _exit_when_orphaned(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)  # the parent is gone: nobody will read this worker's results


def watch_parent(parent_pid: int, interval: float = PARENT_POLL_S) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(1)``) once its parent is no longer ``parent_pid``.

    A process whose parent dies is handed to another parent (init or a
    subreaper), so polling ``os.getppid()`` every ``interval`` seconds notices
    the death of the parent however it died.
    """
    thread = threading.Thread(target=_exit_when_orphaned, args=(parent_pid, interval),
                              name="lever-parent-watch", daemon=True)
    thread.start()
    return thread


#: prctl option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with_parent_signal() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies; elsewhere do nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this C library: the polling thread remains
        pass


def init_worker(parent_pid: int, numba_threads: int | None = None) -> None:
    """Initializer of a pool's worker: ignore Ctrl-C, die with ``parent_pid``, cap Numba's threads if asked.

    A worker's progress bars (always disabled) share a thread lock rather than a multiprocessing one.

    Ctrl-C in a terminal reaches every process of the foreground group; the
    parent alone turns it into one clean message and stops the workers, so
    the workers ignore it rather than print tracebacks of their own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)
    watch_parent(parent_pid)
    # tqdm would otherwise make a multiprocessing lock here, which a worker stopped by terminate()
    # or by its parent's death never releases: the resource tracker then warns of a leak.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    if numba_threads is not None:
        import numba

        numba.set_num_threads(numba_threads)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold SIGINT back from this thread; a Ctrl-C meanwhile is delivered when the block ends.

    A worker spawned meanwhile inherits the block, so it cannot be interrupted
    while it starts, before :func:`init_worker` runs.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class WorkerPool(ProcessPoolExecutor):
    """A :class:`ProcessPoolExecutor` of ``jobs`` spawned workers set up by :func:`init_worker`.

    ``numba_threads`` caps each worker's kernel threads (default 1: the
    workers already share the cores, and a parallel kernel beside busy
    neighbours waits for its slowest thread; None leaves Numba's default). Spawned, not forked: a worker must not inherit this process's
    threads or Numba's threading state. A worker starts when work is
    submitted and no worker is free, and on Linux dies with the thread that
    started it, so submit from a thread that outlives the pool (as sweeps
    and builds do: they submit from the calling thread).
    """

    def __init__(self, jobs: int, numba_threads: int | None = 1):
        super().__init__(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                         initializer=init_worker, initargs=(os.getpid(), numba_threads))

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)`` (starting a worker if one is missing, with Ctrl-C held back meanwhile)."""
        with _sigint_blocked():
            return super().submit(fn, *args, **kwargs)

    def terminate(self) -> None:
        """Drop queued work and stop every worker now (SIGTERM), without waiting for the work it runs."""
        processes = list((getattr(self, "_processes", None) or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            try:
                if process.is_alive():
                    process.terminate()
            except (ValueError, ProcessLookupError):  # already closed or gone
                pass
        for process in processes:
            try:
                process.join(timeout=5)
            except (ValueError, AssertionError):
                pass
