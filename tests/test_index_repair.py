"""Issue 12: the static tree is repaired whenever it disagrees with its catalog, one file per
(project, version, tags), all-or-nothing batches, lock waits that end as "busy"."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import filelock
import httpx
import pytest
from index_fixtures import VENV_BIN, isolated_env, make_wheel, serving_prewheel
from index_fixtures.tree import assert_tree_sound

from builder.cli import main
from builder.errors import ExitCode, PublishConflictError
from builder.index.static import JSON_CONTENT_TYPE, StaticIndex

TOKEN = "tok-repair-0123456789"


def _prewheel(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "prewheel"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _upload(base: str, wheel: Path, filename: str | None = None) -> httpx.Response:
    return httpx.post(
        base,
        data={
            ":action": "file_upload",
            "sha256_digest": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        },
        files={"content": (filename or wheel.name, wheel.read_bytes())},
        auth=("__token__", TOKEN),
        timeout=60,
    )


def _serve(root: Path, log: Path):  # type: ignore[no-untyped-def]
    return serving_prewheel(root, log=log, env={"PREWHEEL_SERVE_TOKEN": TOKEN})


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_fault1_a_missing_page_comes_back_on_reupload_index_and_serve_start(
    tmp_path: Path,
) -> None:
    """Deleting one project's index.json used to stay missing through all three."""
    wheelhouse = tmp_path / "wh"
    wheel = make_wheel(wheelhouse / "wheels", "paged", "1.0")
    root = tmp_path / "index"
    StaticIndex(root).sync([wheel])
    page = root / "simple" / "paged" / "index.json"

    page.unlink()
    assert main(["index", str(wheelhouse), "-o", str(root)]) == 0  # "already listed"
    assert_tree_sound(root)

    page.unlink()
    with _serve(root, tmp_path / "serve.log") as base:
        response = httpx.get(base + "simple/paged/", headers={"Accept": JSON_CONTENT_TYPE})
        assert response.status_code == 200
        page.unlink()
        assert _upload(base, wheel).text.startswith("unchanged")
        response = httpx.get(base + "simple/paged/", headers={"Accept": JSON_CONTENT_TYPE})
        assert response.status_code == 200
    assert_tree_sound(root)


def _litter(root: Path) -> list[Path]:
    """What killed writers leave: spool and temp files, an unlisted wheel, a half-done page."""
    incoming = root / ".prewheel" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    unlisted = make_wheel(root / "files", "ghost", "1.0")
    litter = [
        incoming / f".upload-{_dead_pid()}-00ff00ff00ff00ff",
        incoming / ".upload-0123456789abcdef",  # an older prewheel's spool name
        incoming / f".mirror-{_dead_pid()}-abcdefabcdefabcd",
        root / "files" / ".tmp-abc123",
        root / "simple" / ".tmp-def456",
        root / ".prewheel" / ".tmp-catalog",
        unlisted,
        root / "files" / f"{unlisted.name}.metadata",
    ]
    for path in litter:
        if not path.exists():
            path.write_bytes(b"x" * 1000)
    (root / ".prewheel" / "dirty").touch()
    (root / "simple" / "kept" / "index.html").write_text("stale")
    return litter


def test_fault2_check_reports_and_repair_removes_what_killed_writers_left(
    tmp_path: Path,
) -> None:
    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "wh", "kept", "1.0")])
    litter = _litter(root)

    check = _prewheel("index", "--check", "-o", str(root))
    assert check.returncode == ExitCode.TREE_DAMAGED, check.stderr
    for path in litter:
        assert path.relative_to(root).as_posix() in check.stderr, path
    assert "simple/kept/index.html" in check.stderr
    assert "--repair" in check.stderr
    assert all(path.exists() for path in litter)  # --check changes nothing

    repair = _prewheel("index", "--repair", "-o", str(root))
    assert repair.returncode == 0, repair.stderr
    assert not any(path.exists() for path in litter)
    assert_tree_sound(root)
    assert _prewheel("index", "--check", "-o", str(root)).returncode == 0


_HOLDER = """
import fcntl, os, sys
from pathlib import Path
from builder.index.static import StaticIndex

incoming, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "foreign":  # a writer in another PID namespace: its PID in the name means nothing here
    path = incoming / f".upload-{sys.argv[3]}-f0f0f0f0f0f0f0f0"
    incoming.mkdir(parents=True, exist_ok=True)
    stream = path.open("wb")
    fcntl.flock(stream, fcntl.LOCK_EX)
    spool = None
else:  # prewheel's own writer
    spool = StaticIndex(incoming.parent.parent).spool("mirror")
    path = spool.__enter__()
    stream = path.open("wb")
stream.write(b"half an upload")
stream.flush()
print(path, flush=True)
sys.stdin.read()  # write on until told to stop
stream.write(b" and the rest")
stream.close()
print(path.read_bytes().decode(), flush=True)
"""


def _holder(incoming: Path, *argv: str) -> tuple[subprocess.Popen[str], Path]:
    """A real second process that keeps writing a spool file (locked) until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(incoming), *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, "the holder did not start"
    return process, Path(line)


def test_fault2_repair_keeps_locked_spools_whatever_their_pid_and_removes_unlocked_ones(
    tmp_path: Path,
) -> None:
    """Spools used to be judged by the PID in their name: a live upload of a writer in another
    PID namespace (its PID unknown here) was deleted, and a leftover named after a PID that
    happens to exist here (a container's PID 1) was kept forever. Now the lock decides."""
    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "wh", "kept", "1.0")])
    incoming = root / ".prewheel" / "incoming"
    foreign, foreign_spool = _holder(incoming, "foreign", str(_dead_pid()))
    own, own_spool = _holder(incoming, "own")
    leftovers = [incoming / ".upload-1-0123456789abcdef", incoming / f".mirror-{os.getpid()}-ab"]
    for path in leftovers:
        path.write_bytes(b"left by a writer that died")
    try:
        check = _prewheel("index", "--check", "-o", str(root))
        assert check.returncode == ExitCode.TREE_DAMAGED, check.stderr
        for path in leftovers:
            assert path.name in check.stderr
        assert foreign_spool.name not in check.stderr and own_spool.name not in check.stderr
        repair = _prewheel("index", "--repair", "-o", str(root))
        assert repair.returncode == 0, repair.stderr
        assert not any(path.exists() for path in leftovers)
        assert foreign_spool.exists() and own_spool.exists()
        assert _upload_through_index(tmp_path, root)  # every writer repairs the same way
        assert foreign_spool.exists() and own_spool.exists()
    finally:
        outputs = [process.communicate("", timeout=30)[0] for process in (foreign, own)]
    assert [output.splitlines()[-1] for output in outputs] == ["half an upload and the rest"] * 2
    foreign_spool.unlink()  # a foreign writer cleans up after itself
    assert not own_spool.exists()  # prewheel's writer removed its own spool
    assert_tree_sound(root)


def _upload_through_index(tmp_path: Path, root: Path) -> bool:
    wheelhouse = tmp_path / "more"
    make_wheel(wheelhouse / "wheels", "more", "1.0")
    return _prewheel("index", str(wheelhouse), "-o", str(root)).returncode == 0


def test_fault2_serve_start_repairs_and_unlisted_files_are_not_served(tmp_path: Path) -> None:
    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "wh", "kept", "1.0")])
    _litter(root)
    with _serve(root, tmp_path / "serve.log") as base:
        assert httpx.get(base + "files/ghost-1.0-py3-none-any.whl").status_code == 404
        assert_tree_sound(root)
    assert "repaired at start-up" in (tmp_path / "serve.log").read_text()


def test_fault2_a_listed_wheel_that_vanished_is_unlisted_by_repair(tmp_path: Path) -> None:
    root = tmp_path / "index"
    wheelhouse = tmp_path / "wh"
    lost = make_wheel(wheelhouse / "wheels", "lost", "1.0")
    StaticIndex(root).sync([lost, make_wheel(wheelhouse / "wheels", "kept", "1.0")])
    (root / "files" / lost.name).write_bytes(b"altered")
    check = _prewheel("index", "--check", "-o", str(root))
    assert check.returncode == ExitCode.TREE_DAMAGED
    assert f"listed wheel missing or altered: files/{lost.name}" in check.stderr
    assert _prewheel("index", "--repair", "-o", str(root)).returncode == 0
    assert lost.name not in assert_tree_sound(root)
    assert main(["index", str(wheelhouse), "-o", str(root)]) == 0  # lists it again
    assert lost.name in assert_tree_sound(root)


_KILLED_AFTER_CATALOG = """
import os, signal, sys
from builder.cli import main
from builder.index.static import StaticIndex

save = StaticIndex._save_catalog

def save_then_die(self, catalog):
    save(self, catalog)
    os.kill(os.getpid(), signal.SIGKILL)  # killed before the pages are rendered again

StaticIndex._save_catalog = save_then_die
sys.exit(main(["index", "--repair", "-o", sys.argv[1]]))
"""


def test_a_repair_killed_after_saving_the_catalog_is_finished_by_the_next_upload(
    tmp_path: Path,
) -> None:
    """An explicit repair did not mark the tree dirty: killed after it had saved the catalog
    without a vanished wheel, it left pages linking that wheel, and uploads (which repair only
    a tree marked dirty) never fixed them."""
    root = tmp_path / "index"
    gone = make_wheel(tmp_path / "wh", "half", "1.0")
    kept = make_wheel(tmp_path / "wh", "half", "2.0")
    StaticIndex(root).sync([gone, kept])
    with _serve(root, tmp_path / "serve.log") as base:
        (root / "files" / gone.name).unlink()
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_CATALOG, str(root)], timeout=120, check=False
        )
        assert killed.returncode == -signal.SIGKILL
        assert gone.name not in (root / ".prewheel" / "catalog.json").read_text()
        page = root / "simple" / "half" / "index.html"
        assert gone.name in page.read_text()  # the kill left a link to the removed wheel
        assert (root / ".prewheel" / "dirty").exists()
        fresh = make_wheel(tmp_path / "up", "fresh", "1.0")
        assert _upload(base, fresh).text.startswith("added")
        assert gone.name not in httpx.get(base + "simple/half/").text
    catalog = assert_tree_sound(root)
    assert sorted(catalog) == sorted([fresh.name, kept.name])


def test_a_tree_without_its_catalog_is_not_wiped(tmp_path: Path) -> None:
    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "wh", "kept", "1.0")])
    (root / ".prewheel" / "catalog.json").unlink()
    result = _prewheel("index", "--repair", "-o", str(root))
    assert result.returncode == ExitCode.INTEGRITY
    assert "no .prewheel/catalog.json" in result.stderr
    assert (root / "files" / "kept-1.0-py3-none-any.whl").exists()


SPELLINGS = [
    "KERAS-1.0-py3-none-any.whl",
    "keras-1.0.0-py3-none-any.whl",
    "keras-01.0-py3-none-any.whl",
    "Keras-1.0-py3-none-any.whl",
]


def test_fault3_other_spellings_of_a_listed_wheel_are_conflicts(tmp_path: Path) -> None:
    root = tmp_path / "index"
    original = make_wheel(tmp_path / "a", "keras", "1.0")
    StaticIndex(root).sync([original])
    with _serve(root, tmp_path / "serve.log") as base:
        for i, spelling in enumerate(SPELLINGS):
            other = make_wheel(
                tmp_path / f"b{i}", "keras", "1.0", extra_members={"keras/x.py": b"%d" % i}
            )
            response = _upload(base, other, filename=spelling)
            assert response.status_code == 409, (spelling, response.text)
            assert str(root) not in response.text  # fault 12: no server path in the body
        # the same bytes under another spelling are the listed wheel: a no-op
        assert _upload(base, original, filename=SPELLINGS[0]).text.startswith("unchanged")
        kelvin = _upload(base, original, filename="\u212aeras-1.0-py3-none-any.whl")
        assert kelvin.status_code == 400
    catalog = assert_tree_sound(root)
    assert list(catalog) == [original.name]


def test_fault3_index_refuses_other_spellings_and_pages_list_each_version_once(
    tmp_path: Path,
) -> None:
    root = tmp_path / "index"
    index = StaticIndex(root)
    index.sync([make_wheel(tmp_path / "a", "keras", "1.0")])
    respelled = make_wheel(
        tmp_path / "b", "keras", "1.0", filename=SPELLINGS[1], extra_members={"keras/x.py": b""}
    )
    with pytest.raises(PublishConflictError, match=r"already listed as keras-1\.0-py3-none-any"):
        index.sync([respelled])
    other_tags = make_wheel(tmp_path / "c", "keras", "1.0.0", tag="cp311-cp311-linux_armv7l")
    index.sync([other_tags])
    page = json.loads((root / "simple" / "keras" / "index.json").read_text())
    assert page["versions"] == ["1.0"]
    assert len(page["files"]) == 2
    assert_tree_sound(root)


def test_fault3_complete_mode_refuses_a_respelled_upstream_file(tmp_path: Path) -> None:
    from builder.index.complete import HttpDownloader, UpstreamFile, mirror
    from builder.upstream.models import DistFile

    root = tmp_path / "index"
    StaticIndex(root).sync([make_wheel(tmp_path / "a", "keras", "1.0")])
    upstream = make_wheel(tmp_path / "up", "keras", "1.0", extra_members={"keras/u.py": b""})
    digest = hashlib.sha256(upstream.read_bytes()).hexdigest()
    respelled = DistFile(
        filename=SPELLINGS[1], url="http://127.0.0.1:9/never-fetched", hashes={"sha256": digest}
    )
    downloader = HttpDownloader()
    try:
        with pytest.raises(PublishConflictError, match="already lists the same wheel"):
            mirror(StaticIndex(root), [UpstreamFile(respelled)], downloader)
    finally:
        downloader.close()
    assert_tree_sound(root)


def test_fault6_index_cli_names_every_bad_wheel_and_lists_nothing(tmp_path: Path) -> None:
    wheels = tmp_path / "wh" / "wheels"
    make_wheel(wheels, "aaa-good", "1.0")
    make_wheel(wheels, "bbb-bad", "1.0", metadata_name="evil")
    make_wheel(wheels, "ccc-good", "1.0")
    make_wheel(wheels, "ddd-bad", "1.0", omit=["WHEEL"])
    root = tmp_path / "index"
    result = _prewheel("index", str(tmp_path / "wh"), "-o", str(root))
    assert result.returncode == ExitCode.INTEGRITY, result.stderr
    assert "bbb_bad-1.0" in result.stderr and "ddd_bad-1.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(root.rglob("*.whl"))  # validated before anything was written


def test_fault9_a_held_lock_is_busy_not_a_conflict(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wh"
    wheel = make_wheel(wheelhouse / "wheels", "waiting", "1.0")
    root = tmp_path / "index"
    StaticIndex(root).sync([])
    with (
        serving_prewheel(
            root,
            "--lock-timeout",
            "1",
            log=tmp_path / "serve.log",
            env={"PREWHEEL_SERVE_TOKEN": TOKEN},
        ) as base,
        filelock.FileLock(root / ".prewheel" / "lock"),
    ):
        index = _prewheel("index", str(wheelhouse), "-o", str(root), "--lock-timeout", "1")
        publish = _prewheel(
            "publish", str(wheelhouse), "--static", str(root), "--lock-timeout", "1"
        )
        upload = _upload(base, wheel)
        remote = subprocess.run(
            [str(VENV_BIN / "prewheel"), "publish", str(wheelhouse), "--repository-url", base],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **isolated_env(tmp_path),
                "TWINE_USERNAME": "__token__",
                "TWINE_PASSWORD": TOKEN,
                "HOME": str(tmp_path),
            },
        )
    for result in (index, publish, remote):
        assert result.returncode == ExitCode.INDEX_BUSY, result.stderr
        assert "busy" in result.stderr and "retry" in result.stderr.lower()
    assert upload.status_code == 503
    assert int(upload.headers["retry-after"]) > 0
    assert str(root) not in upload.text
    assert main(["index", str(wheelhouse), "-o", str(root)]) == 0
    assert wheel.name in assert_tree_sound(root)
