"""Emulated builds under QEMU: a C extension made by the tests and crcmod 1.7 (a real sdist-only
PyPI package) for linux/arm64 and linux/arm/v7, checked, installed and imported in the
no-compiler runtime image of each platform; a rerun starts no container."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath

import docker
import pytest
from build_fixtures.helpers import RUNTIME_IMAGE, TEST_IMAGE, gap, index_dist, index_gap, target
from build_fixtures.sdists import make_sdist

from builder.build import DockerBuilder, SdistFetcher, make_jobs, run_builds
from builder.build.checks import elf_members
from builder.build.container import Container
from builder.build.jobs import resolve_image
from builder.build.runner import BuildReport, Status
from builder.errors import ExitCode
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]
PLATFORMS = ("linux/arm64", "linux/arm/v7")
EXPECTED_MACHINE = {"linux/arm64": "aarch64", "linux/arm/v7": "armv7"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Wheelhouse, BuildReport, list]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("emulated")
    sdist = make_sdist(work / "sdists")
    crcmod = index_dist("crcmod", "1.7")
    gaps = [gap(sdist, p) for p in PLATFORMS] + [
        index_gap("crcmod", "1.7", crcmod, p) for p in PLATFORMS
    ]
    jobs = make_jobs(gaps, image=TEST_IMAGE)
    house = Wheelhouse(work / "wheelhouse")
    builder = DockerBuilder(timeout=900)
    try:
        report = run_builds(
            jobs,
            wheelhouse=house,
            builder=builder,
            fetcher=SdistFetcher(work / "cache"),
            parallel=2,
        )
    finally:
        builder.close()
    return house, report, jobs


def test_every_emulated_build_succeeds_one_container_per_platform(built) -> None:  # type: ignore[no-untyped-def]
    _house, report, _jobs = built
    assert [o.error for o in report.failed] == []
    assert len(report.having(Status.BUILT)) == 4
    assert report.containers_started == 2


def test_wheels_carry_the_target_elf_machine_and_tags(built) -> None:  # type: ignore[no-untyped-def]
    house, report, _jobs = built
    for outcome in report.outcomes:
        wheel = house.wheels_dir / outcome.wheel
        expected = outcome.job.target.arch.elf_machine
        members = elf_members(wheel)
        assert members, f"{wheel.name} has no native code"
        assert {(h.machine, h.elf_class) for h in members.values()} == {expected}
        assert outcome.job.target.arch.value in wheel.name


@pytest.mark.parametrize("platform", PLATFORMS)
def test_wheels_install_and_import_in_the_runtime_image(built, platform: str) -> None:  # type: ignore[no-untyped-def]
    house, report, _jobs = built
    wheels = [house.wheels_dir / o.wheel for o in report.outcomes if o.job.platform == platform]
    assert len(wheels) == 2
    output = bytearray()
    client = docker.from_env()
    try:
        image = resolve_image(RUNTIME_IMAGE, target(platform))
        with Container(client, image=image, platform=platform) as container:
            for wheel in wheels:
                container.copy_in(wheel, PurePosixPath("/wheels") / wheel.name)
            script = (
                "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index --no-deps "
                "/wheels/*.whl && /tmp/v/bin/python -c 'import tinyext, crcmod._crcfunext, "
                "crcmod.predefined, sys; print(tinyext.machine(), "
                'sys.modules["crcmod.crcmod"]._usingExtension, '
                'hex(crcmod.predefined.mkCrcFun("crc-32")(b"123456789")))\' && '
                "(command -v cc || echo no-compiler)"
            )
            result = container.call(["sh", "-c", script], timeout=600, output=output.extend)
    finally:
        client.close()
    text = output.decode()
    assert result.exit_code == 0, text
    assert f"{EXPECTED_MACHINE[platform]} True 0xcbf43926" in text
    assert "no-compiler" in text  # installed from our wheel, not compiled on the spot


def test_a_second_run_starts_no_container(built) -> None:  # type: ignore[no-untyped-def]
    house, _report, jobs = built
    builder = DockerBuilder()
    try:
        again = run_builds(jobs, wheelhouse=house, builder=builder, fetcher=SdistFetcher())
    finally:
        builder.close()
    assert [o.status for o in again.outcomes] == [Status.CACHED] * 4
    assert builder.containers_started == 0


def test_a_missing_binfmt_handler_names_the_fix(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    empty = tmp_path / "binfmt_misc"
    empty.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(sdist),
            "--platform",
            "linux/arm64",
            "--python",
            "3.11",
            "--libc",
            "glibc2.36",
            "--image",
            TEST_IMAGE,
            "--binfmt-dir",
            str(empty),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.ENVIRONMENT
    assert "qemu-aarch64" in result.stderr and "tonistiigi/binfmt" in result.stderr
    assert not (tmp_path / "wheelhouse" / "wheels").exists()
