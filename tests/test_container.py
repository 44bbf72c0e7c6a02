"""builder.building.container: the one container class, as builds and ``prewheel verify`` use it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import docker
import pytest

from builder.building.container import OWNER_LABEL, Container, connect, owner_label
from builder.consume.verify import DockerProbeRunner
from builder.targets import Arch

IMAGE = "prewheel-test/bookworm:amd64"
PLATFORM = "linux/amd64"


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    made = connect()
    try:
        yield made
    finally:
        made.close()


def _ours(client: docker.DockerClient) -> list[str]:
    """The containers this process created that still exist."""
    mine = {"label": f"{OWNER_LABEL}={owner_label()}"}
    return [c.id for c in client.containers.list(all=True, filters=mine, ignore_removed=True)]


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_a_command_the_in_container_timeout_cannot_end_is_ended_by_the_watchdog(
    client: docker.DockerClient,
) -> None:
    """``timeout -s KILL`` in the container ends a command at its timeout, unless ``timeout``
    itself cannot run (here: stopped, as a wedged emulator would leave it); then the call
    would wait for ever, and the watchdog kills the container ``grace`` seconds later."""
    with Container(client, image=IMAGE, platform=PLATFORM) as container:
        started = time.monotonic()
        output = bytearray()
        result = container.call(
            ["sh", "-c", "kill -STOP $PPID; echo stopped; sleep 600"],
            timeout=2,
            grace=3,
            output=output.extend,
        )
        elapsed = time.monotonic() - started
        assert result.timed_out and result.exit_code == 137
        assert b"stopped" in output
        assert 5 <= elapsed < 60, f"ended after {elapsed:.1f} s"
    assert _ours(client) == []  # removed all the same


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_files_copied_in_at_once_with_their_mode_and_directories(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_text("first\n")
    two.write_text("second\n")
    output = bytearray()
    with Container(client, image=IMAGE, platform=PLATFORM) as container:
        container.copy_files_in(
            {PurePosixPath("/a/b/one.txt"): one, PurePosixPath("/c/two.txt"): two}, mode=0o444
        )
        result = container.call(
            ["sh", "-c", "cat /a/b/one.txt /c/two.txt; stat -c '%a %U' /a/b/one.txt /c/two.txt"],
            timeout=60,
            output=output.extend,
        )
    assert result.exit_code == 0 and not result.timed_out
    assert output.decode().split("\n") == ["first", "second", "444 root", "444 root", ""]


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_the_verify_runner_runs_in_the_container_class_with_environment_files_and_timeout(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    """What ``prewheel verify`` hands a probe container: its files (the probe, the lock, the CA
    bundle), the environment (proxies, CA settings, QEMU_CPU), and a timeout after which the
    probe is killed; the container is removed either way."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0\n")
    runner = DockerProbeRunner(client)
    run = runner.run(
        image=IMAGE,
        arch=Arch.from_docker_platform(PLATFORM),
        files={PurePosixPath("/prewheel/requirements.lock"): lock},
        argv=["sh", "-c", 'echo "proxy=$HTTPS_PROXY"; cat /prewheel/requirements.lock; exit 3'],
        environment={"HTTPS_PROXY": "http://proxy.invalid:3128"},
        timeout=60,
    )
    assert (run.exit_code, run.timed_out) == (3, False)
    assert run.output.splitlines() == ["proxy=http://proxy.invalid:3128", "tinypkg==1.0"]
    started = time.monotonic()
    slow = runner.run(
        image=IMAGE,
        arch=Arch.from_docker_platform(PLATFORM),
        files={},
        argv=["sh", "-c", "echo begun; sleep 600"],
        environment={},
        timeout=3,
    )
    assert slow.timed_out and "begun" in slow.output
    assert time.monotonic() - started < 60
    assert _ours(client) == []
