"""Whether this host runs a platform's containers: natively, or through a QEMU binfmt handler.

A container for a foreign platform runs its programs through the QEMU handler the kernel has
registered in ``binfmt_misc`` for that architecture's ELF files. Without it the container's
first program fails with ``exec format error``, deep inside a build or a verification; the
check here names the missing handler, and what registers it, before anything starts. The
handler of each architecture and which architectures a CPU runs natively are facts of
:mod:`builder.targets`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EmulationUnavailableError
from .targets import Arch

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def shares_this_kernel(daemon_info: Mapping[str, Any]) -> bool:
    """Whether the Docker daemon that answered ``info`` runs its containers on this machine's
    kernel, so that this machine's ``binfmt_misc`` is the one its containers use: it reports
    this host's name. Docker Desktop, colima, a context's or a remote daemon report their VM or
    machine; their emulation is theirs to provide (a missing handler then shows as ``exec
    format error`` in the build log)."""
    return str(daemon_info.get("Name", "")) == socket.gethostname()


def handler_state(handler: str, binfmt_dir: Path = BINFMT_DIR) -> str:
    """``enabled``, ``disabled`` or ``missing``: the handler's entry in ``binfmt_dir``."""
    try:
        first_line = (binfmt_dir / handler).read_text(errors="replace").partition("\n")[0]
    except OSError:
        return "missing"
    return "disabled" if first_line.strip() == "disabled" else "enabled"


def require_emulation(
    arch: Arch,
    *,
    host_machine: str,
    binfmt_dir: Path = BINFMT_DIR,
    doing: str = "Building",
    alternative: str = "",
) -> None:
    """Raise :class:`EmulationUnavailableError` if containers of ``arch`` cannot run on a
    ``host_machine`` CPU: the arch is foreign and its handler is missing or disabled."""
    platform = arch.docker_platform
    host = Arch.from_machine(host_machine)
    if host is not None and arch.runs_natively_on(host):
        return
    handler = arch.qemu_handler
    state = handler_state(handler, binfmt_dir)
    if state == "enabled":
        return
    raise EmulationUnavailableError(
        f"{doing} for {platform} on this {host_machine} host needs QEMU emulation, but the "
        f"binfmt handler {handler} is {_describe(state)} in {binfmt_dir}. "
        f"{fix_command(arch, state, binfmt_dir)}{alternative}"
    )


def fix_command(arch: Arch, state: str, binfmt_dir: Path = BINFMT_DIR) -> str:
    """What to run (as root) to make ``arch``'s handler work, as one or two sentences."""
    handler = arch.qemu_handler
    if state == "disabled":
        return f"Enable it with `echo 1 > {binfmt_dir / handler}` (as root)."
    return (
        f"Register it (as root) with `update-binfmts --enable {handler}` (Debian/Ubuntu, "
        f"packages qemu-user-static and binfmt-support) or `docker run --privileged --rm "
        f"tonistiigi/binfmt --install {arch.binfmt_install_name}`; in a prewheel checkout, "
        "scripts/host-setup.sh registers every handler prewheel's platforms need."
    )


def _describe(state: str) -> str:
    return "registered but disabled" if state == "disabled" else "not registered"
