"""Read a pinned requirements set: pip-tools output, ``.in`` files (compiled first), pylock.toml.

The grammar is pip's requirements-file format as pip-compile writes it: one requirement per line
(PEP 508, parsed by :mod:`packaging.requirements`), ``\\`` continuations, ``#`` comments, per-line
``--hash`` options, ``-r``/``-c`` includes and global index options. Every requirement must be
pinned with ``==`` to one exact version: prewheel builds artefacts of exact versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from packaging.markers import Marker
from packaging.pylock import PackageSdist, PackageWheel, Pylock, PylockValidationError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import RequirementsError
from .resolve import PipToolsResolver, Resolver, export_uv_lock

COMPILE_HINT = (
    "Pin every requirement to one exact version, e.g. by compiling your .in file with pip-tools "
    "(`pip-compile requirements.in`) or by passing the .in file to prewheel, which compiles it."
)


@dataclasses.dataclass(frozen=True)
class SourceLine:
    """Where a requirement came from, for error messages."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclasses.dataclass(frozen=True)
class PinnedRequirement:
    """One ``name[extras]==version ; marker`` line with its allowed hashes."""

    name: NormalizedName
    version: Version
    extras: frozenset[str] = frozenset()
    marker: Marker | None = None
    hashes: frozenset[str] = frozenset()  # "sha256:<hex>" as pip writes them
    source: SourceLine | None = None

    @property
    def key(self) -> tuple[NormalizedName, Version]:
        return (self.name, self.version)

    def applies_to(self, environment: dict[str, str]) -> bool:
        """Whether the marker is true in a (target's) marker environment."""
        if self.marker is None:
            return True
        env = dict(environment)
        # Evaluate with each requested extra as pip does; no extra means extra == "".
        extras = sorted(self.extras) or [""]
        return any(self.marker.evaluate({**env, "extra": extra}) for extra in extras)

    def __str__(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}{extras}=={self.version}{marker}"


ALL = ":all:"
NONE = ":none:"


@dataclasses.dataclass(frozen=True)
class FormatControl:
    """pip's ``--no-binary`` / ``--only-binary``, with pip's precedence.

    Each holds normalized project names or ``:all:``. A name given to one option leaves the
    other; ``:all:`` clears both; ``:none:`` clears the option it is given to. For a project,
    a name listed explicitly wins over ``:all:``, and ``--only-binary`` wins a tie.
    """

    no_binary: frozenset[str] = frozenset()
    only_binary: frozenset[str] = frozenset()

    def with_no_binary(self, value: str) -> FormatControl:
        no_binary, only_binary = _mutually_exclusive(
            value, set(self.no_binary), set(self.only_binary)
        )
        return FormatControl(frozenset(no_binary), frozenset(only_binary))

    def with_only_binary(self, value: str) -> FormatControl:
        only_binary, no_binary = _mutually_exclusive(
            value, set(self.only_binary), set(self.no_binary)
        )
        return FormatControl(frozenset(no_binary), frozenset(only_binary))

    def allows_binary(self, name: str) -> bool:
        """False when pip ignores every wheel of ``name`` (it builds from the sdist)."""
        name = canonicalize_name(name)
        if name in self.only_binary:
            return True
        return name not in self.no_binary and (ALL in self.only_binary or ALL not in self.no_binary)

    def allows_source(self, name: str) -> bool:
        """False when pip refuses to build ``name`` from its sdist."""
        name = canonicalize_name(name)
        if name in self.only_binary:
            return False
        return name in self.no_binary or ALL not in self.only_binary


PIP_DEFAULT_FORMATS = FormatControl()  # wheels and sdists both allowed


def _mutually_exclusive(value: str, target: set[str], other: set[str]) -> tuple[set[str], set[str]]:
    """Add one comma-separated option value to ``target``, as pip's FormatControl does."""
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item == ALL:
            target.clear()
            other.clear()
            target.add(ALL)
        elif item == NONE:
            target.clear()
        else:
            name = canonicalize_name(item)
            other.discard(name)
            target.add(name)
    return target, other


@dataclasses.dataclass(frozen=True)
class RequirementSet:
    """Everything read from the input: requirements plus the index options the files name."""

    requirements: tuple[PinnedRequirement, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    sources: tuple[Path, ...] = ()
    format_control: FormatControl = PIP_DEFAULT_FORMATS

    def names(self) -> list[NormalizedName]:
        return list(dict.fromkeys(req.name for req in self.requirements))


class _LineOptions(argparse.ArgumentParser):
    """pip's per-line and global options; errors become RequirementsError at the caller."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _option_parser() -> _LineOptions:
    parser = _LineOptions(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("-r", "--requirement", action="append", default=[])
    parser.add_argument("-c", "--constraint", action="append", default=[])
    parser.add_argument("--hash", action="append", default=[])
    parser.add_argument("-i", "--index-url")
    parser.add_argument("--extra-index-url", action="append", default=[])
    parser.add_argument("-f", "--find-links", action="append", default=[])
    parser.add_argument("--no-index", action="store_true")
    parser.add_argument("--pre", action="store_true")
    parser.add_argument("--trusted-host", action="append", default=[])
    parser.add_argument("--prefer-binary", action="store_true")
    parser.add_argument("--only-binary", action="append", default=[])
    parser.add_argument("--no-binary", action="append", default=[])
    parser.add_argument("--use-feature", action="append", default=[])
    parser.add_argument("-e", "--editable")
    return parser


_OPTIONS = _option_parser()


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first physical line number, line) with continuations joined and comments cut."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        joined = " ".join(part.strip() for part in buffer).strip()
        buffer = []
        if joined:
            yield start, joined
    if buffer:
        joined = " ".join(part.strip() for part in buffer).strip()
        if joined:
            yield start, joined


# pip's rule: ${NAME} with NAME of capitals, digits and underscores (POSIX), from the
# environment; a variable that is not set is left as written.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)\}")


def expand_variables(line: str, environ: Mapping[str, str] | None = None) -> str:
    """``${NAME}`` in a requirements line replaced as pip replaces it (tokens in index URLs,
    ``--index-url https://${USER}:${TOKEN}@host/simple/``)."""
    values = os.environ if environ is None else environ
    return _VARIABLE.sub(lambda match: values.get(match["name"], match[0]), line)


def _strip_comment(line: str) -> str:
    """pip's rule: ``#`` starts a comment at the line start or after whitespace."""
    if line.lstrip().startswith("#"):
        return ""
    for index, char in enumerate(line):
        if char == "#" and index > 0 and line[index - 1].isspace():
            return line[:index].rstrip()
    return line.rstrip()


def _split_requirement_and_options(line: str) -> tuple[str, list[str]]:
    """pip's ``break_args_options``: options start at the first token beginning with ``-``."""
    tokens = line.split(" ")
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            options = " ".join(tokens[index:])
            # shlex is slow on pip-compile's hundreds of --hash options; only quotes need it.
            split = shlex.split(options) if any(q in options for q in "'\"\\") else options.split()
            return " ".join(tokens[:index]).strip(), split
    return line.strip(), []


@dataclasses.dataclass
class _Reader:
    requirements: list[PinnedRequirement] = dataclasses.field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = dataclasses.field(default_factory=list)
    find_links: list[str] = dataclasses.field(default_factory=list)
    sources: list[Path] = dataclasses.field(default_factory=list)
    stack: list[Path] = dataclasses.field(default_factory=list)
    format_control: FormatControl = PIP_DEFAULT_FORMATS

    def read(self, path: Path, *, constraints: bool = False, included_from: str = "") -> None:
        resolved = path.resolve()
        if resolved in self.stack:
            chain = " -> ".join(str(p) for p in [*self.stack, resolved])
            raise RequirementsError(
                f"Include cycle in requirements files: {chain}. Remove the -r/-c line that "
                "points back to a file already being read."
            )
        try:
            text = resolved.read_text(encoding="utf-8")
        except FileNotFoundError:
            where = f" (included from {included_from})" if included_from else ""
            raise RequirementsError(
                f"Requirements file {path} does not exist{where}. Check the path; -r/-c paths "
                "are relative to the file that includes them."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RequirementsError(f"Cannot read requirements file {path}: {exc}.") from None
        self.sources.append(resolved)
        self.stack.append(resolved)
        try:
            for number, line in logical_lines(text):
                self._line(
                    SourceLine(path, number), expand_variables(line), constraints=constraints
                )
        finally:
            self.stack.pop()

    def _line(self, where: SourceLine, line: str, *, constraints: bool) -> None:
        requirement_text, option_tokens = _split_requirement_and_options(line)
        try:
            options = _OPTIONS.parse_args(option_tokens)
        except (ValueError, argparse.ArgumentError) as exc:
            raise RequirementsError(
                f"{where}: unsupported or malformed option in {line!r} ({exc}). prewheel reads "
                "pip-tools output: requirement lines with --hash, -r/-c includes and index options."
            ) from None
        if options.editable:
            raise RequirementsError(
                f"{where}: editable requirement {options.editable!r} cannot be pre-built. "
                "prewheel builds released sdists; remove -e lines (install local code in your "
                "Dockerfile instead)."
            )
        base = where.path.parent
        for include in options.requirement:
            self.read(base / include, constraints=constraints, included_from=str(where))
        for include in options.constraint:
            self.read(base / include, constraints=True, included_from=str(where))
        if options.index_url:
            self.index_url = options.index_url
        self.extra_index_urls.extend(options.extra_index_url)
        self.find_links.extend(options.find_links)
        for value in options.no_binary:
            self.format_control = self.format_control.with_no_binary(value)
        for value in options.only_binary:
            self.format_control = self.format_control.with_only_binary(value)
        if requirement_text and not constraints:
            self.requirements.append(parse_pinned(requirement_text, where, options.hash))
        elif requirement_text:
            parse_pinned(requirement_text, where, options.hash, require_pin=False)


def declared_indexes(path: Path) -> tuple[str | None, list[str]]:
    """The ``--index-url`` (last one wins, as in pip) and ``--extra-index-url`` options a loose
    requirements file (``.in``) and the files it includes with ``-r``/``-c`` declare, with
    ``${VAR}`` expanded; requirements themselves are not judged. Unreadable files and lines
    are skipped: the resolver reports them."""
    index_url: str | None = None
    extras: list[str] = []
    seen: set[Path] = set()

    def scan(current: Path) -> None:
        nonlocal index_url
        resolved = current.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        try:
            text = resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
        for _, line in logical_lines(text):
            _, tokens = _split_requirement_and_options(expand_variables(line))
            try:
                options = _OPTIONS.parse_args(tokens)
            except (ValueError, argparse.ArgumentError):
                continue
            if options.index_url:
                index_url = options.index_url
            extras.extend(options.extra_index_url)
            for include in [*options.requirement, *options.constraint]:
                scan(resolved.parent / include)

    scan(path)
    return index_url, extras


def parse_pinned(
    text: str, where: SourceLine | None, hashes: Sequence[str] = (), *, require_pin: bool = True
) -> PinnedRequirement:
    """Parse one requirement; it must pin exactly one version with ``==`` (or ``===``)."""
    prefix = f"{where}: " if where else ""
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise RequirementsError(
            f"{prefix}malformed requirement {text!r}: {exc}. Each line must be a PEP 508 "
            "requirement such as `asyncpg==0.29.0` or `uvloop==0.19.0 ; sys_platform != 'win32'`."
        ) from None
    if requirement.url:
        raise RequirementsError(
            f"{prefix}direct URL requirement {text!r} is not supported: prewheel builds "
            "released versions from an index. Publish the package to an index and pin it by version."
        )
    specs = list(requirement.specifier)
    version: Version | None = None
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        try:
            version = Version(specs[0].version)
        except InvalidVersion:
            version = None
    if version is None:
        if not require_pin:
            return PinnedRequirement(canonicalize_name(requirement.name), Version("0"))
        raise RequirementsError(
            f"{prefix}requirement {text!r} is not pinned to one version. {COMPILE_HINT}"
        )
    for entry in hashes:
        algorithm, sep, digest = entry.partition(":")
        if not sep or not digest or algorithm not in {"sha256", "sha384", "sha512"}:
            raise RequirementsError(
                f"{prefix}malformed --hash {entry!r}; pip-tools writes --hash=sha256:<hex digest>."
            )
    return PinnedRequirement(
        name=canonicalize_name(requirement.name),
        version=version,
        extras=frozenset(canonicalize_name(extra) for extra in requirement.extras),
        marker=requirement.marker,
        hashes=frozenset(hashes),
        source=where,
    )


def read_requirements(
    paths: Sequence[Path],
    *,
    resolver: Resolver | None = None,
    cache_root: Path | None = None,
) -> RequirementSet:
    """Read one or more requirement inputs into one set.

    ``*.in`` files and ``pyproject.toml`` (its ``[project]`` dependencies) are resolved first
    with ``resolver`` (default: pip-compile for the host; the plan passes a universal uv
    resolver); ``uv.lock`` is exported by uv; ``pylock.toml`` / ``pylock.*.toml`` files are
    read as PEP 751 locks; anything else is a pinned requirements file.
    """
    if not paths:
        raise RequirementsError(
            "No requirements given. Pass a pinned requirements file (pip-compile output), an "
            ".in file, a pyproject.toml, a uv.lock or a pylock.toml, e.g. "
            "`prewheel plan requirements.txt`."
        )
    reader = _Reader()
    for path in paths:
        if path.name.startswith("pylock.") and path.suffix == ".toml":
            _read_pylock(path, reader)
        elif path.name == "uv.lock":
            reader.read(export_uv_lock(path, cache_root=cache_root))
        elif path.suffix == ".in" or path.name == "pyproject.toml":
            compiled = (resolver or PipToolsResolver(cache_root=cache_root)).compile(path)
            reader.read(compiled)
            if path.suffix == ".in":
                # The resolvers do not copy index options into their output: the plan reads
                # the indexes the input names, as the resolution did.
                declared_index, declared_extras = declared_indexes(path)
                reader.index_url = reader.index_url or declared_index
                reader.extra_index_urls.extend(declared_extras)
        else:
            reader.read(path)
    if not reader.requirements:
        raise RequirementsError(
            f"No requirements found in {', '.join(str(p) for p in paths)}. {COMPILE_HINT}"
        )
    _check_conflicts(reader.requirements)
    return RequirementSet(
        requirements=tuple(reader.requirements),
        index_url=reader.index_url,
        extra_index_urls=tuple(dict.fromkeys(reader.extra_index_urls)),
        find_links=tuple(dict.fromkeys(reader.find_links)),
        sources=tuple(reader.sources),
        format_control=reader.format_control,
    )


def _check_conflicts(requirements: list[PinnedRequirement]) -> None:
    """The same project pinned to two versions without markers cannot be planned."""
    seen: dict[NormalizedName, PinnedRequirement] = {}
    for requirement in requirements:
        earlier = seen.setdefault(requirement.name, requirement)
        if (
            earlier.version != requirement.version
            and earlier.marker is None
            and requirement.marker is None
        ):
            raise RequirementsError(
                f"{requirement.source}: {requirement.name} is pinned to {requirement.version} "
                f"but {earlier.source} pins it to {earlier.version}. Keep one pin (recompile "
                "the set with pip-compile), or give each pin an environment marker."
            )


def _read_pylock(path: Path, reader: _Reader) -> None:
    """PEP 751: every package entry is an exact version; its marker is kept per package."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        lock = Pylock.from_dict(data)
    except FileNotFoundError:
        raise RequirementsError(f"Lock file {path} does not exist.") from None
    except (tomllib.TOMLDecodeError, PylockValidationError) as exc:
        raise RequirementsError(f"{path}: not a valid PEP 751 lock file: {exc}.") from None
    reader.sources.append(path.resolve())
    for package in lock.packages:
        if package.version is None:
            raise RequirementsError(
                f"{path}: package {package.name} has no version (a VCS or directory source); "
                "prewheel pre-builds released versions only."
            )
        archives: list[PackageWheel | PackageSdist] = [*(package.wheels or ())]
        if package.sdist is not None:
            archives.append(package.sdist)
        hashes = {
            f"{algorithm}:{digest}"
            for archive in archives
            for algorithm, digest in archive.hashes.items()
        }
        reader.requirements.append(
            PinnedRequirement(
                name=canonicalize_name(package.name),
                version=package.version,
                marker=package.marker,
                hashes=frozenset(hashes),
                source=SourceLine(path, 0),
            )
        )
