"""Real, installable wheels for the index tests, written with the zip machinery.

``make_wheel`` writes a valid wheel (METADATA, WHEEL, RECORD with sha256 of every member) with
one importable module; any tag may be given, so a "platform" wheel tagged ``linux_armv7l`` is
as valid as a pure one. Keyword hooks produce deliberately broken wheels for fault tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    extra_members: dict[str, bytes] | None = None,
    unrecorded_members: dict[str, bytes] | None = None,
    tamper: Callable[[dict[str, bytes]], None] | None = None,
    filename: str | None = None,
    omit: Sequence[str] = (),
    second_copies: dict[str, bytes] | None = None,
) -> Path:
    """Write ``{name}-{version}-{tag}.whl`` into ``directory`` and return its path.

    ``tamper`` may change member bytes after RECORD was computed (a RECORD mismatch);
    ``unrecorded_members`` are added without a RECORD line; ``omit`` names dist-info files
    (``WHEEL``) left out entirely; ``second_copies`` are appended as a second member of the same
    name (``{"METADATA": ...}`` for dist-info files, else a full member path).
    """
    dist = name.replace("-", "_").lower()
    module = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {metadata_name or name}",
        f"Version: {metadata_version or version}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    if requires_python:
        metadata_lines.append(f"Requires-Python: {requires_python}")
    members: dict[str, bytes] = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nTAG = {tag!r}\n".encode(),
        f"{dist_info}/METADATA": ("\n".join(metadata_lines) + "\n\n").encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: prewheel-tests\n"
            f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
        ).encode(),
        **(extra_members or {}),
    }
    for left_out in omit:
        del members[f"{dist_info}/{left_out}"]
    record_lines = [f"{path},{_digest(data)},{len(data)}" for path, data in members.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    if tamper is not None:
        tamper(members)
    members.update(unrecorded_members or {})
    path = directory / (filename or f"{dist}-{version}-{tag}.whl")
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        with warnings.catch_warnings():  # zipfile warns about the duplicate name we want
            warnings.simplefilter("ignore", UserWarning)
            for member, data in (second_copies or {}).items():
                archive.writestr(member if "/" in member else f"{dist_info}/{member}", data)
    return path


# --- servers and installers ---------------------------------------------------------------

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(
    argv: list[str],
    ready_url: str,
    *,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``ready_url`` answers, stop it afterwards."""
    with log.open("wb") as log_stream:
        process = subprocess.Popen(
            argv,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited: {log.read_text()}")
                try:
                    httpx.get(ready_url, timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield process
        finally:
            # SIGTERM, not SIGINT: processes started by pytest-xdist's workers inherit SIGINT
            # ignored, so each server sat out the 10 s wait below before being killed.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def serving_directory(directory: Path, *, log: Path, path: str = "") -> Iterator[str]:
    """Serve ``directory`` with ``python -m http.server`` on a free port; yield the URL of
    ``path`` (relative to the server's root) once it answers."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]
    url = f"http://127.0.0.1:{port}/{path}"
    with running(argv, url, log=log):
        yield url


@contextlib.contextmanager
def serving_prewheel(
    root: Path, *options: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``prewheel serve root --port PORT *options`` on a free port; yield its base URL
    (``http://127.0.0.1:PORT/``) once its simple/ page answers."""
    port = free_port()
    argv = [str(VENV_BIN / "prewheel"), "serve", str(root), "--port", str(port), *options]
    url = f"http://127.0.0.1:{port}/"
    with running(argv, url + "simple/", log=log, env=env):
        yield url


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file (sha256_crypt) with one user, as ``prewheel serve`` and pypiserver read."""
    from passlib.apache import HtpasswdFile

    htpasswd = HtpasswdFile(str(path), new=True, default_scheme="sha256_crypt")
    htpasswd.set_password(user, password)
    htpasswd.save()
    return path


def isolated_env(tmp: Path) -> dict[str, str]:
    """Environment for pip/uv that ignores the user's configuration and caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_NO_CONFIG="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def pip_install(
    index_url: str,
    target: Path,
    *requirements: str,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    pip = [str(VENV_BIN / "python"), "-m", "pip", "install"]
    return _install(pip, index_url, target, requirements, extra=extra, env=env)


def uv_install(
    index_url: str,
    target: Path,
    *requirements: str,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    uv = [str(VENV_BIN / "uv"), "pip", "install"]
    python = ["--python", str(VENV_BIN / "python")]
    return _install(uv, index_url, target, requirements, options=python, extra=extra, env=env)


def _install(
    command: list[str],
    index_url: str,
    target: Path,
    requirements: Sequence[str],
    *,
    options: Sequence[str] = (),
    extra: list[str] | None,
    env: dict[str, str] | None,
) -> subprocess.CompletedProcess[str]:
    """``command --index-url URL --target DIR *options *extra *requirements``, isolated."""
    argv = [
        *command,
        "--index-url",
        index_url,
        "--target",
        str(target),
        *options,
        *(extra or []),
        *requirements,
    ]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env or isolated_env(target.parent),
    )


def installed_version(target: Path, module: str) -> str:
    """VERSION of a module installed with ``--target`` by make_wheel."""
    namespace: dict[str, object] = {}
    exec((target / module / "__init__.py").read_text(), namespace)
    return str(namespace["VERSION"])
