"""``prewheel build``: compile the plan's gaps (or given sdists) into the wheelhouse."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ..building import (
    BuildJob,
    DockerBuilder,
    LocalBuilder,
    SdistFetcher,
    make_jobs,
    run_builds,
)
from ..building.builders import DEFAULT_MEMORY, DEFAULT_TIMEOUT, Builder
from ..building.runner import (
    DEFAULT_HEARTBEAT,
    BuildReport,
    EventKind,
    ProgressEvent,
    Status,
    describe_event,
    image_refusal,
)
from ..config import Config
from ..errors import BuildsFailedError, ExitCode, UsageError
from ..files import file_sha256
from ..plan import Gap
from ..requirements import PinnedRequirement
from ..targets import DEFAULT_PLATFORMS, Target, pick_targets, select_targets
from ..upstream.models import DistFile
from ..wheelhouse import Wheelhouse
from .common import (
    COMPILER_KEYS,
    CONTAINER_KEYS,
    TARGET_KEYS,
    add_compiler_options,
    add_container_options,
    add_json_option,
    add_subcommand,
    add_target_and_config_options,
    config_from_args,
    error_console,
    is_interactive,
    load_plan,
    output_console,
    report,
)

DEFAULT_WHEELHOUSE = "wheelhouse"
_KEYS = {
    **TARGET_KEYS,
    **COMPILER_KEYS,
    **CONTAINER_KEYS,
    "wheelhouse": "wheelhouse",
    "builder": "builder",
    "docker-host": "docker_host",
    "jobs": "jobs",
    "binfmt-dir": "binfmt_dir",
    "portable": "portable",
    "portable-image": "portable_image",
}


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
    parser.add_argument(
        "--wheelhouse", metavar="DIR", help=f"output and cache (default: ./{DEFAULT_WHEELHOUSE})"
    )
    parser.add_argument(
        "--builder", choices=["docker", "local"], help="docker (default) or local (host only)"
    )
    parser.add_argument(
        "--docker-host",
        action="append",
        metavar="PLATFORM=URL",
        help="Docker endpoint for one platform, e.g. linux/arm64=ssh://arm-box (repeatable)",
    )
    parser.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel containers (1)")
    parser.add_argument("--force", action="store_true", help="rebuild even cached wheels")
    parser.add_argument(
        "--fail-fast", action="store_true", help="stop after the first failure (default: go on)"
    )
    add_container_options(parser)
    parser.add_argument("--binfmt-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument(
        "--portable",
        action="store_true",
        default=None,
        help="build portable manylinux/musllinux wheels with cibuildwheel (implied by --libc "
        "manylinux_X_Y or musllinux_X_Y without --image); linux/arm/v6 falls back to docker",
    )
    parser.add_argument(
        "--portable-image",
        metavar="IMAGE",
        help="image for --portable builds instead of cibuildwheel's pinned ones (placeholders "
        "as for --image, e.g. my-registry/manylinux_2_28_{arch})",
    )
    add_compiler_options(parser)
    add_target_and_config_options(parser)
    register_prune(subparsers)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args, _KEYS)
    wheelhouse = Wheelhouse(Path(config.get("wheelhouse", DEFAULT_WHEELHOUSE)))
    targets = _targets(config)
    gaps = _gaps(args.inputs, args.plan, targets, config)
    image = config.get("image")
    jobs = make_jobs(gaps, image=image, settings=config.package)
    if not jobs:
        error_console().print("Nothing to build: every requirement has a fitting wheel.")
        if args.json:
            _print_json(BuildReport((), 0, 0.0))
        return 0
    builder = _builder(config, jobs)
    try:
        with _progress(jobs) as on_event:
            if _portable(config):
                report = _run_portable(
                    config,
                    jobs,
                    wheelhouse=wheelhouse,
                    fallback=builder,
                    args=args,
                    on_event=on_event,
                )
            else:
                report = run_builds(
                    jobs,
                    wheelhouse=wheelhouse,
                    builder=builder,
                    fetcher=SdistFetcher(),
                    parallel=int(config.get("jobs", 1)),
                    force=bool(args.force),
                    keep_going=not args.fail_fast,
                    progress=on_event,
                    heartbeat=float(config.get("heartbeat", DEFAULT_HEARTBEAT)),
                )
    finally:
        if isinstance(builder, DockerBuilder):
            builder.close()
    _print_summary(report, wheelhouse)
    if args.json:
        _print_json(report)
    if report.refused_images:
        raise image_refusal(report)
    if report.failed:
        raise BuildsFailedError(
            f"{len(report.failed)} of {len(report.outcomes)} builds failed; their logs are "
            f"listed above (under {wheelhouse.logs_dir}). Fix the cause (often a missing "
            "system library: add it to system-packages in the package's table under "
            "tool.prewheel.packages in pyproject.toml) and rerun; finished wheels are kept and "
            "will not be rebuilt."
        )
    return 0


def _portable(config: Config) -> bool:
    from ..building.cibuildwheel import wants_portable  # noqa: PLC0415

    return wants_portable(
        portable=bool(config.get("portable", False)),
        libc=config.get("libc"),
        image=config.get("image"),
    )


def _run_portable(
    config: Config,
    jobs: list[BuildJob],
    *,
    wheelhouse: Wheelhouse,
    fallback: Builder,
    args: argparse.Namespace,
    on_event: Any,
) -> BuildReport:
    """--portable: cibuildwheel for manylinux/musllinux targets, ``fallback`` for the rest."""
    from ..building.cibuildwheel import CibuildwheelBuilder, run_portable_builds  # noqa: PLC0415

    portable = CibuildwheelBuilder(
        timeout=float(config.get("timeout", DEFAULT_TIMEOUT)),
        memory=config.get("memory", DEFAULT_MEMORY),
        docker_builder=fallback if isinstance(fallback, DockerBuilder) else None,
    )
    return run_portable_builds(
        jobs,
        wheelhouse=wheelhouse,
        fetcher=SdistFetcher(),
        portable_builder=portable,
        fallback_builder=fallback,
        image_override=config.get("portable-image"),
        notice=lambda text: error_console().print(f"[yellow]note:[/] {text}", markup=True),
        parallel=int(config.get("jobs", 1)),
        force=bool(args.force),
        keep_going=not args.fail_fast,
        progress=on_event,
        heartbeat=float(config.get("heartbeat", DEFAULT_HEARTBEAT)),
    )


def _targets(config: Config) -> list[Target]:
    image = config.get("image")
    readable_image = (
        image
        if image and "{" not in image and not (config.get("python") and config.get("libc"))
        else None
    )
    return select_targets(
        platforms=config.get_list("platform", DEFAULT_PLATFORMS),
        pythons=config.get_list("python"),
        libc=config.get("libc"),
        image=readable_image,
        identifiers=config.get_list("target"),
        float_abi=config.get("float-abi"),
    )


def _gaps(
    inputs: Sequence[str], plan_file: Path | None, targets: list[Target], config: Config
) -> list[Gap]:
    sdists = [Path(i) for i in inputs if i.endswith((".tar.gz", ".zip"))]
    requirements = [Path(i) for i in inputs if not i.endswith((".tar.gz", ".zip"))]
    gaps = [gap for path in sdists for gap in _sdist_gaps(path, targets)]
    if plan_file is not None:
        gaps += _plan_gaps_from_json(plan_file, config.get_list("target"))
    if requirements:
        gaps += _plan_gaps(requirements, targets, config)
    if not (sdists or requirements or plan_file):
        raise UsageError(
            "Give requirements files (prewheel build requirements.txt), sdists to build "
            "(prewheel build dist/pkg-1.0.tar.gz) or a plan (prewheel build --plan plan.json)."
        )
    return gaps


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


def _plan_gaps(requirements: list[Path], targets: list[Target], config: Config) -> list[Gap]:
    from .. import plan  # noqa: PLC0415

    plan_requirements = getattr(plan, "plan_requirements", None)
    if plan_requirements is None:
        raise UsageError(
            "This prewheel cannot plan requirements files yet; build sdists directly "
            "(prewheel build pkg-1.0.tar.gz) or pass --plan plan.json."
        )
    result = plan_requirements(requirements, targets, config=config)
    return list(result.gaps())


def _plan_gaps_from_json(path: Path, identifiers: Sequence[str]) -> list[Gap]:
    """The plan's gaps; with --target, those of the named plan targets only."""
    plan = load_plan(path, unreadable="Cannot read plan {path}: {exc}.")
    if not identifiers:
        return list(plan.gaps())
    chosen = set(pick_targets(identifiers, plan.targets))
    return [gap for gap in plan.gaps() if gap.target in chosen]


def _builder(config: Config, jobs: list[BuildJob]) -> Builder:
    kind = config.get("builder", "docker")
    timeout = float(config.get("timeout", DEFAULT_TIMEOUT))
    if kind == "local":
        local = LocalBuilder(timeout=timeout)
        foreign = sorted(
            {j.target.identifier for j in jobs if not local.host_target_matches(j.target)}
        )
        if foreign:
            raise UsageError(
                f"--builder local can only build for this host, not {', '.join(foreign)}. "
                "Select the host's target with --platform/--python, or use --builder docker."
            )
        return local
    if kind != "docker":
        raise UsageError(f"Unknown builder {kind!r}; choose docker or local.")
    return DockerBuilder.from_config(config, notice=_notice)


def _notice(text: str) -> None:
    error_console().print(f"[yellow]note:[/] {text}", markup=True, highlight=False)


@contextmanager
def _progress(jobs: list[BuildJob]) -> Iterator[Any]:
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
    built = len(report.having(Status.BUILT))
    cached = len(report.having(Status.CACHED))
    skipped = len(report.having(Status.SKIPPED))
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
    from ..building.container import connect  # noqa: PLC0415
    from ..building.prune import prune as prune_daemon  # noqa: PLC0415

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
