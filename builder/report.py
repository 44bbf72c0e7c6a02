"""Rendering a :class:`~builder.plan.Plan`: a rich terminal matrix, JSON, a standalone HTML page.

Rows are requirements, columns are targets; each cell shows a symbol and colour per status
(:data:`LEGEND`). Pure functions of the plan; the CLI decides where the output goes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

from packaging.utils import NormalizedName
from packaging.version import Version
from rich.table import Table
from rich.text import Text

from .plan import Plan, PlanRow, Status, plan_to_json
from .targets import Target

#: status -> (symbol, rich style, CSS colour, meaning)
LEGEND: dict[Status, tuple[str, str, str, str]] = {
    Status.WHEEL: ("✔", "green", "#1a7f37", "binary wheel upstream"),
    Status.PURE: ("○", "cyan", "#0969da", "pure-Python wheel"),
    Status.OURS: ("★", "blue", "#8250df", "wheel on our index only"),
    Status.BUILD: ("✘", "bold red", "#cf222e", "only an sdist: pip would compile"),
    Status.EXCLUDED: ("·", "dim", "#6e7781", "marker false: not installed"),
    Status.UNAVAILABLE: ("!", "bold magenta", "#bf3989", "nothing installable"),
}


def column_label(target: Target) -> str:
    """Short header: ``arm/v7`` over ``3.11 glibc``."""
    platform = target.docker_platform.removeprefix("linux/")
    return f"{platform}\n{target.python_version}\n{target.libc.value}"


#: Above this many targets, cells show only the symbol (the legend explains them).
COMPACT_ABOVE = 5


def render_table(plan: Plan) -> Table:
    compact = len(plan.targets) > COMPACT_ABOVE
    table = Table(title="Wheel availability", caption=plan.summary(), show_lines=False)
    table.add_column("requirement", style="bold", no_wrap=True)
    for target in plan.targets:
        table.add_column(column_label(target), justify="center", no_wrap=True)
    needed_by = plan.needed_by()
    for row in plan.rows:
        cells = []
        for target in plan.targets:
            cell = row.cells[target.identifier]
            symbol, style, _, _ = LEGEND[cell.status]
            label = symbol if compact else f"{symbol} {cell.status.value}"
            cells.append(Text(label, style=style))
        table.add_row(row_label(row, needed_by), *cells)
    return table


def row_label(row: PlanRow, needed_by: Mapping[tuple[NormalizedName, Version], list[str]]) -> str:
    """``name==version``, and for a build-only row which builds need it."""
    requirement = row.requirement
    label = f"{requirement.name}=={requirement.version}"
    if row.build_only:
        users = needed_by.get(requirement.key, [])
        label += " (build-only" + (f", for {', '.join(users)}" if users else "") + ")"
    return label


def render_legend() -> Text:
    text = Text()
    for status, (symbol, style, _, meaning) in LEGEND.items():
        text.append(f"{symbol} {status.value}", style=style)
        text.append(f" {meaning}   ")
    return text


def render_targets(targets: Sequence[Target]) -> Table:
    table = Table(title="Targets")
    table.add_column("identifier", no_wrap=True)
    for header in ("platform", "python", "libc"):
        table.add_column(header, no_wrap=True)
    table.add_column("most specific tag", overflow="fold")
    for target in targets:
        table.add_row(
            target.identifier,
            target.docker_platform,
            target.python_version,
            f"{target.libc.value} {target.libc_version[0]}.{target.libc_version[1]}"
            + (f", {target.float_abi.value}-float" if target.float_abi else ""),
            str(target.tags()[0]),
        )
    return table


def render_json(plan: Plan) -> str:
    return json.dumps(plan_to_json(plan), indent=2, sort_keys=False) + "\n"


def render_html(plan: Plan) -> str:
    """A self-contained page (inline CSS, no scripts, no external assets)."""
    esc = html.escape
    head_cells = "".join(
        f'<th title="{esc(t.identifier)}">{esc(t.docker_platform)}<br>'
        f"<small>{esc(t.identifier)}</small></th>"
        for t in plan.targets
    )
    body_rows = []
    needed_by = plan.needed_by()
    for row in plan.rows:
        cells = []
        for target in plan.targets:
            cell = row.cells[target.identifier]
            symbol, _, colour, _ = LEGEND[cell.status]
            title = " - ".join(part for part in (cell.filename or "", cell.reason) if part)
            cells.append(
                f'<td class="{cell.status.value}" style="color:{colour}" title="{esc(title)}">'
                f"{symbol} {esc(cell.status.value)}</td>"
            )
        body_rows.append(
            f'<tr class="{"build-only" if row.build_only else "runtime"}">'
            f"<th>{esc(row_label(row, needed_by))}</th>" + "".join(cells) + "</tr>"
        )
    legend = "".join(
        f'<li style="color:{colour}">{symbol} <b>{esc(status.value)}</b> '
        f'<span style="color:#24292f">{esc(meaning)}</span></li>'
        for status, (symbol, _, colour, meaning) in LEGEND.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>prewheel plan</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:4px 8px}"
        "td{text-align:center;white-space:nowrap}tbody th{text-align:left}"
        "td.build,td.unavailable{font-weight:bold}ul{list-style:none;padding:0}"
        "</style></head><body><h1>Wheel availability</h1>"
        f"<p>{esc(plan.summary())}</p>"
        f"<table><thead><tr><th>requirement</th>{head_cells}</tr></thead>"
        f"<tbody>{''.join(body_rows)}</tbody></table>"
        f"<ul>{legend}</ul></body></html>\n"
    )
