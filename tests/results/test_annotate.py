"""The annotated page: the page untouched at a fixed offset, every box drawn, the
banner, the decision in words a reader understands, whose ECG it is, and the model
in added bands; text in Unicode fonts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom import Dataset

from ecg_dicom.records import CLASS_NAMES, NOT_INTERPRETABLE, Classification, Detection, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.canvas import layout_for, to_sc_pixels
from ecg_dicom.results.captions import (
    BANNER_TEXT,
    DISPLAY_NAMES,
    decision_line,
    identity_line,
    person_name_text,
    short_version,
)
from ecg_dicom.results.text import CJK_FONT, REGULAR_FONT, text_width

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


def _result(*detections: Detection, label: str = "Abnormal", score: float = 0.9) -> Classification:
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


def _not_interpretable(reason: str = "") -> Classification:
    return Classification(**{**_result(label=NOT_INTERPRETABLE).__dict__, "reason": reason})


def _ink(region: np.ndarray) -> int:
    """Pixels of a white band that are not white (text drawn there)."""
    return int((region.min(axis=2) < 200).sum())


@pytest.fixture(scope="module")
def page() -> Page:
    return _training_page()


def test_page_is_kept_at_the_offset_and_bands_are_added(page: Page) -> None:
    out = draw_result(page, _not_interpretable())
    layout = layout_for(page)
    h, w = page.image.shape[:2]
    assert out.dtype == np.uint8
    assert out.shape == (layout.top + h + layout.bottom, w, 3)
    assert layout.offset == (0, layout.top)
    # No boxes: the page itself is copied unchanged.
    assert np.array_equal(out[layout.top : layout.top + h], page.image)


def test_layout_does_not_depend_on_what_is_written(page: Page) -> None:
    """The SR's coordinates come from layout_for(page) alone."""
    a = draw_result(page, _not_interpretable())
    b = draw_result(page, _result(Detection("MI-ECG", 0.9, (10, 10, 50, 50))),
                    "Patient: Someone with a long name    ID: 1")
    assert a.shape == b.shape


def test_input_page_is_not_modified(page: Page) -> None:
    before = page.image.copy()
    draw_result(page, _result(Detection("MI-ECG", 0.8, (100, 300, 600, 700))), "Patient: X")
    assert np.array_equal(page.image, before)


def test_banner_is_red_and_carries_text(page: Page) -> None:
    out = draw_result(page, _not_interpretable())
    banner = out[: layout_for(page).banner]
    red = np.all(banner == BANNER_RED, axis=2)
    assert red.mean() > 0.6  # a red band ...
    assert (banner.sum(axis=2) > 600).sum() > 500  # ... with white letters on it
    assert "—" in BANNER_TEXT  # the em dash of the written notice, drawn by a Unicode font


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


def test_display_names_cover_every_class() -> None:
    assert set(DISPLAY_NAMES) == set(CLASS_NAMES)
    assert DISPLAY_NAMES["MI-ECG"] == "Acute MI"
    assert DISPLAY_NAMES["ECG HB"] == "Abnormal heartbeat"
    assert DISPLAY_NAMES["History_MI"] == "History of MI"


def test_decision_line_says_the_decision_in_words() -> None:
    abnormal = _result(Detection("MI-ECG", 0.8, (0, 0, 10, 10)),
                       Detection("Normal-ECG", 0.3, (0, 0, 10, 10)), score=0.91)
    assert decision_line(abnormal) == "Abnormal — Acute MI (probability 0.91)"
    history = _result(Detection("History_MI", 0.7, (0, 0, 10, 10)), score=0.88)
    assert decision_line(history) == "Abnormal — History of MI (probability 0.88)"
    # Normal: the probability of Normal, i.e. 1 - the abnormal score.
    normal = _result(Detection("Normal-ECG", 0.9, (0, 0, 10, 10)), label="Normal", score=0.03)
    assert decision_line(normal) == "Normal (probability 0.97)"
    # Not interpretable, with the reason (or, without one, that nothing was found).
    assert decision_line(_not_interpretable("the signal is flat")) == (
        "Not interpretable: the signal is flat")
    text = decision_line(_not_interpretable())
    assert text.startswith("Not interpretable: ") and len(text) > len("Not interpretable: ")
    # No dataset class name anywhere.
    for line in (decision_line(abnormal), decision_line(history), decision_line(normal)):
        assert not any(name in line for name in ("MI-ECG", "History_MI", "ECG HB", "Normal-ECG"))


def test_decision_is_drawn_large_and_differs_by_result(page: Page) -> None:
    layout = layout_for(page)
    rows = slice(layout.banner, layout.banner + layout.decision_row)
    normal = _result(Detection("Normal-ECG", 0.9, (0, 0, 10, 10)), label="Normal", score=0.1)
    abnormal = _result(Detection("MI-ECG", 0.9, (0, 0, 10, 10)))
    a = draw_result(page, normal)[rows]
    b = draw_result(page, abnormal)[rows]
    c = draw_result(page, _not_interpretable())[rows]
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
    result = _result(counted, other)
    decisive = set(result.decisive)
    assert counted in decisive and other not in decisive
    out = draw_result(page, result)
    for det in (counted, other):
        x0, _, _, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        pixel = out[y1 - 1, x0 + 50]
        assert (len(set(pixel.tolist())) == 1) == (det not in decisive)


def test_identity_line_names_patient_id_and_study() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "IMG-1"
    ds.PatientBirthDate = "19600101"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    line = identity_line(ds)
    assert line == "Patient: Doe, Jane    ID: IMG-1    Born: 1960-01-01    Study: 2024-01-02 10:10"
    assert identity_line(Dataset()) == ""


def test_person_names_in_every_component_group() -> None:
    assert person_name_text("Yamada^Tarou=山田^太郎=やまだ^たろう") == "Yamada, Tarou (山田 太郎)"
    assert person_name_text("Παπαδόπουλος^Νίκος") == "Παπαδόπουλος, Νίκος"
    assert person_name_text("=김^민준") == "김 민준"
    assert person_name_text("Clark") == "Clark"


def test_non_ascii_names_are_drawn_with_real_glyphs(page: Page) -> None:
    """Japanese, Greek and accented names come out as glyphs, not as '?' or boxes:
    each script draws differently from the others and from the same count of '?'."""
    layout = layout_for(page)
    result = _not_interpretable()
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


def test_long_text_is_fitted_to_the_width() -> None:
    narrow = Page(image=np.full((300, 500, 3), 255, np.uint8), source_kind="image")
    long_reason = Classification(
        **{**_not_interpretable().__dict__, "model_name": "m" * 200})
    out = draw_result(narrow, long_reason, "Patient: " + "Verylongname " * 20)
    assert out.shape[1] == 500
    layout = layout_for(narrow)
    # The right margin of every band stays white: nothing ran off the image.
    for rows in (slice(layout.banner, layout.top), slice(layout.top + 300, None)):
        assert _ink(out[rows, 500 - layout.margin // 2 :]) == 0


def test_model_and_short_version_in_bottom_band(page: Page) -> None:
    assert short_version(VERSION) == VERSION[:12]
    layout = layout_for(page)
    h = page.image.shape[0]
    out_a = draw_result(page, _not_interpretable())
    other = Classification(**{**_not_interpretable().__dict__, "model_version": "f" * 64})
    out_b = draw_result(page, other)
    band = slice(layout.top + h, None)
    assert (out_a[band] < 128).any()  # something is written there
    assert not np.array_equal(out_a[band], out_b[band])  # and it is the version


def test_grey_pages_are_accepted_and_bad_pages_refused() -> None:
    grey = Page(image=np.full((400, 600), 255, np.uint8), source_kind="image")
    assert draw_result(grey, _not_interpretable()).shape[2] == 3
    with pytest.raises(ValueError):
        draw_result(Page(image=np.zeros((10, 10, 3), np.float32), source_kind="image"),
                    _not_interpretable())
