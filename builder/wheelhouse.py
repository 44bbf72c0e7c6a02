"""The wheelhouse: built wheels plus a manifest saying exactly what each was built from.

Layout (other stages rely on it)::

    <wheelhouse>/wheels/<wheel filename>          wheels whose tags name their platform fully
    <wheelhouse>/wheels/<target>/<wheel filename> wheels tagged plain linux_<arch> (no
                                                  manylinux policy, e.g. linux/arm/v6): the
                                                  tag does not say which glibc they need, so
                                                  two targets' wheels may share a name
    <wheelhouse>/manifest.json                    list of entries (see WheelEntry)
    <wheelhouse>/logs/<name>-<version>-<target>.log
    <wheelhouse>/.lock                            filelock guarding every write

It is also the build cache: :meth:`Wheelhouse.lookup` finds the entry of a cache key (see
:func:`builder.building.jobs.cache_key`) whose wheel is still present and intact. Every write is a
temp file + ``os.replace`` under the lock, so concurrent ``prewheel build`` processes lose
nothing and a killed one leaves no partial file under a final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from .errors import IntegrityError, UsageError
from .files import (
    TEMP_PREFIX,
    atomic_write,
    atomic_writer,
    file_sha256,
    temp_owner_alive,
    temp_owner_token,
    temp_token,
)

MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class WheelEntry:
    """One wheel in the manifest."""

    filename: str
    sha256: str
    size: int
    name: str
    version: str
    target: str  # target identifier
    cache_key: str
    inputs: Mapping[str, Any]
    built_at: str  # ISO 8601, UTC
    builder: str
    log: str  # path relative to the wheelhouse
    # How it was compiled: {"native": bool, "toolchain": {...} | None, "fallback": why an
    # accelerated build was redone emulated, "reason": why no native toolchain}; {} before 0.2.
    compilers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Where the wheel is, relative to wheels/ (see stored_name); "": the file name (flat, as
    # every entry of manifests written before per-target storage was).
    stored: str = ""
    # What its build environment held: [{"name", "version", "origin" (built, reused,
    # upstream, fetched), "filename", "sha256", "dynamic"}]; [] when not planned (before 0.3).
    build_requirements: Sequence[Mapping[str, Any]] = ()

    @property
    def stored_as(self) -> str:
        return self.stored or self.filename

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["inputs"] = dict(self.inputs)
        data["compilers"] = dict(self.compilers)
        data["build_requirements"] = [dict(r) for r in self.build_requirements]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WheelEntry:
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(data) - {"compilers", "stored", "build_requirements"}
        if missing:
            raise IntegrityError(f"A manifest entry lacks {sorted(missing)}: {dict(data)!r}.")
        entry = cls(**{key: data[key] for key in fields if key in data})
        if entry.stored not in ("", stored_name(entry.filename, entry.target)):
            # it names the path that merge writes to and a rebuild deletes: only ours
            raise IntegrityError(
                f"A manifest entry says {entry.filename} is stored at {entry.stored!r}, not "
                f"where prewheel keeps it ({stored_name(entry.filename, entry.target)!r})."
            )
        return entry


def stored_name(filename: str, target: str) -> str:
    """Where a wheel for ``target`` lives under ``wheels/``: flat when its platform tags say
    which C library it needs (manylinux, musllinux, ``any``), so one file serves every target
    it installs on; under the target's identifier when a tag is plain ``linux_<arch>`` (no
    manylinux policy, as on linux/arm/v6, or not repaired), which two targets of different
    glibc versions would share although their wheels differ."""
    try:
        tags = parse_wheel_filename(filename)[3]
    except InvalidWheelFilename:
        return filename
    if any(tag.platform.startswith("linux_") for tag in tags):
        return f"{target}/{filename}"
    return filename


class Wheelhouse:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.wheels_dir = path / "wheels"
        self.logs_dir = path / "logs"
        self.manifest_path = path / MANIFEST
        self._lock = FileLock(str(path / ".lock"))

    # -- reading ----------------------------------------------------------------------------
    def wheels(self, targets: Iterable[str] | None = None) -> list[Path]:
        """The wheel files (of the entries for ``targets`` only, if given)."""
        if targets is not None:
            wanted = set(targets)
            return sorted(
                {self.wheel_path(e) for e in self.entries() if e.target in wanted},
                key=lambda path: (path.name, str(path)),
            )
        if not self.wheels_dir.is_dir():
            return []
        return sorted(
            (
                p
                for p in [*self.wheels_dir.glob("*.whl"), *self.wheels_dir.glob("*/*.whl")]
                if not p.name.startswith(".") and p.is_file()
            ),
            key=lambda path: (path.name, str(path)),
        )

    def wheels_for_one_index(self, targets: Iterable[str] | None = None) -> list[Path]:
        """:meth:`wheels` for one index: raise :class:`UsageError` if two of them share a file
        name but not their bytes (one project's linux_armv6l builds for two glibc versions),
        since pip tells such files apart by name alone."""
        wanted = None if targets is None else set(targets)
        chosen = [e for e in self.entries() if wanted is None or e.target in wanted]
        by_name: dict[str, dict[str, WheelEntry]] = {}
        for entry in chosen:
            by_name.setdefault(entry.filename, {}).setdefault(entry.sha256, entry)
        clashes = {name: list(found.values()) for name, found in by_name.items() if len(found) > 1}
        if clashes:
            described = "; ".join(
                f"{name} for " + " and ".join(f"{e.target} ({self.wheel_path(e)})" for e in found)
                for name, found in sorted(clashes.items())
            )
            first = next(iter(clashes.values()))
            raise UsageError(
                f"These wheels share a file name but not their contents: {described}. Their tag "
                "does not say which C library they need, so pip cannot tell them apart and one "
                "index cannot serve both. Index or publish each target's wheels separately "
                f"(--target {first[0].target}, then --target {first[1].target} into another "
                "index), or plan, build and run those targets separately."
            )
        if wanted is None:
            return self.wheels()  # every file, listed in the manifest or not
        return sorted({self.wheel_path(e) for e in chosen}, key=lambda path: (path.name, str(path)))

    def entries(self) -> list[WheelEntry]:
        try:
            raw = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise IntegrityError(
                f"{self.manifest_path} is not valid JSON ({exc}). Restore it or delete the "
                "wheelhouse and rebuild."
            ) from None
        if not isinstance(data, list):
            raise IntegrityError(f"{self.manifest_path} must hold a JSON list of entries.")
        return [WheelEntry.from_json(item) for item in data]

    def lookup(self, cache_key: str) -> WheelEntry | None:
        """The entry built from exactly these inputs, if its wheel is present and intact."""
        for entry in self.entries():
            if entry.cache_key == cache_key and self._intact(entry):
                return entry
        return None

    def find(self, name: str, version: str, target: str) -> WheelEntry | None:
        """The newest intact wheel of ``name`` ``version`` built for ``target`` (what a build
        that needs it as a build requirement installs)."""
        wanted = canonicalize_name(name)
        found = [
            entry
            for entry in self.entries()
            if canonicalize_name(entry.name) == wanted
            and entry.version == version
            and entry.target == target
            and self._intact(entry)
        ]
        return max(found, key=lambda entry: entry.built_at, default=None)

    def wheel_path(self, entry: WheelEntry) -> Path:
        return self.wheels_dir / entry.stored_as

    def log_path(self, label: str) -> Path:
        return self.logs_dir / f"{label}.log"

    def _intact(self, entry: WheelEntry) -> bool:
        path = self.wheel_path(entry)
        try:
            if path.stat().st_size != entry.size:
                return False
        except FileNotFoundError:
            return False
        return file_sha256(path) == entry.sha256

    # -- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    def add(
        self,
        wheel: Path,
        *,
        name: str,
        version: str,
        target: str,
        cache_key: str,
        inputs: Mapping[str, Any],
        builder: str,
        log: Path | None = None,
        compilers: Mapping[str, Any] | None = None,
        build_requirements: Sequence[Mapping[str, Any]] = (),
    ) -> WheelEntry:
        """Copy ``wheel`` (and its build log) in and record it, replacing older entries of the
        same stored file or cache key. Atomic and safe against concurrent writers."""
        stored = stored_name(wheel.name, target)
        entry = WheelEntry(
            filename=wheel.name,
            sha256=file_sha256(wheel),
            size=wheel.stat().st_size,
            name=name,
            version=version,
            target=target,
            cache_key=cache_key,
            inputs=dict(inputs),
            built_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            builder=builder,
            log=str(log.relative_to(self.path)) if log and log.is_relative_to(self.path) else "",
            compilers=dict(compilers or {}),
            stored="" if stored == wheel.name else stored,
            build_requirements=tuple(dict(r) for r in build_requirements),
        )
        with self.locked():
            self._put_file(wheel, self.wheel_path(entry))
            self._record([entry])
        return entry

    def add_log(self, label: str, text_source: Path) -> Path:
        """Store a build log atomically under ``logs/<label>.log``."""
        destination = self.log_path(label)
        self._put_file(text_source, destination)
        return destination

    def merge(self, others: Iterable[Path | Wheelhouse]) -> list[WheelEntry]:
        """Bring the wheels, logs and entries of other wheelhouses (e.g. CI shards) into this one."""
        merged = []
        for other in others:
            source = other if isinstance(other, Wheelhouse) else Wheelhouse(other)
            if source.path.resolve() == self.path.resolve():
                raise UsageError(f"Cannot merge wheelhouse {self.path} into itself.")
            entries = source.entries()
            with self.locked():
                for entry in entries:
                    wheel = source.wheel_path(entry)
                    if not source._intact(entry):
                        raise IntegrityError(
                            f"{wheel} is missing or does not match its manifest entry in "
                            f"{source.path}; rebuild that shard before merging."
                        )
                    self._put_file(wheel, self.wheel_path(entry))
                    if entry.log and (source.path / entry.log).is_file():
                        self._put_file(source.path / entry.log, self.path / entry.log)
                self._record(entries)
            merged.extend(entries)
        return merged

    def remove_stale_temp_files(self) -> int:
        """Delete temp files left by killed processes (nobody holds their owner's lock)."""
        removed = 0
        directories = [self.path, self.wheels_dir, self.logs_dir]
        if self.wheels_dir.is_dir():
            directories += [d for d in self.wheels_dir.iterdir() if d.is_dir()]
        dead_owners = set()
        for directory in directories:
            if not directory.is_dir():
                continue
            for path in directory.glob(TEMP_PREFIX + "*"):
                token = temp_token(path.name)
                if token is None or temp_owner_alive(self.path, token):
                    continue
                if path.parent == self.path and path.name.endswith(".owner"):
                    dead_owners.add(path)
                    continue
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(
                    missing_ok=True
                )
                removed += 1
        for owner in dead_owners:  # after its files: an owner file is what says they are dead
            with contextlib.suppress(OSError):
                owner.unlink(missing_ok=True)
        return removed

    @property
    def _temp_prefix(self) -> str:
        return f"{TEMP_PREFIX}{temp_owner_token(self.path)}-"

    def scratch_dir(self) -> tempfile.TemporaryDirectory[str]:
        """A private temp directory inside the wheelhouse (same filesystem: renames are atomic)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=self._temp_prefix, dir=self.path)

    def _record(self, new: list[WheelEntry]) -> None:
        """Merge entries into the manifest (caller holds the lock).

        A new entry replaces those of the same stored file, the same cache key, or the same
        cell (project, version, target): one wheel per cell, so a rebuild with other inputs
        (a changed per-package setting, a new image) supersedes the old wheel instead of
        leaving both to be published. Superseded files are deleted after the manifest is
        written.
        """
        replaced_names = {e.stored_as for e in new}
        replaced_keys = {e.cache_key for e in new}
        replaced_cells = {_cell(e) for e in new}
        kept: list[WheelEntry] = []
        dropped: list[WheelEntry] = []
        for entry in self.entries():
            superseded = (
                entry.stored_as in replaced_names
                or entry.cache_key in replaced_keys
                or _cell(entry) in replaced_cells
            )
            (dropped if superseded else kept).append(entry)
        entries = sorted([*kept, *new], key=lambda e: (e.name, e.version, e.target, e.filename))
        payload = json.dumps([e.to_json() for e in entries], indent=2, sort_keys=True) + "\n"
        atomic_write(self.manifest_path, payload, prefix=self._temp_prefix)
        listed = {e.stored_as for e in entries}
        for entry in dropped:
            if entry.stored_as not in listed:
                self.wheel_path(entry).unlink(missing_ok=True)

    def _put_file(self, source: Path, destination: Path) -> None:
        with (
            source.open("rb") as reader,
            atomic_writer(destination, prefix=self._temp_prefix) as writer,
        ):
            shutil.copyfileobj(reader, writer)


def _cell(entry: WheelEntry) -> tuple[str, str, str]:
    return (canonicalize_name(entry.name), entry.version, entry.target)
