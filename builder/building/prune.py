"""What prewheel keeps in the Docker daemon between runs, and removing what is no longer used.

Builds leave two kinds of things behind on purpose: native toolchains (a ``prewheel-toolchain``
image per recipe and the ``prewheel-toolchain-<id>`` volume its tree is copied into, about
1.3 GB and 185 MB) and build environments (a ``prewheel-buildenv-<key>`` volume per build image
and platform: the venv with auditwheel). Neither is ever used again once what it was made from
is gone: a toolchain is keyed by its base image's id, a build environment by its build image's
id. :func:`find_prunable` decides (pure over what the daemon lists), :func:`prune` removes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import docker
import docker.errors
import requests

from ..errors import HostEnvironmentError
from .builders import BUILD_ENV_IMAGE_LABEL, BUILD_ENV_PREFIX
from .toolchain import BASE_LABEL, RECIPE_LABEL, VOLUME_PREFIX, toolchain_volume


@dataclasses.dataclass(frozen=True)
class Prunable:
    kind: str  # "toolchain image", "toolchain volume", "build environment"
    name: str
    reason: str
    size: int | None = None  # bytes, where the daemon says (images)


@dataclasses.dataclass(frozen=True)
class PruneResult:
    removed: tuple[Prunable, ...]
    in_use: tuple[Prunable, ...]  # a container still uses it: kept
    kept: int  # still usable, not asked to remove


def find_prunable(
    toolchain_images: Iterable[Mapping[str, Any]],
    volumes: Iterable[Mapping[str, Any]],
    image_ids: set[str],
    *,
    everything: bool,
) -> tuple[list[Prunable], int]:
    """(what to remove, how many kept) from the daemon's listings: toolchain images as
    ``{"id", "tags", "labels", "size"}``, volumes as ``{"name", "labels"}``, and the ids of
    every image present. ``everything``: all of prewheel's, usable or not. What cannot be
    told (made before prewheel labelled it) is kept unless ``everything``."""
    images = list(toolchain_images)
    found: list[Prunable] = []
    kept = 0
    kept_volumes = set()
    for image in images:
        reason = _toolchain_reason(image, image_ids, everything)
        if reason:
            name = (image.get("tags") or [image["id"]])[0]
            found.append(Prunable("toolchain image", name, reason, image.get("size")))
        else:
            kept += 1
            kept_volumes.add(toolchain_volume(image["id"]))
    of_images = {toolchain_volume(image["id"]) for image in images}
    for volume in volumes:
        name = volume["name"]
        if name in kept_volumes:
            kept += 1
            continue
        reason = _volume_reason(volume, of_images, image_ids, everything)
        if reason:
            kind = "toolchain volume" if name.startswith(VOLUME_PREFIX) else "build environment"
            found.append(Prunable(kind, name, reason))
        else:
            kept += 1
    return found, kept


def _toolchain_reason(image: Mapping[str, Any], image_ids: set[str], everything: bool) -> str:
    base = (image.get("labels") or {}).get(BASE_LABEL, "")
    if everything:
        return "--all"
    if base and base not in image_ids:
        return f"its base image {base.removeprefix('sha256:')[:12]} is gone"
    return ""


def _volume_reason(
    volume: Mapping[str, Any], of_images: set[str], image_ids: set[str], everything: bool
) -> str:
    name = volume["name"]
    if name.startswith(VOLUME_PREFIX):
        if name in of_images:
            return "its toolchain image is removed"
        return "--all" if everything else "its toolchain image is gone"
    if not name.startswith(BUILD_ENV_PREFIX):
        return ""
    image_id = (volume.get("labels") or {}).get(BUILD_ENV_IMAGE_LABEL, "")
    if everything:
        return "--all"
    if image_id and image_id not in image_ids:
        return f"its build image {image_id.removeprefix('sha256:')[:12]} is gone"
    return ""


def prune(client: docker.DockerClient, *, everything: bool, dry_run: bool) -> PruneResult:
    """Remove what :func:`find_prunable` names (nothing with ``dry_run``); a volume or image a
    container still uses is kept and reported."""
    try:
        # Volumes before images: a toolchain assembled in between then has its image listed
        # too, so its fresh volume is not taken for an orphan.
        volumes = [
            {"name": v.name, "labels": v.attrs.get("Labels") or {}}
            for v in client.volumes.list()
            if v.name.startswith((VOLUME_PREFIX, BUILD_ENV_PREFIX))
        ]
        images = client.images.list(filters={"label": RECIPE_LABEL})
        toolchains = [
            {"id": i.id, "tags": i.tags, "labels": i.labels, "size": i.attrs.get("Size")}
            for i in images
        ]
        image_ids = {str(i.id) for i in client.images.list(all=True)}
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise HostEnvironmentError(
            f"Cannot list the Docker daemon's images and volumes: {exc}"
        ) from None
    found, kept = find_prunable(toolchains, volumes, image_ids, everything=everything)
    if dry_run:
        return PruneResult(tuple(found), (), kept)
    removed, in_use = [], []
    # images first: their volumes can go only once no container of theirs is left
    for item in sorted(found, key=lambda p: p.kind != "toolchain image"):
        try:
            if item.kind == "toolchain image":
                client.images.remove(item.name)
            else:
                client.volumes.get(item.name).remove()
        except docker.errors.NotFound:
            continue  # gone meanwhile
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                in_use.append(item)
                continue
            raise HostEnvironmentError(
                f"Cannot remove the {item.kind} {item.name}: {exc}"
            ) from None
        removed.append(item)
    return PruneResult(tuple(removed), tuple(in_use), kept)
