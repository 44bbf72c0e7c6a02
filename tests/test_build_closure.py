"""The build-time closure: build requirements planned, built first, installed from prewheel's
wheels; dynamic requirements found in the target's container; cycles refused; hermetic builds.

The end-to-end test builds, for linux/arm/v7 under QEMU, ``aneeds`` and ``cneeds`` (both
build-require ``bext``, a C extension with no wheel, and import it in their ``setup.py``) and
``dneeds`` (whose backend asks for ``bext`` dynamically), all served by a real index on
127.0.0.1 beside the real default index (setuptools). Measured: 159 s on a warm machine (the
build venv kept in its volume; its emulated set-up adds a few minutes on a new machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from build_fixtures.closure import make_closure_sdists, serve_tree, write_simple_tree
from build_fixtures.helpers import TEST_IMAGE
from packaging.markers import Marker
from packaging.version import Version

from builder.cli import build_parser
from builder.cli.build import _plan_gaps_from_json
from builder.cli.common import settings_from_args
from builder.closure import (
    build_waves,
    constraints_sha256,
    find_cycle,
    plan_of_gaps,
    read_build_system,
)
from builder.errors import BuildCycleError, ExitCode, RequirementsError
from builder.plan import (
    Cell,
    ClosureEntry,
    Gap,
    Plan,
    PlanRow,
    Status,
    plan_from_json,
    plan_to_json,
)
from builder.requirements import PinnedRequirement
from builder.targets import Target, select_targets
from builder.upstream.models import DistFile

LOCAL = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def prewheel(
    *args: str | Path, cwd: Path, timeout: float = 3000, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "builder", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CI": "1", **LOCAL, **(environment or {})},
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("closure-index")
    sdists = make_closure_sdists(work / "sdists")
    write_simple_tree(work / "tree", sdists)
    with serve_tree(work / "tree") as url:
        yield url


# --- pure parts -------------------------------------------------------------------------------


def test_find_cycle_names_the_cycle_and_waves_order_the_rest() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None
    waves = build_waves(["a", "b", "c", "d"], {"a": ["b"], "b": [], "c": ["a"], "d": []}.get)
    assert waves == [["b", "d"], ["a"], ["c"]]
    with pytest.raises(BuildCycleError, match="x -> y -> x"):
        build_waves(["x", "y"], {"x": ["y"], "y": ["x"]}.get)


def test_the_build_system_is_read_from_the_sdist(tmp_path: Path) -> None:
    sdists = make_closure_sdists(tmp_path)
    system = read_build_system(sdists["aneeds"])
    assert system.requires == ("setuptools>=61", "bext==1.0")
    assert system.backend == "setuptools.build_meta"
    dynamic = read_build_system(sdists["dneeds"])
    assert (dynamic.backend, dynamic.backend_path) == ("dyn_backend", (".",))


# --- planning (uv resolves against the test index and the default index) ----------------------


@pytest.mark.network
def test_plan_shows_build_only_rows_and_round_trips(index: str, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("aneeds==1.0\n")
    result = prewheel(
        "plan", "requirements.txt", "--platform", "linux/arm/v7", "--python", "3.11",
        "--extra-index-url", index, "--json", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == ExitCode.WOULD_COMPILE or result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["name"]: row for row in data["requirements"]}
    assert rows["aneeds"]["build_only"] is False
    assert rows["bext"]["build_only"] is True
    assert rows["setuptools"]["build_only"] is True
    (target,) = data["targets"]
    assert rows["bext"]["cells"][target]["status"] == "build"
    assert rows["setuptools"]["cells"][target]["status"] == "pure"
    closure = {entry["name"]: entry for entry in data["build_requirements"]}
    assert {r["name"] for r in closure["aneeds"]["requires"]} == {"bext", "setuptools"}
    plan = plan_from_json(data)
    assert plan_to_json(plan)["build_requirements"] == data["build_requirements"]
    gaps = {gap.requirement.name: gap for gap in plan.gaps()}
    assert gaps["bext"].build_only and not gaps["aneeds"].build_only
    assert [r.label for r in gaps["aneeds"].build_requires or ()] == [
        "bext==1.0",
        f"setuptools=={rows['setuptools']['version']}",
    ]
    # the table marks them
    table = prewheel(
        "plan", "requirements.txt", "--platform", "linux/arm/v7", "--python", "3.11",
        "--extra-index-url", index, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert "bext==1.0 (build-only, for aneeds==1.0)" in table.stdout


@pytest.mark.network
def test_a_cycle_is_refused_naming_it(index: str, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("cyca==1.0\n")
    result = prewheel(
        "plan", "requirements.txt", "--platform", "linux/amd64", "--python", "3.11",
        "--extra-index-url", index, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == ExitCode.BUILD_CYCLE == 17, result.stderr
    assert "cyca==1.0 -> cycb==1.0 -> cyca==1.0" in result.stderr
    # --no-build-deps plans without the closure: the plan itself is fine
    plain = prewheel(
        "plan", "requirements.txt", "--platform", "linux/amd64", "--python", "3.11",
        "--extra-index-url", index, "--no-build-deps", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "build-only" not in plain.stdout


def test_an_old_plan_without_a_closure_still_reads(tmp_path: Path) -> None:
    plan = Plan((), (), {})
    data = plan_to_json(plan)
    del data["build_requirements"]
    assert plan_from_json(data).closure == {}
    broken = plan_to_json(plan) | {
        "build_requirements": [
            {
                "name": "a",
                "version": "1",
                "target": "t",
                "requires": [{"name": "b", "version": "1"}],
            }
        ]
    }
    with pytest.raises(Exception, match="build requirement b==1 has no row"):
        plan_from_json(broken)
    assert ClosureEntry().requires == ()


# --- building for linux/arm/v7 under QEMU -----------------------------------------------------


def _build(index: str, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return prewheel(
        "build", "requirements.txt", "--platform", "linux/arm/v7", "--python", "3.11",
        "--libc", "glibc2.36", "--image", TEST_IMAGE, "--wheelhouse", "wheelhouse",
        "--extra-index-url", index, "--json", *extra, cwd=work,
        # a user cache of its own: the backends' dynamic answers are found afresh
        environment={"XDG_CACHE_HOME": str(work / "cache")},
    )  # fmt: skip


@pytest.mark.docker
@pytest.mark.emulation
@pytest.mark.network
@pytest.mark.slow
def test_build_requirements_are_built_first_and_served_to_builds(
    index: str, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("aneeds==1.0\ncneeds==1.0\ndneeds==1.0\n")
    first = _build(index, tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    builds = {b["name"]: b for b in report["builds"]}
    # bext built once, as a build requirement, and before the builds that need it
    assert [b["name"] for b in report["builds"]].count("bext") == 1
    assert builds["bext"]["status"] == "built" and builds["bext"]["build_only"]
    logs = {
        name: Path(tmp_path / "wheelhouse" / "logs").glob(f"{name}-1.0-*.log") for name in builds
    }
    texts = {name: next(iter(paths)).read_text() for name, paths in logs.items()}
    for name in ("aneeds", "cneeds", "dneeds"):
        assert builds[name]["status"] == "built", builds[name]
        text = texts[name]
        # installed from prewheel's own wheel: not compiled, not downloaded
        assert re.search(
            r"Processing ./prewheel/build-requirements/[0-9a-f]{64}/bext-1.0-cp311-cp311-", text
        ), text
        assert "Building wheel for bext" not in text and "Downloading bext" not in text
        assert "bext.machine() says armv7" in text
        records = {r["name"]: r for r in builds[name]["build_requirements"]}
        assert records["bext"]["origin"] in ("built", "reused")
        assert records["setuptools"]["origin"] == "upstream"
    # dneeds asked for bext dynamically: found in the container, planned, built after it
    assert {r["name"]: r["dynamic"] for r in builds["dneeds"]["build_requirements"]}["bext"]
    assert "deferred dneeds-1.0-" in first.stderr and "bext==1.0" in first.stderr
    assert "dynamic build requirements (recorded by its first build): bext==1.0" in texts["dneeds"]
    manifest = json.loads((tmp_path / "wheelhouse" / "manifest.json").read_text())
    entries = manifest["wheels"] if isinstance(manifest, dict) else manifest
    aneeds = next(e for e in entries if e["name"] == "aneeds")
    assert any(r["name"] == "bext" and r["sha256"] for r in aneeds["build_requirements"]), aneeds
    assert any(line.startswith("bext==1.0 ") for line in aneeds["inputs"]["build_requirements"])

    # a rerun starts no container
    again = _build(index, tmp_path)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["containers_started"] == 0
    assert {b["status"] for b in rerun["builds"]} == {"cached"}

    # hermetic, without bext's wheel and without building it: the build fails naming it
    for wheel in (tmp_path / "wheelhouse" / "wheels").rglob("bext-1.0-*.whl"):
        wheel.unlink()
    hermetic = _build(index, tmp_path, "--hermetic", "--no-build-deps")
    assert hermetic.returncode == ExitCode.BUILDS_FAILED, hermetic.stderr
    assert "--hermetic" in hermetic.stderr and "bext==1.0" in hermetic.stderr
    assert json.loads(hermetic.stdout)["containers_started"] == 0


@pytest.mark.network
def test_build_constraints_pin_the_build_requirements(index: str, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("aneeds==1.0\n")
    (tmp_path / "build-constraints.txt").write_text("setuptools==75.1.0\n")
    result = prewheel(
        "plan", "requirements.txt", "--platform", "linux/arm/v7", "--python", "3.11",
        "--extra-index-url", index, "--json", "--build-constraints", "build-constraints.txt",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode in (0, ExitCode.WOULD_COMPILE), result.stderr
    versions = {row["name"]: row["version"] for row in json.loads(result.stdout)["requirements"]}
    assert versions["setuptools"] == "75.1.0"
    missing = prewheel(
        "plan", "requirements.txt", "--platform", "linux/arm/v7", "--python", "3.11",
        "--extra-index-url", index, "--build-constraints", "nope.txt", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert missing.returncode == ExitCode.REQUIREMENTS, missing.stderr
    assert "build-constraints file nope.txt does not exist" in missing.stderr


def _numexpr_plan() -> tuple[Plan, Target, Target]:
    """numexpr for linux/amd64 and linux/arm/v7, build-requiring numpy, whose own row's
    marker excludes linux/arm/v7 (a build-only cell there)."""
    amd64, armv7 = select_targets(platforms=["linux/amd64", "linux/arm/v7"], pythons=["3.11"])
    sdist = DistFile("numpy-2.0.2.tar.gz", "file:///n.tar.gz", {"sha256": "ab" * 32})
    numpy = PinnedRequirement(
        "numpy",
        Version("2.0.2"),
        marker=Marker('platform_machine != "armv7l"'),  # type: ignore[arg-type]
    )
    user = PinnedRequirement("numexpr", Version("2.14.2"))  # type: ignore[arg-type]
    user_sdist = DistFile("numexpr-2.14.2.tar.gz", "file:///e.tar.gz", {"sha256": "cd" * 32})
    rows = (
        PlanRow(
            numpy,
            {
                amd64.identifier: Cell(Status.BUILD, sdist),
                armv7.identifier: Cell(Status.BUILD, sdist),
            },
            build_only_on=frozenset({armv7.identifier}),
        ),
        PlanRow(user, {t.identifier: Cell(Status.BUILD, user_sdist) for t in (amd64, armv7)}),
    )
    closure = {
        ("numexpr", Version("2.14.2"), t.identifier): ClosureEntry(
            (("numpy", Version("2.0.2"), False),), ()
        )
        for t in (amd64, armv7)
    }
    return Plan((amd64, armv7), rows, closure), amd64, armv7  # type: ignore[arg-type]


def test_build_only_cells_stay_out_of_the_image_and_gaps_round_trip() -> None:
    """A runtime row that a build needs on a target its marker excludes: a build-only gap
    there, left out of the rows an image installs; plan_of_gaps keeps what the gaps carry."""
    plan, amd64, armv7 = _numexpr_plan()
    runtime = {row.requirement.name: row for row in plan.runtime_rows()}
    assert runtime["numpy"].cells[armv7.identifier].status is Status.EXCLUDED
    assert runtime["numpy"].cells[amd64.identifier].status is Status.BUILD
    gaps = {(g.requirement.name, g.target.identifier): g for g in plan.gaps()}
    assert gaps[("numpy", armv7.identifier)].build_only
    assert not gaps[("numpy", amd64.identifier)].build_only
    again = plan_of_gaps(plan.gaps())
    assert {(g.key, g.build_only) for g in again.gaps()} == {
        (g.key, g.build_only) for g in plan.gaps()
    }
    assert plan_from_json(plan_to_json(plan)).rows[0].build_only_on == {armv7.identifier}


def test_a_saved_plan_pinned_under_other_build_constraints_is_planned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``build --plan`` keeps the saved pins only under the build constraints they were
    planned with; otherwise the gaps go to the build unplanned (close_plan pins them again)
    and what only the old pins needed is not built."""
    plan, _amd64, armv7 = _numexpr_plan()
    (tmp_path / "old.txt").write_text("numpy==2.0.2\n")
    (tmp_path / "new.txt").write_text("numpy==2.1.3\n")
    saved = dataclasses.replace(
        plan, build_constraints_sha256=constraints_sha256(tmp_path / "old.txt")
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan_to_json(saved)))
    monkeypatch.chdir(tmp_path)

    def gaps(*options: str) -> dict[tuple[str, str], Gap]:
        args = build_parser().parse_args(["build", "--plan", "plan.json", *options])
        found = _plan_gaps_from_json(plan_file, settings_from_args("build", args))
        return {(g.requirement.name, g.target.identifier): g for g in found}

    kept = gaps("--build-constraints", "old.txt")
    assert kept[("numexpr", armv7.identifier)].build_requires is not None
    assert kept[("numpy", armv7.identifier)].build_only
    assert "planned again" not in capsys.readouterr().err
    for options in (("--build-constraints", "new.txt"), ()):
        replanned = gaps(*options)
        assert all(gap.build_requires is None for gap in replanned.values())
        assert ("numpy", armv7.identifier) not in replanned  # only the old pins needed it
        assert not any(gap.build_only for gap in replanned.values())
        assert "pinned its build requirements under other build constraints" in (
            " ".join(capsys.readouterr().err.split())
        )
    # a plan made without constraints: kept built without, planned again built with some
    plain = dataclasses.replace(plan, build_constraints_sha256="")
    plan_file.write_text(json.dumps(plan_to_json(plain)))
    assert gaps()[("numexpr", armv7.identifier)].build_requires is not None
    assert (
        gaps("--build-constraints", "old.txt")[("numexpr", armv7.identifier)].build_requires is None
    )
    assert "pinned its build requirements under none, this build has the build constraints" in (
        " ".join(capsys.readouterr().err.split())
    )
    # an older prewheel's plan does not say: planned again, and said so
    unknown = plan_to_json(plan)
    assert "build_constraints_sha256" not in unknown
    plan_file.write_text(json.dumps(unknown))
    assert gaps()[("numexpr", armv7.identifier)].build_requires is None
    assert "does not say which build constraints" in " ".join(capsys.readouterr().err.split())
    # a constraints file that is not there: the requirements error, before anything
    with pytest.raises(RequirementsError, match=r"build-constraints file gone\.txt does not exist"):
        gaps("--build-constraints", "gone.txt")
    with pytest.raises(RequirementsError, match=r"build-constraints file \. is not a file"):
        gaps("--build-constraints", ".")
    # what the closure added is gone again: numpy's armv7 cell is excluded by its marker
    bare = plan.without_closure()
    [numpy_row] = [row for row in bare.rows if row.requirement.name == "numpy"]
    assert numpy_row.build_only_on == frozenset()
    assert numpy_row.cells[armv7.identifier].status is Status.EXCLUDED
    assert "marker" in numpy_row.cells[armv7.identifier].reason
    assert bare.closure == {}
