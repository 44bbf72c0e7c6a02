"""Benchmark an unchanged rerun of ``prewheel run`` on the bundled example.

One run, side by side, written to docs/benchmarks/rerun.md: after one warm-up ``prewheel run``
(which builds nothing when the e2e test's cached wheelhouse is present, and verifies every
target), the same command is run again

1. **unchanged**: as a user reruns it; every wheel is reused and every target's verification
   is taken from the verify cache (same lock, index content and image);
2. **--reverify**: the same, but every target is verified again in its (emulated) container,
   which is what every rerun cost before verifications were cached.

Each is the whole command line (``python -m builder run ...``, start-up included), timed
``--repeat`` times (median reported); containers are counted from the Docker daemon's own
``create`` events during each run. Needs Docker, QEMU binfmt handlers, the test images and the
public index (the plan's pages come from the HTTP cache, revalidated when stale).
Usage: .venv/bin/python bench/rerun.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from tests.test_e2e import (
    BUILD_IMAGE,
    BUILD_SETTINGS,
    EXAMPLE,
    EXAMPLE_SETTINGS,
    PLATFORMS,
    RUNTIME_IMAGE,
    cache_root,
    wheelhouse_key,
)


def run_command(output: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "builder",
        "run",
        str(EXAMPLE),
        "--platform",
        ",".join(PLATFORMS),
        "--build-image",
        BUILD_IMAGE,
        "--verify-image",
        RUNTIME_IMAGE,
        "--wheelhouse",
        str(cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}"),
        "--config",
        str(EXAMPLE_SETTINGS),
        *(f"--{key}={value}" for key, value in BUILD_SETTINGS.items()),  # as the e2e test
        "--output",
        str(output),
        *extra,
    ]


def containers_created(since: float, until: float) -> int:
    """How many containers the daemon created between the two moments (its event log)."""
    events = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
         "--filter", "type=container", "--filter", "event=create", "--format", "{{.ID}}"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return len(events.stdout.split())


def timed(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, containers created) of one run; a failed run stops the benchmark."""
    since = time.time()
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=7200,
                            env={**os.environ, "CI": "1"})  # fmt: skip
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    time.sleep(1)  # let the daemon's event log catch up
    return seconds, containers_created(since, time.time())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prewheel-rerun-") as work:
        output = Path(work) / "out"
        warm_seconds, warm_containers = timed(run_command(output))
        print(f"warm-up: {warm_seconds:.1f} s, {warm_containers} containers", flush=True)
        rows = {}
        for label, extra in (("unchanged", ()), ("--reverify", ("--reverify",))):
            runs = [timed(run_command(output, *extra)) for _ in range(args.repeat)]
            rows[label] = (statistics.median(s for s, _ in runs), max(c for _, c in runs))
            print(f"{label}: {rows[label][0]:.2f} s, {rows[label][1]} containers", flush=True)
    write_section("rerun", render(rows, args.repeat))


def render(rows: dict[str, tuple[float, int]], repeat: int) -> str:
    unchanged = rows["unchanged"][0]
    lines = [
        "## Unchanged rerun (`bench/rerun.py`)",
        "",
        (
            f"`prewheel run` of the bundled example for {', '.join(PLATFORMS)} (build images "
            f"`{BUILD_IMAGE}`, verify images `{RUNTIME_IMAGE}`), rerun with nothing changed after "
            "a warm-up run: every wheel is reused, and the verifications are either taken from the "
            "verify cache (the default) or run again with `--reverify` (what every rerun did "
            f"before). Whole command lines, median of {repeat}; containers counted from the Docker "
            f"daemon's create events. Measured {datetime.date.today().isoformat()}."
        ),
        "",
        "| rerun | wall time | containers started | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, (seconds, containers) in rows.items():
        lines.append(f"| {label} | {seconds:.1f} s | {containers} | {seconds / unchanged:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
