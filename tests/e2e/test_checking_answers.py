"""Checking an answer in a real browser (Debian's chromium, Playwright, `streamlit run app.py`, the built-in
model): upload a PDF, a Word file and a scanned PDF, ask, and open the sources where they stand.

- The PDF source opens on its page as a picture whose highlight covers the passage's characters by PDFium's own
  boxes, and nothing far outside them; the neighbour page is one click away.
- The scanned page (a picture of printed lines, no text layer) opens as its picture with the highlight over
  OCR's boxes of the passage's words (rag/ocr.py reads the page as the app does), the line that answers in
  orange over its own line alone, and the lines of the page outside the passage untouched.
- The source's one-line summary starts with the line that answers, and that line is marked in the passage.
- The Word source opens in its text, highlighted, under its heading path.
- Feedback (thumbs and a comment) survives a reload of the page.
Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rag.ocr import read_boxes, reading_lines
from rag.page_image import PADDING, render_pdf_page
from tests.documents import scanned_pdf, text_pdf, word_file
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, streamlit_app
from tests.test_page_image import char_boxes

PDF_PAGES = [
    "Lighthouse keeper's log, first page. The lamp was lit at dusk and the weather was calm all week.",
    "Lighthouse keeper's log, second page. The foghorn was tested on the ninth of March by Eleanor Price. "
    "The brass fittings were polished afterwards.",
    "Lighthouse keeper's log, third page. Supplies arrived by boat on Friday.",
]
PASSAGE_WORDS = "The foghorn was tested on the ninth of March by Eleanor Price."
OVEN_DETAIL = (
    "The left oven runs hotter than the right one, so loaves on the left come out a few minutes earlier. Trays "
    "are rotated halfway through each bake, and the steam valve is opened for the last ten minutes of baking. "
    "The thermometers are checked against each other on the first day of every month and replaced when they "
    "disagree by more than five degrees. Nobody opens an oven door while the bread is rising in it."
)
DELIVERY_DETAIL = (
    "The driver rings the bell at the back door and waits for someone to sign the delivery note. Sacks are "
    "stacked on the pallets by the wall, never on the floor, and the oldest sacks are always used first. Yeast "
    "arrives separately on Thursdays, packed in ice, and goes straight into the cold room beside the butter."
)
WORD_BLOCKS = [
    ("h1", "Bakery handbook"),
    ("h2", "Ovens"),
    ("p", "The ovens are cleaned every Sunday evening by Marguerite, after the last batch of bread. " + OVEN_DETAIL),
    ("h2", "Deliveries"),
    ("p", "Flour is delivered on Tuesdays at seven in the morning. " + DELIVERY_DETAIL),
]


# A page that is only a picture of printed text (~200 dpi, DejaVu Sans at about 12 pt): read by OCR. Long enough
# for two passages, so that the one that answers is not the whole page.
SCAN_LINES = [
    "Beekeeping record, spring inspection",
    "The orchard hives stand in a row along the south wall.",
    "Each hive is painted a different colour so the bees",
    "find their own entrance on a windy day.",
    "The hives were inspected on the fourth of May by Rosalind Okafor.",
    "Three frames of capped brood were found in the blue hive.",
    "The queen of the green hive was marked with a white dot.",
    "Sugar syrup was given to the yellow hive, which was light.",
    "The smoker fuel is kept in the shed behind the orchard.",
    "Spare frames and foundation wax are stored on the top shelf.",
    "Honey is extracted in August and poured into glass jars.",
    "Each jar is labelled with the hive it came from.",
    "Wax from the cappings is melted down for candles in October.",
    "Visitors must wear a veil and gloves near the hives.",
]
SCAN_ANSWER = "The hives were inspected on the fourth of May by Rosalind Okafor."
Rect = tuple[float, float, float, float]


def tinted(picture: np.ndarray, box: Rect) -> bool:
    """The highlight's translucent yellow over white paper: the paper's blue falls from 255 to about 160."""
    left, top, right, bottom = (round(v) for v in box)
    paper = picture[top:bottom, left:right, 2]
    return paper.size > 0 and float(np.percentile(paper, 90)) < 215


def line_tinted(picture: np.ndarray, box: Rect) -> bool:
    """The orange of the line that answers, not the passage's yellow: the paper's green falls from 255 to about
    200 under it (about 243 under the yellow)."""
    left, top, right, bottom = (round(v) for v in box)
    paper = picture[top:bottom, left:right, 1]
    return paper.size > 0 and float(np.percentile(paper, 90)) < 225


def ocr_lines(data: bytes, page: int) -> list[tuple[str, list[Rect]]]:
    """The printed lines of a scanned page as the app reads them (PDFium's picture at the viewer's scale, read
    by rag/ocr.py): each line's text and the boxes of its runs of words, in the picture's pixels."""
    picture = np.asarray(render_pdf_page(data, page))
    return [
        (" ".join(run.text.strip() for run in line), [(run.left, run.top, run.right, run.bottom) for run in line])
        for line in reading_lines(read_boxes(picture))
    ]


def shares_words(text: str, passage: str, run: int = 4) -> bool:
    """Some `run` consecutive words of `text` are in `passage` (a line cut by the passage's start or end)."""
    words = text.split()
    return any(" ".join(words[i : i + run]) in passage for i in range(max(len(words) - run + 1, 1)))


def highlight_extent(picture: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box of the highlighted pixels (yellow-tinted paper: red high, blue in the tint's band)."""
    red, blue = picture[:, :, 0].astype(int), picture[:, :, 2].astype(int)
    ys, xs = np.nonzero((red > 220) & (blue > 110) & (blue < 210))
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.slow
def test_sources_open_where_they_stand_and_feedback_is_kept(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    pdf = text_pdf(tmp_path / "lighthouse-log.pdf", PDF_PAGES)
    docx = word_file(tmp_path / "bakery-handbook.docx", WORD_BLOCKS)
    scan = scanned_pdf(tmp_path / "beekeeping-record-scan.pdf", [SCAN_LINES])
    corpus = tmp_path / "corpus"
    corpus.mkdir()  # empty: only the uploaded files are in the knowledge base
    ARTIFACTS.mkdir(exist_ok=True)

    def ask(page: Page, question: str, answer_at: int) -> None:
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(question)
        box.press("Enter")
        answer = page.get_by_test_id("stChatMessage").nth(answer_at)
        expect(answer.get_by_test_id("stExpander").first).to_be_visible(timeout=240_000)
        # The run that drew the sources ends before one is opened: a click that lands on a run still drawing the
        # page can be lost (seen once: the dialog never opened).
        expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=120_000)

    # Short answers: what is checked is the sources under them, not what the tiny model writes.
    with streamlit_app(tmp_path_factory, corpus, RAG_MAX_ANSWER_TOKENS="24") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(url)
            page.get_by_test_id("stSidebarNav").get_by_text("Documents").click()
            upload_form = page.get_by_test_id("stForm").filter(has_text="Add files")  # not the import form's
            upload_form.locator("input[type=file]").set_input_files([str(pdf), str(docx), str(scan)])
            expect(page.get_by_role("button", name=f"Remove {docx.name}")).to_be_visible(timeout=60_000)
            indexed = page.get_by_text(f"{docx.name}: indexed", exact=False)
            for _ in range(5):  # a submit that beats the upload is told to choose files: press again
                page.get_by_role("button", name="Add to knowledge base").click()
                outcome = indexed.or_(page.get_by_text("Choose one or more files first"))
                expect(outcome.first).to_be_visible(timeout=300_000)  # the scan is read by OCR first
                if indexed.first.is_visible():
                    break
                page.wait_for_timeout(1000)
            expect(page.get_by_text(f"{pdf.name}: indexed", exact=False)).to_be_visible(timeout=60_000)
            expect(page.get_by_text(f"{scan.name}: indexed", exact=False)).to_be_visible(timeout=300_000)

            # -- a PDF source: its page, the passage highlighted over PDFium's boxes of its characters --------
            page.get_by_test_id("stSidebarNav").get_by_text("Chat").click()
            page.get_by_test_id("stChatInputTextArea").wait_for(timeout=120_000)
            ask(page, "When was the foghorn tested, and by whom?", 1)
            answer = page.get_by_test_id("stChatMessage").nth(1)
            source = answer.get_by_test_id("stExpander").filter(has_text=f"{pdf.name} · page 2").first
            # The line that answers comes first in the one-line summary, then the score that ranked it.
            expect(source).to_contain_text("“The foghorn was tested on the ninth of March by Eleanor Price.”")
            expect(source).to_contain_text("ranked")
            expect(answer).to_contain_text("the score is the one that ranked them")
            source.locator("summary").click()
            line = source.locator("mark[data-mark=line]")
            expect(line).to_have_text(PASSAGE_WORDS)  # marked in the passage too
            source.get_by_role("button", name="Open where it stands").click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_contain_text(f"{pdf.name} · page 2 of 3", timeout=120_000)
            expect(dialog).to_contain_text("The passage is highlighted")
            image = dialog.get_by_test_id("stImageContainer").locator("img")
            expect(image).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "source-pdf-page.png"), full_page=True)
            served = page.request.get(url + str(image.get_attribute("src")).removeprefix(url))
            picture = np.asarray(Image.open(io.BytesIO(served.body())).convert("RGB"))
            boxes = char_boxes(pdf.read_bytes(), 2, PASSAGE_WORDS)
            assert boxes and all(tinted(picture, b) for b in boxes)  # every character of it under the highlight
            left, top, right, bottom = highlight_extent(picture)
            page_text = char_boxes(pdf.read_bytes(), 2, PDF_PAGES[1])  # the passage is on this page, no further
            slack = PADDING + 4  # the highlight's padding around PDFium's boxes, and anti-aliasing
            assert left >= min(b[0] for b in page_text) - slack and top >= min(b[1] for b in page_text) - slack
            assert right <= max(b[2] for b in page_text) + slack and bottom <= max(b[3] for b in page_text) + slack
            assert not tinted(picture, (10, 10, 60, 60))  # the margin: nothing there
            dialog.get_by_role("button", name="Page ▶").click()  # the neighbour page, one click away
            expect(dialog).to_contain_text("page 3 of 3", timeout=60_000)
            expect(dialog).to_contain_text("The passage is on page 2.")
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_have_count(0)

            # -- feedback: thumbs and a comment, kept after a reload ------------------------------------------
            answer.get_by_role("radio", name="Thumbs up").click()
            comment = answer.get_by_placeholder("What was right or wrong?")
            expect(comment).to_be_visible(timeout=60_000)
            comment.fill("Right page, right line.")
            comment.press("Enter")
            expect(answer).to_contain_text("Your feedback: 👍 helpful: Right page, right line.", timeout=60_000)

            # -- a Word source: its text, the passage highlighted, under its heading path ----------------------
            ask(page, "When are the ovens cleaned?", 3)
            answer = page.get_by_test_id("stChatMessage").nth(3)
            source = answer.get_by_test_id("stExpander").filter(has_text=docx.name).first
            source.locator("summary").click()
            source.get_by_role("button", name="Open where it stands").click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_contain_text("Bakery handbook › Ovens", timeout=60_000)
            passage = dialog.locator("mark[data-mark]")
            expect(passage.first).to_be_visible()
            marked = " ".join(passage.all_inner_texts())
            assert "cleaned every Sunday evening by Marguerite" in marked and "Flour" not in marked
            ovens = "The ovens are cleaned every Sunday evening by Marguerite, after the last batch of bread."
            expect(dialog.locator("mark[data-mark=line]")).to_have_text(ovens)  # the line that answers, no heading
            expect(dialog).to_contain_text("Flour is delivered on Tuesdays")  # the text around it, unmarked
            page.screenshot(path=str(ARTIFACTS / "source-word-text.png"), full_page=True)
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_have_count(0)

            # -- a scanned page: its picture, the passage highlighted over OCR's boxes of its words --------------
            ask(page, "Who inspected the hives, and when?", 5)
            answer = page.get_by_test_id("stChatMessage").nth(5)
            source = answer.get_by_test_id("stExpander").filter(has_text=f"{scan.name} · page 1")
            source = source.filter(has_text="Rosalind Okafor").first  # the passage that answers, of the page's two
            expect(source).to_contain_text(f"“{SCAN_ANSWER}”")
            source.locator("summary").click()
            expect(source.locator("mark[data-mark=line]")).to_have_text(SCAN_ANSWER)
            read = " ".join(" ".join(source.locator("mark[data-mark]").all_inner_texts()).split())  # the passage
            source.get_by_role("button", name="Open where it stands").click()
            dialog = page.get_by_role("dialog")
            scanned = f"{scan.name} · page 1 of 1 · a scanned page (its words read by OCR)"
            expect(dialog).to_contain_text(scanned, timeout=180_000)  # OCR reads the page when it is first opened
            expect(dialog).to_contain_text("The passage is highlighted")
            image = dialog.get_by_test_id("stImageContainer").locator("img")
            expect(image).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "source-scanned-page.png"), full_page=True)
            served = page.request.get(url + str(image.get_attribute("src")).removeprefix(url))
            (ARTIFACTS / "source-scanned-page-picture.png").write_bytes(served.body())
            picture = np.asarray(Image.open(io.BytesIO(served.body())).convert("RGB"))
            lines = ocr_lines(scan.read_bytes(), 1)
            inside = [(text, boxes) for text, boxes in lines if text in read]
            outside = [(text, boxes) for text, boxes in lines if not shares_words(text, read)]
            assert SCAN_ANSWER in [text for text, _ in inside] and len(outside) >= 2, (read, lines)
            assert all(tinted(picture, b) for _, boxes in inside for b in boxes)  # every word of the passage
            assert not any(tinted(picture, b) for _, boxes in outside for b in boxes)  # the rest of the page
            for text, boxes in lines:  # the line that answers, in orange, and no other line
                assert all(line_tinted(picture, b) for b in boxes) == (text == SCAN_ANSWER), text
            left, top, right, bottom = highlight_extent(picture)
            near = [b for text, boxes in lines if shares_words(text, read) for b in boxes]
            slack = PADDING + 4
            assert left >= min(b[0] for b in near) - slack and top >= min(b[1] for b in near) - slack
            assert right <= max(b[2] for b in near) + slack and bottom <= max(b[3] for b in near) + slack
            assert not tinted(picture, (10, 10, 60, 60))
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_have_count(0)

            # -- a reload: the conversation reopened shows the feedback given ---------------------------------
            page.reload()
            page.get_by_role("button", name="When was the foghorn tested, and by whom?").click()
            answer = page.get_by_test_id("stChatMessage").nth(1)
            expect(answer).to_contain_text("Your feedback: 👍 helpful: Right page, right line.", timeout=60_000)
            expect(answer.get_by_placeholder("What was right or wrong?")).to_have_value("Right page, right line.")
            expect(answer.get_by_role("radio", name="Thumbs up")).to_have_attribute("aria-checked", "true")
            page.screenshot(path=str(ARTIFACTS / "feedback-after-reload.png"), full_page=True)
        finally:
            browser.close()
