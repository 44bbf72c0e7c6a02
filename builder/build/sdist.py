"""Download an sdist and verify its sha256 before any build code can see it.

Files are cached by sha256 under the user cache directory, written atomically (temp file +
``os.replace``), so a killed download never leaves a partial file under the final name.
``file://`` URLs (local sdists, as tests and offline mirrors use) are copied the same way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from ..errors import IndexUnreachableError, IntegrityError
from ..files import file_sha256
from ..hostenv import ssl_context, user_cache
from ..upstream.models import DistFile

_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    return user_cache("sdists")


def make_client(timeout: float = 60.0) -> httpx.Client:
    transport = httpx.HTTPTransport(retries=3, verify=ssl_context())
    return httpx.Client(transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=True)


class SdistFetcher:
    """Fetch sdists into ``cache_dir/<sha256>/<filename>``, verified."""

    def __init__(self, cache_dir: Path | None = None, client: httpx.Client | None = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        self._client = client

    def fetch(self, dist: DistFile, expected_sha256: str) -> Path:
        expected = expected_sha256.lower()
        final = self.cache_dir / expected / dist.filename
        if final.is_file() and file_sha256(final) == expected:
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with _temp_file(final.parent) as (handle, temp):
            digest = hashlib.sha256()
            for chunk in self._chunks(dist.url):
                digest.update(chunk)
                handle.write(chunk)
            handle.close()
            actual = digest.hexdigest()
            if actual != expected:
                raise IntegrityError(
                    f"{dist.filename} from {dist.url} has sha256 {actual}, but the index "
                    f"says {expected}. Nothing was built from it. The file was altered in "
                    "transit or on the index: check proxies and mirrors, then retry."
                )
            temp.replace(final)
        return final

    def _chunks(self, url: str) -> Iterator[bytes]:
        parts = urlsplit(url)
        if parts.scheme == "file":
            with Path(unquote(parts.path)).open("rb") as source:
                while chunk := source.read(_CHUNK):
                    yield chunk
            return
        client = self._client or make_client()
        try:
            with client.stream("GET", url) as response:
                response.raise_for_status()
                yield from response.iter_bytes(_CHUNK)
        except httpx.HTTPError as exc:
            raise IndexUnreachableError(
                f"Cannot download {url}: {exc}. Check the network and the index, then retry."
            ) from exc
        finally:
            if self._client is None:
                client.close()


@contextmanager
def _temp_file(directory: Path) -> Iterator[tuple[tempfile._TemporaryFileWrapper[bytes], Path]]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed and renamed by the caller
        dir=directory, prefix=f".tmp-{os.getpid()}-", delete=False
    )
    temp = Path(handle.name)
    try:
        yield handle, temp
    finally:
        handle.close()
        temp.unlink(missing_ok=True)
