"""Index client against a real HTTP server on 127.0.0.1: PEP 691/503, retries, faults, cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plan_fixtures.index_server import IndexServer, Route, file_entry, serve_index

from builder.errors import IndexMalformedError, IndexUnreachableError
from builder.upstream.cache import max_age
from builder.upstream.client import default_index_url, fetch_projects


@pytest.fixture
def index() -> Iterator[IndexServer]:
    with serve_index() as server:
        yield server


def fetch(index: IndexServer, tmp_path: Path, *names: str, **kwargs: object):  # type: ignore[no-untyped-def]
    kwargs.setdefault("backoff", 0.01)
    return fetch_projects(names, [index.url], cache_dir=tmp_path / "cache", **kwargs)[index.url]


def test_default_index_url_follows_pip_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/custom/simple")
    assert default_index_url() == "http://127.0.0.1:9/custom/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    import pypi_simple

    assert default_index_url() == pypi_simple.PYPI_SIMPLE_ENDPOINT


def test_json_page_is_read_with_urls_resolved(index: IndexServer, tmp_path: Path) -> None:
    index.project_json(
        "demo",
        [
            file_entry("demo-1.0.tar.gz", size=10, **{"requires-python": ">=3.9"}),
            file_entry("demo-1.0-py3-none-any.whl", yanked="broken", **{"core-metadata": True}),
        ],
    )
    page = fetch(index, tmp_path, "Demo")["demo"]
    assert page is not None
    sdist, wheel = page.files
    assert sdist.url == index.url.replace("/simple/", "/files/demo-1.0.tar.gz")
    assert sdist.requires_python == ">=3.9" and sdist.size == 10
    assert sdist.sha256 == "ab" * 32 and sdist.index_url == index.url
    assert wheel.yanked and wheel.yanked_reason == "broken" and wheel.core_metadata is True
    assert "application/vnd.pypi.simple.v1+json" in index.requests[0]["Accept"]


def test_html_page_is_read(index: IndexServer, tmp_path: Path) -> None:
    index.project_html(
        "demo",
        [
            '<a href="/files/demo-1.0.tar.gz#sha256=' + "cd" * 32 + '" '
            'data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a>',
            '<a href="/files/demo-0.9.tar.gz" data-yanked="">demo-0.9.tar.gz</a>',
        ],
    )
    page = fetch(index, tmp_path, "demo")["demo"]
    assert page is not None
    assert [f.filename for f in page.files] == ["demo-1.0.tar.gz", "demo-0.9.tar.gz"]
    assert page.files[0].sha256 == "cd" * 32
    assert page.files[0].requires_python == ">=3.8"
    assert page.files[0].url.endswith("/files/demo-1.0.tar.gz")
    assert page.files[1].yanked


def test_absent_project_is_none_not_an_error(index: IndexServer, tmp_path: Path) -> None:
    assert fetch(index, tmp_path, "nothing-here") == {"nothing-here": None}


def test_5xx_is_retried_then_succeeds(index: IndexServer, tmp_path: Path) -> None:
    index.project_json("demo", [file_entry("demo-1.0.tar.gz")])
    index.routes["/simple/demo/"].fail_first = 2
    page = fetch(index, tmp_path, "demo", attempts=3)["demo"]
    assert page is not None and index.hits["/simple/demo/"] == 3


def test_persistent_5xx_is_unreachable_never_no_wheel(index: IndexServer, tmp_path: Path) -> None:
    index.raw("demo", Route(502, b"bad gateway"))
    with pytest.raises(IndexUnreachableError, match=r"failed 3 times .*HTTP 502"):
        fetch(index, tmp_path, "demo", attempts=3)
    assert index.hits["/simple/demo/"] == 3


def test_unreachable_host(tmp_path: Path) -> None:
    with pytest.raises(IndexUnreachableError, match="ConnectError"):
        fetch_projects(
            ["demo"], ["http://127.0.0.1:9/simple/"], cache_dir=tmp_path, attempts=2, backoff=0.01
        )


def test_other_status_is_an_error(index: IndexServer, tmp_path: Path) -> None:
    index.raw("demo", Route(401, b"who are you"))
    with pytest.raises(IndexUnreachableError, match="HTTP 401"):
        fetch(index, tmp_path, "demo")


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/vnd.pypi.simple.v1+json", b"{not json", "cannot read"),
        ("application/vnd.pypi.simple.v1+json", b'{"files": "nope"}', "cannot read"),
        ("application/vnd.pypi.simple.v1+json", b'{"files": [{"url": "x"}]}', "cannot read"),
        ("application/vnd.pypi.simple.v2+json", b"{}", "content type"),
        ("image/png", b"\x89PNG", "content type"),
    ],
)
def test_malformed_pages(
    index: IndexServer, tmp_path: Path, content_type: str, body: bytes, message: str
) -> None:
    index.raw("demo", Route(200, body, {"Content-Type": content_type}))
    with pytest.raises(IndexMalformedError, match=message):
        fetch(index, tmp_path, "demo")


def test_cache_control_max_age_serves_from_disk(index: IndexServer, tmp_path: Path) -> None:
    index.project_json("demo", [file_entry("demo-1.0.tar.gz")], **{"Cache-Control": "max-age=600"})
    first = fetch(index, tmp_path, "demo")
    second = fetch(index, tmp_path, "demo")
    assert first == second and index.hits["/simple/demo/"] == 1


def test_etag_revalidation_after_expiry(index: IndexServer, tmp_path: Path) -> None:
    index.project_json(
        "demo", [file_entry("demo-1.0.tar.gz")], **{"Cache-Control": "max-age=0", "ETag": '"v1"'}
    )
    first = fetch(index, tmp_path, "demo")
    second = fetch(index, tmp_path, "demo")
    assert first == second
    assert index.hits["/simple/demo/"] == 2
    assert index.requests[1].get("If-None-Match") == '"v1"'


def test_no_store_is_not_cached_and_refresh_revalidates(index: IndexServer, tmp_path: Path) -> None:
    index.project_json(
        "nostore", [file_entry("nostore-1.0.tar.gz")], **{"Cache-Control": "no-store"}
    )
    index.project_json("kept", [file_entry("kept-1.0.tar.gz")])  # no Cache-Control: heuristic TTL
    fetch(index, tmp_path, "nostore", "kept")
    fetch(index, tmp_path, "nostore", "kept")
    assert index.hits["/simple/nostore/"] == 2
    assert index.hits["/simple/kept/"] == 1
    fetch(index, tmp_path, "kept", refresh=True)
    assert index.hits["/simple/kept/"] == 2


def test_many_projects_and_indexes(tmp_path: Path) -> None:
    with serve_index() as first, serve_index() as second:
        for n in range(20):
            first.project_json(f"p{n}", [file_entry(f"p{n}-1.0.tar.gz")])
        second.project_json("p3", [file_entry("p3-1.0-py3-none-any.whl")])
        result = fetch_projects(
            [f"p{n}" for n in range(20)], [first.url, second.url], cache_dir=tmp_path
        )
    assert all(result[first.url][f"p{n}"] is not None for n in range(20))
    assert [name for name, page in result[second.url].items() if page] == ["p3"]


def test_max_age_parsing() -> None:
    assert max_age("public, max-age=600") == 600
    assert max_age("max-age=600, no-cache") == 0
    assert max_age("max-age=bogus") == 0


def test_pins_restrict_pages_and_warm_runs_use_the_slice(
    index: IndexServer, tmp_path: Path
) -> None:
    from packaging.version import Version

    index.project_json(
        "demo",
        [file_entry(f"demo-{v}.tar.gz") for v in ("1.0", "1.1", "2.0")]
        + [file_entry("demo-1.1-py3-none-any.whl")],
    )
    pins = {"demo": [Version("1.1")]}
    first = fetch(index, tmp_path, "demo", pins=pins)["demo"]
    assert first is not None
    assert [f.filename for f in first.files] == ["demo-1.1.tar.gz", "demo-1.1-py3-none-any.whl"]
    second = fetch(index, tmp_path, "demo", pins=pins)["demo"]
    assert second == first and index.hits["/simple/demo/"] == 1
    everything = fetch(index, tmp_path, "demo")["demo"]
    assert everything is not None and len(everything.files) == 4
