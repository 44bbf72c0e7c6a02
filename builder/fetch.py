"""An overall deadline for HTTP requests, and one mapping of httpx's errors to prewheel's.

httpx's timeouts apply to each network operation: a server that trickles one byte every few
seconds never trips a 30 s read timeout, and a download or page fetch never ends.
:func:`with_deadlines` gives a client's connection pools a network backend whose every
connect, read and write waits at most until the deadline set by :func:`deadline` in the calling
thread (a contextvar), so a whole request, headers and body, ends by then with
:class:`httpx.ReadTimeout`. Outside :func:`deadline` the client behaves as before.

:func:`error_for` turns any :class:`httpx.HTTPError` (or invalid URL) into the documented
error and exit code, so no httpx exception reaches the user as a traceback.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from .errors import IndexMalformedError, IndexUnreachableError, PrewheelError, UsageError

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
    if deadline_passed() or isinstance(exc, httpx.TimeoutException):
        return IndexUnreachableError(
            f"{url} did not answer in time ({name}: {exc}); {what} is too slow or stalled. "
            "Retry later, or check your network and proxy."
        )
    return IndexUnreachableError(
        f"cannot fetch {url} ({name}: {exc}); check your network, proxy and CA bundle "
        "(PREWHEEL_CA_BUNDLE), or retry later."
    )
