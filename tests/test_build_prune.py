"""``prewheel prune``: what is decided (pure, from listings) and what is removed (a real daemon)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid

import docker
import pytest
from build_fixtures.helpers import TEST_IMAGE

from builder.building.builders import BUILD_ENV_IMAGE_LABEL, BUILD_ENV_PREFIX
from builder.building.prune import find_prunable
from builder.building.toolchain import BASE_LABEL, toolchain_volume

LIVE, GONE = "sha256:" + "a" * 64, "sha256:" + "b" * 64
TOOLCHAIN = {"id": "sha256:" + "c" * 64, "tags": ["prewheel-toolchain:cc"], "size": 1_300_000_000}


def test_only_what_was_made_from_a_missing_image_is_pruned() -> None:
    images = [
        {**TOOLCHAIN, "labels": {BASE_LABEL: GONE}},
        {
            "id": "sha256:" + "d" * 64,
            "tags": ["prewheel-toolchain:dd"],
            "labels": {BASE_LABEL: LIVE},
        },
        {"id": "sha256:" + "e" * 64, "tags": [], "labels": {}},  # older: base unknown
    ]
    volumes = [
        {"name": toolchain_volume(TOOLCHAIN["id"]), "labels": {}},
        {"name": toolchain_volume("sha256:" + "d" * 64), "labels": {}},
        {"name": toolchain_volume("sha256:" + "f" * 64), "labels": {}},  # its image removed by hand
        {"name": f"{BUILD_ENV_PREFIX}live", "labels": {BUILD_ENV_IMAGE_LABEL: LIVE}},
        {"name": f"{BUILD_ENV_PREFIX}gone", "labels": {BUILD_ENV_IMAGE_LABEL: GONE}},
        {"name": f"{BUILD_ENV_PREFIX}unlabelled", "labels": {}},
    ]
    found, kept = find_prunable(images, volumes, {LIVE}, everything=False)
    assert [(p.kind, p.name) for p in found] == [
        ("toolchain image", "prewheel-toolchain:cc"),
        ("toolchain volume", toolchain_volume(TOOLCHAIN["id"])),
        ("toolchain volume", toolchain_volume("sha256:" + "f" * 64)),
        ("build environment", f"{BUILD_ENV_PREFIX}gone"),
    ]
    assert found[0].reason == "its base image bbbbbbbbbbbb is gone" and found[0].size
    assert found[1].reason == "its toolchain image is removed"
    assert kept == 5  # two images, one toolchain volume, two build environments
    everything, kept = find_prunable(images, volumes, {LIVE}, everything=True)
    assert len(everything) == len(images) + len(volumes) and kept == 0


@pytest.mark.docker
def test_prune_removes_a_build_environment_whose_image_is_gone_and_keeps_a_usable_one() -> None:
    client = docker.from_env()
    suffix = uuid.uuid4().hex[:8]
    live_image = str(client.images.get(TEST_IMAGE.format(debian_arch="amd64")).id)
    gone = client.volumes.create(
        f"{BUILD_ENV_PREFIX}test-gone-{suffix}", labels={BUILD_ENV_IMAGE_LABEL: GONE}
    )
    live = client.volumes.create(
        f"{BUILD_ENV_PREFIX}test-live-{suffix}", labels={BUILD_ENV_IMAGE_LABEL: live_image}
    )
    try:
        command = [sys.executable, "-m", "builder", "prune", "--json"]
        dry = subprocess.run(
            [*command, "--dry-run"], capture_output=True, text=True, timeout=120, check=True
        )
        listed = {item["name"] for item in json.loads(dry.stdout)["removed"]}
        assert gone.name in listed and live.name not in listed
        client.volumes.get(gone.name)  # a dry run removes nothing
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
        assert gone.name in {item["name"] for item in json.loads(done.stdout)["removed"]}
        assert f"removed build environment {gone.name} (its build image bbbbbbbbbbbb is gone)" in (
            done.stderr
        )
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(gone.name)
        client.volumes.get(live.name)
    finally:
        for volume in (gone, live):
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(volume.name).remove()
        client.close()
