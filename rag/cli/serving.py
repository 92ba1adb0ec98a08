"""The command line's serving commands: serve (the HTTP API), keys (its API keys) and usage (the report over time)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from typing import Any

from rag.cli.common import index_default_corpus
from rag.config import Settings
from rag.engine import Engine
from rag.errors import RagError


def add_commands(sub: Any) -> None:
    """The serve, keys and usage commands."""
    serve = sub.add_parser(
        "serve", help="the HTTP API: OpenAI-compatible chat with sources, documents, search (see /docs once it runs)"
    )
    serve.add_argument("--host", help="address to listen on (default RAG_API_HOST or 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="port (default RAG_API_PORT or 8502)")
    serve.set_defaults(run=cmd_serve)

    keys = sub.add_parser("keys", help="create, list or revoke the HTTP API's keys")
    keys_sub = keys.add_subparsers(required=True, metavar="ACTION")
    keys_create = keys_sub.add_parser("create", help="a new key, printed once (only its hash is kept)")
    keys_create.add_argument("name", metavar="NAME", help="who or what uses it, e.g. editor")
    keys_create.set_defaults(run=cmd_keys_create)
    keys_list = keys_sub.add_parser("list", help="the keys: name, first characters, created, last used, revoked")
    keys_list.set_defaults(run=cmd_keys_list)
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key (by name, or its first characters)")
    keys_revoke.add_argument("name", metavar="NAME")
    keys_revoke.set_defaults(run=cmd_keys_revoke)

    usage = sub.add_parser("usage", help="questions, tokens, speed, declines, errors, feedback and cost over time")
    usage.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first day (default: 30 days ago)")
    usage.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last day (default: today)")
    usage.add_argument("--by", choices=("day", "week"), default="day", help="per day (default) or per week")
    usage.add_argument("--csv", action="store_true", help="print the table per day or week as CSV")
    usage.add_argument("--answers-csv", action="store_true", help="print every answered turn as CSV")
    usage.set_defaults(run=cmd_usage)


def cmd_serve(engine: Engine, args: argparse.Namespace) -> int:
    """The HTTP API in this process until Ctrl-C; answers follow the settings as saved (read per request)."""
    from rag.api import Engines, create_app, serve
    from rag.api_keys import ApiKeys

    index_default_corpus(engine)
    settings = engine.settings
    host, port = args.host or settings.api_host, args.port or settings.api_port
    keys = ApiKeys.in_data_dir(settings.data_dir)
    app = create_app(Engines(Settings.load, seed=engine), keys, settings)
    print(f"# HTTP API on http://{host}:{port}/v1 — what it offers: http://{host}:{port}/docs", file=sys.stderr)
    print(f"# answering with {engine.chosen.reason}", file=sys.stderr)
    if not any(k.active for k in keys.list()):
        print("# no API key yet: create one with `python -m rag keys create NAME`", file=sys.stderr)
    if settings.api_loopback_without_key:
        print("# requests from this machine need no key (RAG_API_LOOPBACK_WITHOUT_KEY)", file=sys.stderr)
    serve(app, host, port)
    return 0


def cmd_keys_create(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    record, secret = ApiKeys.in_data_dir(engine.settings.data_dir).create(args.name)
    print(f"# key {record.name!r} created; it is shown this once (only its hash is kept):", file=sys.stderr)
    print(secret)
    return 0


def cmd_keys_list(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    listed = ApiKeys.in_data_dir(engine.settings.data_dir).list()
    if not listed:
        print("No API keys yet: create one with `python -m rag keys create NAME`.")
        return 0
    print(f"{'NAME':<24} {'KEY':<16} {'CREATED':<26} {'LAST USED':<26} REVOKED")
    for k in listed:
        print(f"{k.name[:24]:<24} {k.shown:<16} {k.created_at:<26} {k.last_used_at or '-':<26} {k.revoked_at or '-'}")
    return 0


def cmd_keys_revoke(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    record = ApiKeys.in_data_dir(engine.settings.data_dir).revoke(args.name)
    print(f"Revoked {record.name} ({record.shown}): requests with it are refused from now on.")
    return 0


def cmd_usage(engine: Engine, args: argparse.Namespace) -> int:
    from rag.usage import format_report, usage_of, usage_report

    end = args.end or date.today()
    start = args.start or end - timedelta(days=29)
    try:
        report = usage_report(usage_of(engine), start, end, args.by, engine.settings.prices)
    except ValueError as exc:
        raise RagError(f"--from {start} --to {end}: {exc}.") from exc
    if args.answers_csv:
        sys.stdout.write(report.turns_csv())
    elif args.csv:
        sys.stdout.write(report.periods_csv())
    else:
        print(format_report(report))
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD, e.g. 2026-12-01") from None
