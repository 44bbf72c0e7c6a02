"""Real, installable wheels for the index tests, written with the zip machinery.

``make_wheel`` writes a valid wheel (METADATA, WHEEL, RECORD with sha256 of every member) with
one importable module; any tag may be given, so a "platform" wheel tagged ``linux_armv7l`` is
as valid as a pure one. Keyword hooks produce deliberately broken wheels for fault tests.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    extra_members: dict[str, bytes] | None = None,
    unrecorded_members: dict[str, bytes] | None = None,
    tamper: Callable[[dict[str, bytes]], None] | None = None,
    filename: str | None = None,
) -> Path:
    """Write ``{name}-{version}-{tag}.whl`` into ``directory`` and return its path.

    ``tamper`` may change member bytes after RECORD was computed (a RECORD mismatch);
    ``unrecorded_members`` are added without a RECORD line.
    """
    dist = name.replace("-", "_").lower()
    module = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist}-{version}.dist-info"
    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {metadata_name or name}",
        f"Version: {metadata_version or version}",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    if requires_python:
        metadata_lines.append(f"Requires-Python: {requires_python}")
    members: dict[str, bytes] = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nTAG = {tag!r}\n".encode(),
        f"{dist_info}/METADATA": ("\n".join(metadata_lines) + "\n\n").encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: prewheel-tests\n"
            f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
        ).encode(),
        **(extra_members or {}),
    }
    record_lines = [f"{path},{_digest(data)},{len(data)}" for path, data in members.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    if tamper is not None:
        tamper(members)
    members.update(unrecorded_members or {})
    path = directory / (filename or f"{dist}-{version}-{tag}.whl")
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path
