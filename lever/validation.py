"""Checks of values handed to lever's public API, one message shape for all (after scikit-learn's
``check_scalar``).

* :func:`check_int`: an integer is a Python ``int`` or a NumPy integer
  (``np.uint64`` too), never ``bool`` and never a float, not even ``2.0``;
* :func:`check_real`: a real number is an ``int`` or ``float`` or a NumPy
  number, never ``bool`` or a string, and finite unless asked otherwise;
* :func:`check_int_sequence`: a sequence of such integers.

A value of the wrong type raises :class:`LeverTypeError`, which is both a
:class:`~lever.errors.LeverError` (so the command line prints it as one line)
and a :class:`TypeError`; a value out of range raises :class:`LeverError`
(a :class:`ValueError`). Messages read ``"NAME must be an integer >= 1, got
2.5"``. Strings are never parsed into numbers here: a caller that reads
text (the command line, a file) parses it first.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import LeverError


class LeverTypeError(LeverError, TypeError):
    """A value of the wrong type handed to lever's API (also a :class:`TypeError`)."""


def _bounds(low, high) -> str:
    if low is not None and high is not None:
        return f" in {low}..{high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def is_int(value) -> bool:
    """Whether ``value`` counts as an integer: an ``int`` or NumPy integer, not ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, min_val: int | None = None, max_val: int | None = None) -> int:
    """``value`` as a Python int; LeverTypeError unless it is an integer (see :func:`is_int`), LeverError
    unless ``min_val <= value <= max_val`` (either bound may be None)."""
    if not is_int(value):
        raise LeverTypeError(f"{name} must be an integer{_bounds(min_val, max_val)}, got {value!r}")
    value = int(value)
    if (min_val is not None and value < min_val) or (max_val is not None and value > max_val):
        raise LeverError(f"{name} must be an integer{_bounds(min_val, max_val)}, got {value}")
    return value


def check_real(value, name: str, min_val: float | None = None, max_val: float | None = None,
               finite: bool = True) -> float:
    """``value`` as a Python float; LeverTypeError unless it is a real number (``int``, ``float`` or a NumPy
    number, not ``bool`` or text), LeverError if it is NaN, infinite (unless ``finite=False``) or outside
    ``min_val..max_val``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)) \
            or isinstance(value, np.complexfloating):
        raise LeverTypeError(f"{name} must be a number{_bounds(min_val, max_val)}, got {value!r}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise LeverError(f"{name} must be a finite number{_bounds(min_val, max_val)}, got {value}")
    if (min_val is not None and value < min_val) or (max_val is not None and value > max_val):
        raise LeverError(f"{name} must be a number{_bounds(min_val, max_val)}, got {value}")
    return value


def check_str(value, name: str) -> str:
    """``value`` itself; LeverTypeError unless it is a string."""
    if not isinstance(value, str):
        raise LeverTypeError(f"{name} must be a string, got {value!r}")
    return value


def check_int_sequence(values, name: str, min_val: int | None = None, max_val: int | None = None,
                       unique: bool = False) -> tuple[int, ...]:
    """``values`` (a list, tuple or 1-d array, not a string) as a tuple of ints, each checked by
    :func:`check_int`; ``unique`` also refuses a repeated entry."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise LeverTypeError(f"{name} must be a sequence of integers, got {values!r}")
    checked = tuple(check_int(v, f"{name}[{i}]", min_val, max_val) for i, v in enumerate(values))
    if unique and len(set(checked)) != len(checked):
        raise LeverError(f"{name} repeat an entry: {list(checked)}")
    return checked


#: Bidirectional marks and overrides, which reorder what a terminal shows.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0 or char in _BIDI


def check_text(value, name: str) -> str:
    """``value`` itself; LeverTypeError unless it is a string, LeverError if it holds a control character
    (an ANSI escape, a newline, a bidirectional override), which would reach terminals as commands."""
    check_str(value, name)
    bad = next((c for c in value if _is_control(c)), None)
    if bad is not None:
        raise LeverError(f"{name} holds the control character {bad!r}; use plain text")
    return value


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab written as an escape (``\\x1b``), so
    that a name printed to a terminal cannot move the cursor, recolour or hide text."""
    if not any(_is_control(c) and c not in "\n\t" for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if _is_control(c) and c not in "\n\t" else c
                   for c in text)
