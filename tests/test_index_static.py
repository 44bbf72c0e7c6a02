"""The static tree (builder.index.static): pages, incremental atomic regeneration, installs."""

from __future__ import annotations

import datetime
import hashlib
import html.parser
import json
import sys
import threading
from pathlib import Path

import pytest
from index_fixtures import (
    installed_version,
    isolated_env,
    make_wheel,
    pip_install,
    serving_directory,
    uv_install,
)
from packaging.utils import canonicalize_name

from builder.cli import main
from builder.errors import IntegrityError, PublishConflictError
from builder.index.static import (
    FileRecord,
    StaticIndex,
    render_project_html,
    render_project_json,
)
from builder.index.wheelinfo import inspect_wheel


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def _record(**overrides: object) -> FileRecord:
    values: dict[str, object] = {
        "filename": "foo-1.0-py3-none-any.whl",
        "project": canonicalize_name("foo"),
        "version": "1.0",
        "sha256": "ab" * 32,
        "size": 123,
        "upload_time": "2026-01-02T03:04:05.000000Z",
        "metadata_sha256": "cd" * 32,
        "requires_python": ">=3.8,<4",
    }
    values.update(overrides)
    return FileRecord(**values)  # type: ignore[arg-type]


def test_html_page_has_hash_fragment_escaped_requires_python_and_metadata_hash() -> None:
    page = render_project_html(canonicalize_name("foo"), [_record()]).decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in page
    parser = _Links()
    parser.feed(page)
    (anchor,) = parser.anchors
    assert anchor["href"] == "../../files/foo-1.0-py3-none-any.whl#sha256=" + "ab" * 32
    assert anchor["data-requires-python"] == ">=3.8,<4"
    assert anchor["data-core-metadata"] == "sha256=" + "cd" * 32
    assert anchor["data-dist-info-metadata"] == "sha256=" + "cd" * 32


def test_json_page_has_pep_691_and_700_fields_sorted_by_version() -> None:
    records = [_record(filename="foo-10.0-py3-none-any.whl", version="10.0"), _record()]
    document = json.loads(render_project_json(canonicalize_name("foo"), records))
    assert document["meta"] == {"api-version": "1.1"}
    assert document["name"] == "foo"
    assert document["versions"] == ["1.0", "10.0"]
    first = document["files"][0]
    assert first["filename"] == "foo-1.0-py3-none-any.whl"
    assert first["hashes"] == {"sha256": "ab" * 32}
    assert first["core-metadata"] == {"sha256": "cd" * 32}
    assert first["size"] == 123
    assert first["upload-time"] == "2026-01-02T03:04:05.000000Z"
    assert first["requires-python"] == ">=3.8,<4"
    assert first["url"] == "../../files/foo-1.0-py3-none-any.whl"


def test_sync_writes_normalized_tree_and_is_incremental(tmp_path: Path) -> None:
    wheels = tmp_path / "wh" / "wheels"
    a = make_wheel(wheels, "Foo_Bar", "1.0", tag="cp311-cp311-linux_armv7l")
    index = StaticIndex(tmp_path / "index")
    report = index.sync([a])
    assert report.added == (a.name,)
    root = tmp_path / "index"
    assert (root / "files" / a.name).read_bytes() == a.read_bytes()
    assert (root / "files" / f"{a.name}.metadata").read_bytes() == inspect_wheel(a).metadata
    assert json.loads((root / "simple" / "index.json").read_text())["projects"] == [
        {"name": "foo-bar"}
    ]
    page = root / "simple" / "foo-bar" / "index.html"
    before = page.stat().st_mtime_ns
    # second run: nothing new, nothing rewritten
    again = index.sync([a])
    assert again.added == () and again.unchanged == (a.name,)
    assert page.stat().st_mtime_ns == before
    # a new project leaves the old project's page alone
    b = make_wheel(wheels, "other", "2.0")
    index.sync([a, b])
    assert page.stat().st_mtime_ns == before
    assert (root / "simple" / "other" / "index.json").is_file()
    assert not list(root.rglob(".tmp-*"))


def test_sync_refuses_changed_bytes_under_a_listed_name(tmp_path: Path) -> None:
    first = make_wheel(tmp_path / "one", "foo", "1.0")
    index = StaticIndex(tmp_path / "index")
    index.sync([first])
    original = (tmp_path / "index" / "files" / first.name).read_bytes()
    changed = make_wheel(tmp_path / "two", "foo", "1.0", extra_members={"foo/x.py": b"1"})
    with pytest.raises(PublishConflictError, match="already listed"):
        index.sync([changed])
    assert (tmp_path / "index" / "files" / first.name).read_bytes() == original


def test_a_bad_wheel_stops_the_whole_batch_and_every_bad_one_is_named(tmp_path: Path) -> None:
    """Fault 6: good wheels sorting before a bad one were listed, only the first bad named."""
    good = make_wheel(tmp_path / "wh", "aaa-good", "1.0")
    bad = make_wheel(tmp_path / "wh", "mmm-bad", "1.0", metadata_name="other")
    also_good = make_wheel(tmp_path / "wh", "nnn-good", "1.0")
    worse = make_wheel(tmp_path / "wh", "zzz-bad", "1.0", metadata_name="another")
    index = StaticIndex(tmp_path / "index")
    with pytest.raises(IntegrityError, match="2 of 4 wheels") as raised:
        index.sync([good, bad, also_good, worse])
    assert "METADATA says other" in str(raised.value)
    assert "METADATA says another" in str(raised.value)
    assert index.catalog() == {}
    assert not (tmp_path / "index" / "files").exists() or not any(
        (tmp_path / "index" / "files").iterdir()
    )
    assert not (tmp_path / "index" / "simple" / "aaa-good").exists()


def test_concurrent_writers_keep_every_file(tmp_path: Path) -> None:
    wheels = [make_wheel(tmp_path / "wh", f"proj{i}", "1.0") for i in range(8)]
    root = tmp_path / "index"

    def add(path: Path) -> None:
        StaticIndex(root).add(
            path, inspect_wheel(path), upload_time=datetime.datetime.now(datetime.UTC)
        )

    threads = [threading.Thread(target=add, args=(w,)) for w in wheels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listed = json.loads((root / "simple" / "index.json").read_text())["projects"]
    assert sorted(p["name"] for p in listed) == [f"proj{i}" for i in range(8)]
    assert set(StaticIndex(root).catalog()) == {w.name for w in wheels}


def test_cli_index_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_wheel(tmp_path / "wh" / "wheels", "foo", "1.0")
    assert main(["index", str(tmp_path / "wh"), "-o", str(tmp_path / "out")]) == 0
    assert "1 added" in capsys.readouterr().out
    assert (tmp_path / "out" / "simple" / "foo" / "index.html").is_file()
    assert main(["index", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    complete_without_plan = [
        "index",
        str(tmp_path / "wh"),
        "-o",
        str(tmp_path / "c"),
        "--mode",
        "complete",
    ]
    assert main(complete_without_plan) == 2
    assert "--plan" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.fixture
def static_tree(tmp_path: Path) -> Path:
    wheels = tmp_path / "wh" / "wheels"
    make_wheel(wheels, "demo-pkg", "1.0", requires=["demo-dep>=2"])
    make_wheel(wheels, "demo-pkg", "1.1", requires_python=">=3.99")  # skipped by both tools
    make_wheel(wheels, "demo_dep", "2.0")
    make_wheel(wheels, "demo-plat", "0.1", tag="cp311-cp311-linux_armv7l")
    root = tmp_path / "index"
    StaticIndex(root).sync(sorted(wheels.glob("*.whl")))
    return root


@pytest.fixture
def static_url(static_tree: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with serving_directory(static_tree, path="simple/", log=tmp_path / "http.log") as url:
        yield url


def test_pip_installs_from_static_tree_over_http(static_url: str, tmp_path: Path) -> None:
    result = pip_install(static_url, tmp_path / "t", "demo-pkg")
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "demo_pkg") == "1.0"  # 1.1 needs Python 3.99
    assert installed_version(tmp_path / "t", "demo_dep") == "2.0"


def test_uv_installs_from_static_tree_over_http(static_url: str, tmp_path: Path) -> None:
    result = uv_install(static_url, tmp_path / "t", "demo-pkg")
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "t", "demo_pkg") == "1.0"
    assert installed_version(tmp_path / "t", "demo_dep") == "2.0"


def test_pip_downloads_foreign_platform_wheel(static_url: str, tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--index-url",
        static_url,
        "--only-binary",
        ":all:",
        "--platform",
        "linux_armv7l",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "-d",
        str(tmp_path / "d"),
        "demo-plat",
    ]
    import subprocess

    result = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=120, env=isolated_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "d").iterdir()] == [
        "demo_plat-0.1-cp311-cp311-linux_armv7l.whl"
    ]


def test_pip_checks_the_metadata_hash_we_serve(
    static_tree: Path, static_url: str, tmp_path: Path
) -> None:
    """PEP 658: pip fetches <file>.metadata and verifies the hash the page declares."""
    metadata = static_tree / "files" / "demo_dep-2.0-py3-none-any.whl.metadata"
    declared = hashlib.sha256(metadata.read_bytes()).hexdigest()
    metadata.write_bytes(metadata.read_bytes() + b"\n")  # same content, different hash
    served = hashlib.sha256(metadata.read_bytes()).hexdigest()
    result = pip_install(static_url, tmp_path / "t", "demo-dep")
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr
    assert f"Expected sha256 {declared}" in result.stderr
    assert f"Got        {served}" in result.stderr
    assert not (tmp_path / "t" / "demo_dep").exists()
