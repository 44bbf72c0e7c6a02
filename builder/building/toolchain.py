"""Accelerated builds: the target image's Python under QEMU, its C/C++/Fortran compilers native.

A foreign-architecture build spends most of its time in the compiler, emulated instruction by
instruction. The kernel runs a host-architecture ELF natively even inside a container started
for another platform, so prewheel swaps only the compiler: the image's own Python, pip, build
backend, headers and libraries stay as they are (emulated where they execute), and the
compiler drivers, ``cc1``, the assembler and the linker become the host-architecture cross
compiler of the *same distribution release, built from the same gcc source version*, which
emits the same code (:func:`choose`: ``--accelerate auto`` insists on the exact version,
``relaxed`` accepts another distribution revision of it).

Three steps, each with one home:

* :func:`plan_toolchain` (pure) decides from the image's facts (:class:`ImageFacts`: its
  ``/etc/os-release`` and dpkg database, read without starting it) whether a matching
  toolchain exists, and which (:class:`ToolchainRecipe`); if not, it says why.
* :class:`ToolchainStore` builds a recipe once into a local image (``prewheel-toolchain``,
  labelled with the recipe key: the base image's id, the triplet, the gcc version, the
  assembly script), by running ``resources/assemble_toolchain.sh`` in a container of the same
  release on the daemon's own architecture, and copies the relocatable tree into a read-only
  volume that build containers mount at :data:`MOUNT_POINT`.
* ``resources/build_in_container.py`` points the image's compiler names at the tree (and back
  again for an emulated rebuild).

Wheels are keyed by the recipe's identity (:meth:`ToolchainRecipe.identity`), which is known
from the build image alone, so a cached wheel is found without pulling or assembling anything;
:attr:`Toolchain.content` (the sha256 of its exact package versions) goes into the manifest.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import distro
import docker
import docker.errors
from debian.deb822 import Deb822
from docker.types import Mount
from filelock import FileLock

from ..elf import ElfFacts, elf_file_facts
from ..errors import IntegrityError, UsageError
from ..files import atomic_write
from ..hostenv import ca_bundle, proxy_environment, user_cache
from ..targets import Arch, FloatAbi, fill_placeholders
from .container import Container, read_image_files

MOUNT_POINT = PurePosixPath("/opt/prewheel-toolchain")
IMAGE_REPOSITORY = "prewheel-toolchain"
DEFAULT_BASE = "{id}:{codename}"
RECIPE_LABEL = "org.prewheel.toolchain.recipe"
CONTENT_LABEL = "org.prewheel.toolchain.content"
BASE_LABEL = "org.prewheel.toolchain.base-image-id"  # prewheel prune: is its base still here?
VOLUME_PREFIX = "prewheel-toolchain-"
_RECIPE_VERSION = 1
_SCRIPT = "assemble_toolchain.sh"
_WORK = PurePosixPath("/prewheel")
_ASSEMBLY_TIMEOUT = 1800.0
# An assembly that failed because the release packages no such cross compiler is not retried
# on every run; it is tried again after this long, or at once with a new recipe. Other
# failures (network, mirror) are retried by the next run.
_FAILURE_TTL = 24 * 3600.0
# Distributions whose archives ship cross compilers built from the same gcc source as the
# native ones, under Debian's names (gcc-12-arm-linux-gnueabihf).
_CROSS_DISTRIBUTIONS = ("debian", "ubuntu")
_OS_RELEASE_PATHS = (PurePosixPath("/etc/os-release"), PurePosixPath("/usr/lib/os-release"))
_DPKG_STATUS = PurePosixPath("/var/lib/dpkg/status")
# The interpreter a build runs, first found first (the official python images' own Python is
# in /usr/local/bin, ahead of any distribution Python on their PATH).
INTERPRETER_PATHS = (PurePosixPath("/usr/local/bin/python3"), PurePosixPath("/usr/bin/python3"))
_FACTS_VERSION = 2  # in the cache file's name: bumped when ImageFacts learns more
_GCC_PACKAGE = re.compile(r"gcc-(\d+)")
_NOT_IN_ARCHIVE = 4  # assemble_toolchain.sh: the release has no such cross compiler
_CROSS_SUFFIX = re.compile(r"cross\d+$")
_CANDIDATE = re.compile(rb"^\[prewheel-toolchain\] candidate (\S*)$", re.MULTILINE)
_PROBE_TIMEOUT = 600.0
# What the archive offers changes with point releases: a probe's answer is asked again after
# this long (or at once with a new base image, whose id is in the key).
_PROBE_TTL = 24 * 3600.0


class Accelerate(enum.StrEnum):
    """``--accelerate``: when builds use a native cross compiler instead of the image's own.

    ``auto``: when the release's cross compiler is built from exactly the gcc source version
    (Debian revision included) the image compiles with, so it emits the same code. ``relaxed``:
    also when only the distribution's revision differs (same release and upstream gcc); its
    patches can change code (bookworm's gcc-12 12.2.0-14+deb12u1 has an AArch64 stack
    protector fix, CVE-2023-4039, that its cross compiler 12.2.0-14 lacks). ``off``: never.
    """

    AUTO = "auto"
    RELAXED = "relaxed"
    OFF = "off"

    @classmethod
    def parse(cls, value: object) -> Accelerate:
        text = str(value).strip().lower()
        aliases = {"on": "auto", "true": "auto", "1": "auto", "false": "off", "0": "off"}
        text = aliases.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise UsageError(
                f"accelerate = {value!r} is not a choice: use auto (native compilers where the "
                "release's cross compiler is the image's exact gcc version, the default), "
                "relaxed (also where only the distribution's revision of that gcc differs) or "
                "off (compile under emulation)."
            ) from None


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    """What a build image is, read from its files without running it."""

    os_id: str = ""  # os-release ID: debian, ubuntu, alpine, ...
    codename: str = ""  # VERSION_CODENAME: bookworm, noble
    version_id: str = ""
    pretty_name: str = ""
    dpkg_arch: str = ""  # dpkg's native architecture: armhf, armel, arm64 ("" without dpkg)
    gcc_majors: tuple[int, ...] = ()  # installed gcc-N packages, ascending
    gcc_version: str = ""  # the Debian version of the newest installed gcc-N package
    interpreter: str = ""  # the Python interpreter read: /usr/local/bin/python3 ("" if none)
    machine: int = 0  # its ELF e_machine, class and byte order
    elf_class: int = 0
    byte_order: str = ""
    arm_cpu_arch: int | None = None  # 32-bit ARM: its Tag_CPU_arch
    float_abi: str = ""  # 32-bit ARM: hard or soft ("" if it commits to neither)

    @property
    def interpreter_code(self) -> ElfFacts | None:
        """What the image's Python interpreter is (and what the image's compiler makes)."""
        if not self.interpreter:
            return None
        return ElfFacts(
            machine=self.machine,
            elf_class=self.elf_class,
            byte_order=self.byte_order,
            arm_cpu_arch=self.arm_cpu_arch,
            float_abi=FloatAbi(self.float_abi) if self.float_abi else None,
        )

    def with_interpreter(self, path: str, code: ElfFacts) -> ImageFacts:
        return dataclasses.replace(
            self,
            interpreter=path,
            machine=code.machine,
            elf_class=code.elf_class,
            byte_order=code.byte_order,
            arm_cpu_arch=code.arm_cpu_arch,
            float_abi=code.float_abi.value if code.float_abi else "",
        )

    @classmethod
    def from_files(cls, os_release: bytes | None, dpkg_status: bytes | None) -> ImageFacts:
        os_id = codename = version_id = pretty = ""
        if os_release is not None:
            with tempfile.TemporaryDirectory() as root:
                (Path(root) / "etc").mkdir()
                (Path(root) / "etc" / "os-release").write_bytes(os_release)
                info = distro.LinuxDistribution(root_dir=root)
                os_id, codename = info.id(), info.codename()
                version_id, pretty = info.version(), info.name(pretty=True)
        dpkg_arch = ""
        gcc: dict[int, str] = {}
        if dpkg_status is not None:
            for package in Deb822.iter_paragraphs(dpkg_status.decode("utf-8", "replace")):
                if not package.get("Status", "").endswith(" installed"):
                    continue
                name = package.get("Package", "")
                if name == "dpkg":
                    dpkg_arch = package.get("Architecture", "")
                if match := _GCC_PACKAGE.fullmatch(name):
                    gcc[int(match.group(1))] = package.get("Version", "")
        majors = tuple(sorted(gcc))
        newest = gcc[majors[-1]] if majors else ""
        return cls(os_id, codename.lower(), version_id, pretty, dpkg_arch, majors, newest)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageFacts:
        return cls(**{**data, "gcc_majors": tuple(int(m) for m in data["gcc_majors"])})


@dataclasses.dataclass(frozen=True)
class ToolchainRecipe:
    """Which cross toolchain to assemble, and in which base image."""

    base_image: str  # a native image of the build image's release, e.g. debian:bookworm
    triplet: str  # arm-linux-gnueabihf
    gcc_major: str  # "12", or "default": the release's default gcc (what build-essential installs)

    def key(self, base_image_id: str) -> str:
        """sha256 over everything that determines what the assembly produces."""
        return _sha256_json({"identity": self.identity(), "base_image_id": base_image_id})

    def identity(self, mode: Accelerate | None = None) -> str:
        """What wheels compiled with this recipe's toolchain are keyed by: known from the build
        image's files alone (no pull, no assembly), so a cached wheel is found whether or not
        the toolchain can be had in this run. The exact packages are in the manifest."""
        script = resources.files(__package__).joinpath("resources", _SCRIPT).read_bytes()
        return _sha256_json(
            {
                "recipe": _RECIPE_VERSION,
                "base_image": self.base_image,
                "triplet": self.triplet,
                "gcc_major": self.gcc_major,
                "script": hashlib.sha256(script).hexdigest(),
                **({"mode": mode.value} if mode is not None else {}),
            }
        )


def revision_difference(gcc_major: str, image_gcc_version: str, cross_source_version: str) -> str:
    """Why a cross compiler built from ``cross_source_version`` is not the image's exact
    gcc-``gcc_major``, or "" if it is."""
    if image_gcc_version == cross_source_version:
        return ""
    return (
        f"the image compiles with gcc-{gcc_major} {image_gcc_version or '(unknown)'}, "
        f"the release's cross compiler is built from {cross_source_version}; code can "
        "differ where the distribution's patches do"
    )


def cross_source_version(package_version: str) -> str:
    """The native gcc source version a Debian cross compiler package was built from:
    ``12.2.0-14cross1`` -> ``12.2.0-14``."""
    return _CROSS_SUFFIX.sub("", package_version)


def _sha256_json(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """An assembled toolchain, ready to mount."""

    image: str  # local tag, prewheel-toolchain:<key prefix>
    image_id: str
    content: str  # sha256 of its toolchain.json: the exact package versions
    volume: str  # named after the image id: a re-assembled image gets a fresh volume
    triplet: str
    gcc_major: str
    gcc_version: str  # upstream, 12.2.0
    gcc_source_version: str  # the distribution's gcc source it was built from, 12.2.0-14
    release_gcc_version: str  # the release's native gcc-N (what build-essential installs)
    interpreter: str  # the loader path its binaries name, /lib64/ld-linux-x86-64.so.2
    libdir: str  # the host library directory they search, /lib/x86_64-linux-gnu
    host: str  # the machine it runs on, x86_64
    packages: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.image} (gcc {self.gcc_version} for {self.triplet}, runs on {self.host})"

    def spec(self, *, exact: bool) -> dict[str, Any]:
        """What the in-container script needs to point the image's compilers at the tree;
        ``exact``: only if the image's gcc package is the version the tree was built from."""
        return {
            "root": str(MOUNT_POINT),
            "triplet": self.triplet,
            "gcc_major": self.gcc_major,
            "gcc_version": self.gcc_version,
            "gcc_source_version": self.gcc_source_version,
            "exact": exact,
            "interpreter": self.interpreter,
            "libdir": self.libdir,
            "host": self.host,
        }

    def record(self) -> dict[str, Any]:
        """The manifest's account of the toolchain a wheel was compiled with."""
        return {
            "image": self.image,
            "image_id": self.image_id,
            "content": self.content,
            "gcc_version": self.gcc_version,
            "gcc_source_version": self.gcc_source_version,
            "host": self.host,
            "packages": list(self.packages),
        }

    def difference(self, image_gcc_version: str) -> str:
        """Why this toolchain is not the image's exact compiler, or "" if it is."""
        return revision_difference(self.gcc_major, image_gcc_version, self.gcc_source_version)

    def mount(self) -> Mount:
        return Mount(str(MOUNT_POINT), self.volume, type="volume", read_only=True)


@dataclasses.dataclass(frozen=True)
class Acceleration:
    """How one (image, platform) compiles: with ``toolchain``, or emulated because ``reason``."""

    toolchain: Toolchain | None = None
    reason: str = ""  # why not accelerated; "" when accelerated or the platform is native
    caveat: str = ""  # accelerated with --accelerate relaxed although the revisions differ
    exact: bool = True  # the in-container check insists on the exact gcc package version

    def describe(self) -> str:
        """One line for logs and progress: the toolchain, or why emulated ("" if native)."""
        if self.toolchain is not None:
            caveat = f" (--accelerate relaxed: {self.caveat})" if self.caveat else ""
            return f"native compilers: {self.toolchain.label}{caveat}"
        return f"emulated compilers: {self.reason}" if self.reason else ""


NATIVE = Acceleration()


def choose(toolchain: Toolchain, image_gcc_version: str, mode: Accelerate) -> Acceleration:
    """Whether ``mode`` accepts ``toolchain`` for an image compiling with ``image_gcc_version``
    (for an image without a compiler: the version its release installs)."""
    difference = toolchain.difference(image_gcc_version)
    if not difference:
        return Acceleration(toolchain)
    if mode is Accelerate.RELAXED:
        return Acceleration(toolchain, caveat=difference, exact=False)
    return Acceleration(reason=f"{difference} (--accelerate relaxed accepts it)")


def plan_toolchain(
    facts: ImageFacts, target: Arch, base_template: str = DEFAULT_BASE
) -> ToolchainRecipe | str:
    """The toolchain recipe that matches an image for ``target``, or why there is none."""
    described = facts.pretty_name or facts.os_id or "an image without /etc/os-release"
    if facts.os_id not in _CROSS_DISTRIBUTIONS:
        return (
            f"the image is {described}; native toolchains are assembled from Debian's and "
            "Ubuntu's cross-compiler packages only"
        )
    if not facts.codename:
        return f"the image ({described}) names no release codename in /etc/os-release"
    if facts.dpkg_arch != target.debian_arch:
        return (
            f"the image's packages are for {facts.dpkg_arch or 'an unknown architecture'}, "
            f"not {target.debian_arch} ({target.docker_platform})"
        )
    major = str(facts.gcc_majors[-1]) if facts.gcc_majors else "default"
    return ToolchainRecipe(fill_base_template(base_template, facts), target.gnu_triplet, major)


def fill_base_template(template: str, facts: ImageFacts) -> str:
    values = {"id": facts.os_id, "codename": facts.codename, "version_id": facts.version_id}
    return fill_placeholders(
        template,
        values,
        what="toolchain base image",
        example="--toolchain-base 'registry.example/{id}:{codename}'",
        source=" (from the build image's /etc/os-release)",
    )


def read_image_facts(client: docker.DockerClient, image: str, platform: str) -> ImageFacts:
    files = read_image_files(
        client, image, platform, [*_OS_RELEASE_PATHS, _DPKG_STATUS, *INTERPRETER_PATHS]
    )
    os_release = next((files[p] for p in _OS_RELEASE_PATHS if files.get(p) is not None), None)
    facts = ImageFacts.from_files(os_release, files.get(_DPKG_STATUS))
    for path in INTERPRETER_PATHS:
        content = files.get(path)
        try:
            code = elf_file_facts(content, what=f"{image}: {path}") if content else None
        except IntegrityError:
            continue  # not an interpreter prewheel can read: judged by its builds alone
        if code is not None:
            return facts.with_interpreter(str(path), code)
    return facts


class ToolchainStore:
    """Assembles toolchains into local images and volumes on one Docker daemon; reuses them."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        cache_dir: Path | None = None,
        log: Callable[[str], object] = lambda _line: None,
    ) -> None:
        self.client = client
        self.cache_dir = cache_dir or user_cache("toolchains")
        self.log = log
        info = client.info()
        self.host = Arch.from_machine(str(info.get("Architecture", "")))
        self.cpus = int(info.get("NCPU") or 0) or None  # the daemon's, for compile job counts

    @property
    def platform(self) -> str:
        return self.host.docker_platform if self.host else ""

    def plan(
        self, image: str, target: Arch, *, image_platform: str, base_template: str
    ) -> tuple[ImageFacts, ToolchainRecipe | str | None]:
        """The image's facts and its toolchain recipe, or why none, or None when the daemon
        runs ``target`` natively. Cheap: reads the image's files, runs nothing."""
        if self.host is None:
            return ImageFacts(), "the Docker daemon's architecture is not one prewheel knows"
        if target.runs_natively_on(self.host):
            return ImageFacts(), None
        facts = self.facts(image, image_platform)
        return facts, plan_toolchain(facts, target, base_template)

    def acceleration(
        self,
        image: str,
        target: Arch,
        *,
        image_platform: str,
        base_template: str,
        mode: Accelerate = Accelerate.AUTO,
    ) -> Acceleration:
        """The toolchain to build ``image`` for ``target`` with, assembling it if needed."""
        facts, recipe = self.plan(
            image, target, image_platform=image_platform, base_template=base_template
        )
        if recipe is None:
            return NATIVE
        if isinstance(recipe, str):
            return Acceleration(reason=recipe)
        try:
            if mode is Accelerate.AUTO and facts.gcc_version and recipe.gcc_major != "default":
                # Not worth downloading and keeping a toolchain that auto would refuse.
                refusal = self.inexact_before_assembly(recipe, facts.gcc_version)
                if refusal:
                    return Acceleration(reason=f"{refusal} (--accelerate relaxed accepts it)")
            toolchain = self.toolchain(recipe)
        except ToolchainUnavailable as error:
            return Acceleration(reason=str(error))
        return choose(toolchain, facts.gcc_version or toolchain.release_gcc_version, mode)

    def facts(self, image: str, platform: str) -> ImageFacts:
        """The image's facts, kept per (image id, platform), so a rerun creates no container.
        (With a multi-platform image store the id names the index of every platform.)"""
        image_id = str(self.client.images.get(image).id).removeprefix("sha256:")
        name = f"facts-v{_FACTS_VERSION}-{image_id}-{platform.replace('/', '-')}.json"
        cached = self.cache_dir / name
        try:
            return ImageFacts.from_json(json.loads(cached.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            pass
        facts = read_image_facts(self.client, image, platform)
        atomic_write(cached, json.dumps(facts.to_json()), prefix=".tmp-facts-")
        return facts

    def toolchain(self, recipe: ToolchainRecipe) -> Toolchain:
        base_id = self._base_image_id(recipe.base_image)
        key = recipe.key(base_id)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.cache_dir / f"{key}.lock")):
            image = self._find_image(key)
            if image is None:
                self._raise_recent_failure(key)
                image = self._assemble(recipe, key, base_id)
            toolchain = _toolchain_of(image)
            self._ensure_volume(toolchain)
        return toolchain

    def inexact_before_assembly(self, recipe: ToolchainRecipe, image_gcc_version: str) -> str:
        """Why the cross compiler the release offers is not the image's exact gcc, asked of
        apt in the base image before anything is downloaded ("" if it is, if it cannot be
        told, or if the toolchain is assembled already). The answer is kept for a day."""
        key = recipe.key(self._base_image_id(recipe.base_image))
        if self._find_image(key) is not None:
            return ""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cached = self.cache_dir / f"{key}.candidate"
        try:
            fresh = time.time() - cached.stat().st_mtime < _PROBE_TTL
        except FileNotFoundError:
            fresh = False
        if fresh:
            candidate = cached.read_text(encoding="utf-8")
        else:
            self._raise_recent_failure(key)
            candidate = self._probe(recipe, key)
            atomic_write(cached, candidate, prefix=".tmp-candidate-")
        if not candidate:
            return ""
        return revision_difference(
            recipe.gcc_major, image_gcc_version, cross_source_version(candidate)
        )

    def _probe(self, recipe: ToolchainRecipe, key: str) -> str:
        """The cross gcc package version apt in the base image would install ("" if unsaid)."""
        output = bytearray()
        result = self._run_script(
            recipe, output.extend, timeout=_PROBE_TIMEOUT, environment={"PREWHEEL_PROBE": "1"}
        )
        if result.exit_code != 0:
            doing = (
                f"asking apt in {recipe.base_image} for the {recipe.triplet} cross compiler "
                f"(gcc {recipe.gcc_major})"
            )
            self._fail(key, doing, result, _last_output_line(bytes(output)))
        found = _CANDIDATE.search(bytes(output))
        return found.group(1).decode() if found else ""

    def _run_script(
        self,
        recipe: ToolchainRecipe,
        output: Callable[[bytes], object],
        *,
        timeout: float,
        environment: dict[str, str] | None = None,
        keep: Callable[[Container], None] | None = None,
    ) -> Any:
        """Run the assembly script for ``recipe`` in a container of its base image; ``keep``
        is called with the container (still there) when the script succeeded."""
        bundle = ca_bundle()
        arguments = [recipe.triplet, recipe.gcc_major]
        with (
            Container(
                self.client,
                image=recipe.base_image,
                platform=self.platform,
                environment={**proxy_environment(), **(environment or {})},
            ) as container,
            resources.as_file(
                resources.files(__package__).joinpath("resources", _SCRIPT)
            ) as script,
        ):
            container.copy_in(script, _WORK / _SCRIPT, mode=0o555)
            if bundle is not None:
                container.copy_in(bundle, _WORK / "ca.pem", mode=0o444)
                arguments.append(str(_WORK / "ca.pem"))
            result = container.call(
                ["sh", str(_WORK / _SCRIPT), *arguments], timeout=timeout, output=output
            )
            if result.exit_code == 0 and keep is not None:
                keep(container)
        return result

    # -- the toolchain image --------------------------------------------------------------
    def _base_image_id(self, base: str) -> str:
        try:
            return str(self.client.images.get(base).id)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as exc:
            raise ToolchainUnavailable(
                f"cannot inspect toolchain base image {base} ({exc})"
            ) from None
        try:
            self.log(f"pulling {base} for {self.platform} (toolchain base)")
            return str(self.client.images.pull(base, platform=self.platform).id)
        except docker.errors.DockerException as exc:
            raise ToolchainUnavailable(
                f"the toolchain base image {base} is not present and cannot be pulled ({exc}); "
                "pull or build it, or name another image of the same release with "
                "--toolchain-base"
            ) from None

    def _find_image(self, key: str) -> Any:
        found = self.client.images.list(filters={"label": f"{RECIPE_LABEL}={key}"})
        return found[0] if found else None

    def _raise_recent_failure(self, key: str) -> None:
        failure = self.cache_dir / f"{key}.failed"
        try:
            age = time.time() - failure.stat().st_mtime
        except FileNotFoundError:
            return
        if age < _FAILURE_TTL:
            raise ToolchainUnavailable(failure.read_text(encoding="utf-8"))
        failure.unlink(missing_ok=True)

    def _assemble(self, recipe: ToolchainRecipe, key: str, base_id: str) -> Any:
        log_path = self.cache_dir / f"{key}.log"
        self.log(
            f"assembling a native toolchain for {recipe.triplet} (gcc {recipe.gcc_major}) in "
            f"{recipe.base_image}; log: {log_path}"
        )
        tag = key[:16]

        def commit(container: Container) -> None:
            manifest = container.read_file(MOUNT_POINT / "toolchain.json")
            content = hashlib.sha256(manifest).hexdigest()
            container.commit(
                IMAGE_REPOSITORY,
                tag,
                labels={
                    RECIPE_LABEL: key,
                    CONTENT_LABEL: content,
                    BASE_LABEL: base_id,
                    **_manifest_labels(manifest),
                },
            )

        with log_path.open("wb") as log:
            result = self._run_script(recipe, log.write, timeout=_ASSEMBLY_TIMEOUT, keep=commit)
        if result.exit_code != 0:
            doing = f"assembling the {recipe.triplet} toolchain (gcc {recipe.gcc_major}) in {recipe.base_image}"
            self._fail(key, doing, result, f"{_last_line(log_path)}; full log: {log_path}")
        self.log(f"toolchain {IMAGE_REPOSITORY}:{tag} ready")
        return self.client.images.get(f"{IMAGE_REPOSITORY}:{tag}")

    def _fail(self, key: str, doing: str, result: Any, detail: str) -> NoReturn:
        """Raise why ``doing`` failed; a release without the cross compiler is remembered, so
        it is not asked again on every run (other failures, network or mirror, are)."""
        how = " (timed out)" if result.timed_out else f" (exit {result.exit_code})"
        reason = f"{doing} failed{how}: {detail}"
        if result.exit_code == _NOT_IN_ARCHIVE:
            atomic_write(self.cache_dir / f"{key}.failed", reason, prefix=".tmp-failed-")
        raise ToolchainUnavailable(reason)

    # -- the volume build containers mount --------------------------------------------------
    def _ensure_volume(self, toolchain: Toolchain) -> None:
        """Make sure the toolchain's volume holds its tree. Docker copies the image's tree into
        an empty volume when a container of the image is created with it mounted there; the
        copy is checked through that (never started) container, and a volume a killed run
        left empty or unfinished is made again."""
        for attempt in range(2):
            try:
                self.client.volumes.get(toolchain.volume)
            except docker.errors.NotFound:
                self.client.volumes.create(
                    toolchain.volume, labels={CONTENT_LABEL: toolchain.content}
                )
            files = read_image_files(
                self.client,
                toolchain.image,
                self.platform,
                [MOUNT_POINT / "toolchain.json"],
                mounts=[Mount(str(MOUNT_POINT), toolchain.volume, type="volume")],
            )
            if files[MOUNT_POINT / "toolchain.json"] is not None:
                return
            if attempt == 0:
                self.client.volumes.get(toolchain.volume).remove(force=True)
        raise ToolchainUnavailable(f"the volume {toolchain.volume} stays empty")


class ToolchainUnavailable(Exception):
    """No toolchain for this recipe here; the message says why (shown, then emulated builds)."""


def _toolchain_of(image: Any) -> Toolchain:
    labels = image.labels or {}
    content = labels[CONTENT_LABEL]
    return Toolchain(
        image=image.tags[0] if image.tags else str(image.id),
        image_id=str(image.id),
        content=content,
        volume=toolchain_volume(str(image.id)),
        triplet=labels.get("org.prewheel.toolchain.triplet", ""),
        gcc_major=labels.get("org.prewheel.toolchain.gcc-major", ""),
        gcc_version=labels.get("org.prewheel.toolchain.gcc-version", ""),
        gcc_source_version=labels.get("org.prewheel.toolchain.gcc-source-version", ""),
        release_gcc_version=labels.get("org.prewheel.toolchain.release-gcc-version", ""),
        interpreter=labels.get("org.prewheel.toolchain.interpreter", ""),
        libdir=labels.get("org.prewheel.toolchain.libdir", ""),
        host=labels.get("org.prewheel.toolchain.host", ""),
        packages=tuple(json.loads(labels.get("org.prewheel.toolchain.packages", "[]"))),
    )


def toolchain_volume(image_id: str) -> str:
    """The volume a toolchain image's tree is copied into (named after the image id)."""
    return f"{VOLUME_PREFIX}{image_id.removeprefix('sha256:')[:16]}"


def _manifest_labels(manifest: bytes) -> dict[str, str]:
    data = json.loads(manifest)
    return {
        "org.prewheel.toolchain.triplet": str(data["triplet"]),
        "org.prewheel.toolchain.gcc-major": str(data["gcc_major"]),
        "org.prewheel.toolchain.gcc-version": str(data["gcc_version"]),
        "org.prewheel.toolchain.gcc-source-version": str(data["gcc_source_version"]),
        "org.prewheel.toolchain.release-gcc-version": str(data["release_gcc_version"]),
        "org.prewheel.toolchain.interpreter": str(data["interpreter"]),
        "org.prewheel.toolchain.libdir": str(data["libdir"]),
        "org.prewheel.toolchain.host": str(data["host"]),
        "org.prewheel.toolchain.packages": json.dumps(data["packages"]),
    }


def _last_line(path: Path) -> str:
    return _last_output_line(path.read_bytes())


def _last_output_line(output: bytes) -> str:
    lines = [line for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
