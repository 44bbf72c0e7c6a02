"""``prewheel serve``: the static tree over HTTP with PEP 691 negotiation, plus uploads.

A Starlette app run by uvicorn. Reads come straight from the tree that
:class:`~builder.index.static.StaticIndex` writes (so a page is always whole); ``/simple/``
pages are negotiated between PEP 691 JSON and HTML by ``Accept`` (or ``?format=``).
Uploads speak the legacy API twine uses (multipart POST, ``:action=file_upload``,
``content``, ``name``, ``version``, ``sha256_digest``) behind HTTP basic auth
(:mod:`builder.index.auth`: failed logins limited per client, 429 beyond), and every upload
is validated by :func:`~builder.index.wheelinfo.inspect_wheel` before it is listed. Without
credentials configured the server is read-only.

``/`` and ``/ui/`` are HTML pages for people (:mod:`builder.index.browse`): the projects,
each project's versions against the targets, build logs from the wheelhouse, the latest plan.

At start-up the tree is repaired (:meth:`StaticIndex.repair`). A writer lock held by another
process for longer than the lock timeout answers 503 with ``Retry-After``. uvicorn is run
with a deadline for request headers, for each piece of a request body and for the whole body,
so a client that stops sending, or trickles, cannot hold a connection (and the body received
so far) for longer than those.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h11
import uvicorn
from packaging.utils import canonicalize_name, canonicalize_version
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import (
    HostEnvironmentError,
    IndexBusyError,
    IntegrityError,
    PrewheelError,
    PublishConflictError,
    UsageError,
)
from ..plan import Plan, plan_from_json
from ..targets import Target, select_targets
from ..wheelhouse import Wheelhouse
from . import browse
from .auth import AttemptLimiter, Authenticator
from .static import HTML_CONTENT_TYPE, JSON_CONTENT_TYPE, AddResult, StaticIndex
from .wheelinfo import check_filename, inspect_wheel

logger = logging.getLogger("prewheel.serve")

DEFAULT_MAX_UPLOAD = 2 << 30
_CHUNK = 1 << 20
_CANDIDATES = ("text/html", HTML_CONTENT_TYPE, JSON_CONTENT_TYPE)  # tie-break order
_LATEST = {  # PEP 691: "latest" names the newest version the server supports
    "application/vnd.pypi.simple.latest+json": JSON_CONTENT_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_CONTENT_TYPE,
}
_FORMAT_ALIASES = {"json": JSON_CONTENT_TYPE, "html": HTML_CONTENT_TYPE, **_LATEST}
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0  # seconds without any part of the body
DEFAULT_UPLOAD_TIMEOUT = 3600.0  # seconds for the whole body (2 GiB at 0.6 MB/s)
DEFAULT_LOGIN_ATTEMPTS = 10  # failed logins per client address ...
LOGIN_WINDOW = 60  # ... in this many seconds
BUSY_RETRY_AFTER = 10


def negotiate(accept: str | None, format_parameter: str | None = None) -> str | None:
    """The content type to send for a simple page, or None if nothing acceptable (406)."""
    if format_parameter:
        wanted = _FORMAT_ALIASES.get(format_parameter.strip().lower(), format_parameter)
        return wanted if wanted in _CANDIDATES else None
    if not accept or not accept.strip():
        return "text/html"
    ranges = [_parse_media_range(part) for part in accept.split(",") if part.strip()]
    best: tuple[float, int, str] | None = None
    for order, candidate in enumerate(_CANDIDATES):
        quality = _quality(candidate, ranges)
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, order, candidate)
    return best[2] if best else None


def _parse_media_range(part: str) -> tuple[str, float]:
    media, *parameters = (p.strip() for p in part.split(";"))
    quality = 1.0
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    media = media.lower()
    return _LATEST.get(media, media), quality


def format_parameter(query: str) -> str | None:
    """``format`` of a raw query string, percent-decoded but with ``+`` kept: PEP 691's media
    types contain a literal ``+``, which form decoding would turn into a space."""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == "format":
            return unquote(value)
    return None


def _quality(candidate: str, ranges: list[tuple[str, float]]) -> float:
    """q of the most specific range matching ``candidate`` (RFC 9110 12.5.1)."""
    kind = candidate.split("/", maxsplit=1)[0]
    by_specificity = dict(ranges)
    for media in (candidate, f"{kind}/*", "*/*"):
        if media in by_specificity:
            return by_specificity[media]
    return 0.0


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, password = decoded.partition(":")
    return (username, password) if separator else None


def _unauthorized(detail: str) -> Response:
    return PlainTextResponse(
        detail + "\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="prewheel", charset="UTF-8"'},
    )


@dataclasses.dataclass(frozen=True)
class UploadForm:
    filename: str
    name: str
    version: str
    sha256_digest: str | None
    md5_digest: str | None


class BodyTimeoutError(Exception):
    """The request body did not arrive in time; the message says which limit it missed."""


class IndexApp:
    """The request handlers, bound to one tree and one authenticator."""

    def __init__(
        self,
        index: StaticIndex,
        authenticator: Authenticator | None,
        max_upload: int = DEFAULT_MAX_UPLOAD,
        limiter: AttemptLimiter | None = None,
        sources: browse.BrowseSources | None = None,
    ) -> None:
        self.index = index
        self.authenticator = authenticator
        self.max_upload = max_upload
        self.limiter = limiter or AttemptLimiter(DEFAULT_LOGIN_ATTEMPTS, LOGIN_WINDOW)
        self.sources = sources or browse.BrowseSources()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.root, methods=["GET", "POST"]),
            Route("/legacy/", self.upload, methods=["POST"]),
            Route("/simple/", self.simple_root),
            Route("/simple/{project}/", self.project),
            Route("/simple/{project}", self.project_without_slash),
            Route("/files/{filename}", self.file),
            Route("/ui/", self.ui_projects),
            Route("/ui/project/{project}/", self.ui_project),
            Route("/ui/plan/", self.ui_plan),
            Route("/ui/logs/{filename}", self.ui_log),
        ]

    async def root(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.upload(request)
        return RedirectResponse(browse.UI, status_code=302)

    # --- pages for people (read-only, like /simple/) ------------------------------------------

    async def ui_projects(self, request: Request) -> Response:
        del request
        catalog = await run_in_threadpool(self.index.catalog)
        plan = await run_in_threadpool(self._plan)
        return HTMLResponse(browse.render_projects(catalog.values(), plan))

    async def ui_project(self, request: Request) -> Response:
        raw = request.path_params["project"]
        project = canonicalize_name(raw)
        if raw != project:
            return RedirectResponse(browse.project_link(project), status_code=301)
        catalog = await run_in_threadpool(self.index.catalog)
        records = [r for r in catalog.values() if r.project == project]
        if not records:
            return HTMLResponse(
                browse.page(project, '<p class="muted">No such project on this index.</p>'),
                status_code=404,
            )
        plan = await run_in_threadpool(self._plan)
        targets = plan.targets if plan is not None else _default_targets()
        builds = await run_in_threadpool(self._builds)
        return HTMLResponse(browse.render_project(project, records, targets, builds))

    async def ui_plan(self, request: Request) -> Response:
        del request
        plan = await run_in_threadpool(self._plan)
        if plan is None:
            return HTMLResponse(browse.render_no_plan(), status_code=404)
        catalog = await run_in_threadpool(self.index.catalog)
        return HTMLResponse(browse.render_plan(plan, catalog.values()))

    async def ui_log(self, request: Request) -> Response:
        build = (await run_in_threadpool(self._builds)).get(request.path_params["filename"])
        wheelhouse = self.sources.wheelhouse
        if build is None or not build.log or wheelhouse is None:
            return PlainTextResponse("no build log for this file\n", status_code=404)
        root = wheelhouse.resolve()
        path = (root / build.log).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return PlainTextResponse("no build log for this file\n", status_code=404)
        return FileResponse(path, media_type="text/plain; charset=utf-8")

    def _plan(self) -> Plan | None:
        """The plan at ``sources.plan`` (None if there is none or it cannot be read)."""
        if self.sources.plan is None:
            return None
        try:
            return plan_from_json(json.loads(self.sources.plan.read_text(encoding="utf-8")))
        except (OSError, ValueError, UsageError) as exc:
            logger.warning("cannot read the plan %s: %s", self.sources.plan, exc)
            return None

    def _builds(self) -> dict[str, browse.BuildRecord]:
        """Built wheel filename -> its build log (relative to the wheelhouse) and time."""
        if self.sources.wheelhouse is None:
            return {}
        try:
            entries = Wheelhouse(self.sources.wheelhouse).entries()
        except Exception as exc:  # noqa: BLE001 - a page without logs beats a 500
            logger.warning("cannot read the wheelhouse %s: %s", self.sources.wheelhouse, exc)
            return {}
        return {e.filename: browse.BuildRecord(e.log, e.built_at) for e in entries}

    async def simple_root(self, request: Request) -> Response:
        return self._page(request, self.index.simple)

    async def project_without_slash(self, request: Request) -> Response:
        return RedirectResponse(f"/simple/{request.path_params['project']}/", status_code=301)

    async def project(self, request: Request) -> Response:
        raw = request.path_params["project"]
        normalized = canonicalize_name(raw)
        if raw != normalized:
            return RedirectResponse(f"/simple/{normalized}/", status_code=301)
        return self._page(request, self.index.simple / normalized)

    def _page(self, request: Request, directory: Path) -> Response:
        content_type = negotiate(request.headers.get("accept"), format_parameter(request.url.query))
        if content_type is None:
            return PlainTextResponse(
                f"not acceptable; this index serves {', '.join(_CANDIDATES)}\n", status_code=406
            )
        page = directory / ("index.json" if content_type == JSON_CONTENT_TYPE else "index.html")
        if not page.is_file():
            return PlainTextResponse("no such project on this index\n", status_code=404)
        return Response(page.read_bytes(), media_type=content_type, headers={"Vary": "Accept"})

    async def file(self, request: Request) -> Response:
        filename = request.path_params["filename"]
        if filename.startswith(".") or "\0" in filename:
            return PlainTextResponse("not found\n", status_code=404)
        path = self.index.files / filename
        if not path.is_file():
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(path, media_type="application/octet-stream")

    async def _admit(self, request: Request) -> tuple[Response | None, str]:
        """(a refusal, or None to go on; the identity to log)."""
        refusal, identity = await self._authenticate(request)
        if refusal is None:
            refusal = self._size_refusal(request)
        return refusal, identity

    async def _authenticate(self, request: Request) -> tuple[Response | None, str]:
        if self.authenticator is None:
            return PlainTextResponse(
                "uploads are disabled: start prewheel serve with --htpasswd or a token\n",
                status_code=403,
            ), ""
        credentials = _credentials(request)
        if credentials is None:
            return _unauthorized("credentials required (HTTP basic auth)"), ""
        client = request.client.host if request.client else "unknown"
        wait = self.limiter.retry_after(client)
        if wait is not None:
            logger.warning("upload refused: too many failed logins from %s", client)
            return PlainTextResponse(
                f"too many failed logins from your address; retry in {wait} s\n",
                status_code=429,
                headers={"Retry-After": str(wait)},
            ), ""
        identity = await run_in_threadpool(self.authenticator.check, *credentials)
        if identity is None:
            self.limiter.failed(client)
            logger.warning("upload refused: wrong credentials from %s", client)
            return _unauthorized("wrong user name or password"), ""
        return None, identity

    def _size_refusal(self, request: Request) -> Response | None:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return PlainTextResponse("a Content-Length is required\n", status_code=411)
        if int(length) > self.max_upload:
            return PlainTextResponse(
                f"upload larger than {self.max_upload} bytes\n", status_code=413
            )
        return None

    async def upload(self, request: Request) -> Response:
        refusal, username = await self._admit(request)
        if refusal is not None:
            return refusal
        try:
            async with request.form(max_files=2, max_fields=200) as form:
                return await self._handle_form(username, form)
        except BodyTimeoutError as exc:
            logger.warning("upload by %r aborted: %s", username, exc)
            return PlainTextResponse(
                f"{exc}; nothing was kept, send it again\n",
                status_code=408,
                headers={"Connection": "close"},
            )
        except (ClientDisconnect, MultiPartException) as exc:
            logger.warning("upload by %r aborted: %s", username, type(exc).__name__)
            return PlainTextResponse(f"incomplete upload: {exc}\n", status_code=400)

    async def _handle_form(self, username: str, form: FormData) -> Response:
        if form.get(":action") != "file_upload":
            return PlainTextResponse("only :action=file_upload is supported\n", status_code=400)
        content = form.get("content")
        if not isinstance(content, UploadFile) or not content.filename:
            return PlainTextResponse("the 'content' file field is missing\n", status_code=400)
        fields = UploadForm(
            filename=content.filename,
            name=str(form.get("name") or ""),
            version=str(form.get("version") or ""),
            sha256_digest=_text_or_none(form.get("sha256_digest")),
            md5_digest=_text_or_none(form.get("md5_digest")),
        )
        try:
            result = await run_in_threadpool(self._store, content, fields)
        except PublishConflictError as exc:
            logger.warning("upload of %r by %r refused: conflict", fields.filename, username)
            return PlainTextResponse(str(exc) + "\n", status_code=409)
        except IndexBusyError as exc:
            logger.warning("upload of %r by %r: index busy", fields.filename, username)
            return PlainTextResponse(
                str(exc) + "\n",
                status_code=503,
                headers={"Retry-After": str(BUSY_RETRY_AFTER)},
            )
        except IntegrityError as exc:
            logger.warning("upload of %r by %r refused: %s", fields.filename, username, exc)
            return PlainTextResponse(str(exc) + "\n", status_code=400)
        logger.info("upload of %s by %r: %s", fields.filename, username, result.value)
        return PlainTextResponse(f"{result.value}: {fields.filename}\n", status_code=200)

    def _store(self, content: UploadFile, fields: UploadForm) -> AddResult:
        name, version = check_filename(fields.filename)
        if fields.name and canonicalize_name(fields.name) != name:
            raise IntegrityError(
                f"the form says project {fields.name!r} but the file is {fields.filename}."
            )
        if fields.version and canonicalize_version(fields.version) != canonicalize_version(version):
            raise IntegrityError(
                f"the form says version {fields.version!r} but the file is {fields.filename}."
            )
        with self.index.spool("upload") as temporary:
            sha256, md5 = _spool(content, temporary, self.max_upload)
            _check_digest("sha256", fields.sha256_digest, sha256)
            _check_digest("md5", fields.md5_digest, md5)
            info = inspect_wheel(temporary, filename=fields.filename)
            return self.index.add(temporary, info, move=True)


def _text_or_none(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _spool(content: UploadFile, target: Path, limit: int) -> tuple[str, str]:
    """Copy the uploaded file to ``target``; return its (sha256, md5) hex digests."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    content.file.seek(0)
    with target.open("wb") as stream:
        while chunk := content.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise IntegrityError(f"upload larger than {limit} bytes.")
            sha256.update(chunk)
            md5.update(chunk)
            stream.write(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _check_digest(algorithm: str, declared: str | None, actual: str) -> None:
    if declared is not None and declared != actual:
        raise IntegrityError(
            f"the upload's {algorithm} is {actual} but the client declared {declared}: the file "
            "was damaged in transit; upload it again."
        )


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    max_upload: int = DEFAULT_MAX_UPLOAD
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    login_attempts: int = DEFAULT_LOGIN_ATTEMPTS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT


def _default_targets() -> list[Target]:
    return select_targets()


def create_app(
    root: Path,
    authenticator: Authenticator | None = None,
    options: ServerOptions = ServerOptions(),
    sources: browse.BrowseSources | None = None,
) -> ASGIApp:
    """The ASGI app serving (and accepting uploads into) the tree at ``root``, which is
    created or repaired first; ``sources`` feed the pages for people (``/ui/``)."""
    index = StaticIndex(root, lock_timeout=options.lock_timeout)
    for finding in index.initialise().findings():
        logger.warning("repaired at start-up: %s", finding)
    limiter = AttemptLimiter(options.login_attempts, LOGIN_WINDOW)
    handlers = IndexApp(index, authenticator, options.max_upload, limiter, sources)
    app = Starlette(routes=handlers.routes())
    return BodyTimeout(app, options.body_timeout, options.upload_timeout)


class BodyTimeout:
    """ASGI middleware: while a request body is incomplete, each ``receive`` must deliver
    within ``idle`` seconds, and the whole body must have arrived within ``total`` seconds of
    the request's start, or :class:`BodyTimeoutError` is raised in the app. The first limit
    catches a client that stops sending, the second one that trickles (a few bytes just
    inside every idle timeout would otherwise hold the connection and its body for ever)."""

    def __init__(self, app: ASGIApp, idle: float, total: float) -> None:
        self.app = app
        self.idle = idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        clock = asyncio.get_running_loop().time
        deadline = clock() + self.total

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            left = deadline - clock()
            try:
                if left <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), min(self.idle, left))
            except TimeoutError:
                raise BodyTimeoutError(
                    f"the upload took longer than the upload timeout ({self.total:g} s)"
                    if left <= self.idle
                    else f"the upload stalled (nothing for {self.idle:g} s, the body timeout)"
                ) from None
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive in
    full within ``seconds`` (uvicorn itself only times out idle kept-alive connections)."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._await_headers()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._headers_arrived()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._headers_arrived()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _headers_arrived(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for :func:`run`, so that an address in use is
    a clear error before the server says it serves."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive request stalls about 40 ms (Nagle against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise HostEnvironmentError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}). Another server "
            "(an earlier prewheel serve?) may hold the port: stop it, or pass another --port "
            "(and --host an address of this machine)."
        ) from None
    return sock


def run(
    app_factory: Callable[[], ASGIApp],
    sock: socket.socket,
    log_level: str = "info",
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Run the app with uvicorn on ``sock`` (from :func:`listen`) until interrupted."""
    config = uvicorn.Config(
        app_factory(),
        log_level=log_level,
        proxy_headers=False,
        http=header_timeout_protocol(header_timeout),
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


_SERVER_START_TIMEOUT = 30.0


@contextlib.contextmanager
def serving(root: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the static index tree ``root`` read-only on a free port of ``host`` in a thread
    of this process (``prewheel run``'s and ``prewheel verify --serve``'s verification);
    yield its simple URL."""
    sock = listen(host, 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(root), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _SERVER_START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise HostEnvironmentError(
                f"The embedded index server for {root} did not start on {host}:{port}."
            )
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}/simple/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def tree_fingerprint(root: Path) -> str:
    """What a static tree serves, as one digest of what pip can see and install: every listed
    file's name, sha256, metadata digest and Requires-Python ("" for a tree without a catalog,
    which is then never taken as unchanged). Upload times are left out, so the same wheels
    indexed again into a new tree have the same fingerprint."""
    index = StaticIndex(root)
    if not index.catalog_path.is_file():
        return ""
    try:
        records = index.catalog()
    except PrewheelError:
        return ""
    served = sorted(
        (r.filename, r.sha256, r.metadata_sha256, r.requires_python or "") for r in records.values()
    )
    return hashlib.sha256(json.dumps(served).encode()).hexdigest()
