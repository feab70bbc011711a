"""Shared samples for the results tests: a real training page and results drawn on it
(annotate, canvas, captions, text), the TID 1500 content of an SR read back (sr)."""

from __future__ import annotations

from pathlib import Path

import cv2
import highdicom as hd
import numpy as np

from ecg_dicom.records import NOT_INTERPRETABLE, Classification, Detection, Page
from realdata import ECG_IMAGES_DIR

VERSION = "0123456789abcdef" * 4


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB pixels."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def training_page() -> Page:
    """A real training page (RGB), as an image source would give it."""
    return Page(image=read_rgb(min((ECG_IMAGES_DIR / "mi").glob("*.jpg"))), source_kind="image")


def classification(
    *detections: Detection, label: str = "Abnormal", score: float = 0.9
) -> Classification:
    """A result with ``detections``, the most confident one named."""
    top = max(detections, key=lambda d: d.confidence) if detections else None
    return Classification(
        label=label,  # type: ignore[arg-type]
        class_name=top.class_name if top else None,
        confidence=top.confidence if top else 0.0,
        abnormal_score=score if detections else 0.0,
        detections=detections,
        model_name="ecg-dicom YOLOv8m",
        model_version=VERSION,
    )


def not_interpretable_result(reason: str = "") -> Classification:
    """A not-interpretable result with ``reason``."""
    return Classification(**{**classification(label=NOT_INTERPRETABLE).__dict__, "reason": reason})


def measurement_report(sr: hd.sr.Comprehensive3DSR) -> hd.sr.MeasurementReport:
    """The TID 1500 content of an SR read back with highdicom."""
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport), type(content)
    return content


def three_boxes(page: Page) -> list[tuple[float, float, float, float]]:
    """Three boxes on ``page``: over two single lead regions and the rhythm strip of a
    rendered page, or at the same places in proportion on a picture."""
    h, w = page.image.shape[:2]
    regions = page.regions
    if regions:
        return [(r.x0 + 5, r.y0 + 5, r.x1 - 5, r.y1 - 5)
                for r in (regions[1], regions[5], regions[-1])]
    return [(w * 0.1, h * 0.2, w * 0.3, h * 0.4), (w * 0.5, h * 0.2, w * 0.7, h * 0.4),
            (w * 0.05, h * 0.8, w * 0.95, h * 0.95)]
