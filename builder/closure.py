"""The build-time closure: what every gap needs to build, pinned and planned like the runtime
requirements.

A gap's build requirements are its sdist's ``[build-system] requires`` (read on the host from
the verified sdist; PEP 517's ``setuptools>=40.8.0`` when it has none) plus what its backend's
``get_requires_for_build_wheel`` answered in the target's build container (recorded by the
build, see :class:`DynamicAnswers`). They are resolved on the host with the plan's resolver
(``uv pip compile --universal``, with the user's ``build-constraints``) into exact pins, each
pin is planned for the gap's target like a runtime requirement, and a pin that only an sdist
provides there becomes a gap of its own (``build_only``), whose build requirements are planned
in turn. :func:`close_plan` returns the plan with those rows and a
:class:`~builder.plan.ClosureEntry` per gap; :func:`find_cycle` finds builds that need each
other (:class:`~builder.errors.BuildCycleError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from .errors import BuildCycleError, PrewheelError, RequirementsError
from .files import atomic_write, file_sha256
from .hostenv import user_cache
from .plan import (
    BuildKey,
    Cell,
    ClosureEntry,
    Gap,
    Plan,
    PlanRow,
    Status,
    decide_cell,
    fetch_pages,
    resolver_for,
)
from .requirements import PinnedRequirement, read_requirements
from .resolve import Resolver
from .targets import Target
from .upstream.client import default_index_url
from .upstream.models import ProjectPage

if TYPE_CHECKING:
    import httpx

    from .building.sdist import SdistFetcher
    from .options import IndexOptions

#: PEP 517/518: a project without ``[build-system]`` builds with setuptools' legacy backend.
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
NOT_NEEDED = "no build on this target needs it"
_MAX_DEPTH = 50  # rounds of build requirements of build requirements


@dataclasses.dataclass(frozen=True)
class BuildSystem:
    """An sdist's ``[build-system]`` table (PEP 517/518), with PEP 517's defaults."""

    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "requires": list(self.requires),
            "backend": self.backend,
            "backend_path": list(self.backend_path),
        }


def read_build_system(sdist: Path) -> BuildSystem:
    """The ``[build-system]`` of an sdist (``.tar.gz`` or ``.zip``), from its top directory's
    ``pyproject.toml``; PEP 517's defaults when it has none. Raises
    :class:`~builder.errors.RequirementsError` for an unreadable archive or table."""
    try:
        text = _pyproject_text(sdist)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise RequirementsError(f"Cannot read {sdist.name} ({exc}).") from None
    if text is None:
        return BuildSystem(DEFAULT_REQUIRES, LEGACY_BACKEND)
    try:
        table = tomllib.loads(text).get("build-system")
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsError(f"{sdist.name}: pyproject.toml is not TOML ({exc}).") from None
    if table is None:
        return BuildSystem(DEFAULT_REQUIRES, LEGACY_BACKEND)
    requires = table.get("requires") if isinstance(table, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise RequirementsError(
            f"{sdist.name}: [build-system] requires must be a list of strings (PEP 518); pip "
            "refuses to build it too."
        )
    for requirement in requires:
        try:
            Requirement(requirement)
        except InvalidRequirement as exc:
            raise RequirementsError(
                f"{sdist.name}: [build-system] requires {requirement!r} is invalid ({exc})."
            ) from None
    backend = table.get("build-backend") or LEGACY_BACKEND
    backend_path = table.get("backend-path") or []
    if not isinstance(backend, str) or not isinstance(backend_path, list):
        raise RequirementsError(f"{sdist.name}: build-backend/backend-path are malformed.")
    return BuildSystem(tuple(requires), backend, tuple(str(p) for p in backend_path))


def _pyproject_text(sdist: Path) -> str | None:
    """The top directory's pyproject.toml of an sdist, or None if it has none."""
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            for name in archive.namelist():
                if _is_top_pyproject(name):
                    return archive.read(name).decode()
        return None
    with tarfile.open(sdist, "r:*") as archive:
        for member in archive:
            if member.isfile() and _is_top_pyproject(member.name):
                extracted = archive.extractfile(member)
                return (extracted or io.BytesIO()).read().decode()
    return None


def _is_top_pyproject(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return len(parts) == 2 and parts[1] == "pyproject.toml"


class DynamicAnswers:
    """What a backend's ``get_requires_for_build_wheel`` answered, per sdist (sha256) and
    target, as the builds recorded it; kept under the user cache so that the next plan knows
    it before any container starts."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or user_cache("build-requires") / "dynamic"

    def _path(self, sha256: str, target: str) -> Path:
        return self.root / sha256.lower() / f"{target}.json"

    def get(self, sha256: str, target: str) -> tuple[str, ...] | None:
        path = self._path(sha256, target)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, list) or not all(isinstance(r, str) for r in data):
            return None
        return tuple(data)

    def record(self, sha256: str, target: str, requires: Sequence[str]) -> None:
        atomic_write(self._path(sha256, target), json.dumps(sorted(requires)).encode())


@dataclasses.dataclass
class _Work:
    """The state of one :func:`close_plan`."""

    targets: dict[str, Target]
    rows: dict[tuple[NormalizedName, Version], PlanRow]
    closure: dict[BuildKey, ClosureEntry]
    needed: dict[tuple[NormalizedName, Version], set[str]] = dataclasses.field(default_factory=dict)
    upstream: dict[str, list[ProjectPage]] = dataclasses.field(default_factory=dict)
    ours: dict[str, list[ProjectPage]] = dataclasses.field(default_factory=dict)
    fetched: set[tuple[NormalizedName, Version]] = dataclasses.field(default_factory=set)


def close_plan(
    plan: Plan,
    indexes: IndexOptions | None = None,
    *,
    fetcher: SdistFetcher,
    constraints: Path | None = None,
    resolver: Resolver | None = None,
    answers: DynamicAnswers | None = None,
    client: httpx.Client | None = None,
    refresh: bool = False,
    replan: Iterable[BuildKey] = (),
    recursive: bool = True,
) -> Plan:
    """``plan`` with the build requirements of every gap planned (those of ``replan`` again:
    their backend gave a new answer), and, ``recursive``, those of the build requirements
    that are gaps themselves. Gaps whose requirements cannot be determined keep a
    ``problem`` (their build fails with it; the others go on). Raises
    :class:`~builder.errors.BuildCycleError` when builds need each other (``recursive``
    only: otherwise the build requirements are not built)."""
    check_constraints(constraints)
    answers = answers or DynamicAnswers()
    index_urls = plan.index_urls or _index_urls(indexes)
    our_index_url = indexes.our_index_url if indexes else None
    resolve = _Resolutions(
        lambda target: resolver or resolver_for(indexes, [target], index_urls=index_urls),
        constraints,
    )
    forget = set(replan)
    work = _Work(
        targets={t.identifier: t for t in plan.targets},
        rows={row.requirement.key: row for row in plan.rows},
        closure={k: v for k, v in plan.closure.items() if k not in forget},
    )
    for key, entry in work.closure.items():
        for name, version, _dynamic in entry.requires:
            work.needed.setdefault((name, version), set()).add(key[2])
    for _round in range(_MAX_DEPTH + 1):
        open_gaps = [
            gap
            for gap in _plan_of(plan, work).gaps()
            if gap.key not in work.closure and (recursive or not gap.build_only)
        ]
        if not open_gaps:
            break
        if _round == _MAX_DEPTH:
            raise RequirementsError(
                f"The build requirements go deeper than {_MAX_DEPTH} levels (still open: "
                + ", ".join(f"{g.requirement.name}=={g.requirement.version}" for g in open_gaps)
                + "). Pin build requirements that have wheels with --build-constraints."
            )
        new: dict[tuple[NormalizedName, Version], PinnedRequirement] = {}
        for gap in open_gaps:
            entry = _entry(gap, work.targets[gap.key[2]], fetcher, resolve, answers)
            work.closure[gap.key] = entry
            for name, version, _dynamic in entry.requires:
                work.needed.setdefault((name, version), set()).add(gap.key[2])
                new.setdefault((name, version), PinnedRequirement(name, version))
        _add_pages(work, list(new.values()), index_urls, our_index_url, indexes, client, refresh)
        _update_rows(work, new)
    closed = dataclasses.replace(
        _plan_of(plan, work), build_constraints_sha256=constraints_sha256(constraints)
    )
    cycle = find_cycle(_build_edges(closed)) if recursive else None
    if cycle:
        raise BuildCycleError(
            "These builds need each other to build: "
            + " -> ".join(f"{name}=={version}" for name, version, _target in cycle)
            + f" (on {cycle[0][2]}). No order builds them. Give one of them a wheel prewheel "
            "can install (an index with --our-index-url or --extra-index-url), or pin, with "
            "--build-constraints, a version of a build requirement that has a wheel."
        )
    return closed


def check_constraints(constraints: Path | None) -> None:
    """Raise :class:`~builder.errors.RequirementsError` unless ``constraints`` (if given) is a
    file."""
    if constraints is not None and not constraints.is_file():
        what = "is not a file" if constraints.exists() else "does not exist"
        raise RequirementsError(
            f"The build-constraints file {constraints} {what}. Give a pip constraints "
            "file (name==version lines), or drop --build-constraints."
        )


def constraints_sha256(constraints: Path | None) -> str:
    """What a plan records of the build-constraints file its closure was planned with."""
    check_constraints(constraints)
    return file_sha256(constraints) if constraints is not None else ""


def _index_urls(indexes: IndexOptions | None) -> tuple[str, ...]:
    primary = (indexes.index_url if indexes else None) or default_index_url()
    extras = list(indexes.extra_index_url) if indexes else []
    return tuple(dict.fromkeys([primary, *extras]))


def _plan_of(plan: Plan, work: _Work) -> Plan:
    return dataclasses.replace(plan, rows=tuple(work.rows.values()), closure=dict(work.closure))


class _Resolutions:
    """Build requirements -> pins, one resolution per distinct set and Python (per
    :func:`close_plan`): as pip's build isolation resolves for the Python that builds, so the
    pins of one target's build do not depend on which other targets the plan has."""

    def __init__(self, resolver: Callable[[Target], Resolver], constraints: Path | None) -> None:
        self._make_resolver = resolver  # made on first use: a plan without gaps needs none
        self._resolvers: dict[tuple[int, int], Resolver] = {}
        self.constraints = constraints.resolve() if constraints else None
        self._done: dict[
            tuple[tuple[str, ...], tuple[int, int]], tuple[PinnedRequirement, ...]
        ] = {}

    def pins(self, requires: Sequence[str], target: Target) -> tuple[PinnedRequirement, ...]:
        wanted = tuple(sorted(set(requires)))
        if not wanted:
            return ()
        key = (wanted, target.python)
        if key not in self._done:
            if target.python not in self._resolvers:
                self._resolvers[target.python] = self._make_resolver(target)
            self._done[key] = self._resolve(wanted, self._resolvers[target.python])
        return self._done[key]

    def _resolve(
        self, requires: tuple[str, ...], resolver: Resolver
    ) -> tuple[PinnedRequirement, ...]:
        lines = list(requires)
        if self.constraints is not None:
            lines.append(f"-c {self.constraints}")
        text = "\n".join(lines) + "\n"
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        path = user_cache("build-requires") / "inputs" / digest / "build-requirements.in"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write(path, text.encode())
        return read_requirements([path], resolver=resolver).requirements


def _entry(
    gap: Gap,
    target: Target,
    fetcher: SdistFetcher,
    resolve: _Resolutions,
    answers: DynamicAnswers,
) -> ClosureEntry:
    """The planned build requirements of one gap on its target (or why there are none)."""
    name, version, _target = gap.key
    try:
        sha256 = (gap.sdist.sha256 or "").lower()
        sdist = fetcher.fetch(gap.sdist, sha256)
        system = read_build_system(sdist)
        dynamic = answers.get(sha256, target.identifier)
        pins = resolve.pins([*system.requires, *(dynamic or ())], target)
    except PrewheelError as error:
        return ClosureEntry(
            problem=f"the build requirements of {name}=={version} could not be planned: "
            f"{error.message}"
        )
    try:
        dynamic_names = {canonicalize_name(Requirement(r).name) for r in dynamic or ()}
    except InvalidRequirement as exc:
        return ClosureEntry(dynamic=dynamic, problem=f"the backend asked for {exc}")
    static_names = {canonicalize_name(Requirement(r).name) for r in system.requires}
    environment = target.marker_environment()
    requires = tuple(
        (pin.name, pin.version, pin.name in dynamic_names and pin.name not in static_names)
        for pin in pins
        if pin.applies_to(environment)
    )
    return ClosureEntry(requires, dynamic)


def _add_pages(  # noqa: PLR0917 - internal helper
    work: _Work,
    pins: Sequence[PinnedRequirement],
    index_urls: Sequence[str],
    our_index_url: str | None,
    indexes: IndexOptions | None,
    client: httpx.Client | None,
    refresh: bool,
) -> None:
    """Fetch the pages of the pinned projects not fetched yet (a runtime row needed by a
    build on a target its marker excludes needs its pages too)."""
    missing = {pin.name for pin in pins if pin.key not in work.fetched}
    if not missing:
        return
    # every version of those projects needed by now: the pages are sliced to them
    wanted: dict[str, list[Version]] = {}
    for name, version in [*work.needed, *(pin.key for pin in pins)]:
        if name in missing and version not in wanted.setdefault(name, []):
            wanted[name].append(version)
    upstream, ours = fetch_pages(
        wanted,
        index_urls,
        our_index_url,
        cache_dir=indexes.cache_dir if indexes else None,
        client=client,
        refresh=refresh,
    )
    for project, versions in wanted.items():
        work.upstream[project] = upstream.get(project, [])
        work.ours[project] = ours.get(project, [])
        work.fetched.update((canonicalize_name(project), version) for version in versions)


def _update_rows(
    work: _Work, new: Mapping[tuple[NormalizedName, Version], PinnedRequirement]
) -> None:
    """Rows for new build requirements (build-only), and the cells of every row on the
    targets where a build needs it but its own row has no verdict (excluded)."""
    for key, needed_on in work.needed.items():
        row = work.rows.get(key)
        if row is None:
            requirement = new.get(key) or PinnedRequirement(*key)
            row = PlanRow(
                requirement,
                {t: Cell(Status.EXCLUDED, reason=NOT_NEEDED) for t in work.targets},
                build_only=True,
            )
        cells = dict(row.cells)
        build_only_on = set(row.build_only_on)
        changed = row.requirement.key not in work.rows
        for identifier in needed_on:
            if (
                cells[identifier].status is Status.EXCLUDED
                and row.requirement.name in work.upstream
            ):
                unmarked = dataclasses.replace(row.requirement, marker=None)
                cells[identifier] = decide_cell(
                    unmarked,
                    work.targets[identifier],
                    work.upstream.get(row.requirement.name, ()),
                    work.ours.get(row.requirement.name, ()),
                )
                if not row.build_only:  # an image's row whose marker excludes this target
                    build_only_on.add(identifier)
                changed = True
        if changed:
            work.rows[key] = dataclasses.replace(
                row, cells=cells, build_only_on=frozenset(build_only_on)
            )


def _build_edges(plan: Plan) -> dict[BuildKey, list[BuildKey]]:
    """Gap -> the gaps among its build requirements (on the same target)."""
    edges: dict[BuildKey, list[BuildKey]] = {}
    for gap in plan.gaps():
        edges[gap.key] = [
            (r.requirement.name, r.requirement.version, gap.key[2])
            for r in gap.build_requires or ()
            if r.cell.status is Status.BUILD
        ]
    return edges


Node = TypeVar("Node")


def find_cycle(edges: Mapping[Node, Iterable[Node]]) -> list[Node] | None:
    """A cycle in a directed graph, as its nodes with the first repeated at the end (None
    if there is none). Depth first, without recursion, in the mapping's order."""
    state: dict[Node, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path: list[Node] = [start]
        iterators = [iter(edges.get(start, ()))]
        state[start] = 1
        while path:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if state.get(following) == 1:
                return [*path[path.index(following) :], following]
            if following not in state and following in edges:
                state[following] = 1
                path.append(following)
                iterators.append(iter(edges[following]))
    return None


def build_waves(
    nodes: Sequence[Node],
    needs: Callable[[Node], Iterable[Node]],
    *,
    describe: Callable[[Node], str] = str,
) -> list[list[Node]]:
    """``nodes`` in layers: each after every node it ``needs`` (among ``nodes``); the order
    within a layer is the given one. Raises :class:`~builder.errors.BuildCycleError`."""
    present = set(nodes)
    edges = {node: [n for n in needs(node) if n in present] for node in nodes}
    cycle = find_cycle(edges)
    if cycle:
        raise BuildCycleError(
            "These builds need each other to build: "
            + " -> ".join(describe(node) for node in cycle)
            + ". No order builds them; give one of them a wheel prewheel can install."
        )
    layer_of: dict[Node, int] = {}
    remaining = list(nodes)
    while remaining:
        for node in list(remaining):
            if all(n in layer_of for n in edges[node]):
                layer_of[node] = 1 + max((layer_of[n] for n in edges[node]), default=-1)
                remaining.remove(node)
    waves: list[list[Node]] = [[] for _ in range(1 + max(layer_of.values(), default=-1))]
    for node in nodes:
        waves[layer_of[node]].append(node)
    return waves


def plan_of_gaps(gaps: Sequence[Gap], index_urls: Sequence[str] = ()) -> Plan:
    """A plan holding exactly ``gaps`` (and the rows of their planned build requirements),
    so that :func:`close_plan` can plan what they need; the other cells are excluded."""
    targets = {gap.target.identifier: gap.target for gap in gaps}
    requirements: dict[tuple[NormalizedName, Version], PinnedRequirement] = {}
    cells: dict[tuple[NormalizedName, Version], dict[str, Cell]] = {}
    build_only: dict[tuple[NormalizedName, Version], dict[str, bool]] = {}
    closure: dict[BuildKey, ClosureEntry] = {}

    def put(requirement: PinnedRequirement, target: str, cell: Cell, *, only: bool) -> None:
        requirements.setdefault(requirement.key, requirement)
        row_cells = cells.setdefault(requirement.key, {})
        if target not in row_cells or row_cells[target].status is Status.EXCLUDED:
            row_cells[target] = cell
        flags = build_only.setdefault(requirement.key, {})
        flags[target] = flags.get(target, True) and only

    for gap in gaps:
        identifier = gap.target.identifier
        put(gap.requirement, identifier, Cell(Status.BUILD, gap.sdist), only=gap.build_only)
        if gap.build_requires is None:
            continue
        closure[gap.key] = ClosureEntry(
            tuple(
                (r.requirement.name, r.requirement.version, r.dynamic) for r in gap.build_requires
            ),
            gap.known_dynamic,
            gap.closure_problem,
        )
        for needed in gap.build_requires:
            put(needed.requirement, identifier, needed.cell, only=True)
    rows = []
    for key, requirement in requirements.items():
        flags = build_only[key]
        row_cells = {
            identifier: cells[key].get(identifier, Cell(Status.EXCLUDED, reason=NOT_NEEDED))
            for identifier in targets
        }
        everywhere = all(flags.values())
        on = frozenset() if everywhere else frozenset(t for t, only in flags.items() if only)
        rows.append(PlanRow(requirement, row_cells, everywhere, on))
    ordered = tuple(sorted(targets.values()))
    return Plan(ordered, tuple(rows), closure, tuple(index_urls))
