"""hnswlib retrieval vs brute-force numpy, at growing numbers of policies.

Run: ``python -m pytest benchmarks/bench_index.py --benchmark-only -s``

Two query kinds, as :class:`lever.index.PolicyIndex` runs them, on synthetic
vectors of the library's dimensions:

* weight queries: maximum inner product over value signatures (C = 16, one
  return per component set, searched as L2 over the 17-dim lifted vectors
  of :func:`lever.index.mips_vectors`), at 10³, 10⁴ and 10⁵ vectors (10⁶
  when ``LEVER_BENCH_FULL=1``: its build takes about six minutes on two
  cores);
* similarity queries: cosine over behaviour embeddings (K·D = 16·16 = 256
  dims), at 10⁴ and 10⁵ vectors (10⁶ when ``LEVER_BENCH_FULL=1``: its
  build alone takes many minutes on two cores).

Graphs use M = 16, ef_construction = 100, built on every core; queries run
one at a time on one thread with ef = max(k, 512), the library's setting.
Isotropic random 256-dim vectors are the hardest case for a graph index
(real behaviour embeddings have far lower intrinsic dimension), so the
similarity runs also report ef = 2048. Brute force is numpy: one
matrix-vector product and an ``argpartition`` per query. Per-query latency
of both, their ratio, and recall@10 against brute force are printed and
stored in ``extra_info``; the smallest size where HNSW is faster is where
it starts to win.

The crossover benchmarks time :class:`lever.index.PolicyIndex` itself, its
exact path (``exact_below`` above the size) against its graph path
(that kind's threshold 0; the graph search keeps ef = 512 candidates, which are
re-scored in float64 and ranked, as every query of the library is), on
the vectors of real policies: value signatures and behaviour embeddings
of greedy policies of random Q tables on one grid16 layout, at
2·10³ … 10⁵ policies. They print the ratio at every size and the smallest
size where the graph path is faster, the sizes ``IndexParams.exact_below``
(weight queries) and ``IndexParams.exact_below_similarity`` are set from.
"""

import os
import time
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.conftest import median_seconds
from lever import Layout
from lever.embeddings import embed_policies
from lever.index import IndexParams, PolicyIndex, build_graph, mips_query, mips_vectors
from lever.kernels.constants import N_ACTIONS, N_SETS

K_NEAREST = 10
N_QUERIES = 200
PARAMS = IndexParams(M=16, ef_construction=100, ef_min=512)
FULL = os.environ.get("LEVER_BENCH_FULL") == "1"
MIPS_SIZES = [1_000, 10_000, 100_000] + ([1_000_000] if FULL else [])
COSINE_SIZES = [10_000, 100_000] + ([1_000_000] if FULL else [])
EMBEDDING_DIM = 16 * N_SETS  # K = 16 canonical states, D = N_SETS
CROSSOVER_SIZES = [int(x) for x in
                   os.environ.get("LEVER_BENCH_CROSSOVER_SIZES", "2000,5000,10000,20000,50000,100000").split(",")]
CROSSOVER_QUERIES = 100


def brute_force(vectors, queries, k):
    """Top-k rows per query by score, best first, one query at a time (float32, like the graph)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for i, query in enumerate(queries):
        scores = vectors @ query
        top = np.argpartition(-scores, k)[:k]
        out[i] = top[np.argsort(-scores[top])]
    return out


def hnsw_search(graph, queries, k):
    out = np.empty((len(queries), k), dtype=np.int64)
    for i, query in enumerate(queries):
        out[i] = graph.knn_query(query[None], k=k, num_threads=1)[0][0]
    return out


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def run_comparison(benchmark, kind, n, dim, graph, brute_vectors, graph_queries, brute_queries, build_s,
                   extra_efs=()):
    graph.set_ef(max(K_NEAREST, PARAMS.ef_min))
    found = hnsw_search(graph, graph_queries, K_NEAREST)
    truth = brute_force(brute_vectors, brute_queries, K_NEAREST)
    benchmark.pedantic(hnsw_search, args=(graph, graph_queries, K_NEAREST), rounds=3, iterations=1)
    hnsw_s = benchmark.stats.stats.median / N_QUERIES
    brute_s = median_seconds(lambda: brute_force(brute_vectors, brute_queries, K_NEAREST)) / N_QUERIES
    figures = {"kind": kind, "n_vectors": n, "dim": dim, "k": K_NEAREST, "ef": max(K_NEAREST, PARAMS.ef_min),
               "M": PARAMS.M, "ef_construction": PARAMS.ef_construction, "build_s": build_s,
               "hnsw_query_ms": hnsw_s * 1e3, "numpy_query_ms": brute_s * 1e3,
               "speedup_vs_numpy": brute_s / hnsw_s, "recall_at_10": recall(found, truth)}
    benchmark.extra_info.update(figures)
    line = (f"\n{kind} n={n:>9,} dim={dim}: hnsw {hnsw_s * 1e3:.3f} ms/query, numpy {brute_s * 1e3:.3f} "
            f"ms/query ({brute_s / hnsw_s:.2f}x), recall@10 {figures['recall_at_10']:.4f}, "
            f"build {build_s:.1f} s")
    for ef in extra_efs:
        graph.set_ef(ef)
        found = hnsw_search(graph, graph_queries, K_NEAREST)
        ef_s = median_seconds(lambda: hnsw_search(graph, graph_queries, K_NEAREST)) / N_QUERIES
        benchmark.extra_info[f"ef{ef}_query_ms"] = ef_s * 1e3
        benchmark.extra_info[f"ef{ef}_recall_at_10"] = recall(found, truth)
        benchmark.extra_info[f"ef{ef}_speedup_vs_numpy"] = brute_s / ef_s
        line += (f"; at ef={ef}: {ef_s * 1e3:.3f} ms/query ({brute_s / ef_s:.2f}x), "
                 f"recall@10 {recall(found, truth):.4f}")
    print(line)


@pytest.mark.parametrize("n", MIPS_SIZES)
def test_weight_query_hnsw_vs_numpy(benchmark, n):
    rng = np.random.default_rng(n)
    # Spread like real value signatures: returns of order ±100 per component set, some sets
    # wider than others; the empty set (mask 0) always earns 0.
    signatures = rng.normal(size=(n, N_SETS)) * rng.uniform(20.0, 100.0, size=N_SETS)
    signatures[:, 0] = 0.0
    signatures = signatures.astype(np.float32)
    weights = rng.uniform(-0.2, 1.0, size=(N_QUERIES, N_SETS)).astype(np.float32)
    began = time.perf_counter()
    graph = build_graph(mips_vectors(signatures), "l2", params=PARAMS, threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - began
    lifted_queries = np.stack([mips_query(w) for w in weights])
    run_comparison(benchmark, "weights (MIPS)", n, N_SETS, graph, signatures, lifted_queries, weights, build_s)


@pytest.mark.parametrize("n", COSINE_SIZES)
def test_similarity_query_hnsw_vs_numpy(benchmark, n):
    rng = np.random.default_rng(n + 1)
    embeddings = rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32)
    queries = rng.normal(size=(N_QUERIES, EMBEDDING_DIM)).astype(np.float32)
    began = time.perf_counter()
    graph = build_graph(embeddings, "cosine", params=PARAMS, threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - began
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    run_comparison(benchmark, "similarity (cosine)", n, EMBEDDING_DIM, graph, unit, queries, unit_queries, build_s,
                   extra_efs=(2048,))


@pytest.fixture(scope="module")
def policy_vectors():
    """Value signatures (N, C) and behaviour embeddings (N, 256) of random-Q greedy policies on grid16."""
    layout = Layout.generate("grid16", seed=0)
    rng = np.random.default_rng(0)
    parts = [embed_policies(layout, rng.normal(size=(10_000, layout.n_states, N_ACTIONS)))
             for _ in range(-(-max(CROSSOVER_SIZES) // 10_000))]
    return (np.concatenate([p.value_signatures for p in parts]), np.concatenate([p.behaviour for p in parts]))


def crossover_indexes_for(policy_vectors, field):
    """(n, exact PolicyIndex, PolicyIndex with the graph ``field`` names, its build seconds) at every size."""
    signatures, embeddings = policy_vectors
    built = []
    for n in CROSSOVER_SIZES:
        args = (np.arange(n), ["grid16"] * n, signatures[:n], embeddings[:n])
        exact = IndexParams(exact_below=n + 1, exact_below_similarity=n + 1)
        began = time.perf_counter()
        graphs = PolicyIndex.build(*args, replace(exact, **{field: 0}))  # one thread, as the library builds
        built.append((n, PolicyIndex.build(*args, exact), graphs, time.perf_counter() - began))
    return built


def crossover(benchmark, kind, policy_vectors, field, ask):
    """Per-query time of the exact and the graph path of PolicyIndex at each size; print the crossover."""
    crossover_indexes = crossover_indexes_for(policy_vectors, field)
    rng = np.random.default_rng(5)
    lines, faster = [], None
    for n, exact, graphs, build_s in crossover_indexes:
        embeddings = exact.embeddings
        queries = [ask(rng, embeddings) for _ in range(CROSSOVER_QUERIES)]
        exact_s = median_seconds(lambda: [exact_query(exact, q) for q in queries]) / CROSSOVER_QUERIES
        graph_s = median_seconds(lambda: [exact_query(graphs, q) for q in queries]) / CROSSOVER_QUERIES
        # Tie-aware: the same 10 scores (real signatures tie a lot, and which tied policy a graph
        # search reaches first is not the lowest id's).
        same = np.mean([np.allclose(scores_of(exact, q), scores_of(graphs, q), rtol=1e-12, atol=1e-9)
                        for q in queries])
        benchmark.extra_info[f"n{n}"] = {"exact_ms": exact_s * 1e3, "graph_ms": graph_s * 1e3,
                                         "graph_over_exact_speed": exact_s / graph_s, "build_s": build_s,
                                         "same_answer": float(same)}
        lines.append(f"  n={n:>7,}: exact {exact_s * 1e3:.3f} ms/query, graphs {graph_s * 1e3:.3f} ms/query "
                     f"(graphs {exact_s / graph_s:.2f}x the exact path's speed), same top-10 scores in {same:.0%} "
                     f"of queries, graph build {build_s:.1f} s")
        if faster is None and graph_s < exact_s:
            faster = n
    benchmark.extra_info["graphs_faster_from"] = faster
    # The exact path at the size nearest the default threshold, for pytest-benchmark's own table.
    default = getattr(IndexParams(), field)
    _, exact, _, _ = min(crossover_indexes, key=lambda built: abs(built[0] - default))
    queries = [ask(rng, exact.embeddings) for _ in range(CROSSOVER_QUERIES)]
    benchmark.pedantic(lambda: [exact_query(exact, q) for q in queries], rounds=3, iterations=1)
    print(f"\n{kind}, PolicyIndex exact path vs graph path (k = {K_NEAREST}, ef = 512):\n" + "\n".join(lines)
          + f"\n  graphs faster from n = {faster if faster else 'never, up to ' + str(max(CROSSOVER_SIZES))}; "
          f"IndexParams().{field} = {default}")


def exact_query(index, query):
    """The top 10 of one query through ``index``: a list of Candidates."""
    kind, vector = query
    return index.rank(vector, K_NEAREST) if kind == "weights" else index.similar(vector, K_NEAREST)


def scores_of(index, query):
    return [c.score for c in exact_query(index, query)]


def test_crossover_weight_queries(benchmark, policy_vectors):
    crossover(benchmark, "weight queries (MIPS, 16 dims)", policy_vectors, "exact_below",
              lambda rng, _: ("weights", rng.uniform(-0.2, 1.0, size=N_SETS)))


def test_crossover_similarity_queries(benchmark, policy_vectors):
    crossover(benchmark, "similarity queries (cosine, 256 dims)", policy_vectors, "exact_below_similarity",
              lambda rng, embeddings: ("similarity", embeddings[rng.integers(len(embeddings))]
                                       + rng.normal(scale=0.5, size=embeddings.shape[1])))
