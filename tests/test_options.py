"""One options model: each option declared once, the same on every command that takes it,
resolved once from the command line, PREWHEEL_* and [tool.prewheel]."""

from __future__ import annotations

import json
import re
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
    with pytest.raises(UsageError, match=r"pyproject\.toml: jobs must be a whole number, got"):
        parse(tmp_path, monkeypatch, "build")
    write_pyproject(tmp_path, "jobs = 1.5")
    with pytest.raises(UsageError, match=r"jobs must be a whole number, got 1\.5"):
        parse(tmp_path, monkeypatch, "build")
    write_pyproject(tmp_path, "")
    monkeypatch.setenv("PREWHEEL_JOBS", "1.5")
    with pytest.raises(UsageError, match=r"PREWHEEL_JOBS='1\.5' is not a whole number"):
        parse(tmp_path, monkeypatch, "build")
    monkeypatch.delenv("PREWHEEL_JOBS")
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
    with pytest.raises(UsageError, match="prewheel run takes no option platfrom"):
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


def test_a_zero_on_the_command_line_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--heartbeat 0 means no heartbeat lines; a 0 is a value, not 'not given'."""
    monkeypatch.setenv("PREWHEEL_HEARTBEAT", "30")
    settings = parse(tmp_path, monkeypatch, "build", "--heartbeat", "0", "--timeout", "0")
    assert (settings.build.heartbeat, settings.build.timeout) == (0.0, 0.0)  # type: ignore[attr-defined]
    assert parse(tmp_path, monkeypatch, "serve", "r", "--port", "0").serve.port == 0  # type: ignore[attr-defined]
    write_pyproject(tmp_path, "portable = true")
    library = resolve("build", given={"portable": False}, env={}, search_from=tmp_path)
    assert library.build.portable is False


def test_options_that_exclude_each_other_are_settled_across_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination given on the command line wins over another in the file (before, the
    file's static tree was written instead of the upload asked for); two in one layer clash."""
    write_pyproject(tmp_path, 'static = "/srv/tree"\nhtpasswd = "users.htpasswd"')
    publish = parse(tmp_path, monkeypatch, "publish", "--repository-url", "https://u.invalid/")
    assert publish.publish.static is None  # type: ignore[attr-defined]
    assert publish.publish.repository_url == "https://u.invalid/"  # type: ignore[attr-defined]
    serve = parse(tmp_path, monkeypatch, "serve", "root", "--token-file", "token")
    assert (serve.serve.htpasswd, serve.serve.token_file) == (None, Path("token"))  # type: ignore[attr-defined]
    assert parse(tmp_path, monkeypatch, "publish").publish.static == Path("/srv/tree")  # type: ignore[attr-defined]
    write_pyproject(tmp_path, 'static = "/srv/tree"\nrepository = "internal"')
    with pytest.raises(UsageError, match="repository and static are both set in"):
        parse(tmp_path, monkeypatch, "publish")


def test_a_configured_target_list_does_not_filter_index_and_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """target = [...] selects what to plan and build; a target whose requirements all have
    upstream wheels has no built wheel, and `prewheel index` must still index the rest."""
    from builder.wheelhouse import Wheelhouse

    write_pyproject(tmp_path, 'target = ["cp311-manylinux_2_36_x86_64"]')
    Wheelhouse(tmp_path / "wh").wheels_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["index", "wh", "-o", "tree", "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["added"] == []
    assert main(["index", "wh", "-o", "tree", "--target", "cp311-manylinux_2_36_x86_64"]) == 2
    assert "has no wheel built for cp311-manylinux_2_36_x86_64" in capsys.readouterr().err


def test_a_library_caller_cannot_give_an_option_the_command_does_not_take(
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="prewheel plan takes no option jobs"):
        resolve("plan", given={"jobs": 2}, env={}, search_from=tmp_path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("packages = 3", r"\[tool\.prewheel\.packages\] must be a table"),
        ("[tool.prewheel.packages.numpy]\npip-args = 3", "pip-args must be a list of strings"),
        ('[tool.prewheel.packages.numpy]\nsystem-packages = "libffi-dev"', "list of strings"),
        ("[[tool.prewheel.overrides]]\nselect = 3", "a string or a list of strings"),
        ("python = [3.11]", "quote versions"),
        ('jobs = "2"', r"jobs must be a whole number, got '2' \(str\)"),
        ("fail-fast = true", "--fail-fast is a command-line option only"),
        ('config-file = "x"', "Here it is called 'pypirc'"),
    ],
)
def test_a_malformed_configuration_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    table: str, message: str,
) -> None:  # fmt: skip
    write_pyproject(tmp_path, table)
    monkeypatch.chdir(tmp_path)
    assert main(["targets"]) == ExitCode.USAGE
    assert re.search(message, capsys.readouterr().err)
