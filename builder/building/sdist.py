"""Download an sdist and verify its sha256 before any build code can see it.

Files are downloaded by :func:`builder.fetch.download` (``file://`` URLs, local sdists as tests
and offline mirrors use, are copied) and cached by sha256 under the user cache directory,
written through :func:`builder.files.atomic_writer`, so a killed download, or one whose sha256
is wrong, never leaves a file under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import httpx

from .. import fetch
from ..errors import IntegrityError
from ..files import TEMP_PREFIX, atomic_writer, file_sha256
from ..hostenv import user_cache
from ..upstream.models import DistFile

_POLICY = fetch.RetryPolicy(attempts=3, deadline=1800.0)  # per sdist, retries included
_TIMEOUT = 60.0  # per network operation


def default_cache_dir() -> Path:
    return user_cache("sdists")


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
        # owner-only, as the cache always was (an sdist of a private index stays private)
        with atomic_writer(final, prefix=f"{TEMP_PREFIX}{os.getpid()}-", mode=0o600) as stream:
            actual = self._download(dist.url, stream)
            if actual != expected:
                raise IntegrityError(
                    f"{dist.filename} from {dist.url} has sha256 {actual}, but the index "
                    f"says {expected}. Nothing was built from it. The file was altered in "
                    "transit or on the index: check proxies and mirrors, then retry."
                )
        return final

    def _download(self, url: str, destination: IO[bytes]) -> str:
        """Write ``url`` to ``destination``; its sha256 hex digest."""
        client = self._client or fetch.make_client(timeout=_TIMEOUT)
        try:
            return fetch.download(
                client, url, lambda: fetch.rewound(destination), policy=_POLICY, what="the index"
            )
        finally:
            if self._client is None:
                client.close()
