"""prewheel's verdict against pip's own decision, on real PyPI pins (network tier).

For every (pin, target) cell pip is asked, with the target's full platform tag list, the
Python version, implementation and ABI, which file it would install with --only-binary=:all:.
A cell prewheel calls wheel/pure must be exactly the file pip picks; a cell prewheel calls
build/unavailable must make pip fail to find a binary. The "wheel" claims of one target are
checked in one batched pip call (a single missing wheel fails the batch), the "no wheel"
claims one pip call each; calls run concurrently. `pip install --dry-run --report` reads PEP
658 metadata instead of downloading wheels.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from plan_fixtures import pip_dry_run, pip_env

from builder.options import IndexOptions
from builder.plan import INSTALLABLE, Plan, plan_requirements
from builder.requirements import RequirementSet, parse_pinned
from builder.targets import Target, parse_identifier
from builder.upstream.client import default_index_url

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(900)]

PINS = """
pyyaml==6.0.1 pyyaml==5.4.1 msgpack==1.0.5 msgpack==1.1.0 charset-normalizer==3.3.2
charset-normalizer==2.0.12 markupsafe==2.1.3 markupsafe==3.0.2 cffi==1.16.0 psutil==5.9.8
psutil==6.1.0 ujson==5.10.0 orjson==3.10.7 simplejson==3.19.3 frozenlist==1.4.1
multidict==6.1.0 yarl==1.9.4 regex==2024.9.11 zstandard==0.23.0 numpy==1.21.0 numpy==2.1.3
pydantic-core==2.23.4 asyncpg==0.29.0 uvloop==0.19.0 websockets==10.4 requests==2.31.0
six==1.16.0 wrapt==1.16.0 bcrypt==4.2.0 greenlet==3.1.1 coverage==7.6.1 ruamel-yaml-clib==0.2.8
brotli==1.1.0 rpds-py==0.20.0 typing-extensions==4.12.2 lxml==4.9.1
""".split()  # noqa: SIM905 - a block of pins reads better

TARGETS = [
    "cp311-manylinux_2_36_x86_64",
    "cp311-manylinux_2_36_aarch64",
    "cp311-manylinux_2_36_armv7l",
    "cp311-glibc_2_36_armv6l",
    "cp312-musllinux_1_2_aarch64",
    "cp39-manylinux_2_17_x86_64",  # an old glibc (manylinux2014) and an old Python
]


def pip_choice(target: Target, pins: list[str], tmp: Path) -> dict[str, str] | None:
    """{name: filename} pip would install on ``target``, or None if it finds no binary."""
    command = pip_dry_run(
        pins,
        platforms=target.platforms(),
        python=target.python_version,
        abi=target.interpreter,
        target_dir=tmp / "target",
    )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=pip_env(tmp / "pip-cache"),
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        assert "No matching distribution" in result.stderr or "Could not find" in result.stderr, (
            result.stderr
        )
        return None
    report = json.loads(result.stdout)
    return {
        canonicalize_name(item["metadata"]["name"]): item["download_info"]["url"].rsplit("/", 1)[1]
        for item in report["install"]
    }


@pytest.fixture(scope="module")
def plan() -> Plan:
    requirements = RequirementSet(tuple(parse_pinned(pin, None) for pin in PINS))
    return plan_requirements(
        requirements,
        [parse_identifier(t) for t in TARGETS],
        IndexOptions(index_url=default_index_url()),
    )


def test_prewheel_agrees_with_pip_on_every_cell(plan: Plan, tmp_path: Path) -> None:
    assert len(PINS) >= 30 and len(plan.targets) >= 6
    jobs: list[tuple[Target, list[str], dict[str, str] | None]] = []
    for target in plan.targets:
        # One batch per "round" so that no batch pins two versions of one project.
        batches: list[dict[str, tuple[str, str]]] = []
        for row in plan.rows:
            cell = row.cells[target.identifier]
            if cell.status not in INSTALLABLE:
                jobs.append((target, [str(row.requirement)], None))
                continue
            batch = next((b for b in batches if row.requirement.name not in b), None)
            if batch is None:
                batch = {}
                batches.append(batch)
            batch[row.requirement.name] = (str(row.requirement), str(cell.filename))
        for batch in batches:
            pins = [pin for pin, _ in batch.values()]
            jobs.append((target, pins, {name: filename for name, (_, filename) in batch.items()}))

    def run(job: tuple[Target, list[str], dict[str, str] | None]) -> str | None:
        target, pins, expected = job
        workdir = tmp_path / f"{target.identifier}-{abs(hash(tuple(pins)))}"
        workdir.mkdir()
        actual = pip_choice(target, pins, workdir)
        if actual != (expected if expected is not None else None):
            return (
                f"{target.identifier} {pins if expected is None else ''}: "
                f"prewheel {expected}, pip {actual}"
            )
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        disagreements = [d for d in pool.map(run, jobs) if d]
    cells = len(plan.rows) * len(plan.targets)
    no_wheel = sum(1 for job in jobs if job[2] is None)
    assert no_wheel >= 10 and no_wheel <= cells - 60  # both verdicts well represented
    assert disagreements == [], "\n".join(disagreements)
