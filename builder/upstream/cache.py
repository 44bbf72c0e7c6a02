"""A small on-disk HTTP cache for index pages: Cache-Control max-age, ETag, Last-Modified.

One file per URL (named by the URL's sha256), written atomically
(:func:`builder.files.atomic_write`), so concurrent prewheel processes can share the directory
without locks: a reader sees either the old or the new entry, never half of one. Entries are
not fsync-ed (a cache lost in a crash is only a slower run) and readable by their owner only
(pages of private indexes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ..files import atomic_write

CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class CachedResponse:
    """What we keep of a 200 answer: body, type, validators, and how long it stays fresh."""

    url: str
    body: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None
    stored_at: float = 0.0
    max_age: float = 0.0  # seconds; 0 means revalidate every time
    status: int = 200  # 200, or 404 (kept so a project absent from an index is not re-asked)

    def is_fresh(self, now: float | None = None) -> bool:
        return ((now if now is not None else time.time()) - self.stored_at) < self.max_age

    def validators(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def revalidated(self, headers: Mapping[str, str], default_ttl: float = 0.0) -> CachedResponse:
        """This entry after a 304: same body, new freshness (and validators, if sent)."""
        return dataclasses.replace(
            self,
            etag=headers.get("etag") or self.etag,
            last_modified=headers.get("last-modified") or self.last_modified,
            stored_at=time.time(),
            max_age=freshness(headers, default_ttl),
        )

    @classmethod
    def from_response(
        cls, url: str, response: httpx.Response, default_ttl: float = 0.0
    ) -> CachedResponse:
        """``default_ttl`` is the heuristic freshness of an answer without Cache-Control
        (some proxies strip it); an explicit Cache-Control always wins."""
        headers = response.headers
        return cls(
            url=url,
            body=response.content,
            content_type=headers.get("content-type", "").split(";")[0].strip().lower(),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            stored_at=time.time(),
            max_age=freshness(headers, default_ttl),
            status=response.status_code,
        )


def freshness(headers: Mapping[str, str], default_ttl: float) -> float:
    """Seconds an answer stays fresh: its Cache-Control, else ``default_ttl``."""
    cache_control = headers.get("cache-control")
    return max_age(cache_control) if cache_control is not None else default_ttl


def max_age(cache_control: str) -> float:
    """Seconds a response may be reused without asking; 0 for no-cache/no-store/absent."""
    directives = {}
    for part in cache_control.lower().split(","):
        key, _, value = part.strip().partition("=")
        directives[key] = value.strip('"')
    if "no-cache" in directives or "no-store" in directives:
        return 0.0
    try:
        return max(0.0, float(directives.get("max-age", "0")))
    except ValueError:
        return 0.0


class HttpCache:
    """Entries are ``<sha256(url)>.json`` (metadata: validators, freshness, status, body size)
    next to ``<sha256(url)>.body`` (the raw page), plus optional *slices*: small derived files
    (e.g. the files of one pinned version) tied to the entry's ``stored_at``, so a warm run
    need not re-read and re-parse a multi-megabyte page."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _base(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.directory / digest[:2] / digest

    def load_meta(self, url: str) -> tuple[CachedResponse, int] | None:
        """(the entry without its body, the body's size in bytes), or None."""
        try:
            raw = json.loads(self._base(url).with_suffix(".json").read_bytes())
            if raw.get("format") != CACHE_FORMAT or raw.get("url") != url:
                return None
            return CachedResponse(
                url=url,
                body=b"",
                content_type=raw["content_type"],
                etag=raw.get("etag"),
                last_modified=raw.get("last_modified"),
                stored_at=float(raw["stored_at"]),
                max_age=float(raw["max_age"]),
                status=int(raw.get("status", 200)),
            ), int(raw.get("size", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent or unreadable: fetch again

    def load(self, url: str) -> CachedResponse | None:
        loaded = self.load_meta(url)
        if loaded is None:
            return None
        meta, size = loaded
        try:
            body = self._base(url).with_suffix(".body").read_bytes()
        except OSError:
            return None
        if len(body) != size:
            return None  # a concurrent writer replaced the body: fetch again
        return dataclasses.replace(meta, body=body)

    def store(self, response: CachedResponse) -> None:
        if response.max_age <= 0 and not (response.etag or response.last_modified):
            return  # nothing to reuse it with (this includes Cache-Control: no-store)
        base = self._base(response.url)
        entry = {
            "format": CACHE_FORMAT,
            "url": response.url,
            "content_type": response.content_type,
            "etag": response.etag,
            "last_modified": response.last_modified,
            "stored_at": response.stored_at,
            "max_age": response.max_age,
            "status": response.status,
            "size": len(response.body),
        }
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            _write_entry(base.with_suffix(".body"), response.body)
            _write_entry(base.with_suffix(".json"), json.dumps(entry).encode())
        except OSError:
            return  # a cache that cannot be written is only a slower run

    def load_slice(self, url: str, key: str, stored_at: float) -> Any:
        """A derived value stored for the entry of ``url`` as it was at ``stored_at``."""
        try:
            raw = json.loads(self._slice_path(url, key).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict) or raw.get("stored_at") != stored_at:
            return None
        return raw.get("value")

    def store_slice(self, url: str, key: str, stored_at: float, value: Any) -> None:
        path = self._slice_path(url, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_entry(path, json.dumps({"stored_at": stored_at, "value": value}).encode())
        except OSError:
            return

    def _slice_path(self, url: str, key: str) -> Path:
        base = self._base(url)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return base.with_name(f"{base.name}.{digest}.slice")


def _write_entry(path: Path, data: bytes) -> None:
    """The cache's policy for the one atomic writer: owner-only, not fsync-ed."""
    atomic_write(path, data, mode=0o600, durable=False)
