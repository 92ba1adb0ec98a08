"""Where the log goes: stderr, at the configured level, one handler however often it is configured."""

from __future__ import annotations

import logging

import pytest

from rag.logs import configure_logging


def test_records_at_the_level_and_above_reach_stderr_once(capsys: pytest.CaptureFixture[str]) -> None:
    rag_logger = logging.getLogger("rag")
    before = list(rag_logger.handlers)
    try:
        configure_logging("WARNING")
        configure_logging("INFO")  # again, as every rerun of the app does: only the level changes
        logging.getLogger("rag.followup").info("follow-up rewrite unusable")
        logging.getLogger("rag.followup").debug("not shown at INFO")
        err = capsys.readouterr().err
        assert err.count("INFO rag.followup: follow-up rewrite unusable") == 1
        assert "not shown" not in err
    finally:
        rag_logger.handlers = before
        rag_logger.setLevel(logging.NOTSET)
