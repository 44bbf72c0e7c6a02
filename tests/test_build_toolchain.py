"""Accelerated builds, without Docker: which toolchain an image gets (or why none), the cache
key and manifest record, the emulated rebuild after a failed accelerated build, and the
in-container switch between native and emulated compilers on a fake /usr/bin.
(Real toolchains and builds under QEMU: test_build_emulation.py.)"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO

import pytest
from build_fixtures.helpers import gap
from build_fixtures.sdists import make_sdist

from builder.building import SdistFetcher, make_jobs, run_builds
from builder.building.builders import (
    BuildFailed,
    BuildResult,
    NativeBuildFailed,
    compile_jobs_for,
    parallel_environment,
)
from builder.building.jobs import BuildJob, cache_key
from builder.building.runner import BuildStatus, EventKind, ProgressEvent
from builder.building.toolchain import (
    Accelerate,
    Acceleration,
    ImageFacts,
    Toolchain,
    ToolchainRecipe,
    choose,
    cross_source_version,
    plan_toolchain,
    revision_difference,
)
from builder.errors import UsageError
from builder.targets import Arch, Target
from builder.wheelhouse import Wheelhouse

BOOKWORM = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""
NOBLE = b"""PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
"""
ALPINE = b"""NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
"""


def dpkg_status(arch: str, *packages: str) -> bytes:
    paragraphs = [
        f"Package: dpkg\nStatus: install ok installed\nArchitecture: {arch}\nVersion: 1.21.22\n"
    ]
    for name in packages:
        paragraphs.append(
            f"Package: {name}\nStatus: install ok installed\nArchitecture: {arch}\n"
            "Version: 12.2.0-14+deb12u1\n"
        )
    paragraphs.append(
        f"Package: gcc-11\nStatus: deinstall ok config-files\nArchitecture: {arch}\nVersion: 11\n"
    )
    return "\n".join(paragraphs).encode()


# --- image facts and the choice of toolchain -------------------------------------------------
def test_facts_read_os_release_and_the_installed_gcc_packages() -> None:
    facts = ImageFacts.from_files(BOOKWORM, dpkg_status("armhf", "gcc-12", "gcc", "libgcc-s1"))
    assert (facts.os_id, facts.codename, facts.version_id) == ("debian", "bookworm", "12")
    assert facts.dpkg_arch == "armhf"
    assert facts.gcc_majors == (12,)  # gcc-11 is only config files: not installed


def test_a_debian_image_gets_the_cross_compiler_of_its_release_and_gcc() -> None:
    facts = ImageFacts.from_files(BOOKWORM, dpkg_status("armhf", "gcc-12"))
    recipe = plan_toolchain(facts, Arch.ARMV7L)
    assert recipe == ToolchainRecipe("debian:bookworm", "arm-linux-gnueabihf", "12")


def test_an_image_without_a_compiler_gets_the_release_default() -> None:
    facts = ImageFacts.from_files(NOBLE, dpkg_status("arm64"))
    recipe = plan_toolchain(facts, Arch.AARCH64, "mirror.example/{id}:{version_id}")
    assert recipe == ToolchainRecipe("mirror.example/ubuntu:24.04", "aarch64-linux-gnu", "default")


def test_armel_is_arm_v6s_triplet() -> None:
    facts = ImageFacts.from_files(BOOKWORM, dpkg_status("armel", "gcc-12"))
    recipe = plan_toolchain(facts, Arch.ARMV6L)
    assert isinstance(recipe, ToolchainRecipe) and recipe.triplet == "arm-linux-gnueabi"


@pytest.mark.parametrize(
    ("os_release", "arch", "target", "reason"),
    [
        (ALPINE, "", Arch.AARCH64, "Alpine Linux v3.20; native toolchains are assembled from"),
        (None, "", Arch.AARCH64, "an image without /etc/os-release"),
        (BOOKWORM, "armhf", Arch.ARMV6L, "packages are for armhf, not armel (linux/arm/v6)"),
        (b'ID=debian\nPRETTY_NAME="Debian GNU/Linux"\n', "arm64", Arch.AARCH64, "codename"),
    ],
)
def test_images_without_a_matching_toolchain_say_why(
    os_release: bytes | None, arch: str, target: Arch, reason: str
) -> None:
    facts = ImageFacts.from_files(os_release, dpkg_status(arch) if arch else None)
    result = plan_toolchain(facts, target)
    assert isinstance(result, str) and reason in result


def test_an_unknown_placeholder_in_the_toolchain_base_is_a_usage_error() -> None:
    facts = ImageFacts.from_files(BOOKWORM, dpkg_status("arm64"))
    with pytest.raises(UsageError, match=r"\{codename\}"):
        plan_toolchain(facts, Arch.AARCH64, "debian:{release}")


def test_the_recipe_identity_needs_no_image_and_follows_the_mode() -> None:
    recipe = ToolchainRecipe("debian:trixie", "aarch64-linux-gnu", "14")
    assert recipe.identity(Accelerate.AUTO) == recipe.identity(Accelerate.AUTO)
    assert recipe.identity(Accelerate.AUTO) != recipe.identity(Accelerate.RELAXED)
    other = ToolchainRecipe("debian:trixie", "arm-linux-gnueabihf", "14")
    assert other.identity(Accelerate.AUTO) != recipe.identity(Accelerate.AUTO)


def test_the_recipe_key_follows_the_base_image_and_the_gcc_version() -> None:
    recipe = ToolchainRecipe("debian:bookworm", "arm-linux-gnueabihf", "12")
    assert recipe.key("sha256:a") == recipe.key("sha256:a")
    assert recipe.key("sha256:a") != recipe.key("sha256:b")
    other = ToolchainRecipe("debian:bookworm", "arm-linux-gnueabihf", "default")
    assert other.key("sha256:a") != recipe.key("sha256:a")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", Accelerate.AUTO),
        ("OFF", Accelerate.OFF),
        ("on", Accelerate.AUTO),
        ("0", "off"),
        ("relaxed", Accelerate.RELAXED),
    ],
)
def test_accelerate_values(value: str, expected: str) -> None:
    assert Accelerate.parse(value) == expected


def test_a_wrong_accelerate_value_names_the_choices() -> None:
    with pytest.raises(UsageError, match=r"auto .* relaxed .* or off"):
        Accelerate.parse("fast")


def test_the_cores_are_shared_between_parallel_builds() -> None:
    assert compile_jobs_for(1, cpus=8) == 8
    assert compile_jobs_for(3, cpus=8) == 2
    assert compile_jobs_for(4, cpus=2) == 1
    environment = parallel_environment(4)
    assert environment["MAKEFLAGS"] == "-j4"
    assert environment["CMAKE_BUILD_PARALLEL_LEVEL"] == "4"
    assert environment["DIST_EXTRA_CONFIG"].endswith("parallel.cfg")


# --- cache key, manifest, emulated rebuild ---------------------------------------------------
TOOLCHAIN = Toolchain(
    image="prewheel-toolchain:0123456789abcdef",
    image_id="sha256:toolchain",
    content="c0ffee" * 10,
    volume="prewheel-toolchain-c0ffeec0ffeec0ff",
    triplet="aarch64-linux-gnu",
    gcc_major="12",
    gcc_version="12.2.0",
    gcc_source_version="12.2.0-14",
    release_gcc_version="12.2.0-14+deb12u1",
    interpreter="/lib64/ld-linux-x86-64.so.2",
    libdir="/lib/x86_64-linux-gnu",
    host="x86_64",
    packages=("gcc-12-aarch64-linux-gnu=12.2.0-14cross1",),
)


RECIPE = "recipe-identity-of-the-toolchain"


class AcceleratedSession:
    """Builds like a container session with a native toolchain: ``native_fails`` names the
    projects whose native build fails (the emulated rebuild then succeeds), ``fails`` those
    whose build fails before compiling natively."""

    def __init__(self, builder: AcceleratedBuilder) -> None:
        self.builder = builder
        self.toolchain = builder.toolchain

    def build(
        self,
        job: BuildJob,
        sdist: Path,
        out_dir: Path,
        log: IO[bytes],
        *,
        native: bool = True,
        environment: object = None,
    ) -> BuildResult:
        self.builder.calls.append((job.name, native))
        if job.name in self.builder.fails:
            log.write(b"error: no such system package\n")
            raise BuildFailed("apt-get install failed")
        if native and job.name in self.builder.native_fails:
            log.write(b"error: the cross compiler was refused\n")
            raise NativeBuildFailed("pip wheel failed")
        if native and job.name == "swallowed":  # an optional extension that failed quietly
            log.write(b"gcc: internal compiler error: Segmentation fault\nbuilt pure\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        wheel = out_dir / f"{job.name}-{job.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{job.name}.py", "")
        return BuildResult((wheel,), self.toolchain if native else None)


class AcceleratedBuilder:
    name = "fake-accelerated"

    def __init__(
        self,
        toolchain: Toolchain | None,
        native_fails: set[str],
        *,
        fails: frozenset[str] = frozenset(),
        recipe: str | None = RECIPE,
    ) -> None:
        self.toolchain = toolchain
        self.native_fails = native_fails
        self.fails = fails
        self.recipe = recipe
        self.containers_started = 0
        self.calls: list[tuple[str, bool]] = []

    def preflight(self, arch: Arch) -> None:
        pass

    def image_digest(self, image: str, arch: Arch) -> str:
        return "sha256:image"

    def acceleration(self, image: str, arch: Arch) -> Acceleration:
        if self.toolchain is None:
            return Acceleration(reason="the image is Alpine Linux")
        return Acceleration(self.toolchain)

    def compiler_key(self, image: str, arch: Arch) -> str | None:
        return self.recipe

    def check_image(self, image: str, target: Target) -> None:
        pass

    @contextlib.contextmanager
    def session(self, image: str, arch: Arch, setup_log: IO[bytes]) -> Iterator[AcceleratedSession]:
        self.containers_started += 1
        yield AcceleratedSession(self)


def _build(tmp_path: Path, builder: AcceleratedBuilder, *names: str):  # type: ignore[no-untyped-def]
    jobs = make_jobs(
        [gap(make_sdist(tmp_path / "sdists", name), "linux/arm64") for name in names],
        image="img:{debian_arch}",
    )
    events: list[ProgressEvent] = []
    house = Wheelhouse(tmp_path / "wh")
    report = run_builds(
        jobs,
        wheelhouse=house,
        builder=builder,
        fetcher=SdistFetcher(tmp_path / "cache"),
        progress=events.append,
    )
    return house, report, events, jobs


def test_an_accelerated_build_is_recorded_and_keyed_by_its_toolchain(tmp_path: Path) -> None:
    house, report, events, jobs = _build(tmp_path, AcceleratedBuilder(TOOLCHAIN, set()), "fast")
    (outcome,) = report.outcomes
    assert outcome.status is BuildStatus.BUILT and outcome.native and not outcome.fallback
    (entry,) = house.entries()
    assert entry.inputs["toolchain"] == RECIPE
    assert entry.cache_key == cache_key(jobs[0].inputs("sha256:image", toolchain=RECIPE))
    assert entry.compilers["native"] is True
    assert entry.compilers["toolchain"]["image_id"] == "sha256:toolchain"
    assert entry.compilers["toolchain"]["gcc_version"] == "12.2.0"
    (started,) = [e for e in events if e.kind is EventKind.STEP_STARTED]
    assert "native compilers: prewheel-toolchain:0123456789abcdef" in started.note
    assert report.to_json()["summary"]["accelerated"] == 1


def test_a_failed_accelerated_build_is_rebuilt_emulated(tmp_path: Path) -> None:
    builder = AcceleratedBuilder(TOOLCHAIN, {"picky"})
    house, report, _events, _jobs = _build(tmp_path, builder, "picky", "fast")
    assert builder.calls == [("fast", True), ("picky", True), ("picky", False)]
    by_name = {o.job.name: o for o in report.outcomes}
    assert by_name["picky"].status is BuildStatus.BUILT and not by_name["picky"].native
    assert by_name["picky"].fallback == "pip wheel failed"
    assert [o.job.name for o in report.fell_back] == ["picky"]
    assert report.to_json()["summary"]["rebuilt_emulated"] == 1
    log = by_name["picky"].log.read_text()  # type: ignore[union-attr]
    assert "the cross compiler was refused" in log
    assert "rebuilding it with the image's own compilers under emulation" in log
    entry = next(e for e in house.entries() if e.name == "picky")
    assert entry.compilers == {
        "native": False,
        "toolchain": None,
        "fallback": "pip wheel failed",
        "reason": "the accelerated build failed",
    }
    # The inputs were those of an accelerated build: a rerun finds the wheel, builds nothing.
    builder.calls.clear()
    _house, again, _events, _jobs = _build(tmp_path, builder, "picky", "fast")
    assert [o.status for o in again.outcomes] == [BuildStatus.CACHED, BuildStatus.CACHED]
    assert builder.calls == []


def test_a_cached_wheel_is_found_when_the_toolchain_cannot_be_had(tmp_path: Path) -> None:
    _build(tmp_path, AcceleratedBuilder(TOOLCHAIN, set()), "fast")
    offline = AcceleratedBuilder(None, set())  # e.g. the base image cannot be pulled today
    _house, again, _events, _jobs = _build(tmp_path, offline, "fast")
    assert [o.status for o in again.outcomes] == [BuildStatus.CACHED]
    assert offline.calls == [] and offline.containers_started == 0


def test_a_native_compiler_crash_the_package_swallowed_is_rebuilt_emulated(tmp_path: Path) -> None:
    builder = AcceleratedBuilder(TOOLCHAIN, set())
    _house, report, _events, _jobs = _build(tmp_path, builder, "swallowed")
    assert builder.calls == [("swallowed", True), ("swallowed", False)]
    (outcome,) = report.outcomes
    assert outcome.status is BuildStatus.BUILT and not outcome.native
    assert "internal compiler error" in outcome.fallback


def test_a_build_that_failed_before_compiling_natively_is_not_built_twice(tmp_path: Path) -> None:
    builder = AcceleratedBuilder(TOOLCHAIN, set(), fails=frozenset({"nolib"}))
    _house, report, _events, _jobs = _build(tmp_path, builder, "nolib")
    assert builder.calls == [("nolib", True)]
    (outcome,) = report.failed
    assert outcome.error == "apt-get install failed" and not outcome.fallback


def test_both_builds_failing_names_both_errors(tmp_path: Path) -> None:
    class AlwaysFails(AcceleratedBuilder):
        pass

    builder = AlwaysFails(TOOLCHAIN, {"broken"})
    sdist = make_sdist(tmp_path / "sdists", "broken", broken=True)
    jobs = make_jobs([gap(sdist, "linux/arm64")], image="img")
    original = AcceleratedSession.build

    def fails_twice(self, job, sdist, out_dir, log, *, native=True, environment=None):  # type: ignore[no-untyped-def]
        if not native:
            raise BuildFailed("emulated too")
        return original(self, job, sdist, out_dir, log, native=native, environment=environment)

    session_type = type("FailsTwice", (AcceleratedSession,), {"build": fails_twice})
    builder.session = contextlib.contextmanager(  # type: ignore[method-assign]
        lambda image, platform, setup_log: iter([session_type(builder)])
    )
    report = run_builds(
        jobs,
        wheelhouse=Wheelhouse(tmp_path / "wh"),
        builder=builder,
        fetcher=SdistFetcher(tmp_path / "cache"),
    )
    (outcome,) = report.failed
    assert outcome.error == "emulated too (the accelerated build failed first: pip wheel failed)"


def test_a_platform_without_a_toolchain_is_keyed_as_before(tmp_path: Path) -> None:
    builder = AcceleratedBuilder(None, set(), recipe=None)
    house, _report, events, jobs = _build(tmp_path, builder, "plain")
    (entry,) = house.entries()
    assert "toolchain" not in entry.inputs
    assert entry.cache_key == cache_key(jobs[0].inputs("sha256:image"))
    assert entry.compilers["native"] is False
    assert entry.compilers["reason"] == "the image is Alpine Linux"
    (started,) = [e for e in events if e.kind is EventKind.STEP_STARTED]
    assert started.note == "emulated compilers: the image is Alpine Linux"


# --- the in-container switch, on a fake /usr/bin -------------------------------------------------
def _script() -> ModuleType:
    path = (
        Path(__file__).resolve().parent.parent / "builder/building/resources/build_in_container.py"
    )
    spec = importlib.util.spec_from_file_location("build_in_container", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def image_bin(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A fake image /usr/bin (Debian's layout: real triplet files, links to them) and a fake
    native toolchain tree with the same triplet names."""
    bin_dir = tmp_path / "usr-bin"
    for name in ("aarch64-linux-gnu-gcc-12", "aarch64-linux-gnu-as", "aarch64-linux-gnu-g++-12"):
        _executable(bin_dir / name, "#!/bin/sh\necho 12.2.0\n")
    (bin_dir / "gcc-12").symlink_to("aarch64-linux-gnu-gcc-12")
    (bin_dir / "gcc").symlink_to("gcc-12")
    (bin_dir / "as").symlink_to("aarch64-linux-gnu-as")
    root = tmp_path / "toolchain"
    for name in ("aarch64-linux-gnu-gcc-12", "aarch64-linux-gnu-as", "aarch64-linux-gnu-ld"):
        _executable(root / "usr" / "bin" / name, "#!/bin/sh\necho native\n")
    (root / "toolchain.json").write_text("{}")
    _executable(root / "lib" / "ld-linux-x86-64.so.2", "")
    spec = {
        "interpreter": str(tmp_path / "image-root" / "lib64" / "ld-linux-x86-64.so.2"),
        "libdir": str(tmp_path / "image-root" / "lib" / "x86_64-linux-gnu"),
        "root": str(root),
        "triplet": "aarch64-linux-gnu",
        "gcc_major": "12",
        "gcc_version": "12.2.0",
        "gcc_source_version": "12.2.0-14",
        "exact": True,
        "host": "x86_64",
    }
    return bin_dir, tmp_path / "saved", spec


def same_gcc(package: str) -> str:
    return "12.2.0-14" if package == "gcc-12" else ""


def test_native_compilers_replace_the_images_and_are_restored_exactly(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    script = _script()
    before = {p.name: (p.is_symlink(), p.read_text()) for p in bin_dir.iterdir()}
    result = script.select_compilers(spec, bin_dir, saved, same_gcc)
    assert result["native"] is True
    assert result["tools"] == ["aarch64-linux-gnu-as", "aarch64-linux-gnu-gcc-12"]
    root = Path(spec["root"]) / "usr" / "bin"
    assert (bin_dir / "aarch64-linux-gnu-gcc-12").readlink() == root / "aarch64-linux-gnu-gcc-12"
    assert (bin_dir / "gcc").read_text() == "#!/bin/sh\necho native\n"  # links follow
    assert (bin_dir / "as").read_text() == "#!/bin/sh\necho native\n"
    assert not (bin_dir / "aarch64-linux-gnu-ld").exists()  # the image had none: none added
    assert (bin_dir / "aarch64-linux-gnu-g++-12").read_text() == "#!/bin/sh\necho 12.2.0\n"
    # The host binaries find their loader and libraries where they look for them.
    loader, libdir = Path(spec["interpreter"]), Path(spec["libdir"])
    assert loader.readlink() == Path(spec["root"]) / "lib" / "ld-linux-x86-64.so.2"
    assert libdir.readlink() == Path(spec["root"]) / "lib"
    # Idempotent: a second call changes nothing and reports the same tools.
    assert script.select_compilers(spec, bin_dir, saved, same_gcc) == result
    emulated = script.select_compilers(None, bin_dir, saved)
    assert emulated["native"] is False
    after = {p.name: (p.is_symlink(), p.read_text()) for p in bin_dir.iterdir()}
    assert after == before
    assert not loader.is_symlink() and not libdir.is_symlink()


def test_an_image_with_its_own_host_library_directory_stays_emulated(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    Path(spec["libdir"]).mkdir(parents=True)  # e.g. an amd64 image (never accelerated anyway)
    result = _script().select_compilers(spec, bin_dir, saved, same_gcc)
    assert result["native"] is False
    assert "the image has its own" in result["reason"] and "x86_64-linux-gnu" in result["reason"]
    assert not (bin_dir / "aarch64-linux-gnu-gcc-12").is_symlink()


def test_a_compiler_installed_later_is_switched_on_the_next_build(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    script = _script()
    script.select_compilers(spec, bin_dir, saved, same_gcc)
    _executable(bin_dir / "aarch64-linux-gnu-ld", "#!/bin/sh\necho image ld\n")  # apt-get install
    result = script.select_compilers(spec, bin_dir, saved, same_gcc)
    assert "aarch64-linux-gnu-ld" in result["tools"]
    assert (bin_dir / "aarch64-linux-gnu-ld").read_text() == "#!/bin/sh\necho native\n"


def test_an_image_with_another_gcc_version_stays_emulated(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    script = _script()
    result = script.select_compilers({**spec, "gcc_major": "13"}, bin_dir, saved, same_gcc)
    assert result["native"] is False
    assert (
        "aarch64-linux-gnu-gcc-12, the toolchain's is aarch64-linux-gnu-gcc-13"
        in (result["reason"])
    )
    assert not (bin_dir / "aarch64-linux-gnu-gcc-12").is_symlink()


def test_another_debian_revision_of_the_same_gcc_stays_emulated_unless_relaxed(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    script = _script()

    def patched(package: str) -> str:
        return "12.2.0-14+deb12u1"

    result = script.select_compilers(spec, bin_dir, saved, patched)
    assert result == {
        "native": False,
        "reason": "the image's gcc-12 package is 12.2.0-14+deb12u1, the cross compiler is built "
        "from 12.2.0-14",
    }
    assert script.select_compilers({**spec, "exact": False}, bin_dir, saved, patched)["native"]


def test_an_incomplete_toolchain_tree_stays_emulated(image_bin) -> None:  # type: ignore[no-untyped-def]
    bin_dir, saved, spec = image_bin
    (Path(spec["root"]) / "toolchain.json").unlink()
    result = _script().select_compilers(spec, bin_dir, saved, same_gcc)
    assert result == {
        "native": False,
        "reason": f"the toolchain at {spec['root']} is incomplete (no toolchain.json)",
    }


def test_auto_takes_only_the_exact_compiler_relaxed_the_same_release() -> None:
    exact = choose(TOOLCHAIN, "12.2.0-14", Accelerate.AUTO)
    assert exact.toolchain is TOOLCHAIN and exact.exact and not exact.caveat
    refused = choose(TOOLCHAIN, "12.2.0-14+deb12u1", Accelerate.AUTO)
    assert refused.toolchain is None
    assert refused.reason == (
        "the image compiles with gcc-12 12.2.0-14+deb12u1, the release's cross compiler is "
        "built from 12.2.0-14; code can differ where the distribution's patches do "
        "(--accelerate relaxed accepts it)"
    )
    relaxed = choose(TOOLCHAIN, "12.2.0-14+deb12u1", Accelerate.RELAXED)
    assert relaxed.toolchain is TOOLCHAIN and not relaxed.exact
    assert "12.2.0-14+deb12u1" in relaxed.caveat


def test_facts_keep_the_gcc_package_version() -> None:
    facts = ImageFacts.from_files(BOOKWORM, dpkg_status("arm64", "gcc-12"))
    assert facts.gcc_version == "12.2.0-14+deb12u1"
    assert ImageFacts.from_json(facts.to_json()) == facts


def test_the_toolchain_record_names_image_content_and_versions() -> None:
    record = TOOLCHAIN.record()
    assert json.loads(json.dumps(record)) == record
    assert record["content"] == TOOLCHAIN.content and record["host"] == "x86_64"
    assert TOOLCHAIN.mount()["ReadOnly"] is True


def test_a_cross_package_version_names_the_gcc_source_it_was_built_from() -> None:
    assert cross_source_version("12.2.0-14cross1") == "12.2.0-14"
    assert cross_source_version("14.2.0-19cross2") == "14.2.0-19"
    assert revision_difference("14", "14.2.0-19", cross_source_version("14.2.0-19cross2")) == ""
    refusal = revision_difference(
        "12", "12.2.0-14+deb12u1", cross_source_version("12.2.0-14cross1")
    )
    assert refusal.startswith("the image compiles with gcc-12 12.2.0-14+deb12u1, the release's")
    assert "built from 12.2.0-14;" in refusal
