"""htpasswd logins for `prewheel serve`: the schemes Apache's htpasswd writes, with bcrypt 5."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import bcrypt
import pytest
from packaging.version import Version

from builder.errors import UsageError
from builder.index.auth import HtpasswdAuth

SECRET = "correct horse"


def test_the_bcrypt_under_test_is_bcrypt_5() -> None:
    """passlib 1.7.4 raised ValueError on bcrypt 5 (its wrap-bug probe hashes 255 bytes)."""
    assert Version(version("bcrypt")) >= Version("5")


@pytest.mark.parametrize("prefix", [b"$2y$", b"$2b$"])
def test_bcrypt_entries_as_htpasswd_dash_b_writes_them(tmp_path: Path, prefix: bytes) -> None:
    """`htpasswd -B` writes $2y$ entries; bcrypt and other tools write $2b$."""
    hashed = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=5))
    entry = prefix + hashed[len(prefix) :]
    (tmp_path / "htpasswd").write_bytes(b"ci:" + entry + b"\n")
    auth = HtpasswdAuth(tmp_path / "htpasswd")
    try:
        assert auth.check("ci", SECRET) == "ci"
        assert auth.check("ci", "wrong") is None
        assert auth.check("nobody", SECRET) is None
    finally:
        auth.close()


def test_an_unreadable_htpasswd_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read htpasswd file"):
        HtpasswdAuth(tmp_path / "missing")
