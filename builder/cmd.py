"""The one home of host subprocesses: every command runs in its own process group, with a
timeout that kills the whole group (a tool's own children included), and its output either
captured or streamed to a log."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

# Process groups of the commands running now: they do not get the terminal's Ctrl-C (they are
# sessions of their own), so an interrupted prewheel kills them itself (kill_running).
_RUNNING: set[int] = set()
_RUNNING_LOCK = threading.Lock()


_STOPPED = threading.Event()  # set by kill_running: commands started later are killed at once


def kill_running() -> int:
    """Kill the process group of every command still running (from any thread), and of every
    command a worker thread starts from now on (one already past its last check for work);
    how many were running. :func:`resume` lets commands run again."""
    with _RUNNING_LOCK:
        _STOPPED.set()
        groups = list(_RUNNING)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return len(groups)


def resume() -> None:
    """Let commands run again after :func:`kill_running` (a new run in the same process)."""
    _STOPPED.clear()


@dataclasses.dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None: killed at the timeout
    output: str = ""  # stdout and stderr interleaved ("" when streamed to a log)

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    environment: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[bytes] | None = None,
) -> CommandResult:
    """Run ``argv`` with ``environment`` added to the host's; without ``log`` its output is
    captured into the result."""
    with subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**os.environ, **(environment or {})},
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    ) as process:
        with _RUNNING_LOCK:
            _RUNNING.add(process.pid)
            stopped = _STOPPED.is_set()
        if stopped:
            _kill_group(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output, _ = process.communicate()
            return CommandResult(None, _text(output))
        except BaseException:
            _kill_group(process)
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process.pid)
    return CommandResult(process.returncode, _text(output))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _text(output: bytes | None) -> str:
    return output.decode("utf-8", "replace") if output else ""
