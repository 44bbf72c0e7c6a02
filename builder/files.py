"""Small file and process helpers shared by the wheelhouse, the builders, the index and the lock."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import secrets
import tempfile
import threading
from pathlib import Path

_CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"
_OWNER_SUFFIX = ".owner"
_owners: dict[Path, tuple[str, int]] = {}  # directory -> (this process's token, locked fd)
_owners_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes, *, prefix: str) -> None:
    """Replace ``path`` atomically: a temp file named ``prefix...`` in its directory (created if
    missing), fsync, mode 0644, os.replace. The temp file never outlives the call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temp).chmod(0o644)
        Path(temp).replace(path)
    finally:
        Path(temp).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (perhaps another user's)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # no such process, or not a pid
        return False
    except PermissionError:
        return True
    return True


def temp_owner_token(directory: Path) -> str:
    """This process's token for temp files under ``directory`` (``.tmp-<token>-...``).

    The process holds an exclusive ``flock`` on ``directory/.tmp-<token>.owner`` for as long as
    it lives; the kernel drops it when the process dies, however it dies and whatever PID
    namespace it ran in (a container sharing the directory), so :func:`temp_owner_alive` is
    right where comparing process ids is not. The owner file is removed at a normal exit.
    """
    key = directory.resolve()
    with _owners_lock:
        if key not in _owners:
            key.mkdir(parents=True, exist_ok=True)
            token = "o" + secrets.token_hex(6)  # never all digits: those are older pid names
            # Locked under a name no scan looks at, then renamed into place, so no scan ever
            # sees it unlocked.
            pending = key / f".pending-{token}{_OWNER_SUFFIX}"
            descriptor = os.open(pending, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            pending.rename(key / f"{TEMP_PREFIX}{token}{_OWNER_SUFFIX}")
            if not _owners:
                atexit.register(_release_owners)
            _owners[key] = (token, descriptor)
        return _owners[key][0]


def _release_owners() -> None:
    with _owners_lock:
        for directory, (token, descriptor) in _owners.items():
            with contextlib.suppress(OSError):
                (directory / f"{TEMP_PREFIX}{token}{_OWNER_SUFFIX}").unlink()
                os.close(descriptor)
        _owners.clear()


def temp_token(name: str) -> str | None:
    """The owner token in a temp file's name (``.tmp-<token>-...`` or an owner file)."""
    if not name.startswith(TEMP_PREFIX):
        return None
    rest = name.removeprefix(TEMP_PREFIX).removesuffix(_OWNER_SUFFIX)
    return rest.partition("-")[0] or None


def temp_owner_alive(directory: Path, token: str) -> bool:
    """Whether the process that made temp files with ``token`` under ``directory`` still runs
    (it still holds its owner file's lock). Names of older versions carried a process id."""
    key = directory.resolve()
    if _owners.get(key, ("",))[0] == token:
        return True
    if token.isdigit():
        return pid_alive(int(token))
    try:
        descriptor = os.open(
            key / f"{TEMP_PREFIX}{token}{_OWNER_SUFFIX}", os.O_RDONLY | os.O_CLOEXEC
        )
    except FileNotFoundError:
        return False
    except OSError:
        return True  # another user's, unreadable: cannot tell, so never delete its files
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
