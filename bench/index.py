"""Benchmark the index: installs of a 100-pin set from the static tree, from `prewheel serve`
and from pypiserver holding the same files, side by side in one run; plus index generation.

The wheels are downloaded once from the configured index (pip's own configuration) into a
cache outside the repository; every install then talks only to servers on 127.0.0.1, with
the user's pip/uv configuration and caches switched off. Runs are interleaved round-robin so
drift hits every server alike; the median of the rounds is reported, as ratios to pypiserver.

With ``--load`` it measures instead, in one run, what ``prewheel serve`` sustains: uploads/s
at 1, 20 and 50 concurrent clients (each client uploading distinct small wheels, a fresh tree
per level), and GET requests/s with their p50/p99 latency for ``prewheel serve`` and
``python -m http.server`` serving the same tree of the 100-pin set (written to
docs/benchmarks/index-load.md).

Usage: .venv/bin/python bench/index.py [--rounds 3] [--load] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import platformdirs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.merge import write_section
from builder.index.static import StaticIndex
from tests.index_fixtures import make_wheel

TOKEN = "bench-token-0123456789"
UPLOAD_CLIENTS = (1, 20, 50)
UPLOADS_PER_LEVEL = 100
GET_CLIENTS = 10
GETS_PER_CLIENT = 200

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def pins_file() -> Path:
    """The shared 100-pin lock (with hashes) that the other benchmarks use too."""
    return HERE / "data" / "requirements-100.txt"


def download_once(pins: Path) -> Path:
    key = hashlib.sha256(pins.read_bytes()).hexdigest()[:12]
    cache = Path(platformdirs.user_cache_dir("prewheel")) / "bench-index" / key
    done = cache / ".complete"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--only-binary=:all:",
                "--no-deps",
                "-q",
                "-r",
                str(pins),
                "-d",
                str(cache),
            ],
            check=True,
            timeout=1800,
        )
        done.touch()
    return cache


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(argv: list[str], url: str, log: Path) -> Iterator[str]:
    with log.open("wb") as stream:
        process = subprocess.Popen(
            argv, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url, timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"{argv[0]} did not start: {log.read_text()}") from None
                    time.sleep(0.2)
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def clean_env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        UV_NO_CONFIG="1",
        UV_NO_CACHE="1",
        UV_CACHE_DIR=str(scratch / "uv-cache"),
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


def pip_cmd(index: str, pins: Path, target: Path) -> list[str]:
    return [
        str(BIN / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--index-url",
        index,
        "--target",
        str(target),
        "-r",
        str(pins),
    ]


def uv_cmd(index: str, pins: Path, target: Path) -> list[str]:
    return [
        str(BIN / "uv"),
        "pip",
        "install",
        "-q",
        "--index-url",
        index,
        "--target",
        str(target),
        "--python",
        str(BIN / "python"),
        "-r",
        str(pins),
    ]


def timed(argv: list[str], env: dict[str, str], target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, timeout=900, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def _in_parallel(jobs: list[Callable[[], None]]) -> float:
    """Run the jobs in one thread each, released together; the wall time until all ended."""
    barrier = threading.Barrier(len(jobs) + 1)

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        job()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(timeout=900)
    return time.perf_counter() - start


def upload_rate(clients: int, scratch: Path) -> tuple[float, int]:
    """(uploads/s, refused uploads) of UPLOADS_PER_LEVEL distinct wheels by ``clients``."""
    per_client = max(1, UPLOADS_PER_LEVEL // clients)
    wheels = [
        [make_wheel(scratch / f"w{clients}", f"load{c}x{i}", "1.0") for i in range(per_client)]
        for c in range(clients)
    ]
    port = free_port()
    argv = [str(BIN / "prewheel"), "serve", str(scratch / f"tree-{clients}"), "--port", str(port)]
    argv += ["--log-level", "warning"]
    refused: list[int] = []
    os.environ["PREWHEEL_SERVE_TOKEN"] = TOKEN
    with server(argv, f"http://127.0.0.1:{port}/simple/", scratch / f"up{clients}.log") as url:
        base = url.removesuffix("simple/")

        def client(mine: list[Path]) -> Callable[[], None]:
            def upload_all() -> None:
                with httpx.Client(auth=("__token__", TOKEN), timeout=120) as http:
                    for wheel in mine:
                        files = {"content": (wheel.name, wheel.read_bytes())}
                        answer = http.post(base, data={":action": "file_upload"}, files=files)
                        if answer.status_code != 200:
                            refused.append(answer.status_code)

            return upload_all

        seconds = _in_parallel([client(mine) for mine in wheels])
    return clients * per_client / seconds, len(refused)


def get_load(url: str, paths: list[str]) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of GET_CLIENTS keep-alive clients, each making
    GETS_PER_CLIENT requests over ``paths``."""
    latencies: list[float] = []

    def client(offset: int) -> Callable[[], None]:
        def get_all() -> None:
            mine = []
            with httpx.Client(timeout=60) as http:
                for i in range(GETS_PER_CLIENT):
                    start = time.perf_counter()
                    http.get(url + paths[(offset + i) % len(paths)]).raise_for_status()
                    mine.append(time.perf_counter() - start)
            latencies.extend(mine)

        return get_all

    seconds = _in_parallel([client(c * 7) for c in range(GET_CLIENTS)])
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / seconds, cuts[49] * 1000, cuts[98] * 1000


def load_section(files: list[Path]) -> str:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-load-") as tmp:
        scratch = Path(tmp)
        uploads = {clients: upload_rate(clients, scratch) for clients in UPLOAD_CLIENTS}
        tree = scratch / "tree"
        StaticIndex(tree).sync(files)
        projects = sorted(p.name for p in (tree / "simple").iterdir() if p.is_dir())
        paths = ["simple/", *(f"simple/{p}/" for p in projects)]
        ports = [free_port(), free_port()]
        gets = {}
        with server(
            [
                str(BIN / "prewheel"),
                "serve",
                str(tree),
                "--port",
                str(ports[0]),
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{ports[0]}/simple/",
            scratch / "serve.log",
        ) as url:
            gets["prewheel serve"] = get_load(url.removesuffix("simple/"), paths)
        with server(
            [
                sys.executable,
                "-m",
                "http.server",
                str(ports[1]),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(tree),
            ],
            f"http://127.0.0.1:{ports[1]}/simple/",
            scratch / "http.log",
        ) as url:
            gets["python -m http.server"] = get_load(url.removesuffix("simple/"), paths)
    lines = [
        "## Index under load: uploads and reads of `prewheel serve` (`bench/index.py --load`)",
        "",
        (
            f"Uploads: {UPLOADS_PER_LEVEL} distinct small wheels (about 1 KB) per level, split "
            "over the clients, each client uploading its share one after another over one "
            "connection with token authentication; a fresh tree per level. Every upload is "
            "validated, spooled, renamed into place and its pages rewritten under the tree lock, "
            "so uploads are serialized by design."
        ),
        "",
        "| concurrent clients | uploads/s | refused |",
        "|---:|---:|---:|",
        *(f"| {c} | {rate:.1f} | {bad} |" for c, (rate, bad) in uploads.items()),
        "",
        (
            f"Reads: the tree of the {len(files)} wheels above; {GET_CLIENTS} clients with "
            f"kept-alive connections make {GETS_PER_CLIENT} GETs each over `/simple/` and "
            f"the {len(projects)} project pages (HTML), against each server in turn."
        ),
        "",
        "| server | GET requests/s | p50 | p99 |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {rate:.0f} | {p50:.1f} ms | {p99:.1f} ms |"
            for name, (rate, p50, p99) in gets.items()
        ),
        "",
        (
            f"One run; load average (1 min) {load_before:.1f} before and "
            f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores shared with other work. "
            "The load generator runs on the same cores as the server."
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="the load section only")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs")
    args = parser.parse_args()
    if args.load:
        markdown = load_section(sorted(download_once(pins_file()).glob("*.whl")))
        print(markdown)
        if not args.no_write:
            print(write_section("index-load", markdown))
        return

    pins = pins_file()
    pin_count = sum(
        1
        for line in pins.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith(("#", "-"))
    )
    wheels = download_once(pins)
    files = sorted(wheels.glob("*.whl"))
    total_mb = sum(f.stat().st_size for f in files) / 1e6

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-index-") as tmp:
        scratch = Path(tmp)
        tree = scratch / "tree"
        start = time.perf_counter()
        StaticIndex(tree).sync(files)
        first_index = time.perf_counter() - start
        start = time.perf_counter()
        StaticIndex(tree).sync(files)
        noop_index = time.perf_counter() - start

        ports = [free_port() for _ in range(3)]
        servers = {
            "static tree (http.server)": (
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(ports[0]),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(tree),
                ],
                f"http://127.0.0.1:{ports[0]}/simple/",
            ),
            "prewheel serve": (
                [
                    str(BIN / "prewheel"),
                    "serve",
                    str(tree),
                    "--port",
                    str(ports[1]),
                    "--log-level",
                    "warning",
                ],
                f"http://127.0.0.1:{ports[1]}/simple/",
            ),
            "pypiserver": (
                [
                    str(BIN / "pypi-server"),
                    "run",
                    "-p",
                    str(ports[2]),
                    "-i",
                    "127.0.0.1",
                    "--disable-fallback",
                    "-a",
                    ".",
                    "-P",
                    ".",
                    "--hash-algo",
                    "sha256",
                    str(wheels),
                ],
                f"http://127.0.0.1:{ports[2]}/simple/",
            ),
        }
        tools: dict[str, Callable[[str, Path, Path], list[str]]] = {"pip": pip_cmd, "uv": uv_cmd}
        times: dict[tuple[str, str], list[float]] = {}
        env = clean_env(scratch)
        with contextlib.ExitStack() as stack:
            urls = {
                name: stack.enter_context(server(argv, url, scratch / f"{i}.log"))
                for i, (name, (argv, url)) in enumerate(servers.items())
            }
            for round_number in range(args.rounds):
                names = list(urls)
                names = names[round_number % len(names) :] + names[: round_number % len(names)]
                for tool, command in tools.items():
                    for name in names:
                        seconds = timed(
                            command(urls[name], pins, scratch / "t"), env, scratch / "t"
                        )
                        times.setdefault((tool, name), []).append(seconds)
                        print(
                            f"round {round_number + 1} {tool:3} {name:28} {seconds:6.2f} s",
                            flush=True,
                        )

    lines = [
        "## Index: installing a 100-pin set from each server (`bench/index.py`)",
        "",
        (
            f"{pin_count} pinned requirements ({len(files)} wheels, {total_mb:.0f} MB, resolved "
            f"with dependencies from `{pins.relative_to(HERE.parent)}`), installed with "
            "`--index-url` into an empty `--target`, caches off, every server on 127.0.0.1 and "
            f"holding the same files. Median of {args.rounds} interleaved rounds; ratio = time / "
            "pypiserver's time with the same tool (lower is faster)."
        ),
        "",
        "| installer | server | median | fastest-slowest round | ratio to pypiserver |",
        "|---|---|---|---|---|",
    ]
    for tool in tools:
        baseline = statistics.median(times[(tool, "pypiserver")])
        for name in servers:
            runs = times[(tool, name)]
            median = statistics.median(runs)
            lines.append(
                f"| {tool} | {name} | {median:.1f} s | {min(runs):.1f}-{max(runs):.1f} s"
                f" | {median / baseline:.2f} |"
            )
    lines += [
        "",
        (
            f"Load average (1 min) {load_before:.1f} before and {os.getloadavg()[0]:.1f} after "
            f"the runs on {os.cpu_count()} cores: other work on the machine adds noise that the "
            "interleaving spreads over all servers alike."
        ),
        "",
        (
            f"Writing the static tree for these {len(files)} wheels (validate, hash, copy, "
            f"PEP 658 metadata, pages) took {first_index:.1f} s; regenerating it with nothing new "
            f"took {noop_index:.2f} s ({noop_index / first_index:.1%} of the first run)."
        ),
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    if not args.no_write:
        print(write_section("index", markdown))


if __name__ == "__main__":
    main()
