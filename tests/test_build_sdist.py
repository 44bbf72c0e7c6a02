"""sdist download: verified against the index's sha256 before anything uses it; atomic."""

from __future__ import annotations

import contextlib
import datetime
import functools
import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


def test_a_missing_local_sdist_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "gone-1.0.tar.gz"
    dist = DistFile(missing.name, missing.as_uri(), {"sha256": "0" * 64})
    with pytest.raises(IndexUnreachableError, match="does not serve"):
        SdistFetcher(tmp_path / "cache").fetch(dist, "0" * 64)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_an_unreachable_url_is_reported(tmp_path: Path) -> None:
    dist = DistFile("x-1.0.tar.gz", "http://127.0.0.1:9/x-1.0.tar.gz", {"sha256": "0" * 64})
    with pytest.raises(IndexUnreachableError, match="Cannot download"):
        SdistFetcher(tmp_path).fetch(dist, "0" * 64)


PROXY_SCRIPT = Path(__file__).parent / "build_fixtures" / "forward_proxy.py"
HOST = "sdists.invalid"  # resolvable through the proxy only


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for HOST and its key (the CA bundle the client trusts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "origin.pem", directory / "origin.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def _origin(root: Path, tls: tuple[Path, Path] | None) -> Iterator[int]:
    """A file server for ``root`` on 127.0.0.1 (TLS with ``tls``); its port."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, tls))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _proxy_process(origin_port: int, log: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The forward proxy as a process of its own; (the process, its port)."""
    process = subprocess.Popen(
        [sys.executable, str(PROXY_SCRIPT), str(origin_port), str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, int(process.stdout.readline())
    finally:
        process.kill()
        process.communicate(timeout=30)


@pytest.mark.parametrize("downloader", ["sdist", "complete-mode mirror"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_downloads_go_through_the_proxy_process_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloader: str, scheme: str
) -> None:
    """Behind a corporate proxy the only way out is HTTP_PROXY / HTTPS_PROXY, as for pip: every
    download honours it (the sdist client once ignored it). The proxy is a real process; the
    file's host resolves nowhere, so only a request through it can succeed."""
    sdist = make_sdist(tmp_path / "src")
    tls = _certificate(tmp_path) if scheme == "https" else None
    log = tmp_path / "proxy.log"
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    if tls is not None:
        monkeypatch.setenv("PREWHEEL_CA_BUNDLE", str(tls[0]))
    url = f"{scheme}://{HOST}/{sdist.name}"
    dist = DistFile(sdist.name, url, {"sha256": file_sha256(sdist)})
    with _origin(sdist.parent, tls) as origin, _proxy_process(origin, log) as (proxy, port):
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", f"http://127.0.0.1:{port}")
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
        assert proxy.poll() is None and proxy.pid != os.getpid()
    assert fetched.read_bytes() == sdist.read_bytes()
    expected = f"CONNECT {HOST}:443 HTTP/1.1" if scheme == "https" else f"GET {url} HTTP/1.1"
    assert log.read_text().splitlines() == [expected]
