"""Generate tests/fixtures/kb-chunker2/: a knowledge base built by the previous chunker (version 2), with the folder
its documents came from, for the re-index tests (tests/test_reindex.py).

    docs/        the files: a PDF with a sales table (rows grouped under product names), two Markdown notes
    data/        the data folder: the knowledge base 'default', its documents named docs/<file> as a folder source
                 labelled "docs" names them, its index recording chunker version 2

Chunker version 2 split a table between any two rows; version 3 keeps a small group of rows with the label above
it ("STORM LANTERN" with its US, Intl and WW rows), so the table's chunks differ and a re-index is visible. The
version-2 splitting is kept below as it was (`git show f08d542^:rag/chunking.py`); everything else is the
current code. The PDF has a fixed creation date, so its bytes (and the documents' ids) are the same each time.

Usage: python scripts/make_kb_fixture.py [OUTPUT_FOLDER]
Requires fpdf2 (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

import rag  # noqa: F401  (the offline environment, before any model library loads)
from rag import chunking
from rag.config import Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import IndexVersions, open_store, record_versions
from rag.schema import Section

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kb-chunker2"
CREATED = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
PRODUCTS = ["STORM LANTERN", "BRASS WICK", "FRESNEL LENS", "HAND LAMP", "SIGNAL LAMP", "DECK LIGHT", "MAST LIGHT",
            "BEACON", "FLARE", "TORCH", "LAMP OIL", "GLASS CHIMNEY"]  # fmt: skip
NOTES = {
    "keepers.md": "# Lantern keepers\n\nThe north lantern is lit at dusk by Ada Finch; Bo Lind keeps the south one. "
    "They trade shifts on the first Monday of each month.\n\n## Oil\n\nEach lantern burns about a litre of lamp oil "
    "a night in winter and half that in summer.",
    "orders.md": "# Orders\n\nOrders over 500 lanterns ship from the Leith warehouse within ten working days. "
    "Smaller orders ship from the shop the next day.",
}


def split_table_v2(section: Section, chunk_size: int) -> list[str]:
    """The table's rows in pieces of at most `chunk_size` characters (a longer row stands alone), each
    starting with the table's header."""
    header = section.table_header.strip()
    room = max(chunk_size - len(header) - 1, chunk_size // 2)
    pieces: list[list[str]] = [[]]
    used = 0
    for row in section.text.split("\n"):
        if pieces[-1] and used + len(row) + 1 > room:
            pieces.append([])
            used = 0
        pieces[-1].append(row)
        used += len(row) + 1
    return [f"{header}\n" + "\n".join(rows) if header else "\n".join(rows) for rows in pieces if rows]


def sales_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_creation_date(CREATED)
    pdf.set_title("Harbour Lamps Ltd quarterly sales")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "Harbour Lamps Ltd - Quarterly sales", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, "Harbour Lamps sells lanterns, wicks and lenses. This report gives the sales of each product "
                   "in the fourth quarter, by region.")  # fmt: skip
    pdf.ln(3)
    pdf.set_font("Courier", size=9)
    lines = ["REPORTED SALES (THOUSANDS)", "FOURTH QUARTER", "2022 2021 Change"]
    for i, product in enumerate(PRODUCTS):
        lines += [
            product,
            f"US {900 + i * 13:,} {870 + i * 11:,} {3.4 + i / 10:.1f}%",
            f"Intl {400 + i * 7:,} {420 + i * 5:,} -{1.2 + i / 10:.1f}%",
            f"WW {1300 + i * 20:,} {1290 + i * 16:,} {0.8 + i / 10:.1f}%",
        ]
    for line in lines:
        pdf.cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def main(output: Path) -> None:
    shutil.rmtree(output, ignore_errors=True)
    docs = output / "docs"
    docs.mkdir(parents=True)
    (docs / "sales.pdf").write_bytes(sales_pdf())
    for name, text in NOTES.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=output / "data")
    store = open_store(settings)
    embedder = Embedder()
    current = chunking.split_table
    chunking.split_table = split_table_v2  # the previous chunker's tables
    try:
        ingestor = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap)
        files = sorted(docs.iterdir())
        results = ingestor.ingest_sources([(f"docs/{f.name}", f.read_bytes) for f in files])
        assert all(r.status == "added" for r in results), results
    finally:
        chunking.split_table = current
    record_versions(store, IndexVersions("2", embedder.name, settings.chunk_size, settings.chunk_overlap))
    store.close()
    for leftover in ("write.lock", "chroma.lock"):
        (output / "data" / leftover).unlink(missing_ok=True)
    print(f"wrote {output}: {', '.join(r.name + ' ' + str(r.chunks) + ' chunks' for r in results)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
