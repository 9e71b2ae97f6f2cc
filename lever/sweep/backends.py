"""Where a sweep's work runs: local processes or Ray tasks, behind one small interface.

A backend takes module-level functions with their arguments (:meth:`submit`)
and hands results back as they finish (:meth:`next_done`, :meth:`result`);
:meth:`close` ends it, cancelling queued work after an interruption.

The process backend's workers (:class:`lever.library.workers.WorkerPool`)
run one Numba thread each, since the pool already fills the cores; their
initializer makes them ignore Ctrl-C (this process handles it) and starts
a daemon thread that exits the worker within about a second once this
process dies, even by ``kill -9``, so no worker outlives its sweep.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Callable, Iterable

from ..errors import LeverError, check_choice
from ..library.workers import WorkerPool
from ..threads import run_on_one_thread

#: Backend names :func:`make_backend` accepts.
BACKENDS = ("process", "ray")


class ProcessBackend:
    """Local processes (``jobs`` > 1) or the calling process itself (``jobs`` == 1).

    In this process, work runs one item at a time when the loop asks for the next finished
    one, in submission order, so each cell is persisted before the next one starts.
    """

    def __init__(self, jobs: int):
        self.pool = None
        self.queue: list[tuple[Future, Callable, tuple]] = []
        if jobs > 1:
            self.pool = WorkerPool(jobs, numba_threads=1)

    def submit(self, fn: Callable, *args) -> Future:
        """Queue ``fn(*args)``; returns its handle."""
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        future: Future = Future()
        self.queue.append((future, fn, args))
        return future

    def next_done(self, pending: set) -> list:
        """Handles of ``pending`` that have finished (at least one; in this process, the oldest)."""
        if self.pool is None:
            future, fn, args = self.queue.pop(0)
            try:
                future.set_result(fn(*args))
            except Exception as exc:  # handed to the caller through the future, as a pool would
                future.set_exception(exc)
            return [future]
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def result(handle: Future):
        """The value of a finished handle (its exception raised)."""
        return handle.result()

    def close(self, pending: Iterable, cancel: bool) -> None:
        """Shut the pool down; with ``cancel``, drop queued work and stop the workers without waiting."""
        if self.pool is None:
            return
        if cancel:  # an interruption: results of the cells in flight would be lost anyway
            self.pool.terminate()
        else:
            self.pool.shutdown(wait=True)


class RayBackend:
    """Ray tasks, on the instance at ``address`` (or the one already initialised, or a new local one)."""

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise LeverError("the ray backend needs ray: pip install 'lever[ray]'") from None
        self.ray = ray
        self.owns_instance = not ray.is_initialized()
        if self.owns_instance:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.remote = {}

    def submit(self, fn: Callable, *args):
        """Start ``fn(*args)`` as a one-CPU Ray task, its kernels on one thread; returns its object ref."""
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1)(run_on_one_thread)
        return self.remote[fn].remote(fn, *args)

    def next_done(self, pending: set) -> list:
        """One finished object ref of ``pending``."""
        ready, _ = self.ray.wait(list(pending), num_returns=1)
        return ready

    def result(self, handle):
        """The value of a finished object ref (its exception raised)."""
        return self.ray.get(handle)

    def close(self, pending: Iterable, cancel: bool) -> None:
        """Cancel ``pending`` tasks when asked; shut down the instance this backend started."""
        if cancel:
            for handle in pending:
                self.ray.cancel(handle, force=True)
        if self.owns_instance:
            self.ray.shutdown()


def make_backend(name: str, jobs: int, address: str | None = None):
    """A :class:`ProcessBackend` of ``jobs`` workers or a :class:`RayBackend` at ``address``."""
    return RayBackend(address) if check_choice("backend", name, BACKENDS) == "ray" else ProcessBackend(jobs)
