"""``prewheel plan`` / ``prewheel targets`` end to end against a real local index server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from index_fixtures import make_wheel
from plan_fixtures.index_server import IndexServer, Route, file_entry, serve_index

from builder.cli import main
from builder.errors import ExitCode
from builder.index.static import StaticIndex


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.prewheel] around
    monkeypatch.setenv("PREWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    with serve_index() as server:
        server.project_json(
            "fast",
            [
                file_entry("fast-1.0.tar.gz"),
                file_entry("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
                file_entry("fast-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"),
            ],
        )
        server.project_json("pure", [file_entry("pure-2.0-py3-none-any.whl")])
        yield server


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def plan(index: IndexServer, *args: str) -> int:
    return main(["plan", "--index-url", index.url, *args])


def requirements(tmp_path: Path, text: str = "fast==1.0\npure==2.0\n") -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def test_table_and_summary(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan(index, str(requirements(tmp_path))) == ExitCode.OK
    out = capsys.readouterr().out
    assert "fast==1.0" in out and "pure==2.0" in out
    assert "2 of 8 cells compile from source" in out
    assert "build" in out and "wheel" in out and "pure" in out


def test_json_html_and_check(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "plan.html"
    code = plan(index, str(requirements(tmp_path)), "--json", "--html", str(page), "--check")
    assert code == ExitCode.WOULD_COMPILE
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["targets"] == [
        "cp311-manylinux_2_36_x86_64",
        "cp311-manylinux_2_36_aarch64",
        "cp311-manylinux_2_36_armv7l",
        "cp311-glibc_2_36_armv6l",
    ]
    fast = data["requirements"][0]
    assert (fast["name"], fast["version"]) == ("fast", "1.0")
    assert fast["cells"]["cp311-manylinux_2_36_armv7l"] | {"url": None, "index_url": None} == {
        "status": "build",
        "filename": "fast-1.0.tar.gz",
        "sha256": "ab" * 32,
        "hashes": {"sha256": "ab" * 32},
        "url": None,
        "index_url": None,
        "requires_python": None,
        "yanked": False,
        "reason": "no wheel fits this target",
    }
    assert fast["cells"]["cp311-manylinux_2_36_x86_64"]["status"] == "wheel"
    assert "fast==1.0 on cp311-manylinux_2_36_armv7l (build)" in flat(captured.err)
    html = page.read_text()
    assert (
        html.startswith("<!DOCTYPE html>")
        and "<script" not in html
        and "http" not in html.split("<table>")[0]
    )
    assert html.count('<tr class="runtime">') == 2 and "fast-1.0.tar.gz" in html


def test_check_passes_when_nothing_compiles(index: IndexServer, tmp_path: Path) -> None:
    path = requirements(tmp_path, "pure==2.0\n")
    assert plan(index, str(path), "--check", "--platform", "linux/arm/v7") == ExitCode.OK


def test_ours_index(index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_index() as ours:
        ours.project_json("fast", [file_entry("fast-1.0-cp311-cp311-linux_armv7l.whl")])
        code = plan(
            index,
            str(requirements(tmp_path)),
            "--our-index-url",
            ours.url,
            "--platform",
            "linux/arm/v7",
            "--json",
            "--check",
        )
    assert code == ExitCode.OK
    cell = json.loads(capsys.readouterr().out)["requirements"][0]["cells"]
    assert cell["cp311-manylinux_2_36_armv7l"]["status"] == "ours"


@pytest.mark.parametrize(
    ("text", "args", "code", "message"),
    [
        ("fast==1.0\nfast is bad\n", (), ExitCode.REQUIREMENTS, "requirements.txt:2"),
        ("fast>=1.0\n", (), ExitCode.REQUIREMENTS, "pip-compile"),
        ("-r requirements.txt\n", (), ExitCode.REQUIREMENTS, "Include cycle"),
        ("fast==1.0\n", ("--platform", "linux/mips"), ExitCode.USAGE, "linux/riscv64"),
        ("fast==1.0\n", ("--python", "3.2"), ExitCode.USAGE, "3.14"),
        ("ghost==1.0\n", (), ExitCode.NOT_ON_INDEX, "project ghost"),
        ("fast==9.0\n", (), ExitCode.NOT_ON_INDEX, "fast==9.0"),
        ("broken==1.0\n", (), ExitCode.INDEX_MALFORMED, "cannot read"),
        ("down==1.0\n", (), ExitCode.INDEX_UNREACHABLE, "HTTP 503"),
    ],
)
def test_bad_input_exit_codes_and_nothing_written(
    index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    args: tuple[str, ...],
    code: ExitCode,
    message: str,
) -> None:
    index.raw("broken", Route(200, b"<<<garbage", {"Content-Type": JSON_TYPE}))
    index.raw("down", Route(503, b"down"))
    page = tmp_path / "plan.html"
    assert plan(index, str(requirements(tmp_path, text)), "--html", str(page), *args) == code
    captured = capsys.readouterr()
    assert message in flat(captured.err)
    assert captured.out == ""
    assert not page.exists()


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def test_unreachable_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = requirements(tmp_path)
    code = main(
        [
            "plan",
            "--index-url",
            "http://127.0.0.1:9/simple/",
            "--cache-dir",
            str(tmp_path / "c"),
            str(path),
        ]
    )
    assert code == ExitCode.INDEX_UNREACHABLE
    assert "never reports an unreachable index as 'no wheel'" in flat(capsys.readouterr().err)


def test_targets_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["targets", "--platform", "linux/arm64,linux/arm/v6", "--python", "3.12", "--json"])
        == ExitCode.OK
    )
    data = json.loads(capsys.readouterr().out)
    assert [t["identifier"] for t in data] == [
        "cp312-manylinux_2_36_aarch64",
        "cp312-glibc_2_36_armv6l",
    ]
    assert data[1]["tags"][0] == "cp312-cp312-linux_armv6l"
    assert main(["targets", "--target", "cp311-musllinux_1_2_aarch64"]) == ExitCode.OK
    assert "cp311-musllinux_1_2_aarch64" in capsys.readouterr().out


@pytest.mark.network
def test_example_in_plans_out_of_the_box(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import REPO

    monkeypatch.setenv("PREWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["plan", str(REPO / "requirements" / "example.in"), "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["requirements"]}
    assert {"asyncpg", "pyyaml", "msgpack", "requests"} <= rows.keys()
    asyncpg = rows["asyncpg"]["cells"]
    assert asyncpg["cp311-manylinux_2_36_x86_64"]["status"] == "wheel"
    assert asyncpg["cp311-glibc_2_36_armv6l"]["status"] == "build"
    assert rows["requests"]["cells"]["cp311-glibc_2_36_armv6l"]["status"] == "pure"
    # pip-compile's output stays in the configured cache, one stable file per input, so a
    # rerun keeps its pins (pip-compile prefers an existing output's versions).
    [compiled] = (tmp_path / "cache" / "compiled").glob("*/example.txt")
    assert "asyncpg==" in compiled.read_text()


def test_a_piped_table_is_never_truncated(
    index: IndexServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI logs are not terminals: the table keeps every cell whole, however wide it gets."""
    long_name = "a-rather-long-project-name-as-private-packages-often-have"
    index.project_json(long_name, [file_entry(f"{long_name}-1.0.tar.gz")])
    text = f"fast==1.0\npure==2.0\n{long_name}==1.0\n"
    assert plan(index, str(requirements(tmp_path, text))) == ExitCode.OK
    out = capsys.readouterr().out
    assert "…" not in out
    assert f"{long_name}==1.0" in out
    for label in ("amd64", "arm64", "arm/v7", "arm/v6"):
        assert label in out
    # the long one everywhere, fast on the 32-bit ARMs, and the legend
    assert out.count("✘ build") == 4 + 2 + 1


def test_a_file_url_index_is_read_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pip accepts --index-url file:///…/simple/ (a tree `prewheel index` wrote, on disk or a
    mounted share); so does the plan, offline, and a project it lacks is simply absent."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREWHEEL_CACHE_DIR", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path / "wheels", "ondisk", "1.0")
    StaticIndex(tmp_path / "tree").sync([wheel])
    index_url = (tmp_path / "tree" / "simple").as_uri() + "/"
    text = "ondisk==1.0\n"
    assert (
        main(["plan", "--index-url", index_url, "--json", str(requirements(tmp_path, text))]) == 0
    )
    [row] = json.loads(capsys.readouterr().out)["requirements"]
    cells = row["cells"].values()
    assert {cell["status"] for cell in cells} == {"pure"}
    assert all(cell["url"].startswith("file://") for cell in cells)
    downloaded = {Path(unquote(urlsplit(cell["url"]).path)).read_bytes() for cell in cells}
    assert downloaded == {wheel.read_bytes()}
    missing = main(["plan", "--index-url", index_url, str(requirements(tmp_path, "absent==1.0\n"))])
    assert missing == ExitCode.NOT_ON_INDEX
    wheel_two = make_wheel(tmp_path / "wheels", "ondisk", "2.0")
    StaticIndex(tmp_path / "tree").sync([wheel_two])  # seen at once: a local page is not cached
    assert (
        main(["plan", "--index-url", index_url, str(requirements(tmp_path, "ondisk==2.0\n"))]) == 0
    )


def test_a_token_from_the_environment_reaches_the_index_but_no_output_or_cache(
    index: IndexServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pip's ``${VAR}`` expansion: the login is taken from the environment, sent to the index
    as basic auth, and written nowhere (plan JSON, HTML, the HTTP cache)."""
    import base64

    token = "s3cret-t0ken"
    index.login = ("alice", token)
    monkeypatch.setenv("INDEX_USER", "alice")
    monkeypatch.setenv("INDEX_TOKEN", token)
    host = index.url.split("//", 1)[1]
    text = f"--index-url http://${{INDEX_USER}}:${{INDEX_TOKEN}}@{host}\nfast==1.0\n"
    html = tmp_path / "plan.html"
    assert main(["plan", str(requirements(tmp_path, text)), "--json", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["requirements"][0]["cells"]["cp311-manylinux_2_36_x86_64"]["status"]
    sent = {r.get("Authorization") for r in index.requests}
    assert sent == {"Basic " + base64.b64encode(f"alice:{token}".encode()).decode()}
    assert token not in out and token not in html.read_text()
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_variables_are_expanded_as_pip_expands_them() -> None:
    from builder.requirements import expand_variables

    environ = {"TOKEN": "t", "lower": "x"}
    assert expand_variables("https://u:${TOKEN}@h/ ${MISSING} ${lower} $TOKEN", environ) == (
        "https://u:t@h/ ${MISSING} ${lower} $TOKEN"
    )


def test_an_expanded_token_never_shows_in_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INDEX_TOKEN", "s3cret-t0ken")
    text = "--index-url https://u:${INDEX_TOKEN}@h.invalid/simple/ --bogus-option\nfast==1.0\n"
    assert main(["plan", str(requirements(tmp_path, text))]) == ExitCode.REQUIREMENTS
    err = capsys.readouterr().err
    assert "s3cret-t0ken" not in err and "u:****@h.invalid" in " ".join(err.split())
