"""builder.files: the one atomic writer. A reader sees the old file or the new one, never part
of one; a failure leaves the old file and no temp file behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder import files
from builder.files import TEMP_PREFIX, atomic_write, atomic_writer

_SIZE = 4 << 20  # large enough that a write is many system calls, not one


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_a_reader_during_a_write_sees_the_old_file_then_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    atomic_write(path, b"a" * _SIZE)
    with atomic_writer(path) as stream:
        stream.write(b"b" * (_SIZE // 2))
        stream.flush()  # half of the new bytes are on disk, under the temp file's name
        assert path.read_bytes() == b"a" * _SIZE
        stream.write(b"b" * (_SIZE // 2))
        assert path.read_bytes() == b"a" * _SIZE
    assert path.read_bytes() == b"b" * _SIZE
    assert _leftovers(tmp_path) == []


_READER = textwrap.dedent(
    """
    import sys, time
    path, until = sys.argv[1], time.monotonic() + float(sys.argv[2])
    seen, torn = set(), 0
    while time.monotonic() < until:
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            torn += 1  # a replace never leaves the name missing
            continue
        if len(data) != int(sys.argv[3]) or data.count(data[:1]) != len(data):
            torn += 1
        else:
            seen.add(data[:1])
    print(torn, len(seen))
    """
)


@pytest.mark.parametrize("writer", ["atomic_write", "in place"])
def test_a_concurrent_reader_process_never_sees_a_partial_file(tmp_path: Path, writer: str) -> None:
    """Another process reads while this one rewrites the file with alternating content; every
    read is one whole version. The same reader does catch a writer that writes in place (the
    check can fail)."""
    path = tmp_path / "catalog.json"
    path.write_bytes(b"0" * _SIZE)
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path), "3", str(_SIZE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ends = time.monotonic() + 3
    version = 0
    while time.monotonic() < ends:
        version += 1
        data = str(version % 10).encode() * _SIZE
        if writer == "atomic_write":
            atomic_write(path, data, durable=False)
        else:
            with path.open("wb") as stream:
                for start in range(0, _SIZE, 1 << 16):
                    stream.write(data[start : start + (1 << 16)])
    output, _ = reader.communicate(timeout=30)
    torn, versions = map(int, output.split())
    if writer == "atomic_write":
        assert torn == 0
        assert versions > 1  # it did read while versions changed
        assert _leftovers(tmp_path) == []
    else:
        assert torn > 0


def test_an_exception_in_the_block_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "requirements.lock"
    atomic_write(path, "old\n")
    with pytest.raises(RuntimeError), atomic_writer(path) as stream:
        stream.write(b"half of the new")
        raise RuntimeError("the download's sha256 is wrong")
    assert path.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_a_write_the_file_system_refuses_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path,
) -> None:
    """A real I/O failure (the file-size limit, as a full disk would fail it: EFBIG) in another
    process: the error reaches the caller, the old file stays whole."""
    path = tmp_path / "manifest.json"
    atomic_write(path, b"old")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from builder.files import atomic_write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not the signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
        try:
            atomic_write(Path({str(path)!r}), b"new" * (1 << 20))
        except OSError as error:
            print("refused", error.errno)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split()[0] == "refused", result.stdout + result.stderr
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_rename_that_fails_leaves_no_temp_file(tmp_path: Path) -> None:
    taken = tmp_path / "index.html"
    (taken / "inside").mkdir(parents=True)  # a non-empty directory cannot be replaced
    with pytest.raises(OSError):
        atomic_write(taken, b"page")
    assert (taken / "inside").is_dir()
    assert _leftovers(tmp_path) == []


def test_mode_prefix_parents_and_only_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "entry.json"
    assert atomic_write(path, "é\n") is True  # text is UTF-8; missing parents are made
    assert path.read_bytes() == "é\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert atomic_write(path, b"x", mode=0o600) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert atomic_write(path, b"x", only_if_changed=True) is False
    assert path.stat().st_mtime_ns == before  # untouched
    assert atomic_write(path, b"y", only_if_changed=True) is True
    with atomic_writer(path, prefix=".tmp-owner-") as stream:
        [temp] = [p for p in path.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
        assert temp.name.startswith(".tmp-owner-")  # what a scan for leftovers looks for
        stream.write(b"z")
    assert path.read_bytes() == b"z"


def test_durable_writes_fsync_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file")
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", spy)
    atomic_write(tmp_path / "lock", b"durable")
    assert synced == ["file", "directory"]
    synced.clear()
    atomic_write(tmp_path / "cache", b"not durable", durable=False)
    assert synced == []
