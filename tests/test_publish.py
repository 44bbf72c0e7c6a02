"""``prewheel publish``: twine to a real pypiserver with a simple-index pre-check, or --static."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from index_fixtures import (
    VENV_BIN,
    free_port,
    installed_version,
    isolated_env,
    make_wheel,
    pip_install,
    running,
    serving_prewheel,
    uv_install,
    write_htpasswd,
)
from packaging.utils import NormalizedName

from builder.errors import IndexUnreachableError, PublishConflictError
from builder.index.publish import (
    LocalWheel,
    RemoteFile,
    TwineUploader,
    plan_publish,
    publish,
    simple_url_for,
)

USER = "uploader"
SECRET = "pypiserver-secret-value"


@dataclass
class FakeRemote:
    pages: dict[str, dict[str, RemoteFile]]
    downloads: dict[str, str]
    fetched: list[str]

    def project_files(self, project: NormalizedName) -> Mapping[str, RemoteFile]:
        self.fetched.append(project)
        return self.pages.get(project, {})

    def file_sha256(self, remote: RemoteFile) -> str:
        return self.downloads[remote.url]


def _local(tmp_path: Path, name: str, version: str) -> LocalWheel:
    path = make_wheel(tmp_path, name, version)
    return LocalWheel(path, hashlib.sha256(path.read_bytes()).hexdigest())


def test_plan_skips_same_hash_uploads_missing_and_reads_each_page_once(tmp_path: Path) -> None:
    there = _local(tmp_path, "proj", "1.0")
    missing = _local(tmp_path, "proj", "2.0")
    unhashed = _local(tmp_path, "other", "1.0")
    remote = FakeRemote(
        pages={
            "proj": {there.path.name: RemoteFile(there.path.name, "u1", there.sha256)},
            "other": {unhashed.path.name: RemoteFile(unhashed.path.name, "u2", None)},
        },
        downloads={"u2": unhashed.sha256},
        fetched=[],
    )
    plan = plan_publish([there, missing, unhashed], remote)
    assert plan.upload == (missing,)
    assert set(plan.present) == {there, unhashed}
    assert sorted(remote.fetched) == ["other", "proj"]


def test_plan_refuses_every_conflict_before_uploading(tmp_path: Path) -> None:
    wheel = _local(tmp_path, "proj", "1.0")
    remote = FakeRemote(
        pages={"proj": {wheel.path.name: RemoteFile(wheel.path.name, "u", "0" * 64)}},
        downloads={},
        fetched=[],
    )
    uploaded: list[list[Path]] = []

    class Recorder:
        def upload(self, paths: list[Path]) -> None:
            uploaded.append(paths)

    with pytest.raises(PublishConflictError, match="Nothing was uploaded"):
        publish([wheel.path, _local(tmp_path, "new", "1.0").path], remote, Recorder())
    assert uploaded == []


@pytest.mark.parametrize(
    ("upload_url", "simple"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/simple/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/simple/"),
        ("https://example.invalid/legacy/", "https://example.invalid/simple/"),
        ("https://example.invalid/repo/legacy", "https://example.invalid/repo/simple/"),
    ],
)
def test_simple_url_for(upload_url: str, simple: str) -> None:
    assert simple_url_for(upload_url) == simple


@dataclass(frozen=True)
class PyPIServer:
    url: str
    packages: Path

    @property
    def simple(self) -> str:
        return self.url + "simple/"


@pytest.fixture(scope="module")
def pypiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyPIServer]:
    with _pypiserver(tmp_path_factory, "update") as server:
        yield server


@pytest.fixture(scope="module")
def private_pypiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyPIServer]:
    """Every request needs credentials, listing and downloading too."""
    with _pypiserver(tmp_path_factory, "update,download,list") as server:
        yield server


@contextlib.contextmanager
def _pypiserver(factory: pytest.TempPathFactory, authenticated: str) -> Iterator[PyPIServer]:
    base = factory.mktemp("pypiserver")
    write_htpasswd(base / "htpasswd", USER, SECRET)
    packages = base / "packages"
    packages.mkdir()
    port = free_port()
    argv = [
        str(VENV_BIN / "pypi-server"),
        "run",
        "-p",
        str(port),
        "-i",
        "127.0.0.1",
        "-a",
        authenticated,
        "-P",
        str(base / "htpasswd"),
        "--disable-fallback",
        "--hash-algo",
        "sha256",
        str(packages),
    ]
    url = f"http://127.0.0.1:{port}/"
    with running(argv, url + "simple/", log=base / "pypiserver.log"):
        yield PyPIServer(url, packages)


def _publish(
    tmp_path: Path, wheelhouse: Path, *options: str, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    merged = {
        **isolated_env(tmp_path),
        "HOME": str(tmp_path),
        "COLUMNS": "200",
        "TWINE_USERNAME": USER,
        "TWINE_PASSWORD": SECRET,
        **(env or {}),
    }
    environment = {k: v for k, v in merged.items() if v is not None}
    return subprocess.run(
        [str(VENV_BIN / "prewheel"), "publish", str(wheelhouse), *options],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
        check=False,
    )


def test_publish_to_pypiserver_is_idempotent_and_installable(
    pypiserver: PyPIServer, tmp_path: Path
) -> None:
    wheels = tmp_path / "wh" / "wheels"
    make_wheel(wheels, "pub-app", "1.0", requires=["pub-lib>=1"])
    make_wheel(wheels, "pub-lib", "1.5")
    first = _publish(tmp_path, tmp_path / "wh", "--repository-url", pypiserver.url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 uploaded, 0 already there" in first.stdout
    assert sorted(p.name for p in pypiserver.packages.iterdir() if p.name.startswith("pub")) == [
        "pub_app-1.0-py3-none-any.whl",
        "pub_lib-1.5-py3-none-any.whl",
    ]
    second = _publish(tmp_path, tmp_path / "wh", "--repository-url", pypiserver.url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 uploaded, 2 already there" in second.stdout

    pip_result = pip_install(pypiserver.simple, tmp_path / "pip", "pub-app")
    assert pip_result.returncode == 0, pip_result.stderr
    assert installed_version(tmp_path / "pip", "pub_lib") == "1.5"
    uv_result = uv_install(pypiserver.simple, tmp_path / "uv", "pub-app")
    assert uv_result.returncode == 0, uv_result.stderr
    assert installed_version(tmp_path / "uv", "pub_lib") == "1.5"


def test_publish_stops_on_a_different_file_under_the_same_name(
    pypiserver: PyPIServer, tmp_path: Path
) -> None:
    make_wheel(tmp_path / "one" / "wheels", "clash", "1.0")
    assert _publish(tmp_path, tmp_path / "one", "--repository-url", pypiserver.url).returncode == 0
    original = (pypiserver.packages / "clash-1.0-py3-none-any.whl").read_bytes()
    make_wheel(tmp_path / "two" / "wheels", "clash", "1.0", extra_members={"clash/x.py": b"1"})
    make_wheel(tmp_path / "two" / "wheels", "fresh", "1.0")
    result = _publish(tmp_path, tmp_path / "two", "--repository-url", pypiserver.url)
    assert result.returncode == 11, result.stdout + result.stderr
    assert "clash-1.0-py3-none-any.whl" in result.stderr
    assert "Nothing was uploaded" in result.stderr.replace("\n", " ")
    assert (pypiserver.packages / "clash-1.0-py3-none-any.whl").read_bytes() == original
    assert not (pypiserver.packages / "fresh-1.0-py3-none-any.whl").exists()


def test_publish_with_pypirc_repository(pypiserver: PyPIServer, tmp_path: Path) -> None:
    (tmp_path / ".pypirc").write_text(
        "[distutils]\nindex-servers = local\n\n"
        f"[local]\nrepository = {pypiserver.url}\nusername = {USER}\npassword = {SECRET}\n"
    )
    make_wheel(tmp_path / "wh" / "wheels", "via-pypirc", "0.1")
    result = _publish(
        tmp_path,
        tmp_path / "wh",
        "--repository",
        "local",
        env={"TWINE_USERNAME": None, "TWINE_PASSWORD": None},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (pypiserver.packages / "via_pypirc-0.1-py3-none-any.whl").is_file()


def test_publish_with_wrong_credentials_fails_clearly(
    pypiserver: PyPIServer, tmp_path: Path
) -> None:
    make_wheel(tmp_path / "wh" / "wheels", "denied", "0.1")
    result = _publish(
        tmp_path,
        tmp_path / "wh",
        "--repository-url",
        pypiserver.url,
        env={"TWINE_PASSWORD": "Wr0ng-Pa55-xyz"},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused the credentials (40" in result.stderr
    assert "Wr0ng-Pa55-xyz" not in result.stdout + result.stderr
    assert not (pypiserver.packages / "denied-0.1-py3-none-any.whl").exists()


def test_publish_static(tmp_path: Path) -> None:
    make_wheel(tmp_path / "wh" / "wheels", "static-pub", "1.0")
    result = _publish(tmp_path, tmp_path / "wh", "--static", str(tmp_path / "tree"))
    assert result.returncode == 0, result.stderr
    page = tmp_path / "tree" / "simple" / "static-pub" / "index.html"
    assert "static_pub-1.0-py3-none-any.whl#sha256=" in page.read_text()
    assert httpx.URL("http://x/simple/static-pub/").join("../../files/a").path == "/files/a"


def test_publish_to_prewheel_serve_and_conflict_detection(tmp_path: Path) -> None:
    """publish + serve together: idempotent, and a conflict is caught before uploading."""
    token = tmp_path / "token"
    token.write_text("serve-token-abc\n")
    env: dict[str, str | None] = {
        "TWINE_USERNAME": "__token__",
        "TWINE_PASSWORD": "serve-token-abc",
    }
    serve_log = tmp_path / "serve.log"
    with serving_prewheel(tmp_path / "tree", "--token-file", str(token), log=serve_log) as url:
        make_wheel(tmp_path / "wh" / "wheels", "to-serve", "1.0")
        first = _publish(tmp_path, tmp_path / "wh", "--repository-url", url, env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "1 uploaded, 0 already there" in first.stdout
        second = _publish(tmp_path, tmp_path / "wh", "--repository-url", url, env=env)
        assert "0 uploaded, 1 already there" in second.stdout
        make_wheel(
            tmp_path / "other" / "wheels", "to-serve", "1.0", extra_members={"to_serve/x.py": b""}
        )
        clash = _publish(tmp_path, tmp_path / "other", "--repository-url", url, env=env)
        assert clash.returncode == 11, clash.stdout + clash.stderr
        listed = httpx.get(url + "simple/to-serve/?format=json").json()
        original = (tmp_path / "wh" / "wheels" / "to_serve-1.0-py3-none-any.whl").read_bytes()
        assert [f["hashes"]["sha256"] for f in listed["files"]] == [
            hashlib.sha256(original).hexdigest()
        ]


def test_publish_reads_a_private_index_with_the_pypirc_credentials(
    private_pypiserver: PyPIServer, tmp_path: Path
) -> None:
    """The pre-check reads pages with the credentials twine uploads with, not only TWINE_*."""
    (tmp_path / ".pypirc").write_text(
        "[distutils]\nindex-servers = private\n\n"
        f"[private]\nrepository = {private_pypiserver.url}\n"
        f"username = {USER}\npassword = {SECRET}\n"
    )
    make_wheel(tmp_path / "wh" / "wheels", "closed", "1.0")
    no_env = {"TWINE_USERNAME": None, "TWINE_PASSWORD": None}
    first = _publish(tmp_path, tmp_path / "wh", "--repository", "private", env=no_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 uploaded, 0 already there" in first.stdout
    second = _publish(tmp_path, tmp_path / "wh", "--repository", "private", env=no_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 uploaded, 1 already there" in second.stdout


def test_twine_command_line_failures_map_to_prewheel_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads run `twine upload` itself; a conflict it meets (another publisher won the race
    after the pre-check) and a stalled index each end as their documented error."""
    token = tmp_path / "token"
    token.write_text("serve-token-abc\n")
    first = make_wheel(tmp_path / "a", "raced", "1.0")
    second = make_wheel(tmp_path / "b", "raced", "1.0", extra_members={"raced/x.py": b""})
    monkeypatch.setenv("TWINE_USERNAME", "__token__")
    monkeypatch.setenv("TWINE_PASSWORD", "serve-token-abc")
    log = tmp_path / "serve.log"
    with serving_prewheel(tmp_path / "tree", "--token-file", str(token), log=log) as url:
        uploader = TwineUploader(repository_url=url, config_file=str(tmp_path / "none"))
        uploader.upload([first])
        with pytest.raises(PublishConflictError, match="409"):
            uploader.upload([second])
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        stalled = TwineUploader(
            repository_url=f"http://127.0.0.1:{silent.getsockname()[1]}/",
            config_file=str(tmp_path / "none"),
            timeout=5,
        )
        started = time.monotonic()
        with pytest.raises(IndexUnreachableError, match="did not finish in 5 s"):
            stalled.upload([first])
    assert time.monotonic() - started < 60
