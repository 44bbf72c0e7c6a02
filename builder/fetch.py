"""prewheel's one HTTP policy: the client, retries, overall deadlines and error mapping.

:func:`make_client` is the only place an :class:`httpx.Client` is configured: the host's CA
bundle, proxies from the environment (``HTTPS_PROXY``/``NO_PROXY``, as pip honours them),
redirects followed, per-operation timeouts and the overall deadlines below. :func:`get` and
:func:`download` are the only retry loops: connection errors, 5xx and 429 are retried with
exponential backoff, waiting at least what ``Retry-After`` asks (at most a minute), all within
one overall deadline.

httpx's timeouts apply to each network operation: a server that trickles one byte every few
seconds never trips a 30 s read timeout, and a download or page fetch never ends.
:func:`with_deadlines` gives a client's connection pools a network backend whose every
connect, read and write waits at most until the deadline set by :func:`deadline` in the calling
thread (a contextvar), so a whole request, headers and body, ends by then with
:class:`httpx.ReadTimeout`. Outside :func:`deadline` the client behaves as before.

:func:`error_for` turns any :class:`httpx.HTTPError` (or invalid URL) into the documented
error and exit code, so no httpx exception reaches the user as a traceback.

Credentials in index URLs (``https://user:token@host/simple/``, typically from
``${TOKEN}`` in a requirements file) are taken out of the URL by :func:`without_credentials`
before the URL goes anywhere (pages, plans, caches, messages) and kept in memory for the
host; every client then answers that host with them (HTTP basic auth), as pip does, and
falls back to ``~/.netrc`` (``$NETRC``) for hosts it has none for.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import email.utils
import hashlib
import netrc
import os
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

import httpcore
import httpx

from .errors import IndexMalformedError, IndexUnreachableError, PrewheelError, UsageError
from .hostenv import ssl_context

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
USER_AGENT = "prewheel"
_CHUNK = 1 << 16

# (scheme, host, port) -> [(path prefix, (user, password))], in the order they were given
_CREDENTIALS: dict[tuple[str, str, int | None], list[tuple[str, tuple[str, str]]]] = {}
_CREDENTIALS_LOCK = threading.Lock()


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host.lower(), url.port)


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part, which is remembered for URLs under it
    (the clients of :func:`make_client` send it there). Anything httpx cannot parse is returned
    unchanged (and refused where it is fetched)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    if not parsed.userinfo:
        return url
    prefix = parsed.path.rstrip("/") + "/"
    with _CREDENTIALS_LOCK:
        known = _CREDENTIALS.setdefault(_origin(parsed), [])
        known[:] = [(p, login) for p, login in known if p != prefix]
        known.append((prefix, (parsed.username, parsed.password)))
    return str(parsed.copy_with(userinfo=b""))


def login_for(url: httpx.URL) -> tuple[str, str] | None:
    """The login given for the index whose URL is the longest prefix of ``url`` (same scheme,
    host and port); for other paths of that origin (files served beside the index), the first
    login given for it, as pip does; else None."""
    with _CREDENTIALS_LOCK:
        known = list(_CREDENTIALS.get(_origin(url), ()))
    path = url.path
    matching = [(prefix, login) for prefix, login in known if path.startswith(prefix)]
    if matching:
        return max(matching, key=lambda item: len(item[0]))[1]
    return known[0][1] if known else None


def with_credentials(url: str) -> str:
    """``url`` with its remembered login put back (for tools that take the login only in the
    URL)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    login = login_for(parsed)
    if login is None or parsed.userinfo:
        return url
    userinfo = f"{quote(login[0], safe='')}:{quote(login[1], safe='')}"
    return str(parsed.copy_with(userinfo=userinfo.encode()))


def _netrc_login(host: str) -> tuple[str, str] | None:
    """The login ``~/.netrc`` (``$NETRC``) has for exactly ``host`` (its ``default`` entry is
    not used: it would go to every index and file host)."""
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        found = netrc.netrc(path).hosts.get(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return (found[0], found[2] or "") if found else None


class KnownCredentials(httpx.Auth):
    """Basic auth with the login remembered for the request's host, else ``~/.netrc``'s."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "Authorization" not in request.headers:
            login = login_for(request.url) or _netrc_login(request.url.host)
            if login is not None:
                yield from httpx.BasicAuth(*login).auth_flow(request)
                return
        yield request


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "prewheel_http_deadline", default=None
)


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Requests made in this block (in this thread) end by ``time.monotonic() == at``."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline_passed() -> bool:
    at = _DEADLINE.get()
    return at is not None and time.monotonic() >= at


def _clamp(timeout: float | None) -> float | None:
    at = _DEADLINE.get()
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise httpcore.ReadTimeout("the overall deadline of the request has passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        upgraded = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout))
        return _DeadlineStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _clamp(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, _clamp(timeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def with_deadlines(client: httpx.Client) -> httpx.Client:
    """``client``, its transports (the direct one and those for proxies) honouring
    :func:`deadline`. httpx has no public way to choose httpcore's network backend, so this
    reaches into the transports; a transport of another kind is left as it is."""
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(
            backend, _DeadlineBackend
        ):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


def error_for(url: str, exc: Exception, *, what: str = "the index") -> PrewheelError:
    """The documented error for an httpx failure while fetching ``url``."""
    name = type(exc).__name__
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return UsageError(f"{url} is not a URL prewheel can fetch ({exc}); check the index URL.")
    if isinstance(exc, httpx.DecodingError):
        return IndexMalformedError(
            f"{url} sent a body that cannot be decoded ({name}: {exc}); {what} or a proxy in "
            "between is misbehaving (a wrong Content-Encoding, for example)."
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return IndexUnreachableError(
            f"{url} redirects in a loop or too often ({exc}); check the URL of {what} and any "
            "proxy in between."
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(url, exc.response.status_code, what)
    if deadline_passed() or isinstance(exc, httpx.TimeoutException):
        return IndexUnreachableError(
            f"{url} did not answer in time ({name}: {exc}); {what} is too slow or stalled. "
            "Retry later, or check your network and proxy."
        )
    return IndexUnreachableError(
        f"cannot fetch {url} ({name}: {exc}); check your network, proxy and CA bundle "
        "(PREWHEEL_CA_BUNDLE), or retry later."
    )


def local_response(url: str) -> httpx.Response:
    """A ``file://`` URL as pip reads it: a directory answers with its ``index.html`` (a PEP
    503 page, as in the tree ``prewheel index`` writes), a file with its bytes, anything else
    404; so an index on disk (``--index-url file:///srv/wheels/simple/``) works offline.
    (httpx has no file scheme: it takes a host-less URL for a relative one.)"""
    request = httpx.Request("GET", url)
    path = Path(unquote(urlsplit(url).path))
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        return httpx.Response(404, request=request)
    content_type = {
        ".html": "text/html",
        ".json": "application/vnd.pypi.simple.v1+json",
    }.get(path.suffix, "application/octet-stream")
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}  # read it afresh
    return httpx.Response(200, headers=headers, content=path.read_bytes(), request=request)


def is_local(url: str) -> bool:
    return urlsplit(url).scheme == "file"


def _status_error(url: str, status: int, what: str) -> PrewheelError:
    if status in (401, 403):
        return UsageError(
            f"{url} refused access (HTTP {status}); give {what} credentials (in the index URL, "
            "netrc, or the tool's own settings) or check them."
        )
    return IndexUnreachableError(
        f"{url} answered HTTP {status}; {what} lists a file it does not serve, or a proxy in "
        "between refuses it. Check the index, then retry."
    )


def make_client(
    *,
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    verify: ssl.SSLContext | str | bool | None = None,
    concurrency: int = 16,
) -> httpx.Client:
    """An HTTP client with prewheel's policy (see the module docstring); ``verify`` None means
    the host's CA bundle (``PREWHEEL_CA_BUNDLE``, pip's ``cert``, ``SSL_CERT_FILE``...)."""
    client = httpx.Client(
        verify=ssl_context() if verify is None else verify,
        trust_env=True,
        auth=auth if auth is not None else KnownCredentials(),
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )
    return with_deadlines(client)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one request may be tried: ``attempts`` tries, ``backoff`` *
    2**n seconds apart (or what Retry-After asks, if longer), all within ``deadline`` s."""

    attempts: int = 4
    backoff: float = 0.5
    deadline: float = 120.0
    sleep: Callable[[float], None] = time.sleep


def retry_after(response: httpx.Response) -> float:
    """Seconds a 429/503 answer asks to wait (delta or HTTP date), at most a minute; 0 if none."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return 0.0
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return min(max(0.0, moment.timestamp() - time.time()), MAX_RETRY_AFTER)


class _Retry(Exception):
    """One failed try worth repeating, with the pause the server asked for."""

    def __init__(self, problem: str, pause: float = 0.0) -> None:
        super().__init__(problem)
        self.problem = problem
        self.pause = pause


def _with_retries(
    attempt: Callable[[], Any], *, doing: str, url: str, policy: RetryPolicy, what: str, hint: str
) -> Any:
    """Run ``attempt`` until it returns, under ``policy``; map failures to prewheel's errors."""
    ends = time.monotonic() + policy.deadline
    problem = ""
    tries = 0
    with deadline(ends):
        while True:
            tries += 1
            try:
                return attempt()
            except _Retry as failed:
                problem = failed.problem
                pause = max(policy.backoff * 2 ** (tries - 1), failed.pause)
            except httpx.TransportError as exc:
                if deadline_passed():
                    raise error_for(url, exc, what=what) from None
                problem, pause = f"{type(exc).__name__}: {exc}", policy.backoff * 2 ** (tries - 1)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise error_for(url, exc, what=what) from None
            if tries >= max(1, policy.attempts) or time.monotonic() + pause >= ends:
                break
            policy.sleep(pause)
    raise IndexUnreachableError(
        f"Cannot {doing} {url}: failed {tries} times ({problem}); {what} is unreachable or "
        "failing. Check your network, proxy and CA bundle (PREWHEEL_CA_BUNDLE), or retry "
        "later." + hint
    )


def get(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    policy: RetryPolicy = RetryPolicy(),
    what: str = "the index",
    hint: str = "",
) -> httpx.Response:
    """GET ``url`` under ``policy``; any answer but 5xx and 429 is returned (404 included).
    ``hint`` is appended to the error when every try failed."""

    if is_local(url):
        return local_response(url)

    def attempt() -> httpx.Response:
        response = client.get(url, headers=dict(headers or {}))
        if response.status_code in RETRY_STATUSES:
            raise _Retry(f"HTTP {response.status_code}", retry_after(response))
        return response

    return _with_retries(attempt, doing="fetch", url=url, policy=policy, what=what, hint=hint)  # type: ignore[no-any-return]


def rewound(stream: IO[bytes]) -> contextlib.AbstractContextManager[IO[bytes]]:
    """``stream`` emptied for a new try of :func:`download`, left open at the end (an
    ``open_destination`` for a stream the caller owns, such as
    :func:`builder.files.atomic_writer`'s)."""
    stream.seek(0)
    stream.truncate()
    return contextlib.nullcontext(stream)


def _copy_local(
    url: str,
    open_destination: Callable[[], contextlib.AbstractContextManager[IO[bytes]]],
    what: str,
) -> str:
    """A ``file://`` download: the file copied in chunks; its sha256 hex digest."""
    source = Path(unquote(urlsplit(url).path))
    if not source.is_file():
        raise _status_error(url, 404, what)
    digest = hashlib.sha256()
    with source.open("rb") as reader, open_destination() as stream:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            stream.write(chunk)
    return digest.hexdigest()


def download(
    client: httpx.Client,
    url: str,
    open_destination: Callable[[], contextlib.AbstractContextManager[IO[bytes]]],
    *,
    policy: RetryPolicy = RetryPolicy(attempts=3, deadline=1800.0),
    what: str = "the index",
) -> str:
    """Stream ``url`` into a fresh ``open_destination()`` per try (a file opened for writing,
    or :func:`rewound`); its sha256 hex digest.

    A 4xx answer fails at once (mapped by :func:`error_for`); the caller owns the
    destination's name and cleanup. ``file://`` URLs are copied."""
    if is_local(url):
        return _copy_local(url, open_destination, what)

    def attempt() -> str:
        digest = hashlib.sha256()
        with client.stream("GET", url) as response:
            if response.status_code in RETRY_STATUSES:
                raise _Retry(f"HTTP {response.status_code}", retry_after(response))
            response.raise_for_status()
            with open_destination() as stream:
                for chunk in response.iter_bytes(_CHUNK):
                    digest.update(chunk)
                    stream.write(chunk)
        return digest.hexdigest()

    return _with_retries(attempt, doing="download", url=url, policy=policy, what=what, hint="")  # type: ignore[no-any-return]
