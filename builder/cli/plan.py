"""``prewheel plan`` (the wheel-availability matrix) and ``prewheel targets``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..building.stage import plan_build_requirements
from ..errors import ExitCode, WouldCompileError
from ..files import atomic_write
from ..options import add_options
from ..plan import Plan, Status, plan_requirements
from ..report import render_html, render_json, render_legend, render_table, render_targets
from .common import (
    add_subcommand,
    error_console,
    output_console,
    print_whole,
    settings_from_args,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = add_subcommand(
        subparsers,
        "plan",
        run_plan,
        help="show which requirement x target would compile from source",
        description=(
            "For every pinned requirement and target, find the file pip on that target would "
            "install (PEP 691/503 index pages, target tags, markers, Requires-Python, yanked "
            "files) and show the matrix. Exit codes: 0 ok, 2 usage, 3 requirements, "
            "4 not on index, 5 index unreachable, 6 index malformed, 7 --check found gaps."
        ),
    )
    plan.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="pinned requirements (pip-compile or uv output), a .in file or pyproject.toml "
        "(resolved first, see --resolver), a uv.lock (exported by uv) or a pylock.toml",
    )
    add_options(plan, "plan")
    plan.add_argument("--refresh", action="store_true", help="revalidate every cached index page")
    output = plan.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    output.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML page")
    output.add_argument(
        "--check",
        action="store_true",
        help="exit 7 if any cell would compile from source or has nothing installable",
    )

    targets = add_subcommand(
        subparsers,
        "targets",
        run_targets,
        help="list the targets (identifiers and tags) a set of options selects",
    )
    add_options(targets, "targets")
    targets.add_argument("--json", action="store_true", help="identifiers and tags as JSON")


def run_plan(args: argparse.Namespace) -> int:
    settings = settings_from_args("plan", args)
    plan = plan_requirements(
        list(args.inputs), settings.targets.targets(), settings.indexes, refresh=args.refresh
    )
    plan = plan_build_requirements(plan, settings)
    if args.html is not None:
        atomic_write(args.html, render_html(plan))
    if args.json:
        output_console().out(render_json(plan), end="", highlight=False)
    else:
        console = output_console()
        print_whole(console, render_table(plan))
        console.print(render_legend())
    if args.check:
        check(plan)
    return int(ExitCode.OK)


def check(plan: Plan) -> None:
    """``--check``: fail when any cell would compile or has nothing installable."""
    bad = [
        f"{row.requirement.name}=={row.requirement.version} on {target.identifier} "
        f"({cell.status.value})"
        for row, target, cell in plan.cells()
        if cell.status in (Status.BUILD, Status.UNAVAILABLE)
    ]
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise WouldCompileError(
            f"{plan.summary()}: {shown}. Pre-build them with `prewheel build` and publish them "
            "to your index (then plan with --our-index-url), or change the pins."
        )


def run_targets(args: argparse.Namespace) -> int:
    targets = settings_from_args("targets", args).targets.targets()
    if args.json:
        data = [target.to_json() for target in targets]
        output_console().out(json.dumps(data, indent=2), highlight=False)
    else:
        print_whole(output_console(), render_targets(targets))
    error_console().print(f"{len(targets)} target(s)")
    return int(ExitCode.OK)
