"""Complete mode: the index also serves every upstream file the planned targets install.

With only the wheels prewheel built (overlay), an install needs a second index, which brings
back dependency confusion and breaks uv's first-index strategy for targets we did not build.
A complete index mirrors, for every plan cell that upstream already covers (``wheel`` and
``pure``), the exact file pip would pick there (``Cell.file``), downloaded once and verified
against the sha256 the upstream page declared. Then a single ``--index-url`` serves the whole
install, offline.

:func:`upstream_files` is pure; downloading sits behind the :class:`Downloader` protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..building.checks import check_wheel_code
from ..errors import IntegrityError, PublishConflictError
from ..fetch import RetryPolicy, download, make_client
from ..plan import Plan, Status
from ..targets import Target
from ..upstream.models import DistFile
from .static import Origin, StaticIndex, SyncReport
from .wheelinfo import inspect_wheel, wheel_key

_MIRRORED = (Status.WHEEL, Status.PURE)
_RETRIES = 3
DOWNLOAD_DEADLINE = 1800.0  # seconds for one file, retries included


@dataclasses.dataclass(frozen=True)
class UpstreamFile:
    """An upstream wheel and the plan targets that install it."""

    file: DistFile
    targets: tuple[Target, ...] = ()

    @property
    def filename(self) -> str:
        return self.file.filename


def upstream_files(plan: Plan) -> list[UpstreamFile]:
    """The upstream wheels the plan's targets install, once each, sorted by filename, each with
    the targets that install it (whose code it must hold: see :func:`mirror`).

    ``build`` cells are served by the wheels prewheel built, ``ours`` by the overlay index,
    ``excluded``/``unavailable`` need nothing.
    """
    chosen: dict[str, DistFile] = {}
    targets: dict[str, list[Target]] = {}
    for row in plan.runtime_rows():
        for identifier, cell in row.cells.items():
            if cell.status in _MIRRORED and cell.file is not None and cell.file.is_wheel:
                chosen.setdefault(cell.file.filename, cell.file)
                target = _target(plan, identifier)
                listed = targets.setdefault(cell.file.filename, [])
                if target is not None and target not in listed:
                    listed.append(target)
    return [UpstreamFile(chosen[name], tuple(targets[name])) for name in sorted(chosen)]


def _target(plan: Plan, identifier: str) -> Target | None:
    return next((t for t in plan.targets if t.identifier == identifier), None)


class Downloader(Protocol):
    def download(self, file: DistFile, destination: Path) -> str:
        """Write the file to ``destination``, an existing spool file locked by the caller
        (open it for writing, which truncates it; never delete or replace it); return its
        sha256 hex digest."""
        ...


class HttpDownloader:
    """Streams files with prewheel's HTTP policy (:mod:`builder.fetch`): proxies and CA bundle
    from the host, transport errors, 5xx and 429 retried; each download, retries included, must
    end within ``deadline`` seconds."""

    def __init__(self, timeout: float = 60.0, deadline: float = DOWNLOAD_DEADLINE) -> None:
        self.policy = RetryPolicy(attempts=_RETRIES, deadline=deadline)
        self._client = make_client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def download(self, file: DistFile, destination: Path) -> str:
        return download(
            self._client,
            file.url,
            lambda: destination.open("wb"),
            policy=self.policy,
            what="the upstream index",
        )


@dataclasses.dataclass(frozen=True)
class MirrorReport:
    fetched: tuple[str, ...]
    present: tuple[str, ...]
    # what the code checks noted of mirrored wheels (runtime-dispatched newer ARM code)
    notes: tuple[str, ...] = ()


def mirror(
    index: StaticIndex, files: Iterable[UpstreamFile], downloader: Downloader
) -> MirrorReport:
    """Download, verify and list each upstream file the index does not hold yet.

    A file without a sha256 on the upstream page, or whose bytes do not match it, raises
    :class:`~builder.errors.IntegrityError` at once and is not listed. A wheel for a 32-bit
    ARM target whose code does not run there (ARMv7 code tagged ``linux_armv6l``, the other
    float ABI: :func:`~builder.building.checks.check_wheel_code`) is not listed either; the other
    files are still mirrored, then one :class:`~builder.errors.IntegrityError` names every
    refused file.
    """
    fetched: list[str] = []
    present: list[str] = []
    refused: list[str] = []
    notes: list[str] = []
    listed = {wheel_key(name): record for name, record in index.catalog().items()}
    for upstream in files:
        file = upstream.file
        expected = file.sha256
        if expected is None:
            raise IntegrityError(
                f"{file.url} has no sha256 on its index page, so it cannot be verified; "
                "complete mode only mirrors hashed files."
            )
        known = listed.get(wheel_key(file.filename))
        if known is not None:
            if known.sha256 != expected:
                raise PublishConflictError(
                    f"upstream lists {file.filename} with sha256 {expected}, but the index "
                    f"already lists the same wheel as {known.filename} with sha256 "
                    f"{known.sha256}; investigate before serving it (a re-uploaded upstream "
                    "file is a supply-chain red flag)."
                )
            present.append(file.filename)
            continue
        with index.spool("mirror") as temporary:
            actual = downloader.download(file, temporary)
            if actual != expected:
                raise IntegrityError(
                    f"{file.url} has sha256 {actual}, but its index page declares {expected}; "
                    "the download was altered. Nothing was listed."
                )
            info = inspect_wheel(temporary, filename=file.filename)
            problem, noted = _check_code(temporary, upstream)
            if problem:
                refused.append(problem)
                continue
            notes += noted
            index.add(temporary, info, origin=Origin.UPSTREAM, move=True)
        fetched.append(file.filename)
    if refused:
        raise IntegrityError(
            f"{len(refused)} upstream wheels were refused and not mirrored (the index lists "
            f"the {len(fetched)} others fetched now and {len(present)} already present): "
            + " ".join(refused)
        )
    return MirrorReport(tuple(fetched), tuple(present), tuple(notes))


def _check_code(wheel: Path, upstream: UpstreamFile) -> tuple[str, list[str]]:
    """Why the downloaded wheel's code does not run on one of its 32-bit ARM targets (or
    ""), and what the checks noted of it."""
    notes: list[str] = []
    for target in upstream.targets:
        if not target.arch.is_32bit_arm:
            continue
        try:
            noted = check_wheel_code(wheel, target, upstream=True, name=upstream.filename)
        except IntegrityError as error:
            return error.message, notes
        notes += [f"{upstream.filename}: {note}" for note in noted]
    return "", notes


@dataclasses.dataclass(frozen=True)
class IndexReport:
    """What :func:`write_index` did: the built wheels synced, and in complete mode the
    upstream files mirrored (None in overlay mode)."""

    synced: SyncReport
    mirrored: MirrorReport | None


def write_index(
    index: StaticIndex,
    wheels: Iterable[Path],
    *,
    plan: Plan | None = None,
    downloader: Downloader | None = None,
) -> IndexReport:
    """The index stage: list the built ``wheels`` in ``index`` (overlay mode) and, given the
    ``plan`` (complete mode), every upstream file its targets install, downloaded and verified
    (by ``downloader``, an :class:`HttpDownloader` unless given)."""
    synced = index.sync(wheels)
    if plan is None:
        return IndexReport(synced, None)
    own = downloader is None
    http = downloader or HttpDownloader()
    try:
        mirrored = mirror(index, upstream_files(plan), http)
    finally:
        if own and isinstance(http, HttpDownloader):
            http.close()
    return IndexReport(synced, mirrored)
