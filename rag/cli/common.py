"""What more than one command group of the command line uses: indexing the default knowledge base on first start."""

from __future__ import annotations

import sys

from rag.engine import Engine


def index_default_corpus(engine: Engine) -> None:
    """Index the shipped default knowledge base on first start, saying so on stderr (nothing when it is done)."""
    results = engine.ensure_default_corpus()
    if results:
        print(
            f"# first start: indexed the default knowledge base ({len(results)} documents from "
            f"{engine.settings.corpus_dir})",
            file=sys.stderr,
        )
