"""HTML pages for people browsing an index that ``prewheel serve`` serves (``/ui/``).

Installers read ``/simple/``; these pages are for the humans running the pipeline: which
projects the tree holds, each project's versions against the targets they cover (file, size,
upload or build time, whether prewheel built it or mirrored it, and its build log where the
wheelhouse that built it is known), and the latest plan's matrix with its gaps first.

Pure rendering: plain server-rendered HTML with inline CSS, no scripts and no external
assets, every value escaped. The server gathers the data (:class:`BrowseSources`).
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from packaging.utils import InvalidWheelFilename, NormalizedName, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..plan import INSTALLABLE, Plan, Status
from ..report import LEGEND
from ..targets import Target
from .static import FileRecord, Origin

UI = "/ui/"
GAP_STATUSES = (Status.BUILD, Status.UNAVAILABLE)

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #24292f; }
nav a { margin-right: 1.2em; }
h1 { font-size: 1.5em; margin: .6em 0 .3em; }
h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; margin: .4em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.covered { color: #1a7f37; } .missing { color: #cf222e; } .muted { color: #57606a; }
.built { color: #8250df; } .upstream { color: #0969da; }
.summary { background: #f6f8fa; border: 1px solid #d0d7de; padding: .5em .8em; display: inline-block; }
"""


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What the wheelhouse manifest says of a built wheel."""

    log: str  # path relative to the wheelhouse ("" if none)
    built_at: str  # ISO 8601, UTC


@dataclasses.dataclass(frozen=True)
class BrowseSources:
    """Where the pages' data beyond the tree comes from (each optional)."""

    plan: Path | None = None  # plan.json ('prewheel plan --json', 'prewheel run' writes one)
    wheelhouse: Path | None = None  # the wheelhouse the built wheels came from (build logs)

    @classmethod
    def beside(cls, root: Path, plan: Path | None, wheelhouse: Path | None) -> BrowseSources:
        """The given paths, else those 'prewheel run' writes beside its index tree
        (``OUT/index`` next to ``OUT/plan.json`` and ``OUT/wheelhouse``), where present."""
        parent = root.resolve().parent
        if plan is None and (parent / "plan.json").is_file():
            plan = parent / "plan.json"
        if wheelhouse is None and (parent / "wheelhouse" / "manifest.json").is_file():
            wheelhouse = parent / "wheelhouse"
        return cls(plan=plan, wheelhouse=wheelhouse)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def human_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024 or unit == "MiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} MiB"  # pragma: no cover - the loop always returns


def project_link(project: str) -> str:
    return f"{UI}project/{quote(project)}/"


def log_link(filename: str) -> str:
    return f"{UI}logs/{quote(filename)}"


def page(title: str, body: str) -> str:
    nav = (
        f'<nav><a href="{UI}">Projects</a><a href="{UI}plan/">Plan</a>'
        '<a href="/simple/">Simple index (for installers)</a></nav>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} - prewheel index</title><style>{_STYLE}</style></head>"
        f"<body>{nav}<h1>{esc(title)}</h1>{body}</body></html>\n"
    )


def _normal_version(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _by_project(catalog: Iterable[FileRecord]) -> dict[NormalizedName, list[FileRecord]]:
    projects: dict[NormalizedName, list[FileRecord]] = {}
    for record in catalog:
        projects.setdefault(record.project, []).append(record)
    return dict(sorted(projects.items()))


def render_projects(catalog: Iterable[FileRecord], plan: Plan | None) -> str:
    """``/ui/``: every project with its versions, files, sizes and newest upload."""
    projects = _by_project(catalog)
    rows = []
    for project, records in projects.items():
        versions = sorted({r.version for r in records}, key=_version_key, reverse=True)
        built = sum(r.origin is Origin.BUILT for r in records)
        rows.append(
            f'<tr><td><a href="{esc(project_link(project))}">{esc(project)}</a></td>'
            f"<td>{esc(', '.join(versions))}</td>"
            f'<td class="num">{len(records)}</td>'
            f'<td class="num">{built}</td>'
            f'<td class="num">{len(records) - built}</td>'
            f'<td class="num">{esc(human_size(sum(r.size for r in records)))}</td>'
            f"<td>{esc(max(r.upload_time for r in records))}</td></tr>"
        )
    total = sum(len(records) for records in projects.values())
    summary = f"{len(projects)} projects, {total} files"
    if plan is not None:
        summary += f'; latest plan: {esc(plan.summary())} (<a href="{UI}plan/">matrix</a>)'
    table = (
        "<table><thead><tr><th>project</th><th>versions</th><th>files</th>"
        "<th>built by prewheel</th><th>mirrored</th><th>size</th><th>newest upload</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="muted">The index is empty.</p>'
    )
    return page("Projects", f'<p class="summary">{summary}</p>{table}')


def covering(records: Sequence[FileRecord], target: Target) -> FileRecord | None:
    """The file pip on ``target`` would pick among ``records`` (one version's files)."""
    priority = target.tag_priority
    best: tuple[int, FileRecord] | None = None
    for record in records:
        try:
            tags = parse_wheel_filename(record.filename)[3]
        except InvalidWheelFilename:
            continue
        ranks = [priority[tag] for tag in tags if tag in priority]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), record)
    return best[1] if best else None


def render_project(
    project: str,
    records: Sequence[FileRecord],
    targets: Sequence[Target],
    builds: Mapping[str, BuildRecord],
) -> str:
    """``/ui/project/<name>/``: versions x targets, then every file with its details.

    ``builds`` maps a built wheel's filename to what the wheelhouse recorded of its build.
    """
    versions = sorted({r.version for r in records}, key=_version_key, reverse=True)
    head = _target_headers(targets)
    matrix_rows = []
    for version in versions:
        files = [r for r in records if r.version == version]
        cells = []
        for target in targets:
            record = covering(files, target)
            if record is None:
                cells.append('<td class="missing">✘ no file</td>')
            else:
                cells.append(
                    f'<td class="covered" title="{esc(record.filename)}">✔ '
                    f'<span class="{esc(record.origin.value)}">{esc(_origin(record))}</span></td>'
                )
        matrix_rows.append(f"<tr><th>{esc(version)}</th>{''.join(cells)}</tr>")
    matrix = (
        f"<table><thead><tr><th>version</th>{head}</tr></thead>"
        f"<tbody>{''.join(matrix_rows)}</tbody></table>"
    )
    file_rows = []
    for record in sorted(
        records, key=lambda r: (_version_key(r.version), r.filename), reverse=True
    ):
        build = builds.get(record.filename)
        log_cell = (
            f'<a href="{esc(log_link(record.filename))}">build log</a>'
            if build is not None and build.log
            else ""
        )
        when = f"built {build.built_at}" if build is not None else f"listed {record.upload_time}"
        file_rows.append(
            f'<tr><td><a href="/files/{esc(quote(record.filename))}">{esc(record.filename)}</a>'
            f'</td><td>{esc(record.version)}</td><td class="num">{esc(human_size(record.size))}'
            f'</td><td class="{esc(record.origin.value)}">{esc(_origin(record))}</td>'
            f"<td>{esc(when)}</td><td>{log_cell}</td>"
            f'<td><small class="muted">{esc(record.sha256)}</small></td></tr>'
        )
    file_table = (
        "<table><thead><tr><th>file</th><th>version</th><th>size</th><th>origin</th>"
        "<th>when</th><th>log</th><th>sha256</th></tr></thead>"
        f"<tbody>{''.join(file_rows)}</tbody></table>"
    )
    body = (
        f"<h2>Versions &times; targets</h2>{matrix}<h2>Files</h2>{file_table}"
        f'<p class="muted">Installers: <a href="/simple/{esc(quote(project))}/">'
        f"/simple/{esc(project)}/</a></p>"
    )
    return page(project, body)


def _target_headers(targets: Sequence[Target]) -> str:
    """One column heading per target: its Docker platform over its identifier."""
    return "".join(
        f'<th title="{esc(t.identifier)}">{esc(t.docker_platform)}<br>'
        f'<small class="muted">{esc(t.identifier)}</small></th>'
        for t in targets
    )


def _origin(record: FileRecord) -> str:
    return "built by prewheel" if record.origin is Origin.BUILT else "mirrored upstream"


def render_plan(plan: Plan, catalog: Iterable[FileRecord] = ()) -> str:
    """``/ui/plan/``: a per-target summary, then the matrix with the rows that have gaps
    (cells that compile or have nothing installable) first. A gap this index now fills (a
    file of that version that the target installs is listed in ``catalog``) says so."""
    listed: dict[tuple[str, str], list[FileRecord]] = {}
    for record in catalog:
        listed.setdefault((record.project, _normal_version(record.version)), []).append(record)
    filled = 0
    summary_rows = []
    for status in Status:
        counts = [
            sum(row.cells[t.identifier].status is status for row in plan.rows) for t in plan.targets
        ]
        if any(counts):
            symbol, _, colour, meaning = LEGEND[status]
            summary_rows.append(
                f'<tr><th style="color:{colour}" title="{esc(meaning)}">{symbol} '
                f"{esc(status.value)}</th>"
                + "".join(f'<td class="num">{count}</td>' for count in counts)
                + "</tr>"
            )
    head = _target_headers(plan.targets)
    ordered = sorted(
        plan.rows,
        key=lambda row: (
            not any(c.status in GAP_STATUSES for c in row.cells.values()),
            row.requirement.name,
            _version_key(str(row.requirement.version)),
        ),
    )
    rows = []
    for row in ordered:
        cells = []
        files = listed.get((row.requirement.name, _normal_version(str(row.requirement.version))))
        for target in plan.targets:
            cell = row.cells[target.identifier]
            symbol, _, colour, _ = LEGEND[cell.status]
            title = " - ".join(part for part in (cell.filename or "", cell.reason) if part)
            here = covering(files, target) if files and cell.status in GAP_STATUSES else None
            if here is not None:
                filled += 1
                cells.append(
                    f'<td class="covered" title="{esc(here.filename)}">{symbol} '
                    f"{esc(cell.status.value)} &rarr; ✔ on this index</td>"
                )
                continue
            cells.append(
                f'<td style="color:{colour}" title="{esc(title)}">{symbol} '
                f"{esc(cell.status.value)}</td>"
            )
        requirement = row.requirement
        name = f"{requirement.name}=={requirement.version}"
        if requirement.marker is not None:
            name += f" ; {requirement.marker}"
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    installable = sum(
        row.cells[t.identifier].status in INSTALLABLE for row in plan.rows for t in plan.targets
    )
    gaps = sum(c.status in GAP_STATUSES for _, _, c in plan.cells())
    body = (
        f'<p class="summary">{esc(plan.summary())}; {installable} cells install a wheel; '
        f"{filled} of {gaps} gaps are filled by this index</p>"
        f"<h2>Per target</h2><table><thead><tr><th>status</th>{head}</tr></thead>"
        f"<tbody>{''.join(summary_rows)}</tbody></table>"
        f"<h2>Requirements (gaps first)</h2><table><thead><tr><th>requirement</th>{head}</tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return page("Latest plan", body)


def render_no_plan() -> str:
    return page(
        "Latest plan",
        '<p class="muted">No plan is known to this server. Serve with <code>--plan '
        "plan.json</code> (written by <code>prewheel plan --json</code>), or serve the "
        "<code>index/</code> that <code>prewheel run</code> wrote, beside its "
        "<code>plan.json</code>.</p>",
    )
