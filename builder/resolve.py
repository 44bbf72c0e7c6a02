"""Loose inputs to pinned requirements: ``.in`` and ``pyproject.toml`` resolved, ``uv.lock``
exported.

A resolver runs on the host and writes a pinned requirements file that
:mod:`builder.requirements` then reads like any other. Two are offered:

- :class:`UvResolver` (the default): ``uv pip compile --universal``, one resolution for every
  platform and every Python from the targets' oldest on. A dependency behind a marker
  (``platform_machine == "armv7l"``, ``python_version >= "3.12"``) keeps its marker, so the
  plan applies it on exactly the targets where pip would install it.
- :class:`PipToolsResolver`: pip-tools' ``pip-compile``, which resolves for the host only:
  dependencies behind markers that are false on the host are not in its output.

``uv.lock`` (always universal) is exported by uv itself (:func:`export_uv_lock`), as
``uv sync --no-dev`` would install it: no dev dependencies, no extras, no workspace members.

Every output lives at one stable path per input (and resolver and Python floor), because both
resolvers read an existing output as their preferred pins: an unchanged input resolves to the
same versions until you upgrade them.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

from uv import find_uv_bin

from . import cmd
from .errors import RequirementsError, UsageError
from .hostenv import ca_bundle, user_cache

RESOLVE_TIMEOUT = 1800.0  # seconds for one resolution
EXPORT_TIMEOUT = 300.0  # seconds for one `uv export` (no resolution, no network)
RESOLVERS = ("uv", "pip-tools")
DEFAULT_RESOLVER = "uv"


class Resolver(Protocol):
    """Turns a loose ``.in`` file or ``pyproject.toml`` into a pinned requirements file."""

    def compile(self, path: Path) -> Path: ...


def uv_binary() -> str:
    """The uv executable of the ``uv`` package prewheel depends on (not a system uv)."""
    try:
        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):  # uv's UvNotFound is a FileNotFoundError
        raise RequirementsError(
            "uv is not installed in prewheel's environment; reinstall prewheel "
            "(`pip install prewheel`, which depends on uv) or pass --resolver pip-tools."
        ) from None


def uv_release() -> str:
    """The version of the uv prewheel depends on (what ``--installer uv`` puts in images)."""
    try:
        return version("uv")
    except PackageNotFoundError:
        raise UsageError(
            "uv is not installed in prewheel's environment; reinstall prewheel (it depends on "
            "uv), or name the release with --uv-version."
        ) from None


def _stable_output(cache_root: Path | None, path: Path, kind: str, *parts: str) -> Path:
    digest = hashlib.sha256("|".join([str(path.resolve()), kind, *parts]).encode()).hexdigest()
    output = (cache_root or user_cache("compiled")) / digest[:16] / f"{path.stem}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


def _check_input(path: Path) -> None:
    if not path.is_file():
        raise RequirementsError(f"Input file {path} does not exist.")


def _ran(result: cmd.CommandResult, what: str, path: Path, timeout: float) -> None:
    if result.timed_out:
        raise RequirementsError(
            f"{what} did not finish with {path} in {timeout:.0f} s; the index is too slow or "
            "the resolution backtracks without end. Pin the packages it backtracks on in the "
            "input, or pass a pinned requirements file.\n" + result.tail()
        )
    if result.exit_code != 0:
        raise RequirementsError(
            f"{what} could not resolve {path}:\n"
            + result.tail()
            + "\nFix the conflicting or misspelled requirement in the input, or pass an "
            "already pinned requirements file instead."
        )


def _uv_environment() -> dict[str, str]:
    """uv reads no pip configuration: hand it the CA bundle pip and prewheel trust (proxies
    come through the environment unchanged)."""
    bundle = ca_bundle()
    return {"SSL_CERT_FILE": str(bundle)} if bundle else {}


class UvResolver:
    """``uv pip compile --universal`` from ``python_floor`` on.

    uv reads no pip configuration, so prewheel hands it the indexes, in its environment (never
    on its command line, where other users of the machine could read a login), with pip's
    precedence: ``index_url`` if given (the command line or prewheel's configuration), else
    the ``--index-url`` the input file declares (uv reads it there), else ``fallback_index_url``
    (pip's configured index, else the default one). With any extra index, the input's or
    prewheel's, the strategy is pip's (the best version across all indexes), so the pins are
    those pip would pick in the image.
    """

    def __init__(
        self,
        *,
        python_floor: str,
        fallback_index_url: str,
        index_url: str | None = None,
        extra_index_urls: Sequence[str] = (),
        cache_root: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.python_floor = python_floor
        self.fallback_index_url = fallback_index_url
        self.index_url = index_url
        self.extra_index_urls = tuple(extra_index_urls)
        self.cache_root = cache_root
        self.extra_args = tuple(extra_args)

    def output_for(self, path: Path) -> Path:
        return _stable_output(self.cache_root, path, "uv", self.python_floor)

    def command(self, path: Path, output: Path) -> list[str]:
        return [
            uv_binary(),
            "pip",
            "compile",
            "--universal",
            "--python-version",
            self.python_floor,
            # Any sdist whose metadata must be built is built with prewheel's own interpreter;
            # uv downloads no Python.
            "--python",
            sys.executable,
            "--no-python-downloads",
            "--quiet",
            "--no-header",
            "--output-file",
            str(output),
            *self.extra_args,
            str(path),
        ]

    def index_environment(self, path: Path) -> dict[str, str]:
        """``UV_DEFAULT_INDEX``, ``UV_INDEX`` and ``UV_INDEX_STRATEGY`` for resolving ``path``."""
        from .requirements import declared_indexes  # noqa: PLC0415 - requirements imports us

        declared_index, declared_extras = (
            declared_indexes(path) if path.suffix == ".in" else (None, [])
        )
        environment: dict[str, str] = {}
        if self.index_url is not None or declared_index is None:
            environment["UV_DEFAULT_INDEX"] = self.index_url or self.fallback_index_url
        if self.extra_index_urls:
            environment["UV_INDEX"] = " ".join(self.extra_index_urls)
        if self.extra_index_urls or declared_extras:
            environment["UV_INDEX_STRATEGY"] = "unsafe-best-match"
        return environment

    def compile(self, path: Path) -> Path:
        _check_input(path)
        output = self.output_for(path)
        environment = {**_uv_environment(), **self.index_environment(path)}
        result = cmd.run(
            self.command(path, output), timeout=RESOLVE_TIMEOUT, environment=environment
        )
        _ran(result, "uv pip compile --universal", path, RESOLVE_TIMEOUT)
        return output


class PipToolsResolver:
    """pip-tools' ``pip-compile`` (``python -m piptools compile``) on the host, for the host.

    pip-compile reads pip's configuration (index, certificate) itself.
    """

    def __init__(
        self,
        output_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        *,
        cache_root: Path | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.extra_args = tuple(extra_args)
        self.cache_root = cache_root

    def output_for(self, path: Path) -> Path:
        """``output_dir/<stem>.txt`` if given, else a stable path in the cache."""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            return self.output_dir / (path.stem + ".txt")
        return _stable_output(self.cache_root, path, "pip-tools")

    def compile(self, path: Path) -> Path:
        _check_input(path)
        output = self.output_for(path)
        command = [
            sys.executable,
            "-m",
            "piptools",
            "compile",
            "--quiet",
            "--no-header",
            "--strip-extras",
            "--no-emit-index-url",
            "--no-emit-find-links",
            "--no-emit-trusted-host",
            "--output-file",
            str(output),
            *self.extra_args,
            str(path),
        ]
        env = {"CUSTOM_COMPILE_COMMAND": f"prewheel (pip-compile {path.name})"}
        result = cmd.run(command, timeout=RESOLVE_TIMEOUT, environment=env)
        _ran(result, "pip-compile", path, RESOLVE_TIMEOUT)
        return output


def make_resolver(
    name: str,
    *,
    python_floor: str,
    fallback_index_url: str,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    cache_root: Path | None = None,
) -> Resolver:
    """The resolver called ``name`` (one of :data:`RESOLVERS`); the index arguments as for
    :class:`UvResolver` (pip-compile reads pip's configuration and the input's options)."""
    if name == "uv":
        return UvResolver(
            python_floor=python_floor,
            fallback_index_url=fallback_index_url,
            index_url=index_url,
            extra_index_urls=extra_index_urls,
            cache_root=cache_root,
        )
    if name == "pip-tools":
        return PipToolsResolver(cache_root=cache_root)
    raise RequirementsError(
        f"Unknown resolver {name!r}; choose one of {', '.join(RESOLVERS)} "
        "(--resolver, or `resolver` in [tool.prewheel])."
    )


def export_uv_lock(
    path: Path, *, cache_root: Path | None = None, environment: Mapping[str, str] | None = None
) -> Path:
    """``uv export`` of a ``uv.lock`` (it must sit beside its project's pyproject.toml) into a
    pinned, hashed, markered requirements file, as ``uv sync --frozen --no-dev`` installs it."""
    _check_input(path)
    project = path.resolve().parent
    if not (project / "pyproject.toml").is_file():
        raise RequirementsError(
            f"{path} has no pyproject.toml beside it; uv reads a lock only together with its "
            "project. Pass the uv.lock inside the project directory, or export it yourself "
            "(`uv export --format requirements.txt -o requirements.txt`) and pass that file."
        )
    output = _stable_output(cache_root, path, "uv-export")
    command = [
        uv_binary(),
        "export",
        "--frozen",
        "--format",
        "requirements.txt",
        "--no-dev",
        "--no-emit-workspace",
        "--no-header",
        "--quiet",
        "--project",
        str(project),
        "--output-file",
        str(output),
    ]
    result = cmd.run(
        command,
        timeout=EXPORT_TIMEOUT,
        environment={**_uv_environment(), **(environment or {})},
    )
    if result.timed_out or result.exit_code != 0:
        raise RequirementsError(
            f"uv could not export {path}:\n"
            + result.tail()
            + "\nCheck that the lock matches its pyproject.toml (`uv lock --check`), or "
            "export it yourself and pass the requirements file."
        )
    return output
