"""Every failure prewheel reports on purpose, each with its own exit code.

The library raises these; only :mod:`builder.cli` prints them and exits. Messages are one
paragraph that says what went wrong and what to do about it.
"""

from __future__ import annotations

import enum
import re


class ExitCode(enum.IntEnum):
    """Process exit codes, stable and documented in the README."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    REQUIREMENTS = 3
    NOT_ON_INDEX = 4
    INDEX_UNREACHABLE = 5
    INDEX_MALFORMED = 6
    WOULD_COMPILE = 7
    BUILDS_FAILED = 8
    ENVIRONMENT = 9
    INTEGRITY = 10
    PUBLISH_CONFLICT = 11
    VERIFY_FAILED = 12
    INDEX_BUSY = 13
    TREE_DAMAGED = 14
    IMAGE_MISMATCH = 15
    NO_EMULATION = 16
    BUILD_CYCLE = 17
    INTERRUPTED = 130


# user:password@ after a URL scheme (a login in an index URL, perhaps from ${TOKEN})
_LOGIN_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/@\s]*@")


def redact_logins(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``****``,
    as pip shows URLs: no message prewheel prints or raises carries a token."""
    return _LOGIN_IN_URL.sub(r"\g<scheme>\g<user>:****@", text)


class PrewheelError(Exception):
    """Base class: an error with a user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str) -> None:
        message = redact_logins(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PrewheelError):
    """Bad command-line option or configuration value."""

    exit_code = ExitCode.USAGE


class RequirementsError(PrewheelError):
    """The requirements input cannot be used: malformed, unpinned, missing include, cycle."""

    exit_code = ExitCode.REQUIREMENTS


class NotOnIndexError(PrewheelError):
    """A project or a pinned version does not exist on any configured index."""

    exit_code = ExitCode.NOT_ON_INDEX


class IndexUnreachableError(PrewheelError):
    """The index could not be reached or kept failing (5xx) after retries."""

    exit_code = ExitCode.INDEX_UNREACHABLE


class IndexMalformedError(PrewheelError):
    """The index answered with a page that is not valid PEP 503 HTML or PEP 691 JSON."""

    exit_code = ExitCode.INDEX_MALFORMED


class WouldCompileError(PrewheelError):
    """``plan --check``: at least one cell would compile from source."""

    exit_code = ExitCode.WOULD_COMPILE


class BuildsFailedError(PrewheelError):
    """One or more wheel builds failed (the others were still attempted)."""

    exit_code = ExitCode.BUILDS_FAILED


class HostEnvironmentError(PrewheelError):
    """The host lacks something prewheel needs: Docker daemon, binfmt handler, a tool."""

    exit_code = ExitCode.ENVIRONMENT


class ImageUnavailableError(HostEnvironmentError):
    """A build step's image is missing, cannot be pulled, or is for another platform."""


class EmulationUnavailableError(HostEnvironmentError):
    """A foreign platform's containers cannot run here: its QEMU binfmt handler is missing or
    disabled (the message names it and what registers it)."""

    exit_code = ExitCode.NO_EMULATION


class IntegrityError(PrewheelError):
    """A downloaded or uploaded file does not match its expected hash or is not a valid wheel."""

    exit_code = ExitCode.INTEGRITY


class PublishConflictError(PrewheelError):
    """The destination index already has a file of that name with different content."""

    exit_code = ExitCode.PUBLISH_CONFLICT


class VerifyFailedError(PrewheelError):
    """``prewheel verify``: installing or importing in a target image failed."""

    exit_code = ExitCode.VERIFY_FAILED


class IndexBusyError(PrewheelError):
    """Another writer held the index (its lock, or a server answering 503) for too long."""

    exit_code = ExitCode.INDEX_BUSY


class TreeDamagedError(PrewheelError):
    """``prewheel index --check``: the static tree disagrees with its catalog."""

    exit_code = ExitCode.TREE_DAMAGED


class ImageMismatchError(PrewheelError):
    """A build image's own code cannot run on the target (an ARMv7 image for linux/arm/v6, a
    hard-float image for a soft-float target): refused before anything is built in it."""

    exit_code = ExitCode.IMAGE_MISMATCH


class BuildCycleError(PrewheelError):
    """Packages to build need each other to build (a cycle in their build requirements): no
    order builds them."""

    exit_code = ExitCode.BUILD_CYCLE
