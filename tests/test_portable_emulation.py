"""Portable wheels through cibuildwheel under QEMU (linux/arm64, linux/arm/v7).

No image registry is reachable, so the manylinux images are the local stand-ins that
``scripts/portable-test-images.sh`` derives from Debian bookworm (``/opt/python/cp311-cp311``,
auditwheel, patchelf, ``AUDITWHEEL_PLAT``), platform-labelled so cibuildwheel runs them without
pulling. The wheels are installed and imported in a Debian *trixie* image (glibc 2.41, CPython
3.13, no compiler, no libyaml): another distribution release than the one they were built in.
The test extensions use the stable ABI (cp311-abi3), which is what lets one CPython 3.11 build
serve 3.13; auditwheel's repair (bundled libyaml, manylinux tag) is what lets it serve trixie.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import PurePosixPath

import docker
import pytest
from build_fixtures.helpers import gap
from conftest import tiers_required
from packaging.utils import parse_wheel_filename
from portable_fixtures import LIBYAML_BODY, LIBYAML_INCLUDE, make_sdist

from builder.building import SdistFetcher, make_jobs, run_builds
from builder.building.cibuildwheel import CibuildwheelBuilder, split_portable
from builder.building.container import Container
from builder.building.jobs import BuildJob
from builder.building.runner import BuildReport, BuildStatus
from builder.config import PackageSettings
from builder.targets import Arch
from builder.wheelhouse import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.emulation, pytest.mark.network, pytest.mark.slow]
PLATFORMS = ("linux/arm64", "linux/arm/v7")
BUILD_IMAGE = "prewheel-test/manylinux-bookworm:{debian_arch}"
OTHER_DISTRIBUTION = "prewheel-test/trixie:{debian_arch}"
YAML_SETTINGS = PackageSettings(system_packages=("libyaml-dev",))

Built = tuple[Wheelhouse, BuildReport, list[BuildJob]]


def image_for(template: str, platform: str) -> str:
    return template.format(debian_arch=Arch.from_docker_platform(platform).debian_arch)


def _images_missing() -> str | None:
    client = docker.from_env()
    try:
        for platform in PLATFORMS:
            for template in (BUILD_IMAGE, OTHER_DISTRIBUTION):
                image = image_for(template, platform)
                try:
                    client.images.get(image)
                except docker.errors.ImageNotFound:
                    return f"{image} is missing: run scripts/portable-test-images.sh"
    finally:
        client.close()
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    problem = _images_missing()
    if problem and tiers_required():
        pytest.fail(problem, pytrace=False)
    if problem:
        pytest.skip(problem)
    work = tmp_path_factory.mktemp("portable")
    plain = make_sdist(work / "sdists", name="pwtiny")
    with_library = make_sdist(
        work / "sdists",
        name="pwyaml",
        include=LIBYAML_INCLUDE,
        body=LIBYAML_BODY,
        libraries=("yaml",),
    )
    gaps = [gap(plain, p) for p in PLATFORMS] + [gap(with_library, "linux/arm64")]
    jobs = make_jobs(
        gaps,
        settings=lambda name, _target: YAML_SETTINGS if name == "pwyaml" else PackageSettings(),
    )
    split = split_portable(jobs, override=BUILD_IMAGE)
    assert not split.fallback
    house = Wheelhouse(work / "wheelhouse")
    report = run_builds(
        list(split.portable),
        wheelhouse=house,
        builder=CibuildwheelBuilder(timeout=1200),
        fetcher=SdistFetcher(work / "cache"),
        parallel=2,
    )
    return house, report, list(split.portable)


def test_every_build_succeeds_with_a_manylinux_tag(built: Built) -> None:
    house, report, _jobs = built
    assert [(o.job.label, o.error, o.tail) for o in report.failed] == []
    assert len(report.having(BuildStatus.BUILT)) == 3
    for outcome in report.outcomes:
        tags = parse_wheel_filename(outcome.wheel)[3]
        assert {tag.abi for tag in tags} == {"abi3"}
        assert all(tag.platform.startswith("manylinux") for tag in tags), outcome.wheel
        assert outcome.job.target.supports(tags)
        assert (house.wheels_dir / outcome.wheel).is_file()
    assert {e.filename for e in house.entries()} == {o.wheel for o in report.outcomes}


def test_the_system_library_is_bundled(built: Built) -> None:
    house, report, _jobs = built
    (outcome,) = [o for o in report.outcomes if o.job.name == "pwyaml"]
    with zipfile.ZipFile(house.wheels_dir / outcome.wheel) as wheel:
        names = wheel.namelist()
    assert any(n.startswith("pwyaml.libs/libyaml") for n in names), names


@pytest.mark.parametrize("platform", PLATFORMS)
def test_wheels_install_and_import_in_another_distribution(built: Built, platform: str) -> None:
    house, report, _jobs = built
    wheels = [
        house.wheels_dir / o.wheel for o in report.outcomes if o.job.docker_platform == platform
    ]
    modules = sorted(str(o.job.name) for o in report.outcomes if o.job.docker_platform == platform)
    output = bytearray()
    client = docker.from_env()
    try:
        image = image_for(OTHER_DISTRIBUTION, platform)
        with Container(client, image=image, platform=platform) as container:
            for wheel in wheels:
                container.copy_in(wheel, PurePosixPath("/wheels") / wheel.name)
            script = (
                "cat /etc/debian_version; "
                "(ls /usr/lib/*/libyaml* 2>/dev/null || echo no-system-libyaml); "
                "(command -v cc || echo no-compiler); "
                # pip run from Debian's wheel of it: ensurepip would byte-compile pip under QEMU
                "python3 -m venv --without-pip /tmp/v && pip_wheel=$(echo /usr/share/python-wheels/pip-*.whl) "
                "&& /tmp/v/bin/python $pip_wheel/pip install -q --no-index --no-deps "
                "--no-compile /wheels/*.whl && "
                "/tmp/v/bin/python -c 'import sys; print(sys.version_info[:2]); "
                + "; ".join(f"import {m}; print({m}.__name__, {m}.answer())" for m in modules)
                + "'"
            )
            result = container.call(["sh", "-c", script], timeout=600, output=output.extend)
    finally:
        client.close()
    text = output.decode()
    assert result.exit_code == 0, text
    assert text.startswith("13"), text  # Debian 13 (trixie), not the bookworm it was built on
    assert "(3, 13)" in text
    assert "no-compiler" in text and "no-system-libyaml" in text
    assert "\npwtiny 42\n" in text
    if "pwyaml" in modules:
        assert "\npwyaml 0.2." in text  # libyaml's version string, from the bundled copy


def test_a_second_run_is_served_from_the_wheelhouse(built: Built) -> None:
    house, _report, jobs = built
    builder = CibuildwheelBuilder()
    again = run_builds(jobs, wheelhouse=house, builder=builder, fetcher=SdistFetcher())
    assert [o.status for o in again.outcomes] == [BuildStatus.CACHED] * len(jobs)
    assert builder.containers_started == 0


def test_the_cli_finds_the_same_wheels_by_cache_key(
    built: Built, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``prewheel build --portable`` computes the same cache keys as the library run above."""
    house, _report, _jobs = built
    sdists = tmp_path_factory.mktemp("cli")
    sdist = make_sdist(sdists, name="pwtiny")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "build",
            str(sdist),
            "--portable",
            "--portable-image",
            BUILD_IMAGE,
            "--platform",
            "linux/arm64",
            "--python",
            "3.11",
            "--libc",
            "glibc2.36",
            "--wheelhouse",
            str(house.path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=sdists,
    )
    assert result.returncode == 0, result.stderr
    assert '"cached": 1' in result.stdout and '"built": 0' in result.stdout
