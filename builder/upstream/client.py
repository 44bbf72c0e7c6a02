"""Fetch project pages from simple-repository indexes (PEP 691 JSON, PEP 503 HTML).

* :func:`default_index_url` - the index pip would use: pip's ``index-url`` setting, else
  :data:`pypi_simple.PYPI_SIMPLE_ENDPOINT`.
* :func:`make_http_client` - an :class:`httpx.Client` that trusts the host's CA bundle and
  honours the proxy variables.
* :func:`fetch_projects` - many projects from many indexes, concurrently, through an on-disk
  HTTP cache (:class:`~builder.upstream.cache.HttpCache`), with retries and backoff on
  connection errors and 5xx/429 answers (honouring ``Retry-After``), all within an overall
  deadline per page (:mod:`builder.fetch`). A 404 means "not on this index" (``None``);
  anything else that fails is an error (every httpx error mapped to a documented exit code),
  never "no wheel".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import IndexMalformedError, IndexUnreachableError
from ..fetch import RetryPolicy, get, make_client, without_credentials
from ..hostenv import pip_setting, user_cache
from .cache import CachedResponse, HttpCache
from .models import DistFile, ProjectPage, dist_file_from_dict, dist_file_to_dict

if TYPE_CHECKING:
    from pypi_simple import DistributionPackage

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
)
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "text/html")
DEFAULT_TIMEOUT = 30.0
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_CONCURRENCY = 16
DEFAULT_DEADLINE = 120.0  # seconds for one page, all attempts and backoff included
# Freshness of a page whose answer has no Cache-Control (TLS-inspecting proxies often strip
# it): PyPI itself serves simple pages with max-age=600.
DEFAULT_TTL = 600.0

ProjectPages = dict[str, dict[NormalizedName, ProjectPage | None]]


def default_index_url() -> str:
    """The simple index pip would use on this host, always ending in ``/``."""
    # pypi_simple imports pydantic and bs4 with its package: 0.46 s of the CLI's start-up,
    # measured with -X importtime, so it is imported where it is used, not with the module
    import pypi_simple  # noqa: PLC0415

    return normalize_index_url(pip_setting("index-url") or pypi_simple.PYPI_SIMPLE_ENDPOINT)


def normalize_index_url(url: str) -> str:
    """``url`` ending in ``/``, without credentials (remembered for its host: see
    :func:`builder.fetch.without_credentials`), so no page, plan or cache key carries them."""
    return without_credentials(url).rstrip("/") + "/"


def default_cache_dir() -> Path:
    return user_cache("http")


def make_http_client(
    *, timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY
) -> httpx.Client:
    """The client for index pages: :func:`builder.fetch.make_client` sized for ``concurrency``
    parallel requests. Retries and backoff live in :func:`fetch_projects`."""
    return make_client(timeout=timeout, concurrency=concurrency)


def project_url(index_url: str, name: str) -> str:
    return f"{normalize_index_url(index_url)}{canonicalize_name(name)}/"


def fetch_projects(
    names: Iterable[str],
    index_urls: Sequence[str],
    *,
    cache_dir: Path | None = None,
    client: httpx.Client | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
    use_cache: bool = True,
    refresh: bool = False,
    default_ttl: float = DEFAULT_TTL,
    pins: Mapping[str, Iterable[Version]] | None = None,
    deadline: float = DEFAULT_DEADLINE,
) -> ProjectPages:
    """``{index_url: {name: ProjectPage or None (404: not on that index)}}`` for every pair.

    Requests run concurrently (``concurrency`` threads sharing one client). Responses are
    cached under ``cache_dir`` (default: the platformdirs user cache) and revalidated with
    ETag / Last-Modified once their Cache-Control max-age (or ``default_ttl`` when the answer
    has no Cache-Control) has passed; ``refresh`` revalidates every entry. With ``pins``
    (name -> versions) each page lists only the files of those versions, and that slice is
    cached too, so a warm run reads a few kilobytes instead of re-parsing whole pages. Each
    page, retries included, must arrive within ``deadline`` seconds. Raises
    :class:`IndexUnreachableError` or :class:`IndexMalformedError` (or :class:`UsageError` for
    a URL httpx cannot fetch).
    """
    wanted = list(dict.fromkeys(canonicalize_name(name) for name in names))
    indexes = list(dict.fromkeys(normalize_index_url(url) for url in index_urls))
    cache = HttpCache(cache_dir or default_cache_dir()) if use_cache else None
    wanted_versions = {
        canonicalize_name(name): sorted(set(versions)) for name, versions in (pins or {}).items()
    }
    result: ProjectPages = {index: {} for index in indexes}
    misses: list[tuple[str, NormalizedName]] = []
    for index in indexes:
        for name in wanted:
            hit, page = (
                _from_cache(cache, index, name, wanted_versions.get(name))
                if cache and not refresh
                else (False, None)
            )
            if hit:
                result[index][name] = page
            else:
                misses.append((index, name))
    if not misses:
        return result
    own_client = client is None
    http = client or make_http_client(concurrency=concurrency)
    fetcher = _Fetcher(
        http,
        cache,
        attempts=attempts,
        backoff=backoff,
        refresh=refresh,
        default_ttl=default_ttl,
        pins=wanted_versions,
        deadline=deadline,
    )
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(misses)))) as pool:
            pages = list(pool.map(lambda job: fetcher.project(*job), misses))
    finally:
        if own_client:
            http.close()
    for (index, name), page in zip(misses, pages, strict=True):
        result[index][name] = page
    return {index: {name: pages_[name] for name in wanted} for index, pages_ in result.items()}


def _from_cache(
    cache: HttpCache, index: str, name: NormalizedName, versions: list[Version] | None
) -> tuple[bool, ProjectPage | None]:
    """(hit, page) from a fresh cache entry, via its version slice when there is one."""
    url = project_url(index, name)
    loaded = cache.load_meta(url)
    if loaded is None or not loaded[0].is_fresh():
        return False, None
    meta = loaded[0]
    if meta.status != 200:
        return True, None
    if versions is not None:
        files = cache.load_slice(url, _slice_key(versions), meta.stored_at)
        if isinstance(files, list):
            try:
                return True, ProjectPage(name, tuple(dist_file_from_dict(f) for f in files), index)
            except TypeError:
                pass  # an older slice layout: rebuild it
    full = cache.load(url)
    if full is None:
        return False, None
    return True, _page_or_none(name, full, index, cache, versions)


def _slice_key(versions: list[Version]) -> str:
    return "versions:" + ",".join(str(v) for v in versions)


def _page_or_none(
    name: NormalizedName,
    response: CachedResponse,
    index_url: str,
    cache: HttpCache | None = None,
    versions: list[Version] | None = None,
) -> ProjectPage | None:
    if response.status != 200:
        return None
    page = parse_project_page(name, response, index_url)
    if versions is None:
        return page
    page = page.restricted_to(versions)
    if cache is not None:
        cache.store_slice(
            response.url,
            _slice_key(versions),
            response.stored_at,
            [dist_file_to_dict(f) for f in page.files],
        )
    return page


class _Fetcher:
    def __init__(
        self,
        client: httpx.Client,
        cache: HttpCache | None,
        *,
        attempts: int,
        backoff: float,
        refresh: bool = False,
        default_ttl: float = DEFAULT_TTL,
        pins: Mapping[NormalizedName, list[Version]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.deadline = deadline
        self.pins = pins or {}
        self.refresh = refresh
        self.default_ttl = default_ttl
        self.client = client
        self.cache = cache
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    def project(self, index_url: str, name: NormalizedName) -> ProjectPage | None:
        response = self.get(project_url(index_url, name))
        return _page_or_none(name, response, index_url, self.cache, self.pins.get(name))

    def get(self, url: str) -> CachedResponse:
        """The (possibly cached) answer for ``url``: status 200, or 404 for absent/410."""
        cached = self.cache.load(url) if self.cache else None
        if cached is not None and not self.refresh and cached.is_fresh():
            return cached
        headers = {"Accept": ACCEPT, **(cached.validators() if cached else {})}
        response = self._request(url, headers)
        if response.status_code in (404, 410):
            absent = CachedResponse(
                url, b"", "", stored_at=time.time(), max_age=self.default_ttl, status=404
            )
            if self.cache:
                self.cache.store(absent)
            return absent
        if response.status_code == 304 and cached is not None:
            refreshed = cached.revalidated(response.headers, self.default_ttl)
            if self.cache:
                self.cache.store(refreshed)
            return refreshed
        if response.status_code != 200:
            raise IndexUnreachableError(
                f"{url} answered HTTP {response.status_code}. Check the index URL "
                "(--index-url / --extra-index-url) and your credentials."
            )
        fresh = CachedResponse.from_response(url, response, self.default_ttl)
        if self.cache:
            self.cache.store(fresh)
        return fresh

    def _request(self, url: str, headers: Mapping[str, str]) -> httpx.Response:
        policy = RetryPolicy(self.attempts, self.backoff, self.deadline, self.sleep)
        return get(
            self.client,
            url,
            headers=headers,
            policy=policy,
            hint=" prewheel never reports an unreachable index as 'no wheel'.",
        )


def parse_project_page(
    name: NormalizedName, response: CachedResponse, index_url: str
) -> ProjectPage:
    """A PEP 691 JSON or PEP 503 HTML project page as a :class:`ProjectPage`.

    JSON is read directly (a page of thousands of files parses several times faster than via
    pypi_simple's model); HTML goes through :mod:`pypi_simple`'s PEP 503 parser.
    """
    content_type = response.content_type
    try:
        if content_type == JSON_TYPE:
            files = _files_from_json(json.loads(response.body), response.url, index_url)
        elif content_type in HTML_TYPES:
            import pypi_simple  # noqa: PLC0415 - see default_index_url

            page = pypi_simple.ProjectPage.from_html(name, response.body, base_url=response.url)
            files = tuple(_dist_file(package, index_url) for package in page.packages)
        else:
            raise IndexMalformedError(
                f"{response.url} answered with content type {content_type or 'none'!r}, which is "
                "neither PEP 691 JSON nor PEP 503 HTML. Is this URL a simple index root?"
            )
    except IndexMalformedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of a third-party page
        raise IndexMalformedError(
            f"{response.url} sent a project page prewheel cannot read "
            f"({type(exc).__name__}: {exc}). The index is misbehaving or this is not a "
            "simple-repository URL; check --index-url / --extra-index-url."
        ) from None
    return ProjectPage(name=name, files=files, index_url=index_url)


def _files_from_json(data: Any, page_url: str, index_url: str) -> tuple[DistFile, ...]:
    """PEP 691 ``files``; a wrong shape raises TypeError/KeyError/ValueError."""
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise TypeError("no 'files' list in the JSON object")
    major = str(data.get("meta", {}).get("api-version", "1.0")).split(".")[0]
    if major != "1":
        raise ValueError(f"unsupported simple API version {major}")
    return tuple(_json_file(entry, page_url, index_url) for entry in data["files"])


def _json_file(entry: dict[str, Any], page_url: str, index_url: str) -> DistFile:
    filename, url, hashes = entry["filename"], entry["url"], entry["hashes"]
    if not (isinstance(filename, str) and isinstance(url, str) and isinstance(hashes, dict)):
        raise TypeError(f"malformed file entry {entry!r:.200}")
    yanked = entry.get("yanked", False)
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))
    return DistFile(
        filename=filename,
        url=url if url.startswith(("https://", "http://")) else urljoin(page_url, url),
        hashes=hashes,
        requires_python=entry.get("requires-python"),
        yanked=bool(yanked),
        yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
        size=entry.get("size"),
        core_metadata=metadata if isinstance(metadata, dict) else bool(metadata),
        index_url=index_url,
    )


def _dist_file(package: DistributionPackage, index_url: str) -> DistFile:
    metadata: Mapping[str, str] | bool = (
        dict(package.metadata_digests) if package.metadata_digests else bool(package.has_metadata)
    )
    return DistFile(
        filename=package.filename,
        url=package.url,
        hashes=dict(package.digests),
        requires_python=package.requires_python,
        yanked=package.is_yanked,
        yanked_reason=package.yanked_reason,
        size=package.size,
        core_metadata=metadata,
        index_url=index_url,
    )
