"""Policies in and out of a library on disk: :func:`add_policy` puts a Q table in, :func:`export_policy` takes one out.

**In.** A policy arrives as a plain Q table (S, A) or a vector Q table
(S, A, C) (C = 4 components: path, gold, hazard, lever), for an objective
valid under the library's rules, on one of the library's layouts. Its
support is derived or given (see :mod:`lever.library.support`).

- From an (S, A, C) table the vector Q is stored as given (cast to the
  library's Q dtype) and the scalar Q is derived as ``q_vector · w``, w the
  objective's component weights. Under linear rules that is the objective's
  Q; under the study's rules, which are not additive, it is the sum of the
  set's single-component Qs, a linear stand-in for the set's own Q.
- From an (S, A) table there is no vector Q. Zeros are stored in its place
  and the record says ``vector_q = False``; the GPI operator (``max``),
  the one user of vector Q tables, leaves such a policy out of its
  candidates (and refuses a combination given to it that holds one). Pass
  ``q_vector=`` as well to store both as given (what :func:`export_policy`
  gives back, so export → add round-trips exactly).

The policy is rolled out greedily for its return of every component set and
embedded with the library's embedding config, exactly as a build does with
its trained policies, from the table as stored (after the cast). Every input
is checked before anything is written; every problem is a
:class:`~lever.errors.LeverError` naming it.

**Writing** happens under the library's exclusive lock and never leaves a
library that fails to open: the layout's stacked arrays are written anew
under the next generation's file names (:func:`~lever.library.store.array_file`),
then the manifest (atomically, format version 3, without the record of the
now stale index), then the superseded generation is removed and the index
rebuilt and saved. A crash before the manifest leaves the library as it was
(the new files are unlisted leftovers, removed by the next add); after it,
the library as it is with the new policy (an index missing from the manifest
is rebuilt by :meth:`~lever.library.PolicyLibrary.index`).

**Out.** :func:`export_policy` gives a library policy's tables as plain,
writeable arrays with its record (:class:`PolicyArrays`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..embeddings import embed_policies
from ..errors import LeverError
from ..evaluation import rollout
from ..fileio import exclusive_lock, resolve_inside, write_json
from ..worlds.grid import Layout
from ..worlds.tabular import TabularWorld

from ..worlds.objectives import Objective, ObjectiveLike
from .build import write_layout_arrays
from .records import PolicyRecord, array_file, layout_arrays
from .store import LIBRARY_FORMAT, LIBRARY_VERSION, LOCK_WAIT_S, MANIFEST, PolicyLibrary
from .support import checked_log, pairs_support, replay_support, table_support

#: ``algorithm`` of an added policy's record: how it was trained is unknown to the library.
ADDED = "added"


@dataclass(frozen=True, eq=False)
class PolicyArrays:
    """One library policy as plain, writeable arrays (S states, A actions, C components, N_SETS sets).

    ``q`` (S, A) and ``q_vector`` (S, A, C) in the library's Q dtype
    (``q_vector`` None when the record has no real one); ``visits`` int64
    (S, A); ``next_state`` int32 (S, A), -1 outside the support;
    ``reward_model`` float64 (S, A, N_SETS); ``record`` its
    :class:`~lever.library.PolicyRecord`. Being a support log itself, it can
    be passed whole as ``support=`` to :func:`add_policy`.
    """

    record: PolicyRecord
    q: np.ndarray
    q_vector: np.ndarray | None
    visits: np.ndarray
    next_state: np.ndarray
    reward_model: np.ndarray


def export_policy(library: PolicyLibrary, policy_id: int) -> PolicyArrays:
    """The tables of library policy ``policy_id`` as plain arrays (copies), with its record.

    Also ``PolicyLibrary.export``. Round trip::

        a = library.export(7)
        library.add(a.q, a.record.objective, a.record.layout_id, q_vector=a.q_vector, support=a)
    """
    record = library.record(policy_id)
    tables = library.tables(record.layout_id)
    row = record.row
    return PolicyArrays(record, np.array(tables.q[row]),
                        np.array(tables.q_vector[row]) if record.vector_q else None,
                        np.array(tables.visits[row]), np.array(tables.next_state[row]),
                        np.array(tables.reward_model[row]))


def add_policy(library: PolicyLibrary, q, objective: ObjectiveLike, layout=None, *, q_vector=None,
               support=None, budget: str = ADDED, label: str = "") -> PolicyRecord:
    """Add a policy given as a Q table to ``library`` on disk; returns its new record.

    q: float (S, A), or (S, A, C) for a vector Q table (see the module
    docstring for how the other one is made); objective: what it optimises,
    valid under the library's rules; layout: a layout id of the library, a
    :class:`~lever.worlds.grid.Layout` whose id is one of them, or None when
    the library holds one layout (adding a new layout is not supported);
    q_vector: (S, A, C) stored beside an (S, A) ``q``; support: None (derive
    by a greedy replay), a bool mask or integer visit counts (S, A), or a
    log with ``visits``, ``next_state`` and ``reward_model`` (a
    :class:`PolicyArrays`, :class:`~lever.library.support.SupportLog` or
    :class:`~lever.training.TrainedPolicy`); budget, label: free text kept
    in the record. The policy gets the next policy id and the next row of its
    layout; ``library`` is reloaded in place, its index rebuilt. Also
    ``PolicyLibrary.add``.
    """
    spec = library.spec
    objective = Objective.parse(objective, spec.components)
    objective.set_weights(spec.rules)  # a weighted objective under the study's rules is refused here
    grid = _layout_of(library, layout)
    for name, value in (("budget", budget), ("label", label)):
        if not isinstance(value, str):
            raise LeverError(f"{name} must be a string, got {type(value).__name__}")
    layout_seed = library.records_for(grid.id)[0].layout_seed
    # Finite and within the Q dtype before the cast, so the stored tables are finite too.
    q_cast, vector_cast, has_vector = _tables(q, q_vector, objective, grid, spec.q_dtype)
    if isinstance(grid, TabularWorld):
        log = table_support(grid, q_cast, support)
    elif support is None:
        log = replay_support(grid, q_cast)
    elif all(hasattr(support, name) for name in ("visits", "next_state", "reward_model")):
        log = checked_log(grid, support)
    else:
        log = pairs_support(grid, support)
    greedy = rollout(grid, q_cast, objective, spec.rules).set_returns
    features = embed_policies(grid, q_cast[None], library.canonical_states(grid.id), spec.embedding)
    record = PolicyRecord(len(library), grid.id, spec.setting, layout_seed, objective, budget, ADDED, 0.0, 0,
                          0.0, tuple(float(x) for x in greedy), len(library.records_for(grid.id)),
                          source="added", vector_q=has_vector, label=label)
    row = {"policy_ids": np.array([record.policy_id], dtype=np.int64), "q": q_cast[None],
           "q_vector": vector_cast[None], "visits": log.visits[None], "next_state": log.next_state[None],
           "reward_model": log.reward_model[None], "psi": features.psi, "psi_steps": features.steps,
           "psi_ends": features.ends}
    with exclusive_lock(library.root, "library", wait=LOCK_WAIT_S):
        _write(library, grid, record, row)
        library.reload(verify=False, lock=False)  # sizes, shapes and dtypes; open again to check every sum
        try:
            library.index(rebuild=True, lock=False)
        except (LeverError, OSError):
            pass  # the manifest no longer records an index: the next index() call builds one
    return library.record(record.policy_id)


def _layout_of(library: PolicyLibrary, layout) -> Layout | TabularWorld:
    held = library.layout_ids
    if layout is None:
        if len(held) != 1:
            raise LeverError(f"the library holds {len(held)} layouts; name the one to add to "
                             f"({', '.join(held)})")
        return library.layout(held[0])
    layout_id = layout.id if isinstance(layout, (Layout, TabularWorld)) else layout
    if not isinstance(layout_id, str):
        raise LeverError(f"layout must be a layout id or a lever.Layout, got {type(layout).__name__}")
    if layout_id not in held:
        raise LeverError(f"the library holds no layout {layout_id!r} (it holds {', '.join(held)}); adding a "
                         f"policy on a new layout is not supported: build a library with that layout")
    return library.layout(layout_id)


def _real_table(value, name: str, shape: tuple[int, ...], q_dtype: str) -> np.ndarray:
    """``value`` checked to be a finite real table of ``shape`` whose values fit ``q_dtype``, as float64."""
    array = np.asarray(value)
    if array.shape != shape:
        raise LeverError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise LeverError(f"{name} must hold real numbers, got {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise LeverError(f"{name} holds NaN or infinity")
    limit = float(np.finfo(q_dtype).max)
    if array.size and np.abs(array).max() > limit:
        raise LeverError(f"{name} holds values beyond the library's Q dtype {q_dtype} (|x| <= {limit:.3g})")
    return array


def _tables(q, q_vector, objective: Objective, layout: Layout | TabularWorld,
            q_dtype: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(q, q_vector, whether the vector Q is real), checked and cast to ``q_dtype``."""
    S, A, C = layout.n_states, layout.n_actions, len(objective.names)
    ndim = np.ndim(q)
    if ndim == 3:
        if q_vector is not None:
            raise LeverError("q is already a vector Q table (S, A, C); pass q_vector only beside an (S, A) q")
        vector = _real_table(q, "q", (S, A, C), q_dtype).astype(q_dtype)
        # The objective's Q as the linear combination of the stored components (see the module docstring).
        scalar = _real_table(vector.astype(np.float64) @ objective.array, "q · w", (S, A), q_dtype)
        return scalar.astype(q_dtype), vector, True
    if ndim != 2:
        raise LeverError(f"q must be a Q table (S={S}, A={A}) or a vector Q table (S, A, C={C}) for layout "
                         f"{layout.id}, got shape {np.shape(q)}")
    scalar = _real_table(q, "q", (S, A), q_dtype).astype(q_dtype)
    if q_vector is None:
        return scalar, np.zeros((S, A, C), dtype=q_dtype), False
    return scalar, _real_table(q_vector, "q_vector", (S, A, C), q_dtype).astype(q_dtype), True


def _write(library: PolicyLibrary, layout: Layout, record: PolicyRecord, row: dict) -> None:
    """Write the layout's arrays with ``row`` appended (next generation), then the manifest, then clean up."""
    doc = library.current_manifest()  # refuses if another writer changed the library since it was opened
    root = library.root
    _remove_leftovers(library, doc)
    entries = [{"generation": 0, **entry} for entry in doc["layouts"]]
    entry = next(e for e in entries if e["layout_id"] == layout.id)
    old, new = entry["generation"], entry["generation"] + 1
    tables, features = library.tables(layout.id), library.features(layout.id)
    current = {"policy_ids": tables.policy_ids, "q": tables.q, "q_vector": tables.q_vector,
               "visits": tables.visits, "next_state": tables.next_state, "reward_model": tables.reward_model,
               "psi": features.psi, "psi_steps": features.steps, "psi_ends": features.ends}
    stacked = {name: np.concatenate([np.asarray(current[name]), row[name].astype(current[name].dtype)])
               for name in current}
    stacked["canonical_states"] = np.asarray(library.canonical_states(layout.id))
    names = list(layout_arrays(library.spec, layout.n_states, 0))
    superseded = [array_file(layout.id, name, old) for name in names]
    files = {name: value for name, value in doc["files"].items() if name not in superseded}
    files.update(write_layout_arrays(root, library.spec, layout, stacked, new))
    entry["n_policies"] += 1
    entry["generation"] = new
    write_json(root / MANIFEST, LIBRARY_FORMAT, LIBRARY_VERSION, {
        "spec": doc["spec"], "layouts": entries, "files": files,
        "records": [r.to_json() for r in library.records] + [record.to_json()]})
    for name in superseded:
        try:
            resolve_inside(root, name).unlink(missing_ok=True)
        except OSError:
            pass  # still mapped elsewhere (Windows): now unlisted, so the next add removes it


def _remove_leftovers(library: PolicyLibrary, doc: dict) -> None:
    """Remove array files (and temporaries) of a crashed add: ones the manifest does not list."""
    names = "|".join(re.escape(n) for n in layout_arrays(library.spec, 1, 0))
    ours = re.compile(rf"^(\.)?({names})(\.g\d+)?\.npy(?(1)\..+\.tmp)$")
    listed = set(doc["files"])
    for layout_id in library.layout_ids:
        folder = resolve_inside(library.root, f"layouts/{layout_id}")
        for path in folder.iterdir():
            relative = f"layouts/{layout_id}/{path.name}"
            if ours.match(path.name) and relative not in listed and path.is_file():
                path.unlink(missing_ok=True)
