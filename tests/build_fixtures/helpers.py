"""Shared helpers for the build tests: gaps from local sdists, target shortcuts."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import Version

from builder.build.sdist import file_sha256
from builder.plan import Gap
from builder.requirements import PinnedRequirement
from builder.targets import Target, select_targets
from builder.upstream.models import DistFile

TEST_IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/bookworm:{debian_arch}"


def target(platform: str) -> Target:
    return select_targets(platforms=[platform], pythons=["3.11"], libc="glibc2.36")[0]


def local_dist(path: Path, sha256: str | None = None) -> DistFile:
    return DistFile(path.name, path.resolve().as_uri(), {"sha256": sha256 or file_sha256(path)})


def gap(sdist: Path, platform: str = "linux/amd64", sha256: str | None = None) -> Gap:
    name, version = parse_sdist_filename(sdist.name)
    return Gap(PinnedRequirement(name, version), target(platform), local_dist(sdist, sha256))


def index_gap(name: str, version: str, dist: DistFile, platform: str) -> Gap:
    requirement = PinnedRequirement(canonicalize_name(name), Version(version))
    return Gap(requirement, target(platform), dist)
