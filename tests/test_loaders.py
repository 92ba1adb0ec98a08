"""Loaders on real files generated here (fpdf2, python-docx), good and bad."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from rag.errors import LoaderError
from rag.loaders import SUPPORTED, is_supported, load_bytes, load_file


def make_pdf(pages: list[str], *, owner_password: str | None = None, user_password: str | None = None) -> bytes:
    """One page per string; an empty string makes a page with only a drawn rectangle (no text)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
        else:
            pdf.rect(20, 20, 100, 60, style="F")
    if owner_password is not None:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    return bytes(pdf.output())


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load_error(data: bytes, name: str) -> str:
    with pytest.raises(LoaderError) as info:
        load_bytes(data, name)
    return str(info.value)


# --- types and dispatch -----------------------------------------------------------------------


def test_supported_types() -> None:
    assert SUPPORTED[".pdf"] == "pdf"
    assert SUPPORTED[".docx"] == "docx"
    assert SUPPORTED[".md"] == SUPPORTED[".markdown"] == "markdown"
    assert {SUPPORTED[e] for e in (".txt", ".text", ".log", ".rst")} == {"text"}
    assert SUPPORTED[".html"] == SUPPORTED[".htm"] == "html"
    assert SUPPORTED[".csv"] == "csv"
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED)
    assert is_supported("Report.PDF")
    assert is_supported("notes.md")
    assert is_supported("photo.png") and is_supported("scan.JPG")  # read by OCR
    assert not is_supported("clip.mp4")
    assert not is_supported("Makefile")


def test_unsupported_type_lists_supported_ones() -> None:
    message = load_error(b"\0\0\0\x18ftypmp42", "clip.mp4")
    assert message.startswith("clip.mp4: unsupported file type '.mp4'. Supported: ")
    assert ".csv, .docx" in message and ".png" in message
    assert ".pdf" in message and ".txt" in message


def test_no_extension() -> None:
    assert load_error(b"hello", "README").startswith("README: unsupported file type '(none)'. Supported: .csv")


def test_extension_is_case_insensitive() -> None:
    doc = load_bytes(b"hello", "NOTES.TXT")
    assert doc.kind == "text"


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n "])
@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "report.pdf", "table.csv", "page.html", "memo.docx"])
def test_empty_file(data: bytes, name: str) -> None:
    assert load_error(data, name) == f"{name} is empty: there is nothing to index."


def test_html_without_visible_text_is_empty() -> None:
    message = load_error(b"<html><body><script>x()</script>  </body></html>", "page.html")
    assert message == "page.html is empty: there is nothing to index."


def test_load_file_reads_and_names(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path, "hello.txt", b"Hello there.\n"))
    assert doc.name == "hello.txt"
    assert doc.sections[0].text == "Hello there."


def test_load_file_missing(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match=r"^gone\.txt could not be opened .*check that the file exists"):
        load_file(tmp_path / "gone.txt")


# --- PDF --------------------------------------------------------------------------------------


def test_pdf_one_section_per_page(tmp_path: Path) -> None:
    data = make_pdf(["First page about apples.", "Second page about   pears.", "Third page about plums."])
    doc = load_file(write(tmp_path, "fruit.pdf", data))
    assert doc.kind == "pdf"
    assert doc.pages == 3
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert "apples" in doc.sections[0].text
    assert "Second page about pears." in doc.sections[1].text  # runs of spaces collapsed
    assert "plums" in doc.sections[2].text
    assert doc.warnings == []


def test_pdf_joins_simple_hyphenated_line_breaks() -> None:
    doc = load_bytes(make_pdf(["An exam-\nple of hyphen-\nation.\nKeep this\nline break."]), "h.pdf")
    text = doc.sections[0].text
    assert "example" in text and "hyphenation" in text
    assert "Keep this\nline break." in text


def test_pdf_skips_pages_without_text_and_says_so() -> None:
    doc = load_bytes(make_pdf(["Intro text.", "", "Closing text."]), "mixed.pdf")
    assert doc.pages == 3
    assert [s.page for s in doc.sections] == [1, 3]
    assert len(doc.warnings) == 1
    assert "1 page of 3 have no text" in doc.warnings[0] and "(2)" in doc.warnings[0]
    assert "OCR" in doc.warnings[0]


def test_pdf_without_text_layer_and_nothing_for_ocr_to_read() -> None:
    message = load_error(make_pdf(["", ""]), "scan.pdf")
    assert message.startswith("scan.pdf has no text layer and OCR found no text on its pages: ")
    assert "ocrmypdf 'scan.pdf' 'scan-ocr.pdf'" in message  # file names quoted for the shell


def test_truncated_pdf() -> None:
    data = make_pdf(["Some text that will be cut off."])
    message = load_error(data[: len(data) // 3], "report.pdf")
    assert message.startswith("report.pdf could not be read as a PDF (")
    assert message.endswith("it may be damaged or not a real PDF; re-export or re-download it.")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_named_pdf(seed: int) -> None:
    data = random.Random(seed).randbytes(4096)
    message = load_error(data, "report.pdf")
    assert message.startswith("report.pdf could not be read as a PDF (")
    assert "re-export or re-download it" in message


def test_html_named_pdf() -> None:
    message = load_error(b"<html><body>Not found</body></html>", "download.pdf")
    assert message.startswith("download.pdf could not be read as a PDF (")


def test_pdf_with_owner_password_only_opens() -> None:
    # Permission-only encryption: the user password is empty, so the text is readable.
    doc = load_bytes(make_pdf(["Locked for printing only."], owner_password="owner"), "perm.pdf")
    assert "Locked for printing only." in doc.sections[0].text


def test_pdf_with_user_password() -> None:
    data = make_pdf(["Secret."], owner_password="owner", user_password="secret")
    message = load_error(data, "secret.pdf")
    assert message.startswith("secret.pdf is password-protected: ")
    assert "save an unprotected copy" in message


def make_table_pdf(title: str = "Quarterly Report") -> bytes:
    """A filing-like page: an organisation, a statement title, column headers (periods) and rows of figures."""
    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=14)
    pdf.cell(0, 10, "ACME WIDGETS, INC.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(
        0, 6, "Our results improved in every region, as the tables below show in detail for the year.", new_x="LMARGIN"
    )
    pdf.cell(0, 8, "Net Sales by Category", new_x="LMARGIN", new_y="NEXT")
    rows = [("", "Three Months Ended", ""), ("(in millions)", "July 1, 2023", "June 25, 2022")]
    rows += [("iPhone", "39,669", "40,665"), ("Mac", "6,840", "7,382"), ("Services", "21,213", "19,604")]
    align = ("LEFT", "RIGHT", "RIGHT")
    with pdf.table(col_widths=(60, 40, 40), text_align=align, first_row_as_headings=False) as table:
        for cells in rows:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    return bytes(pdf.output())


def test_pdf_table_rows_travel_with_their_title_and_periods() -> None:
    doc = load_bytes(make_table_pdf(), "acme_2023q3.pdf")
    table = next(s for s in doc.sections if s.table_header)
    assert "Net Sales by Category" in table.table_header
    assert "July 1, 2023" in table.table_header and "June 25, 2022" in table.table_header
    assert "iPhone 39,669 40,665" in table.text.split("\n")
    assert table.heading == "Net Sales by Category"
    from rag.chunking import chunk_document

    chunk = next(c for c in chunk_document(doc, "d", 600, 100) if "iPhone" in c.text)
    assert "Three Months Ended" in chunk.text and "July 1, 2023" in chunk.text
    assert chunk.header == "Quarterly Report — ACME WIDGETS, INC. · acme_2023q3.pdf · Net Sales by Category · page 1"


def test_pdf_title_skips_meaningless_metadata() -> None:
    doc = load_bytes(make_table_pdf(title="Microsoft Word - draft3.docx"), "acme.pdf")
    assert doc.title == "ACME WIDGETS, INC."  # the organisation named on the first page


def pdf_with_huge_stream(text: str, padding: int = 80_000_000) -> bytes:
    """A valid one-page PDF whose content stream inflates past pypdf's 75 MB limit (LimitReachedError):
    the text, then spaces. Real filings from EDGAR's converter trip the same limit."""
    import zlib

    content = f"BT /F1 24 Tf 72 700 Td ({text}) Tj ET\n".encode() + b" " * padding
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_that_pypdf_refuses_is_read() -> None:
    import io

    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    data = pdf_with_huge_stream("Total revenue 39,669")
    with pytest.raises(LimitReachedError):
        PdfReader(io.BytesIO(data)).pages[0].extract_text()
    doc = load_bytes(data, "filing.pdf")
    assert doc.sections[0].text == "Total revenue 39,669"
    assert doc.pages == 1 and doc.warnings == []


# --- DOCX -------------------------------------------------------------------------------------


def test_docx_headings_paragraphs_tables(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Travel policy", level=1)
    document.add_paragraph("Book trains   when the trip is under four hours.")
    document.add_heading("Allowances", level=2)
    table = document.add_table(rows=3, cols=2)
    rows = [("City", "Per day"), ("Paris", "120 EUR"), ("Oslo", "1500 NOK")]
    for row, (city, amount) in zip(table.rows, rows, strict=True):
        row.cells[0].text = city
        row.cells[1].text = amount
    document.add_paragraph("Receipts are required.", style="List Bullet")
    path = tmp_path / "policy.docx"
    document.save(str(path))

    doc = load_file(path)
    assert doc.kind == "docx"
    assert doc.pages is None
    assert len(doc.sections) == 1 and doc.sections[0].page is None
    lines = doc.sections[0].text.split("\n")
    assert lines[0] == "# Travel policy"
    assert "Book trains when the trip is under four hours." in lines
    assert "## Allowances" in lines
    assert [line for line in lines if " | " in line] == ["City | Per day", "Paris | 120 EUR", "Oslo | 1500 NOK"]
    assert "- Receipts are required." in lines
    # Document order is kept: heading, paragraph, sub-heading, table, list.
    assert lines.index("## Allowances") < lines.index("City | Per day") < lines.index("- Receipts are required.")


def test_docx_merged_cells_appear_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "Wide"
    table.cell(0, 2).text = "Narrow"
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert load_file(path).sections[0].text == "Wide | Narrow"


def test_corrupt_docx() -> None:
    message = load_error(b"PK\x03\x04 this is not really a zip file", "memo.docx")
    assert message.startswith("memo.docx could not be read as a Word document (")
    assert "open it in Word or LibreOffice and save it again as .docx" in message


def test_old_doc_renamed_to_docx() -> None:
    ole_header = bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 504
    message = load_error(ole_header, "old.docx")
    assert message.startswith("old.docx could not be read as a Word document (")


# --- Markdown and text ------------------------------------------------------------------------


def test_markdown_keeps_structure_and_normalises_line_ends(tmp_path: Path) -> None:
    source = "# Setup\r\n\r\nInstall it:\r\n\r\n    pip install thing\r\n\r\n\r\n\r\n- one\r\n- two\r\n"
    doc = load_file(write(tmp_path, "README.md", source.encode()))
    assert doc.kind == "markdown"
    assert len(doc.sections) == 1 and doc.sections[0].page is None
    assert doc.sections[0].text == "# Setup\n\nInstall it:\n\n    pip install thing\n\n- one\n- two"
    assert doc.warnings == []


def test_text_utf8_with_bom() -> None:
    doc = load_bytes("\ufeffNaïve café".encode(), "notes.txt")
    assert doc.sections[0].text == "Naïve café"
    assert doc.warnings == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_text_utf16_with_bom(encoding: str) -> None:
    doc = load_bytes("\ufeffZürich\r\nGenève".encode(encoding), "cities.txt")
    assert doc.sections[0].text == "Zürich\nGenève"
    assert doc.warnings == []


def test_text_in_windows_1252() -> None:
    doc = load_bytes("Le café coûte 3 €.\r\nÀ bientôt.".encode("cp1252"), "menu.txt")
    assert doc.sections[0].text == "Le café coûte 3 €.\nÀ bientôt."
    assert doc.warnings == ["decoded as windows-1252 (not UTF-8)"]


def test_short_latin1_word() -> None:
    doc = load_bytes("café".encode("latin-1"), "word.txt")
    assert doc.sections[0].text == "café"
    assert doc.warnings == ["decoded as windows-1252 (not UTF-8)"]


def test_text_in_windows_1251_is_not_forced_to_1252() -> None:
    doc = load_bytes("Привет, как дела? Это тест кодировки.".encode("cp1251"), "ru.txt")
    assert doc.sections[0].text == "Привет, как дела? Это тест кодировки."
    assert doc.warnings == ["decoded as windows-1251 (not UTF-8)"]


@pytest.mark.parametrize(
    "data",
    [
        random.Random(7).randbytes(2048),  # contains NUL bytes
        bytes(random.Random(8).choice([*range(1, 9), *range(14, 32), *range(128, 160)]) for _ in range(2048)),
        b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(100),
    ],
    ids=["random", "control-bytes", "elf"],
)
def test_binary_junk_named_txt(data: bytes) -> None:
    message = load_error(data, "data.txt")
    assert message.startswith("data.txt does not look like text (binary data?): ")
    assert "save it as UTF-8" in message


def test_huge_line_without_spaces_loads_with_warning() -> None:
    blob = "A" * 25_000
    doc = load_bytes(f"header line\n{blob}\nfooter".encode(), "dump.log")
    assert blob in doc.sections[0].text
    assert doc.warnings == ["contains a line of 25,000 characters with no spaces; it will be split at fixed positions"]


def test_long_line_with_spaces_has_no_warning() -> None:
    doc = load_bytes(("word " * 5000).encode(), "long.txt")
    assert doc.warnings == []


# --- HTML -------------------------------------------------------------------------------------

HTML = b"""<!doctype html>
<html><head><title>  Team   handbook </title>
<style>body { color: red }</style>
<script>var secret = "tracking-code";</script></head>
<body>
<!-- editor's note: remove before publishing -->
<noscript>Enable JavaScript</noscript>
<nav><a href="/">Home</a> <a href="/faq">FAQ</a></nav>
<h1>Welcome</h1>
<p>We work <b>remotely</b>
   most days.</p>
<ul><li>Laptops are provided.</li><li>Core hours<br>10:00 to 15:00</li></ul>
<table><tr><th>Office</th><th>City</th></tr><tr><td>HQ</td><td>Lyon</td></tr></table>
<template><p>hidden template</p></template>
<script>console.log("more script")</script>
</body></html>"""


def test_html_text_title_and_blocks(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path, "handbook.html", HTML))
    assert doc.kind == "html"
    assert len(doc.sections) == 1
    text = doc.sections[0].text
    lines = text.split("\n")
    assert lines[0] == "Team handbook"
    assert lines[2] == "Home FAQ"  # nothing from the doctype or <head> before the body
    assert "We work remotely most days." in lines  # inline tags and source newlines collapse
    assert "Laptops are provided." in lines
    assert "Core hours" in lines and "10:00 to 15:00" in lines
    assert "Office | City" in lines and "HQ | Lyon" in lines
    hidden = ["tracking-code", "more script", "color: red", "Enable JavaScript", "hidden template", "editor's note"]
    for snippet in hidden:
        assert snippet not in text
    assert "\n\n\n" not in text


def test_html_meta_charset_is_honoured() -> None:
    data = '<html><head><meta charset="windows-1252"></head><body><p>Crème brûlée</p></body></html>'
    doc = load_bytes(data.encode("cp1252"), "dessert.htm")
    assert doc.sections[0].text == "Crème brûlée"


def test_html_in_utf16() -> None:
    doc = load_bytes("\ufeff<title>Ünïcode</title><p>Straße</p>".encode("utf-16-le"), "wide.html")
    assert doc.sections[0].text == "Ünïcode\n\nStraße"


def test_xhtml_reads_like_html_without_a_warning_to_the_user() -> None:
    data = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>APT</title></head>'
        b"<body><p>Use <code>apt full-upgrade</code> to upgrade.</p></body></html>"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        doc = load_bytes(data, "sect.apt.html")
    assert doc.sections[0].text == "APT\n\nUse apt full-upgrade to upgrade."


def test_html_title_not_repeated_when_h1_matches() -> None:
    doc = load_bytes(b"<title>FAQ</title><h1>FAQ</h1><p>Answers.</p>", "faq.html")
    assert doc.sections[0].text == "FAQ\n\nAnswers."


# --- CSV --------------------------------------------------------------------------------------


def test_csv_rows_are_self_describing(tmp_path: Path) -> None:
    data = b'name,city,role\r\nAda Lovelace,London,"Analyst, first"\r\nAlan Turing,Wilmslow,\r\n\r\n'
    doc = load_file(write(tmp_path, "people.csv", data))
    assert doc.kind == "csv"
    assert len(doc.sections) == 1
    assert doc.sections[0].text.split("\n") == [
        "name: Ada Lovelace; city: London; role: Analyst, first",
        "name: Alan Turing; city: Wilmslow",  # empty values are left out
    ]


def test_csv_semicolons_and_legacy_encoding() -> None:
    data = "Produit;Prix\nCafé;2,50\nThé;3,00\n".encode("cp1252")
    doc = load_bytes(data, "prix.csv")
    assert doc.sections[0].text == "Produit: Café; Prix: 2,50\nProduit: Thé; Prix: 3,00"
    assert doc.warnings == ["decoded as windows-1252 (not UTF-8)"]


def test_csv_extra_values_get_column_names() -> None:
    doc = load_bytes(b"a,b\n1,2,3\n", "ragged.csv")
    assert doc.sections[0].text == "a: 1; b: 2; column 3: 3"


def test_csv_header_only() -> None:
    doc = load_bytes(b"id,name\n", "header.csv")
    assert doc.sections[0].text == "id; name"
    assert doc.warnings == ["has a header row but no data rows"]


def test_csv_binary_junk() -> None:
    assert load_error(random.Random(3).randbytes(1024), "x.csv").startswith("x.csv does not look like text")


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["f.pdf", "f.docx", "f.md", "f.txt", "f.html", "f.csv"])
@pytest.mark.parametrize("seed", range(5))
def test_garbage_never_raises_a_raw_exception(name: str, seed: int) -> None:
    rng = random.Random(seed)
    prefix = {"f.pdf": b"%PDF-1.7\n", "f.docx": b"PK\x03\x04"}.get(name, b"")
    data = prefix + rng.randbytes(rng.randint(1, 3000))
    try:
        doc = load_bytes(data, name)
    except LoaderError as exc:
        assert str(exc).startswith(name)
    else:
        assert doc.sections


def scanned_pdf(lines_per_page: list[list[str]]) -> bytes:
    """Pages that are pictures of text (no text layer), as a scanner makes them: Pillow renders the text,
    fpdf2 puts each picture on a page."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    pdf = FPDF()
    for lines in lines_per_page:
        image = Image.new("RGB", (1240, 400), "white")
        draw = ImageDraw.Draw(image)
        try:
            face: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype("DejaVuSans.ttf", 40)
        except OSError:
            face = ImageFont.load_default(size=40)
        for i, line in enumerate(lines):
            draw.text((40, 40 + 70 * i), line, fill="black", font=face)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pdf.add_page()
        pdf.image(buffer, x=10, y=10, w=190)
    return bytes(pdf.output())


@pytest.mark.slow
def test_a_scanned_page_is_read_by_ocr_and_the_result_says_so() -> None:
    data = scanned_pdf([["Invoice number 4471", "Total due 1,250 dollars"]])
    pages: list[tuple[int, int]] = []
    doc = load_bytes(data, "scan.pdf", on_ocr_page=lambda done, total: pages.append((done, total)))
    text = " ".join(s.text for s in doc.sections).lower()
    assert "invoice" in text and "4471" in text and "1,250" in text
    assert doc.ocr_pages == 1 and doc.sections[0].page == 1
    assert pages == [(1, 1)]
    assert any("read by OCR" in w for w in doc.warnings)


@pytest.mark.slow
def test_only_the_pages_without_text_go_to_ocr() -> None:
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in (make_pdf(["Typed page about the contract."]), scanned_pdf([["Signed by the director"]])):
        for page in PdfReader(io.BytesIO(data)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    doc = load_bytes(out.getvalue(), "mixed.pdf")
    assert doc.ocr_pages == 1
    assert [s.page for s in doc.sections] == [1, 2]
    assert "contract" in doc.sections[0].text and "director" in doc.sections[1].text.lower()


# --- limits: hostile files are refused or read in bounded time and memory (issue 11) -----------------


def make_docx_with_image(image: bytes) -> bytes:
    """A real Word file (python-docx) with one picture, whose part is then replaced by ``image``."""
    import io
    import zipfile

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    png.seek(0)
    document = docx.Document()
    document.add_paragraph("Quarterly report")
    document.add_picture(png)
    original = io.BytesIO()
    document.save(original)
    source = zipfile.ZipFile(original)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = image if info.filename.startswith("word/media/") else source.read(info.filename)
            z.writestr(info.filename, data)
    return out.getvalue()


def test_a_docx_zip_bomb_is_refused_before_word_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = make_docx_with_image(b"\0" * (64 << 20))  # 64 MB of zeros: ~64 KB compressed
    assert len(bomb) < 200_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("python-docx must not read a zip bomb (it reads every part whole)")

    monkeypatch.setattr(docx, "Document", never)
    message = load_error(bomb, "report.docx")
    assert message.startswith("report.docx looks like a zip bomb: its part word/media/image1.png would expand from")
    assert "to 64.0 MB" in message and "real documents stay under 500" in message and "save it again" in message


def test_a_docx_of_very_repetitive_text_is_not_mistaken_for_a_zip_bomb() -> None:
    import io

    document = docx.Document()
    for _ in range(12_000):  # its document.xml compresses ~250 times
        document.add_paragraph("The same line again, as in a long log pasted into Word.")
    data = io.BytesIO()
    document.save(data)
    text = load_bytes(data.getvalue(), "log.docx").sections[0].text
    assert text.count("The same line again") == 12_000


def test_a_docx_with_a_real_picture_is_read() -> None:
    import random as rnd

    picture = rnd.Random(1).randbytes(2 << 20)  # 2 MB that do not compress, like a photo
    doc = load_bytes(make_docx_with_image(picture), "report.docx")
    assert doc.sections[0].text == "Quarterly report"


def test_a_docx_over_the_size_or_part_count_limit_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.loaders import docx as docx_loader

    data = make_docx_with_image(b"\0" * 1000)
    monkeypatch.setattr(docx_loader, "ZIP_MAX_MEMBERS", 5)
    message = load_error(data, "memo.docx")
    assert message.startswith("memo.docx holds 18 parts, over the limit of 5 for a Word document: ")
    monkeypatch.setattr(docx_loader, "ZIP_MAX_MEMBERS", 10_000)
    monkeypatch.setattr(docx_loader, "ZIP_MAX_BYTES", 10_000)
    message = load_error(data, "memo.docx")
    assert (
        message.startswith("memo.docx would expand from ") and "over the limit of 9.8 KB for a Word document" in message
    )


def test_csv_dialect_is_sniffed_on_a_few_kb_of_whole_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    samples: list[str] = []
    sniff = csv.Sniffer.sniff

    def recording(self: csv.Sniffer, sample: str, delimiters: str | None = None) -> type[csv.Dialect]:
        samples.append(sample)
        return sniff(self, sample, delimiters)

    monkeypatch.setattr(csv.Sniffer, "sniff", recording)
    rows = "".join(f"{i};name {i};{i * 3}\n" for i in range(20_000))
    doc = load_bytes(f"id;name;score\n{rows}".encode(), "scores.csv")
    (sample,) = samples
    assert len(sample) <= 4096 and sample.endswith("\n")
    lines = doc.sections[0].text.split("\n")
    assert len(lines) == 20_000 and lines[-1] == "id: 19999; name: name 19999; score: 59997"


def test_a_csv_that_made_the_sniffer_quadratic_is_read() -> None:
    # '",' repeated: 32 KB of it took csv.Sniffer 10 s, the old 64 KB sample about a minute.
    doc = load_bytes(('",' * 40_000).encode(), "odd.csv")
    assert doc.kind == "csv"


def test_html_nested_thousands_deep_is_read_whole() -> None:
    deep = b"<html><body>" + b"<div>x " * 4000 + b"</div>" * 4000 + b"</body></html>"
    text = load_bytes(deep, "deep.html").sections[0].text
    assert text.split() == ["x"] * 4000  # no recursion limit, nothing lost
    tables = b"<html><body>" + b"<table><tr><td>x " * 1000 + b"</td></tr></table>" * 1000 + b"</body></html>"
    assert load_bytes(tables, "tables.html").sections[0].text == " ".join(["x"] * 1000)


def test_html_text_after_a_closed_child_nested_thousands_deep_is_read_whole() -> None:
    # Text after a closed child, nested: BeautifulSoup's tree building was quadratic on it (8,000 deep: 2.5-5 s).
    n = 8000
    data = b"<html><body>" + b"<div><span>a</span>b " * n + b"</div>" * n + b"</body></html>"
    text = load_bytes(data, "deep.html").sections[0].text
    assert text.split() == ["ab"] * n  # every "b", each after its closed <span>: none lost to a depth limit


def test_html_rows_breaks_and_pre_are_kept_in_their_places() -> None:
    data = (
        b"<html><body><table><tr><th>Name</th><th>Role</th></tr><tr><td>Ann<br>Lee</td><td><table><tr><td>a</td>"
        b"<td>b  c</td></tr></table></td></tr></table><pre>  keep   this\n  line</pre><p>after  <b>bold</b><br>"
        b"next</p><ruby>kanji<rt>kana</rt></ruby><!-- note --></body></html>"
    )
    text = load_bytes(data, "t.html").sections[0].text
    assert text == "Name | Role\n\nAnn Lee | a | b c\n\nkeep this\nline\n\nafter bold\nnext\n\nkanji"


def test_a_pdf_over_the_page_limit_is_refused_before_its_pages_are_read() -> None:
    from rag.loaders.common import READ_LIMITS, ReadLimits

    data = make_pdf([f"Chapter {i}: how the pump is serviced, step by step." for i in range(1, 6)])
    token = READ_LIMITS.set(ReadLimits(max_pages=4))
    try:
        message = load_error(data, "manual.pdf")
    finally:
        READ_LIMITS.reset(token)
    assert message == (
        "manual.pdf has 5 pages, over the limit of 4 a file: split it into parts (e.g. by chapter) and add those, "
        "or raise RAG_MAX_PAGES."
    )
    assert load_bytes(data, "manual.pdf").pages == 5  # the default limit is far above


# --- DOCX read as a stream (issue 19): python-docx's text, in time and memory that grow with the file alone ---------


def python_docx_text(data: bytes) -> str:
    """The text python-docx's own objects give (the way this loader read Word files before it read them as a
    stream): the reference the stream must match."""
    import io
    import re

    from docx.table import Table
    from docx.text.paragraph import Paragraph

    lines: list[str] = []
    for block in docx.Document(io.BytesIO(data)).iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            style = block.style.name if text and block.style is not None and block.style.name else ""
            level = 1 if style == "Title" else int(m.group(1)) if (m := re.fullmatch(r"Heading (\d)", style)) else 0
            if not text:
                lines.append("")
            elif level:
                lines.append(f"\n{'#' * min(level, 6)} {text}")
            else:
                lines.append(f"- {text}" if style.startswith("List Bullet") else text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells, previous = [], None
                for cell in row.cells:
                    if cell._tc is not previous:
                        cells.append(" ".join(cell.text.split()))
                    previous = cell._tc
                if any(cells):
                    lines.append(" | ".join(cells))
            lines.append("")
    from rag.loaders.common import tidy

    return tidy("\n".join(lines), collapse_spaces=True)


def varied_docx() -> bytes:
    """Headings of each level and the Title, lists, tabs and breaks, a hyperlink, tables with merged cells (across and
    down), a nested table, empty paragraphs, a paragraph with no style of the document's own."""
    import io

    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_heading("Annual report", level=0)
    for level in range(1, 10):
        document.add_heading(f"Section at level {level}", level=level)
        document.add_paragraph(f"Body text under level {level}.\tTabbed; then a break:")
        document.add_paragraph("")
    run = document.add_paragraph("Line one").add_run()
    run.add_break()
    run.add_text("line two")
    document.add_paragraph("First point", style="List Bullet")
    document.add_paragraph("Second point", style="List Bullet 2")
    document.add_paragraph("A numbered point", style="List Number")
    linked = document.add_paragraph("See ")
    linked._p.append(
        parse_xml(
            '<w:hyperlink xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" w:anchor="x">'
            "<w:r><w:t>the appendix</w:t></w:r></w:hyperlink>"
        )
    )
    table = document.add_table(rows=4, cols=3)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"r{r}c{c}"
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide header"
    table.cell(1, 2).merge(table.cell(3, 2)).text = "Tall cell\nwith two lines"
    table.cell(2, 0).add_table(rows=1, cols=2).cell(0, 1).text = "nested"
    document.add_paragraph("After the table.", style="Quote")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_word_file_read_as_a_stream_gives_python_docx_s_text() -> None:
    data = varied_docx()
    doc = load_bytes(data, "report.docx")
    assert doc.sections[0].text == python_docx_text(data)
    assert "# Annual report" in doc.sections[0].text and "###### Section at level 6" in doc.sections[0].text
    assert "Section at level 7" in doc.sections[0].text and "- First point" in doc.sections[0].text
    assert "See the appendix" in doc.sections[0].text and "Wide header | r0c2" in doc.sections[0].text


def test_styles_times_paragraphs_cost_the_sum_not_the_product() -> None:
    """A file of 20,000 styles and 2,000 paragraphs: python-docx scanned every style for every paragraph (its
    first 100 paragraphs took 79 s); read as a stream it is the same text at once."""
    from tests.hostile import docx_bytes

    data = docx_bytes(2_000, styles=20_000)
    text = load_bytes(data, "styles.docx").sections[0].text
    assert text.count("\n# Paragraph") == 199 and text.startswith("# Paragraph 0 of a long report.")
    assert "Paragraph 1999 of a long report." in text


def test_a_word_file_over_the_paragraph_or_text_limit_stops_being_read_at_once() -> None:
    from rag.loaders.common import READ_LIMITS, ReadLimits
    from tests.hostile import docx_bytes

    token = READ_LIMITS.set(ReadLimits(max_chunks=100, chunk_size=600))  # 5,000 paragraphs, 75,000 characters
    try:
        empty = load_error(docx_bytes(20_000, text=""), "blank.docx")
        long = load_error(docx_bytes(20_000), "long.docx")
    finally:
        READ_LIMITS.reset(token)
    assert empty == (
        "blank.docx holds over 5,000 paragraphs or table rows, more than a file of 100 chunks may have, so it was not "
        "read further: split it into smaller files, or raise RAG_MAX_CHUNKS."
    )
    assert long.startswith("long.docx holds over 75,000 characters of text, more than the 100 chunks a file may make")


@pytest.mark.parametrize("name", ["long.pdf", "long.html"])
def test_a_pdf_or_a_web_page_over_the_text_limit_is_refused_while_it_is_read(name: str) -> None:
    from rag.loaders.common import READ_LIMITS, ReadLimits

    paragraphs = [f"Step {i}: the pump is serviced every spring by the caretaker of block {i}. " * 2 for i in range(4)]
    data = (
        make_pdf(paragraphs)  # different on each page: lines repeated on every page are dropped as running heads
        if name.endswith(".pdf")
        else f"<html><body>{''.join(f'<p>{p}</p>' for p in paragraphs)}</body></html>".encode()
    )
    token = READ_LIMITS.set(ReadLimits(max_chunks=2, chunk_size=100))  # 250 characters
    try:
        message = load_error(data, name)
    finally:
        READ_LIMITS.reset(token)
    assert message.startswith(f"{name} holds over 250 characters of text, more than the 2 chunks a file may make")
    assert load_bytes(data, name).sections  # at the default limits it is read
