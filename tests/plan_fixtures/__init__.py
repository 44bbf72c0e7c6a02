"""The pip oracle shared by the plan tests and ``bench/plan.py``: ``pip install --dry-run``
asked what it would install for a foreign target, isolated from this host's pip settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from builder.hostenv import ca_bundle
from builder.upstream.client import default_index_url


def pip_env(cache_dir: Path) -> dict[str, str]:
    """pip isolated from this host's configuration (local find-links, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CACHE_DIR=str(cache_dir),
    )
    bundle = ca_bundle()
    if bundle:
        env["PIP_CERT"] = str(bundle)
    return env


def pip_dry_run(
    requirements: Sequence[str],
    *,
    platforms: Sequence[str],
    python: str,
    abi: str,
    target_dir: Path,
) -> list[str]:
    """The command asking pip which binary files it would install (a JSON report on stdout)."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--dry-run",
        "--ignore-installed",
        "--report",
        "-",
        "--target",
        str(target_dir),
        "--only-binary=:all:",
        "--no-deps",
        "--index-url",
        default_index_url(),
        *(f"--platform={platform}" for platform in platforms),
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        *requirements,
    ]
