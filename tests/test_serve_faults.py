"""Issue 12: ``prewheel serve`` against guessing, leaking, negotiation corner cases and clients
that stop sending (faults 7, 8, 10 and the server timeouts of 12), with real server processes."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from index_fixtures import (
    VENV_BIN,
    free_port,
    make_wheel,
    running,
    serving_prewheel,
    write_htpasswd,
)

from builder.errors import ExitCode
from builder.index.static import HTML_CONTENT_TYPE, JSON_CONTENT_TYPE

TOKEN = "tok-faults-9876543210"
USER = "alice"
SECRET = "s3cr3t-Pa55word-never-logged"


def _post(base: str, wheel: Path, auth: tuple[str, str]) -> httpx.Response:
    return httpx.post(
        base,
        data={":action": "file_upload"},
        files={"content": (wheel.name, wheel.read_bytes())},
        auth=auth,
        timeout=60,
    )


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[str]:
    env = {"PREWHEEL_SERVE_TOKEN": TOKEN}
    with serving_prewheel(tmp_path / "index", log=tmp_path / "log", env=env) as url:
        yield url


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[str]:
    env = {"PREWHEEL_SERVE_TOKEN": TOKEN}
    options = ("--header-timeout", "1", "--body-timeout", "1")
    with serving_prewheel(tmp_path / "index", *options, log=tmp_path / "log", env=env) as url:
        yield url


def test_fault7_failed_logins_are_limited_per_client(token_server: str, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "guarded", "1.0")
    statuses = [
        _post(token_server, wheel, ("__token__", f"guess-{i}")).status_code for i in range(12)
    ]
    assert statuses == [401] * 10 + [429] * 2
    right = _post(token_server, wheel, ("__token__", TOKEN))
    assert right.status_code == 429  # even the right token waits: guessing gains nothing
    assert 0 < int(right.headers["retry-after"]) <= 60
    assert "retry in" in right.text
    # reading is never limited
    assert httpx.get(token_server + "simple/").status_code == 200


def _timed_refusals(base: str, wheel: Path, user: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        assert _post(base, wheel, (user, "wrong-password")).status_code == 401
        timings.append(time.perf_counter() - started)
    return timings


def test_fault7_known_and_unknown_users_cost_the_same(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USER, SECRET)
    wheel = make_wheel(tmp_path, "timed", "1.0")
    options = ("--htpasswd", str(htpasswd), "--max-failed-logins", "100")
    with serving_prewheel(tmp_path / "index", *options, log=tmp_path / "log") as base:
        _timed_refusals(base, wheel, USER, 1)  # the worker process starts
        known, unknown = [], []
        for _ in range(4):
            known += _timed_refusals(base, wheel, USER, 1)
            unknown += _timed_refusals(base, wheel, "mallory", 1)
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, f"unknown/known user refusal time: {ratio:.2f}"


def test_fault7_password_checks_do_not_stall_reads(tmp_path: Path) -> None:
    """Slow hashes run in a worker process: reads stay fast while logins are being checked."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USER, SECRET)
    wheel = make_wheel(tmp_path, "stalled", "1.0")
    options = ("--htpasswd", str(htpasswd), "--max-failed-logins", "1000")
    with serving_prewheel(tmp_path / "index", *options, log=tmp_path / "log") as base:
        _timed_refusals(base, wheel, USER, 1)
        stop = threading.Event()

        def guess() -> None:
            while not stop.is_set():
                _post(base, wheel, (USER, "wrong"))

        guessers = [threading.Thread(target=guess) for _ in range(8)]
        for thread in guessers:
            thread.start()
        try:
            time.sleep(0.5)
            latencies = []
            with httpx.Client() as client:
                for _ in range(40):
                    started = time.perf_counter()
                    client.get(base + "simple/").raise_for_status()
                    latencies.append(time.perf_counter() - started)
                    time.sleep(0.02)
        finally:
            stop.set()
            for thread in guessers:
                thread.join(timeout=60)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(f"GET /simple/ p90 {p90 * 1000:.0f} ms while 8 clients keep guessing")
    assert p90 < 0.25, f"GET /simple/ p90 {p90 * 1000:.0f} ms while logins are checked"


def test_fault8_a_token_sent_as_user_name_is_never_logged(tmp_path: Path) -> None:
    log = tmp_path / "log"
    env = {"PREWHEEL_SERVE_TOKEN": TOKEN}
    wheel = make_wheel(tmp_path, "leaky", "1.0")
    with serving_prewheel(tmp_path / "index", log=log, env=env) as base:
        assert _post(base, wheel, (TOKEN, "not-the-token")).status_code == 401
        assert _post(base, wheel, (TOKEN, TOKEN)).status_code == 200
    text = log.read_text()
    assert "upload refused" in text and "leaky" in text  # the log does say what happened
    assert TOKEN not in text


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("format=application/vnd.pypi.simple.v1+json", None, JSON_CONTENT_TYPE),
        ("format=application/vnd.pypi.simple.v1%2Bjson", None, JSON_CONTENT_TYPE),
        ("format=application/vnd.pypi.simple.latest+json", None, JSON_CONTENT_TYPE),
        ("format=application/vnd.pypi.simple.latest+html", None, HTML_CONTENT_TYPE),
        ("", "application/vnd.pypi.simple.latest+json", JSON_CONTENT_TYPE),
        ("", "application/vnd.pypi.simple.latest+html", HTML_CONTENT_TYPE),
    ],
)
def test_fault10_format_with_a_literal_plus_and_the_latest_alias(
    token_server: str, query: str, accept: str | None, expected: str
) -> None:
    url = httpx.URL(token_server + "simple/" + (f"?{query}" if query else ""))
    assert url.query.decode() == query  # the "+" reaches the server as it is
    response = httpx.get(url, headers={"Accept": accept} if accept else {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == expected


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    return host, int(port)


def _wait_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (bounded)."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_fault12_half_sent_headers_are_dropped(impatient_server: str) -> None:
    with socket.create_connection(_address(impatient_server), timeout=10) as sock:
        sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        received, seconds = _wait_closed(sock, 10)
    assert received == b""
    assert seconds < 5
    assert httpx.get(impatient_server + "simple/").status_code == 200


def test_fault12_a_stalled_upload_body_gets_408(impatient_server: str) -> None:
    credentials = base64.b64encode(f"__token__:{TOKEN}".encode()).decode()
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
        f"boundary=xyz\r\nContent-Length: 100000\r\nAuthorization: Basic {credentials}\r\n\r\n"
    )
    with socket.create_connection(_address(impatient_server), timeout=10) as sock:
        sock.sendall(head.encode() + b"--xyz\r\n")
        received, seconds = _wait_closed(sock, 10)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert seconds < 5


def _deleted_files_open(pid: int) -> int:
    """How many files the process holds open that have no name any more (anonymous temp files,
    where the multipart parser keeps a body over 1 MiB)."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            count += os.readlink(fd).endswith(" (deleted)")
    return count


def test_fault12_a_trickled_upload_gets_408_at_the_upload_timeout(tmp_path: Path) -> None:
    """The body timeout was per receive: a client sending a few bytes just inside it every time
    held the connection and the body received so far for ever. --upload-timeout bounds the
    whole body; the trickle is answered 408 and what was received is let go."""
    root = tmp_path / "index"
    port = free_port()
    argv = [str(VENV_BIN / "prewheel"), "serve", str(root), "--port", str(port)]
    argv += ["--body-timeout", "1", "--upload-timeout", "3"]
    base = f"http://127.0.0.1:{port}/"
    credentials = base64.b64encode(f"__token__:{TOKEN}".encode()).decode()
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
        f"boundary=xyz\r\nContent-Length: {10 << 20}\r\nAuthorization: Basic {credentials}\r\n"
        '\r\n--xyz\r\nContent-Disposition: form-data; name="content"; '
        'filename="slow-1.0-py3-none-any.whl"\r\n\r\n'
    )
    env = {"PREWHEEL_SERVE_TOKEN": TOKEN}
    with running(argv, base + "simple/", log=tmp_path / "log", env=env) as server:
        before = _deleted_files_open(server.pid)
        received = b""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(head.encode() + b"\0" * (3 << 19))  # 1.5 MiB: the body goes to a file
            spooled = 0
            while time.monotonic() - started < 15:
                sock.settimeout(0.4)  # a few bytes every 0.4 s, well inside the 1 s body timeout
                try:
                    if chunk := sock.recv(65536):
                        received += chunk
                        break
                except TimeoutError:
                    pass
                spooled = max(spooled, _deleted_files_open(server.pid) - before)
                try:
                    sock.sendall(b"\0" * 16)
                except OSError:
                    break
            seconds = time.monotonic() - started
            with contextlib.suppress(OSError):
                received += _wait_closed(sock, 5)[0]
        print(f"trickled upload answered after {seconds:.1f} s ({spooled} temp file held)")
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"upload timeout" in received
        assert 2.5 < seconds < 6, seconds
        assert spooled >= 1, "the body never reached a temp file: the test proves less"
        deadline = time.monotonic() + 5
        while _deleted_files_open(server.pid) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _deleted_files_open(server.pid) == before  # the partial body was let go
        assert not any((root / ".prewheel" / "incoming").glob("*"))
        assert httpx.get(base + "simple/").status_code == 200
    assert "took longer than the upload timeout" in (tmp_path / "log").read_text()


def test_a_port_in_use_is_an_environment_error_before_serving_is_announced(
    tmp_path: Path,
) -> None:
    """A second server on a held port said 'serving ...', then uvicorn failed with exit 3."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        argv = [str(VENV_BIN / "prewheel"), "serve", str(tmp_path / "index"), "--port", str(port)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == ExitCode.ENVIRONMENT == 9, result.stderr
    message = " ".join(result.stderr.split())
    assert f"Cannot listen on 127.0.0.1:{port}" in message
    assert "pass another --port" in message
    assert "serving" not in message
