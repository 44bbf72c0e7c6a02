"""Loose inputs resolved for every target: ``.in``, ``pyproject.toml`` and ``uv.lock``.

The network tests run the real uv (the one prewheel depends on) and the real pip-compile
against the real default index, through ``prewheel plan --json`` as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from index_fixtures import free_port, make_wheel, running
from packaging.version import Version

from builder.cli import main
from builder.errors import ExitCode, RequirementsError
from builder.index.static import StaticIndex
from builder.requirements import read_requirements
from builder.resolve import UvResolver, make_resolver, uv_binary

AMD64 = "cp311-manylinux_2_36_x86_64"
ARMV7 = "cp311-manylinux_2_36_armv7l"
AMD64_312 = "cp312-manylinux_2_36_x86_64"
ARMV7_312 = "cp312-manylinux_2_36_armv7l"

# colorama only where the machine is armv7l, tomli only from Python 3.12: both are false on
# this (x86_64, Python 3.11) host.
MARKERED = """\
six
colorama ; platform_machine == "armv7l"
tomli ; python_version >= "3.12"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.prewheel] around
    monkeypatch.setenv("PREWHEEL_CACHE_DIR", str(tmp_path / "cache"))


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["plan", *args, "--json"]) == ExitCode.OK
    return dict(json.loads(capsys.readouterr().out))


def statuses(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        row["name"]: {target: cell["status"] for target, cell in row["cells"].items()}
        for row in data["requirements"]
    }


def test_pyproject_and_in_inputs_go_through_the_resolver(tmp_path: Path) -> None:
    resolved: list[str] = []

    class RecordingResolver:
        def compile(self, path: Path) -> Path:
            resolved.append(path.name)
            return write(tmp_path / f"{path.stem}-pinned.txt", "six==1.16.0\n")

    inputs = [write(tmp_path / "app.in", "six\n"), write(tmp_path / "pyproject.toml", "")]
    result = read_requirements(inputs, resolver=RecordingResolver())
    assert resolved == ["app.in", "pyproject.toml"]
    assert [str(r) for r in result.requirements] == ["six==1.16.0", "six==1.16.0"]


def test_an_unknown_resolver_is_refused_with_the_choices() -> None:
    with pytest.raises(RequirementsError, match="choose one of uv, pip-tools"):
        make_resolver(
            "poetry", python_floor="3.11", fallback_index_url="https://index.invalid/simple/"
        )


def test_uv_gets_the_indexes_with_pips_precedence_and_never_on_its_command_line(
    tmp_path: Path,
) -> None:
    declares = write(
        tmp_path / "private.in",
        "--index-url https://private.invalid/simple/\n--extra-index-url https://x.invalid/\nsix\n",
    )
    plain = write(tmp_path / "plain.in", "six\n")
    fallback = "https://u:t0ken@pip-configured.invalid/simple/"

    def environment(path: Path, **options: object) -> dict[str, str]:
        resolver = UvResolver(python_floor="3.11", fallback_index_url=fallback, **options)  # type: ignore[arg-type]
        assert not any("invalid" in arg for arg in resolver.command(path, tmp_path / "o.txt"))
        return resolver.index_environment(path)

    # the file's own --index-url wins over pip's configuration (uv reads it from the file),
    # and its extra index brings pip's best-match strategy
    assert environment(declares) == {"UV_INDEX_STRATEGY": "unsafe-best-match"}
    assert environment(plain) == {"UV_DEFAULT_INDEX": fallback}
    # an index given to prewheel beats the file's
    explicit = environment(declares, index_url="https://cli.invalid/simple/")
    assert explicit["UV_DEFAULT_INDEX"] == "https://cli.invalid/simple/"
    extra = environment(plain, extra_index_urls=["https://more.invalid/simple/"])
    assert extra["UV_INDEX"] == "https://more.invalid/simple/"
    assert extra["UV_INDEX_STRATEGY"] == "unsafe-best-match"


def test_an_in_file_naming_its_own_index_is_resolved_and_planned_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project only our local index has: resolved by the real uv from the index the .in
    names, and planned against that index too."""
    tree = tmp_path / "tree"
    wheel = make_wheel(tmp_path / "wheels", "onlyhere", "1.0")
    StaticIndex(tree).sync([wheel])
    port = free_port()
    argv = [sys.executable, "-m", "builder", "serve", str(tree), "--port", str(port)]
    url = f"http://127.0.0.1:{port}/simple/"
    with running(argv, url, log=tmp_path / "serve.log"):
        source = write(tmp_path / "app.in", f"--index-url {url}\nonlyhere\n")
        data = plan_json(capsys, str(source), "--platform", "linux/amd64,linux/arm/v7")
    [row] = data["requirements"]
    assert (row["name"], row["version"]) == ("onlyhere", "1.0")
    assert {cell["status"] for cell in row["cells"].values()} == {"pure"}
    assert {cell["index_url"] for cell in row["cells"].values()} == {url}


def test_a_uv_lock_without_its_project_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = write(tmp_path / "uv.lock", "")
    assert main(["plan", str(lock)]) == ExitCode.REQUIREMENTS
    err = capsys.readouterr().err
    assert "no pyproject.toml beside it" in " ".join(err.split())


def test_the_resolver_option_offers_only_known_resolvers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "x.in", "--resolver", "poetry"])
    assert exited.value.code == ExitCode.USAGE
    assert "invalid choice: 'poetry'" in capsys.readouterr().err


@pytest.mark.network
def test_uv_keeps_dependencies_behind_markers_for_the_targets_they_apply_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "app.in", MARKERED)
    targets = ["--platform", "linux/amd64,linux/arm/v7", "--python", "3.11,3.12"]
    data = plan_json(capsys, str(source), *targets)
    cells = statuses(data)
    assert set(cells) == {"six", "colorama", "tomli"}
    assert cells["six"] == dict.fromkeys([AMD64, ARMV7, AMD64_312, ARMV7_312], "pure")
    assert cells["colorama"] == {
        AMD64: "excluded", ARMV7: "pure", AMD64_312: "excluded", ARMV7_312: "pure"
    }  # fmt: skip
    assert cells["tomli"][AMD64] == "excluded" and cells["tomli"][ARMV7] == "excluded"
    assert cells["tomli"][AMD64_312] != "excluded" and cells["tomli"][ARMV7_312] != "excluded"
    markers = {row["name"]: row["marker"] for row in data["requirements"]}
    assert markers["colorama"] == 'platform_machine == "armv7l"'
    assert markers["tomli"].endswith('_version >= "3.12"')

    # pip-compile resolves for this host (x86_64, 3.11): both are simply missing.
    host_only = statuses(plan_json(capsys, str(source), *targets, "--resolver", "pip-tools"))
    assert set(host_only) == {"six"}


@pytest.mark.network
def test_each_target_python_gets_the_newest_version_it_can_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """numpy 2.3 dropped Python 3.10: resolved for 3.10 and 3.12 at once, the pins fork by
    Python version and each target installs exactly one of them, a wheel."""
    source = write(tmp_path / "app.in", "numpy\n")
    data = plan_json(capsys, str(source), "--platform", "linux/amd64", "--python", "3.10,3.12")
    applied: dict[str, list[Version]] = {}
    for row in data["requirements"]:
        assert row["name"] == "numpy" and row["marker"]
        for target, cell in row["cells"].items():
            if cell["status"] != "excluded":
                assert cell["status"] == "wheel"
                applied.setdefault(target, []).append(Version(row["version"]))
    [for_310] = applied["cp310-manylinux_2_36_x86_64"]
    [for_312] = applied["cp312-manylinux_2_36_x86_64"]
    assert for_310 < Version("2.3") <= for_312


@pytest.mark.network
def test_pyproject_dependencies_and_uv_lock_are_planned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "service"
    project.mkdir()
    write(
        project / "pyproject.toml",
        """\
        [project]
        name = "service"
        version = "1.0"
        requires-python = ">=3.11"
        dependencies = ["six", "colorama ; platform_machine == 'armv7l'"]

        [dependency-groups]
        dev = ["pytest"]
        """,
    )
    targets = ["--platform", "linux/amd64,linux/arm/v7"]
    from_pyproject = statuses(plan_json(capsys, str(project / "pyproject.toml"), *targets))
    assert from_pyproject["colorama"] == {AMD64: "excluded", ARMV7: "pure"}
    assert from_pyproject["six"] == {AMD64: "pure", ARMV7: "pure"}

    subprocess.run(
        [uv_binary(), "lock", "--quiet", "--project", str(project)], check=True, timeout=300
    )
    data = plan_json(capsys, str(project / "uv.lock"), *targets)
    # as `uv sync --frozen --no-dev` installs it: neither the project itself nor dev tools
    assert statuses(data) == from_pyproject
    assert all(row["hashes"] for row in data["requirements"])  # uv.lock's hashes kept
