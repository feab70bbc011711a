"""layout.py: the rows, scales and baselines of the page, before anything is drawn."""

from __future__ import annotations

import pytest

from ecg_dicom.pages.layout import (
    COLUMN_SECONDS,
    FRAME,
    GAIN_MM_MV,
    PAPER_SPEED_MM_S,
    PX_PER_MM,
    ROW_PITCH,
    STRIP_SECONDS,
    TRACE_X0,
    first_channels,
    plan_rows,
    px_per_microvolt,
    px_per_second,
    row_baselines,
)
from ecg_dicom.records import STANDARD_LEADS


def test_scales_are_25_mm_per_second_and_10_mm_per_millivolt() -> None:
    assert px_per_second() == pytest.approx(PAPER_SPEED_MM_S * PX_PER_MM)
    assert 1000.0 * px_per_microvolt() == pytest.approx(GAIN_MM_MV * PX_PER_MM)
    assert (PAPER_SPEED_MM_S, GAIN_MM_MV) == (25.0, 10.0)


def test_twelve_leads_make_three_rows_of_four_columns_and_a_lead_ii_strip() -> None:
    rows = plan_rows(STANDARD_LEADS)
    assert len(rows) == 4
    by_name = [[STANDARD_LEADS[channel] for channel, *_ in row] for row in rows]
    assert by_name == [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"],
                       ["III", "aVF", "V3", "V6"], ["II"]]
    column_px = COLUMN_SECONDS * px_per_second()
    for row in rows[:3]:
        assert [(t0, t1) for _c, t0, t1, _x in row] == [
            (c * COLUMN_SECONDS, (c + 1) * COLUMN_SECONDS) for c in range(4)]
        assert [x for *_, x in row] == pytest.approx([TRACE_X0 + c * column_px for c in range(4)])
    assert rows[3] == ((1, 0.0, STRIP_SECONDS, TRACE_X0),)


def test_leads_in_any_channel_order_keep_the_print_order() -> None:
    leads = tuple(reversed(STANDARD_LEADS))
    rows = plan_rows(leads)
    assert [leads[channel] for channel, *_ in rows[0]] == ["I", "aVR", "V1", "V4"]


def test_few_leads_get_one_ten_second_strip_each() -> None:
    rows = plan_rows(("II", "V5"))
    assert rows == [((0, 0.0, STRIP_SECONDS, TRACE_X0),), ((1, 0.0, STRIP_SECONDS, TRACE_X0),)]


def test_a_repeated_name_counts_its_first_channel() -> None:
    assert first_channels(("?", "II", "?")) == {"?": 0, "II": 1}


def test_baselines_keep_the_training_pitch_and_stay_in_the_frame() -> None:
    four = row_baselines(4)
    assert four[1] - four[0] == pytest.approx(ROW_PITCH)
    for n in (1, 4, 5, 9):
        ys = row_baselines(n)
        assert len(ys) == n and FRAME[1] < ys.min() and ys.max() < FRAME[3]
