"""``prewheel serve``: PEP 691 negotiation, installs, and validated, authenticated uploads."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import statistics
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from index_fixtures import (
    VENV_BIN,
    installed_version,
    isolated_env,
    make_wheel,
    pip_install,
    serving_prewheel,
    uv_install,
    write_htpasswd,
)

from builder.index.server import negotiate
from builder.index.static import HTML_CONTENT_TYPE, JSON_CONTENT_TYPE, StaticIndex

USER = "alice"
SECRET = "s3cr3t-Pa55word-never-logged"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
    "q=0.1, text/html; q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        (PIP_ACCEPT, JSON_CONTENT_TYPE),
        ("application/vnd.pypi.simple.v1+html", HTML_CONTENT_TYPE),
        ("text/html, application/vnd.pypi.simple.v1+json;q=0.5", "text/html"),
        ("application/*", HTML_CONTENT_TYPE),
        ("application/json", None),
        ("application/vnd.pypi.simple.v1+json;q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_negotiate_format_parameter_wins() -> None:
    assert negotiate("text/html", "json") == JSON_CONTENT_TYPE
    assert negotiate(None, JSON_CONTENT_TYPE) == JSON_CONTENT_TYPE
    assert negotiate(None, "xml") is None


@dataclass(frozen=True)
class Server:
    url: str
    root: Path
    log: Path

    @property
    def simple(self) -> str:
        return self.url + "simple/"

    def upload(
        self,
        wheel: Path,
        *,
        filename: str | None = None,
        auth: tuple[str, str] | None = (USER, SECRET),
        **fields: str,
    ) -> httpx.Response:
        data = {
            ":action": "file_upload",
            "protocol_version": "1",
            "sha256_digest": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            **fields,
        }
        files = {
            "content": (filename or wheel.name, wheel.read_bytes(), "application/octet-stream")
        }
        return httpx.post(self.url, data=data, files=files, auth=auth, timeout=60)

    def listed(self, project: str) -> dict[str, str]:
        response = httpx.get(f"{self.simple}{project}/", headers={"Accept": JSON_CONTENT_TYPE})
        if response.status_code == 404:
            return {}
        return {f["filename"]: f["hashes"]["sha256"] for f in response.json()["files"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("serve")
    htpasswd = write_htpasswd(base / "htpasswd", USER, SECRET)
    root = base / "index"
    log = base / "serve.log"
    with serving_prewheel(root, "--htpasswd", str(htpasswd), log=log) as url:
        yield Server(url, root, log)
    assert SECRET not in log.read_text()


def test_root_negotiates_json_and_html(server: Server) -> None:
    as_json = httpx.get(server.simple, headers={"Accept": PIP_ACCEPT})
    assert as_json.headers["content-type"] == JSON_CONTENT_TYPE
    assert as_json.json()["meta"]["api-version"] == "1.1"
    assert "accept" in as_json.headers["vary"].lower()
    as_html = httpx.get(server.simple)
    assert as_html.headers["content-type"].startswith("text/html")
    assert "<html>" in as_html.text
    assert httpx.get(server.simple + "?format=json").headers["content-type"] == JSON_CONTENT_TYPE
    assert httpx.get(server.simple, headers={"Accept": "image/png"}).status_code == 406


def test_unknown_project_is_404_and_names_are_normalized(server: Server, tmp_path: Path) -> None:
    assert httpx.get(server.simple + "no-such-project/").status_code == 404
    assert server.upload(make_wheel(tmp_path, "Norm.Name", "1.0")).status_code == 200
    redirect = httpx.get(server.simple + "Norm.Name/")
    assert redirect.status_code == 301
    assert redirect.headers["location"].endswith("/simple/norm-name/")
    assert httpx.get(server.simple + "Norm.Name/", follow_redirects=True).status_code == 200


def test_twine_upload_then_pip_and_uv_install(server: Server, tmp_path: Path) -> None:
    wheels = [
        make_wheel(tmp_path / "d", "served-app", "1.0", requires=["served-lib"]),
        make_wheel(tmp_path / "d", "served-lib", "3.0"),
    ]
    env = {
        **isolated_env(tmp_path),
        "TWINE_USERNAME": USER,
        "TWINE_PASSWORD": SECRET,
        "HOME": str(tmp_path),
    }
    argv = [
        str(VENV_BIN / "twine"),
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        server.url,
        *map(str, wheels),
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # uploading the same bytes again is a no-op success
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    page = httpx.get(server.simple + "served-lib/", headers={"Accept": JSON_CONTENT_TYPE}).json()
    (entry,) = page["files"]
    assert entry["hashes"]["sha256"] == hashlib.sha256(wheels[1].read_bytes()).hexdigest()
    assert page["versions"] == ["3.0"]
    metadata = httpx.get(server.simple + "served-lib/" + entry["url"], follow_redirects=True)
    assert metadata.status_code == 200
    meta = httpx.get(httpx.URL(server.simple + "served-lib/").join(entry["url"] + ".metadata"))
    assert hashlib.sha256(meta.content).hexdigest() == entry["core-metadata"]["sha256"]

    pip_result = pip_install(server.simple, tmp_path / "pip", "served-app")
    assert pip_result.returncode == 0, pip_result.stderr
    assert installed_version(tmp_path / "pip", "served_lib") == "3.0"
    uv_result = uv_install(server.simple, tmp_path / "uv", "served-app")
    assert uv_result.returncode == 0, uv_result.stderr
    assert installed_version(tmp_path / "uv", "served_lib") == "3.0"


def test_conflicting_reupload_is_409_and_original_untouched(server: Server, tmp_path: Path) -> None:
    original = make_wheel(tmp_path / "a", "conflicted", "1.0")
    assert server.upload(original).status_code == 200
    assert server.upload(original).status_code == 200  # same bytes: no-op
    other = make_wheel(tmp_path / "b", "conflicted", "1.0", extra_members={"conflicted/x.py": b""})
    response = server.upload(other)
    assert response.status_code == 409
    assert "already listed" in response.text
    assert str(server.root) not in response.text  # issue 12: no server path in the body
    stored = server.root / "files" / original.name
    assert stored.read_bytes() == original.read_bytes()
    assert server.listed("conflicted") == {
        original.name: hashlib.sha256(original.read_bytes()).hexdigest()
    }


def _bomb(directory: Path) -> Path:
    path = make_wheel(directory, "bomb", "1.0")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/zeros.bin", b"\0" * (32 << 20))
    return path


def _not_zip(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "notzip-1.0-py3-none-any.whl"
    path.write_bytes(b"PK but not really" * 100)
    return path


def _tampered(directory: Path) -> Path:
    def tamper(members: dict[str, bytes]) -> None:
        members["tampered/__init__.py"] = b"evil = True\n"

    return make_wheel(directory, "tampered", "1.0", tamper=tamper)


def _evil_first_copy(directory: Path, name: str) -> Path:
    """Two members of one name: the first altered, the last the one RECORD describes."""
    original = b"VERSION = '1.0'\nTAG = 'py3-none-any'\n"

    def tamper(members: dict[str, bytes]) -> None:
        members[f"{name}/__init__.py"] = b"import evil\n"

    return make_wheel(
        directory, name, "1.0", tamper=tamper, second_copies={f"{name}/__init__.py": original}
    )


FAULTS = {
    "traversal": (lambda d: make_wheel(d, "trav", "1.0"), "../trav-1.0-py3-none-any.whl", "trav"),
    "nul": (lambda d: make_wheel(d, "nul", "1.0"), "nul-1.0-py3-none-any.whl\0.txt", "nul"),
    "mismatch": (
        lambda d: make_wheel(d, "claimed", "1.0", metadata_name="actual"),
        None,
        "claimed",
    ),
    "not-a-zip": (_not_zip, None, "notzip"),
    "zip-bomb": (_bomb, None, "bomb"),
    "record": (_tampered, None, "tampered"),
    "member-traversal": (
        lambda d: make_wheel(d, "memtrav", "1.0", unrecorded_members={"../../x": b"x"}),
        None,
        "memtrav",
    ),
    # issue 12, faults 4 and 5
    "name-too-long": (  # 250 characters: its .metadata would be 259
        lambda d: make_wheel(d, "longname", "1.0"),
        "longname-1.0-1" + "a" * 219 + "-py3-none-any.whl",
        "longname",
    ),
    "duplicate-member": (lambda d: _evil_first_copy(d, "dupmem"), None, "dupmem"),
    "no-wheel-file": (lambda d: make_wheel(d, "nowheel", "1.0", omit=["WHEEL"]), None, "nowheel"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_invalid_uploads_are_refused_and_not_listed(
    server: Server, tmp_path: Path, fault: str
) -> None:
    make, filename, project = FAULTS[fault]
    wheel = make(tmp_path)
    response = server.upload(wheel, filename=filename)
    assert 400 <= response.status_code < 500, response.text
    assert server.listed(project) == {}
    assert not list((server.root / "files").glob(f"*{project}*"))
    assert not list((server.root / ".prewheel" / "incoming").iterdir())


def test_declared_digest_mismatch_is_refused(server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "digested", "1.0")
    response = server.upload(wheel, sha256_digest="0" * 64)
    assert response.status_code == 400
    assert "damaged in transit" in response.text
    assert server.listed("digested") == {}


def test_form_name_must_match_file(server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "formname", "1.0")
    assert server.upload(wheel, name="other-project").status_code == 400
    assert server.upload(wheel, version="9.9").status_code == 400
    assert server.listed("formname") == {}


def test_credentials_are_required(server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "authz", "1.0")
    for auth in (None, (USER, "wrong-password"), ("mallory", SECRET)):
        response = server.upload(wheel, auth=auth)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert server.listed("authz") == {}
    assert SECRET not in server.log.read_text()
    assert "wrong-password" not in server.log.read_text()


def test_client_killed_mid_upload_leaves_nothing(server: Server, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "killed", "1.0", extra_members={"killed/big.py": b"#" * 200_000})
    request = httpx.Request(
        "POST",
        server.url,
        data={":action": "file_upload"},
        files={"content": (wheel.name, wheel.read_bytes(), "application/octet-stream")},
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
        },
    )
    body = request.read()
    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host")
        + "\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body[: len(body) // 2])
    # the server is still healthy, lists nothing and kept no partial file
    assert httpx.get(server.simple).status_code == 200
    assert server.listed("killed") == {}
    assert not list((server.root / "files").glob("killed*"))
    assert server.upload(wheel).status_code == 200  # a complete retry then works
    assert server.listed("killed") == {wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()}


def test_twenty_concurrent_uploads_of_one_filename(server: Server, tmp_path: Path) -> None:
    wheels = [
        make_wheel(
            tmp_path / str(i),
            "raced",
            "1.0",
            extra_members={"raced/which.py": f"N = {i}\n".encode()},
        )
        for i in range(20)
    ]
    results: dict[int, int] = {}
    barrier = threading.Barrier(20)

    def upload(i: int) -> None:
        barrier.wait()
        results[i] = server.upload(wheels[i]).status_code

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results.values()) == [200] + [409] * 19
    (winner,) = [i for i, status in results.items() if status == 200]
    expected = hashlib.sha256(wheels[winner].read_bytes()).hexdigest()
    assert server.listed("raced") == {wheels[winner].name: expected}
    stored = server.root / "files" / wheels[winner].name
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == expected
    html_page = httpx.get(server.simple + "raced/").text
    assert f"#sha256={expected}" in html_page
    catalog = json.loads((server.root / ".prewheel" / "catalog.json").read_text())
    assert [f["sha256"] for f in catalog["files"] if f["project"] == "raced"] == [expected]


def test_read_only_without_credentials(tmp_path: Path) -> None:
    env = {"PREWHEEL_SERVE_TOKEN": ""}
    with serving_prewheel(tmp_path / "ro", log=tmp_path / "log", env=env) as url:
        wheel = make_wheel(tmp_path, "ro", "1.0")
        response = httpx.post(
            url,
            data={":action": "file_upload"},
            files={"content": (wheel.name, wheel.read_bytes())},
            auth=(USER, SECRET),
        )
        assert response.status_code == 403


def test_token_authentication(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-123456\n")
    options = ("--token-file", str(token_file), "--max-upload", "20000")
    with serving_prewheel(tmp_path / "tk", *options, log=tmp_path / "log") as url:
        server = Server(url, tmp_path / "tk", tmp_path / "log")
        wheel = make_wheel(tmp_path, "tokened", "1.0")
        assert server.upload(wheel, auth=("__token__", "nope")).status_code == 401
        assert server.upload(wheel, auth=("__token__", "tok-123456")).status_code == 200
        big = make_wheel(
            tmp_path / "big", "big", "1.0", extra_members={"big/data.bin": os.urandom(50_000)}
        )
        assert server.upload(big, auth=("__token__", "tok-123456")).status_code == 413
        assert server.listed("big") == {}
    assert "tok-123456" not in (tmp_path / "log").read_text()


def _keep_alive_milliseconds(url: str, requests: int = 15) -> float:
    """Median time of one request on a reused connection, as pip and uv make them."""
    timings = []
    with httpx.Client() as client:
        client.get(url).raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url).raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def test_keep_alive_requests_do_not_stall(tmp_path: Path) -> None:
    """Without TCP_NODELAY, each request on a kept-alive connection waits ~40 ms (Nagle
    against delayed ACKs): 1.6x the install time of a small set. Both servers must answer fast."""
    from builder.pipeline import serving

    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "wheels", "quick", "1.0")])
    with serving(root) as simple:
        embedded = _keep_alive_milliseconds(simple + "quick/")
    with serving_prewheel(root, log=tmp_path / "serve.log") as base:
        served = _keep_alive_milliseconds(base + "simple/quick/")
    assert embedded < 20, f"serving(): {embedded:.1f} ms per kept-alive request"
    assert served < 20, f"prewheel serve: {served:.1f} ms per kept-alive request"
