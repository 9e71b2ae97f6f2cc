"""Retrieval of library policies through hnswlib.

Two graphs per group of policies: a maximum-inner-product graph over value
signatures ψ(start) (C = 16 dims: one per component set), answering "which policy has the largest
predicted return w · ψ(start)", and a cosine graph over the flattened
behaviour embeddings (K·D dims), answering "which policies behave like this
one". Every layout has its own group, so a layout filter is exact, and one
more group holds every policy for unfiltered queries.

Maximum inner product in so few dimensions is a poor fit for hnswlib's own
``ip`` space (measured recall@10 ≈ 0.98 at ef = 512), so it is reduced to
nearest neighbours in L2 (Bachrach et al., 2014): each signature x becomes
[x, sqrt(R² − |x|²)] / R with R the largest norm of the group, a query w
becomes [w / |w|, 0], and then |q − x'|² = 2 − 2 w·x / (|w| R), so the
nearest points are exactly the largest inner products. Queries search with
ef = max(k, ef_min), ef_min = 512 by default; every candidate the search
keeps (up to ef) is re-scored exactly in float64, ranked best first, ties
by policy id, and the first k are the answer. So policies with equal
scores (common: many policies share a greedy route) are cut at the k-th
place by policy id, as a brute-force ranking cuts them, whenever the
search reached them.

On disk (a directory, usually ``<library>/index``): ``manifest.json``
(format version, parameters, groups, per-file sha256), ``policy_ids.npy``,
``layout_codes.npy``, ``signatures.npy``, ``embeddings.npy`` and two
``group<n>.{mips,cos}.bin`` hnswlib files per group; the manifest is written
last so a half-written index never loads, and every file is checked
against its sha256 before it is read, so hnswlib never reads a damaged file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import numpy as np

from .errors import FileFormatError, LeverError
from .fileio import atomic_write, check_file, check_type, read_json, resolve_inside, sha256_file, write_json
from .objectives import Objective

INDEX_FORMAT = "lever-policy-index"
INDEX_VERSION = 2  # 2: value signatures over the component sets
ALL = "all"


@dataclass(frozen=True)
class Candidate:
    """A retrieved policy: ``score`` is w · ψ(start) for weight queries, cosine similarity otherwise."""

    policy_id: int
    score: float


@dataclass(frozen=True)
class IndexParams:
    """hnswlib parameters: graph degree ``M``, ``ef_construction``, the smallest query ``ef``, the seed."""

    M: int = 16
    ef_construction: int = 200
    ef_min: int = 512
    seed: int = 0

    def __post_init__(self):
        for name in ("M", "ef_construction", "ef_min"):
            if getattr(self, name) < 1:
                raise LeverError(f"index parameter {name} must be >= 1, got {getattr(self, name)}")

    def ef_for(self, group_size: int, k: int) -> int:
        """The query ef for a ``k``-nearest search of a group of ``group_size`` policies."""
        return max(k, self.ef_min)


def build_graph(vectors: np.ndarray, space: str, labels: np.ndarray | None = None,
                params: IndexParams = IndexParams(), threads: int = 1) -> hnswlib.Index:
    """An hnswlib graph over ``vectors`` float (N, dim) in hnswlib ``space`` ("l2", "ip" or "cosine").

    One thread (the default) makes the graph, and so every answer, the same on every run.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    graph = hnswlib.Index(space=space, dim=vectors.shape[1])
    graph.init_index(max_elements=max(1, vectors.shape[0]), ef_construction=params.ef_construction,
                     M=params.M, random_seed=params.seed)
    if vectors.shape[0]:
        graph.add_items(vectors, np.arange(vectors.shape[0]) if labels is None else labels,
                        num_threads=threads)
    return graph


def mips_vectors(signatures: np.ndarray) -> np.ndarray:
    """Signatures (N, C) lifted onto the unit sphere in C+1 dims, float32 (N, C+1), for L2 search."""
    signatures = np.asarray(signatures, dtype=np.float64)
    norms = np.linalg.norm(signatures, axis=1)
    radius = norms.max() if norms.size and norms.max() > 0 else 1.0
    lift = np.sqrt(np.maximum(radius ** 2 - norms ** 2, 0.0))
    return (np.column_stack([signatures, lift]) / radius).astype(np.float32)


def mips_query(weights: np.ndarray) -> np.ndarray:
    """A weight vector (C,) as the matching L2 query of :func:`mips_vectors`, float32 (C+1,)."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.append(weights / np.linalg.norm(weights), 0.0).astype(np.float32)


class PolicyIndex:
    """hnswlib graphs over a set of policies, grouped by layout (see the module docstring).

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
        self._groups = {ALL: np.arange(n)}
        for code, layout_id in enumerate(self.layouts):
            self._groups[layout_id] = np.flatnonzero(self.layout_codes == code)
        if _graphs is None:
            _graphs = {}
            for key, rows in self._groups.items():
                _graphs[key] = (build_graph(mips_vectors(self.signatures[rows]), "l2", rows, params),
                                build_graph(self.embeddings[rows], "cosine", rows, params))
        self._graphs = _graphs

    @classmethod
    def build(cls, policy_ids, layout_ids, signatures, embeddings,
              params: IndexParams = IndexParams()) -> "PolicyIndex":
        """Build every graph (deterministic: one thread, seeded)."""
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

    def _search(self, graph: hnswlib.Index, vector: np.ndarray, k: int, group_size: int) -> np.ndarray:
        # Every candidate the search keeps (ef of them, at most the group), for exact re-scoring.
        ef = max(k, self.params.ef_min)
        graph.set_ef(ef)
        query = vector.astype(np.float32)[None]
        try:
            labels, _ = graph.knn_query(query, k=min(ef, group_size), num_threads=1)
        except RuntimeError:  # the search kept fewer points than asked for: take the k needed
            labels, _ = graph.knn_query(query, k=k, num_threads=1)
        return labels[0].astype(np.int64)

    def _check_weights(self, weights) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.signature_dim,):
            raise LeverError(f"weights have shape {weights.shape}, the index's value signatures "
                             f"have {self.signature_dim} dims")
        return weights

    def _ranked(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[Candidate]:
        """The best ``k`` of ``rows`` by exact ``scores``, best first, ties by policy id."""
        order = np.lexsort((self.policy_ids[rows], -scores))[:k]
        return [Candidate(int(self.policy_ids[rows[i]]), float(scores[i])) for i in order]

    def query(self, objective, k: int = 5, layout_id: str | None = None, rules: str = "study") -> list[Candidate]:
        """The ``k`` policies with the largest predicted return ``W · ψ(start)``, best first.

        objective: an :class:`~lever.objectives.Objective` or a spec such as
        ``"path+gold"``, whose set weights W under ``rules`` are the query;
        layout_id restricts the candidates to one layout. :meth:`rank` takes
        a weight vector over the component sets directly.
        """
        return self.rank(Objective.parse(objective).set_weights(rules), k, layout_id)

    def rank(self, weights: np.ndarray, k: int = 5, layout_id: str | None = None) -> list[Candidate]:
        """:meth:`query` for weights over the component sets float64 (N_SETS,), taken as given."""
        weights = self._check_weights(weights)
        rows = self._rows(k, layout_id)  # checks k and the layout filter before searching
        found = self._search(self._graphs[ALL if layout_id is None else layout_id][0], mips_query(weights), k,
                             rows.size)
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
        extra = int(exclude is not None and exclude in self._row_of
                    and self._row_of[exclude] in set(rows.tolist()))
        if k + extra > rows.size:
            raise LeverError(f"k={k} but only {rows.size - extra} other policies are candidates")
        graph = self._graphs[ALL if layout_id is None else layout_id][1]
        found = self._search(graph, vector, k + extra, rows.size)
        if extra:
            found = found[self.policy_ids[found] != exclude]
        norms = np.linalg.norm(self.embeddings[found], axis=1) * np.linalg.norm(vector)
        dots = self.embeddings[found] @ vector
        scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
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
        groups = []
        for number, key in enumerate(self._groups):
            names = []
            for graph, space in zip(self._graphs[key], ("mips", "cos")):
                name = f"group{number}.{space}.bin"
                tmp = directory / f".{name}.tmp"
                graph.save_index(str(tmp))
                os.replace(tmp, directory / name)
                names.append(name)
            groups.append({"key": key, "mips": names[0], "cos": names[1]})
        for path in sorted(directory.iterdir()):
            if path.name in arrays or path.name.endswith(".bin") and not path.name.startswith("."):
                files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        write_json(directory / "manifest.json", INDEX_FORMAT, INDEX_VERSION, {
            "fingerprint": fingerprint, "layouts": list(self.layouts), "groups": groups,
            "params": {"M": self.params.M, "ef_construction": self.params.ef_construction,
                       "ef_min": self.params.ef_min, "seed": self.params.seed},
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
        manifest = directory / "manifest.json"
        doc = read_json(manifest, INDEX_FORMAT, INDEX_VERSION)
        if fingerprint is not None and check_type(doc.get("fingerprint"), str, f"{manifest}: fingerprint") \
                != fingerprint:
            raise FileFormatError(f"{manifest}: index was built from other data")
        files = _checked_files(manifest, doc)
        paths = {name: resolve_inside(directory, name) for name in files}
        for name, entry in files.items():
            check_file(paths[name], entry)
        n, signature_dim, embedding_dim = (_count(manifest, doc, name, least) for name, least in
                                           (("n_policies", 0), ("signature_dim", 1), ("embedding_dim", 1)))
        arrays = {}
        expected = {"policy_ids": ((n,), "iu"), "layout_codes": ((n,), "iu"),
                    "signatures": ((n, signature_dim), "f"), "embeddings": ((n, embedding_dim), "f")}
        for name, (shape, kinds) in expected.items():
            path = paths.get(f"{name}.npy")
            if path is None:
                raise FileFormatError(f"{manifest}: lists no {name}.npy")
            try:
                arrays[name] = np.load(path)
            except (ValueError, OSError, EOFError) as exc:
                raise FileFormatError(f"{path}: not a readable array ({exc})") from None
            if arrays[name].shape != shape or arrays[name].dtype.kind not in kinds:
                raise FileFormatError(f"{path}: {arrays[name].dtype} {arrays[name].shape}, expected shape {shape}")
        layouts = [check_type(x, str, f"{manifest}: layouts[{i}]")
                   for i, x in enumerate(check_type(doc.get("layouts"), list, f"{manifest}: layouts"))]
        params = check_type(doc.get("params"), dict, f"{manifest}: params")
        if sorted(params) != ["M", "ef_construction", "ef_min", "seed"]:
            raise FileFormatError(f"{manifest}: params: expected M, ef_construction, ef_min and seed")
        try:
            params = IndexParams(**{k: check_type(v, int, f"{manifest}: params.{k}") for k, v in params.items()})
        except FileFormatError:
            raise
        except LeverError as exc:
            raise FileFormatError(f"{manifest}: params: {exc}") from None
        graphs = {}
        for i, group in enumerate(check_type(doc.get("groups"), list, f"{manifest}: groups")):
            where = f"{manifest}: groups[{i}]"
            check_type(group, dict, where)
            pair = []
            for space, dim, field in (("l2", signature_dim + 1, "mips"), ("cosine", embedding_dim, "cos")):
                name = check_type(group.get(field), str, f"{where}.{field}")
                if name not in paths:
                    raise FileFormatError(f"{manifest}: lists no {name}")
                graph = hnswlib.Index(space=space, dim=dim)
                try:
                    graph.load_index(str(paths[name]), max_elements=max(1, n))
                except (RuntimeError, ValueError, OSError) as exc:
                    raise FileFormatError(f"{paths[name]}: not a readable hnswlib index ({exc})") from None
                pair.append(graph)
            graphs[check_type(group.get("key"), str, f"{where}.key")] = tuple(pair)
        codes = arrays["layout_codes"]
        if codes.size and (codes.min() < 0 or codes.max() >= len(layouts)):
            raise FileFormatError(f"{directory / 'layout_codes.npy'}: layout codes out of range")
        try:
            index = cls(arrays["policy_ids"], [layouts[c] for c in codes], arrays["signatures"],
                        arrays["embeddings"], params, _graphs=graphs)
        except LeverError as exc:
            raise FileFormatError(f"{directory}: {exc}") from None
        if set(graphs) != set(index._groups):
            raise FileFormatError(f"{manifest}: groups {sorted(graphs)} do not match the layouts")
        return index


def _checked_files(manifest: Path, doc: dict) -> dict:
    """The manifest's ``files`` (name → ``sha256``, ``bytes``), type-checked."""
    files = check_type(doc.get("files"), dict, f"{manifest}: files")
    for name, entry in files.items():
        where = f"{manifest}: files[{name!r}]"
        check_type(entry, dict, where)
        check_type(entry.get("sha256"), str, f"{where}.sha256")
        check_type(entry.get("bytes"), int, f"{where}.bytes")
    return files


def _count(manifest: Path, doc: dict, name: str, least: int) -> int:
    """An integer field of the manifest, at least ``least``."""
    value = check_type(doc.get(name), int, f"{manifest}: {name}")
    if value < least:
        raise FileFormatError(f"{manifest}: {name}: {value}, expected at least {least}")
    return value
