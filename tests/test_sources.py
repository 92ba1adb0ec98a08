"""The sources of a knowledge base and their saved state (rag/sources.py): adding a source is checked (a folder
overlapping another, a folder that is not there, a source that is not known) and labels stay unique."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.sources import SourceError, SourceStore


def test_adding_sources_is_checked(tmp_path: Path) -> None:
    sources = SourceStore(tmp_path / "kb")
    (tmp_path / "a" / "b").mkdir(parents=True)
    first = sources.add_folder(tmp_path / "a")
    assert first.label == "a"
    with pytest.raises(SourceError, match="overlaps the source 'a'"):
        sources.add_folder(tmp_path / "a" / "b")
    with pytest.raises(SourceError, match="is not a folder"):
        sources.add_folder(tmp_path / "nothing")
    (tmp_path / "other" / "a").mkdir(parents=True)
    assert sources.add_folder(tmp_path / "other" / "a").label == "a-2"  # labels stay unique
    with pytest.raises(SourceError, match="has no source 'zzz'"):
        sources.get("zzz")
    assert [s.label for s in sources.sources()] == ["a", "a-2"]
    sources.remove("a")
    assert [s.label for s in sources.sources()] == ["a-2"]
    sources.close()
