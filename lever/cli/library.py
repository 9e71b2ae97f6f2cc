"""``lever library build|info|reindex|add``, ``lever search`` and ``lever compose``: policy libraries."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import inspect

from ..compose import OPERATORS
from ..embeddings import EmbeddingConfig
from ..errors import LeverError
from ..evaluation import rollout
from ..library import Q_DTYPES, BuildSpec, PolicyLibrary
from ..library.build import DEFAULTS as BUILD
from ..worlds.objectives import Objective
from ..worlds.tabular import TabularWorld
from ..scoring import SCORINGS
from ..search import compose
from ..strategies import STRATEGIES
from .status import ready_kernels
from .world import BUDGET_NAMES, add_training_setup_options, check_figure_path, env_world


def _cmd_library_build(args: argparse.Namespace) -> int:
    if args.env is not None:
        return _build_env_library(args)
    if args.env_kwargs is not None or args.max_states is not None:
        raise LeverError("--env-kwargs and --max-states go with --env")
    args.objectives = args.objectives or [o.name for o in BUILD.objectives]
    options = dict(setting=args.grid, layout_seeds=args.seeds, budgets=args.budgets, objectives=args.objectives,
                   algorithm=args.algorithm, gamma=args.gamma, train_seed=args.train_seed, episodes=args.episodes,
                   rules=args.rules, q_dtype=args.q_dtype,
                   embedding=EmbeddingConfig(n_states=args.embed_states, cell_kinds=args.cell_kinds))
    BuildSpec(**options)  # bad input fails here, before any compiling or training
    ready_kernels()
    library = PolicyLibrary.build(args.out, jobs=args.jobs, progress=not args.no_progress, **options)
    total = sum(r.train_time for r in library.records)
    print(f"library {library.root}: {len(library)} policies on {len(library.layout_ids)} layouts, "
          f"{total:.2f} s of training")
    return 0


def _build_env_library(args: argparse.Namespace) -> int:
    # ``lever library build --env``: the env read once into a tabular world, its tables stored in the library.
    world = env_world(args)
    objectives = args.objectives or [",".join("1" if i == c else "0" for i in range(world.n_components))
                                     for c in range(world.n_components)]
    ready_kernels(tabular=True)
    library = PolicyLibrary.build(args.out, world=world, env=args.env, env_kwargs=args.env_kwargs,
                                  budgets=args.budgets, objectives=objectives, algorithm=args.algorithm,
                                  gamma=args.gamma, train_seed=args.train_seed, episodes=args.episodes,
                                  q_dtype=args.q_dtype, jobs=args.jobs, progress=not args.no_progress,
                                  embedding=EmbeddingConfig(n_states=args.embed_states))
    total = sum(r.train_time for r in library.records)
    print(f"library {library.root}: {len(library)} policies on {world!r}, {total:.2f} s of training")
    return 0


def _cmd_library_info(args: argparse.Namespace) -> int:
    library = PolicyLibrary.open(args.directory)
    spec = library.spec
    if args.json:
        print(json.dumps({"root": str(library.root), "policies": len(library), "bytes": library.nbytes(),
                          "spec": spec.to_json(), "layouts": [
                              {"layout_id": x, "layout_seed": library.records_for(x)[0].layout_seed,
                               "policies": len(library.records_for(x)),
                               "added": sum(r.source == "added" for r in library.records_for(x)),
                               "support_coverage": library.support_coverage(x)} for x in library.layout_ids]},
                         indent=1, allow_nan=False))
        return 0
    print(f"library {library.root}: {len(library)} policies, {len(library.layout_ids)} layouts, "
          f"{library.nbytes() / 1e6:.2f} MB")
    print(f"setting {spec.setting}, budgets {', '.join(spec.budgets)}, algorithm {spec.algorithm}, "
          f"gamma {spec.gamma}, rules {spec.rules}, train seed {spec.train_seed}, Q {spec.q_dtype}"
          + (f", {spec.episodes} episodes" if spec.episodes else ""))
    print(f"objectives: {', '.join(o.name for o in spec.objectives)}")
    features = len(spec.components) if spec.tabular else spec.embedding.feature_dim
    print(f"embedding: {spec.embedding.n_states} canonical states, gamma {spec.embedding.gamma}, "
          f"{features} features per state")
    for layout_id in library.layout_ids:
        records = library.records_for(layout_id)
        added = sum(r.source == "added" for r in records)
        print(f"layout {layout_id} (seed {records[0].layout_seed}): {len(records)} policies"
              + (f" ({added} added)" if added else "") + ", "
              f"support covers {library.support_coverage(layout_id):.1%} of reachable (state, action) pairs, "
              f"{sum(r.train_time for r in records):.2f} s of training")
    return 0


def _cmd_library_reindex(args: argparse.Namespace) -> int:
    library = PolicyLibrary.open(args.directory)
    index = library.index(rebuild=True)
    print(f"index of {library.root} rebuilt: {len(index)} policies, {len(index.layouts)} layouts")
    return 0


def _load_table(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LeverError(f"{path}: no such file ({what})") from None
    except (OSError, ValueError, EOFError) as exc:
        raise LeverError(f"{path}: not a readable .npy array ({what}: {exc})") from None


def _cmd_library_add(args: argparse.Namespace) -> int:
    q = _load_table(args.q, "the Q table")
    support = None if args.support is None else _load_table(args.support, "the support")
    library = PolicyLibrary.open(args.directory)
    layout_id = _chosen_layout(library, args)
    record = library.add(q, args.objective, layout_id, support=support, budget=args.budget,
                         label=Path(args.q).name if args.label is None else args.label)
    pairs = int(np.count_nonzero(library.tables(record.layout_id).visits[record.row]))
    how = "derived by a greedy replay" if support is None else "given"
    if args.json:
        print(json.dumps({**record.to_json(), "objective": record.objective.name, "support_pairs": pairs,
                          "support": how}, indent=1, allow_nan=False))
        return 0
    print(f"added policy {record.policy_id} ({record.objective}) to layout {record.layout_id} of {library.root}: "
          f"{pairs} (state, action) pairs of support ({how}), greedy return "
          f"{record.greedy_return[record.objective.mask]:.2f}"
          + ("" if record.vector_q else "; no vector Q table, so the max operator (GPI) leaves it out"))
    return 0


def _chosen_layout(library: PolicyLibrary, args: argparse.Namespace) -> str | None:
    """The layout id named by ``--layout``, or that of ``--seed``'s layout, or None for neither."""
    if args.layout is not None or args.seed is None:
        return args.layout
    matches = [x for x in library.layout_ids if library.records_for(x)[0].layout_seed == args.seed]
    if not matches:
        raise LeverError(f"no layout of seed {args.seed} in {args.directory}")
    return matches[0]


def _cmd_search(args: argparse.Namespace) -> int:
    library = PolicyLibrary.open(args.directory)
    objective = Objective.parse(args.objective, library.spec.components)
    layout_id = _chosen_layout(library, args)
    if layout_id is None and len(library.layout_ids) > 1:
        raise LeverError(f"{args.directory} holds {len(library.layout_ids)} layouts; policies of different "
                         f"layouts cannot be ranked together: choose one with --seed or --layout")
    if args.k < 1:
        raise LeverError(f"-k must be >= 1, got {args.k}")
    held = len(library.records_for(layout_id))
    candidates = library.index().query(objective, min(args.k, held), layout_id=layout_id,
                                       rules=library.spec.rules)
    if args.json:
        print(json.dumps([{"rank": rank, "policy_id": c.policy_id, "predicted_return": c.score,
                           "layout_id": library.record(c.policy_id).layout_id,
                           "layout_seed": library.record(c.policy_id).layout_seed,
                           "budget": library.record(c.policy_id).budget,
                           "objective": library.record(c.policy_id).objective.name}
                          for rank, c in enumerate(candidates, 1)], indent=1, allow_nan=False))
        return 0
    print(f"top {len(candidates)} policies for {objective} (predicted return w·psi(start)):")
    print(f"{'rank':>4} {'id':>6} {'predicted':>10}  {'layout':12} {'seed':>4} {'budget':6} objective")
    for rank, candidate in enumerate(candidates, 1):
        record = library.record(candidate.policy_id)
        print(f"{rank:>4} {record.policy_id:>6} {candidate.score:>10.2f}  {record.layout_id:12} "
              f"{record.layout_seed:>4} {record.budget:6} {record.objective}")
    return 0


def _union_support(library: PolicyLibrary, result) -> np.ndarray:
    # bool (S, A): the pairs any member of the composed policy visited.
    tables = library.tables(result.layout_id)
    rows = [tables.policy_ids.tolist().index(p) for p in result.policy_ids]
    return np.asarray(tables.visits)[rows].sum(axis=0) > 0


def _finite(value):
    # Strict JSON: non-finite floats become null.
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cmd_compose(args: argparse.Namespace) -> int:
    check_figure_path(args.show)
    if args.repeats < 0:
        raise LeverError(f"--repeats must be >= 0, got {args.repeats}")
    library = PolicyLibrary.open(args.directory)
    if args.show and library.spec.tabular:
        raise LeverError("a tabular world has no grid to draw; `lever show --library DIR --policy ID` prints "
                         "a policy as a table")
    ready_kernels(tabular=library.spec.tabular)
    options = dict(layout=_chosen_layout(library, args), strategy=args.strategy, k=args.k, width=args.width,
                   operator=args.operator, scoring=args.scoring, plan=args.plan, pool=args.pool)
    result = compose(library, args.objective, **options)
    # The first call loads compiled kernels and warms caches; repeats show the steady cost.
    warm = [compose(library, args.objective, **options).total_s for _ in range(args.repeats)]
    warm_median = float(np.median(warm)) if warm else None
    if args.save:
        print(f"policy: {result.policy.save(args.save)}", file=sys.stderr if args.json else sys.stdout)
    if args.show:
        from ..show import save_policy_figure

        layout = library.layout(result.layout_id)
        route = rollout(layout, result.policy.actions, result.objective, library.spec.rules, record_path=True).path
        path = save_policy_figure(args.show, layout, result.policy.actions, _union_support(library, result), route,
                                  title=f"{result.objective}: {result.strategy}, true return {result.true_return:.1f}")
        print(f"figure: {path}", file=sys.stderr if args.json else sys.stdout)
    world = library.layout(result.layout_id)
    vector, discounted = _vector_returns(world, result, float(library.spec.gamma))
    if args.json:
        print(json.dumps(_finite({**result.to_dict(), "vector_return": vector, "discounted_vector_return": discounted,
                                  "gamma": float(library.spec.gamma), "warm_median_s": warm_median,
                                  "repeats": args.repeats}), indent=1, allow_nan=False))
        return 0
    names = ", ".join(f"{c}: {p} ({library.record(p).objective}, {library.record(p).budget})"
                      for c, p in zip(result.components, result.policy_ids))
    rows = [
        ("strategy", f"{result.strategy}, operator {result.operator}, scoring {result.scoring}"
                     + (", planned on the support" if result.planned else "")),
        ("objective", f"{result.objective} on layout {result.layout_id}"),
        ("policies", names),
        ("combinations tried", f"{result.combinations_tried}"),
        ("offline return", f"{result.offline_return:.2f} (ended at {result.offline_end})"),
        ("true return", f"{result.true_return:.2f} (ended at {result.true_end} after {result.true_steps} steps)"),
        ("return vector", ", ".join(f"{n} {v:.2f}" for n, v in zip(world.component_names, vector))),
        ("support coverage", f"{result.support_coverage:.1%} of (state, action) pairs; "
                             f"{result.route_on_support:.0%} of the route on it"),
        ("first call", f"{result.total_s * 1e3:.2f} ms (retrieval {result.retrieval_s * 1e3:.2f}, "
                       f"composition {result.composition_s * 1e3:.2f}, scoring {result.scoring_s * 1e3:.2f}, "
                       f"planning {result.planning_s * 1e3:.2f}; kernels loaded, caches cold)"),
    ]
    if warm_median is not None:
        rows.append(("warm median", f"{warm_median * 1e3:.2f} ms over {args.repeats} repeats"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _vector_returns(world, result, gamma: float) -> tuple[list[float], list[float] | None]:
    """The greedy episode's return per component in the true env, undiscounted and discounted by the
    library's γ (the latter on a tabular world only; None on the GridWorld, whose rollouts are undiscounted)."""
    if not isinstance(world, TabularWorld):
        return list(result.true_return_vector), None
    episode = rollout(world, result.policy.actions, np.eye(world.n_components)[0], gamma=gamma)
    return [float(v) for v in episode.return_vector], [float(v) for v in episode.discounted_return_vector]


def add_compose_command(sub) -> None:
    """Register ``compose``."""
    compose_cmd = sub.add_parser(
        "compose", help="compose a policy for a new objective from a library, offline",
        epilog="example: lever compose lib16 --seed 0 --objective path+gold+hazard --strategy hybrid -k 3")
    compose_cmd.add_argument("directory", help="library directory")
    compose_cmd.add_argument("--objective", required=True,
                             help="composite objective, e.g. path+gold+hazard, or weights such as 0.3,0.7 for "
                                  "a library built with --env")
    # The defaults are those of lever.compose itself, so the command and the function agree.
    default = {name: p.default for name, p in inspect.signature(compose).parameters.items()}
    compose_cmd.add_argument("--strategy", default=default["strategy"], choices=STRATEGIES,
                             help=f"how many combinations to explore (default: {default['strategy']})")
    compose_cmd.add_argument("-k", type=int, default=default["k"],
                             help=f"candidates per component for hybrid and beam's seed grid (default: {default['k']})")
    compose_cmd.add_argument("--width", type=int, default=default["width"],
                             help=f"beam width (default: {default['width']})")
    compose_cmd.add_argument("--operator", default=default["operator"], choices=OPERATORS,
                             help=f"Q-sum (the study's) or max (GPI) (default: {default['operator']})")
    compose_cmd.add_argument("--scoring", default=default["scoring"], choices=SCORINGS,
                             help=f"offline rollout, successor-feature value or ridge (default: {default['scoring']})")
    compose_cmd.add_argument("--plan", action="store_true",
                             help="also plan on the chosen support; keep the plan if it scores better offline")
    compose_cmd.add_argument("--pool", type=int, default=None,
                             help="cap on candidates per component (default: every relevant policy)")
    compose_cmd.add_argument("--layout", default=None,
                             help="layout id (default: the library's only layout)")
    compose_cmd.add_argument("--seed", type=int, default=None,
                             help="the layout with this layout seed, instead of --layout")
    compose_cmd.add_argument("--repeats", type=int, default=5,
                             help="warm repeats of the search, whose median time is reported beside the "
                                  "first call's (default: 5)")
    compose_cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    compose_cmd.add_argument("--save", default=None, metavar="FILE",
                             help="save the composed policy to FILE (.npz; lever.ComposedPolicy.load reads it)")
    compose_cmd.add_argument("--show", default=None, metavar="FILE",
                             help="draw the composed policy, its union support and route to FILE (.png/.svg/.pdf)")
    compose_cmd.set_defaults(func=_cmd_compose)


def add_commands(sub) -> None:
    """Register ``library build``, ``library info``, ``library reindex``, ``library add``, ``search`` and ``compose``."""
    add_compose_command(sub)
    library = sub.add_parser("library", help="build, inspect, reindex or add to a policy library",
                             epilog="example: lever library build --grid grid16 --seeds 0 1 2 --out lib16")
    library_sub = library.add_subparsers(dest="library_command", required=True)
    _add_library_build_command(library_sub)
    info = library_sub.add_parser("info", help="show what a library holds: sizes, objectives, support coverage",
                                  epilog="example: lever library info lib16 --json")
    info.add_argument("directory", help="library directory")
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=_cmd_library_info)
    reindex = library_sub.add_parser("reindex", help="rebuild a library's search index (when stale, damaged or "
                                                     "missing)", epilog="example: lever library reindex lib16")
    reindex.add_argument("directory", help="library directory")
    reindex.set_defaults(func=_cmd_library_reindex)
    _add_library_add_command(library_sub)

    search = sub.add_parser("search", help="rank a library's policies by predicted return for an objective",
                            epilog="example: lever search lib16 --seed 0 --objective path+gold -k 5")
    search.add_argument("directory", help="library directory")
    search.add_argument("--objective", required=True,
                        help="composite objective, e.g. path+gold or path+gold*0.5")
    search.add_argument("-k", type=int, default=5,
                        help="number of candidates, at most the layout's policies (default: 5)")
    search.add_argument("--json", action="store_true", help="print the ranking as JSON")
    search.add_argument("--layout", default=None, help="only policies of this layout id (default: all)")
    search.add_argument("--seed", type=int, default=None,
                        help="only policies of the layout with this seed (default: all)")
    search.set_defaults(func=_cmd_search)


def _add_library_build_command(library_sub) -> None:
    build = library_sub.add_parser("build", help="train every objective for each layout seed and budget",
                                   epilog="example: lever library build --grid grid16 --seeds 0 1 2 3 4 --out lib16")
    add_training_setup_options(build)
    build.add_argument("--seeds", type=int, nargs="+", default=list(BUILD.layout_seeds), metavar="SEED",
                       help=f"layout seeds (default: {' '.join(map(str, BUILD.layout_seeds))})")
    build.add_argument("--budgets", nargs="+", default=list(BUILD.budgets), choices=BUDGET_NAMES,
                       help=f"training budgets (default: {' '.join(BUILD.budgets)})")
    build.add_argument("--objectives", nargs="+", default=None, metavar="OBJECTIVE",
                       help="objectives to train, e.g. path gold path+gold, or with --env weight vectors such "
                            "as 1,0 0,1 (default: each component alone)")
    build.add_argument("--out", required=True,
                       help="library directory to create or resume")
    build.add_argument("--jobs", type=int, default=None,
                       help="worker processes (default: every core; 1 trains in this process)")
    build.add_argument("--episodes", type=int, default=None,
                       help="override the budget's episode count, for quick builds (default: the budget's)")
    build.add_argument("--q-dtype", default=BUILD.q_dtype, choices=Q_DTYPES,
                       help=f"dtype of the stored Q tables (default: {BUILD.q_dtype})")
    build.add_argument("--embed-states", type=int, default=BUILD.embedding.n_states,
                       help=f"canonical states K of the successor-feature embedding "
                            f"(default: {BUILD.embedding.n_states})")
    build.add_argument("--cell-kinds", action="store_true",
                       help="add cell-kind one-hots to the embedding features")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=_cmd_library_build)


def _add_library_add_command(library_sub) -> None:
    add = library_sub.add_parser(
        "add", help="add a policy given as a Q table (.npy) to a library",
        epilog="example: lever library add lib8 --seed 0 --objective path+gold --q q.npy --support visits.npy")
    add.add_argument("directory", help="library directory")
    add.add_argument("--objective", required=True, help="the objective the table is for, e.g. path+gold")
    add.add_argument("--q", required=True, metavar="FILE",
                     help="Q table (S, A) or vector Q table (S, A, C) as a .npy file")
    add.add_argument("--support", default=None, metavar="FILE",
                     help="visit counts or a bool mask (S, A) as a .npy file (default: derived by replaying "
                          "the greedy policy from the start)")
    add.add_argument("--layout", default=None, help="layout id (default: the library's only layout)")
    add.add_argument("--seed", type=int, default=None, help="the layout with this layout seed, instead of --layout")
    add.add_argument("--budget", default="added", help="text kept as the record's budget (default: added)")
    add.add_argument("--label", default=None, help="text kept in the record (default: the Q file's name)")
    add.add_argument("--json", action="store_true", help="print the new record as JSON")
    add.set_defaults(func=_cmd_library_add)
