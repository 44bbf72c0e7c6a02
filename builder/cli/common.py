"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import UsageError
from ..fetch import without_credentials
from ..hostenv import pip_setting
from ..options import IndexOptions, Settings, resolve
from ..plan import Plan, plan_from_json


@cache
def error_console() -> Console:
    """stderr console: progress, tables for people, errors (log lines never hard-wrapped)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


@cache
def output_console() -> Console:
    """stdout console, for the data a command produces (tables, JSON)."""
    return Console(highlight=False, soft_wrap=True)


def print_whole(console: Console, renderable: Any) -> None:
    """Print a table as wide as it needs on anything but a terminal (a CI log, a pipe, a
    file), where rich would otherwise cut its cells to 80 columns."""
    if console.is_terminal:
        console.print(renderable)
        return
    unlimited = console.options.update_width(1 << 16)
    needed = console.measure(renderable, options=unlimited).maximum
    saved = console.width
    console.width = max(saved, needed)  # print() never renders wider than the console
    try:
        console.print(renderable)
    finally:
        console.width = saved


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON on stdout (the human summary goes to stderr)",
    )


def report(args: argparse.Namespace, summary: str, data: Mapping[str, Any]) -> None:
    """A command's result: ``summary`` for people, and with ``--json`` ``data`` on stdout
    (the summary then on stderr, so stdout stays pure JSON)."""
    if getattr(args, "json", False):
        error_console().print(summary)
        output_console().out(json.dumps(data, indent=2), highlight=False)
    else:
        output_console().print(summary)


def is_interactive() -> bool:
    """Live progress only on a terminal and outside CI; plain lines otherwise."""
    return error_console().is_terminal and os.environ.get("CI", "").lower() not in {"1", "true"}


def add_subcommand(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` (``kwargs`` as for ``add_parser``) that runs ``handler``."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def settings_from_args(command: str, args: argparse.Namespace) -> Settings:
    """The resolved settings of ``command`` (see :mod:`builder.options`).

    Logins in the configured index URLs (and pip's) are remembered for their hosts, so a
    command that only reads a plan (whose URLs carry none) still authenticates downloads."""
    settings = resolve(command, args, command_line_only=command_line_options())
    remember_index_logins(settings.indexes)
    return settings


@cache
def command_line_options() -> frozenset[str]:
    """Every long option of every command (without ``--``), declared or not: a file key
    that is one of the others is a command-line-only option, which the error then says."""
    from . import build_parser  # noqa: PLC0415 - the CLI package imports this module

    names: set[str] = set()
    pending = [build_parser()]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            names.update(o[2:] for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    return frozenset(names)


def remember_index_logins(indexes: IndexOptions) -> None:
    urls = [
        indexes.index_url,
        indexes.our_index_url,
        *indexes.extra_index_url,
        pip_setting("index-url"),
        *(pip_setting("extra-index-url") or "").split(),
    ]
    for url in urls:
        if url:
            without_credentials(str(url))


def load_plan(path: Path, *, unreadable: str) -> Plan:
    """The plan in ``path`` (written by ``prewheel plan --json``).

    ``unreadable`` is the message of the :class:`UsageError` raised when the file cannot be read
    or is not JSON; ``{path}`` and ``{exc}`` in it are filled in.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(unreadable.format(path=path, exc=exc)) from None
    return plan_from_json(data)
