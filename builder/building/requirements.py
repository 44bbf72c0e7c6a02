"""The files a build's build requirements are installed from, chosen and verified on the host.

For each pinned build requirement of a job (:attr:`BuildJob.build_requires`), the file comes
from prewheel's own wheelhouse (a wheel it built for the target: ``built`` in this run,
``reused`` from an earlier one) or from the index file the plan chose (``upstream``, downloaded
and checked against its sha256 before the build sees it). A requirement prewheel has no file
for is ``missing``: without ``--hermetic`` pip fetches it during the build (``fetched`` in the
records); with it, the job fails naming it before any container starts.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..closure import BuildSystem
from ..errors import PrewheelError
from ..plan import INSTALLABLE, BuildKey, BuildRequirement, Status
from ..upstream.models import DistFile
from ..wheelhouse import Wheelhouse
from .jobs import BuildJob


class Origin(enum.StrEnum):
    BUILT = "built"  # prewheel built it in this run
    REUSED = "reused"  # prewheel built it before (its wheelhouse)
    UPSTREAM = "upstream"  # the index file the plan chose, verified by sha256
    MISSING = "missing"  # prewheel has no file for it
    FETCHED = "fetched"  # pip fetched it during the build (recorded after the build)


@dataclasses.dataclass(frozen=True)
class ProvidedRequirement:
    """One pinned build requirement and the file prewheel offers the build for it."""

    name: str
    version: str
    dynamic: bool
    origin: Origin
    filename: str = ""
    sha256: str = ""
    path: Path | None = None  # the verified local file (set once fetched)
    dist: DistFile | None = None  # UPSTREAM: what to download
    why: str = ""  # MISSING: why prewheel has no file

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def key_line(self) -> str:
        """What the cache key records: the pin and the sha256 of the file installed."""
        return f"{self.pin} {self.sha256 or 'from-the-index'}"

    def record(self) -> dict[str, Any]:
        """The manifest's and ``--json``'s account of it."""
        return {
            "name": self.name,
            "version": self.version,
            "origin": self.origin.value,
            "filename": self.filename,
            "sha256": self.sha256,
            "dynamic": self.dynamic,
        }


@dataclasses.dataclass(frozen=True)
class BuildEnvironment:
    """What the in-container script makes the build's isolated environment from."""

    system: BuildSystem
    requirements: tuple[ProvidedRequirement, ...]
    hermetic: bool
    known_dynamic: tuple[str, ...] | None

    @property
    def files(self) -> list[tuple[str, Path]]:
        """``(sha256, path)`` of each offered file: one directory per sha256 where the build
        finds them, so two targets' wheels of one name never mix in one container."""
        return [(r.sha256, r.path) for r in self.requirements if r.path is not None]

    def spec(self, offered_root: str) -> dict[str, Any]:
        return {
            **self.system.to_json(),
            "constraints": [r.pin for r in self.requirements],
            "find_links": [f"{offered_root}/{sha256}" for sha256, _path in self.files],
            "hermetic": self.hermetic,
            "known_dynamic": list(self.known_dynamic) if self.known_dynamic is not None else None,
        }


class DynamicRequirementsFound(PrewheelError):
    """The backend asked for build requirements not planned yet: plan them, then build."""

    def __init__(self, requires: Sequence[str]) -> None:
        super().__init__(
            "its backend asked for build requirements that were not planned yet: "
            + (", ".join(requires) or "none")
        )
        self.requires = tuple(requires)


def provide(
    job: BuildJob, wheelhouse: Wheelhouse, built_now: Collection[BuildKey]
) -> tuple[ProvidedRequirement, ...]:
    """The file for each of ``job``'s build requirements (none if they were not planned)."""
    return tuple(
        _provide_one(requirement, job, wheelhouse, built_now)
        for requirement in job.build_requires or ()
    )


def _provide_one(
    requirement: BuildRequirement,
    job: BuildJob,
    wheelhouse: Wheelhouse,
    built_now: Collection[BuildKey],
) -> ProvidedRequirement:
    pinned = requirement.requirement
    target = job.target.identifier
    base = ProvidedRequirement(
        str(pinned.name), str(pinned.version), requirement.dynamic, Origin.MISSING
    )
    entry = wheelhouse.find(str(pinned.name), str(pinned.version), target)
    if entry is not None:
        origin = (
            Origin.BUILT if (pinned.name, pinned.version, target) in built_now else Origin.REUSED
        )
        return dataclasses.replace(
            base,
            origin=origin,
            filename=entry.filename,
            sha256=entry.sha256,
            path=wheelhouse.wheel_path(entry),
        )
    cell = requirement.cell
    if cell.status in INSTALLABLE and cell.file is not None and cell.file.sha256:
        return dataclasses.replace(
            base,
            origin=Origin.UPSTREAM,
            filename=cell.file.filename,
            sha256=cell.file.sha256.lower(),
            dist=cell.file,
        )
    if cell.status is Status.BUILD:
        why = "prewheel has not built it for this target (no wheel of it in the wheelhouse)"
    elif cell.status in INSTALLABLE:
        why = f"the index lists {cell.filename} without a sha256 hash"
    else:
        why = cell.reason or f"the plan says {cell.status.value}"
    return dataclasses.replace(base, why=why)


def missing_message(job: BuildJob, missing: Sequence[ProvidedRequirement]) -> str:
    """Why a hermetic build cannot start."""
    listed = "; ".join(f"{r.pin} ({r.why})" for r in missing)
    return (
        f"--hermetic: {job.label} needs build requirements prewheel has no verified file "
        f"for: {listed}. Let prewheel build them first (it does unless --no-build-deps is "
        "given), put their wheels on --our-index-url, or drop --hermetic to let pip fetch "
        "them."
    )


def installed_records(
    provided: Sequence[ProvidedRequirement], installed: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], ...]:
    """What the build environment held, each with where it came from: the files prewheel
    offered, or ``fetched`` for what pip took from the index itself."""
    offered = {(_normal(r.name), r.version): r for r in provided if r.origin is not Origin.MISSING}
    records = []
    for item in installed:
        name, version = str(item.get("name", "")), str(item.get("version", ""))
        match = offered.get((_normal(name), version))
        if match is not None:
            records.append(match.record())
        else:
            records.append(
                {
                    "name": name,
                    "version": version,
                    "origin": Origin.FETCHED.value,
                    "filename": "",
                    "sha256": "",
                    "dynamic": False,
                }
            )
    return tuple(sorted(records, key=lambda r: (_normal(r["name"]), r["version"])))


def _normal(name: str) -> str:
    return str(canonicalize_name(name))
