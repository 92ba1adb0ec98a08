"""Images (PNG, JPEG): a photo, scan or screenshot of a document, read by OCR (rag.ocr).

Pillow decodes the file; the size in its header is checked first, so a decompression bomb (a small file
that expands to gigabytes) is refused before it is decoded. Anything above MAX_PIXELS is downscaled
while decoding: the text detector sees at most 2,000 px a side anyway, and the lines are cut out of
the image at this size, which keeps the print of a 20-megapixel photo legible.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import LoaderError
from rag.loaders.common import HYPHEN_BREAK_RE, reason, tidy
from rag.ocr import OcrUnavailable, recognize
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:
    from PIL import Image

MAX_PIXELS = 20_000_000  # larger images are downscaled to this (a 20 MP phone photo is 5,472 x 3,648)
BOMB_PIXELS = 90_000_000  # larger ones are refused (Pillow's own decompression-bomb limit is 89.5 MP)
FORMATS = ("PNG", "JPEG")


def load_image(data: bytes, name: str) -> LoadedDocument:
    image = _decode(data, name)
    try:
        text = recognize(np.asarray(image))
    except OcrUnavailable as exc:
        raise OcrUnavailable(f"{name}: {exc}") from exc
    text = tidy(HYPHEN_BREAK_RE.sub(r"\1\2", text), collapse_spaces=True)
    if not text:
        raise LoaderError(
            f"{name}: no text could be read from this image (OCR found nothing): check that it shows "
            "printed or typed text, upright and in focus, with letters at least ~15 pixels tall; "
            "photograph the page flat, closer and in good light, or upload the original document instead."
        )
    return LoadedDocument(
        name=name,
        kind="image",
        sections=[Section(text=text, page=1)],
        pages=1,
        warnings=["read by OCR (check the text in the preview)"],
        ocr_pages=1,
    )


def _decode(data: bytes, name: str) -> Image.Image:
    """The image as RGB, upright (EXIF orientation), transparency on white, at most MAX_PIXELS."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise _bomb(name, reason(exc)) from exc
    except Exception as exc:  # UnidentifiedImageError, or a header Pillow cannot parse
        raise LoaderError(
            f"{name} is not a valid PNG or JPEG image ({reason(exc)}): it may be damaged or in another "
            "format with the wrong extension; open it in an image viewer and export it again as PNG or JPEG."
        ) from exc
    width, height = image.size
    if width * height > BOMB_PIXELS:
        raise _bomb(name, f"{width:,} x {height:,} pixels")
    try:
        if width * height > MAX_PIXELS:
            shrink = (MAX_PIXELS / (width * height)) ** 0.5
            size = (max(1, int(width * shrink)), max(1, int(height * shrink)))
            image.draft("RGB", size)  # JPEG: decode at a reduced size directly (a no-op for PNG)
            image = image.resize(size, Image.Resampling.LANCZOS) if image.size != size else image
        image = ImageOps.exif_transpose(image)
        if image.mode.startswith("I"):  # 16-bit grey (some scanners): convert("RGB") would clip it to white
            grey = np.asarray(image).astype(np.uint32).clip(0, 65535) >> 8
            image = Image.fromarray(grey.astype(np.uint8))
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels often hide black: dark text on them would vanish.
            canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(canvas, image.convert("RGBA"))
        return image.convert("RGB")
    except Exception as exc:  # truncated or corrupt pixel data (OSError, SyntaxError, zlib errors)
        raise LoaderError(
            f"{name} is not a valid PNG or JPEG image: its pixels could not be decoded ({reason(exc)}); "
            "it may be truncated or damaged: download or export it again."
        ) from exc


def _bomb(name: str, detail: str) -> LoaderError:
    return LoaderError(
        f"{name} is too large to read ({detail}; the limit is {BOMB_PIXELS // 1_000_000} megapixels) "
        "or is a decompression bomb: scale it down (a page needs about 2,500 x 3,500 pixels) and upload it again."
    )
