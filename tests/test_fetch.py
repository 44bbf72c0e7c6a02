"""prewheel's one HTTP policy (builder.fetch): retries, Retry-After, errors, downloads."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from builder import fetch
from builder.errors import IndexUnreachableError, UsageError


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of ``script``."""

    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []

    def do_GET(self) -> None:
        status, headers, body = type(self).script.pop(0)
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/file"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _policy(pauses: list[float], attempts: int = 3) -> fetch.RetryPolicy:
    return fetch.RetryPolicy(attempts=attempts, backoff=0.01, deadline=60.0, sleep=pauses.append)


@pytest.mark.parametrize("status", [429, 503])
def test_download_waits_what_retry_after_asks_then_succeeds(
    server: str, tmp_path: Path, status: int
) -> None:
    _Scripted.script = [(status, {"Retry-After": "2"}, b"busy"), (200, {}, b"payload")]
    pauses: list[float] = []
    target = tmp_path / "out"
    with fetch.make_client() as client:
        digest = fetch.download(client, server, lambda: target.open("wb"), policy=_policy(pauses))
    assert target.read_bytes() == b"payload"
    assert digest == "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"
    assert pauses == [2.0]


def test_get_gives_up_after_its_attempts_naming_the_last_problem(server: str) -> None:
    _Scripted.script = [(502, {}, b"")] * 3
    pauses: list[float] = []
    with fetch.make_client() as client, pytest.raises(IndexUnreachableError) as error:
        fetch.get(client, server, policy=_policy(pauses), hint=" Extra advice.")
    assert "failed 3 times (HTTP 502)" in error.value.message
    assert error.value.message.endswith("Extra advice.")
    assert pauses == [0.01, 0.02]  # exponential backoff between the three tries


def test_a_refused_download_is_a_credentials_error_at_once(server: str, tmp_path: Path) -> None:
    _Scripted.script = [(403, {}, b"no")]
    pauses: list[float] = []
    with fetch.make_client() as client, pytest.raises(UsageError, match="HTTP 403"):
        fetch.download(client, server, lambda: (tmp_path / "x").open("wb"), policy=_policy(pauses))
    assert pauses == []  # 4xx is not retried


def test_a_404_answer_is_returned_to_the_caller(server: str) -> None:
    _Scripted.script = [(404, {}, b"")]
    with fetch.make_client() as client:
        assert fetch.get(client, server, policy=_policy([])).status_code == 404
