"""The configuration layers below the command line: ``PREWHEEL_*`` and ``[tool.prewheel]``.

:mod:`builder.options` declares every option and resolves it from the command line, then
these layers, then its default. Keys are the long option names (``extra-index-url``); the
environment variable of a key is ``PREWHEEL_`` + the key in upper case with ``-`` as ``_``
(``PREWHEEL_EXTRA_INDEX_URL``). List values are comma- or whitespace-separated.

Per-package build settings live in ``[tool.prewheel.packages.<name>]``; per-target changes to
them in ``[[tool.prewheel.overrides]]`` tables, as cibuildwheel's overrides: ``select`` (target
identifier patterns, fnmatch-style, e.g. ``"*armv6l*"``) and ``packages.<name>`` tables of the
same keys. Every matching override applies in file order: its keys replace the package's,
except ``environment``, whose variables are merged (the override's win).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from .errors import UsageError

ENV_PREFIX = "PREWHEEL_"


@dataclasses.dataclass(frozen=True)
class PackageSettings:
    """Build settings for one project (``[tool.prewheel.packages.<name>]``)."""

    system_packages: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    pip_args: tuple[str, ...] = ()
    before_build: str = ""

    def fingerprint(self) -> dict[str, Any]:
        """What part of the cache key these settings contribute (they change the wheel bytes)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Config:
    """The environment and ``[tool.prewheel]`` layers (:mod:`builder.options` resolves the
    options from them, with the command line above), and the per-package tables."""

    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    file: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    file_path: Path | None = None

    def package(self, name: str, target_identifier: str | None = None) -> PackageSettings:
        """``name``'s build settings, with the overrides that select ``target_identifier``."""
        where = f"{self.file_path}: [tool.prewheel.packages]"
        table = _table_for(name, self.file.get("packages", {}), where)
        for number, override in enumerate(self._overrides(), start=1):
            if target_identifier is None or not _selects(override, target_identifier):
                continue
            where = f"{self.file_path}: [[tool.prewheel.overrides]] #{number} packages"
            table = _merged(table, _table_for(name, override.get("packages", {}), where))
        return _package_settings(name, table, self.file_path)

    def _overrides(self) -> list[dict[str, Any]]:
        overrides = self.file.get("overrides", [])
        where = f"{self.file_path}: [[tool.prewheel.overrides]]"
        if not isinstance(overrides, list) or not all(isinstance(o, dict) for o in overrides):
            raise UsageError(f"{where} must be an array of tables, each with select = ...")
        for number, override in enumerate(overrides, start=1):
            unknown = set(override) - {"select", "packages"}
            select = override.get("select")
            patterns = [select] if isinstance(select, str) else select
            if (
                unknown
                or not select
                or not isinstance(patterns, list)
                or not all(isinstance(p, str) for p in patterns)
            ):
                raise UsageError(
                    f"{where} #{number}: an override has select (target identifier patterns, "
                    f'a string or a list of strings, e.g. select = "*armv6l*") and '
                    f"packages.<name> tables; found {override!r}."
                )
        return overrides

    def validate_tables(self) -> None:
        """Refuse malformed ``packages`` and ``overrides`` tables now, not when a build first
        reads them (a misspelt key would otherwise pass ``plan`` unnoticed)."""
        self._overrides()
        self.packages()
        for override in self._overrides():
            packages = override.get("packages", {})
            where = f"{self.file_path}: [[tool.prewheel.overrides]] packages"
            if not isinstance(packages, dict):
                raise UsageError(f"{where} must be a table.")
            for name in packages:
                _package_settings(name, _table_for(name, packages, where), self.file_path)

    def packages(self) -> dict[NormalizedName, PackageSettings]:
        """Every configured package's settings, without per-target overrides."""
        packages = self.file.get("packages", {})
        if not isinstance(packages, dict):
            raise UsageError(
                f"{self.file_path}: [tool.prewheel.packages] must be a table of "
                "[tool.prewheel.packages.<name>] tables."
            )
        return {canonicalize_name(key): self.package(key) for key in packages}


def _table_for(name: str, packages: Any, where: str) -> dict[str, Any]:
    """The settings table of ``name`` in a ``packages`` table ({} if it has none)."""
    if not isinstance(packages, dict):
        raise UsageError(f"{where} must be a table.")
    wanted = canonicalize_name(name)
    for key, table in packages.items():
        if canonicalize_name(key) == wanted:
            if not isinstance(table, dict):
                raise UsageError(f"{where}.{key} must be a table.")
            return table
    return {}


def _selects(override: Mapping[str, Any], identifier: str) -> bool:
    patterns = override["select"]
    patterns = [patterns] if isinstance(patterns, str) else [str(p) for p in patterns]
    return any(fnmatch.fnmatchcase(identifier, pattern) for pattern in patterns)


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **override}
    if isinstance(base.get("environment"), dict) and isinstance(override.get("environment"), dict):
        merged["environment"] = {**base["environment"], **override["environment"]}
    return merged


def _package_settings(name: str, table: Any, path: Path | None) -> PackageSettings:
    where = f"{path}: [tool.prewheel.packages.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table.")
    known = {"system-packages", "environment", "pip-args", "before-build"}
    unknown = set(table) - known
    if unknown:
        raise UsageError(
            f"{where} has unknown keys {sorted(unknown)}; known keys: {sorted(known)}."
        )
    environment = table.get("environment", {})
    if not isinstance(environment, dict) or not all(
        isinstance(value, str) for value in environment.values()
    ):
        raise UsageError(f'{where}: environment must be a table of NAME = "value" strings.')
    before_build = table.get("before-build", "")
    if not isinstance(before_build, str):
        raise UsageError(f"{where}: before-build must be a string (a shell command).")
    return PackageSettings(
        system_packages=_strings(table, "system-packages", where),
        environment=tuple(sorted((str(k), v) for k, v in environment.items())),
        pip_args=_strings(table, "pip-args", where),
        before_build=before_build,
    )


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list-of-strings setting (a lone string is refused: it would be split into letters)."""
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f'{where}: {key} must be a list of strings, e.g. {key} = ["x"].')
    return tuple(value)


def load_config(
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    search_from: Path | None = None,
) -> Config:
    """Assemble a :class:`Config`; the file is ``config_file`` or the nearest pyproject.toml."""
    environment = dict(os.environ if env is None else env)
    path = config_file or _find_pyproject(search_from or Path.cwd())
    table: dict[str, Any] = {}
    if path is not None:
        table = _read_tool_table(path, explicit=config_file is not None)
    return Config(
        env=environment,
        file=table,
        file_path=path,
    )


def _find_pyproject(start: Path) -> Path | None:
    for directory in (start.resolve(), *start.resolve().parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_tool_table(path: Path, *, explicit: bool) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Configuration file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"Cannot read the configuration file {path} ({exc}); give a UTF-8 TOML file."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        how = "given with --config" if explicit else "found as the nearest pyproject.toml"
        raise UsageError(
            f"{path} ({how}) is not valid TOML: {exc}. Fix the file, or point --config at "
            "another one."
        ) from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise UsageError(f"{path}: tool must be a table ([tool.prewheel] holds the settings).")
    if path.name == "pyproject.toml":
        table = tool.get("prewheel", {})
    else:
        table = tool.get("prewheel", data)
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.prewheel] must be a table.")
    return table
