"""Retrieval of library policies: exact numpy search for small groups, hnswlib graphs for large ones.

Policies are grouped by layout, so a layout filter is exact, and one more
group holds every policy for unfiltered queries. Weight queries ask which
policy has the largest predicted return w · ψ(start) over the value
signatures (C = 16 dims, one per component set); similarity queries ask
which policies behave like this one, cosine over the flattened behaviour
embeddings (K·D dims).

A group of fewer than ``IndexParams.exact_below`` policies (default
2·10⁴) answers weight queries exactly, and one of fewer than
``exact_below_similarity`` (default 5·10³) similarity queries: every member
is scored in float64. Below those sizes numpy scores a whole group faster
than hnswlib walks a graph (``benchmarks/bench_index.py`` measures where
the two cross, per kind: 16-dim signatures score far faster than 256-dim
embeddings), and the group has no graph of that kind, no build time and no
file. Larger groups get graphs (:mod:`lever.index_graphs`; the only
layout's group shares the whole index's): cosine over the embeddings, and
maximum inner product over the group's distinct signatures (many policies
share one), reduced to L2 nearest neighbours (Bachrach et al., 2014;
hnswlib's own ``ip`` space recalls poorly in so few dims): x becomes
[x, sqrt(R² − |x|²)] / R with R the largest norm, a query w becomes
[w / |w|, 0], so |q − x'|² = 2 − 2 w·x / (|w| R). A search keeps
``IndexParams.ef_for(size, k)`` candidates
(``benchmarks/bench_index_recall.py`` measures recall@10 at 10⁶ vectors).

Both paths rank alike: the candidates (every member, or every point the
search kept) are re-scored exactly in float64, ranked best first, ties by
policy id, and the first k are the answer. So equal scores (common: many
policies share a greedy route) are cut at the k-th place by policy id, as
brute force cuts them: always on the exact path, on the graph path
whenever its search reached them.

On disk (a directory, usually ``<library>/index``): ``manifest.json``
(format version, parameters, groups, per-file sha256), ``policy_ids.npy``,
``layout_codes.npy``, ``signatures.npy``, ``embeddings.npy`` and a
``group<n>.{mips,cos}.bin`` hnswlib file per graph; the
manifest is written last so a half-written index never loads, and every
file is checked against its sha256 before it is read, so hnswlib never
reads a damaged file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import FileFormatError, LeverError
from .fileio import atomic_write, sha256_file, write_json
from .index_files import INDEX_FORMAT, INDEX_VERSION, read_index, saved_version
from .index_graphs import DistinctSignatures, IndexParams, build_graph, mips_query, mips_vectors, search_graph
from .kernels.constants import N_SETS
from .worlds.objectives import Objective

__all__ = ["ALL", "INDEX_FORMAT", "INDEX_VERSION", "Candidate", "IndexParams", "PolicyIndex", "build_graph",
           "mips_query", "mips_vectors", "saved_version"]

ALL = "all"


@dataclass(frozen=True)
class Candidate:
    """A retrieved policy: ``score`` is w · ψ(start) for weight queries, cosine similarity otherwise."""

    policy_id: int
    score: float


class PolicyIndex:
    """A set of policies grouped by layout, each group searched exactly or by graphs (module docstring).

    policy_ids int64 (N,); layout_ids: N layout ids; signatures float64 (N, C);
    embeddings float64 (N, E).
    """

    def __init__(self, policy_ids, layout_ids, signatures, embeddings,
                 params: IndexParams = IndexParams(), _graphs: dict | None = None):
        self.policy_ids = np.asarray(policy_ids, dtype=np.int64)
        n = self.policy_ids.shape[0]
        self.signatures = np.asarray(signatures, dtype=np.float64)
        self.embeddings = np.asarray(embeddings, dtype=np.float64)
        layout_ids = [str(x) for x in layout_ids]
        if len(layout_ids) != n or self.signatures.ndim != 2 or self.signatures.shape[0] != n \
                or self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise LeverError(f"index inputs disagree: {n} policy ids, {len(layout_ids)} layout ids, "
                             f"signatures {self.signatures.shape}, embeddings {self.embeddings.shape}")
        if len(np.unique(self.policy_ids)) != n:
            raise LeverError("index policy ids must be unique")
        for name, array in (("signatures", self.signatures), ("embeddings", self.embeddings)):
            if not np.all(np.isfinite(array)):
                raise LeverError(f"index {name} contain NaN or infinity")
        self.params = params
        self.layouts = tuple(dict.fromkeys(layout_ids))
        self.layout_codes = np.array([self.layouts.index(x) for x in layout_ids], dtype=np.int32) \
            if n else np.zeros(0, dtype=np.int32)
        self._row_of = {int(pid): row for row, pid in enumerate(self.policy_ids)}
        self._norms = np.linalg.norm(self.embeddings, axis=1)
        self._groups = {ALL: np.arange(n)}
        for code, layout_id in enumerate(self.layouts):
            self._groups[layout_id] = np.flatnonzero(self.layout_codes == code)
        # A group whose rows are consecutive (every layout of a library is) is read through a slice,
        # a view, so the exact path copies no rows.
        self._take = {key: slice(int(rows[0]), int(rows[-1]) + 1) if rows.size and rows[-1] - rows[0] + 1 == rows.size
                      else rows for key, rows in self._groups.items()}
        self._distinct = {}  # group key -> the distinct signatures its MIPS graph holds, if it has graphs
        for key, rows in self._groups.items():
            if not params.exact(rows.size)[0]:
                self._distinct[key] = self._distinct[ALL] if key != ALL and rows.size == n else \
                    DistinctSignatures(self.signatures, rows, self.policy_ids)
        if _graphs is None:
            _graphs = {}
            for key, rows in self._groups.items():
                if key != ALL and rows.size == n:  # the only layout: its graphs are the whole index's
                    _graphs[key] = _graphs[ALL]
                    continue
                exact_weights, exact_similarity = params.exact(rows.size)
                _graphs[key] = (
                    None if exact_weights else build_graph(mips_vectors(self._distinct[key].distinct), "l2",
                                                           params=params),
                    None if exact_similarity else build_graph(self.embeddings[rows], "cosine", rows,
                                                              replace(params, M=params.M_similarity)))
        self._graphs = _graphs  # group key -> (MIPS graph, cosine graph), None where searched exactly

    @classmethod
    def build(cls, policy_ids, layout_ids, signatures, embeddings,
              params: IndexParams = IndexParams()) -> "PolicyIndex":
        """Build the graphs of every group at least ``params.exact_below`` (MIPS) or
        ``params.exact_below_similarity`` (cosine) policies large (deterministic: one thread, seeded)."""
        return cls(policy_ids, layout_ids, signatures, embeddings, params)

    def __len__(self) -> int:
        return int(self.policy_ids.shape[0])

    @property
    def signature_dim(self) -> int:
        """Length C of each signature."""
        return int(self.signatures.shape[1])

    @property
    def embedding_dim(self) -> int:
        """Length E of each embedding."""
        return int(self.embeddings.shape[1])

    # -- queries --------------------------------------------------------------
    def exact(self, layout_id: str | None = None) -> tuple[bool, bool]:
        """Whether (weight, similarity) queries over ``layout_id`` (None: every policy) are answered
        exactly, without a graph."""
        return tuple(graph is None for graph in self._graphs[ALL if layout_id is None else str(layout_id)])

    def _rows(self, k: int, layout_id: str | None) -> np.ndarray:
        if len(self) == 0:
            raise LeverError("the policy index is empty")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise LeverError(f"k must be a positive integer, got {k!r}")
        key = ALL if layout_id is None else str(layout_id)
        if key not in self._groups or (key == ALL and layout_id is not None):
            raise LeverError(f"no policy of layout {layout_id!r} in the index; layouts: "
                             f"{', '.join(self.layouts)}")
        rows = self._groups[key]
        if k > rows.size:
            where = "the index" if layout_id is None else f"layout {layout_id}"
            raise LeverError(f"k={k} but {where} holds only {rows.size} policies")
        return rows

    def _check_weights(self, weights) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.signature_dim,):
            raise LeverError(f"weights have shape {weights.shape}, the index's value signatures "
                             f"have {self.signature_dim} dims")
        if not np.all(np.isfinite(weights)):
            raise LeverError("weights contain NaN or infinity")
        return weights

    def _ranked(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[Candidate]:
        """The best ``k`` of ``rows`` by exact ``scores``, best first, ties by policy id."""
        if scores.size > k:  # only rows scoring at least the k-th best can place; ties all kept
            kth = np.partition(scores, scores.size - k)[scores.size - k]
            keep = np.flatnonzero(scores >= kth)
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((self.policy_ids[rows], -scores))[:k]
        return [Candidate(int(self.policy_ids[rows[i]]), float(scores[i])) for i in order]

    def query(self, objective, k: int = 5, layout_id: str | None = None, rules: str = "study") -> list[Candidate]:
        """The ``k`` policies with the largest predicted return ``W · ψ(start)``, best first.

        objective: an :class:`~lever.worlds.objectives.Objective` or a spec such as
        ``"path+gold"``, whose set weights W under ``rules`` are the query;
        layout_id restricts the candidates to one layout. :meth:`rank` takes
        a weight vector over the component sets directly. In the index of a
        tabular world's library (signatures over its d components) the
        objective is a weight vector over them: ``[0.3, 0.7]`` or ``"0.3,0.7"``.
        """
        if isinstance(objective, Objective):
            return self.rank(objective.set_weights(rules), k, layout_id)
        if self.signatures.shape[1] != N_SETS:  # a tabular world's: weights over its components, in order
            weights = Objective.parse(objective, tuple(f"c{i}" for i in range(self.signatures.shape[1])))
            return self.rank(weights.array, k, layout_id)
        return self.rank(Objective.parse(objective).set_weights(rules), k, layout_id)

    def rank(self, weights: np.ndarray, k: int = 5, layout_id: str | None = None) -> list[Candidate]:
        """:meth:`query` for weights over the component sets float64 (N_SETS,), taken as given."""
        weights = self._check_weights(weights)
        rows = self._rows(k, layout_id)  # checks k and the layout filter before searching
        key = ALL if layout_id is None else layout_id
        if self._graphs[key][0] is None or not weights.any():
            # All-zero weights score every policy 0 (and have no direction to search): the ids decide.
            return self._ranked(rows, self.signatures[self._take[key]] @ weights, k)
        distinct = self._distinct[key]
        size = distinct.distinct.shape[0]
        found = search_graph(self._graphs[key][0], mips_query(weights), min(k, size), self.params.ef_for(size, k),
                             size)
        found = distinct.expand(found, k)
        return self._ranked(found, self.signatures[found] @ weights, k)

    def similar(self, embedding, k: int = 5, layout_id: str | None = None,
                exclude: int | None = None) -> list[Candidate]:
        """The ``k`` policies whose behaviour embedding is most cosine-similar to ``embedding`` (E,).

        ``exclude`` leaves one policy id out of the answer.
        """
        vector = np.asarray(embedding, dtype=np.float64)
        if vector.shape != (self.embedding_dim,):
            raise LeverError(f"embedding has shape {vector.shape}, the index holds {self.embedding_dim}-dim "
                             f"behaviour embeddings")
        if not np.all(np.isfinite(vector)):
            raise LeverError("embedding contains NaN or infinity")
        rows = self._rows(k, layout_id)
        # Whether ``exclude`` is one of the candidates (O(1): no pass over the group's rows).
        extra = int(exclude is not None and exclude in self._row_of
                    and (layout_id is None or self.layout_of(exclude) == str(layout_id)))
        if k + extra > rows.size:
            raise LeverError(f"k={k} but only {rows.size - extra} other policies are candidates")
        key = ALL if layout_id is None else layout_id
        if self._graphs[key][1] is None:
            found, take = rows, self._take[key]
        else:
            found = search_graph(self._graphs[key][1], vector, k + extra,
                                 self.params.ef_for(rows.size, k + extra, similarity=True), rows.size)
            take = found
        norms = self._norms[take] * np.linalg.norm(vector)
        dots = self.embeddings[take] @ vector
        scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        if extra:
            keep = self.policy_ids[found] != exclude
            found, scores = found[keep], scores[keep]
        return self._ranked(found, scores, k)

    def similar_to(self, policy_id: int, k: int = 5, layout_id: str | None = None) -> list[Candidate]:
        """The ``k`` policies behaving most like policy ``policy_id`` (itself excluded)."""
        if int(policy_id) not in self._row_of:
            raise LeverError(f"policy {policy_id} is not in the index")
        return self.similar(self.embeddings[self._row_of[int(policy_id)]], k, layout_id,
                            exclude=int(policy_id))

    def layout_of(self, policy_id: int) -> str:
        """Layout id of an indexed policy."""
        if int(policy_id) not in self._row_of:
            raise LeverError(f"policy {policy_id} is not in the index")
        return self.layouts[self.layout_codes[self._row_of[int(policy_id)]]]

    # -- files ----------------------------------------------------------------
    def save(self, directory: str | os.PathLike, fingerprint: str = "") -> None:
        """Write the index to ``directory``; ``fingerprint`` ties it to the data it was built from.

        Raises :class:`LeverError` ``"cannot write the index DIRECTORY: REASON"``
        if the directory cannot be written.
        """
        directory = Path(directory)
        try:
            self._save(directory, fingerprint)
        except (OSError, RuntimeError) as exc:  # hnswlib reports a file it cannot write as RuntimeError
            raise LeverError(f"cannot write the index {directory}: {getattr(exc, 'strerror', None) or exc}") \
                from exc

    def _save(self, directory: Path, fingerprint: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "manifest.json").unlink(missing_ok=True)
        files = {}
        arrays = {"policy_ids.npy": self.policy_ids, "layout_codes.npy": self.layout_codes,
                  "signatures.npy": self.signatures, "embeddings.npy": self.embeddings}
        for name, array in arrays.items():
            atomic_write(directory / name, lambda h, a=array: np.save(h, a), binary=True)
        groups, listed = [], set(arrays)
        written = {}  # id of a graph pair -> its file names: graphs two groups share are written once
        for number, key in enumerate(self._groups):
            pair = self._graphs[key]
            if id(pair) not in written:
                written[id(pair)] = [None, None]  # no file for a kind searched exactly
                for i, (graph, space) in enumerate(zip(pair, ("mips", "cos"))):
                    if graph is None:
                        continue
                    name = written[id(pair)][i] = f"group{number}.{space}.bin"
                    graph.save_index(str(directory / f".{name}.tmp"))
                    os.replace(directory / f".{name}.tmp", directory / name)
                    listed.add(name)
            names = written[id(pair)]
            groups.append({"key": key, "mips": names[0], "cos": names[1]})
        for name in sorted(listed):  # graph files of an earlier save that are no longer listed stay unlisted
            path = directory / name
            files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        write_json(directory / "manifest.json", INDEX_FORMAT, INDEX_VERSION, {
            "fingerprint": fingerprint, "layouts": list(self.layouts), "groups": groups,
            "params": self.params.as_dict(),
            "signature_dim": self.signature_dim, "embedding_dim": self.embedding_dim,
            "n_policies": len(self), "files": files})

    @classmethod
    def load(cls, directory: str | os.PathLike, fingerprint: str | None = None,
             remedy: str = "rebuild it") -> "PolicyIndex":
        """Read an index written by :meth:`save` without rebuilding it.

        Raises :class:`FileFormatError` naming the file for a missing,
        truncated or corrupt file, a malformed manifest (a field of the
        wrong type, a file name leading outside ``directory``), or (when
        ``fingerprint`` is given) an index built from other data; the
        message ends with ``remedy``. Every file is checked against the
        sha256 its manifest lists before it is read, so hnswlib only ever
        reads the bytes :meth:`save` wrote.
        """
        directory = Path(directory)
        try:
            return cls._load(directory, fingerprint)
        except FileFormatError as exc:
            raise FileFormatError(f"{exc}; {remedy}") from None

    @classmethod
    def _load(cls, directory: Path, fingerprint: str | None) -> "PolicyIndex":
        saved = read_index(directory, fingerprint)
        codes, manifest, graphs, params = saved.arrays["layout_codes"], directory / "manifest.json", saved.graphs, \
            saved.params
        try:
            index = cls(saved.arrays["policy_ids"], [saved.layouts[c] for c in codes], saved.arrays["signatures"],
                        saved.arrays["embeddings"], params, _graphs=graphs)
        except LeverError as exc:
            raise FileFormatError(f"{directory}: {exc}") from None
        if set(graphs) != set(index._groups):
            raise FileFormatError(f"{manifest}: groups {sorted(graphs)} do not match the layouts")
        for key, rows in index._groups.items():
            for graph, exact, kind, field in zip(graphs[key], params.exact(rows.size), ("weight", "similarity"),
                                                 ("exact_below", "exact_below_similarity")):
                if (graph is None) != exact:
                    raise FileFormatError(f"{manifest}: group {key!r} of {rows.size} policies "
                                          f"{'lacks' if graph is None else 'has'} a {kind} graph, but {field} "
                                          f"is {getattr(params, field)}")
        return index
