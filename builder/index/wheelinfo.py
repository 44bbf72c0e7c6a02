"""Open a wheel and decide whether it may be listed on an index.

Pure apart from reading the file: :func:`inspect_wheel` checks the filename (via
:func:`packaging.utils.parse_wheel_filename`; ASCII, short enough for ``<file>.metadata`` to fit
the file system), that the file is a real zip whose members have safe, unique names and a sane
compression ratio, that it has one ``*.dist-info`` with ``METADATA`` and a version-1 ``WHEEL``,
that its ``RECORD`` matches every member, and that the ``METADATA`` name and version agree with
the filename. It returns the facts an index page needs (hash, size, ``Requires-Python``) plus
the ``METADATA`` bytes served for PEP 658.

:func:`wheel_key` is what makes two files "the same wheel" for an index: the normalized
project, the version (``1.0`` = ``1.0.0`` = ``01.0``), the build tag and the set of tags.
"""

from __future__ import annotations

import base64
import collections
import csv
import dataclasses
import email.parser
import hashlib
import io
import zipfile
from pathlib import Path, PurePosixPath

from packaging.metadata import InvalidMetadata, Metadata
from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)
from packaging.version import Version

from ..errors import IntegrityError
from ..files import file_sha256

_CHUNK = 1 << 20
_SIGNATURE_FILES = ("RECORD.jws", "RECORD.p7s")
# The longest name whose "<name>.metadata" (PEP 658) still fits a file-system name (255 bytes).
MAX_FILENAME = 255 - len(".metadata")

WheelKey = tuple[NormalizedName, Version, BuildTag, frozenset[Tag]]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile upload from exhausting memory or disk."""

    max_ratio: float = 1000.0  # uncompressed / compressed, per member (deflate tops at ~1032)
    ratio_floor: int = 1 << 20  # members expanding to less are never a bomb
    max_archive_ratio: float = 100.0  # all members uncompressed / archive size
    archive_ratio_floor: int = 64 << 20  # archives expanding to less are never a bomb
    max_total: int = 4 << 30  # total uncompressed bytes
    max_members: int = 100_000


@dataclasses.dataclass(frozen=True)
class WheelInfo:
    """What an index needs to know about one validated wheel."""

    filename: str
    name: NormalizedName
    version: Version
    sha256: str
    size: int
    requires_python: str | None
    metadata: bytes  # the raw .dist-info/METADATA, served as <file>.metadata (PEP 658)

    @property
    def metadata_sha256(self) -> str:
        return hashlib.sha256(self.metadata).hexdigest()

    @property
    def key(self) -> WheelKey:
        return wheel_key(self.filename)


def wheel_key(filename: str) -> WheelKey:
    """(project, version, build tag, tags) of a valid wheel filename, all normalized: two files
    with the same key are the same wheel to pip and uv, so an index lists at most one."""
    name, version, build, tags = parse_wheel_filename(filename)
    return name, version, build, tags


def check_filename(filename: str) -> tuple[NormalizedName, Version]:
    """A wheel filename that is safe to store: one ASCII path component, no NUL, short enough
    for its ``.metadata`` companion, parses."""
    if not filename or "\0" in filename or "/" in filename or "\\" in filename:
        raise IntegrityError(
            f"{filename!r} is not a plain file name (path separators or NUL are not allowed); "
            "upload the wheel under its own file name."
        )
    if filename.startswith("."):
        raise IntegrityError(f"{filename!r} starts with a dot; a wheel file name never does.")
    if not filename.isascii():
        raise IntegrityError(
            f"{filename!r} holds non-ASCII characters; wheel file names are ASCII (PEP 427), so "
            "rename the file to its project's real name."
        )
    if len(filename) > MAX_FILENAME:
        raise IntegrityError(
            f"{filename[:40]}... is {len(filename)} characters long; an index stores at most "
            f"{MAX_FILENAME} (its .metadata file must fit the 255-byte file-name limit). "
            "Shorten the build or local version tag."
        )
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise IntegrityError(
            f"{filename!r} is not a valid wheel file name ({exc}); only wheels can be indexed."
        ) from exc
    return name, version


def inspect_wheel(path: Path, filename: str | None = None, limits: Limits = Limits()) -> WheelInfo:
    """Validate the wheel at ``path`` (listed as ``filename``) and describe it.

    Raises :class:`~builder.errors.IntegrityError` with a reason for anything unsafe or
    inconsistent.
    """
    filename = filename or path.name
    name, version = check_filename(filename)
    if not zipfile.is_zipfile(path):
        raise IntegrityError(f"{filename} is not a zip archive, so it is not a wheel.")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            _check_members(filename, members, path.stat().st_size, limits)
            dist_info = _dist_info_dir(filename, members)
            metadata = archive.read(f"{dist_info}/METADATA")
            _check_wheel_file(filename, archive, dist_info)
            _check_record(filename, archive, dist_info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise IntegrityError(f"{filename} is a damaged zip archive: {exc}.") from exc
    requires_python = _check_metadata(filename, metadata, name, version)
    return WheelInfo(
        filename=filename,
        name=name,
        version=version,
        sha256=file_sha256(path),
        size=path.stat().st_size,
        requires_python=requires_python,
        metadata=metadata,
    )


def _check_members(
    filename: str, members: list[zipfile.ZipInfo], archive_size: int, limits: Limits
) -> None:
    if len(members) > limits.max_members:
        raise IntegrityError(
            f"{filename} has {len(members)} members; refusing more than {limits.max_members}."
        )
    _check_unique_names(filename, members)
    total = 0
    for member in members:
        _check_member_name(filename, member.orig_filename)  # zipfile cuts names at NUL
        total += member.file_size
        big = member.file_size >= limits.ratio_floor
        if big and member.file_size > limits.max_ratio * max(member.compress_size, 1):
            raise IntegrityError(
                f"{filename}: member {member.filename} expands {member.file_size} bytes from "
                f"{member.compress_size} (ratio over {limits.max_ratio:g}); refusing a "
                "possible zip bomb."
            )
    if total > limits.max_total:
        raise IntegrityError(
            f"{filename} would expand to {total} bytes; refusing more than {limits.max_total}."
        )
    big_archive = total >= limits.archive_ratio_floor
    if big_archive and total > limits.max_archive_ratio * max(archive_size, 1):
        raise IntegrityError(
            f"{filename} would expand to {total} bytes from {archive_size} (ratio over "
            f"{limits.max_archive_ratio:g}); refusing a possible zip bomb."
        )


def _check_unique_names(filename: str, members: list[zipfile.ZipInfo]) -> None:
    """Each member once: with two copies, the RECORD check sees one and an installer another."""
    counts = collections.Counter(m.orig_filename for m in members)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise IntegrityError(
            f"{filename} holds several members named {duplicates[:5]}; pip refuses such a "
            "wheel (which copy is installed depends on the tool). Rebuild it with a standard "
            "tool."
        )


def _check_member_name(filename: str, member: str) -> None:
    path = PurePosixPath(member)
    unsafe = (
        "\0" in member
        or "\\" in member
        or member.startswith("/")
        or ".." in path.parts
        or (len(path.parts) > 0 and path.parts[0].endswith(":"))
    )
    if unsafe:
        raise IntegrityError(
            f"{filename}: member name {member!r} is absolute, climbs out with '..', or holds a "
            "NUL or backslash; rebuild the wheel with a standard tool."
        )


def _dist_info_dir(filename: str, members: list[zipfile.ZipInfo]) -> str:
    candidates = {
        PurePosixPath(m.filename).parts[0]
        for m in members
        if len(PurePosixPath(m.filename).parts) == 2
        and PurePosixPath(m.filename).parts[0].endswith(".dist-info")
        and PurePosixPath(m.filename).name == "METADATA"
    }
    if len(candidates) != 1:
        raise IntegrityError(
            f"{filename} must hold exactly one top-level *.dist-info/METADATA, found "
            f"{len(candidates)}."
        )
    return candidates.pop()


def _check_wheel_file(filename: str, archive: zipfile.ZipFile, dist_info: str) -> None:
    """``<dist-info>/WHEEL`` exists and declares Wheel-Version 1.x, as pip requires."""
    try:
        text = archive.read(f"{dist_info}/WHEEL").decode("utf-8")
    except KeyError:
        raise IntegrityError(
            f"{filename} has no {dist_info}/WHEEL file, so pip refuses to install it; rebuild "
            "it with a standard tool (pip wheel, python -m build)."
        ) from None
    except UnicodeDecodeError:
        raise IntegrityError(f"{filename}: {dist_info}/WHEEL is not UTF-8.") from None
    version = email.parser.Parser().parsestr(text).get("Wheel-Version", "")
    if version.strip().split(".")[0] != "1":
        raise IntegrityError(
            f"{filename}: {dist_info}/WHEEL declares Wheel-Version {version.strip() or 'none'!r}; "
            "installers accept only 1.x. Rebuild it with a standard tool."
        )


def _read_member_digest(archive: zipfile.ZipFile, member: str) -> tuple[str, str, int]:
    """(algorithm-agnostic raw sha256 digest, urlsafe sha256, size) of one member."""
    digest = hashlib.sha256()
    size = 0
    with archive.open(member) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return digest.hexdigest(), encoded, size


def _parse_record(filename: str, text: str) -> dict[str, tuple[str, str]]:
    entries: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise IntegrityError(f"{filename}: RECORD row {row!r} does not have 3 fields.")
        entries[row[0]] = (row[1], row[2])
    return entries


def _check_record(filename: str, archive: zipfile.ZipFile, dist_info: str) -> None:
    record_name = f"{dist_info}/RECORD"
    try:
        text = archive.read(record_name).decode("utf-8")
    except KeyError as exc:
        raise IntegrityError(f"{filename} has no {record_name}; it is not a valid wheel.") from exc
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"{filename}: {record_name} is not UTF-8.") from exc
    entries = _parse_record(filename, text)
    unhashed = {record_name, *(f"{dist_info}/{s}" for s in _SIGNATURE_FILES)}
    files = [m.filename for m in archive.infolist() if not m.is_dir()]
    missing = sorted(set(files) - set(entries))
    extra = sorted(set(entries) - set(files))
    if missing or extra:
        raise IntegrityError(
            f"{filename}: RECORD does not match the archive (not listed: {missing[:5]}, "
            f"listed but absent: {extra[:5]}); rebuild the wheel."
        )
    for member in files:
        if member in unhashed:
            continue
        hash_field, size_field = entries[member]
        algorithm, _, expected = hash_field.partition("=")
        if algorithm != "sha256":
            raise IntegrityError(
                f"{filename}: RECORD entry for {member} needs a sha256 hash, "
                f"has {algorithm or 'none'}."
            )
        _, actual, size = _read_member_digest(archive, member)
        if actual != expected or (size_field and size_field != str(size)):
            raise IntegrityError(
                f"{filename}: {member} does not match its RECORD hash or size; the wheel was "
                "altered after it was built."
            )


def _check_metadata(
    filename: str, metadata: bytes, name: NormalizedName, version: Version
) -> str | None:
    try:
        parsed = Metadata.from_email(metadata, validate=False)
        meta_name, meta_version = parsed.name, parsed.version
        requires_python = parsed.requires_python
    except (InvalidMetadata, ExceptionGroup, ValueError) as exc:
        raise IntegrityError(f"{filename}: METADATA cannot be parsed ({exc}).") from exc
    if meta_name is None or meta_version is None:
        raise IntegrityError(f"{filename}: METADATA lacks Name or Version.")
    if canonicalize_name(meta_name) != name or canonicalize_version(meta_version) != (
        canonicalize_version(version)
    ):
        raise IntegrityError(
            f"{filename}: the file name says {name} {version} but METADATA says "
            f"{meta_name} {meta_version}; upload the file under its real name."
        )
    return str(requires_python) if requires_python is not None else None
