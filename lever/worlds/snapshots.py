"""Snapshots of a gymnasium env's state: ``env.unwrapped.__dict__`` saved and restored without ``copy.deepcopy`` of the env.

``copy.deepcopy`` of an MO-Gymnasium env resets its episode (its
``EzPickle`` pickles the constructor arguments, not the state), and some
attributes (a pygame font) cannot be copied at all, so a snapshot is taken
attribute by attribute (:class:`Snapshots`). :class:`Watched` tells whether
a step drew from the env's generator.
"""

from __future__ import annotations

import copy
import numbers
import types

import gymnasium
import numpy as np

#: Restores after which an attribute never changed by a step is taken to be a static table of the env.
STATIC_AFTER = 1000

_SHARED_TYPES = (gymnasium.spaces.Space, gymnasium.envs.registration.EnvSpec, np.random.Generator,
                 type(None), bool, int, float, str, bytes, numbers.Number)


class Snapshots:
    """Snapshot (:meth:`take`) and restore (:meth:`restore`) of ``env.unwrapped.__dict__``: arrays and containers copied, the rest shared.

    Each attribute is classed once, on first sight: numbers, strings,
    spaces, generators and hashable tuples are shared; arrays and
    containers (lists, dicts, sets, other objects that deepcopy) are
    compared with a reference copy first: one equal to it shares the
    reference (never handed to the env), and on restore a live value equal
    to the snapshot's is kept. One found unchanged after each of the first
    :data:`STATIC_AFTER` steps is taken to be a static table of the env
    (four-room's maze and shapes) and is neither compared nor copied again;
    one found changed once is always compared.
    """

    def __init__(self, unwrapped):
        self.unwrapped = unwrapped
        self.reference: dict = {}
        self.kinds: dict[str, int] = {}  # 0 share, 1 array, 2 container
        self.unchanged: dict[str, int] = {}  # steps after which a container was found unchanged
        self.static: set[str] = set()

    def _kind(self, key: str, value) -> int:
        kind = self.kinds.get(key)
        if kind is None or (kind == 1) != (type(value) is np.ndarray):
            if isinstance(value, np.ndarray):
                kind = 1
            elif isinstance(value, _SHARED_TYPES) or _immutable(value):
                kind = 0
            else:
                kind = 2
            self.kinds[key] = kind
        return kind

    def take(self) -> tuple[dict, dict]:
        """A snapshot of the env's attributes now: (shared values, copied values)."""
        shared, copied = {}, {}
        static, reference = self.static, self.reference
        for key, value in self.unwrapped.__dict__.items():
            if key in static:
                copied[key] = reference[key]
                continue
            kind = self._kind(key, value)
            if kind == 0 or (kind == 2 and not _immutable_checked(value)):
                shared[key] = value
            elif key in reference and _equal(value, reference[key]):
                copied[key] = self.reference[key]
            else:
                try:
                    copied[key] = _copy(value)
                except Exception:  # a pygame font, a window: not episode state, shared
                    shared[key] = value
                    continue
                self.reference.setdefault(key, copied[key])
        return shared, copied

    def restore(self, snapshot: tuple[dict, dict], rng) -> None:
        """Put the env back in ``snapshot``'s state, with ``rng`` as its generator."""
        shared, copied = snapshot
        state = self.unwrapped.__dict__
        if len(state) != len(shared) + len(copied):
            for key in [k for k in state if k not in shared and k not in copied]:
                del state[key]
        state.update(shared)
        for key, value in copied.items():
            if key in self.static:
                continue
            live = state.get(key)
            if live is not value and _equal(live, value):
                count = self.unchanged.get(key, 0)
                if count >= 0:
                    self.unchanged[key] = count + 1
                    if count + 1 >= STATIC_AFTER:
                        self.static.add(key)
            else:  # changed by a step (or never handed over): a copy of the snapshot's, compared from now on
                self.unchanged[key] = -1 if live is not value else self.unchanged.get(key, 0)
                state[key] = _copy(value)
        self.unwrapped.np_random = rng


def _copy(value):
    return value.copy() if type(value) is np.ndarray else copy.deepcopy(value)


class Watched:
    """A generator that records whether the env touched it (any attribute read: a draw, a spawn)."""

    def __init__(self, generator: np.random.Generator):
        self.generator = generator
        self.touched = False

    def __getattr__(self, name: str):
        self.touched = True
        return getattr(self.generator, name)


def _immutable_checked(value) -> bool:
    # Whether a container-kind value can be copied at all (modules, classes and functions are shared).
    return not isinstance(value, (type, types.ModuleType, types.FunctionType))


def _equal(a, b) -> bool:
    """Whether two attribute values are equal, element by element (arrays inside containers too)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    try:
        return bool(a == b)  # C speed for containers of plain values
    except Exception:  # arrays inside: compared element by element below
        pass
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return False


def _immutable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return isinstance(value, (tuple, frozenset))
