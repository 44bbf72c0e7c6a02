"""End to end on this machine: the bundled example for amd64, arm64 and arm/v7.

Plan, build the gaps under QEMU, index (complete mode), lock, verify in compiler-less test
images, then ``docker build --platform linux/arm/v7`` of the example Dockerfile against the
served index (succeeds) and the same requirements against the public index in the same
compiler-less image (fails for lack of a compiler). The arm/v7 gaps are built with
``--accelerate relaxed`` (bookworm's cross compiler, assembled in the amd64 runtime image):
fully emulated builds are proven by test_build_emulation.py, and asyncpg alone took about
15 minutes emulated here on a busy 2-core machine. The wheelhouse is cached outside the
repository, keyed by the pinned requirements, platforms and build settings
($PREWHEEL_CI_CACHE, default /var/cache/prewheel-ci), so reruns reuse the arm/v7 builds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from packaging.pylock import Pylock

from builder.cli import main
from builder.consume.lock import lock_lines
from builder.consume.pylock import pylock_document, render_pylock
from builder.consume.verify import DockerProbeRunner, TargetResult, verify
from builder.errors import ExitCode, VerifyFailedError
from builder.hostenv import ca_bundle
from builder.index.server import serving
from builder.options import resolve
from builder.pipeline import PipelineResult, run_pipeline
from builder.targets import select_targets
from builder.upstream.client import default_index_url
from builder.wheelhouse import Wheelhouse

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "requirements" / "example.txt"
EXAMPLE_SETTINGS = REPO / "requirements" / "example.toml"  # PyYAML builds against libyaml
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
BUILD_IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/bookworm:{debian_arch}"
LEGACY_DOCKER = "/usr/bin/docker"  # builds with BuildKit without buildx
# No registry to pull debian:bookworm from: the toolchain is assembled in the amd64 runtime image.
BUILD_SETTINGS = {"accelerate": "relaxed", "toolchain-base": "prewheel-test/{codename}:amd64"}

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]


def cache_root() -> Path:
    return Path(os.environ.get("PREWHEEL_CI_CACHE", "/var/cache/prewheel-ci"))


def wheelhouse_key() -> str:
    digest = hashlib.sha256(EXAMPLE.read_bytes())
    digest.update(",".join(PLATFORMS).encode())
    digest.update(BUILD_IMAGE.encode())
    digest.update(repr(sorted(BUILD_SETTINGS.items())).encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    wheelhouse = cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}"
    output = tmp_path_factory.mktemp("run")
    settings = resolve(
        "run",
        given={
            "platform": PLATFORMS,
            "image": BUILD_IMAGE,
            "wheelhouse": str(wheelhouse),
            "verify-image": RUNTIME_IMAGE,
            "verify-timeout": 900,
            **BUILD_SETTINGS,
        },
        env={},
        config_file=EXAMPLE_SETTINGS,
    )
    return run_pipeline([EXAMPLE], settings, output=output)


@pytest.mark.timeout(3600)
def test_run_verifies_every_target_without_a_compiler(pipeline: PipelineResult) -> None:
    gaps = {(gap.requirement.name, gap.target.docker_platform) for gap in pipeline.plan.gaps()}
    assert ("asyncpg", "linux/arm/v7") in gaps
    assert [r.platform for r in pipeline.verified] == list(PLATFORMS)
    assert all(r.ok for r in pipeline.verified), [r.error for r in pipeline.verified]
    armv7 = pipeline.verified[2]
    installed = {p.name.lower(): p for p in armv7.installed}
    assert installed["asyncpg"].filename.endswith("armv7l.whl")  # the wheel built here
    assert "127.0.0.1" in installed["asyncpg"].url  # from the served index, nothing else
    assert {"asyncpg", "yaml", "msgpack", "requests"} <= set(armv7.imported)
    lock = pipeline.lock.read_text(encoding="utf-8")
    assert "asyncpg==0.32.0" in lock and "--hash=sha256:" in lock


def test_the_gaps_were_compiled_by_the_cross_compiler(pipeline: PipelineResult) -> None:
    house = Wheelhouse(cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}")
    entries = {entry.name: entry for entry in house.entries()}
    assert entries["asyncpg"].compilers["native"] is True, entries["asyncpg"].compilers
    toolchain = entries["asyncpg"].compilers["toolchain"]
    assert toolchain["gcc_source_version"].startswith("12.2.0"), toolchain


def test_package_settings_reach_the_build(pipeline: PipelineResult) -> None:
    """example.toml gives PyYAML libyaml-dev, so its arm/v7 wheel has the C loader."""
    [pyyaml] = [p for p in pipeline.verified[2].installed if p.name.lower() == "pyyaml"]
    wheel = pipeline.lock.parent / "index" / "files" / pyyaml.filename
    with zipfile.ZipFile(wheel) as archive:
        assert any(n.startswith("yaml/_yaml.") and n.endswith(".so") for n in archive.namelist())


def _installed(target_dir: Path) -> set[str]:
    return {p.name.split("-")[0].lower() for p in target_dir.glob("*.dist-info")}


@pytest.mark.timeout(3600)
def test_pylock_toml_installs_with_real_uv_and_pip_from_the_served_index(
    pipeline: PipelineResult, tmp_path: Path
) -> None:
    """prewheel run wrote OUT/pylock.toml (for 'prewheel serve' on its default address); the
    same document for the address served here is installed by uv for linux/amd64 and
    linux/arm64 (``--python-platform``: uv picks each platform's files, nothing runs) and by
    pip on this amd64 host, whose Python then imports what it installed."""
    written = Pylock.from_dict(tomllib.loads((pipeline.lock.parent / "pylock.toml").read_text()))
    assert any(p.name == "asyncpg" for p in written.packages)
    house = Wheelhouse(cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}")
    lines = lock_lines(pipeline.plan, house.entries())
    with serving(pipeline.lock.parent / "index") as url:
        pylock = tmp_path / "pylock.toml"
        pylock.write_text(render_pylock(pylock_document(lines, url, pipeline.plan.targets)))
        environment = {
            **os.environ,
            "UV_INDEX_URL": url,
            "PIP_INDEX_URL": url,
            "NO_PROXY": "127.0.0.1",
        }
        uv = Path(sys.executable).with_name("uv")
        for platform, machine in (
            ("x86_64-manylinux_2_36", "EM_X86_64"),
            ("aarch64-manylinux_2_36", "EM_AARCH64"),
        ):
            target_dir = tmp_path / platform
            result = subprocess.run(
                [str(uv), "pip", "install", "--python", sys.executable, "--python-platform",
                 platform, "--target", str(target_dir), "--no-cache", "-r", str(pylock)],
                capture_output=True, text=True, timeout=600, check=False, env=environment,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert {"asyncpg", "msgpack", "pyyaml", "requests"} <= _installed(target_dir)
            [extension] = (target_dir / "asyncpg" / "protocol").glob("protocol.*.so")
            with extension.open("rb") as stream:
                assert ELFFile(stream).header["e_machine"] == machine
        target_dir = tmp_path / "pip"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
             "--target", str(target_dir), "--no-cache-dir", "-r", str(pylock)],
            capture_output=True, text=True, timeout=600, check=False, env=environment,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    imported = subprocess.run(
        [sys.executable, "-c", "import asyncpg, msgpack, yaml; print(yaml.__with_libyaml__)"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(target_dir)},
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "True"


@pytest.mark.timeout(3600)
def test_verify_with_uv_inside_the_target_containers(pipeline: PipelineResult) -> None:
    """``--installer uv``: the image's pip installs uv's own arm/v7 (and amd64) release, which
    installs the lock from the served index into a venv without pip, hashes required, nothing
    built; asyncpg, compiled for arm/v7 by prewheel, then imports. The same for the run's
    pylock.toml on amd64 and arm64."""
    with serving(pipeline.lock.parent / "index") as url:

        def verify_with_uv(lock: Path, *platforms: str) -> list[TargetResult]:
            return verify(
                lock,
                select_targets(platforms=list(platforms)),
                index_url=url,
                image_template=RUNTIME_IMAGE,
                runner=DockerProbeRunner(),
                timeout=900,
                installer="uv",
            )

        results = verify_with_uv(pipeline.lock, "linux/amd64", "linux/arm/v7")
        # the run's pylock.toml, for this address: uv in the amd64 and arm64 containers
        house = Wheelhouse(cache_root() / f"e2e-wheelhouse-{wheelhouse_key()}")
        lines = lock_lines(pipeline.plan, house.entries())
        pylock = pipeline.lock.parent / "verify-uv" / "pylock.toml"
        pylock.parent.mkdir(exist_ok=True)
        pylock.write_text(render_pylock(pylock_document(lines, url, pipeline.plan.targets)))
        from_pylock = verify_with_uv(pylock, "linux/amd64", "linux/arm64")
    assert [r.machine for r in results] == ["x86_64", "armv7l"]
    assert [r.machine for r in from_pylock] == ["x86_64", "aarch64"]
    for result in (*results, *from_pylock):
        assert result.ok, result.error
        assert {"asyncpg", "msgpack", "pyyaml"} <= {p.name.lower() for p in result.installed}
        assert {"asyncpg", "msgpack", "yaml"} <= set(result.imported)
        assert all(p.url == url for p in result.installed)  # one index: ours


@pytest.mark.timeout(3600)
def test_tampered_wheel_on_the_index_is_refused(pipeline: PipelineResult, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(pipeline.lock.parent / "index", index)
    victim = next((index / "files").glob("idna-*.whl"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with serving(index) as url, pytest.raises(VerifyFailedError) as failure:
        verify(
            pipeline.lock,
            select_targets(platforms=["linux/amd64"]),
            index_url=url,
            image_template=RUNTIME_IMAGE,
            runner=DockerProbeRunner(),
            timeout=600,
        )
    assert "HASHES" in failure.value.message.upper()


def _docker_build(
    context: Path, *args: str, timeout: float, platform: str = "linux/arm/v7"
) -> subprocess.CompletedProcess[str]:
    tag = f"prewheel-e2e-{uuid.uuid4().hex[:8]}"
    command = [
        LEGACY_DOCKER,
        "build",
        "--progress",
        "plain",
        "--network",
        "host",
        "--platform",
        platform,
        "-t",
        tag,
        *args,
        str(context),
    ]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    try:
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    finally:
        subprocess.run(
            [LEGACY_DOCKER, "rmi", "-f", tag], capture_output=True, check=False, timeout=120
        )


def _ca_secret() -> list[str]:
    bundle = ca_bundle()
    return ["--secret", f"id=ca,src={bundle}"] if bundle else []


@pytest.mark.timeout(3600)
def test_docker_build_arm_v7_installs_from_the_index(pipeline: PipelineResult) -> None:
    context = pipeline.lock.parent
    with serving(context / "index") as url:
        result = _docker_build(
            context,
            "-f",
            str(pipeline.dockerfile),
            "--build-arg",
            "BASE_IMAGE=prewheel-test/bookworm:armhf",
            "--build-arg",
            f"PREWHEEL_INDEX_URL={url}",
            timeout=1200,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "asyncpg==0.32.0" in result.stderr  # the image's pip list


@pytest.mark.timeout(3600)
def test_docker_build_with_the_uv_installer_installs_from_the_index(
    pipeline: PipelineResult,
) -> None:
    """`prewheel dockerfile --installer uv --write`: the image's pip installs uv (prewheel's own
    release, from the default index), uv installs the lock from our index into a venv without
    pip; the image has no compiler, so nothing was built."""
    context = pipeline.lock.parent
    dockerfile = context / "Dockerfile.uv"
    assert main(["dockerfile", "--installer", "uv", "--write", str(dockerfile)]) == ExitCode.OK
    text = dockerfile.read_text()
    assert "uv pip install" in text and "--no-build --require-hashes" in text
    with serving(context / "index") as url:
        result = _docker_build(
            context,
            "-f",
            str(dockerfile),
            "--build-arg",
            "BASE_IMAGE=prewheel-test/bookworm:amd64",
            "--build-arg",
            f"PREWHEEL_INDEX_URL={url}",
            *_ca_secret(),
            timeout=900,
            platform="linux/amd64",
        )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "asyncpg==0.32.0" in result.stderr  # the listing step
    assert "pip==" not in result.stderr  # a venv without pip: uv installed everything


@pytest.mark.timeout(3600)
def test_same_build_from_the_public_index_fails_for_lack_of_a_compiler(tmp_path: Path) -> None:
    """The example's first gap alone (asyncpg has no armv7l wheel upstream): pip resolving the
    whole example under QEMU first took nearly 5 minutes to reach the same failure."""
    [asyncpg] = [line for line in EXAMPLE.read_text().splitlines() if line.startswith("asyncpg==")]
    (tmp_path / "requirements.txt").write_text(asyncpg + "\n", encoding="utf-8")
    (tmp_path / "Dockerfile").write_text(
        "FROM prewheel-test/bookworm:armhf\n"
        "COPY requirements.txt /tmp/requirements.txt\n"
        "ARG INDEX_URL\n"
        "RUN --mount=type=secret,id=ca,required=false \\\n"
        "    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \\\n"
        "    python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir \\\n"
        '    --index-url "$INDEX_URL" -r /tmp/requirements.txt\n',
        encoding="utf-8",
    )
    result = _docker_build(
        tmp_path, *_ca_secret(), "--build-arg", f"INDEX_URL={default_index_url()}", timeout=1800
    )
    assert result.returncode != 0
    assert "gcc" in result.stderr or "compiler" in result.stderr, result.stderr[-4000:]
