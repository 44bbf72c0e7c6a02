"""pylock.toml (PEP 751): the lock as packaging.pylock reads it, each target selecting its file."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from consume_fixtures import TARGETS, digest, entry, example_plan
from packaging.pylock import Pylock

from builder.consume.lock import lock_lines
from builder.consume.pylock import file_url, pylock_document, render_pylock
from builder.errors import ExitCode

INDEX = "https://wheels.example.com/prewheel/simple"
BUILT = "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_armv7l.whl"


def _document() -> Pylock:
    plan = example_plan()
    lines = lock_lines(plan, [entry(BUILT, "pyyaml", "6.0.2", TARGETS[1].identifier)])
    text = render_pylock(pylock_document(lines, INDEX, plan.targets))
    return Pylock.from_dict(tomllib.loads(text))  # validates, as installers read it


def test_every_target_selects_exactly_its_file_by_url_and_hash() -> None:
    document = _document()
    assert document.created_by == "prewheel"
    assert document.tool == {"prewheel": {"targets": [t.identifier for t in TARGETS]}}
    chosen = {}
    for target in TARGETS:
        selected = document.select(environment=target.marker_environment(), tags=target.tags())
        chosen[target.identifier] = {
            package.name: (wheel.name, wheel.url, dict(wheel.hashes)) for package, wheel in selected
        }
    amd64, armv7 = (chosen[t.identifier] for t in TARGETS)
    x86 = "PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl"
    url = f"https://wheels.example.com/prewheel/files/{x86}"
    assert amd64["pyyaml"] == (x86, url, {"sha256": digest(x86)})
    assert armv7["pyyaml"][0] == BUILT  # ours
    assert armv7["pyyaml"][2] == {"sha256": digest("built " + BUILT)}
    assert set(amd64) == {"pyyaml", "idna", "uvloop"}
    assert set(armv7) == {"pyyaml", "idna"}  # uvloop's marker is false there
    for package in document.packages:
        assert package.index == INDEX + "/"
        assert package.sdist is None  # nothing can be compiled


def test_file_urls_sit_beside_simple_and_are_quoted() -> None:
    assert file_url("http://h:8080/simple/", "a+b-1.0-py3-none-any.whl") == (
        "http://h:8080/files/a%2Bb-1.0-py3-none-any.whl"
    )
    assert file_url("https://h/x/simple", "a.whl") == "https://h/x/files/a.whl"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--format pylock needs --our-index-url"),
        (["--our-index-url", INDEX, "-o", "lock.toml"], "is not a pylock file name"),
    ],
)
def test_pylock_usage_errors_come_before_any_work(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "lock",
            "--plan",
            "missing.json",
            "--format",
            "pylock",
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert message in result.stderr
    assert not list(tmp_path.iterdir())
