"""docs/build.md is the README's build section, headings one level up and links relative to
docs/: this keeps it from falling behind (it had). Regenerate it with
``python tests/test_docs.py --write``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_HEADING = "## `prewheel build`"


def build_page(readme: str) -> str:
    """The README's ``prewheel build`` section as docs/build.md holds it."""
    lines = readme.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(BUILD_HEADING))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    section = "".join(lines[start:end])
    section = re.sub(r"^#(#+) ", r"\1 ", section, flags=re.MULTILINE)
    return section.replace("](docs/", "](")


def test_docs_build_md_is_the_readmes_build_section() -> None:
    expected = build_page((ROOT / "README.md").read_text())
    assert (ROOT / "docs" / "build.md").read_text() == expected, (
        "docs/build.md differs from the README's build section: python tests/test_docs.py --write"
    )


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    (ROOT / "docs" / "build.md").write_text(build_page((ROOT / "README.md").read_text()))
