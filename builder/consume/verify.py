"""``prewheel verify``: install the lock in a container of each target image and import it.

For each target a container of the target's image starts (emulated through QEMU when the
platform is foreign) with no compiler in it, creates a venv, runs ``pip install --index-url
<index> --only-binary=:all: --require-hashes -r <lock>``, then imports every top-level module
the installed distributions provide. A probe script inside the container prints one JSON
result; :func:`parse_probe_output` reads it and :func:`verify` turns it into a
:class:`TargetResult` per target. A failure anywhere raises
:class:`~builder.errors.VerifyFailedError` with the cause, after every target was tried.

Containers sit behind the :class:`ProbeRunner` protocol (:class:`DockerProbeRunner` uses the
Engine API through :class:`builder.building.container.Container`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import platform as host_platform
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ..binfmt import BINFMT_DIR, require_emulation, shares_this_kernel
from ..errors import HostEnvironmentError, VerifyFailedError
from ..hostenv import ca_bundle, proxy_environment
from ..targets import Arch, Target, debian_release_problem, emulation_environment

DEFAULT_IMAGE_TEMPLATE = "python:{python}-slim-bookworm"
INSTALLERS = ("pip", "uv")
RESULT_MARKER = "PREWHEEL-VERIFY-RESULT "
_WORKDIR = PurePosixPath("/prewheel")
_CA_PATH = _WORKDIR / "ca.pem"
_LOCK_PATH = _WORKDIR / "requirements.lock"
_PROBE_PATH = _WORKDIR / "probe.py"

# Runs inside the target container with the image's python3; standard library only.
PROBE_SCRIPT = r'''
import json, platform, shutil, subprocess, sys, time

INDEX_URL, LOCK = sys.argv[1], sys.argv[2]
INSTALLER = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {"installer": "pip"}
VENV = "/tmp/prewheel-venv"
SKIP = {"test", "tests", "testing", "docs", "doc", "examples", "benchmarks", "bin"}
IMPORT_CHECK = """
import importlib, importlib.metadata as md, json, sys
SKIP = set(sys.argv[2].split(","))
result = {}
for name in sys.argv[1].split(","):
    tops = set()
    for f in md.distribution(name).files or ():
        parts = f.parts
        if not parts or parts[0] in ("..",) or parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) == 1:
            stem = parts[0].split(".")[0]
            if parts[0].endswith((".py", ".so")) and stem.isidentifier():
                tops.add(stem)
        elif parts[0].isidentifier() and parts[-1].endswith((".py", ".so")):
            tops.add(parts[0])
    for module in sorted(tops - SKIP):
        if module.startswith("_"):
            continue  # private modules (e.g. optional C-accelerator shims) load via public ones
        try:
            importlib.import_module(module)
            result[module] = ""
        except BaseException as exc:
            result[module] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
"""

def install_with_pip(out):
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    out["venv_seconds"] = time.monotonic() - out.pop("_started")
    started = time.monotonic()
    pip = subprocess.run(
        [VENV + "/bin/python", "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "--no-cache-dir", "--index-url", INDEX_URL, "--only-binary=:all:",
         "--require-hashes", "--report", "/tmp/prewheel-report.json", "-r", LOCK],
        capture_output=True, text=True)
    out["install_seconds"] = time.monotonic() - started
    out["pip_exit"] = pip.returncode
    out["pip_output"] = "\n".join((pip.stdout + pip.stderr).strip().splitlines()[-25:])
    if pip.returncode == 0:
        with open("/tmp/prewheel-report.json") as stream:
            report = json.load(stream)
        for item in report.get("install", []):
            meta = item.get("metadata", {})
            out["installed"].append({"name": meta.get("name", ""), "version": meta.get("version", ""),
                                     "url": item.get("download_info", {}).get("url", "")})


def install_with_uv(out):
    # uv for this platform, as a Dockerfile gets it: the image's pip installs the pinned
    # release (a binary wheel) from the tool index into a directory of its own.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", VENV], check=True)
    out["venv_seconds"] = time.monotonic() - out.pop("_started")
    tool = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         "--no-cache-dir", "--only-binary=:all:", "--target", "/tmp/prewheel-uv",
         "--index-url", INSTALLER["uv_index_url"], "uv==" + INSTALLER["uv_version"]],
        capture_output=True, text=True)
    if tool.returncode != 0:
        out["pip_exit"] = tool.returncode
        out["pip_output"] = "installing uv " + INSTALLER["uv_version"] + " failed:\n" + "\n".join(
            (tool.stdout + tool.stderr).strip().splitlines()[-20:])
        return
    uv = "/tmp/prewheel-uv/bin/uv"
    started = time.monotonic()
    install = subprocess.run(
        [uv, "pip", "install", "--python", VENV + "/bin/python", "--index-url", INDEX_URL,
         # a pylock.toml names every file by URL with its hashes, which uv always checks
         *([] if LOCK.endswith(".toml") else ["--require-hashes"]),
         "--no-build", "--no-cache", "-r", LOCK],
        capture_output=True, text=True)
    out["install_seconds"] = time.monotonic() - started
    out["pip_exit"] = install.returncode
    out["pip_output"] = "\n".join((install.stdout + install.stderr).strip().splitlines()[-25:])
    if install.returncode == 0:
        listed = subprocess.run([uv, "pip", "list", "--python", VENV + "/bin/python",
                                 "--format", "json"], capture_output=True, text=True, check=True)
        for item in json.loads(listed.stdout):  # one index only: every file came from it
            out["installed"].append({"name": item["name"], "version": item["version"],
                                     "url": INDEX_URL})


def main():
    out = {"machine": platform.machine(), "compiler": "", "installer": INSTALLER["installer"],
           "pip_exit": None, "pip_output": "", "installed": [], "imports": {},
           "venv_seconds": 0.0, "install_seconds": 0.0, "import_seconds": 0.0}
    for tool in ("gcc", "cc", "clang"):
        if shutil.which(tool):
            out["compiler"] = shutil.which(tool)
            break
    out["_started"] = time.monotonic()
    if INSTALLER["installer"] == "uv":
        install_with_uv(out)
    else:
        install_with_pip(out)
    if out["pip_exit"] == 0:
        names = ",".join(p["name"] for p in out["installed"])
        started = time.monotonic()
        check = subprocess.run([VENV + "/bin/python", "-c", IMPORT_CHECK, names,
                                ",".join(sorted(SKIP))], capture_output=True, text=True)
        out["import_seconds"] = time.monotonic() - started
        if check.returncode == 0 and names:
            out["imports"] = json.loads(check.stdout.strip().splitlines()[-1])
        elif names:
            out["imports"] = {"<import check>": check.stderr.strip()[-2000:]}
    print("PREWHEEL-VERIFY-RESULT " + json.dumps(out), flush=True)

main()
'''


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
    def preflight(self, image: str, platform: str) -> None:
        """Raise a :class:`~builder.errors.HostEnvironmentError` if ``image`` cannot run for
        ``platform`` here (checked for every target before any container starts)."""
        ...

    def run(
        self,
        *,
        image: str,
        platform: str,
        files: Mapping[PurePosixPath, Path],
        argv: Sequence[str],
        environment: Mapping[str, str],
        timeout: float,
    ) -> ProbeRun:
        """Start ``image`` for ``platform`` on the host network, copy ``files`` in, run
        ``argv`` (killed after ``timeout`` seconds), return its output; always clean up."""
        ...

    def image_id(self, image: str, platform: str) -> str | None:
        """The ID of the local ``image`` (what a cached result is keyed by); None if it is not
        present (then nothing is cached or reused)."""
        ...


class DockerProbeRunner:
    """Runs probes in containers over the Docker Engine API.

    The container is created with the probe as its command, the files are put into it before
    it starts, and it is killed after ``timeout`` seconds and always removed. It carries the
    build containers' owner labels, so an orphan left by a killed process is cleaned up.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        binfmt_dir: Path = BINFMT_DIR,
        host_machine: str | None = None,
    ) -> None:
        self._client = client
        self._own_daemon = client is None  # a client given may be any daemon's
        self.binfmt_dir = binfmt_dir
        self.host_machine = (host_machine or host_platform.machine()).lower()

    def preflight(self, image: str, platform: str) -> None:
        """An image whose Debian release lacks the platform's architecture, or a foreign
        platform without its QEMU binfmt handler on a local daemon, is refused."""
        problem = debian_release_problem(image, Arch.from_docker_platform(platform))
        if problem:
            raise HostEnvironmentError(problem)
        if self._own_daemon and shares_this_kernel(self._docker().info()):
            require_emulation(
                platform,
                host_machine=self.host_machine,
                binfmt_dir=self.binfmt_dir,
                doing="Verifying",
            )

    def _docker(self) -> Any:
        from ..building.container import connect  # noqa: PLC0415

        if self._client is None:
            self._client = connect()
        return self._client

    def image_id(self, image: str, platform: str) -> str | None:
        import docker.errors  # noqa: PLC0415 - only needed with Docker

        del platform  # a tag names one image locally; its ID covers the platform
        try:
            return str(self._docker().images.get(image).id)
        except docker.errors.ImageNotFound:
            return None

    def run(
        self,
        *,
        image: str,
        platform: str,
        files: Mapping[PurePosixPath, Path],
        argv: Sequence[str],
        environment: Mapping[str, str],
        timeout: float,
    ) -> ProbeRun:
        import docker.errors  # noqa: PLC0415 - only needed with Docker

        from ..building.container import LABEL, OWNER_LABEL, owner_label  # noqa: PLC0415

        try:
            container = self._docker().containers.create(
                image,
                command=list(argv),
                platform=platform,
                environment=dict(environment),
                network_mode="host",
                labels={LABEL: "1", OWNER_LABEL: owner_label()},
                detach=True,
            )
        except docker.errors.ImageNotFound:
            raise HostEnvironmentError(
                f"Image {image} for {platform} is not available to the Docker daemon. Pull it "
                f"(docker pull --platform {platform} {image}) or build it, or choose another "
                "with --image."
            ) from None
        try:
            container.put_archive("/", _tar(files))
            container.start()
            timed_out = False
            try:
                status = container.wait(timeout=timeout)
                exit_code = int(status.get("StatusCode", 1))
            except requests_timeout_errors():
                timed_out, exit_code = True, 137
                container.kill()
            output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        return ProbeRun(exit_code, timed_out, output)


def requests_timeout_errors() -> tuple[type[BaseException], ...]:
    """What the SDK raises when ``wait(timeout=...)`` expires."""
    import requests.exceptions  # noqa: PLC0415 - the docker SDK's transport

    return (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)


def _tar(files: Mapping[PurePosixPath, Path]) -> bytes:
    """A tar of ``files`` at their absolute destinations (relative to ``/``), with parents."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories = sorted({p for d in files for p in d.parents if str(p) != "/"}, key=str)
        for directory in directories:
            info = tarfile.TarInfo(str(directory).lstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            archive.addfile(info)
        for destination, source in files.items():
            data = source.read_bytes()
            info = tarfile.TarInfo(str(destination).lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o444, now
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def image_for(template: str, target: Target) -> str:
    """Fill ``{python}``, ``{debian_arch}``, ``{arch}`` and ``{platform}`` in an image template."""
    try:
        return template.format(
            python=target.python_version,
            debian_arch=target.arch.debian_arch,
            arch=target.arch.value,
            platform=target.docker_platform.replace("/", "-"),
        )
    except (KeyError, IndexError, ValueError) as exc:
        from ..errors import UsageError  # noqa: PLC0415

        raise UsageError(
            f"Cannot fill the image template {template!r} ({exc!r}). It may use {{python}}, "
            "{debian_arch}, {arch} and {platform}, e.g. python:{python}-slim-bookworm or "
            "myregistry/base:{debian_arch}."
        ) from None


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
        from .. import __version__  # noqa: PLC0415

        material = {**inputs, "probe": PROBE_SCRIPT, "prewheel": __version__}
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
        from filelock import FileLock  # noqa: PLC0415

        from ..files import atomic_write_bytes  # noqa: PLC0415

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            entries = self._load()
            entries[key] = {**result.to_json(), "cached": False}
            atomic_write_bytes(self.path, json.dumps(entries, indent=1).encode(), prefix=".tmp-")

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
        from ..resolve import uv_release  # noqa: PLC0415
        from ..upstream.client import default_index_url  # noqa: PLC0415

        return {
            "installer": "uv",
            "uv_version": uv_release(),
            "uv_index_url": default_index_url(),
        }
    from ..errors import UsageError  # noqa: PLC0415

    raise UsageError(f"Unknown installer {installer!r}; choose one of {', '.join(INSTALLERS)}.")


def default_verify_cache() -> VerifyCache:
    from ..hostenv import user_cache  # noqa: PLC0415

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
        from ..errors import UsageError  # noqa: PLC0415

        raise UsageError(f"The lock {lock} does not exist; write it with 'prewheel lock' first.")
    installer_spec = installer_settings(installer)
    pylock = lock.name.startswith("pylock.") and lock.suffix == ".toml"
    if pylock and installer != "uv":
        from ..errors import UsageError  # noqa: PLC0415

        raise UsageError(
            f"{lock} is a pylock.toml, which the pip of today's images cannot install (pip reads "
            "pylock.toml from 26.1 on); verify it with --installer uv, or verify the "
            "requirements.lock of the same run."
        )
    lock_path = _WORKDIR / (lock.name if pylock else _LOCK_PATH.name)
    images = {target: image_for(image_template, target) for target in targets}
    for target, image in images.items():
        runner.preflight(image, target.docker_platform)
    bundle = ca_bundle()
    results = []
    with tempfile.TemporaryDirectory(prefix="prewheel-verify-") as scratch:
        probe = Path(scratch) / "probe.py"
        probe.write_text(PROBE_SCRIPT, encoding="utf-8")
        files = {_PROBE_PATH: probe, lock_path: lock}
        if bundle is not None:
            files[_CA_PATH] = bundle
        environment = container_environment(index_url, with_ca=bundle is not None)
        lock_sha256 = hashlib.sha256(lock.read_bytes()).hexdigest()
        for target, image in images.items():
            # QEMU_CPU=arm1176 for linux/arm/v6: ARMv7 code must not pass verification
            target_environment = {**environment, **emulation_environment(target.arch)}
            key = None
            if cache is not None and (image_id := runner.image_id(image, target.docker_platform)):
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
                platform=target.docker_platform,
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
