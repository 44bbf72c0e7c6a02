"""Portable (cibuildwheel) builder: pure option translation, image choice, target split."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import IO

import pytest
from build_fixtures.helpers import local_dist
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from portable_fixtures import make_sdist

from builder.building import cibuildwheel as cibw
from builder.building.builders import BuildFailed, BuildResult
from builder.building.jobs import BuildJob, cache_key
from builder.building.sdist import SdistFetcher
from builder.building.toolchain import NATIVE, Acceleration
from builder.config import PackageSettings
from builder.errors import ExitCode, UsageError
from builder.plan import Status, make_plan
from builder.requirements import PinnedRequirement
from builder.targets import Arch, Target, parse_identifier, policy_libc_version, select_targets
from builder.upstream.models import DistFile, ProjectPage
from builder.wheelhouse import Wheelhouse

SDIST = DistFile("demo-1.0.tar.gz", "https://files.invalid/demo-1.0.tar.gz", {"sha256": "ab" * 32})
PINNED = {
    "aarch64": {
        "manylinux2014": "quay.invalid/m2014@sha256:1",
        "manylinux_2_28": "quay.invalid/m228@sha256:2",
        "manylinux_2_34": "quay.invalid/m234@sha256:3",
        "musllinux_1_2": "quay.invalid/musl12@sha256:4",
    },
    "armv7l": {
        "manylinux_2_31": "quay.invalid/a231@sha256:5",
        "manylinux_2_35": "quay.invalid/a235@sha256:6",
    },
}
DEFAULTS = {"manylinux-aarch64-image": "manylinux_2_28", "manylinux-armv7l-image": "manylinux_2_31"}


NO_SETTINGS = PackageSettings()


def job(identifier: str, settings: PackageSettings = NO_SETTINGS, image: str = "img") -> BuildJob:
    return BuildJob(
        name=canonicalize_name("demo"),
        version=Version("1.0"),
        target=parse_identifier(identifier),
        sdist=SDIST,
        image=image,
        settings=settings,
    )


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("cp311-manylinux_2_36_armv7l", "cp311-manylinux_armv7l"),
        ("cp312-manylinux_2_28_aarch64", "cp312-manylinux_aarch64"),
        ("cp312-musllinux_1_2_aarch64", "cp312-musllinux_aarch64"),
        ("cp313-manylinux_2_41_x86_64", "cp313-manylinux_x86_64"),
    ],
)
def test_cibuildwheel_identifier_drops_the_libc_version(identifier: str, expected: str) -> None:
    assert cibw.cibuildwheel_identifier(parse_identifier(identifier)) == expected


def test_armv6_has_no_cibuildwheel_identifier() -> None:
    with pytest.raises(UsageError, match="--builder docker"):
        cibw.cibuildwheel_identifier(parse_identifier("cp311-glibc_2_36_armv6l"))


@pytest.mark.parametrize(
    ("identifier", "image"),
    [
        # bookworm (2.36): cibuildwheel's default manylinux_2_28 is old enough, the most portable
        ("cp311-manylinux_2_36_aarch64", "quay.invalid/m228@sha256:2"),
        # glibc 2.17 target: only manylinux2014 fits
        ("cp311-manylinux_2_17_aarch64", "quay.invalid/m2014@sha256:1"),
        # 2.24 is older than the default: the newest image not newer than the target
        ("cp311-manylinux_2_24_aarch64", "quay.invalid/m2014@sha256:1"),
        ("cp311-manylinux_2_36_armv7l", "quay.invalid/a231@sha256:5"),
        ("cp312-musllinux_1_2_aarch64", "quay.invalid/musl12@sha256:4"),
    ],
)
def test_portable_image_is_pinned_and_not_newer_than_the_target(
    identifier: str, image: str
) -> None:
    target = parse_identifier(identifier)
    assert cibw.portable_image(target, pinned=PINNED, defaults=DEFAULTS) == image


def test_portable_image_refuses_a_target_older_than_every_image() -> None:
    target = parse_identifier("cp311-manylinux_2_28_armv7l")  # armv7l images start at 2.31
    with pytest.raises(UsageError, match="manylinux_2_31"):
        cibw.portable_image(target, pinned=PINNED, defaults=DEFAULTS)


def test_portable_image_override_fills_placeholders() -> None:
    target = parse_identifier("cp311-manylinux_2_36_aarch64")
    assert cibw.portable_image(target, "local/manylinux-{arch}:py{python}-{debian_arch}") == (
        "local/manylinux-aarch64:py3.11-arm64"
    )
    with pytest.raises(UsageError, match=r"placeholders"):
        cibw.portable_image(target, "local/{nope}")


def test_cibuildwheels_own_pinned_images_cover_the_default_targets() -> None:
    """Real data: every manylinux-capable default platform gets a pinned, digest-fixed image."""
    targets = select_targets(platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"))
    for target in targets:
        image = cibw.portable_image(target)
        assert "@sha256:" in image, image
        assert target.arch.value in image


def test_policy_libc_version() -> None:
    assert policy_libc_version("manylinux2014") == (2, 17)
    assert policy_libc_version("manylinux_2_31") == (2, 31)
    assert policy_libc_version("musllinux_1_2") == (1, 2)
    with pytest.raises(UsageError, match="image policy"):
        policy_libc_version("manylinux")


def test_cibuildwheel_names_come_from_the_targets() -> None:
    armv7 = parse_identifier("cp311-manylinux_2_36_armv7l")
    assert cibw.image_option(armv7) == "manylinux-armv7l-image"
    assert cibw.family(parse_identifier("cp312-musllinux_1_2_aarch64")) == "musllinux"
    with pytest.raises(UsageError, match="--builder docker"):
        cibw.image_option(parse_identifier("cp311-glibc_2_36_armv6l"))


def test_cibuildwheel_preflight_refuses_an_arch_without_images() -> None:
    builder = cibw.CibuildwheelBuilder(docker_builder=FakeDocker())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cibuildwheel cannot build for linux/arm/v6"):
        builder.preflight(Arch.ARMV6L)


def test_split_portable_falls_back_to_docker_for_armv6_and_says_so() -> None:
    jobs = [
        job("cp311-manylinux_2_36_aarch64", image="python:3.11-slim-bookworm"),
        job("cp311-glibc_2_36_armv6l", image="python:3.11-slim-bookworm"),
        job("cp311-manylinux_2_36_armv7l", image="python:3.11-slim-bookworm"),
    ]
    split = cibw.split_portable(jobs, override="local/ml-{arch}")
    assert [j.target.identifier for j in split.portable] == [
        "cp311-manylinux_2_36_aarch64",
        "cp311-manylinux_2_36_armv7l",
    ]
    assert [j.image for j in split.portable] == ["local/ml-aarch64", "local/ml-armv7l"]
    assert [j.target.identifier for j in split.fallback] == ["cp311-glibc_2_36_armv6l"]
    assert split.fallback[0].image == "python:3.11-slim-bookworm"
    assert len(split.notices) == 1
    assert "linux/arm/v6" in split.notices[0] and "linux_armv6l" in split.notices[0]


def test_portable_and_docker_builds_of_one_gap_have_different_cache_keys() -> None:
    docker_job = job("cp311-manylinux_2_36_aarch64", image="python:3.11-slim-bookworm")
    portable_job = cibw.split_portable([docker_job], override="local/ml-{arch}").portable[0]
    assert cache_key(docker_job.inputs("sha256:x")) != cache_key(portable_job.inputs("sha256:x"))


@pytest.mark.parametrize(
    ("portable", "libc", "image", "expected"),
    [
        (True, None, None, True),
        (False, "manylinux_2_31", None, True),
        (False, "musllinux_1_2", None, True),
        (False, "manylinux_2_31", "python:3.11-slim-bookworm", False),
        (False, "glibc2.36", None, False),
        (False, None, None, False),
    ],
)
def test_wants_portable(
    portable: bool, libc: str | None, image: str | None, expected: bool
) -> None:
    assert cibw.wants_portable(portable=portable, libc=libc, image=image) is expected


def test_before_all_installs_system_packages_with_the_images_package_manager() -> None:
    command = cibw.before_all_command(["libyaml-devel", "lib with space"])
    assert "dnf install -y libyaml-devel 'lib with space'" in command
    assert "apk add --no-cache libyaml-devel" in command
    assert "apt-get install -y" in command
    assert cibw.before_all_command([]) == ""


def test_options_carry_settings_image_ca_and_environment() -> None:
    settings = PackageSettings(
        system_packages=("libyaml-dev",),
        environment=(("CFLAGS", "-O2 -g0"), ("PIP_INDEX_URL", "https://mine.invalid/simple")),
        pip_args=("--no-build-isolation",),
        before_build="echo hi",
    )
    options = cibw.cibuildwheel_options(
        job("cp311-manylinux_2_36_armv7l", settings, image="local/ml:armhf"),
        has_ca_bundle=True,
        index_url="https://index.invalid/simple",
        pass_through=["HTTPS_PROXY"],
        test_command="python -c 'import demo'",
        container_labels={"org.prewheel.build": "cibuildwheel"},
        memory="2g",
    )
    assert options["CIBW_MANYLINUX_ARMV7L_IMAGE"] == "local/ml:armhf"
    assert options["CIBW_PLATFORM"] == "linux"
    assert "apt-get install" in options["CIBW_BEFORE_ALL_LINUX"]
    assert options["CIBW_BEFORE_BUILD_LINUX"] == "echo hi"
    assert options["CIBW_BUILD_FRONTEND"] == "pip; args: --no-build-isolation"
    assert options["CIBW_ENVIRONMENT_PASS_LINUX"] == "HTTPS_PROXY"
    assert options["CIBW_TEST_COMMAND_LINUX"] == "python -c 'import demo'"
    assert options["CIBW_AUDIT_COMMAND"] == ""
    assert "auditwheel repair" in options["CIBW_REPAIR_WHEEL_COMMAND_LINUX"]
    engine = options["CIBW_CONTAINER_ENGINE"]
    assert engine.startswith("docker; create_args: ")
    assert "--label=org.prewheel.build=cibuildwheel" in engine and "--memory=2g" in engine
    # The environment string is bash syntax; the package's settings win over prewheel's.
    environment = dict(
        item.split("=", 1) for item in shlex.split(options["CIBW_ENVIRONMENT_LINUX"])
    )
    assert environment["PIP_CERT"] == cibw.CONTAINER_CA_BUNDLE
    assert environment["SSL_CERT_FILE"] == cibw.CONTAINER_CA_BUNDLE
    assert environment["PIP_INDEX_URL"] == "https://mine.invalid/simple"
    assert environment["CFLAGS"] == "-O2 -g0"
    assert environment["_PYTHON_HOST_PLATFORM"] == "linux-armv7l"


def test_options_without_settings_leave_cibuildwheel_defaults_alone() -> None:
    options = cibw.cibuildwheel_options(job("cp312-musllinux_1_2_aarch64"), has_ca_bundle=False)
    assert options["CIBW_MUSLLINUX_AARCH64_IMAGE"] == "img"
    assert options["CIBW_CONTAINER_ENGINE"] == "docker"
    for absent in (
        "CIBW_BEFORE_ALL_LINUX",
        "CIBW_TEST_COMMAND_LINUX",
        "CIBW_ENVIRONMENT_PASS_LINUX",
    ):
        assert absent not in options
    assert "PIP_CERT" not in options["CIBW_ENVIRONMENT_LINUX"]


def test_invocation_builds_the_sdist_for_exactly_one_identifier(tmp_path: Path) -> None:
    call = cibw.invocation(
        job("cp312-manylinux_2_36_aarch64"),
        tmp_path / "demo-1.0.tar.gz",
        tmp_path / "out",
        ca=tmp_path / "ca.pem",
        proxies={"HTTPS_PROXY": "http://proxy.invalid:3128"},
        python="python3",
    )
    assert call.argv == (
        "python3",
        "-m",
        "cibuildwheel",
        "--only",
        "cp312-manylinux_aarch64",
        "--output-dir",
        str(tmp_path / "out"),
        str(tmp_path / "demo-1.0.tar.gz"),
    )
    assert call.environment["SSL_CERT_FILE"] == str(tmp_path / "ca.pem")
    assert call.environment["HTTPS_PROXY"] == "http://proxy.invalid:3128"
    assert call.environment["CIBW_ENVIRONMENT_PASS_LINUX"] == "HTTPS_PROXY"
    assert call.environment["SOURCE_DATE_EPOCH"].isdigit()


def test_cibuildwheel_accepts_the_generated_options(tmp_path: Path) -> None:
    """cibuildwheel itself parses our options and selects exactly the one identifier."""
    settings = PackageSettings(system_packages=("libyaml-dev",), environment=(("A", "b c"),))
    call = cibw.invocation(
        job("cp311-manylinux_2_36_armv7l", settings),
        tmp_path,
        tmp_path / "out",
        ca=None,
        proxies={},
        container_labels={"org.prewheel.build": "cibuildwheel"},
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1.0"\n')
    result = subprocess.run(
        [*call.argv[:-3], "--print-build-identifiers", str(tmp_path)],
        env={**os.environ, **call.environment},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cp311-manylinux_armv7l"]


class FakeRunner:
    def __init__(self, code: int | None, wheel: str | None) -> None:
        self.code = code
        self.wheel = wheel
        self.calls: list[tuple[str, ...]] = []

    def run(
        self,
        argv: tuple[str, ...],
        *,
        environment: dict[str, str],
        cwd: Path,
        log: IO[bytes],
        timeout: float,
    ) -> int | None:
        self.calls.append(tuple(argv))
        out = Path(argv[argv.index("--output-dir") + 1])
        if self.wheel:
            (out / self.wheel).write_bytes(b"wheel")
        return self.code


class FakeDocker:
    """Stands in for the docker builder's client: no containers to clean up."""

    class _Containers:
        def list(self, **_: object) -> list[object]:
            return []

    class _Client:
        def __init__(self) -> None:
            self.containers = FakeDocker._Containers()

    def client(self, arch: Arch) -> object:
        assert isinstance(arch, Arch)
        return self._Client()


@pytest.mark.parametrize(
    ("code", "wheel", "error"),
    [
        (None, None, "timed out"),
        (1, None, "exit code 1"),
        (0, None, "no wheel"),
    ],
)
def test_session_reports_failures(
    tmp_path: Path, code: int | None, wheel: str | None, error: str
) -> None:
    builder = cibw.CibuildwheelBuilder(runner=FakeRunner(code, wheel), docker_builder=FakeDocker())  # type: ignore[arg-type]
    with (
        (tmp_path / "log").open("wb") as log,
        builder.session("img", Arch.AARCH64, log) as session,
        pytest.raises(BuildFailed, match=error),
    ):
        session.build(
            job("cp311-manylinux_2_36_aarch64"), tmp_path / "x.tar.gz", tmp_path / "out", log
        )


def test_session_returns_the_repaired_wheels(tmp_path: Path) -> None:
    runner = FakeRunner(0, "demo-1.0-cp311-cp311-manylinux_2_28_aarch64.whl")
    builder = cibw.CibuildwheelBuilder(runner=runner, docker_builder=FakeDocker())  # type: ignore[arg-type]
    with (
        (tmp_path / "log").open("wb") as log,
        builder.session("img", Arch.AARCH64, log) as session,
    ):
        result = session.build(
            job("cp311-manylinux_2_36_aarch64"), tmp_path / "x.tar.gz", tmp_path / "out", log
        )
    assert [w.name for w in result.wheels] == ["demo-1.0-cp311-cp311-manylinux_2_28_aarch64.whl"]
    assert "--only" in runner.calls[0]
    assert builder.containers_started == 1


# --- plan side: a manylinux wheel covers every target its tags admit ------------------------------
def _covers(wheel: str, target: Target) -> bool:
    return target.supports(parse_wheel_filename(wheel)[3])


@pytest.mark.parametrize(
    ("libc", "covered"),
    [
        ("glibc2.31", True),
        ("glibc2.36", True),
        ("glibc2.41", True),
        ("glibc2.28", False),
        ("musl1.2", False),
    ],
)
def test_one_manylinux_2_31_wheel_serves_bookworm_and_trixie(libc: str, covered: bool) -> None:
    wheel = "demo-1.0-cp311-cp311-manylinux_2_31_armv7l.whl"
    (target,) = select_targets(platforms=["linux/arm/v7"], pythons=["3.11"], libc=libc)
    assert _covers(wheel, target) is covered


def test_an_abi3_manylinux_wheel_serves_newer_pythons_on_newer_glibc() -> None:
    wheel = "demo-1.0-cp311-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    for python in ("3.11", "3.12", "3.13"):
        (target,) = select_targets(platforms=["linux/arm64"], pythons=[python], libc="glibc2.41")
        assert _covers(wheel, target)
    (older,) = select_targets(platforms=["linux/arm64"], pythons=["3.10"], libc="glibc2.41")
    assert not _covers(wheel, older)


class RecordingBuilder:
    """A Builder that 'builds' an empty wheel with the tag it is told to, recording its jobs."""

    def __init__(self, name: str, platform_tag: str) -> None:
        self.name = name
        self.platform_tag = platform_tag
        self.containers_started = 0
        self.jobs: list[BuildJob] = []

    def preflight(self, arch: Arch) -> None:
        pass

    def image_digest(self, image: str, arch: Arch) -> str:
        return f"sha256:{image}"

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        return NATIVE

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        return None

    def check_image(self, image: str, target: Target) -> None:
        pass

    def close(self) -> None:
        pass

    def session(self, image: str, arch: Arch, setup_log: IO[bytes]):  # type: ignore[no-untyped-def]
        outer = self

        class Session:
            toolchain = None

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
                outer.jobs.append(job)
                tag = outer.platform_tag.format(arch=job.target.arch.value)
                wheel = out_dir / f"demo-1.0-cp311-cp311-{tag}.whl"
                out_dir.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(wheel, "w") as archive:
                    archive.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
                return BuildResult((wheel,))

        self.containers_started += 1
        return contextlib.nullcontext(Session())


def test_run_portable_builds_splits_between_cibuildwheel_and_docker(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"not really an sdist; never unpacked by the fake builders")
    dist = local_dist(sdist)
    jobs = [
        dataclasses.replace(job(identifier, image="python:3.11-slim-bookworm"), sdist=dist)
        for identifier in ("cp311-manylinux_2_36_aarch64", "cp311-glibc_2_36_armv6l")
    ]
    portable = RecordingBuilder("cibuildwheel", "manylinux_2_17_{arch}")
    fallback = RecordingBuilder("docker", "linux_{arch}")
    notices: list[str] = []
    house = Wheelhouse(tmp_path / "wheelhouse")
    report = cibw.run_portable_builds(
        jobs,
        wheelhouse=house,
        fetcher=SdistFetcher(tmp_path / "cache"),
        portable_builder=portable,
        fallback_builder=fallback,  # type: ignore[arg-type]
        image_override="local/ml-{arch}",
        notice=notices.append,
    )
    assert [(o.status.value, o.error) for o in report.outcomes] == [("built", "")] * 2
    assert [(j.target.identifier, j.image) for j in portable.jobs] == [
        ("cp311-manylinux_2_36_aarch64", "local/ml-aarch64")
    ]
    assert [(j.target.identifier, j.image) for j in fallback.jobs] == [
        ("cp311-glibc_2_36_armv6l", "python:3.11-slim-bookworm")
    ]
    assert len(notices) == 1 and "linux/arm/v6" in notices[0]
    assert sorted(e.filename for e in house.entries()) == [
        "demo-1.0-cp311-cp311-linux_armv6l.whl",
        "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
    ]
    assert report.containers_started == 2


def test_cli_portable_refuses_a_target_older_than_every_image(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, name="pwtiny")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(sdist),
            "--portable",
            "--target",
            "cp311-manylinux_2_28_armv7l",
            "--wheelhouse",
            str(tmp_path / "wh"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "manylinux_2_31" in result.stderr and "--portable-image" in result.stderr
    assert not (tmp_path / "wh" / "wheels").exists()


def test_plan_counts_one_portable_wheel_on_our_index_for_bookworm_and_trixie_targets() -> None:
    """Issue 6, item 2: a manylinux_2_31 armv7l wheel on our index covers every target its tags
    admit (bookworm 2.36, trixie 2.41), while older glibc and musl targets still need a build."""
    name = canonicalize_name("demo")
    upstream = ProjectPage(name, (SDIST,), "https://upstream.invalid/simple/")
    wheel = DistFile(
        "demo-1.0-cp311-cp311-manylinux_2_31_armv7l.whl",
        "https://ours.invalid/demo-1.0-cp311-cp311-manylinux_2_31_armv7l.whl",
        {"sha256": "cd" * 32},
    )
    ours = ProjectPage(name, (wheel,), "https://ours.invalid/simple/")
    targets = [
        target
        for libc in ("glibc2.36", "glibc2.41", "glibc2.28", "musl1.2")
        for target in select_targets(platforms=["linux/arm/v7"], pythons=["3.11"], libc=libc)
    ]
    plan = make_plan(
        [PinnedRequirement(name, Version("1.0"))], targets, {"demo": upstream}, {"demo": ours}
    )
    cells = {identifier: cell.status for identifier, cell in plan.rows[0].cells.items()}
    assert cells == {
        "cp311-manylinux_2_36_armv7l": Status.OURS,
        "cp311-manylinux_2_41_armv7l": Status.OURS,
        "cp311-manylinux_2_28_armv7l": Status.BUILD,
        "cp311-musllinux_1_2_armv7l": Status.BUILD,
    }
    assert plan.rows[0].cells["cp311-manylinux_2_41_armv7l"].file == wheel
