"""Real documents made for the tests: text PDFs (fpdf2), scanned PDFs (a picture of printed text, no text
layer), Word files (python-docx)."""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def text_pdf(path: Path, pages: list[str], size: int = 11) -> Path:
    """One page per text (paragraphs split by blank lines), Helvetica."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=size)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, size * 0.55, text)
    pdf.output(str(path))
    return path


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if DEJAVU.is_file():
        return ImageFont.truetype(str(DEJAVU), size)
    return ImageFont.load_default(size=size)


def page_picture(lines: list[str], size: int = 34) -> Image.Image:
    """An A4 page at ~200 dpi with these lines printed on it (black on white)."""
    image = Image.new("RGB", (1654, 2339), "white")
    draw = ImageDraw.Draw(image)
    face = font(size)
    for i, line in enumerate(lines):
        draw.text((120, 160 + i * int(size * 1.8)), line, font=face, fill="black")
    return image


def scanned_pdf(path: Path, pages: list[list[str]]) -> Path:
    """Pages that are pictures of printed lines: no text layer, read by OCR."""
    pdf = FPDF()
    for lines in pages:
        pdf.add_page()
        buffer = io.BytesIO()
        page_picture(lines).save(buffer, format="PNG")
        buffer.seek(0)
        pdf.image(buffer, x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    return path


def word_file(path: Path, blocks: list[tuple[str, str]]) -> Path:
    """("h1" | "h2" | "h3" | "p", text) blocks as a .docx with real heading styles."""
    from docx import Document

    document = Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        else:
            document.add_paragraph(text)
    document.save(str(path))
    return path
