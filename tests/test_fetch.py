"""prewheel's one HTTP policy (builder.fetch): retries, Retry-After, errors, downloads."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from builder import fetch
from builder.errors import IndexUnreachableError, UsageError


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of ``script``."""

    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    arrivals: ClassVar[list[float]] = []  # time.monotonic() of each request

    def do_GET(self) -> None:
        type(self).arrivals.append(time.monotonic())
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


@pytest.mark.parametrize(("status", "operation"), [(429, "get"), (503, "download")])
def test_retry_after_is_waited_for_in_real_time(
    server: str, tmp_path: Path, status: int, operation: str
) -> None:
    """With the real clock: the client asks again only after the seconds the server named,
    though its own backoff (10 ms) would have asked at once."""
    _Scripted.script = [(status, {"Retry-After": "2"}, b"busy"), (200, {}, b"payload")]
    _Scripted.arrivals = []
    policy = fetch.RetryPolicy(attempts=3, backoff=0.01, deadline=60.0)
    started = time.monotonic()
    with fetch.make_client() as client:
        if operation == "get":
            assert fetch.get(client, server, policy=policy).content == b"payload"
        else:
            target = tmp_path / "out"
            fetch.download(client, server, lambda: target.open("wb"), policy=policy)
            assert target.read_bytes() == b"payload"
    elapsed = time.monotonic() - started
    first, second = _Scripted.arrivals
    assert 2.0 <= second - first < 4.0, f"asked again after {second - first:.2f} s"
    assert elapsed < 6.0


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


def test_logins_go_to_their_index_and_its_origin_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from builder.fetch import login_for, with_credentials, without_credentials

    host = "logins-test.invalid"
    assert without_credentials(f"https://alice:t%40one@{host}/team-a/simple/") == (
        f"https://{host}/team-a/simple/"
    )
    without_credentials(f"https://bob:two@{host}/team-b/simple/")

    def login(url: str) -> tuple[str, str] | None:
        return login_for(httpx.URL(url))

    assert login(f"https://{host}/team-a/simple/six/") == ("alice", "t@one")
    assert login(f"https://{host}/team-b/simple/six/") == ("bob", "two")
    assert login(f"https://{host}/files/six.whl") == ("alice", "t@one")  # the first, as pip
    assert login(f"http://{host}/team-a/simple/") is None  # not over another scheme
    assert login(f"https://{host}:8443/team-a/simple/") is None  # nor to another port
    assert with_credentials(f"https://{host}/team-a/simple/") == (
        f"https://alice:t%40one@{host}/team-a/simple/"
    )
    # ~/.netrc: only an entry for exactly the host, never its "default" one
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(
        "machine exact.invalid login carol password three\ndefault login d password x\n"
    )
    netrc_file.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc_file))
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    with httpx.Client(auth=fetch.KnownCredentials(), transport=transport) as client:
        client.get("https://exact.invalid/simple/")
        client.get("https://elsewhere.invalid/simple/")
        client.get(f"https://{host}/team-b/simple/")
    basic = [("carol", "three"), None, ("bob", "two")]
    assert seen == [_basic(*login) if login else None for login in basic]


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
