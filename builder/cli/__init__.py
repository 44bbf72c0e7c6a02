"""The ``prewheel`` command: a thin layer over the library.

Each stage registers its subcommand from its own module (``builder/cli/<stage>.py``) with a
``register(subparsers)`` function that adds a parser whose ``handler`` default takes the parsed
arguments and returns an exit code. This module owns the error boundary: library code raises
:class:`~builder.errors.PrewheelError`; only here is anything printed to stderr or exited.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.markup import escape

from .. import __version__
from ..errors import ExitCode, PrewheelError
from .common import error_console

# Subcommand modules, in pipeline order.
_STAGES = ("plan", "build", "index", "consume", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prewheel",
        description=(
            "Pre-build the wheels your multi-arch Docker images would compile under QEMU, "
            "cache them, and serve them from a private index."
        ),
    )
    parser.add_argument("--version", action="version", version=f"prewheel {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in _STAGES:
        try:
            module = importlib.import_module(f"{__name__}.{stage}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{stage}":
                continue  # stage not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return int(ExitCode.USAGE)
    try:
        return int(args.handler(args))
    except PrewheelError as error:
        error_console().print(
            f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True
        )
        return int(error.exit_code)
    except KeyboardInterrupt:
        error_console().print("[bold red]interrupted[/]")
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
