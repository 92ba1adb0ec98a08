"""The original files of the documents, kept in the data folder so that a source can be shown where it stands.

A PDF page can only be drawn, and a passage found on it, from the file itself: the knowledge base keeps the
text of its chunks, not the file. Each document's file is kept as `originals/<doc_id><suffix>` in the data
folder (as large as the files added: the README's "Where things are"), written at ingestion and removed with
the document. Documents indexed before files were kept have none: adding the same file again keeps it (the
document is not indexed again), and until then their sources are shown as text.

A file is written to a temporary name and renamed, so a crash never leaves half a file under a real name.
Failing to keep one (a full disk) never fails the ingestion: the document is indexed, its sources shown as
text, and the reason logged.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER = "originals"
_DOC_ID = re.compile(r"^[0-9a-f]{4,64}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")


class Originals:
    """The kept files of one data folder. Cheap to build; safe to share (each call is one file operation)."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / FOLDER

    def path(self, doc_id: str) -> Path | None:
        """The kept file of this document, or None when there is none."""
        if not _DOC_ID.match(doc_id) or not self.folder.is_dir():
            return None
        for candidate in self.folder.glob(f"{doc_id}.*"):
            if not candidate.name.startswith("."):
                return candidate
        return None

    def read(self, doc_id: str) -> bytes | None:
        """The document's file as it was added, or None when it was not kept (or cannot be read now)."""
        found = self.path(doc_id)
        if found is None:
            return None
        try:
            return found.read_bytes()
        except OSError as exc:
            logger.warning("The kept file of %s cannot be read (%s): its sources are shown as text", doc_id, exc)
            return None

    def has(self, doc_id: str) -> bool:
        return self.path(doc_id) is not None

    def keep(self, doc_id: str, name: str, data: bytes) -> bool:
        """Keep the file of a document (nothing when it is kept already); False when it could not be written."""
        if not _DOC_ID.match(doc_id):
            raise ValueError(f"not a document id: {doc_id!r}")
        if self.has(doc_id):
            return True
        suffix = Path(name).suffix.lower()
        target = self.folder / f"{doc_id}{suffix if _SUFFIX.match(suffix) else '.bin'}"
        temporary: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.folder)
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
            return True
        except OSError as exc:
            logger.warning(
                "The file of %s (%s) was not kept (%s): its sources will be shown as text", name, doc_id, exc
            )
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            return False

    def discard(self, doc_id: str) -> None:
        """Remove the document's file (nothing when there is none)."""
        found = self.path(doc_id)
        if found is not None:
            try:
                found.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("The kept file %s could not be removed (%s)", found, exc)

    def prune(self, live_doc_ids: set[str]) -> list[str]:
        """Remove the files of documents no longer in the knowledge base (deleted by another program, or an
        ingestion that failed after its file was kept); returns their ids."""
        if not self.folder.is_dir():
            return []
        removed = []
        for file in self.folder.iterdir():
            doc_id = file.name.partition(".")[0]
            if file.name.startswith(".") or doc_id in live_doc_ids:
                continue
            file.unlink(missing_ok=True)
            removed.append(doc_id)
        return sorted(removed)

    def size(self) -> int:
        """Bytes the kept files take."""
        if not self.folder.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())
