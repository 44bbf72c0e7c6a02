"""Real builds for linux/s390x (big-endian, emulated through qemu-s390x) and linux/386 (32-bit
x86, run natively by an x86_64 CPU) of the test C extension, by ``prewheel build`` in the Debian
bookworm test images with the default options (``--accelerate auto``: bookworm's cross
compilers are not built from exactly its native gcc, so s390x compiles under QEMU and the
output says why). The wheels pass prewheel's checks, their ELF files carry the target's machine,
class and byte order (read with pyelftools), and they install, import and compute right in the
compiler-less ``prewheel-test/bookworm:<arch>`` images: on s390x the extension itself reports
big-endian and reads four bytes as the big-endian integer. A rerun starts no container.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import pytest
from build_fixtures.sdists import make_sdist
from conftest import tiers_required
from elftools.elf.elffile import ELFFile
from packaging.version import Version

from builder.build.checks import check_wheel
from builder.build.container import Container
from builder.build.jobs import resolve_image
from builder.targets import Target, select_targets
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]
PLATFORMS = ("linux/s390x", "linux/386")
BUILD_IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/bookworm:{debian_arch}"
# No registry to pull debian:bookworm from: toolchains are looked for in the amd64 test image.
TOOLCHAIN_BASE = "prewheel-test/{codename}:amd64"
# platform -> (e_machine, ELF class, EI_DATA, what the extension says at run time)
EXPECTED = {
    "linux/s390x": ("EM_S390", 64, "ELFDATA2MSB", "s390x big big True 0x1020304 8"),
    "linux/386": ("EM_386", 32, "ELFDATA2LSB", "i386 little little True 0x4030201 4"),
}

Built = tuple[Wheelhouse, dict[str, Any], str, Path]


def target(platform: str) -> Target:
    return select_targets(platforms=[platform], pythons=["3.11"], libc="glibc2.36")[0]


def _images_missing() -> str | None:
    client = docker.from_env()
    try:
        for platform in PLATFORMS:
            for template in (BUILD_IMAGE, RUNTIME_IMAGE):
                image = resolve_image(template, target(platform))
                try:
                    client.images.get(image)
                except docker.errors.ImageNotFound:
                    arch = target(platform).arch.debian_arch
                    return f"{image} is missing: run scripts/test-images.sh {arch}"
    finally:
        client.close()
    return None


def build(work: Path, sdist: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(sdist),
            "--platform",
            ",".join(PLATFORMS),
            "--python",
            "3.11",
            "--libc",
            "glibc2.36",
            "--image",
            BUILD_IMAGE,
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
    problem = _images_missing()
    if problem and tiers_required():
        pytest.fail(problem, pytrace=False)
    if problem:
        pytest.skip(problem)
    work = tmp_path_factory.mktemp("platforms")
    sdist = make_sdist(work / "sdists")
    result = build(work, sdist)
    assert result.returncode == 0, result.stderr
    return Wheelhouse(work / "wheelhouse"), json.loads(result.stdout), result.stderr, sdist


def test_both_build_and_the_output_says_why_s390x_compiles_emulated(built: Built) -> None:
    house, report, stderr, _sdist = built
    builds = {b["target"]: b for b in report["builds"]}
    assert {b["status"] for b in builds.values()} == {"built"}, stderr
    assert set(builds) == {target(p).identifier for p in PLATFORMS}
    assert report["containers_started"] == 2
    assert not any(b["accelerated"] for b in builds.values())
    reason = "the image compiles with gcc-12 12.2.0-14+deb12u1"
    assert reason in stderr  # the step's note, once
    log = house.log_path(f"tinyext-1.0-{target('linux/s390x').identifier}").read_text()
    assert reason in log  # and the build log, with the versions
    assert "s390x-linux-gnu-gcc" in log and "(compiled emulated)" in log
    native = house.log_path(f"tinyext-1.0-{target('linux/386').identifier}").read_text()
    assert "(compiled natively: the build machine's CPU runs linux/386)" in native


def _elf(wheel: Path) -> ELFFile:
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if n.endswith(".so")]
        return ELFFile(io.BytesIO(archive.read(member)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_wheel_passes_the_checks_and_has_the_target_elf_byte_order(
    built: Built, platform: str
) -> None:
    house, _report, _stderr, _sdist = built
    goal = target(platform)
    [entry] = [e for e in house.entries() if e.target == goal.identifier]
    wheel = house.wheel_path(entry)
    check_wheel(wheel, name="tinyext", version=Version("1.0"), target=goal)
    # auditwheel tags the repaired wheel with the oldest policy its symbols allow
    assert wheel.name.startswith("tinyext-1.0-cp311-cp311-manylinux")
    assert wheel.name.endswith(f"_{goal.arch.value}.whl")
    machine, elf_class, data, _output = EXPECTED[platform]
    elf = _elf(wheel)
    assert (elf["e_machine"], elf.elfclass, elf["e_ident"]["EI_DATA"]) == (machine, elf_class, data)
    assert elf.little_endian is (goal.arch.byte_order == "little")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_wheel_installs_imports_and_computes_in_the_compiler_less_image(
    built: Built, platform: str
) -> None:
    house, _report, _stderr, _sdist = built
    goal = target(platform)
    [entry] = [e for e in house.entries() if e.target == goal.identifier]
    wheel = house.wheel_path(entry)
    script = (
        "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index --no-deps /wheels/*.whl "
        "&& /tmp/v/bin/python -c 'import struct, sys, tinyext; "
        'word = tinyext.word(b"\\x01\\x02\\x03\\x04"); '
        "print(tinyext.machine(), tinyext.byteorder(), sys.byteorder, "
        'word == int.from_bytes(b"\\x01\\x02\\x03\\x04", sys.byteorder), hex(word), '
        'struct.calcsize("P"))\' && (command -v cc || echo no-compiler)'
    )
    output = bytearray()
    client = docker.from_env()
    try:
        image = resolve_image(RUNTIME_IMAGE, goal)
        with Container(client, image=image, platform=platform) as container:
            container.copy_in(wheel, PurePosixPath("/wheels") / wheel.name)
            result = container.call(["sh", "-c", script], timeout=600, output=output.extend)
    finally:
        client.close()
    text = output.decode()
    assert result.exit_code == 0, text
    assert EXPECTED[platform][3] in text
    assert "no-compiler" in text  # installed from our wheel, not compiled on the spot


def test_a_second_run_starts_no_container(built: Built) -> None:
    house, _report, _stderr, sdist = built
    again = build(house.path.parent, sdist)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["summary"]["cached"] == 2 and report["summary"]["built"] == 0
    assert report["containers_started"] == 0
