"""The build stage's façade: gaps in, wheels in the wheelhouse and a :class:`BuildReport` out.

``prewheel build``, ``prewheel run`` and ``bench/`` all build through :func:`build_gaps`; which
builder (docker, local, or cibuildwheel for portable wheels with docker for what it cannot
build) follows from the settings in :func:`make_builders` alone, and every builder made is
closed when the build ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence

from ..closure import DynamicAnswers, build_waves, close_plan, plan_of_gaps
from ..errors import BuildsFailedError, UsageError
from ..options import Settings
from ..plan import BuildKey, Gap, Plan
from ..wheelhouse import Wheelhouse
from .builders import Builder, DockerBuilder, LocalBuilder
from .cibuildwheel import CibuildwheelBuilder, run_portable_builds, wants_portable
from .jobs import BuildJob, make_jobs
from .runner import (
    BuildOutcome,
    BuildReport,
    BuildRequirementPolicy,
    BuildStatus,
    ProgressCallback,
    image_refusal,
    run_builds,
)
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


def plan_build_requirements(plan: Plan, settings: Settings) -> Plan:
    """``plan`` with its gaps' build requirements planned (:func:`~builder.closure.close_plan`
    with the settings' indexes and build constraints); unchanged with ``no-build-deps``."""
    if settings.build.no_build_deps:
        return plan
    return close_plan(
        plan,
        settings.indexes,
        fetcher=SdistFetcher(),
        constraints=settings.build.build_constraints,
    )


MAX_ROUNDS = 10  # builds deferred by their backends' dynamic build requirements, replanned


def build_gaps(
    gaps: Sequence[Gap],
    settings: Settings,
    wheelhouse: Wheelhouse,
    *,
    progress: ProgressCallback | None = None,
    notice: Callable[[str], object] = lambda _text: None,
    force: bool = False,
    keep_going: bool = True,
    index_urls: Sequence[str] = (),
    answers: DynamicAnswers | None = None,
) -> BuildReport:
    """Build every gap not yet in ``wheelhouse`` (all of them with ``force``).

    Unless ``no-build-deps`` is set, the gaps' build requirements are planned first
    (:func:`~builder.closure.close_plan`, against ``index_urls``, the indexes the plan read),
    those without a wheel for their target are built too, each before the builds that need
    it, and every build installs its build requirements from prewheel's files. A build whose
    backend asks for build requirements not planned yet is planned again and rebuilt after
    them."""
    if not gaps:
        return BuildReport((), 0, 0.0)
    options = settings.build
    if options.hermetic and is_portable(settings):
        raise UsageError(
            "--hermetic cannot be combined with --portable: cibuildwheel makes the build "
            "environments itself, from the index. Drop one of them."
        )
    if is_portable(settings):
        # cibuildwheel makes its build environments itself: no closure (nor its cache keys)
        return _build_portable(gaps, settings, wheelhouse, progress, notice, force, keep_going)
    started = time.monotonic()
    fetcher = SdistFetcher()
    answers = answers or DynamicAnswers()
    plan = plan_of_gaps(gaps, index_urls)
    # --no-build-deps: the build requirements are pinned and offered, not built
    requested = {gap.key for gap in gaps if not (options.no_build_deps and gap.build_only)}
    final: dict[BuildKey, BuildOutcome] = {}
    containers = 0
    replan: set[BuildKey] = set()
    waiting: list[BuildJob] = []
    for _round in range(MAX_ROUNDS):
        plan = close_plan(
            plan,
            settings.indexes,
            fetcher=fetcher,
            constraints=options.build_constraints,
            answers=answers,
            replan=replan,
            recursive=not options.no_build_deps,
        )
        wanted = [
            gap
            for gap in plan.gaps()
            if gap.key in requested or (gap.build_only and not options.no_build_deps)
        ]
        jobs = [job for job in jobs_for(wanted, settings) if job.key not in final]
        if not jobs:
            break
        waiting = jobs
        deferred, used = _build_in_order(
            jobs,
            settings,
            wheelhouse,
            fetcher,
            answers,
            final,
            progress=progress,
            notice=notice,
            force=force,
            keep_going=keep_going,
        )
        containers += used
        if not deferred:
            break
        replan = deferred
    else:
        for job in waiting:
            final.setdefault(
                job.key,
                BuildOutcome(
                    job,
                    BuildStatus.FAILED,
                    error=f"its build requirements were still changing after {MAX_ROUNDS} "
                    "rounds of planning (each build asked for others): see its log",
                ),
            )
    order = {gap.key: index for index, gap in enumerate(plan.gaps())}
    outcomes = sorted(final.values(), key=lambda o: order.get(o.job.key, len(order)))
    return BuildReport(tuple(outcomes), containers, time.monotonic() - started)


def _build_portable(  # noqa: PLR0917 - internal helper of build_gaps
    gaps: Sequence[Gap],
    settings: Settings,
    wheelhouse: Wheelhouse,
    progress: ProgressCallback | None,
    notice: Callable[[str], object],
    force: bool,
    keep_going: bool,
) -> BuildReport:
    """Portable builds as before the closure: every gap at once, pip's own build isolation."""
    plain = [dataclasses.replace(gap, build_requires=None) for gap in gaps]
    jobs = jobs_for(plain, settings)
    with make_builders(settings, jobs, notice=notice) as builders:
        return _run_wave(
            jobs,
            settings,
            wheelhouse,
            SdistFetcher(),
            builders,
            BuildRequirementPolicy(),
            progress=progress,
            notice=notice,
            force=force,
            keep_going=keep_going,
        )


def _build_in_order(  # noqa: PLR0917 - internal helper of build_gaps
    jobs: Sequence[BuildJob],
    settings: Settings,
    wheelhouse: Wheelhouse,
    fetcher: SdistFetcher,
    answers: DynamicAnswers,
    final: dict[BuildKey, BuildOutcome],
    *,
    progress: ProgressCallback | None,
    notice: Callable[[str], object],
    force: bool,
    keep_going: bool,
) -> tuple[set[BuildKey], int]:
    """Build ``jobs`` wave by wave, each after the build requirements it needs; the outcomes
    go into ``final``. Returns the deferred jobs and how many containers started."""
    options = settings.build
    deferred: set[BuildKey] = set()
    containers = 0
    by_key = {job.key: job for job in jobs}
    waves = [
        [by_key[key] for key in wave]
        for wave in build_waves(
            list(by_key), lambda key: by_key[key].needs(), describe=_describe_key
        )
    ]
    with make_builders(settings, jobs, notice=notice) as builders:
        for wave in waves:
            ready = []
            for job in wave:
                blocked = _blocked_by(job, final, deferred)
                if blocked is None:
                    ready.append(job)
                elif blocked[0] is BuildStatus.FAILED:
                    final[job.key] = BuildOutcome(job, blocked[0], error=blocked[1])
                # else: waits for a deferred build requirement; the next round builds it
            if not ready:
                continue
            policy = BuildRequirementPolicy(
                hermetic=options.hermetic,
                answers=answers,
                built_now={k for k, o in final.items() if o.status is BuildStatus.BUILT},
            )
            report = _run_wave(
                ready,
                settings,
                wheelhouse,
                fetcher,
                builders,
                policy,
                progress=progress,
                notice=notice,
                force=force,
                keep_going=keep_going,
            )
            containers = max(containers, report.containers_started)  # one builder
            for outcome in report.outcomes:
                if outcome.status is BuildStatus.DEFERRED:
                    deferred.add(outcome.job.key)
                else:
                    final[outcome.job.key] = outcome
            if not keep_going and any(o.status is BuildStatus.FAILED for o in report.outcomes):
                for later in waves[waves.index(wave) + 1 :]:
                    for job in later:
                        final.setdefault(job.key, BuildOutcome(job, BuildStatus.SKIPPED))
                break
    return deferred, containers


def _describe_key(key: BuildKey) -> str:
    return f"{key[0]}=={key[1]} ({key[2]})"


def _blocked_by(
    job: BuildJob, final: dict[BuildKey, BuildOutcome], deferred: set[BuildKey]
) -> tuple[BuildStatus, str] | None:
    """Why ``job`` cannot build now: a build requirement of it failed (or waits for its own
    build requirements); None when it can."""
    for key in job.needs():
        if key in deferred:
            return BuildStatus.DEFERRED, f"its build requirement {key[0]}=={key[1]} waits"
        outcome = final.get(key)
        if outcome is not None and outcome.status in (BuildStatus.FAILED, BuildStatus.SKIPPED):
            return BuildStatus.FAILED, (
                f"its build requirement {key[0]}=={key[1]} for {key[2]} was not built "
                f"({outcome.status.value}: {outcome.error.partition(chr(10))[0] or 'see its log'})"
            )
    return None


def _run_wave(  # noqa: PLR0917 - internal helper of build_gaps
    jobs: list[BuildJob],
    settings: Settings,
    wheelhouse: Wheelhouse,
    fetcher: SdistFetcher,
    builders: Builders,
    policy: BuildRequirementPolicy,
    *,
    progress: ProgressCallback | None,
    notice: Callable[[str], object],
    force: bool,
    keep_going: bool,
) -> BuildReport:
    options = settings.build
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
        requirements=policy,
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
