"""Make sdists of the tiny C-extension project for tests and benchmarks, without any network.

``make_sdist(dest, name="tinyext", version="1.0", broken=False, build_seconds=0)`` writes
``<name>-<version>.tar.gz`` (a PEP 517 sdist: pyproject.toml + one C file + PKG-INFO) and
returns its path. ``broken=True`` makes the C file fail to compile; ``build_seconds`` adds a
``setup.py`` that sleeps that long inside ``bdist_wheel``, so a test can interrupt a build that
is certainly still running; ``include`` adds ``#include <HEADER>`` so the build needs a
system package.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "tinyext"
SLOW_SETUP = """\
import sys
import time

from setuptools import setup

if "bdist_wheel" in sys.argv:
    time.sleep({seconds})
setup()
"""


def make_sdist(
    dest: Path,
    name: str = "tinyext",
    version: str = "1.0",
    broken: bool = False,
    build_seconds: int = 0,
    include: str = "",
) -> Path:
    base = f"{name}-{version}"
    pyproject = (
        (HERE / "pyproject.toml")
        .read_text()
        .replace('name = "tinyext"', f'name = "{name}"')
        .replace('version = "1.0"', f'version = "{version}"')
        .replace('{ name = "tinyext"', f'{{ name = "{name}"')
    )
    source = (
        (HERE / "src" / "tinyext.c")
        .read_text()
        .replace('"tinyext"', f'"{name}"')
        .replace("PyInit_tinyext", f"PyInit_{name}")
    )
    if broken:
        source = "#define TINYEXT_BREAK 1\n" + source
    if include:
        source = f"#include <{include}>\n" + source
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        "pyproject.toml": pyproject,
        "src/tinyext.c": source,
        "PKG-INFO": pkg_info,
    }
    if build_seconds:
        files["setup.py"] = SLOW_SETUP.format(seconds=build_seconds)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for relative, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{relative}")
            info.size = len(data)
            info.mtime = 315532800
            archive.addfile(info, io.BytesIO(data))
    return path
