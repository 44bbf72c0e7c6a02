"""The availability plan: for each pinned requirement x target, what pip there would install.

Pure: :func:`make_plan` takes the requirements, the targets and the index pages already
fetched (see :mod:`builder.upstream`) and decides every cell without I/O, choosing the file
the way pip's finder does (tag preference, Requires-Python, yanked files, --hash filters).
:func:`plan_requirements` is the convenience that reads the inputs and fetches the pages.
:func:`plan_to_json` / :func:`plan_from_json` give the stable JSON form (``prewheel plan
--json``), which ``prewheel build --plan`` reads back.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.markers import InvalidMarker, Marker
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import NotOnIndexError, UsageError
from .fetch import with_credentials
from .requirements import (
    PIP_DEFAULT_FORMATS,
    FormatControl,
    PinnedRequirement,
    RequirementSet,
    SourceLine,
    read_requirements,
)
from .resolve import DEFAULT_RESOLVER, Resolver, make_resolver
from .targets import FloatAbi, Target, format_python, parse_identifier
from .upstream.client import default_index_url, fetch_projects, normalize_index_url
from .upstream.models import DistFile, ProjectPage

if TYPE_CHECKING:
    import httpx

    from .options import IndexOptions  # options imports the build stage, which imports this

PLAN_FORMAT = 1


class Status(enum.StrEnum):
    WHEEL = "wheel"  # a binary wheel for this target exists upstream
    PURE = "pure"  # a py3-none-any (pure) wheel fits
    OURS = "ours"  # a fitting wheel exists only on our (extra) index
    BUILD = "build"  # only an sdist fits: pip would compile it
    EXCLUDED = "excluded"  # the requirement's marker is false on this target
    UNAVAILABLE = "unavailable"  # nothing installable (no fitting wheel, no sdist)


#: Statuses whose cell installs without compiling.
INSTALLABLE = frozenset({Status.WHEEL, Status.PURE, Status.OURS})


@dataclasses.dataclass(frozen=True)
class Cell:
    status: Status
    file: DistFile | None = None  # the wheel pip would pick, or the sdist for BUILD
    reason: str = ""  # human-readable detail (e.g. requires-python mismatch, yanked)

    @property
    def filename(self) -> str | None:
        return self.file.filename if self.file else None


@dataclasses.dataclass(frozen=True)
class PlanRow:
    requirement: PinnedRequirement
    cells: dict[str, Cell]  # target identifier -> cell
    # Only a build needs it (a build requirement of a gap, see builder.closure): not installed
    # in the image, so the lock, the Dockerfile lines and verify leave it out.
    build_only: bool = False
    # Targets where only a build needs it (its marker excludes it from the image there): those
    # cells are left out like a build-only row's
    build_only_on: frozenset[str] = frozenset()


#: (project, version, target identifier): one package's build on one target.
BuildKey = tuple[NormalizedName, Version, str]


@dataclasses.dataclass(frozen=True)
class ClosureEntry:
    """A gap's build requirements on its target, as :mod:`builder.closure` planned them: the
    pinned ``(name, version, dynamic)`` of each (dynamic: the backend's
    ``get_requires_for_build_wheel`` asked for it, or for what needs it), the answer the
    backend gave (None: not asked yet), or why they could not be determined."""

    requires: tuple[tuple[NormalizedName, Version, bool], ...] = ()
    dynamic: tuple[str, ...] | None = None
    problem: str = ""


@dataclasses.dataclass(frozen=True)
class BuildRequirement:
    """One pinned build requirement of a gap, with the plan's verdict on the gap's target:
    a wheel to install (``wheel``/``pure``/``ours``), or ``build``: prewheel builds it first."""

    requirement: PinnedRequirement
    cell: Cell
    dynamic: bool = False

    @property
    def label(self) -> str:
        return f"{self.requirement.name}=={self.requirement.version}"


@dataclasses.dataclass(frozen=True)
class Gap:
    """A cell that must be built: the requirement, the target and the sdist to build from."""

    requirement: PinnedRequirement
    target: Target
    sdist: DistFile
    # Its build requirements on the target (None: not planned; see builder.closure)
    build_requires: tuple[BuildRequirement, ...] | None = None
    build_only: bool = False  # only other builds need it
    closure_problem: str = ""  # why its build requirements could not be planned
    known_dynamic: tuple[str, ...] | None = None  # the backend's recorded dynamic answer

    @property
    def key(self) -> BuildKey:
        return (self.requirement.name, self.requirement.version, self.target.identifier)


@dataclasses.dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    rows: tuple[PlanRow, ...]
    # The build requirements of each gap, once builder.closure planned them
    closure: Mapping[BuildKey, ClosureEntry] = dataclasses.field(default_factory=dict)
    # The upstream indexes the plan read (the closure plans build requirements against them;
    # not in the JSON form, which must carry no login)
    index_urls: tuple[str, ...] = ()
    # sha256 of the build-constraints file the closure was planned with ("": none; None: not
    # known, as in plans an older prewheel wrote)
    build_constraints_sha256: str | None = None

    def without_closure(self) -> Plan:
        """This plan as it was before its build requirements were planned: no closure, no
        rows only builds needed, and the cells builds needed on targets their row's marker
        excludes excluded again."""
        rows = self._rows_without_build_cells(
            lambda row: f"marker {row.requirement.marker} is false here"
        )
        return dataclasses.replace(self, rows=rows, closure={}, build_constraints_sha256=None)

    def gaps(self) -> list[Gap]:
        """Every cell to build, with its planned build requirements (if planned)."""
        rows = {row.requirement.key: row for row in self.rows}
        result = []
        for row in self.rows:
            for target in self.targets:
                cell = row.cells[target.identifier]
                if cell.status is not Status.BUILD or cell.file is None:
                    continue
                build_only = row.build_only or target.identifier in row.build_only_on
                gap = Gap(row.requirement, target, cell.file, build_only=build_only)
                entry = self.closure.get(gap.key)
                if entry is not None:
                    gap = dataclasses.replace(
                        gap,
                        build_requires=tuple(
                            BuildRequirement(
                                rows[(name, version)].requirement,
                                rows[(name, version)].cells[target.identifier],
                                dynamic,
                            )
                            for name, version, dynamic in entry.requires
                        ),
                        closure_problem=entry.problem,
                        known_dynamic=entry.dynamic,
                    )
                result.append(gap)
        return result

    def runtime_rows(self) -> tuple[PlanRow, ...]:
        """The rows an image installs (not those only builds need), each without the cells
        only builds need."""
        return self._rows_without_build_cells(lambda _row: "only builds need it here")

    def _rows_without_build_cells(self, reason: Callable[[PlanRow], str]) -> tuple[PlanRow, ...]:
        """The rows but those only builds need, the cells builds need on targets a row's
        marker excludes made excluded again, for ``reason(row)``."""
        rows = []
        for row in self.rows:
            if row.build_only:
                continue
            if row.build_only_on:
                cells = {
                    identifier: Cell(Status.EXCLUDED, reason=reason(row))
                    if identifier in row.build_only_on
                    else cell
                    for identifier, cell in row.cells.items()
                }
                rows.append(dataclasses.replace(row, cells=cells, build_only_on=frozenset()))
            else:
                rows.append(row)
        return tuple(rows)

    def needed_by(self) -> dict[tuple[NormalizedName, Version], list[str]]:
        """For each build requirement, the builds (``name==version``) that need it."""
        result: dict[tuple[NormalizedName, Version], list[str]] = {}
        for (name, version, _target), entry in self.closure.items():
            for requirement_name, requirement_version, _dynamic in entry.requires:
                users = result.setdefault((requirement_name, requirement_version), [])
                if f"{name}=={version}" not in users:
                    users.append(f"{name}=={version}")
        return result

    def cells(self) -> Iterable[tuple[PlanRow, Target, Cell]]:
        for row in self.rows:
            for target in self.targets:
                yield row, target, row.cells[target.identifier]

    def counts(self) -> dict[Status, int]:
        """How many cells have each status (every status present, possibly 0)."""
        result = dict.fromkeys(Status, 0)
        for _, _, cell in self.cells():
            result[cell.status] += 1
        return result

    @property
    def would_compile(self) -> bool:
        return any(cell.status is Status.BUILD for _, _, cell in self.cells())

    def summary(self) -> str:
        """``N of M cells compile from source`` (M leaves out excluded cells)."""
        counts = self.counts()
        relevant = sum(counts.values()) - counts[Status.EXCLUDED]
        text = f"{counts[Status.BUILD]} of {relevant} cells compile from source"
        if counts[Status.UNAVAILABLE]:
            text += f", {counts[Status.UNAVAILABLE]} have nothing installable"
        return text


# --- choosing the file pip would pick -----------------------------------------------------


def make_plan(
    requirements: RequirementSet | Sequence[PinnedRequirement],
    targets: Sequence[Target],
    upstream_pages: Mapping[str, ProjectPage | Sequence[ProjectPage] | None],
    our_pages: Mapping[str, ProjectPage | Sequence[ProjectPage] | None] | None = None,
    format_control: FormatControl | None = None,
) -> Plan:
    """Decide every (requirement, target) cell. Pure: no I/O.

    ``upstream_pages`` maps a project name to its page(s) on the upstream indexes (the default
    index and any extra ones; pip treats them alike); ``our_pages`` to its page(s) on our own
    index. A file found upstream makes a cell ``wheel``/``pure``; a wheel only ours has makes
    it ``ours``. Raises :class:`NotOnIndexError` naming every pinned project or version that no
    index lists (for requirements that apply to at least one target). ``format_control``
    (default: the one the requirements files set) is pip's ``--no-binary``/``--only-binary``.
    """
    reqs = requirements.requirements if isinstance(requirements, RequirementSet) else requirements
    if format_control is None and isinstance(requirements, RequirementSet):
        format_control = requirements.format_control
    formats = format_control or PIP_DEFAULT_FORMATS
    upstream = _by_name(upstream_pages)
    ours = _by_name(our_pages or {})
    missing: list[str] = []
    rows = []
    for requirement in reqs:
        cells = {
            target.identifier: decide_cell(
                requirement,
                target,
                upstream.get(requirement.name, ()),
                ours.get(requirement.name, ()),
                formats,
            )
            for target in targets
        }
        if any(c.status is not Status.EXCLUDED for c in cells.values()):
            problem = _absence(
                requirement, upstream.get(requirement.name, ()), ours.get(requirement.name, ())
            )
            if problem:
                missing.append(problem)
        rows.append(PlanRow(requirement, cells))
    if missing:
        raise NotOnIndexError(
            "Not found on the configured indexes: " + "; ".join(missing) + ". Check the "
            "spelling and the pin (re-run pip-compile), or add the index that hosts it with "
            "--extra-index-url."
        )
    return Plan(tuple(targets), tuple(rows))


def _by_name(
    pages: Mapping[str, ProjectPage | Sequence[ProjectPage] | None],
) -> dict[NormalizedName, tuple[ProjectPage, ...]]:
    result: dict[NormalizedName, tuple[ProjectPage, ...]] = {}
    for name, value in pages.items():
        listed = () if value is None else (value,) if isinstance(value, ProjectPage) else value
        key = canonicalize_name(name)
        result[key] = (*result.get(key, ()), *(p for p in listed if p is not None))
    return result


def _absence(
    requirement: PinnedRequirement, upstream: Sequence[ProjectPage], ours: Sequence[ProjectPage]
) -> str | None:
    pages = [*upstream, *ours]
    where = ", ".join(dict.fromkeys(p.index_url for p in pages))
    if not pages:
        return f"project {requirement.name} ({_source(requirement)})"
    if not any(page.files_for(requirement.version) for page in pages):
        return (
            f"{requirement.name}=={requirement.version} ({_source(requirement)}; "
            f"{where} lists other versions)"
        )
    return None


def _source(requirement: PinnedRequirement) -> str:
    return f"pinned at {requirement.source}" if requirement.source else "pinned"


def decide_cell(
    requirement: PinnedRequirement,
    target: Target,
    upstream: Sequence[ProjectPage],
    ours: Sequence[ProjectPage] = (),
    formats: FormatControl = PIP_DEFAULT_FORMATS,
) -> Cell:
    """One cell: what pip on ``target`` would install for ``requirement``.

    ``--no-binary`` for the project sets aside the upstream wheels, as pip does, so the cell is
    built from its sdist in the target's image (a wheel prewheel built that way still counts).
    ``--only-binary`` does not change the verdict, only its reason: pip would refuse the sdist,
    so the cell fails to install until prewheel builds it.
    """
    if not requirement.applies_to(target.marker_environment()):
        return Cell(Status.EXCLUDED, reason=f"marker {requirement.marker} is false here")
    upstream_files = _files(requirement, upstream)
    notes: list[str] = []
    if not formats.allows_binary(requirement.name) and any(f.is_wheel for f in upstream_files):
        upstream_files = [file for file in upstream_files if not file.is_wheel]
        notes.append("--no-binary: upstream wheels set aside")
    cell = _decide_files(requirement, target, upstream_files, ours, notes)
    if cell.status is Status.BUILD and not formats.allows_source(requirement.name):
        reason = _reason([cell.reason, "--only-binary: pip fails here until prewheel builds it"])
        return dataclasses.replace(cell, reason=reason)
    return cell


def _decide_files(
    requirement: PinnedRequirement,
    target: Target,
    upstream_files: Sequence[DistFile],
    ours: Sequence[ProjectPage],
    format_notes: Sequence[str],
) -> Cell:
    best, best_notes = best_file(upstream_files, target, requirement)
    notes = [*format_notes, *best_notes]
    if best is not None and best.is_wheel:
        status = Status.PURE if best.is_pure else Status.WHEEL
        return Cell(status, best, _reason(notes))
    our_best, our_notes = best_file(_files(requirement, ours), target, requirement)
    if our_best is not None and our_best.is_wheel:
        return Cell(Status.OURS, our_best, _reason(our_notes))
    if best is not None:
        why = [] if format_notes else ["no wheel fits this target"]
        return Cell(Status.BUILD, best, _reason([*notes, *why]))
    if our_best is not None:
        return Cell(Status.BUILD, our_best, _reason([*our_notes, "no wheel fits"]))
    return Cell(
        Status.UNAVAILABLE,
        None,
        _reason([*notes, *our_notes]) or ("no file of this version installs here"),
    )


def _files(requirement: PinnedRequirement, pages: Sequence[ProjectPage]) -> list[DistFile]:
    return [file for page in pages for file in page.files_for(requirement.version)]


def best_file(
    files: Sequence[DistFile], target: Target, requirement: PinnedRequirement
) -> tuple[DistFile | None, list[str]]:
    """The file pip would choose among ``files`` (all of the pinned version), and notes.

    pip's order (``CandidateEvaluator._sort_key``): files matching a ``--hash`` first, then
    not yanked, then the best-ranked wheel tag, then any sdist; a higher build tag wins a tie.
    Files whose Requires-Python excludes the target's Python are skipped, as pip skips them.
    """
    notes: list[str] = []
    python = f"{target.python_version}.0"
    candidates: list[tuple[tuple[int, int, int, tuple[Any, ...]], DistFile]] = []
    python_mismatch = 0
    for file in files:
        rank = _tag_rank(file, target)
        if rank is None:
            continue
        if not file.python_compatible(python):
            python_mismatch += 1
            continue
        candidates.append(((0, -int(file.yanked), rank, file.build_tag), file))
    if python_mismatch:
        notes.append(
            f"{python_mismatch} file(s) skipped: Requires-Python excludes {target.python_version}"
        )
    if requirement.hashes:
        allowed = [c for c in candidates if _hash_allowed(c[1], requirement.hashes)]
        if allowed:
            candidates = allowed
    if not candidates:
        return None, notes
    best = max(candidates, key=lambda candidate: candidate[0])[1]
    if best.yanked:
        notes.append(
            "yanked"
            + (f" ({best.yanked_reason})" if best.yanked_reason else "")
            + ": pip still installs it for an exact pin (PEP 592), with a warning"
        )
    return best, notes


def _tag_rank(file: DistFile, target: Target) -> int | None:
    """Higher is better; None when the file cannot install on the target."""
    if file.is_wheel:
        priority = target.tag_priority
        ranks = [priority[tag] for tag in file.wheel_tags if tag in priority]
        return -min(ranks) if ranks else None
    if file.is_sdist:
        return -len(target.tag_priority)  # below every wheel, as pip ranks sdists
    return None  # .exe, .egg, .msi ... pip ignores them


def _hash_allowed(file: DistFile, hashes: Iterable[str]) -> bool:
    for entry in hashes:
        algorithm, _, digest = entry.partition(":")
        if file.hashes.get(algorithm) == digest:
            return True
    return False


def _reason(notes: Sequence[str]) -> str:
    return "; ".join(note for note in notes if note)


# --- the I/O convenience --------------------------------------------------------------------


def resolver_for(
    indexes: IndexOptions | None,
    targets: Sequence[Target],
    *,
    index_urls: Sequence[str] = (),
) -> Resolver:
    """The resolver ``indexes`` name (``uv``, universal from the targets' oldest Python, or
    ``pip-tools``), reading the upstream indexes: ``indexes``' own, else ``index_urls`` (the
    first is the primary), else pip's configuration / the default index."""
    index_url = (indexes.index_url if indexes else None) or (index_urls[0] if index_urls else None)
    extra = list(indexes.extra_index_url) if indexes else []
    extra += [url for url in index_urls[1:] if url not in extra]
    cache_dir = indexes.cache_dir if indexes else None
    return make_resolver(
        indexes.resolver if indexes else DEFAULT_RESOLVER,
        python_floor=format_python(min(target.python for target in targets)),
        # uv takes a login only inside the URL (handed over in its environment)
        index_url=with_credentials(normalize_index_url(index_url)) if index_url else None,
        fallback_index_url=with_credentials(default_index_url()),
        extra_index_urls=[with_credentials(normalize_index_url(u)) for u in extra],
        cache_root=cache_dir / "compiled" if cache_dir else None,
    )


PagesByName = dict[str, list[ProjectPage]]


def fetch_pages(
    pins: Mapping[str, Sequence[Version]],
    upstream_urls: Sequence[str],
    our_index_url: str | None,
    *,
    cache_dir: Path | None = None,
    client: httpx.Client | None = None,
    refresh: bool = False,
) -> tuple[PagesByName, PagesByName]:
    """The pages of the pinned projects (name -> versions) on the upstream indexes and on our
    own, each sliced to the pinned versions: ``(upstream, ours)``, name -> pages."""
    all_urls = [*upstream_urls, *([our_index_url] if our_index_url else [])]
    fetched = fetch_projects(
        list(pins),
        all_urls,
        cache_dir=cache_dir,
        client=client,
        refresh=refresh,
        pins=pins,
    )
    upstream_pages: PagesByName = {}
    our_pages: PagesByName = {}
    our_normalized = normalize_index_url(our_index_url) if our_index_url else None
    for index, pages in fetched.items():
        bucket = our_pages if index == our_normalized else upstream_pages
        for name, page in pages.items():
            if page is not None:
                bucket.setdefault(name, []).append(page)
    return upstream_pages, our_pages


def plan_requirements(
    inputs: Sequence[Path] | RequirementSet,
    targets: Sequence[Target],
    indexes: IndexOptions | None = None,
    *,
    client: httpx.Client | None = None,
    refresh: bool = False,
    resolver: Resolver | None = None,
) -> Plan:
    """Read requirements (paths or a set), fetch their pages from every index, decide.

    Index precedence: ``indexes`` (``index-url``, ``extra-index-url``, ``our-index-url``,
    ``cache-dir``, resolved from the command line, environment and configuration), then the
    index options written in the requirements files, then pip's own configuration / the
    default index.

    Loose inputs (``.in``, ``pyproject.toml``) are resolved by ``resolver``, by default the one
    ``indexes`` names (``uv``, universal from the targets' oldest Python, or ``pip-tools``, for
    the host) against the same upstream indexes.
    """
    index_url = indexes.index_url if indexes else None
    extra_index_urls = list(indexes.extra_index_url) if indexes else []
    our_index_url = indexes.our_index_url if indexes else None
    cache_dir = indexes.cache_dir if indexes else None
    compiled_dir = cache_dir / "compiled" if cache_dir else None
    if resolver is None and not isinstance(inputs, RequirementSet):
        resolver = resolver_for(indexes, targets)
    requirement_set = (
        inputs
        if isinstance(inputs, RequirementSet)
        else read_requirements(
            list(inputs),
            resolver=resolver,
            cache_root=compiled_dir,
        )
    )
    primary = index_url or requirement_set.index_url or default_index_url()
    upstream_urls = list(
        dict.fromkeys([primary, *extra_index_urls, *requirement_set.extra_index_urls])
    )
    pins: dict[str, list[Version]] = {}
    for requirement in requirement_set.requirements:
        pins.setdefault(requirement.name, []).append(requirement.version)
    upstream_pages, our_pages = fetch_pages(
        pins,
        upstream_urls,
        our_index_url,
        cache_dir=cache_dir,
        client=client,
        refresh=refresh,
    )
    plan = make_plan(requirement_set, targets, upstream_pages, our_pages)
    return dataclasses.replace(plan, index_urls=tuple(upstream_urls))


# --- stable JSON form -----------------------------------------------------------------------


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The documented JSON form (``prewheel plan --json``), format version ``PLAN_FORMAT``.

    Top level: ``format``, ``targets`` (identifiers, column order), ``target_details``
    (identifier -> python, libc, libc_version, platform, float_abi), ``requirements`` (objects with
    ``name``, ``version``, ``extras``, ``marker``, ``hashes``, ``source`` and ``cells``:
    identifier -> ``status``, ``filename``, ``url``, ``sha256``, ``hashes``, ``index_url``,
    ``requires_python``, ``yanked``, ``reason``), ``build_requirements`` (per gap and target,
    the pins its build needs), ``build_constraints_sha256`` (of the build-constraints file
    they were planned with, or null for none; absent where not known), ``counts`` and
    ``summary``.
    """
    return {
        "format": PLAN_FORMAT,
        "targets": [target.identifier for target in plan.targets],
        "target_details": {
            target.identifier: {
                "python": target.python_version,
                "libc": target.libc.value,
                "libc_version": f"{target.libc_version[0]}.{target.libc_version[1]}",
                "platform": target.docker_platform,
                "float_abi": target.float_abi.value if target.float_abi else None,
            }
            for target in plan.targets
        },
        "requirements": [_row_to_json(row, plan.targets) for row in plan.rows],
        "build_requirements": [
            {
                "name": name,
                "version": str(version),
                "target": target,
                "requires": [
                    {"name": n, "version": str(v), "dynamic": dynamic}
                    for n, v, dynamic in entry.requires
                ],
                "dynamic": list(entry.dynamic) if entry.dynamic is not None else None,
                "problem": entry.problem,
            }
            for (name, version, target), entry in plan.closure.items()
        ],
        "counts": {status.value: count for status, count in plan.counts().items()},
        "summary": plan.summary(),
    } | (
        {}
        if plan.build_constraints_sha256 is None
        else {"build_constraints_sha256": plan.build_constraints_sha256 or None}
    )


def _row_to_json(row: PlanRow, targets: Sequence[Target]) -> dict[str, Any]:
    requirement = row.requirement
    return {
        "name": requirement.name,
        "version": str(requirement.version),
        "extras": sorted(requirement.extras),
        "marker": str(requirement.marker) if requirement.marker else None,
        "hashes": sorted(requirement.hashes),
        "source": str(requirement.source) if requirement.source else None,
        "build_only": row.build_only,
        "build_only_on": sorted(row.build_only_on),
        "cells": {t.identifier: _cell_to_json(row.cells[t.identifier]) for t in targets},
    }


def _cell_to_json(cell: Cell) -> dict[str, Any]:
    file = cell.file
    return {
        "status": cell.status.value,
        "filename": file.filename if file else None,
        "url": file.url if file else None,
        "sha256": file.sha256 if file else None,
        "hashes": dict(file.hashes) if file else {},
        "index_url": file.index_url if file else None,
        "requires_python": file.requires_python if file else None,
        "yanked": file.yanked if file else False,
        "reason": cell.reason,
    }


def plan_from_json(data: Any) -> Plan:
    """Read back :func:`plan_to_json` output; a malformed document raises UsageError."""
    try:
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"unsupported plan format {data.get('format')!r}")
        identifiers = [str(identifier) for identifier in data["targets"]]
        details = data.get("target_details", {})
        targets = tuple(_target_from_json(i, details) for i in identifiers)
        columns = dict(zip(identifiers, targets, strict=True))
        rows = tuple(_row_from_json(row, columns) for row in data["requirements"])
        closure = dict(_closure_from_json(item) for item in data.get("build_requirements", ()))
        known = {row.requirement.key for row in rows}
        for entry in closure.values():
            for name, version, _dynamic in entry.requires:
                if (name, version) not in known:
                    raise ValueError(f"build requirement {name}=={version} has no row")
    except (AttributeError, KeyError, TypeError, ValueError, InvalidMarker, InvalidVersion) as exc:
        raise UsageError(
            f"Not a prewheel plan ({type(exc).__name__}: {exc}). Write one with "
            "`prewheel plan requirements.txt --json > plan.json`."
        ) from None
    constraints_sha256 = (
        str(data["build_constraints_sha256"] or "") if "build_constraints_sha256" in data else None
    )
    return Plan(targets, rows, closure, build_constraints_sha256=constraints_sha256)


def _closure_from_json(item: Mapping[str, Any]) -> tuple[BuildKey, ClosureEntry]:
    key = (canonicalize_name(item["name"]), Version(item["version"]), str(item["target"]))
    requires = tuple(
        (canonicalize_name(r["name"]), Version(r["version"]), bool(r.get("dynamic", False)))
        for r in item["requires"]
    )
    dynamic = item.get("dynamic")
    answer = tuple(str(d) for d in dynamic) if dynamic is not None else None
    return key, ClosureEntry(requires, answer, str(item.get("problem", "")))


def _target_from_json(identifier: str, details: Mapping[str, Any]) -> Target:
    """A plan's target; older plans named armv6l targets without their glibc version and kept
    it (and now the float ABI) in ``target_details``."""
    target = parse_identifier(identifier)
    detail = details.get(identifier) or {}
    if "libc_version" in detail:
        major, minor = str(detail["libc_version"]).split(".")
        target = dataclasses.replace(target, libc_version=(int(major), int(minor)))
    if detail.get("float_abi"):
        target = dataclasses.replace(target, float_abi=FloatAbi.parse(str(detail["float_abi"])))
    return target


def _row_from_json(row: Mapping[str, Any], columns: Mapping[str, Target]) -> PlanRow:
    source = None
    if row.get("source"):
        path, _, line = str(row["source"]).rpartition(":")
        source = SourceLine(Path(path), int(line)) if line.isdigit() else None
    requirement = PinnedRequirement(
        name=canonicalize_name(row["name"]),
        version=Version(row["version"]),
        extras=frozenset(row.get("extras", ())),
        marker=Marker(row["marker"]) if row.get("marker") else None,
        hashes=frozenset(row.get("hashes", ())),
        source=source,
    )
    cells = {t.identifier: _cell_from_json(row["cells"][key]) for key, t in columns.items()}
    return PlanRow(
        requirement,
        cells,
        build_only=bool(row.get("build_only", False)),
        build_only_on=frozenset(str(t) for t in row.get("build_only_on", ())),
    )


def _cell_from_json(cell: Mapping[str, Any]) -> Cell:
    file = None
    if cell.get("filename"):
        file = DistFile(
            filename=cell["filename"],
            url=cell["url"],
            hashes=dict(
                cell.get("hashes") or ({"sha256": cell["sha256"]} if cell.get("sha256") else {})
            ),
            requires_python=cell.get("requires_python"),
            yanked=bool(cell.get("yanked", False)),
            index_url=cell.get("index_url") or "",
        )
    return Cell(Status(cell["status"]), file, cell.get("reason", ""))
