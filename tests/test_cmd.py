"""builder.cmd: host commands, killed as a whole process group at their timeout."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from builder import cmd


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rpartition(")")[2].split()[0] == "Z")


def test_a_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    """A tool that starts a child (pip starting a build backend) does not outlive its timeout:
    the command and the grandchild it spawned (which ignores SIGTERM and would outlive a kill
    of the command alone) are both gone, checked by their process ids."""
    pid_file = tmp_path / "pids"
    grandchild_code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    )
    script = (
        "import os, subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', {grandchild_code!r}]); "
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); "
        "print('started', flush=True); time.sleep(300)"
    )
    started = time.monotonic()
    result = cmd.run([sys.executable, "-c", script], timeout=3)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 30
    assert "started" in result.output
    command, grandchild = map(int, pid_file.read_text().split())
    assert grandchild != command
    deadline = time.monotonic() + 10
    while (_alive(command) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.1)  # killed at once; the grandchild reaped by init
    assert not _alive(command)
    assert not _alive(grandchild)


def test_output_and_exit_code_are_captured_or_streamed(tmp_path: Path) -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    captured = cmd.run([sys.executable, "-c", script], timeout=60, environment={"X": "1"})
    assert (captured.exit_code, sorted(captured.output.split())) == (3, ["err", "out"])
    log = tmp_path / "log"
    with log.open("wb") as stream:
        streamed = cmd.run([sys.executable, "-c", script], timeout=60, log=stream)
    assert (streamed.exit_code, streamed.output) == (3, "")
    assert sorted(log.read_text().split()) == ["err", "out"]


def test_a_command_started_after_kill_running_is_killed_at_once_until_resume() -> None:
    """A worker thread past its last check for work when Ctrl-C came must not start a
    60-second command that the interrupted run then waits for."""
    cmd.kill_running()
    try:
        started = time.monotonic()
        result = cmd.run(["sleep", "30"], timeout=60)
        assert time.monotonic() - started < 10
        assert result.exit_code == -signal.SIGKILL
    finally:
        cmd.resume()
    assert cmd.run(["true"], timeout=60).exit_code == 0
