"""measurements.py: a box as a closed polyline in annotated-SC pixels, and the leads
and seconds it covers named in its Tracking Identifier."""

from __future__ import annotations

import numpy as np

from ecg_dicom.records import Detection, LeadRegion, Page
from ecg_dicom.results.canvas import layout_for
from ecg_dicom.results.measurements import box_polyline, detection_label, leads_under

REGIONS = (
    LeadRegion("II", 100, 100, 600, 300, 0.0, 2.5),
    LeadRegion("aVF", 600, 100, 1100, 300, 2.5, 5.0),
    LeadRegion("V1", 100, 300, 600, 500, 0.0, 2.5),
)


def _page() -> Page:
    return Page(image=np.zeros((800, 1600, 3), np.uint8), source_kind="waveform",
                regions=REGIONS)


def test_polyline_is_closed_and_offset_into_the_sc() -> None:
    page = _page()
    top = layout_for(page).top
    points = box_polyline((10.0, 20.0, 30.0, 40.0), page)
    assert points.dtype == np.float32 and points.shape == (5, 2)
    assert points[0].tolist() == points[-1].tolist() == [10.0, 20.0 + top]
    assert points[2].tolist() == [30.0, 40.0 + top]


def test_leads_and_seconds_under_a_box() -> None:
    page = _page()
    covered = leads_under((350.0, 150.0, 850.0, 250.0), page)
    assert covered == [("II", 1.25, 2.5), ("aVF", 2.5, 3.75)]
    assert leads_under((0.0, 0.0, 50.0, 50.0), page) == []


def test_detection_label_names_leads_and_time() -> None:
    page = _page()
    det = Detection("MI-ECG", 0.9, (350.0, 150.0, 850.0, 250.0))
    assert detection_label(1, det, page) == "Detection 1: MI-ECG - leads II, aVF, 1.25-3.75 s"
    image_page = Page(image=page.image, source_kind="image")
    assert detection_label(3, det, image_page) == "Detection 3: MI-ECG"
