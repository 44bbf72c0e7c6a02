"""Orchestration: cache lookups, sdist verification, builds per step, keep-going, progress.

No printing here: callers pass a progress callback (the CLI renders it with rich) and get a
:class:`BuildReport` back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from .. import cmd
from ..closure import DynamicAnswers, read_build_system
from ..errors import ExitCode, ImageMismatchError, ImageUnavailableError, PrewheelError
from ..plan import BuildKey
from ..targets import Arch, Target
from ..wheelhouse import Wheelhouse
from .builders import (
    Builder,
    BuildResult,
    BuildSession,
    NativeBuildFailed,
)
from .checks import check_wheel
from .jobs import BuildJob, BuildStep, cache_key, group_steps
from .requirements import (
    BuildEnvironment,
    DynamicRequirementsFound,
    Origin,
    ProvidedRequirement,
    installed_records,
    missing_message,
    provide,
)
from .sdist import SdistFetcher
from .toolchain import Acceleration

TAIL_LINES = 15
_PIP_FAILURE = "did not run successfully"


class BuildStatus(enum.StrEnum):
    """What became of one build job (not :class:`builder.plan.Status`, a plan cell's)."""

    BUILT = "built"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted (--fail-fast after an earlier failure)
    # its backend asked for build requirements not planned yet: the build stage plans them
    # and builds it again (never in a final report)
    DEFERRED = "deferred"


@dataclasses.dataclass(frozen=True)
class BuildOutcome:
    job: BuildJob
    status: BuildStatus
    wheel: str = ""  # wheel filename in the wheelhouse
    log: Path | None = None
    error: str = ""
    tail: tuple[str, ...] = ()
    elapsed: float = 0.0
    native: bool = False  # compiled with a native toolchain (accelerated)
    fallback: str = ""  # why the accelerated build failed before an emulated rebuild succeeded
    cause: ExitCode | None = None  # FAILED before building: the exit code of what refused it
    # what its build environment held and where each came from (see requirements.Origin)
    build_requirements: tuple[Mapping[str, Any], ...] = ()
    dynamic: tuple[str, ...] = ()  # DEFERRED: what the backend asked for

    def to_json(self) -> dict[str, Any]:
        return {
            "name": str(self.job.name),
            "version": str(self.job.version),
            "target": self.job.target.identifier,
            "image": self.job.image,
            "status": self.status.value,
            "wheel": self.wheel,
            "log": str(self.log) if self.log else "",
            "error": self.error,
            "tail": list(self.tail),
            "elapsed": round(self.elapsed, 3),
            "accelerated": self.native,
            "fallback": self.fallback,
            "build_only": self.job.build_only,
            "build_requirements": [dict(r) for r in self.build_requirements],
        }


@dataclasses.dataclass(frozen=True)
class BuildReport:
    outcomes: tuple[BuildOutcome, ...]
    containers_started: int
    elapsed: float

    def having(self, status: BuildStatus) -> list[BuildOutcome]:
        return [o for o in self.outcomes if o.status is status]

    @property
    def failed(self) -> list[BuildOutcome]:
        return self.having(BuildStatus.FAILED)

    @property
    def accelerated(self) -> list[BuildOutcome]:
        return [o for o in self.outcomes if o.status is BuildStatus.BUILT and o.native]

    @property
    def refused_images(self) -> list[BuildOutcome]:
        """Failed because the step's image cannot build for the target (nothing started)."""
        return [o for o in self.failed if o.cause is ExitCode.IMAGE_MISMATCH]

    @property
    def fell_back(self) -> list[BuildOutcome]:
        """Built, but only by the emulated rebuild after the accelerated build failed."""
        return [o for o in self.outcomes if o.status is BuildStatus.BUILT and o.fallback]

    def build_requirement_lines(self) -> list[str]:
        """Per target: the build-only builds (their status), and where the built wheels'
        build environments took their build requirements from."""
        lines = []
        for target in sorted({o.job.target.identifier for o in self.outcomes}):
            outcomes = [o for o in self.outcomes if o.job.target.identifier == target]
            first = [
                f"{o.job.name}=={o.job.version} ({o.status.value})"
                for o in outcomes
                if o.job.build_only
            ]
            origins: dict[str, set[str]] = {}
            for outcome in outcomes:
                if outcome.status is not BuildStatus.BUILT:
                    continue
                for record in outcome.build_requirements:
                    pin = f"{record['name']}=={record['version']}"
                    origins.setdefault(str(record["origin"]), set()).add(pin)
            parts = [f"build-only: {', '.join(first)}"] if first else []
            for origin in ("built", "reused", "upstream", "fetched"):
                if origins.get(origin):
                    parts.append(f"installed {origin}: {', '.join(sorted(origins[origin]))}")
            if parts:
                lines.append(f"build requirements for {target}: " + "; ".join(parts))
        return lines

    def to_json(self) -> dict[str, Any]:
        counts = collections.Counter(o.status.value for o in self.outcomes)
        return {
            "summary": {
                s.value: counts.get(s.value, 0)
                for s in BuildStatus
                if s is not BuildStatus.DEFERRED
            }
            | {"accelerated": len(self.accelerated), "rebuilt_emulated": len(self.fell_back)},
            "containers_started": self.containers_started,
            "elapsed": round(self.elapsed, 3),
            "builds": [o.to_json() for o in self.outcomes],
        }


def image_refusal(report: BuildReport) -> ImageMismatchError:
    """The error for a run in which some steps' images were refused (it takes precedence over
    failed builds: nothing was attempted for those targets)."""
    refused = report.refused_images
    others = len(report.failed) - len(refused)
    reasons = " ".join(dict.fromkeys(o.error for o in refused))
    return ImageMismatchError(
        f"{len(refused)} of {len(report.outcomes)} builds were refused before anything started "
        f"({', '.join(o.job.label for o in refused)}). {reasons}"
        + (f" {others} other builds failed as well." if others else "")
    )


class EventKind(enum.StrEnum):
    STEP_STARTED = "step-started"
    JOB_STARTED = "job-started"
    JOB_FINISHED = "job-finished"
    STEP_FINISHED = "step-finished"
    HEARTBEAT = "heartbeat"  # a job (or, with no job, its step's set-up) is still running


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    kind: EventKind
    step: BuildStep
    job: BuildJob | None = None
    outcome: BuildOutcome | None = None
    note: str = ""  # STEP_STARTED: how the step compiles (native toolchain, or why emulated)
    elapsed: float = 0.0  # HEARTBEAT: seconds since the job (or the set-up) started


DEFAULT_HEARTBEAT = 60.0


def describe_event(event: ProgressEvent) -> str | None:
    """The plain line(s) for a progress event, as a CI log shows them (None: nothing to say)."""
    step, job = event.step, event.job
    if event.kind is EventKind.STEP_STARTED:
        line = f"starting {step.label}: {len(step.jobs)} to build"
        return f"{line}\n  {event.note}" if event.note else line
    if event.kind is EventKind.JOB_STARTED and job is not None:
        return f"building {job.label}"
    if event.kind is EventKind.HEARTBEAT:
        what = f"building {job.label}" if job is not None else f"setting up {step.label}"
        return f"still {what} ({_duration(event.elapsed)})"
    if event.kind is EventKind.JOB_FINISHED and job is not None and event.outcome is not None:
        line = f"{event.outcome.status.value} {job.label} ({event.outcome.elapsed:.0f} s)"
        if event.outcome.error:
            line += ": " + event.outcome.error.partition("\n")[0]
        return line
    return None


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@contextlib.contextmanager
def _heartbeat(
    notify: Callable[[ProgressEvent], None],
    step: BuildStep,
    job: BuildJob | None,
    interval: float,
) -> Iterator[None]:
    """While the block runs, a HEARTBEAT event every ``interval`` seconds (none if <= 0), so
    that a log nobody watches live shows the work is going on."""
    if interval <= 0:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(interval):
            notify(
                ProgressEvent(EventKind.HEARTBEAT, step, job, elapsed=time.monotonic() - started)
            )

    thread = threading.Thread(target=beat, name="prewheel-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


ProgressCallback = Callable[[ProgressEvent], None]


@dataclasses.dataclass(frozen=True)
class _Pending:
    job: BuildJob
    key: str
    inputs: dict[str, Any]
    sdist: Path
    provided: tuple[ProvidedRequirement, ...] | None = None  # None: pip's own isolation
    environment: BuildEnvironment | None = None  # made once the files are verified


@dataclasses.dataclass(frozen=True)
class BuildRequirementPolicy:
    """How builds get their build requirements (see :mod:`.requirements`)."""

    hermetic: bool = False
    answers: DynamicAnswers = dataclasses.field(default_factory=DynamicAnswers)
    built_now: Collection[BuildKey] = ()  # built earlier in this build: "built", not "reused"


def run_builds(
    jobs: Sequence[BuildJob],
    *,
    wheelhouse: Wheelhouse,
    builder: Builder,
    fetcher: SdistFetcher,
    parallel: int = 1,
    force: bool = False,
    keep_going: bool = True,
    progress: ProgressCallback | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
    requirements: BuildRequirementPolicy | None = None,
) -> BuildReport:
    """Build every job not already in the wheelhouse; never raise for a single failed build.

    ``progress`` receives every :class:`ProgressEvent`, among them a HEARTBEAT every
    ``heartbeat`` seconds while a set-up or a build runs. Jobs with planned build
    requirements install them from the files ``requirements`` allows (their build
    requirements must be built already: :func:`~builder.building.stage.build_gaps` orders
    them)."""
    policy = requirements or BuildRequirementPolicy()
    started = time.monotonic()
    notify = progress or (lambda _event: None)
    wheelhouse.remove_stale_temp_files()
    outcomes: list[BuildOutcome] = []
    work: list[tuple[BuildStep, list[_Pending]]] = []
    steps = group_steps(jobs)
    for step in steps:
        ready, done = _prepare_step(step, wheelhouse, builder, force, policy)
        outcomes.extend(done)
        if ready:
            builder.preflight(step.arch)
            work.append((step, ready))
    # Verify every sdist before any build code runs anywhere.
    verified_work = []
    for step, ready in work:
        verified, refused = _fetch_sdists(ready, fetcher, hermetic=policy.hermetic)
        outcomes.extend(refused)
        if verified:
            verified_work.append((step, verified))
    stop = threading.Event()
    cmd.resume()  # after an interrupted run in this process
    if not keep_going and any(o.status is BuildStatus.FAILED for o in outcomes):
        stop.set()

    def run_step(item: tuple[BuildStep, list[_Pending]]) -> list[BuildOutcome]:
        step, pending = item
        return _run_step(
            step, pending, wheelhouse, builder, notify, stop, keep_going, heartbeat, policy.answers
        )

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        try:
            for result in pool.map(run_step, verified_work):
                outcomes.extend(result)
        except BaseException:  # Ctrl-C reaches this thread only: stop the workers' work too
            stop.set()
            cmd.kill_running()
            raise
    order = {_identity(job): index for index, job in enumerate(jobs)}
    outcomes.sort(key=lambda o: order.get(_identity(o.job), len(order)))
    return BuildReport(tuple(outcomes), builder.containers_started, time.monotonic() - started)


def _prepare_step(
    step: BuildStep,
    wheelhouse: Wheelhouse,
    builder: Builder,
    force: bool,
    policy: BuildRequirementPolicy,
) -> tuple[list[_Pending], list[BuildOutcome]]:
    try:
        digest = builder.image_digest(step.image, step.arch)
    except ImageUnavailableError as error:
        return [], [_failure(job, error.message) for job in step.jobs]
    try:
        compilers = builder.compiler_key(step.image, step.arch)
    except ImageUnavailableError as error:
        return [], [_failure(job, error.message) for job in step.jobs]
    refusals = _image_refusals(step, builder)
    pending, done = [], []
    for job in step.jobs:
        refusal = refusals.get(job.target)
        if refusal is not None:
            done.append(_failure(job, refusal.message, cause=refusal.exit_code))
            continue
        provided, refusal_text = _build_requirements(job, wheelhouse, policy)
        if refusal_text:
            done.append(_failure(job, refusal_text))
            continue
        try:
            inputs = job.inputs(
                digest,
                toolchain=compilers,
                build_requirements=None if provided is None else [p.key_line for p in provided],
            )
        except PrewheelError as error:
            done.append(_failure(job, error.message))
            continue
        key = cache_key(inputs)
        entry = None if force else wheelhouse.lookup(key)
        if entry is not None:
            log = wheelhouse.path / entry.log if entry.log else None
            done.append(
                BuildOutcome(
                    job,
                    BuildStatus.CACHED,
                    wheel=entry.filename,
                    log=log,
                    build_requirements=tuple(entry.build_requirements),
                )
            )
        else:
            pending.append(_Pending(job, key, inputs, Path(), provided))
    return pending, done


def _build_requirements(
    job: BuildJob, wheelhouse: Wheelhouse, policy: BuildRequirementPolicy
) -> tuple[tuple[ProvidedRequirement, ...] | None, str]:
    """The files offered for the job's build requirements (None: not planned, pip's own
    isolation), or why a hermetic build cannot start."""
    if job.build_requires is None or job.closure_problem:
        if policy.hermetic:
            why = job.closure_problem or "its build requirements were not planned"
            return None, (
                f"--hermetic: {job.label} cannot be built from prewheel's files alone: {why}. "
                "Fix that (see the message), or drop --hermetic."
            )
        return None, ""
    provided = provide(job, wheelhouse, policy.built_now)
    missing = [p for p in provided if p.origin is Origin.MISSING]
    if missing and policy.hermetic:
        return provided, missing_message(job, missing)
    return provided, ""


def _image_refusals(step: BuildStep, builder: Builder) -> dict[Target, PrewheelError]:
    """Per target of the step, why its image cannot build for it (before any cache lookup:
    a wrong image is reported even when every wheel is cached)."""
    refusals = {}
    for target in dict.fromkeys(job.target for job in step.jobs):
        try:
            builder.check_image(step.image, target)
        except PrewheelError as error:
            refusals[target] = error
    return refusals


def _fetch_sdists(
    pending: Iterable[_Pending], fetcher: SdistFetcher, *, hermetic: bool
) -> tuple[list[_Pending], list[BuildOutcome]]:
    """Download and verify each job's sdist and the index files of its build requirements."""
    verified, refused = [], []
    for item in pending:
        try:
            path = fetcher.fetch(item.job.sdist, item.job.sdist_sha256)
            environment = _environment(item, path, fetcher, hermetic=hermetic)
        except PrewheelError as error:
            refused.append(_failure(item.job, error.message))
            continue
        verified.append(dataclasses.replace(item, sdist=path, environment=environment))
    return verified, refused


def _environment(
    item: _Pending, sdist: Path, fetcher: SdistFetcher, *, hermetic: bool
) -> BuildEnvironment | None:
    """The build environment of a job with planned build requirements: its sdist's build
    system and the offered files, each index file downloaded and checked against its sha256."""
    if item.provided is None:
        return None
    offered = [
        dataclasses.replace(offer, path=fetcher.fetch(offer.dist, offer.sha256))
        if offer.dist is not None and offer.path is None
        else offer
        for offer in item.provided
    ]
    return BuildEnvironment(
        read_build_system(sdist),
        tuple(offered),
        hermetic=hermetic,
        known_dynamic=item.job.known_dynamic,
    )


def _run_step(  # noqa: PLR0917 - internal helper, called once
    step: BuildStep,
    pending: list[_Pending],
    wheelhouse: Wheelhouse,
    builder: Builder,
    notify: ProgressCallback,
    stop: threading.Event,
    keep_going: bool,
    heartbeat: float,
    answers: DynamicAnswers,
) -> list[BuildOutcome]:
    if stop.is_set():
        return [BuildOutcome(p.job, BuildStatus.SKIPPED) for p in pending]
    step = dataclasses.replace(step, jobs=tuple(p.job for p in pending))  # what runs here
    with _heartbeat(notify, step, None, heartbeat):  # may assemble a toolchain for minutes
        acceleration = builder.acceleration(step.image, step.arch)
    notify(ProgressEvent(EventKind.STEP_STARTED, step, note=acceleration.describe()))
    outcomes: list[BuildOutcome] = []
    with wheelhouse.scratch_dir() as scratch_name:
        scratch = Path(scratch_name)
        setup_log = scratch / "setup.log"
        with setup_log.open("w+b") as setup_stream:
            try:
                with contextlib.ExitStack() as stack:
                    with _heartbeat(notify, step, None, heartbeat):
                        session = stack.enter_context(
                            builder.session(step.image, step.arch, setup_stream)
                        )
                    setup_stream.flush()
                    for item in pending:
                        if stop.is_set():
                            outcomes.append(BuildOutcome(item.job, BuildStatus.SKIPPED))
                            continue
                        notify(ProgressEvent(EventKind.JOB_STARTED, step, item.job))
                        with _heartbeat(notify, step, item.job, heartbeat):
                            outcome = _build_one(
                                item, session, wheelhouse, scratch, setup_log, acceleration, answers
                            )
                        outcomes.append(outcome)
                        notify(ProgressEvent(EventKind.JOB_FINISHED, step, item.job, outcome))
                        if outcome.status is BuildStatus.FAILED and not keep_going:
                            stop.set()
            except PrewheelError as error:
                setup_stream.write(f"\n[prewheel] FAILED: setting up failed: {error}\n".encode())
                setup_stream.flush()
                done = {_identity(o.job) for o in outcomes}
                for item in pending:
                    if _identity(item.job) in done:
                        continue
                    log = _store_log(wheelhouse, item.job, scratch, setup_log, None)
                    outcome = _failure(item.job, f"Setting up {step.label} failed: {error}", log)
                    outcomes.append(outcome)
                    notify(ProgressEvent(EventKind.JOB_FINISHED, step, item.job, outcome))
                if not keep_going:
                    stop.set()
    notify(ProgressEvent(EventKind.STEP_FINISHED, step))
    return outcomes


def _build_one(  # noqa: PLR0917 - internal helper, called once
    item: _Pending,
    session: BuildSession,
    wheelhouse: Wheelhouse,
    scratch: Path,
    setup_log: Path,
    acceleration: Acceleration,
    answers: DynamicAnswers,
) -> BuildOutcome:
    """Build and check one wheel; a build that compiled natively and failed is redone fully
    emulated (one that never got to compile natively is not: it would fail the same way).
    A backend that asks for unplanned build requirements gets its answer recorded and the
    job DEFERRED."""
    job = item.job
    started = time.monotonic()
    job_log = scratch / f"{job.label}.log"
    out_dir = scratch / f"out-{job.label}"
    fallback = ""
    with job_log.open("wb") as stream:
        _header(stream, job, item)
        try:
            try:
                result = _build_and_check(session, item, out_dir, stream, native=True)
            except NativeBuildFailed as error:
                fallback = error.message
                stream.write(
                    f"\n[prewheel] the build with native compilers failed ({fallback}); "
                    "rebuilding it with the image's own compilers under emulation\n\n".encode()
                )
                result = _build_and_check(session, item, out_dir, stream, native=False)
        except DynamicRequirementsFound as found:
            if job.known_dynamic is not None and sorted(found.requires) == sorted(
                job.known_dynamic
            ):
                message = (
                    "the build stopped for dynamic build requirements it already had "
                    f"({', '.join(found.requires) or 'none'}): a command in it exited 75?"
                )
                stream.write(f"\n[prewheel] FAILED: {message}\n".encode())
                stream.close()
                log = _store_log(wheelhouse, job, scratch, setup_log, job_log)
                return _failure(job, message, log, time.monotonic() - started)
            answers.record(job.sdist_sha256, job.target.identifier, found.requires)
            stream.write(f"\n[prewheel] deferred: {found.message}\n".encode())
            stream.close()
            log = _store_log(wheelhouse, job, scratch, setup_log, job_log)
            return BuildOutcome(
                job,
                BuildStatus.DEFERRED,
                log=log,
                error=found.message,
                elapsed=time.monotonic() - started,
                dynamic=found.requires,
            )
        except PrewheelError as error:
            message = error.message
            if fallback:
                message = f"{message} (the accelerated build failed first: {fallback})"
            stream.write(f"\n[prewheel] FAILED: {message}\n".encode())
            stream.close()
            log = _store_log(wheelhouse, job, scratch, setup_log, job_log)
            return _failure(job, message, log, time.monotonic() - started)
        wheel = result.wheels[0]
        if result.dynamic is not None:
            answers.record(job.sdist_sha256, job.target.identifier, result.dynamic)
        records = installed_records(item.provided or (), result.installed)
        how = _how_compiled(acceleration, result, job.arch)
        stream.write(f"\n[prewheel] built {wheel.name} (compiled {how})\n".encode())
    log = _store_log(wheelhouse, job, scratch, setup_log, job_log)
    wheelhouse.add(
        wheel,
        name=str(job.name),
        version=str(job.version),
        target=job.target.identifier,
        cache_key=item.key,
        inputs=item.inputs,
        builder=f"{job.image} ({job.docker_platform})",
        log=log,
        compilers=_compilers_record(acceleration, result, fallback),
        build_requirements=records,
    )
    return BuildOutcome(
        job,
        BuildStatus.BUILT,
        wheel=wheel.name,
        log=log,
        elapsed=time.monotonic() - started,
        native=result.toolchain is not None,
        fallback=fallback,
        build_requirements=records,
    )


def _build_and_check(
    session: BuildSession, item: _Pending, out_dir: Path, stream: IO[bytes], *, native: bool
) -> BuildResult:
    job = item.job
    shutil.rmtree(out_dir, ignore_errors=True)
    stream.flush()
    started_at = stream.tell()
    result = session.build(
        job, item.sdist, out_dir, stream, native=native, environment=item.environment
    )
    try:
        if result.toolchain is not None and _compiler_crashed(stream, started_at):
            # e.g. an optional extension whose failure the package swallows: its wheel would
            # lack the native code that an emulated build includes
            raise PrewheelError("a native compiler crashed (internal compiler error) in the build")
        if len(result.wheels) != 1:
            raise PrewheelError(
                f"The build produced {len(result.wheels)} wheels "
                f"({[w.name for w in result.wheels]}), expected exactly one."
            )
        notes = check_wheel(result.wheels[0], name=job.name, version=job.version, target=job.target)
    except PrewheelError as error:
        if result.toolchain is not None:
            raise NativeBuildFailed(error.message) from error
        raise
    stream.write("".join(f"\n[prewheel] {note}" for note in notes).encode())
    return result


def _compiler_crashed(stream: IO[bytes], since: int) -> bool:
    """Whether the build's output since ``since`` reports a compiler crash."""
    stream.flush()
    with Path(stream.name).open("rb") as log:
        log.seek(since)
        return b"internal compiler error" in log.read()


def _how_compiled(acceleration: Acceleration, result: BuildResult, arch: Arch) -> str:
    """For the log: with a native toolchain, emulated (there is a reason it was not
    accelerated), or natively because the build machine's CPU runs the platform (amd64, 386)."""
    if result.toolchain is not None:
        return f"natively with {result.toolchain.label}"
    if result.note or acceleration.reason:
        return "emulated"
    return f"natively: the build machine's CPU runs {arch.docker_platform}"


def _compilers_record(
    acceleration: Acceleration, result: BuildResult, fallback: str
) -> dict[str, Any]:
    """The manifest's ``compilers`` field."""
    reason = result.note or acceleration.reason
    if fallback:
        reason = "the accelerated build failed"
    return {
        "native": result.toolchain is not None,
        "toolchain": result.toolchain.record() if result.toolchain else None,
        "fallback": fallback,
        "reason": "" if result.toolchain else reason,
    }


def _header(stream: IO[bytes], job: BuildJob, item: _Pending) -> None:
    lines = [
        f"[prewheel] building {job.sdist.filename} for {job.target.identifier}",
        f"[prewheel] image {job.image} ({job.docker_platform}), cache key {item.key}",
    ]
    if job.known_dynamic:
        lines.append(
            "[prewheel] its backend's dynamic build requirements (recorded by its first "
            f"build): {', '.join(job.known_dynamic)}"
        )
    if job.closure_problem:
        lines.append(f"[prewheel] pip's own build isolation: {job.closure_problem}")
    lines.append("")
    stream.write("\n".join(lines).encode())


def _store_log(
    wheelhouse: Wheelhouse, job: BuildJob, scratch: Path, setup_log: Path, job_log: Path | None
) -> Path:
    combined = scratch / f"combined-{job.label}.log"
    with combined.open("wb") as out:
        out.write(b"[prewheel] ---- container setup ----\n")
        out.write(setup_log.read_bytes())
        if job_log is not None:
            out.write(b"[prewheel] ---- build ----\n")
            out.write(job_log.read_bytes())
    return wheelhouse.add_log(job.label, combined)


def _identity(job: BuildJob) -> tuple[str, str]:
    return job.label, job.image


def _failure(
    job: BuildJob,
    message: str,
    log: Path | None = None,
    elapsed: float = 0.0,
    cause: ExitCode | None = None,
) -> BuildOutcome:
    return BuildOutcome(
        job,
        BuildStatus.FAILED,
        log=log,
        error=message,
        tail=_tail(log),
        elapsed=elapsed,
        cause=cause,
    )


def _tail(log: Path | None, lines: int = TAIL_LINES) -> tuple[str, ...]:
    """The end of a failed build's log. pip (verbose, as the builds run it) follows the
    backend's error with a boxed summary ("Building wheel for X did not run successfully ...
    See above for output."), so the lines before that summary are the ones that say why."""
    if log is None or not log.is_file():
        return ()
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    summaries = [i for i, line in enumerate(text) if _PIP_FAILURE in line]
    if not summaries:
        return tuple(text[-lines:])
    last = summaries[-1]
    return (*text[max(0, last - lines + 3) : last + 1], *text[-2:])
