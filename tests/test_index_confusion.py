"""Dependency confusion: a higher version of a project we built, planted on another index,
must not be installed by the install commands docs/index.md documents."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_fixtures import (
    installed_version,
    isolated_env,
    make_wheel,
    pip_install,
    serving_directory,
    uv_install,
)

from builder.index.static import StaticIndex


@contextlib.contextmanager
def _serve_tree(tmp_path: Path, name: str, wheels: list[Path]) -> Iterator[str]:
    root = tmp_path / name
    StaticIndex(root).sync(wheels)
    with serving_directory(root, path="simple/", log=tmp_path / f"{name}.log") as url:
        yield url


@pytest.fixture
def indexes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(our index with internal-tool 1.0, a planted index with internal-tool 99.0)."""
    ours = [make_wheel(tmp_path / "ours", "internal-tool", "1.0")]
    planted = [make_wheel(tmp_path / "evil", "internal-tool", "99.0")]
    with contextlib.ExitStack() as stack:
        our_url = stack.enter_context(_serve_tree(tmp_path, "our-index", ours))
        evil_url = stack.enter_context(_serve_tree(tmp_path, "planted-index", planted))
        yield our_url, evil_url


def test_control_merging_pip_would_take_the_planted_version(
    indexes: tuple[str, str], tmp_path: Path
) -> None:
    """Proves the planted index is live: an unpinned merged install picks 99.0."""
    ours, evil = indexes
    result = pip_install(evil, tmp_path / "t", "internal-tool", extra=["--extra-index-url", ours])
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "internal_tool") == "99.0"


def test_pip_with_our_index_url_ignores_a_configured_other_index(
    indexes: tuple[str, str], tmp_path: Path
) -> None:
    """Complete mode: ``pip install --index-url OURS`` even when pip.conf/env names another."""
    ours, evil = indexes
    env = {**isolated_env(tmp_path), "PIP_INDEX_URL": evil}
    result = pip_install(ours, tmp_path / "t", "internal-tool", env=env)
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "internal_tool") == "1.0"


def test_uv_with_our_index_url(indexes: tuple[str, str], tmp_path: Path) -> None:
    ours, evil = indexes
    env = {**isolated_env(tmp_path), "UV_INDEX_URL": evil}
    result = uv_install(ours, tmp_path / "t", "internal-tool", env=env)
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "internal_tool") == "1.0"


def test_uv_overlay_first_index_prefers_ours(indexes: tuple[str, str], tmp_path: Path) -> None:
    """Overlay with uv: our index as --extra-index-url is asked first and wins."""
    ours, evil = indexes
    result = uv_install(evil, tmp_path / "t", "internal-tool", extra=["--extra-index-url", ours])
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "internal_tool") == "1.0"


def test_pip_overlay_with_exact_pin_and_hash(indexes: tuple[str, str], tmp_path: Path) -> None:
    """Overlay with pip: only an exact pin plus --require-hashes keeps the planted file out."""
    ours, evil = indexes
    ours_file = next((tmp_path / "our-index" / "files").glob("*.whl"))
    digest = hashlib.sha256(ours_file.read_bytes()).hexdigest()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"internal-tool==1.0 --hash=sha256:{digest}\n")
    result = pip_install(
        evil,
        tmp_path / "t",
        "-r",
        str(requirements),
        extra=["--extra-index-url", ours, "--require-hashes"],
    )
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "internal_tool") == "1.0"
