"""Benchmark installing the example set in each target's (emulated) container.

One run, side by side, per target, written to docs/benchmarks/install.md:

1. **prewheel**: ``pip install --index-url <served prewheel index> --only-binary=:all:
   --require-hashes -r requirements.lock`` in the compiler-less test image.
2. **floor**: the same wheels copied into the container, ``pip install --no-index
   --find-links <dir> --only-binary=:all: --require-hashes -r requirements.lock``: what any
   install of these wheels costs without the network.
3. **from source**: what the image does without prewheel, ``pip install -r requirements.txt``
   from the public index in the image with a compiler (on arm/v7 that compiles asyncpg,
   msgpack and PyYAML under QEMU).

Only pip's own run is timed (inside the container, venv creation excluded). The prewheel and
floor installs run ``--repeat`` times (median reported); the source install once.
The index and lock come from the pipeline (builds reuse the e2e test's cached wheelhouse).
Needs Docker, QEMU binfmt handlers, the test images, and the public index.
Usage: .venv/bin/python bench/install.py [--platform linux/arm/v7,...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.consume.verify import DockerProbeRunner
from builder.hostenv import ca_bundle, proxy_environment
from builder.index.complete import write_index
from builder.index.server import serving
from builder.index.static import StaticIndex
from builder.pipeline import write_consumer_files
from builder.plan import plan_requirements
from builder.targets import Target, select_targets
from builder.upstream.client import default_index_url
from builder.wheelhouse import Wheelhouse
from tests.test_e2e import (
    BUILD_IMAGE,
    EXAMPLE,
    PLATFORMS,
    RUNTIME_IMAGE,
    cache_root,
    wheelhouse_key,
)

MARKER = "PREWHEEL-BENCH "
TIMER = r"""
import json, subprocess, sys, time
subprocess.run([sys.executable, "-m", "venv", "/tmp/venv"], check=True)
started = time.monotonic()
result = subprocess.run(["/tmp/venv/bin/python", "-m", "pip", "install", "--no-cache-dir",
                         "--disable-pip-version-check", *sys.argv[1:]],
                        capture_output=True, text=True)
elapsed = time.monotonic() - started
tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
print("PREWHEEL-BENCH " + json.dumps({"seconds": elapsed, "exit": result.returncode, "tail": tail}))
"""
WORK = PurePosixPath("/bench")


def timed_install(
    runner: DockerProbeRunner,
    image: str,
    target: Target,
    files: dict[PurePosixPath, Path],
    pip_args: list[str],
    timeout: float,
) -> float:
    environment = proxy_environment()
    if WORK / "ca.pem" in files:
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            environment[name] = str(WORK / "ca.pem")
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    run = runner.run(
        image=image,
        platform=target.docker_platform,
        files=files,
        argv=["python3", str(WORK / "timer.py"), *pip_args],
        environment=environment,
        timeout=timeout,
    )
    line = next((x for x in reversed(run.output.splitlines()) if x.startswith(MARKER)), None)
    if line is None:
        raise SystemExit(f"{image} ({target.docker_platform}): no result\n{run.output[-2000:]}")
    data = json.loads(line.removeprefix(MARKER))
    if data["exit"] != 0:
        raise SystemExit(
            f"{image} ({target.docker_platform}) pip failed:\n" + "\n".join(data["tail"])
        )
    return float(data["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", default=",".join(PLATFORMS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source-timeout", type=float, default=3600)
    options = parser.parse_args()
    targets = select_targets(platforms=options.platform.split(","))
    wheelhouse = Wheelhouse(cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}")
    work = Path(tempfile.mkdtemp(prefix="prewheel-bench-install-"))
    plan = plan_requirements([EXAMPLE], select_targets(platforms=PLATFORMS))
    if plan.gaps() and not wheelhouse.entries():
        raise SystemExit(f"No built wheels in {wheelhouse.path}: run tests/test_e2e.py first.")
    wheels = wheelhouse.wheels_for_one_index([t.identifier for t in plan.targets])
    write_index(StaticIndex(work / "index"), wheels, plan=plan)
    lock, _ = write_consumer_files(plan, wheelhouse, work)
    timer = work / "timer.py"
    timer.write_text(TIMER, encoding="utf-8")
    bundle = ca_bundle()
    base: dict[PurePosixPath, Path] = {
        WORK / "timer.py": timer,
        WORK / "requirements.lock": lock,
        WORK / "requirements.txt": EXAMPLE,
    }
    if bundle is not None:
        base[WORK / "ca.pem"] = bundle
    wheels = {WORK / "wheels" / p.name: p for p in sorted((work / "index" / "files").glob("*.whl"))}
    runner = DockerProbeRunner()
    locked = ["--only-binary=:all:", "--require-hashes", "-r", str(WORK / "requirements.lock")]
    rows = []
    with serving(work / "index") as url:
        for target in targets:
            runtime = RUNTIME_IMAGE.format(debian_arch=target.arch.debian_arch)
            build = BUILD_IMAGE.format(debian_arch=target.arch.debian_arch)
            ours = [
                timed_install(runner, runtime, target, base, ["--index-url", url, *locked], 900)
                for _ in range(options.repeat)
            ]
            floor = [
                timed_install(
                    runner,
                    runtime,
                    target,
                    {**base, **wheels},
                    ["--no-index", "--find-links", str(WORK / "wheels"), *locked],
                    900,
                )
                for _ in range(options.repeat)
            ]
            source = timed_install(
                runner,
                build,
                target,
                base,
                ["--index-url", default_index_url(), "-r", str(WORK / "requirements.txt")],
                options.source_timeout,
            )
            row = (
                target.docker_platform,
                statistics.median(ours),
                statistics.median(floor),
                source,
            )
            print(
                f"{row[0]}: prewheel {row[1]:.1f} s, floor {row[2]:.1f} s, source {row[3]:.1f} s",
                flush=True,
            )
            rows.append(row)
    lines = [
        "## Install: the example set per target, prewheel index vs from source vs local floor",
        "",
        (
            f"`bench/install.py`, one run. `pip install` of `requirements/example.txt` "
            f"({len(plan.rows)} pinned distributions) inside a container of each target (foreign "
            "architectures under QEMU); only pip's own run is timed. *prewheel*: from the served "
            "prewheel index with `--only-binary=:all: --require-hashes` in the compiler-less image "
            f"(median of {options.repeat}). *floor*: the same wheels from a directory in the "
            f"container with `--no-index` (median of {options.repeat}). *source*: `pip install -r "
            "requirements.txt` from the public index in the image with a compiler, i.e. the image "
            "build without prewheel (once)."
        ),
        "",
        "| target | prewheel (s) | floor (s) | from source (s) | source / prewheel | prewheel / floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for platform, ours_s, floor_s, source_s in rows:
        lines.append(
            f"| {platform} | {ours_s:.1f} | {floor_s:.1f} | {source_s:.1f} | "
            f"{source_s / ours_s:.1f}x | {ours_s / floor_s:.2f}x |"
        )
    lines += [
        "",
        ("Aim: at least 100x faster than from source on linux/arm/v7, within 1.5x of the floor."),
    ]
    write_section("install", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
