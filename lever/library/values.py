"""The values of a library layout's arrays, checked on opening (checksums only say the bytes are the listed ones).

Whoever writes a manifest can list arrays built to pass their checksums.
Beyond their shapes and dtypes (:mod:`lever.library.store`), every opened
layout's arrays must hold values a build or an add could have written:

* Q tables, vector Q tables, reward models and step terms finite; rewards and successor
  features within :data:`VALUE_LIMIT` (a return of a layout of at most 2²⁰
  cells is orders of magnitude smaller);
* visit counts >= 0; next states -1 (never visited) or a cell of the layout
  that is not a wall (a tabular world has none); canonical states cells of the layout, the first its start;
* successor-feature steps >= 0 and end codes among
  :data:`lever.kernels.constants.END_NAMES`.

Next states and canonical states index arrays inside compiled kernels, which
do not check bounds, so these checks also keep a crafted file from reading
outside an array. Each is a vectorised pass over a memory-mapped array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from ..worlds.grid import Layout
from ..worlds.tabular import TabularWorld
from ..kernels.constants import END_NAMES, WALL

#: Largest magnitude of a stored reward or successor feature.
VALUE_LIMIT = 1e12


def check_layout_values(layout: Layout | TabularWorld, arrays: dict[str, np.ndarray], paths: dict[str, Path]) -> None:
    """FileFormatError naming the file of the first array of ``arrays`` (name → array, as
    :func:`lever.library.records.layout_arrays` lists them; ``paths`` their files) holding a value no build
    writes (see the module docstring)."""
    def bad(name: str, reason: str) -> FileFormatError:
        return FileFormatError(f"{paths[name]}: {reason} (modified by hand or crafted)")

    for name in ("q", "q_vector", "reward_model", "psi", "term_model"):
        if name in arrays and not np.all(np.isfinite(arrays[name])):
            raise bad(name, "holds NaN or infinity")
    for name in ("reward_model", "psi"):
        if arrays[name].size and np.abs(arrays[name]).max() > VALUE_LIMIT:
            raise bad(name, f"holds a value beyond ±{VALUE_LIMIT:g}")
    if arrays["visits"].size and arrays["visits"].min() < 0:
        raise bad("visits", "holds a negative visit count")
    # A tabular world has no walls: every state can be entered.
    walls = np.flatnonzero(layout.cells.ravel() == WALL) if isinstance(layout, Layout) else np.zeros(0, np.int64)
    nxt = np.asarray(arrays["next_state"])
    if nxt.size and (nxt.min() < -1 or nxt.max() >= layout.n_states):
        raise bad("next_state", f"holds a next state outside -1..{layout.n_states - 1}")
    if walls.size and np.isin(nxt, walls).any():
        raise bad("next_state", "holds a next state on a wall")
    canonical = np.asarray(arrays["canonical_states"])
    if canonical.size and (canonical.min() < 0 or canonical.max() >= layout.n_states
                           or canonical[0] != layout.start):
        raise bad("canonical_states", f"holds a state outside 0..{layout.n_states - 1} or does not begin "
                                      f"at the start")
    if arrays["psi_steps"].size and arrays["psi_steps"].min() < 0:
        raise bad("psi_steps", "holds a negative step count")
    ends = np.asarray(arrays["psi_ends"])
    if ends.size and (ends.min() < 0 or ends.max() >= len(END_NAMES)):
        raise bad("psi_ends", f"holds an end code outside 0..{len(END_NAMES) - 1}")
