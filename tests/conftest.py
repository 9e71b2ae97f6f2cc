"""Shared fixtures; puts the repository root on sys.path so ``tests.reference`` imports."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lever import Layout  # noqa: E402
from tests.reference import HAND_LAYOUTS  # noqa: E402

#: An open 8×8 grid, start and exit in opposite corners, nothing else.
OPEN8_TEXT = "S.......\n" + "........\n" * 6 + ".......E\n"


@pytest.fixture
def open8() -> Layout:
    """Open 8×8 layout: no walls, hazards, gold or lever; start (0, 0), exit (7, 7)."""
    return Layout.from_text(OPEN8_TEXT)


@pytest.fixture
def pocket() -> Layout:
    """5×5 layout whose only gold sits in a pocket entered from below, with a lever."""
    return Layout.from_text(HAND_LAYOUTS["pocket"])


@pytest.fixture(params=sorted(HAND_LAYOUTS))
def hand_layout(request) -> Layout:
    """Each hand-written layout of :data:`tests.reference.HAND_LAYOUTS` in turn."""
    return Layout.from_text(HAND_LAYOUTS[request.param])
