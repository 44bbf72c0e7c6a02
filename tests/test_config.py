"""Layered configuration: CLI > PREWHEEL_* environment > [tool.prewheel] > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config import load_config
from builder.errors import UsageError
from builder.options import resolve

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
    settings = resolve("plan", env={}, search_from=project)
    assert settings.targets.platform == ("linux/amd64", "linux/arm64")
    assert settings.targets.python == ("3.12",)
    assert settings.build.memory == "4g"  # declared default


def test_environment_beats_file_and_cli_beats_environment(project: Path) -> None:
    env = {
        "PREWHEEL_PYTHON": "3.13",
        "PREWHEEL_EXTRA_INDEX_URL": "https://a.invalid/ https://b.invalid/",
    }
    settings = resolve("plan", env=env, search_from=project)
    assert settings.targets.python == ("3.13",)
    assert settings.indexes.extra_index_url == ("https://a.invalid/", "https://b.invalid/")
    settings = resolve("plan", given={"python": "3.10"}, env=env, search_from=project)
    assert settings.targets.python == ("3.10",)
    assert settings.targets.libc == "glibc2.31"


def test_targets_from_layered_config(project: Path) -> None:
    settings = resolve(
        "plan", given={"platform": "linux/arm/v7"}, env={"PREWHEEL_PYTHON": "3.11"},
        search_from=project,
    )  # fmt: skip
    assert [t.identifier for t in settings.targets.targets()] == ["cp311-manylinux_2_31_armv7l"]


def test_explicit_config_file_must_be_valid(tmp_path: Path) -> None:
    bad = tmp_path / "prewheel.toml"
    bad.write_text("platform = [")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(env={}, config_file=bad)
    with pytest.raises(UsageError, match="does not exist"):
        load_config(env={}, config_file=tmp_path / "absent.toml")


def test_nearest_pyproject_must_be_valid_too(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.prewheel\nplatform = 1")
    with pytest.raises(UsageError, match=r"nearest pyproject\.toml"):
        load_config(env={}, search_from=tmp_path)


OVERRIDES = """
[tool.prewheel.packages.numpy]
environment = { CFLAGS = "-O2", NPY_BLAS_ORDER = "openblas" }
system-packages = ["libopenblas-dev"]

[[tool.prewheel.overrides]]
select = "*armv6l*"
packages.numpy.environment = { CFLAGS = "-O1" }
packages.numpy.system-packages = ["libblas-dev"]

[[tool.prewheel.overrides]]
select = ["cp312-*", "*-musllinux_*"]
packages.NumPy.pip-args = ["--config-settings", "setup-args=-Dallow-noblas=true"]
"""


def test_overrides_change_a_package_on_the_targets_they_select(tmp_path: Path) -> None:
    """cibuildwheel's overrides: select target identifiers; keys replace, environment merges."""
    (tmp_path / "pyproject.toml").write_text(OVERRIDES)
    config = load_config(search_from=tmp_path)
    armv6 = config.package("numpy", "cp311-glibc_2_36_armv6l")
    assert dict(armv6.environment) == {"CFLAGS": "-O1", "NPY_BLAS_ORDER": "openblas"}
    assert armv6.system_packages == ("libblas-dev",)
    assert armv6.pip_args == ()
    amd64 = config.package("numpy", "cp311-manylinux_2_36_x86_64")
    assert dict(amd64.environment) == {"CFLAGS": "-O2", "NPY_BLAS_ORDER": "openblas"}
    assert amd64.system_packages == ("libopenblas-dev",)
    both = config.package("numpy", "cp312-glibc_2_36_armv6l")  # both overrides, in order
    assert both.system_packages == ("libblas-dev",)
    assert both.pip_args == ("--config-settings", "setup-args=-Dallow-noblas=true")
    assert config.package("other", "cp312-glibc_2_36_armv6l") == config.package("other")


@pytest.mark.parametrize(
    "override",
    [
        'packages.numpy.environment = { CFLAGS = "-O1" }',  # no select
        'select = "*"\nplatform = "linux/amd64"',  # not a per-package key
        'select = "*"\npackages.numpy.no-such-key = 1',
    ],
)
def test_a_malformed_override_is_a_usage_error(tmp_path: Path, override: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[[tool.prewheel.overrides]]\n{override}\n")
    config = load_config(search_from=tmp_path)
    with pytest.raises(UsageError, match=r"overrides|unknown keys"):
        config.package("numpy", "cp311-manylinux_2_36_x86_64")
