"""``prewheel serve``'s pages for people (``/ui/``), rendered by a real headless Chromium.

The tree is the layout ``prewheel run`` writes (``OUT/index`` beside ``OUT/plan.json`` and
``OUT/wheelhouse``): a wheel prewheel built for arm/v7 (with its build log), an upstream
wheel for amd64 mirrored beside it, a pure wheel, and a plan in which fastlib is a gap on
arm64 and arm/v7. Screenshots are kept as test artefacts ($PREWHEEL_TEST_ARTIFACTS, default
``test-artifacts/`` in the repository); the text is asserted on the DOM Chromium built.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from index_fixtures import free_port, make_wheel, running
from packaging.utils import canonicalize_name

from builder.index import browse
from builder.index.static import Origin, StaticIndex
from builder.index.wheelinfo import inspect_wheel
from builder.plan import make_plan, plan_to_json
from builder.requirements import parse_pinned
from builder.targets import parse_identifier
from builder.upstream.models import DistFile, ProjectPage
from builder.wheelhouse import Wheelhouse

REPO = Path(__file__).resolve().parent.parent
UPSTREAM = "https://upstream.invalid/simple/"
AMD64 = parse_identifier("cp311-manylinux_2_36_x86_64")
ARM64 = parse_identifier("cp311-manylinux_2_36_aarch64")
ARMV7 = parse_identifier("cp311-manylinux_2_36_armv7l")
HOSTILE_MARKER = "platform_release == '<b>x</b>'"  # a valid marker that is also HTML


def artifacts() -> Path:
    path = Path(os.environ.get("PREWHEEL_TEST_ARTIFACTS", REPO / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dist(filename: str) -> DistFile:
    return DistFile(
        filename, f"{UPSTREAM}../files/{filename}", {"sha256": "00" * 32}, index_url=UPSTREAM
    )  # type: ignore[arg-type]


def _plan_document() -> dict[str, object]:
    requirements = [
        parse_pinned("pure==2.0", None),
        parse_pinned("fastlib==1.0", None),
        parse_pinned(f"oddity==3.0 ; {HOSTILE_MARKER}", None),
    ]
    pages = {
        canonicalize_name("fastlib"): ProjectPage(
            canonicalize_name("fastlib"),
            (
                _dist("fastlib-1.0.tar.gz"),
                _dist("fastlib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
            ),
            UPSTREAM,
        ),
        canonicalize_name("pure"): ProjectPage(
            canonicalize_name("pure"), (_dist("pure-2.0-py3-none-any.whl"),), UPSTREAM
        ),
        canonicalize_name("oddity"): ProjectPage(
            canonicalize_name("oddity"), (_dist("oddity-3.0-py3-none-any.whl"),), UPSTREAM
        ),
    }
    return plan_to_json(make_plan(requirements, [AMD64, ARM64, ARMV7], pages, {}))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """OUT as 'prewheel run' leaves it."""
    out = tmp_path / "out"
    house = Wheelhouse(out / "wheelhouse")
    built = make_wheel(tmp_path / "built", "fastlib", "1.0", tag="cp311-cp311-linux_armv7l")
    log_source = tmp_path / "build.log"
    log_source.write_text("[prewheel] compiling fastlib <for> arm/v7\nbuild finished\n")
    log = house.add_log("fastlib-1.0-cp311-manylinux_2_36_armv7l", log_source)
    house.add(
        built,
        name="fastlib",
        version="1.0",
        target=ARMV7.identifier,
        cache_key="k1",
        inputs={},
        builder="docker",
        log=log,
    )
    index = StaticIndex(out / "index")
    index.sync(house.wheels())
    now = datetime.datetime.now(datetime.UTC)
    for wheel in (
        make_wheel(tmp_path / "up", "fastlib", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64"),
        make_wheel(tmp_path / "up", "pure", "2.0"),
    ):
        index.add(wheel, inspect_wheel(wheel), upload_time=now, origin=Origin.UPSTREAM)
    (out / "plan.json").write_text(json.dumps(_plan_document()))
    return out


@pytest.fixture
def served(out: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "builder", "serve", str(out / "index"), "--port", str(port)]
    with running(argv, f"{url}/simple/", log=tmp_path / "serve.log"):
        yield url


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--window-size=1280,800", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def screenshot_and_dom(url: str, name: str) -> str:
    """Save a screenshot of ``url`` as artefact ``name``.png; return the DOM Chromium built."""
    shot = artifacts() / f"{name}.png"
    shot.unlink(missing_ok=True)
    taken = chromium(f"--screenshot={shot}", url)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


@pytest.mark.browser
def test_the_pages_render_in_chromium_with_the_tree_the_plan_and_the_build_logs(
    served: str,
) -> None:
    blank = artifacts() / "blank.png"
    chromium(f"--screenshot={blank}", "about:blank")

    projects = screenshot_and_dom(f"{served}/", "ui-projects")  # / leads to /ui/
    assert "<h1>Projects</h1>" in projects
    assert "2 projects, 3 files" in projects
    assert "latest plan: 2 of 6 cells compile from source" in projects
    assert projects.index('href="/ui/project/fastlib/"') < projects.index("/ui/project/pure/")

    project = screenshot_and_dom(f"{served}/ui/project/fastlib/", "ui-project-fastlib")
    matrix = project.split("<h2>Files</h2>")[0]
    cells = matrix.split("<th>1.0</th>")[1]
    # amd64: the mirrored upstream wheel; arm64: nothing; arm/v7: prewheel's build
    assert cells.index("mirrored upstream") < cells.index("no file") < cells.index("built by")
    assert 'href="/ui/logs/fastlib-1.0-cp311-cp311-linux_armv7l.whl"' in project
    assert 'href="/files/fastlib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"' in project

    plan = screenshot_and_dom(f"{served}/ui/plan/", "ui-plan")
    assert "1 of 2 gaps are filled by this index" in plan
    rows = plan.split("Requirements (gaps first)")[1]
    assert rows.index("fastlib==1.0") < rows.index("oddity==3.0") < rows.index("pure==2.0")
    assert "on this index" in rows.split("fastlib==1.0")[1].split("</tr>")[0]
    # the marker is text, never markup
    assert "&lt;b&gt;x&lt;/b&gt;" in plan and "<b>x</b>" not in plan

    # The rendered pages are pictures of real content, not blank pages.
    for name in ("ui-projects", "ui-project-fastlib", "ui-plan"):
        assert (artifacts() / f"{name}.png").stat().st_size > 3 * blank.stat().st_size


def test_logs_are_served_only_from_the_wheelhouse_and_unknowns_are_404(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        root = client.get("/")
        assert root.status_code == 302 and root.headers["location"] == "/ui/"
        log = client.get("/ui/logs/fastlib-1.0-cp311-cp311-linux_armv7l.whl")
        assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
        assert "compiling fastlib <for> arm/v7" in log.text
        for path in (
            "/ui/logs/..%2F..%2Fplan.json",
            "/ui/logs/pure-2.0-py3-none-any.whl",  # mirrored: no build log
            "/ui/project/nothing-here/",
        ):
            assert client.get(path).status_code == 404, path
        assert client.get("/ui/project/FastLib/").headers["location"] == "/ui/project/fastlib/"
        assert client.get("/simple/fastlib/").status_code == 200  # installers unaffected


def test_without_a_plan_the_plan_page_says_how_to_get_one(out: Path) -> None:
    (out / "plan.json").unlink()
    sources = browse.BrowseSources.beside(out / "index", None, None)
    assert sources.plan is None and sources.wheelhouse == (out / "wheelhouse").resolve()
    assert "--plan" in browse.render_no_plan()
