"""Complete mode: mirror the upstream files the plan's targets install, hash-verified."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_fixtures import (
    installed_version,
    make_wheel,
    pip_install,
    serving_directory,
    uv_install,
)
from index_fixtures.tree import assert_tree_sound
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder.errors import IntegrityError
from builder.index.complete import HttpDownloader, UpstreamFile, mirror, upstream_files
from builder.index.static import Origin, StaticIndex
from builder.plan import Cell, Plan, PlanRow, Status
from builder.requirements import PinnedRequirement
from builder.targets import parse_identifier
from builder.upstream.models import DistFile

AMD64 = parse_identifier("cp311-manylinux_2_36_x86_64")
ARMV7 = parse_identifier("cp311-manylinux_2_36_armv7l")
ARMV6 = parse_identifier("cp311-glibc_2_36_armv6l")  # soft-float: Debian armel
ELF_FIXTURES = Path(__file__).resolve().parent / "elf_fixtures"


def _dist(url_base: str, path: Path, sha256: str | None = None) -> DistFile:
    digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
    return DistFile(filename=path.name, url=f"{url_base}{path.name}", hashes={"sha256": digest})


def _row(name: str, version: str, cells: dict[str, Cell]) -> PlanRow:
    return PlanRow(PinnedRequirement(canonicalize_name(name), Version(version)), cells)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local 'upstream' host serving files/ over HTTP; returns (files URL, files dir)."""
    files = tmp_path / "upstream" / "files"
    make_wheel(files, "up-lib", "2.0")
    make_wheel(files, "native-x", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(files, "native-x", "1.0", tag="cp311-cp311-linux_armv7l")
    make_wheel(files, "native-x", "1.0", tag="cp312-cp312-linux_armv7l")  # no target needs it
    with serving_directory(tmp_path / "upstream", log=tmp_path / "upstream.log") as base:
        yield base + "files/", files


def _plan(url: str, files: Path, lib_sha: str | None = None) -> Plan:
    lib = _dist(url, files / "up_lib-2.0-py3-none-any.whl", lib_sha)
    native_amd = _dist(url, files / "native_x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    native_arm = _dist(url, files / "native_x-1.0-cp311-cp311-linux_armv7l.whl")
    return Plan(
        targets=(AMD64, ARMV7),
        rows=(
            _row(
                "up-lib",
                "2.0",
                {
                    AMD64.identifier: Cell(Status.PURE, lib),
                    ARMV7.identifier: Cell(Status.PURE, lib),
                },
            ),
            _row(
                "native-x",
                "1.0",
                {
                    AMD64.identifier: Cell(Status.WHEEL, native_amd),
                    ARMV7.identifier: Cell(Status.WHEEL, native_arm),
                },
            ),
            _row(
                "app",
                "1.0",
                {
                    AMD64.identifier: Cell(Status.BUILD, None),
                    ARMV7.identifier: Cell(Status.EXCLUDED),
                },
            ),
        ),
    )


def test_upstream_files_picks_each_needed_wheel_once(upstream: tuple[str, Path]) -> None:
    url, files = upstream
    names = [f.filename for f in upstream_files(_plan(url, files))]
    assert names == [
        "native_x-1.0-cp311-cp311-linux_armv7l.whl",
        "native_x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "up_lib-2.0-py3-none-any.whl",
    ]


def test_complete_index_serves_the_whole_install(
    upstream: tuple[str, Path], tmp_path: Path
) -> None:
    url, files = upstream
    root = tmp_path / "complete"
    index = StaticIndex(root)
    built = make_wheel(
        tmp_path / "wh" / "wheels",
        "app",
        "1.0",
        requires=["up-lib==2.0"],
        tag="cp311-cp311-manylinux_2_36_x86_64",
    )
    index.sync([built])
    downloader = HttpDownloader()
    try:
        report = mirror(index, upstream_files(_plan(url, files)), downloader)
        again = mirror(index, upstream_files(_plan(url, files)), downloader)
    finally:
        downloader.close()
    assert len(report.fetched) == 3 and again.fetched == () and len(again.present) == 3
    catalog = index.catalog()
    assert catalog["up_lib-2.0-py3-none-any.whl"].origin is Origin.UPSTREAM
    assert catalog[built.name].origin is Origin.BUILT
    assert "native_x-1.0-cp312-cp312-linux_armv7l.whl" not in catalog

    with serving_directory(root, path="simple/", log=tmp_path / "complete.log") as simple:
        # the documented single-index install: nothing but our index is consulted
        pip_result = pip_install(simple, tmp_path / "pip", "app==1.0")
        uv_result = uv_install(simple, tmp_path / "uv", "app==1.0")
    assert pip_result.returncode == 0, pip_result.stderr
    assert uv_result.returncode == 0, uv_result.stderr
    assert installed_version(tmp_path / "pip", "up_lib") == "2.0"
    assert installed_version(tmp_path / "uv", "up_lib") == "2.0"


def test_hash_mismatch_is_refused_and_not_listed(
    upstream: tuple[str, Path], tmp_path: Path
) -> None:
    url, files = upstream
    index = StaticIndex(tmp_path / "complete")
    downloader = HttpDownloader()
    try:
        with pytest.raises(IntegrityError, match="altered"):
            mirror(index, upstream_files(_plan(url, files, lib_sha="0" * 64)), downloader)
    finally:
        downloader.close()
    assert "up_lib-2.0-py3-none-any.whl" not in index.catalog()
    assert not (tmp_path / "complete" / "files" / "up_lib-2.0-py3-none-any.whl").exists()
    assert not list((tmp_path / "complete" / ".prewheel" / "incoming").iterdir())


def test_unhashed_upstream_file_is_refused(tmp_path: Path) -> None:
    unhashed = DistFile(filename="x-1.0-py3-none-any.whl", url="http://127.0.0.1:9/x.whl")
    with pytest.raises(IntegrityError, match="no sha256"):
        mirror(StaticIndex(tmp_path / "c"), [UpstreamFile(unhashed)], HttpDownloader())


def _arm_wheel(files: Path, name: str, fixture: str, platform: str = "linux_armv6l") -> Path:
    """A wheel tagged ``platform`` holding a real ARM shared object (tests/elf_fixtures)."""
    module = name.replace("-", "_")
    return make_wheel(
        files,
        name,
        "1.0",
        tag=f"cp311-cp311-{platform}",
        extra_members={f"{module}/_native.so": (ELF_FIXTURES / fixture).read_bytes()},
    )


def test_an_upstream_wheel_whose_code_the_armv6_target_cannot_run_is_not_mirrored(
    tmp_path: Path,
) -> None:
    files = tmp_path / "upstream" / "files"
    good = _arm_wheel(files, "good-ext", "armv6-softfloat.so")
    hard = _arm_wheel(files, "hard-ext", "armv7-hardfloat.so")  # Debian armhf's build
    lib = make_wheel(files, "up-lib", "2.0")
    with serving_directory(tmp_path / "upstream", log=tmp_path / "upstream.log") as base:
        url = base + "files/"
        rows = tuple(
            _row(name, version, {ARMV6.identifier: Cell(status, _dist(url, path))})
            for name, version, status, path in (
                ("good-ext", "1.0", Status.WHEEL, good),
                ("hard-ext", "1.0", Status.WHEEL, hard),
                ("up-lib", "2.0", Status.PURE, lib),
            )
        )
        chosen = upstream_files(Plan(targets=(ARMV6,), rows=rows))
        assert {f.filename: f.targets for f in chosen} == {
            good.name: (ARMV6,),
            hard.name: (ARMV6,),
            lib.name: (ARMV6,),
        }
        root = tmp_path / "complete"
        downloader = HttpDownloader()
        try:
            with pytest.raises(IntegrityError) as error:
                mirror(StaticIndex(root), chosen, downloader)
        finally:
            downloader.close()
    message = str(error.value)
    assert message.startswith(
        "1 upstream wheels were refused and not mirrored (the index lists the 2 others fetched "
        "now and 0 already present): hard_ext-1.0-cp311-cp311-linux_armv6l.whl: "
        "hard_ext/_native.so is ARMv7 code, hard-float, but cp311-glibc_2_36_armv6l "
        "(linux/arm/v6) needs ARMv6 code or older"
    )
    assert "not mirrored" in message and "--no-binary" in message
    catalog = assert_tree_sound(root)  # nothing half-written: no spool, pages match the catalog
    assert set(catalog) == {good.name, lib.name}
    assert all(record.origin is Origin.UPSTREAM for record in catalog.values())


def test_a_mirrored_armv7_wheel_that_dispatches_armv8_kernels_is_listed_with_its_note(
    tmp_path: Path,
) -> None:
    files = tmp_path / "upstream" / "files"
    wheel = _arm_wheel(files, "fast-ext", "armv8-dispatched.so", "linux_armv7l")
    with serving_directory(tmp_path / "upstream", log=tmp_path / "upstream.log") as base:
        cell = Cell(Status.WHEEL, _dist(base + "files/", wheel))
        chosen = upstream_files(
            Plan(targets=(ARMV7,), rows=(_row("fast-ext", "1.0", {ARMV7.identifier: cell}),))
        )
        downloader = HttpDownloader()
        try:
            report = mirror(StaticIndex(tmp_path / "complete"), chosen, downloader)
        finally:
            downloader.close()
    assert report.fetched == (wheel.name,)
    [note] = report.notes
    assert note.startswith(
        f"{wheel.name}: fast_ext/_native.so records ARMv8-A code, hard-float, newer than "
        f"{ARMV7.identifier} runs, and asks the kernel for the CPU's features at run time"
    )
