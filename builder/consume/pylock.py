"""The lock as PEP 751 ``pylock.toml``: what uv (``uv pip install -r pylock.toml``) and pip 26.1
and later (``pip install -r pylock.toml``) install from without resolving anything.

Same content as the requirements lock (:func:`~builder.consume.lock.lock_lines`: every
requirement, its marker, and every file some planned target installs), but each file is named
by its URL on prewheel's index, so the installer fetches exactly that file and checks its
sha256; there is no sdist entry, so nothing can be compiled. The document is built and
validated with :mod:`packaging.pylock` and written as TOML with ``tomli_w``.

Pure: :func:`pylock_document` decides; the caller writes the text atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, urljoin

import tomli_w
from packaging.pylock import (
    Package,
    PackageWheel,
    Pylock,
    PylockValidationError,
    is_valid_pylock_path,
)
from packaging.version import Version

from ..errors import RequirementsError, UsageError
from ..targets import Target
from ..upstream.client import normalize_index_url
from .lock import LockLine

DEFAULT_PYLOCK = "pylock.toml"
LOCK_VERSION = Version("1.0")


def file_url(index_url: str, filename: str) -> str:
    """Where prewheel's index tree keeps ``filename``: ``files/`` beside ``simple/``."""
    return urljoin(normalize_index_url(index_url), "../files/" + quote(filename))


def pylock_document(lines: Sequence[LockLine], index_url: str, targets: Sequence[Target]) -> Pylock:
    """The :class:`~packaging.pylock.Pylock` for ``lines``, every file served by the index at
    ``index_url`` (its ``simple/`` URL). Validated on the way out."""
    simple = normalize_index_url(index_url)
    packages = [
        Package(
            name=line.requirement.name,
            version=line.requirement.version,
            marker=line.requirement.marker,
            index=simple,
            wheels=[
                PackageWheel(name=filename, url=file_url(simple, filename), hashes={"sha256": sha})
                for filename, sha in line.files
            ],
        )
        for line in sorted(lines, key=lambda item: (item.requirement.name, str(item.requirement)))
    ]
    document = Pylock(
        lock_version=LOCK_VERSION,
        created_by="prewheel",
        packages=packages,
        tool={"prewheel": {"targets": [target.identifier for target in targets]}},
    )
    try:
        document.validate()
    except PylockValidationError as exc:
        raise RequirementsError(
            f"The lock cannot be written as a valid pylock.toml ({exc}); write the "
            "requirements format instead (--format requirements) and report this."
        ) from None
    return document


def render_pylock(document: Pylock) -> str:
    return tomli_w.dumps(document.to_dict())


def check_pylock_path(path: Path) -> None:
    """PEP 751 names: ``pylock.toml`` or ``pylock.<name>.toml`` (installers look for these)."""
    if not is_valid_pylock_path(path):
        raise UsageError(
            f"{path.name} is not a pylock file name: PEP 751 lock files are named pylock.toml "
            "or pylock.<name>.toml (e.g. pylock.arm.toml); pass such a path with -o."
        )
