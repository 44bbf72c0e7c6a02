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

from ..config import Config, load_config
from ..errors import UsageError


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


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with a [tool.prewheel] table (default: the nearest pyproject.toml)",
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("targets")
    group.add_argument(
        "--platform",
        metavar="LIST",
        help="Docker platforms, comma-separated (default: linux/amd64,linux/arm64,linux/arm/v7,"
        "linux/arm/v6)",
    )
    group.add_argument("--python", metavar="LIST", help="CPython versions, e.g. 3.11,3.12")
    group.add_argument(
        "--libc",
        metavar="LIBC",
        help="glibc or musl, optionally with the oldest version: glibc2.36, musl1.2 "
        "(default: glibc2.36, Debian bookworm)",
    )
    group.add_argument(
        "--float-abi",
        choices=["hard", "soft"],
        help="32-bit ARM float ABI of the images (default: soft for glibc linux/arm/v6, as "
        "Debian armel; hard otherwise, as Debian armhf, Raspberry Pi OS and Alpine)",
    )
    group.add_argument(
        "--image",
        metavar="IMAGE",
        help="base image, e.g. python:3.11-slim-bookworm; fixes Python and libc",
    )
    group.add_argument(
        "--target",
        metavar="IDS",
        help="target identifiers, comma-separated (cp311-manylinux_2_36_armv7l, "
        "cp311-glibc_2_36_armv6l); overrides the above",
    )


RESOLVER_KEYS = {"resolver": "resolver"}


def add_resolver_option(parser: argparse.ArgumentParser) -> None:
    """How loose inputs (``.in``, ``pyproject.toml``) are pinned (plan, lock, run)."""
    from ..resolve import RESOLVERS  # noqa: PLC0415

    parser.add_argument(
        "--resolver",
        choices=RESOLVERS,
        help="resolver of .in and pyproject.toml inputs: uv (default; one universal resolution "
        "for every target, dependencies behind markers kept with their markers) or pip-tools "
        "(pip-compile, for the host only)",
    )


def add_compiler_options(parser: argparse.ArgumentParser) -> None:
    """How foreign-architecture builds compile (``prewheel build`` and ``prewheel run``)."""
    group = parser.add_argument_group("compilers")
    group.add_argument(
        "--accelerate",
        choices=["auto", "relaxed", "off"],
        help="auto (default): compile with a native cross compiler where the build image's "
        "release has one built from the image's exact gcc version, while the image's Python "
        "runs emulated; relaxed: also where only the distribution's revision of that gcc "
        "differs; off: compile emulated",
    )
    group.add_argument(
        "--toolchain-base",
        metavar="IMAGE",
        help="image to assemble native toolchains in, on the daemon's architecture "
        "(default {id}:{codename}, from the build image's os-release, e.g. debian:bookworm)",
    )


COMPILER_KEYS = {"accelerate": "accelerate", "toolchain-base": "toolchain_base"}


def add_container_options(parser: argparse.ArgumentParser) -> None:
    """Limits and set-up of the build containers (``prewheel build`` and ``prewheel run``)."""
    from ..building.builders import (  # noqa: PLC0415 - keeps `prewheel --help` light
        DEFAULT_MEMORY,
        DEFAULT_SETUP_TIMEOUT,
        DEFAULT_TIMEOUT,
    )
    from ..building.runner import DEFAULT_HEARTBEAT  # noqa: PLC0415

    group = parser.add_argument_group("build containers")
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"per build (default {DEFAULT_TIMEOUT:.0f})",
    )
    group.add_argument(
        "--setup-timeout",
        type=float,
        metavar="SECONDS",
        help=f"per container set-up (default {DEFAULT_SETUP_TIMEOUT:.0f})",
    )
    group.add_argument(
        "--fresh-setup",
        action="store_true",
        default=None,
        help="set build containers up from scratch, replacing the kept build environment "
        "(default: reuse it)",
    )
    group.add_argument(
        "--heartbeat",
        type=float,
        metavar="SECONDS",
        help=f"outside a terminal, a 'still building' line this often (default "
        f"{DEFAULT_HEARTBEAT:.0f}; 0: none)",
    )
    group.add_argument("--memory", metavar="SIZE", help=f"container memory ({DEFAULT_MEMORY})")


CONTAINER_KEYS = {
    "timeout": "timeout",
    "setup-timeout": "setup_timeout",
    "fresh-setup": "fresh_setup",
    "heartbeat": "heartbeat",
    "memory": "memory",
}


def add_target_and_config_options(parser: argparse.ArgumentParser) -> None:
    """The target options, then ``--config``."""
    add_target_options(parser)
    add_config_option(parser)


def config_from_args(args: argparse.Namespace, keys: dict[str, str]) -> Config:
    """Config whose CLI layer holds ``{option key: getattr(args, attribute)}`` for given keys.

    Logins in the configured index URLs (and pip's) are remembered for their hosts, so a
    command that only reads a plan (whose URLs carry none) still authenticates downloads."""
    cli: dict[str, Any] = {key: getattr(args, attribute, None) for key, attribute in keys.items()}
    config = load_config(cli, config_file=getattr(args, "config", None))
    remember_index_logins(config)
    return config


def remember_index_logins(config: Config) -> None:
    from ..fetch import without_credentials  # noqa: PLC0415
    from ..hostenv import pip_setting  # noqa: PLC0415

    urls = [
        config.get("index-url"),
        config.get("our-index-url"),
        *config.get_list("extra-index-url"),
        pip_setting("index-url"),
        *(pip_setting("extra-index-url") or "").split(),
    ]
    for url in urls:
        if url:
            without_credentials(str(url))


TARGET_KEYS = {
    "platform": "platform",
    "python": "python",
    "libc": "libc",
    "float-abi": "float_abi",
    "image": "image",
    "target": "target",
}


def targets_from_config(config: Config) -> list[Any]:
    from ..targets import DEFAULT_PLATFORMS, select_targets  # noqa: PLC0415

    return select_targets(
        platforms=config.get_list("platform", DEFAULT_PLATFORMS),
        pythons=config.get_list("python"),
        libc=config.get("libc"),
        image=config.get("image"),
        identifiers=config.get_list("target"),
        float_abi=config.get("float-abi"),
    )


def load_plan(path: Path, *, unreadable: str) -> Any:
    """The plan in ``path`` (written by ``prewheel plan --json``).

    ``unreadable`` is the message of the :class:`UsageError` raised when the file cannot be read
    or is not JSON; ``{path}`` and ``{exc}`` in it are filled in.
    """
    from ..plan import plan_from_json  # noqa: PLC0415

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(unreadable.format(path=path, exc=exc)) from None
    return plan_from_json(data)
