from __future__ import annotations

import re

import pytest

from builder.consume.dockerfile import (
    INDEX_ARG,
    InstallOptions,
    builder_network_notes,
    example_dockerfile,
    install_lines,
)

OPTIONS = InstallOptions(index_url="http://127.0.0.1:8080/simple/")


def _run_step(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text[text.index("RUN --mount") :]


def test_install_uses_one_index_only_binaries_and_required_hashes() -> None:
    step = _run_step(install_lines(OPTIONS))
    assert f'--index-url "${INDEX_ARG}"' in step
    assert "--extra-index-url" not in step  # merging indexes invites dependency confusion
    assert "--only-binary=:all:" in step
    assert "--require-hashes" in step
    assert step.rstrip().endswith("-r /usr/local/share/prewheel/requirements.lock")


def test_credentials_come_from_build_secrets_never_arg_or_env() -> None:
    lines = install_lines(OPTIONS)
    assert "--mount=type=secret,id=netrc,target=/root/.netrc,required=false" in "\n".join(lines)
    for line in lines:
        if line.startswith(("ARG", "ENV")):
            assert not re.search(r"(?i)password|token|netrc|@", line), line


def test_example_is_a_complete_multi_arch_dockerfile() -> None:
    text = example_dockerfile(OPTIONS, base_image="python:3.12-slim-bookworm")
    instructions = [line.split()[0] for line in text.splitlines() if line and line[0].isupper()]
    assert instructions[:2] == ["ARG", "FROM"]
    assert "ARG BASE_IMAGE=python:3.12-slim-bookworm" in text
    assert f"ARG {INDEX_ARG}=http://127.0.0.1:8080/simple/" in text
    assert "COPY requirements.lock" in text
    assert "--platform linux/amd64,linux/arm64,linux/arm/v7" in text  # how to build it


def test_lock_path_in_a_subdirectory_of_the_context() -> None:
    lines = install_lines(InstallOptions(index_url="http://x/simple/", lock_name="deps/app.lock"))
    assert "COPY deps/app.lock /usr/local/share/prewheel/app.lock" in lines


def test_notes_explain_how_buildx_reaches_the_host_loopback() -> None:
    notes = "\n".join(builder_network_notes("http://127.0.0.1:8080/simple/"))
    assert "--driver-opt network=host" in notes
    assert "--allow network.host" in notes
    assert "--network host" in notes
    assert "--host 0.0.0.0" in notes


def test_the_uv_install_reads_one_index_builds_nothing_and_runs_the_images_python() -> None:
    options = InstallOptions(
        index_url="http://x/simple/",
        installer="uv",
        uv_version="0.9.1",
        uv_index_url="https://mirror.invalid/simple/",
    )
    lines = install_lines(options)
    text = "\n".join(lines)
    assert (
        "ARG UV_VERSION=0.9.1" in lines
        and "ARG UV_INDEX_URL=https://mirror.invalid/simple/" in lines
    )
    assert '--index-url "$PREWHEEL_INDEX_URL"' in text and "--extra-index-url" not in text
    assert "--no-build --require-hashes" in text
    # the venv goes on PATH only after the step in which python3 (the image's) installs uv
    assert lines[-1] == 'ENV PATH="/opt/venv/bin:$PATH"'
    assert text.index("python3 -m pip install") < text.index("ENV PATH")
    with pytest.raises(ValueError, match="uv_version"):
        install_lines(InstallOptions(index_url="http://x/simple/", installer="uv"))
