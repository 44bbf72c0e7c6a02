"""Checks that a built wheel really is for its target: name, version, tags, ELF machine.

Pure functions over the wheel file: under QEMU an armv6 build may silently produce armv7 code
or an ``armv8l`` tag, and a build for the wrong platform would be served to every user.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..errors import IntegrityError
from ..targets import Target

_ELF_MAGIC = b"\x7fELF"
_ELF_CLASS_NAMES = {1: "32-bit", 2: "64-bit"}


@dataclasses.dataclass(frozen=True)
class ElfHeader:
    machine: int  # e_machine
    elf_class: int  # 1 = 32-bit, 2 = 64-bit


def read_elf_header(data: bytes) -> ElfHeader | None:
    """(e_machine, class) from the start of an ELF file; None if ``data`` is not ELF."""
    if len(data) < 20 or not data.startswith(_ELF_MAGIC):
        return None
    elf_class, byte_order = data[4], data[5]
    machine = int.from_bytes(data[18:20], "little" if byte_order == 1 else "big")
    return ElfHeader(machine=machine, elf_class=elf_class)


def elf_members(wheel: Path) -> dict[str, ElfHeader]:
    """Every ELF file inside a wheel, by archive path."""
    found = {}
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            with archive.open(info) as member:
                header = read_elf_header(member.read(64))
            if header is not None:
                found[info.filename] = header
    return found


def check_wheel(wheel: Path, *, name: str, version: Version, target: Target) -> None:
    """Raise :class:`IntegrityError` unless the wheel fits ``target`` in every respect."""
    try:
        wheel_name, wheel_version, _build, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise IntegrityError(
            f"The build produced {wheel.name}, not a valid wheel name: {exc}."
        ) from None
    if wheel_name != canonicalize_name(name) or wheel_version != version:
        raise IntegrityError(
            f"The build of {name} {version} produced {wheel.name}, a wheel of another project "
            "or version; the sdist's metadata disagrees with its file name."
        )
    if not target.supports(tags):
        raise IntegrityError(
            f"{wheel.name} has tags pip on {target.identifier} does not accept. Under QEMU, "
            "32-bit ARM containers can report another CPU (armv8l on arm64 hosts, armv7l for "
            "arm/v6 without QEMU_CPU=arm1176); build on a matching image or native host."
        )
    expected = ElfHeader(*target.arch.elf_machine)
    for member, header in elf_members(wheel).items():
        if header != expected:
            raise IntegrityError(
                f"{wheel.name}: {PurePosixPath(member).name} is ELF machine {header.machine} "
                f"({_ELF_CLASS_NAMES.get(header.elf_class, '?')}), but {target.arch.value} "
                f"needs machine {expected.machine} ({_ELF_CLASS_NAMES[expected.elf_class]}). "
                "The container did not run the target architecture: check --platform, the "
                "image's platform and the binfmt handlers."
            )
