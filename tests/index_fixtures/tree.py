"""An independent check that a static tree is sound, for the crash and repair tests."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from builder.index.static import (
    FileRecord,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metadata_in_wheel(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/METADATA")]
        return archive.read(name)


def fresh_pages(catalog: dict[str, FileRecord]) -> dict[Path, bytes]:
    """Every page of the tree, rendered from the catalog by the pure renderers."""
    by_project: dict[str, list[FileRecord]] = {}
    for record in catalog.values():
        by_project.setdefault(record.project, []).append(record)
    pages = {
        Path("simple", "index.html"): render_root_html(by_project),  # type: ignore[arg-type]
        Path("simple", "index.json"): render_root_json(by_project),  # type: ignore[arg-type]
    }
    for project, files in by_project.items():
        pages[Path("simple", project, "index.html")] = render_project_html(project, files)  # type: ignore[arg-type]
        pages[Path("simple", project, "index.json")] = render_project_json(project, files)  # type: ignore[arg-type]
    return pages


def assert_tree_sound(root: Path) -> dict[str, FileRecord]:
    """Every listed file present with its hash, size and metadata; every page equal to a fresh
    render of the catalog; nothing else in files/; no temp, spool or dirty file left."""
    data = json.loads((root / ".prewheel" / "catalog.json").read_text())
    catalog = {f["filename"]: FileRecord.from_json(f) for f in data["files"]}
    for name, record in catalog.items():
        wheel = root / "files" / name
        assert _sha256(wheel) == record.sha256, name
        assert wheel.stat().st_size == record.size, name
        metadata = (root / "files" / f"{name}.metadata").read_bytes()
        assert hashlib.sha256(metadata).hexdigest() == record.metadata_sha256, name
        assert metadata == _metadata_in_wheel(wheel), name
    expected_files = set(catalog) | {f"{name}.metadata" for name in catalog}
    assert {p.name for p in (root / "files").iterdir()} == expected_files
    pages = fresh_pages(catalog)
    for relative, page in pages.items():
        assert (root / relative).read_bytes() == page, relative
    on_disk = {p.relative_to(root) for p in (root / "simple").rglob("index.*")}
    assert on_disk == set(pages)
    leftovers = list(root.rglob(".tmp-*"))
    incoming = root / ".prewheel" / "incoming"
    leftovers += list(incoming.iterdir()) if incoming.is_dir() else []
    assert leftovers == []
    assert not (root / ".prewheel" / "dirty").exists()
    return catalog
