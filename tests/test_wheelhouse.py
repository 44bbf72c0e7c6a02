"""The wheelhouse: atomic, locked, content-addressed; concurrent writers lose nothing."""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from index_fixtures import make_wheel as make_valid_wheel

from builder.cli import main
from builder.errors import ExitCode, IntegrityError, PublishConflictError, UsageError
from builder.files import temp_owner_token
from builder.index.static import StaticIndex
from builder.wheelhouse import Wheelhouse


def make_wheel(directory: Path, name: str = "pkg", version: str = "1.0", payload: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", payload)
    return path


def add(house: Wheelhouse, wheel: Path, key: str, log: Path | None = None) -> None:
    name, version = wheel.name.split("-")[:2]
    house.add(
        wheel,
        name=name,
        version=version,
        target="cp311-manylinux_2_36_x86_64",
        cache_key=key,
        inputs={"sdist_sha256": key},
        builder="test",
        log=log,
    )


def test_add_then_lookup_round_trips(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wh")
    log = house.add_log("pkg-1.0-cp311-manylinux_2_36_x86_64", _text(tmp_path / "l", "built\n"))
    add(house, make_wheel(tmp_path / "in"), "k1", log)
    entry = house.lookup("k1")
    assert entry is not None
    assert entry.filename == "pkg-1.0-cp311-cp311-linux_x86_64.whl"
    assert entry.log == "logs/pkg-1.0-cp311-manylinux_2_36_x86_64.log"
    assert house.wheels() == [house.wheel_path(entry)]
    assert house.wheel_path(entry).read_bytes() == (tmp_path / "in" / entry.filename).read_bytes()
    assert house.lookup("other") is None
    manifest = json.loads(house.manifest_path.read_text())
    assert set(manifest[0]) >= {
        "filename",
        "sha256",
        "size",
        "name",
        "version",
        "target",
        "cache_key",
        "inputs",
        "built_at",
        "builder",
        "log",
    }


def test_no_temp_files_remain_after_writes(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wh")
    add(house, make_wheel(tmp_path / "in"), "k1")
    leftovers = list((tmp_path / "wh").rglob(".tmp-*"))
    # only this (live) process's owner file, which a normal exit removes
    assert [p.name for p in leftovers] == [f".tmp-{temp_owner_token(house.path)}.owner"]
    script = (
        "import sys; from pathlib import Path; from builder.wheelhouse import Wheelhouse; "
        "Wheelhouse(Path(sys.argv[1])).scratch_dir().cleanup()"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "other")], check=True)
    assert list((tmp_path / "other").rglob(".tmp-*")) == []


def test_a_corrupted_wheel_is_not_a_cache_hit(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wh")
    add(house, make_wheel(tmp_path / "in"), "k1")
    wheel = house.wheels()[0]
    data = bytearray(wheel.read_bytes())
    data[-1] ^= 0xFF
    wheel.write_bytes(bytes(data))
    assert house.lookup("k1") is None
    wheel.unlink()
    assert house.lookup("k1") is None


def test_rebuilding_a_file_replaces_its_entry(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wh")
    add(house, make_wheel(tmp_path / "a", payload="old"), "old-key")
    add(house, make_wheel(tmp_path / "b", payload="new"), "new-key")
    assert [e.cache_key for e in house.entries()] == ["new-key"]
    assert house.lookup("old-key") is None


def test_a_rebuild_of_the_same_cell_supersedes_the_old_wheel(tmp_path: Path) -> None:
    """Other inputs (a setting, an image) may give another file name for the same cell: the
    old wheel must go, or an index made from the wheelhouse would list both."""
    house = Wheelhouse(tmp_path / "wh")
    add(house, make_wheel(tmp_path / "a"), "pure-fallback")
    add(house, make_wheel(tmp_path / "other", name="neighbour"), "neighbour-key")
    repaired = tmp_path / "b" / "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    make_wheel(tmp_path / "b").rename(repaired)
    add(house, repaired, "with-libyaml")
    assert sorted(e.cache_key for e in house.entries()) == ["neighbour-key", "with-libyaml"]
    assert [p.name for p in house.wheels()] == [
        "neighbour-1.0-cp311-cp311-linux_x86_64.whl",
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]


def _armv6_wheel(directory: Path, payload: str) -> Path:
    return make_valid_wheel(
        directory,
        "armext",
        "1.0",
        tag="cp311-cp311-linux_armv6l",
        extra_members={"armext/__init__.py": payload.encode()},
    )


def _armv6_wheelhouse(tmp_path: Path) -> Wheelhouse:
    """armext 1.0 built for glibc 2.31 and 2.36 armv6l (keys key-2_31, key-2_36): one file
    name, two contents (each wheel's module holds its glibc)."""
    house = Wheelhouse(tmp_path / "wh")
    for glibc in ("2_31", "2_36"):
        house.add(
            _armv6_wheel(tmp_path / glibc, payload=glibc),
            name="armext",
            version="1.0",
            target=f"cp311-glibc_{glibc}_armv6l",
            cache_key=f"key-{glibc}",
            inputs={},
            builder="test",
        )
    return house


def test_two_glibc_versions_of_one_arm_v6_wheel_are_both_kept(tmp_path: Path) -> None:
    """linux_armv6l does not say which glibc a wheel needs: the glibc 2.31 and 2.36 builds
    share a file name but not their bytes, and neither may replace the other."""
    house = _armv6_wheelhouse(tmp_path)
    old, new = (house.lookup(f"key-{glibc}") for glibc in ("2_31", "2_36"))
    assert old is not None and new is not None
    assert old.filename == new.filename and old.sha256 != new.sha256
    assert {house.wheel_path(old).parent.name, house.wheel_path(new).parent.name} == {
        "cp311-glibc_2_31_armv6l",
        "cp311-glibc_2_36_armv6l",
    }
    assert len(house.wheels()) == 2
    assert house.wheels(targets=["cp311-glibc_2_36_armv6l"]) == [house.wheel_path(new)]
    with zipfile.ZipFile(house.wheel_path(old)) as archive:
        assert archive.read("armext/__init__.py") == b"2_31"
    # one index cannot serve both: pip picks by tag, and the tag is the same
    with pytest.raises(
        PublishConflictError, match=re.escape("armext-1.0-cp311-cp311-linux_armv6l.whl")
    ):
        StaticIndex(tmp_path / "index").sync(house.wheels())
    with pytest.raises(UsageError, match="--target cp311-glibc_2_31_armv6l, then --target"):
        house.wheels_for_one_index()
    assert house.wheels_for_one_index(["cp311-glibc_2_31_armv6l"]) == [house.wheel_path(old)]
    # a manylinux wheel names its glibc floor itself: one flat file for every target
    manylinux = make_wheel(tmp_path / "m", "flat")
    manylinux = manylinux.rename(
        manylinux.with_name("flat-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    )
    add(house, manylinux, "flat-key")
    assert (house.wheels_dir / manylinux.name).is_file()


_HOLD_SCRATCH = """
import sys, time
from pathlib import Path
from builder.wheelhouse import Wheelhouse
house = Wheelhouse(Path(sys.argv[1]))
scratch = house.scratch_dir()
(Path(scratch.name) / "partial.whl").write_bytes(b"partial")
print(scratch.name, flush=True)
time.sleep(600)
"""


def _process_with_a_scratch_dir(house: Wheelhouse) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRATCH, str(house.path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_temp_files_of_killed_processes_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    """Judged by the owner's lock, not by process ids (which another PID namespace, such as a
    container sharing the wheelhouse, reuses)."""
    house = Wheelhouse(tmp_path / "wh")
    killed, killed_scratch = _process_with_a_scratch_dir(house)
    alive, alive_scratch = _process_with_a_scratch_dir(house)
    try:
        killed.kill()
        killed.wait(30)
        legacy = house.path / ".tmp-999999999-abc"  # an older version's name: a dead pid
        legacy.write_bytes(b"partial")
        assert house.remove_stale_temp_files() == 2
        assert not killed_scratch.exists() and not legacy.exists()
        assert alive_scratch.exists()
        owners = sorted(p.name for p in house.path.glob(".tmp-*.owner"))
        assert owners == [f".tmp-{alive_scratch.name.removeprefix('.tmp-').split('-')[0]}.owner"]
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()
    assert house.remove_stale_temp_files() == 1
    assert list(house.path.glob(".tmp-*")) == []
    assert house.wheels() == []


def test_an_unreadable_manifest_is_reported(tmp_path: Path) -> None:
    house = Wheelhouse(tmp_path / "wh")
    house.path.mkdir()
    house.manifest_path.write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        house.entries()


def test_merge_brings_in_wheels_logs_and_entries(tmp_path: Path) -> None:
    shard_a, shard_b = Wheelhouse(tmp_path / "a"), Wheelhouse(tmp_path / "b")
    log = shard_a.add_log("a-1.0-x", _text(tmp_path / "la", "log a\n"))
    add(shard_a, make_wheel(tmp_path / "in", "a"), "ka", log)
    add(shard_b, make_wheel(tmp_path / "in", "b"), "kb")
    merged = Wheelhouse(tmp_path / "merged")
    merged.merge([shard_a.path, shard_b])
    assert {e.cache_key for e in merged.entries()} == {"ka", "kb"}
    assert merged.lookup("ka") is not None and merged.lookup("kb") is not None
    assert (merged.path / "logs" / "a-1.0-x.log").read_text() == "log a\n"
    with pytest.raises(UsageError):
        merged.merge([merged.path])


def test_merge_refuses_a_shard_whose_wheel_does_not_match(tmp_path: Path) -> None:
    shard = Wheelhouse(tmp_path / "a")
    add(shard, make_wheel(tmp_path / "in", "a"), "ka")
    shard.wheels()[0].write_bytes(b"garbage")
    with pytest.raises(IntegrityError, match="rebuild that shard"):
        Wheelhouse(tmp_path / "merged").merge([shard])


def _writer(path: str, index: int, count: int) -> None:
    house = Wheelhouse(Path(path))
    for n in range(count):
        name = f"p{index}x{n}"
        add(house, make_wheel(Path(path).parent / f"src{index}", name), f"key-{name}")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "wh")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, i, 8)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    house = Wheelhouse(Path(path))
    assert len(house.entries()) == 32
    assert len(house.wheels()) == 32
    assert all(house.lookup(e.cache_key) for e in house.entries())


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_older_manifests_are_flat_and_a_stored_path_is_never_taken_on_trust(
    tmp_path: Path,
) -> None:
    house = Wheelhouse(tmp_path / "wh")
    add(house, make_wheel(tmp_path / "in"), "k1")
    manifest = json.loads(house.manifest_path.read_text())
    [entry] = manifest
    assert entry["stored"] == "cp311-manylinux_2_36_x86_64/pkg-1.0-cp311-cp311-linux_x86_64.whl"
    flat = {k: v for k, v in entry.items() if k != "stored"}  # as written before
    house.manifest_path.write_text(json.dumps([flat]))
    [old] = house.entries()
    assert house.wheel_path(old) == house.wheels_dir / old.filename
    escaping = dict(entry, stored="../../elsewhere/pkg-1.0-cp311-cp311-linux_x86_64.whl")
    house.manifest_path.write_text(json.dumps([escaping]))
    with pytest.raises(IntegrityError, match="not where prewheel keeps it"):
        house.entries()


def test_index_and_publish_take_one_targets_wheels_with_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    house = _armv6_wheelhouse(tmp_path)
    tree = str(tmp_path / "tree")
    assert main(["index", str(house.path), "-o", tree]) == ExitCode.USAGE
    assert "--target cp311-glibc_2_31_armv6l" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "tree" / "files").exists()  # nothing half-listed
    assert main(["index", str(house.path), "-o", tree, "--target", "cp311-glibc_2_36_armv6l"]) == 0
    [listed] = (tmp_path / "tree" / "files").glob("*.whl")
    with zipfile.ZipFile(listed) as archive:
        assert archive.read("armext/__init__.py") == b"2_36"
    other = str(tmp_path / "other")
    assert main(["publish", str(house.path), "--static", other, "--target", "nope"]) == (
        ExitCode.USAGE
    )
    assert "has no wheel built for nope" in capsys.readouterr().err
