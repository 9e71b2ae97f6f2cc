"""The ``lever`` command line.

Each subcommand is a small function ``_cmd_NAME(args)`` in the module of its
area (:mod:`.world`, :mod:`.library`, :mod:`.experiments`), registered in
:func:`build_parser`. Errors lever raises on purpose are printed as one line
and exit with status 2; an operating-system failure (a file that cannot be
written, a full disk) exits with status 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import LeverError
from ..threads import set_threads
from ..validation import printable
from ..version import __version__
from . import experiments, library, world
from .status import say


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lever`` command, one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="lever", description="Inference-time policy reuse for tabular RL: reproduce the study, build "
                                  "policy libraries, compose policies offline, and compare them with "
                                  "training from scratch.")
    parser.add_argument("--version", action="version", version=f"lever {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also print what lever's modules log (resumed work, rebuilt caches) to stderr")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads of the parallel kernels in this process (default: every core; worker "
                             "processes always use 1)")
    sub = parser.add_subparsers(dest="command", required=True)
    experiments.add_commands(sub)
    world.add_commands(sub)
    library.add_commands(sub)
    return parser


class _StderrHandler(logging.Handler):
    """Log records as ``lever: message`` lines on whatever ``sys.stderr`` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        say(record.getMessage())


def _log_to_stderr(level: int) -> None:
    # lever's logger, not the root one: the command owns its process, but not a caller's logging.
    logger = logging.getLogger("lever")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lever`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _log_to_stderr(logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.threads is not None:
            set_threads(args.threads)
        return args.func(args)
    except LeverError as exc:
        print(f"lever: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(args, "resumable", False):
            print("lever: interrupted; finished work is kept: run the same command to resume", file=sys.stderr)
        else:
            print("lever: interrupted; nothing was changed", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lever library info X | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(printable(f"lever: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")),
              file=sys.stderr)
        return 1
