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
    .prewheel/dirty                 present while a writer changes the tree
    .prewheel/incoming/             uploads and downloads being received (each flock-ed by its
                                    writer while it lives)

The page renderers are pure functions of :class:`FileRecord` lists. :class:`StaticIndex` is the
writer: it holds a file lock for every change and writes every file by temp file +
``os.replace`` (a reader sees the old file or the new one, never half of one). The order of a
change is: mark the tree dirty; put ``<wheel>.metadata``, then ``<wheel>`` in ``files/``; save
the catalog; render the project pages, then the root pages; clear the mark. So a page only
links files that are in place, and a kill at any point leaves either unlisted files (removed by
the next writer) or a catalog the pages do not match yet (rendered by the next writer): see
:mod:`builder.index.repair`, which every writer runs when it finds the mark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import html
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import filelock
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import IndexBusyError, IntegrityError, PublishConflictError
from ..files import TEMP_PREFIX, atomic_write, atomic_writer, file_sha256
from .repair import (
    Survey,
    dead_spools,
    remove_dead_spool,
    remove_dead_spools,
    spool,
    survey_files,
    survey_pages,
    temp_files,
)
from .wheelinfo import WheelInfo, WheelKey, inspect_wheel, wheel_key

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


def _distinct_versions(ordered: Iterable[FileRecord]) -> list[str]:
    """Each version once (``1.0`` and ``1.0.0`` are one), spelled as its first file spells it."""
    spelled: dict[Version, str] = {}
    for record in ordered:
        spelled.setdefault(Version(record.version), record.version)
    return [spelled[version] for version in sorted(spelled)]


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
    versions = _distinct_versions(ordered)
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


def render_pages(catalog: Mapping[str, FileRecord]) -> dict[Path, bytes]:
    """Every page of the tree, by path relative to the root, as a fresh render of ``catalog``."""
    pages: dict[Path, bytes] = {}
    by_project = records_by_project(catalog)
    for project, files in by_project.items():
        pages[Path("simple", project, "index.html")] = render_project_html(project, files)
        pages[Path("simple", project, "index.json")] = render_project_json(project, files)
    pages[Path("simple", "index.html")] = render_root_html(by_project)
    pages[Path("simple", "index.json")] = render_root_json(by_project)
    return pages


def records_by_project(
    catalog: Mapping[str, FileRecord],
) -> dict[NormalizedName, list[FileRecord]]:
    by_project: dict[NormalizedName, list[FileRecord]] = {}
    for record in catalog.values():
        by_project.setdefault(record.project, []).append(record)
    return by_project


class AddResult(enum.StrEnum):
    ADDED = "added"
    UNCHANGED = "unchanged"  # the same bytes were already listed


@dataclasses.dataclass(frozen=True)
class SyncReport:
    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    repaired: tuple[str, ...] = ()  # what the run found wrong in the tree and put right


class StaticIndex:
    """The writer (and reader) of one static tree. Every change holds ``.prewheel/lock``."""

    def __init__(self, root: Path, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.root = root
        self.simple = root / "simple"
        self.files = root / "files"
        self.state = root / ".prewheel"
        self.incoming = self.state / "incoming"
        self.lock_timeout = lock_timeout

    @property
    def catalog_path(self) -> Path:
        return self.state / "catalog.json"

    @property
    def dirty_path(self) -> Path:
        return self.state / "dirty"

    def spool(self, kind: str) -> contextlib.AbstractContextManager[Path]:
        """A new file in ``incoming/`` for an upload or a download, locked by this process
        until the block ends (:func:`~builder.index.repair.spool`); a repair removes it only
        once that lock is free, i.e. its writer has gone."""
        return spool(self.incoming, kind)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writer lock (released by the system if this process dies)."""
        self.state.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.state / "lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise IndexBusyError(
                f"another prewheel process kept this index busy (.prewheel/lock) for more than "
                f"{self.lock_timeout:g} s; nothing was changed. Retry when it has finished (the "
                "lock of a killed process is released by the system: there is nothing to remove)."
            ) from None
        try:
            yield
        finally:
            lock.release()

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
        _write_page(self.catalog_path, (json.dumps(document, indent=1) + "\n").encode())

    # --- crash consistency --------------------------------------------------------------

    def survey(self, *, deep: bool = False) -> Survey:
        """What disagrees with the catalog (call under :meth:`locked`); ``deep`` also hashes
        every listed wheel."""
        catalog = self.catalog()
        found = Survey(self.root, interrupted=self.dirty_path.exists())
        found.leftovers += dead_spools(self.incoming)
        found.leftovers += temp_files(self._directories())
        survey_files(self.files, catalog, found, deep=deep)
        kept = {name: r for name, r in catalog.items() if name not in found.broken}
        survey_pages(self.simple, render_pages(kept), found)
        return found

    def check(self, *, deep: bool = True) -> Survey:
        """The survey, under the lock, changing nothing."""
        with self.locked():
            return self.survey(deep=deep)

    def repair(self, *, deep: bool = False) -> Survey:
        """Put the tree in line with its catalog (under the lock); return what was wrong.
        A tree that does not exist yet is created (and that is not reported)."""
        with self.locked():
            self._create_if_missing()
            return self._repair_locked(deep=deep)

    def _create_if_missing(self) -> None:
        """An empty catalog and root pages for a new tree; refuse files without a catalog (a
        repair would delete them all as unlisted)."""
        if self.catalog_path.exists():
            return
        if self.files.is_dir() and any(self.files.iterdir()):
            raise IntegrityError(
                f"{self.root} holds files/ but no .prewheel/catalog.json, the list of what it "
                "serves; restore the catalog from a backup, or index the wheelhouse into an "
                "empty directory. Nothing was changed."
            )
        self.files.mkdir(parents=True, exist_ok=True)
        self._save_catalog({})
        self._render({}, projects=set())

    def _repair_locked(self, *, deep: bool) -> Survey:
        """Fix what :meth:`survey` finds, with the tree marked dirty throughout (a repair killed
        half-way is finished by the next writer, as any change is). A wheel found missing or
        altered is un-listed in the writer's order reversed: catalog, pages, then the pages of
        projects left without files and the wheel's own files, so no page links a removed
        file at any point."""
        found = self.survey(deep=deep)
        if not found:
            return found
        with self._changing():
            for path in found.leftovers:
                if path.parent == self.incoming:
                    remove_dead_spool(path)  # checked again, under its lock
                else:
                    path.unlink(missing_ok=True)
            for path in found.unlisted:
                path.unlink(missing_ok=True)
            catalog = self.catalog()
            for name in found.broken:
                catalog.pop(name, None)
            if found.broken:
                self._save_catalog(catalog)
            for name, metadata in found.metadata.items():
                _write_page(self.files / f"{name}.metadata", metadata)
            for relative, data in render_pages(catalog).items():
                _write_page(self.root / relative, data)
            for page in found.orphan_pages:  # no longer linked from the root pages
                page.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    page.parent.rmdir()
            for name in found.broken:  # no longer listed or linked: nothing may serve them
                (self.files / name).unlink(missing_ok=True)
                (self.files / f"{name}.metadata").unlink(missing_ok=True)
        return found

    def _directories(self) -> list[Path]:
        """Where the atomic writer puts temp files."""
        projects = [p for p in self.simple.iterdir() if p.is_dir()] if self.simple.is_dir() else []
        return [self.state, self.files, self.simple, *projects]

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, FileRecord]]:
        """Lock; repair what a killed writer left (or just its spool files); yield the catalog."""
        with self.locked():
            self._create_if_missing()
            if self.dirty_path.exists():
                self._repair_locked(deep=False)
            else:
                remove_dead_spools(self.incoming)
            yield self.catalog()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Mark the tree dirty for the duration of a change or a repair (the lock is held); a
        change that raises leaves the mark, so the next writer repairs."""
        self.dirty_path.touch()
        yield
        self.dirty_path.unlink(missing_ok=True)

    # --- writing ------------------------------------------------------------------------

    def initialise(self) -> Survey:
        """Create an empty, valid tree if none exists and repair an existing one."""
        return self.repair()

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

        The same wheel (:func:`~builder.index.wheelinfo.wheel_key`) with the same hash: nothing
        changes (its pages are rewritten if they are missing or stale). The same wheel with a
        different hash: :class:`~builder.errors.PublishConflictError`, and the listed file
        stays untouched. ``move`` renames ``source`` into place (same file system).
        """
        with self._writing() as catalog:
            known = _listed_by_key(catalog).get(info.key)
            if known is not None:
                _check_same(known, info.filename, info.sha256)
                with self._changing():  # re-render: a missing or stale page comes back
                    self._render(catalog, projects={info.name})
                return AddResult.UNCHANGED
            moment = upload_time or datetime.datetime.now(datetime.UTC)
            with self._changing():
                self._place(source, info, move=move)
                catalog[info.filename] = FileRecord.from_wheel(info, moment, origin)
                self._save_catalog(catalog)
                self._render(catalog, projects={info.name})
            return AddResult.ADDED

    def sync(self, sources: Iterable[Path], origin: Origin = Origin.BUILT) -> SyncReport:
        """List every wheel in ``sources``, all or nothing, then repair the whole tree.

        Every wheel is validated first (a file already listed under its name only by hash);
        if any is invalid or conflicts with a listed wheel, :class:`IntegrityError` or
        :class:`PublishConflictError` names every such file and nothing is listed. Only pages
        whose bytes change are rewritten.
        """
        sources = list(sources)
        infos, unchanged = self._validate_batch(sources, self.catalog())
        with self._writing() as catalog:
            listed = _listed_by_key(catalog)
            _refuse_conflicts(
                [(i.filename, i.sha256, listed[i.key]) for i in infos if i.key in listed]
            )
            unchanged += [i.filename for i in infos if i.key in listed]
            new = [i for i in infos if i.key not in listed]
            if new:
                self._add_batch(catalog, {s.name: s for s in sources}, new)
            repaired = self._repair_locked(deep=False)
        return SyncReport(
            tuple(i.filename for i in new), tuple(sorted(unchanged)), tuple(repaired.findings())
        )

    def _validate_batch(
        self, sources: list[Path], catalog: Mapping[str, FileRecord]
    ) -> tuple[list[WheelInfo], list[str]]:
        """(wheels to add or compare by key, names already listed with the same bytes);
        raises naming every invalid wheel and every conflict within the batch."""
        infos: list[WheelInfo] = []
        unchanged: list[str] = []
        problems: list[str] = []
        conflicts: list[tuple[str, str, FileRecord]] = []
        for source in sources:
            known = catalog.get(source.name)
            try:
                if known is not None:
                    digest = file_sha256(source)
                    if digest == known.sha256:
                        unchanged.append(source.name)
                    else:
                        conflicts.append((source.name, digest, known))
                    continue
                infos.append(inspect_wheel(source))
            except IntegrityError as exc:
                problems.append(str(exc))
        if problems:
            raise IntegrityError(
                f"{len(problems)} of {len(sources)} wheels cannot be listed, so none was: "
                + " | ".join(problems)
            )
        _refuse_conflicts(conflicts + _batch_conflicts(infos))
        return _unique_by_key(infos), unchanged

    def _add_batch(
        self,
        catalog: dict[str, FileRecord],
        sources: Mapping[str, Path],
        new: list[WheelInfo],
    ) -> None:
        moment = datetime.datetime.now(datetime.UTC)
        with self._changing():
            for info in new:
                self._place(sources[info.filename], info, move=False)
                catalog[info.filename] = FileRecord.from_wheel(info, moment)
            self._save_catalog(catalog)
            self._render(catalog, projects={info.name for info in new})

    def _place(self, source: Path, info: WheelInfo, *, move: bool) -> None:
        """Put ``<wheel>.metadata``, then the wheel, into ``files/``."""
        target = self.files / info.filename
        _write_page(self.files / f"{info.filename}.metadata", info.metadata)
        if move:
            source.chmod(0o644)
            source.replace(target)
        else:
            with (
                atomic_writer(target, prefix=TEMP_PREFIX) as stream,
                source.open("rb") as original,
            ):
                shutil.copyfileobj(original, stream)

    def _render(self, catalog: Mapping[str, FileRecord], projects: set[NormalizedName]) -> None:
        by_project = records_by_project(catalog)
        for project in sorted(projects):
            files = by_project.get(project, [])
            _write_page(self.simple / project / "index.html", render_project_html(project, files))
            _write_page(self.simple / project / "index.json", render_project_json(project, files))
        _write_page(self.simple / "index.html", render_root_html(by_project))
        _write_page(self.simple / "index.json", render_root_json(by_project))

    def rebuild_pages(self) -> None:
        """Rewrite every page from the catalog (after an upgrade of the renderer)."""
        self.repair()


def _write_page(path: Path, data: bytes) -> bool:
    """Replace one file of the tree (a page, the catalog, a ``.metadata``) unless it already
    holds ``data``; its temp file is a ``.tmp-*`` the repair knows; whether it was written."""
    return atomic_write(path, data, prefix=TEMP_PREFIX, only_if_changed=True)


def _listed_by_key(catalog: Mapping[str, FileRecord]) -> dict[WheelKey, FileRecord]:
    return {wheel_key(record.filename): record for record in catalog.values()}


def _unique_by_key(infos: list[WheelInfo]) -> list[WheelInfo]:
    """One wheel per key (the batch holds no conflicts, so the others are the same bytes)."""
    return list({info.key: info for info in reversed(infos)}.values())[::-1]


def _batch_conflicts(infos: list[WheelInfo]) -> list[tuple[str, str, FileRecord]]:
    first: dict[WheelKey, WheelInfo] = {}
    conflicts = []
    for info in infos:
        seen = first.setdefault(info.key, info)
        if seen.sha256 != info.sha256:
            record = FileRecord.from_wheel(seen, datetime.datetime.now(datetime.UTC))
            conflicts.append((info.filename, info.sha256, record))
    return conflicts


def _check_same(known: FileRecord, filename: str, sha256: str) -> None:
    _refuse_conflicts([(filename, sha256, known)] if known.sha256 != sha256 else [])


def _refuse_conflicts(conflicts: list[tuple[str, str, FileRecord]]) -> None:
    """Raise naming every (new file, its sha256, the listed wheel it clashes with)."""
    clashes = [
        f"{name} (sha256 {digest}): the same wheel is already listed as {known.filename} "
        f"(sha256 {known.sha256})"
        for name, digest, known in conflicts
        if digest != known.sha256
    ]
    if clashes:
        raise PublishConflictError(
            "; ".join(clashes) + ". One project, version, build tag and set of tags is one "
            "file, and an index never changes a published file: give a rebuilt wheel a new "
            "build number (e.g. ...-1-cp311-...) or remove the old file from the index "
            "deliberately. Nothing was listed."
        )
