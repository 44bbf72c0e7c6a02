"""Builds under QEMU for linux/arm64 and linux/arm/v7 of a C extension and a C++ extension made
by the tests and crcmod 1.7 (a real sdist-only PyPI package), each built twice in the Debian
trixie images: fully emulated (``--accelerate off``, the library) and accelerated (native cross
compilers, through the CLI). Both builds have the same machine code, pass the wheel checks,
install and import in the no-compiler runtime image; a build that refuses the cross compiler is
rebuilt emulated; a rerun starts no container. Trixie, because its cross compilers are built
from exactly its native gcc's source version; bookworm's are not (``--accelerate auto`` says so
and stays emulated there, ``relaxed`` accelerates)."""

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
from build_fixtures.helpers import INSTALL_WHEELS, TEST_IMAGE, index_dist, local_dist
from build_fixtures.sdists import make_sdist
from elftools.elf.elffile import ELFFile
from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import Version

from builder.building import DockerBuilder, SdistFetcher, make_jobs, run_builds
from builder.building.container import Container
from builder.building.jobs import resolve_image
from builder.building.runner import BuildReport, BuildStatus
from builder.building.toolchain import Accelerate
from builder.elf import wheel_elf_members
from builder.errors import ExitCode
from builder.plan import Gap
from builder.requirements import PinnedRequirement
from builder.targets import Arch, Target, select_targets
from builder.upstream.models import DistFile
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]
PLATFORMS = ("linux/arm64", "linux/arm/v7")
EXPECTED_MACHINE = {"linux/arm64": "aarch64", "linux/arm/v7": "armv7"}
BUILD_IMAGE = "prewheel-test/trixie-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/trixie:{debian_arch}"
PYTHON, LIBC = "3.13", "glibc2.41"
# No registry to pull debian:trixie from: toolchains are assembled in the amd64 runtime test
# image of the same release.
TOOLCHAIN_BASE = "prewheel-test/{codename}:amd64"
CODE_SECTIONS = (".text", ".rodata", ".data", ".init_array", ".fini_array")


def target(platform: str) -> Target:
    return select_targets(platforms=[platform], pythons=[PYTHON], libc=LIBC)[0]


def gap_of(dist: DistFile, platform: str) -> Gap:
    name, version = parse_sdist_filename(dist.filename)
    requirement = PinnedRequirement(canonicalize_name(name), Version(str(version)))
    return Gap(requirement, target(platform), dist)


def _sdists(work: Path) -> dict[str, Path]:
    crcmod = SdistFetcher(work / "cache").fetch(
        index_dist("crcmod", "1.7"), index_dist("crcmod", "1.7").sha256 or ""
    )
    return {
        "tinyext": make_sdist(work / "sdists"),
        "tinycpp": make_sdist(work / "sdists", "tinycpp", cplusplus=True),
        "crcmod": crcmod,
    }


@pytest.fixture(scope="module")
def sdists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _sdists(tmp_path_factory.mktemp("sdists"))


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, sdists: dict[str, Path]
) -> tuple[Wheelhouse, BuildReport, list]:  # type: ignore[type-arg]
    """Fully emulated builds (the image's own compilers under QEMU), through the library."""
    work = tmp_path_factory.mktemp("emulated")
    dists = [local_dist(sdists[name]) for name in ("tinyext", "tinycpp")]
    dists.append(index_dist("crcmod", "1.7"))
    jobs = make_jobs([gap_of(d, p) for d in dists for p in PLATFORMS], image=BUILD_IMAGE)
    house = Wheelhouse(work / "wheelhouse")
    builder = DockerBuilder(timeout=900, accelerate=Accelerate.OFF)
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


def build_command(*arguments: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "builder",
        "build",
        *map(str, arguments),
        "--platform",
        ",".join(PLATFORMS),
        "--python",
        PYTHON,
        "--libc",
        LIBC,
        "--image",
        BUILD_IMAGE,
        "--toolchain-base",
        TOOLCHAIN_BASE,
        "--timeout",
        "900",
        "--json",
    ]


@pytest.fixture(scope="module")
def accelerated(
    tmp_path_factory: pytest.TempPathFactory, sdists: dict[str, Path]
) -> tuple[Wheelhouse, dict[str, Any], str, Path]:
    """The same sdists plus one that refuses a cross compiler, built by ``prewheel build``
    with acceleration (the default)."""
    work = tmp_path_factory.mktemp("accelerated")
    picky = make_sdist(work / "sdists", "picky", reject_native_compiler=True)
    result = subprocess.run(
        [*build_command(*sdists.values(), picky), "-j", "2"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Wheelhouse(work / "wheelhouse"), json.loads(result.stdout), result.stderr, work


def _code_sections(wheel: Path) -> dict[str, dict[str, bytes]]:
    """Extension module -> {section name: bytes} for the sections that hold machine code."""
    found = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".so"):
                elf = ELFFile(io.BytesIO(archive.read(name)))
                found[name] = {
                    section.name: section.data()
                    for section in elf.iter_sections()
                    if section.name in CODE_SECTIONS
                }
    return found


def test_every_emulated_build_succeeds_one_container_per_platform(built) -> None:  # type: ignore[no-untyped-def]
    _house, report, _jobs = built
    assert [o.error for o in report.failed] == []
    assert len(report.having(BuildStatus.BUILT)) == 6
    assert not report.accelerated
    assert report.containers_started == 2


def test_accelerated_builds_compile_natively_and_the_picky_one_is_rebuilt_emulated(
    accelerated,  # type: ignore[no-untyped-def]
) -> None:
    house, report, stderr, _work = accelerated
    builds = {(b["name"], b["target"]): b for b in report["builds"]}
    assert len(builds) == 8 and all(b["status"] == "built" for b in builds.values())
    for (name, _target), build in builds.items():
        assert build["accelerated"] is (name != "picky"), build
        assert bool(build["fallback"]) is (name == "picky"), build
    assert report["summary"]["accelerated"] == 6
    assert report["summary"]["rebuilt_emulated"] == 2
    assert report["containers_started"] == 2
    assert "8 built (6 accelerated, 2 rebuilt emulated after the accelerated build failed)" in (
        stderr
    )
    assert "rebuilt emulated picky-1.0-cp313-manylinux_2_41_aarch64" in stderr
    for entry in house.entries():
        assert entry.compilers["native"] is (entry.name != "picky")
        assert len(entry.inputs["toolchain"]) == 64  # the recipe's identity, for picky too
        if entry.name != "picky":
            assert entry.compilers["toolchain"]["gcc_version"] == "14.2.0"
            assert entry.compilers["toolchain"]["gcc_source_version"] == "14.2.0-19"


def test_the_build_log_shows_the_native_compiler(accelerated) -> None:  # type: ignore[no-untyped-def]
    house, _report, _stderr, _work = accelerated
    for arch in (Arch.AARCH64, Arch.ARMV7L):
        triplet = arch.gnu_triplet
        log = house.log_path(f"tinycpp-1.0-cp313-manylinux_2_41_{arch.value}").read_text()
        assert f"CC={triplet}-gcc -> /opt/prewheel-toolchain/usr/bin/{triplet}-gcc-14" in log
        assert f"native gcc 14.2.0 (14.2.0-19) for {triplet}, running on x86_64" in log
        assert f"{triplet}-g++" in log  # the C++ compiler's command line, as pip -v shows it
        picky = house.log_path(f"picky-1.0-cp313-manylinux_2_41_{arch.value}").read_text()
        assert f"/opt/prewheel-toolchain/usr/bin/{triplet}-gcc-14 is not a" in picky
        assert "rebuilding it with the image's own compilers under emulation" in picky
        assert f"compiler /usr/bin/{triplet}-gcc-14 is the image's own" in picky


def test_accelerated_and_emulated_wheels_have_the_same_machine_code(built, accelerated) -> None:  # type: ignore[no-untyped-def]
    emulated_house, emulated_report, _jobs = built
    fast_house, _report, _stderr, _work = accelerated
    fast = {(e.name, e.target): fast_house.wheel_path(e) for e in fast_house.entries()}
    compared = 0
    for outcome in emulated_report.outcomes:
        key = (str(outcome.job.name), outcome.job.target.identifier)
        emulated_code = _code_sections(emulated_house.wheels_dir / outcome.wheel)
        accelerated_code = _code_sections(fast[key])
        assert emulated_code.keys() == accelerated_code.keys()
        for module, sections in emulated_code.items():
            assert ".text" in sections and sections == accelerated_code[module], (key, module)
            compared += 1
    assert compared == 6


def test_wheels_carry_the_target_elf_machine_and_tags(built) -> None:  # type: ignore[no-untyped-def]
    house, report, _jobs = built
    for outcome in report.outcomes:
        wheel = house.wheels_dir / outcome.wheel
        expected = outcome.job.target.arch.elf_machine
        members = wheel_elf_members(wheel)
        assert members, f"{wheel.name} has no native code"
        assert {(h.machine, h.elf_class) for h in members.values()} == {expected}
        assert outcome.job.target.arch.value in wheel.name


@pytest.mark.parametrize("how", ["emulated", "accelerated"])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_wheels_install_and_import_in_the_runtime_image(  # type: ignore[no-untyped-def]
    built, accelerated, platform: str, how: str
) -> None:
    house = built[0] if how == "emulated" else accelerated[0]
    identifier = target(platform).identifier
    wheels = [house.wheel_path(e) for e in house.entries() if e.target == identifier]
    assert len(wheels) == (3 if how == "emulated" else 4)
    output = bytearray()
    client = docker.from_env()
    try:
        image = resolve_image(RUNTIME_IMAGE, target(platform))
        with Container(client, image=image, platform=platform) as container:
            for wheel in wheels:
                container.copy_in(wheel, PurePosixPath("/wheels") / wheel.name)
            script = (
                f"{INSTALL_WHEELS} && /tmp/v/bin/python -c 'import tinyext, tinycpp, "
                "crcmod._crcfunext, crcmod.predefined, sys; print(tinyext.machine(), "
                "tinycpp.machine(), tinycpp.joined(), "
                'sys.modules["crcmod.crcmod"]._usingExtension, '
                'hex(crcmod.predefined.mkCrcFun("crc-32")(b"123456789")))\' && '
                "(command -v cc || echo no-compiler)"
            )
            result = container.call(["sh", "-c", script], timeout=600, output=output.extend)
    finally:
        client.close()
    text = output.decode()
    assert result.exit_code == 0, text
    machine = EXPECTED_MACHINE[platform]
    assert f"{machine} {machine} c++ True 0xcbf43926" in text
    assert "no-compiler" in text  # installed from our wheel, not compiled on the spot


def test_a_second_run_starts_no_container(built) -> None:  # type: ignore[no-untyped-def]
    house, _report, jobs = built
    builder = DockerBuilder(accelerate=Accelerate.OFF)
    try:
        again = run_builds(jobs, wheelhouse=house, builder=builder, fetcher=SdistFetcher())
    finally:
        builder.close()
    assert [o.status for o in again.outcomes] == [BuildStatus.CACHED] * 6
    assert builder.containers_started == 0


def test_a_second_accelerated_run_starts_no_container(accelerated, sdists) -> None:  # type: ignore[no-untyped-def]
    _house, _report, _stderr, work = accelerated
    result = subprocess.run(
        build_command(*sdists.values(), work / "sdists" / "picky-1.0.tar.gz"),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["summary"]["cached"] == 8 and again["summary"]["built"] == 0
    assert again["containers_started"] == 0
    assert "assembling" not in result.stderr  # the toolchains were kept


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
    assert result.returncode == ExitCode.NO_EMULATION
    assert "qemu-aarch64" in result.stderr and "tonistiigi/binfmt" in result.stderr
    assert not (tmp_path / "wheelhouse" / "wheels").exists()


def test_bookworm_has_no_exact_cross_compiler_so_auto_stays_emulated_and_relaxed_accelerates() -> (
    None
):
    armv7 = Arch.ARMV7L
    # bookworm-build: gcc-12 12.2.0-14+deb12u1
    image = TEST_IMAGE.format(debian_arch=armv7.debian_arch)
    builders = [
        DockerBuilder(accelerate=mode, toolchain_base=TOOLCHAIN_BASE)
        for mode in (Accelerate.AUTO, Accelerate.RELAXED)
    ]
    try:
        refused, accepted = (b.acceleration(image, armv7) for b in builders)
    finally:
        for builder in builders:
            builder.close()
    assert refused.toolchain is None
    assert (
        "the image compiles with gcc-12 12.2.0-14+deb12u1, the release's cross compiler is built "
        "from 12.2.0-14" in refused.reason
    )
    assert "--accelerate relaxed accepts it" in refused.reason
    assert accepted.toolchain is not None and not accepted.exact
    assert accepted.toolchain.gcc_source_version == "12.2.0-14"
    assert accepted.caveat.startswith("the image compiles with gcc-12 12.2.0-14+deb12u1")
