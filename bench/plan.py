"""Benchmark `prewheel plan`: cold and warm (HTTP-cached) planning vs a pip loop, one run.

A 105-pin pip-compile lock (bench/data/requirements-100.txt) x 8 targets (every Docker
platform prewheel knows, CPython 3.11, glibc 2.36) = 840 cells.

1. cold: an empty HTTP cache directory, every project page fetched (concurrently) and decided.
2. warm: the same again with the cache filled (median of 5 runs).
3. pip loop: what you would do without prewheel - one `pip install --dry-run --only-binary
   :all: --no-deps --platform ... --report -` per cell. 840 pip runs take far too long, so a
   seeded random sample of cells is timed and the mean is extrapolated to all cells (said so
   in the output).

Needs the index (PyPI or pip's configured index-url). Writes docs/benchmarks/plan.md.
Usage: .venv/bin/python bench/plan.py [--sample 24] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.options import IndexOptions
from builder.plan import INSTALLABLE, Plan, plan_requirements
from builder.requirements import read_requirements
from builder.targets import Arch, select_targets
from builder.upstream.client import default_index_url
from tests.plan_fixtures import pip_dry_run, pip_env

LOCK = Path(__file__).resolve().parent / "data" / "requirements-100.txt"
PLATFORMS = [arch.docker_platform for arch in Arch]  # all eight


def timed_plan(cache_dir: Path) -> tuple[float, Plan]:
    start = time.perf_counter()
    requirements = read_requirements([LOCK])
    targets = select_targets(platforms=PLATFORMS)
    plan = plan_requirements(
        requirements, targets, IndexOptions(index_url=default_index_url(), cache_dir=cache_dir)
    )
    return time.perf_counter() - start, plan


def pip_cell(
    requirement: str, target_platforms: list[str], python: str, abi: str, workdir: Path
) -> tuple[float, bool]:
    env = pip_env(workdir.parent / "pip-cache")  # shared: pip's own cache helps it
    command = pip_dry_run(
        [requirement],
        platforms=target_platforms,
        python=python,
        abi=abi,
        target_dir=workdir / "t",
    )
    start = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    return time.perf_counter() - start, result.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=24, help="pip cells to time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--warm-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prewheel-bench-plan-") as temp:
        cache = Path(temp) / "cache"
        cold, plan = timed_plan(cache)
        warm_times = [timed_plan(cache)[0] for _ in range(args.warm_runs)]
        warm = statistics.median(warm_times)

        cells = [(row, target) for row, target, _ in plan.cells()]
        sample = random.Random(args.seed).sample(cells, args.sample)
        pip_times, agree = [], 0
        for number, (row, target) in enumerate(sample):
            workdir = Path(temp) / f"pip{number}"
            workdir.mkdir()
            seconds, found = pip_cell(
                str(row.requirement),
                target.platforms(),
                target.python_version,
                target.interpreter,
                workdir,
            )
            pip_times.append(seconds)
            cell = row.cells[target.identifier]
            expected = cell.status in INSTALLABLE
            agree += int(found == expected or cell.status.value == "excluded")
    load = os.getloadavg()[0]
    per_cell = statistics.mean(pip_times)
    pip_total = per_cell * len(cells)
    counts = plan.counts()
    rows = [
        ("prewheel plan, cold cache", cold, pip_total / cold),
        (f"prewheel plan, warm cache (median of {args.warm_runs})", warm, pip_total / warm),
        (f"pip loop, {len(cells)} cells (extrapolated from {args.sample} timed)", pip_total, 1.0),
    ]
    table = "\n".join(
        f"| {name} | {seconds:.2f} s | {ratio:.0f}x |" for name, seconds, ratio in rows
    )
    markdown = f"""## plan

`bench/plan.py`: the {len(plan.rows)}-pin lock `bench/data/requirements-100.txt` (a
pip-compile of a realistic service, with hashes) x {len(plan.targets)} targets (every Docker
platform, CPython 3.11, glibc 2.36) = {len(cells)} cells, in one run. The pip loop asks pip
for each cell (`pip install --dry-run --only-binary=:all: --no-deps --platform ... --report
-`); {args.sample} randomly chosen cells (seed {args.seed}) were timed and the mean
({per_cell:.2f} s per cell) extrapolated to all {len(cells)} cells. pip agreed with prewheel's
verdict on {agree} of the {args.sample} sampled cells. The pip calls share one pip cache
directory; the prewheel runs include reading and parsing the lock file. Load average during
the run: {load:.1f} on {os.cpu_count()} cores (other jobs shared the machine).

| method | wall time | speed-up vs pip loop |
|---|---|---|
{table}

Warm is {cold / warm:.0f}x faster than cold. Verdicts:
{", ".join(f"{n} {s.value}" for s, n in counts.items())}; {plan.summary()}.
"""
    print(markdown)
    write_section("plan", markdown)


if __name__ == "__main__":
    main()
