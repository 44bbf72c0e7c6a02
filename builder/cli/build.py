"""``prewheel build``: compile the plan's gaps (or given sdists) into the wheelhouse."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ..building.container import connect
from ..building.prune import prune as prune_daemon
from ..building.runner import (
    BuildReport,
    BuildStatus,
    EventKind,
    ProgressEvent,
    describe_event,
)
from ..building.stage import build_gaps, is_portable, raise_for_failures
from ..closure import constraints_sha256
from ..errors import ExitCode, UsageError
from ..files import file_sha256
from ..options import DEFAULT_WHEELHOUSE, Settings, add_options
from ..plan import Gap, plan_requirements
from ..requirements import PinnedRequirement
from ..targets import Target, pick_targets
from ..upstream.models import DistFile
from ..wheelhouse import Wheelhouse
from .common import (
    add_json_option,
    add_subcommand,
    error_console,
    is_interactive,
    load_plan,
    output_console,
    report,
    settings_from_args,
)


def register(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "build",
        run,
        help="compile the missing wheels inside target-platform containers",
        description=(
            "Build exactly the wheels the plan lacks (requirement x target with only an sdist "
            "upstream), each inside a container of the target's image and platform (QEMU for "
            "foreign architectures), into a content-addressed wheelhouse. Arguments are "
            "requirements files, or sdist files (.tar.gz) to build for every selected target."
        ),
    )
    parser.add_argument(
        "inputs", nargs="*", metavar="REQUIREMENTS|SDIST", help="requirements files or sdists"
    )
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="build the gaps of a plan.json (with --target, of those plan targets only)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even cached wheels")
    parser.add_argument(
        "--fail-fast", action="store_true", help="stop after the first failure (default: go on)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_options(parser, "build")
    register_prune(subparsers)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args("build", args)
    wheelhouse = Wheelhouse(settings.build.wheelhouse or DEFAULT_WHEELHOUSE)
    gaps, index_urls = _gaps(args.inputs, args.plan, settings)
    with _progress() as on_event:
        build_report = build_gaps(
            gaps,
            settings,
            wheelhouse,
            progress=on_event,
            notice=_notice,
            force=args.force,
            keep_going=not args.fail_fast,
            index_urls=index_urls,
        )
    if not build_report.outcomes:
        error_console().print("Nothing to build: every requirement has a fitting wheel.")
        if args.json:
            _print_json(build_report)
        return 0
    _print_summary(build_report, wheelhouse)
    if args.json:
        _print_json(build_report)
    raise_for_failures(build_report, wheelhouse)
    return 0


def _gaps(
    inputs: Sequence[str], plan_file: Path | None, settings: Settings
) -> tuple[list[Gap], tuple[str, ...]]:
    """The gaps to build, and the upstream indexes the requirements files name."""
    sdists = [Path(i) for i in inputs if i.endswith((".tar.gz", ".zip"))]
    requirements = [Path(i) for i in inputs if not i.endswith((".tar.gz", ".zip"))]
    targets = settings.targets.targets() if sdists or requirements else []
    gaps = [gap for path in sdists for gap in _sdist_gaps(path, targets)]
    if plan_file is not None:
        gaps += _plan_gaps_from_json(plan_file, settings)
    index_urls: tuple[str, ...] = ()
    if requirements:
        plan = plan_requirements(requirements, targets, settings.indexes)
        gaps += plan.gaps()
        index_urls = plan.index_urls
    if not (sdists or requirements or plan_file):
        raise UsageError(
            "Give requirements files (prewheel build requirements.txt), sdists to build "
            "(prewheel build dist/pkg-1.0.tar.gz) or a plan (prewheel build --plan plan.json)."
        )
    return gaps, index_urls


def _sdist_gaps(path: Path, targets: list[Target]) -> list[Gap]:
    if not path.is_file():
        raise UsageError(f"{path} does not exist; give the path of an sdist (.tar.gz).")
    try:
        name, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename as exc:
        raise UsageError(f"{path.name} is not an sdist file name ({exc}).") from None
    dist = DistFile(path.name, path.resolve().as_uri(), {"sha256": file_sha256(path)})
    requirement = PinnedRequirement(name, version)
    return [Gap(requirement, target, dist) for target in targets]


def _plan_gaps_from_json(path: Path, settings: Settings) -> list[Gap]:
    """The plan's gaps; with --target, those of the named plan targets only. Build
    requirements the plan pinned under other build constraints than this build's are
    planned again."""
    plan = load_plan(
        path,
        unreadable="Cannot read the plan {path}: {exc}. Write it with "
        "'prewheel plan requirements.txt --json > plan.json'.",
    )
    constraints = settings.build.build_constraints
    recorded = plan.build_constraints_sha256
    if (
        plan.closure
        and not is_portable(settings)  # portable builds plan no closure
        and recorded != constraints_sha256(constraints)
    ):
        given = f"the build constraints {constraints}" if constraints else "none"
        if recorded is None:
            said = f"{path} does not say which build constraints its build requirements were "
            said += f"pinned under (an older prewheel wrote it); this build has {given}"
        else:
            planned = "other build constraints" if recorded else "none"
            said = f"{path} pinned its build requirements under {planned}, this build has {given}"
        _notice(f"{said}: they are planned again ({path} is not changed).")
        plan = plan.without_closure()
    identifiers = settings.targets.target
    if not identifiers:
        return list(plan.gaps())
    chosen = set(pick_targets(identifiers, plan.targets))
    return [gap for gap in plan.gaps() if gap.target in chosen]


def _notice(text: str) -> None:
    error_console().print(f"[yellow]note:[/] {text}", markup=True, highlight=False)


@contextmanager
def _progress() -> Iterator[Callable[[ProgressEvent], None]]:
    console = error_console()
    if not is_interactive():

        def plain(event: ProgressEvent) -> None:
            if (line := describe_event(event)) is not None:
                console.print(line, markup=False)

        yield plain
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def live(event: ProgressEvent) -> None:
            key = event.step.label
            if event.kind is EventKind.STEP_STARTED:
                tasks[key] = progress.add_task(key, total=len(event.step.jobs))
                if event.note:
                    progress.console.print(f"{key}: {event.note}", markup=False)
            elif event.kind is EventKind.JOB_STARTED and event.job:
                progress.update(
                    tasks[key], description=f"{key}: {event.job.name} {event.job.version}"
                )
            elif event.kind is EventKind.JOB_FINISHED and event.outcome:
                progress.advance(tasks[key])
                progress.console.print(
                    f"{event.outcome.status.value} {event.outcome.job.label} "
                    f"({event.outcome.elapsed:.0f} s)"
                )
            elif event.kind is EventKind.STEP_FINISHED and key in tasks:
                progress.update(tasks[key], description=f"{key}: done")

        yield live


def _print_summary(report: BuildReport, wheelhouse: Wheelhouse) -> None:
    console = error_console()
    built = len(report.having(BuildStatus.BUILT))
    cached = len(report.having(BuildStatus.CACHED))
    skipped = len(report.having(BuildStatus.SKIPPED))
    accelerated = len(report.accelerated)
    fell_back = len(report.fell_back)
    how = [f"{accelerated} accelerated"] if accelerated else []
    if fell_back:
        how.append(f"{fell_back} rebuilt emulated after the accelerated build failed")
    console.print(
        f"{built} built"
        + (f" ({', '.join(how)})" if how else "")
        + f", {cached} cached, {len(report.failed)} failed"
        + (f", {skipped} skipped" if skipped else "")
        + f" in {report.elapsed:.1f} s ({report.containers_started} containers) -> "
        f"{wheelhouse.wheels_dir}"
    )
    for line in report.build_requirement_lines():
        console.print(line, markup=False, highlight=False)
    for outcome in report.fell_back:
        console.print(
            f"[yellow]rebuilt emulated[/] {outcome.job.label}: the build with native compilers "
            f"failed ({outcome.fallback}); log: {outcome.log}",
            markup=True,
            highlight=False,
        )
    for outcome in report.failed:
        # the error may quote build output: never read it as markup
        console.print(
            f"[bold red]FAILED[/] {escape(outcome.job.label)}: {escape(outcome.error)}",
            markup=True,
        )
        if outcome.log:
            console.print(f"  log: {outcome.log}", markup=False)
        if outcome.tail and outcome.tail[-1].strip() in outcome.error:
            continue  # the error ends with that output already (a failed set-up)
        for line in outcome.tail:
            console.print(f"  | {line}", markup=False, soft_wrap=True)


def _print_json(report: BuildReport) -> None:
    output_console().print_json(json.dumps(report.to_json()))


def register_prune(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "prune",
        prune,
        help="remove the toolchains and build environments that can no longer be used",
        description=(
            "Remove what builds keep in the Docker daemon once it can no longer be used: "
            "native toolchain images (about 1.3 GB each) and their volumes whose base image is "
            "gone, and build-environment volumes whose build image is gone. --all removes all "
            "of them (the next build makes what it needs again). Anything a container still "
            "uses is kept and listed."
        ),
    )
    parser.add_argument("--all", action="store_true", help="remove all of them, usable or not")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    add_json_option(parser, "what was (or would be) removed")


def prune(args: argparse.Namespace) -> int:
    client = connect()
    try:
        result = prune_daemon(client, everything=args.all, dry_run=args.dry_run)
    finally:
        client.close()
    verb = "would remove" if args.dry_run else "removed"
    lines = [
        f"{verb} {item.kind} {item.name} ({item.reason}"
        + (f", {item.size / 1e9:.1f} GB" if item.size else "")
        + ")"
        for item in result.removed
    ]
    lines += [f"kept {item.kind} {item.name}: a container uses it" for item in result.in_use]
    freed = sum(item.size or 0 for item in result.removed)
    lines.append(
        f"{len(result.removed)} {verb}"
        + (f" (images: {freed / 1e9:.1f} GB)" if freed else "")
        + f", {len(result.in_use)} in use, {result.kept} still usable kept"
    )
    report(
        args,
        escape("\n".join(lines)),
        {
            "dry_run": args.dry_run,
            "removed": [dataclasses.asdict(item) for item in result.removed],
            "in_use": [dataclasses.asdict(item) for item in result.in_use],
            "kept": result.kept,
        },
    )
    return int(ExitCode.OK)
