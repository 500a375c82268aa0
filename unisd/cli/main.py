"""``unisd``: plugins, recipes, training, evaluation and comparison from one command.

Each sub-command lives in its own module and registers itself in :data:`COMMANDS`; the heavy
modules (training, evaluation) are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable

#: sub-command name → "module:function" that adds its parser. Order is the help order.
COMMANDS: dict[str, str] = {
    "plugins": "unisd.cli.plugins_cmd:add_parser",
    "recipe": "unisd.cli.recipe_cmd:add_parser",
    "train": "unisd.cli.train_cmd:add_parser",
    "eval": "unisd.cli.eval_cmd:add_parser",
    "compare": "unisd.cli.compare_cmd:add_parser",
    "sweep": "unisd.cli.sweep_cmd:add_parser",
    "inspect": "unisd.cli.inspect_cmd:add_parser",
    "replicate": "unisd.cli.replicate_cmd:add_parser",
    "push": "unisd.cli.push_cmd:add_parser",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unisd",
        description="UniSD: self-distillation of LLMs with pluggable mechanisms.",
        epilog="Run 'unisd COMMAND --help' for a command's options.",
    )
    from unisd.version import __version__

    parser.add_argument("--version", action="version", version=f"unisd {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also UNISD_DEBUG=1); exit codes: 0 done, 1 internal error, "
        "2 bad input or environment, 130 interrupted",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for target in COMMANDS.values():
        module, _, attr = target.partition(":")
        add: Callable[[argparse._SubParsersAction], None] = getattr(importlib.import_module(module), attr)
        add(sub)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or environment: printed as one clear message, no traceback."""
    from unisd.data.records import BadRecordError
    from unisd.engine.checkpoint import CheckpointError
    from unisd.engine.trainer import TrainingStopped
    from unisd.models.errors import ModelLoadError
    from unisd.plugins import PluginError
    from unisd.recipe import RecipeError
    from unisd.registry import RegistryError

    from unisd.errors import UserError

    return (
        UserError,
        RecipeError,
        PluginError,
        RegistryError,
        BadRecordError,
        ModelLoadError,
        CheckpointError,
        TrainingStopped,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import os

    debug = bool(getattr(args, "debug", False)) or os.environ.get("UNISD_DEBUG", "") not in ("", "0")
    with _sigterm_as_interrupt():
        return _run(args, debug)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (set-up, evaluation): unwinds like Ctrl-C, so set-up undoes itself."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` (the trainer installs its own handler while it trains)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(args, debug: bool) -> int:
    try:
        return int(args.func(args) or 0)
    except user_errors() as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        return 0
    except Terminated:
        print(
            "terminated by SIGTERM outside the training loop; a run that had not started training was undone "
            "(during training SIGTERM writes a checkpoint and exits 0)",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else is our bug: say so, traceback on request
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc}\n(this is likely a bug in unisd; run again with "
            "--debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
