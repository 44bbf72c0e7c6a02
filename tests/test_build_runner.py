"""The orchestration with an in-memory builder: cache, keep-going, fail-fast, setup failures,
progress events. (Real Docker builds are in test_build_docker.py / test_build_emulation.py.)"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from build_fixtures.helpers import gap
from build_fixtures.sdists import make_sdist

from builder import cmd
from builder.building import SdistFetcher, make_jobs, run_builds
from builder.building.builders import BuildFailed, BuildResult
from builder.building.jobs import BuildJob, group_steps
from builder.building.runner import BuildStatus, EventKind, ProgressEvent, describe_event
from builder.building.toolchain import NATIVE, Acceleration
from builder.errors import ExitCode, ImageMismatchError
from builder.targets import Arch, Target
from builder.wheelhouse import Wheelhouse


class FakeSession:
    toolchain = None

    def __init__(self, builder: FakeBuilder) -> None:
        self.builder = builder

    def build(
        self,
        job: BuildJob,
        sdist: Path,
        out_dir: Path,
        log: IO[bytes],
        *,
        native: bool = True,
        environment: object = None,
    ) -> BuildResult:
        self.builder.built.append(job.label)
        log.write(f"compiling {sdist.name}\n".encode())
        if job.name in self.builder.failing:
            log.write(b"error: something broke\n")
            raise BuildFailed("pip wheel failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel = out_dir / f"{job.name}-{job.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{job.name}.py", "")
        return BuildResult((wheel,))


class FakeBuilder:
    name = "fake"

    def __init__(
        self,
        failing: set[str] = frozenset(),  # type: ignore[assignment]
        setup_fails: bool = False,
        refused_archs: set[Arch] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        self.failing = failing
        self.setup_fails = setup_fails
        self.refused_archs = refused_archs
        self.containers_started = 0
        self.built: list[str] = []
        self.preflighted: list[Arch] = []

    def preflight(self, arch: Arch) -> None:
        assert isinstance(arch, Arch)  # not a platform string
        self.preflighted.append(arch)

    def image_digest(self, image: str, arch: Arch) -> str:
        return "sha256:fake"

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        return NATIVE

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        return None

    def close(self) -> None:
        pass

    def check_image(self, image: str, target: Target) -> None:
        if target.arch in self.refused_archs:
            raise ImageMismatchError(f"{image} is ARMv7 code, {target.identifier} needs ARMv6")

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[FakeSession]:
        assert isinstance(arch, Arch)
        self.containers_started += 1
        setup_log.write(b"setting up\n")
        if self.setup_fails:
            raise BuildFailed("setup failed")
        yield FakeSession(self)


def jobs_for(
    tmp_path: Path, *names: str, platforms: tuple[str, ...] = ("linux/amd64",)
) -> list[BuildJob]:
    gaps = [gap(make_sdist(tmp_path / "sdists", name), p) for name in names for p in platforms]
    return make_jobs(gaps, image="img:{debian_arch}")


def run(tmp_path: Path, jobs: list[BuildJob], builder: FakeBuilder, **options: object):  # type: ignore[no-untyped-def]
    return run_builds(
        jobs,
        wheelhouse=Wheelhouse(tmp_path / "wh"),
        builder=builder,
        fetcher=SdistFetcher(tmp_path / "cache"),
        **options,  # type: ignore[arg-type]
    )


def test_keeps_going_and_reports_the_log_tail(tmp_path: Path) -> None:
    builder = FakeBuilder(failing={"bad"})
    report = run(tmp_path, jobs_for(tmp_path, "bad", "good"), builder)
    statuses = {o.job.name: o.status for o in report.outcomes}
    assert statuses == {"bad": BuildStatus.FAILED, "good": BuildStatus.BUILT}
    failed = report.failed[0]
    assert failed.log is not None and failed.log.name == "bad-1.0-cp311-manylinux_2_36_x86_64.log"
    assert "error: something broke" in failed.tail
    assert "setting up" in failed.log.read_text()  # the container setup is in every log
    assert report.containers_started == 1


def test_fail_fast_skips_the_rest(tmp_path: Path) -> None:
    builder = FakeBuilder(failing={"aaa"})
    report = run(tmp_path, jobs_for(tmp_path, "aaa", "bbb"), builder, keep_going=False)
    assert [o.status for o in report.outcomes] == [BuildStatus.FAILED, BuildStatus.SKIPPED]


def test_cached_wheels_start_no_session(tmp_path: Path) -> None:
    jobs = jobs_for(tmp_path, "one", "two")
    run(tmp_path, jobs, FakeBuilder())
    again = FakeBuilder()
    report = run(tmp_path, jobs, again)
    assert [o.status for o in report.outcomes] == [BuildStatus.CACHED, BuildStatus.CACHED]
    assert again.containers_started == 0 and again.built == []
    forced = FakeBuilder()
    assert {o.status for o in run(tmp_path, jobs, forced, force=True).outcomes} == {
        BuildStatus.BUILT
    }


def test_a_failed_setup_fails_every_job_of_the_step_only(tmp_path: Path) -> None:
    builder = FakeBuilder(setup_fails=True)
    report = run(tmp_path, jobs_for(tmp_path, "x", "y"), builder)
    assert [o.status for o in report.outcomes] == [BuildStatus.FAILED, BuildStatus.FAILED]
    assert all("setup failed" in o.error for o in report.outcomes)
    assert all(o.log is not None and "setting up" in o.log.read_text() for o in report.outcomes)
    # each job's log says why it failed, not only what the set-up printed
    assert all(
        "[prewheel] FAILED: setting up failed: setup failed" in o.log.read_text()
        for o in report.outcomes
    )  # type: ignore[union-attr]
    assert describe_event(
        ProgressEvent(
            EventKind.JOB_FINISHED,
            group_steps(report_jobs := [o.job for o in report.outcomes])[0],
            report_jobs[0],
            report.outcomes[0],
        )
    ).endswith("(0 s): Setting up img:amd64 (linux/amd64) failed: setup failed")  # type: ignore[union-attr]


def test_one_session_per_platform_and_progress_events(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    builder = FakeBuilder()
    jobs = jobs_for(tmp_path, "p", "q", platforms=("linux/amd64", "linux/arm64"))
    report = run(tmp_path, jobs, builder, parallel=2, progress=events.append)
    assert builder.containers_started == 2
    assert sorted(builder.preflighted) == [Arch.AARCH64, Arch.X86_64]
    assert len(report.having(BuildStatus.BUILT)) == 4
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.STEP_STARTED) == 2 and kinds.count(EventKind.JOB_FINISHED) == 4
    for step_label in {e.step.label for e in events}:
        mine = [e.kind for e in events if e.step.label == step_label]
        assert mine[0] is EventKind.STEP_STARTED and mine[-1] is EventKind.STEP_FINISHED


def test_outcomes_follow_job_order_and_serialise(tmp_path: Path) -> None:
    jobs = jobs_for(tmp_path, "c", "a", "b")
    report = run(tmp_path, jobs, FakeBuilder())
    assert [o.job.label for o in report.outcomes] == [j.label for j in jobs]
    data = report.to_json()
    assert data["summary"]["built"] == 3 and len(data["builds"]) == 3


def test_a_refused_image_fails_its_targets_jobs_before_any_session_or_cache(
    tmp_path: Path,
) -> None:
    jobs = jobs_for(tmp_path, "p", "q", platforms=("linux/arm/v6", "linux/amd64"))
    run(tmp_path, jobs, FakeBuilder())  # every wheel cached: the refusal does not hide behind it
    builder = FakeBuilder(refused_archs={Arch.ARMV6L})
    report = run(tmp_path, jobs, builder)
    refused = report.refused_images
    assert sorted(o.job.label for o in refused) == [
        "p-1.0-cp311-glibc_2_36_armv6l",
        "q-1.0-cp311-glibc_2_36_armv6l",
    ]
    assert all(o.cause is ExitCode.IMAGE_MISMATCH and "ARMv7" in o.error for o in refused)
    assert len(report.having(BuildStatus.CACHED)) == 2 and report.failed == refused
    assert builder.containers_started == 0 and builder.built == []


class SlowSession(FakeSession):
    def build(
        self,
        job: BuildJob,
        sdist: Path,
        out_dir: Path,
        log: IO[bytes],
        *,
        native: bool = True,
        environment: object = None,
    ) -> BuildResult:
        time.sleep(1.0)
        return super().build(job, sdist, out_dir, log, native=native)


class SlowBuilder(FakeBuilder):
    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[FakeSession]:
        time.sleep(0.6)  # the set-up
        yield SlowSession(self)


def test_a_long_build_sends_heartbeats_until_it_ends(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    run(tmp_path, jobs_for(tmp_path, "slow"), SlowBuilder(), progress=events.append, heartbeat=0.2)
    beats = [e for e in events if e.kind is EventKind.HEARTBEAT]
    set_up = [e for e in beats if e.job is None]
    building = [e for e in beats if e.job is not None]
    assert len(set_up) >= 1 and len(building) >= 3
    assert [e.elapsed for e in building] == sorted(e.elapsed for e in building)
    kinds = [e.kind for e in events]
    # none after the job finished
    assert kinds.index(EventKind.JOB_FINISHED) > max(
        i for i, kind in enumerate(kinds) if kind is EventKind.HEARTBEAT
    )
    assert describe_event(building[0]) == f"still building {building[0].job.label} (0 s)"  # type: ignore[union-attr]
    assert describe_event(set_up[0]).startswith("still setting up img:amd64 (linux/amd64)")  # type: ignore[union-attr]


def test_no_heartbeat_when_switched_off(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    run(tmp_path, jobs_for(tmp_path, "slow"), SlowBuilder(), progress=events.append, heartbeat=0)
    assert EventKind.HEARTBEAT not in [e.kind for e in events]


class CommandSession(FakeSession):
    """Builds by running a host command through builder.cmd, as the local builder does."""

    def build(
        self,
        job: BuildJob,
        sdist: Path,
        out_dir: Path,
        log: IO[bytes],
        *,
        native: bool = True,
        environment: object = None,
    ) -> BuildResult:
        pid_file = self.builder.pid_file  # type: ignore[attr-defined]
        cmd.run(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], timeout=120)
        return super().build(job, sdist, out_dir, log, native=native)


class CommandBuilder(FakeBuilder):
    def __init__(self, pid_file: Path) -> None:
        super().__init__()
        self.pid_file = pid_file

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[FakeSession]:
        yield CommandSession(self)


def test_ctrl_c_stops_the_commands_that_build_in_worker_threads(tmp_path: Path) -> None:
    """Host commands run in sessions of their own, so the terminal's SIGINT reaches only
    prewheel's main thread; it must kill them, not wait for them to finish. (A process of its
    own: pytest-xdist's workers do not take SIGINT.)"""
    pid_file = tmp_path / "sleep.pid"
    script = (
        # pytest-xdist's workers ignore SIGINT and their children inherit that: a user's
        # terminal does not, so the child takes Ctrl-C as Python does by default.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_build_runner import CommandBuilder, jobs_for, run\n"
        "work = Path(sys.argv[1])\n"
        "run(work, jobs_for(work, 'a', 'b'), CommandBuilder(work / 'sleep.pid'), parallel=2)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) != 0  # interrupted, not the 60 s the command takes
        assert time.monotonic() - started < 20
    finally:
        process.kill()
        process.wait()
    sleeper = int(pid_file.read_text())
    stat = Path(f"/proc/{sleeper}/stat")
    assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z"
