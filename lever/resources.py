"""Up-front memory checks: refuse work whose arrays cannot fit before allocating any of them."""

from __future__ import annotations

import os

from .errors import LeverError


def physical_memory() -> int:
    """Bytes of physical memory on this machine (a large default where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 1 << 40


def check_memory(n_bytes: float, what: str, fraction: float = 0.5) -> None:
    """LeverError if ``what`` needs more than ``fraction`` of physical memory (estimated ``n_bytes``)."""
    limit = fraction * physical_memory()
    if n_bytes > limit:
        raise LeverError(f"{what} needs about {n_bytes / 2**30:,.1f} GiB of memory, more than "
                         f"{limit / 2**30:,.1f} GiB ({fraction:.0%} of this machine's); make it smaller")
