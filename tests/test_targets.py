"""Targets: identifiers, option parsing, and tags equal to what packaging yields on a real host."""

from __future__ import annotations

import json
import platform
import sys

import pytest
from packaging import tags

from builder.cli import main
from builder.errors import ExitCode, UsageError
from builder.targets import (
    IMAGE_PLACEHOLDERS,
    Arch,
    FloatAbi,
    Libc,
    Target,
    fill_image_template,
    image_docker_platform,
    parse_identifier,
    parse_image,
    pick_targets,
    select_targets,
)


def host_target() -> Target:
    libc, version = platform.libc_ver()
    assert libc == "glibc", "the host test needs a glibc host"
    major, minor = (int(part) for part in version.split(".")[:2])
    return Target(sys.version_info[:2], Libc.GLIBC, (major, minor), Arch(platform.machine()))


def test_host_target_tags_equal_sys_tags_exactly() -> None:
    assert list(host_target().tags()) == list(tags.sys_tags())


def test_default_targets() -> None:
    identifiers = [t.identifier for t in select_targets()]
    assert identifiers == [
        "cp311-manylinux_2_36_x86_64",
        "cp311-manylinux_2_36_aarch64",
        "cp311-manylinux_2_36_armv7l",
        "cp311-glibc_2_36_armv6l",
    ]


@pytest.mark.parametrize(
    "identifier",
    [
        "cp311-manylinux_2_36_armv7l",
        "cp312-musllinux_1_2_aarch64",
        "cp311-glibc_2_36_armv6l",
        "cp39-manylinux_2_17_x86_64",
        "cp314-manylinux_2_41_riscv64",
        "cp310-musllinux_1_1_s390x",
    ],
)
def test_identifier_round_trip(identifier: str) -> None:
    assert parse_identifier(identifier).identifier == identifier


def test_every_platform_and_python_is_accepted() -> None:
    platforms = [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ]
    targets = select_targets(platforms=platforms, pythons=[f"3.{m}" for m in range(9, 15)])
    assert len(targets) == 48
    assert {t.docker_platform for t in targets} == set(platforms)


def test_tags_order_and_manylinux_expansion() -> None:
    target = parse_identifier("cp311-manylinux_2_36_armv7l")
    platforms = target.platforms()
    assert platforms[:3] == ["linux_armv7l", "manylinux_2_36_armv7l", "manylinux_2_35_armv7l"]
    assert platforms[-2:] == ["manylinux_2_17_armv7l", "manylinux2014_armv7l"]
    first = target.tags()[0]
    assert str(first) == "cp311-cp311-linux_armv7l"
    assert tags.Tag("py3", "none", "any") in target.tag_priority
    assert tags.Tag("cp311", "abi3", "manylinux_2_28_armv7l") in target.tag_priority
    assert tags.Tag("cp312", "cp312", "manylinux_2_28_armv7l") not in target.tag_priority


def test_armv6_has_no_manylinux_and_musl_has_no_manylinux() -> None:
    armv6 = parse_identifier("cp311-glibc_2_36_armv6l")
    assert armv6.platforms() == ["linux_armv6l"]
    musl = parse_identifier("cp312-musllinux_1_2_aarch64")
    assert musl.platforms() == [
        "linux_aarch64",
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
        "musllinux_1_0_aarch64",
    ]


def test_marker_environment_is_the_targets() -> None:
    env = parse_identifier("cp312-manylinux_2_36_aarch64").marker_environment()
    assert env["platform_machine"] == "aarch64" and env["python_version"] == "3.12"
    assert env["sys_platform"] == "linux" and env["python_full_version"] == "3.12.0"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("python:3.11-slim-bookworm", ((3, 11), Libc.GLIBC, (2, 36))),
        ("docker.io/library/python:3.12-alpine3.20", ((3, 12), Libc.MUSL, (1, 2))),
        ("python:3.13.1-bullseye", ((3, 13), Libc.GLIBC, (2, 31))),
    ],
)
def test_parse_image(image: str, expected: object) -> None:
    assert parse_image(image) == expected


def test_image_and_libc_options() -> None:
    (target,) = select_targets(platforms=["linux/arm64"], image="python:3.12-alpine")
    assert target.identifier == "cp312-musllinux_1_2_aarch64"
    (target,) = select_targets(platforms=["linux/amd64"], libc="glibc2.28", pythons=["cp310"])
    assert target.identifier == "cp310-manylinux_2_28_x86_64"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"platforms": ["linux/sparc"]}, "linux/amd64, linux/arm64"),
        ({"pythons": ["2.7"]}, "3.9"),
        ({"pythons": ["three"]}, "3.11"),
        ({"libc": "uclibc"}, "glibc or musl"),
        ({"image": "ubuntu:24.04"}, "--python X.Y"),
        ({"identifiers": ["cp311-windows_amd64"]}, "cp311-manylinux_2_36_armv7l"),
        ({"identifiers": ["cp311-manylinux_2_36_sparc"]}, "prewheel targets"),
    ],
)
def test_bad_options_list_the_valid_ones(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        select_targets(**kwargs)  # type: ignore[arg-type]


def test_custom_image_with_python_and_libc_given() -> None:
    targets = select_targets(
        platforms=["linux/arm64"],
        pythons=["3.12"],
        libc="musl1.2",
        image="registry.local/app-base:7",
    )
    assert [t.identifier for t in targets] == ["cp312-musllinux_1_2_aarch64"]


def test_custom_image_without_python_is_an_error() -> None:
    with pytest.raises(UsageError, match="--python"):
        select_targets(platforms=["linux/arm64"], image="registry.local/app-base:7")


# --- unique identifiers and the 32-bit ARM float ABI ------------------------------------------


def test_armv6_identifiers_name_the_glibc_version_so_they_are_unique() -> None:
    old = select_targets(platforms=["linux/arm/v6"], libc="glibc2.31")[0]
    new = select_targets(platforms=["linux/arm/v6"], libc="glibc2.36")[0]
    assert (old.identifier, new.identifier) == (
        "cp311-glibc_2_31_armv6l",
        "cp311-glibc_2_36_armv6l",
    )
    assert old.platform_tag == new.platform_tag == "linux_armv6l"  # the tag cannot tell them apart
    assert parse_identifier(old.identifier) == old


def test_float_abi_defaults_follow_the_distributions() -> None:
    by_platform = {
        (t.docker_platform, t.libc): t.float_abi
        for libc in ("glibc", "musl")
        for t in select_targets(
            platforms=["linux/arm/v6", "linux/arm/v7", "linux/arm64"], libc=libc
        )
    }
    assert by_platform == {
        ("linux/arm/v6", Libc.GLIBC): FloatAbi.SOFT,  # Debian armel
        ("linux/arm/v7", Libc.GLIBC): FloatAbi.HARD,  # Debian armhf
        ("linux/arm64", Libc.GLIBC): None,
        ("linux/arm/v6", Libc.MUSL): FloatAbi.HARD,  # Alpine armhf
        ("linux/arm/v7", Libc.MUSL): FloatAbi.HARD,
        ("linux/arm64", Libc.MUSL): None,
    }


def test_a_non_default_float_abi_is_part_of_the_identifier_and_round_trips() -> None:
    targets = select_targets(platforms=["linux/arm/v6", "linux/amd64"], float_abi="hard")
    armv6, amd64 = targets
    assert armv6.identifier == "cp311-glibc_2_36_armv6l-hardfloat"  # Raspberry Pi OS
    assert amd64.float_abi is None  # the option applies to 32-bit ARM only
    assert parse_identifier(armv6.identifier) == armv6
    assert armv6 != parse_identifier("cp311-glibc_2_36_armv6l")
    with pytest.raises(UsageError, match="32-bit ARM only"):
        Target((3, 11), Libc.GLIBC, (2, 36), Arch.X86_64, FloatAbi.HARD)


def test_legacy_identifier_still_reads_and_is_ambiguous_only_among_several() -> None:
    assert parse_identifier("cp311-linux_armv6l") == parse_identifier("cp311-glibc_2_36_armv6l")
    old, new = (
        parse_identifier("cp311-glibc_2_31_armv6l"),
        parse_identifier("cp311-glibc_2_36_armv6l"),
    )
    arm64 = parse_identifier("cp311-manylinux_2_36_aarch64")
    assert pick_targets(["cp311-linux_armv6l"], [new, arm64]) == [new]
    assert pick_targets(["cp311-glibc_2_31_armv6l"], [old, new]) == [old]
    with pytest.raises(UsageError) as error:
        pick_targets(["cp311-linux_armv6l"], [old, new, arm64])
    assert "ambiguous" in error.value.message
    assert "cp311-glibc_2_31_armv6l" in error.value.message
    assert "cp311-glibc_2_36_armv6l" in error.value.message


def test_targets_of_different_architectures_sort_by_key() -> None:
    targets = select_targets(platforms=["linux/arm64", "linux/amd64", "linux/arm/v6"])
    assert [t.arch.value for t in sorted(targets, key=Target.sort_key)] == [
        "aarch64",
        "armv6l",
        "x86_64",
    ]


def test_mixed_targets_sort_by_their_key() -> None:
    """Target's fields are enums, which do not compare: sorting an amd64 and an arm64 target
    once raised TypeError."""
    amd64, arm64 = select_targets(platforms=["linux/amd64", "linux/arm64"])
    assert sorted([amd64, arm64]) == [arm64, amd64]
    mixed = [
        *select_targets(platforms=["linux/amd64", "linux/arm/v6"], pythons=["3.12", "3.11"]),
        *select_targets(platforms=["linux/arm/v6", "linux/arm64"], libc="musl"),
        *select_targets(platforms=["linux/arm/v6"], float_abi="hard"),
        *select_targets(platforms=["linux/arm/v6"], libc="glibc2.31"),
    ]
    ordered = sorted(mixed)
    assert ordered == sorted(mixed, key=Target.sort_key)
    assert sorted(ordered[3:] + ordered[:3]) == ordered  # a total order: input order is moot
    assert [t.identifier for t in ordered] == [
        "cp311-musllinux_1_2_aarch64",
        "cp311-glibc_2_31_armv6l",
        "cp311-glibc_2_36_armv6l-hardfloat",
        "cp311-glibc_2_36_armv6l",
        "cp311-musllinux_1_2_armv6l",
        "cp312-glibc_2_36_armv6l",
        "cp311-manylinux_2_36_x86_64",
        "cp312-manylinux_2_36_x86_64",
    ]
    assert min(mixed) is ordered[0] and max(mixed) is ordered[-1]
    assert arm64 < amd64 <= amd64 and amd64 > arm64 >= arm64
    assert not amd64 < amd64  # consistent with ==
    with pytest.raises(TypeError):
        sorted([amd64, "cp311-manylinux_2_36_x86_64"])  # type: ignore[list-item]


def test_archs_sort_by_name() -> None:
    assert sorted([Arch.X86_64, Arch.ARMV7L, Arch.AARCH64]) == [
        Arch.AARCH64,
        Arch.ARMV7L,
        Arch.X86_64,
    ]


# --- platform facts ----------------------------------------------------------------------------


def test_each_arch_has_its_debian_gnu_and_cibuildwheel_names() -> None:
    assert [(a.debian_arch, a.gnu_triplet, a.cibuildwheel_arch) for a in Arch] == [
        ("amd64", "x86_64-linux-gnu", "x86_64"),
        ("arm64", "aarch64-linux-gnu", "aarch64"),
        ("armhf", "arm-linux-gnueabihf", "armv7l"),
        ("armel", "arm-linux-gnueabi", None),  # no manylinux: cibuildwheel builds nothing
        ("i386", "i686-linux-gnu", "i686"),
        ("ppc64el", "powerpc64le-linux-gnu", "ppc64le"),
        ("s390x", "s390x-linux-gnu", "s390x"),
        ("riscv64", "riscv64-linux-gnu", "riscv64"),
    ]
    assert Arch.ARMV7L.python_host_platform == "linux-armv7l"
    assert [a.binfmt_install_name for a in (Arch.X86_64, Arch.ARMV6L, Arch.I686)] == [
        "amd64",
        "arm",
        "386",
    ]


def test_which_archs_a_cpu_runs_natively() -> None:
    assert Arch.X86_64.runs_natively == (Arch.X86_64, Arch.I686)
    assert Arch.AARCH64.runs_natively == (Arch.AARCH64, Arch.ARMV7L, Arch.ARMV6L)
    assert Arch.ARMV7L.runs_natively == (Arch.ARMV7L,)
    for host in Arch:
        assert {a for a in Arch if a.runs_natively_on(host)} == set(host.runs_natively)


@pytest.mark.parametrize(
    ("architecture", "variant", "platform", "arch"),
    [
        ("arm", "v6", "linux/arm/v6", Arch.ARMV6L),
        ("arm", "v7", "linux/arm/v7", Arch.ARMV7L),
        ("arm", "", "linux/arm", Arch.ARMV7L),
        ("arm64", "v8", "linux/arm64", Arch.AARCH64),  # the variant counts on 32-bit ARM only
        ("amd64", "", "linux/amd64", Arch.X86_64),
        ("mips64le", "", "linux/mips64le", None),
    ],
)
def test_an_image_configs_architecture_names_its_arch(
    architecture: str, variant: str, platform: str, arch: Arch | None
) -> None:
    assert image_docker_platform(architecture, variant) == platform
    assert Arch.from_image_config(architecture, variant) is arch


def test_cibuildwheel_identifiers_come_from_the_target() -> None:
    assert parse_identifier("cp312-musllinux_1_2_aarch64").cibuildwheel_identifier == (
        "cp312-musllinux_aarch64"
    )
    assert parse_identifier("cp311-glibc_2_36_armv6l").cibuildwheel_identifier is None
    assert [libc.policy_family for libc in Libc] == ["manylinux", "musllinux"]


# --- image templates ---------------------------------------------------------------------------


def test_each_image_placeholder_has_one_meaning() -> None:
    (armv7,) = select_targets(platforms=["linux/arm/v7"], pythons=["3.12"], libc="musl")
    assert armv7.image_values() == {
        "python": "3.12",
        "arch": "armv7l",
        "debian_arch": "armhf",
        "platform": "linux/arm/v7",
        "libc": "musl",
    }
    assert set(IMAGE_PLACEHOLDERS) == set(armv7.image_values())
    template = "r/{platform}/python:{python}-{libc}-{arch}-{debian_arch}"
    assert fill_image_template(template, armv7) == "r/linux/arm/v7/python:3.12-musl-armv7l-armhf"


def test_an_unknown_image_placeholder_names_the_known_ones() -> None:
    (arm64,) = select_targets(platforms=["linux/arm64"])
    with pytest.raises(UsageError) as error:
        fill_image_template("x:{distro}", arm64)
    assert error.value.message == (
        "Cannot fill in image 'x:{distro}': only the placeholders {python}, {arch}, "
        "{debian_arch}, {platform}, {libc} are known, e.g. "
        "--image 'registry.example/python:{python}-slim-{debian_arch}'."
    )


# --- prewheel targets --json ------------------------------------------------------------------


def test_targets_json_has_each_targets_arch_facts(capsys: pytest.CaptureFixture[str]) -> None:
    platforms = ",".join(arch.docker_platform for arch in Arch)
    assert main(["targets", "--platform", platforms, "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert [t["platform"] for t in data] == [arch.docker_platform for arch in Arch]
    by_machine = {t["arch"]["machine"]: t["arch"] for t in data}
    assert by_machine["armv6l"] == {
        "machine": "armv6l",
        "docker_platform": "linux/arm/v6",
        "debian_arch": "armel",
        "gnu_triplet": "arm-linux-gnueabi",
        "qemu_handler": "qemu-arm",
        "qemu_cpu": "arm1176",
        "binfmt_install_name": "arm",
        "runs_natively": ["armv6l"],
        "first_debian_release": "buster",
        "cibuildwheel_arch": None,
    }
    assert by_machine["x86_64"]["runs_natively"] == ["x86_64", "i686"]
    assert by_machine["x86_64"]["qemu_cpu"] is None
    assert by_machine["riscv64"]["first_debian_release"] == "trixie"
    for arch in Arch:
        assert by_machine[arch.value] == arch.to_json()
    # what it printed before the facts is unchanged
    assert {key for key in data[0] if key != "arch"} == {
        "identifier", "platform", "python", "libc", "libc_version", "float_abi", "tags"
    }  # fmt: skip


def test_arm_cpu_arch_ceilings() -> None:
    assert 7 in Arch.ARMV6L.arm_cpu_archs  # v6KZ: the Pi Zero's ARM1176
    assert 8 not in Arch.ARMV6L.arm_cpu_archs  # v6T2 (Thumb-2) is not ARMv6KZ
    assert 10 not in Arch.ARMV6L.arm_cpu_archs and 10 in Arch.ARMV7L.arm_cpu_archs
    assert 14 not in Arch.ARMV7L.arm_cpu_archs  # v8
    assert Arch.X86_64.arm_cpu_archs == frozenset()
    assert (Arch.S390X.byte_order, Arch.AARCH64.byte_order) == ("big", "little")
