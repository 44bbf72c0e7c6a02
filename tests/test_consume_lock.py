from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from consume_fixtures import (
    AMD64,
    ARMV7,
    BUILT_PYYAML,
    TARGETS,
    digest,
    dist,
    entry,
    example_plan,
    requirement,
    row,
)

from builder.consume.lock import lock_lines, render_lock
from builder.errors import RequirementsError
from builder.files import atomic_write
from builder.plan import Cell, Plan, Status
from builder.requirements import read_requirements


def test_lock_hashes_every_file_any_target_installs_including_built_wheels() -> None:
    lines = {line.requirement.name: line for line in lock_lines(example_plan(), [BUILT_PYYAML])}
    pyyaml = lines["pyyaml"].hashes
    assert pyyaml == (
        f"sha256:{digest('PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl')}",
        f"sha256:{BUILT_PYYAML.sha256}",
    )
    # no sdist hash: a cache miss must fail, not compile
    assert f"sha256:{digest('pyyaml-6.0.2.tar.gz')}" not in pyyaml
    assert lines["idna"].hashes == (f"sha256:{digest('idna-3.10-py3-none-any.whl')}",)
    assert len(lines["uvloop"].hashes) == 1  # the excluded armv7 cell adds nothing


def test_lock_refuses_a_gap_that_was_not_built() -> None:
    with pytest.raises(RequirementsError) as error:
        lock_lines(example_plan(), [])
    assert f"pyyaml==6.0.2 on {ARMV7}" in error.value.message
    assert "prewheel build" in error.value.message


def test_built_wheels_of_other_targets_or_versions_do_not_count() -> None:
    other_target = entry("pyyaml-6.0.2-cp311-cp311-linux_x86_64.whl", "pyyaml", "6.0.2", AMD64)
    other_version = entry("pyyaml-6.0.1-cp311-cp311-linux_armv7l.whl", "pyyaml", "6.0.1", ARMV7)
    with pytest.raises(RequirementsError):
        lock_lines(example_plan(), [other_target, other_version])


def test_unhashed_upstream_file_and_unavailable_cells_are_reported() -> None:
    plan = Plan(
        TARGETS,
        (
            row(
                requirement("a==1"),
                Cell(Status.WHEEL, dist("a-1-py3-none-any.whl", sha256=False)),
                Cell(Status.UNAVAILABLE, reason="no file for Python 3.11"),
            ),
        ),
    )
    with pytest.raises(RequirementsError) as error:
        lock_lines(plan, [])
    assert "without a sha256" in error.value.message
    assert "no file for Python 3.11" in error.value.message


def test_render_keeps_markers_and_is_a_requirements_file_pip_tools_readers_accept(
    tmp_path: Path,
) -> None:
    text = render_lock(lock_lines(example_plan(), [BUILT_PYYAML]), header=["made by a test"])
    assert text.startswith("# made by a test\n")
    assert 'uvloop==0.21.0 ; platform_machine != "armv7l" \\\n    --hash=sha256:' in text
    path = tmp_path / "requirements.lock"
    atomic_write(path, text)
    parsed = read_requirements([path])
    by_name = {r.name: r for r in parsed.requirements}
    assert len(by_name["pyyaml"].hashes) == 2
    assert str(by_name["uvloop"].marker) == 'platform_machine != "armv7l"'


def test_pip_reads_the_lock_in_hash_checking_mode(tmp_path: Path) -> None:
    """pip itself parses the lock (dry run against an empty local directory: no network)."""
    path = tmp_path / "requirements.lock"
    atomic_write(path, render_lock(lock_lines(example_plan(), [BUILT_PYYAML])))
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--find-links",
            str(tmp_path / "empty"),
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "No matching distribution found for idna==3.10" in result.stderr or (
        "No matching distribution" in result.stderr
    ), result.stderr
    assert "Invalid requirement" not in result.stderr


def test_the_lock_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "lock.txt"
    atomic_write(path, "a==1\n")
    atomic_write(path, "b==2\n")
    assert path.read_text() == "b==2\n"
    assert [p.name for p in path.parent.iterdir()] == ["lock.txt"]
