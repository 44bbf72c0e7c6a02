"""Test images made from the ones ``scripts/test-images.sh`` builds.

:func:`relabelled_image` gives an image another platform label without touching its files:
``docker save`` streams the image, its config's ``architecture``/``variant`` and the manifest's
tag are rewritten on the way, ``docker load`` takes it back (its layers are already present, so
nothing is copied but the new config). That is how an armhf (ARMv7, hard-float) root file
system is offered for linux/arm/v6, as a mislabelled registry image would be.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import threading
import time
from io import BytesIO
from typing import IO

_CONFIG = re.compile(r"[0-9a-f]{64}\.json")
LABEL = "org.prewheel.test.relabelled-from"


def image_exists(image: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=60, check=False
    )
    return result.returncode == 0


def relabelled_image(
    source: str, tag: str, *, architecture: str, variant: str, timeout: float = 600
) -> float:
    """Make ``tag`` from ``source`` with another platform label unless it exists already (made
    from the same source image id); returns the seconds it took (0 if it was there)."""
    source_id = _image_id(source)
    if image_exists(tag) and _label(tag) == source_id:
        return 0.0
    started = time.monotonic()
    with (
        subprocess.Popen(["docker", "save", source], stdout=subprocess.PIPE) as save,
        subprocess.Popen(
            ["docker", "load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as load,
    ):
        watchdog = threading.Timer(timeout, lambda: (save.kill(), load.kill()))
        watchdog.start()
        try:
            assert save.stdout is not None and load.stdin is not None
            assert load.stdout is not None and load.stderr is not None
            _rewrite(save.stdout, load.stdin, tag, source_id, architecture, variant)
            load.stdin.close()
            out, err = load.stdout.read(), load.stderr.read()  # a few lines: no pipe fills up
            load.wait(timeout=timeout)
            save.wait(timeout=timeout)
        finally:
            watchdog.cancel()
    if load.returncode != 0 or save.returncode != 0:
        raise RuntimeError(f"relabelling {source} as {tag} failed: {out!r} {err!r}")
    return time.monotonic() - started


def _rewrite(
    stream: IO[bytes],
    out: IO[bytes],
    tag: str,
    source_id: str,
    architecture: str,
    variant: str,
) -> None:
    configs: set[str] = set()
    with (
        tarfile.open(fileobj=stream, mode="r|") as source,
        tarfile.open(fileobj=out, mode="w|") as target,
    ):
        for member in source:
            if member.name == "repositories":
                continue  # the legacy tag file: manifest.json names the new tag
            data = source.extractfile(member) if member.isfile() else None
            if data is None:
                target.addfile(member)
                continue
            content = data.read()
            if _CONFIG.fullmatch(member.name):
                config = json.loads(content)
                config["architecture"], config["variant"] = architecture, variant
                labels = config.setdefault("config", {}).get("Labels") or {}
                config["config"]["Labels"] = {**labels, LABEL: source_id}
                content = json.dumps(config).encode()
                configs.add(member.name)  # the name may stay: docker load ids by content
            elif member.name == "manifest.json":
                manifest = json.loads(content)
                assert all(entry["Config"] in configs for entry in manifest), (
                    "config after manifest"
                )
                for entry in manifest:
                    entry["RepoTags"] = [tag]
                content = json.dumps(manifest).encode()
            member.size = len(content)
            target.addfile(member, BytesIO(content))


def _image_id(image: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def _label(image: str) -> str:
    return subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{LABEL}"}}}}',
            image,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
