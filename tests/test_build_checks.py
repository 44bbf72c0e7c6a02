"""Wheel and image checks on real ELF files: shared objects compiled by Debian's cross compilers
(tests/elf_fixtures) and one compiled here by the host's compiler, in wheels made from them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from build_fixtures.helpers import target
from packaging.version import Version

from builder.building.checks import (
    check_image_code,
    check_wheel,
    check_wheel_code,
    dispatches_newer_code,
)
from builder.building.toolchain import ImageFacts
from builder.elf import ElfFacts, elf_file_facts
from builder.errors import ImageMismatchError, IntegrityError
from builder.targets import Target, select_targets

FIXTURES = Path(__file__).resolve().parent / "elf_fixtures"
ARMV6_SOFT = target("linux/arm/v6")  # glibc armv6l: Debian armel, soft-float by default
ARMV6_HARD = select_targets(platforms=["linux/arm/v6"], float_abi="hard")[0]
ARMV7 = target("linux/arm/v7")
ARMV7_SOFT = select_targets(platforms=["linux/arm/v7"], float_abi="soft")[0]


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
            archive.write(so, "pkg/_native.cpython-311-linux-gnu.so")
    return path


def fixture_wheel(tmp_path: Path, fixture: str, platform_tag: str) -> Path:
    return make_wheel(tmp_path, f"pkg-1.0-cp311-cp311-{platform_tag}.whl", FIXTURES / fixture)


def fixture_facts(fixture: str) -> ElfFacts:
    facts = elf_file_facts((FIXTURES / fixture).read_bytes(), what=fixture)
    assert facts is not None
    return facts


def check(wheel: Path, for_target: Target) -> None:
    check_wheel(wheel, name="pkg", version=Version("1.0"), target=for_target)


def test_a_matching_wheel_passes(tmp_path: Path, host_so: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", host_so)
    check(wheel, target("linux/amd64"))


def test_x86_code_in_a_wheel_tagged_aarch64_is_refused(tmp_path: Path, host_so: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_aarch64.whl", host_so)
    with pytest.raises(IntegrityError, match=r"X86-64 code \(ELF machine 62, 64-bit") as error:
        check(wheel, target("linux/arm64"))
    assert "needs ELF machine 183 (64-bit, little-endian) for aarch64" in str(error.value)
    assert "pkg/_native.cpython-311-linux-gnu.so" in str(error.value)


def test_armv6_soft_float_code_passes_for_armv6l(tmp_path: Path) -> None:
    check(fixture_wheel(tmp_path, "armv6-softfloat.so", "linux_armv6l"), ARMV6_SOFT)


def test_armv6_code_passes_for_armv7l_of_its_float_abi(tmp_path: Path) -> None:
    check(fixture_wheel(tmp_path, "armv6-hardfloat.so", "linux_armv7l"), ARMV7)


def test_armv6_hard_float_code_passes_for_a_hard_float_armv6l_target(tmp_path: Path) -> None:
    assert ARMV6_HARD.identifier == "cp311-glibc_2_36_armv6l-hardfloat"
    check(fixture_wheel(tmp_path, "armv6-hardfloat.so", "linux_armv6l"), ARMV6_HARD)


def test_armv7_code_is_refused_for_armv6l(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv7-softfloat.so", "linux_armv6l")
    with pytest.raises(IntegrityError) as error:
        check(wheel, ARMV6_SOFT)
    message = str(error.value)
    assert message.startswith(
        "pkg-1.0-cp311-cp311-linux_armv6l.whl: pkg/_native.cpython-311-linux-gnu.so is ARMv7 "
        "code, soft-float, but cp311-glibc_2_36_armv6l (linux/arm/v6) needs ARMv6 code or older"
    )
    assert "Illegal instruction" in message and "-march" in message
    assert "\n" not in message


def test_armv8_code_is_refused_for_armv7l(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv8-hardfloat.so", "linux_armv7l")
    with pytest.raises(IntegrityError) as error:
        check(wheel, ARMV7)
    assert str(error.value).startswith(
        "pkg-1.0-cp311-cp311-linux_armv7l.whl: pkg/_native.cpython-311-linux-gnu.so is ARMv8-A "
        f"code, hard-float, but {ARMV7.identifier} (linux/arm/v7) needs ARMv7 code or older"
    )


def test_armv8_kernels_chosen_at_run_time_pass_for_armv7l_and_say_so(tmp_path: Path) -> None:
    """An ARMv7 module with an ARMv8 kernel it picks by the CPU's features (getauxval), as
    NumPy's armv7 build is: the linker records ARMv8 for the whole file."""
    wheel = fixture_wheel(tmp_path, "armv8-dispatched.so", "linux_armv7l")
    notes = check_wheel(wheel, name="pkg", version=Version("1.0"), target=ARMV7)
    assert notes == [
        (
            "pkg/_native.cpython-311-linux-gnu.so records ARMv8-A code, hard-float, newer than "
            f"{ARMV7.identifier} runs, and asks the kernel for the CPU's features at run time "
            "(getauxval): accepted as code that chooses its kernels per CPU. Nothing here "
            f"proves its baseline runs on {ARMV7.identifier}: `prewheel verify` under QEMU "
            "imports the wheel's top-level modules on a cortex-a7, where code that needs a "
            "newer CPU dies."
        )
    ]
    assert check_wheel_code(wheel, ARMV7, upstream=True) == notes  # mirrored too
    # nothing to note where the code does not record a newer CPU than the target's
    assert check_wheel_code(fixture_wheel(tmp_path, "armv7-hardfloat.so", "x"), ARMV7) == []


def test_runtime_dispatch_excuses_nothing_but_an_armv8_a_record_on_armv7l(tmp_path: Path) -> None:
    dispatched = fixture_facts("armv8-dispatched.so")
    assert dispatched.asks_cpu_features and dispatched.arm_cpu_arch == 14
    assert dispatches_newer_code(dispatched, ARMV7)
    for later_a_profile in (18, 19, 20, 22):  # v8.1-A to v8.3-A, v9-A
        assert dispatches_newer_code(replace(dispatched, arm_cpu_arch=later_a_profile), ARMV7)
    for other in (13, 15, 16, 17, 21, 99):  # M and R profiles, unknown values
        assert not dispatches_newer_code(replace(dispatched, arm_cpu_arch=other), ARMV7)
    # linux/arm/v6: an ARMv7 (or ARMv8) record is the mistake the check exists for
    armv7_asking = replace(fixture_facts("armv7-hardfloat.so"), asks_cpu_features=True)
    assert not dispatches_newer_code(armv7_asking, ARMV6_HARD)
    assert not dispatches_newer_code(dispatched, ARMV6_HARD)
    wheel = fixture_wheel(tmp_path, "armv8-dispatched.so", "linux_armv6l")
    with pytest.raises(IntegrityError, match=r"is ARMv8-A code, hard-float, but .* needs ARMv6"):
        check(wheel, ARMV6_HARD)
    # the float ABI is never excused, and is what the refusal names once the CPU is
    wheel = fixture_wheel(tmp_path, "armv8-dispatched.so", "linux_armv7l")
    with pytest.raises(IntegrityError) as error:
        check(wheel, ARMV7_SOFT)
    assert "needs soft-float code" in str(error.value)
    # a build image's interpreter is what its compiler makes: never excused
    facts = image_facts("armv8-dispatched.so", "armhf")
    with pytest.raises(ImageMismatchError, match="is ARMv8-A code, hard-float"):
        check_image_code("debian-armhf:12", facts, ARMV7)


def test_hard_float_code_is_refused_for_the_soft_float_armv6l_target(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv6-hardfloat.so", "linux_armv6l")
    with pytest.raises(IntegrityError) as error:
        check(wheel, ARMV6_SOFT)
    message = str(error.value)
    assert "is ARMv6 code, hard-float, but cp311-glibc_2_36_armv6l" in message
    assert "needs soft-float code (Debian armel" in message
    assert "--float-abi hard" in message


def test_soft_float_code_is_refused_for_a_hard_float_target(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv6-softfloat.so", "linux_armv7l")
    with pytest.raises(IntegrityError, match="ARMv6 code, soft-float, but cp311-manylinux") as e:
        check(wheel, ARMV7)
    assert "needs hard-float code (Debian armhf" in str(e.value)
    assert "--float-abi soft" in str(e.value)


def test_the_float_abi_of_an_object_without_e_flags_bits_comes_from_its_attributes(
    tmp_path: Path,
) -> None:
    wheel = fixture_wheel(tmp_path, "armv7-hardfloat.o", "linux_armv7l")
    check(wheel, ARMV7)
    soft_v7 = select_targets(platforms=["linux/arm/v7"], float_abi="soft")[0]
    with pytest.raises(IntegrityError, match="ARMv7 code, hard-float"):
        check_wheel_code(wheel, soft_v7)


def test_big_endian_arm_code_is_refused_for_little_endian_armv6l(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv6-bigendian.so", "linux_armv6l")
    with pytest.raises(IntegrityError, match="ARMv6 code, soft-float, big-endian") as error:
        check(wheel, ARMV6_SOFT)
    assert "needs ELF machine 40 (32-bit, little-endian) for armv6l" in str(error.value)


def test_big_endian_s390x_code_passes_for_s390x_only(tmp_path: Path) -> None:
    check(fixture_wheel(tmp_path, "s390x.so", "linux_s390x"), target("linux/s390x"))
    wheel = fixture_wheel(tmp_path, "s390x.so", "linux_ppc64le")
    with pytest.raises(IntegrityError, match=r"IBM S/390 code \(ELF machine 22, 64-bit, big"):
        check(wheel, target("linux/ppc64le"))


def test_arm_code_is_refused_for_another_machine(tmp_path: Path) -> None:
    wheel = fixture_wheel(tmp_path, "armv6-softfloat.so", "linux_aarch64")
    with pytest.raises(IntegrityError, match="ARMv6 code, soft-float, but cp311-manylinux_2_36_aa"):
        check(wheel, target("linux/arm64"))


def test_an_upstream_wheel_is_named_as_such(tmp_path: Path) -> None:
    spooled = fixture_wheel(tmp_path, "armv7-hardfloat.so", "linux_armv6l").rename(
        tmp_path / ".mirror-1-abc"
    )
    with pytest.raises(IntegrityError) as error:
        check_wheel_code(spooled, ARMV6_SOFT, upstream=True, name="x-1.0-cp311-linux_armv6l.whl")
    message = str(error.value)
    assert message.startswith("x-1.0-cp311-linux_armv6l.whl: pkg/_native")
    assert "not mirrored" in message and "--no-binary" in message
    assert ".mirror-1-abc" not in message


def test_an_armv7_tag_is_refused_for_an_armv6_target(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_armv7l.whl", None)
    with pytest.raises(IntegrityError, match="does not accept"):
        check(wheel, ARMV6_SOFT)


def test_armv8l_from_a_confused_container_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.0-cp311-cp311-linux_armv8l.whl", None)
    with pytest.raises(IntegrityError, match="armv8l"):
        check(wheel, ARMV7)


def test_a_wheel_of_another_version_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg-1.1-cp311-cp311-linux_x86_64.whl", None)
    with pytest.raises(IntegrityError, match="another project or version"):
        check(wheel, target("linux/amd64"))


# -- the build image's own code ---------------------------------------------------------------
def image_facts(fixture: str, dpkg_arch: str) -> ImageFacts:
    code = elf_file_facts((FIXTURES / fixture).read_bytes(), what=fixture)
    assert code is not None
    facts = ImageFacts(
        os_id="debian", pretty_name="Debian GNU/Linux 12 (bookworm)", dpkg_arch=dpkg_arch
    )
    return facts.with_interpreter("/usr/bin/python3", code)


def test_an_armv7_hard_float_image_is_refused_for_armv6l() -> None:
    facts = image_facts("armv7-hardfloat.so", "armhf")
    with pytest.raises(ImageMismatchError) as error:
        check_image_code("debian-armhf:12", facts, ARMV6_SOFT)
    message = str(error.value)
    assert message.startswith(
        "Image debian-armhf:12 (Debian GNU/Linux 12 (bookworm), dpkg armhf) cannot build for "
        "cp311-glibc_2_36_armv6l (linux/arm/v6): its /usr/bin/python3 is ARMv7 code, hard-float"
    )
    assert "armel" in message and "--float-abi hard" in message
    assert message.endswith("Nothing was started.")
    check_image_code("debian-armhf:12", facts, ARMV7)  # what it is for


def test_a_hard_float_armv6_image_is_refused_for_soft_float_and_fits_hard_float() -> None:
    facts = image_facts("armv6-hardfloat.so", "armhf")  # Raspberry Pi OS
    with pytest.raises(ImageMismatchError, match="select --float-abi hard"):
        check_image_code("raspios", facts, ARMV6_SOFT)
    check_image_code("raspios", facts, ARMV6_HARD)


def test_an_armel_image_fits_armv6l_and_images_of_other_arches_are_not_judged() -> None:
    check_image_code("armel", image_facts("armv6-softfloat.so", "armel"), ARMV6_SOFT)
    check_image_code("anything", image_facts("s390x.so", "s390x"), target("linux/s390x"))
    check_image_code("no python", ImageFacts(), ARMV6_SOFT)  # nothing known, nothing refused


def test_image_facts_keep_the_interpreter_code_through_json() -> None:
    facts = image_facts("armv7-hardfloat.so", "armhf")
    again = ImageFacts.from_json(facts.to_json())
    assert again == facts
    assert again.interpreter_code is not None
    assert again.interpreter_code.describe() == "ARMv7 code, hard-float"
