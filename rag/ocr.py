"""OCR: the text of an image (a scanned PDF page, a photo or screenshot of a document), offline.

Why this module exists: scanned PDFs and image files have no text layer, so without OCR they index as
"empty". RapidOCR (``rapidocr-onnxruntime``) runs PaddleOCR's PP-OCRv4 detection and recognition models
on onnxruntime; the ONNX files ship inside its wheel and this module hands their local paths to the
engine, so nothing is ever downloaded (the package has no download code either).

We drive RapidOCR's detector and recognizer ourselves instead of calling the engine on the whole image,
because three things measured here (2026-11, synthetic A4 scans, 8-12 pt) go wrong otherwise:

- its 180° line classifier flips upright lines of a clean scan and they come back as garbage ("n", "s"):
  scans are upright, so it is not used;
- its recognizer stretches each line crop to the model's 48 px with linear interpolation, and at the
  crop heights of a 72-216 dpi page (17-30 px) the model then drops most spaces between English words
  ("storestheminChroma": 42 of 416 spaces kept on an 8 pt page at 144 dpi, 150 of 305 at 10 pt);
  stretching with cubic interpolation and a light blur kept all of them in each of the 8 pages tried
  (8-12 pt print, 72-216 dpi);
- it shrinks the whole image to 2,000 px before cutting out the lines; we detect on a shrunken copy
  but cut the lines out of the full image, so small print in a large photo stays legible.

The engine is built once, on first use, and shared; Streamlit sessions are threads, so one lock
guards both building it and running it (one image at a time, on one thread: see THREADS).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import LoaderError

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

# The render scale a caller should use for PDF pages (PDFium renders at 72 dpi x scale). Measured on six
# synthetic A4 scans (300 dpi images of 8-12 pt DejaVu text, 480-1,180 words a page): at 2.0 (144 dpi,
# 1191 x 1684 px) 99-100 % of the words of 9-12 pt pages and 98.6 % of an 8 pt page were read; 1.0
# (72 dpi) read 99 % of 10-12 pt but 92 % of 8 pt; 1.5 and 2.5-3.0 read about as much as 2.0. Real
# scans are noisier than these, so 2.0. Most of the cost is the recognizer's and grows with the amount
# of text: with one thread (THREADS), 8.5 CPU-seconds for a 12 pt page (480 words), 12.4 for 10 pt (730
# words), 26 for a dense 8 pt page (1,180 words); wall time 16, 17 and 48 s on 2 cores busy with other jobs.
OCR_SCALE = 2.0

# onnxruntime threads per inference. On the 2 shared cores here (load 7-8), 2 threads took 2.5-3x longer
# than 1 (10 pt page: 50 s against 17 s) and burnt 2.5x the CPU spinning; the app runs OCR next to the
# embedder, which wants the cores too, so one thread.
THREADS = 1

MIN_CONFIDENCE = 0.5  # recognizer score (0-1) below which a box is noise: stray marks, cut-off glyphs
DETECT_MAX_SIDE = 2000  # the detector sees at most this many pixels per side (RapidOCR's own limit)
MIN_BOX_SIDE = 3  # boxes thinner than this (pixels) hold no legible text
LINE_OVERLAP = 0.5  # a box joins a line when they overlap vertically by half the smaller height
_PACKAGE = "rapidocr-onnxruntime==1.4.4"
_MODELS = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",  # loaded by the engine's constructor, never run
}


class OcrUnavailable(LoaderError):
    """The OCR package or its bundled models are missing from this environment."""


@dataclass(frozen=True)
class TextBox:
    """One recognised run of text and its axis-aligned bounds in image pixels (y grows downwards)."""

    text: str
    score: float
    left: float
    top: float
    right: float
    bottom: float

    @property
    def height(self) -> float:
        return self.bottom - self.top


def recognize(image: np.ndarray) -> str:
    """The text of an RGB (H, W, 3) uint8 image (grayscale (H, W) works too) in reading order: lines
    top to bottom joined with newlines, boxes left to right within a line joined with a space; "" when
    there is no text. Seconds per page on a CPU; safe to call from several threads (they take turns)."""
    return reading_order(read_boxes(image))


def read_boxes(image: np.ndarray) -> list[TextBox]:
    """The recognised runs of text of an image (as `recognize` reads it) with their bounds in its pixels:
    where a passage stands on a scanned page."""
    if image.ndim == 2 and image.dtype == np.uint8:
        image = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"recognize() needs an RGB (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < MIN_BOX_SIDE:
        return []
    with _LOCK:
        boxes = _read(_engine(), image)
    return [b for b in boxes if b.score >= MIN_CONFIDENCE and b.text.strip()]


def reading_order(boxes: Iterable[TextBox]) -> str:
    """Group boxes into lines by vertical overlap; lines top to bottom, boxes left to right."""
    return "\n".join(" ".join(b.text.strip() for b in line) for line in reading_lines(boxes))


def reading_lines(boxes: Iterable[TextBox]) -> list[list[TextBox]]:
    """The boxes as lines (by vertical overlap), top to bottom, each left to right."""
    lines: list[list[TextBox]] = []
    extents: list[tuple[float, float]] = []  # (top, bottom) of each line so far
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        if lines:
            top, bottom = extents[-1]
            overlap = min(bottom, box.bottom) - max(top, box.top)
            if overlap >= LINE_OVERLAP * min(box.height, bottom - top):
                lines[-1].append(box)
                extents[-1] = (min(top, box.top), max(bottom, box.bottom))
                continue
        lines.append([box])
        extents.append((box.top, box.bottom))
    return [sorted(line, key=lambda b: b.left) for line in lines]


# --- the engine --------------------------------------------------------------------------------

_LOCK = threading.Lock()
_ENGINE: Any = None  # rapidocr_onnxruntime.RapidOCR once built


def _engine() -> Any:
    """The shared engine, built on first use (caller holds _LOCK)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _build()
    return _ENGINE


def _build() -> Any:
    try:
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(
            f"OCR is not installed ({exc}), so scanned pages and images cannot be read: "
            f"install it with `.venv/bin/pip install {_PACKAGE}` (it is in requirements.txt)."
        ) from exc
    models = Path(rapidocr_onnxruntime.__file__).parent / "models"
    missing = [file for file in _MODELS.values() if not (models / file).is_file()]
    if missing:
        raise OcrUnavailable(
            f"the OCR models are missing from {models} ({', '.join(missing)}), so scanned pages and images "
            f"cannot be read: reinstall the package, which ships them, with "
            f"`.venv/bin/pip install --force-reinstall --no-deps {_PACKAGE}`."
        )
    logger.info("loading the OCR models from %s", models)
    paths = {f"{stage}_model_path": str(models / file) for stage, file in _MODELS.items()}
    try:
        return RapidOCR(print_verbose=False, intra_op_num_threads=THREADS, inter_op_num_threads=1, **paths)
    except Exception as exc:  # onnxruntime refusing a damaged model file
        raise OcrUnavailable(
            f"the OCR models in {models} could not be loaded ({type(exc).__name__}: {exc}): reinstall them with "
            f"`.venv/bin/pip install --force-reinstall --no-deps {_PACKAGE}`."
        ) from exc


def _read(engine: Any, image: np.ndarray) -> list[TextBox]:
    """Detect text lines, cut each out of the full-size image, recognise them (see the module docstring)."""
    import cv2

    bgr = np.ascontiguousarray(image[..., ::-1])  # the models were trained on OpenCV's BGR order
    height, width = bgr.shape[:2]
    shrink = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = bgr
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    # The detector misses a lone line in a short or very wide image: pad it with white above and below
    # (RapidOCR pads too, with black, which reads as a frame around the page).
    pad = _padding(small.shape[0], small.shape[1], engine.min_height, engine.width_height_ratio)
    if pad:
        small = cv2.copyMakeBorder(small, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    quads, _ = engine.text_det(small)
    if quads is None or len(quads) == 0:
        return []
    quads = np.asarray(quads, dtype=np.float32)
    quads[:, :, 1] -= pad
    quads /= shrink
    quads[:, :, 0] = quads[:, :, 0].clip(0, width - 1)
    quads[:, :, 1] = quads[:, :, 1].clip(0, height - 1)
    sizes = quads.max(axis=1) - quads.min(axis=1)
    quads = quads[(sizes >= MIN_BOX_SIDE).all(axis=1)]
    if len(quads) == 0:
        return []
    crops = engine.get_crop_img_list(bgr, list(quads))
    rec_height = engine.text_rec.rec_image_shape[1]
    texts, _ = engine.text_rec([_to_height(crop, rec_height) for crop in crops])
    return [
        TextBox(
            text=str(text),
            score=float(score),
            left=float(quad[:, 0].min()),
            top=float(quad[:, 1].min()),
            right=float(quad[:, 0].max()),
            bottom=float(quad[:, 1].max()),
        )
        for quad, (text, score, *_) in zip(quads, texts, strict=True)
    ]


def _padding(height: int, width: int, min_height: int, max_ratio: float) -> int:
    if height > min_height and width / height <= max_ratio:
        return 0
    return max(abs(max(int(width / max_ratio), min_height) * 2 - height) // 2, 1)


def _to_height(crop: np.ndarray, height: int) -> np.ndarray:
    import cv2

    h, w = crop.shape[:2]
    if h == height:
        return crop
    size = (max(1, round(w * height / h)), height)
    if h > height:
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    # Cubic, then a light blur: cubic alone still lost 36 of 416 spaces on 8 pt print at 144 dpi.
    return cv2.GaussianBlur(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC), (3, 3), 0)
