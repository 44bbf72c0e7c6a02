"""Dockerfile lines that install the lock from the prewheel index, and a complete example.

The install refuses to compile (``--only-binary=:all:``), refuses any file the lock does not
name (``--require-hashes``) and reads one index only (``--index-url``, never
``--extra-index-url``, which merges indexes and invites dependency confusion). Credentials never
go into ``ARG``/``ENV`` (they would stay in the image history): an optional BuildKit secret
``netrc`` is mounted as ``/root/.netrc`` for the one ``RUN`` that needs it, and an optional
secret ``ca`` holds the CA bundle of a TLS-inspecting proxy or a private CA.

Pure text generation; nothing here touches Docker.
"""

from __future__ import annotations

import dataclasses

INDEX_ARG = "PREWHEEL_INDEX_URL"
SERVE_INDEX_URL = "http://127.0.0.1:8080/simple/"  # what 'prewheel serve' listens on by default
DEFAULT_LOCK_NAME = "requirements.lock"
LOCK_DIR_IN_IMAGE = "/usr/local/share/prewheel"


@dataclasses.dataclass(frozen=True)
class InstallOptions:
    """What the generated install step uses."""

    index_url: str  # default value of the ARG; overridable with --build-arg
    lock_name: str = DEFAULT_LOCK_NAME  # path of the lock in the build context
    venv: str = "/opt/venv"


def install_lines(options: InstallOptions) -> list[str]:
    """The lines to paste after ``FROM``: an ARG, a venv, the lock and one hardened RUN."""
    lock_in_image = f"{LOCK_DIR_IN_IMAGE}/{options.lock_name.rpartition('/')[2]}"
    return [
        f"ARG {INDEX_ARG}={options.index_url}",
        f"RUN python3 -m venv {options.venv}",
        f'ENV PATH="{options.venv}/bin:$PATH"',
        f"COPY {options.lock_name} {lock_in_image}",
        "RUN --mount=type=secret,id=netrc,target=/root/.netrc,required=false \\",
        "    --mount=type=secret,id=ca,required=false \\",
        "    --mount=type=cache,target=/root/.cache/pip,sharing=locked \\",
        "    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \\",
        "    pip install --disable-pip-version-check --no-input \\",
        f'        --index-url "${INDEX_ARG}" \\',
        "        --only-binary=:all: --require-hashes \\",
        f"        -r {lock_in_image}",
    ]


def example_dockerfile(
    options: InstallOptions, *, base_image: str = "python:3.11-slim-bookworm"
) -> str:
    """A complete multi-arch Dockerfile: base image, the install step, a smoke import."""
    lines = [
        "# Multi-arch image whose Python dependencies come pre-built from a prewheel index.",
        "# Build (the index must be reachable from the builder, see 'prewheel dockerfile --help'):",
        "#   DOCKER_BUILDKIT=1 docker build --network host \\",
        "#     --platform linux/arm/v7 \\",
        f"#     --build-arg {INDEX_ARG}={options.index_url} .",
        "# or for several platforms at once with buildx:",
        "#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \\",
        "#     --network host --allow network.host .",
        "# Private index with credentials: --secret id=netrc,src=$HOME/.netrc",
        "ARG BASE_IMAGE=" + base_image,
        "FROM ${BASE_IMAGE}",
        *install_lines(options),
        "RUN pip list --disable-pip-version-check --format=freeze",
        'CMD ["python3"]',
    ]
    return "\n".join(lines) + "\n"


def builder_network_notes(index_url: str) -> list[str]:
    """How a build reaches an index served on the host's loopback interface."""
    buildx = (
        "  buildx docker-container driver (BuildKit in its own container, where localhost is not "
        "the host): docker buildx create --name prewheel --driver docker-container "
        "--driver-opt network=host --buildkitd-flags '--allow-insecure-entitlement network.host' "
        "--use, then docker buildx build --allow network.host --network host ..."
    )
    reachable = (
        "  or serve the index on an address the builder reaches (prewheel serve --host 0.0.0.0, "
        "then pass that address in the build argument)"
    )
    credentials = (
        "Credentials: never in --build-arg; pass --secret id=netrc,src=$HOME/.netrc (machine, "
        "login, password for the index host). A private CA: --secret id=ca,src=ca.pem."
    )
    return [
        f"The index URL {index_url} must be reachable from where the RUN steps execute:",
        "  classic builder or BuildKit in the daemon: docker build --network host ...",
        buildx,
        reachable,
        credentials,
        f"Override the index per build: --build-arg {INDEX_ARG}=<url>/simple/.",
    ]
