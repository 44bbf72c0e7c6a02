"""What machine code an ELF file holds, read with pyelftools: the facts every check compares.

:func:`read_elf` gives an :class:`ElfFacts`: ``e_machine``, class (32/64-bit), byte order
(``EI_DATA``) and, for 32-bit ARM, the CPU architecture the code was compiled for
(``Tag_CPU_arch`` in ``.ARM.attributes``) and its float ABI: the ``e_flags`` hard/soft-float
bits of an EABI version 5 file (what the GNU linker writes), else ``Tag_ABI_VFP_args`` (a
relocatable object, or the old GNU ABI, where those bits mean something else), and whether it
asks the kernel for the CPU's features at run time (imports ``getauxval``): what code that
chooses between kernels for several CPUs at run time does, as NumPy's does on 32-bit ARM.
:func:`wheel_elf_members` reads every ELF member of a wheel, :func:`elf_file_facts` one file.
What a *target* needs (machine, byte order, allowed ``Tag_CPU_arch`` values, float ABI) lives in
:mod:`builder.targets`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.constants import E_FLAGS
from elftools.elf.descriptions import describe_e_machine
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.sections import ARMAttributesSection, SymbolTableSection

from .errors import IntegrityError
from .targets import FloatAbi, arm_cpu_arch_name

ELF_MAGIC = b"\x7fELF"
EM_ARM = 40
_CLASS_BITS = {1: 32, 2: 64}
# Tag_ABI_VFP_args: 0 base AAPCS (integer registers: soft), 1 VFP registers (hard); 2 is a
# toolchain's own convention and 3 means no floating-point arguments at all (either ABI).
_VFP_ARGS = {0: FloatAbi.SOFT, 1: FloatAbi.HARD}
_SPOOL_IN_MEMORY = 16 << 20  # larger members are spooled to a temporary file
# How Linux code reads the CPU's features (AT_HWCAP, AT_HWCAP2) from the auxiliary vector:
# glibc's and musl's getauxval (glibc also exports __getauxval).
_CPU_FEATURE_QUERIES = frozenset({"getauxval", "__getauxval"})


@dataclasses.dataclass(frozen=True)
class ElfFacts:
    """The machine code of one ELF file."""

    machine: int  # e_machine
    elf_class: int  # EI_CLASS: 1 = 32-bit, 2 = 64-bit (as Arch.elf_machine has it)
    byte_order: str  # EI_DATA: "little" or "big" (as Arch.byte_order has it)
    machine_name: str = ""  # pyelftools' description: "ARM", "Advanced Micro Devices X86-64"
    arm_cpu_arch: int | None = None  # Tag_CPU_arch; None: not ARM, or no .ARM.attributes
    float_abi: FloatAbi | None = None  # 32-bit ARM; None: not ARM, or commits to neither
    asks_cpu_features: bool = False  # 32-bit ARM: imports getauxval (dispatches at run time)

    @property
    def is_arm(self) -> bool:
        return self.machine == EM_ARM and self.elf_class == 1

    def describe(self) -> str:
        """What the code is, for messages: ``ARMv7 code, hard-float``, ``IBM S/390 code
        (ELF machine 22, 64-bit, big-endian)``."""
        if self.is_arm:
            cpu = (
                f"{_arm_name(self.arm_cpu_arch)} code"
                if self.arm_cpu_arch is not None
                else "ARM code of unrecorded architecture"
            )
            parts = [cpu]
            if self.float_abi is not None:
                parts.append(f"{self.float_abi.value}-float")
            if self.byte_order != "little":
                parts.append(f"{self.byte_order}-endian")
            return ", ".join(parts)
        name = self.machine_name or "machine"
        return (
            f"{name} code (ELF machine {self.machine}, "
            f"{_CLASS_BITS.get(self.elf_class, '?')}-bit, {self.byte_order}-endian)"
        )


def _arm_name(cpu_arch: int) -> str:
    name = arm_cpu_arch_name(cpu_arch)
    return f"ARM{name}" if name.startswith("v") else f"ARM {name}"


def read_elf(stream: IO[bytes]) -> ElfFacts | None:
    """The facts of the ELF file in ``stream`` (seekable, at its start); None if it is not ELF.

    A file that starts like ELF but cannot be parsed raises :class:`ELFError` (or a
    :class:`ValueError`/:class:`EOFError` of the parser): the caller names the file."""
    if stream.read(4) != ELF_MAGIC:
        return None
    stream.seek(0)
    elf = ELFFile(stream)
    header = elf.header
    machine = _machine_number(header["e_machine"])
    facts = ElfFacts(
        machine=machine,
        elf_class=elf.elfclass // 32,
        byte_order="little" if elf.little_endian else "big",
        machine_name=describe_e_machine(header["e_machine"]),
    )
    if machine != EM_ARM or elf.elfclass != 32:
        return facts
    attributes = _arm_attributes(elf)
    return dataclasses.replace(
        facts,
        arm_cpu_arch=attributes.get("TAG_CPU_ARCH"),
        float_abi=_arm_float_abi(int(header["e_flags"]), attributes.get("TAG_ABI_VFP_ARGS", 0)),
        asks_cpu_features=_imports_any(elf, _CPU_FEATURE_QUERIES),
    )


def _machine_number(value: object) -> int:
    """pyelftools names known machines (``EM_ARM``); unknown ones stay numbers."""
    if isinstance(value, int):
        return value
    return int(ENUM_E_MACHINE[str(value)])


def _arm_attributes(elf: ELFFile) -> dict[str, int]:
    """The integer attributes of file scope in the ``aeabi`` subsection of ``.ARM.attributes``
    (absent attributes have the value 0, which the callers apply where it matters)."""
    found: dict[str, int] = {}
    for section in elf.iter_sections():
        if not isinstance(section, ARMAttributesSection):
            continue
        for subsection in section.iter_subsections("aeabi"):
            for subsubsection in subsection.iter_subsubsections("TAG_FILE"):
                for attribute in subsubsection.iter_attributes():
                    if isinstance(attribute.value, int):
                        found.setdefault(attribute.tag, attribute.value)
    return found


def _imports_any(elf: ELFFile, names: frozenset[str]) -> bool:
    """Whether the file's dynamic symbol table imports (holds undefined) any of ``names``."""
    dynsym = elf.get_section_by_name(".dynsym")
    if not isinstance(dynsym, SymbolTableSection):
        return False
    return any(
        symbol["st_shndx"] == "SHN_UNDEF" and symbol.name in names
        for symbol in dynsym.iter_symbols()
    )


def _arm_float_abi(e_flags: int, vfp_args: int) -> FloatAbi | None:
    """EABI version 5 files say it in ``e_flags`` (the GNU linker sets one of the two bits);
    other files (relocatable objects, the old GNU ABI) by ``Tag_ABI_VFP_args``."""
    if e_flags & E_FLAGS.EF_ARM_EABIMASK == E_FLAGS.EF_ARM_EABI_VER5:
        if e_flags & E_FLAGS.EF_ARM_ABI_FLOAT_HARD:
            return FloatAbi.HARD
        if e_flags & E_FLAGS.EF_ARM_ABI_FLOAT_SOFT:
            return FloatAbi.SOFT
    return _VFP_ARGS.get(vfp_args)


def elf_file_facts(data: bytes, *, what: str) -> ElfFacts | None:
    """The facts of an ELF file held in memory (``what`` names it in errors)."""
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        spool.write(data)
        spool.seek(0)
        return _read_named(spool, what)


def wheel_elf_members(wheel: Path, *, name: str = "") -> dict[str, ElfFacts]:
    """Every ELF file inside a wheel, by archive path; an ELF member that cannot be parsed
    raises :class:`IntegrityError` naming it (and the wheel as ``name``, default its file's)."""
    found: dict[str, ElfFacts] = {}
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            with archive.open(info) as member:
                if member.read(4) != ELF_MAGIC:
                    continue
            # seekable and without re-inflating the member for every backward seek
            with (
                tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool,
                archive.open(info) as member,
            ):
                shutil.copyfileobj(member, spool)
                spool.seek(0)
                facts = _read_named(spool, f"{name or wheel.name}: {info.filename}")
            if facts is not None:
                found[info.filename] = facts
    return found


def _read_named(stream: IO[bytes], what: str) -> ElfFacts | None:
    try:
        return read_elf(stream)
    except (ELFError, ValueError, EOFError, KeyError) as exc:
        raise IntegrityError(
            f"{what} starts like an ELF file but cannot be read as one ({exc}); it is damaged "
            "or not what it claims to be. Rebuild it, or ask its publisher."
        ) from None
