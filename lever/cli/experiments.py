"""``lever reproduce``, ``lever demo``, ``lever sweep`` and ``lever report``: experiments."""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from ..compose import OPERATORS
from ..worlds.grid import PRESETS
from ..worlds.objectives import RULES
from ..protocol import MODES
from ..reproduction.library import SELECTIONS
from ..strategies import DEFAULT_LABELS, STRATEGIES
from ..sweep.backends import BACKENDS
from .status import ready_kernels
from .world import BUDGET_NAMES


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    from ..sweep import SWEEP_PRESETS

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
    parser.add_argument("--rules", choices=RULES, default=None,
                        help="reward rules of libraries, baseline and searches: study (composites are sets) "
                             "or linear (weighted composites, w·r) (default: study)")
    parser.add_argument("--gamma", type=float, help="discount of library and baseline (default: 0)")
    parser.add_argument("--planning", action=argparse.BooleanOptionalAction, default=None,
                        help="also run every strategy with planning on the support")
    parser.add_argument("--episodes", type=int,
                        help="override the budget's episode count (quick looks; default: the study's budget)")
    _add_run_options(parser)


def _print_sweep(result, figures) -> None:
    from ..report import format_summary, load_configuration, summarize, write_figures

    print(f"{len(result.config.cells())} cells ({result.computed} computed, "
          f"{result.reused} already done) in {result.wall_time:.1f} s -> {result.csv}")
    print(format_summary(summarize(result.rows, load_configuration(result.out))))
    if figures is not None:
        for path in write_figures(result.rows, figures):
            print(f"figure: {path}")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import SweepConfig, run_sweep

    fields = ("settings", "budgets", "layout_seeds", "composites", "strategies", "operator", "gamma",
              "planning", "episodes", "rules")
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    config = SweepConfig.preset(args.preset, **overrides) if args.preset else SweepConfig(**overrides)
    ready_kernels()
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


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report import (format_summary, load_configuration, load_results, results_file, summarize,
                          summary_json, write_figures)

    rows = load_results(args.results)
    summary = summarize(rows, load_configuration(args.results))
    results = results_file(args.results)
    if args.json:  # stdout holds the JSON document only; figures only when asked for
        paths = write_figures(rows, args.out) if args.out else []
        print(summary_json(summary, {"results": str(results), "figures": [str(p) for p in paths]}))
        return 0
    figures = Path(args.out) if args.out else results.parent / "figures"
    print(format_summary(summary))
    for path in write_figures(rows, figures):
        print(f"figure: {path}")
    return 0


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    # How a long run executes: workers, backend, progress.
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of cores)")
    parser.add_argument("--backend", choices=BACKENDS, default="process",
                        help="process (local pool, default) or ray")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray backend only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _print_reproduction(result) -> None:
    from ..reproduction.report import protocol_table

    print(protocol_table(result.rows))
    print(f"\n{len(result.config.cells)} cells ({result.resumed_cells} already done) in "
          f"{result.wall_time_s:.1f} s: {result.out / 'results.csv'}, {result.report}, {result.out / 'figures'}")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduction import ReproduceConfig, reproduce

    config = ReproduceConfig(setting=args.grid, seeds=tuple(args.seeds), budgets=tuple(args.budgets),
                             modes=tuple(args.modes), rules=args.rules, episodes=args.episodes,
                             ablations=not args.no_ablations, selection=args.selection, operator=args.operator)
    ready_kernels()
    result = reproduce(config, args.out, jobs=args.jobs, backend=args.backend, address=args.address,
                       progress=not args.no_progress)
    _print_reproduction(result)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from ..reproduction import ReproduceConfig, reproduce

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="lever-demo-"))
    config = ReproduceConfig(setting="grid8", seeds=(0, 1), budgets=("X1",))
    print(f"lever demo: the study's protocol on {config.setting}, seeds {list(config.seeds)}, "
          f"budget {', '.join(config.budgets)} into {out}")
    ready_kernels()
    result = reproduce(config, out, jobs=args.jobs, progress=True)
    _print_reproduction(result)
    return 0


def add_commands(sub) -> None:
    """Register ``demo``, ``reproduce``, ``sweep`` and ``report``."""
    demo = sub.add_parser("demo", help="a small reproduction of the study (grid8, 2 seeds, X1), "
                                       "its table beside the study's",
                          epilog="example: lever demo --out /tmp/demo")
    demo.add_argument("--out", default=None,
                      help="output directory (default: a new temporary directory); re-running resumes it")
    demo.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of cores)")
    demo.set_defaults(func=_cmd_demo)

    repro = sub.add_parser(
        "reproduce", help="run the study's protocol end to end and report it beside the published numbers",
        epilog="example: lever reproduce --grid grid16 --seeds 0 1 2 3 4 --budgets X1 X5 X10 --out repro16")
    repro.add_argument("--grid", default="grid16", choices=sorted(PRESETS), help="spec set (default: grid16)")
    repro.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], metavar="SEED",
                       help="layout seeds (default: 0 1 2 3 4)")
    repro.add_argument("--budgets", nargs="+", default=["X1", "X5", "X10"], choices=BUDGET_NAMES,
                       help="budgets (default: X1 X5 X10)")
    repro.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                       help=f"decomposition modes (default: {' '.join(MODES)})")
    repro.add_argument("--rules", default="study", choices=RULES, help="reward rules (default: study)")
    repro.add_argument("--episodes", type=int, default=None,
                       help="override the budgets' episode counts (quick looks; default: the study's)")
    repro.add_argument("--no-ablations", action="store_true", help="skip the coverage ablations (finding 2)")
    repro.add_argument("--selection", default="study", choices=SELECTIONS,
                       help="library entries: the study's snapshot selection, or every snapshot (beyond the "
                            "study) (default: study)")
    repro.add_argument("--operator", default="sum", choices=OPERATORS,
                       help="composition: the study's Q-sum, or max (GPI, beyond the study) (default: sum)")
    repro.add_argument("--out", required=True, help="output directory; re-running the same command resumes it")
    _add_run_options(repro)
    repro.set_defaults(func=_cmd_reproduce)

    sweep = sub.add_parser("sweep", help="compare composition with training from scratch over a grid of cells",
                           epilog="example: lever sweep --preset quick --out sweeps/quick")
    _add_sweep_options(sweep)
    sweep.set_defaults(func=_cmd_sweep)

    report = sub.add_parser("report", help="summary table and figures of a sweep's results",
                            epilog="example: lever report sweeps/quick")
    report.add_argument("results", help="sweep directory or its results.csv")
    report.add_argument("--out", default=None,
                        help="directory for the figures, each as PNG, SVG and PDF (default: figures/ beside "
                             "the results; with --json, none unless given)")
    report.add_argument("--json", action="store_true",
                        help="print the summary as strict JSON (undefined values as null) instead of the table")
    report.set_defaults(func=_cmd_report)
