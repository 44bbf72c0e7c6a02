"""``prewheel publish``: upload the wheelhouse to an index with twine, idempotently.

Before uploading anything, the remote's simple page of every project is read: a file already
there with the same sha256 is skipped, and a file of the same name with a different hash stops
the whole publish with :class:`~builder.errors.PublishConflictError` (twine's
``--skip-existing`` only recognises PyPI-style replies, and would report success or a vague
400 elsewhere). Credentials are twine's: ``TWINE_USERNAME``/``TWINE_PASSWORD``, keyring, or
``.pypirc`` with ``--repository``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from packaging.utils import NormalizedName, parse_wheel_filename

from .. import cmd
from ..errors import (
    IndexBusyError,
    IndexMalformedError,
    IndexUnreachableError,
    PrewheelError,
    PublishConflictError,
    UsageError,
)
from ..fetch import RetryPolicy, get, make_client
from ..files import file_sha256

if TYPE_CHECKING:
    from pypi_simple import ProjectPage
    from twine.settings import Settings

_POLICY = RetryPolicy(attempts=3, backoff=1.0, deadline=120.0)  # per page or file
UPLOAD_TIMEOUT = 3600.0  # seconds for one twine upload of a whole batch
# How twine's command line reports an HTTP failure: "HTTPError: 409 Conflict from <url>".
_TWINE_HTTP_ERROR = re.compile(r"HTTPError: (\d{3}) ")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str
    sha256: str | None


class RemoteIndex(Protocol):
    def project_files(self, project: NormalizedName) -> Mapping[str, RemoteFile]: ...

    def file_sha256(self, remote: RemoteFile) -> str: ...


class Uploader(Protocol):
    def upload(self, paths: Sequence[Path]) -> None: ...


@dataclasses.dataclass(frozen=True)
class LocalWheel:
    path: Path
    sha256: str

    @property
    def project(self) -> NormalizedName:
        return parse_wheel_filename(self.path.name)[0]


@dataclasses.dataclass(frozen=True)
class PublishPlan:
    upload: tuple[LocalWheel, ...]
    present: tuple[LocalWheel, ...]  # already on the remote with the same hash


def plan_publish(local: Iterable[LocalWheel], remote: RemoteIndex) -> PublishPlan:
    """Split ``local`` into what to upload and what the remote already has.

    Raises :class:`~builder.errors.PublishConflictError` naming every file the remote has
    under the same name with different bytes; nothing is uploaded then.
    """
    wheels = list(local)
    pages: dict[NormalizedName, Mapping[str, RemoteFile]] = {}
    upload: list[LocalWheel] = []
    present: list[LocalWheel] = []
    conflicts: list[str] = []
    for wheel in wheels:
        if wheel.project not in pages:
            pages[wheel.project] = remote.project_files(wheel.project)
        existing = pages[wheel.project].get(wheel.path.name)
        if existing is None:
            upload.append(wheel)
            continue
        remote_hash = existing.sha256 or remote.file_sha256(existing)
        if remote_hash == wheel.sha256:
            present.append(wheel)
        else:
            conflicts.append(
                f"{wheel.path.name} (remote sha256 {remote_hash}, local {wheel.sha256})"
            )
    if conflicts:
        raise PublishConflictError(
            "the destination already has different files under these names: "
            + "; ".join(conflicts)
            + ". Nothing was uploaded. An index must never change a published file: rebuild "
            "with a new build number, or delete the remote files on purpose first."
        )
    return PublishPlan(tuple(upload), tuple(present))


def local_wheels(paths: Iterable[Path]) -> list[LocalWheel]:
    return [LocalWheel(path, file_sha256(path)) for path in paths]


def simple_url_for(repository_url: str) -> str:
    """Guess the simple index from an upload URL: ``…/legacy/`` -> ``…/simple/``, else
    ``<url>/simple/`` (pypiserver, prewheel serve). Override with ``--simple-url``."""
    parts = urlsplit(repository_url)
    path = parts.path.rstrip("/")
    path = path.removesuffix("/legacy")
    return urlunsplit((parts.scheme, parts.netloc, path + "/simple/", "", ""))


class SimpleIndexReader:
    """Reads PEP 691/503 project pages with prewheel's HTTP policy (:mod:`builder.fetch`)."""

    def __init__(
        self,
        simple_url: str,
        auth: tuple[str, str] | None = None,
        verify: str | bool | None = None,
    ) -> None:
        self.simple_url = simple_url if simple_url.endswith("/") else simple_url + "/"
        self._client = make_client(auth=auth, verify=verify)

    def close(self) -> None:
        self._client.close()

    def _get(self, url: str, accept: str) -> httpx.Response:
        return get(
            self._client,
            url,
            headers={"Accept": accept},
            policy=_POLICY,
            what="the destination index",
            hint=" Check the index URL (--simple-url) and that the server is up.",
        )

    def project_files(self, project: NormalizedName) -> Mapping[str, RemoteFile]:
        url = urljoin(self.simple_url, f"{project}/")
        # pypi_simple costs 0.46 s of the CLI's start-up (upstream.client.default_index_url)
        from pypi_simple import ACCEPT_JSON_PREFERRED  # noqa: PLC0415

        response = self._get(url, ACCEPT_JSON_PREFERRED)
        if response.status_code == 404:
            return {}
        if response.status_code in (401, 403):
            raise UsageError(
                f"{url} refused to list {project} ({response.status_code}); pass credentials "
                "the index accepts (TWINE_USERNAME/TWINE_PASSWORD, the repository's .pypirc "
                "section, or a keyring entry)."
            )
        if response.status_code != 200:
            raise IndexUnreachableError(f"{url} answered {response.status_code}.")
        page = _parse_page(project, response)
        return {
            package.filename: RemoteFile(
                package.filename, package.url, package.digests.get("sha256")
            )
            for package in page.packages
        }

    def file_sha256(self, remote: RemoteFile) -> str:
        response = self._get(remote.url, "*/*")
        if response.status_code != 200:
            raise IndexUnreachableError(
                f"cannot download {remote.url} to compare it ({response.status_code})."
            )
        return hashlib.sha256(response.content).hexdigest()


def _parse_page(project: str, response: httpx.Response) -> ProjectPage:
    from pypi_simple import ProjectPage  # noqa: PLC0415 - see SimpleIndexReader

    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    try:
        if content_type.endswith("json"):
            return ProjectPage.from_json_data(response.json(), base_url=str(response.url))
        return ProjectPage.from_html(project, response.content, base_url=str(response.url))
    except ValueError as exc:
        raise IndexMalformedError(f"{response.url} is not a valid simple page: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class TwineUploader:
    """Uploads with twine's own settings resolution (env, keyring, .pypirc)."""

    repository_url: str | None
    repository_name: str = "pypi"
    config_file: str = "~/.pypirc"
    cacert: str | None = None
    timeout: float = UPLOAD_TIMEOUT

    def settings(self) -> Settings:
        """twine's settings, resolved exactly as the ``twine upload`` command line does
        (so TWINE_USERNAME, TWINE_PASSWORD, TWINE_REPOSITORY_URL, TWINE_CERT... apply)."""
        # twine.settings costs ~0.4 s to import (measured with -X importtime), which no other
        # command should pay; only publish needs it
        from twine.settings import Settings  # noqa: PLC0415

        parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
        Settings.register_argparse_arguments(parser)
        try:
            return Settings.from_argparse(parser.parse_args(self._options()))
        except Exception as exc:  # twine raises its own and configparser errors
            raise UsageError(f"twine cannot use this repository configuration: {exc}") from exc

    def _options(self) -> list[str]:
        """The ``twine upload`` options this uploader stands for."""
        argv = ["--non-interactive", "--disable-progress-bar", "--config-file", self.config_file]
        if self.repository_url:
            argv += ["--repository-url", self.repository_url]
        else:
            argv += ["--repository", self.repository_name]
        if self.cacert:
            argv += ["--cert", self.cacert]
        return argv

    def resolved_url(self) -> str:
        settings = self.settings()
        return str(settings.repository_config["repository"])

    def read_credentials(self, env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """Basic-auth credentials for reading the remote's pages, found where twine looks.

        ``TWINE_USERNAME``/``TWINE_PASSWORD``, then the repository's ``.pypirc`` section, then
        the keyring entry twine would use (service: the repository URL). None when no
        username and password are known (the pages are then read anonymously). Unlike
        twine, never prompts and never requests a trusted-publishing token.
        """
        environ = os.environ if env is None else env
        config = self.settings().repository_config
        username = environ.get("TWINE_USERNAME") or config.get("username")
        password = environ.get("TWINE_PASSWORD") or config.get("password")
        if username and not password:
            password = _keyring_password(str(config["repository"]), str(username))
        if username and password:
            return str(username), str(password)
        return None

    def upload(self, paths: Sequence[Path]) -> None:
        """``twine upload`` on its command line (twine's Python API is not public), with the
        same options and environment; its failure is mapped to prewheel's errors."""
        self.settings()  # a configuration twine cannot use fails here, before any upload
        argv = [sys.executable, "-m", "twine", "upload", *self._options()]
        result = cmd.run([*argv, *map(os.fspath, paths)], timeout=self.timeout)
        if result.timed_out:
            raise IndexUnreachableError(
                f"twine upload did not finish in {self.timeout:.0f} s; the index is too slow "
                "or stalled. Files uploaded before stay listed: run the same publish again to "
                "upload the rest.\n" + result.tail()
            )
        if result.exit_code != 0:
            raise upload_error(result.output)


def upload_error(output: str) -> PrewheelError:
    """The error for a failed ``twine upload``, from the status its log names."""
    tail = "\n".join(output.strip().splitlines()[-10:])
    status = next((int(m) for m in _TWINE_HTTP_ERROR.findall(output)), None)
    if status == 409:
        return PublishConflictError(f"the index refused an upload as a conflict (409):\n{tail}")
    if status in (401, 403):
        return UsageError(
            f"the index refused the credentials ({status}); set TWINE_USERNAME and "
            f"TWINE_PASSWORD, a keyring entry, or a .pypirc section.\n{tail}"
        )
    if status in (429, 503):
        return IndexBusyError(
            f"the index is busy and asked to retry later ({status}). Files uploaded before stay "
            f"listed; run the same publish again to upload the rest.\n{tail}"
        )
    if status is not None or "ConnectionError" in output or "Max retries exceeded" in output:
        return IndexUnreachableError(f"the upload failed:\n{tail}")
    return UsageError(f"twine refused the upload:\n{tail}")


def _keyring_password(service: str, username: str) -> str | None:
    try:
        import keyring  # noqa: PLC0415 - ~0.12 s to import (-X importtime), publish only

        return keyring.get_password(service, username)
    except Exception:  # noqa: BLE001 - no keyring backend is the common case
        return None


@dataclasses.dataclass(frozen=True)
class PublishReport:
    uploaded: tuple[str, ...]
    skipped: tuple[str, ...]


def publish(wheels: Sequence[Path], remote: RemoteIndex, uploader: Uploader) -> PublishReport:
    """Upload what the remote lacks; skip what it has; refuse conflicts before any upload."""
    plan = plan_publish(local_wheels(wheels), remote)
    if plan.upload:
        uploader.upload([w.path for w in plan.upload])
    return PublishReport(
        uploaded=tuple(w.path.name for w in plan.upload),
        skipped=tuple(w.path.name for w in plan.present),
    )
