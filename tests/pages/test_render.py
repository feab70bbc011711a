"""render.py: real ECGs drawn in the training pages' geometry, measured on the pixels.

Amplitude, time and grid are measured in the rendered image (dark pixels,
FFT of the grid), not read back from the renderer's constants, and compared
with the signal values and with the training pages measured the same way.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from ecg_dicom.pages.layout import PX_PER_MM
from ecg_dicom.pages.render import render_page, write_page_png
from ecg_dicom.pages.waveform import load_waveform
from ecg_dicom.records import STANDARD_LEADS as STANDARD
from ecg_dicom.records import Page, Signals
from variants import (
    REAL_ECGS,
    ambulatory_ecg,
    general_ecg,
    grid_px_per_mm,
    pink_frame,
    read_real,
    training_page,
)

SPEED_PX_S = 25.0 * PX_PER_MM  # 25 mm/s
GAIN_PX_UV = 10.0 * PX_PER_MM / 1000.0  # 10 mm/mV
PRINT_ORDER = ("I", "aVR", "V1", "V4", "II", "aVL", "V2", "V5", "III", "aVF", "V3", "V6", "II")


def grey(page: Page) -> np.ndarray:
    return page.image.astype(np.float64).mean(axis=2)


def dark_centroid(column: np.ndarray, lo: int, hi: int) -> float:
    """Darkness-weighted centre of the ink between rows lo..hi of one pixel column."""
    ink = np.clip(200.0 - column[lo:hi], 0, None)
    assert ink.sum() > 0, "no ink where a line was expected"
    return lo + float((ink * np.arange(hi - lo)).sum() / ink.sum())


def row_baselines(page: Page) -> list[float]:
    """Row baselines measured on the ink of the calibration pulses' flat lead-in (x=71)."""
    g = grey(page)
    column = g[:, 71]
    assert page.frame is not None
    y0, y1 = int(page.frame[1]) + 3, int(page.frame[3]) - 3  # header text is above the frame
    ys = np.nonzero(column[y0:y1] < 128)[0] + y0
    runs = np.split(ys, np.nonzero(np.diff(ys) > 3)[0] + 1)
    return [float(np.average(r, weights=255 - column[r])) for r in runs if r.size]


@pytest.fixture(scope="module")
def real_pages() -> dict[str, tuple[Signals, Page]]:
    out = {}
    for name in REAL_ECGS:
        signals = load_waveform(read_real(name))
        out[name] = (signals, render_page(signals))
    return out


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_page_geometry_matches_the_training_pages(name: str, real_pages: dict) -> None:  # type: ignore[type-arg]
    _, page = real_pages[name]
    train = [training_page(i) for i in (10, 100, 200, 300)]
    assert page.image.shape == train[0].shape == (1137, 1600, 3)
    assert page.image.dtype == np.uint8 and page.source_kind == "waveform"
    assert page.px_per_mm == PX_PER_MM
    assert pink_frame(page.image) == pink_frame(train[0])
    assert page.frame == tuple(float(v) for v in pink_frame(train[0]))
    measured = grid_px_per_mm(page.image)
    trained = float(np.median([grid_px_per_mm(t) for t in train]))
    assert measured == pytest.approx(trained, rel=0.005)
    assert measured == pytest.approx(PX_PER_MM, rel=0.005)
    # thin traces: ink inside the frame within a factor of two of the training pages
    def ink(image: np.ndarray) -> float:
        x0, y0, x1, y1 = pink_frame(image)
        return float((image[y0 + 3:y1 - 3, x0 + 3:x1 - 3].mean(axis=2) < 100).mean())
    trained_ink = float(np.median([ink(t) for t in train]))
    assert trained_ink / 2 < ink(page.image) < trained_ink * 2


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_lead_order_and_regions(name: str, real_pages: dict) -> None:  # type: ignore[type-arg]
    signals, page = real_pages[name]
    assert tuple(r.lead for r in page.regions) == PRINT_ORDER
    column_w = 2.5 * SPEED_PX_S
    for k, region in enumerate(page.regions[:12]):
        col = k % 4
        assert region.t0 == pytest.approx(2.5 * col)
        assert region.x0 - page.regions[0].x0 == pytest.approx(col * column_w)
        assert region.x1 - region.x0 == pytest.approx((region.t1 - region.t0) * SPEED_PX_S)
    strip = page.regions[12]
    assert (strip.t0, strip.t1) == pytest.approx((0.0, 10.0), abs=1.0 / signals.sampling_frequency)
    assert strip.x1 - strip.x0 == pytest.approx(
        10.0 * SPEED_PX_S, abs=SPEED_PX_S / signals.sampling_frequency)
    x0, y0, x1, y1 = page.frame
    assert all(x0 <= r.x0 < r.x1 <= x1 and y0 <= r.y0 < r.y1 <= y1 for r in page.regions)


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_calibration_pulse_is_ten_millimetres(name: str, real_pages: dict) -> None:  # type: ignore[type-arg]
    _, page = real_pages[name]
    g = grey(page)
    baselines = row_baselines(page)
    assert len(baselines) == 4
    assert np.diff(baselines) == pytest.approx([217.8] * 3, abs=1.0)  # training pages' pitch
    for base in baselines:
        top = dark_centroid(g[:, 82], int(base - 70), int(base - 45))
        assert base - top == pytest.approx(10.0 * PX_PER_MM, abs=1.0)


@pytest.mark.parametrize("name", sorted(REAL_ECGS))
def test_r_wave_height_and_strip_duration_in_pixels(name: str, real_pages: dict) -> None:  # type: ignore[type-arg]
    signals, page = real_pages[name]
    g = grey(page)
    base = row_baselines(page)[3]
    lead_ii = signals.data[signals.leads.index("II")]
    fs = signals.sampling_frequency
    strip = page.regions[12]
    # the tallest R wave of lead II in the 10 s strip, away from the ends
    i = int(np.argmax(lead_ii[int(0.5 * fs):int(9.5 * fs)])) + int(0.5 * fs)
    x = strip.x0 + i / fs * SPEED_PX_S
    expected_top = base - float(lead_ii[i]) * GAIN_PX_UV
    lo = int(expected_top - 25)  # above: the row above may dip into the strip's band
    cols = g[lo:int(base), round(x) - 1:round(x) + 2]
    top = lo + int(np.nonzero((cols < 128).any(axis=1))[0].min())
    assert float(lead_ii[i]) > 300.0  # a real R wave, not noise
    assert top == pytest.approx(expected_top, abs=2.5), (top, expected_top)
    # duration: the strip's ink spans 10 s at 25 mm/s
    band = g[int(base - 100):int(base + 100), 100:1590] < 128
    xs = np.nonzero(band.any(axis=0))[0] + 100
    assert xs.max() == pytest.approx(strip.x0 + 10.0 * SPEED_PX_S, abs=3.0)


def test_nothing_outside_the_frame_but_header_above_it(real_pages: dict) -> None:  # type: ignore[type-arg]
    signals, page = real_pages["ge-mac55"]
    x0, y0, x1, y1 = (int(v) for v in page.frame)
    bare = render_page(replace(signals, header=()))
    outside = np.ones(page.image.shape[:2], bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert np.all(bare.image[outside] == 255)
    differs = np.any(page.image != bare.image, axis=2)
    assert differs.any() and not differs[y0:, :].any()  # header text only above the frame
    assert np.array_equal(render_page(signals).image, page.image)  # pure


def test_general_ecg_gets_one_ten_second_row_per_lead() -> None:
    page = render_page(load_waveform(general_ecg()))
    assert [r.lead for r in page.regions] == ["I", "II", "III"]
    assert all((r.t0, r.t1) == pytest.approx((0.0, 10.0), abs=1e-3) for r in page.regions)
    assert len(row_baselines(page)) == 3


def test_ambulatory_shows_the_first_ten_seconds() -> None:
    signals = load_waveform(ambulatory_ecg(60))
    page = render_page(signals)
    assert [(r.lead, r.t0, round(r.t1, 3)) for r in page.regions] == [
        ("II", 0.0, 10.0), ("V5", 0.0, 10.0)]


def _signals(leads: tuple[str, ...], seconds: float = 10.0, fs: float = 500.0) -> Signals:
    base = load_waveform(read_real("ge-mac55"))
    n = int(seconds * fs)
    data = np.vstack([base.data[k % 12, :n] for k in range(len(leads))])
    return Signals(leads=leads, data=data, sampling_frequency=fs)


def test_more_than_twelve_leads_keep_the_block_and_add_rows() -> None:
    page = render_page(_signals(STANDARD + ("V3R", "V4R", "V7")))
    leads = [r.lead for r in page.regions]
    assert tuple(leads[:12]) == PRINT_ORDER[:12]
    assert leads[12:] == ["V3R", "V4R", "V7", "II"]
    assert len(row_baselines(page)) == 5
    assert page.frame is not None
    _x0, y0, _x1, y1 = page.frame
    assert all(y0 <= r.y0 < r.y1 <= y1 for r in page.regions)


def test_eight_unknown_leads_go_in_four_columns_plus_strip() -> None:
    leads = tuple(f"CH{k}" for k in range(1, 9))
    page = render_page(_signals(leads))
    assert [r.lead for r in page.regions] == [
        "CH1", "CH3", "CH5", "CH7", "CH2", "CH4", "CH6", "CH8", "CH1"]
    assert len(row_baselines(page)) == 3


def test_short_recording_leaves_the_rest_of_the_row_empty() -> None:
    page = render_page(_signals(STANDARD, seconds=4.0))
    assert [r.lead for r in page.regions] == ["I", "aVR", "II", "aVL", "III", "aVF", "II"]
    assert page.regions[-1].t1 == pytest.approx(4.0, abs=0.01)


def test_write_page_png_round_trips(tmp_path: Path, real_pages: dict) -> None:  # type: ignore[type-arg]
    _, page = real_pages["pydicom-waveform"]
    target = tmp_path / "page.png"
    write_page_png(page, target)
    written = cv2.imread(str(target))
    assert written is not None
    back = cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, page.image)
    with pytest.raises(OSError):
        write_page_png(page, tmp_path / "missing-dir" / "page.png")


def test_repeated_labels_draw_each_channel() -> None:
    signals = _signals(("?", "?", "?"))
    signals = replace(signals, data=signals.data * np.array([[1.0], [-1.0], [0.5]], np.float32))
    page = render_page(signals)
    assert [r.lead for r in page.regions] == ["?", "?", "?"]
    bands = [grey(page)[int(r.y0):int(r.y1), int(r.x0):int(r.x1)] < 128 for r in page.regions]
    assert not np.array_equal(bands[0], bands[1]) and not np.array_equal(bands[1], bands[2])
