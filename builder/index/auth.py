"""Who may upload to ``prewheel serve``: a shared token or an htpasswd file, and how often a
client may guess.

* :class:`TokenAuth` compares digests of the password and the token with
  :func:`hmac.compare_digest`, so the time taken says nothing about the token (not even its
  length).
* :class:`HtpasswdAuth` verifies with passlib in a separate worker process: the hashes are
  made to be slow (sha256-crypt, bcrypt: a tenth of a second and more) and hold the GIL, so in
  a thread they would stall every other request. A user name the file does not know is checked
  against another user's hash, so a known and an unknown name cost the same and the answer
  time does not tell which names exist.
* :class:`AttemptLimiter` counts failed logins per client address in a moving window
  (:mod:`limits`); past the limit, every login from that address, right or wrong, is refused
  with 429 and ``Retry-After`` until the window has room again, before any hash is computed.

``check`` returns the identity to log (the htpasswd user; for a token, the fixed word
``token``, since clients may send the token as the user name) or None. Nothing secret is
ever returned or logged.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import hmac
import math
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..errors import UsageError

TOKEN_IDENTITY = "token"  # noqa: S105 - what the log says instead of a token holder's name


class Authenticator(Protocol):
    def check(self, username: str, password: str) -> str | None:
        """The identity to log if the credentials are right, else None."""
        ...


@dataclasses.dataclass(frozen=True)
class TokenAuth:
    """Any user name, with the shared token as password (twine: ``-u __token__ -p TOKEN``)."""

    token: str

    def check(self, username: str, password: str) -> str | None:
        del username  # any user name; never logged (clients put the token there too)
        given = hashlib.sha256(password.encode()).digest()
        expected = hashlib.sha256(self.token.encode()).digest()
        return TOKEN_IDENTITY if hmac.compare_digest(given, expected) else None


class HtpasswdAuth:
    """An Apache htpasswd file (bcrypt, sha256-crypt, apr1...), reloaded when it changes."""

    def __init__(self, path: Path) -> None:
        _load_htpasswd(path)  # fail now, with a clear message, not at the first upload
        self.path = path
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def check(self, username: str, password: str) -> str | None:
        future = self._worker().submit(_verify_htpasswd, str(self.path), username, password)
        return username if future.result() else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def _worker(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            return self._pool


_LOADED: dict[str, Any] = {}  # per worker process: path -> passlib HtpasswdFile


def _load_htpasswd(path: Path) -> Any:
    try:
        from passlib.apache import HtpasswdFile  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise UsageError(
            "--htpasswd needs the libpass package (pip install libpass, the maintained fork "
            "of passlib); or use --token-file instead."
        ) from exc
    try:
        return HtpasswdFile(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read htpasswd file {path}: {exc}") from exc


def _verify_htpasswd(path: str, username: str, password: str) -> bool:
    """In the worker: verify, spending the same work on an unknown user as on a known one."""
    htpasswd = _LOADED.get(path)
    if htpasswd is None:
        htpasswd = _LOADED[path] = _load_htpasswd(Path(path))
    htpasswd.load_if_changed()
    stored = htpasswd.get_hash(username)
    if stored is not None:
        return bool(htpasswd.check_password(username, password))
    users = htpasswd.users()
    if users:  # the same scheme and cost as a real check, bound to fail
        htpasswd.context.verify(password, htpasswd.get_hash(users[0]))
    return False


class AttemptLimiter:
    """At most ``attempts`` failed logins per client address in any ``window`` seconds."""

    def __init__(self, attempts: int, window: int) -> None:
        self._item = RateLimitItemPerSecond(attempts, window)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None if it may try now."""
        if self._limiter.test(self._item, client):
            return None
        reset, _ = self._limiter.get_window_stats(self._item, client)
        return max(1, math.ceil(reset - time.time()))

    def failed(self, client: str) -> None:
        self._limiter.hit(self._item, client)
