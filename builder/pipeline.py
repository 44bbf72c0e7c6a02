"""``prewheel run``: plan, build the gaps, index, lock and verify, with an embedded index.

Each step is the library function the single-stage commands use; this module only sequences
them and serves the index tree over HTTP on the host's loopback for the verification.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import BuildsFailedError, HostEnvironmentError, PrewheelError
from .plan import Plan
from .targets import Target

_SERVER_START_TIMEOUT = 30.0


def tree_fingerprint(root: Path) -> str:
    """What a static tree serves, as one digest of what pip can see and install: every listed
    file's name, sha256, metadata digest and Requires-Python ("" for a tree without a catalog,
    which is then never taken as unchanged). Upload times are left out, so the same wheels
    indexed again into a new tree have the same fingerprint."""
    from .index.static import StaticIndex  # noqa: PLC0415

    index = StaticIndex(root)
    if not index.catalog_path.is_file():
        return ""
    try:
        records = index.catalog()
    except PrewheelError:
        return ""
    served = sorted(
        (r.filename, r.sha256, r.metadata_sha256, r.requires_python or "") for r in records.values()
    )
    return hashlib.sha256(json.dumps(served).encode()).hexdigest()


@contextlib.contextmanager
def serving(root: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the static index tree ``root`` read-only on a free port; yield its simple URL."""
    import uvicorn  # noqa: PLC0415

    from .index.server import create_app  # noqa: PLC0415

    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive request stalls about 40 ms (Nagle against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(root), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _SERVER_START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise HostEnvironmentError(
                f"The embedded index server for {root} did not start on {host}:{port}."
            )
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}/simple/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    plan: Plan
    built: int  # wheels built in this run
    reused: int  # gaps already in the wheelhouse
    index_added: int
    mirrored: int
    lock: Path
    dockerfile: Path
    verified: tuple[Any, ...]  # consume.verify.TargetResult per target
    seconds: dict[str, float]


def run_pipeline(
    inputs: Sequence[Path],
    targets: Sequence[Target],
    *,
    output: Path,
    wheelhouse_dir: Path | None = None,
    build_image: str | None = None,
    verify_image: str | None = None,
    verify_timeout: float = 1800.0,
    parallel: int = 1,
    verify: bool = True,
    reverify: bool = False,
    config: Any = None,
    log: Callable[[str], object] = lambda _line: None,
) -> PipelineResult:
    """Plan, build, index (complete mode), lock, write the example Dockerfile, verify.

    Layout of ``output``: ``wheelhouse/`` (unless ``wheelhouse_dir``), ``index/`` (static
    tree, the only index the lock needs), ``plan.json`` (the plan, for ``prewheel serve``'s
    pages and ``prewheel build --plan``), ``requirements.lock``, ``pylock.toml``,
    ``Dockerfile``.
    """
    from .plan import plan_requirements  # noqa: PLC0415
    from .wheelhouse import Wheelhouse  # noqa: PLC0415

    timer = _Timer()
    plan = plan_requirements(list(inputs), list(targets), config=config)
    timer.lap("plan")
    log(f"plan: {plan.summary()}")
    write_plan(plan, output / "plan.json")
    wheelhouse = Wheelhouse(wheelhouse_dir or output / "wheelhouse")
    built, reused = build_gaps(
        plan, wheelhouse, image=build_image, parallel=parallel, config=config, log=log
    )
    timer.lap("build")
    log(f"build: {built} built, {reused} reused from {wheelhouse.path}")
    index_root = output / "index"
    added, mirrored = complete_index(plan, wheelhouse, index_root)
    timer.lap("index")
    log(f"index: {added} built wheels added, {mirrored} upstream wheels mirrored into {index_root}")
    lock, dockerfile = write_lock_and_dockerfile(plan, wheelhouse, output)
    timer.lap("lock")
    log(f"lock: {lock}; example Dockerfile: {dockerfile}")
    results: tuple[Any, ...] = ()
    if verify:
        results = verify_served(
            plan,
            lock,
            index_root,
            image=verify_image,
            timeout=verify_timeout,
            log=log,
            reverify=reverify,
        )
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
    from .files import atomic_write_bytes  # noqa: PLC0415
    from .plan import plan_to_json  # noqa: PLC0415

    document = json.dumps(plan_to_json(plan), indent=2) + "\n"
    atomic_write_bytes(path, document.encode(), prefix=".tmp-")


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._clock, 2)
        self._clock = now


def build_gaps(
    plan: Plan,
    wheelhouse: Any,
    *,
    image: str | None,
    parallel: int = 1,
    config: Any = None,
    log: Callable[[str], object] = lambda _line: None,
) -> tuple[int, int]:
    """Build every gap not yet in the wheelhouse; (built now, reused). Raises on failure.

    ``config`` (a :class:`~builder.config.Config`) supplies the per-package settings
    (``[tool.prewheel.packages.<name>]``) and the builder's ``docker-host``, ``timeout`` and
    ``memory``, as for ``prewheel build``.
    """
    from .building import DockerBuilder, SdistFetcher, make_jobs, run_builds  # noqa: PLC0415
    from .building import Status as BuildStatus  # noqa: PLC0415
    from .building.runner import DEFAULT_HEARTBEAT, image_refusal  # noqa: PLC0415

    if config is not None:
        jobs = make_jobs(plan.gaps(), image=image, settings=config.package)
    else:
        jobs = make_jobs(plan.gaps(), image=image)
    if not jobs:
        return 0, 0
    builder = DockerBuilder.from_config(config, notice=log)
    try:
        report = run_builds(
            jobs,
            wheelhouse=wheelhouse,
            builder=builder,
            fetcher=SdistFetcher(),
            parallel=parallel,
            progress=lambda event: _log_event(event, log),
            heartbeat=float(config.get("heartbeat", DEFAULT_HEARTBEAT))
            if config is not None
            else DEFAULT_HEARTBEAT,
        )
    finally:
        builder.close()
    for outcome in report.fell_back:
        log(
            f"build: {outcome.job.label} was rebuilt emulated after the build with native "
            f"compilers failed ({outcome.fallback})"
        )
    if report.refused_images:
        raise image_refusal(report)
    if report.failed:
        raise BuildsFailedError(
            f"{len(report.failed)} of {len(report.outcomes)} builds failed: "
            + ", ".join(o.job.label for o in report.failed)
            + f". Their logs are under {wheelhouse.logs_dir}; fix the cause and rerun "
            "(finished wheels are kept)."
        )
    built = len(report.having(BuildStatus.BUILT))
    return built, len(report.outcomes) - built


def _log_event(event: Any, log: Callable[[str], object]) -> None:
    from .building.runner import describe_event  # noqa: PLC0415

    if (line := describe_event(event)) is not None:
        log(f"build: {line}")


def complete_index(plan: Plan, wheelhouse: Any, root: Path) -> tuple[int, int]:
    """Static index of the built wheels plus every upstream wheel the plan installs."""
    from .index.complete import HttpDownloader, mirror, upstream_files  # noqa: PLC0415
    from .index.static import StaticIndex  # noqa: PLC0415

    index = StaticIndex(root)
    # this plan's targets only: a shared wheelhouse may hold another target's wheel of the same
    # name (linux_armv6l for glibc 2.31 and 2.36), which one index cannot serve both of
    synced = index.sync(wheelhouse.wheels_for_one_index([t.identifier for t in plan.targets]))
    downloader = HttpDownloader()
    try:
        mirrored = mirror(index, upstream_files(plan), downloader)
    finally:
        downloader.close()
    return len(synced.added), len(mirrored.fetched)


def write_lock_and_dockerfile(plan: Plan, wheelhouse: Any, output: Path) -> tuple[Path, Path]:
    from .consume.dockerfile import (  # noqa: PLC0415
        SERVE_INDEX_URL,
        InstallOptions,
        example_dockerfile,
    )
    from .consume.lock import lock_lines, render_lock, write_lock  # noqa: PLC0415
    from .consume.pylock import DEFAULT_PYLOCK, pylock_document, render_pylock  # noqa: PLC0415

    lock = output / "requirements.lock"
    header = [
        "Generated by prewheel run for "
        + ", ".join(target.identifier for target in plan.targets)
        + "."
    ]
    lines = lock_lines(plan, wheelhouse.entries())
    write_lock(lock, render_lock(lines, header=header))
    # The same lock as PEP 751, its files named by URL on 'prewheel serve OUT/index' (default
    # address); 'prewheel lock --format pylock --our-index-url' writes it for another address.
    pylock = render_pylock(pylock_document(lines, SERVE_INDEX_URL, plan.targets))
    write_lock(output / DEFAULT_PYLOCK, pylock)
    dockerfile = output / "Dockerfile"
    options = InstallOptions(index_url=SERVE_INDEX_URL, lock_name=lock.name)
    write_lock(dockerfile, example_dockerfile(options))
    return lock, dockerfile


def verify_served(
    plan: Plan,
    lock: Path,
    index_root: Path,
    *,
    image: str | None,
    timeout: float,
    log: Callable[[str], object],
    reverify: bool = False,
) -> tuple[Any, ...]:
    """Serve the index on loopback and verify the lock on every planned target (a target
    verified before with the same inputs is not run again, unless ``reverify``)."""
    from .consume.verify import (  # noqa: PLC0415
        DEFAULT_IMAGE_TEMPLATE,
        DockerProbeRunner,
        default_verify_cache,
    )
    from .consume.verify import verify as verify_targets  # noqa: PLC0415

    def report(result: Any) -> None:
        state = "ok" if result.ok else "FAILED"
        how = (
            "unchanged since verified; --reverify runs it again"
            if result.cached
            else f"{len(result.installed)} installed in {result.install_seconds:.1f} s"
        )
        log(f"verify {result.platform}: {state} ({how})")

    with serving(index_root) as url:
        return tuple(
            verify_targets(
                lock,
                list(plan.targets),
                index_url=url,
                image_template=image or DEFAULT_IMAGE_TEMPLATE,
                runner=DockerProbeRunner(),
                timeout=timeout,
                progress=report,
                cache=default_verify_cache(),
                index_fingerprint=tree_fingerprint(index_root),
                reuse=not reverify,
            )
        )
