"""prewheel's containers over the Docker Engine API (the ``docker`` SDK), cibuildwheel-style: the
one place a Docker client is made (:func:`connect`) and a container is created (:func:`_create`),
for builds, toolchain assembly, image inspection and ``prewheel verify`` alike.

:class:`Container` is a context manager: it creates a long-lived container of an image for a
platform (``sleep`` as PID 1), runs commands in it with :meth:`Container.call` (each under a
``timeout``, since QEMU can hang: ``timeout -s KILL`` inside, and a watchdog outside that kills
the container if the command's output has not ended soon after), copies files in and out
through tar archives (so it works with remote daemons too), and always removes the container,
even on ``KeyboardInterrupt``. :func:`read_image_files` reads files of an image from a container
that is created but never started. Containers carry the creating process's id as a label;
:func:`remove_orphans` deletes those whose creator died (e.g. a SIGKILLed ``prewheel build``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import posixpath
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self

import docker
import docker.context
import docker.errors
import requests
from docker.types import Mount
from docker.utils.socket import frames_iter

from ..errors import HostEnvironmentError, ImageUnavailableError
from ..files import pid_alive

LABEL = "org.prewheel.build"
OWNER_LABEL = "org.prewheel.owner"
TIMEOUT_EXIT_CODE = 124
# PID 1 outlives any build but not forever: a container orphaned by SIGKILL still goes away.
_LIFETIME_SECONDS = 24 * 3600
# How long after its timeout a command's output may still not have ended (the in-container
# ``timeout`` did not end it: a child that left its process group and keeps the output open, a
# wedged emulator) before the watchdog kills the container.
CALL_GRACE_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class CallResult:
    exit_code: int
    timed_out: bool


def local_image(client: docker.DockerClient, image: str) -> Any:
    """The daemon's ``image`` (a docker-py Image), or None if it has none of that name; a
    daemon that cannot be asked is an :class:`ImageUnavailableError`."""
    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.DockerException as exc:
        raise ImageUnavailableError(f"Cannot inspect image {image}: {exc}.") from None


def connect(base_url: str | None = None, *, timeout: float = 120.0) -> docker.DockerClient:
    """A client for ``base_url`` (else DOCKER_HOST, else the Docker CLI's current context, as
    ``docker`` itself chooses), checked with a ping."""
    where = base_url or os.environ.get("DOCKER_HOST") or _current_context()
    try:
        client = (
            docker.DockerClient(base_url=base_url, timeout=int(timeout))
            if base_url
            else docker.from_env(timeout=int(timeout))
        )
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise HostEnvironmentError(
            f"Cannot reach a Docker daemon at {where} ({exc}). Start Docker (e.g. "
            "`sudo systemctl start docker`), fix DOCKER_HOST or --docker-host, or build "
            "host-native targets without Docker using --builder local."
        ) from None
    return client


def _current_context() -> str:
    """The Docker CLI context docker-py falls back to (DOCKER_CONTEXT, then the config's)."""
    try:
        context = docker.context.ContextAPI.get_current_context()
    except (docker.errors.DockerException, OSError, ValueError):
        return "the default socket"
    if context is None:
        return "the default socket"
    return f"{context.Host} (Docker context {context.Name})"


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _create(
    client: docker.DockerClient,
    image: str,
    platform: str,
    command: Sequence[str],
    *,
    environment: Mapping[str, str] | None = None,
    mounts: Sequence[Mount] = (),
    mem_limit: str | None = None,
    host_network: bool = False,
) -> Any:
    """Create (not start) a container labelled as prewheel's and this process's (so
    :func:`remove_orphans` finds it if this process dies); the only place prewheel creates one."""
    options: dict[str, Any] = {"network_mode": "host"} if host_network else {}
    return client.containers.create(
        image,
        command=list(command),
        platform=platform,
        environment=dict(environment or {}),
        mem_limit=mem_limit,
        labels={LABEL: "1", OWNER_LABEL: owner_label()},
        working_dir="/",
        mounts=list(mounts),
        detach=True,
        **options,
    )


def remove_orphans(client: docker.DockerClient) -> int:
    """Remove build containers whose creating process on this host no longer exists."""
    removed = 0
    host = socket.gethostname()
    # ignore_removed: another prewheel may remove its container between the listing and the
    # inspection of each one
    for container in client.containers.list(
        all=True, filters={"label": LABEL}, ignore_removed=True
    ):
        owner = str(container.labels.get(OWNER_LABEL, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or pid_alive(int(pid)):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.APIError:
            continue
    return removed


def _close_socket(sock: Any) -> None:
    """Close an attached exec socket and the HTTP response it came from."""
    response = getattr(sock, "_response", None)
    if response is not None:
        with contextlib.suppress(OSError, ValueError):
            response.close()
    with contextlib.suppress(OSError, ValueError):
        sock.close()


class Container:
    """A running container for one (image, platform); see the module docstring."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        image: str,
        platform: str,
        environment: Mapping[str, str] | None = None,
        mem_limit: str | None = None,
        workdir: str = "/prewheel",
        mounts: Sequence[Mount] = (),
    ) -> None:
        self.client = client
        self.image = image
        self.platform = platform
        self.environment = dict(environment or {})
        self.mem_limit = mem_limit
        self.workdir = workdir
        self.mounts = list(mounts)
        self._container: Any = None

    def __enter__(self) -> Self:
        try:
            self._container = _create(
                self.client,
                self.image,
                self.platform,
                ["sleep", str(_LIFETIME_SECONDS)],
                environment=self.environment,
                mounts=self.mounts,
                mem_limit=self.mem_limit,
                host_network=True,
            )
            self._container.start()
        except docker.errors.ImageNotFound:
            self._remove()
            raise HostEnvironmentError(
                f"Image {self.image} for {self.platform} is not available to the Docker daemon. "
                f"Pull it (docker pull --platform {self.platform} {self.image}) or build it, "
                "or choose another with --image."
            ) from None
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        if self._container is None:
            return
        with contextlib.suppress(docker.errors.DockerException):
            self._container.remove(force=True)
        self._container = None

    @property
    def id(self) -> str:
        return str(self._container.id)

    def call(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        environment: Mapping[str, str] | None = None,
        output: Callable[[bytes], object] | None = None,
        grace: float = CALL_GRACE_SECONDS,
    ) -> CallResult:
        """Run ``argv`` (killed after ``timeout`` seconds), streaming its output (stdout and
        stderr interleaved) to ``output``. If the output has not ended ``grace`` seconds after
        the timeout, the whole container is killed (it cannot run anything after that)."""
        api = self.client.api
        wrapped = ["timeout", "-s", "KILL", str(max(1, int(timeout))), *argv]
        started = time.monotonic()
        exec_id = api.exec_create(
            self._container.id, wrapped, environment=dict(environment or {}), workdir="/"
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        killed = threading.Event()
        watchdog = threading.Timer(max(1.0, timeout) + grace, self._kill, args=(killed,))
        watchdog.daemon = True
        watchdog.start()
        try:
            for _stream, chunk in frames_iter(sock, tty=False):
                if output is not None:
                    output(chunk)
        finally:
            watchdog.cancel()
            _close_socket(sock)
        if killed.is_set():
            return CallResult(137, timed_out=True)
        exit_code = int(api.exec_inspect(exec_id).get("ExitCode") or 0)
        timed_out = exit_code in (TIMEOUT_EXIT_CODE, 137) and (
            time.monotonic() - started >= timeout - 1
        )
        return CallResult(exit_code, timed_out)

    def _kill(self, killed: threading.Event) -> None:
        """The watchdog of :meth:`call`: kill the container, which ends the command's output."""
        killed.set()
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            self._container.kill()

    def copy_in(self, source: Path, destination: PurePosixPath, *, mode: int | None = None) -> None:
        """Copy a host file into ``destination`` (a file path) in the container."""
        self.copy_files_in({destination: source}, mode=mode)

    def copy_files_in(
        self, files: Mapping[PurePosixPath, Path], *, mode: int | None = None
    ) -> None:
        """Copy host files into the container (``destination: source``), owned by root, with
        ``mode`` (else their own); their directories are created first (one command)."""
        by_directory: dict[PurePosixPath, list[tuple[PurePosixPath, Path]]] = {}
        for destination, source in files.items():
            by_directory.setdefault(destination.parent, []).append((destination, source))
        if by_directory:
            self._mkdir(*by_directory)
        for directory, members in by_directory.items():
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                for destination, source in members:
                    info = archive.gettarinfo(str(source), arcname=destination.name)
                    if mode is not None:
                        info.mode = mode
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    with source.open("rb") as handle:
                        archive.addfile(info, handle)
            self._container.put_archive(str(directory), buffer.getvalue())

    def copy_out(self, source: PurePosixPath, destination: Path) -> list[Path]:
        """Copy the regular files of directory ``source`` into host directory ``destination``."""
        try:
            stream, _ = self._container.get_archive(str(source).rstrip("/") + "/.")
        except docker.errors.NotFound:
            return []
        buffer = io.BytesIO(b"".join(stream))
        copied = []
        destination.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=buffer, mode="r") as archive:
            for member in archive.getmembers():
                name = PurePosixPath(member.name).name
                if not member.isfile() or not name or name.startswith("."):
                    continue
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                target = destination / name
                target.write_bytes(extracted.read())
                copied.append(target)
        return copied

    def read_file(self, path: PurePosixPath) -> bytes:
        """The content of one regular file in the container."""
        stream, _ = self._container.get_archive(str(path))
        content = _regular_file(b"".join(stream))
        if content is None:
            raise HostEnvironmentError(f"{path} in the {self.image} container is not a file.")
        return content

    def commit(self, repository: str, tag: str, *, labels: Mapping[str, str]) -> None:
        """Save the container's file system as image ``repository:tag`` with ``labels``."""
        self._container.commit(
            repository=repository, tag=tag, conf={"Labels": dict(labels), "Cmd": ["sh"]}
        )

    def _mkdir(self, *paths: PurePosixPath) -> None:
        result = self.call(["mkdir", "-p", *map(str, paths)], timeout=60)
        if result.exit_code != 0:
            shown = ", ".join(map(str, paths))
            raise HostEnvironmentError(f"Cannot create {shown} in the {self.image} container.")


def read_image_files(
    client: docker.DockerClient,
    image: str,
    platform: str,
    paths: Sequence[PurePosixPath],
    *,
    mounts: Sequence[Mount] = (),
) -> dict[PurePosixPath, bytes | None]:
    """Regular files of an image (or of ``mounts``), read from a container that is created but
    never started (no emulation runs). Symbolic links are followed, as the image's own programs
    would (``/usr/bin/python3`` -> ``python3.11``; the daemon resolves links among the parent
    directories, such as a merged-/usr image's ``/bin`` -> ``usr/bin``); a path that is missing,
    not a regular file, or a link loop maps to None."""
    created: Any = None
    files: dict[PurePosixPath, bytes | None] = {}
    try:
        created = _create(client, image, platform, ["true"], mounts=mounts)
        for path in paths:
            files[path] = _read_following_links(created, path)
    finally:
        if created is not None:
            with contextlib.suppress(docker.errors.DockerException):
                created.remove(force=True)
    return files


_MAX_LINKS = 16  # as many links in a row as prewheel follows (Linux allows 40 in a path)


def _read_following_links(created: Any, path: PurePosixPath) -> bytes | None:
    for _ in range(_MAX_LINKS):
        try:
            stream, _ = created.get_archive(str(path))
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as archive:
            member = archive.next()
            if member is None:
                return None
            if member.issym():
                path = _link_target(path, member.linkname)
                continue
            if not member.isfile():
                return None
            extracted = archive.extractfile(member)
            return extracted.read() if extracted is not None else None
    return None


def _link_target(link: PurePosixPath, target: str) -> PurePosixPath:
    """Where a symbolic link at ``link`` pointing to ``target`` leads (lexically, as the
    daemon resolves the parent directories itself)."""
    return PurePosixPath(posixpath.normpath(link.parent / target))


def _regular_file(archive_bytes: bytes) -> bytes | None:
    """The one regular file of a ``get_archive`` tar stream, or None (a link, a directory)."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r") as archive:
        member = archive.next()
        if member is None or not member.isfile():
            return None
        extracted = archive.extractfile(member)
        return extracted.read() if extracted is not None else None
