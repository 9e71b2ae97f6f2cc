"""The ``lever`` command line.

Each subcommand is a small function ``_cmd_NAME(args)`` registered in
:func:`build_parser`; errors lever raises on purpose are printed as one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import inspect
import sys

from .compose import OPERATORS
from .embeddings import EmbeddingConfig
from .errors import LeverError
from .evaluation import rollout
from .gridworld import PRESETS, Layout
from .library import Q_DTYPES, PolicyLibrary
from .library.build import DEFAULTS as BUILD
from .objectives import COMPONENTS, Objective
from .scoring import SCORINGS
from .search import compose
from .strategies import DEFAULT_LABELS, STRATEGIES
from .training import ALGORITHMS, BUDGETS, TrainConfig, train

#: Budget names of every setting, in the study's order.
BUDGET_NAMES = tuple(dict.fromkeys(name for budgets in BUDGETS.values() for name in budgets))


def _add_training_setup_options(parser: argparse.ArgumentParser) -> None:
    # What every trained policy is defined by, shared by `train` and `library build`.
    parser.add_argument("--grid", default=BUILD.setting, choices=sorted(PRESETS),
                        help=f"layout setting of the study (default: {BUILD.setting})")
    parser.add_argument("--algorithm", default=BUILD.algorithm, choices=ALGORITHMS,
                        help=f"tabular algorithm (default: {BUILD.algorithm})")
    parser.add_argument("--gamma", type=float, default=BUILD.gamma,
                        help=f"discount; 0 is the support-limited regime (default: {BUILD.gamma:g})")
    parser.add_argument("--train-seed", type=int, default=BUILD.train_seed,
                        help=f"training RNG seed (default: {BUILD.train_seed})")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    _add_training_setup_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="layout seed (default: 0)")
    parser.add_argument("--objective", default="path",
                        help="composite objective, e.g. path+gold+hazard (default: path)")
    parser.add_argument("--budget", default=BUDGET_NAMES[0], choices=BUDGET_NAMES,
                        help=f"training budget of the study (default: {BUDGET_NAMES[0]})")


def _cmd_train(args: argparse.Namespace) -> int:
    layout = Layout.generate(args.grid, seed=args.seed)
    config = TrainConfig.from_budget(args.budget, args.grid, algorithm=args.algorithm,
                                     gamma=args.gamma, seed=args.train_seed)
    policy = train(layout, args.objective, config)
    result = rollout(layout, policy, args.objective, record_path=True)
    print(f"layout {args.grid} seed {args.seed} (id {layout.id}):")
    print(layout.to_text())
    print(f"trained {policy.objective} with {config.algorithm}, {config.episodes} episodes, "
          f"gamma={config.gamma}: {policy.wall_time:.3f} s, support {policy.support.mean():.1%} "
          f"of (state, action) pairs")
    print(f"greedy rollout: return {result.ret:.2f}, {result.steps} steps, ended at {result.end}")
    print("return vector: " + ", ".join(f"{name} {value:.2f}" for name, value in
                                        zip(COMPONENTS, result.return_vector)))
    return 0


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    from .sweep import BACKENDS, SWEEP_PRESETS

    parser.add_argument("--preset", choices=sorted(SWEEP_PRESETS),
                        help="built-in sweep: quick (grid8, seconds) or study16 (the study's 16x16 setting); "
                             "the options below override its fields")
    parser.add_argument("--out", required=True, help="sweep directory; re-running the same sweep resumes it")
    parser.add_argument("--grid", nargs="+", dest="settings", choices=sorted(PRESETS), metavar="SETTING",
                        help=f"grid settings: {', '.join(PRESETS)} (default: grid16)")
    parser.add_argument("--budgets", nargs="+", metavar="BUDGET", choices=BUDGET_NAMES,
                        help=f"budgets {' '.join(BUDGET_NAMES)} (default: {BUDGET_NAMES[0]})")
    parser.add_argument("--seeds", nargs="+", type=int, dest="layout_seeds", metavar="SEED",
                        help="layout seeds (default: 0 1 2 3 4)")
    parser.add_argument("--composites", nargs="+",
                        help="composites such as path+gold, or single/double/triple/full "
                             "(default: double triple full)")
    forms = ", ".join(f"{name}:{kind.size.upper()}" if kind.size else name for name, kind in STRATEGIES.items())
    parser.add_argument("--strategies", nargs="+",
                        help=f"{forms} (default: {' '.join(DEFAULT_LABELS)})")
    parser.add_argument("--operator", choices=OPERATORS, help="composition operator (default: sum)")
    parser.add_argument("--gamma", type=float, help="discount of library and baseline (default: 0)")
    parser.add_argument("--planning", action=argparse.BooleanOptionalAction, default=None,
                        help="also run every strategy with planning on the support")
    parser.add_argument("--episodes", type=int,
                        help="override the budget's episode count (quick looks; default: the study's budget)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of cores)")
    parser.add_argument("--backend", choices=BACKENDS, default="process",
                        help="process (local pool, default) or ray")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray backend only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_sweep(result, figures) -> None:
    from .report import format_summary, summarize, write_figures

    print(f"{len(result.config.cells())} cells ({result.computed} computed, "
          f"{result.reused} already done) in {result.wall_time:.1f} s -> {result.csv}")
    print(format_summary(summarize(result.rows)))
    if figures is not None:
        for path in write_figures(result.rows, figures):
            print(f"figure: {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import SweepConfig, run_sweep

    fields = ("settings", "budgets", "layout_seeds", "composites", "strategies", "operator", "gamma",
              "planning", "episodes")
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    config = SweepConfig.preset(args.preset, **overrides) if args.preset else SweepConfig(**overrides)
    try:
        result = run_sweep(config, args.out, jobs=args.jobs, backend=args.backend, address=args.address,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"lever: interrupted; finished cells are kept in {args.out}: run the same command to resume",
              file=sys.stderr)
        return 130
    _print_sweep(result, None)
    print(f"figures: lever report {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from .sweep import SweepConfig, run_sweep

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="lever-demo-"))
    config = SweepConfig.preset("quick")
    print(f"lever demo: the quick sweep ({len(config.cells())} cells: {', '.join(config.settings)}, "
          f"seeds {list(config.layout_seeds)}, {', '.join(config.budgets)}, "
          f"strategies {', '.join(config.strategies)}) into {out}")
    try:
        result = run_sweep(config, out, jobs=args.jobs)
    except KeyboardInterrupt:
        print(f"lever: interrupted; finished cells are kept: `lever demo --out {out}` resumes", file=sys.stderr)
        return 130
    _print_sweep(result, out / "figures")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import format_summary, load_results, summarize, write_figures

    rows = load_results(args.results)
    results = Path(args.results)
    figures = Path(args.figures) if args.figures else (results if results.is_dir() else results.parent) / "figures"
    print(format_summary(summarize(rows)))
    for path in write_figures(rows, figures):
        print(f"figure: {path}")
    return 0


def _cmd_library_build(args: argparse.Namespace) -> int:
    library = PolicyLibrary.build(
        args.output, setting=args.grid, layout_seeds=args.seeds, budgets=args.budgets,
        objectives=args.objectives, algorithm=args.algorithm, gamma=args.gamma,
        train_seed=args.train_seed, jobs=args.jobs, progress=not args.quiet, episodes=args.episodes,
        q_dtype=args.q_dtype, embedding=EmbeddingConfig(n_states=args.embed_states,
                                                        cell_kinds=args.cell_kinds))
    total = sum(r.train_time for r in library.records)
    print(f"library {library.root}: {len(library)} policies on {len(library.layout_ids)} layouts, "
          f"{total:.2f} s of training")
    return 0


def _cmd_library_info(args: argparse.Namespace) -> int:
    library = PolicyLibrary.open(args.directory)
    spec = library.spec
    print(f"library {library.root}: {len(library)} policies, {len(library.layout_ids)} layouts, "
          f"{library.nbytes() / 1e6:.2f} MB")
    print(f"setting {spec.setting}, budgets {', '.join(spec.budgets)}, algorithm {spec.algorithm}, "
          f"gamma {spec.gamma}, train seed {spec.train_seed}, Q {spec.q_dtype}"
          + (f", {spec.episodes} episodes" if spec.episodes else ""))
    print(f"objectives: {', '.join(o.name for o in spec.objectives)}")
    print(f"embedding: {spec.embedding.n_states} canonical states, gamma {spec.embedding.gamma}, "
          f"{spec.embedding.feature_dim} features per state")
    for layout_id in library.layout_ids:
        records = library.records_for(layout_id)
        print(f"layout {layout_id} (seed {records[0].layout_seed}): {len(records)} policies, "
              f"support covers {library.support_coverage(layout_id):.1%} of reachable (state, action) pairs, "
              f"{sum(r.train_time for r in records):.2f} s of training")
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
    objective = Objective.parse(args.objective)
    layout_id = _chosen_layout(library, args)
    candidates = library.index().query(objective, args.k, layout_id=layout_id)
    print(f"top {len(candidates)} policies for {objective} (predicted return w·psi(start)):")
    print(f"{'rank':>4} {'id':>6} {'predicted':>10}  {'layout':12} {'seed':>4} {'budget':6} objective")
    for rank, candidate in enumerate(candidates, 1):
        record = library.record(candidate.policy_id)
        print(f"{rank:>4} {record.policy_id:>6} {candidate.score:>10.2f}  {record.layout_id:12} "
              f"{record.layout_seed:>4} {record.budget:6} {record.objective}")
    return 0


def _cmd_compose(args: argparse.Namespace) -> int:
    import json

    library = PolicyLibrary.open(args.directory)
    result = compose(library, args.objective, layout=_chosen_layout(library, args), strategy=args.strategy, k=args.k,
                     width=args.width, operator=args.operator, scoring=args.scoring, plan=args.plan,
                     pool=args.pool)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
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
        ("return vector", ", ".join(f"{n} {v:.2f}" for n, v in zip(COMPONENTS, result.true_return_vector))),
        ("support coverage", f"{result.support_coverage:.1%} of (state, action) pairs; "
                             f"{result.route_on_support:.0%} of the route on it"),
        ("time", f"{result.total_s * 1e3:.2f} ms (retrieval {result.retrieval_s * 1e3:.2f}, "
                 f"composition {result.composition_s * 1e3:.2f}, scoring {result.scoring_s * 1e3:.2f}, "
                 f"planning {result.planning_s * 1e3:.2f})"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _add_compose_command(sub) -> None:
    compose_cmd = sub.add_parser("compose", help="compose a policy for a new objective from a library, offline")
    compose_cmd.add_argument("directory", help="library directory")
    compose_cmd.add_argument("--objective", required=True, help="composite objective, e.g. path+gold+hazard")
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
    compose_cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    compose_cmd.set_defaults(func=_cmd_compose)


def _add_library_commands(sub) -> None:
    library = sub.add_parser("library", help="build or inspect a policy library")
    library_sub = library.add_subparsers(dest="library_command", required=True)
    _add_library_build_command(library_sub)
    info = library_sub.add_parser("info", help="show what a library holds: sizes, objectives, support coverage")
    info.add_argument("directory", help="library directory")
    info.set_defaults(func=_cmd_library_info)

    search = sub.add_parser("search", help="rank a library's policies by predicted return for an objective")
    search.add_argument("directory", help="library directory")
    search.add_argument("--objective", required=True,
                        help="composite objective, e.g. path+gold or path+gold*0.5")
    search.add_argument("-k", type=int, default=5, help="number of candidates (default: 5)")
    search.add_argument("--layout", default=None, help="only policies of this layout id (default: all)")
    search.add_argument("--seed", type=int, default=None,
                        help="only policies of the layout with this seed (default: all)")
    search.set_defaults(func=_cmd_search)


def _add_library_build_command(library_sub) -> None:
    build = library_sub.add_parser("build", help="train every objective for each layout seed and budget")
    _add_training_setup_options(build)
    build.add_argument("--seeds", type=int, nargs="+", default=list(BUILD.layout_seeds), metavar="SEED",
                       help=f"layout seeds (default: {' '.join(map(str, BUILD.layout_seeds))})")
    build.add_argument("--budgets", nargs="+", default=list(BUILD.budgets), choices=BUDGET_NAMES,
                       help=f"training budgets (default: {' '.join(BUILD.budgets)})")
    build.add_argument("--objectives", nargs="+", default=[o.name for o in BUILD.objectives],
                       metavar="OBJECTIVE",
                       help="objectives to train, e.g. path gold path+gold (default: each component alone)")
    build.add_argument("--output", "-o", required=True, help="library directory to create or resume")
    build.add_argument("--jobs", "-j", type=int, default=None,
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
    build.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    build.set_defaults(func=_cmd_library_build)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lever`` command, one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="lever", description="Inference-time policy reuse for tabular RL: build policy libraries, "
                                  "compose policies offline, and compare them with training from scratch.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the small built-in sweep (grid8, seconds) and print its summary")
    demo.add_argument("--out", default=None,
                      help="sweep directory (default: a new temporary directory); re-running resumes it")
    demo.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of cores)")
    demo.set_defaults(func=_cmd_demo)

    sweep = sub.add_parser("sweep", help="compare composition with training from scratch over a grid of cells")
    _add_sweep_options(sweep)
    sweep.set_defaults(func=_cmd_sweep)

    report = sub.add_parser("report", help="summary table and figures of a sweep's results")
    report.add_argument("results", help="sweep directory or its results.csv")
    report.add_argument("--figures", default=None,
                        help="directory for the PNG figures (default: figures/ beside the results)")
    report.set_defaults(func=_cmd_report)

    train_cmd = sub.add_parser("train", help="train one objective on one layout and roll it out")
    _add_train_options(train_cmd)
    train_cmd.set_defaults(func=_cmd_train)

    _add_library_commands(sub)
    _add_compose_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lever`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LeverError as exc:
        print(f"lever: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
