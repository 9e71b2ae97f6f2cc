"""The ``lever`` command line.

Each subcommand is a small function ``_cmd_NAME(args)`` registered in
:func:`build_parser`; errors lever raises on purpose are printed as one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import LeverError
from .evaluation import rollout
from .gridworld import PRESETS, Layout
from .training import ALGORITHMS, TrainConfig, train


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid", default="grid16", choices=sorted(PRESETS),
                        help="layout setting of the study (default: grid16)")
    parser.add_argument("--seed", type=int, default=0, help="layout seed (default: 0)")
    parser.add_argument("--objective", default="path",
                        help="composite objective, e.g. path+gold+hazard (default: path)")
    parser.add_argument("--budget", default="X1", choices=["X1", "X5", "X10"],
                        help="training budget of the study (default: X1)")
    parser.add_argument("--algorithm", default="sarsa", choices=ALGORITHMS,
                        help="tabular algorithm (default: sarsa)")
    parser.add_argument("--gamma", type=float, default=0.0,
                        help="discount; 0 is the support-limited regime (default: 0)")
    parser.add_argument("--train-seed", type=int, default=0, help="training RNG seed (default: 0)")


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
                                        zip(("path", "gold", "hazard", "lever"), result.return_vector)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lever`` command, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="lever", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train and roll out one policy on the default layout")
    _add_train_options(demo)
    demo.set_defaults(func=_cmd_train)

    train_cmd = sub.add_parser("train", help="train one objective on one layout and roll it out")
    _add_train_options(train_cmd)
    train_cmd.set_defaults(func=_cmd_train)
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
