"""Targets: the (CPython version x libc x architecture) a wheel must run on.

A :class:`Target` is an immutable value object, like :class:`packaging.Tag`. Its
:attr:`~Target.identifier` is stable and unique (``cp311-manylinux_2_36_armv7l``,
``cp312-musllinux_1_2_aarch64``, ``cp311-glibc_2_36_armv6l``; a 32-bit ARM float ABI that is not
the default for its architecture and C library is appended, as in
``cp311-glibc_2_36_armv6l-hardfloat``) and its :meth:`~Target.tags` are the
exact, ordered list of wheel tags pip running on that target accepts, produced with
:mod:`packaging.tags` from platform lists enumerated the way :mod:`packaging` does on a real
machine of that kind (it can only probe the host, so the enumeration is done here).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from packaging.tags import Tag, compatible_tags, cpython_tags

from .errors import UsageError

_T = TypeVar("_T")


@functools.total_ordering
class Arch(enum.Enum):
    """CPU architecture as ``platform.machine()`` reports it on the target.

    Every fact prewheel knows of an architecture is a property here (Docker platform, Debian
    architecture, GNU triplet, QEMU handler and CPU, which architectures its CPU runs natively,
    cibuildwheel's name, ELF machine); other modules ask, never keep a table of their own.
    ``prewheel targets --json`` prints them (:meth:`to_json`) for scripts. Archs sort by name
    (``aarch64`` first), as :meth:`Target.sort_key` does.
    """

    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    ARMV7L = "armv7l"
    ARMV6L = "armv6l"
    I686 = "i686"
    PPC64LE = "ppc64le"
    S390X = "s390x"
    RISCV64 = "riscv64"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Arch):
            return NotImplemented
        return self.value < other.value

    @property
    def docker_platform(self) -> str:
        return _DOCKER_PLATFORM_OF_ARCH[self]

    @property
    def debian_arch(self) -> str:
        """Debian's architecture name (what ``debootstrap --arch`` takes)."""
        return _DEBIAN_ARCH[self]

    @property
    def gnu_triplet(self) -> str:
        """Debian's multiarch triplet (``arm-linux-gnueabihf``): compiler and library names."""
        return _GNU_TRIPLET[self]

    @classmethod
    def from_machine(cls, machine: str) -> Arch | None:
        """The arch of a ``uname -m`` / Docker ``Architecture`` string, or None if unknown."""
        normalized = machine.strip().lower()
        normalized = _MACHINE_ALIASES.get(normalized, normalized)
        return next((arch for arch in cls if arch.value == normalized), None)

    def runs_natively_on(self, host: Arch) -> bool:
        """Whether a CPU of ``host`` runs this arch's code without emulation."""
        return self in _NATIVE_ON[host]

    @property
    def runs_natively(self) -> tuple[Arch, ...]:
        """The archs whose code a CPU of this arch runs without emulation (itself first; 64-bit
        x86 and ARM also run their 32-bit kin), in declaration order."""
        return (self, *(arch for arch in Arch if arch is not self and arch in _NATIVE_ON[self]))

    @property
    def binfmt_install_name(self) -> str:
        """What ``docker run --privileged tonistiigi/binfmt --install NAME`` takes to register
        :attr:`qemu_handler` (``arm`` for both 32-bit ARM archs, ``arm64``, ``386``)."""
        return self.docker_platform.split("/")[1]

    @property
    def python_host_platform(self) -> str:
        """``sysconfig.get_platform()`` on this arch (``linux-armv7l``): what
        ``_PYTHON_HOST_PLATFORM`` pins where QEMU or a 64-bit kernel reports another machine."""
        return f"linux-{self.value}"

    @property
    def cibuildwheel_arch(self) -> str | None:
        """cibuildwheel's name for this arch (in its build identifiers, ``<family>-<arch>-image``
        options and pinned-image table), or None where it builds nothing (no manylinux or
        musllinux policy: armv6l)."""
        return self.value if self.has_manylinux else None

    def to_json(self) -> dict[str, Any]:
        """This arch's facts as JSON-ready data (``prewheel targets --json``; the shell table
        of scripts/shared/platforms.sh holds the same)."""
        return {
            "machine": self.value,
            "docker_platform": self.docker_platform,
            "debian_arch": self.debian_arch,
            "gnu_triplet": self.gnu_triplet,
            "qemu_handler": self.qemu_handler,
            "qemu_cpu": self.qemu_cpu,
            "binfmt_install_name": self.binfmt_install_name,
            "runs_natively": [arch.value for arch in self.runs_natively],
            "first_debian_release": self.first_debian_release,
            "cibuildwheel_arch": self.cibuildwheel_arch,
        }

    @property
    def qemu_handler(self) -> str:
        """The binfmt_misc handler that runs this arch's code under QEMU on other hosts
        (``qemu-arm`` for both 32-bit ARM archs), as Debian's qemu-user-static and
        tonistiigi/binfmt name it."""
        return _QEMU_HANDLER[self]

    @property
    def qemu_cpu(self) -> str | None:
        """The CPU QEMU must emulate for this arch's code to be held to it, or None where
        QEMU's default is right. QEMU's default 32-bit ARM CPU is an ARMv8 core in AArch32
        state (it reports CRC32 and the crypto extensions in ``AT_HWCAP2``), so without
        ``arm1176`` (the Raspberry Pi 1 and Zero) ARMv7 instructions in an armv6l wheel, and
        without ``cortex-a7`` (the Raspberry Pi 2) ARMv8 instructions in an armv7l wheel, would
        build, import and pass verification, then die on the device; code that picks its
        kernels at run time would take the ARMv8 ones under QEMU and never try the others. For
        aarch64, ``cortex-a53`` (ARMv8.0-A, the distributions' baseline) instead of QEMU's
        "max", whose emulated pointer authentication slows PAC-built userlands tenfold."""
        return _QEMU_CPU.get(self)

    @property
    def first_debian_release(self) -> str:
        """The first Debian release (of those prewheel knows) that has this architecture."""
        return _FIRST_DEBIAN_RELEASE.get(self, DEBIAN_RELEASES[0])

    @property
    def has_manylinux(self) -> bool:
        """Whether manylinux tags exist for this arch (packaging's ``_have_compatible_abi``)."""
        return self is not Arch.ARMV6L

    @property
    def elf_machine(self) -> tuple[int, int]:
        """(``e_machine``, ELF class) a native extension for this arch must carry."""
        return _ELF_MACHINE[self]

    @property
    def byte_order(self) -> str:
        """``"little"`` or ``"big"``: the byte order of this arch's code (ELF ``EI_DATA``)."""
        return "big" if self is Arch.S390X else "little"

    @property
    def is_32bit_arm(self) -> bool:
        return self in (Arch.ARMV6L, Arch.ARMV7L)

    @property
    def arm_cpu_archs(self) -> frozenset[int]:
        """The ARM ``Tag_CPU_arch`` values a CPU of this arch runs (empty for other archs).

        armv6l is the ARM1176 of the Raspberry Pi 1 and Zero (ARMv6KZ: runs v4 to v6KZ and
        v6K code, not Thumb-2 ``v6T2`` or anything v7); armv7l runs everything up to v7-A.
        """
        return _ARM_CPU_ARCHS.get(self, frozenset())

    @property
    def arm_dispatched_cpu_archs(self) -> frozenset[int]:
        """The newer ``Tag_CPU_arch`` values a wheel's object for this arch may record when it
        chooses its kernels per CPU at run time: ARMv8-A and later A profiles for armv7l (their
        AArch32 state is a superset of ARMv7-A, and NumPy compiles such kernels beside its
        ARMv7 ones); none for armv6l, where an ARMv7 record is the mistake the check catches."""
        return _ARM_DISPATCHED_CPU_ARCHS.get(self, frozenset())

    @property
    def arm_cpu_needs(self) -> str:
        """The ARM code this arch's CPU runs, in words ("" outside 32-bit ARM)."""
        return _ARM_CPU_NEEDS.get(self, "")

    def default_float_abi(self, libc: Libc) -> FloatAbi | None:
        """The float ABI a Linux distribution of this arch and C library uses by default:
        hard for armv7l (Debian armhf, Alpine armv7), soft for glibc armv6l (Debian armel, what
        Docker's linux/arm/v6 python images are), hard for musl armv6l (Alpine armhf). None
        outside 32-bit ARM."""
        if not self.is_32bit_arm:
            return None
        if self is Arch.ARMV6L and libc is Libc.GLIBC:
            return FloatAbi.SOFT
        return FloatAbi.HARD

    @classmethod
    def from_docker_platform(cls, platform: str) -> Arch:
        normalized = platform.strip().lower()
        normalized = _DOCKER_PLATFORM_ALIASES.get(normalized, normalized)
        for arch, name in _DOCKER_PLATFORM_OF_ARCH.items():
            if name == normalized:
                return arch
        valid = ", ".join(_DOCKER_PLATFORM_OF_ARCH.values())
        raise UsageError(
            f"Unknown platform {platform!r}. prewheel builds for Linux Docker platforms: {valid}. "
            "Pass them comma-separated, as docker buildx takes them, e.g. "
            "--platform linux/amd64,linux/arm64,linux/arm/v7."
        )

    @classmethod
    def from_image_config(cls, architecture: str, variant: str = "") -> Arch | None:
        """The arch of an image whose config says ``Architecture`` and ``Variant`` (``arm``,
        ``v6``), or None if prewheel does not know it. See :func:`image_docker_platform`."""
        try:
            return cls.from_docker_platform(image_docker_platform(architecture, variant))
        except UsageError:
            return None


def image_docker_platform(architecture: str, variant: str = "") -> str:
    """The Docker platform an image config's ``Architecture`` and ``Variant`` name
    (``linux/arm/v6``); the variant counts on 32-bit ARM only (``arm64`` images may say ``v8``)."""
    return f"linux/{architecture}" + (f"/{variant}" if variant and architecture == "arm" else "")


_DOCKER_PLATFORM_OF_ARCH: dict[Arch, str] = {
    Arch.X86_64: "linux/amd64",
    Arch.AARCH64: "linux/arm64",
    Arch.ARMV7L: "linux/arm/v7",
    Arch.ARMV6L: "linux/arm/v6",
    Arch.I686: "linux/386",
    Arch.PPC64LE: "linux/ppc64le",
    Arch.S390X: "linux/s390x",
    Arch.RISCV64: "linux/riscv64",
}
_DOCKER_PLATFORM_ALIASES = {
    "linux/arm64/v8": "linux/arm64",
    "linux/x86_64": "linux/amd64",
    "linux/aarch64": "linux/arm64",
    "linux/arm": "linux/arm/v7",
    "linux/armhf": "linux/arm/v7",
    "linux/armv7": "linux/arm/v7",
    "linux/armel": "linux/arm/v6",
    "linux/armv6": "linux/arm/v6",
    "linux/i386": "linux/386",
}
_DEBIAN_ARCH = {
    Arch.X86_64: "amd64",
    Arch.AARCH64: "arm64",
    Arch.ARMV7L: "armhf",
    Arch.ARMV6L: "armel",
    Arch.I686: "i386",
    Arch.PPC64LE: "ppc64el",
    Arch.S390X: "s390x",
    Arch.RISCV64: "riscv64",
}
_GNU_TRIPLET = {
    Arch.X86_64: "x86_64-linux-gnu",
    Arch.AARCH64: "aarch64-linux-gnu",
    Arch.ARMV7L: "arm-linux-gnueabihf",
    Arch.ARMV6L: "arm-linux-gnueabi",
    Arch.I686: "i686-linux-gnu",
    Arch.PPC64LE: "powerpc64le-linux-gnu",
    Arch.S390X: "s390x-linux-gnu",
    Arch.RISCV64: "riscv64-linux-gnu",
}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "x86": "i686"}
# Architectures a host CPU runs without emulation (64-bit x86 and ARM run their 32-bit kin).
_NATIVE_ON: dict[Arch, frozenset[Arch]] = {
    **{arch: frozenset({arch}) for arch in Arch},
    Arch.X86_64: frozenset({Arch.X86_64, Arch.I686}),
    Arch.AARCH64: frozenset({Arch.AARCH64, Arch.ARMV7L, Arch.ARMV6L}),
}
_QEMU_HANDLER = {
    Arch.X86_64: "qemu-x86_64",
    Arch.AARCH64: "qemu-aarch64",
    Arch.ARMV7L: "qemu-arm",
    Arch.ARMV6L: "qemu-arm",
    Arch.I686: "qemu-i386",
    Arch.PPC64LE: "qemu-ppc64le",
    Arch.S390X: "qemu-s390x",
    Arch.RISCV64: "qemu-riscv64",
}
# arm1176: the Raspberry Pi 1 and Zero. cortex-a7: the Raspberry Pi 2 (ARMv7-A with NEON and
# VFPv4, no ARMv8 instructions: AT_HWCAP2 is 0, where QEMU's default reports 0x1f).
# cortex-a53: ARMv8.0-A, the baseline of Debian's arm64 and of manylinux aarch64 (Raspberry
# Pi 3, Zero 2 W). QEMU's default 64-bit ARM CPU ("max") adds pointer authentication, SVE and
# every later extension: code a build detects it on would not run on baseline devices, and
# emulating pointer authentication made Debian trixie's binaries (built with
# -mbranch-protection) about 10x slower (36.4 s against 3.6 s for the same Python work in
# prewheel-test/trixie:arm64).
_QEMU_CPU = {Arch.ARMV6L: "arm1176", Arch.ARMV7L: "cortex-a7", Arch.AARCH64: "cortex-a53"}
# Debian has riscv64 as a release architecture from trixie (13) on; the others are in every
# release of _DEBIAN_GLIBC.
_FIRST_DEBIAN_RELEASE = {Arch.RISCV64: "trixie"}


def qemu_handlers_needed(host: Arch) -> list[str]:
    """The binfmt handlers a ``host`` CPU needs for every platform it does not run natively,
    sorted, each once (scripts/host-setup.sh registers these)."""
    return sorted({arch.qemu_handler for arch in Arch if not arch.runs_natively_on(host)})


# ARM EABI Tag_CPU_arch values (ARM IHI 0045, as binutils' readelf names them): 0 pre-v4,
# 1 v4, 2 v4T, 3 v5T, 4 v5TE, 5 v5TEJ, 6 v6, 7 v6KZ, 8 v6T2, 9 v6K, 10 v7; 11-13 are M
# profiles; 14 v8-A, 15 v8-R, 16-17 v8-M, 18-20 v8.1-A to v8.3-A, 21 v8.1-M, 22 v9-A.
_ARM_CPU_ARCH_NAMES = {
    0: "pre-v4", 1: "v4", 2: "v4T", 3: "v5T", 4: "v5TE", 5: "v5TEJ", 6: "v6", 7: "v6KZ",
    8: "v6T2", 9: "v6K", 10: "v7", 11: "v6-M", 12: "v6S-M", 13: "v7E-M", 14: "v8-A",
    15: "v8-R", 16: "v8-M.baseline", 17: "v8-M.mainline", 18: "v8.1-A", 19: "v8.2-A",
    20: "v8.3-A", 21: "v8.1-M.mainline", 22: "v9-A",
}  # fmt: skip
_ARM_CPU_ARCHS = {
    Arch.ARMV6L: frozenset({0, 1, 2, 3, 4, 5, 6, 7, 9}),
    Arch.ARMV7L: frozenset(range(11)),
}
_ARM_DISPATCHED_CPU_ARCHS = {Arch.ARMV7L: frozenset({14, 18, 19, 20, 22})}


_ARM_CPU_NEEDS = {
    Arch.ARMV6L: "ARMv6 code or older (the ARM1176 of the Raspberry Pi 1 and Zero: up to "
    "ARMv6KZ, no ARMv6T2 or ARMv7)",
    Arch.ARMV7L: "ARMv7 code or older",
}


def arm_cpu_arch_name(value: int) -> str:
    """``Tag_CPU_arch`` as ARM names it: 10 -> ``v7``."""
    return _ARM_CPU_ARCH_NAMES.get(value, f"Tag_CPU_arch {value}")


# ELF e_machine values and class (1 = 32-bit, 2 = 64-bit).
_ELF_MACHINE = {
    Arch.X86_64: (62, 2),
    Arch.AARCH64: (183, 2),
    Arch.ARMV7L: (40, 1),
    Arch.ARMV6L: (40, 1),
    Arch.I686: (3, 1),
    Arch.PPC64LE: (21, 2),
    Arch.S390X: (22, 2),
    Arch.RISCV64: (243, 2),
}


class Libc(enum.Enum):
    GLIBC = "glibc"
    MUSL = "musl"

    @property
    def policy_family(self) -> str:
        """``manylinux`` or ``musllinux``: the wheel platform tags (and image policies,
        cibuildwheel's build identifiers) of this C library."""
        return "musllinux" if self is Libc.MUSL else "manylinux"


class FloatAbi(enum.Enum):
    """How 32-bit ARM code passes floating-point values: in VFP registers (``hard``, Debian
    armhf, Raspberry Pi OS, Alpine armhf) or in integer registers (``soft``, Debian armel).
    Code of one cannot be loaded into a process of the other."""

    HARD = "hard"
    SOFT = "soft"

    @classmethod
    def parse(cls, text: str) -> FloatAbi:
        normalized = text.strip().lower().removesuffix("float").removesuffix("-").strip()
        normalized = {"hf": "hard", "armhf": "hard", "sf": "soft", "armel": "soft"}.get(
            normalized, normalized
        )
        try:
            return cls(normalized)
        except ValueError:
            raise UsageError(
                f"Cannot read {text!r} as a float ABI; use hard (Raspberry Pi OS, Debian armhf, "
                "Alpine armhf) or soft (Debian armel, Docker's linux/arm/v6 python images)."
            ) from None


# The newest minor of each glibc major that packaging knows (packaging._manylinux._LAST_GLIBC_MINOR).
_LAST_GLIBC_MINOR = {2: 50}
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_MANYLINUX_GLIBC = {name: glibc for glibc, name in _LEGACY_MANYLINUX.items()}

DEFAULT_GLIBC = (2, 36)  # Debian bookworm, the base of python:3.X-slim-bookworm
DEFAULT_MUSL = (1, 2)  # every Alpine since 3.13
SUPPORTED_PYTHONS: tuple[tuple[int, int], ...] = tuple((3, minor) for minor in range(8, 16))
DEFAULT_PYTHON = (3, 11)
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6")


@functools.total_ordering
@dataclasses.dataclass(frozen=True)
class Target:
    """One platform pip runs on: CPython version, C library (family and version), architecture,
    and on 32-bit ARM the float ABI (None means the default of the arch and C library).

    Targets sort by :meth:`sort_key` (architecture name, Python, C library, its version, float
    ABI), so ``sorted()`` takes any mix of them."""

    python: tuple[int, int]
    libc: Libc
    libc_version: tuple[int, int]
    arch: Arch
    float_abi: FloatAbi | None = None

    def __post_init__(self) -> None:
        if self.python not in SUPPORTED_PYTHONS:
            raise UsageError(
                f"Unsupported Python {format_python(self.python)}; choose from "
                f"{', '.join(format_python(p) for p in SUPPORTED_PYTHONS)}."
            )
        default = self.arch.default_float_abi(self.libc)
        if self.float_abi is None:
            object.__setattr__(self, "float_abi", default)
        elif default is None:
            raise UsageError(
                f"A float ABI applies to 32-bit ARM only, not {self.arch.value}; drop "
                "--float-abi for this platform."
            )

    def sort_key(self) -> tuple[str, tuple[int, int], str, tuple[int, int], str]:
        """Targets in a stable order (the fields are enums, which do not compare)."""
        return (
            self.arch.value,
            self.python,
            self.libc.value,
            self.libc_version,
            self.float_abi.value if self.float_abi else "",
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    # -- identity -------------------------------------------------------------------------
    @cached_property
    def platform_tag(self) -> str:
        """The most specific platform tag a wheel built for this target may carry."""
        if self.libc is Libc.MUSL:
            return f"musllinux_{self.libc_version[0]}_{self.libc_version[1]}_{self.arch.value}"
        if not self.arch.has_manylinux:
            return f"linux_{self.arch.value}"
        return f"manylinux_{self.libc_version[0]}_{self.libc_version[1]}_{self.arch.value}"

    @cached_property
    def identifier(self) -> str:
        """Unique per target: the platform tag where it names the C library version, else
        ``glibc_<major>_<minor>_<arch>``; a float ABI other than the default is appended."""
        platform = self.platform_tag
        if platform == f"linux_{self.arch.value}":
            platform = f"glibc_{self.libc_version[0]}_{self.libc_version[1]}_{self.arch.value}"
        if self.float_abi is not None and self.float_abi is not self.arch.default_float_abi(
            self.libc
        ):
            platform += f"-{self.float_abi.value}float"
        return f"{self.interpreter}-{platform}"

    @property
    def legacy_identifier(self) -> str:
        """The identifier before identifiers were unique (``cp311-linux_armv6l``)."""
        return f"{self.interpreter}-{self.platform_tag}"

    @property
    def interpreter(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    @property
    def docker_platform(self) -> str:
        return self.arch.docker_platform

    @property
    def python_version(self) -> str:
        return format_python(self.python)

    @property
    def cibuildwheel_identifier(self) -> str | None:
        """cibuildwheel's build identifier (``cp311-manylinux_armv7l``: the image fixes the libc
        version, so it is not part of it), or None where cibuildwheel builds nothing (armv6l)."""
        arch = self.arch.cibuildwheel_arch
        if arch is None:
            return None
        return f"{self.interpreter}-{self.libc.policy_family}_{arch}"

    def to_json(self) -> dict[str, Any]:
        """The target as ``prewheel targets --json`` prints it: identity, every tag pip on it
        accepts (best first) and its architecture's facts (:meth:`Arch.to_json`)."""
        return {
            "identifier": self.identifier,
            "platform": self.docker_platform,
            "python": self.python_version,
            "libc": self.libc.value,
            "libc_version": f"{self.libc_version[0]}.{self.libc_version[1]}",
            "float_abi": self.float_abi.value if self.float_abi else None,
            "tags": [str(tag) for tag in self.tags()],
            "arch": self.arch.to_json(),
        }

    def image_values(self) -> dict[str, str]:
        """What each image-template placeholder stands for on this target (see
        :data:`IMAGE_PLACEHOLDERS`)."""
        return {
            "python": self.python_version,
            "arch": self.arch.value,
            "debian_arch": self.arch.debian_arch,
            "platform": self.docker_platform,
            "libc": self.libc.value,
        }

    def __str__(self) -> str:
        return self.identifier

    # -- what pip on this target accepts --------------------------------------------------
    def platforms(self) -> list[str]:
        """Platform tags in pip's order of preference on this target, best first.

        As current packaging (and the pip that vendors it) orders them: the plain
        ``linux_<arch>`` tag of a locally built wheel first, then manylinux or musllinux.
        """
        generic = f"linux_{self.arch.value}"
        if self.libc is Libc.MUSL:
            return [generic, *_musllinux_platforms(self.libc_version, self.arch)]
        return [generic, *_manylinux_platforms(self.libc_version, self.arch)]

    @cached_property
    def _tags(self) -> tuple[Tag, ...]:
        platforms = self.platforms()
        return (
            *cpython_tags(self.python, abis=[self.interpreter], platforms=platforms),
            *compatible_tags(self.python, self.interpreter, platforms),
        )

    def tags(self) -> tuple[Tag, ...]:
        """Every tag pip on this target accepts, most preferred first (like ``sys_tags()``)."""
        return self._tags

    @cached_property
    def tag_priority(self) -> dict[Tag, int]:
        """Tag -> rank (0 is best), for choosing among several compatible wheels as pip does."""
        return {tag: rank for rank, tag in enumerate(self._tags)}

    def supports(self, wheel_tags: Iterable[Tag]) -> bool:
        return any(tag in self.tag_priority for tag in wheel_tags)

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker variables as they are on the target (not on the host)."""
        version = format_python(self.python)
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "os_name": "posix",
            "platform_machine": self.arch.value,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{version}.0",
            "python_version": version,
            "sys_platform": "linux",
        }


# --- image templates ---------------------------------------------------------------------------
IMAGE_PLACEHOLDERS: Mapping[str, str] = {
    "python": "the Python version (3.11)",
    "arch": "the machine, as uname -m and wheel tags name it (aarch64, armv7l)",
    "debian_arch": "Debian's architecture name (arm64, armhf, armel)",
    "platform": "the Docker platform (linux/arm64, linux/arm/v7)",
    "libc": "the C library family (glibc, musl)",
}
"""The placeholders of an image template (``--image``, ``--portable-image``), each with the one
meaning :meth:`Target.image_values` gives it."""


def fill_placeholders(
    template: str, values: Mapping[str, str], *, what: str, example: str, source: str = ""
) -> str:
    """``template`` with its ``{name}`` placeholders filled from ``values``; a usage error naming
    the known placeholders (and where their values come from) otherwise."""
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        known = ", ".join("{" + name + "}" for name in values)
        raise UsageError(
            f"Cannot fill in {what} {template!r}: only the placeholders {known} are known"
            f"{source}, e.g. {example}."
        ) from None


def fill_image_template(
    template: str,
    target: Target,
    *,
    what: str = "image",
    example: str = "--image 'registry.example/python:{python}-slim-{debian_arch}'",
) -> str:
    """The image ``template`` names for ``target``: its placeholders (:data:`IMAGE_PLACEHOLDERS`)
    filled with the target's values; a usage error for any other placeholder."""
    return fill_placeholders(template, target.image_values(), what=what, example=example)


def _manylinux_platforms(glibc: tuple[int, int], arch: Arch) -> Iterator[str]:
    """manylinux tags for a glibc, newest first, with legacy aliases (as packaging yields them)."""
    if not arch.has_manylinux:
        return
    oldest_minor = 5 if arch in (Arch.X86_64, Arch.I686) else 17
    major, newest_minor = glibc
    for minor in range(newest_minor, oldest_minor - 1, -1):
        yield f"manylinux_{major}_{minor}_{arch.value}"
        legacy = _LEGACY_MANYLINUX.get((major, minor))
        if legacy is not None:
            yield f"{legacy}_{arch.value}"


def _musllinux_platforms(musl: tuple[int, int], arch: Arch) -> Iterator[str]:
    major, newest_minor = musl
    for minor in range(newest_minor, -1, -1):
        yield f"musllinux_{major}_{minor}_{arch.value}"


def policy_libc_version(policy: str) -> tuple[int, int]:
    """The C library version of a wheel policy: ``manylinux_2_28`` -> (2, 28),
    ``manylinux2014`` -> (2, 17), ``musllinux_1_2`` -> (1, 2)."""
    if policy in _LEGACY_MANYLINUX_GLIBC:
        return _LEGACY_MANYLINUX_GLIBC[policy]
    _, _, version = policy.partition("linux_")
    major, _, minor = version.partition("_")
    if not (major.isdigit() and minor.isdigit()):
        raise UsageError(f"Cannot read the C library version of image policy {policy!r}.")
    return int(major), int(minor)


def format_python(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_python(text: str) -> tuple[int, int]:
    """``"3.11"``, ``"311"``, ``"cp311"`` -> ``(3, 11)``."""
    raw = text.strip().lower().removeprefix("cp").removeprefix("python")
    major, dot, minor = raw.partition(".")
    if not dot and len(raw) >= 2:
        major, minor = raw[0], raw[1:]
    if not (major.isdigit() and minor.isdigit()):
        raise UsageError(
            f"Cannot read {text!r} as a Python version; write it as 3.11 (or cp311). Supported: "
            f"{', '.join(format_python(p) for p in SUPPORTED_PYTHONS)}."
        )
    version = (int(major), int(minor))
    if version not in SUPPORTED_PYTHONS:
        raise UsageError(
            f"Unsupported Python {text!r}; choose from "
            f"{', '.join(format_python(p) for p in SUPPORTED_PYTHONS)}."
        )
    return version


def parse_libc(text: str) -> tuple[Libc, tuple[int, int]]:
    """``glibc``, ``glibc2.36``, ``manylinux_2_28``, ``musl``, ``musl1.2``, ``musllinux_1_1``."""
    raw = text.strip().lower()
    for prefix, libc, default in (
        ("manylinux_", Libc.GLIBC, DEFAULT_GLIBC),
        ("musllinux_", Libc.MUSL, DEFAULT_MUSL),
        ("glibc", Libc.GLIBC, DEFAULT_GLIBC),
        ("musl", Libc.MUSL, DEFAULT_MUSL),
    ):
        if raw.startswith(prefix):
            rest = raw.removeprefix(prefix).lstrip("-=")
            if not rest:
                return libc, default
            major, _, minor = rest.replace("_", ".").partition(".")
            if major.isdigit() and minor.isdigit():
                return libc, (int(major), int(minor))
            break
    raise UsageError(
        f"Cannot read {text!r} as a C library; use glibc or musl, optionally with the oldest "
        "version your images have: glibc2.36 (Debian bookworm), glibc2.31 (bullseye), "
        "glibc2.41 (trixie), musl1.2 (Alpine 3.13+)."
    )


def parse_identifier(identifier: str) -> Target:
    """Inverse of :attr:`Target.identifier`; also takes cibuildwheel's unversioned forms and
    the older ``cp311-linux_armv6l`` (glibc 2.36, the default float ABI)."""
    interpreter, sep, platform = identifier.strip().partition("-")
    if not sep:
        raise _bad_identifier(identifier)
    python = parse_python(interpreter)
    platform, _, float_suffix = platform.partition("-")
    float_abi = None
    if float_suffix:
        if not float_suffix.endswith("float"):
            raise _bad_identifier(identifier)
        float_abi = FloatAbi.parse(float_suffix)
    for prefix, libc, default in (
        ("manylinux_", Libc.GLIBC, DEFAULT_GLIBC),
        ("musllinux_", Libc.MUSL, DEFAULT_MUSL),
        ("glibc_", Libc.GLIBC, DEFAULT_GLIBC),
        ("linux_", Libc.GLIBC, DEFAULT_GLIBC),
    ):
        if not platform.startswith(prefix):
            continue
        rest = platform.removeprefix(prefix)
        version = default
        parts = rest.split("_", 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            version, rest = (int(parts[0]), int(parts[1])), parts[2]
        try:
            arch = Arch(rest)
        except ValueError:
            raise _bad_identifier(identifier) from None
        return Target(python, libc, version, arch, float_abi)
    raise _bad_identifier(identifier)


def is_legacy_identifier(identifier: str) -> bool:
    """Whether ``identifier`` is the older form that names no C library version
    (``cp311-linux_armv6l``): it stands for every glibc version and float ABI of its arch."""
    _interpreter, _, platform = identifier.strip().partition("-")
    return platform.startswith("linux_")


def pick_targets(identifiers: Iterable[str], candidates: Sequence[Target]) -> list[Target]:
    """The targets among ``candidates`` that ``identifiers`` name.

    An identifier matches its target exactly; an older ``cp311-linux_armv6l`` matches every
    candidate with that legacy identifier and is an error listing them if there are several.
    """
    picked: list[Target] = []
    for text in identifiers:
        wanted = parse_identifier(text)
        if is_legacy_identifier(text):
            matches = [t for t in candidates if t.legacy_identifier == wanted.legacy_identifier]
        else:
            matches = [t for t in candidates if t == wanted]
        if len(matches) > 1:
            raise UsageError(
                f"Target {text!r} is ambiguous here: it names "
                f"{', '.join(t.identifier for t in matches)}. Give one of those identifiers."
            )
        if not matches:
            raise UsageError(
                f"Target {text!r} is not one of {', '.join(t.identifier for t in candidates)}."
            )
        picked.append(matches[0])
    return _unique(picked)


def _bad_identifier(identifier: str) -> UsageError:
    return UsageError(
        f"Cannot read target identifier {identifier!r}. Identifiers look like "
        "cp311-manylinux_2_36_armv7l, cp312-musllinux_1_2_aarch64 or cp311-glibc_2_36_armv6l, "
        "with -hardfloat or -softfloat appended for a 32-bit ARM float ABI other than the "
        "default (`prewheel targets` lists the ones a set of options selects)."
    )


# --- official python image tags -> (python, libc) ----------------------------------------------
_DEBIAN_GLIBC = {"buster": (2, 28), "bullseye": (2, 31), "bookworm": (2, 36), "trixie": (2, 41)}
DEBIAN_RELEASES = tuple(_DEBIAN_GLIBC)  # oldest first
_DEFAULT_DEBIAN = "trixie"  # what an unsuffixed python:3.X / python:3.X-slim tag is based on


def parse_image(image: str) -> tuple[tuple[int, int], Libc, tuple[int, int]]:
    """Read (Python, libc, libc version) from an official ``python`` image reference.

    ``python:3.11-slim-bookworm`` -> (3.11, glibc, 2.36); ``python:3.12-alpine3.20`` ->
    (3.12, musl, 1.2). Other images cannot be read from their name: give --python and --libc.
    """
    name, _, tag = image.rpartition(":") if ":" in image.rpartition("/")[2] else (image, "", "")
    repository = name.rpartition("/")[2]
    version_text, _, variant = tag.partition("-")
    version_parts = version_text.split(".")
    if (
        repository != "python"
        or len(version_parts) < 2
        or not all(part.isdigit() for part in version_parts)
    ):
        raise UsageError(
            f"Cannot tell the Python version and C library of image {image!r} from its name "
            "(only official python:X.Y[-variant] tags can be read). Give them with "
            "--python X.Y and --libc glibcX.Y|muslX.Y alongside --image."
        )
    python = parse_python(".".join(version_parts[:2]))
    for word in variant.split("-"):
        if word.startswith("alpine"):
            return python, Libc.MUSL, DEFAULT_MUSL
        if word in _DEBIAN_GLIBC:
            return python, Libc.GLIBC, _DEBIAN_GLIBC[word]
    return python, Libc.GLIBC, _DEBIAN_GLIBC[_DEFAULT_DEBIAN]


def debian_release_problem(image: str, arch: Arch) -> str | None:
    """Why ``image`` cannot be an image for ``arch``: its name names a Debian release
    (``python:3.11-slim-bookworm``, ``.../bookworm-build:riscv64``) older than the first that
    has the architecture. None when it does not, or names no release prewheel knows."""
    releases = list(DEBIAN_RELEASES)
    words = set(re.split(r"[^a-z0-9]+", image.lower()))
    named = [release for release in releases if release in words]
    first = arch.first_debian_release
    if not named or releases.index(named[0]) >= releases.index(first):
        return None
    glibc = "{}.{}".format(*_DEBIAN_GLIBC[first])
    return (
        f"Image {image} cannot run {arch.docker_platform}: Debian {named[0]} has no "
        f"{arch.debian_arch} (Debian provides it from {first} on). Build in a {first} image, e.g. "
        f"--image 'python:{{python}}-slim-{first}' (glibc {glibc}: plan for it with --libc "
        f"glibc{glibc}), or give an image of another distribution for {arch.docker_platform} "
        "with --python and --libc."
    )


def select_targets(
    *,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
    pythons: Sequence[str] = (),
    libc: str | None = None,
    image: str | None = None,
    identifiers: Sequence[str] = (),
    float_abi: str | None = None,
) -> list[Target]:
    """Build the target list from Docker-style options; identifiers, if given, win outright.

    ``float_abi`` (hard or soft) applies to the 32-bit ARM platforms; the others ignore it.
    """
    if identifiers:
        return _unique(parse_identifier(identifier) for identifier in identifiers)
    abi = FloatAbi.parse(float_abi) if float_abi else None
    python_versions = [parse_python(p) for p in pythons]
    libc_family, libc_version = parse_libc(libc) if libc else (Libc.GLIBC, DEFAULT_GLIBC)
    if image and not (pythons and libc):
        image_python, image_libc, image_libc_version = parse_image(image)
        if not pythons:
            python_versions = [image_python]
        if not libc:
            libc_family, libc_version = image_libc, image_libc_version
    if not python_versions:
        python_versions = [DEFAULT_PYTHON]
    archs = _unique(Arch.from_docker_platform(p) for p in platforms)
    if not archs:
        raise UsageError("No platform selected; pass --platform linux/amd64,linux/arm64,...")
    return _unique(
        Target(python, libc_family, libc_version, arch, abi if arch.is_32bit_arm else None)
        for python in python_versions
        for arch in archs
    )


def _unique(items: Iterable[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


def emulation_environment(arch: Arch) -> dict[str, str]:
    """What every container of ``arch`` (build, set-up, verify) needs in its environment for
    QEMU to emulate that arch's CPU: ``QEMU_CPU`` where QEMU's default CPU is wrong (see
    :attr:`Arch.qemu_cpu`). Ignored on a native host."""
    cpu = arch.qemu_cpu
    return {"QEMU_CPU": cpu} if cpu else {}
