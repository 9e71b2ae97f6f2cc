"""What a library holds per policy: its record, the stacked tables of a layout, the arrays' names.

:class:`PolicyRecord` is one policy's metadata (a manifest record);
:class:`PolicyTables` a layout's policies stacked; :func:`layout_arrays`
and :func:`array_file` name the arrays of a layout's folder and their
shapes (see :mod:`lever.library.store` for the directory format).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..kernels.constants import N_ACTIONS, N_COMPONENTS, N_SETS
from ..worlds.objectives import Objective
from .spec import BuildSpec


def layout_arrays(spec: BuildSpec, n_states: int, n_policies: int,
                  world=None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name → (shape, dtype) of every array a layout's folder holds, in the order they are written.

    ``policy_ids`` int64 (P,); ``q`` (P, S, A) and ``q_vector`` (P, S, A, C)
    in the spec's Q dtype; ``visits`` int64 (P, S, A); ``next_state`` int32
    (P, S, A); ``reward_model`` float64 (P, S, A, N_SETS); ``canonical_states``
    int64 (K,); ``psi`` float64 (P, K, D); ``psi_steps`` int32 (P, K);
    ``psi_ends`` int8 (P, K). Of a tabular ``world``: A its actions, N_SETS,
    C and D its d components, K at most its non-terminal states.
    """
    n, S, A, C = n_policies, n_states, N_ACTIONS, N_COMPONENTS
    K, D = spec.embedding.n_states, spec.embedding.feature_dim
    sets = N_SETS
    if world is not None and spec.tabular:
        A, C, D, sets = world.n_actions, world.n_components, world.n_components, world.n_components
        K = min(K, world.n_states - len(world.terminal_states))
    q_dtype = np.dtype(spec.q_dtype)
    return {"policy_ids": ((n,), np.dtype(np.int64)), "q": ((n, S, A), q_dtype),
            "visits": ((n, S, A), np.dtype(np.int64)), "next_state": ((n, S, A), np.dtype(np.int32)),
            "reward_model": ((n, S, A, sets), np.dtype(np.float64)), "q_vector": ((n, S, A, C), q_dtype),
            "canonical_states": ((K,), np.dtype(np.int64)), "psi": ((n, K, D), np.dtype(np.float64)),
            "psi_steps": ((n, K), np.dtype(np.int32)), "psi_ends": ((n, K), np.dtype(np.int8))}


def array_file(layout_id: str, name: str, generation: int = 0) -> str:
    """The manifest name (relative to the library root) of array ``name`` of a layout at ``generation``."""
    suffix = "" if generation == 0 else f".g{generation}"
    return f"layouts/{layout_id}/{name}{suffix}.npy"


@dataclass(frozen=True)
class PolicyRecord:
    """Metadata of one library policy; ``row`` is its index inside its layout's :class:`PolicyTables`.

    ``greedy_return`` holds the return of every component set (N_SETS = 16,
    indexed by set mask) along the policy's greedy rollout from the start.
    ``source`` is ``"trained"`` (by the library's build) or ``"added"``
    (given as a table, see :mod:`lever.library.add`; then ``algorithm`` is
    ``"added"`` and ``gamma``, ``train_seed`` and ``train_time`` are 0,
    unknown). ``vector_q`` says whether its vector Q table is real: an
    added policy given as a plain (S, A) table stores zeros there, which the
    GPI operator refuses. ``label`` is free text from whoever added it.
    """

    policy_id: int
    layout_id: str
    setting: str
    layout_seed: int
    objective: Objective
    budget: str
    algorithm: str
    gamma: float
    train_seed: int
    train_time: float
    greedy_return: tuple[float, ...]
    row: int
    source: str = "trained"
    vector_q: bool = True
    label: str = ""

    def to_json(self) -> dict:
        """This record as a JSON-ready dict."""
        doc = asdict(self)
        doc["objective"] = list(self.objective.weights)
        doc["greedy_return"] = list(self.greedy_return)
        return doc

    @classmethod
    def from_json(cls, doc: dict, components: tuple[str, ...] | None = None) -> "PolicyRecord":
        """A record from a dict written by :meth:`to_json`; ``components``: a tabular world's component names."""
        return cls(**{**doc, "objective": Objective.parse(doc["objective"], components),
                      "greedy_return": tuple(float(x) for x in doc["greedy_return"])})


@dataclass(frozen=True, eq=False)
class PolicyTables:
    """Every policy of one layout, stacked (P policies, S states, A actions, C components).

    ``policy_ids`` int64 (P,); ``q`` (P, S, A) and ``q_vector`` (P, S, A, C)
    or None in the library's Q dtype (float32 by default); ``visits`` int64
    (P, S, A); ``next_state`` int32 (P, S, A), -1 where unknown;
    ``reward_model`` float64 (P, S, A, N_SETS). ``has_vector_q`` bool (P,):
    whether each row's vector Q is real (None: every row's is). Memory-mapped
    and read-only when opened from disk.
    """

    policy_ids: np.ndarray
    q: np.ndarray
    visits: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray
    q_vector: np.ndarray | None
    has_vector_q: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.policy_ids.shape[0])

    @property
    def support(self) -> np.ndarray:
        """bool (P, S, A): the pairs each policy's training visited."""
        return np.asarray(self.visits) > 0
