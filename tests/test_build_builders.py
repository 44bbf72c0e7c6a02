"""Builders and containers: per-platform endpoints, binfmt preflight, image checks, timeouts."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from builder.build.builders import (
    DockerBuilder,
    ImageUnavailableError,
    arch_environment,
    parse_docker_hosts,
)
from builder.build.container import Container
from builder.errors import HostEnvironmentError, UsageError
from builder.targets import Arch

AMD64_IMAGE = "prewheel-test/bookworm:amd64"


def test_docker_hosts_are_keyed_by_normalised_platform() -> None:
    hosts = parse_docker_hosts(["linux/aarch64=ssh://arm-box", "linux/armhf=tcp://pi:2375"])
    assert hosts == {"linux/arm64": "ssh://arm-box", "linux/arm/v7": "tcp://pi:2375"}


@pytest.mark.parametrize("value", ["linux/arm64", "linux/arm64=", "=ssh://x"])
def test_malformed_docker_host_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError):
        parse_docker_hosts([value])


def test_32_bit_arm_builds_pin_the_cpu_and_platform_tag() -> None:
    assert arch_environment(Arch.ARMV6L) == {
        "QEMU_CPU": "arm1176",
        "_PYTHON_HOST_PLATFORM": "linux-armv6l",
    }
    assert arch_environment(Arch.ARMV7L) == {"_PYTHON_HOST_PLATFORM": "linux-armv7l"}
    assert arch_environment(Arch.AARCH64) == {}


@pytest.mark.docker
def test_missing_binfmt_handler_is_reported_for_emulated_platforms(tmp_path: Path) -> None:
    builder = DockerBuilder(binfmt_dir=tmp_path, host_machine="x86_64")
    try:
        builder.preflight("linux/amd64")  # native: no handler needed
        with pytest.raises(HostEnvironmentError, match=r"qemu-arm.*tonistiigi/binfmt"):
            builder.preflight("linux/arm/v7")
        (tmp_path / "qemu-arm").write_text("enabled\n")
        builder.preflight("linux/arm/v7")
    finally:
        builder.close()


@pytest.mark.docker
def test_a_platform_with_its_own_endpoint_needs_no_local_emulation(tmp_path: Path) -> None:
    builder = DockerBuilder(
        docker_hosts={"linux/arm64": "unix:///var/run/docker.sock"},
        binfmt_dir=tmp_path,
        host_machine="x86_64",
    )
    builder.preflight("linux/arm64")
    builder.close()


@pytest.mark.docker
def test_an_image_for_another_platform_is_refused() -> None:
    builder = DockerBuilder()
    try:
        assert builder.image_digest(AMD64_IMAGE, "linux/amd64").startswith("sha256:")
        with pytest.raises(ImageUnavailableError, match="is for linux/amd64, not linux/arm64"):
            builder.image_digest(AMD64_IMAGE, "linux/arm64")
    finally:
        builder.close()


@pytest.mark.docker
def test_container_calls_time_out_and_the_container_is_removed() -> None:
    builder = DockerBuilder()
    client = builder.client("linux/amd64")
    with Container(client, image=AMD64_IMAGE, platform="linux/amd64") as container:
        container_id = container.id
        result = container.call(["sleep", "30"], timeout=2)
        assert result.timed_out
        output = bytearray()
        ok = container.call(["sh", "-c", "echo hello"], timeout=30, output=output.extend)
        assert ok.exit_code == 0 and b"hello" in output
        source = Path(__file__)
        container.copy_in(source, PurePosixPath("/in/test.py"), mode=0o444)
        copied = container.copy_out(PurePosixPath("/in"), Path(__file__).parent / ".h2-unused")
        try:
            assert [p.read_bytes() for p in copied] == [source.read_bytes()]
        finally:
            for path in copied:
                path.unlink()
            (Path(__file__).parent / ".h2-unused").rmdir()
    assert container_id not in {c["Id"] for c in client.api.containers(all=True, quiet=True)}
    builder.close()
