"""End to end for linux/arm/v6 (the Raspberry Pi 1 and Zero): the bundled example in the Debian
armel images.

PyPI has no armv6l wheel of asyncpg, msgpack or PyYAML, so all three are gaps. They are built in
``bookworm-build:armel`` under QEMU as an ARM1176 (``QEMU_CPU=arm1176``) with bookworm's native
armel cross compiler (``--accelerate relaxed``: bookworm's cross gcc differs from the image's
only by Debian revision); every ELF member must be ARMv6-or-older soft-float code; then the
lock is verified in the compiler-less ``bookworm:armel``, whose CPU must report ``armv6l``. The
wheelhouse is cached outside the repository like test_e2e's, so warm runs only verify.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from builder.elf import wheel_elf_members
from builder.options import resolve
from builder.pipeline import PipelineResult, run_pipeline
from builder.targets import Arch, FloatAbi
from builder.wheelhouse import Wheelhouse

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "requirements" / "example.txt"
EXAMPLE_SETTINGS = REPO / "requirements" / "example.toml"
PLATFORM = "linux/arm/v6"
BUILD_IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/bookworm:{debian_arch}"
ACCELERATE = "relaxed"
GAPS = {"asyncpg", "msgpack", "pyyaml"}

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]


def wheelhouse_dir() -> Path:
    digest = hashlib.sha256(EXAMPLE.read_bytes())
    for part in (PLATFORM, BUILD_IMAGE, ACCELERATE):
        digest.update(part.encode())
    root = Path(os.environ.get("PREWHEEL_CI_CACHE", "/var/cache/prewheel-ci"))
    return root / f"e2e-armv6-wheelhouse-{digest.hexdigest()[:16]}"


def run_example(output: Path) -> PipelineResult:
    settings = resolve(
        "run",
        given={
            "platform": PLATFORM,
            "image": BUILD_IMAGE,
            "wheelhouse": str(wheelhouse_dir()),
            "verify-image": RUNTIME_IMAGE,
            "verify-timeout": 900,
            # no registry: the toolchain is assembled in the amd64 test image of the release
            "accelerate": ACCELERATE,
            "toolchain-base": "prewheel-test/{codename}:amd64",
        },
        env={},
        config_file=EXAMPLE_SETTINGS,
    )
    return run_pipeline([EXAMPLE], settings, output=output)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    return run_example(tmp_path_factory.mktemp("run-armv6"))


@pytest.mark.timeout(3600)
def test_the_example_is_built_and_verified_for_arm_v6(pipeline: PipelineResult) -> None:
    [target] = pipeline.plan.targets
    assert target.identifier == "cp311-glibc_2_36_armv6l"  # soft-float: Debian armel
    assert {gap.requirement.name for gap in pipeline.plan.gaps()} == GAPS
    [result] = pipeline.verified
    assert result.ok, result.error
    assert result.machine == "armv6l"  # QEMU ran as an ARM1176, not its default ARMv7 CPU
    installed = {p.name.lower(): p for p in result.installed}
    for name in ("asyncpg", "msgpack", "pyyaml"):
        assert installed[name].filename.endswith("-linux_armv6l.whl"), installed[name]
        assert "127.0.0.1" in installed[name].url
    assert {"asyncpg", "msgpack", "yaml", "requests"} <= set(result.imported)


def test_every_built_member_is_armv6_soft_float_code(pipeline: PipelineResult) -> None:
    house = Wheelhouse(wheelhouse_dir())
    entries = [e for e in house.entries() if e.target == "cp311-glibc_2_36_armv6l"]
    assert {e.name for e in entries} == GAPS
    for entry in entries:
        assert entry.compilers.get("native") is True, entry.compilers  # accelerated
        members = wheel_elf_members(house.wheel_path(entry))
        assert members, entry.filename
        for member, facts in members.items():
            assert facts.arm_cpu_arch in Arch.ARMV6L.arm_cpu_archs, (member, facts.describe())
            assert facts.float_abi is FloatAbi.SOFT, (member, facts.describe())


def test_an_unchanged_rerun_starts_no_container(pipeline: PipelineResult, tmp_path: Path) -> None:
    """Every wheel is in the wheelhouse and the lock, index and image are those verified."""
    again = run_example(tmp_path / "again")
    assert (again.built, again.reused) == (0, len(GAPS))
    [result] = again.verified
    assert result.ok and result.cached, result
    assert again.lock.read_bytes() == pipeline.lock.read_bytes()
