"""Assemble docs/benchmarks.md from the per-benchmark sections in docs/benchmarks/.

Each bench/<name>.py writes docs/benchmarks/<name>.md (figures of one run, side by side, as
ratios) and calls :func:`merge`, so the combined page is always in step with its sections.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
ORDER = (
    "plan",
    "build",
    "build-closure",
    "setup",
    "qemu_cpu",
    "index",
    "index-load",
    "install",
    "rerun",
)

HEADER = """# Benchmarks

Every figure here comes from one run of the script named in its section, comparing the
alternatives side by side on the same machine (2 cores; foreign architectures under QEMU
user-mode emulation). Ratios are what carries over to other machines; absolute times are given
only for context. Re-run a section with `.venv/bin/python bench/<name>.py`.
"""


def merge(docs: Path = DOCS) -> Path:
    sections_dir = docs / "benchmarks"
    sections = sorted(sections_dir.glob("*.md"), key=_rank) if sections_dir.is_dir() else []
    text = HEADER + "".join("\n" + s.read_text(encoding="utf-8").strip() + "\n" for s in sections)
    target = docs / "benchmarks.md"
    fd, tmp = tempfile.mkstemp(dir=docs, prefix=".benchmarks.", suffix=".md")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    Path(tmp).replace(target)
    return target


def write_section(name: str, markdown: str, docs: Path = DOCS) -> Path:
    """Write docs/benchmarks/<name>.md atomically and regenerate docs/benchmarks.md."""
    sections_dir = docs / "benchmarks"
    sections_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=sections_dir, prefix=f".{name}.", suffix=".md")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(markdown.rstrip() + "\n")
    Path(tmp).replace(sections_dir / f"{name}.md")
    return merge(docs)


def _rank(path: Path) -> tuple[int, str]:
    stem = path.stem
    return (ORDER.index(stem) if stem in ORDER else len(ORDER), stem)


if __name__ == "__main__":
    print(merge())
