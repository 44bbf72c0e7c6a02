"""The availability plan: for each pinned requirement x target, what pip there would install.

Pure: :func:`make_plan` takes the requirements, the targets and the index pages already
fetched (see :mod:`builder.upstream`) and decides every cell without I/O.
"""

from __future__ import annotations

import dataclasses
import enum

from .requirements import PinnedRequirement
from .targets import Target
from .upstream.models import DistFile


class Status(enum.StrEnum):
    WHEEL = "wheel"  # a binary wheel for this target exists upstream
    PURE = "pure"  # a py3-none-any (pure) wheel fits
    OURS = "ours"  # a fitting wheel exists only on our (extra) index
    BUILD = "build"  # only an sdist fits: pip would compile it
    EXCLUDED = "excluded"  # the requirement's marker is false on this target
    UNAVAILABLE = "unavailable"  # nothing installable (no fitting wheel, no sdist)


@dataclasses.dataclass(frozen=True)
class Cell:
    status: Status
    file: DistFile | None = None  # the wheel pip would pick, or the sdist for BUILD
    reason: str = ""  # human-readable detail (e.g. requires-python mismatch, yanked)


@dataclasses.dataclass(frozen=True)
class PlanRow:
    requirement: PinnedRequirement
    cells: dict[str, Cell]  # target identifier -> cell


@dataclasses.dataclass(frozen=True)
class Gap:
    """A cell that must be built: the requirement, the target and the sdist to build from."""

    requirement: PinnedRequirement
    target: Target
    sdist: DistFile


@dataclasses.dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    rows: tuple[PlanRow, ...]

    def gaps(self) -> list[Gap]:
        result = []
        for row in self.rows:
            for target in self.targets:
                cell = row.cells[target.identifier]
                if cell.status is Status.BUILD and cell.file is not None:
                    result.append(Gap(row.requirement, target, cell.file))
        return result
