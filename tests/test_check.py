"""`rag check`: the registry, Chroma and the keyword index agree, or what differs is found and repaired.
A real Store in a temporary data directory; the command line as a real subprocess."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.check import check, describe, describe_repair, repair
from rag.config import PROJECT_ROOT
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.schema import RetrievedChunk
from rag.store import Store
from tests.test_cli import run
from tests.test_store import add, chunks_for


def same_answers(before: list[RetrievedChunk], after: list[RetrievedChunk]) -> bool:
    """The same passages, in the same order, with the same scores (to two places)."""
    return [(r.chunk.id, r.chunk.text, r.chunk.header, round(r.score, 2)) for r in before] == [
        (r.chunk.id, r.chunk.text, r.chunk.header, round(r.score, 2)) for r in after
    ]


def filled(store: Store, embedder: Embedder) -> Store:
    add(store, embedder, "aaaa", "cats.txt", ["Cats purr when content.", "Cats sleep a lot."])
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    return store


@pytest.fixture(params=["embedded", "server"])
def kb(request: pytest.FixtureRequest, tmp_path: Path, embedder: Embedder) -> Store:
    """The same checks with the vectors in Chroma embedded and on a real `chroma run` server."""
    if request.param == "embedded":
        return filled(Store(tmp_path / "kb"), embedder)
    server = request.getfixturevalue("chroma_server")
    return filled(Store(tmp_path / "kb", server.url, collection=f"check-{uuid.uuid4().hex[:12]}"), embedder)


@pytest.fixture
def local_kb(tmp_path: Path, embedder: Embedder) -> Store:
    """Embedded only: the command line opens it from its data directory."""
    return filled(Store(tmp_path / "kb"), embedder)


def orphan_vectors(store: Store, doc_id: str, n: int, first: int = 1) -> None:
    """Vectors under an id the registry does not know (as a crash between Chroma and SQLite once left); from
    position `first`: 1 leaves out the first chunk (an incomplete set), 0 makes a whole document."""
    chunks = chunks_for(doc_id, [f"stray {i}" for i in range(first + n)], "gone.txt")[first:]
    store._vectors.collection.add(
        ids=[c.id for c in chunks],
        embeddings=np.ones((n, 384), dtype=np.float32),
        documents=[c.text for c in chunks],
        metadatas=[{"doc_id": doc_id, "source": "gone.txt", "page": -1, "position": c.position} for c in chunks],
    )


def test_a_clean_knowledge_base_passes(kb: Store) -> None:
    report = check(kb)
    assert report.ok
    assert (report.documents, report.chunks, report.vectors, report.keyword_rows) == (2, 3, 3, 3)
    assert "agree" in describe(report, "here")[-1]


def test_an_incomplete_set_of_orphan_vectors_is_found_and_removed_saying_so(kb: Store) -> None:
    orphan_vectors(kb, "zzzz", 2)
    report = check(kb)
    assert [(p.kind, p.doc_id) for p in report.problems] == [("orphan vectors", "zzzz")]
    assert "2 vectors of no registered document" in report.problems[0].describe()
    result = repair(kb)
    assert result.after.ok and result.reingest == ()
    assert [(r.problem.kind, r.done.split(" ")[0]) for r in result.repaired] == [("orphan vectors", "removed")]
    assert kb.vector_count() == 3 and {d.name for d in kb.documents()} == {"cats.txt", "rockets.txt"}


def test_a_whole_document_of_vectors_the_registry_lost_is_registered_again(kb: Store) -> None:
    orphan_vectors(kb, "zzzz", 2, first=0)
    report = check(kb)
    assert [(p.kind, p.doc_id, p.name) for p in report.problems] == [("unregistered document", "zzzz", "gone.txt")]
    result = repair(kb)
    assert result.after.ok and result.reingest == ()
    recovered = kb.find("gone.txt")
    assert recovered is not None and (recovered.doc_id, recovered.chunks, recovered.kind) == ("zzzz", 2, "text")
    assert [c.text for c in kb.chunks_of("zzzz")] == ["stray 0", "stray 1"]
    assert kb.keyword_search(["stray"]).ranking(5) != []  # its keyword rows were written again too


def test_orphan_keyword_rows_are_found_and_repaired(kb: Store) -> None:
    kb._keywords.insert(chunks_for("yyyy", ["a keyword row of nothing"], "gone.txt"))
    report = check(kb)
    assert [(p.kind, p.doc_id) for p in report.problems] == [("orphan keyword rows", "yyyy")]
    assert repair(kb).after.ok
    assert kb.keyword_row_count() == 3


def test_a_document_missing_vectors_gets_them_again_from_its_keyword_rows(kb: Store, embedder: Embedder) -> None:
    before = Retriever(kb, embedder).retrieve("When do cats purr?", top_k=3).hits
    kb._vectors.collection.delete(ids=["aaaa:00001"])
    report = check(kb)
    assert [(p.kind, p.name) for p in report.problems] == [("vectors missing", "cats.txt")]
    assert "the registry says 2 chunks, Chroma holds 1 vector, the keyword index 2 rows" in report.problems[0].detail
    said: list[str] = []
    result = repair(kb, lambda: embedder, said.append)
    assert result.after.ok and result.reingest == ()
    assert said == ["embedding cats.txt again: 2/2 chunks"]
    assert kb.vector_count() == 3
    assert same_answers(before, Retriever(kb, embedder).retrieve("When do cats purr?", top_k=3).hits)


def test_a_document_missing_vectors_and_keyword_rows_is_removed_to_be_ingested_again(kb: Store) -> None:
    kb._vectors.collection.delete(ids=["aaaa:00001"])
    kb._db.execute("DELETE FROM chunk_text WHERE chunk_id = 'aaaa:00000'")
    report = check(kb)
    assert [(p.kind, p.name) for p in report.problems] == [("broken document", "cats.txt")]
    result = repair(kb)
    assert result.reingest == ("cats.txt",) and result.after.ok
    assert [d.name for d in kb.documents()] == ["rockets.txt"]
    assert kb.vector_count() == 1 and kb.keyword_row_count() == 1
    assert "Add these files again: cats.txt." in describe_repair(result)


def test_a_document_missing_keyword_rows_gets_them_again_from_chroma(kb: Store) -> None:
    kb._db.execute("DELETE FROM chunk_text WHERE doc_id = 'aaaa'")
    report = check(kb)
    assert [(p.kind, p.name) for p in report.problems] == [("keyword rows missing", "cats.txt")]
    assert repair(kb).after.ok
    assert [cid for cid, _ in kb.keyword_search(["purr"]).ranking(5)] == ["aaaa:00000"]


def test_cli_exit_codes(local_kb: Store) -> None:
    data_dir = local_kb.data_dir
    orphan_vectors(local_kb, "zzzz", 1)
    local_kb.close()
    found = run(["check"], data_dir)
    assert found.returncode == 1, found.stderr
    assert "orphan vectors: zzzz: 1 vector of no registered document" in found.stdout
    assert "python -m rag check --repair" in found.stdout
    repaired = run(["check", "--repair"], data_dir)
    assert repaired.returncode == 0, repaired.stderr
    assert "orphan vectors: zzzz: 1 vector of no registered document -> removed" in repaired.stdout
    assert "consistent now" in repaired.stdout
    clean = run(["check"], data_dir)
    assert clean.returncode == 0 and "agree" in clean.stdout


# -- many writers and crashes (issue 11): real CLI processes (and app threads) on one data directory ------------

STRESS_SEED = 11
STRESS_WORKERS = 3  # CLI processes at a time
STRESS_OPS_PER_WORKER = 6
STRESS_APP_SESSIONS = 3  # threads of the test process sharing one Store and embedder, as the app's sessions do
STRESS_APP_OPS_PER_SESSION = 20
STRESS_APP_PAUSE = 3.0  # seconds, at most, before each app operation: they spread over the CLI processes' run
CRASH_SEED = 7
CRASH_KILLS = 20  # rounds of two writers each go on until this many were killed (at most CRASH_MAX_ROUNDS)
CRASH_MAX_ROUNDS = 30
_WORDS = "alpha beta gamma delta river mountain report figure quarter revenue harbour lantern orchard".split()  # noqa: SIM905


def small_files(folder: Path, n: int, seed: int) -> list[Path]:
    """n small text files of 3-6 chunks each, all different, plus a copy of the first under another name."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        paragraphs = [" ".join(rng.choice(_WORDS) for _ in range(80)) for _ in range(rng.randint(3, 6))]
        path = folder / f"note{i}.txt"
        path.write_text(f"Note {i}\n\n" + "\n\n".join(paragraphs))
        files.append(path)
    copy = folder / "note0-copy.txt"
    copy.write_bytes(files[0].read_bytes())
    return [*files, copy]


def cli(args: list[str], data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_CORPUS_DIR": str(data_dir / "no-corpus")}
    return subprocess.Popen(
        [sys.executable, "-m", "rag", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def listed(data_dir: Path) -> dict[str, str]:
    """name → doc_id of the ready documents, as `python -m rag docs --json` lists them."""
    out, _ = cli(["docs", "--json"], data_dir).communicate(timeout=120)
    return {d["name"]: d["doc_id"] for d in json.loads(out)}


def check_finds(data_dir: Path) -> list[str]:
    """The problems `python -m rag check` prints (none when it exits 0)."""
    proc = cli(["check"], data_dir)
    out, err = proc.communicate(timeout=120)
    problems = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert (proc.returncode, bool(problems)) in ((0, False), (1, True)), f"{proc.returncode}: {out}{err}"
    return problems


def writing(data_dir: Path, pid: int) -> bool:
    """Is this process in the middle of indexing or deleting a document (its row not ready)?"""
    try:
        with sqlite3.connect(data_dir / "registry.sqlite3", timeout=5) as db:
            row = db.execute("SELECT COUNT(*) FROM documents WHERE writer LIKE ?", (f"%:{pid}:%",)).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return False
    return bool(row[0])


@pytest.mark.slow
def test_many_writers_and_searchers_at_once_leave_a_consistent_knowledge_base(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingest, delete, list and search from several CLI processes at once, while threads of this process share
    one Store and embedder (as the app's sessions do) and search, ingest and delete too; a fixed number of
    operations. No user sees an error (Chroma embedded is not made for several processes: the store takes
    turns and reopens it), `rag check` finds nothing afterwards, and one content is one document."""
    data_dir = tmp_path / "kb"
    files = small_files(tmp_path / "files", 5, STRESS_SEED)
    store = Store(data_dir)  # the app's: opened before the CLI processes start, used until the end
    counts = {
        "CLI operations": 0,
        "app operations": 0,
        "searches": 0,
        "errors": 0,
        "not found (deleted by another)": 0,
        "duplicates": 0,
    }
    lock = threading.Lock()
    errors: list[str] = []

    def cli_worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STRESS_OPS_PER_WORKER):
            op = rng.choices(["ingest", "delete", "docs", "search"], weights=[5, 3, 1, 3])[0]
            if op == "ingest":
                args = ["ingest", *(str(p) for p in rng.sample(files, rng.randint(1, 3)))]
            elif op == "delete":
                args = ["delete", rng.choice(files).name]
            elif op == "search":  # retrieval and the prompt, no model called
                args = ["prompt", " ".join(rng.sample(_WORDS, 3))]
            else:
                args = ["docs"]
            proc = cli(args, data_dir)
            out, err = proc.communicate(timeout=600)
            with lock:
                counts["CLI operations"] += 1
                counts["searches"] += op == "search"
                counts["duplicates"] += out.count("already indexed: skipped")
                if op == "delete" and proc.returncode == 1 and "No document named" in err:
                    counts["not found (deleted by another)"] += 1
                elif proc.returncode != 0:
                    counts["errors"] += 1
                    errors.append(f"{' '.join(args)} → {proc.returncode}: {err.strip()[-500:]}")

    def app_session(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STRESS_APP_OPS_PER_SESSION):
            time.sleep(rng.uniform(0, STRESS_APP_PAUSE))  # spread over the CLI processes' run
            op = rng.choices(["search", "ingest", "delete"], weights=[6, 2, 1])[0]
            try:
                if op == "search":  # as a chat turn: search, then the evidence check and the sources
                    retriever = Retriever(store, embedder)
                    question = " ".join(rng.sample(_WORDS, 3))
                    retriever.retrieve(question, top_k=5, min_score=0.0, max_chars=4000)
                    failed = []
                elif op == "ingest":
                    ingestor = Ingestor(store, embedder, 600, 100)
                    results = ingestor.ingest_paths(rng.sample(files, rng.randint(1, 2)))
                    failed = [f"{r.name}: {r.message}" for r in results if not r.ok]
                else:
                    found = store.find(rng.choice(files).name)
                    if found is not None:
                        store.delete_document(found.doc_id)
                    failed = []
            except Exception as exc:  # what a page would show the user
                failed = [f"{type(exc).__name__}: {exc}"]
            with lock:
                counts["app operations"] += 1
                counts["searches"] += op == "search"
                counts["errors"] += bool(failed)
                errors.extend(f"app {op}: {message}" for message in failed)

    caplog.set_level(logging.WARNING, logger="rag.chroma_client")
    threads = [threading.Thread(target=cli_worker, args=(STRESS_SEED + i,)) for i in range(STRESS_WORKERS)]
    threads += [threading.Thread(target=app_session, args=(STRESS_SEED + 100 + i,)) for i in range(STRESS_APP_SESSIONS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    problems = check_finds(data_dir)
    docs = listed(data_dir)
    counts["inconsistencies"] = len(problems)
    counts["documents at the end"] = len(docs)
    counts["reads retried (this process)"] = sum("Chroma read failed" in r.getMessage() for r in caplog.records)
    counts["seconds"] = round(time.monotonic() - started)
    print(f"\nstress: {counts}")  # the figures of the closing note (pytest -s)
    assert counts["CLI operations"] == STRESS_WORKERS * STRESS_OPS_PER_WORKER
    assert counts["app operations"] == STRESS_APP_SESSIONS * STRESS_APP_OPS_PER_SESSION
    assert errors == [] and problems == []
    assert len(set(docs.values())) == len(docs)  # one document per content: the copy is only ever a duplicate


@pytest.mark.slow
def test_killing_ingests_and_deletes_at_random_moments_loses_nothing_committed(tmp_path: Path) -> None:
    """kill -9 two real CLI writers (ingest or delete) at random moments, round after round; after each, the
    reopened knowledge base is consistent and everything committed before (and not deleted) is still there."""
    data_dir = tmp_path / "kb"
    files = small_files(tmp_path / "files", 8, CRASH_SEED)
    rng = random.Random(CRASH_SEED)
    kills = finished = mid_write = 0
    committed: dict[str, str] = {}
    rounds = 0
    horizon = {"ingest": 12.0, "delete": 12.0}  # seconds a writer may run (shrinks to the shortest run seen)
    while kills < CRASH_KILLS and rounds < CRASH_MAX_ROUNDS:
        rounds += 1
        deleting: set[str] = set()
        procs: list[tuple[str, subprocess.Popen[str]]] = []
        for _ in range(2):
            if committed and rng.random() < 0.3:
                name = rng.choice(sorted(committed))
                deleting.add(name)
                procs.append(("delete", cli(["delete", name], data_dir)))
            else:
                args = ["ingest", *(str(p) for p in rng.sample(files, rng.randint(1, 4)))]
                procs.append(("ingest", cli(args, data_dir)))
        # Each writer is killed at a random moment between start-up and the shortest run of its kind seen to
        # finish so far (loading the model alone takes ~5-10 s on a loaded 2-core machine, less on an idle
        # one): before, during and after the writes, on a machine of any speed.
        started = time.monotonic()
        deadlines = [started + rng.uniform(0.5, horizon[kind]) for kind, _ in procs]
        for deadline, (kind, proc) in sorted(zip(deadlines, procs, strict=True), key=lambda d: d[0]):
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                mid_write += writing(data_dir, proc.pid)
                proc.kill()
                kills += 1
            else:
                finished += 1
                horizon[kind] = max(1.0, min(horizon[kind], time.monotonic() - started))
            proc.communicate(timeout=60)
        assert check_finds(data_dir) == []  # nothing half-indexed, no strays
        now = listed(data_dir)
        lost = {name for name in committed if name not in now and name not in deleting}
        assert lost == set(), f"committed and lost: {lost}"
        committed = now
    print(
        f"\ncrash: {kills} writers killed ({mid_write} with a document half-indexed or half-deleted), {finished} "
        f"finished first, {rounds} rounds, 0 inconsistencies"
    )
    assert kills >= CRASH_KILLS


# -- damaged folders (issue 19): every kind of damage is named by `check`, and `check --repair` gives back a knowledge
# base whose documents answer the same questions -------------------------------------------------------------------

QUESTIONS = ("When do cats purr?", "How many stages did the Saturn V have?", "Who lights the harbour lantern?")
FILES = {
    "cats.md": "# Cats\n\nCats purr when they are content. A cat sleeps sixteen hours a day.\n",
    "rockets.txt": "Rockets burn fuel to reach orbit. The Saturn V had three stages and flew thirteen times.",
    "harbour.txt": "The harbour lantern is lit every evening at six by the keeper, Mrs. Okafor.",
}


def _drop_keyword_table(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "registry.sqlite3") as db:
        db.execute("DROP TABLE chunk_text")


def _forget_registry_rows(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "registry.sqlite3") as db:
        db.execute("DELETE FROM documents WHERE name = 'rockets.txt'")


def _scribble(path: Path, at: int) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        f.write(random.Random(19).randbytes(4096))


def _registry_files(data_dir: Path) -> list[Path]:
    return [data_dir / f"registry.sqlite3{end}" for end in ("", "-wal", "-shm")]


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


# damage → (what `check` names, how the damage is made)
DAMAGES = {
    "registry emptied": ("registry missing", lambda d: (d / "registry.sqlite3").write_bytes(b"")),
    "registry deleted": ("registry missing", lambda d: (d / "registry.sqlite3").unlink()),
    "registry cut in half": ("registry damaged", lambda d: _truncate(d / "registry.sqlite3")),
    "registry overwritten": ("registry damaged", lambda d: _scribble(d / "registry.sqlite3", 0)),
    "keyword table dropped": ("keyword rows missing", _drop_keyword_table),
    "registry rows lost": ("unregistered document", _forget_registry_rows),
    "chroma folder deleted": ("vectors missing", lambda d: shutil.rmtree(d / "chroma")),
    "chroma unreadable": ("vectors unreadable", lambda d: _scribble(d / "chroma" / "chroma.sqlite3", 0)),
}


def answers(data_dir: Path, embedder: Embedder) -> dict[str, list[RetrievedChunk]]:
    store = Store(data_dir)
    try:
        retriever = Retriever(store, embedder)
        return {q: retriever.retrieve(q, top_k=3).hits for q in QUESTIONS}
    finally:
        store.close()


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_check_names_each_kind_of_damage_and_repair_gives_back_the_same_answers(
    damage: str, tmp_path: Path, embedder: Embedder
) -> None:
    data_dir = tmp_path / "kb"
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    store = Store(data_dir)
    assert all(r.ok for r in Ingestor(store, embedder, 400, 50).ingest_paths([tmp_path / n for n in FILES]))
    store.close()
    before = answers(data_dir, embedder)
    said, make = DAMAGES[damage]
    if said.startswith("registry"):  # as a crash or a copy would leave it: no WAL beside the main file
        for extra in _registry_files(data_dir)[1:]:
            extra.unlink(missing_ok=True)
    make(data_dir)

    found = run(["check"], data_dir)
    assert found.returncode == 1, found.stdout + found.stderr
    assert said in found.stdout and "python -m rag check --repair" in found.stdout
    assert "Traceback" not in found.stderr
    repaired = run(["check", "--repair"], data_dir)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "consistent now" in repaired.stdout and "Add these files again" not in repaired.stdout
    if damage in ("registry cut in half", "registry overwritten", "chroma unreadable"):
        kept = list(data_dir.glob("*.damaged-*"))
        assert kept and f"as {kept[0]}" in repaired.stdout  # the damaged part is kept beside it, and said so
    assert run(["check"], data_dir).returncode == 0
    after = answers(data_dir, embedder)
    assert all(same_answers(before[q], after[q]) for q in QUESTIONS), (before, after)
    again = run(["ingest", *(str(tmp_path / n) for n in FILES)], data_dir)
    assert again.returncode == 0 and again.stdout.count("unchanged, skipped") == 3, again.stdout + again.stderr


def test_a_folder_with_both_copies_of_a_document_lost_says_which_files_to_add_again(
    tmp_path: Path, embedder: Embedder
) -> None:
    data_dir = tmp_path / "kb"
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    store = Store(data_dir)
    Ingestor(store, embedder, 400, 50).ingest_paths([tmp_path / n for n in FILES])
    store.close()
    shutil.rmtree(data_dir / "chroma")
    _drop_keyword_table(data_dir)
    repaired = run(["check", "--repair"], data_dir)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "Add these files again: cats.md, harbour.txt, rockets.txt." in repaired.stdout
