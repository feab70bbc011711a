"""The annotated page: the page untouched at a fixed offset, every box drawn, the
banner, the decision in words a reader understands, whose ECG it is, and the model
in added bands; text in Unicode fonts."""

from __future__ import annotations

import numpy as np
import pytest

from ecg_dicom.records import Classification, Detection, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.canvas import layout_for, to_sc_pixels
from ecg_dicom.results.captions import (
    BANNER_TEXT,
    short_version,
)
from ecg_dicom.results.text import CJK_FONT, REGULAR_FONT, text_width
from results.samples import VERSION, classification, not_interpretable_result, training_page

BANNER_RED = np.array([190, 20, 20], dtype=np.uint8)
MI_RED = np.array([220, 0, 0], dtype=np.uint8)


def _ink(region: np.ndarray) -> int:
    """Pixels of a white band that are not white (text drawn there)."""
    return int((region.min(axis=2) < 200).sum())


@pytest.fixture(scope="module")
def page() -> Page:
    return training_page()


def test_input_page_is_not_modified(page: Page) -> None:
    before = page.image.copy()
    draw_result(page, classification(Detection("MI-ECG", 0.8, (100, 300, 600, 700))), "Patient: X")
    assert np.array_equal(page.image, before)


def test_banner_is_red_and_carries_text(page: Page) -> None:
    out = draw_result(page, not_interpretable_result())
    banner = out[: layout_for(page).banner]
    red = np.all(banner == BANNER_RED, axis=2)
    assert red.mean() > 0.6  # a red band ...
    assert (banner.sum(axis=2) > 600).sum() > 500  # ... with white letters on it
    assert "—" in BANNER_TEXT  # the em dash of the written notice, drawn by a Unicode font


def test_every_box_is_drawn_in_sc_pixels(page: Page) -> None:
    boxes = [Detection("MI-ECG", 0.87, (200.0, 300.0, 700.0, 650.0)),
             Detection("ECG HB", 0.41, (900.0, 500.0, 1400.0, 900.0))]
    out = draw_result(page, classification(*boxes))
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


def test_decision_is_drawn_large_and_differs_byclassification(page: Page) -> None:
    layout = layout_for(page)
    rows = slice(layout.banner, layout.banner + layout.decision_row)
    normal = classification(Detection("Normal-ECG", 0.9, (0, 0, 10, 10)), label="Normal", score=0.1)
    abnormal = classification(Detection("MI-ECG", 0.9, (0, 0, 10, 10)))
    a = draw_result(page, normal)[rows]
    b = draw_result(page, abnormal)[rows]
    c = draw_result(page, not_interpretable_result())[rows]
    assert not np.array_equal(a, b) and not np.array_equal(b, c)
    # Large: the decision's ink spans at least half its font size in pixels.
    ink_rows = np.where((b.min(axis=2) < 200).any(axis=1))[0]
    assert ink_rows.max() - ink_rows.min() >= 0.5 * layout.decision_size
    # Colour: green for Normal, red for Abnormal.
    assert ((a[..., 1] > 100) & (a[..., 0] < 60)).sum() > 500
    assert ((b[..., 0] > 150) & (b[..., 1] < 60)).sum() > 500


def test_not_counted_boxes_are_grey(page: Page) -> None:
    """Boxes that do not count for the decision are drawn, but not in a class colour."""
    counted = Detection("MI-ECG", 0.9, (200.0, 300.0, 700.0, 650.0))
    other = Detection("History_MI", 0.5, (900.0, 500.0, 1400.0, 900.0))  # not the top abnormal
    result = classification(counted, other)
    decisive = set(result.decisive)
    assert counted in decisive and other not in decisive
    out = draw_result(page, result)
    for det in (counted, other):
        x0, _, _, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        pixel = out[y1 - 1, x0 + 50]
        assert (len(set(pixel.tolist())) == 1) == (det not in decisive)


def test_non_ascii_names_are_drawn_with_real_glyphs(page: Page) -> None:
    """Japanese, Greek and accented names come out as glyphs, not as '?' or boxes:
    each script draws differently from the others and from the same count of '?'."""
    layout = layout_for(page)
    result = not_interpretable_result()
    rows = slice(layout.banner + layout.decision_row, layout.top)
    drawn = {
        name: draw_result(page, result, f"Patient: {name}")[rows]
        for name in ("山田 太郎", "Παπαδόπουλος", "Müller Jürgen", "????", "?? ??")
    }
    for name in ("山田 太郎", "Παπαδόπουλος", "Müller Jürgen"):
        assert _ink(drawn[name]) > 300, name
        for other, pixels in drawn.items():
            if other != name:
                assert not np.array_equal(drawn[name], pixels), (name, other)
    # The CJK characters come from the fallback font: DejaVu Sans has none of them.
    assert text_width("山田", 40) == pytest.approx(
        text_width("山田", 40, CJK_FONT), rel=1e-6)
    assert text_width("山田", 40) != pytest.approx(text_width("??", 40, REGULAR_FONT), rel=0.05)


def test_model_and_short_version_in_bottom_band(page: Page) -> None:
    assert short_version(VERSION) == VERSION[:12]
    layout = layout_for(page)
    h = page.image.shape[0]
    out_a = draw_result(page, not_interpretable_result())
    other = Classification(**{**not_interpretable_result().__dict__, "model_version": "f" * 64})
    out_b = draw_result(page, other)
    band = slice(layout.top + h, None)
    assert (out_a[band] < 128).any()  # something is written there
    assert not np.array_equal(out_a[band], out_b[band])  # and it is the version


def test_grey_pages_are_accepted_and_bad_pages_refused() -> None:
    grey = Page(image=np.full((400, 600), 255, np.uint8), source_kind="image")
    assert draw_result(grey, not_interpretable_result()).shape[2] == 3
    with pytest.raises(ValueError):
        draw_result(Page(image=np.zeros((10, 10, 3), np.float32), source_kind="image"),
                    not_interpretable_result())
