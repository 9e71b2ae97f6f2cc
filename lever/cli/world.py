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
from ..training import ALGORITHMS, BUDGETS, STUDY_BUDGETS, TrainConfig, train
from ..worlds.tabular import TabularWorld
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
    parser.add_argument("--env", default=None, metavar="ENV_ID",
                        help="a deterministic discrete gymnasium env instead of the GridWorld: any id "
                             "gymnasium.make accepts, e.g. FrozenLake-v1, deep-sea-treasure-v0, mypkg:MyEnv-v0; "
                             "objectives are then weight vectors such as 1,0")
    parser.add_argument("--env-kwargs", default=None, metavar="JSON", type=_json_object,
                        help='keyword arguments of the env as a JSON object, e.g. \'{"is_slippery": false}\'')
    parser.add_argument("--max-states", type=int, default=None,
                        help="cap on the env's states (default: 1,000,000)")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def env_world(args: argparse.Namespace) -> TabularWorld:
    """The tabular world of ``--env`` (with ``--env-kwargs``, ``--max-states``)."""
    return TabularWorld.from_gymnasium(args.env, env_kwargs=args.env_kwargs, max_states=args.max_states)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    add_training_setup_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="layout seed (default: 0)")
    parser.add_argument("--objective", default=None,
                        help="composite objective, e.g. path+gold+hazard, or with --env weights such as 0.3,0.7 "
                             "(default: path, or the env's first component)")
    parser.add_argument("--budget", default=BUDGET_NAMES[0], choices=BUDGET_NAMES,
                        help=f"training budget of the study (default: {BUDGET_NAMES[0]})")
    parser.add_argument("--episodes", type=int, default=None,
                        help="override the budget's episode count (default: the budget's)")


def _train_from_args(args: argparse.Namespace, figure: str | None):
    # The one policy both commands train and roll out; a bad figure name fails before training.
    check_figure_path(figure)
    if args.env is not None:
        return _train_env(args, figure)
    if args.env_kwargs is not None or args.max_states is not None:
        raise LeverError("--env-kwargs and --max-states go with --env")
    args.objective = args.objective or "path"
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


def _train_env(args: argparse.Namespace, figure: str | None):
    # The policy of ``lever train --env``: the env read into a tabular world, its objective a weight vector.
    if figure:
        raise LeverError("a tabular world has no grid to draw; `lever show --env` prints its policy as a table")
    world = env_world(args)
    objective = Objective.parse(args.objective or ",".join(["1"] + ["0"] * (world.n_components - 1)),
                                world.component_names)
    episodes = args.episodes if args.episodes is not None else STUDY_BUDGETS[args.budget][0]
    if episodes < 1:
        raise LeverError(f"--episodes must be >= 1, got {episodes}")
    config = TrainConfig(episodes=episodes, epsilon_decay=TrainConfig.epsilon_min ** (1 / episodes),
                         algorithm=args.algorithm, gamma=args.gamma, seed=args.train_seed)
    ready_kernels(tabular=True)
    policy = train(world, objective, config)
    result = rollout(world, policy, objective, record_path=True, gamma=config.gamma)
    if getattr(args, "save", None):
        print(f"policy: {policy.save(args.save)}", file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return world, config, policy, result


def _cmd_train(args: argparse.Namespace) -> int:
    layout, config, policy, result = _train_from_args(args, args.show)
    if isinstance(layout, TabularWorld):
        names = layout.component_names
        if args.json:
            print(json.dumps({"world_id": layout.id, "env": args.env, "states": layout.n_states,
                              "actions": layout.n_actions, "objective": policy.objective.name,
                              "weights": list(policy.objective.weights), "episodes": config.episodes,
                              "gamma": config.gamma, "train_s": policy.wall_time, "return": result.ret,
                              "steps": result.steps, "end": result.end,
                              "vector_return": dict(zip(names, result.return_vector)),
                              "discounted_vector_return": dict(zip(names, result.discounted_return_vector)),
                              "support": float(policy.support.mean())}, indent=1, allow_nan=False))
            return 0
        print(f"{layout!r} (id {layout.id})")
        print(f"trained {policy.objective} with {config.algorithm}, {config.episodes} episodes, "
              f"gamma={config.gamma}: {policy.wall_time:.3f} s, support {policy.support.mean():.1%} "
              f"of (state, action) pairs")
        print(f"greedy rollout: return {result.ret:.2f}, {result.steps} steps, ended at {result.end}")
        print("vector return: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, result.return_vector)))
        return 0
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
    show.add_argument("--out", default=None,
                      help="image file; .png, .svg or .pdf picks the format (a tabular world's policy is printed "
                           "as a table instead)")
    show.set_defaults(func=_cmd_show)


def _cmd_show(args: argparse.Namespace) -> int:
    if args.library is None and args.policy is None:
        if args.env is None and args.out is None:
            raise LeverError("--out is required to draw a GridWorld policy")
        if args.env is not None:
            world, _, policy, _ = _train_from_args(args, None)
            print_policy_table(world, np.asarray(policy.q), np.asarray(policy.visits))
            return 0
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
    if isinstance(layout, TabularWorld):  # no grid to draw: the policy as a table
        print_policy_table(layout, q, visits)
        return 0
    if args.out is None:
        raise LeverError("--out is required to draw a GridWorld policy")
    result = rollout(layout, q, record.objective, library.spec.rules, record_path=True)
    title = (f"policy {record.policy_id}: {record.objective} ({record.source}, {record.budget}), "
             f"{result.end} after {result.steps} steps, return {result.ret:.1f}")
    path = save_policy_figure(args.out, layout, as_actions(q, layout.n_states), visits, result.path, title=title)
    print(f"figure: {path}")
    return 0


def print_policy_table(world: TabularWorld, q: np.ndarray, visits: np.ndarray, limit: int = 200) -> None:
    """Print a tabular world's policy: per state its key, greedy action, its Q value and visits (first ``limit``)."""
    actions = as_actions(np.ascontiguousarray(q, dtype=np.float64), world.n_states, world.n_actions)
    route = rollout(world, actions, np.eye(world.n_components)[0], record_path=True).path
    on_route = set(route.tolist())
    print(f"{world!r}: greedy policy ({'*' if on_route else ''} = on the route from the start)")
    print(f"{'state':>7}  {'key':24} {'action':>6} {'Q':>10} {'visits':>8}")
    for s in range(min(world.n_states, limit)):
        mark = "*" if s in on_route else " "
        print(f"{s:>6}{mark}  {str(world.keys[s]):24} {int(actions[s]):>6} {float(q[s, actions[s]]):>10.3f} "
              f"{int(visits[s].sum()):>8}")
    if world.n_states > limit:
        print(f"... {world.n_states - limit} more states")
