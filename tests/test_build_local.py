"""`--builder local`: builds on the host itself, only for the host's own target."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from build_fixtures.sdists import make_sdist

from builder.building import LocalBuilder
from builder.building.builders import BuildFailed, _LocalSession
from builder.errors import ExitCode
from builder.targets import Arch, Libc, Target
from builder.wheelhouse import Wheelhouse


def host_options() -> list[str]:
    libc, version = platform.libc_ver()
    if libc != "glibc" or platform.machine() not in {a.value for a in Arch}:
        pytest.skip("the host is not a glibc Linux of a known architecture")
    arch = Arch(platform.machine())
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return ["--platform", arch.docker_platform, "--python", python, "--libc", f"glibc{version}"]


def prewheel(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", "build", "--builder", "local", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CI": "1"},
    )


def test_local_builder_matches_only_the_host_target() -> None:
    options = host_options()
    builder = LocalBuilder()
    python = (sys.version_info[0], sys.version_info[1])
    glibc = tuple(int(p) for p in options[-1].removeprefix("glibc").split(".")[:2])
    host = Target(python, Libc.GLIBC, glibc, Arch(platform.machine()))  # type: ignore[arg-type]
    assert builder.host_target_matches(host)
    other = Arch.AARCH64 if host.arch is not Arch.AARCH64 else Arch.X86_64
    assert not builder.host_target_matches(Target(python, Libc.GLIBC, glibc, other))  # type: ignore[arg-type]


def test_local_build_of_a_foreign_platform_is_refused(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    result = prewheel(sdist, "--platform", "linux/riscv64", "--python", "3.11", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "--builder docker" in result.stderr


@pytest.mark.network
def test_local_build_produces_a_checked_cached_wheel(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    first = prewheel(sdist, *host_options(), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert [b["status"] for b in json.loads(first.stdout)["builds"]] == ["built"]
    [wheel] = Wheelhouse(tmp_path / "wheelhouse").wheels()
    assert wheel.name.startswith("tinyext-1.0-cp")
    second = prewheel(sdist, *host_options(), "--json", cwd=tmp_path)
    assert [b["status"] for b in json.loads(second.stdout)["builds"]] == ["cached"]


def test_a_local_build_that_times_out_takes_its_children_with_it(tmp_path: Path) -> None:
    """The build script's own children (pip, the compiler) die at the timeout too."""
    script = tmp_path / "build_in_container.py"
    pid_file = tmp_path / "grandchild.pid"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    session = _LocalSession(tmp_path, script, sys.executable, timeout=2)
    started = time.monotonic()
    with (tmp_path / "log").open("wb") as log, pytest.raises(BuildFailed, match="timed out"):
        session.setup(log)
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(grandchild)


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits for its new parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
