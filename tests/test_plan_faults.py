"""Issue 12, fault 11: ``prewheel plan`` against a misbehaving index: every httpx error class
ends in a documented exit code without a traceback, every page fetch has an overall deadline,
and ``Retry-After`` is honoured."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from plan_fixtures.index_server import Route, file_entry, serve_index

from builder.errors import ExitCode, IndexUnreachableError
from builder.upstream.client import fetch_projects

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PREWHEEL = Path(sys.executable).parent / "prewheel"


def _plan(index_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("demo==1.0\n")
    return subprocess.run(
        [
            str(PREWHEEL),
            "plan",
            *("--index-url", index_url, "--cache-dir", str(tmp_path / "c")),
            *("--platform", "linux/amd64", str(requirements)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )


@pytest.mark.parametrize(
    ("route", "code", "message"),
    [
        (
            Route(302, b"", {"Location": "/simple/demo/"}),
            ExitCode.INDEX_UNREACHABLE,
            "redirects in a loop",
        ),
        (
            Route(
                200, b"this is not gzip", {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"}
            ),
            ExitCode.INDEX_MALFORMED,
            "cannot be decoded",
        ),
    ],
    ids=["redirect-loop", "bad-content-encoding"],
)
def test_fault11_httpx_errors_are_exit_codes_not_tracebacks(
    tmp_path: Path, route: Route, code: ExitCode, message: str
) -> None:
    with serve_index() as index:
        index.raw("demo", route)
        result = _plan(index.url, tmp_path)
    assert result.returncode == code, result.stderr
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


class _Trickle(BaseHTTPRequestHandler):
    """Sends one byte every 0.5 s, in the headers or in the body, for a minute."""

    in_headers = False

    def do_GET(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        if self.in_headers:
            for _ in range(120):
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.5)
            return
        self.wfile.write(f"Content-Type: {JSON_TYPE}\r\nContent-Length: 1000\r\n\r\n".encode())
        for _ in range(120):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(0.5)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _trickling(in_headers: bool) -> Iterator[str]:
    handler = type("Handler", (_Trickle,), {"in_headers": in_headers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_fault11_a_trickling_index_meets_the_deadline(tmp_path: Path, in_headers: bool) -> None:
    """The 30 s timeout is per read: one byte every 0.5 s never trips it. The page's deadline
    (3 s here) ends the fetch, retries included."""
    with _trickling(in_headers) as url:
        started = time.monotonic()
        with pytest.raises(IndexUnreachableError, match="did not answer in time"):
            fetch_projects(["demo"], [url], use_cache=False, backoff=0.01, deadline=3)
        elapsed = time.monotonic() - started
    assert elapsed < 8, f"gave up after {elapsed:.1f} s"


def test_fault11_retry_after_is_honoured(tmp_path: Path) -> None:
    with serve_index() as index:
        index.project_json("demo", [file_entry("demo-1.0-py3-none-any.whl")])
        route = index.routes["/simple/demo/"]
        route.fail_first = 1
        route.headers["Retry-After"] = "2"  # sent with the 503 too
        started = time.monotonic()
        pages = fetch_projects(["demo"], [index.url], use_cache=False, backoff=0.01)
        elapsed = time.monotonic() - started
    assert pages[index.url]["demo"] is not None
    assert elapsed >= 2
