"""Constructed plans and wheelhouse entries for the consume tests."""

from __future__ import annotations

import hashlib

from packaging.markers import Marker
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder.plan import Cell, Plan, PlanRow, Status
from builder.requirements import PinnedRequirement
from builder.targets import select_targets
from builder.upstream.models import DistFile
from builder.wheelhouse import WheelEntry

TARGETS = tuple(select_targets(platforms=["linux/amd64", "linux/arm/v7"]))
AMD64, ARMV7 = (t.identifier for t in TARGETS)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dist(filename: str, *, sha256: bool = True) -> DistFile:
    hashes = {"sha256": digest(filename)} if sha256 else {}
    return DistFile(filename=filename, url=f"https://index.invalid/files/{filename}", hashes=hashes)


def requirement(text: str, marker: str | None = None) -> PinnedRequirement:
    name, _, version = text.partition("==")
    return PinnedRequirement(
        canonicalize_name(name), Version(version), marker=Marker(marker) if marker else None
    )


def row(req: PinnedRequirement, amd64: Cell, armv7: Cell) -> PlanRow:
    return PlanRow(req, {AMD64: amd64, ARMV7: armv7})


def entry(filename: str, name: str, version: str, target: str) -> WheelEntry:
    return WheelEntry(
        filename=filename,
        sha256=digest("built " + filename),
        size=1,
        name=name,
        version=version,
        target=target,
        cache_key=digest(filename),
        inputs={},
        built_at="2026-01-01T00:00:00+00:00",
        builder="docker",
        log="",
    )


def example_plan() -> Plan:
    """pyyaml: wheel on amd64, a gap on armv7; idna: pure; uvloop: excluded on armv7."""
    pyyaml = requirement("PyYAML==6.0.2")
    sdist = dist("pyyaml-6.0.2.tar.gz")
    return Plan(
        TARGETS,
        (
            row(
                pyyaml,
                Cell(Status.WHEEL, dist("PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.whl")),
                Cell(Status.BUILD, sdist),
            ),
            row(
                requirement("idna==3.10"),
                Cell(Status.PURE, dist("idna-3.10-py3-none-any.whl")),
                Cell(Status.PURE, dist("idna-3.10-py3-none-any.whl")),
            ),
            row(
                requirement("uvloop==0.21.0", "platform_machine != 'armv7l'"),
                Cell(Status.WHEEL, dist("uvloop-0.21.0-cp311-cp311-manylinux_2_17_x86_64.whl")),
                Cell(Status.EXCLUDED, reason="marker false"),
            ),
        ),
    )


BUILT_PYYAML = entry("pyyaml-6.0.2-cp311-cp311-linux_armv7l.whl", "PyYAML", "6.0.2", ARMV7)
