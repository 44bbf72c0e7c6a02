"""The build stage's façade: gaps in, wheels in the wheelhouse and a :class:`BuildReport` out.

``prewheel build``, ``prewheel run`` and ``bench/`` all build through :func:`build_gaps`; which
builder (docker, local, or cibuildwheel for portable wheels with docker for what it cannot
build) follows from the settings in :func:`make_builders` alone, and every builder made is
closed when the build ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence

from ..errors import BuildsFailedError, UsageError
from ..options import Settings
from ..plan import Gap
from ..wheelhouse import Wheelhouse
from .builders import Builder, DockerBuilder, LocalBuilder
from .cibuildwheel import CibuildwheelBuilder, run_portable_builds, wants_portable
from .jobs import BuildJob, make_jobs
from .runner import BuildReport, ProgressCallback, image_refusal, run_builds
from .sdist import SdistFetcher


@dataclasses.dataclass(frozen=True)
class Builders:
    """The builder of every job, and for portable builds the cibuildwheel one beside it."""

    main: Builder
    portable: CibuildwheelBuilder | None = None


@contextlib.contextmanager
def make_builders(
    settings: Settings,
    jobs: Sequence[BuildJob],
    *,
    notice: Callable[[str], object] = lambda _text: None,
) -> Iterator[Builders]:
    """The builders ``settings`` ask for, closed on the way out. ``--builder local`` refuses
    jobs for another target than the host's before anything starts."""
    options = settings.build
    main: Builder
    if options.builder == "local":
        local = LocalBuilder(timeout=options.timeout)
        foreign = sorted(
            {j.target.identifier for j in jobs if not local.host_target_matches(j.target)}
        )
        if foreign:
            raise UsageError(
                f"--builder local can only build for this host, not {', '.join(foreign)}. "
                "Select the host's target with --platform/--python, or use --builder docker."
            )
        main = local
    else:
        main = DockerBuilder.from_options(options, notice=notice)
    with contextlib.ExitStack() as stack:
        stack.callback(main.close)
        portable = None
        if is_portable(settings):
            portable = CibuildwheelBuilder(
                timeout=options.timeout,
                memory=options.memory,
                docker_builder=main if isinstance(main, DockerBuilder) else None,
            )
        yield Builders(main, portable)


def is_portable(settings: Settings) -> bool:
    """Whether the build makes portable (manylinux/musllinux) wheels with cibuildwheel."""
    return wants_portable(
        portable=settings.build.portable,
        libc=settings.targets.libc,
        image=settings.targets.image,
    )


def jobs_for(gaps: Sequence[Gap], settings: Settings) -> list[BuildJob]:
    """One job per gap, in the build image the settings name, with its package settings."""
    return make_jobs(gaps, image=settings.targets.image, settings=settings.config.package)


def build_gaps(
    gaps: Sequence[Gap],
    settings: Settings,
    wheelhouse: Wheelhouse,
    *,
    progress: ProgressCallback | None = None,
    notice: Callable[[str], object] = lambda _text: None,
    force: bool = False,
    keep_going: bool = True,
) -> BuildReport:
    """Build every gap not yet in ``wheelhouse`` (all of them with ``force``)."""
    jobs = jobs_for(gaps, settings)
    if not jobs:
        return BuildReport((), 0, 0.0)
    options = settings.build
    fetcher = SdistFetcher()
    with make_builders(settings, jobs, notice=notice) as builders:
        if builders.portable is not None:
            return run_portable_builds(
                jobs,
                wheelhouse=wheelhouse,
                fetcher=fetcher,
                portable_builder=builders.portable,
                fallback_builder=builders.main,
                image_override=options.portable_image,
                notice=_discarding(notice),
                parallel=options.jobs,
                force=force,
                keep_going=keep_going,
                progress=progress,
                heartbeat=options.heartbeat,
            )
        return run_builds(
            jobs,
            wheelhouse=wheelhouse,
            builder=builders.main,
            fetcher=fetcher,
            parallel=options.jobs,
            force=force,
            keep_going=keep_going,
            progress=progress,
            heartbeat=options.heartbeat,
        )


def raise_for_failures(report: BuildReport, wheelhouse: Wheelhouse) -> None:
    """The error a build with refused images or failed jobs ends in (nothing if it did not)."""
    if report.refused_images:
        raise image_refusal(report)
    if report.failed:
        raise BuildsFailedError(
            f"{len(report.failed)} of {len(report.outcomes)} builds failed: "
            + ", ".join(outcome.job.label for outcome in report.failed)
            + f". Their logs are under {wheelhouse.logs_dir}. Fix the cause (often a missing "
            "system library: add it to system-packages in the package's table under "
            "tool.prewheel.packages in pyproject.toml) and rerun; finished wheels are kept and "
            "will not be rebuilt."
        )


def _discarding(function: Callable[[str], object]) -> Callable[[str], None]:
    def call(text: str) -> None:
        function(text)

    return call
