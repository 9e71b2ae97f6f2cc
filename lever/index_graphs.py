"""hnswlib graphs for :class:`lever.index.PolicyIndex`: their parameters, builds and searches.

A group of at least :attr:`IndexParams.exact_below` policies gets a graph
for weight queries: L2 over its distinct value signatures lifted for
maximum inner product (:func:`mips_vectors`, :func:`mips_query`,
:class:`DistinctSignatures`); one of at least
:attr:`IndexParams.exact_below_similarity` gets a cosine graph over its
behaviour embeddings. A smaller group gets none: scoring every member in
numpy is faster than walking a graph there (``benchmarks/bench_index.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import hnswlib
import numpy as np

from .errors import LeverError


@dataclass(frozen=True)
class IndexParams:
    """How a :class:`~lever.index.PolicyIndex` searches.

    ``exact_below``: groups of fewer policies answer weight queries
    exactly in numpy and get no MIPS graph; ``exact_below_similarity``:
    likewise for similarity queries and the cosine graph (0: every group
    gets graphs). The two differ because numpy scores 16-dim signatures
    far faster than 256-dim embeddings. hnswlib parameters of the graphs:
    degree ``M`` of the MIPS graphs and ``M_similarity`` of the cosine
    ones, ``ef_construction``, the smallest query ``ef`` ``ef_min`` (see
    :meth:`ef_for`), the build ``seed``. The defaults are the measured
    settings that reach recall@10 ≥ 0.99 at 10⁶ vectors
    (``benchmarks/bench_index_recall.py``): lifted 17-dim MIPS needs the
    denser graph (M = 16 stops at 0.978 at ef 2048), cosine over real
    behaviour embeddings reaches 0.9965 at M = 16, ef = 512.
    """

    M: int = 32
    M_similarity: int = 16
    ef_construction: int = 200
    ef_min: int = 512
    # The largest measured sizes where the exact path was still faster (bench_index.py, crossover):
    # graphs won from 5·10⁴ policies for weight queries and from 10⁴ for similarity queries.
    exact_below: int = 20_000
    exact_below_similarity: int = 5_000
    seed: int = 0

    def __post_init__(self):
        for name in ("M", "M_similarity", "ef_construction", "ef_min", "exact_below", "exact_below_similarity",
                     "seed"):
            if not isinstance(getattr(self, name), (int, np.integer)) or isinstance(getattr(self, name), bool):
                raise LeverError(f"index parameter {name} must be an integer, got {getattr(self, name)!r}")
        for name in ("M", "M_similarity", "ef_construction", "ef_min"):
            if getattr(self, name) < 1:
                raise LeverError(f"index parameter {name} must be >= 1, got {getattr(self, name)}")
        for name in ("exact_below", "exact_below_similarity", "seed"):
            if getattr(self, name) < 0:
                raise LeverError(f"index parameter {name} must be >= 0, got {getattr(self, name)}")

    def exact(self, group_size: int) -> tuple[bool, bool]:
        """Whether a group of ``group_size`` policies answers (weight, similarity) queries exactly, without
        that kind's graph."""
        return group_size < self.exact_below, group_size < self.exact_below_similarity

    def ef_for(self, group_size: int, k: int, similarity: bool = False) -> int:
        """The query ef for a ``k``-nearest search of a graph over ``group_size`` vectors.

        Cosine graphs: max(k, ef_min). MIPS graphs: ef also grows in
        proportion to the group, to 2048 at 10⁶ distinct signatures, where
        ef 1024 measured recall@10 0.988 and ef 2048 0.994 (M = 32).
        """
        grown = 0 if similarity else -(-2048 * int(group_size) // 1_000_000)
        return max(k, self.ef_min, grown)

    def as_dict(self) -> dict:
        """The parameters as the JSON object an index manifest stores."""
        return {"M": self.M, "M_similarity": self.M_similarity, "ef_construction": self.ef_construction,
                "ef_min": self.ef_min, "exact_below": self.exact_below,
                "exact_below_similarity": self.exact_below_similarity, "seed": self.seed}


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


def load_graph(path, space: str, dim: int, max_elements: int) -> hnswlib.Index:
    """A graph written by ``hnswlib.Index.save_index``; hnswlib's own errors pass through."""
    graph = hnswlib.Index(space=space, dim=dim)
    graph.load_index(str(path), max_elements=max(1, max_elements))
    return graph


def search_graph(graph: hnswlib.Index, vector: np.ndarray, k: int, ef: int, group_size: int) -> np.ndarray:
    """Labels int64 of every candidate a search with ``ef`` keeps (at most ``group_size``, at least ``k``).

    All of them, not only the best ``k``, so the caller re-scores them exactly.
    """
    graph.set_ef(ef)
    query = np.asarray(vector, dtype=np.float32)[None]
    try:
        labels, _ = graph.knn_query(query, k=min(ef, group_size), num_threads=1)
    except RuntimeError:  # the search kept fewer points than asked for: take the k needed
        labels, _ = graph.knn_query(query, k=k, num_threads=1)
    return labels[0].astype(np.int64)


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


class DistinctSignatures:
    """The distinct value signatures of a group, the points of its MIPS graph.

    Many policies share a greedy route from the start, so a group holds
    few distinct signatures; a graph over copies of one point links them
    to each other instead of to the rest, and its searches miss. So the
    graph holds each signature once (label d: row d of ``distinct``, float64
    (U, C)), and a search's points expand here into their policies.
    ``members`` int64 (n,): the group's rows sorted by (signature, policy id).
    """

    def __init__(self, signatures: np.ndarray, rows: np.ndarray, policy_ids: np.ndarray):
        self.distinct, inverse = np.unique(signatures[rows], axis=0, return_inverse=True)
        inverse = inverse.ravel()  # numpy 2.0 and 2.1 give it the input's number of dims
        self.members = rows[np.lexsort((policy_ids[rows], inverse))]
        self.counts = np.bincount(inverse, minlength=self.distinct.shape[0])
        self.starts = np.cumsum(self.counts) - self.counts

    def expand(self, found: np.ndarray, k: int) -> np.ndarray:
        """Rows int64 of the policies of the distinct signatures ``found``, the ``k`` lowest ids of each.

        Policies of one signature tie, so no more than the ``k`` lowest ids of one can be in a top k.
        """
        take = np.minimum(self.counts[found], k)
        offsets = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
        return self.members[np.repeat(self.starts[found], take) + offsets]
