"""Builders and containers: per-platform endpoints, binfmt preflight, image checks, timeouts."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from builder.building.builders import (
    DockerBuilder,
    ImageUnavailableError,
    _setup_failure,
    _Tail,
    arch_environment,
    parse_docker_hosts,
)
from builder.building.container import Container
from builder.errors import HostEnvironmentError, UsageError
from builder.targets import Arch

AMD64_IMAGE = "prewheel-test/bookworm:amd64"


def test_docker_hosts_are_keyed_by_arch() -> None:
    hosts = parse_docker_hosts(["linux/aarch64=ssh://arm-box", "linux/armhf=tcp://pi:2375"])
    assert hosts == {Arch.AARCH64: "ssh://arm-box", Arch.ARMV7L: "tcp://pi:2375"}


@pytest.mark.parametrize("value", ["linux/arm64", "linux/arm64=", "=ssh://x"])
def test_malformed_docker_host_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError):
        parse_docker_hosts([value])


def test_32_bit_arm_builds_pin_the_cpu_and_platform_tag() -> None:
    assert arch_environment(Arch.ARMV6L) == {
        "QEMU_CPU": "arm1176",
        "_PYTHON_HOST_PLATFORM": "linux-armv6l",
    }
    assert arch_environment(Arch.ARMV7L) == {
        "QEMU_CPU": "cortex-a7",
        "_PYTHON_HOST_PLATFORM": "linux-armv7l",
    }
    assert arch_environment(Arch.AARCH64) == {"QEMU_CPU": "cortex-a53"}


@pytest.mark.docker
def test_missing_binfmt_handler_is_reported_for_emulated_platforms(tmp_path: Path) -> None:
    builder = DockerBuilder(binfmt_dir=tmp_path, host_machine="x86_64")
    try:
        builder.preflight(Arch.X86_64)  # native: no handler needed
        with pytest.raises(HostEnvironmentError, match=r"qemu-arm.*tonistiigi/binfmt"):
            builder.preflight(Arch.ARMV7L)
        (tmp_path / "qemu-arm").write_text("enabled\n")
        builder.preflight(Arch.ARMV7L)
    finally:
        builder.close()


class _OtherMachineDaemon(http.server.BaseHTTPRequestHandler):
    """The few Engine API answers a builder needs before its preflight, from a daemon that runs
    on another machine (it reports that machine's name)."""

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path.endswith("/_ping"):
            body, kind = b"OK", "text/plain"
        elif path.endswith("/version"):
            body, kind = (
                json.dumps({"ApiVersion": "1.45", "Version": "28.0.0"}).encode(),
                "application/json",
            )
        elif path.endswith("/info"):
            body, kind = json.dumps({"Name": "arm-box-elsewhere"}).encode(), "application/json"
        elif path.endswith("/containers/json"):
            body, kind = b"[]", "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_daemon_on_another_machine_needs_no_emulation_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The binfmt handlers checked are this kernel's, so only for a daemon that runs on it."""
    for proxy in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)  # the stand-in is on the loopback
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherMachineDaemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    builder = DockerBuilder(
        docker_hosts={Arch.AARCH64: f"tcp://127.0.0.1:{server.server_address[1]}"},
        binfmt_dir=tmp_path,  # empty: no handler registered here
        host_machine="x86_64",
    )
    try:
        builder.preflight(Arch.AARCH64)
    finally:
        builder.close()
        server.shutdown()
        server.server_close()


@pytest.mark.docker
def test_a_platform_endpoint_on_this_kernel_is_checked(tmp_path: Path) -> None:
    builder = DockerBuilder(
        docker_hosts={Arch.AARCH64: "unix:///var/run/docker.sock"},
        binfmt_dir=tmp_path,
        host_machine="x86_64",
    )
    try:
        with pytest.raises(HostEnvironmentError, match="qemu-aarch64"):
            builder.preflight(Arch.AARCH64)
    finally:
        builder.close()


@pytest.mark.docker
def test_an_image_for_another_platform_is_refused() -> None:
    builder = DockerBuilder()
    try:
        assert builder.image_digest(AMD64_IMAGE, Arch.X86_64).startswith("sha256:")
        with pytest.raises(ImageUnavailableError, match="is for linux/amd64, not linux/arm64"):
            builder.image_digest(AMD64_IMAGE, Arch.AARCH64)
    finally:
        builder.close()


@pytest.mark.docker
def test_container_calls_time_out_and_the_container_is_removed() -> None:
    builder = DockerBuilder()
    client = builder.client(Arch.X86_64)
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


def test_a_failed_set_up_names_its_step_time_and_last_output() -> None:
    tail = _Tail(limit=100)
    tail.add(b"x" * 200 + b"\n[prewheel] $ apt-get install -y patchelf\n")
    tail.add(b"E: Unable to locate package patchelf\n")
    failed = _setup_failure(
        SimpleNamespace(timed_out=False, exit_code=100), elapsed=12.4, timeout=900, tail=tail
    )
    assert failed.startswith(
        "the container set-up failed after 12 s at `apt-get install -y patchelf` (exit code 100)"
    )
    assert failed.endswith(
        "Its last output:\n  [prewheel] $ apt-get install -y patchelf\n"
        "  E: Unable to locate package patchelf"
    )  # the line cut short by the limit is left out
    timed_out = _setup_failure(
        SimpleNamespace(timed_out=True, exit_code=None), elapsed=900.2, timeout=900, tail=_Tail()
    )
    assert timed_out.startswith("the container set-up timed out after 900 s (--setup-timeout 900)")
