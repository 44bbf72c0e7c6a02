"""Shared helpers for the build tests: gaps from local sdists, target shortcuts."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import Version

from builder.files import file_sha256
from builder.plan import Gap
from builder.requirements import PinnedRequirement
from builder.targets import Target, select_targets
from builder.upstream.models import DistFile

TEST_IMAGE = "prewheel-test/bookworm-build:{debian_arch}"
RUNTIME_IMAGE = "prewheel-test/bookworm:{debian_arch}"
# Shell: install the wheels in /wheels into a new venv /tmp/v, nothing from an index. The image's
# own pip installs into a venv made without one: ensurepip would unpack and byte-compile pip
# under QEMU (57 s against 11 s for the whole command on linux/arm64, measured).
INSTALL_WHEELS = (
    "python3 -m venv --without-pip /tmp/v && python3 -m pip --python /tmp/v/bin/python "
    "install -q --no-index --no-deps --no-compile /wheels/*.whl"
)


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


def index_dist(name: str, version: str) -> DistFile:
    """The sdist of ``name`` ``version`` as the configured index lists it (PEP 691 JSON)."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT

    from builder.fetch import make_client
    from builder.hostenv import pip_setting

    index = (pip_setting("index-url") or PYPI_SIMPLE_ENDPOINT).rstrip("/") + "/"
    with make_client() as client:
        response = client.get(
            f"{index}{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        response.raise_for_status()
        for file in response.json()["files"]:
            if file["filename"] == f"{name}-{version}.tar.gz":
                return DistFile(file["filename"], file["url"], dict(file["hashes"]))
    raise LookupError(f"{name} {version} has no sdist on {index}")
