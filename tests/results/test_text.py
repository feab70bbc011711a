"""text.py: Unicode fonts, a line fitted to its width."""

from __future__ import annotations

import numpy as np

from ecg_dicom.records import Classification, Page
from ecg_dicom.results.annotate import draw_result
from ecg_dicom.results.canvas import layout_for
from results.samples import not_interpretable_result


def _ink(region: np.ndarray) -> int:
    """Pixels of a white band that are not white (text drawn there)."""
    return int((region.min(axis=2) < 200).sum())


def test_long_text_is_fitted_to_the_width() -> None:
    narrow = Page(image=np.full((300, 500, 3), 255, np.uint8), source_kind="image")
    long_reason = Classification(
        **{**not_interpretable_result().__dict__, "model_name": "m" * 200})
    out = draw_result(narrow, long_reason, "Patient: " + "Verylongname " * 20)
    assert out.shape[1] == 500
    layout = layout_for(narrow)
    # The right margin of every band stays white: nothing ran off the image.
    for rows in (slice(layout.banner, layout.top), slice(layout.top + 300, None)):
        assert _ink(out[rows, 500 - layout.margin // 2 :]) == 0
