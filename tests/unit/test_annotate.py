"""The annotated page: the page untouched at a fixed offset, every box drawn, the
banner, the result and the model in added bands; "No finding" says so."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_dicom.annotate import (
    NO_FINDING_TEXT,
    draw_result,
    layout_for,
    short_version,
    summary_line,
    to_sc_pixels,
)
from ecg_dicom.stages import Classification, Detection, Page

IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ecg-images"
VERSION = "0123456789abcdef" * 4
BANNER_RED = np.array([190, 20, 20], dtype=np.uint8)
MI_RED = np.array([220, 0, 0], dtype=np.uint8)


def _training_page() -> Page:
    """A real training page (RGB), as an image source would give it."""
    path = min((IMAGES / "mi").glob("*.jpg"))
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return Page(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source_kind="image")


def _result(*detections: Detection, label: str = "Abnormal") -> Classification:
    top = max(detections, key=lambda d: d.confidence) if detections else None
    return Classification(
        label=label,  # type: ignore[arg-type]
        class_name=top.class_name if top else None,
        confidence=top.confidence if top else 0.0,
        abnormal_score=0.9 if detections else 0.0,
        detections=detections,
        model_name="ecg-dicom YOLOv8m",
        model_version=VERSION,
    )


@pytest.fixture(scope="module")
def page() -> Page:
    return _training_page()


def test_page_is_kept_at_the_offset_and_bands_are_added(page: Page) -> None:
    out = draw_result(page, _result(label="No finding"))
    layout = layout_for(page)
    h, w = page.image.shape[:2]
    assert out.dtype == np.uint8
    assert out.shape == (layout.top + h + layout.bottom, w, 3)
    assert layout.offset == (0, layout.top)
    # No boxes: the page itself is copied unchanged.
    assert np.array_equal(out[layout.top : layout.top + h], page.image)


def test_input_page_is_not_modified(page: Page) -> None:
    before = page.image.copy()
    draw_result(page, _result(Detection("MI-ECG", 0.8, (100, 300, 600, 700))))
    assert np.array_equal(page.image, before)


def test_banner_is_red_and_carries_text(page: Page) -> None:
    out = draw_result(page, _result(label="No finding"))
    lh = layout_for(page).line_height
    banner = out[: int(1.4 * lh)]
    red = np.all(banner == BANNER_RED, axis=2)
    assert red.mean() > 0.6  # a red band ...
    assert (banner.sum(axis=2) > 600).sum() > 500  # ... with white letters on it


def test_every_box_is_drawn_in_sc_pixels(page: Page) -> None:
    boxes = [Detection("MI-ECG", 0.87, (200.0, 300.0, 700.0, 650.0)),
             Detection("ECG HB", 0.41, (900.0, 500.0, 1400.0, 900.0))]
    out = draw_result(page, _result(*boxes))
    for det in boxes:
        x0, y0, x1, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        # The left and bottom edges (not covered by the tag) are drawn, end to end.
        left = out[y0 + 40 : y1 - 1, x0]
        bottom = out[y1 - 1, x0 + 5 : x1 - 5]
        base = out[y0 + 40 : y1 - 1, x0 + 15]  # inside, beside the edge
        assert not np.array_equal(left, base)
        assert (np.abs(left.astype(int) - left[0].astype(int)).sum(axis=1) == 0).mean() > 0.9
        assert (np.abs(bottom.astype(int) - left[0].astype(int)).sum(axis=1) == 0).mean() > 0.9
    mi = to_sc_pixels(boxes[0].box, page)
    assert np.array_equal(out[int(mi[3]) - 1, int(mi[0]) + 50], MI_RED)


def test_to_sc_pixels_offsets_and_clips(page: Page) -> None:
    h, w = page.image.shape[:2]
    top = layout_for(page).top
    assert to_sc_pixels((10, 20, 30, 40), page) == (10, 20 + top, 30, 40 + top)
    assert to_sc_pixels((-5, -5, w + 50, h + 50), page) == (0, top, w, h + top)
    assert to_sc_pixels((30, 40, 10, 20), page) == (10, 20 + top, 30, 40 + top)


def test_no_finding_says_so_and_differs_from_a_finding(page: Page) -> None:
    empty = _result(label="No finding")
    assert summary_line(empty) == NO_FINDING_TEXT
    normal = _result(Detection("Normal-ECG", 0.9, (0, 0, 10, 10)), label="Normal")
    assert "Normal" in summary_line(normal) and "0.90" in summary_line(normal)
    top = layout_for(page).top
    a = draw_result(page, empty)[:top]
    b = draw_result(page, normal)[:top]
    assert not np.array_equal(a, b)  # the result line is different text


def test_model_and_short_version_in_bottom_band(page: Page) -> None:
    assert short_version(VERSION) == VERSION[:12]
    layout = layout_for(page)
    h = page.image.shape[0]
    out_a = draw_result(page, _result(label="No finding"))
    other = Classification(**{**_result(label="No finding").__dict__, "model_version": "f" * 64})
    out_b = draw_result(page, other)
    band = slice(layout.top + h, None)
    assert (out_a[band] < 128).any()  # something is written there
    assert not np.array_equal(out_a[band], out_b[band])  # and it is the version


def test_grey_pages_are_accepted_and_bad_pages_refused() -> None:
    grey = Page(image=np.full((400, 600), 255, np.uint8), source_kind="image")
    assert draw_result(grey, _result(label="No finding")).shape[2] == 3
    with pytest.raises(ValueError):
        draw_result(Page(image=np.zeros((10, 10, 3), np.float32), source_kind="image"),
                    _result(label="No finding"))
