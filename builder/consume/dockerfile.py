"""Dockerfile lines that install the lock from the prewheel index, and a complete example.

The install refuses to compile (``--only-binary=:all:``), refuses any file the lock does not
name (``--require-hashes``) and reads one index only (``--index-url``, never
``--extra-index-url``, which merges indexes and invites dependency confusion). Credentials never
go into ``ARG``/``ENV`` (they would stay in the image history): an optional BuildKit secret
``netrc`` is mounted as ``/root/.netrc`` for the one ``RUN`` that needs it, and an optional
secret ``ca`` holds the CA bundle of a TLS-inspecting proxy or a private CA.

With ``installer="uv"`` the same lock is installed by uv (``--require-hashes --no-build``,
the one index) into a venv without pip. uv itself is installed first, by the image's pip as a
binary wheel of one pinned release from ``UV_INDEX_URL`` (uv publishes wheels for every
platform prewheel targets, linux/arm/v6 included, unlike its container images), into a
directory that is removed in the same step.

Pure text generation; nothing here touches Docker.
"""

from __future__ import annotations

import dataclasses

INDEX_ARG = "PREWHEEL_INDEX_URL"
UV_VERSION_ARG = "UV_VERSION"
UV_INDEX_ARG = "UV_INDEX_URL"
UV_TOOL_DIR = "/tmp/prewheel-uv"  # noqa: S108 - inside the image being built, removed at once
SERVE_INDEX_URL = "http://127.0.0.1:8080/simple/"  # what 'prewheel serve' listens on by default
DEFAULT_LOCK_NAME = "requirements.lock"
LOCK_DIR_IN_IMAGE = "/usr/local/share/prewheel"


@dataclasses.dataclass(frozen=True)
class InstallOptions:
    """What the generated install step uses."""

    index_url: str  # default value of the ARG; overridable with --build-arg
    lock_name: str = DEFAULT_LOCK_NAME  # path of the lock in the build context
    venv: str = "/opt/venv"
    installer: str = "pip"  # or "uv"
    uv_version: str = ""  # with uv: the release to install
    uv_index_url: str = ""  # with uv: where the image's pip finds it


def lock_in_image(options: InstallOptions) -> str:
    return f"{LOCK_DIR_IN_IMAGE}/{options.lock_name.rpartition('/')[2]}"


def install_lines(options: InstallOptions) -> list[str]:
    """The lines to paste after ``FROM``: ARGs, a venv, the lock and one hardened RUN."""
    if options.installer == "uv":
        return _uv_install_lines(options)
    lock = lock_in_image(options)
    return [
        f"ARG {INDEX_ARG}={options.index_url}",
        f"RUN python3 -m venv {options.venv}",
        f'ENV PATH="{options.venv}/bin:$PATH"',
        f"COPY {options.lock_name} {lock}",
        *_secret_mounts("/root/.cache/pip"),
        "    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \\",
        "    pip install --disable-pip-version-check --no-input \\",
        f'        --index-url "${INDEX_ARG}" \\',
        "        --only-binary=:all: --require-hashes \\",
        f"        -r {lock}",
    ]


def _secret_mounts(cache: str) -> list[str]:
    return [
        "RUN --mount=type=secret,id=netrc,target=/root/.netrc,required=false \\",
        "    --mount=type=secret,id=ca,required=false \\",
        f"    --mount=type=cache,target={cache},sharing=locked \\",
    ]


def _uv_install_lines(options: InstallOptions) -> list[str]:
    if not options.uv_version or not options.uv_index_url:
        raise ValueError("installer uv needs uv_version and uv_index_url")
    lock = lock_in_image(options)
    return [
        f"ARG {INDEX_ARG}={options.index_url}",
        f"ARG {UV_VERSION_ARG}={options.uv_version}",
        f"ARG {UV_INDEX_ARG}={options.uv_index_url}",
        f"COPY {options.lock_name} {lock}",
        # One step, before the venv is on PATH: python3 is the image's, whose pip gets uv.
        *_secret_mounts("/root/.cache/uv"),
        "    export UV_LINK_MODE=copy; \\",
        "    if [ -s /run/secrets/ca ]; then \\",
        "      export PIP_CERT=/run/secrets/ca SSL_CERT_FILE=/run/secrets/ca; fi; \\",
        f"    python3 -m venv --without-pip {options.venv} \\",
        "    && python3 -m pip install --disable-pip-version-check --no-input --no-cache-dir \\",
        f'        --only-binary=:all: --target {UV_TOOL_DIR} --index-url "${UV_INDEX_ARG}" \\',
        f'        "uv==${UV_VERSION_ARG}" \\',
        f"    && {UV_TOOL_DIR}/bin/uv pip install --python {options.venv}/bin/python \\",
        f'        --index-url "${INDEX_ARG}" \\',
        "        --no-build --require-hashes \\",
        f"        -r {lock} \\",
        f"    && rm -rf {UV_TOOL_DIR}",
        f'ENV PATH="{options.venv}/bin:$PATH"',
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
        _listing(options),
        'CMD ["python3"]',
    ]
    return "\n".join(lines) + "\n"


def _listing(options: InstallOptions) -> str:
    """A last step that prints what was installed (the venv of a uv install has no pip)."""
    if options.installer == "uv":
        return (
            'RUN python3 -c "import importlib.metadata as m; '
            "print(*sorted(d.metadata['Name'] + '==' + d.version for d in m.distributions()), "
            'sep=chr(10))"'
        )
    return "RUN pip list --disable-pip-version-check --format=freeze"


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
