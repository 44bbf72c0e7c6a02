"""Make sdists of the tiny C-extension project for tests and benchmarks, without any network.

``make_sdist(dest, name="tinyext", version="1.0", broken=False, build_seconds=0)`` writes
``<name>-<version>.tar.gz`` (a PEP 517 sdist: pyproject.toml + one C file + PKG-INFO) and
returns its path. ``broken=True`` makes the C file fail to compile; ``build_seconds`` adds a
``setup.py`` that sleeps that long inside ``bdist_wheel``, so a test can interrupt a build that
is certainly still running; ``include`` adds ``#include <HEADER>`` so the build needs a
system package. ``cplusplus=True`` makes it a C++ extension (``src/tinycpp.cpp``: the C++
runtime is linked); ``reject_native_compiler=True`` adds a ``setup.py`` that refuses to build
when sysconfig's compiler is not an ELF file of the target's own architecture (as a build that
runs its compiler's output, or inspects it, might), to exercise the emulated rebuild.
"""

from __future__ import annotations

import gzip
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
REJECTING_SETUP = """\
import os
import platform
import shutil
import sysconfig

from setuptools import setup

# A build that insists on the image's own compiler: e_machine of the compiler's ELF file.
MACHINES = {{"x86_64": 62, "aarch64": 183, "armv7l": 40, "armv6l": 40}}
compiler = os.path.realpath(shutil.which(sysconfig.get_config_var("CC").split()[0]))
with open(compiler, "rb") as handle:
    e_machine = int.from_bytes(handle.read(20)[18:20], "little")
if e_machine != MACHINES[platform.machine()]:
    raise SystemExit(f"{{compiler}} is not a {{platform.machine()}} compiler: refusing to build")
print(f"compiler {{compiler}} is the image's own", flush=True)
setup()
"""


def make_sdist(
    dest: Path,
    name: str = "tinyext",
    version: str = "1.0",
    broken: bool = False,
    build_seconds: int = 0,
    include: str = "",
    cplusplus: bool = False,
    reject_native_compiler: bool = False,
) -> Path:
    base = f"{name}-{version}"
    pyproject = (
        (HERE / "pyproject.toml")
        .read_text()
        .replace('name = "tinyext"', f'name = "{name}"')
        .replace('version = "1.0"', f'version = "{version}"')
        .replace('{ name = "tinyext"', f'{{ name = "{name}"')
    )
    module = "tinycpp" if cplusplus else "tinyext"
    source_name = "src/tinycpp.cpp" if cplusplus else "src/tinyext.c"
    pyproject = pyproject.replace('"src/tinyext.c"', f'"{source_name}"')
    source = (
        (HERE / source_name)
        .read_text()
        .replace(f'"{module}"', f'"{name}"')
        .replace(f"PyInit_{module}", f"PyInit_{name}")
    )
    if broken:
        source = "#define TINYEXT_BREAK 1\n" + source
    if include:
        source = f"#include <{include}>\n" + source
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        "pyproject.toml": pyproject,
        source_name: source,
        "PKG-INFO": pkg_info,
    }
    if build_seconds:
        files["setup.py"] = SLOW_SETUP.format(seconds=build_seconds)
    if reject_native_compiler:
        files["setup.py"] = REJECTING_SETUP.format()
    return write_sdist(dest, base, files)


def write_sdist(dest: Path, base: str, files: dict[str, str]) -> Path:
    """``dest/<base>.tar.gz`` holding ``files`` under ``<base>/``. The same inputs make the
    same bytes (gzip's header time fixed too), so an sdist made again a second later has the
    same sha256 and hits the wheel cache."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{base}.tar.gz"
    with (
        gzip.GzipFile(path, "wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        for relative, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{relative}")
            info.size = len(data)
            info.mtime = 315532800
            archive.addfile(info, io.BytesIO(data))
    return path
