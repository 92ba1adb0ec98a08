"""Figures for the README's knowledge-base section: folder sync (N files, N unchanged, one changed), a 10,000-file
folder's time and peak memory, export and import of a knowledge base of some thousand chunks.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/measure_kb.py [--files 1000] [--big 10000] [--chunks-docs 60]

Real parts throughout: files on this disk, the packaged encoder, embedded Chroma. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.archive import export_kb, import_kb
from rag.config import Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import KnowledgeBases, open_store
from rag.sources import SourceStore
from rag.sync import Syncer

WORDS = [
    "harbour",
    "lantern",
    "keeper",
    "tide",
    "ledger",
    "orchard",
    "cider",
    "barrel",
    "invoice",
    "quarter",
    "revenue",
    "margin",
    "storm",
    "ketch",
    "mast",
    "anchor",
    "rope",
    "chart",
    "beacon",
    "shift",
    "dusk",
    "dawn",
    "pier",
    "crane",
    "cargo",
    "manifest",
    "customs",
    "berth",
    "pilot",
]


def text(i: int, words: int = 60) -> str:
    body = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words))
    return f"# Note {i}\n\nNote number {i}: {body}.\n"


def syncer(settings: Settings, embedder: Embedder) -> tuple[Syncer, SourceStore]:
    store = open_store(settings)
    sources = SourceStore(settings.kb_dir)
    ingestor = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap)
    return Syncer(settings, store, ingestor, sources), sources


def timed(run: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()  # type: ignore[operator]
    return round(time.perf_counter() - started, 2), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--chunks-docs", type=int, default=30, help="documents of ~40 chunks each for export")
    args = parser.parse_args()
    embedder = Embedder()
    embedder.embed_query("warm up")
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)

        # N distinct small files: first sync (embeds each), then unchanged, then one changed.
        folder = work / "notes"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"note-{i:05d}.md").write_text(text(i))
        settings = Settings(data_dir=work / "data")
        sync, sources = syncer(settings, embedder)
        sources.add_folder(folder, label="notes")
        seconds, report = timed(sync.sync)
        out[f"first_sync_{args.files}_files_s"] = seconds
        out["first_sync_summary"] = report.summary()  # type: ignore[attr-defined]
        seconds, report = timed(sync.sync)
        out[f"sync_{args.files}_unchanged_s"] = seconds
        out["unchanged_summary"] = report.summary()  # type: ignore[attr-defined]
        (folder / "note-00007.md").write_text(text(7) + "\nOne more line, added later.\n")
        seconds, report = timed(sync.sync)
        out["sync_one_changed_s"] = seconds
        out["one_changed_summary"] = report.summary()  # type: ignore[attr-defined]
        sync.store.close()
        sources.close()

        # The 10,000-file folder: 100 contents, so the embedding stays small and the file handling is measured.
        big = work / "big"
        for i in range(args.big):
            sub = big / f"d{i // 500:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"f{i:05d}.txt").write_text(text(i % 100, 30))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        big_settings = Settings(data_dir=work / "big-data")
        sync, sources = syncer(big_settings, embedder)
        sources.add_folder(big, label="big")
        seconds, report = timed(sync.sync)
        out[f"first_sync_{args.big}_files_s"] = seconds
        out["big_summary"] = report.summary()[:120]  # type: ignore[attr-defined]
        seconds, report = timed(sync.sync)
        out[f"sync_{args.big}_unchanged_s"] = seconds
        out["peak_rss_mb_before_big"] = round(before / 1024)
        out["peak_rss_mb_after_big"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        sync.store.close()
        sources.close()

        # Export and import of a knowledge base of some thousand chunks.
        catalog = KnowledgeBases(Settings(data_dir=work / "export-data"), env={})
        catalog.create("Ledger")
        kb_settings = catalog.settings_for("Ledger")
        store = open_store(kb_settings)
        ingestor = Ingestor(store, embedder, kb_settings.chunk_size, kb_settings.chunk_overlap)
        uploads = [(f"ledger-{d:03d}.md", "\n\n".join(text(d * 1000 + k, 90) for k in range(40)).encode())
                   for d in range(args.chunks_docs)]  # fmt: skip
        seconds, _ = timed(lambda: ingestor.ingest_uploads(uploads))
        out["export_kb_chunks"] = store.chunk_count()
        out["export_kb_ingest_s"] = seconds
        archive = work / "ledger.zip"
        seconds, summary = timed(lambda: export_kb(kb_settings, store, archive))
        out["export_s"] = seconds
        out["archive_mb"] = round(archive.stat().st_size / 1e6, 1)
        store.close()
        there = KnowledgeBases(Settings(data_dir=work / "import-data"), env={})
        seconds, summary = timed(lambda: import_kb(there, archive))
        out["import_s"] = seconds
        out["import_summary"] = summary.describe().split(" (")[0]  # type: ignore[attr-defined]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
