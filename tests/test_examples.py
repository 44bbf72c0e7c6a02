"""The CI recipes in examples/: valid YAML, the right shape, and every prewheel command they
run exists in our CLI with those options."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from builder.cli import build_parser
from builder.cli import main as prewheel_main
from builder.consume.dockerfile import InstallOptions, example_dockerfile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RECIPES = ("github-actions.yml", "drone.yml", "gitlab-ci.yml")


def load(name: str) -> Any:
    documents = list(yaml.safe_load_all((EXAMPLES / name).read_text(encoding="utf-8")))
    assert len(documents) == 1
    return documents[0]


def shell_lines(node: Any) -> Iterator[str]:
    """Every string under run/commands/script/before_script keys, line by line."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"run", "commands", "script", "before_script"}:
                items = value if isinstance(value, list) else [value]
                for item in items:
                    yield from str(item).splitlines()
            else:
                yield from shell_lines(value)
    elif isinstance(node, list):
        for item in node:
            yield from shell_lines(item)


def prewheel_commands(name: str) -> list[list[str]]:
    commands = []
    for raw in shell_lines(load(name)):
        if not re.search(r"(^|[\s/])prewheel\s", raw):
            continue
        line = re.sub(r"\$\{\{[^}]*\}\}", "VALUE", raw)  # GitHub expressions
        for part in re.split(r"&&|\|\||;", line):
            tokens = shlex.split(part)
            while tokens and "=" in tokens[0] and not tokens[0].startswith("-"):
                tokens.pop(0)  # VAR=value prefixes
            if tokens and tokens[0].rpartition("/")[2] == "prewheel":
                cut = next((i for i, t in enumerate(tokens) if t in {">", "&", "|"}), len(tokens))
                commands.append(tokens[1:cut])
    return commands


@pytest.mark.parametrize("name", RECIPES)
def test_every_prewheel_command_in_the_recipe_parses(name: str) -> None:
    commands = prewheel_commands(name)
    used = {argv[0] for argv in commands}
    assert {"build", "index", "lock", "verify"} <= used, used
    parser = build_parser()
    for argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: 'prewheel {shlex.join(argv)}' is not a valid command line")
        assert args.handler is not None


def test_github_workflow_shape() -> None:
    workflow = load("github-actions.yml")
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    matrix = build["strategy"]["matrix"]["include"]
    assert {m["platform"] for m in matrix} >= {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    assert any(m["runner"].endswith("-arm") and not m["emulate"] for m in matrix)  # native ARM
    steps = build["steps"]
    qemu = next(s for s in steps if s.get("uses", "").startswith("docker/setup-qemu-action"))
    assert qemu["if"] == "matrix.emulate"
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == "wheelhouse"
    assert "hashFiles('requirements.txt')" in cache["with"]["key"]
    assert publish["needs"] == "build"
    assert any("prewheel merge" in s.get("run", "") for s in publish["steps"])
    assert any("prewheel publish" in s.get("run", "") for s in publish["steps"])


def test_drone_pipeline_keeps_the_original_buildx_platforms() -> None:
    pipeline = load("drone.yml")
    assert pipeline["kind"] == "pipeline"
    image = next(s for s in pipeline["steps"] if s["name"] == "image")
    buildx = next(c for c in image["commands"] if "docker buildx build" in c)
    assert "--platform linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6" in buildx
    assert "--allow network.host" in buildx and "--network host" in buildx
    assert "PASSWORD" not in buildx  # credentials never as build arguments


def test_gitlab_job_matrix_and_cache() -> None:
    config = load("gitlab-ci.yml")
    wheels = config["wheels"]
    assert wheels["parallel"]["matrix"][0]["PLATFORM"] == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
    assert wheels["cache"]["key"]["files"] == ["requirements.txt"]
    assert config["publish"]["stage"] == "publish"


def test_example_dockerfile_is_what_prewheel_dockerfile_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "Dockerfile"
    assert prewheel_main(["dockerfile", "--write", str(written)]) == 0
    assert written.read_text() == (EXAMPLES / "Dockerfile").read_text()
    assert written.read_text() == example_dockerfile(
        InstallOptions(index_url="http://127.0.0.1:8080/simple/")
    )
    assert "--driver-opt network=host" in capsys.readouterr().err


def test_the_bundled_example_ships_in_the_package_and_is_what_requirements_shows() -> None:
    from builder.cli.run import bundled_example
    from builder.config import load_config
    from builder.requirements import read_requirements

    repository = EXAMPLES.parent / "requirements"
    for name in ("example.in", "example.txt", "example.toml"):
        with bundled_example(name) as packaged:
            assert packaged.read_bytes() == (repository / name).read_bytes()
    with bundled_example("example.txt") as pinned:
        names = {str(r.name) for r in read_requirements([pinned]).requirements}
    assert {"asyncpg", "aionotify", "python-ffmpeg", "pyyaml", "msgpack", "requests"} <= names
    with bundled_example("example.toml") as settings:
        config = load_config(env={}, config_file=settings)
    assert config.package("PyYAML").system_packages == ("libyaml-dev",)
