"""`prewheel build` inputs: requirements (planned), saved plans, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from build_fixtures.helpers import TEST_IMAGE, gap
from build_fixtures.sdists import make_sdist

from builder.errors import ExitCode
from builder.plan import Cell, Plan, PlanRow, Status, plan_to_json
from builder.targets import parse_identifier
from builder.wheelhouse import Wheelhouse


def prewheel(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", "build", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CI": "1"},
    )


def test_no_input_is_a_usage_error(tmp_path: Path) -> None:
    result = prewheel(cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "requirements files" in result.stderr


def test_a_malformed_plan_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text('{"format": "nope"}')
    result = prewheel("--plan", "plan.json", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "prewheel plan" in result.stderr


@pytest.mark.network
def test_requirements_without_gaps_build_nothing(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    result = prewheel(
        "requirements.txt", "--platform", "linux/amd64,linux/arm64", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Nothing to build" in result.stderr
    assert json.loads(result.stdout)["builds"] == []


@pytest.mark.docker
@pytest.mark.network
def test_builds_the_gaps_of_a_saved_plan(tmp_path: Path) -> None:
    todo = gap(make_sdist(tmp_path, "planext"), "linux/amd64")
    row = PlanRow(todo.requirement, {todo.target.identifier: Cell(Status.BUILD, todo.sdist)})
    plan = Plan((todo.target,), (row,))
    (tmp_path / "plan.json").write_text(json.dumps(plan_to_json(plan)))
    result = prewheel("--plan", "plan.json", "--image", TEST_IMAGE, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [b["status"] for b in json.loads(result.stdout)["builds"]] == ["built"]
    [wheel] = Wheelhouse(tmp_path / "wheelhouse").wheels()
    assert wheel.name.startswith("planext-1.0-cp311-cp311-manylinux")


def test_an_older_identifier_naming_two_plan_targets_is_ambiguous(tmp_path: Path) -> None:
    """--target with --plan picks plan targets; cp311-linux_armv6l fits both glibc versions."""
    rows = []
    targets = []
    for libc in ("2_31", "2_36"):
        todo = gap(make_sdist(tmp_path, "armext"), "linux/arm/v6")
        target = parse_identifier(f"cp311-glibc_{libc}_armv6l")
        targets.append(target)
        rows.append({target.identifier: Cell(Status.BUILD, todo.sdist)})
    row = PlanRow(todo.requirement, {k: v for cells in rows for k, v in cells.items()})
    (tmp_path / "plan.json").write_text(json.dumps(plan_to_json(Plan(tuple(targets), (row,)))))
    result = prewheel("--plan", "plan.json", "--target", "cp311-linux_armv6l", cwd=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    message = " ".join(result.stderr.split())
    assert "ambiguous" in message
    assert "cp311-glibc_2_31_armv6l, cp311-glibc_2_36_armv6l" in message
