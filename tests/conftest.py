"""Test tiers and their prerequisites.

Tiers are pytest markers: ``network`` (real PyPI), ``docker`` (a running Docker daemon),
``emulation`` (QEMU binfmt handlers plus the foreign-architecture test images that
``scripts/test-images.sh`` builds), ``browser`` (headless Chromium). Outside CI a tier whose prerequisites are missing is
skipped with the reason; under CI (``CI`` set, or ``PREWHEEL_REQUIRE_TIERS=1``) it fails, so a
broken CI machine can never pass by skipping.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from builder.binfmt import BINFMT_DIR, handler_state
from builder.targets import Arch, qemu_handlers_needed
from builder.upstream.client import default_index_url, make_http_client

REPO = Path(__file__).resolve().parent.parent


def tiers_required() -> bool:
    return any(
        os.environ.get(name, "").lower() in {"1", "true", "yes"}
        for name in ("CI", "PREWHEEL_REQUIRE_TIERS")
    )


@functools.cache
def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker client is not installed (run scripts/host-setup.sh)"
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        return "no Docker daemon answers (run scripts/host-setup.sh): " + result.stderr.strip()
    return None


@functools.cache
def emulation_problem() -> str | None:
    problem = docker_problem()
    if problem:
        return problem
    host = Arch.from_machine(platform.machine())
    for handler in qemu_handlers_needed(host) if host else ():
        if handler_state(handler, BINFMT_DIR) != "enabled":
            return f"binfmt handler {handler} is not registered (run scripts/host-setup.sh)"
    for arch in (Arch.AARCH64, Arch.ARMV7L):
        image = f"prewheel-test/bookworm-build:{arch.debian_arch}"
        result = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
        )
        if result.returncode != 0:
            return f"test image {image} is missing (run scripts/test-images.sh)"
    return None


@functools.cache
def network_problem() -> str | None:
    try:
        with make_http_client() as client:
            client.get(
                default_index_url() + "pip/", headers={"Accept": "text/html"}
            ).raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        return f"the default index is not reachable: {exc}"
    return None


@functools.cache
def browser_problem() -> str | None:
    if shutil.which("chromium") is None:
        return "chromium is not installed (run scripts/host-setup.sh, or apt-get install chromium)"
    return None


_PROBLEMS = {
    "docker": docker_problem,
    "emulation": emulation_problem,
    "network": network_problem,
    "browser": browser_problem,
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, probe in _PROBLEMS.items():
        if item.get_closest_marker(marker) is None:
            continue
        problem = probe()
        if problem is None:
            continue
        if tiers_required():
            pytest.fail(
                f"{marker} tier required under CI but unavailable: {problem}", pytrace=False
            )
        pytest.skip(f"{marker} tier unavailable: {problem}")


# The slowest modules, slowest first (measured with --durations on a cold run). Under
# `pytest -n 2 --dist loadfile --no-loadscope-reorder` (scripts/dev test) a module runs on one
# worker and the modules are handed out in collection order, so starting these first keeps
# the longest module from starting last and the two cores from idling at the end.
SLOWEST_MODULES = (
    "test_build_emulation.py",  # about 560 s cold (6 emulated, 8 accelerated builds on trixie)
    "test_e2e.py",  # about 720 s cold (the arm/v7 builds of the example, accelerated)
    "test_e2e_armv6.py",  # about 310 s cold (armel toolchain, 3 accelerated builds), 55 s warm
    "test_portable_emulation.py",  # 170 s
    "test_build_platforms.py",  # 146 s cold, 117 s warm (tinyext: s390x, 386, riscv64)
    "test_build_docker.py",  # 110 s
    "test_plan_oracle.py",  # 75 s
    "test_index_kill.py",  # 25 s (the SIGKILL loop)
    "test_consume_verify.py",  # 15 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)

    items.sort(key=rank)  # stable: the order within a module and among the rest is kept


_TIER_SECONDS: dict[str, float] = {}
_TIERS = ("emulation", "docker", "network", "browser")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = next((t for t in _TIERS if t in report.keywords), "unit")
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIER_SECONDS:
        return
    parts = ", ".join(
        f"{tier} {_TIER_SECONDS[tier]:.0f} s" for tier in (*_TIERS, "unit") if tier in _TIER_SECONDS
    )
    terminalreporter.write_line(f"time per tier (test time summed over workers): {parts}")
