"""Measure what checking an answer costs here: opening a source on its PDF page (first time, then cached), and
whole-document reading (chunks per minute) on the active backend.

    HF_HUB_OFFLINE=1 python scripts/measure_checking.py                       # the built-in model
    RAG_BACKEND=openai RAG_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 RAG_MODEL=smollm2 \\
        python scripts/measure_checking.py --skip-open                        # a llama.cpp server

A fresh knowledge base in a temporary folder: a 12-page PDF listing 30 named instruments (the tests' document).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.engine import Engine  # noqa: E402
from rag.source_view import SourceRef  # noqa: E402
from rag.speed import METER  # noqa: E402
from rag.whole_document import WholeDocumentAnswer  # noqa: E402
from rag.whole_document import plan as plan_whole  # noqa: E402
from tests.documents import text_pdf  # noqa: E402
from tests.test_whole_document import ITEMS, collection_pages  # noqa: E402


def collection_pdf(path: Path) -> Path:
    """The test's twelve-page collection (tests/test_whole_document.py), the same document measured."""
    return text_pdf(path, collection_pages())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-open", action="store_true", help="only the whole-document figure")
    parser.add_argument("--part-tokens", type=int, default=None, help="part size (default: the setting's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings().with_overrides(data_dir=Path(folder) / "kb")
        engine = Engine(settings)
        [result] = engine.ingest([collection_pdf(Path(folder) / "collection.pdf")])
        assert result.doc_id is not None
        chunks = engine.store.chunks_of(result.doc_id)
        if not args.skip_open:
            chunk = next(c for c in chunks if c.page == 7)
            ref = SourceRef.of_chunk(chunk)
            started = time.perf_counter()
            engine.sources.open(ref, line=chunk.text.split(".")[1])
            first = time.perf_counter() - started
            started = time.perf_counter()
            engine.sources.open(ref, line=chunk.text.split(".")[1])
            cached = time.perf_counter() - started
            started = time.perf_counter()
            engine.sources.open(ref, page=8)
            neighbour = time.perf_counter() - started
            print(f"open a source on its page: first {first * 1000:.0f} ms, again {cached * 1000:.1f} ms, ")
            print(f"its neighbour page {neighbour * 1000:.0f} ms")
        backend = engine.chosen.backend
        print(f"backend: {engine.chosen.reason}")
        speed = METER.measure(backend)
        part_tokens = args.part_tokens or settings.whole_part_tokens
        whole = plan_whole(
            "List every instrument in the collection.",
            [(result.doc_id, "collection.pdf", chunks)],
            backend,
            speed,
            part_tokens,
        )
        print(f"plan: {whole.describe()} ({len(chunks)} chunks)")
        run = WholeDocumentAnswer(whole, backend, meter=METER)
        started = time.perf_counter()
        for _ in run:
            pass
        seconds = time.perf_counter() - started
        notes = "\n".join(n.text for n in run.notes).lower()
        found = sum(item.lower() in notes for item in ITEMS)
        answered = sum(item.lower() in run.text.lower() for item in ITEMS)
        print(
            f"whole document: {len(chunks)} chunks in {seconds:.0f} s = {len(chunks) / seconds * 60:.1f} chunks/min "
            f"(estimate said {whole.seconds:.0f} s); items in the notes {found}/30, in the answer {answered}/30"
        )
        print("answer:\n" + run.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
