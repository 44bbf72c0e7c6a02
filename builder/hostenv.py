"""What the host knows about reaching the network: CA bundle, proxies, pip's index settings.

TLS-inspecting corporate proxies re-sign HTTPS with a private CA that only the host's trust
store (and pip's ``cert`` setting) knows. prewheel uses that bundle for its own requests and
passes it, with the proxy variables, into every build container, so pip inside them works too.
"""

from __future__ import annotations

import configparser
import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import platformdirs


def user_cache(part: str) -> Path:
    """``<platformdirs user cache>/prewheel/<part>``: downloads, index pages, compiled inputs."""
    return Path(platformdirs.user_cache_dir("prewheel", appauthor=False)) / part


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def pip_config_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """pip's configuration files, lowest precedence first (global, user, site, $PIP_CONFIG_FILE)."""
    environ = os.environ if env is None else env
    if environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    files = [
        Path(d) / "pip" / "pip.conf"
        for d in (
            "/etc/xdg",
            *reversed([p for p in environ.get("XDG_CONFIG_DIRS", "").split(":") if p]),
        )
    ]
    files.append(Path("/etc/pip.conf"))
    files.append(Path.home() / ".pip" / "pip.conf")
    files.append(
        Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True)) / "pip.conf"
    )
    venv = environ.get("VIRTUAL_ENV")
    if venv:
        files.append(Path(venv) / "pip.conf")
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return list(dict.fromkeys(files))


def pip_setting(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A pip option as pip would see it: ``PIP_<NAME>`` beats config files ([global]/[install])."""
    environ = os.environ if env is None else env
    from_env = environ.get("PIP_" + name.upper().replace("-", "_"))
    if from_env:
        return from_env
    value: str | None = None
    for path in pip_config_files(environ):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        for section in ("global", "download", "install"):
            if parser.has_option(section, name):
                value = parser.get(section, name).strip()
    return value


def ca_bundle(env: Mapping[str, str] | None = None) -> Path | None:
    """The CA bundle to trust: PREWHEEL_CA_BUNDLE, pip's ``cert``, SSL_CERT_FILE,
    REQUESTS_CA_BUNDLE, then the system OpenSSL default. None if none exists."""
    environ = os.environ if env is None else env
    candidates = [
        environ.get("PREWHEEL_CA_BUNDLE"),
        pip_setting("cert", environ),
        environ.get("SSL_CERT_FILE"),
        environ.get("REQUESTS_CA_BUNDLE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def proxy_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy variables set on the host, to hand to containers unchanged."""
    environ = os.environ if env is None else env
    return {name: environ[name] for name in PROXY_VARIABLES if environ.get(name)}


def ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """An SSL context that trusts the host's bundle (see :func:`ca_bundle`)."""
    bundle = ca_bundle(env)
    return ssl.create_default_context(cafile=str(bundle) if bundle else None)
