"""ELF facts of real shared objects compiled by Debian's cross compilers (tests/elf_fixtures,
made by its regenerate.sh): machine, class, byte order, ARM CPU architecture and float ABI."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from builder.elf import ElfFacts, elf_file_facts, read_elf, wheel_elf_members
from builder.errors import IntegrityError
from builder.targets import FloatAbi

FIXTURES = Path(__file__).resolve().parent / "elf_fixtures"
ARM = 40


def facts(name: str) -> ElfFacts:
    found = elf_file_facts((FIXTURES / name).read_bytes(), what=name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("name", "cpu_arch", "float_abi", "description"),
    [
        ("armv6-softfloat.so", 6, FloatAbi.SOFT, "ARMv6 code, soft-float"),
        ("armv7-softfloat.so", 10, FloatAbi.SOFT, "ARMv7 code, soft-float"),
        ("armv6-hardfloat.so", 6, FloatAbi.HARD, "ARMv6 code, hard-float"),
        ("armv7-hardfloat.so", 10, FloatAbi.HARD, "ARMv7 code, hard-float"),
        ("armv8-hardfloat.so", 14, FloatAbi.HARD, "ARMv8-A code, hard-float"),
        # ARMv7 with an ARMv8 kernel: the linker records the newest of its inputs
        ("armv8-dispatched.so", 14, FloatAbi.HARD, "ARMv8-A code, hard-float"),
        # EABI5 without the e_flags float bits (a relocatable object): Tag_ABI_VFP_args
        ("armv7-hardfloat.o", 10, FloatAbi.HARD, "ARMv7 code, hard-float"),
        # the old GNU ABI sets 0x400 (EF_ARM_VFP_FLOAT there) for soft-float code
        ("apcs-gnu.so", 4, FloatAbi.SOFT, "ARMv5TE code, soft-float"),
    ],
)
def test_arm_cpu_architecture_and_float_abi(
    name: str, cpu_arch: int, float_abi: FloatAbi, description: str
) -> None:
    found = facts(name)
    assert (found.machine, found.elf_class, found.byte_order) == (ARM, 1, "little")
    assert (found.arm_cpu_arch, found.float_abi) == (cpu_arch, float_abi)
    assert found.describe() == description


def test_code_that_asks_for_the_cpus_features_at_run_time() -> None:
    """An import of getauxval (how Linux code reads AT_HWCAP) marks runtime dispatch."""
    assert facts("armv8-dispatched.so").asks_cpu_features
    assert not facts("armv8-hardfloat.so").asks_cpu_features
    assert not facts("armv7-hardfloat.so").asks_cpu_features


def test_big_endian_files() -> None:
    armeb = facts("armv6-bigendian.so")
    assert (armeb.machine, armeb.elf_class, armeb.byte_order) == (ARM, 1, "big")
    assert armeb.describe() == "ARMv6 code, soft-float, big-endian"
    s390x = facts("s390x.so")
    assert (s390x.machine, s390x.elf_class, s390x.byte_order) == (22, 2, "big")
    assert (s390x.arm_cpu_arch, s390x.float_abi) == (None, None)
    assert s390x.describe() == "IBM S/390 code (ELF machine 22, 64-bit, big-endian)"


def test_non_elf_data_has_no_facts() -> None:
    assert read_elf(io.BytesIO(b"#!/bin/sh\necho not elf\n")) is None
    assert read_elf(io.BytesIO(b"")) is None


def test_a_damaged_elf_file_is_an_integrity_error_naming_it() -> None:
    truncated = (FIXTURES / "armv6-softfloat.so").read_bytes()[:200]
    with pytest.raises(IntegrityError, match=r"broken\.so starts like an ELF file"):
        elf_file_facts(truncated, what="broken.so")


def test_every_elf_member_of_a_wheel_and_only_those(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-cp311-cp311-linux_armv6l.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/data.bin", b"\x7fEL not quite")
        archive.write(FIXTURES / "armv6-softfloat.so", "pkg/_a.so")
        archive.write(FIXTURES / "armv7-hardfloat.so", "pkg.libs/libb.so.1")
    members = wheel_elf_members(wheel)
    assert {name: f.describe() for name, f in members.items()} == {
        "pkg/_a.so": "ARMv6 code, soft-float",
        "pkg.libs/libb.so.1": "ARMv7 code, hard-float",
    }
