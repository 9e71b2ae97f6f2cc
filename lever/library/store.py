"""The policy library on disk: its format, the checks made on opening, and read access.

Directory format (``LIBRARY_VERSION`` 3)::

    ROOT/manifest.json                 format, version, build spec, layouts (with the
                                       generation of their arrays), records,
                                       per file: sha256, bytes, shape, dtype;
                                       and once the index is saved, the sha256 and
                                       size of ROOT/index/manifest.json
    ROOT/layouts/<layout_id>/layout.json        the layout (text form and spec)
    ROOT/layouts/<layout_id>/world.npz          or, in a tabular world's library, the world
    ROOT/layouts/<layout_id>/<array>.npy        one stacked array per field, rows = policies
    ROOT/layouts/<layout_id>/<array>.g<N>.npy   the same after N policies were added (generation N)
    ROOT/index/                        the PolicyIndex (see :mod:`lever.index`)
    ROOT/.lock                         the lock of :func:`lever.fileio.exclusive_lock`

Per layout the arrays are those of :func:`layout_arrays`, named by
:func:`array_file`. Arrays open memory-mapped, so a library larger than
RAM still opens. The manifest is written last (see
:mod:`lever.library.build`), so a directory without one is an unfinished
build, never a library. Adding a policy (:mod:`lever.library.add`) writes
the layout's arrays anew under the next generation's names, then the
manifest, then removes the superseded generation, so a crash at any point
leaves a library that opens as before or as after. Version-2 libraries
(no added policies, every layout at generation 0) still open; the first
policy added rewrites their manifest in version 3.

One process writes a library at a time (a build, an index rebuild: the
exclusive lock); opening takes the shared lock while it reads and checks
the manifest and files, so a reader never sees a half-written library.
Every file name in the manifest must stay inside ROOT (see
:mod:`lever.library.checks`). The index's own manifest lists the sha256 of
each index file and the library manifest the sha256 of the index's
manifest, so every index file is checked against the library manifest
before hnswlib reads it. The library's :attr:`~PolicyLibrary.fingerprint`
is the sha256 of its manifest without that index record, so saving the
index does not change it.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ..embeddings import SuccessorFeatures, behaviour_embeddings, free_cells
from ..errors import FileFormatError, LeverError
from ..fileio import check_file, exclusive_lock, read_json, resolve_inside, sha256_file, shared_lock, write_json
from ..worlds.grid import Layout
from ..worlds.tabular import TabularWorld
from ..index import INDEX_VERSION, IndexParams, PolicyIndex, saved_version
from ..kernels.constants import EXIT
from .checks import Manifest, index_record, manifest_fingerprint, parse_manifest
from .records import PolicyRecord, PolicyTables, array_file, layout_arrays
from .spec import BuildSpec

__all__ = ["INDEX_DIR", "LIBRARY_FORMAT", "LIBRARY_VERSION", "LOCK_WAIT_S", "MANIFEST", "READABLE_VERSIONS",
           "STAGING", "PolicyLibrary", "PolicyRecord", "PolicyTables", "array_file", "layout_arrays"]

LIBRARY_FORMAT = "lever-policy-library"
LIBRARY_VERSION = 3  # 3: added policies (record source, vector_q, label; layout generations)
#: Manifest versions this lever opens (2: rewards of every component set, the study's rules).
READABLE_VERSIONS = (2, 3)
MANIFEST = "manifest.json"
#: Folder of an unfinished build inside the library's root.
STAGING = ".staging"
#: Folder of the saved index inside the library's root.
INDEX_DIR = "index"
#: Seconds a reader waits for a writer of the library (a build, a reindex) to finish.
LOCK_WAIT_S = 30.0


class PolicyLibrary:
    """A directory of trained policies (see :mod:`lever.library`); open with :meth:`open`, make with :meth:`build`,
    add a policy given as a Q table with ``add`` and take one out as plain arrays with ``export``
    (:mod:`lever.library.add`).

    ``records`` lists every policy in id order; ``layout_ids`` the layouts in
    build order.
    """

    def __init__(self, root: Path, spec: BuildSpec, records: tuple[PolicyRecord, ...],
                 layouts: dict[str, Layout], arrays: dict[str, dict[str, np.ndarray]], fingerprint: str):
        self.root = root
        self.spec = spec
        self.records = records
        self.layout_ids = tuple(layouts)
        self._layouts = layouts
        self._arrays = arrays
        self.fingerprint = fingerprint
        self._index: PolicyIndex | None = None
        self._nbytes: int | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (f"PolicyLibrary({str(self.root)!r}: {len(self)} policies, {len(self.layout_ids)} layouts, "
                f"{self.spec.setting})")

    # -- opening --------------------------------------------------------------
    @classmethod
    def open(cls, root, verify: bool = True, *, lock: bool = True) -> "PolicyLibrary":
        """Open a library directory, checking format version, files, sizes, shapes, dtypes and checksums.

        ``verify=False`` skips only the sha256 pass (every byte read once).
        Raises :class:`FileFormatError` naming the offending file or
        manifest field; a manifest entry that leads outside ``root`` is
        refused before anything is read. Nothing on disk is changed. Holds
        the library's shared lock while reading, waiting up to
        :data:`LOCK_WAIT_S` seconds for a writer to finish; ``lock=False``
        is for a caller that already holds the library's lock (a build).
        """
        if not isinstance(root, (str, os.PathLike)):
            raise LeverError(f"library directory must be a path, got {type(root).__name__}")
        root = Path(root)
        with shared_lock(root, "library", wait=LOCK_WAIT_S) if lock else nullcontext():
            return cls._read(root, verify)

    def reload(self, verify: bool = True, *, lock: bool = True) -> None:
        """Read this library from disk again, in place (after this process wrote to it).

        Same checks and lock as :meth:`open`; the saved index is read again on next use.
        """
        fresh = PolicyLibrary.open(self.root, verify, lock=lock)
        self.__dict__.update(fresh.__dict__)

    @classmethod
    def _read(cls, root: Path, verify: bool) -> "PolicyLibrary":
        manifest = root / MANIFEST
        if not manifest.exists() and (root / STAGING).exists():
            raise FileFormatError(f"{manifest}: no such file; {root} holds an unfinished build, run the "
                                  f"same build again to finish it")
        resolve_inside(root, MANIFEST)
        doc = read_json(manifest, LIBRARY_FORMAT, READABLE_VERSIONS)
        checked = parse_manifest(root, manifest, doc, PolicyRecord.from_json)
        spec, records, counts = checked.spec, checked.records, checked.counts
        if [r.policy_id for r in records] != list(range(len(records))):
            raise FileFormatError(f"{manifest}: policy ids are not 0..{len(records) - 1} in order")
        if sum(counts.values()) != len(records):
            raise FileFormatError(f"{manifest}: {len(records)} records but the layouts hold "
                                  f"{sum(counts.values())} policies")
        for name, entry in checked.files.items():
            cls._check_file(checked.paths[name], entry, verify)
        layouts: dict[str, Layout] = {}
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for layout_id, n in counts.items():
            layouts[layout_id] = cls._open_layout(root, checked, layout_id)
            arrays[layout_id] = cls._open_arrays(root, checked, spec, layouts[layout_id], n)
            own = [r.policy_id for r in records if r.layout_id == layout_id]
            if arrays[layout_id]["policy_ids"].tolist() != own or [records[p].row for p in own] != list(range(n)):
                raise FileFormatError(f"{root / 'layouts' / layout_id / 'policy_ids.npy'}: policy ids do not "
                                      f"match the manifest's records of layout {layout_id}")
        library = cls(root, spec, records, layouts, arrays, checked.fingerprint)
        library._nbytes = int(sum(entry["bytes"] for entry in checked.files.values()))
        return library

    @staticmethod
    def _listed(root: Path, checked: Manifest, name: str) -> Path:
        """The checked path of file ``name`` (relative to the root), which the manifest must list."""
        if name not in checked.paths:
            raise FileFormatError(f"{root / MANIFEST}: lists no {name}")
        return checked.paths[name]

    @classmethod
    def _open_layout(cls, root: Path, checked: Manifest, layout_id: str) -> Layout | TabularWorld:
        tabular = checked.spec.tabular
        path = cls._listed(root, checked, f"layouts/{layout_id}/{'world.npz' if tabular else 'layout.json'}")
        try:
            layout = TabularWorld.load(path) if tabular else Layout.load(path)
        except FileFormatError:
            raise
        except LeverError as exc:
            raise FileFormatError(f"{path}: invalid layout ({exc})") from None
        if layout.id != layout_id:
            raise FileFormatError(f"{path}: layout id {layout.id}, the manifest says {layout_id}")
        return layout

    @classmethod
    def _open_arrays(cls, root: Path, checked: Manifest, spec: BuildSpec, layout: Layout,
                     n: int) -> dict[str, np.ndarray]:
        loaded = {}
        for name, (shape, dtype) in layout_arrays(spec, layout.n_states, n, layout).items():
            path = cls._listed(root, checked, array_file(layout.id, name, checked.generations[layout.id]))
            array = _load_npy(path)
            if array.shape != shape or array.dtype != dtype:
                raise FileFormatError(f"{path}: {array.dtype} {array.shape}, expected {dtype} {shape}")
            loaded[name] = array
        return loaded

    @staticmethod
    def _check_file(path: Path, entry: dict, verify: bool) -> None:
        check_file(path, entry, verify)
        if "shape" in entry:
            header = _load_npy(path)
            if list(header.shape) != list(entry["shape"]) or header.dtype.str != entry["dtype"]:
                raise FileFormatError(f"{path}: {header.dtype.str} {header.shape}, the manifest says "
                                      f"{entry['dtype']} {tuple(entry['shape'])}")

    # -- access ---------------------------------------------------------------
    def _layout_arrays(self, layout_id: str) -> dict[str, np.ndarray]:
        if layout_id not in self._arrays:
            raise LeverError(f"layout {layout_id!r} is not in this library; layouts: "
                             f"{', '.join(self.layout_ids)}")
        return self._arrays[layout_id]

    def layout(self, layout_id: str) -> Layout | TabularWorld:
        """The layout (or tabular world) with this id."""
        self._layout_arrays(layout_id)
        return self._layouts[layout_id]

    def tables(self, layout_id: str) -> PolicyTables:
        """Every policy of one layout, stacked in row order (memory-mapped, read-only)."""
        a = self._layout_arrays(layout_id)
        has_vector_q = np.array([r.vector_q for r in self.records_for(layout_id)], dtype=bool)
        return PolicyTables(a["policy_ids"], a["q"], a["visits"], a["next_state"], a["reward_model"],
                            a["q_vector"], has_vector_q)

    def features(self, layout_id: str) -> SuccessorFeatures:
        """Successor features of the layout's policies from its canonical states (rows as in tables)."""
        a = self._layout_arrays(layout_id)
        if self.spec.tabular:
            return SuccessorFeatures(a["psi"], a["psi_steps"], a["psi_ends"], len(self.spec.components))
        return SuccessorFeatures(a["psi"], a["psi_steps"], a["psi_ends"])

    def canonical_states(self, layout_id: str) -> np.ndarray:
        """The K canonical states of a layout, int64 (K,); the first is the start."""
        return self._layout_arrays(layout_id)["canonical_states"]

    def records_for(self, layout_id: str | None = None) -> list[PolicyRecord]:
        """Records of one layout (in row order), or of every policy when ``layout_id`` is None."""
        if layout_id is None:
            return list(self.records)
        self._layout_arrays(layout_id)
        return [r for r in self.records if r.layout_id == layout_id]

    def record(self, policy_id: int) -> PolicyRecord:
        """The record of one policy id."""
        if not 0 <= int(policy_id) < len(self.records):
            raise LeverError(f"policy id {policy_id} is not in 0..{len(self.records) - 1}")
        return self.records[int(policy_id)]

    def value_signatures(self) -> np.ndarray:
        """ψ(start) over the component sets (a tabular world's components) of every policy in id order,
        float64 (N, N_SETS or d)."""
        return np.concatenate([self.features(x).value_signatures for x in self.layout_ids])

    def behaviour_embeddings(self) -> np.ndarray:
        """Flattened behaviour embeddings of every policy in id order, float64 (N, K·D)."""
        return np.concatenate([behaviour_embeddings(self._arrays[x]["psi"]) for x in self.layout_ids])

    def support_coverage(self, layout_id: str) -> float:
        """Fraction of the (state, action) pairs of reachable non-exit cells that any policy visited."""
        layout = self.layout(layout_id)
        union = np.asarray(self.tables(layout_id).visits).sum(axis=0) > 0
        if isinstance(layout, TabularWorld):  # the pairs of every state but the terminal observations
            states = free_cells(layout)
            return float(union[states].mean()) if states.size else 0.0
        cells = layout.cells.ravel()
        reachable = (layout.distances_from(layout.start) >= 0) & (cells != EXIT)
        return float(union[reachable].mean()) if reachable.any() else 0.0

    def nbytes(self) -> int:
        """Bytes of every file the manifest lists (the index not included)."""
        if self._nbytes is None:
            doc = read_json(self.root / MANIFEST, LIBRARY_FORMAT, READABLE_VERSIONS)
            self._nbytes = int(sum(entry["bytes"] for entry in
                                   parse_manifest(self.root, self.root / MANIFEST, doc, PolicyRecord.from_json)
                                   .files.values()))
        return self._nbytes

    def index(self, rebuild: bool = False, params: IndexParams | None = None, *, lock: bool = True) -> PolicyIndex:
        """The :class:`PolicyIndex` of this library, from ``ROOT/index`` (built and saved there if absent).

        A saved index that does not match the library manifest's record of
        it, is corrupt or is from other data is a :class:`FileFormatError`
        that says to run ``lever library reindex ROOT``; no file of it
        reaches hnswlib unchecked. ``rebuild=True`` (or new ``params``)
        builds it anew and saves it under the library's exclusive lock,
        raising :class:`LeverError` if it cannot be saved. An index built
        because none was saved, or because the saved one is intact but of
        an older format version, is saved when the library is writable and
        not in use by another process, and otherwise kept in memory only.
        ``lock=False`` is for a caller that already holds the library's
        exclusive lock (a build).
        """
        if self._index is not None and not rebuild and params is None:
            return self._index
        explicit = rebuild or params is not None
        if not explicit:
            with shared_lock(self.root, "library", wait=LOCK_WAIT_S) if lock else nullcontext():
                loaded = self._load_index()
            if loaded is not None:
                self._index = loaded
                return loaded
        index = PolicyIndex.build([r.policy_id for r in self.records], [r.layout_id for r in self.records],
                                  self.value_signatures(), self.behaviour_embeddings(),
                                  params or IndexParams())
        try:
            with exclusive_lock(self.root, "library", wait=LOCK_WAIT_S if explicit else 0) if lock \
                    else nullcontext():
                self._save_index(index)
        except (LeverError, OSError):
            if explicit:
                raise
            # read-only, or read by another process right now: answer from the index in memory
        self._index = index
        return index

    def current_manifest(self) -> dict:
        """The manifest as it is on disk now (a dict), checked to describe the data this object opened;
        LeverError if another writer changed the library since."""
        doc = read_json(self.root / MANIFEST, LIBRARY_FORMAT, READABLE_VERSIONS)
        if manifest_fingerprint(doc) != self.fingerprint:
            raise LeverError(f"{self.root} changed on disk since it was opened; open it again")
        return doc

    def _load_index(self) -> PolicyIndex | None:
        """The saved index, checked against the manifest's record of it; None if none is recorded or saved."""
        doc = self.current_manifest()
        record = index_record(self.root / MANIFEST, doc)
        index_manifest = resolve_inside(self.root, f"{INDEX_DIR}/manifest.json")
        if record is None or not index_manifest.exists():
            return None
        remedy = f"run `lever library reindex {self.root}`"
        try:
            check_file(index_manifest, record)
        except FileFormatError:
            raise FileFormatError(f"{index_manifest}: does not match the index recorded in {self.root / MANIFEST} "
                                  f"(stale, modified or from other data); {remedy}") from None
        version = saved_version(index_manifest.parent)
        if version is not None and version < INDEX_VERSION:
            return None  # intact but of an older format: rebuilt (and saved where writable) by the caller
        return PolicyIndex.load(index_manifest.parent, fingerprint=self.fingerprint, remedy=remedy)

    def _save_index(self, index: PolicyIndex) -> None:
        """Write ``index`` to ``ROOT/index``, then record its manifest's sha256 in the library manifest."""
        doc = self.current_manifest()
        folder = resolve_inside(self.root, INDEX_DIR)
        index.save(folder, fingerprint=self.fingerprint)
        saved = folder / "manifest.json"
        payload = {key: value for key, value in doc.items() if key not in ("format", "version")}
        payload["index"] = {"sha256": sha256_file(saved), "bytes": saved.stat().st_size}
        # The version it was written in: upgrading here would change the fingerprint the index carries.
        write_json(self.root / MANIFEST, LIBRARY_FORMAT, doc["version"], payload)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"{path}: not a readable .npy array ({exc})") from None
