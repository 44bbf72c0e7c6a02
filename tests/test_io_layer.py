"""Issue 9: one I/O layer. Each kind of side effect has one home in builder/, and a new one
elsewhere fails here (in-container resource scripts, which run inside target images, are not
prewheel's host code and are left out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parent.parent / "builder"


def _sources() -> dict[str, str]:
    return {
        path.relative_to(BUILDER).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(BUILDER.rglob("*.py"))
        if "resources" not in path.relative_to(BUILDER).parts
    }


def _where(pattern: str) -> dict[str, int]:
    found = {name: len(re.findall(pattern, text)) for name, text in _sources().items()}
    return {name: count for name, count in found.items() if count}


@pytest.mark.parametrize(
    ("what", "pattern", "home"),
    [
        ("container creation", r"containers\.(create|run)\(", {"building/container.py": 1}),
        (
            "Docker client",
            r"docker\.(from_env|DockerClient)\(",
            {"building/container.py": 2},  # connect(): a base URL, else the environment
        ),
        ("HTTP client", r"httpx\.Client\(", {"fetch.py": 1}),
        ("host subprocess", r"(?m)^\s*(import subprocess|from subprocess )", {"cmd.py": 1}),
        ("os.system / exec", r"os\.(system|popen|exec\w*|spawn\w*)\(", {}),
    ],
)
def test_each_side_effect_has_one_home(what: str, pattern: str, home: dict[str, int]) -> None:
    assert _where(pattern) == home, f"{what} outside its home"


def test_temp_files_for_atomic_writes_are_made_by_the_one_writer() -> None:
    found = _where(r"mkstemp\(|NamedTemporaryFile\(")
    assert found.pop("files.py") == 1
    assert found == {}, f"temp-file writers outside builder/files.py: {found}"
