"""Find where a static tree disagrees with its catalog, so a writer can put it right.

The catalog (``.prewheel/catalog.json``) is the truth; everything else is derived from it or
is the leftover of a writer that was killed. :func:`survey_files` and :func:`survey_pages`
compare the tree with the catalog and a fresh render of its pages; they only read.
:class:`Survey` collects what they found and says it in words. Applying the fixes (under the
writer lock) is :meth:`builder.index.static.StaticIndex.repair`.

What a kill can leave, given the writer's order (metadata, wheel, catalog, pages):

* temp files (``.tmp-*``) of the atomic writer, anywhere in the tree;
* spool files (``.prewheel/incoming/.upload-<pid>-*``, ``.mirror-<pid>-*``) of a dead process;
* files in ``files/`` that the catalog does not list (placed, but the catalog was not saved);
* pages that are missing or older than the catalog (saved, but not rendered yet).

A listed wheel that is missing or altered, or a wrong ``.metadata``, cannot come from a kill
(files are in place before the catalog names them); the survey reports it too, and the repair
un-lists such a wheel (the next ``prewheel index`` of the wheelhouse lists it again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import IntegrityError
from ..files import file_sha256, pid_alive
from .wheelinfo import inspect_wheel

TEMP_PREFIX = ".tmp-"  # temp files of the atomic writer, only ever written under the lock
_SPOOL = re.compile(r"^\.(?:upload|mirror)-(?P<pid>\d+)-[0-9a-f]+$")
_PAGE_NAMES = ("index.html", "index.json")


class Listed(Protocol):
    """What the survey needs of a catalog entry (:class:`~builder.index.static.FileRecord`)."""

    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def metadata_sha256(self) -> str: ...


@dataclasses.dataclass
class Survey:
    """Everything in a tree that disagrees with its catalog; empty when the tree is sound."""

    root: Path
    interrupted: bool = False  # the dirty mark of a writer that did not finish
    leftovers: list[Path] = dataclasses.field(default_factory=list)
    unlisted: list[Path] = dataclasses.field(default_factory=list)
    broken: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, bytes] = dataclasses.field(default_factory=dict)
    stale_pages: list[Path] = dataclasses.field(default_factory=list)
    orphan_pages: list[Path] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.findings())

    def findings(self) -> list[str]:
        """One line per problem, paths relative to the tree."""
        lines = ["a writer was killed before it finished (.prewheel/dirty)"] * self.interrupted
        lines += [f"leftover of a dead writer: {self._rel(p)}" for p in self.leftovers]
        lines += [f"file not in the catalog: {self._rel(p)}" for p in self.unlisted]
        lines += [f"listed wheel missing or altered: files/{name}" for name in self.broken]
        lines += [f"missing or wrong metadata: files/{name}.metadata" for name in self.metadata]
        lines += [f"page missing or stale: {self._rel(p)}" for p in self.stale_pages]
        lines += [
            f"page of a project not in the catalog: {self._rel(p)}" for p in self.orphan_pages
        ]
        return lines

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def dead_spools(incoming: Path) -> list[Path]:
    """Spool files in ``incoming`` whose writing process is gone (or that no process owns)."""
    if not incoming.is_dir():
        return []
    dead = []
    for path in sorted(incoming.iterdir()):
        match = _SPOOL.match(path.name)
        if match is None or not pid_alive(int(match["pid"])):
            dead.append(path)
    return dead


def temp_files(directories: Iterable[Path]) -> list[Path]:
    """Temp files of the atomic writer directly inside ``directories``."""
    found: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            found += sorted(directory.glob(TEMP_PREFIX + "*"))
    return found


def survey_files(files: Path, catalog: Mapping[str, Listed], survey: Survey, *, deep: bool) -> None:
    """Unlisted files, listed wheels missing or altered (by size; by sha256 when ``deep``),
    and wrong ``.metadata`` files (with the right bytes read from the wheel)."""
    expected = set(catalog) | {f"{name}.metadata" for name in catalog}
    if files.is_dir():
        survey.unlisted += sorted(
            p for p in files.iterdir() if p.name not in expected and not _is_temp(p)
        )
    for name in sorted(catalog):
        record = catalog[name]
        wheel = files / name
        if not _wheel_intact(wheel, record, deep=deep):
            survey.broken.append(name)
            continue
        metadata = files / f"{name}.metadata"
        if _sha256_or_none(metadata) == record.metadata_sha256:
            continue
        recovered = _metadata_from_wheel(wheel, name)
        if recovered is not None and hashlib.sha256(recovered).hexdigest() == (
            record.metadata_sha256
        ):
            survey.metadata[name] = recovered
        else:
            survey.broken.append(name)


def survey_pages(simple: Path, pages: Mapping[Path, bytes], survey: Survey) -> None:
    """Pages missing or different from ``pages`` (a fresh render, paths relative to the tree's
    root) and pages of projects that are not listed at all."""
    root = survey.root
    for relative, data in sorted(pages.items()):
        path = root / relative
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        survey.stale_pages.append(path)
    if not simple.is_dir():
        return
    for directory in sorted(p for p in simple.iterdir() if p.is_dir()):
        for name in _PAGE_NAMES:
            page = directory / name
            if page.is_file() and page.relative_to(root) not in pages:
                survey.orphan_pages.append(page)


def _is_temp(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX)


def _wheel_intact(path: Path, record: Listed, *, deep: bool) -> bool:
    try:
        if path.stat().st_size != record.size:
            return False
        return not deep or file_sha256(path) == record.sha256
    except OSError:
        return False


def _sha256_or_none(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _metadata_from_wheel(path: Path, filename: str) -> bytes | None:
    try:
        return inspect_wheel(path, filename=filename).metadata
    except (IntegrityError, OSError):
        return None
