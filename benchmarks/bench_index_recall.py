"""Recall of the hnswlib graphs at 10⁶ vectors: a table over (M, ef_construction, query ef).

Run: ``LEVER_BENCH_FULL=1 OPENBLAS_NUM_THREADS=1 python -m pytest benchmarks/bench_index_recall.py
--benchmark-only -s`` (``LEVER_BENCH_WEIGHT_BUILDS`` / ``LEVER_BENCH_SIMILARITY_BUILDS``, e.g.
``"16x200,32x200"``, choose the (M, ef_construction) graphs; one BLAS thread makes the numpy
brute force, like each graph search, one thread)
(skipped without ``LEVER_BENCH_FULL=1``: every graph over 10⁶ vectors takes
minutes to build on two cores, the 256-dim ones many minutes).

Four data sets of 10⁶ vectors, each with 200 queries:

* ``weights/gaussian``: value signatures drawn like ``bench_index.py``'s
  (C = 16 sets, returns of order ±100, the empty set 0), searched as L2 over
  the 17-dim lifted vectors of :func:`lever.index.mips_vectors`; queries
  are set weights drawn from [-0.2, 1];
* ``weights/policies``: real value signatures ψ(start) of 10⁶ greedy
  policies of random Q tables on one grid16 layout (very many tied:
  distinct routes from the start are few), same queries; the graph holds
  each distinct signature once, as the library's does;
* ``similarity/isotropic``: Gaussian 256-dim vectors, the hardest case for
  any graph index (no low-dimensional structure to follow);
* ``similarity/policies``: real behaviour embeddings (K·D = 16·16 = 256
  dims) of the same 10⁶ policies; queries are embeddings of 200 other
  random-Q policies of the layout. Their spectrum is low-dimensional:
  about 28 principal directions hold 99 % of the variance.

Each graph is built once per (M, ef_construction) on every core, then
searched at every query ef, one query at a time on one thread. recall@10 is
tie-aware: the share of the 10 answers whose exact score reaches the true
10th-best score (so any of several tied policies counts), against
brute force in float64. Rows are printed as they finish, so a run cut
short still reports what it measured; the row the library's own setting
(:class:`lever.index.IndexParams` defaults, :meth:`~lever.index.IndexParams.ef_for`)
would use is marked ``<- library default``.
"""

import os
import time

import numpy as np
import pytest

from lever import Layout
from lever.embeddings import embed_policies
from lever.index import IndexParams, build_graph, mips_query, mips_vectors
from lever.kernels.constants import N_ACTIONS, N_SETS

FULL = os.environ.get("LEVER_BENCH_FULL") == "1"
N = int(os.environ.get("LEVER_BENCH_RECALL_N", 1_000_000))
K_NEAREST = 10
N_QUERIES = 200
N_BRUTE_TIMED = 20


def builds(variable, default):
    """(M, ef_construction) pairs from an environment variable such as ``"16x200,32x200"``."""
    return [tuple(int(x) for x in pair.split("x")) for pair in os.environ.get(variable, default).split(",")]


# (M, ef_construction) builds, in the order they run, and the query efs tried on each.
WEIGHT_BUILDS = builds("LEVER_BENCH_WEIGHT_BUILDS", "16x200,32x200")
SIMILARITY_BUILDS = builds("LEVER_BENCH_SIMILARITY_BUILDS", "16x200")
WEIGHT_EFS = [256, 512, 1024, 2048, 4096]
SIMILARITY_EFS = [128, 512, 1024, 2048, 4096]

pytestmark = pytest.mark.skipif(not FULL, reason="10^6-vector graphs: set LEVER_BENCH_FULL=1")


def policy_vectors(n, n_queries, seed=0, batch=8192):
    """Value signatures (n, C), behaviour embeddings (n, 256) of random-Q greedy policies on grid16,
    and the behaviour embeddings of ``n_queries`` more policies (the queries)."""
    layout = Layout.generate("grid16", seed=0)
    rng = np.random.default_rng(seed)
    total = n + n_queries
    signatures = np.empty((total, N_SETS), dtype=np.float32)
    embeddings = np.empty((total, 16 * N_SETS), dtype=np.float32)
    for start in range(0, total, batch):
        stop = min(total, start + batch)
        features = embed_policies(layout, rng.normal(size=(stop - start, layout.n_states, N_ACTIONS)))
        signatures[start:stop] = features.value_signatures
        embeddings[start:stop] = features.behaviour
    return signatures[:n], embeddings[:n], embeddings[n:]


def true_kth_scores(vectors, queries, k, chunk=65_536):
    """The exact k-th best score of every query (float64), and all scores of the first query rows."""
    best = np.full((len(queries), k), -np.inf)
    q = queries.astype(np.float64)
    for start in range(0, len(vectors), chunk):
        scores = q @ vectors[start:start + chunk].astype(np.float64).T
        both = np.concatenate([best, scores], axis=1)
        best = -np.sort(-both, axis=1)[:, :k] if both.shape[1] <= 4 * k else \
            -np.sort(-np.partition(both, both.shape[1] - k, axis=1)[:, -k:], axis=1)
    return best[:, k - 1]


def brute_force_ms(vectors, queries, k):
    """Per-query milliseconds of numpy brute force (matrix-vector product + argpartition), float32."""
    began = time.perf_counter()
    for query in queries[:N_BRUTE_TIMED]:
        scores = vectors @ query
        top = np.argpartition(-scores, k)[:k]
        top[np.argsort(-scores[top])]
    return (time.perf_counter() - began) / N_BRUTE_TIMED * 1e3


def measure(name, graph_vectors, graph_queries, score_vectors, score_queries, space, builds, efs):
    """Build each (M, ef_construction) graph, search it at each ef, print one row per ef."""
    kth = true_kth_scores(score_vectors, score_queries, K_NEAREST)
    numpy_ms = brute_force_ms(score_vectors.astype(np.float32), score_queries.astype(np.float32), K_NEAREST)
    default, similarity = IndexParams(), space == "cosine"
    default_m = default.M_similarity if similarity else default.M
    default_ef = default.ef_for(len(graph_vectors), K_NEAREST, similarity)
    print(f"\n{name}: n={len(graph_vectors):,} dim={graph_vectors.shape[1]}, numpy brute force "
          f"{numpy_ms:.2f} ms/query; library default M={default_m} ef_construction="
          f"{default.ef_construction} ef={default_ef}", flush=True)
    rows = []
    for M, efc in builds:
        params = IndexParams(M=M, ef_construction=efc)
        began = time.perf_counter()
        graph = build_graph(graph_vectors, space, params=params, threads=os.cpu_count() or 1)
        build_s = time.perf_counter() - began
        for ef in efs:
            graph.set_ef(ef)
            began = time.perf_counter()
            found = np.stack([graph.knn_query(q[None], k=K_NEAREST, num_threads=1)[0][0] for q in graph_queries])
            query_ms = (time.perf_counter() - began) / len(graph_queries) * 1e3
            scores = np.einsum("qkd,qd->qk", score_vectors[found].astype(np.float64),
                               score_queries.astype(np.float64))
            hit = scores >= kth[:, None] - 1e-9 * np.maximum(1.0, np.abs(kth[:, None]))
            recall = float(hit.mean())
            mark = "  <- library default" if (M, efc, ef) == (default_m, default.ef_construction, default_ef) else ""
            print(f"  M={M:>2} ef_construction={efc:>3} ef={ef:>4}: recall@10 {recall:.4f}, "
                  f"{query_ms:.3f} ms/query ({numpy_ms / query_ms:.2f}x numpy), build {build_s:.0f} s{mark}",
                  flush=True)
            rows.append({"M": M, "ef_construction": efc, "ef": ef, "recall_at_10": recall,
                         "query_ms": query_ms, "build_s": build_s, "numpy_ms": numpy_ms})
        del graph
    return rows


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)


@pytest.fixture(scope="module")
def policies():
    """Signatures, embeddings and query embeddings of 10⁶ (+200) random-Q policies (see policy_vectors)."""
    began = time.perf_counter()
    signatures, embeddings, queries = policy_vectors(N, N_QUERIES)
    print(f"\nembedded {N + N_QUERIES:,} random-Q policies in {time.perf_counter() - began:.0f} s; "
          f"{len(np.unique(signatures, axis=0)):,} distinct value signatures", flush=True)
    return signatures, embeddings, queries


def weight_queries():
    weights = np.random.default_rng(7).uniform(-0.2, 1.0, size=(N_QUERIES, N_SETS))
    return weights, np.stack([mips_query(w) for w in weights])


# In the order they run: the realistic cases first.
def test_recall_weights_policies(benchmark, policies):
    weights, lifted = weight_queries()
    # The library's graph holds each distinct signature once (tied policies share one point).
    distinct = np.unique(policies[0], axis=0)
    benchmark.extra_info["table"] = measure("weights/policies (distinct)", mips_vectors(distinct), lifted, distinct,
                                            weights, "l2", [(IndexParams().M, IndexParams().ef_construction)],
                                            WEIGHT_EFS)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_recall_similarity_policies(benchmark, policies):
    _, embeddings, queries = policies
    benchmark.extra_info["table"] = measure("similarity/policies", embeddings, queries, unit(embeddings),
                                            unit(queries), "cosine", SIMILARITY_BUILDS, SIMILARITY_EFS)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_recall_weights_gaussian(benchmark):
    weights, lifted = weight_queries()
    rng = np.random.default_rng(8)
    signatures = (rng.normal(size=(N, N_SETS)) * rng.uniform(20.0, 100.0, size=N_SETS)).astype(np.float32)
    signatures[:, 0] = 0.0
    benchmark.extra_info["table"] = measure("weights/gaussian", mips_vectors(signatures), lifted, signatures, weights,
                                            "l2", WEIGHT_BUILDS, WEIGHT_EFS)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_recall_similarity_isotropic(benchmark):
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(N, 16 * N_SETS)).astype(np.float32)
    queries = rng.normal(size=(N_QUERIES, 16 * N_SETS)).astype(np.float32)
    benchmark.extra_info["table"] = measure("similarity/isotropic", vectors, queries, unit(vectors), unit(queries),
                                            "cosine", SIMILARITY_BUILDS, SIMILARITY_EFS)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
