"""OCR (rag.ocr) and the image loader on images rendered here with Pillow: the real models, no mocks.

Tests that run the OCR models are marked slow (seconds each on 2 cores); reading order, argument
checks and the decoder's refusals run without them. OCR noise is allowed for: most words, compared
case-insensitively, must come back; time is never asserted.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from rag.errors import LoaderError
from rag.loaders import SUPPORTED, is_supported, load_bytes
from rag.ocr import OCR_SCALE, OcrUnavailable, TextBox, reading_order, recognize

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FIRST = "The quick brown fox jumps over the lazy dog"
SECOND = "Invoices are paid within thirty days"


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu where it is installed; elsewhere Pillow's built-in font, which scales in Pillow >= 10.1."""
    try:
        return ImageFont.truetype(str(DEJAVU), size)
    except OSError:
        return ImageFont.load_default(size=size)


def render(lines: list[str], *, size: int = 32, mode: str = "RGB") -> Image.Image:
    """Black text on white (on transparent for RGBA), one line under the other, with margins."""
    face = font(size)
    width = max(int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(line, font=face)) for line in lines)
    image = Image.new(mode, (width + 2 * size, (len(lines) + 1) * 2 * size), "white" if mode != "RGBA" else 0)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size + i * 2 * size), line, font=face, fill="black")
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def share_read(expected: str, text: str) -> float:
    """Share of the expected words found in the text (OCR may misread a letter or two)."""
    found = set(words(text))
    wanted = words(expected)
    return sum(w in found for w in wanted) / len(wanted)


def box(text: str, left: float, top: float, right: float, bottom: float) -> TextBox:
    return TextBox(text=text, score=0.99, left=left, top=top, right=right, bottom=bottom)


# --- reading order and arguments (no model) ------------------------------------------------------


def test_reading_order_groups_lines_top_to_bottom_and_boxes_left_to_right() -> None:
    boxes = [
        box("world", 120, 12, 200, 40),  # same line as "Hello", a little lower (a skewed scan)
        box("second", 10, 60, 90, 88),
        box("Hello", 10, 10, 100, 38),
        box("line", 100, 58, 150, 86),
        box("Total:  42", 400, 61, 500, 89),  # far right, wide gap: still the same line
    ]
    assert reading_order(boxes) == "Hello world\nsecond line Total:  42"


def test_a_box_overlapping_a_line_by_less_than_half_starts_a_line_of_its_own() -> None:
    boxes = [box("above", 0, 0, 100, 30), box("note", 100, 26, 140, 36), box("below", 0, 40, 100, 70)]
    assert reading_order(boxes) == "above\nnote\nbelow"


def test_reading_order_of_nothing_is_empty() -> None:
    assert reading_order([]) == ""


def test_recognize_refuses_what_is_not_an_rgb_image() -> None:
    with pytest.raises(ValueError, match="RGB"):
        recognize(np.zeros((10, 10, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        recognize(np.zeros((10, 10, 3), dtype=np.float32))


def test_recognize_of_a_sliver_is_empty() -> None:
    assert recognize(np.full((2, 500, 3), 255, dtype=np.uint8)) == ""


def test_ocr_scale_is_a_sensible_render_scale() -> None:
    assert 1.0 <= OCR_SCALE <= 4.0


def test_missing_ocr_is_a_loader_error() -> None:
    assert issubclass(OcrUnavailable, LoaderError)


def test_images_are_supported() -> None:
    assert {SUPPORTED[e] for e in (".png", ".jpg", ".jpeg")} == {"image"}
    assert is_supported("Scan.PNG")
    assert is_supported("photo.jpeg")


# --- the loader's refusals (no model: they happen before OCR) ------------------------------------


def test_a_file_that_is_not_an_image_is_refused_with_its_name() -> None:
    with pytest.raises(LoaderError, match=r"scan\.png is not a valid PNG or JPEG image"):
        load_bytes(b"this is not a picture at all", "scan.png")


def test_a_truncated_png_is_refused_with_its_name() -> None:
    data = encode(render([FIRST]), "PNG")
    with pytest.raises(LoaderError, match=r"cut\.png is not a valid PNG or JPEG image"):
        load_bytes(data[: len(data) // 2], "cut.png")


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    # A 1-bit 12,000 x 12,000 PNG: 144 megapixels in a few kilobytes of compressed zeros.
    side = 12_000
    row = b"\x00" + b"\xff" * (side // 8)
    raw = zlib.compress(row * side, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    with pytest.raises(LoaderError, match=r"bomb\.png is too large to read .*decompression bomb"):
        load_bytes(png, "bomb.png")


# A fresh interpreter in which any attempt to resolve a host or open a connection fails loudly.
NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    raise RuntimeError(f"network access attempted: {args!r}")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import numpy as np
from rag.ocr import recognize
image = np.full((200, 400, 3), 255, dtype=np.uint8)
image[90:110, 50:350] = 0  # a bar: the detector runs, the recognizer runs on it
recognize(image)
print("ok")
"""


def test_a_16_bit_grey_png_is_scaled_not_clipped_to_white() -> None:
    from rag.loaders.image import _decode

    ramp = np.tile(np.linspace(0, 65535, 256), (8, 1)).astype(np.uint16)  # black to white in each row
    rgb = np.asarray(_decode(encode(Image.fromarray(ramp), "PNG"), "grey16.png"))
    assert rgb.shape == (8, 256, 3)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and 100 < rgb[0, 128, 0] < 156


# --- real OCR --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_ocr_models_load_and_run_without_the_network() -> None:
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-c", NO_NETWORK], cwd=root, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_recognize_reads_two_lines_in_order() -> None:
    text = recognize(np.asarray(render([FIRST, SECOND])))
    lines = [line for line in text.split("\n") if line.strip()]
    assert len(lines) == 2, text
    assert share_read(FIRST, lines[0]) >= 0.75, text
    assert share_read(SECOND, lines[1]) >= 0.75, text
    assert " " in lines[0]  # words stay apart (the model drops spaces if crops are resized badly)


@pytest.mark.slow
def test_recognize_of_a_blank_page_is_empty() -> None:
    assert recognize(np.full((800, 600, 3), 255, dtype=np.uint8)) == ""


@pytest.mark.slow
def test_load_bytes_reads_a_png() -> None:
    doc = load_bytes(encode(render([FIRST, SECOND]), "PNG"), "scan.png")
    assert doc.kind == "image"
    assert doc.pages == 1
    assert [s.page for s in doc.sections] == [1]
    assert share_read(f"{FIRST} {SECOND}", doc.sections[0].text) >= 0.75, doc.sections[0].text
    assert any("read by OCR" in w for w in doc.warnings)


@pytest.mark.slow
def test_load_bytes_reads_a_jpeg() -> None:
    doc = load_bytes(encode(render([SECOND]), "JPEG"), "photo.jpg")
    assert doc.kind == "image"
    assert share_read(SECOND, doc.sections[0].text) >= 0.75, doc.sections[0].text


@pytest.mark.slow
def test_dark_text_on_a_transparent_png_is_read_on_white() -> None:
    doc = load_bytes(encode(render([FIRST], mode="RGBA"), "PNG"), "screenshot.png")
    assert share_read(FIRST, doc.sections[0].text) >= 0.75, doc.sections[0].text


@pytest.mark.slow
def test_an_image_without_text_says_so_and_how_to_fix_it() -> None:
    image = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(image).ellipse((100, 80, 300, 220), fill="lightblue")
    with pytest.raises(LoaderError, match=r"shapes\.png: no text could be read from this image") as info:
        load_bytes(encode(image, "PNG"), "shapes.png")
    assert "upright" in str(info.value)


@pytest.mark.slow
def test_a_phone_photo_is_turned_upright_by_its_exif_orientation() -> None:
    stored = render([FIRST, SECOND]).transpose(Image.Transpose.ROTATE_90)  # the camera's sideways pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif)
    doc = load_bytes(buffer.getvalue(), "IMG_0001.jpeg")
    lines = doc.sections[0].text.split("\n")
    assert share_read(FIRST, lines[0]) >= 0.75, doc.sections[0].text
