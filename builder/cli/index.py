"""``prewheel index``, ``prewheel serve`` and ``prewheel publish``."""

from __future__ import annotations

import argparse
import functools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ExitCode, TreeDamagedError, UsageError
from ..hostenv import ca_bundle
from ..index.auth import Authenticator, HtpasswdAuth, TokenAuth
from ..index.browse import BrowseSources
from ..index.complete import write_index
from ..index.publish import SimpleIndexReader, TwineUploader, publish, simple_url_for
from ..index.server import ServerOptions, create_app, listen
from ..index.server import run as run_server
from ..index.static import StaticIndex
from ..options import DEFAULT_WHEELHOUSE, Settings, add_options
from ..wheelhouse import Wheelhouse
from .common import (
    add_json_option,
    add_subcommand,
    error_console,
    load_plan,
    report,
    settings_from_args,
)

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
        help="wheelhouse directory (its wheels/ is read; default: the configured wheelhouse, "
        "else ./wheelhouse); not with --check/--repair",
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
    add_json_option(parser, "what was added, mirrored or repaired")
    add_options(parser, "index")


def _register_serve(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "serve",
        _run_serve,
        help="serve an index tree over HTTP (PEP 691 negotiation) and accept twine uploads",
    )
    parser.add_argument("root", type=Path, help="index tree (created if missing)")
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
    add_options(parser, "serve")


def _register_publish(subparsers: Any) -> None:
    parser = add_subcommand(
        subparsers,
        "publish",
        _run_publish,
        help="upload the wheelhouse with twine, skipping files the index already has",
    )
    parser.add_argument(
        "wheelhouse",
        type=Path,
        nargs="?",
        help="wheelhouse directory (its wheels/ is read; default: the configured wheelhouse, "
        "else ./wheelhouse)",
    )
    add_json_option(parser, "what was uploaded and skipped")
    add_options(parser, "publish")


def _wheels(wheelhouse: Path, targets: list[str] | None = None) -> list[Path]:
    """The wheelhouse's wheels (those built for ``targets`` only, if given), refusing two
    different files of one name."""
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


def _run_index(args: argparse.Namespace) -> int:
    settings = settings_from_args("index", args)
    index = StaticIndex(args.output, lock_timeout=settings.serve.lock_timeout)
    if args.check or args.repair:
        return _examine(index, args)
    if args.mode == "complete" and args.plan is None:
        raise UsageError(
            "--mode complete needs the plan that says which upstream files the targets install: "
            "run 'prewheel plan --json > plan.json' and pass --plan plan.json."
        )
    plan = (
        load_plan(
            args.plan,
            unreadable="Cannot read the plan {path}: {exc}. Write it with 'prewheel plan --json'.",
        )
        if args.mode == "complete" and args.plan is not None
        else None
    )
    # only a --target given here filters (a configured target list is for planning: a
    # target all of whose requirements have upstream wheels never gets a built wheel)
    chosen = list(settings.targets.target) if args.target else None
    if chosen is None and plan is not None:
        chosen = [t.identifier for t in plan.targets]
    wheels = _wheels(args.wheelhouse or settings.build.wheelhouse or DEFAULT_WHEELHOUSE, chosen)
    written = write_index(index, wheels, plan=plan)
    synced = written.synced
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
    if written.mirrored is not None:
        mirrored = written.mirrored
        summary += (
            f"\ncomplete mode: {len(mirrored.fetched)} upstream files fetched and verified, "
            f"{len(mirrored.present)} already present"
        )
        summary += "".join(f"\nnote: {note}" for note in mirrored.notes)
        data["mirrored"] = {
            "fetched": list(mirrored.fetched),
            "present": list(mirrored.present),
            "notes": list(mirrored.notes),
        }
    report(args, summary, data)
    return int(ExitCode.OK)


def _examine(index: StaticIndex, args: argparse.Namespace) -> int:
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


def _print_repaired(findings: Iterable[str]) -> None:
    for finding in findings:
        error_console().print(f"repaired: {finding}")


def _authenticator(settings: Settings) -> Authenticator | None:
    options = settings.serve
    if options.htpasswd is not None:
        return HtpasswdAuth(options.htpasswd)
    if options.token_file is not None:
        try:
            token = options.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read the token file {options.token_file}: {exc}") from exc
        if not token:
            raise UsageError(f"the token file {options.token_file} is empty.")
        return TokenAuth(token)
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return TokenAuth(token) if token else None


def _run_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args("serve", args)
    options = settings.serve
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
    authenticator = _authenticator(settings)
    server_options = ServerOptions(
        max_upload=options.max_upload,
        lock_timeout=options.lock_timeout,
        login_attempts=options.max_failed_logins,
        header_timeout=options.header_timeout,
        body_timeout=options.body_timeout,
        upload_timeout=options.upload_timeout,
    )
    logging.basicConfig(level=options.log_level.upper(), format="%(levelname)s: %(message)s")
    mode = "read-only" if authenticator is None else "uploads with credentials"
    address = f"http://{options.host}:{options.port}"
    sock = listen(options.host, options.port)
    error_console().print(
        f"serving {args.root} on {address}/simple/ ({mode}); pages for people on {address}/ui/",
        markup=False,
    )
    run_server(
        functools.partial(create_app, args.root, authenticator, server_options, sources),
        sock,
        log_level=options.log_level,
        header_timeout=options.header_timeout,
    )
    return int(ExitCode.OK)


def _run_publish(args: argparse.Namespace) -> int:
    settings = settings_from_args("publish", args)
    options = settings.publish
    if not (options.repository_url or options.repository or options.static):
        raise UsageError(
            "Say where to publish: --repository-url URL (twine's upload URL), --repository "
            "NAME (a section of .pypirc) or --static DIR (a static index tree); any of them can "
            "also come from repository-url, repository or static in [tool.prewheel]."
        )
    wheels = _wheels(
        args.wheelhouse or settings.build.wheelhouse or DEFAULT_WHEELHOUSE,
        list(settings.targets.target) if args.target else None,
    )
    if options.static is not None:
        synced = StaticIndex(options.static, lock_timeout=settings.serve.lock_timeout).sync(wheels)
        _print_repaired(synced.repaired)
        report(
            args,
            f"{options.static}: {len(synced.added)} added, {len(synced.unchanged)} already listed",
            {"static": str(options.static), "uploaded": list(synced.added),
             "skipped": list(synced.unchanged)},
        )  # fmt: skip
        return int(ExitCode.OK)
    bundle = ca_bundle()
    uploader = TwineUploader(
        repository_url=options.repository_url,
        repository_name=options.repository or "pypi",
        config_file=options.pypirc,
        cacert=str(bundle) if bundle else None,
    )
    simple_url = options.simple_url or simple_url_for(uploader.resolved_url())
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
