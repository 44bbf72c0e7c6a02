"""Portable (manylinux/musllinux) wheels, built by driving cibuildwheel.

cibuildwheel owns the container side: it starts the manylinux/musllinux image for the target's
platform (under QEMU where needed), runs ``before-all``, builds the sdist and repairs the wheel
with auditwheel so the shared libraries it needs are bundled and it carries a
``manylinux_X_Y``/``musllinux_X_Y`` tag. prewheel decides what to build (the plan's gaps),
verifies the sdist, translates its per-package settings into cibuildwheel options and files
the repaired wheel in the wheelhouse with the same cache key rules as the other builders.

Pure parts: :func:`wants_portable`, :func:`cibuildwheel_identifier`, :func:`choose_policy`, :func:`portable_image`,
:func:`split_portable`, :func:`cibuildwheel_options` and :func:`invocation`. Side effects (the
cibuildwheel process, Docker) sit behind :class:`ProcessRunner` and :class:`CibuildwheelBuilder`,
which implements :class:`builder.building.builders.Builder`; :func:`run_portable_builds` runs a
set of jobs through it, falling back to the docker builder where no portable image exists.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import importlib.util
import shlex
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any, Protocol

import docker
import docker.errors

from .. import cmd
from ..errors import HostEnvironmentError, ImageUnavailableError, UsageError
from ..hostenv import ca_bundle, pip_setting, proxy_environment
from ..targets import Arch, Target, policy_libc_version
from ..wheelhouse import Wheelhouse
from .builders import (
    DEFAULT_TIMEOUT,
    SOURCE_DATE_EPOCH,
    Builder,
    BuildFailed,
    BuildResult,
    BuildSession,
    DockerBuilder,
    arch_environment,
)
from .container import LABEL, OWNER_LABEL, local_image, owner_label
from .jobs import BuildJob, resolve_image
from .requirements import BuildEnvironment
from .runner import BuildReport, run_builds
from .sdist import SdistFetcher
from .toolchain import Acceleration, Toolchain

NAME = "cibuildwheel"
CONTAINER_CA_BUNDLE = "/cibuildwheel-ca-bundle.pem"  # where cibuildwheel copies SSL_CERT_FILE
RUN_LABEL = "org.prewheel.cibuildwheel-run"
_CA_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


# --- which targets, which identifier, which image (pure) -----------------------------------------
def family(target: Target) -> str:
    """``manylinux`` or ``musllinux``: cibuildwheel's name for the target's libc family."""
    return target.libc.policy_family


def cibuildwheel_identifier(target: Target) -> str:
    """cibuildwheel's build identifier (:attr:`Target.cibuildwheel_identifier`); a usage
    error for a target cibuildwheel cannot build."""
    identifier = target.cibuildwheel_identifier
    if identifier is None:
        raise _no_image(target)
    return identifier


def cibuildwheel_arch(target: Target) -> str:
    """cibuildwheel's name for the target's arch (:attr:`Arch.cibuildwheel_arch`); a usage
    error for a target cibuildwheel cannot build."""
    name = target.arch.cibuildwheel_arch
    if name is None:
        raise _no_image(target)
    return name


def _no_image(target: Target) -> UsageError:
    return UsageError(
        f"No manylinux or musllinux image exists for {target.docker_platform}, so "
        f"cibuildwheel cannot build {target.identifier}. Build it with --builder docker "
        "(a linux_armv6l wheel made in your own base image)."
    )


def choose_policy(target: Target, available: Iterable[str], default: str | None) -> str:
    """The image policy to build ``target`` in: cibuildwheel's default if its libc is not newer
    than the target's (the most portable wheel), else the newest one that is not newer."""
    candidates = [
        policy
        for policy in available
        if policy.startswith(family(target)) and policy_libc_version(policy) <= target.libc_version
    ]
    if default in candidates:
        return default
    if not candidates:
        version = ".".join(map(str, target.libc_version))
        raise UsageError(
            f"cibuildwheel has no {family(target)} image for {target.arch.value} old enough for "
            f"{target.identifier} (libc {version}); its images are "
            f"{', '.join(sorted(available)) or 'none'}. Raise --libc to the oldest libc your "
            "images really have, or give an image with --portable-image."
        )
    return max(candidates, key=policy_libc_version)


def _resource(name: str) -> str:
    return resources.files("cibuildwheel").joinpath("resources", name).read_text(encoding="utf-8")


def pinned_images() -> dict[str, dict[str, str]]:
    """cibuildwheel's pinned images: ``{arch: {policy: image@sha256:...}}``."""
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read_string(_resource("pinned_docker_images.cfg"))
    return {section: dict(parser.items(section)) for section in parser.sections()}


def default_policies() -> dict[str, str]:
    """cibuildwheel's default policy per option name (``manylinux-aarch64-image``)."""
    defaults = tomllib.loads(_resource("defaults.toml"))["tool"]["cibuildwheel"]
    return {key: str(value) for key, value in defaults.items() if key.endswith("-image")}


def image_option(target: Target) -> str:
    """cibuildwheel's option for the target's image: ``manylinux-armv7l-image``."""
    return f"{family(target)}-{cibuildwheel_arch(target)}-image"


def portable_image(
    target: Target,
    override: str | None = None,
    *,
    pinned: Mapping[str, Mapping[str, str]] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> str:
    """The image to build ``target`` in: ``override`` with the docker builder's placeholders
    filled in (:func:`~builder.building.jobs.resolve_image`), or cibuildwheel's pinned image of the
    policy :func:`choose_policy` picks."""
    arch = cibuildwheel_arch(target)
    if override:
        return resolve_image(override, target)
    images = (pinned_images() if pinned is None else pinned).get(arch, {})
    policy = choose_policy(
        target,
        images,
        (default_policies() if defaults is None else defaults).get(image_option(target)),
    )
    return images[policy]


@dataclasses.dataclass(frozen=True)
class PortableSplit:
    """Jobs for cibuildwheel, jobs that must fall back to the docker builder, and why."""

    portable: tuple[BuildJob, ...]
    fallback: tuple[BuildJob, ...]
    notices: tuple[str, ...]


def split_portable(jobs: Iterable[BuildJob], override: str | None = None) -> PortableSplit:
    """Give every job that has a manylinux/musllinux image to cibuildwheel (with that image);
    the others (linux/arm/v6) keep their docker-builder image, with a notice saying so."""
    portable: list[BuildJob] = []
    fallback: list[BuildJob] = []
    notices: dict[str, None] = {}
    for job in jobs:
        if job.target.arch.has_manylinux:
            portable.append(dataclasses.replace(job, image=portable_image(job.target, override)))
            continue
        fallback.append(job)
        notices[
            f"No manylinux/musllinux image exists for {job.target.docker_platform}: "
            f"{job.target.identifier} is built by the docker builder in {job.image} and "
            f"tagged linux_{job.target.arch.value}."
        ] = None
    return PortableSplit(tuple(portable), tuple(fallback), tuple(notices))


def wants_portable(*, portable: bool, libc: str | None, image: str | None) -> bool:
    """Use cibuildwheel when asked (``--portable``) or when the libc is given as a wheel policy
    (``--libc manylinux_2_31``) with no base image to build in."""
    policy_libc = (libc or "").strip().lower().startswith(("manylinux", "musllinux"))
    return portable or (policy_libc and not image)


# --- cibuildwheel options (pure) -------------------------------------------------------------
def before_all_command(system_packages: Sequence[str]) -> str:
    """A shell command installing system packages with whatever package manager the image has
    (dnf/yum on manylinux, apk on musllinux, apt-get on Debian-derived images)."""
    if not system_packages:
        return ""
    packages = " ".join(shlex.quote(p) for p in system_packages)
    return (
        f"if command -v dnf >/dev/null; then dnf install -y {packages}; "
        f"elif command -v yum >/dev/null; then yum install -y {packages}; "
        f"elif command -v apk >/dev/null; then apk add --no-cache {packages}; "
        "elif command -v apt-get >/dev/null; then apt-get update -q && "
        f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {packages}; "
        "else echo 'prewheel: no known package manager (dnf, yum, apk, apt-get) in this image' >&2;"
        " exit 1; fi"
    )


def environment_string(variables: Mapping[str, str]) -> str:
    """cibuildwheel's ``environment`` syntax: ``NAME='value' ...`` (values quoted for bash)."""
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())


def container_environment(
    job: BuildJob, *, has_ca_bundle: bool, index_url: str | None
) -> dict[str, str]:
    """Variables set inside the build container, the package's own settings last (they win)."""
    variables: dict[str, str] = {"PIP_NO_INPUT": "1", **arch_environment(job.target.arch)}
    if has_ca_bundle:
        variables.update(dict.fromkeys(_CA_VARIABLES, CONTAINER_CA_BUNDLE))
    if index_url:
        variables["PIP_INDEX_URL"] = index_url
    variables.update(dict(job.settings.environment))
    return variables


def cibuildwheel_options(
    job: BuildJob,
    *,
    has_ca_bundle: bool,
    index_url: str | None = None,
    pass_through: Iterable[str] = (),
    test_command: str = "",
    container_labels: Mapping[str, str] | None = None,
    memory: str | None = None,
) -> dict[str, str]:
    """``CIBW_*`` variables that make cibuildwheel build ``job`` as prewheel's settings say.

    Set in the environment, they win over any ``[tool.cibuildwheel]`` table in the sdist.
    """
    target = job.target
    create_args = [f"--label={key}={value}" for key, value in (container_labels or {}).items()]
    if memory:
        create_args.append(f"--memory={memory}")
    options = {
        "CIBW_PLATFORM": "linux",
        "CIBW_BUILD_VERBOSITY": "1",
        f"CIBW_{image_option(target).upper().replace('-', '_')}": job.image,
        "CIBW_CONTAINER_ENGINE": "docker"
        + (
            f"; create_args: {' '.join(shlex.quote(a) for a in create_args)}" if create_args else ""
        ),
        "CIBW_ENVIRONMENT_LINUX": environment_string(
            container_environment(job, has_ca_bundle=has_ca_bundle, index_url=index_url)
        ),
        "CIBW_ENVIRONMENT_PASS_LINUX": " ".join(pass_through),
        "CIBW_BEFORE_ALL_LINUX": before_all_command(job.settings.system_packages),
        "CIBW_BEFORE_BUILD_LINUX": job.settings.before_build,
        "CIBW_BUILD_FRONTEND": "pip"
        + (
            f"; args: {' '.join(shlex.quote(a) for a in job.settings.pip_args)}"
            if job.settings.pip_args
            else ""
        ),
        "CIBW_REPAIR_WHEEL_COMMAND_LINUX": "auditwheel repair -w {dest_dir} {wheel}",
        # abi3audit runs on the host from a virtualenv cibuildwheel downloads; prewheel's own
        # wheel checks (tags, ELF machine) apply to every builder instead.
        "CIBW_AUDIT_COMMAND": "",
        "CIBW_TEST_COMMAND_LINUX": test_command,
    }
    return {key: value for key, value in options.items() if value or key == "CIBW_AUDIT_COMMAND"}


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One cibuildwheel run: its argument vector and the environment additions it needs."""

    argv: tuple[str, ...]
    environment: Mapping[str, str]


def invocation(
    job: BuildJob,
    sdist: Path,
    out_dir: Path,
    *,
    ca: Path | None,
    proxies: Mapping[str, str],
    index_url: str | None = None,
    test_command: str = "",
    container_labels: Mapping[str, str] | None = None,
    memory: str | None = None,
    python: str = sys.executable,
) -> Invocation:
    """The cibuildwheel command line and environment for building ``job`` from ``sdist``."""
    environment = {
        **cibuildwheel_options(
            job,
            has_ca_bundle=ca is not None,
            index_url=index_url,
            pass_through=sorted(proxies),
            test_command=test_command,
            container_labels=container_labels,
            memory=memory,
        ),
        **proxies,
        "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
    }
    if ca is not None:
        environment["SSL_CERT_FILE"] = str(ca)  # cibuildwheel copies it into the container
    argv = (
        python,
        "-m",
        "cibuildwheel",
        "--only",
        cibuildwheel_identifier(job.target),
        "--output-dir",
        str(out_dir),
        str(sdist),
    )
    return Invocation(argv, environment)


# --- side effects ---------------------------------------------------------------------------------
class ProcessRunner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str],
        cwd: Path,
        log: IO[bytes],
        timeout: float,
    ) -> int | None:
        """Run ``argv`` with ``environment`` added to the host's; exit code, None on timeout."""
        ...


class SubprocessRunner:
    """Runs a command in its own process group, killed as a whole on timeout
    (:func:`builder.cmd.run`)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str],
        cwd: Path,
        log: IO[bytes],
        timeout: float,
    ) -> int | None:
        return cmd.run(argv, timeout=timeout, environment=environment, cwd=cwd, log=log).exit_code


class CibuildwheelBuilder:
    """A :class:`~builder.building.builders.Builder` whose builds run through cibuildwheel.

    cibuildwheel starts one container per build; they carry prewheel's build labels, so
    :func:`~builder.building.container.remove_orphans` cleans up after a killed run, and a
    timed-out build's containers are removed at once.
    """

    name = NAME

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        memory: str | None = None,
        test_command: str = "",
        runner: ProcessRunner | None = None,
        docker_builder: DockerBuilder | None = None,
    ) -> None:
        self.timeout = timeout
        self.memory = memory
        self.test_command = test_command
        self.runner = runner or SubprocessRunner()
        self.docker = docker_builder or DockerBuilder(timeout=timeout)
        self._owns_docker = docker_builder is None  # given: its owner closes it
        self.containers_started = 0

    def close(self) -> None:
        if self._owns_docker:
            self.docker.close()

    def preflight(self, arch: Arch) -> None:
        if arch.cibuildwheel_arch is None:
            raise UsageError(
                f"cibuildwheel cannot build for {arch.docker_platform}: no manylinux/musllinux "
                "image exists for it. Leave it to the docker builder (prewheel does so by itself "
                "for --portable)."
            )
        # an optional dependency: looked for, not imported (cibuildwheel runs as a process)
        if importlib.util.find_spec("cibuildwheel") is None:
            raise HostEnvironmentError(
                "Portable builds need cibuildwheel: pip install 'prewheel[portable]'."
            )
        self.docker.preflight(arch)

    def image_digest(self, image: str, arch: Arch) -> str:
        """The local image's id; for a pinned image not yet pulled, the digest it is pinned to
        (cibuildwheel pulls it itself)."""
        platform = arch.docker_platform
        found = local_image(self.docker.client(arch), image)
        if found is not None:
            return str(found.id)
        _, at, digest = image.partition("@")
        if at:
            return digest
        raise ImageUnavailableError(
            f"Image {image} is not present and not pinned by digest. Pull or build it "
            f"(docker pull --platform {platform} {image}), or use cibuildwheel's pinned "
            "images by leaving out --portable-image."
        )

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        return Acceleration(reason="cibuildwheel builds compile in its own images")

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        return None

    def check_image(self, image: str, target: Target) -> None:
        """cibuildwheel's images are the manylinux/musllinux ones of their platform (there
        are none for linux/arm/v6); their wheels are checked like every other."""

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[BuildSession]:
        yield _CibuildwheelSession(self)

    def remove_containers(self, arch: Arch, run_id: str) -> None:
        client = self.docker.client(arch)
        for container in client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={run_id}"}, ignore_removed=True
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


class _CibuildwheelSession:
    toolchain: Toolchain | None = None

    def __init__(self, builder: CibuildwheelBuilder) -> None:
        self.builder = builder

    def build(
        self,
        job: BuildJob,
        sdist: Path,
        out_dir: Path,
        log: IO[bytes],
        *,
        native: bool = True,
        environment: BuildEnvironment | None = None,
    ) -> BuildResult:
        # cibuildwheel compiles with its images' compilers, in build environments of its own
        del native, environment
        builder = self.builder
        run_id = uuid.uuid4().hex
        labels = {LABEL: NAME, OWNER_LABEL: owner_label(), RUN_LABEL: run_id}
        out_dir.mkdir(parents=True, exist_ok=True)
        call = invocation(
            job,
            sdist,
            out_dir,
            ca=ca_bundle(),
            proxies=proxy_environment(),
            index_url=pip_setting("index-url"),
            test_command=builder.test_command,
            container_labels=labels,
            memory=builder.memory,
        )
        log.write(f"+ {shlex.join(call.argv)}\n".encode())
        log.flush()
        builder.containers_started += 1
        with tempfile.TemporaryDirectory(prefix="prewheel-cibw-") as cwd:
            try:
                code = builder.runner.run(
                    call.argv,
                    environment=call.environment,
                    cwd=Path(cwd),
                    log=log,
                    timeout=builder.timeout,
                )
            finally:
                builder.remove_containers(job.arch, run_id)
        if code is None:
            raise BuildFailed(
                f"cibuildwheel timed out after {builder.timeout:.0f} s (see --timeout)."
            )
        if code != 0:
            raise BuildFailed(f"cibuildwheel failed with exit code {code}.")
        wheels = sorted(out_dir.glob("*.whl"))
        if not wheels:
            raise BuildFailed("cibuildwheel finished but wrote no wheel.")
        return BuildResult(tuple(wheels))


# --- orchestration ---------------------------------------------------------------------------------
def run_portable_builds(
    jobs: Sequence[BuildJob],
    *,
    wheelhouse: Wheelhouse,
    fetcher: SdistFetcher,
    portable_builder: Builder,
    fallback_builder: Builder,
    image_override: str | None = None,
    notice: Callable[[str], None] = lambda _text: None,
    **options: Any,
) -> BuildReport:
    """Build ``jobs`` as portable wheels: cibuildwheel where a manylinux/musllinux image exists,
    the fallback (docker) builder elsewhere (linux/arm/v6), saying so through ``notice``.
    ``options`` go to :func:`~builder.building.runner.run_builds` unchanged; one report comes back.
    """
    split = split_portable(jobs, image_override)
    for text in split.notices:
        notice(text)
    started = time.monotonic()
    reports = [
        run_builds(part, wheelhouse=wheelhouse, builder=builder, fetcher=fetcher, **options)
        for part, builder in (
            (split.portable, portable_builder),
            (split.fallback, fallback_builder),
        )
        if part
    ]
    return BuildReport(
        outcomes=tuple(o for report in reports for o in report.outcomes),
        containers_started=sum(report.containers_started for report in reports),
        elapsed=time.monotonic() - started,
    )
