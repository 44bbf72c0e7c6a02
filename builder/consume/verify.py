"""``prewheel verify``: install the lock in a container of each target image and import it.

For each target a container of the target's image starts (emulated through QEMU when the
platform is foreign) with no compiler in it, creates a venv, runs ``pip install --index-url
<index> --only-binary=:all: --require-hashes -r <lock>``, then imports every top-level module
the installed distributions provide. The probe doing this, ``resources/verify_in_container.py``
(copied into the container), prints one JSON result; :func:`parse_probe_output` reads it and
:func:`verify` turns it into a :class:`TargetResult` per target. A failure anywhere raises
:class:`~builder.errors.VerifyFailedError` with the cause, after every target was tried.

Containers sit behind the :class:`ProbeRunner` protocol (:class:`DockerProbeRunner` runs the
probe in a :class:`builder.building.container.Container`, the build containers' class).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform as host_platform
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import docker
import docker.errors
from filelock import FileLock

from .. import __version__
from ..binfmt import BINFMT_DIR, require_emulation, shares_this_kernel
from ..building.container import Container, connect
from ..errors import HostEnvironmentError, UsageError, VerifyFailedError
from ..files import atomic_write
from ..hostenv import ca_bundle, proxy_environment, user_cache
from ..resolve import uv_release
from ..targets import (
    Arch,
    Target,
    debian_release_problem,
    emulation_environment,
    fill_image_template,
)
from ..upstream.client import default_index_url

DEFAULT_IMAGE_TEMPLATE = "python:{python}-slim-bookworm"
INSTALLERS = ("pip", "uv")
RESULT_MARKER = "PREWHEEL-VERIFY-RESULT "
_WORKDIR = PurePosixPath("/prewheel")
_CA_PATH = _WORKDIR / "ca.pem"
_LOCK_PATH = _WORKDIR / "requirements.lock"

# Runs inside the target container with the image's python3; standard library only.
_PROBE = "verify_in_container.py"
_PROBE_PATH = _WORKDIR / _PROBE


def probe_script() -> bytes:
    """The in-container script (``resources/verify_in_container.py``), as shipped."""
    return resources.files(__package__).joinpath("resources", _PROBE).read_bytes()


@dataclasses.dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    url: str  # where pip downloaded it from

    @property
    def filename(self) -> str:
        return self.url.rpartition("/")[2].partition("#")[0]


@dataclasses.dataclass(frozen=True)
class TargetResult:
    """What verification found for one target."""

    target: str  # identifier
    platform: str
    image: str
    ok: bool
    seconds: float  # whole container run, wall clock
    install_seconds: float
    installed: tuple[InstalledPackage, ...] = ()
    imported: tuple[str, ...] = ()
    error: str = ""
    # what the container's CPU reported (uname -m): armv6l when QEMU ran as an ARM1176
    machine: str = ""
    cached: bool = False  # taken from an earlier run with the same inputs; no container ran

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["installed"] = [dataclasses.asdict(p) for p in self.installed]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetResult:
        installed = tuple(InstalledPackage(**p) for p in data.get("installed", ()))
        known = {f.name for f in dataclasses.fields(cls)} - {"installed", "imported"}
        fields = {k: v for k, v in data.items() if k in known}
        return cls(**fields, installed=installed, imported=tuple(data.get("imported", ())))


@dataclasses.dataclass(frozen=True)
class ProbeRun:
    exit_code: int
    timed_out: bool
    output: str


class ProbeRunner(Protocol):
    def preflight(self, image: str, arch: Arch) -> None:
        """Raise a :class:`~builder.errors.HostEnvironmentError` if ``image`` cannot run for
        ``arch`` here (checked for every target before any container starts)."""
        ...

    def run(
        self,
        *,
        image: str,
        arch: Arch,
        files: Mapping[PurePosixPath, Path],
        argv: Sequence[str],
        environment: Mapping[str, str],
        timeout: float,
    ) -> ProbeRun:
        """Start ``image`` for ``arch`` on the host network, copy ``files`` in, run
        ``argv`` (killed after ``timeout`` seconds), return its output; always clean up."""
        ...

    def image_id(self, image: str, arch: Arch) -> str | None:
        """The ID of the local ``image`` (what a cached result is keyed by); None if it is not
        present (then nothing is cached or reused)."""
        ...


class DockerProbeRunner:
    """Runs probes in containers over the Docker Engine API.

    Each probe gets a :class:`~builder.building.container.Container` of its own (on the host
    network, with ``environment``, carrying the build containers' owner labels, so an orphan
    left by a killed process is cleaned up): the files are copied in, the probe runs under
    ``timeout`` (the container is killed if it does not end), and the container is always
    removed.
    """

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        binfmt_dir: Path = BINFMT_DIR,
        host_machine: str | None = None,
    ) -> None:
        self._client = client
        self._own_daemon = client is None  # a client given may be any daemon's
        self.binfmt_dir = binfmt_dir
        self.host_machine = (host_machine or host_platform.machine()).lower()

    def preflight(self, image: str, arch: Arch) -> None:
        """An image whose Debian release lacks the architecture, or a foreign architecture
        without its QEMU binfmt handler on a local daemon, is refused."""
        problem = debian_release_problem(image, arch)
        if problem:
            raise HostEnvironmentError(problem)
        if self._own_daemon and shares_this_kernel(self._docker().info()):
            require_emulation(
                arch,
                host_machine=self.host_machine,
                binfmt_dir=self.binfmt_dir,
                doing="Verifying",
            )

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    def image_id(self, image: str, arch: Arch) -> str | None:
        del arch  # a tag names one image locally; its ID covers the platform
        try:
            return str(self._docker().images.get(image).id)
        except docker.errors.ImageNotFound:
            return None

    def run(
        self,
        *,
        image: str,
        arch: Arch,
        files: Mapping[PurePosixPath, Path],
        argv: Sequence[str],
        environment: Mapping[str, str],
        timeout: float,
    ) -> ProbeRun:
        output = bytearray()
        with Container(
            self._docker(), image=image, platform=arch.docker_platform, environment=environment
        ) as container:
            container.copy_files_in(files, mode=0o444)
            result = container.call(argv, timeout=timeout, output=output.extend)
        return ProbeRun(result.exit_code, result.timed_out, output.decode(errors="replace"))


def image_for(template: str, target: Target) -> str:
    """The verify image of ``target``: the template's placeholders (``{python}``,
    ``{debian_arch}``, ``{arch}``, ``{platform}``, ``{libc}``) filled as for build images."""
    return fill_image_template(
        template, target, what="verify image", example="--image 'python:{python}-slim-bookworm'"
    )


def parse_probe_output(output: str) -> dict[str, Any] | None:
    """The probe's JSON result (its last marker line), or None if it never printed one."""
    for line in reversed(output.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                data = json.loads(line.removeprefix(RESULT_MARKER))
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def judge(
    target: Target, image: str, run: ProbeRun, seconds: float, *, allow_compiler: bool = False
) -> TargetResult:
    """Turn one probe run into a result; pure."""
    base = TargetResult(
        target=target.identifier,
        platform=target.docker_platform,
        image=image,
        ok=False,
        seconds=round(seconds, 2),
        install_seconds=0.0,
    )
    data = parse_probe_output(run.output)
    if data is None:
        tail = "\n".join(run.output.strip().splitlines()[-15:])
        cause = (
            f"timed out after {seconds:.0f} s"
            if run.timed_out
            else f"the probe exited with {run.exit_code} without a result"
        )
        return dataclasses.replace(base, error=f"{cause}:\n{tail}")
    installed = tuple(
        InstalledPackage(str(p.get("name", "")), str(p.get("version", "")), str(p.get("url", "")))
        for p in data.get("installed", [])
    )
    imports: dict[str, str] = {str(k): str(v) for k, v in dict(data.get("imports") or {}).items()}
    install_seconds = round(float(data.get("install_seconds") or 0.0), 2)
    error = _failure(data, imports, allow_compiler=allow_compiler)
    return dataclasses.replace(
        base,
        ok=not error,
        install_seconds=install_seconds,
        machine=str(data.get("machine", "")),
        installed=installed,
        imported=tuple(sorted(m for m, problem in imports.items() if not problem)),
        error=error,
    )


def _failure(data: Mapping[str, Any], imports: Mapping[str, str], *, allow_compiler: bool) -> str:
    if data.get("compiler") and not allow_compiler:
        return (
            f"the image has a C compiler ({data['compiler']}), so a successful install would not "
            "prove that nothing compiles; verify with an image without build tools (e.g. a "
            "-slim image), or pass --allow-compiler"
        )
    if data.get("pip_exit") != 0:
        installer = data.get("installer") or "pip"
        return (
            f"{installer} install failed (exit {data.get('pip_exit')}):\n"
            f"{data.get('pip_output', '')}"
        )
    broken = {module: problem for module, problem in imports.items() if problem}
    if broken:
        return "import failed: " + "; ".join(f"{m}: {p}" for m, p in sorted(broken.items()))
    if not imports:
        return "nothing was installed or no importable module was found"
    return ""


def container_environment(index_url: str, *, with_ca: bool) -> dict[str, str]:
    """Proxy variables and CA settings for pip inside the container (no credentials)."""
    environment = proxy_environment()
    if with_ca:
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            environment[name] = str(_CA_PATH)
    # the index is on the host network; keep proxies away from it
    environment["NO_PROXY"] = environment["no_proxy"] = ",".join(
        filter(None, [environment.get("NO_PROXY", ""), "127.0.0.1", "localhost"])
    )
    environment["PIP_INDEX_URL"] = index_url
    return environment


class VerifyCache:
    """Successful results by their inputs, so an unchanged rerun starts no container.

    A result is reused only if everything that decides it is the same: the lock's bytes, the
    index's content (``index_fingerprint``: the static tree's catalog for ``prewheel run``, the
    index URL for ``prewheel verify``), the target, the image's ID, the container environment,
    whether a compiler is allowed, the probe and prewheel's version. Failures are never kept.
    One JSON file, rewritten atomically under a file lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def key(self, **inputs: Any) -> str:
        probe = probe_script().decode("utf-8")
        material = {**inputs, "probe": probe, "prewheel": __version__}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> TargetResult | None:
        entry = self._load().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return dataclasses.replace(TargetResult.from_json(entry), cached=True)
        except (TypeError, ValueError):
            return None  # an entry of another layout: verify again

    def put(self, key: str, result: TargetResult) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            entries = self._load()
            entries[key] = {**result.to_json(), "cached": False}
            atomic_write(self.path, json.dumps(entries, indent=1))

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def installer_settings(installer: str) -> dict[str, str]:
    """What the probe needs to install with ``installer`` (one of :data:`INSTALLERS`)."""
    if installer == "pip":
        return {"installer": "pip"}
    if installer == "uv":
        return {
            "installer": "uv",
            "uv_version": uv_release(),
            "uv_index_url": default_index_url(),
        }
    raise UsageError(f"Unknown installer {installer!r}; choose one of {', '.join(INSTALLERS)}.")


def default_verify_cache() -> VerifyCache:
    return VerifyCache(user_cache("verify") / "results.json")


def verify(
    lock: Path,
    targets: Sequence[Target],
    *,
    index_url: str,
    image_template: str = DEFAULT_IMAGE_TEMPLATE,
    runner: ProbeRunner,
    timeout: float = 1800.0,
    allow_compiler: bool = False,
    progress: Callable[[TargetResult], object] | None = None,
    cache: VerifyCache | None = None,
    index_fingerprint: str = "",
    reuse: bool = True,
    installer: str = "pip",
) -> list[TargetResult]:
    """Verify every target (all are tried); raise VerifyFailedError if any failed.

    ``installer`` ``pip`` installs with the image's pip; ``uv`` with uv of the release
    prewheel runs (``uv`` inside the container, installed by the image's pip from the default
    upstream index), into a venv without pip, with ``--require-hashes --no-build``.

    With ``cache``, a target whose inputs (see :class:`VerifyCache`; ``index_fingerprint``
    stands for the index's content, else its URL) match an earlier success is not run again
    (unless ``reuse`` is off); new successes are stored."""
    if not lock.is_file():
        raise UsageError(f"The lock {lock} does not exist; write it with 'prewheel lock' first.")
    installer_spec = installer_settings(installer)
    pylock = lock.name.startswith("pylock.") and lock.suffix == ".toml"
    if pylock and installer != "uv":
        raise UsageError(
            f"{lock} is a pylock.toml, which the pip of today's images cannot install (pip reads "
            "pylock.toml from 26.1 on); verify it with --installer uv, or verify the "
            "requirements.lock of the same run."
        )
    lock_path = _WORKDIR / (lock.name if pylock else _LOCK_PATH.name)
    images = {target: image_for(image_template, target) for target in targets}
    for target, image in images.items():
        runner.preflight(image, target.arch)
    bundle = ca_bundle()
    results = []
    with resources.as_file(resources.files(__package__).joinpath("resources", _PROBE)) as probe:
        files = {_PROBE_PATH: probe, lock_path: lock}
        if bundle is not None:
            files[_CA_PATH] = bundle
        environment = container_environment(index_url, with_ca=bundle is not None)
        lock_sha256 = hashlib.sha256(lock.read_bytes()).hexdigest()
        for target, image in images.items():
            # QEMU_CPU=arm1176 for linux/arm/v6 and cortex-a7 for linux/arm/v7: code for a
            # newer CPU than the target's must not pass verification
            target_environment = {**environment, **emulation_environment(target.arch)}
            key = None
            if cache is not None and (image_id := runner.image_id(image, target.arch)):
                key = cache.key(
                    lock=lock_sha256,
                    index=index_fingerprint or index_url,
                    target=target.identifier,
                    image=image,
                    image_id=image_id,
                    # the index is in the key already (a served tree's URL changes per run)
                    environment={
                        k: v for k, v in target_environment.items() if k != "PIP_INDEX_URL"
                    },
                    allow_compiler=allow_compiler,
                    installer=installer_spec,
                )
                if reuse and (known := cache.get(key)) is not None:
                    results.append(known)
                    if progress is not None:
                        progress(known)
                    continue
            started = time.monotonic()
            run = runner.run(
                image=image,
                arch=target.arch,
                files=files,
                argv=[
                    "python3",
                    str(_PROBE_PATH),
                    index_url,
                    str(lock_path),
                    json.dumps(installer_spec),
                ],
                environment=target_environment,
                timeout=timeout,
            )
            result = judge(
                target, image, run, time.monotonic() - started, allow_compiler=allow_compiler
            )
            if cache is not None and key is not None and result.ok:
                cache.put(key, result)
            results.append(result)
            if progress is not None:
                progress(result)
    failed = [r for r in results if not r.ok]
    if failed:
        raise VerifyFailedError(
            "Verification failed on "
            + ", ".join(f"{r.platform} ({r.image})" for r in failed)
            + ":\n"
            + "\n".join(f"{r.platform}: {r.error}" for r in failed)
            + "\nA missing wheel means 'prewheel build' and 'prewheel index' did not cover that "
            "target; a hash mismatch means the index serves a file the lock does not allow "
            "(rebuild the lock with 'prewheel lock' after publishing, or investigate tampering)."
        )
    return results
