"""Wheel checks on real ELF files compiled by the test (host compiler) and wheels made from them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from build_fixtures.helpers import target
from packaging.version import Version

from builder.build.checks import ElfHeader, check_wheel, elf_members, read_elf_header
from builder.errors import IntegrityError


@pytest.fixture(scope="module")
def host_so(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no host C compiler to make a real ELF file")
    work = tmp_path_factory.mktemp("elf")
    source = work / "mod.c"
    source.write_text("int answer(void) { return 42; }\n")
    output = work / "mod.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(output), str(source)], check=True)
    return output


def make_wheel(directory: Path, filename: str, so: Path | None) -> Path:
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
        if so is not None:
            archive.write(so, "pkg/_native.cpython-311-x86_64-linux-gnu.so")
    return path


def test_reads_machine_and_class_of_a_real_shared_object(host_so: Path) -> None:
    header = read_elf_header(host_so.read_bytes())
    assert header == ElfHeader(*target("linux/amd64").arch.elf_machine)


def test_non_elf_data_has_no_header() -> None:
    assert read_elf_header(b"#!/bin/sh\necho not elf\n" * 2) is None
    assert read_elf_header(b"\x7fELF") is None


def test_finds_only_the_elf_members_of_a_wheel(tmp_path: Path, host_so: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_x86_64.whl", host_so)
    assert list(elf_members(wheel)) == ["pkg/_native.cpython-311-x86_64-linux-gnu.so"]


def test_a_matching_wheel_passes(tmp_path: Path, host_so: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", host_so)
    check_wheel(wheel, name="pkg", version=Version("1.0"), target=target("linux/amd64"))


def test_x86_code_in_a_wheel_tagged_aarch64_is_refused(tmp_path: Path, host_so: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_aarch64.whl", host_so)
    with pytest.raises(IntegrityError, match="ELF machine 62"):
        check_wheel(wheel, name="pkg", version=Version("1.0"), target=target("linux/arm64"))


def test_an_armv7_tag_is_refused_for_an_armv6_target(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_armv7l.whl", None)
    with pytest.raises(IntegrityError, match="does not accept"):
        check_wheel(wheel, name="pkg", version=Version("1.0"), target=target("linux/arm/v6"))


def test_armv8l_from_a_confused_container_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_armv8l.whl", None)
    with pytest.raises(IntegrityError, match="armv8l"):
        check_wheel(wheel, name="pkg", version=Version("1.0"), target=target("linux/arm/v7"))


def test_a_wheel_of_another_version_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.1-cp311-cp311-linux_x86_64.whl", None)
    with pytest.raises(IntegrityError, match="another project or version"):
        check_wheel(wheel, name="pkg", version=Version("1.0"), target=target("linux/amd64"))
