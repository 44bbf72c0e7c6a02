"""Sdists whose builds need each other, and a real PEP 503 index on 127.0.0.1 serving them.

- ``bext`` 1.0: a C extension (tinyext renamed); no wheel anywhere.
- ``aneeds``/``cneeds`` 1.0: ``[build-system] requires`` names ``bext==1.0``, and their
  ``setup.py`` imports it (prints what ``bext.machine()`` says).
- ``dneeds`` 1.0: an in-tree backend (``backend-path``) wrapping setuptools whose
  ``get_requires_for_build_wheel`` answers ``bext==1.0``: a dynamic build requirement.
- ``cyca``/``cycb`` 1.0: each build-requires the other.

PKG-INFO is Metadata 2.2 with nothing dynamic, so resolvers read the dependencies from it
without building anything.
"""

from __future__ import annotations

import functools
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from builder.files import file_sha256

from .sdists import make_sdist, write_sdist

NEEDS_B_SETUP = """\
import bext
from setuptools import setup

print("[needs-b] bext.machine() says", bext.machine(), flush=True)
setup()
"""
DYNAMIC_BACKEND = """\
from setuptools.build_meta import *  # noqa: F403


def get_requires_for_build_wheel(config_settings=None):
    return ["bext==1.0"]  # setuptools' own would run setup.py, which needs bext already
"""


def _pure_sdist(
    dest: Path, name: str, requires: list[str], extra: dict[str, str], backend: str = ""
) -> Path:
    base = f"{name}-1.0"
    backend_lines = (
        f'build-backend = "{backend}"\nbackend-path = ["."]\n'
        if backend
        else 'build-backend = "setuptools.build_meta"\n'
    )
    pyproject = (
        f"[build-system]\nrequires = {requires!r}\n".replace("'", '"')
        + backend_lines
        + f'\n[project]\nname = "{name}"\nversion = "1.0"\n'
        + "\n[tool.setuptools]\npy-modules = []\n"
    )
    files = {
        "pyproject.toml": pyproject,
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: 1.0\n",
        **extra,
    }
    return write_sdist(dest, base, files)


def make_closure_sdists(dest: Path) -> dict[str, Path]:
    b = make_sdist(dest, "bext")
    # Metadata 2.2, nothing dynamic: resolvers read it instead of building
    with tarfile.open(b) as archive:
        members = {
            m.name.partition("/")[2]: (archive.extractfile(m) or io.BytesIO()).read().decode()
            for m in archive
            if m.isfile()
        }
    members["PKG-INFO"] = "Metadata-Version: 2.2\nName: bext\nVersion: 1.0\n"
    b = write_sdist(dest, "bext-1.0", members)
    needs_b = ["setuptools>=61", "bext==1.0"]
    return {
        "bext": b,
        "aneeds": _pure_sdist(dest, "aneeds", needs_b, {"setup.py": NEEDS_B_SETUP}),
        "cneeds": _pure_sdist(dest, "cneeds", needs_b, {"setup.py": NEEDS_B_SETUP}),
        "dneeds": _pure_sdist(
            dest,
            "dneeds",
            ["setuptools>=61"],
            {"setup.py": NEEDS_B_SETUP, "dyn_backend.py": DYNAMIC_BACKEND},
            backend="dyn_backend",
        ),
        "cyca": _pure_sdist(dest, "cyca", ["setuptools>=61", "cycb==1.0"], {}),
        "cycb": _pure_sdist(dest, "cycb", ["setuptools>=61", "cyca==1.0"], {}),
    }


def write_simple_tree(root: Path, sdists: dict[str, Path]) -> None:
    """``root/simple/<name>/index.html`` (PEP 503) linking ``root/files/<sdist>#sha256=``."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    for name, sdist in sdists.items():
        (files / sdist.name).write_bytes(sdist.read_bytes())
        page = root / "simple" / name
        page.mkdir(parents=True, exist_ok=True)
        link = f"../../files/{sdist.name}#sha256={file_sha256(sdist)}"
        (page / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="{link}">{sdist.name}</a></body></html>'
        )


@contextmanager
def serve_tree(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1; the simple root's URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
