"""Checks that code really is for its target: a built wheel's name, version, tags and machine
code (:func:`check_wheel`), an upstream wheel's code (:func:`check_wheel_code`), and a build
image's own code before anything is built in it (:func:`check_image_code`).

Pure functions over files and facts: under QEMU an armv6 build may silently produce armv7 code
or an ``armv8l`` tag, a hard-float compiler makes code a soft-float target cannot load, and a
build for the wrong platform would be served to every user. The machine-code facts come from
:mod:`builder.elf`, what each target needs from :mod:`builder.targets`.

A linux/arm/v7 wheel's object that records ARMv8-A (or a later A profile) is accepted where it
asks the kernel for the CPU's features at run time (imports ``getauxval``): code that
dispatches (NumPy compiles its ARMv8 kernels beside ARMv7 ones and picks one per CPU), whose
record is the newest of its parts (:attr:`builder.targets.Arch.arm_dispatched_cpu_archs`).
Nothing here proves its baseline is ARMv7: :func:`check_wheel_code` returns a sentence for
each such member, and ``prewheel verify`` under QEMU imports the wheel's top-level modules on
a CPU of the target's generation (:attr:`builder.targets.Arch.qemu_cpu`), where code that
needs ARMv8 unconditionally dies. Nothing is excused for linux/arm/v6.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from ..elf import ElfFacts, wheel_elf_members
from ..errors import ImageMismatchError, IntegrityError
from ..targets import Arch, FloatAbi, Target
from .toolchain import ImageFacts

_CLASS_BITS = {1: "32-bit", 2: "64-bit"}


class CodeProblem(enum.Enum):
    """How code fails to fit a target, from the most to the least fundamental."""

    MACHINE = "machine"  # another e_machine, class or byte order: another architecture
    CPU = "cpu"  # 32-bit ARM for a newer CPU than the target's (Tag_CPU_arch)
    FLOAT_ABI = "float-abi"  # 32-bit ARM of the other float ABI


def code_problem(facts: ElfFacts, target: Target) -> CodeProblem | None:
    """What keeps code with ``facts`` from running on ``target``, or None if nothing does.

    Code that does not record its ARM architecture (no ``.ARM.attributes``) or that commits to
    neither float ABI (``Tag_ABI_VFP_args`` 2 or 3 outside an EABI5 ``e_flags``) is not judged
    by that fact."""
    machine, elf_class = target.arch.elf_machine
    if (facts.machine, facts.elf_class, facts.byte_order) != (
        machine,
        elf_class,
        target.arch.byte_order,
    ):
        return CodeProblem.MACHINE
    if not target.arch.is_32bit_arm:
        return None
    if facts.arm_cpu_arch is not None and facts.arm_cpu_arch not in target.arch.arm_cpu_archs:
        return CodeProblem.CPU
    if facts.float_abi is not None and facts.float_abi is not target.float_abi:
        return CodeProblem.FLOAT_ABI
    return None


def dispatches_newer_code(facts: ElfFacts, target: Target) -> bool:
    """Whether ``facts`` record a newer ARM CPU than ``target``'s of the kind code that holds
    kernels for newer CPUs records, and the code asks for the CPU's features at run time (it
    imports ``getauxval``) to choose between them."""
    return facts.asks_cpu_features and facts.arm_cpu_arch in target.arch.arm_dispatched_cpu_archs


def _wheel_problem(facts: ElfFacts, target: Target) -> CodeProblem | None:
    """:func:`code_problem` for a wheel's member, whose runtime-dispatched newer CPU record
    is excused (its machine and float ABI are not)."""
    if dispatches_newer_code(facts, target):
        return code_problem(dataclasses.replace(facts, arm_cpu_arch=None), target)
    return code_problem(facts, target)


def _dispatch_note(member: str, facts: ElfFacts, target: Target) -> str:
    cpu = target.arch.qemu_cpu
    return (
        f"{member} records {facts.describe()}, newer than {target.identifier} runs, and asks "
        "the kernel for the CPU's features at run time (getauxval): accepted as code that "
        "chooses its kernels per CPU. Nothing here proves its baseline runs on "
        f"{target.identifier}: `prewheel verify` under QEMU imports the wheel's top-level "
        f"modules on a {cpu or 'CPU of its generation'}, where code that needs a newer CPU dies."
    )


def target_needs(target: Target, problem: CodeProblem) -> str:
    """What ``target`` needs in the respect ``problem`` names, in words."""
    arch = target.arch
    if problem is CodeProblem.MACHINE:
        machine, elf_class = arch.elf_machine
        return (
            f"ELF machine {machine} ({_CLASS_BITS[elf_class]}, {arch.byte_order}-endian) "
            f"for {arch.value}"
        )
    float_abi = f"{target.float_abi.value}-float" if target.float_abi else ""
    if problem is CodeProblem.CPU:
        return f"{arch.arm_cpu_needs}, {float_abi}"
    return f"{float_abi} code ({_float_abi_systems(target)})"


def _float_abi_systems(target: Target) -> str:
    """Systems whose images have the target's float ABI and run on its CPU."""
    if target.float_abi is FloatAbi.SOFT:
        return "Debian armel, Docker's linux/arm/v6 python images"
    if target.arch is Arch.ARMV6L:
        return "Raspberry Pi OS, Alpine armhf"
    return "Debian armhf, Raspberry Pi OS, Alpine"


def _other(abi: FloatAbi | None) -> str:
    return "soft" if abi is FloatAbi.HARD else "hard"


def _built_advice(problem: CodeProblem, target: Target) -> str:
    """What to do about a wheel prewheel built that does not fit."""
    if problem is CodeProblem.MACHINE:
        return (
            "The container did not run the target architecture: check --platform, the image's "
            "platform and the binfmt handlers."
        )
    if problem is CodeProblem.CPU:
        return (
            "It would die with 'Illegal instruction' there. Build in an image whose compiler "
            f"makes code for the target's CPU ({_float_abi_systems(target)}; for linux/arm/v6 "
            "never Debian armhf, whose code is ARMv7), and drop -march/-mcpu options for a "
            "newer CPU from CFLAGS or the package's settings."
        )
    return (
        "Hard- and soft-float code cannot be loaded into one process. Build in an image of the "
        f"target's float ABI, or, if the images you run are {_other(target.float_abi)}-float, "
        f"select that with --float-abi {_other(target.float_abi)}."
    )


def _upstream_advice(problem: CodeProblem, target: Target) -> str:
    """What to do about an upstream wheel whose tag promises code it does not hold."""
    what = {
        CodeProblem.MACHINE: "another architecture's code",
        CodeProblem.CPU: "code for a newer CPU (it would die with 'Illegal instruction')",
        CodeProblem.FLOAT_ABI: "code of the other float ABI (it would not load)",
    }[problem]
    return (
        f"Its tag accepts {target.identifier}, but it holds {what}, so it was not mirrored. "
        "Build the project for this target instead (add --no-binary <project> to the "
        "requirements file, plan again and build), or report it to the project."
    )


def check_wheel(wheel: Path, *, name: str, version: Version, target: Target) -> list[str]:
    """Raise :class:`IntegrityError` unless the built wheel fits ``target`` in every respect;
    return what :func:`check_wheel_code` notes."""
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
    return check_wheel_code(wheel, target)


def check_wheel_code(
    wheel: Path, target: Target, *, upstream: bool = False, name: str = ""
) -> list[str]:
    """Raise :class:`IntegrityError` naming the first ELF member of ``wheel`` that does not
    run on ``target``: its machine, class and byte order, and on 32-bit ARM its
    ``Tag_CPU_arch`` (unless it dispatches at run time: :func:`dispatches_newer_code`) and
    float ABI. ``upstream``: the wheel was downloaded, not built;
    ``name``: the wheel's file name, where ``wheel`` is a temporary file. Returns a sentence
    per member accepted as runtime-dispatched newer code, for the build log."""
    name = name or wheel.name
    notes: list[str] = []
    for member, facts in wheel_elf_members(wheel, name=name).items():
        problem = _wheel_problem(facts, target)
        if problem is None:
            if facts.arm_cpu_arch in target.arch.arm_dispatched_cpu_archs:
                notes.append(_dispatch_note(member, facts, target))
            continue
        advice = (_upstream_advice if upstream else _built_advice)(problem, target)
        raise IntegrityError(
            f"{name}: {member} is {facts.describe()}, but {target.identifier} "
            f"({target.docker_platform}) needs {target_needs(target, problem)}. {advice}"
        )
    return notes


# -- the build image ---------------------------------------------------------------------------
def check_image_code(image: str, facts: ImageFacts, target: Target) -> None:
    """Raise :class:`ImageMismatchError` if the build image's own code (its Python interpreter,
    read from its files) is for a newer ARM CPU than ``target``'s or of the other float ABI:
    whatever it compiles would be too. Images whose interpreter was not found pass."""
    if not target.arch.is_32bit_arm or facts.interpreter_code is None:
        return
    problem = code_problem(facts.interpreter_code, target)
    if problem is None:
        return
    raise ImageMismatchError(
        f"Image {image}{_described(facts)} cannot build for {target.identifier} "
        f"({target.docker_platform}): its {facts.interpreter} is "
        f"{facts.interpreter_code.describe()}, and what it compiles is too, but the target needs "
        f"{target_needs(target, problem)}. {_image_advice(problem, target)} Nothing was started."
    )


def _described(facts: ImageFacts) -> str:
    details = [d for d in (facts.pretty_name, facts.dpkg_arch and f"dpkg {facts.dpkg_arch}") if d]
    return f" ({', '.join(details)})" if details else ""


def _image_advice(problem: CodeProblem, target: Target) -> str:
    if problem is CodeProblem.MACHINE:
        return "Use an image of the target's platform (--image, with {debian_arch} per platform)."
    if target.arch is Arch.ARMV6L and problem is CodeProblem.CPU:
        return (
            "An armhf image (Debian armhf, the official images for linux/arm/v7) makes ARMv7 "
            "code. For linux/arm/v6 use a soft-float armel image (the official python images "
            "for linux/arm/v6, Debian armel), or a hard-float ARMv6 image (Raspberry Pi OS, "
            "Alpine armhf) together with --float-abi hard."
        )
    if problem is CodeProblem.CPU:
        return f"Use an image whose code is for {target.arch.docker_platform}."
    return (
        f"Use such an image, or, if the images you run are {_other(target.float_abi)}-float "
        f"like this one, select --float-abi {_other(target.float_abi)}."
    )
