"""prewheel's in-container verification script: runs with the target image's python3 (3.8 or
later), standard library only.

    python3 verify_in_container.py INDEX_URL LOCK [INSTALLER_JSON]

Creates a venv, installs LOCK from INDEX_URL with binaries only and every hash checked (with
the image's pip, or with uv when INSTALLER_JSON says ``{"installer": "uv", "uv_version": ...,
"uv_index_url": ...}``), then imports every top-level module the installed distributions
provide. Prints one line, RESULT_MARKER followed by a JSON object (machine, compiler, installer,
pip_exit, pip_output, installed, imports and timings), which prewheel reads
(:func:`builder.consume.verify.parse_probe_output`).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from typing import Any

RESULT_MARKER = "PREWHEEL-VERIFY-RESULT "
VENV = "/tmp/prewheel-venv"  # noqa: S108 - a throw-away container's own /tmp
REPORT = "/tmp/prewheel-report.json"  # noqa: S108
UV_TARGET = "/tmp/prewheel-uv"  # noqa: S108
SKIP = {"test", "tests", "testing", "docs", "doc", "examples", "benchmarks", "bin"}
# Run by the venv's python, so the imports see exactly what was installed.
IMPORT_CHECK = """
import importlib, importlib.metadata as md, json, sys
SKIP = set(sys.argv[2].split(","))
result = {}
for name in sys.argv[1].split(","):
    tops = set()
    for f in md.distribution(name).files or ():
        parts = f.parts
        if not parts or parts[0] in ("..",) or parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) == 1:
            stem = parts[0].split(".")[0]
            if parts[0].endswith((".py", ".so")) and stem.isidentifier():
                tops.add(stem)
        elif parts[0].isidentifier() and parts[-1].endswith((".py", ".so")):
            tops.add(parts[0])
    for module in sorted(tops - SKIP):
        if module.startswith("_"):
            continue  # private modules (e.g. optional C-accelerator shims) load via public ones
        try:
            importlib.import_module(module)
            result[module] = ""
        except BaseException as exc:
            result[module] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
"""


def tail(process: subprocess.CompletedProcess[str], lines: int = 25) -> str:
    return "\n".join((process.stdout + process.stderr).strip().splitlines()[-lines:])


def record_install(
    out: dict[str, Any], process: subprocess.CompletedProcess[str], started: float
) -> bool:
    """Put the install's time, exit status and last output into ``out``; whether it worked."""
    out["install_seconds"] = time.monotonic() - started
    out["pip_exit"] = process.returncode
    out["pip_output"] = tail(process)
    return process.returncode == 0


def install_with_pip(out: dict[str, Any], index_url: str, lock: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    out["venv_seconds"] = time.monotonic() - out.pop("_started")
    started = time.monotonic()
    pip = subprocess.run(
        [VENV + "/bin/python", "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "--no-cache-dir", "--index-url", index_url, "--only-binary=:all:",
         "--require-hashes", "--report", REPORT, "-r", lock],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if record_install(out, pip, started):
        with open(REPORT) as stream:  # noqa: PTH123 - Python 3.8 images: keep it plain
            report = json.load(stream)
        for item in report.get("install", []):
            meta = item.get("metadata", {})
            out["installed"].append(
                {
                    "name": meta.get("name", ""),
                    "version": meta.get("version", ""),
                    "url": item.get("download_info", {}).get("url", ""),
                }
            )


def install_with_uv(out: dict[str, Any], index_url: str, lock: str, spec: dict[str, str]) -> None:
    # uv for this platform, as a Dockerfile gets it: the image's pip installs the pinned
    # release (a binary wheel) from the tool index into a directory of its own.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", VENV], check=True)
    out["venv_seconds"] = time.monotonic() - out.pop("_started")
    tool = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         "--no-cache-dir", "--only-binary=:all:", "--target", UV_TARGET,
         "--index-url", spec["uv_index_url"], "uv==" + spec["uv_version"]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if tool.returncode != 0:
        out["pip_exit"] = tool.returncode
        out["pip_output"] = f"installing uv {spec['uv_version']} failed:\n" + tail(tool, 20)
        return
    uv = UV_TARGET + "/bin/uv"
    started = time.monotonic()
    install = subprocess.run(
        [uv, "pip", "install", "--python", VENV + "/bin/python", "--index-url", index_url,
         # a pylock.toml names every file by URL with its hashes, which uv always checks
         *([] if lock.endswith(".toml") else ["--require-hashes"]),
         "--no-build", "--no-cache", "-r", lock],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if record_install(out, install, started):
        listed = subprocess.run(
            [uv, "pip", "list", "--python", VENV + "/bin/python", "--format", "json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        for item in json.loads(listed.stdout):  # one index only: every file came from it
            out["installed"].append(
                {"name": item["name"], "version": item["version"], "url": index_url}
            )


def check_imports(out: dict[str, Any]) -> None:
    names = ",".join(p["name"] for p in out["installed"])
    started = time.monotonic()
    check = subprocess.run(
        [VENV + "/bin/python", "-c", IMPORT_CHECK, names, ",".join(sorted(SKIP))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    out["import_seconds"] = time.monotonic() - started
    if check.returncode == 0 and names:
        out["imports"] = json.loads(check.stdout.strip().splitlines()[-1])
    elif names:
        out["imports"] = {"<import check>": check.stderr.strip()[-2000:]}


def main(argv: list[str]) -> None:
    index_url, lock = argv[0], argv[1]
    spec: dict[str, str] = json.loads(argv[2]) if len(argv) > 2 else {"installer": "pip"}
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "compiler": "",
        "installer": spec["installer"],
        "pip_exit": None,
        "pip_output": "",
        "installed": [],
        "imports": {},
        "venv_seconds": 0.0,
        "install_seconds": 0.0,
        "import_seconds": 0.0,
    }
    for tool in ("gcc", "cc", "clang"):
        found = shutil.which(tool)
        if found:
            out["compiler"] = found
            break
    out["_started"] = time.monotonic()
    if spec["installer"] == "uv":
        install_with_uv(out, index_url, lock, spec)
    else:
        install_with_pip(out, index_url, lock)
    if out["pip_exit"] == 0:
        check_imports(out)
    print(RESULT_MARKER + json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
