"""Tiny sdist-only C-extension projects for the portable-wheel tests.

Both use CPython's stable ABI (``Py_LIMITED_API``, wheel tag ``cp311-abi3``), so a wheel built
for CPython 3.11 also installs on the 3.13 of the Debian trixie image the tests import it in.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import textwrap
from pathlib import Path

_SETUP = """\
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "{module}",
            ["{module}.c"],
            libraries={libraries!r},
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
        )
    ],
    options={{"bdist_wheel": {{"py_limited_api": "cp311"}}}},
)
"""

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
requires-python = ">=3.11"
"""

_PKG_INFO = "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"

_MODULE = """\
#include <Python.h>
#include <stdio.h>
{include}

static PyObject *answer(PyObject *self, PyObject *args) {{
    {body}
}}

static PyMethodDef methods[] = {{
    {{"answer", answer, METH_NOARGS, "A value computed in C."}},
    {{NULL, NULL, 0, NULL}},
}};

static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};

PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&module); }}
"""

# Formats through the C library, so the module links libc (auditwheel reads the libc family,
# glibc or musl, from the extension's own DT_NEEDED entries).
PLAIN_BODY = (
    'char text[8]; snprintf(text, sizeof text, "%d", 6 * 7); return PyUnicode_FromString(text);'
)
LIBYAML_INCLUDE = "#include <yaml.h>"
LIBYAML_BODY = "return PyUnicode_FromString(yaml_get_version_string());"


def make_sdist(
    directory: Path,
    *,
    name: str,
    version: str = "1.0",
    module: str | None = None,
    include: str = "",
    body: str = PLAIN_BODY,
    libraries: tuple[str, ...] = (),
) -> Path:
    """Write ``name-version.tar.gz`` (one C extension module, no wheel on any index)."""
    module = module or name.replace("-", "_")
    base = f"{name.replace('-', '_')}-{version}"
    files = {
        "pyproject.toml": _PYPROJECT.format(name=name, version=version),
        "setup.py": _SETUP.format(module=module, libraries=list(libraries)),
        f"{module}.c": _MODULE.format(module=module, include=include, body=body),
        "PKG-INFO": _PKG_INFO.format(name=name, version=version),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{base}.tar.gz"
    # Byte-for-byte reproducible (fixed mtimes, gzip header included): same sdist, same sha256.
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        for relative, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(f"{base}/{relative}")
            info.size = len(data)
            info.mtime = 315532800
            archive.addfile(info, io.BytesIO(data))
    return path
