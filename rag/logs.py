"""Where the rag package's log goes: stderr (the terminal that runs the app or the command), at the level of
the `log_level` setting (RAG_LOG_LEVEL) or DEBUG with the CLI's --verbose. Each module logs through
`logging.getLogger(__name__)`; fallbacks, retries and recoveries are logged at INFO or WARNING."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send the `rag` loggers' records at `level` and above to stderr (once per process: called again, only
    the level changes)."""
    logger = logging.getLogger("rag")
    logger.setLevel(level)
    if not any(getattr(h, "rag_handler", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.rag_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
