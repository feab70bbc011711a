"""canvas.py: the page sits unchanged at a fixed offset in the annotated image, whatever is written;
page boxes map to annotated-image pixels (the SR's coordinates)."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_dicom.records import Detection, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.canvas import layout_for, to_sc_pixels
from results.samples import classification, not_interpretable_result, training_page


@pytest.fixture(scope="module")
def page() -> Page:
    return training_page()


def test_page_is_kept_at_the_offset_and_bands_are_added(page: Page) -> None:
    out = draw_result(page, not_interpretable_result())
    layout = layout_for(page)
    h, w = page.image.shape[:2]
    assert out.dtype == np.uint8
    assert out.shape == (layout.top + h + layout.bottom, w, 3)
    assert layout.offset == (0, layout.top)
    # No boxes: the page itself is copied unchanged.
    assert np.array_equal(out[layout.top : layout.top + h], page.image)


def test_layout_does_not_depend_on_what_is_written(page: Page) -> None:
    """The SR's coordinates come from layout_for(page) alone."""
    a = draw_result(page, not_interpretable_result())
    b = draw_result(page, classification(Detection("MI-ECG", 0.9, (10, 10, 50, 50))),
                    "Patient: Someone with a long name    ID: 1")
    assert a.shape == b.shape


def test_to_sc_pixels_offsets_and_clips(page: Page) -> None:
    h, w = page.image.shape[:2]
    top = layout_for(page).top
    assert to_sc_pixels((10, 20, 30, 40), page) == (10, 20 + top, 30, 40 + top)
    assert to_sc_pixels((-5, -5, w + 50, h + 50), page) == (0, top, w, h + top)
    assert to_sc_pixels((30, 40, 10, 20), page) == (10, 20 + top, 30, 40 + top)
