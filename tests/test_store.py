"""The registry + Chroma: visibility, replace, delete, crash recovery. Every test runs twice: with Chroma
embedded in the data directory, and against a real Chroma server (`chroma run`) on a free port."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag.chroma_client import OWNER_KEY
from rag.config import PROJECT_ROOT
from rag.embeddings import Embedder
from rag.errors import StoreError
from rag.registry import MIGRATIONS, DocumentRecord
from rag.schema import Chunk
from rag.sqlite import applied_migrations, now_iso
from rag.store import Store
from tests.registry import open_files_under
from tests.servers import ChromaServer, free_port

OpenStore = Callable[[Path], Store]


def record(doc_id: str, name: str, chunks: int) -> DocumentRecord:
    return DocumentRecord(doc_id, name, "text", doc_id * 4, None, chunks, 100, now_iso())


def chunks_for(doc_id: str, texts: list[str], source: str, page: int | None = None) -> list[Chunk]:
    return [Chunk(f"{doc_id}:{i:05d}", doc_id, t, source, page, i) for i, t in enumerate(texts)]


@pytest.fixture(params=["embedded", "server"])
def open_store(request: pytest.FixtureRequest) -> OpenStore:
    """Opens (or reopens) the test's knowledge base: embedded, or on the shared server in a collection of its own."""
    if request.param == "embedded":
        return lambda data_dir: Store(data_dir)
    server: ChromaServer = request.getfixturevalue("chroma_server")
    collection = f"test-{uuid.uuid4().hex[:12]}"
    return lambda data_dir: Store(data_dir, server.url, collection=collection)


@pytest.fixture
def store(tmp_path: Path, open_store: OpenStore) -> Store:
    return open_store(tmp_path / "kb")


def add(
    store: Store,
    embedder: Embedder,
    doc_id: str,
    name: str,
    texts: list[str],
    commit: bool = True,
    replaces: str | None = None,
    page: int | None = None,
) -> None:
    chunks = chunks_for(doc_id, texts, name, page)
    store.begin_document(record(doc_id, name, len(chunks)))
    store.add_chunks(chunks, embedder.embed_documents(texts))
    if commit:
        store.commit_document(doc_id, replaces=replaces)


def test_committed_documents_are_listed_and_searchable(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "cats.txt", ["Cats purr when content.", "Cats sleep a lot."], page=2)
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    assert {d.name for d in store.documents()} == {"cats.txt", "rockets.txt"}
    assert store.chunk_count() == 3

    hits = store.query(embedder.embed_query("why do cats purr"), k=2)
    assert hits[0].chunk.text == "Cats purr when content."
    assert hits[0].chunk.source == "cats.txt" and hits[0].chunk.page == 2
    assert hits[0].score > hits[1].score
    assert -1.0 <= hits[-1].score <= 1.0

    only_rockets = store.query(embedder.embed_query("cats"), k=5, doc_ids=["bbbb"])
    assert [h.chunk.source for h in only_rockets] == ["rockets.txt"]


def test_a_documents_vectors_are_read_whole_and_only_while_it_is_ready(store: Store, embedder: Embedder) -> None:
    texts = ["Cats purr when content.", "Cats sleep a lot.", "Cats chase string."]
    add(store, embedder, "aaaa", "cats.txt", texts)
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    add(store, embedder, "cccc", "half.txt", ["Still being indexed."], commit=False)
    ids, vectors = store.vectors_of("aaaa")
    assert sorted(ids) == ["aaaa:00000", "aaaa:00001", "aaaa:00002"]
    expected = embedder.embed_documents(texts)
    for cid, vector in zip(ids, vectors, strict=True):
        assert np.allclose(vector, expected[int(cid.rpartition(":")[2])], atol=1e-5)
    assert store.vectors_of("cccc")[0] == [] and store.vectors_of("zzzz")[0] == []
    store.delete_document("aaaa")
    assert store.vectors_of("aaaa")[0] == []


def test_every_ready_documents_vectors_are_read_in_one_pass(
    store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.store.CHROMA_MAX_BATCH", 2)  # several pages, as in a large collection
    add(store, embedder, "aaaa", "cats.txt", ["Cats purr when content.", "Cats sleep a lot.", "Cats chase string."])
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    add(store, embedder, "cccc", "half.txt", ["Still being indexed."], commit=False)
    read = store.vectors_by_document()
    assert set(read) == {"aaaa", "bbbb"}  # not the one still being indexed
    for doc_id in ("aaaa", "bbbb"):
        ids, vectors = store.vectors_of(doc_id)
        assert sorted(read[doc_id][0]) == sorted(ids)
        mine = dict(zip(*read[doc_id], strict=True))
        assert all(np.allclose(mine[cid], vector) for cid, vector in zip(ids, vectors, strict=True))
    store.delete_document("aaaa")
    assert set(store.vectors_by_document()) == {"bbbb"}


def test_uncommitted_chunks_are_invisible(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "half.txt", ["A document still being indexed."], commit=False)
    assert store.documents() == []
    assert store.query(embedder.embed_query("document being indexed"), k=3) == []


def test_replace_swaps_versions_and_delete_removes_every_chunk(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "old0", "notes.txt", ["The meeting is on Monday.", "Bring the slides."])
    add(store, embedder, "new0", "notes.txt", ["The meeting moved to Friday."], replaces="old0")
    assert [(d.doc_id, d.chunks) for d in store.documents()] == [("new0", 1)]
    assert store.vector_count() == 1
    assert store.chunks_of("old0") == []

    store.delete_document("new0")
    assert store.documents() == [] and store.vector_count() == 0
    assert store.query(embedder.embed_query("meeting"), k=3) == []


def test_reopening_recovers_from_a_crash_mid_ingest(tmp_path: Path, embedder: Embedder, open_store: OpenStore) -> None:
    first = open_store(tmp_path / "kb")
    add(first, embedder, "good", "good.txt", ["Complete document."])
    add(first, embedder, "half", "half.txt", ["Only part", "of this was stored"], commit=False)
    assert first.vector_count() == 3
    first.close()

    reopened = open_store(tmp_path / "kb")
    assert [d.name for d in reopened.documents()] == ["good.txt"]
    assert reopened.vector_count() == 1  # the half-indexed chunks are gone


def test_find_by_name_id_prefix_and_hash(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "abcdef123456", "report.pdf", ["text"])
    assert store.find("report.pdf") is not None
    found = store.find("abcd")
    assert found is not None and found.name == "report.pdf"
    assert store.find("abc") is None  # too short to be an id
    assert store.find_by_hash("abcdef123456" * 4) is not None
    assert store.find("missing.pdf") is None


def test_chunks_of_returns_a_document_in_order(store: Store, embedder: Embedder) -> None:
    texts = [f"Paragraph {i}." for i in range(12)]
    add(store, embedder, "doc1", "long.md", texts)
    assert [c.text for c in store.chunks_of("doc1")] == texts


def test_fetch_returns_each_chunk_once_however_often_it_is_asked_for(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "d1", "a.txt", ["Bees make honey.", "Wax comes from bees."])
    fetched = store.fetch(["d1:00001", "d1:00000", "d1:00001"])
    assert {cid: chunk.text for cid, (chunk, _) in fetched.items()} == {
        "d1:00000": "Bees make honey.",
        "d1:00001": "Wax comes from bees.",
    }


def test_passages_are_read_from_the_keyword_rows_as_chroma_holds_them(store: Store, embedder: Embedder) -> None:
    """What a question's passages are read from (SQLite, not Chroma): the same text, header, file, page and place
    as `fetch`, each once, and only of ready documents."""
    headed = [
        Chunk("d1:00000", "d1", "Bees make honey.", "bees.pdf", 3, 0, header="Bees · bees.pdf · Hives · p. 3"),
        Chunk("d1:00001", "d1", "Wax comes\nfrom bees.", "bees.pdf", None, 1, header="Bees · bees.pdf"),
    ]
    store.begin_document(record("d1", "bees.pdf", 2))
    store.add_chunks(headed, embedder.embed_documents([c.indexed_text for c in headed]))
    store.commit_document("d1")
    add(store, embedder, "d2", "plain.txt", ["No header here.", "bees.pdf · looks like a header\nbut is text."])
    add(store, embedder, "d3", "half.txt", ["Still being indexed."], commit=False)
    add(store, embedder, "d4", "gone.txt", ["Deleted soon."])
    store.delete_document("d4")
    asked = ["d2:00001", "d1:00001", "d1:00000", "d2:00000", "d1:00001", "d3:00000", "d4:00000", "d9:00000"]
    passages = store.passages(asked)
    assert passages == {cid: chunk for cid, (chunk, _) in store.fetch(asked).items()}
    assert sorted(passages) == ["d1:00000", "d1:00001", "d2:00000", "d2:00001"]
    assert passages["d1:00000"] == headed[0] and passages["d1:00001"] == headed[1]
    looks_headed = passages["d2:00001"]
    assert looks_headed.text == "bees.pdf · looks like a header\nbut is text." and looks_headed.header == ""
    store.commit_document("d3")
    assert store.passages(["d3:00000"])["d3:00000"].text == "Still being indexed."
    with sqlite3.connect(store.data_dir / "registry.sqlite3") as db:  # a damaged registry lost a document's rows
        db.execute("DELETE FROM chunk_text WHERE doc_id = 'd1'")
    after = store.passages(asked)  # read from Chroma instead: nothing is silently left out
    assert after == {cid: chunk for cid, (chunk, _) in store.fetch(asked).items()}
    assert after["d1:00000"] == headed[0] and after["d1:00001"] == headed[1]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list the open files")
def test_a_closed_store_holds_none_of_its_files_open_and_the_others_go_on(tmp_path: Path, embedder: Embedder) -> None:
    """Closing a store lets go of Chroma's files too, so a knowledge base deleted afterwards (in the app, which goes
    on running) frees its disk space at once, and a long-running app does not pile up open files, one folder after
    another. Before, Chroma's per-process cache kept the folder's files open until the process ended. Another store
    of the same folder, opened before, goes on working."""
    first = Store(tmp_path / "kb")
    add(first, embedder, "aaaa", "cats.txt", ["Cats purr when content."])
    second = Store(tmp_path / "kb")
    assert second.chunk_count() == 1 and open_files_under(tmp_path / "kb" / "chroma")
    second.close()
    assert [hit.chunk.text for hit in first.query(embedder.embed_query("purring"), k=1)] == ["Cats purr when content."]
    first.close()
    assert open_files_under(tmp_path / "kb") == []
    shutil.rmtree(tmp_path / "kb")
    assert open_files_under(tmp_path / "kb") == []
    again = Store(tmp_path / "kb")  # a new knowledge base in the same place starts empty and works
    add(again, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    assert [d.name for d in again.documents()] == ["rockets.txt"]
    again.close()


def test_meta_values_persist(tmp_path: Path, open_store: OpenStore) -> None:
    open_store(tmp_path / "kb").set_meta("seeded", "1")
    assert open_store(tmp_path / "kb").get_meta("seeded") == "1"


def test_mismatched_batches_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.add_chunks(chunks_for("x", ["a", "b"], "x.txt"), np.zeros((1, 384), dtype=np.float32))


# -- the keyword index -----------------------------------------------------------------------------------


def test_keyword_search_finds_rare_terms_in_ready_documents_only(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "parts.txt", ["Replace the XJ-220 gasket yearly.", "Oil the hinges."], page=4)
    add(store, embedder, "bbbb", "draft.txt", ["The XJ-220 gasket draft."], commit=False)
    hits = store.keyword_query(["xj", "220", "gasket"], k=5)
    assert [h.chunk.text for h in hits] == ["Replace the XJ-220 gasket yearly."]
    assert hits[0].chunk.source == "parts.txt" and hits[0].chunk.page == 4 and hits[0].score >= 0
    assert store.keyword_query(["gaskets"], k=5)[0].chunk.doc_id == "aaaa"  # stemmed: gaskets ~ gasket
    assert store.keyword_query(["gasket"], k=5, doc_ids=["bbbb"]) == []
    assert store.keyword_query([], k=5) == []


def test_keyword_terms_are_never_read_as_query_syntax(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "ops.txt", ["NEAR the AND gate, OR not."])
    for terms in (['"'], ["near("], ["and", "or", "not"], ["*"], ["col:umn"]):
        store.keyword_query(terms, k=3)  # no exception for any of these
    assert store.keyword_query(["gate"], k=3)[0].chunk.doc_id == "aaaa"


def test_replace_delete_and_crash_keep_the_keyword_index_in_step(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    store = open_store(tmp_path / "kb")
    add(store, embedder, "old0", "notes.txt", ["The meeting is on Monday."])
    add(store, embedder, "new0", "notes.txt", ["The meeting moved to Friday."], replaces="old0")
    assert [h.chunk.text for h in store.keyword_query(["meeting"], k=5)] == ["The meeting moved to Friday."]
    assert store.keyword_row_count() == 1
    add(store, embedder, "half", "half.txt", ["A meeting half stored"], commit=False)
    assert store.keyword_row_count() == 2
    store.close()

    reopened = open_store(tmp_path / "kb")
    assert reopened.keyword_row_count() == 1 and reopened.vector_count() == 1
    reopened.delete_document("new0")
    assert reopened.keyword_row_count() == 0 and reopened.keyword_query(["meeting"], k=5) == []


def test_a_knowledge_base_from_before_the_keyword_index_gets_one(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    store = open_store(tmp_path / "kb")
    add(store, embedder, "aaaa", "old.txt", ["Saffron is the dried stigma of a crocus."])
    store._db.execute("DELETE FROM chunk_text")  # as an older version left it: vectors, no keyword rows
    store.set_meta("keyword_index", "0")
    store.close()
    assert open_store(tmp_path / "kb").keyword_query(["saffron"], k=3)[0].chunk.source == "old.txt"


# -- Chroma as a server: one collection, one registry; failures of the server ---------------------------


def test_a_second_data_directory_on_the_same_collection_is_refused(
    tmp_path: Path, embedder: Embedder, chroma_server: ChromaServer
) -> None:
    first = Store(tmp_path / "team", chroma_server.url, collection="shared-kb")
    add(first, embedder, "aaaa", "cats.txt", ["Cats purr when content."])
    with pytest.raises(StoreError) as refused:
        Store(tmp_path / "laptop", chroma_server.url, collection="shared-kb")
    message = str(refused.value)
    assert "belongs to another knowledge base" in message and str((tmp_path / "team").resolve()) in message
    assert "RAG_DATA_DIR" in message and "RAG_CHROMA_COLLECTION" in message
    # The owner reopens it as before, and the refused directory can have a collection of its own.
    assert [d.name for d in Store(tmp_path / "team", chroma_server.url, collection="shared-kb").documents()] == [
        "cats.txt"
    ]
    assert Store(tmp_path / "laptop", chroma_server.url, collection="laptop-kb").documents() == []


def test_an_unclaimed_collection_with_chunks_on_a_server_is_not_adopted(
    tmp_path: Path, chroma_server: ChromaServer
) -> None:
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    other = client.create_collection("someone-elses", embedding_function=None)
    other.add(ids=["x"], embeddings=np.ones((1, 384), dtype=np.float32))
    with pytest.raises(StoreError, match=r"already holds 1 chunks that no knowledge base claims"):
        Store(tmp_path / "kb", chroma_server.url, collection="someone-elses")
    client.create_collection("empty-one", embedding_function=None)
    Store(tmp_path / "kb", chroma_server.url, collection="empty-one")  # an empty one is claimed
    claimed = client.get_collection("empty-one", embedding_function=None).metadata or {}
    assert claimed[OWNER_KEY] == Store(tmp_path / "kb").get_meta("registry_id")


def test_an_embedded_knowledge_base_from_before_owners_is_claimed(tmp_path: Path, embedder: Embedder) -> None:
    import chromadb

    data = tmp_path / "kb"
    store = Store(data)
    add(store, embedder, "aaaa", "old.txt", ["Saffron is the dried stigma of a crocus."])
    client = chromadb.PersistentClient(path=str(data / "chroma"))
    client.get_collection("chunks", embedding_function=None).modify(metadata={"note": "as an older version left it"})
    assert [d.name for d in Store(data).documents()] == ["old.txt"]
    hits = Store(data).query(embedder.embed_query("crocus stigma"), k=1)
    assert hits[0].chunk.source == "old.txt" and hits[0].score > 0.3  # still cosine


def test_a_server_that_is_down_says_how_to_start_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match=rf"Cannot reach Chroma at {url} .*chroma run --path"):
        Store(tmp_path / "kb", url)


def test_a_server_killed_mid_ingest_leaves_no_half_indexed_document(tmp_path: Path, embedder: Embedder) -> None:
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        store = Store(tmp_path / "kb", server.url)
        add(store, embedder, "good", "good.txt", ["A complete document about gardens."])
        texts = ["The first half of a long report.", "The second half, never stored."]
        chunks = chunks_for("half", texts, "half.txt")
        store.begin_document(record("half", "half.txt", 2))
        store.add_chunks(chunks[:1], embedder.embed_documents(texts[:1]))
        server.kill()
        with pytest.raises(StoreError, match=rf"Chroma at {server.url} is not answering .*add it again"):
            store.add_chunks(chunks[1:], embedder.embed_documents(texts[1:]))
        with pytest.raises(StoreError, match="is not answering"):
            store.abort_document("half")  # the ingestor's clean-up fails too: the row stays `indexing`
        assert [d.name for d in store.documents()] == ["good.txt"]  # never visible meanwhile
        store.close()

        server.start()  # the same data, the same port: as after a restart
        reopened = Store(tmp_path / "kb", server.url)
        assert [d.name for d in reopened.documents()] == ["good.txt"]
        assert reopened.vector_count() == 1 and reopened.keyword_row_count() == 1  # the half is gone everywhere
        assert reopened.query(embedder.embed_query("first half of a long report"), k=3)[0].chunk.doc_id == "good"
    finally:
        server.stop()


# -- several writers (issue 11): one at a time, each on its own rows; recovery only of what is abandoned ------


def test_opening_the_store_elsewhere_leaves_a_live_ingest_alone(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    """Issue 11, finding 1: `python -m rag docs` opened beside an ingest used to purge it."""
    writer = open_store(tmp_path / "kb")
    texts = ["The first part of a report.", "The second part of it."]
    chunks = chunks_for("live", texts, "live.txt")
    writer.begin_document(record("live", "live.txt", 2))
    writer.add_chunks(chunks[:1], embedder.embed_documents(texts[:1]))
    reader = open_store(tmp_path / "kb")  # recovers on open: the live writer's row is not abandoned
    assert reader.recover() == [] and reader.documents() == []
    writer.add_chunks(chunks[1:], embedder.embed_documents(texts[1:]))
    writer.commit_document("live")
    assert [(d.name, d.chunks) for d in reader.documents()] == [("live.txt", 2)]
    assert reader.vector_count() == 2 and reader.keyword_row_count() == 2


def test_a_writer_whose_row_was_removed_fails_instead_of_storing_chunks_of_nothing(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    store = open_store(tmp_path / "kb")
    texts = ["A paragraph.", "Another paragraph."]
    chunks = chunks_for("gone", texts, "gone.txt")
    store.begin_document(record("gone", "gone.txt", 2))
    store.add_chunks(chunks[:1], embedder.embed_documents(texts[:1]))
    store.remove_traces("gone")  # as `rag check --repair` or another process's recovery would
    with pytest.raises(StoreError, match=r"cannot store its chunks: its registry row is gone .*add the file again"):
        store.add_chunks(chunks[1:], embedder.embed_documents(texts[1:]))
    with pytest.raises(StoreError, match="cannot make it visible: its registry row is gone"):
        store.commit_document("gone")
    assert store.documents() == [] and store.vector_count() == 0 and store.keyword_row_count() == 0


def test_begin_never_takes_another_writers_row_and_abort_never_removes_its_document(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    """Issue 11, finding 2: the second session's begin deleted the first one's row, its abort the document."""
    a, b = open_store(tmp_path / "kb"), open_store(tmp_path / "kb")
    texts = ["Same content in two sessions."]
    a.begin_document(record("same", "same.txt", 1))
    with pytest.raises(StoreError, match="being indexed by another session"):
        b.begin_document(record("same", "same.txt", 1))
    a.add_chunks(chunks_for("same", texts, "same.txt"), embedder.embed_documents(texts))
    a.commit_document("same")
    b.abort_document("same")  # b's clean-up: not its row
    assert [(d.name, d.chunks) for d in a.documents()] == [("same.txt", 1)]
    assert a.vector_count() == 1 and a.keyword_row_count() == 1


def test_a_closed_writers_rows_are_recovered_and_another_process_dead_ones_too(
    tmp_path: Path, embedder: Embedder
) -> None:
    first = Store(tmp_path / "kb")
    add(first, embedder, "half", "half.txt", ["Only part"], commit=False)
    import socket
    import sqlite3

    db = sqlite3.connect(tmp_path / "kb" / "registry.sqlite3")
    # A row of a process on this host that has ended (pid 2**22 + 1 is above Linux's pid_max).
    db.execute(
        "INSERT INTO documents(doc_id, name, kind, content_hash, chunks, size_bytes, ingested_at, status, writer)"
        " VALUES ('dead', 'dead.txt', 'text', 'x', 0, 1, 'now', 'indexing', ?)",
        (f"{socket.gethostname()}:{2**22 + 1}:sometoken",),
    )
    db.commit()
    db.close()
    assert Store(tmp_path / "kb").recover() == []  # `first` is open: its row is live; the dead one went on open
    first.close()
    assert Store(tmp_path / "kb").vector_count() == 0  # `first` closed: its half-indexed row is abandoned


def test_search_never_returns_chunks_of_a_document_that_is_not_ready(
    tmp_path: Path, embedder: Embedder, open_store: OpenStore
) -> None:
    store = open_store(tmp_path / "kb")
    add(store, embedder, "good", "good.txt", ["Bees make honey from nectar."])
    add(store, embedder, "half", "half.txt", ["Honey bees and nectar, half indexed."], commit=False)
    stray = chunks_for("stray", ["Honey and nectar of no document."], "stray.txt")
    store._vectors.collection.add(  # a vector no registry row owns (as the unlocked versions left behind)
        ids=[stray[0].id],
        embeddings=embedder.embed_documents([stray[0].text]),
        documents=[stray[0].text],
        metadatas=[{"doc_id": "stray", "source": "stray.txt", "page": -1, "position": 0}],
    )
    hits = store.query(embedder.embed_query("honey bees nectar"), k=3)
    assert [h.chunk.doc_id for h in hits] == ["good"]
    assert [cid for cid, _ in store.keyword_ranking(["honey", "nectar"], 3)] == ["good:00000"]


# Another process adds a document of many vectors (more than Chroma's sync threshold, 1,000: it saves its index).
_OTHER_PROCESS = """
import sys
from pathlib import Path

import numpy as np

from rag.registry import DocumentRecord
from rag.schema import Chunk
from rag.sqlite import now_iso
from rag.store import Store

store, n = Store(Path(sys.argv[1])), int(sys.argv[2])
vectors = np.random.default_rng(7).standard_normal((n, 384)).astype(np.float32)
store.begin_document(DocumentRecord("theirs", "theirs.txt", "text", "theirs", None, n, 1, now_iso()))
store.add_chunks(
    [Chunk(f"theirs:{i:05d}", "theirs", f"passage {i}", "theirs.txt", None, i) for i in range(n)],
    vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
)
store.commit_document("theirs")
"""


def test_vectors_another_process_saved_are_found_by_a_store_opened_before(tmp_path: Path, embedder: Embedder) -> None:
    """Chroma embedded keeps a copy of its index per client: one loaded before another process saved its own
    lacks that process's vectors, and a search restricted to them failed with "Error finding id"."""
    store = Store(tmp_path / "kb")
    add(store, embedder, "mine", "mine.txt", ["Bees make honey from nectar."])
    assert store.nearest(embedder.embed_query("honey"), 1)  # this client has loaded the index now
    script = tmp_path / "other_process.py"
    script.write_text(_OTHER_PROCESS)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "kb"), "1100"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    query = embedder.embed_query("passage")
    assert len(store.nearest(query, 5, doc_ids=["theirs"])) == 5
    assert len(store.fetch([f"theirs:{i:05d}" for i in range(3)])) == 3
    add(store, embedder, "more", "more.txt", ["Wax comes from bees too."])  # written on a current copy
    reopened = Store(tmp_path / "kb")
    assert len(reopened.nearest(query, 5, doc_ids=["theirs"])) == 5
    assert reopened.vector_count() == 1102


def test_the_same_content_ingested_twice_at_once_ends_as_one_document_and_one_duplicate(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Issue 11, finding 2: two sessions uploading the same new file both passed admission."""
    import threading

    from rag.ingest import Ingestor, IngestResult

    doc = tmp_path / "report.txt"
    doc.write_text("\n\n".join(f"Section {i}: the quarterly figures rose again. " * 8 for i in range(12)))
    copy = tmp_path / "copy" / "report-copy.txt"
    copy.parent.mkdir()
    copy.write_bytes(doc.read_bytes())
    stores = [Store(tmp_path / "kb"), Store(tmp_path / "kb")]  # two sessions (or processes) of the app
    results: dict[int, list[IngestResult]] = {}
    start = threading.Barrier(2)

    def ingest(i: int, path: Path) -> None:
        start.wait()
        results[i] = Ingestor(stores[i], embedder, 200, 20, batch_size=4).ingest_paths([path])

    threads = [threading.Thread(target=ingest, args=(i, p)) for i, p in enumerate([doc, copy])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(r[0].status for r in results.values())
    assert statuses == ["added", "duplicate"], results
    added = next(r[0] for r in results.values() if r[0].status == "added")
    assert [(d.name, d.chunks) for d in stores[0].documents()] == [(added.name, added.chunks)]
    assert stores[0].vector_count() == added.chunks == stores[0].keyword_row_count()


# A knowledge base made by the version before numbered migrations (commit d8538cc): one Markdown file.
FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb-d8538cc"


def test_a_knowledge_base_made_before_migrations_opens_with_its_document_searchable(
    tmp_path: Path, embedder: Embedder
) -> None:
    data_dir = tmp_path / "kb"
    shutil.copytree(FIXTURE_KB, data_dir)
    store = Store(data_dir)
    try:
        [doc] = store.documents()
        assert (doc.name, doc.chunks, doc.status) == ("harbour.md", 1, "ready")
        assert applied_migrations(store._db) == [m.name for m in MIGRATIONS]  # recorded on the first open
        question = "Who lit the north harbour lantern?"
        [hit] = store.query(embedder.embed_query(question), k=3)
        assert "Ada Finch" in hit.chunk.text and hit.chunk.source == "harbour.md"
        assert [r.chunk.id for r in store.keyword_query(["lantern", "keeper"], k=3)] == [hit.chunk.id]
    finally:
        store.close()
    reopened = Store(data_dir)  # a second open finds every step done and changes nothing
    assert [d.doc_id for d in reopened.documents()] == [doc.doc_id]
    reopened.close()
