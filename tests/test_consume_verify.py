from __future__ import annotations

import json
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from consume_fixtures import requirement
from index_fixtures import make_wheel

from builder.consume.lock import LockLine, render_lock
from builder.consume.verify import (
    RESULT_MARKER,
    DockerProbeRunner,
    ProbeRun,
    TargetResult,
    VerifyCache,
    image_for,
    judge,
    parse_probe_output,
    probe_script,
    verify,
)
from builder.errors import UsageError, VerifyFailedError
from builder.files import atomic_write, file_sha256
from builder.index.server import serving, tree_fingerprint
from builder.index.static import StaticIndex
from builder.targets import Arch, select_targets

ARMV7 = select_targets(platforms=["linux/arm/v7"])[0]
AMD64 = select_targets(platforms=["linux/amd64"])[0]


def probe_output(**fields: object) -> str:
    data = {
        "compiler": "",
        "pip_exit": 0,
        "pip_output": "",
        "install_seconds": 1.5,
        "installed": [
            {
                "name": "tinypkg",
                "version": "1.0",
                "url": "http://127.0.0.1:9/files/tinypkg-1.0-py3-none-any.whl",
            }
        ],
        "imports": {"tinypkg": ""},
    }
    data.update(fields)
    return "noise\n" + RESULT_MARKER + json.dumps(data) + "\n"


def test_image_template_placeholders() -> None:
    assert (
        image_for("prewheel-test/bookworm:{debian_arch}", ARMV7) == "prewheel-test/bookworm:armhf"
    )
    assert image_for("python:{python}-slim-bookworm", ARMV7) == "python:3.11-slim-bookworm"
    # one meaning per placeholder, as for build images: {platform} is the Docker platform
    assert image_for("reg/{platform}/base:{arch}", ARMV7) == "reg/linux/arm/v7/base:armv7l"
    with pytest.raises(UsageError, match="debian_arch"):
        image_for("base:{debain_arch}", ARMV7)


def test_judge_success_reports_what_came_from_where() -> None:
    result = judge(ARMV7, "img", ProbeRun(0, False, probe_output()), 12.345)
    assert result.ok and result.error == ""
    assert result.platform == "linux/arm/v7" and result.seconds == 12.35
    assert result.installed[0].filename == "tinypkg-1.0-py3-none-any.whl"
    assert result.imported == ("tinypkg",)
    assert result.install_seconds == 1.5


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"pip_exit": 1, "pip_output": "THESE PACKAGES DO NOT MATCH THE HASHES"},
            "MATCH THE HASHES",
        ),
        ({"imports": {"tinypkg": "ImportError: libfoo.so.1"}}, "tinypkg: ImportError: libfoo.so.1"),
        ({"compiler": "/usr/bin/gcc"}, "has a C compiler"),
        ({"imports": {}}, "no importable module"),
    ],
)
def test_judge_failures_name_the_cause(fields: dict[str, object], expected: str) -> None:
    result = judge(ARMV7, "img", ProbeRun(0, False, probe_output(**fields)), 1.0)
    assert not result.ok
    assert expected in result.error


def test_compiler_is_accepted_when_allowed() -> None:
    run = ProbeRun(0, False, probe_output(compiler="/usr/bin/gcc"))
    assert judge(ARMV7, "img", run, 1.0, allow_compiler=True).ok


def test_probe_without_result_timeout_and_crash() -> None:
    timed_out = judge(ARMV7, "img", ProbeRun(137, True, "partial\n"), 900.0)
    assert "timed out after 900 s" in timed_out.error
    crashed = judge(ARMV7, "img", ProbeRun(1, False, "Traceback: boom\n"), 1.0)
    assert "exited with 1" in crashed.error and "boom" in crashed.error
    assert parse_probe_output(RESULT_MARKER + "{not json") is None


class _Recorder:
    """A ProbeRunner that replays canned outputs (for the sequencing logic only)."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = outputs
        self.calls: list[dict[str, object]] = []
        self.preflights: list[tuple[str, Arch]] = []

    def preflight(self, image: str, arch: Arch) -> None:
        self.preflights.append((image, arch))

    def run(self, **kwargs: object) -> ProbeRun:
        self.calls.append(kwargs)
        return ProbeRun(0, False, self.outputs.pop(0))


def test_every_target_is_tried_and_failures_are_collected(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    runner = _Recorder(
        [probe_output(pip_exit=1, pip_output="No matching distribution"), probe_output()]
    )
    with pytest.raises(VerifyFailedError) as failure:
        verify(
            lock,
            [ARMV7, AMD64],
            index_url="http://127.0.0.1:9/simple/",
            image_template="t:{debian_arch}",
            runner=runner,
        )
    assert [c["arch"] for c in runner.calls] == [Arch.ARMV7L, Arch.X86_64]
    assert [c["image"] for c in runner.calls] == ["t:armhf", "t:amd64"]
    assert "linux/arm/v7 (t:armhf)" in failure.value.message
    assert "linux/amd64" not in failure.value.message.partition(":")[0]
    assert runner.calls[0]["environment"]["PIP_INDEX_URL"] == "http://127.0.0.1:9/simple/"  # type: ignore[index]


def test_32_bit_arm_is_verified_on_its_own_cpu_and_other_targets_on_qemus_default(
    tmp_path: Path,
) -> None:
    """Under QEMU's default CPU, ARMv7 code in an armv6l wheel would import and pass, and
    ARMv8 code in an armv7l wheel would too (QEMU's default 32-bit CPU has ARMv8 features)."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    [armv6] = select_targets(platforms=["linux/arm/v6"])
    runner = _Recorder([probe_output(machine="armv6l"), probe_output(), probe_output()])
    results = verify(
        lock, [armv6, ARMV7, AMD64], index_url="http://127.0.0.1:9/simple/", runner=runner
    )
    assert results[0].machine == "armv6l"  # what the container's CPU reported
    cpus = [c["environment"].get("QEMU_CPU") for c in runner.calls]  # type: ignore[attr-defined]
    assert cpus == ["arm1176", "cortex-a7", None]


def test_the_probe_its_lock_the_ca_bundle_and_the_proxies_reach_the_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-container script ships as a resource file and is copied in with the lock and the
    host's CA bundle; pip in the container is told to trust it and to use the host's proxies,
    except for the index on the host network."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PREWHEEL_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    runner = _Recorder([probe_output()])
    verify(lock, [AMD64], index_url="http://127.0.0.1:9/simple/", runner=runner)
    [call] = runner.calls
    files = {str(destination): source for destination, source in call["files"].items()}  # type: ignore[attr-defined]
    assert files["/prewheel/requirements.lock"] == lock
    assert files["/prewheel/ca.pem"] == bundle
    probe = files["/prewheel/verify_in_container.py"]
    assert probe.read_bytes() == probe_script()
    assert f'RESULT_MARKER = "{RESULT_MARKER}"'.encode() in probe_script()  # one protocol
    assert call["argv"][:2] == ["python3", "/prewheel/verify_in_container.py"]  # type: ignore[index]
    environment = call["environment"]
    assert environment["PIP_CERT"] == environment["SSL_CERT_FILE"] == "/prewheel/ca.pem"  # type: ignore[index]
    assert environment["HTTPS_PROXY"] == "http://proxy.example:3128"  # type: ignore[index]
    assert environment["NO_PROXY"] == "127.0.0.1,localhost"  # type: ignore[index]


def test_the_uv_installer_reaches_the_probe_and_names_its_failures(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    runner = _Recorder([probe_output(installer="uv", pip_exit=2, pip_output="Hash mismatch")])
    with pytest.raises(VerifyFailedError, match="uv install failed \\(exit 2\\)"):
        verify(lock, [AMD64], index_url="http://127.0.0.1:9/simple/", runner=runner, installer="uv")
    spec = json.loads(runner.calls[0]["argv"][-1])  # type: ignore[index]
    assert spec["installer"] == "uv"
    assert spec["uv_version"] == version("uv")  # the release prewheel itself runs
    pylock = tmp_path / "pylock.toml"
    pylock.write_text('lock-version = "1.0"\n')
    with pytest.raises(UsageError, match="--installer uv"):
        verify(pylock, [AMD64], index_url="http://x/simple/", runner=_Recorder([]))
    runner = _Recorder([probe_output(installer="uv")])
    verify(pylock, [AMD64], index_url="http://x/simple/", runner=runner, installer="uv")
    assert "/prewheel/pylock.toml" in runner.calls[0]["argv"]  # type: ignore[operator]
    assert any(str(dest) == "/prewheel/pylock.toml" for dest in runner.calls[0]["files"])  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="choose one of pip, uv"):
        verify(lock, [AMD64], index_url="http://x/simple/", runner=_Recorder([]), installer="pdm")


def test_missing_lock_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="prewheel lock"):
        verify(tmp_path / "nope.lock", [AMD64], index_url="http://x/simple/", runner=_Recorder([]))


# --- real containers --------------------------------------------------------------------------


def _index_with(tmp_path: Path, wheel: Path) -> Path:
    root = tmp_path / "index"
    StaticIndex(root).sync([wheel])
    return root


def _lock_for(tmp_path: Path, wheel: Path) -> Path:
    lock = tmp_path / "requirements.lock"
    line = LockLine(requirement("tinypkg==1.0"), ((wheel.name, file_sha256(wheel)),))
    atomic_write(lock, render_lock([line]))
    return lock


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_verify_in_a_real_container_from_a_served_index(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "tinypkg", "1.0")
    lock = _lock_for(tmp_path, wheel)
    with serving(_index_with(tmp_path, wheel)) as url:
        [result] = verify(
            lock,
            [AMD64],
            index_url=url,
            image_template="prewheel-test/bookworm:{debian_arch}",
            runner=DockerProbeRunner(),
            timeout=300,
        )
    assert result.ok, result.error
    assert result.imported == ("tinypkg",)
    assert result.installed[0].url.startswith(url.removesuffix("simple/"))


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_verify_refuses_a_tampered_wheel_and_images_with_a_compiler(tmp_path: Path) -> None:
    genuine = make_wheel(tmp_path / "genuine", "tinypkg", "1.0")
    lock = _lock_for(tmp_path, genuine)
    forged = make_wheel(tmp_path / "forged", "tinypkg", "1.0", extra_members={"evil.py": b"x=1"})
    with serving(_index_with(tmp_path, forged)) as url, pytest.raises(VerifyFailedError) as bad:
        verify(
            lock,
            [AMD64],
            index_url=url,
            image_template="prewheel-test/bookworm:{debian_arch}",
            runner=DockerProbeRunner(),
            timeout=300,
        )
    assert "DO NOT MATCH THE HASHES" in bad.value.message
    with (
        serving(_index_with(tmp_path / "ok", genuine)) as url,
        pytest.raises(VerifyFailedError, match="has a C compiler"),
    ):
        verify(
            lock,
            [AMD64],
            index_url=url,
            image_template="prewheel-test/bookworm-build:{debian_arch}",
            runner=DockerProbeRunner(),
            timeout=300,
        )


class _CountingRunner:
    """A ProbeRunner whose probes succeed (or fail), counting the containers it would start."""

    def __init__(self, image_ids: dict[str, str | None], *, ok: bool = True) -> None:
        self.image_ids = image_ids
        self.ok = ok
        self.started = 0

    def image_id(self, image: str, arch: Arch) -> str | None:
        return self.image_ids.get(image)

    def preflight(self, image: str, arch: Arch) -> None:
        pass

    def run(self, **kwargs: object) -> ProbeRun:
        self.started += 1
        return ProbeRun(0, False, probe_output() if self.ok else probe_output(pip_exit=1))


def test_an_unchanged_verification_is_reused_and_any_changed_input_runs_again(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    cache = VerifyCache(tmp_path / "cache" / "results.json")
    runner = _CountingRunner({"t:amd64": "sha256:aaa", "t:armhf": "sha256:bbb"})

    def check(**options: object) -> list[TargetResult]:
        options.setdefault("index_fingerprint", "tree-1")
        return verify(
            lock,
            [AMD64, ARMV7],
            index_url="http://127.0.0.1:9/simple/",
            image_template="t:{debian_arch}",
            runner=runner,
            cache=cache,
            **options,  # type: ignore[arg-type]
        )

    first = check()
    assert runner.started == 2 and not any(r.cached for r in first)
    again = check()
    assert runner.started == 2 and all(r.cached for r in again)  # no container started
    assert [r.installed for r in again] == [r.installed for r in first]
    check(reuse=False)  # --reverify
    assert runner.started == 4
    runner.image_ids["t:armhf"] = "sha256:rebuilt"  # a new image: that target only
    check()
    assert runner.started == 5
    check(index_fingerprint="tree-2")  # the index changed
    assert runner.started == 7
    lock.write_text("tinypkg==1.0 --hash=sha256:01\n")  # the lock changed
    check()
    assert runner.started == 9
    check(installer="uv")  # another installer proves something else
    assert runner.started == 11
    check(installer="uv")
    assert runner.started == 11


def test_failures_and_images_without_an_id_are_never_reused(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("tinypkg==1.0 --hash=sha256:00\n")
    cache = VerifyCache(tmp_path / "results.json")
    failing = _CountingRunner({"t:amd64": "sha256:aaa"}, ok=False)
    for _ in range(2):
        with pytest.raises(VerifyFailedError):
            verify(lock, [AMD64], index_url="u", image_template="t:{debian_arch}",
                   runner=failing, cache=cache)  # fmt: skip
    assert failing.started == 2
    unknown = _CountingRunner({})  # the image is not local: its ID is unknown
    for _ in range(2):
        verify(lock, [AMD64], index_url="u", image_template="t:{debian_arch}", runner=unknown,
               cache=cache)  # fmt: skip
    assert unknown.started == 2


def test_the_index_fingerprint_is_what_pip_can_install_not_when_it_was_listed(
    tmp_path: Path,
) -> None:
    """An unchanged rerun into a new output directory re-indexes the same wheels later: the
    verification of the first run still stands (upload times differ, the files do not)."""
    wheel = make_wheel(tmp_path / "wheels", "tinypkg", "1.0")
    StaticIndex(tmp_path / "first").sync([wheel])
    time.sleep(1.1)  # a later upload time
    StaticIndex(tmp_path / "second").sync([wheel])
    first, second = tree_fingerprint(tmp_path / "first"), tree_fingerprint(tmp_path / "second")
    assert first and first == second
    other = make_wheel(tmp_path / "other", "tinypkg", "1.1")
    StaticIndex(tmp_path / "second").sync([other])
    assert tree_fingerprint(tmp_path / "second") != first
    assert tree_fingerprint(tmp_path / "no-tree") == ""
