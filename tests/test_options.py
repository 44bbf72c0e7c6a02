"""One options model: each option declared once, the same on every command that takes it,
resolved once from the command line, PREWHEEL_* and [tool.prewheel]."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import build_parser, main
from builder.cli.common import settings_from_args
from builder.errors import ExitCode, UsageError
from builder.options import declared, iter_keys, json_schema, resolve

COMMANDS = ("plan", "targets", "build", "lock", "dockerfile", "verify", "run", "index", "serve")
COMMANDS += ("publish",)


def parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> object:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(list(argv))
    return settings_from_args(argv[0], args)


def write_pyproject(directory: Path, table: str) -> None:
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "app"\nversion = "1"\n\n[tool.prewheel]\n{table}\n', encoding="utf-8"
    )


@pytest.mark.parametrize("command", ["plan", "build", "lock", "run"])
def test_every_command_that_plans_takes_the_same_index_target_and_config_options(
    command: str,
) -> None:
    keys = set(iter_keys(command))
    assert {"index-url", "extra-index-url", "our-index-url", "cache-dir", "resolver"} <= keys
    assert {"platform", "python", "libc", "float-abi", "image", "target"} <= keys
    for command_line in (
        [command, "r.txt", "--index-url", "https://a.invalid/simple/", "--platform", "linux/arm"],
        [command, "r.txt", "--config", "x.toml", "--extra-index-url", "https://b.invalid/"],
    ):
        build_parser().parse_args(command_line)  # argparse exits 2 on an unknown option


def test_every_command_takes_config(tmp_path: Path) -> None:
    positional = {
        "plan": ["r.txt"],
        "index": ["wheelhouse", "-o", "out"],
        "serve": ["root"],
        "publish": ["wheelhouse"],
    }
    for command in COMMANDS:
        args = build_parser().parse_args(
            [command, *positional.get(command, []), "--config", str(tmp_path / "c.toml")]
        )
        assert args.config == tmp_path / "c.toml"


def test_run_honours_jobs_and_wheelhouse_from_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: PREWHEEL_JOBS and [tool.prewheel] wheelhouse worked for build, not for run."""
    write_pyproject(tmp_path, 'wheelhouse = "shared-wheels"')
    monkeypatch.setenv("PREWHEEL_JOBS", "3")
    settings = parse(tmp_path, monkeypatch, "run")
    assert settings.build.jobs == 3  # type: ignore[attr-defined]
    assert settings.build.wheelhouse == Path("shared-wheels")  # type: ignore[attr-defined]
    settings = parse(tmp_path, monkeypatch, "run", "-j", "2")
    assert settings.build.jobs == 2  # type: ignore[attr-defined]
    monkeypatch.delenv("PREWHEEL_JOBS")
    write_pyproject(tmp_path, "")
    assert parse(tmp_path, monkeypatch, "run").build.wheelhouse is None  # type: ignore[attr-defined]


def test_index_serve_and_publish_honour_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(
        tmp_path,
        'lock-timeout = 7\nport = 9123\nhost = "0.0.0.0"\nrepository-url = '
        '"https://up.invalid/legacy/"\nwheelhouse = "built"\ntarget = ["cp311-glibc_2_36_armv6l"]',
    )
    index = parse(tmp_path, monkeypatch, "index", "-o", "tree")
    assert index.serve.lock_timeout == 7.0  # type: ignore[attr-defined]
    assert index.build.wheelhouse == Path("built")  # type: ignore[attr-defined]
    assert index.targets.target == ("cp311-glibc_2_36_armv6l",)  # type: ignore[attr-defined]
    serve = parse(tmp_path, monkeypatch, "serve", "root")
    assert (serve.serve.host, serve.serve.port) == ("0.0.0.0", 9123)  # type: ignore[attr-defined]
    publish = parse(tmp_path, monkeypatch, "publish")
    assert publish.publish.repository_url == "https://up.invalid/legacy/"  # type: ignore[attr-defined]
    serve = parse(tmp_path, monkeypatch, "serve", "root", "--lock-timeout", "2")
    assert serve.serve.lock_timeout == 2.0  # type: ignore[attr-defined]


def test_a_default_can_differ_per_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server waits 30 s for the tree's writer lock (then 503); a command 300 s."""
    assert parse(tmp_path, monkeypatch, "serve", "root").serve.lock_timeout == 30.0  # type: ignore[attr-defined]
    assert parse(tmp_path, monkeypatch, "index", "-o", "t").serve.lock_timeout == 300.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "nearest"),
    [("platforms = ['linux/arm64']", "platform"), ("pyton = '3.11'", "python")],
)
def test_an_unknown_key_is_an_error_naming_the_nearest_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    table: str, nearest: str,
) -> None:  # fmt: skip
    write_pyproject(tmp_path, table)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("six==1.16.0\n")
    assert main(["plan", "requirements.txt"]) == ExitCode.USAGE
    error = capsys.readouterr().err
    assert f"Did you mean '{nearest}'" in error and "pyproject.toml" in error


def test_a_value_of_the_wrong_type_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, 'jobs = "many"')
    with pytest.raises(UsageError, match=r"pyproject\.toml: jobs='many' is not a whole number"):
        parse(tmp_path, monkeypatch, "build")
    write_pyproject(tmp_path, "jobs = 1.5")
    with pytest.raises(UsageError, match=r"jobs=1\.5 is not a whole number"):
        parse(tmp_path, monkeypatch, "build")
    write_pyproject(tmp_path, 'accelerate = "fast"')
    with pytest.raises(UsageError, match="choose one of auto, relaxed, off"):
        parse(tmp_path, monkeypatch, "build")
    write_pyproject(tmp_path, "")
    monkeypatch.setenv("PREWHEEL_FRESH_SETUP", "perhaps")
    with pytest.raises(UsageError, match="PREWHEEL_FRESH_SETUP='perhaps' is not a boolean"):
        parse(tmp_path, monkeypatch, "build")


def test_a_command_line_only_option_is_refused_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, 'binfmt-dir = "/x"')
    with pytest.raises(UsageError, match="command-line option only"):
        parse(tmp_path, monkeypatch, "build")


def test_library_callers_resolve_with_option_keys(tmp_path: Path) -> None:
    settings = resolve("run", given={"platform": ("linux/arm64",), "jobs": 2}, env={},
                       search_from=tmp_path)  # fmt: skip
    assert settings.targets.platform == ("linux/arm64",) and settings.build.jobs == 2
    with pytest.raises(UsageError, match="Unknown options"):
        resolve("run", given={"platfrom": "linux/arm64"}, env={}, search_from=tmp_path)


def test_every_declared_option_is_on_its_commands_help() -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for item in declared():
        for command in item.spec.commands:
            text = subcommands[command].format_help()  # type: ignore[index]
            assert item.spec.hidden or f"--{item.key}" in text, (command, item.key)


def test_the_schema_is_what_validate_pyproject_checks_tool_prewheel_with(tmp_path: Path) -> None:
    """The schema ships as validate-pyproject's plugin: it accepts a real configuration (the
    bundled example's) and refuses a misspelt key."""
    schema = json_schema()
    assert set(schema["properties"]) >= {"platform", "jobs", "wheelhouse", "packages"}
    example = Path(__file__).parent.parent / "requirements" / "example.toml"
    good = tmp_path / "good" / "pyproject.toml"
    good.parent.mkdir()
    good.write_text('[project]\nname = "a"\nversion = "1"\n\n' + _as_tool_table(example))
    bad = tmp_path / "bad" / "pyproject.toml"
    bad.parent.mkdir()
    bad.write_text('[project]\nname = "a"\nversion = "1"\n\n[tool.prewheel]\npyton = "3.11"\n')
    validate = [sys.executable, "-m", "validate_pyproject"]
    ok = subprocess.run([*validate, str(good)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = subprocess.run([*validate, str(bad)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "pyton" in refused.stdout + refused.stderr
    assert json.loads(json.dumps(schema)) == schema  # plain JSON


def _as_tool_table(settings_file: Path) -> str:
    """example.toml's tables ([tool.prewheel...] already, or bare) as pyproject tables."""
    text = settings_file.read_text(encoding="utf-8")
    if "[tool.prewheel" in text:
        return text
    return text.replace("[packages.", "[tool.prewheel.packages.")


def test_a_misspelt_package_setting_is_refused_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: [tool.prewheel.packages.<name>] was only read by a build, so `plan` (and a run
    whose plan had no gaps for that package) took a misspelt key silently."""
    write_pyproject(tmp_path, '[tool.prewheel.packages.six]\nsystem-package = ["libx-dev"]')
    with pytest.raises(UsageError, match=r"unknown keys \['system-package'\]"):
        parse(tmp_path, monkeypatch, "plan", "r.txt")
    write_pyproject(
        tmp_path,
        '[[tool.prewheel.overrides]]\nselect = "*"\npackages.six.pip-arg = ["-v"]',
    )
    with pytest.raises(UsageError, match=r"unknown keys \['pip-arg'\]"):
        parse(tmp_path, monkeypatch, "plan", "r.txt")
