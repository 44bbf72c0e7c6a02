"""``prewheel run``: plan, build the gaps, index, lock and verify, with an embedded index.

Each step is the façade the single-stage commands call (:func:`~builder.plan.plan_requirements`,
:func:`~builder.building.stage.build_gaps`, :func:`~builder.index.complete.write_index`, the
consume stage's lock, pylock and Dockerfile writers, :func:`~builder.consume.verify.verify`
behind :func:`~builder.index.server.serving`); this module only sequences them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .building.runner import BuildReport, BuildStatus, ProgressEvent, describe_event
from .building.stage import build_gaps, plan_build_requirements, raise_for_failures
from .consume.dockerfile import SERVE_INDEX_URL, InstallOptions, example_dockerfile
from .consume.lock import lock_lines, render_lock
from .consume.pylock import DEFAULT_PYLOCK, pylock_document, render_pylock
from .consume.verify import DockerProbeRunner, TargetResult, default_verify_cache, verify
from .files import atomic_write
from .index.complete import write_index
from .index.server import serving, tree_fingerprint
from .index.static import StaticIndex
from .options import Settings
from .plan import Plan, plan_requirements, plan_to_json
from .wheelhouse import Wheelhouse

Log = Callable[[str], object]


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    plan: Plan
    built: int  # wheels built in this run
    reused: int  # gaps already in the wheelhouse
    index_added: int
    mirrored: int
    lock: Path
    dockerfile: Path
    verified: tuple[TargetResult, ...]
    seconds: dict[str, float]


def run_pipeline(
    inputs: Sequence[Path],
    settings: Settings,
    *,
    output: Path,
    verify: bool = True,
    reverify: bool = False,
    log: Log = lambda _line: None,
) -> PipelineResult:
    """Plan, build, index (complete mode), lock, write the example Dockerfile, verify.

    Layout of ``output``: ``wheelhouse/`` (unless the settings name a wheelhouse), ``index/``
    (static tree, the only index the lock needs), ``plan.json`` (the plan, for ``prewheel
    serve``'s pages and ``prewheel build --plan``), ``requirements.lock``, ``pylock.toml``,
    ``Dockerfile``.
    """
    timer = _Timer()
    plan = plan_requirements(list(inputs), settings.targets.targets(), settings.indexes)
    plan = plan_build_requirements(plan, settings)
    timer.lap("plan")
    log(f"plan: {plan.summary()}")
    write_plan(plan, output / "plan.json")
    wheelhouse = Wheelhouse(settings.build.wheelhouse or output / "wheelhouse")
    report = build_gaps(
        plan.gaps(),
        settings,
        wheelhouse,
        index_urls=plan.index_urls,
        progress=lambda event: _log_event(event, log),
        notice=log,
    )
    _log_fallbacks(report, log)
    raise_for_failures(report, wheelhouse)
    built = len(report.having(BuildStatus.BUILT))
    reused = len(report.outcomes) - built
    timer.lap("build")
    log(f"build: {built} built, {reused} reused from {wheelhouse.path}")
    for line in report.build_requirement_lines():
        log(f"build: {line}")
    index_root = output / "index"
    # this plan's targets only: a shared wheelhouse may hold another target's wheel of the same
    # name (linux_armv6l for glibc 2.31 and 2.36), which one index cannot serve both of
    wheels = wheelhouse.wheels_for_one_index([t.identifier for t in plan.targets])
    written = write_index(StaticIndex(index_root), wheels, plan=plan)
    added = len(written.synced.added)
    mirrored = len(written.mirrored.fetched) if written.mirrored else 0
    timer.lap("index")
    log(f"index: {added} built wheels added, {mirrored} upstream wheels mirrored into {index_root}")
    for note in written.mirrored.notes if written.mirrored else ():
        log(f"index: note: {note}")
    lock, dockerfile = write_consumer_files(plan, wheelhouse, output)
    timer.lap("lock")
    log(f"lock: {lock}; example Dockerfile: {dockerfile}")
    results: tuple[TargetResult, ...] = ()
    if verify:
        results = verify_served(plan, lock, index_root, settings, log=log, reverify=reverify)
        timer.lap("verify")
    return PipelineResult(
        plan=plan,
        built=built,
        reused=reused,
        index_added=added,
        mirrored=mirrored,
        lock=lock,
        dockerfile=dockerfile,
        verified=results,
        seconds=timer.seconds,
    )


def write_plan(plan: Plan, path: Path) -> None:
    """The plan as ``prewheel plan --json`` prints it, written atomically."""
    document = json.dumps(plan_to_json(plan), indent=2) + "\n"
    atomic_write(path, document)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._clock, 2)
        self._clock = now


def _log_event(event: ProgressEvent, log: Log) -> None:
    if (line := describe_event(event)) is not None:
        log(f"build: {line}")


def _log_fallbacks(report: BuildReport, log: Log) -> None:
    for outcome in report.fell_back:
        log(
            f"build: {outcome.job.label} was rebuilt emulated after the build with native "
            f"compilers failed ({outcome.fallback})"
        )


def write_consumer_files(plan: Plan, wheelhouse: Wheelhouse, output: Path) -> tuple[Path, Path]:
    """``requirements.lock``, ``pylock.toml`` and the example ``Dockerfile`` in ``output``;
    (the lock, the Dockerfile)."""
    lock = output / "requirements.lock"
    header = [
        "Generated by prewheel run for "
        + ", ".join(target.identifier for target in plan.targets)
        + "."
    ]
    lines = lock_lines(plan, wheelhouse.entries())
    atomic_write(lock, render_lock(lines, header=header))
    # The same lock as PEP 751, its files named by URL on 'prewheel serve OUT/index' (default
    # address); 'prewheel lock --format pylock --our-index-url' writes it for another address.
    pylock = render_pylock(pylock_document(lines, SERVE_INDEX_URL, plan.targets))
    atomic_write(output / DEFAULT_PYLOCK, pylock)
    dockerfile = output / "Dockerfile"
    options = InstallOptions(index_url=SERVE_INDEX_URL, lock_name=lock.name)
    atomic_write(dockerfile, example_dockerfile(options))
    return lock, dockerfile


def verify_served(
    plan: Plan,
    lock: Path,
    index_root: Path,
    settings: Settings,
    *,
    log: Log,
    reverify: bool = False,
) -> tuple[TargetResult, ...]:
    """Serve the index on loopback and verify the lock on every planned target (a target
    verified before with the same inputs is not run again, unless ``reverify``)."""
    options = settings.verify
    binfmt_dir = settings.build.binfmt_dir
    runner = DockerProbeRunner(binfmt_dir=binfmt_dir) if binfmt_dir else DockerProbeRunner()

    def report(result: TargetResult) -> None:
        state = "ok" if result.ok else "FAILED"
        how = (
            "unchanged since verified; --reverify runs it again"
            if result.cached
            else f"{len(result.installed)} installed in {result.install_seconds:.1f} s"
        )
        log(f"verify {result.platform}: {state} ({how})")

    with serving(index_root) as url:
        return tuple(
            verify(
                lock,
                list(plan.targets),
                index_url=url,
                image_template=options.verify_image,
                runner=runner,
                timeout=options.verify_timeout,
                progress=report,
                cache=default_verify_cache(),
                index_fingerprint=tree_fingerprint(index_root),
                reuse=not reverify,
                installer=options.installer,
            )
        )
