"""``prewheel run``: the whole loop on one machine, ending in a verified install per target."""

from __future__ import annotations

import argparse
import contextlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ExitCode
from ..options import add_options
from ..pipeline import run_pipeline
from .common import (
    add_json_option,
    add_subcommand,
    error_console,
    output_console,
    settings_from_args,
)

DEFAULT_OUTPUT = Path("prewheel-out")
EXAMPLE = "resources/example"  # inside the package: example.in, example.txt, example.toml


def register(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "run",
        _run,
        help="plan, build the gaps, index, lock and verify in one go",
        description=(
            "Plan the requirements for every target, build the wheels PyPI lacks in emulated "
            "containers, write a complete static index (built + upstream wheels), a hash-pinned "
            "lock and an example Dockerfile into OUTPUT, then serve the index and verify the "
            "lock installs without a compiler in a container of every target."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        help="requirements (default: the bundled example, requirements/example.in in the "
        "repository, with its build settings from example.toml)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"where the index, lock and Dockerfile go (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--no-verify", action="store_true", help="stop after writing the lock")
    parser.add_argument(
        "--reverify",
        action="store_true",
        help="verify every target again, even where an earlier success had the same inputs "
        "(lock, index content, image ID)",
    )
    add_json_option(parser, "what was planned, built, indexed, locked and verified")
    add_options(parser, "run")


def _run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        if not args.inputs:
            args.inputs = [stack.enter_context(bundled_example("example.in"))]
            args.config = args.config or stack.enter_context(bundled_example("example.toml"))
            error_console().print(
                f"No requirements given: running the bundled example {args.inputs[0]} "
                f"with the build settings of {args.config}.",
                markup=False,
            )
        return _run_pipeline(args)


def bundled_example(name: str) -> contextlib.AbstractContextManager[Path]:
    """A file of the bundled example as a real path (``example.in``, ``.txt``, ``.toml``)."""
    return resources.as_file(resources.files("builder").joinpath(EXAMPLE, name))


def _run_pipeline(args: argparse.Namespace) -> int:
    settings = settings_from_args("run", args)
    result = run_pipeline(
        args.inputs,
        settings,
        output=args.output,
        verify=not args.no_verify,
        reverify=args.reverify,
        log=lambda line: error_console().print(line, markup=False),
    )
    timing = ", ".join(f"{step} {value:.1f} s" for step, value in result.seconds.items())
    # serve finds OUT/wheelhouse by itself; another wheelhouse (its build logs) it must be told
    wheelhouse = settings.build.wheelhouse
    serve_wheelhouse = f" --wheelhouse {wheelhouse}" if wheelhouse else ""
    summary = (
        f"done: {result.built} built, {result.reused} reused, {result.mirrored} mirrored; "
        f"{len(result.verified)} targets verified. {timing}\n"
        f"Next: serve the index (prewheel serve {args.output / 'index'}{serve_wheelhouse}) and "
        f"build your image from {result.dockerfile} (see 'prewheel dockerfile')."
    )
    data = {
        "plan": str(args.output / "plan.json"),
        "summary": result.plan.summary(),
        "targets": [target.identifier for target in result.plan.targets],
        "built": result.built,
        "reused": result.reused,
        "index": str(args.output / "index"),
        "index_added": result.index_added,
        "mirrored": result.mirrored,
        "lock": str(result.lock),
        "pylock": str(result.lock.parent / "pylock.toml"),
        "dockerfile": str(result.dockerfile),
        "verified": [r.to_json() for r in result.verified],
        "seconds": result.seconds,
    }
    if args.json:
        error_console().print(summary, markup=False)
        output_console().out(json.dumps(data, indent=2), highlight=False)
    else:
        output_console().print(summary, markup=False)
    return int(ExitCode.OK)
