"""Which platforms need which QEMU handler, the build and verify preflight that names a missing
one, and the refusal of an image whose Debian release lacks the platform (riscv64 before
trixie). Unit tier: binfmt_misc is a temporary directory, no Docker daemon is asked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from build_fixtures.sdists import make_sdist

from builder.binfmt import handler_state, require_emulation, shares_this_kernel
from builder.building import DockerBuilder
from builder.building.jobs import resolve_image
from builder.consume.verify import DockerProbeRunner
from builder.errors import (
    EmulationUnavailableError,
    ExitCode,
    HostEnvironmentError,
    ImageUnavailableError,
)
from builder.targets import Arch, debian_release_problem, qemu_handlers_needed, select_targets

REPO = Path(__file__).resolve().parent.parent


def binfmt(tmp_path: Path, **handlers: str) -> Path:
    """A fake binfmt_misc: ``qemu_s390x="enabled"`` writes the entry ``qemu-s390x``."""
    directory = tmp_path / "binfmt_misc"
    directory.mkdir(exist_ok=True)
    for name, state in handlers.items():
        (directory / name.replace("_", "-")).write_text(
            f"{state}\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"
        )
    return directory


def test_every_arch_has_one_handler_and_the_host_needs_those_it_does_not_run() -> None:
    assert Arch.ARMV6L.qemu_handler == Arch.ARMV7L.qemu_handler == "qemu-arm"
    assert qemu_handlers_needed(Arch.X86_64) == [
        "qemu-aarch64",
        "qemu-arm",
        "qemu-ppc64le",
        "qemu-riscv64",
        "qemu-s390x",
    ]
    assert qemu_handlers_needed(Arch.AARCH64) == [
        "qemu-i386",
        "qemu-ppc64le",
        "qemu-riscv64",
        "qemu-s390x",
        "qemu-x86_64",
    ]


@pytest.mark.parametrize(
    ("platform", "handler", "tonistiigi"),
    [
        ("linux/s390x", "qemu-s390x", "s390x"),
        ("linux/ppc64le", "qemu-ppc64le", "ppc64le"),
        ("linux/riscv64", "qemu-riscv64", "riscv64"),
        ("linux/arm/v6", "qemu-arm", "arm"),
        ("linux/arm64", "qemu-aarch64", "arm64"),
    ],
)
def test_a_missing_handler_is_named_with_what_registers_it(
    tmp_path: Path, platform: str, handler: str, tonistiigi: str
) -> None:
    empty = binfmt(tmp_path)
    with pytest.raises(EmulationUnavailableError) as error:
        require_emulation(
            Arch.from_docker_platform(platform), host_machine="x86_64", binfmt_dir=empty
        )
    message = error.value.message
    assert f"binfmt handler {handler} is not registered in {empty}" in message
    assert f"update-binfmts --enable {handler}" in message
    assert f"tonistiigi/binfmt --install {tonistiigi}`" in message
    assert "scripts/host-setup.sh" in message
    assert error.value.exit_code == ExitCode.NO_EMULATION == 16
    assert isinstance(error.value, HostEnvironmentError)  # callers catching host problems


def test_a_disabled_handler_is_not_enough_and_is_named_so(tmp_path: Path) -> None:
    directory = binfmt(tmp_path, qemu_s390x="disabled")
    assert handler_state("qemu-s390x", directory) == "disabled"
    with pytest.raises(EmulationUnavailableError) as error:
        require_emulation(Arch.S390X, host_machine="x86_64", binfmt_dir=directory)
    assert "qemu-s390x is registered but disabled" in error.value.message
    assert f"echo 1 > {directory / 'qemu-s390x'}" in error.value.message


def test_native_platforms_and_registered_handlers_pass(tmp_path: Path) -> None:
    directory = binfmt(tmp_path, qemu_s390x="enabled")
    require_emulation(Arch.S390X, host_machine="x86_64", binfmt_dir=directory)
    for arch in (Arch.X86_64, Arch.I686):  # i386 runs natively on x86_64
        require_emulation(arch, host_machine="x86_64", binfmt_dir=directory)
    for arch in (Arch.AARCH64, Arch.ARMV7L, Arch.ARMV6L):
        require_emulation(arch, host_machine="aarch64", binfmt_dir=directory)
    with pytest.raises(EmulationUnavailableError, match="qemu-i386"):
        require_emulation(Arch.I686, host_machine="aarch64", binfmt_dir=directory)
    with pytest.raises(EmulationUnavailableError, match="Building for linux/386 "):
        require_emulation(Arch.I686, host_machine="aarch64", binfmt_dir=directory)


@pytest.mark.docker  # the preflight asks the daemon where it runs
def test_the_verify_preflight_names_the_handler_before_any_container(tmp_path: Path) -> None:
    runner = DockerProbeRunner(binfmt_dir=binfmt(tmp_path), host_machine="x86_64")
    with pytest.raises(EmulationUnavailableError) as error:
        runner.preflight("prewheel-test/bookworm:s390x", Arch.S390X)
    assert error.value.message.startswith("Verifying for linux/s390x on this x86_64 host")
    assert "qemu-s390x" in error.value.message
    runner.preflight("prewheel-test/bookworm:i386", Arch.I686)


def _cli(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    return subprocess.run(
        [sys.executable, "-m", "builder", *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.docker
def test_prewheel_verify_exits_16_naming_the_handler(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinyext==1.0 --hash=sha256:00\n")
    result = _cli(
        tmp_path,
        "verify",
        "--lock",
        str(lock),
        "--index-url",
        "http://127.0.0.1:9/simple/",
        "--platform",
        "linux/amd64,linux/s390x",
        "--image",
        "prewheel-test/bookworm:{debian_arch}",
        "--binfmt-dir",
        str(binfmt(tmp_path)),
    )
    assert result.returncode == ExitCode.NO_EMULATION, result.stderr
    assert "qemu-s390x is not registered" in result.stderr
    assert "update-binfmts --enable qemu-s390x" in result.stderr


def test_bookworm_images_are_refused_for_riscv64_naming_trixie() -> None:
    riscv64 = Arch.RISCV64
    for image in ("python:3.11-slim-bookworm", "prewheel-test/bookworm-build:riscv64"):
        problem = debian_release_problem(image, riscv64)
        assert problem is not None
        assert f"Image {image} cannot run linux/riscv64: Debian bookworm has no riscv64" in problem
        assert "--image 'python:{python}-slim-trixie'" in problem
        assert "--libc glibc2.41" in problem
    for image in ("python:3.13-slim-trixie", "prewheel-test/trixie-build:riscv64", "alpine:3.20"):
        assert debian_release_problem(image, riscv64) is None
    for arch in (Arch.S390X, Arch.I686, Arch.PPC64LE, Arch.ARMV6L):
        assert debian_release_problem("python:3.11-slim-bookworm", arch) is None


def test_the_build_and_verify_refuse_bookworm_for_riscv64_before_asking_docker() -> None:
    builder = DockerBuilder()  # connects lazily: the refusal comes first
    with pytest.raises(ImageUnavailableError, match="Debian provides it from trixie on"):
        builder.image_digest("python:3.11-slim-bookworm", Arch.RISCV64)
    with pytest.raises(HostEnvironmentError, match="Debian bookworm has no riscv64"):
        DockerProbeRunner().preflight("python:3.11-slim-bookworm", Arch.RISCV64)


def test_a_trixie_template_resolves_to_the_trixie_riscv64_image() -> None:
    [target] = select_targets(platforms=["linux/riscv64"], pythons=["3.13"], libc="glibc2.41")
    image = resolve_image("prewheel-test/trixie-build:{debian_arch}", target)
    assert image == "prewheel-test/trixie-build:riscv64"
    assert debian_release_problem(image, target.arch) is None


def test_prewheel_build_of_riscv64_in_the_default_bookworm_image_is_refused(
    tmp_path: Path,
) -> None:
    sdist = make_sdist(tmp_path / "sdists")
    result = _cli(
        tmp_path,
        "build",
        str(sdist),
        "--platform",
        "linux/riscv64",
        "--binfmt-dir",
        str(binfmt(tmp_path)),
    )
    assert result.returncode == ExitCode.BUILDS_FAILED, result.stderr
    assert "Image python:3.11-slim-bookworm cannot run linux/riscv64" in result.stderr
    assert "python:{python}-slim-trixie" in result.stderr
    assert not (tmp_path / "wheelhouse" / "wheels").exists()


def test_only_a_daemon_on_this_kernel_is_checked_against_this_hosts_handlers() -> None:
    """A Docker Desktop, colima or remote daemon (chosen by DOCKER_HOST or a context) reports
    its own machine's name: this host's binfmt_misc says nothing about it."""
    assert shares_this_kernel({"Name": socket.gethostname()})
    assert not shares_this_kernel({"Name": "docker-desktop"})
    assert not shares_this_kernel({})


@pytest.mark.docker
def test_the_local_daemon_shares_this_kernel() -> None:
    client = docker.from_env()
    try:
        assert shares_this_kernel(client.info())
    finally:
        client.close()
