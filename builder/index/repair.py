"""Find where a static tree disagrees with its catalog, so a writer can put it right.

The catalog (``.prewheel/catalog.json``) is the truth; everything else is derived from it or
is the leftover of a writer that was killed. :func:`survey_files` and :func:`survey_pages`
compare the tree with the catalog and a fresh render of its pages; they only read.
:class:`Survey` collects what they found and says it in words. Applying the fixes (under the
writer lock) is :meth:`builder.index.static.StaticIndex.repair`.

What a kill can leave, given the writer's order (metadata, wheel, catalog, pages):

* temp files (``.tmp-*``) of the atomic writer, anywhere in the tree;
* spool files (``.prewheel/incoming/.upload-*``, ``.mirror-*``) that no process holds: a
  writer holds an exclusive ``flock`` on its spool file for as long as it writes it (see
  :func:`spool`), and the kernel releases the lock when the writer dies. That works across PID
  namespaces (``serve`` in a container, ``index --repair`` on the host) and, with working
  locks, across the hosts of a network file system, where a PID says nothing; the PID in the
  name is only information;
* files in ``files/`` that the catalog does not list (placed, but the catalog was not saved);
* pages that are missing or older than the catalog (saved, but not rendered yet).

A listed wheel that is missing or altered, or a wrong ``.metadata``, cannot come from a kill
(files are in place before the catalog names them); the survey reports it too, and the repair
un-lists such a wheel (the next ``prewheel index`` of the wheelhouse lists it again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from ..errors import IntegrityError
from ..files import TEMP_PREFIX, file_sha256
from .wheelinfo import inspect_wheel

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


@contextlib.contextmanager
def spool(incoming: Path, kind: str) -> Iterator[Path]:
    """A new empty file ``incoming/.<kind>-<pid>-<random>`` for an upload or a download,
    exclusively ``flock``-ed by this process until the block ends, then removed (unless the
    writer moved it into place meanwhile). Write it in place (open it for writing; never
    replace or re-create it): the lock is on the file, not on its name."""
    incoming.mkdir(parents=True, exist_ok=True)
    while True:
        path = incoming / f".{kind}-{os.getpid()}-{secrets.token_hex(8)}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # a repair holds it only to unlink it
            if _names(descriptor, path):
                break
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # a repair removed the new file before it was locked: again
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)  # releases the lock, after the name is gone


def dead_spools(incoming: Path) -> list[Path]:
    """Files in ``incoming`` whose lock nobody holds: leftovers of writers that died (or of an
    older prewheel, which did not lock). A spool locked by a live writer, in any PID namespace
    or on any host sharing the tree, is not listed. Only looks."""
    if not incoming.is_dir():
        return []
    dead = []
    for path in sorted(incoming.iterdir()):
        with _lock_if_free(path) as free:
            if free:
                dead.append(path)
    return dead


def remove_dead_spool(path: Path) -> bool:
    """Remove the spool file ``path`` if its lock is free, holding that lock meanwhile (a writer
    locking a new file at that moment then sees it gone and makes another); True if removed."""
    with _lock_if_free(path) as free:
        if free:
            path.unlink(missing_ok=True)
        return free


def remove_dead_spools(incoming: Path) -> list[Path]:
    """Remove every spool file in ``incoming`` that no live writer holds; return them."""
    return [path for path in dead_spools(incoming) if remove_dead_spool(path)]


@contextlib.contextmanager
def _lock_if_free(path: Path) -> Iterator[bool]:
    """Try to lock ``path`` without waiting. True (locked until the block ends) if nobody held
    it and ``path`` still names the locked file, or if ``path`` is a symbolic link (nothing of
    ours); False if a writer holds it, it is gone, or it cannot be opened to test its lock."""
    if path.is_symlink():
        yield True
        return
    descriptor = None
    for mode in (os.O_RDWR, os.O_RDONLY):  # NFS locks exclusively only what is open to write
        with contextlib.suppress(OSError):
            descriptor = os.open(path, mode | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            break
    if descriptor is None:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = _names(descriptor, path)
        except BlockingIOError:
            free = False
        yield free
    finally:
        os.close(descriptor)


def _names(descriptor: int, path: Path) -> bool:
    """Whether ``path`` still names the regular file open as ``descriptor``."""
    try:
        here = path.stat(follow_symlinks=False)
    except FileNotFoundError:
        return False
    there = os.fstat(descriptor)
    return stat.S_ISREG(there.st_mode) and (here.st_dev, here.st_ino) == (
        there.st_dev,
        there.st_ino,
    )


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
