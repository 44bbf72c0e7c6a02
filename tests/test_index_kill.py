"""Issue 12, faults 1 and 2 with real processes: SIGKILL a ``prewheel serve`` in the middle of
uploads and a ``prewheel index`` in the middle of writing, then the next writer (or ``serve``
start) repairs the tree. The loop kills at random points and checks the tree after each repair:
every listed file present with its hash and metadata, every page equal to a fresh render, no
spool or temp file left."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from index_fixtures import VENV_BIN, free_port, make_wheel
from index_fixtures.tree import assert_tree_sound

TOKEN = "tok-kill-0123456789"
POLL = 0.002


def _random_wheel(directory: Path, name: str, version: str, size: int = 256 << 10) -> Path:
    return make_wheel(
        directory, name, version, extra_members={f"{name}/blob.bin": os.urandom(size)}
    )


def _wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], limit: float
) -> bool:
    """Poll ``condition`` until it holds (True) or the process ended or ``limit`` passed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(POLL)
    return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@contextlib.contextmanager
def _serve(root: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``prewheel serve`` process, ready; killed with SIGKILL afterwards if still alive."""
    port = free_port()
    argv = [str(VENV_BIN / "prewheel"), "serve", str(root), "--port", str(port)]
    base = f"http://127.0.0.1:{port}/"
    with log.open("ab") as stream:
        process = subprocess.Popen(
            argv,
            stdout=stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREWHEEL_SERVE_TOKEN": TOKEN},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "simple/", timeout=2)
                break
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)
        yield base, process
    finally:
        _kill(process)


def _upload(base: str, wheel: Path) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(
            base,
            data={":action": "file_upload"},
            files={"content": (wheel.name, wheel.read_bytes())},
            auth=("__token__", TOKEN),
            timeout=30,
        )


def _index(wheelhouse: Path, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(VENV_BIN / "prewheel"), "index", str(wheelhouse), "-o", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _spooling(root: Path) -> Callable[[], bool]:
    incoming = root / ".prewheel" / "incoming"
    return lambda: incoming.is_dir() and any(incoming.iterdir())


def _names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def _writing(root: Path) -> Callable[[], bool]:
    """True once a run has put a new file (or a temp file) into files/."""
    files = root / "files"
    before = _names(files)
    return lambda: bool(_names(files) - before)


def _damaged(root: Path) -> bool:
    incoming = root / ".prewheel" / "incoming"
    return (
        (root / ".prewheel" / "dirty").exists()
        or any(root.rglob(".tmp-*"))
        or (incoming.is_dir() and any(incoming.iterdir()))
    )


def test_kill_mid_upload_then_serve_start_repairs(tmp_path: Path) -> None:
    root = tmp_path / "index"
    big = _random_wheel(tmp_path / "w", "bulky", "1.0", size=48 << 20)
    with _serve(root, tmp_path / "serve.log") as (base, process):
        uploader = threading.Thread(target=_upload, args=(base, big))
        uploader.start()
        assert _wait_for(_spooling(root), process, 60), "the upload never reached the spool"
        _kill(process)
        uploader.join(timeout=60)
    assert any((root / ".prewheel" / "incoming").iterdir())  # the kill left its spool
    with _serve(root, tmp_path / "serve.log") as (base, _):
        assert_tree_sound(root)
        _upload(base, big)  # the retry works
    assert big.name in assert_tree_sound(root)


def test_kill_mid_index_then_next_index_repairs(tmp_path: Path) -> None:
    root = tmp_path / "index"
    wheelhouse = tmp_path / "wh"
    for i in range(30):
        _random_wheel(wheelhouse / "wheels", f"batch{i}", "1.0")
    process = _index(wheelhouse, root)
    assert _wait_for(_writing(root), process, 120), "the run never started writing"
    _kill(process)
    assert _damaged(root)
    check = subprocess.run(
        [str(VENV_BIN / "prewheel"), "index", "--check", "-o", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 14, check.stdout + check.stderr
    assert "killed before it finished" in check.stderr
    assert _index(wheelhouse, root).wait(timeout=120) == 0
    assert len(assert_tree_sound(root)) == 30


KILLS = 22


@pytest.mark.slow
def test_twenty_kills_at_random_points_each_repaired_by_the_next_writer(tmp_path: Path) -> None:
    """Alternately SIGKILL a serve under concurrent uploads and an index run, at a random
    moment after it starts writing; the next serve start or index run must leave a sound tree."""
    rng = random.Random(12)
    root = tmp_path / "index"
    damaged = 0
    wheelhouse = tmp_path / "wh-0"
    _random_wheel(wheelhouse / "wheels", "seed", "1.0")
    assert _index(wheelhouse, root).wait(timeout=120) == 0
    started = time.monotonic()
    for kill in range(KILLS):
        if kill % 2 == 0:
            with _serve(root, tmp_path / "serve.log") as (base, process):
                assert_tree_sound(root)  # serve's start-up repaired the last kill
                wheels = [
                    _random_wheel(tmp_path / f"up-{kill}", f"up{kill}x{j}", "1.0") for j in range(6)
                ]
                uploaders = [threading.Thread(target=_upload, args=(base, w)) for w in wheels]
                for thread in uploaders:
                    thread.start()
                _wait_for(_spooling(root), process, 30)
                time.sleep(rng.uniform(0, 0.4))
                _kill(process)
                for thread in uploaders:
                    thread.join(timeout=60)
        else:
            assert _index(wheelhouse, root).wait(timeout=120) == 0  # the next run repairs
            assert_tree_sound(root)
            wheelhouse = tmp_path / f"wh-{kill}"
            for j in range(8):
                _random_wheel(wheelhouse / "wheels", f"ix{kill}x{j}", "1.0")
            process = _index(wheelhouse, root)
            _wait_for(_writing(root), process, 60)
            time.sleep(rng.uniform(0, 0.2))
            _kill(process)
        damaged += _damaged(root)
    with _serve(root, tmp_path / "serve.log"):
        assert_tree_sound(root)
    elapsed = time.monotonic() - started
    print(f"{KILLS} kills, {damaged} left something to repair, {elapsed:.0f} s")
    assert damaged >= 3, f"only {damaged} of {KILLS} kills hit a write"
