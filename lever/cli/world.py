"""``lever train`` and ``lever show``: one policy on one layout."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..errors import LeverError
from ..evaluation import as_actions, rollout
from ..worlds.grid import PRESETS, Layout
from ..library.build import DEFAULTS as BUILD
from ..worlds.objectives import COMPONENTS, RULES, Objective
from ..training import ALGORITHMS, BUDGETS, TrainConfig, train
from .status import ready_kernels

#: Budget names of every setting, in the study's order.
BUDGET_NAMES = tuple(dict.fromkeys(name for budgets in BUDGETS.values() for name in budgets))


def add_training_setup_options(parser: argparse.ArgumentParser) -> None:
    """Add what every trained policy is defined by (grid, algorithm, gamma, seed, rules) to ``parser``."""
    parser.add_argument("--grid", default=BUILD.setting, choices=sorted(PRESETS),
                        help=f"layout setting of the study (default: {BUILD.setting})")
    parser.add_argument("--algorithm", default=BUILD.algorithm, choices=ALGORITHMS,
                        help=f"tabular algorithm (default: {BUILD.algorithm})")
    parser.add_argument("--gamma", type=float, default=BUILD.gamma,
                        help=f"discount; 0 is the support-limited regime (default: {BUILD.gamma:g})")
    parser.add_argument("--train-seed", type=int, default=BUILD.train_seed,
                        help=f"training RNG seed (default: {BUILD.train_seed})")
    parser.add_argument("--rules", default="study", choices=RULES,
                        help="reward rules: the study's (objectives are sets of components) or linear "
                             "(weighted objectives, w·r) (default: study)")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    add_training_setup_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="layout seed (default: 0)")
    parser.add_argument("--objective", default="path",
                        help="composite objective, e.g. path+gold+hazard (default: path)")
    parser.add_argument("--budget", default=BUDGET_NAMES[0], choices=BUDGET_NAMES,
                        help=f"training budget of the study (default: {BUDGET_NAMES[0]})")
    parser.add_argument("--episodes", type=int, default=None,
                        help="override the budget's episode count (default: the budget's)")


def _train_from_args(args: argparse.Namespace, figure: str | None):
    # The one policy both commands train and roll out; a bad figure name fails before training.
    check_figure_path(figure)
    layout = Layout.generate(args.grid, seed=args.seed)
    overrides = {"episodes": args.episodes} if args.episodes is not None else {}
    config = TrainConfig.from_budget(args.budget, args.grid, algorithm=args.algorithm,
                                     gamma=args.gamma, seed=args.train_seed, rules=args.rules, **overrides)
    Objective.parse(args.objective).set_weights(args.rules)  # refused before any compiling or training
    ready_kernels()
    policy = train(layout, args.objective, config)
    result = rollout(layout, policy, args.objective, args.rules, record_path=True)
    # Status lines go to stderr when stdout carries JSON.
    status = sys.stderr if getattr(args, "json", False) else sys.stdout
    if figure:
        print(f"figure: {_save_figure(figure, layout, policy, result, config)}", file=status)
    if getattr(args, "save", None):
        print(f"policy: {policy.save(args.save)}", file=status)
    return layout, config, policy, result


def _cmd_train(args: argparse.Namespace) -> int:
    layout, config, policy, result = _train_from_args(args, args.show)
    if args.json:
        print(json.dumps({"layout_id": layout.id, "grid": args.grid, "seed": args.seed,
                          "objective": policy.objective.name, "rules": args.rules, "episodes": config.episodes,
                          "train_s": policy.wall_time, "return": result.ret, "steps": result.steps,
                          "end": result.end, "return_vector": dict(zip(COMPONENTS, result.return_vector)),
                          "support": float(policy.support.mean())}, indent=1, allow_nan=False))
        return 0
    print(f"layout {args.grid} seed {args.seed} (id {layout.id}):")
    print(layout.to_text())
    print(f"trained {policy.objective} with {config.algorithm}, {config.episodes} episodes, "
          f"gamma={config.gamma}: {policy.wall_time:.3f} s, support {policy.support.mean():.1%} "
          f"of (state, action) pairs")
    print(f"greedy rollout: return {result.ret:.2f}, {result.steps} steps, ended at {result.end}")
    print("return vector: " + ", ".join(f"{name} {value:.2f}" for name, value in
                                        zip(COMPONENTS, result.return_vector)))
    return 0


def _save_figure(path: str, layout: Layout, policy, result, config: TrainConfig) -> "Path":
    from pathlib import Path

    from ..show import save_policy_figure

    title = (f"{policy.objective} ({config.rules} rules), {config.algorithm}, {config.episodes} episodes: "
             f"{result.end} after {result.steps} steps, return {result.ret:.1f}")
    return save_policy_figure(Path(path), layout, policy.greedy_actions, policy.visits, result.path, title=title)


def check_figure_path(path: str | None) -> None:
    """LeverError unless ``path`` (if given) names a PNG, SVG or PDF file."""
    from pathlib import Path

    from ..show import FIGURE_FORMATS

    if path is not None and Path(path).suffix.lower() not in FIGURE_FORMATS:  # before any training
        raise LeverError(f"figure file must end in one of {', '.join(FIGURE_FORMATS)}, got {path!r}")


def add_commands(sub) -> None:
    """Register ``train`` and ``show``."""
    train_cmd = sub.add_parser(
        "train", help="train one objective on one layout and roll it out",
        epilog="example: lever train --grid grid16 --seed 0 --objective path+gold --show policy.png")
    _add_train_options(train_cmd)
    train_cmd.add_argument("--show", default=None, metavar="FILE",
                           help="also draw the policy (arrows, support, route) to FILE (.png, .svg, .pdf)")
    train_cmd.add_argument("--save", default=None, metavar="FILE",
                           help="also save the trained policy (Q table, support, snapshots) to FILE (.npz); "
                                "lever.TrainedPolicy.load reads it")
    train_cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    train_cmd.set_defaults(func=_cmd_train)

    show = sub.add_parser(
        "show", help="draw a policy to an image: one trained now, or a library's (--library, --policy)",
        epilog="example: lever show --grid grid8 --seed 0 --objective path+gold --out policy.svg")
    _add_train_options(show)
    show.add_argument("--library", default=None, metavar="DIR",
                      help="draw policy --policy of this library instead of training one")
    show.add_argument("--policy", type=int, default=None, metavar="ID", help="policy id in --library")
    show.add_argument("--out", required=True, help="image file; .png, .svg or .pdf picks the format")
    show.set_defaults(func=_cmd_show)


def _cmd_show(args: argparse.Namespace) -> int:
    if args.library is None and args.policy is None:
        _train_from_args(args, args.out)
        return 0
    if args.library is None or args.policy is None:
        raise LeverError("--library and --policy go together: the policy id is one of that library's")
    check_figure_path(args.out)
    from ..library import PolicyLibrary
    from ..show import save_policy_figure

    library = PolicyLibrary.open(args.library)
    record = library.record(args.policy)
    layout = library.layout(record.layout_id)
    tables = library.tables(record.layout_id)
    q, visits = np.asarray(tables.q[record.row]), np.asarray(tables.visits[record.row])
    result = rollout(layout, q, record.objective, library.spec.rules, record_path=True)
    title = (f"policy {record.policy_id}: {record.objective} ({record.source}, {record.budget}), "
             f"{result.end} after {result.steps} steps, return {result.ret:.1f}")
    path = save_policy_figure(args.out, layout, as_actions(q, layout.n_states), visits, result.path, title=title)
    print(f"figure: {path}")
    return 0
