"""ARM code truth with real images: what a build image's own code is (read from its files,
nothing started), an armhf (ARMv7, hard-float) image offered for linux/arm/v6 refused before
anything starts, and ARMv7 code compiled in the Debian armel image refused for armv6l while the
same extension with the image's default flags passes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import docker
import pytest
from build_fixtures.helpers import gap
from build_fixtures.images import image_exists, relabelled_image
from build_fixtures.sdists import make_sdist
from conftest import tiers_required

from builder.building import DockerBuilder, SdistFetcher, make_jobs, run_builds
from builder.building.container import LABEL, read_image_files
from builder.building.runner import BuildStatus
from builder.building.toolchain import Accelerate, read_image_facts
from builder.config import PackageSettings
from builder.elf import wheel_elf_members
from builder.errors import ExitCode
from builder.targets import Arch, emulation_environment
from builder.wheelhouse import Wheelhouse

ARMEL_BUILD = "prewheel-test/bookworm-build:armel"
ARMHF_BUILD = "prewheel-test/bookworm-build:armhf"
# the armhf build image's files under a linux/arm/v6 label, as a mislabelled image would be
MISLABELLED = "prewheel-test/bookworm-build:armhf-labelled-arm-v6"


def need(image: str) -> None:
    if image_exists(image):
        return
    problem = f"test image {image} is missing (run scripts/test-images.sh armel armhf)"
    if tiers_required():
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


@pytest.mark.docker
@pytest.mark.emulation
def test_image_facts_come_from_the_interpreter_through_its_links() -> None:
    need(ARMHF_BUILD)
    need(ARMEL_BUILD)
    client = docker.from_env(timeout=120)
    try:
        # merged /usr: /bin -> usr/bin; python3 -> python3.11; /etc/os-release is a link too
        files = read_image_files(
            client,
            ARMHF_BUILD,
            "linux/arm/v7",
            [PurePosixPath("/bin/python3"), PurePosixPath("/etc/os-release")],
        )
        armhf = read_image_facts(client, ARMHF_BUILD, "linux/arm/v7")
        armel = read_image_facts(client, ARMEL_BUILD, "linux/arm/v6")
    finally:
        client.close()
    assert (files[PurePosixPath("/bin/python3")] or b"")[:4] == b"\x7fELF"
    assert b"bookworm" in (files[PurePosixPath("/etc/os-release")] or b"")
    assert (armhf.interpreter, armhf.dpkg_arch) == ("/usr/bin/python3", "armhf")
    assert armhf.interpreter_code is not None
    assert armhf.interpreter_code.describe() == "ARMv7 code, hard-float"
    assert (armel.interpreter, armel.dpkg_arch) == ("/usr/bin/python3", "armel")
    assert armel.interpreter_code is not None
    assert armel.interpreter_code.describe() == "ARMv5TE code, soft-float"


@pytest.mark.docker
@pytest.mark.emulation
def test_an_armhf_image_offered_for_arm_v6_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    need(ARMHF_BUILD)
    seconds = relabelled_image(ARMHF_BUILD, MISLABELLED, architecture="arm", variant="v6")
    print(f"{MISLABELLED}: " + (f"made in {seconds:.1f} s" if seconds else "present"))
    before = _prewheel_containers()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(make_sdist(tmp_path / "sdists")),
            "--platform",
            "linux/arm/v6",
            "--python",
            "3.11",
            "--libc",
            "glibc2.36",
            "--image",
            MISLABELLED,
            "--wheelhouse",
            str(tmp_path / "wheelhouse"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    print(f"refused in {time.monotonic() - started:.1f} s")
    assert result.returncode == ExitCode.IMAGE_MISMATCH, result.stderr
    report = json.loads(result.stdout)
    assert report["containers_started"] == 0
    (build,) = report["builds"]
    assert build["status"] == "failed" and build["log"] == ""
    assert build["error"].startswith(
        f"Image {MISLABELLED} (Debian GNU/Linux 12 (bookworm), dpkg armhf) cannot build for "
        "cp311-glibc_2_36_armv6l (linux/arm/v6): its /usr/bin/python3 is ARMv7 code, "
        "hard-float"
    )
    assert "armel" in build["error"] and "--float-abi hard" in build["error"]
    stderr = " ".join(result.stderr.split())
    assert "1 of 1 builds were refused before anything started" in stderr
    # the facts container was created, never run, and is gone: nothing is left that was not
    # there before (other workers' build and verify containers come and go meanwhile)
    assert not _prewheel_containers() - before


def _prewheel_containers() -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(listed.stdout.split())


@pytest.mark.docker
@pytest.mark.emulation
@pytest.mark.network  # pip's isolated build environment fetches setuptools
@pytest.mark.slow
def test_armv7_code_built_in_the_armel_image_is_refused_for_armv6l(tmp_path: Path) -> None:
    need(ARMEL_BUILD)
    plain = make_sdist(tmp_path / "sdists", "plainext")
    armv7 = make_sdist(tmp_path / "sdists", "armv7ext")
    flags = PackageSettings(environment=(("CFLAGS", "-march=armv7-a"),))
    jobs = make_jobs(
        [gap(plain, "linux/arm/v6"), gap(armv7, "linux/arm/v6")],
        image=ARMEL_BUILD,
        settings=lambda name, _target: flags if name == "armv7ext" else PackageSettings(),
    )
    house = Wheelhouse(tmp_path / "wheelhouse")
    builder = DockerBuilder(timeout=900, accelerate=Accelerate.OFF)  # the image's own gcc
    started = time.monotonic()
    try:
        report = run_builds(
            jobs, wheelhouse=house, builder=builder, fetcher=SdistFetcher(tmp_path / "cache")
        )
    finally:
        builder.close()
    print(f"two emulated builds in the armel image: {time.monotonic() - started:.0f} s")
    outcomes = {o.job.name: o for o in report.outcomes}
    assert report.containers_started == 1
    assert outcomes["plainext"].status is BuildStatus.BUILT, outcomes["plainext"].error
    [entry] = [e for e in house.entries() if e.name == "plainext"]
    wheel = house.wheel_path(entry)  # under its target: linux_armv6l names no glibc
    assert wheel.name == "plainext-1.0-cp311-cp311-linux_armv6l.whl"
    assert {f.describe() for f in wheel_elf_members(wheel).values()} == {
        "ARMv5TE code, soft-float"  # Debian armel's default
    }
    refused = outcomes["armv7ext"]
    assert refused.status is BuildStatus.FAILED
    assert refused.error.startswith(
        "armv7ext-1.0-cp311-cp311-linux_armv6l.whl: "
        "armv7ext.cpython-311-arm-linux-gnueabi.so is ARMv7 code, soft-float, but "
        "cp311-glibc_2_36_armv6l (linux/arm/v6) needs ARMv6 code or older"
    ), refused.error
    assert refused.log is not None
    log = refused.log.read_text()
    assert "-march=armv7-a" in log  # the compiler really was told so
    assert not list(house.wheels_dir.rglob("armv7ext-*"))


# AT_HWCAP bits of arm64 (Linux's uapi asm/hwcap.h): what QEMU tells the guest its CPU has.
HWCAP_SVE = 1 << 22
HWCAP_PACA = 1 << 30
AUXV_HWCAP = (
    "import struct; data = open('/proc/self/auxv', 'rb').read(); "
    "pairs = dict(struct.iter_unpack('<QQ', data)); print(pairs[16])"
)


def _as_prewheel_runs_it_and_by_default(arch: Arch, program: str) -> tuple[int, int]:
    """The number the Python ``program`` prints in ``arch``'s compiler-less trixie image, in a
    container with prewheel's emulation environment and in one under QEMU's default CPU."""
    image = f"prewheel-test/trixie:{arch.debian_arch}"
    need(image)
    client = docker.from_env(timeout=300)

    def printed(environment: dict[str, str]) -> int:
        output = client.containers.run(
            image, ["python3", "-c", program], platform=arch.docker_platform,
            environment=environment, remove=True,
        )  # fmt: skip
        return int(bytes(output).decode().split()[-1])

    try:
        return printed(emulation_environment(arch)), printed({})
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.emulation
def test_arm64_containers_get_a_baseline_cpu_without_pointer_authentication() -> None:
    """prewheel's arm64 containers run on QEMU's Cortex-A53 (ARMv8.0, the distributions'
    baseline): no pointer authentication or SVE for a build to detect and use, and none to
    emulate (QEMU's default CPU has both; its pointer authentication made trixie's PAC-built
    userland about ten times slower: bench/qemu_cpu.py)."""
    baseline, default = _as_prewheel_runs_it_and_by_default(Arch.AARCH64, AUXV_HWCAP)
    assert emulation_environment(Arch.AARCH64) == {"QEMU_CPU": "cortex-a53"}
    assert default & HWCAP_PACA and default & HWCAP_SVE  # what QEMU's default offers
    assert not baseline & HWCAP_PACA and not baseline & HWCAP_SVE


# AT_HWCAP2 bits of 32-bit ARM (Linux's uapi asm/hwcap.h): the ARMv8 extensions an AArch32
# CPU reports (AES, PMULL, SHA1, SHA2, CRC32), which code that dispatches at run time (NumPy)
# takes for "ARMv8" and then runs ARMv8 instructions.
HWCAP2_ARMV8_EXTENSIONS = 0x1F
AUXV_HWCAP2_ARM = (
    "import struct; data = open('/proc/self/auxv', 'rb').read(); "
    "pairs = dict(struct.iter_unpack('<II', data)); print(pairs.get(26, 0))"
)


@pytest.mark.docker
@pytest.mark.emulation
def test_arm_v7_containers_get_an_armv7_cpu_without_armv8_extensions() -> None:
    """prewheel's linux/arm/v7 containers run on QEMU's Cortex-A7 (the Raspberry Pi 2): QEMU's
    default 32-bit CPU is an ARMv8 core that reports ARMv8's extensions, so an armv7 wheel's
    ARMv8 kernels would be the ones its import and verification exercise."""
    baseline, default = _as_prewheel_runs_it_and_by_default(Arch.ARMV7L, AUXV_HWCAP2_ARM)
    assert emulation_environment(Arch.ARMV7L) == {"QEMU_CPU": "cortex-a7"}
    assert default & HWCAP2_ARMV8_EXTENSIONS == HWCAP2_ARMV8_EXTENSIONS
    assert baseline == 0
