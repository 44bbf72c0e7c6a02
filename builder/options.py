"""Every option of every command, declared once, resolved once into frozen settings.

An option is a field of one of the frozen dataclasses below, declared with :func:`option`:
its name (the field name with ``-`` for ``_``: ``extra_index_url`` is ``--extra-index-url``,
``PREWHEEL_EXTRA_INDEX_URL`` and ``extra-index-url`` in ``[tool.prewheel]``), its type (the
annotation), its default, its help and the commands that take it. From these declarations
come the argparse options (:func:`add_options`), the environment and file lookup, the check of
``[tool.prewheel]`` keys (an unknown key is an error naming the nearest known one), and the
JSON schema of ``[tool.prewheel]`` (:func:`json_schema`, also installed for validate-pyproject).

Precedence, as before: command line > ``PREWHEEL_*`` environment > ``[tool.prewheel]`` >
the declared default. :func:`resolve` reads the layers once and returns a :class:`Settings`,
whose groups the stages take; no stage looks an option up by its name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import functools
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .building.builders import DEFAULT_MEMORY, DEFAULT_SETUP_TIMEOUT, DEFAULT_TIMEOUT
from .building.runner import DEFAULT_HEARTBEAT
from .building.toolchain import DEFAULT_BASE, Accelerate
from .config import ENV_PREFIX, Config, load_config
from .consume.verify import DEFAULT_IMAGE_TEMPLATE
from .errors import UsageError
from .index.server import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_LOGIN_ATTEMPTS,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_UPLOAD_TIMEOUT,
)
from .resolve import DEFAULT_RESOLVER, RESOLVERS
from .targets import DEFAULT_PLATFORMS, Target, select_targets

_Group = TypeVar("_Group")

DEFAULT_WHEELHOUSE = Path("wheelhouse")

# Keys of [tool.prewheel] that are tables, not options (config.py reads them).
TABLE_KEYS = ("packages", "overrides")

PLANNING = frozenset({"plan", "build", "lock", "run"})  # commands that may plan requirements
BUILDING = frozenset({"build", "run"})
PLANNING_BUILDS = BUILDING | {"plan"}  # the build requirements are planned
TARGETED = PLANNING | {"targets", "verify"}


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one option appears on the command line, in the environment and in the file."""

    help: str
    commands: frozenset[str]
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # more spellings on every command's command line (-j)
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    configurable: bool = True  # also PREWHEEL_* and [tool.prewheel] (else command line only)
    per_command_default: Mapping[str, object] = dataclasses.field(default_factory=dict)
    hidden: bool = False
    exclusive: str = ""  # options of one command with the same name here exclude each other


def option(
    default: object,
    *,
    help: str,
    commands: frozenset[str] | set[str],
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    aliases: Mapping[str, tuple[str, ...]] | None = None,
    configurable: bool = True,
    per_command_default: Mapping[str, object] | None = None,
    hidden: bool = False,
    exclusive: str = "",
) -> Any:
    """A dataclass field that is an option (see the module's docstring)."""
    spec = OptionSpec(
        help=help,
        commands=frozenset(commands),
        metavar=metavar,
        choices=choices,
        flags=flags,
        aliases=dict(aliases or {}),
        configurable=configurable,
        per_command_default=dict(per_command_default or {}),
        hidden=hidden,
        exclusive=exclusive,
    )
    return dataclasses.field(default=default, metadata={"option": spec})


@dataclasses.dataclass(frozen=True)
class TargetOptions:
    """Which targets (Python x libc x architecture) a command works for."""

    title: ClassVar[str] = "targets"

    platform: tuple[str, ...] = option(
        DEFAULT_PLATFORMS,
        help="Docker platforms, comma-separated",
        commands=TARGETED,
        metavar="LIST",
    )
    python: tuple[str, ...] = option(
        (), help="CPython versions, e.g. 3.11,3.12", commands=TARGETED, metavar="LIST"
    )
    libc: str | None = option(
        None,
        help="glibc or musl, optionally with the oldest version: glibc2.36, musl1.2 "
        "(default: glibc2.36, Debian bookworm)",
        commands=TARGETED,
        metavar="LIBC",
    )
    float_abi: str | None = option(
        None,
        help="32-bit ARM float ABI of the images (default: soft for glibc linux/arm/v6, as "
        "Debian armel; hard otherwise, as Debian armhf, Raspberry Pi OS and Alpine)",
        commands=TARGETED,
        choices=("hard", "soft"),
    )
    image: str | None = option(
        None,
        help="build image, or a template with {python}, {arch}, {debian_arch}, {platform}, e.g. "
        "python:3.11-slim-bookworm; an image without placeholders fixes Python and libc",
        commands=PLANNING | {"targets"},
        metavar="IMAGE",
        aliases={"run": ("--build-image",)},
    )
    target: tuple[str, ...] = option(
        (),
        help="target identifiers, comma-separated or repeated (cp311-manylinux_2_36_armv7l, "
        "cp311-glibc_2_36_armv6l): select these (index, publish: only the wheels built for them)",
        commands=TARGETED | {"index", "publish"},
        metavar="IDS",
    )

    def targets(self) -> list[Target]:
        """The selected targets. An image is read to fix Python and libc unless it is a
        template or both --python and --libc are given."""
        image = self.image
        if image and ("{" in image or (self.python and self.libc)):
            image = None
        return select_targets(
            platforms=list(self.platform),
            pythons=list(self.python),
            libc=self.libc,
            image=image,
            identifiers=list(self.target),
            float_abi=self.float_abi,
        )


@dataclasses.dataclass(frozen=True)
class IndexOptions:
    """The upstream indexes a plan reads, and how requirements are pinned."""

    title: ClassVar[str] = "indexes"

    index_url: str | None = option(
        None,
        help="upstream simple index (default: pip's configuration, else the default index)",
        commands=PLANNING,
        metavar="URL",
    )
    extra_index_url: tuple[str, ...] = option(
        (), help="more upstream indexes (repeatable)", commands=PLANNING, metavar="URL"
    )
    our_index_url: str | None = option(
        None,
        help="our own index: wheels found only here are reported as 'ours' (lock --format "
        "pylock: the simple/ URL the tree is served at)",
        commands=PLANNING,
        metavar="URL",
    )
    cache_dir: Path | None = option(
        None, help="HTTP cache directory", commands=PLANNING, metavar="DIR"
    )
    resolver: str = option(
        DEFAULT_RESOLVER,
        help="resolver of .in and pyproject.toml inputs: uv (one universal resolution for every "
        "target, dependencies behind markers kept with their markers) or pip-tools "
        "(pip-compile, for the host only)",
        commands=PLANNING,
        choices=RESOLVERS,
    )


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How and where gaps are built."""

    title: ClassVar[str] = "builds"

    wheelhouse: Path | None = option(
        DEFAULT_WHEELHOUSE,
        help="wheelhouse: the built wheels, their logs and manifest (default ./wheelhouse; "
        "run: OUTPUT/wheelhouse)",
        commands={"build", "lock", "run"},
        metavar="DIR",
        per_command_default={"run": None},
    )
    builder: str = option(
        "docker",
        help="docker (default) or local (host only)",
        commands=BUILDING,
        choices=("docker", "local"),
    )
    docker_host: tuple[str, ...] = option(
        (),
        help="Docker endpoint for one platform, e.g. linux/arm64=ssh://arm-box (repeatable)",
        commands=BUILDING,
        metavar="PLATFORM=URL",
    )
    jobs: int = option(1, help="parallel builds", commands=BUILDING, metavar="N", flags=("-j",))
    portable: bool = option(
        False,
        help="build portable manylinux/musllinux wheels with cibuildwheel (implied by --libc "
        "manylinux_X_Y or musllinux_X_Y without --image); linux/arm/v6 falls back to docker",
        commands=BUILDING,
    )
    portable_image: str | None = option(
        None,
        help="image for --portable builds instead of cibuildwheel's pinned ones (placeholders "
        "as for --image, e.g. my-registry/manylinux_2_28_{arch})",
        commands=BUILDING,
        metavar="IMAGE",
    )
    accelerate: str = option(
        Accelerate.AUTO.value,
        help="auto: compile with a native cross compiler where the build image's release has "
        "one built from the image's exact gcc version, while the image's Python runs emulated; "
        "relaxed: also where only the distribution's revision of that gcc differs; off: "
        "compile emulated",
        commands=BUILDING,
        choices=tuple(mode.value for mode in Accelerate),
    )
    toolchain_base: str = option(
        DEFAULT_BASE,
        help="image to assemble native toolchains in, on the daemon's architecture "
        "({id}:{codename} is filled from the build image's os-release, e.g. debian:bookworm)",
        commands=BUILDING,
        metavar="IMAGE",
    )
    timeout: float = option(
        DEFAULT_TIMEOUT, help="seconds per build", commands=BUILDING, metavar="SECONDS"
    )
    setup_timeout: float = option(
        DEFAULT_SETUP_TIMEOUT,
        help="seconds per container set-up",
        commands=BUILDING,
        metavar="SECONDS",
    )
    fresh_setup: bool = option(
        False,
        help="set build containers up from scratch, replacing the kept build environment",
        commands=BUILDING,
    )
    heartbeat: float = option(
        DEFAULT_HEARTBEAT,
        help="outside a terminal, a 'still building' line this often (0: none)",
        commands=BUILDING,
        metavar="SECONDS",
    )
    memory: str = option(
        DEFAULT_MEMORY, help="memory of each build container", commands=BUILDING, metavar="SIZE"
    )
    no_build_deps: bool = option(
        False,
        help="do not build the build requirements that have no wheel (plan: do not show them): "
        "builds install the pinned files prewheel already has and leave the rest to pip "
        "(fetched from the index, compiled in the build environment if it has no wheel)",
        commands=PLANNING_BUILDS,
    )
    build_constraints: Path | None = option(
        None,
        help="constraints file applied when the build requirements are resolved (as pip's "
        "PIP_CONSTRAINT or uv's --build-constraint), e.g. numpy==2.0.2 for every build that "
        "needs numpy",
        commands=PLANNING_BUILDS,
        metavar="FILE",
    )
    hermetic: bool = option(
        False,
        help="builds reach only prewheel's verified files (its wheels and the index files the "
        "plan chose, checked by sha256), no index: a build requirement prewheel lacks is an "
        "error naming it",
        commands=BUILDING,
    )
    binfmt_dir: Path | None = option(
        None,
        help="binfmt_misc directory (tests)",
        commands=BUILDING | {"verify"},
        hidden=True,
        configurable=False,
    )


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    """How a lock is verified in the targets' images."""

    title: ClassVar[str] = "verification"

    verify_image: str = option(
        DEFAULT_IMAGE_TEMPLATE,
        help="compiler-less image per target; placeholders {python}, {debian_arch}, {arch}, "
        "{platform}",
        commands={"verify", "run"},
        metavar="TEMPLATE",
        aliases={"verify": ("--image",)},
    )
    verify_timeout: float = option(
        1800.0,
        help="seconds per target",
        commands={"verify", "run"},
        metavar="SECONDS",
        aliases={"verify": ("--timeout",)},
    )
    installer: str = option(
        "pip",
        help="pip: the image's pip; uv: uv (prewheel's own release, installed in the image by "
        "its pip), --require-hashes --no-build, into a venv without pip",
        commands={"verify", "run", "dockerfile"},
        choices=("pip", "uv"),
    )
    allow_compiler: bool = option(
        False, help="accept images that contain a C compiler", commands={"verify"}
    )


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """``prewheel serve`` and the index tree's writers."""

    title: ClassVar[str] = "index server"

    host: str = option("127.0.0.1", help="address to listen on", commands={"serve"})
    port: int = option(8080, help="port to listen on", commands={"serve"})
    htpasswd: Path | None = option(
        None,
        help="accept uploads from users in this file",
        commands={"serve"},
        metavar="FILE",
        exclusive="uploaders",
    )
    token_file: Path | None = option(
        None,
        help="accept uploads whose password is the token in FILE (or set PREWHEEL_SERVE_TOKEN)",
        commands={"serve"},
        metavar="FILE",
        exclusive="uploaders",
    )
    max_upload: int = option(
        DEFAULT_MAX_UPLOAD, help="largest accepted upload", commands={"serve"}, metavar="BYTES"
    )
    max_failed_logins: int = option(
        DEFAULT_LOGIN_ATTEMPTS,
        help="failed logins per client address per minute before 429",
        commands={"serve"},
        metavar="N",
    )
    header_timeout: float = option(
        DEFAULT_HEADER_TIMEOUT,
        help="close a connection whose request headers take longer",
        commands={"serve"},
        metavar="SECONDS",
    )
    body_timeout: float = option(
        DEFAULT_BODY_TIMEOUT,
        help="answer 408 when an upload sends nothing for this long",
        commands={"serve"},
        metavar="SECONDS",
    )
    upload_timeout: float = option(
        DEFAULT_UPLOAD_TIMEOUT,
        help="answer 408 when a whole upload takes longer, however it trickles (3600: 2 GiB at "
        "0.6 MB/s)",
        commands={"serve"},
        metavar="SECONDS",
    )
    log_level: str = option(
        "info", help="server log level", commands={"serve"}, choices=("debug", "info", "warning")
    )
    lock_timeout: float = option(
        300.0,
        help="how long to wait for another writer of the tree; then give up (exit 13, or 503 "
        "for an upload)",
        commands={"index", "serve", "publish"},
        metavar="SECONDS",
        per_command_default={"serve": 30.0},
    )


@dataclasses.dataclass(frozen=True)
class PublishOptions:
    """Where ``prewheel publish`` uploads."""

    title: ClassVar[str] = "upload"

    repository_url: str | None = option(
        None,
        help="upload URL (twine's)",
        commands={"publish"},
        metavar="URL",
        exclusive="destination",
    )
    repository: str | None = option(
        None,
        help="a repository section of .pypirc (twine's -r)",
        commands={"publish"},
        metavar="NAME",
        exclusive="destination",
    )
    static: Path | None = option(
        None,
        help="update a static index tree instead",
        commands={"publish"},
        metavar="DIR",
        exclusive="destination",
    )
    simple_url: str | None = option(
        None,
        help="the index's simple API, read to skip existing files (default: derived from the "
        "upload URL: .../legacy/ -> .../simple/, else <url>/simple/)",
        commands={"publish"},
        metavar="URL",
    )
    pypirc: str = option(
        "~/.pypirc",
        help="twine's .pypirc",
        commands={"publish"},
        metavar="FILE",
        aliases={"publish": ("--config-file",)},
    )


GROUPS: tuple[type[Any], ...] = (
    TargetOptions,
    IndexOptions,
    BuildOptions,
    VerifyOptions,
    ServeOptions,
    PublishOptions,
)


@dataclasses.dataclass(frozen=True)
class Declared:
    """One declared option: its group, field, type and spec."""

    group: type[Any]
    field: str
    annotation: Any
    default: object
    spec: OptionSpec

    @property
    def key(self) -> str:
        return self.field.replace("_", "-")

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.field.upper()

    @property
    def kind(self) -> type:
        """bool, int, float, str, Path or tuple (a list of strings): the annotation without
        its ``| None``."""
        if typing.get_origin(self.annotation) is tuple:
            return tuple
        present = [arg for arg in typing.get_args(self.annotation) if arg is not type(None)]
        return typing.cast(type, present[0] if present else self.annotation)

    def default_for(self, command: str) -> object:
        return self.spec.per_command_default.get(command, self.default)


@functools.cache
def declared() -> tuple[Declared, ...]:
    """Every option, in declaration order."""
    found = []
    for group in GROUPS:
        hints = typing.get_type_hints(group)
        for field in dataclasses.fields(group):
            spec = field.metadata.get("option")
            if spec is not None:
                found.append(Declared(group, field.name, hints[field.name], field.default, spec))
    keys = [d.key for d in found]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:  # pragma: no cover - a declaration error, caught by every test
        raise AssertionError(f"options declared twice: {sorted(duplicates)}")
    return tuple(found)


def configurable_keys() -> list[str]:
    return [d.key for d in declared() if d.spec.configurable]


# --- the command line ---------------------------------------------------------------------------


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The declared options ``command`` takes, in argument groups, plus ``--config``."""
    groups: dict[type[Any], Any] = {}
    exclusive: dict[str, Any] = {}
    for item in declared():
        if command not in item.spec.commands:
            continue
        if item.group not in groups:
            groups[item.group] = parser.add_argument_group(item.group.title)
        container = groups[item.group]
        if item.spec.exclusive:
            if item.spec.exclusive not in exclusive:
                exclusive[item.spec.exclusive] = container.add_mutually_exclusive_group()
            container = exclusive[item.spec.exclusive]
        container.add_argument(*_flags(item, command), **_argparse_kwargs(item, command))
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with a [tool.prewheel] table (default: the nearest pyproject.toml)",
    )


def _flags(item: Declared, command: str) -> list[str]:
    """``--key``, the short flags, and the spellings ``command`` has kept (verify's --image
    is the verify image, run's --build-image the build image)."""
    return [f"--{item.key}", *item.spec.flags, *item.spec.aliases.get(command, ())]


def _argparse_kwargs(item: Declared, command: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dest": item.field, "default": None}
    default = item.default_for(command)
    help_text = item.spec.help
    if item.kind is bool:
        kwargs["action"] = "store_true"
    else:
        if item.kind is tuple:
            kwargs["action"] = "append"
        elif item.kind in (int, float):
            kwargs["type"] = item.kind
        elif item.kind is Path:
            kwargs["type"] = Path
        if item.spec.choices:
            kwargs["choices"] = item.spec.choices
        if item.spec.metavar:
            kwargs["metavar"] = item.spec.metavar
        shown = _shown(default)
        if shown and "default" not in help_text:
            help_text += f" (default {shown})"
    kwargs["help"] = argparse.SUPPRESS if item.spec.hidden else help_text.replace("%", "%%")
    return kwargs


def _shown(default: object) -> str:
    if default is None or default == () or default is False:
        return ""
    if isinstance(default, tuple):
        return ",".join(str(value) for value in default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


# --- resolution -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option of one command, resolved: the stages take these groups."""

    command: str
    targets: TargetOptions
    indexes: IndexOptions
    build: BuildOptions
    verify: VerifyOptions
    serve: ServeOptions
    publish: PublishOptions
    config: Config  # the file's per-package tables (and where it was found)


def resolve(
    command: str,
    args: argparse.Namespace | None = None,
    *,
    given: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    search_from: Path | None = None,
    command_line_only: frozenset[str] = frozenset(),
) -> Settings:
    """The settings of ``command``: its command line ``args`` (as :func:`add_options` made
    them) or, for a library caller, ``given`` (option keys to values, as on the command line:
    ``{"platform": "linux/arm64", "jobs": 2}``), then the environment (``os.environ`` unless
    ``env``) and ``[tool.prewheel]`` (``config_file``, else the nearest pyproject.toml), in
    that order of precedence. ``command_line_only`` names the parsers' long options that are
    not declared here, for the message about a file key that is one of them."""
    taken = {d.key for d in declared() if command in d.spec.commands}
    unknown = sorted(set(given or {}) - taken)
    if unknown:
        raise UsageError(
            f"prewheel {command} takes no option {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(taken))}."
        )
    given = {
        **(vars(args) if args is not None else {}),
        **{key.replace("-", "_"): value for key, value in (given or {}).items()},
    }
    config = load_config(
        env=env,
        config_file=config_file if config_file is not None else _path_or_none(given.get("config")),
        search_from=search_from,
    )
    check_file_keys(config, command_line_only)
    groups = {group: _resolve_group(group, command, given, config) for group in GROUPS}
    return Settings(
        command=command,
        targets=groups[TargetOptions],
        indexes=groups[IndexOptions],
        build=groups[BuildOptions],
        verify=groups[VerifyOptions],
        serve=groups[ServeOptions],
        publish=groups[PublishOptions],
        config=config,
    )


def _path_or_none(value: object) -> Path | None:
    return Path(str(value)) if value is not None else None


class _Layer(enum.IntEnum):
    """Where a value came from, lowest precedence first."""

    DEFAULT = 0
    FILE = 1
    ENVIRONMENT = 2
    COMMAND_LINE = 3


def _resolve_group(
    group: type[_Group], command: str, given: Mapping[str, Any], config: Config
) -> _Group:
    found = {
        item.field: (item, *_value(item, command, given, config))
        for item in declared()
        if item.group is group
    }
    _settle_exclusive(found, command, config)
    return group(**{field: value for field, (_, _, value) in found.items()})


def _value(
    item: Declared, command: str, given: Mapping[str, Any], config: Config
) -> tuple[_Layer, Any]:
    """The option's value and where it came from. The environment and the file are read for
    every command (``wheelhouse`` for ``index``, the index URLs' logins for any command); the
    command line only for the commands that take the option."""
    if command in item.spec.commands and given.get(item.field) is not None:
        return _Layer.COMMAND_LINE, _coerce(item, given[item.field], f"--{item.key}")
    if item.spec.configurable:
        raw = config.env.get(item.env_name, "")
        if raw != "":
            return _Layer.ENVIRONMENT, _coerce(item, raw, item.env_name)
        if item.key in config.file:
            where = f"{config.file_path}: {item.key}"
            return _Layer.FILE, _coerce(item, config.file[item.key], where, typed=True)
    return _Layer.DEFAULT, item.default_for(command)


def _settle_exclusive(
    found: dict[str, tuple[Declared, _Layer, Any]], command: str, config: Config
) -> None:
    """Options that exclude each other (``--htpasswd`` / ``--token-file``; publish's
    destinations) are settled as one: the highest layer that sets any of them wins and the
    others fall back to their defaults; two set in the same layer are an error."""
    groups: dict[str, list[tuple[Declared, _Layer]]] = {}
    for item, layer, _ in found.values():
        if item.spec.exclusive and layer is not _Layer.DEFAULT:
            groups.setdefault(item.spec.exclusive, []).append((item, layer))
    for members in groups.values():
        top = max(layer for _, layer in members)
        winners = [item for item, layer in members if layer is top]
        if len(winners) > 1:
            where = {
                _Layer.COMMAND_LINE: "on the command line",
                _Layer.ENVIRONMENT: "in the environment",
                _Layer.FILE: f"in {config.file_path}",
            }[top]
            raise UsageError(
                f"{' and '.join(item.key for item in winners)} are both set {where}, but they "
                "exclude each other: keep one."
            )
        for item, layer in members:
            if layer is not top:
                found[item.field] = (item, _Layer.DEFAULT, item.default_for(command))


def _coerce(item: Declared, value: Any, where: str, *, typed: bool = False) -> Any:
    """``value`` (a string from the command line or environment, or with ``typed`` a TOML
    value, which must have the option's type as the schema says) as the option's type; a value
    of the wrong type is a usage error saying where it came from."""
    kind = item.kind
    if kind is tuple:
        return _as_list(value, where)
    if typed and not _has_toml_type(kind, value):
        expected = {bool: "true or false", int: "a whole number", float: "a number"}
        raise UsageError(
            f"{where} must be {expected.get(kind, 'a string')}, got {value!r} "
            f"({type(value).__name__})."
        )
    if kind is bool:
        return _as_bool(value, where)
    if kind in (int, float):
        return _as_number(kind, value, where)
    if not isinstance(value, str | Path):
        raise UsageError(f"{where} must be a string, got {value!r}.")
    text = str(value)
    if item.spec.choices and text not in item.spec.choices:
        raise UsageError(f"{where}={text!r}: choose one of {', '.join(item.spec.choices)}.")
    return Path(text).expanduser() if kind is Path else text


def _as_list(value: Any, where: str) -> tuple[str, ...]:
    """A list option: strings (or one string), each split at commas and whitespace."""
    items = value if isinstance(value, list | tuple) else [value]
    if not all(isinstance(entry, str) for entry in items):
        raise UsageError(
            f"{where} must be a string or a list of strings, got {value!r}; quote versions "
            'and numbers (python = ["3.11", "3.12"]).'
        )
    return tuple(part for entry in items for part in entry.replace(",", " ").split() if part)


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise UsageError(f"{where}={value!r} is not a boolean; use 1/0 or true/false.")


def _as_number(kind: type, value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UsageError(f"{where} must be a number, got {value!r}.")
    if kind is int and isinstance(value, float):
        raise UsageError(f"{where}={value!r} is not a whole number.")
    try:
        return int(value) if kind is int else float(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{where}={value!r} is not {what}.") from None


def _has_toml_type(kind: type, value: object) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


# Spellings of configurable options on some command line that are not their key.
_ALIASES = {
    alias.lstrip("-"): item.key
    for item in declared()
    for aliases in item.spec.aliases.values()
    for alias in aliases
    if alias.lstrip("-") != item.key
}


def check_file_keys(config: Config, command_line_only: frozenset[str] = frozenset()) -> None:
    """Refuse a ``[tool.prewheel]`` key that is no option, naming the nearest one; a key that
    is a command-line-only option (``command_line_only``: every parser's long options) or an
    alias of an option says so."""
    config.validate_tables()
    known = [*configurable_keys(), *TABLE_KEYS]
    for key in config.file:
        if key in known:
            continue
        if key in _ALIASES and _ALIASES[key] in known:
            hint = f" Here it is called {_ALIASES[key]!r}."
        elif key in command_line_only or any(
            d.key == key and not d.spec.configurable for d in declared()
        ):
            hint = f" --{key} is a command-line option only."
        else:
            nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" Did you mean {nearest[0]!r}?" if nearest else ""
        raise UsageError(
            f"{config.file_path}: [tool.prewheel] has an unknown key {key!r}.{hint} The keys "
            f"it takes: {', '.join(known)}."
        )


# --- the schema of [tool.prewheel] -----------------------------------------------------------

SCHEMA_ID = "https://prewheel.invalid/schema/tool-prewheel.json"


def json_schema() -> dict[str, Any]:
    """JSON schema (draft 7) of ``[tool.prewheel]``, generated from the declarations."""
    properties: dict[str, Any] = {}
    for item in declared():
        if not item.spec.configurable:
            continue
        properties[item.key] = {"description": item.spec.help, **_schema_type(item)}
    package = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "system-packages": {"type": "array", "items": {"type": "string"}},
            "environment": {"type": "object", "additionalProperties": {"type": "string"}},
            "pip-args": {"type": "array", "items": {"type": "string"}},
            "before-build": {"type": "string"},
        },
    }
    packages = {"type": "object", "additionalProperties": package}
    properties["packages"] = {
        "description": "build settings per project: [tool.prewheel.packages.<name>]",
        **packages,
    }
    properties["overrides"] = {
        "description": "per-target changes to the package settings",
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["select"],
            "properties": {
                "select": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}},
                    ]
                },
                "packages": packages,
            },
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "[tool.prewheel]",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def _schema_type(item: Declared) -> dict[str, Any]:
    kind = item.kind
    if kind is tuple:
        return {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if item.spec.choices:
        return {"type": "string", "enum": list(item.spec.choices)}
    return {"type": "string"}


def validate_pyproject_schema(tool_name: str = "prewheel") -> dict[str, Any]:
    """The ``validate_pyproject.tool_schema`` entry point: the schema of ``[tool.prewheel]``."""
    del tool_name
    return json_schema()


def iter_keys(command: str) -> Iterator[str]:
    """The option keys ``command`` takes (documentation and tests)."""
    return (d.key for d in declared() if command in d.spec.commands)
