"""Real builds of the test C extension for the platforms beyond arm: linux/s390x (big-endian,
emulated through qemu-s390x) and linux/386 (32-bit x86, run natively by an x86_64 CPU) in the
Debian bookworm test images, and linux/riscv64 in the trixie ones (Debian has riscv64 from trixie
on), each by ``prewheel build`` with the default options. ``--accelerate auto`` refuses
bookworm's cross compilers (not built from exactly its native gcc), so s390x compiles under QEMU
and the output says why; trixie's riscv64 cross compiler is exact, so riscv64 is accelerated.
The wheels pass prewheel's checks, their ELF files carry the target's machine, class and byte
order (read with pyelftools), and they install, import and compute right in the compiler-less
runtime images: on s390x the extension itself reports big-endian and reads four bytes as the
big-endian integer. A rerun starts no container.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import pytest
from build_fixtures.helpers import INSTALL_WHEELS
from build_fixtures.sdists import make_sdist
from conftest import tiers_required
from elftools.elf.elffile import ELFFile
from packaging.version import Version

from builder.building.checks import check_wheel
from builder.building.container import Container
from builder.building.jobs import resolve_image
from builder.targets import Target, select_targets
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]
# No registry to pull debian:<release> from: toolchains are looked for in the amd64 test image.
TOOLCHAIN_BASE = "prewheel-test/{codename}:amd64"


@dataclasses.dataclass(frozen=True)
class Release:
    """One ``prewheel build`` run: a Debian release's test images and its Python and glibc."""

    name: str
    platforms: tuple[str, ...]
    python: str
    libc: str

    @property
    def build_image(self) -> str:
        return f"prewheel-test/{self.name}-build:{{debian_arch}}"

    @property
    def runtime_image(self) -> str:
        return f"prewheel-test/{self.name}:{{debian_arch}}"

    def target(self, platform: str) -> Target:
        return select_targets(platforms=[platform], pythons=[self.python], libc=self.libc)[0]


BOOKWORM = Release("bookworm", ("linux/s390x", "linux/386"), "3.11", "glibc2.36")
TRIXIE = Release("trixie", ("linux/riscv64",), "3.13", "glibc2.41")
RELEASE = {platform: release for release in (BOOKWORM, TRIXIE) for platform in release.platforms}
PLATFORMS = tuple(RELEASE)
# platform -> (e_machine, ELF class, EI_DATA, what the extension says at run time)
EXPECTED = {
    "linux/s390x": ("EM_S390", 64, "ELFDATA2MSB", "s390x big big True 0x1020304 8"),
    "linux/386": ("EM_386", 32, "ELFDATA2LSB", "i386 little little True 0x4030201 4"),
    "linux/riscv64": ("EM_RISCV", 64, "ELFDATA2LSB", "riscv64 little little True 0x4030201 8"),
}

Built = tuple[Wheelhouse, dict[str, dict[str, Any]], str, Path]


def target(platform: str) -> Target:
    return RELEASE[platform].target(platform)


def _images_missing() -> str | None:
    client = docker.from_env()
    try:
        for platform, release in RELEASE.items():
            for template in (release.build_image, release.runtime_image):
                image = resolve_image(template, target(platform))
                try:
                    client.images.get(image)
                except docker.errors.ImageNotFound:
                    arch = target(platform).arch.debian_arch
                    option = "--trixie " if release is TRIXIE else ""
                    return f"{image} is missing: run scripts/test-images.sh {option}{arch}"
    finally:
        client.close()
    return None


def build(work: Path, sdist: Path, release: Release) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(sdist),
            "--platform",
            ",".join(release.platforms),
            "--python",
            release.python,
            "--libc",
            release.libc,
            "--image",
            release.build_image,
            "--toolchain-base",
            TOOLCHAIN_BASE,
            "--timeout",
            "900",
            "-j",
            "2",
            "--json",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One wheelhouse; the bookworm and the trixie builds, one ``prewheel build`` each."""
    problem = _images_missing()
    if problem and tiers_required():
        pytest.fail(problem, pytrace=False)
    if problem:
        pytest.skip(problem)
    work = tmp_path_factory.mktemp("platforms")
    sdist = make_sdist(work / "sdists")
    reports, stderr = {}, ""
    for release in (BOOKWORM, TRIXIE):
        result = build(work, sdist, release)
        assert result.returncode == 0, result.stderr
        reports[release.name] = json.loads(result.stdout)
        stderr += result.stderr
    return Wheelhouse(work / "wheelhouse"), reports, stderr, sdist


def _log(house: Wheelhouse, platform: str) -> str:
    return house.log_path(f"tinyext-1.0-{target(platform).identifier}").read_text()


def test_every_platform_builds_and_the_output_says_how_it_compiled(built: Built) -> None:
    house, reports, stderr, _sdist = built
    builds = {b["target"]: b for report in reports.values() for b in report["builds"]}
    assert set(builds) == {target(p).identifier for p in PLATFORMS}
    assert {name: r["containers_started"] for name, r in reports.items()} == {
        "bookworm": 2,
        "trixie": 1,
    }
    assert {b["status"] for b in builds.values()} == {"built"}, stderr
    accelerated = {p for p in PLATFORMS if builds[target(p).identifier]["accelerated"]}
    assert accelerated == {"linux/riscv64"}
    reason = "the image compiles with gcc-12 12.2.0-14+deb12u1"
    assert reason in stderr  # the s390x step's note, once
    # apt was asked first: the toolchain auto refuses was never downloaded or assembled
    assert "assembling a native toolchain for s390x-linux-gnu" not in stderr
    s390x = _log(house, "linux/s390x")
    assert reason in s390x  # and the build log, with the versions
    assert "s390x-linux-gnu-gcc" in s390x and "(compiled emulated)" in s390x
    native = "(compiled natively: the build machine's CPU runs linux/386)"
    assert native in _log(house, "linux/386")
    riscv64 = _log(house, "linux/riscv64")
    assert "native gcc 14.2.0 (14.2.0-19) for riscv64-linux-gnu, running on x86_64" in riscv64


def _wheel(house: Wheelhouse, platform: str) -> Path:
    [entry] = [e for e in house.entries() if e.target == target(platform).identifier]
    return house.wheel_path(entry)


def _elf(wheel: Path) -> ELFFile:
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if n.endswith(".so")]
        return ELFFile(io.BytesIO(archive.read(member)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_wheel_passes_the_checks_and_has_the_target_elf_byte_order(
    built: Built, platform: str
) -> None:
    goal = target(platform)
    wheel = _wheel(built[0], platform)
    check_wheel(wheel, name="tinyext", version=Version("1.0"), target=goal)
    # auditwheel tags the repaired wheel with the oldest policy its symbols allow
    assert wheel.name.startswith(f"tinyext-1.0-{goal.interpreter}-{goal.interpreter}-manylinux")
    assert wheel.name.endswith(f"_{goal.arch.value}.whl")
    machine, elf_class, data, _output = EXPECTED[platform]
    elf = _elf(wheel)
    assert (elf["e_machine"], elf.elfclass, elf["e_ident"]["EI_DATA"]) == (machine, elf_class, data)
    assert elf.little_endian is (goal.arch.byte_order == "little")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_wheel_installs_imports_and_computes_in_the_compiler_less_image(
    built: Built, platform: str
) -> None:
    wheel = _wheel(built[0], platform)
    script = (
        f"{INSTALL_WHEELS} "
        "&& /tmp/v/bin/python -c 'import struct, sys, tinyext; "
        'word = tinyext.word(b"\\x01\\x02\\x03\\x04"); '
        "print(tinyext.machine(), tinyext.byteorder(), sys.byteorder, "
        'word == int.from_bytes(b"\\x01\\x02\\x03\\x04", sys.byteorder), hex(word), '
        'struct.calcsize("P"))\' && (command -v cc || echo no-compiler)'
    )
    output = bytearray()
    client = docker.from_env()
    try:
        image = resolve_image(RELEASE[platform].runtime_image, target(platform))
        with Container(client, image=image, platform=platform) as container:
            container.copy_in(wheel, PurePosixPath("/wheels") / wheel.name)
            result = container.call(["sh", "-c", script], timeout=600, output=output.extend)
    finally:
        client.close()
    text = output.decode()
    assert result.exit_code == 0, text
    assert EXPECTED[platform][3] in text
    assert "no-compiler" in text  # installed from our wheel, not compiled on the spot


@pytest.mark.parametrize("release", [BOOKWORM, TRIXIE], ids=lambda release: release.name)
def test_a_second_run_starts_no_container(built: Built, release: Release) -> None:
    house, _builds, _stderr, sdist = built
    again = build(house.path.parent, sdist, release)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["summary"]["cached"] == len(release.platforms)
    assert report["summary"]["built"] == 0
    assert report["containers_started"] == 0
