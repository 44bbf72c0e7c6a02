"""Pure planning of builds: gaps + settings -> build jobs, their cache keys, and build steps.

A :class:`BuildJob` is one (requirement, target) to compile from one sdist in one image. Its
cache key (:func:`cache_key`) covers everything that changes the wheel's bytes: name, version,
sdist sha256, target identifier, image digest, per-package settings, prewheel's version and,
for accelerated builds, the native toolchain.
Jobs sharing an image and architecture form a :class:`BuildStep`, run in one container.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from .. import __version__
from ..config import PackageSettings
from ..errors import IntegrityError
from ..plan import BuildKey, BuildRequirement, Gap, Status
from ..targets import Arch, Libc, Target, fill_image_template
from ..upstream.models import DistFile

DEFAULT_GLIBC_IMAGE = "python:{python}-slim-bookworm"
DEFAULT_MUSL_IMAGE = "python:{python}-alpine"


@dataclasses.dataclass(frozen=True)
class BuildJob:
    """Compile one sdist for one target inside one image."""

    name: NormalizedName
    version: Version
    target: Target
    sdist: DistFile
    image: str
    settings: PackageSettings = dataclasses.field(default_factory=PackageSettings)
    # Its planned build requirements on the target (None: not planned, pip provides them)
    build_requires: tuple[BuildRequirement, ...] | None = None
    build_only: bool = False  # only other builds need it
    closure_problem: str = ""  # why its build requirements could not be planned
    known_dynamic: tuple[str, ...] | None = None  # its backend's recorded dynamic answer

    @property
    def key(self) -> BuildKey:
        return (self.name, self.version, self.target.identifier)

    def needs(self) -> list[BuildKey]:
        """The builds this one needs first: its build requirements prewheel builds."""
        return [
            (r.requirement.name, r.requirement.version, self.target.identifier)
            for r in self.build_requires or ()
            if r.cell.status is Status.BUILD
        ]

    @property
    def arch(self) -> Arch:
        return self.target.arch

    @property
    def docker_platform(self) -> str:
        return self.target.docker_platform

    @property
    def sdist_sha256(self) -> str:
        sha256 = self.sdist.sha256
        if not sha256:
            raise IntegrityError(
                f"The index lists {self.sdist.filename} without a sha256 hash, so prewheel "
                "cannot verify it before building. Use an index that publishes hashes (PEP 503 "
                "#sha256= fragments or PEP 691 JSON)."
            )
        return sha256.lower()

    @property
    def label(self) -> str:
        """``name-version-target``: how logs and progress lines name the job."""
        return f"{self.name}-{self.version}-{self.target.identifier}"

    def inputs(
        self,
        image_digest: str,
        prewheel_version: str = __version__,
        *,
        toolchain: str | None = None,
        build_requirements: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Everything that affects the wheel's bytes, as JSON-ready data. ``toolchain`` is the
        content id of the native toolchain the build compiles with (absent: the image's own
        compilers, so builds that are not accelerated keep the keys they always had);
        ``build_requirements`` the pinned build requirements and the sha256 of the file each
        is installed from (absent: pip chose them, as before build requirements were planned)."""
        inputs = {
            "name": str(self.name),
            "version": str(self.version),
            "sdist": self.sdist.filename,
            "sdist_sha256": self.sdist_sha256,
            "target": self.target.identifier,
            "image": self.image,
            "image_digest": image_digest,
            "settings": self.settings.fingerprint(),
            "prewheel_version": prewheel_version,
        }
        if toolchain is not None:
            inputs["toolchain"] = toolchain
        if build_requirements is not None:
            inputs["build_requirements"] = sorted(build_requirements)
        return inputs


def cache_key(inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a job's inputs (see :meth:`BuildJob.inputs`)."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class BuildStep:
    """Jobs that share one image and architecture: one container serves them all."""

    image: str
    arch: Arch
    jobs: tuple[BuildJob, ...]

    @property
    def docker_platform(self) -> str:
        return self.arch.docker_platform

    @property
    def label(self) -> str:
        return f"{self.image} ({self.docker_platform})"


def resolve_image(template: str | None, target: Target) -> str:
    """The image for a target: ``template`` with its placeholders filled
    (:func:`~builder.targets.fill_image_template`: ``{python}``, ``{arch}``, ``{debian_arch}``,
    ``{platform}``, ``{libc}``), or the official default."""
    if not template:
        template = DEFAULT_MUSL_IMAGE if target.libc is Libc.MUSL else DEFAULT_GLIBC_IMAGE
    return fill_image_template(template, target)


def make_jobs(
    gaps: Iterable[Gap],
    *,
    image: str | None = None,
    settings: Callable[[str, str], PackageSettings] = lambda _name, _target: PackageSettings(),
) -> list[BuildJob]:
    """One job per gap, deduplicated, in a stable order (target, then name); ``settings`` maps
    (project name, target identifier) to its build settings."""
    jobs = {
        (gap.requirement.name, gap.requirement.version, gap.target): BuildJob(
            name=gap.requirement.name,
            version=gap.requirement.version,
            target=gap.target,
            sdist=gap.sdist,
            image=resolve_image(image, gap.target),
            settings=settings(gap.requirement.name, gap.target.identifier),
            build_requires=gap.build_requires,
            build_only=gap.build_only,
            closure_problem=gap.closure_problem,
            known_dynamic=gap.known_dynamic,
        )
        for gap in gaps
    }
    return sorted(jobs.values(), key=lambda j: (j.target.identifier, j.name, j.version))


def group_steps(jobs: Iterable[BuildJob]) -> list[BuildStep]:
    """Group jobs by (image, architecture), keeping first-seen order."""
    groups: dict[tuple[str, Arch], list[BuildJob]] = {}
    for job in jobs:
        groups.setdefault((job.image, job.arch), []).append(job)
    return [BuildStep(image, arch, tuple(group)) for (image, arch), group in groups.items()]
