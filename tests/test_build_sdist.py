"""sdist download: verified against the index's sha256 before anything uses it; atomic."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from build_fixtures.helpers import local_dist
from build_fixtures.sdists import make_sdist

from builder.building.sdist import SdistFetcher
from builder.errors import IndexUnreachableError, IntegrityError
from builder.files import file_sha256
from builder.index.complete import HttpDownloader
from builder.upstream.models import DistFile


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    sdist = make_sdist(root)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{sdist.name}", sdist
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_downloads_over_http_and_caches_by_hash(tmp_path: Path, served: tuple[str, Path]) -> None:
    url, sdist = served
    fetcher = SdistFetcher(tmp_path / "cache")
    sha = file_sha256(sdist)
    path = fetcher.fetch(DistFile(sdist.name, url, {"sha256": sha}), sha)
    assert path == tmp_path / "cache" / sha / sdist.name
    assert path.read_bytes() == sdist.read_bytes()
    sdist.unlink()  # a second fetch is served from the cache
    assert fetcher.fetch(DistFile(sdist.name, url, {"sha256": sha}), sha) == path


def test_a_hash_mismatch_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path / "src")
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(IntegrityError, match="Nothing was built"):
        SdistFetcher(cache).fetch(local_dist(sdist, wrong), wrong)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_an_unreachable_url_is_reported(tmp_path: Path) -> None:
    dist = DistFile("x-1.0.tar.gz", "http://127.0.0.1:9/x-1.0.tar.gz", {"sha256": "0" * 64})
    with pytest.raises(IndexUnreachableError, match="Cannot download"):
        SdistFetcher(tmp_path).fetch(dist, "0" * 64)


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy that answers every absolute-form request itself."""

    payload = b""
    requested: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requested.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("downloader", ["sdist", "complete-mode mirror"])
def test_downloads_go_through_the_proxy_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloader: str
) -> None:
    """Behind a corporate proxy the only way out is HTTP(S)_PROXY, as for pip: every download
    honours it (the sdist client once ignored it)."""
    sdist = make_sdist(tmp_path / "src")
    _ForwardProxy.payload, _ForwardProxy.requested = sdist.read_bytes(), []
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    url = f"http://sdists.invalid/{sdist.name}"  # resolvable through the proxy only
    dist = DistFile(sdist.name, url, {"sha256": file_sha256(sdist)})
    try:
        if downloader == "sdist":
            fetched = SdistFetcher(tmp_path / "cache").fetch(dist, file_sha256(sdist))
        else:
            fetched = tmp_path / "mirrored"
            fetched.touch()
            mirror = HttpDownloader()
            try:
                assert mirror.download(dist, fetched) == file_sha256(sdist)
            finally:
                mirror.close()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert fetched.read_bytes() == sdist.read_bytes()
    assert _ForwardProxy.requested == [url]
