"""Command line: python -m rag [--kb NAME] {ingest,docs,delete,check,show,ask,chat,conversations,prompt,serve,keys,
usage,kb,sources,sync,eval,bench} … (see --help). This module holds main() and the parser's top level; each command
group's module adds its own commands and their handlers."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence

from rag.cli import documents, knowledge_bases, measuring, questions, serving
from rag.config import Settings
from rag.disk_space import disk_full
from rag.engine import Engine
from rag.errors import RagError
from rag.formatting import terminal_safe
from rag.kb import KnowledgeBases
from rag.logs import configure_logging
from rag.registry import registry_damaged
from rag.sqlite import is_corrupt, is_disk_full


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # The same settings as the app: environment, then what was saved on the settings page; the knowledge
        # base of --kb (or RAG_KB) with its own settings.
        app_settings = Settings.load()
        configure_logging("DEBUG" if args.verbose else app_settings.log_level)
        catalog = KnowledgeBases(app_settings)
        if getattr(args, "catalog", False):
            catalog_result: int = args.run(catalog, args)
            return catalog_result
        settings = catalog.settings_for(args.kb).with_overrides(
            backend=getattr(args, "backend", None), model=getattr(args, "model", None)
        )
        engine = Engine(settings)
        result: int = args.run(engine, args)
        return result
    except RagError as exc:
        print(terminal_safe(f"error: {exc}"), file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # damage inside the registry that opening it did not show
        if not (is_corrupt(exc) or is_disk_full(exc)):
            raise
        where = Settings.from_env().data_dir
        said = str(disk_full(where)) if is_disk_full(exc) else registry_damaged(where, exc)
        print(terminal_safe(f"error: {said}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Chat with your documents, locally.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (fallbacks, retries, recoveries) to stderr"
    )
    parser.add_argument("--kb", metavar="NAME", help=KB_HELP)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    documents.add_commands(sub)
    questions.add_commands(sub)
    serving.add_commands(sub)
    knowledge_bases.add_commands(sub)
    measuring.add_commands(sub)
    _kb_option_everywhere(parser)
    return parser


KB_HELP = "the knowledge base to use (default: RAG_KB, else 'default'); `python -m rag kb list` shows them"


def _kb_option_everywhere(parser: argparse.ArgumentParser) -> None:
    """--kb after any command too (`python -m rag ask --kb NAME …`); SUPPRESS: a command without it keeps the
    one given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if not any("--kb" in a.option_strings for a in child._actions):
                    child.add_argument("--kb", metavar="NAME", default=argparse.SUPPRESS, help=KB_HELP)
                _kb_option_everywhere(child)
