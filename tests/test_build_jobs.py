"""Pure job planning: cache keys, image templates, grouping into container steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from build_fixtures.helpers import gap, target

from builder.building.jobs import cache_key, group_steps, make_jobs, resolve_image
from builder.config import PackageSettings
from builder.errors import IntegrityError, UsageError
from builder.targets import Arch
from builder.upstream.models import DistFile

SDIST = Path("pkg-1.0.tar.gz")


def _gap(platform: str = "linux/arm64", name: str = "pkg", sha: str = "a" * 64):  # type: ignore[no-untyped-def]
    return gap(Path(f"{name}-1.0.tar.gz"), platform, sha256=sha)


def test_default_images_follow_python_and_libc() -> None:
    assert resolve_image(None, target("linux/arm64")) == "python:3.11-slim-bookworm"
    musl = dataclasses.replace(target("linux/arm64"), libc=type(target("linux/arm64").libc)("musl"))
    assert resolve_image(None, musl) == "python:3.11-alpine"


def test_image_placeholders_are_filled_per_target() -> None:
    template = "prewheel-test/bookworm-build:{debian_arch}"
    assert resolve_image(template, target("linux/arm/v7")) == "prewheel-test/bookworm-build:armhf"
    assert resolve_image("x:{arch}-{python}", target("linux/arm64")) == "x:aarch64-3.11"


def test_unknown_placeholder_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="placeholders"):
        resolve_image("x:{distro}", target("linux/arm64"))


def test_make_jobs_deduplicates_and_applies_settings() -> None:
    settings = PackageSettings(system_packages=("libpq-dev",))
    jobs = make_jobs(
        [_gap(), _gap(), _gap("linux/amd64")],
        image="img:{debian_arch}",
        settings=lambda name, _target: settings if name == "pkg" else PackageSettings(),
    )
    assert sorted(j.image for j in jobs) == ["img:amd64", "img:arm64"]
    assert all(j.settings == settings for j in jobs)


def test_steps_group_jobs_by_image_and_platform() -> None:
    jobs = make_jobs(
        [_gap("linux/arm64", "a"), _gap("linux/amd64", "b"), _gap("linux/arm64", "c")],
        image="img:{debian_arch}",
    )
    steps = group_steps(jobs)
    assert {(s.docker_platform, tuple(j.name for j in s.jobs)) for s in steps} == {
        ("linux/amd64", ("b",)),
        ("linux/arm64", ("a", "c")),
    }
    assert {s.arch for s in steps} == {Arch.X86_64, Arch.AARCH64}
    assert {s.label for s in steps} == {"img:amd64 (linux/amd64)", "img:arm64 (linux/arm64)"}


def test_a_step_serves_every_target_of_its_image_and_arch() -> None:
    """Two Pythons in one image (no {python} in the template): one step, one container."""
    gaps = [
        gap(Path("a-1.0.tar.gz"), "linux/arm64", sha256="a" * 64),
        dataclasses.replace(
            gap(Path("b-1.0.tar.gz"), "linux/arm64", sha256="b" * 64),
            target=dataclasses.replace(target("linux/arm64"), python=(3, 12)),
        ),
    ]
    [step] = group_steps(make_jobs(gaps, image="img:{debian_arch}"))
    assert step.arch is Arch.AARCH64
    assert {job.target.python for job in step.jobs} == {(3, 11), (3, 12)}


@pytest.mark.parametrize(
    "change",
    [
        lambda inputs: {**inputs, "sdist_sha256": "b" * 64},
        lambda inputs: {**inputs, "image_digest": "sha256:other"},
        lambda inputs: {**inputs, "target": "cp311-manylinux_2_36_x86_64"},
        lambda inputs: {**inputs, "settings": {"pip_args": ["-v"]}},
        lambda inputs: {**inputs, "prewheel_version": "9.9"},
        lambda inputs: {**inputs, "version": "1.1"},
    ],
)
def test_cache_key_changes_with_every_input(change) -> None:  # type: ignore[no-untyped-def]
    job = make_jobs([_gap()], image="img")[0]
    inputs = job.inputs("sha256:digest")
    assert cache_key(inputs) == cache_key(dict(reversed(list(inputs.items()))))
    assert cache_key(change(inputs)) != cache_key(inputs)


def test_settings_change_the_cache_key() -> None:
    plain = make_jobs([_gap()], image="img")[0]
    tuned = dataclasses.replace(plain, settings=PackageSettings(environment=(("CFLAGS", "-O3"),)))
    assert cache_key(plain.inputs("d")) != cache_key(tuned.inputs("d"))


def test_an_sdist_without_sha256_cannot_be_keyed() -> None:
    job = make_jobs([_gap()], image="img")[0]
    unhashed = dataclasses.replace(job, sdist=DistFile("pkg-1.0.tar.gz", "file:///x", {}))
    with pytest.raises(IntegrityError, match="without a sha256"):
        unhashed.inputs("d")
