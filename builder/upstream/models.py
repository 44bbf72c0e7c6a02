"""Value objects for what an index says about a project's files."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version


@dataclasses.dataclass(frozen=True)
class DistFile:
    """One file of a project as an index lists it."""

    filename: str
    url: str  # absolute
    hashes: Mapping[str, str] = dataclasses.field(default_factory=dict)  # {"sha256": hex}
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    core_metadata: Mapping[str, str] | bool = False  # PEP 658/714: hashes of .metadata, or flag
    index_url: str = ""  # the index (simple root) that listed it

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))

    @cached_property
    def _wheel_parts(self) -> tuple[NormalizedName, Version, BuildTag, frozenset[Tag]] | None:
        if not self.is_wheel:
            return None
        try:
            return parse_wheel_filename(self.filename)
        except InvalidWheelFilename:
            return None

    @property
    def wheel_tags(self) -> frozenset[Tag]:
        """The tags of a wheel (empty for anything else or an unparsable name)."""
        parts = self._wheel_parts
        return parts[3] if parts else frozenset()

    @property
    def build_tag(self) -> BuildTag:
        """A wheel's build tag (``()`` when it has none or is not a wheel)."""
        parts = self._wheel_parts
        return parts[2] if parts else ()

    @cached_property
    def name_and_version(self) -> tuple[NormalizedName, Version] | None:
        """(name, version) from the filename, or None when it does not parse."""
        if self.is_wheel:
            parts = self._wheel_parts
            return (parts[0], parts[1]) if parts else None
        if self.filename.endswith((".tar.gz", ".zip")):
            try:
                return parse_sdist_filename(self.filename)
            except InvalidSdistFilename:
                return None
        return None

    @property
    def is_pure(self) -> bool:
        """A wheel that runs anywhere: every tag is ``*-none-any``."""
        tags = self.wheel_tags
        return bool(tags) and all(t.abi == "none" and t.platform == "any" for t in tags)

    def python_compatible(self, python_version: str) -> bool:
        """Requires-Python check as pip does it; an invalid specifier is ignored (pip: warns)."""
        if not self.requires_python:
            return True
        try:
            return SpecifierSet(self.requires_python).contains(python_version, prereleases=True)
        except InvalidSpecifier:
            return True


@functools.lru_cache(maxsize=65536)
def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _cheap_version(filename: str) -> Version | None:
    """The version a wheel or sdist name claims (``name-VERSION-...``), or None."""
    if filename.endswith(".whl"):
        parts = filename.split("-")
        return _parse_version(parts[1]) if len(parts) in (5, 6) else None
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            return _parse_version(filename.removesuffix(suffix).rpartition("-")[2])
    return None


@dataclasses.dataclass(frozen=True)
class ProjectPage:
    """All files an index lists for one project."""

    name: NormalizedName
    files: tuple[DistFile, ...]
    index_url: str

    def files_for(self, version: Version) -> list[DistFile]:
        """Files of one version of this project (as pip, ignoring files whose name is another
        project's or does not parse), in page order."""
        return [
            f
            for f in self._by_version.get(version, ())
            if (nv := f.name_and_version) and nv == (self.name, version)
        ]

    @cached_property
    def _by_version(self) -> dict[Version, list[DistFile]]:
        """Files grouped by the version their name claims, read without parsing tags (pages
        of big projects list tens of thousands of files; only a pinned version's are parsed)."""
        groups: dict[Version, list[DistFile]] = {}
        for file in self.files:
            version = _cheap_version(file.filename)
            if version is not None:
                groups.setdefault(version, []).append(file)
        return groups

    def restricted_to(self, versions: Iterable[Version]) -> ProjectPage:
        """The same page listing only files of ``versions``."""
        wanted = set(versions)
        files = tuple(f for f in self.files if _cheap_version(f.filename) in wanted)
        return dataclasses.replace(self, files=files)

    def versions(self) -> set[Version]:
        return {nv[1] for f in self.files if (nv := f.name_and_version)}


def dist_file_to_dict(file: DistFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "url": file.url,
        "hashes": dict(file.hashes),
        "requires_python": file.requires_python,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
        "size": file.size,
        "core_metadata": (
            dict(file.core_metadata)
            if isinstance(file.core_metadata, Mapping)
            else file.core_metadata
        ),
        "index_url": file.index_url,
    }


def dist_file_from_dict(data: Mapping[str, Any]) -> DistFile:
    return DistFile(**data)
