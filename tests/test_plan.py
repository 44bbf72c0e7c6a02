"""make_plan: the file pip on each target would pick, decided without I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from builder.errors import NotOnIndexError, UsageError
from builder.plan import Cell, Plan, Status, make_plan, plan_from_json, plan_to_json
from builder.requirements import FormatControl, parse_pinned, read_requirements
from builder.targets import parse_identifier, select_targets
from builder.upstream.models import DistFile, ProjectPage

UPSTREAM = "https://upstream.invalid/simple/"
OURS = "https://ours.invalid/simple/"
AMD64 = parse_identifier("cp311-manylinux_2_36_x86_64")
ARM64 = parse_identifier("cp311-manylinux_2_36_aarch64")
ARMV7 = parse_identifier("cp311-manylinux_2_36_armv7l")
ARMV6 = parse_identifier("cp311-glibc_2_36_armv6l")
TARGETS = [AMD64, ARM64, ARMV7, ARMV6]


def dist(filename: str, index: str = UPSTREAM, **fields: object) -> DistFile:
    return DistFile(
        filename, f"{index}../files/{filename}", {"sha256": "00" * 32}, index_url=index, **fields
    )  # type: ignore[arg-type]


def page(name: str, *files: DistFile, index: str = UPSTREAM) -> ProjectPage:
    return ProjectPage(canonicalize_name(name), files, index)


def cell(line: str, files: list[DistFile], target=AMD64, ours: list[DistFile] = ()) -> Cell:  # type: ignore[no-untyped-def,assignment]
    requirement = parse_pinned(line, None)
    upstream = {requirement.name: page(requirement.name, *files)}
    our_pages = {requirement.name: page(requirement.name, *ours, index=OURS)} if ours else {}
    plan = make_plan([requirement], [target], upstream, our_pages)
    return plan.rows[0].cells[target.identifier]


def test_binary_wheel_best_tag_wins_over_sdist_and_older_manylinux() -> None:
    files = [
        dist("fast-1.0.tar.gz"),
        dist("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        dist("fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        dist("fast-1.0-cp311-abi3-manylinux_2_36_x86_64.whl"),
        dist("fast-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        dist("fast-1.0-cp311-cp311-musllinux_1_2_x86_64.whl"),
    ]
    result = cell("fast==1.0", files)
    assert result.status is Status.WHEEL
    assert result.filename == "fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"


def test_only_sdist_fits_builds_and_is_a_gap() -> None:
    files = [dist("fast-1.0.tar.gz"), dist("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")]
    requirement = parse_pinned("fast==1.0", None)
    plan = make_plan([requirement], TARGETS, {"fast": page("fast", *files)})
    statuses = [plan.rows[0].cells[t.identifier].status for t in TARGETS]
    assert statuses == [Status.WHEEL, Status.BUILD, Status.BUILD, Status.BUILD]
    gaps = plan.gaps()
    assert [gap.target for gap in gaps] == [ARM64, ARMV7, ARMV6]
    assert all(gap.sdist.filename == "fast-1.0.tar.gz" and gap.sdist.sha256 for gap in gaps)
    assert plan.summary() == "3 of 4 cells compile from source"
    assert plan.would_compile


def test_manylinux_newer_than_target_glibc_does_not_fit() -> None:
    old_glibc = select_targets(platforms=["linux/amd64"], libc="glibc2.28")[0]
    files = [dist("x-1.0.tar.gz"), dist("x-1.0-cp311-cp311-manylinux_2_34_x86_64.whl")]
    assert cell("x==1.0", files, old_glibc).status is Status.BUILD
    assert cell("x==1.0", files, AMD64).status is Status.WHEEL


def test_pure_wheel_and_armv6_without_manylinux() -> None:
    files = [
        dist("cn-3.0-cp311-cp311-manylinux_2_17_armv7l.whl"),
        dist("cn-3.0-py3-none-any.whl"),
        dist("cn-3.0.tar.gz"),
    ]
    assert cell("cn==3.0", files, ARMV7).status is Status.WHEEL
    pure = cell("cn==3.0", files, ARMV6)
    assert pure.status is Status.PURE and pure.filename == "cn-3.0-py3-none-any.whl"


def test_musl_target_takes_musllinux_only() -> None:
    musl = select_targets(platforms=["linux/arm64"], libc="musl")[0]
    files = [
        dist("m-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"),
        dist("m-1.0-cp311-cp311-musllinux_1_1_aarch64.whl"),
    ]
    assert cell("m==1.0", files, musl).filename == "m-1.0-cp311-cp311-musllinux_1_1_aarch64.whl"


def test_marker_is_evaluated_for_the_target_not_the_host() -> None:
    files = [dist("only_arm-1.0-py3-none-any.whl")]
    line = "only-arm==1.0 ; platform_machine == 'aarch64'"
    assert cell(line, files, ARM64).status is Status.PURE
    excluded = cell(line, files, AMD64)
    assert excluded.status is Status.EXCLUDED and "platform_machine" in excluded.reason
    assert cell("w==1.0 ; python_version < '3.11'", files, AMD64).status is Status.EXCLUDED


def test_excluded_everywhere_does_not_need_the_project() -> None:
    requirement = parse_pinned("pywin32==306 ; sys_platform == 'win32'", None)
    plan = make_plan([requirement], TARGETS, {})
    assert plan.counts()[Status.EXCLUDED] == 4
    assert plan.summary() == "0 of 0 cells compile from source"


def test_ours_when_only_our_index_has_a_wheel() -> None:
    upstream = [dist("fast-1.0.tar.gz")]
    ours = [dist("fast-1.0-cp311-cp311-linux_armv7l.whl", OURS)]
    result = cell("fast==1.0", upstream, ARMV7, ours)
    assert result.status is Status.OURS and result.file is not None
    assert result.file.index_url == OURS
    assert cell("fast==1.0", upstream, ARM64, ours).status is Status.BUILD


def test_requires_python_mismatch_is_skipped_with_a_reason() -> None:
    files = [dist("new-2.0-py3-none-any.whl", requires_python=">=3.12"), dist("new-2.0.tar.gz")]
    result = cell("new==2.0", files)
    assert result.status is Status.BUILD
    assert "Requires-Python excludes 3.11" in result.reason
    all_excluded = [dist("new-2.0-py3-none-any.whl", requires_python=">=3.12")]
    unavailable = cell("new==2.0", all_excluded)
    assert unavailable.status is Status.UNAVAILABLE and "Requires-Python" in unavailable.reason


def test_yanked_file_is_chosen_only_if_nothing_else_fits() -> None:
    wheel = "y-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    yanked_best = dist(wheel, yanked=True, yanked_reason="bad build")
    plain = dist("y-1.0-py3-none-any.whl")
    assert cell("y==1.0", [yanked_best, plain]).filename == "y-1.0-py3-none-any.whl"
    chosen = cell("y==1.0", [yanked_best])
    assert chosen.status is Status.WHEEL and chosen.filename == wheel
    assert "yanked (bad build)" in chosen.reason and "PEP 592" in chosen.reason


def test_hash_pins_prefer_files_with_allowed_hashes() -> None:
    good = DistFile("h-1.0.tar.gz", "https://x.invalid/h.tgz", {"sha256": "11" * 32})
    other = DistFile("h-1.0-py3-none-any.whl", "https://x.invalid/h.whl", {"sha256": "22" * 32})
    line = f"h==1.0 --hash=sha256:{'11' * 32}"
    requirement = parse_pinned("h==1.0", None, [f"sha256:{'11' * 32}"])
    plan = make_plan([requirement], [AMD64], {"h": page("h", good, other)})
    assert plan.rows[0].cells[AMD64.identifier].filename == "h-1.0.tar.gz", line


def test_nothing_installable_is_unavailable() -> None:
    files = [dist("win-1.0-cp311-cp311-win_amd64.whl"), dist("win-1.0.win32.exe")]
    assert cell("win==1.0", files).status is Status.UNAVAILABLE


def test_absent_project_and_version_name_every_problem() -> None:
    requirements = [parse_pinned("ghost==1.0", None), parse_pinned("real==9.9", None)]
    pages = {"real": page("real", dist("real-1.0.tar.gz"))}
    with pytest.raises(NotOnIndexError) as caught:
        make_plan(requirements, [AMD64], pages)
    assert "project ghost" in caught.value.message
    assert "real==9.9" in caught.value.message and "other versions" in caught.value.message


def test_pages_from_several_upstream_indexes_are_merged() -> None:
    requirement = parse_pinned("split==1.0", None)
    pages = {
        "split": [
            page("split", dist("split-1.0.tar.gz")),
            page("split", dist("split-1.0-cp311-cp311-linux_aarch64.whl")),
        ]
    }
    plan = make_plan([requirement], [ARM64], pages)
    assert plan.rows[0].cells[ARM64.identifier].status is Status.WHEEL


def test_json_round_trip_keeps_gaps_and_is_documented_shape() -> None:
    requirements = [
        parse_pinned("fast[extra]==1.0 ; python_version >= '3.8'", None, [f"sha256:{'00' * 32}"])
    ]
    musl = select_targets(platforms=["linux/arm64"], libc="musl1.1")[0]
    targets = [*TARGETS, musl]
    plan = make_plan(requirements, targets, {"fast": page("fast", dist("fast-1.0.tar.gz"))})
    data = json.loads(json.dumps(plan_to_json(plan)))
    assert data["targets"] == [t.identifier for t in targets]
    row = data["requirements"][0]
    assert (row["name"], row["version"]) == ("fast", "1.0")
    assert row["cells"][ARMV7.identifier]["status"] == "build"
    assert row["cells"][ARMV7.identifier]["filename"] == "fast-1.0.tar.gz"
    again = plan_from_json(data)
    assert isinstance(again, Plan)
    assert again.targets == tuple(targets)
    assert again.gaps() == plan.gaps()
    assert plan_to_json(again) == data


def test_plan_written_before_unique_identifiers_still_loads() -> None:
    """Older plans named a glibc 2.31 armv6l target cp311-linux_armv6l, with its glibc version
    only in target_details; loading one keeps that version and its cells."""
    armv6 = select_targets(platforms=["linux/arm/v6"], libc="glibc2.31")[0]
    requirements = [parse_pinned("fast==1.0", None, [])]
    plan = make_plan(requirements, [armv6], {"fast": page("fast", dist("fast-1.0.tar.gz"))})
    text = json.dumps(plan_to_json(plan)).replace(armv6.identifier, "cp311-linux_armv6l")
    data = json.loads(text)
    del data["target_details"]["cp311-linux_armv6l"]["float_abi"]
    again = plan_from_json(data)
    assert again.targets == (armv6,)
    assert again.gaps() == plan.gaps()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"format": 99},
        {"format": 1, "targets": ["bogus"]},
        {"format": 1, "targets": [], "requirements": [{}]},
    ],
)
def test_plan_from_json_rejects_garbage(data: object) -> None:
    with pytest.raises(UsageError, match=r"Not a prewheel plan|target identifier"):
        plan_from_json(data)


def test_higher_build_tag_wins_a_tie() -> None:
    files = [
        dist("b-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl"),
        dist("b-1.0-2-cp311-cp311-manylinux_2_17_x86_64.whl"),
    ]
    assert cell("b==1.0", files).filename == "b-1.0-2-cp311-cp311-manylinux_2_17_x86_64.whl"


def test_files_of_another_project_on_the_page_are_ignored() -> None:
    files = [dist("other-1.0-py3-none-any.whl"), dist("mine-1.0.tar.gz")]
    assert cell("mine==1.0", files).status is Status.BUILD


FAST_FILES = [
    dist("fast-1.0.tar.gz"),
    dist("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    dist("fast-1.0-py3-none-any.whl"),
]


def format_plan(text: str, tmp_path: Path, ours: list[DistFile] = ()) -> Plan:  # type: ignore[assignment]
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    requirement_set = read_requirements([path])
    our_pages = {"fast": page("fast", *ours, index=OURS)} if ours else {}
    return make_plan(
        requirement_set, [AMD64, ARMV7], {"fast": page("fast", *FAST_FILES)}, our_pages
    )


def test_no_binary_in_the_file_sets_upstream_wheels_aside(tmp_path: Path) -> None:
    plan = format_plan("--no-binary fast\nfast==1.0\n", tmp_path)
    cells = plan.rows[0].cells
    assert [cells[t.identifier].status for t in (AMD64, ARMV7)] == [Status.BUILD, Status.BUILD]
    assert cells[AMD64.identifier].filename == "fast-1.0.tar.gz"
    assert "--no-binary" in cells[AMD64.identifier].reason
    # A wheel prewheel built from the sdist still installs.
    ours = [dist("fast-1.0-cp311-cp311-linux_armv7l.whl", index=OURS)]
    built = format_plan("--no-binary :all:\nfast==1.0\n", tmp_path, ours).rows[0].cells
    assert built[ARMV7.identifier].status is Status.OURS
    assert built[AMD64.identifier].status is Status.BUILD


def test_only_binary_keeps_the_verdict_and_says_pip_would_fail(tmp_path: Path) -> None:
    files_without_pure = "--only-binary=:all:\nfast==1.0\n"
    cells = format_plan(files_without_pure, tmp_path).rows[0].cells
    assert cells[AMD64.identifier].status is Status.WHEEL
    assert cells[ARMV7.identifier].status is Status.PURE  # the none-any wheel fits arm/v7
    # The project's own listing wins over :all: of the other option, as in pip.
    cells = (
        format_plan("--no-binary :all:\n--only-binary fast\nfast==1.0\n", tmp_path).rows[0].cells
    )
    assert cells[AMD64.identifier].status is Status.WHEEL


@pytest.mark.parametrize(
    ("options", "binary", "source"),
    [
        ([], True, True),
        ([("no", ":all:")], False, True),
        ([("only", ":all:")], True, False),
        ([("no", ":all:"), ("only", "Fast")], True, False),
        ([("only", ":all:"), ("no", "fast")], False, True),
        ([("no", "fast"), ("only", "fast")], True, False),  # a name moves between the options
        ([("only", "fast"), ("no", "fast")], False, True),
        ([("no", "fast"), ("no", ":none:")], True, True),
        ([("no", "other,fast")], False, True),
        ([("no", "fast"), ("only", ":all:")], True, False),  # :all: clears both options
    ],
)
def test_format_control_follows_pips_precedence(
    options: list[tuple[str, str]], binary: bool, source: bool
) -> None:
    control = FormatControl()
    for which, value in options:
        control = (
            control.with_no_binary(value) if which == "no" else control.with_only_binary(value)
        )
    assert (control.allows_binary("fast"), control.allows_source("fast")) == (binary, source)
