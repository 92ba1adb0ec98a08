"""Files are read in worker processes, each under a time and a memory budget.

Why: the loaders run libraries (python-docx, lxml, PDFium, Pillow, RapidOCR) on files nobody vetted. In the
app's own process a file that makes one of them loop or swell could only be waited for, and it held up every
other file of the batch. Here each file is read by a worker process: its memory is capped by the operating
system (RLIMIT_DATA: an allocation past it fails), its time is watched from here, and past either budget the
worker is killed and the file fails with a message naming the limit (RAG_PARSE_SECONDS, RAG_PARSE_MEMORY_MB),
while the batch's other files go on in the other workers. A scanned PDF read by OCR reports each page, and
each page gets the time budget again (OCR takes up to a minute a page on a busy CPU).

How: a worker is a fresh interpreter (`python -m rag.parsing`, never a fork: the app runs threads, and fork after
threads is unsafe) that imports the loaders only, never torch or the embedding model, and talks over a
multiprocessing Connection (pickled requests, pickled sections back). Not multiprocessing's own `spawn`: it
imports the parent's `__main__` in every worker, and under Streamlit `__main__` is app.py itself, so each worker
would have run the whole app. A worker reads files one at a time and lives for one ingestion (started when its
first file needs parsing, so re-adding unchanged files starts none); it is replaced after a file that made it
grow past half its budget.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

from rag.config import DEFAULT_PARSE_MEMORY_MB, DEFAULT_PARSE_SECONDS
from rag.errors import LoaderError
from rag.loaders import load_bytes
from rag.loaders.common import READ_LIMITS, ReadLimits, reason
from rag.loaders.pdf import PageProgress
from rag.schema import LoadedDocument

logger = logging.getLogger(__name__)

# A loader as the workers call it: the file's bytes, its name, a callback per page read by OCR.
Loader = Callable[[bytes, str, PageProgress | None], LoadedDocument]
# Files read at once: one worker can sit on a slow file for its whole budget while the other reads the rest.
PARSE_WORKERS = 2
_POLL = 0.2  # seconds between looks at a worker (its memory, whether it is still there)
_START_TIMEOUT = 120.0  # seconds a worker may take to start (importing the loaders) on a busy machine
_MB = 1024 * 1024


@dataclass(frozen=True)
class ParseBudget:
    """What reading one file may cost: wall-clock seconds (a scan read by OCR: per page) and megabytes."""

    seconds: float = DEFAULT_PARSE_SECONDS
    memory_mb: int = DEFAULT_PARSE_MEMORY_MB


class ParserPool:
    """Worker processes that read files for one ingestion; `parse` may be called from several threads (each
    thread gets a worker of its own). Close it (or use it as a context manager) to stop the workers."""

    def __init__(self, budget: ParseBudget | None = None, load: Loader = load_bytes) -> None:
        self.budget = budget or ParseBudget()
        self.load = load  # a module-level function: the workers import it by name
        self._local = threading.local()
        self._workers: set[_Worker] = set()
        self._guard = threading.Lock()
        self._closed = False

    def parse(
        self, data: bytes, name: str, limits: ReadLimits, on_ocr_page: PageProgress | None = None
    ) -> LoadedDocument:
        """The file read by a worker, within the budget; a LoaderError says what went wrong (and which limit)."""
        worker = self._worker()
        try:
            return worker.parse(data, name, limits, on_ocr_page)
        finally:
            if not worker.usable:
                self._retire(worker)

    def close(self) -> None:
        with self._guard:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.stop()

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None or not worker.usable:
            worker = _Worker(self.budget, self.load)
            with self._guard:
                if self._closed:
                    worker.stop()
                    raise LoaderError("Reading was stopped: the ingestion ended.")
                self._workers.add(worker)
            self._local.worker = worker
        return worker

    def _retire(self, worker: _Worker) -> None:
        with self._guard:
            self._workers.discard(worker)
        worker.stop()
        if getattr(self._local, "worker", None) is worker:
            self._local.worker = None


class _Worker:
    """One worker process and the pipe to it; used by one thread at a time."""

    def __init__(self, budget: ParseBudget, load: Loader) -> None:
        self.budget = budget
        self.usable = True
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rag.parsing", str(theirs.fileno()), str(budget.memory_mb * _MB)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._connection = Connection(ours.detach())
        # Where the loader is imported from (a test's module too), then the loader itself, by name.
        self._connection.send(list(sys.path))
        self._connection.send(load)
        self._started = False

    def parse(self, data: bytes, name: str, limits: ReadLimits, on_ocr_page: PageProgress | None) -> LoadedDocument:
        self._wait_until_started(name)
        try:
            self._connection.send((data, name, limits))
        except OSError as exc:  # the worker is gone (it could not start, or was killed)
            self.usable = False
            raise LoaderError(f"{name} could not be read: the reading process stopped ({exc}); add it again.") from exc
        deadline = time.monotonic() + self.budget.seconds
        peak_mb = 0  # the most memory seen in use by the worker while it read this file
        by_page = False  # read by OCR page by page: the time budget is then a page's
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                logger.warning("%s: reading stopped after %.0f s (RAG_PARSE_SECONDS)", name, self.budget.seconds)
                raise LoaderError(_over_time(name, self.budget.seconds, by_page))
            peak_mb = max(peak_mb, _resident_mb(self._process.pid))
            try:
                if not self._connection.poll(min(left, _POLL)):
                    continue
                message = self._connection.recv()
            except (EOFError, OSError):  # the worker died: a crash, or an allocation past its budget failed hard
                self.stop()
                raise LoaderError(_crashed(name, self._process.poll(), peak_mb, self.budget.memory_mb)) from None
            if message[0] == "ocr":
                if on_ocr_page is not None:
                    on_ocr_page(message[1], message[2])
                deadline = time.monotonic() + self.budget.seconds  # each page read by OCR gets the budget again
                by_page = True
                continue
            kind, *payload, grown_mb = message
            if grown_mb * 2 > self.budget.memory_mb:  # memory a big file left behind would count against the next
                self.usable = False
            if kind == "done":
                document: LoadedDocument = payload[0]
                return document
            if kind == "memory":
                self.usable = False
                raise LoaderError(_over_memory(name, self.budget.memory_mb))
            raise LoaderError(str(payload[0]))

    def _wait_until_started(self, name: str) -> None:
        """A file's time starts once its worker is ready (starting one takes a second or two, more on a busy
        machine)."""
        if self._started:
            return
        try:
            ready = self._connection.poll(_START_TIMEOUT) and self._connection.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.stop()
            raise LoaderError(
                f"{name} could not be read: no reading process started within {_START_TIMEOUT:.0f} s (exit code "
                f"{self._process.poll()}); the machine may be out of memory or processes: try again."
            )
        self._started = True

    def stop(self) -> None:
        self.usable = False
        if self._process.poll() is None:
            self._process.kill()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("A reading process (pid %d) did not stop when killed", self._process.pid)
        self._connection.close()


def _over_time(name: str, seconds: float, by_page: bool) -> str:
    what = "a page of it took longer to read by OCR than the" if by_page else "reading it took longer than the"
    return (
        f"{name}: {what} {seconds:,.0f} s a file may take (RAG_PARSE_SECONDS), so it was stopped and not added; the "
        "other files went on. If it is a real document, split it or save it again (e.g. as PDF), or raise "
        "RAG_PARSE_SECONDS."
    )


def _over_memory(name: str, memory_mb: int) -> str:
    return (
        f"{name}: reading it needed more than the {memory_mb:,} MB of memory a file may use (RAG_PARSE_MEMORY_MB), so "
        "it was stopped and not added; the other files went on. If it is a real document, split it or save it again "
        "(e.g. as PDF), or raise RAG_PARSE_MEMORY_MB."
    )


def _crashed(name: str, exitcode: int | None, peak_mb: int, memory_mb: int) -> str:
    if peak_mb * 10 >= memory_mb * 9:  # it died at its memory limit: an allocation in a library failed hard
        return _over_memory(name, memory_mb)
    how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    return (
        f"{name}: the process reading it stopped unexpectedly ({how}) and it was not added; the other files went on. "
        "It may be damaged: open it and save it again (or as PDF), then add it again."
    )


def _resident_mb(pid: int | None) -> int:
    """A process's resident memory now (Linux; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // _MB
    except (OSError, ValueError, IndexError):
        return 0


# -- the worker process -----------------------------------------------------------------------------------


def serve(connection: Connection, memory_bytes: int) -> None:
    """A worker's life: learn where to import from and which loader to call, cap its memory, then read the files
    it is sent, one at a time, until the connection closes."""
    sys.path[:] = connection.recv()
    load: Loader = connection.recv()
    _limit_memory(memory_bytes)
    connection.send(("ready",))
    while True:
        try:
            data, name, limits = connection.recv()
        except (EOFError, OSError):
            return
        _read_one(connection, load, data, name, limits)
        del data


def _read_one(connection: Connection, load: Loader, data: bytes, name: str, limits: ReadLimits) -> None:
    def on_page(done: int, total: int) -> None:
        connection.send(("ocr", done, total))

    READ_LIMITS.set(limits)
    try:
        document = load(data, name, on_page)
        connection.send(("done", document, _grown_mb()))
    except LoaderError as exc:
        connection.send(("error", str(exc), _grown_mb()))
    except MemoryError:
        connection.send(("memory", _grown_mb()))
    except Exception as exc:  # a loader's bug: still a message, and the worker goes on
        connection.send(("error", f"{name} could not be read ({reason(exc)}): it may be damaged.", _grown_mb()))


def _limit_memory(memory_bytes: int) -> None:
    """Allocations past the budget fail (MemoryError in Python, a failed malloc in a library)."""
    try:
        import resource
    except ImportError:  # not on this platform: only the time budget applies
        return
    limit = getattr(resource, "RLIMIT_DATA", None) or resource.RLIMIT_AS
    try:
        resource.setrlimit(limit, (memory_bytes, memory_bytes))
    except (ValueError, OSError) as exc:
        logger.warning("The memory budget of the reading process could not be set (%s)", exc)


def _grown_mb() -> int:
    """This worker's peak resident memory so far, in MB (its data after a big file stays with it)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) // 1024
    except ImportError:
        return 0


if __name__ == "__main__":  # a worker: python -m rag.parsing FD MEMORY_BYTES (started by _Worker)
    serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
