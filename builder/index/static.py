"""A static simple-repository tree: PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata, PEP 700.

Layout under the tree's root (every URL is one file, so any static web server can serve it)::

    simple/index.html               root project list (PEP 503)
    simple/index.json               the same as PEP 691 JSON
    simple/<project>/index.html     one page per normalized project name
    simple/<project>/index.json
    files/<filename>                the wheels
    files/<filename>.metadata       their METADATA (PEP 658/714)
    .prewheel/catalog.json          what is listed (the source of truth for the pages)
    .prewheel/lock                  held by every writer

The page renderers are pure functions of :class:`FileRecord` lists. :class:`StaticIndex` is the
writer: it holds a file lock for every change, copies files and writes pages by temp file +
``os.replace`` (a reader sees the old page or the new one, never half of one), puts files in
place before any page lists them, and rewrites only the pages whose bytes changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import html
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import filelock
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import IntegrityError, PublishConflictError
from ..files import file_sha256
from .wheelinfo import WheelInfo, inspect_wheel

API_VERSION = "1.1"
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_CONTENT_TYPE = "application/vnd.pypi.simple.v1+html"
CATALOG_VERSION = 1
LOCK_TIMEOUT = 300.0


class Origin(enum.StrEnum):
    BUILT = "built"  # built by prewheel (or uploaded)
    UPSTREAM = "upstream"  # fetched from the upstream index (complete mode)


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """One listed file, as the catalog keeps it and the pages show it."""

    filename: str
    project: NormalizedName
    version: str
    sha256: str
    size: int
    upload_time: str  # ISO 8601 UTC, "2026-01-02T03:04:05.000000Z"
    metadata_sha256: str
    requires_python: str | None = None
    origin: Origin = Origin.BUILT

    @classmethod
    def from_wheel(
        cls, info: WheelInfo, upload_time: datetime.datetime, origin: Origin = Origin.BUILT
    ) -> FileRecord:
        return cls(
            filename=info.filename,
            project=info.name,
            version=str(info.version),
            sha256=info.sha256,
            size=info.size,
            upload_time=format_time(upload_time),
            metadata_sha256=info.metadata_sha256,
            requires_python=info.requires_python,
            origin=origin,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["project"] = canonicalize_name(values["project"])
        values["origin"] = Origin(values.get("origin", Origin.BUILT))
        return cls(**values)


def format_time(moment: datetime.datetime) -> str:
    """PEP 700 upload-time: UTC, ``Z`` suffix, microseconds."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_url(filename: str) -> str:
    """URL of a file relative to a project page ``simple/<project>/``."""
    return "../../files/" + quote(filename)


def _sorted_files(files: Iterable[FileRecord]) -> list[FileRecord]:
    return sorted(files, key=lambda f: (Version(f.version), f.filename))


def render_project_html(project: NormalizedName, files: Iterable[FileRecord]) -> bytes:
    """PEP 503 page with sha256 fragments, escaped requires-python and PEP 714 metadata."""
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>Links for {html.escape(project)}</title>",
        "</head>",
        "<body>",
        f"<h1>Links for {html.escape(project)}</h1>",
    ]
    for record in _sorted_files(files):
        attributes = [f'href="{html.escape(file_url(record.filename))}#sha256={record.sha256}"']
        if record.requires_python:
            attributes.append(f'data-requires-python="{html.escape(record.requires_python)}"')
        metadata = f"sha256={record.metadata_sha256}"
        attributes.append(f'data-core-metadata="{metadata}"')
        attributes.append(f'data-dist-info-metadata="{metadata}"')
        lines.append(f"<a {' '.join(attributes)}>{html.escape(record.filename)}</a><br>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines).encode()


def render_project_json(project: NormalizedName, files: Iterable[FileRecord]) -> bytes:
    """PEP 691 page with PEP 700 ``versions``, ``size`` and ``upload-time``."""
    ordered = _sorted_files(files)
    versions = sorted({f.version for f in ordered}, key=Version)
    document = {
        "meta": {"api-version": API_VERSION},
        "name": project,
        "versions": versions,
        "files": [
            {
                "filename": record.filename,
                "url": file_url(record.filename),
                "hashes": {"sha256": record.sha256},
                "requires-python": record.requires_python,
                "core-metadata": {"sha256": record.metadata_sha256},
                "dist-info-metadata": {"sha256": record.metadata_sha256},
                "size": record.size,
                "upload-time": record.upload_time,
                "yanked": False,
            }
            for record in ordered
        ],
    }
    return (json.dumps(document, indent=1) + "\n").encode()


def render_root_html(projects: Iterable[NormalizedName]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        "<title>Simple index</title>",
        "</head>",
        "<body>",
        *(f'<a href="{quote(p)}/">{html.escape(p)}</a><br>' for p in sorted(projects)),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode()


def render_root_json(projects: Iterable[NormalizedName]) -> bytes:
    document = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": p} for p in sorted(projects)],
    }
    return (json.dumps(document, indent=1) + "\n").encode()


def atomic_write(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` via a temp file and rename; False if already equal."""
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return False
    with _atomic_stream(path) as stream:
        stream.write(data)
    return True


@contextlib.contextmanager
def _atomic_stream(path: Path) -> Iterator[BinaryIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
        dir=path.parent, prefix=".tmp-", delete=False
    )
    try:
        with handle:
            yield handle  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())
        Path(handle.name).chmod(0o644)
        Path(handle.name).replace(path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class AddResult(enum.StrEnum):
    ADDED = "added"
    UNCHANGED = "unchanged"  # the same bytes were already listed


@dataclasses.dataclass(frozen=True)
class SyncReport:
    added: tuple[str, ...]
    unchanged: tuple[str, ...]


class StaticIndex:
    """The writer (and reader) of one static tree. Every change holds ``.prewheel/lock``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.simple = root / "simple"
        self.files = root / "files"
        self.state = root / ".prewheel"

    @property
    def catalog_path(self) -> Path:
        return self.state / "catalog.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.state.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.state / "lock", timeout=LOCK_TIMEOUT)
        try:
            with lock:
                yield
        except filelock.Timeout as exc:
            raise PublishConflictError(
                f"another prewheel process has held the lock on {self.root} for more than "
                f"{LOCK_TIMEOUT:g} s; wait for it to finish or remove a stale {lock.lock_file}."
            ) from exc

    def catalog(self) -> dict[str, FileRecord]:
        try:
            data = json.loads(self.catalog_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"{self.catalog_path} is unreadable ({exc}); regenerate the index into an empty "
                "directory."
            ) from exc
        return {f["filename"]: FileRecord.from_json(f) for f in data.get("files", [])}

    def _save_catalog(self, catalog: Mapping[str, FileRecord]) -> None:
        document = {
            "version": CATALOG_VERSION,
            "files": [catalog[name].to_json() for name in sorted(catalog)],
        }
        atomic_write(self.catalog_path, (json.dumps(document, indent=1) + "\n").encode())

    def initialise(self) -> None:
        """Create an empty, valid tree (root pages) if none exists."""
        with self.locked():
            self._render(self.catalog(), projects=set())

    def add(
        self,
        source: Path,
        info: WheelInfo,
        *,
        upload_time: datetime.datetime | None = None,
        origin: Origin = Origin.BUILT,
        move: bool = False,
    ) -> AddResult:
        """List the validated wheel ``source`` (described by ``info``).

        Same filename with the same hash: nothing changes. Same filename, different hash:
        :class:`~builder.errors.PublishConflictError`, and the listed file stays untouched.
        ``move`` renames ``source`` into place (it must be on the same file system).
        """
        with self.locked():
            catalog = self.catalog()
            result = self._add_locked(
                catalog, source, info, upload_time=upload_time, origin=origin, move=move
            )
            if result is AddResult.ADDED:
                self._save_catalog(catalog)
                self._render(catalog, projects={info.name})
            return result

    def sync(self, sources: Iterable[Path], origin: Origin = Origin.BUILT) -> SyncReport:
        """Add every wheel in ``sources`` (validated), incrementally: known files are skipped
        by hash, and only pages of projects that gained files are rewritten."""
        added: list[str] = []
        unchanged: list[str] = []
        with self.locked():
            catalog = self.catalog()
            touched: set[NormalizedName] = set()
            try:
                for source in sources:
                    known = catalog.get(source.name)
                    if known is not None:
                        self._check_same(known, file_sha256(source))
                        unchanged.append(source.name)
                        continue
                    info = inspect_wheel(source)
                    self._add_locked(
                        catalog, source, info, upload_time=None, origin=origin, move=False
                    )
                    touched.add(info.name)
                    added.append(source.name)
            finally:  # list what was added before a bad wheel stopped the run
                if added:
                    self._save_catalog(catalog)
                self._render(catalog, projects=touched)
        return SyncReport(tuple(added), tuple(unchanged))

    def _check_same(self, known: FileRecord, sha256: str) -> None:
        if known.sha256 != sha256:
            raise PublishConflictError(
                f"{known.filename} is already listed in {self.root} with sha256 {known.sha256}, "
                f"and the new file has {sha256}. An index never changes a published file: "
                "give the rebuilt wheel a new build number (e.g. ...-1-cp311-...) or remove the "
                "old file from the index deliberately."
            )

    def _add_locked(
        self,
        catalog: dict[str, FileRecord],
        source: Path,
        info: WheelInfo,
        *,
        upload_time: datetime.datetime | None,
        origin: Origin,
        move: bool,
    ) -> AddResult:
        known = catalog.get(info.filename)
        if known is not None:
            self._check_same(known, info.sha256)
            return AddResult.UNCHANGED
        target = self.files / info.filename
        atomic_write(self.files / f"{info.filename}.metadata", info.metadata)
        if move:
            self.files.mkdir(parents=True, exist_ok=True)
            source.chmod(0o644)
            source.replace(target)
        else:
            with _atomic_stream(target) as stream, source.open("rb") as original:
                shutil.copyfileobj(original, stream)
        moment = upload_time or datetime.datetime.now(datetime.UTC)
        catalog[info.filename] = FileRecord.from_wheel(info, moment, origin)
        return AddResult.ADDED

    def _render(self, catalog: Mapping[str, FileRecord], projects: set[NormalizedName]) -> None:
        by_project: dict[NormalizedName, list[FileRecord]] = {}
        for record in catalog.values():
            by_project.setdefault(record.project, []).append(record)
        for project in sorted(projects):
            files = by_project.get(project, [])
            atomic_write(self.simple / project / "index.html", render_project_html(project, files))
            atomic_write(self.simple / project / "index.json", render_project_json(project, files))
        atomic_write(self.simple / "index.html", render_root_html(by_project))
        atomic_write(self.simple / "index.json", render_root_json(by_project))

    def rebuild_pages(self) -> None:
        """Rewrite every page from the catalog (after an upgrade of the renderer)."""
        with self.locked():
            catalog = self.catalog()
            self._render(catalog, projects={r.project for r in catalog.values()})
