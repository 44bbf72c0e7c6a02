"""``prewheel index``, ``prewheel serve`` and ``prewheel publish``."""

from __future__ import annotations

import argparse
import functools
import logging
import os
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ExitCode, TreeDamagedError, UsageError
from .common import (
    add_json_option,
    add_subcommand,
    error_console,
    load_plan,
    remember_index_logins,
    report,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
TOKEN_VARIABLE = "PREWHEEL_SERVE_TOKEN"  # noqa: S105 - the name of a variable


def register(subparsers: Any) -> None:
    _register_index(subparsers)
    _register_serve(subparsers)
    _register_publish(subparsers)


def _register_index(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "index",
        _run_index,
        help="write a static simple-repository tree (PEP 503/691/658/700) from a wheelhouse",
        description=(
            "Write or update a static index tree: simple/<project>/index.html and index.json, "
            "files/<wheel> and files/<wheel>.metadata. Incremental, atomic, locked, all or "
            "nothing, and every run repairs what a killed writer left; serve the tree with any "
            "static web server or with 'prewheel serve'. --check / --repair only examine "
            "(exit 14 if damaged) or repair the tree."
        ),
    )
    parser.add_argument(
        "wheelhouse",
        type=Path,
        nargs="?",
        help="wheelhouse directory (its wheels/ is read); not with --check/--repair",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="index tree to write"
    )
    examine = parser.add_mutually_exclusive_group()
    examine.add_argument(
        "--check",
        action="store_true",
        help="report missing or stale pages, leftovers of killed writers, unlisted files and "
        "listed wheels that are missing or altered (hashing every wheel); change nothing; "
        "exit 14 if anything is wrong",
    )
    examine.add_argument(
        "--repair", action="store_true", help="the same survey, then fix what it found"
    )
    add_lock_timeout_option(parser, 300.0)
    parser.add_argument(
        "--mode",
        choices=["overlay", "complete"],
        default="overlay",
        help="overlay: only the wheels prewheel built (use with --extra-index-url); complete: "
        "also every upstream wheel the plan's targets install, hash-verified (use as the only "
        "--index-url). Default: overlay",
    )
    parser.add_argument(
        "--plan", type=Path, metavar="FILE", help="plan.json from 'prewheel plan' (complete mode)"
    )
    add_target_filter_option(parser)
    add_json_option(parser, "what was added, mirrored or repaired")


def add_lock_timeout_option(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=default,
        metavar="SECONDS",
        help=f"how long to wait for another writer of the tree (default {default:g}); "
        "then give up (exit 13, or 503 for an upload)",
    )


def _register_serve(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "serve",
        _run_serve,
        help="serve an index tree over HTTP (PEP 691 negotiation) and accept twine uploads",
    )
    parser.add_argument("root", type=Path, help="index tree (created if missing)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--htpasswd", type=Path, metavar="FILE", help="accept uploads from users in this file"
    )
    auth.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"accept uploads whose password is the token in FILE (or set {TOKEN_VARIABLE})",
    )
    parser.add_argument(
        "--max-upload",
        type=int,
        default=2 << 30,
        metavar="BYTES",
        help="largest accepted upload (default 2 GiB)",
    )
    add_lock_timeout_option(parser, 30.0)
    parser.add_argument(
        "--max-failed-logins",
        type=int,
        default=10,
        metavar="N",
        help="failed logins per client address per minute before 429 (default 10)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose request headers take longer (default 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="answer 408 when an upload sends nothing for this long (default 30)",
    )
    parser.add_argument(
        "--upload-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="answer 408 when a whole upload takes longer than this, however it trickles "
        "(default 3600: 2 GiB at 0.6 MB/s)",
    )
    pages = parser.add_argument_group("pages for people (/ui/)")
    pages.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="plan.json whose matrix /ui/plan/ shows and whose targets the project pages use "
        "(default: the plan.json 'prewheel run' wrote beside ROOT, if any)",
    )
    pages.add_argument(
        "--wheelhouse",
        type=Path,
        metavar="DIR",
        help="wheelhouse whose build logs the project pages link "
        "(default: the wheelhouse 'prewheel run' wrote beside ROOT, if any)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def _register_publish(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "publish",
        _run_publish,
        help="upload the wheelhouse with twine, skipping files the index already has",
    )
    parser.add_argument("wheelhouse", type=Path, help="wheelhouse directory (its wheels/ is read)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--repository-url", metavar="URL", help="upload URL (twine's)")
    where.add_argument(
        "--repository", metavar="NAME", help="a repository section of .pypirc (twine's -r)"
    )
    where.add_argument(
        "--static", type=Path, metavar="DIR", help="update a static index tree instead"
    )
    parser.add_argument(
        "--simple-url",
        metavar="URL",
        help="the index's simple API, read to skip existing files (default: derived from the "
        "upload URL: .../legacy/ -> .../simple/, else <url>/simple/)",
    )
    parser.add_argument(
        "--config-file", default="~/.pypirc", metavar="FILE", help="twine's .pypirc"
    )
    add_lock_timeout_option(parser, 300.0)
    add_target_filter_option(parser)
    add_json_option(parser, "what was uploaded and skipped")


def _wheels(wheelhouse: Path, targets: list[str] | None = None) -> list[Path]:
    """The wheelhouse's wheels (those built for ``targets`` only, if given), refusing two
    different files of one name."""
    from ..wheelhouse import Wheelhouse  # noqa: PLC0415

    if not (wheelhouse / "wheels").is_dir():
        raise UsageError(
            f"{wheelhouse} is not a wheelhouse (it has no wheels/ directory); pass the directory "
            "that 'prewheel build' wrote."
        )
    house = Wheelhouse(wheelhouse)
    if targets:
        known = {entry.target for entry in house.entries()}
        unknown = sorted(set(targets) - known)
        if unknown:
            raise UsageError(
                f"{wheelhouse} has no wheel built for {', '.join(unknown)}; its targets: "
                f"{', '.join(sorted(known)) or 'none'}."
            )
    return house.wheels_for_one_index(targets or None)


def add_target_filter_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        action="append",
        metavar="ID",
        help="only the wheels built for this target identifier (repeatable), e.g. when the "
        "wheelhouse holds same-named linux_armv6l wheels for two glibc versions",
    )


def _run_index(args: argparse.Namespace) -> int:
    from ..index.static import StaticIndex  # noqa: PLC0415

    index = StaticIndex(args.output, lock_timeout=args.lock_timeout)
    if args.check or args.repair:
        return _examine(index, args)
    if args.wheelhouse is None:
        raise UsageError(
            "name the wheelhouse to index (prewheel index WHEELHOUSE -o DIR), or pass --check "
            "or --repair to examine the tree alone."
        )
    if args.mode == "complete" and args.plan is None:
        raise UsageError(
            "--mode complete needs the plan that says which upstream files the targets install: "
            "run 'prewheel plan --json > plan.json' and pass --plan plan.json."
        )
    if args.mode == "complete":
        # The plan's URLs carry no logins: the configured index URLs (or ~/.netrc) do.
        remember_index_logins(load_config({}))
    plan = (
        load_plan(args.plan, unreadable="cannot read the plan {path}: {exc}.")
        if args.mode == "complete"
        else None
    )
    wheels = _wheels(
        args.wheelhouse,
        args.target or ([t.identifier for t in plan.targets] if plan is not None else None),
    )
    synced = index.sync(wheels)
    _print_repaired(synced.repaired)
    summary = (
        f"index {args.output}: {len(synced.added)} added, {len(synced.unchanged)} already listed"
    )
    data: dict[str, Any] = {
        "output": str(args.output),
        "mode": args.mode,
        "added": list(synced.added),
        "unchanged": list(synced.unchanged),
        "repaired": list(synced.repaired),
    }
    if plan is not None:
        from ..index.complete import HttpDownloader, mirror, upstream_files  # noqa: PLC0415

        downloader = HttpDownloader()
        try:
            mirrored = mirror(index, upstream_files(plan), downloader)
        finally:
            downloader.close()
        summary += (
            f"\ncomplete mode: {len(mirrored.fetched)} upstream files fetched and verified, "
            f"{len(mirrored.present)} already present"
        )
        data["mirrored"] = {"fetched": list(mirrored.fetched), "present": list(mirrored.present)}
    report(args, summary, data)
    return int(ExitCode.OK)


def _examine(index: Any, args: argparse.Namespace) -> int:
    """``--check`` (report, exit 14 if damaged) or ``--repair`` (fix, report what was fixed)."""
    if args.wheelhouse is not None or args.mode != "overlay":
        raise UsageError("--check and --repair examine the tree alone: drop the wheelhouse.")
    if not (args.output / ".prewheel" / "catalog.json").is_file() and not args.repair:
        raise UsageError(f"{args.output} is not an index tree (it has no .prewheel/catalog.json).")
    if args.repair:
        found = index.repair(deep=True)
        _print_repaired(found.findings())
        summary = f"index {args.output}: {len(found.findings())} problems repaired"
        report(args, summary, {"output": str(args.output), "repaired": list(found.findings())})
        return int(ExitCode.OK)
    findings = index.check(deep=True).findings()
    if findings:
        raise TreeDamagedError(
            f"{args.output} disagrees with its catalog in {len(findings)} places: "
            + "; ".join(findings)
            + ". Run 'prewheel index --repair -o DIR' (or any 'prewheel index' run, or a "
            "'prewheel serve' start) to put it right."
        )
    report(args, f"index {args.output}: sound", {"output": str(args.output), "sound": True})
    return int(ExitCode.OK)


def _print_repaired(findings: Any) -> None:
    for finding in findings:
        error_console().print(f"repaired: {finding}")


def _authenticator(args: argparse.Namespace) -> Any:
    from ..index.auth import HtpasswdAuth, TokenAuth  # noqa: PLC0415

    if args.htpasswd is not None:
        return HtpasswdAuth(args.htpasswd)
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {args.token_file}: {exc}") from exc
        if not token:
            raise UsageError(f"the token file {args.token_file} is empty.")
        return TokenAuth(token)
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return TokenAuth(token) if token else None


def _run_serve(args: argparse.Namespace) -> int:
    from ..index.browse import BrowseSources  # noqa: PLC0415
    from ..index.server import ServerOptions, create_app, run  # noqa: PLC0415

    if args.wheelhouse is not None and not (args.wheelhouse / "manifest.json").is_file():
        raise UsageError(
            f"--wheelhouse {args.wheelhouse} is not a wheelhouse (no manifest.json); give the "
            "directory 'prewheel build' or 'prewheel run' built into."
        )
    if args.plan is not None:
        load_plan(  # refused now, not on every page
            args.plan,
            unreadable="Cannot read the plan {path}: {exc}. Write it with 'prewheel plan --json'.",
        )
    sources = BrowseSources.beside(args.root, args.plan, args.wheelhouse)

    authenticator = _authenticator(args)
    options = ServerOptions(
        max_upload=args.max_upload,
        lock_timeout=args.lock_timeout,
        login_attempts=args.max_failed_logins,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        upload_timeout=args.upload_timeout,
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    mode = "read-only" if authenticator is None else "uploads with credentials"
    error_console().print(
        f"serving {args.root} on http://{args.host}:{args.port}/simple/ ({mode}); "
        f"pages for people on http://{args.host}:{args.port}/ui/",
        markup=False,
    )
    run(
        functools.partial(create_app, args.root, authenticator, options, sources),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        header_timeout=args.header_timeout,
    )
    return int(ExitCode.OK)


def _run_publish(args: argparse.Namespace) -> int:
    from ..hostenv import ca_bundle  # noqa: PLC0415
    from ..index.publish import (  # noqa: PLC0415
        SimpleIndexReader,
        TwineUploader,
        publish,
        simple_url_for,
    )
    from ..index.static import StaticIndex  # noqa: PLC0415

    wheels = _wheels(args.wheelhouse, args.target)
    if args.static is not None:
        synced = StaticIndex(args.static, lock_timeout=args.lock_timeout).sync(wheels)
        _print_repaired(synced.repaired)
        report(
            args,
            f"{args.static}: {len(synced.added)} added, {len(synced.unchanged)} already listed",
            {"static": str(args.static), "uploaded": list(synced.added),
             "skipped": list(synced.unchanged)},
        )  # fmt: skip
        return int(ExitCode.OK)
    bundle = ca_bundle()
    uploader = TwineUploader(
        repository_url=args.repository_url,
        repository_name=args.repository or "pypi",
        config_file=args.config_file,
        cacert=str(bundle) if bundle else None,
    )
    simple_url = args.simple_url or simple_url_for(uploader.resolved_url())
    reader = SimpleIndexReader(
        simple_url,
        auth=uploader.read_credentials(),
        verify=str(bundle) if bundle else True,
    )
    try:
        result = publish(wheels, reader, uploader)
    finally:
        reader.close()
    report(
        args,
        f"published to {simple_url}: {len(result.uploaded)} uploaded, "
        f"{len(result.skipped)} already there",
        {"simple_url": simple_url, "uploaded": list(result.uploaded),
         "skipped": list(result.skipped)},
    )  # fmt: skip
    return int(ExitCode.OK)
