"""Layered configuration: CLI > PREWHEEL_* environment > [tool.prewheel] > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config import load_config
from builder.errors import UsageError

PYPROJECT = """
[project]
name = "app"

[tool.prewheel]
platform = ["linux/amd64", "linux/arm64"]
python = "3.12"
libc = "glibc2.31"
extra-index-url = ["https://one.invalid/simple/"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    sub = tmp_path / "deploy"
    sub.mkdir()
    return sub


def test_file_layer_is_found_from_a_subdirectory(project: Path) -> None:
    config = load_config({}, env={}, search_from=project)
    assert config.get_list("platform") == ["linux/amd64", "linux/arm64"]
    assert config.get("python") == "3.12"
    assert config.get("missing", "default") == "default"


def test_environment_beats_file_and_cli_beats_environment(project: Path) -> None:
    env = {
        "PREWHEEL_PYTHON": "3.13",
        "PREWHEEL_EXTRA_INDEX_URL": "https://a.invalid/ https://b.invalid/",
    }
    config = load_config({"python": None}, env=env, search_from=project)
    assert config.get("python") == "3.13"
    assert config.get_list("extra-index-url") == ["https://a.invalid/", "https://b.invalid/"]
    config = load_config({"python": "3.10"}, env=env, search_from=project)
    assert config.get("python") == "3.10"
    assert config.get("libc") == "glibc2.31"


def test_targets_from_layered_config(project: Path) -> None:
    from builder.cli.common import targets_from_config

    config = load_config(
        {"platform": "linux/arm/v7"}, env={"PREWHEEL_PYTHON": "3.11"}, search_from=project
    )
    assert [t.identifier for t in targets_from_config(config)] == ["cp311-manylinux_2_31_armv7l"]


def test_explicit_config_file_must_be_valid(tmp_path: Path) -> None:
    bad = tmp_path / "prewheel.toml"
    bad.write_text("platform = [")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config({}, env={}, config_file=bad)
    with pytest.raises(UsageError, match="does not exist"):
        load_config({}, env={}, config_file=tmp_path / "absent.toml")


def test_nearest_pyproject_must_be_valid_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.prewheel\nplatform = 1")
    with pytest.raises(UsageError, match=r"nearest pyproject\.toml"):
        load_config({}, env={}, search_from=tmp_path)
