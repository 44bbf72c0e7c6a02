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
