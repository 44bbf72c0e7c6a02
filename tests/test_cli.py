"""The CLI error boundary: messages printed whole, exit codes from the error classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli import main
from builder.errors import ExitCode


def test_bracketed_text_survives(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "requirements.txt"
    bad.write_text("foo[bar]\n")
    code = main(["plan", str(bad)])
    err = capsys.readouterr().err
    assert code == ExitCode.REQUIREMENTS
    assert "foo[bar]" in err


def test_no_command_prints_help_and_exits_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE
    assert "usage: prewheel" in capsys.readouterr().err


def test_run_takes_the_build_container_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from builder.building.builders import DockerBuilder
    from builder.cli import build_parser
    from builder.cli.common import settings_from_args

    monkeypatch.chdir(tmp_path)  # no pyproject.toml of ours in the way
    argv = ["run", "--setup-timeout", "5", "--fresh-setup", "--timeout", "7", "--memory", "1g"]
    args = build_parser().parse_args(argv)
    builder = DockerBuilder.from_options(settings_from_args("run", args).build)
    assert (builder.setup_timeout, builder.fresh_setup, builder.timeout, builder.memory) == (
        5.0,
        True,
        7.0,
        "1g",
    )
