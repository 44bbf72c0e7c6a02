"""``prewheel build``: compile the plan's gaps inside target-platform containers.

Pure job planning (:mod:`.jobs`), sdist download and verification (:mod:`.sdist`), containers
(:mod:`.container`), builders (:mod:`.builders`), wheel checks (:mod:`.checks`) and the
orchestration (:mod:`.runner`); results land in a :class:`builder.wheelhouse.Wheelhouse`.
"""

from .builders import Builder, DockerBuilder, LocalBuilder, parse_docker_hosts
from .jobs import BuildJob, BuildStep, cache_key, group_steps, make_jobs, resolve_image
from .runner import BuildOutcome, BuildReport, BuildStatus, ProgressEvent, run_builds
from .sdist import SdistFetcher

__all__ = [
    "BuildJob",
    "BuildOutcome",
    "BuildReport",
    "BuildStatus",
    "BuildStep",
    "Builder",
    "DockerBuilder",
    "LocalBuilder",
    "ProgressEvent",
    "SdistFetcher",
    "cache_key",
    "group_steps",
    "make_jobs",
    "parse_docker_hosts",
    "resolve_image",
    "run_builds",
]
