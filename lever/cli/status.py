"""Status lines of the ``lever`` command: to stderr, so that stdout holds only results (or JSON)."""

from __future__ import annotations

import sys

from ..warmup import compile_if_cold, compile_table_if_cold


def say(message: str) -> None:
    """Print one status line to stderr."""
    print(f"lever: {message}", file=sys.stderr, flush=True)


def ready_kernels(tabular: bool = False) -> None:
    """Compile the kernels up front on a cold cache, saying so, before a command's own work
    (``tabular``: those of a tabular world, for a command on one)."""
    seconds = compile_table_if_cold(say) if tabular else compile_if_cold(say)
    if seconds is not None:
        say(f"kernels compiled in {seconds:.1f} s; later runs load them from the cache")
