"""Benchmark the CPU QEMU emulates for linux/arm64: its default ("max") vs Cortex-A53.

One run, side by side, written to docs/benchmarks/qemu_cpu.md. In the arm64 build test images
of Debian bookworm and trixie, the same emulated work runs alternately with QEMU's default CPU
(no ``QEMU_CPU``) and with ``QEMU_CPU=cortex-a53``, what prewheel gives every arm64 container
(``builder.targets.emulation_environment``): a venv made, pip started, and a stdlib package
byte-compiled, in one container, timed from start to exit. trixie's userland is built with pointer authentication (PAC), which QEMU's
default CPU emulates at great cost; bookworm's is not. Needs Docker, the qemu-aarch64 binfmt
handler and the test images (scripts/test-images.sh). Usage:
.venv/bin/python bench/qemu_cpu.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.targets import Arch, emulation_environment

IMAGES = ("prewheel-test/bookworm-build:arm64", "prewheel-test/trixie-build:arm64")
WORK = (
    "python3 -m venv --without-pip /tmp/venv && python3 -m pip --version >/dev/null && "
    'python3 -c "import compileall, email, os; '
    'compileall.compile_dir(os.path.dirname(email.__file__), quiet=1, force=True)"'
)


def run(image: str, environment: dict[str, str]) -> float:
    """Wall seconds of the work in a new container of ``image``."""
    argv = ["docker", "run", "--rm", "--platform", "linux/arm64"]
    for name, value in environment.items():
        argv += ["-e", f"{name}={value}"]
    started = time.monotonic()
    result = subprocess.run(
        [*argv, image, "sh", "-c", WORK], capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    ours = emulation_environment(Arch.AARCH64)
    rows = []
    for image in IMAGES:
        default: list[float] = []
        baseline: list[float] = []
        for _ in range(args.repeat):
            default.append(run(image, {}))
            baseline.append(run(image, ours))
            print(image, "default", default[-1], "cortex-a53", baseline[-1], flush=True)
        slow, fast = statistics.median(default), statistics.median(baseline)
        rows.append(f"| `{image}` | {slow:.1f} s | {fast:.1f} s | **{slow / fast:.1f}x** |")
    today = datetime.date.today().isoformat()
    markdown = "\n".join(
        [
            "## QEMU's CPU for linux/arm64: default vs Cortex-A53 (`bench/qemu_cpu.py`)",
            "",
            (
                f"{today}, one run, {args.repeat} pair(s) per image (median), alternately: a "
                "venv made, pip started and a stdlib package byte-compiled, in one emulated "
                "container. *default* is QEMU's own CPU (`max`: pointer authentication, SVE); "
                f"*{ours['QEMU_CPU']}* is what prewheel's arm64 containers get. The ratio is "
                "default / Cortex-A53. Debian trixie's arm64 binaries use pointer "
                "authentication, bookworm's do not."
            ),
            "",
            f"| image | default | {ours['QEMU_CPU']} | default / {ours['QEMU_CPU']} |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(write_section("qemu_cpu", markdown))


if __name__ == "__main__":
    main()
