"""The shell scripts' platform table (scripts/shared/platforms.sh) says what builder/targets.py says.

host-setup.sh runs on a fresh machine before prewheel is installed, so it cannot ask Python;
this test keeps its table and Python's one set of facts: Debian architecture, Docker platform,
machine, QEMU handler, first Debian release, QEMU CPU, and which handlers each host needs.
Once prewheel is installed, a script reads the same facts from ``prewheel targets --json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.targets import (
    DEBIAN_RELEASES,
    Arch,
    debian_release_problem,
    qemu_handlers_needed,
)

REPO = Path(__file__).resolve().parent.parent
PLATFORMS_SH = REPO / "scripts" / "shared" / "platforms.sh"


def shell(script: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{PLATFORMS_SH}"; {script}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **environment},
    )


def test_the_table_has_every_arch_with_the_facts_of_targets_py() -> None:
    result = shell('printf "%s\\n" "$PREWHEEL_PLATFORMS"')
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    table = {row[0]: tuple(row[1:]) for row in rows}
    assert len(rows) == len(table) == len(Arch)
    for arch in Arch:
        assert table[arch.debian_arch] == (
            arch.docker_platform,
            arch.value,
            arch.qemu_handler,
            arch.first_debian_release,
            arch.qemu_cpu or "-",
        ), arch


def test_prewheel_targets_json_gives_a_script_the_tables_facts() -> None:
    """Every row of the shell table, and its native aliases, read back from the CLI's JSON."""
    table = shell('printf "%s\\n" "$PREWHEEL_PLATFORMS"').stdout
    rows = {row[0]: tuple(row[1:]) for row in map(str.split, table.splitlines()) if row}
    native_also = shell('echo "$PREWHEEL_NATIVE_ALSO"').stdout.split()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "builder", "targets", "--json", "--platform"),
            ",".join(arch.docker_platform for arch in Arch),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    facts = [target["arch"] for target in json.loads(result.stdout)]
    assert len(facts) == len(rows)
    for arch in facts:
        assert rows[arch["debian_arch"]] == (
            arch["docker_platform"],
            arch["machine"],
            arch["qemu_handler"],
            arch["first_debian_release"],
            arch["qemu_cpu"] or "-",
        )
    assert native_also == [
        f"{arch['machine']}:{','.join(arch['runs_natively'][1:])}"
        for arch in facts
        if len(arch["runs_natively"]) > 1
    ]


def test_the_releases_are_those_targets_py_knows_in_order() -> None:
    result = shell('echo "$PREWHEEL_DEBIAN_RELEASES"')
    assert result.stdout.split() == list(DEBIAN_RELEASES)


@pytest.mark.parametrize("suite", ["buster", "bookworm", "trixie", "forky"])
@pytest.mark.parametrize("arch", list(Arch), ids=lambda arch: arch.value)
def test_which_release_has_which_arch_is_the_same(suite: str, arch: Arch) -> None:
    result = shell(f"release_has {suite} {arch.debian_arch}")
    image = f"python:3.11-slim-{suite}"
    assert (result.returncode == 0) is (debian_release_problem(image, arch) is None)


@pytest.mark.parametrize("host", list(Arch), ids=lambda arch: arch.value)
def test_the_handlers_a_host_needs_are_the_same(host: Arch) -> None:
    result = shell(f"qemu_handlers_needed {host.value}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == qemu_handlers_needed(host)


def test_host_setup_lists_the_handlers_for_this_host() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "host-setup.sh"), "--print-handlers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    host = Arch.from_machine(os.uname().machine)
    assert host is not None
    assert result.stdout.split() == qemu_handlers_needed(host)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["riscv64"], "Debian bookworm has no riscv64 (Debian provides it from trixie on); use --trixie riscv64"),
        (["mips"], "unknown architecture mips (amd64 arm64 armhf armel i386 ppc64el s390x riscv64)"),
        (["--portable", "s390x"], "--portable: no manylinux policy for s390x"),
    ],
)  # fmt: skip
def test_test_images_refuses_what_debian_or_the_script_lacks(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "test-images.sh"), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "PREWHEEL_CI_CACHE": str(tmp_path / "cache"),
            "PREWHEEL_DEBIAN_MIRROR": "http://mirror.invalid/debian",
        },
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before anything was made
