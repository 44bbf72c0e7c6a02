from __future__ import annotations

import json
from pathlib import Path

import pytest
from consume_fixtures import BUILT_PYYAML, example_plan
from index_fixtures import make_wheel

from builder.cli import main
from builder.errors import ExitCode
from builder.plan import plan_to_json
from builder.requirements import read_requirements
from builder.wheelhouse import Wheelhouse


def _plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_to_json(example_plan())), encoding="utf-8")
    return path


def _wheelhouse_with_pyyaml(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / "manifest.json").write_text(json.dumps([BUILT_PYYAML.to_json()]), encoding="utf-8")
    return house


def test_lock_from_a_plan_and_a_wheelhouse(tmp_path: Path) -> None:
    output = tmp_path / "requirements.lock"
    code = main(
        [
            "lock",
            "--plan",
            str(_plan_file(tmp_path)),
            "--wheelhouse",
            str(_wheelhouse_with_pyyaml(tmp_path)),
            "-o",
            str(output),
        ]
    )
    assert code == 0
    pins = {r.name: r for r in read_requirements([output]).requirements}
    assert set(pins) == {"pyyaml", "idna", "uvloop"}
    assert f"sha256:{BUILT_PYYAML.sha256}" in pins["pyyaml"].hashes


def test_lock_with_an_unbuilt_gap_exits_with_the_requirements_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "requirements.lock"
    code = main(
        [
            "lock",
            "--plan",
            str(_plan_file(tmp_path)),
            "--wheelhouse",
            str(tmp_path / "empty"),
            "-o",
            str(output),
        ]
    )
    assert code == ExitCode.REQUIREMENTS
    assert "prewheel build" in capsys.readouterr().err
    assert not output.exists()  # nothing half-written


def test_lock_without_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lock"]) == ExitCode.USAGE
    assert "--plan" in capsys.readouterr().err


def test_dockerfile_prints_the_install_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dockerfile", "--index-url", "http://10.0.0.5:8080/simple/"]) == 0
    out = capsys.readouterr().out
    assert "ARG PREWHEEL_INDEX_URL=http://10.0.0.5:8080/simple/" in out
    assert "--require-hashes" in out
    assert main(["dockerfile", "--installer", "uv", "--uv-version", "0.9.1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["installer"] == "uv" and "ARG UV_VERSION=0.9.1" in data["lines"]
    assert any("--network host" in note for note in data["notes"])
    assert main(["dockerfile", "--uv-version", "0.9.1"]) == ExitCode.USAGE  # needs --installer uv


def test_verify_with_a_missing_lock_exits_with_usage(tmp_path: Path) -> None:
    assert (
        main(["verify", "--lock", str(tmp_path / "none.lock"), "--platform", "linux/amd64"])
        == ExitCode.USAGE
    )


def _shard(root: Path, name: str, version: str, target: str) -> Path:
    house = Wheelhouse(root)
    wheel = make_wheel(root.parent / f"src-{name}", name, version)
    house.add(
        wheel,
        name=name,
        version=version,
        target=target,
        cache_key=f"key-{name}",
        inputs={},
        builder="docker",
    )
    return root


def test_merge_combines_shards_and_refuses_a_non_wheelhouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _shard(tmp_path / "one" / "wh", "alpha", "1.0", "cp311-linux_armv7l")
    two = _shard(tmp_path / "two" / "wh", "beta", "2.0", "cp311-manylinux_2_36_aarch64")
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), str(one), str(two)]) == 0
    assert {e.name for e in Wheelhouse(merged).entries()} == {"alpha", "beta"}
    assert len(Wheelhouse(merged).wheels()) == 2
    assert main(["merge", str(merged), str(tmp_path)]) == ExitCode.USAGE
    assert "not a wheelhouse" in " ".join(capsys.readouterr().err.split())


@pytest.mark.network
@pytest.mark.docker
@pytest.mark.timeout(600)
def test_run_command_end_to_end_for_a_set_without_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("idna==3.10\n", encoding="utf-8")
    output = tmp_path / "out"
    code = main(
        [
            "run",
            str(requirements),
            "--platform",
            "linux/amd64",
            "-o",
            str(output),
            "--verify-image",
            "prewheel-test/bookworm:{debian_arch}",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 targets verified" in captured.err  # --json: the human summary on stderr
    result = json.loads(captured.out)
    assert result["targets"] == ["cp311-manylinux_2_36_x86_64"]
    assert [v["ok"] for v in result["verified"]] == [True]
    assert Path(result["lock"]) == output / "requirements.lock"
    plan = json.loads((output / "plan.json").read_text())  # the plan, as 'plan --json'
    assert plan["requirements"][0]["name"] == "idna"
    assert list((output / "index" / "files").glob("idna-3.10-*.whl"))
    pins = read_requirements([output / "requirements.lock"]).requirements
    assert [str(p.version) for p in pins] == ["3.10"] and len(pins[0].hashes) == 1
    assert "--require-hashes" in (output / "Dockerfile").read_text()


def test_lock_and_merge_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json puts the result on stdout as JSON and the human line on stderr."""
    lock = tmp_path / "requirements.lock"
    house = str(_wheelhouse_with_pyyaml(tmp_path))
    plan_file = str(_plan_file(tmp_path))
    assert (
        main(["lock", "--plan", plan_file, "--wheelhouse", house, "-o", str(lock), "--json"]) == 0
    )
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert "wrote" in captured.err
    assert data["lock"] == str(lock)
    pyyaml = next(r for r in data["requirements"] if r["name"] == "pyyaml")
    assert {"filename": BUILT_PYYAML.filename, "sha256": BUILT_PYYAML.sha256} in pyyaml["files"]
    one = _shard(tmp_path / "one" / "wh", "alpha", "1.0", "cp311-manylinux_2_36_armv7l")
    assert main(["merge", str(tmp_path / "merged"), str(one), "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["target"]) for m in merged["merged"]] == [
        ("alpha", "cp311-manylinux_2_36_armv7l")
    ]


def test_index_and_publish_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wheel = make_wheel(tmp_path / "wh" / "wheels", "jsonpkg", "1.0")
    tree = str(tmp_path / "tree")
    assert main(["index", str(tmp_path / "wh"), "-o", tree, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == [wheel.name]
    assert main(["index", "-o", tree, "--check", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"output": tree, "sound": True}
    assert main(["index", "-o", tree, "--repair", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repaired"] == []
    static = str(tmp_path / "static")
    assert main(["publish", str(tmp_path / "wh"), "--static", static, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["uploaded"] == [wheel.name]
    assert main(["publish", str(tmp_path / "wh"), "--static", static, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == [wheel.name]
