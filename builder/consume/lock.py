"""The hash-pinned lock: every requirement with a ``--hash`` for every file a target may install.

pip-tools' ``--generate-hashes`` only knows the files of the public index, so as soon as a wheel
exists only on the private index, ``pip install --require-hashes`` refuses it. The lock here is
written from the plan (which upstream wheel each target installs) plus the wheelhouse manifest
(the sha256 of each wheel prewheel built), so it allows exactly the files that the planned
targets install and nothing else: not an sdist, not a look-alike from another index.

Pure: :func:`lock_lines` decides, :func:`render_lock` formats; the caller writes the text with
:func:`builder.files.atomic_write`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from packaging.utils import canonicalize_name
from packaging.version import Version

from ..errors import RequirementsError
from ..plan import Plan, PlanRow, Status
from ..requirements import PinnedRequirement
from ..wheelhouse import WheelEntry

_UPSTREAM = (Status.WHEEL, Status.PURE, Status.OURS)


@dataclasses.dataclass(frozen=True)
class LockLine:
    """One requirement of the lock with the files it may install, per target."""

    requirement: PinnedRequirement
    files: tuple[tuple[str, str], ...]  # (filename, sha256 hex), sorted by filename

    @property
    def hashes(self) -> tuple[str, ...]:
        """``sha256:<hex>`` once per distinct digest, in filename order."""
        return tuple(dict.fromkeys(f"sha256:{digest}" for _, digest in self.files))


@dataclasses.dataclass(frozen=True)
class MissingFile:
    """A (requirement, target) cell with no hashable file to install."""

    requirement: PinnedRequirement
    target: str
    status: Status
    reason: str


def lock_lines(plan: Plan, built: Iterable[WheelEntry]) -> list[LockLine]:
    """The lock for ``plan``, taking built wheels' hashes from the wheelhouse ``built``.

    Raises :class:`~builder.errors.RequirementsError` naming every cell that still needs a
    build (or has nothing installable), since a lock without it would fail on that target.
    """
    by_cell = _built_by_cell(built)
    lines: list[LockLine] = []
    missing: list[MissingFile] = []
    for row in plan.runtime_rows():
        files, row_missing = _row_files(row, plan, by_cell)
        missing.extend(row_missing)
        if files:
            lines.append(LockLine(row.requirement, tuple(sorted(files.items()))))
    if missing:
        raise RequirementsError(_missing_message(missing))
    return lines


_CellKey = tuple[str, Version, str]  # (normalized name, version, target identifier)


def _built_by_cell(built: Iterable[WheelEntry]) -> dict[_CellKey, list[WheelEntry]]:
    result: dict[_CellKey, list[WheelEntry]] = {}
    for entry in built:
        key = (canonicalize_name(entry.name), Version(entry.version), entry.target)
        result.setdefault(key, []).append(entry)
    return result


def _row_files(
    row: PlanRow, plan: Plan, by_cell: dict[_CellKey, list[WheelEntry]]
) -> tuple[dict[str, str], list[MissingFile]]:
    files: dict[str, str] = {}
    missing: list[MissingFile] = []
    requirement = row.requirement
    for target in plan.targets:
        cell = row.cells.get(target.identifier)
        if cell is None or cell.status is Status.EXCLUDED:
            continue
        key = (requirement.name, requirement.version, target.identifier)
        if key in by_cell:
            files.update((entry.filename, entry.sha256) for entry in by_cell[key])
        elif cell.status in _UPSTREAM and cell.file is not None and cell.file.sha256:
            files[cell.file.filename] = cell.file.sha256
        else:
            reason = cell.reason or _default_reason(cell.status, cell.file is not None)
            missing.append(MissingFile(requirement, target.identifier, cell.status, reason))
    return files, missing


def _default_reason(status: Status, has_file: bool) -> str:
    if status is Status.BUILD:
        return "only an sdist exists and the wheelhouse has no wheel built for it"
    if status in _UPSTREAM and has_file:
        return "the index lists the wheel without a sha256"
    return "no installable file"


def _missing_message(missing: Sequence[MissingFile]) -> str:
    shown = "; ".join(
        f"{m.requirement.name}=={m.requirement.version} on {m.target} ({m.reason})"
        for m in missing[:8]
    )
    more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
    return (
        f"Cannot lock: {len(missing)} requirement x target cells have no wheel to pin: "
        f"{shown}{more}. Run 'prewheel build' for these gaps (and pass its wheelhouse with "
        "--wheelhouse), or drop the targets that cannot be served; a lock without them would "
        "make pip fail on that platform."
    )


def render_lock(lines: Sequence[LockLine], *, header: Sequence[str] = ()) -> str:
    """pip requirements-file text: ``name==version ; marker`` then one ``--hash`` per file.

    Markers are kept per line, so one lock serves every platform of a multi-arch image.
    """
    out = [f"# {text}" if text else "#" for text in header]
    for line in sorted(lines, key=lambda item: (item.requirement.name, str(item.requirement))):
        out.append(_requirement_text(line.requirement) + " \\")
        hashes = line.hashes
        for position, digest in enumerate(hashes):
            continuation = " \\" if position < len(hashes) - 1 else ""
            out.append(f"    --hash={digest}{continuation}")
    return "\n".join(out) + "\n"


def _requirement_text(requirement: PinnedRequirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f" ; {requirement.marker}" if requirement.marker is not None else ""
    return f"{requirement.name}{extras}=={requirement.version}{marker}"
