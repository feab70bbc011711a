"""Signals in µV -> the 12-lead page image the model reads (OpenCV drawing).

The rows and scales come from :mod:`ecg_dicom.pages.layout`; this module draws
them as the training pages look: a pink chart frame, a grey dotted grid of 1 mm
dots and 5 mm dotted lines, a 1 mV calibration pulse at the start of each row,
lead labels in a serif face and thin black anti-aliased traces.

Every drawn segment is recorded as a LeadRegion so a box on the page maps back
to lead and time.  Header text (patient, date, speed/gain, filters, the cart's
measurements and statements) is written above the frame, never inside it: the
training pages have nothing outside the frame, so a detector can blank
everything outside ``Page.frame``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ecg_dicom.pages.layout import (
    FRAME,
    PAGE_SIZE,
    PULSE_X,
    PX_PER_MM,
    ROW_PITCH,
    TRACE_X0,
    Row,
    plan_rows,
    px_per_microvolt,
    px_per_second,
    row_baselines,
)
from ecg_dicom.records import LeadRegion, Page, Signals

# Everything but the pink frame is grey: the page is drawn in one channel
# (a third of the memory traffic) and made RGB at the end.
PAPER = 255
FRAME_COLOUR = (225, 176, 179)
MINOR_DOT = 196
MAJOR_DOT = 172
INK = 0
#: Widens the 1 px anti-aliased trace to the training pages' ~2 px stroke.
_INK_KERNEL = np.ones((2, 2), dtype=np.uint8)
LABEL_FONT = cv2.FONT_HERSHEY_COMPLEX
LABEL_SCALE = 0.7
HEADER_FONT = cv2.FONT_HERSHEY_SIMPLEX
HEADER_SCALE = 0.42
HEADER_LINE_PX = 17
_SHIFT = 4  # fixed-point bits for sub-pixel polylines
_ONE = 1 << _SHIFT


@lru_cache(maxsize=1)
def _paper() -> np.ndarray:
    """The empty grey page: white paper, dotted 1/5 mm grid (built once, read-only)."""
    width, height = PAGE_SIZE
    x0, y0, x1, y1 = FRAME
    page = np.full((height, width), PAPER, dtype=np.uint8)

    def ticks(start: float, stop: float, step: float) -> np.ndarray:
        return np.round(np.arange(start + 0.5, stop, step)).astype(np.intp)

    minor_x, minor_y = ticks(x0, x1, PX_PER_MM), ticks(y0, y1, PX_PER_MM)
    page[np.ix_(minor_y, minor_x)] = MINOR_DOT
    major_x, major_y = ticks(x0, x1, 5 * PX_PER_MM), ticks(y0, y1, 5 * PX_PER_MM)
    dots_x, dots_y = np.arange(x0 + 2, x1, 3), np.arange(y0 + 2, y1, 3)
    page[np.ix_(major_y, dots_x)] = MAJOR_DOT
    page[np.ix_(dots_y, major_x)] = MAJOR_DOT
    page.flags.writeable = False
    return page


def empty_paper() -> np.ndarray:
    """A fresh, writable grey page with the grid and no frame (see :func:`finished_page`)."""
    return _paper().copy()


def finished_page(
    grey: np.ndarray, header: tuple[str, ...], regions: tuple[LeadRegion, ...] = (),
    source_index: int = 0,
) -> Page:
    """The drawn grey page as a :class:`Page`: made RGB, with the 2 px pink chart
    frame painted inside FRAME."""
    image = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    x0, y0, x1, y1 = FRAME
    for rows, cols in (((y0, y0 + 2), (x0, x1 + 1)), ((y1 - 1, y1 + 1), (x0, x1 + 1)),
                       ((y0, y1 + 1), (x0, x0 + 2)), ((y0, y1 + 1), (x1 - 1, x1 + 1))):
        image[rows[0]:rows[1], cols[0]:cols[1]] = FRAME_COLOUR
    return Page(
        image=image, source_kind="waveform", px_per_mm=PX_PER_MM, regions=regions,
        frame=tuple(float(v) for v in FRAME),  # type: ignore[arg-type]
        header=header, source_index=source_index,
    )


def _trace_points(
    samples: np.ndarray, fs: float, x0: float, baseline: float
) -> np.ndarray:
    """Samples (µV) -> fixed-point polyline points, clipped to the frame.

    Where more than two samples fall in one pixel column (500-1000 Hz at
    25 mm/s gives 3.5-7), only the column's top and bottom are kept, drawn as
    a vertical stroke at the column's centre: the ink is the same min/max
    envelope with 2-4x fewer segments to anti-alias.  Peaks keep their exact
    height (they are a column's extreme); x moves by at most half a pixel.
    """
    step = px_per_second() / fs
    y = baseline - samples.astype(np.float32) * np.float32(px_per_microvolt())
    if step < 0.5 and samples.shape[0] > 2:
        column = np.floor(np.arange(samples.shape[0]) * step).astype(np.int32)
        starts = np.flatnonzero(np.diff(column, prepend=-1))
        top, bottom = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
        x = np.repeat(x0 + column[starts].astype(np.float32) + 0.5, 2)
        y = np.column_stack((top, bottom)).ravel()
    else:
        x = x0 + np.arange(samples.shape[0], dtype=np.float32) * np.float32(step)
    np.clip(y, FRAME[1] + 3, FRAME[3] - 3, out=y)
    return np.round(np.column_stack((x, y)) * _ONE).astype(np.int32)


def _pulse_points(baseline: float) -> np.ndarray:
    a, b, c, d = PULSE_X
    top = baseline - 1000.0 * px_per_microvolt()
    pts = [(a, baseline), (b, baseline), (b, top), (c, top), (c, baseline), (d, baseline)]
    return np.round(np.array(pts) * _ONE).astype(np.int32)


def _label(page: np.ndarray, text: str, x: float, baseline: float) -> None:
    cv2.putText(page, text, (round(x + 3), round(baseline - 2)), LABEL_FONT,
                LABEL_SCALE, INK, 1, cv2.LINE_AA)


def fit_text(
    text: str, width: int, *, font: int = HEADER_FONT, scale: float = HEADER_SCALE,
    thickness: int = 1,
) -> str:
    """Cut ``text`` to ``width`` px, ending in "..." (Hershey text cannot wrap).

    Linear in the width, whatever the text's length: no glyph is narrower than
    one pixel, so at most ``width`` characters can show; the longest prefix that
    fits with its "..." is found by bisection."""
    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= width

    if len(text) <= width and fits(text):
        return text
    low, high = 0, min(len(text), max(width, 0))  # prefixes of `low` chars fit with "..."
    while low < high:
        middle = (low + high + 1) // 2
        if fits(text[:middle] + "..."):
            low = middle
        else:
            high = middle - 1
    return text[:low] + "..." if low or fits("...") else ""


def draw_header(page: np.ndarray, lines: tuple[str, ...]) -> None:
    """Header lines in two columns above the frame (never inside it)."""
    x0, y0, x1, _ = FRAME
    per_column = max(1, (y0 - 16) // HEADER_LINE_PX)
    col_w = (x1 - x0) // 2
    for k, line in enumerate(lines[: 2 * per_column]):
        col, row = divmod(k, per_column)
        x = x0 + col * col_w
        y = 20 + row * HEADER_LINE_PX
        text = fit_text(line.encode("ascii", "replace").decode("ascii"), col_w - 12)
        cv2.putText(page, text, (x, y), HEADER_FONT, HEADER_SCALE, INK, 1, cv2.LINE_AA)


def render_page(signals: Signals) -> Page:
    """Draw the signals as the training pages look; regions map pixels to lead/time.

    Pure: the same signals give the same pixels.  The returned ``Page`` records
    ``px_per_mm`` (fixed), the chart ``frame`` and one ``LeadRegion`` per drawn
    segment (x0..x1 shows seconds t0..t1 of the lead).
    """
    page = empty_paper()
    rows = plan_rows(signals.leads)
    baselines = row_baselines(len(rows))
    pitch = float(baselines[1] - baselines[0]) if len(rows) > 1 else ROW_PITCH
    fs = float(signals.sampling_frequency)
    n_samples = signals.data.shape[1]
    polylines: list[np.ndarray] = []
    regions: list[LeadRegion] = []
    for row, baseline in zip(rows, baselines, strict=True):
        polylines.append(_pulse_points(baseline))
        for channel, t0, t1, x0 in row:
            i0 = round(t0 * fs)
            i1 = min(round(t1 * fs) + 1, n_samples)  # +1: join the next column
            if i1 - i0 < 2:
                continue
            polylines.append(_trace_points(signals.data[channel, i0:i1], fs, x0, baseline))
            t_end = min(t1, i1 / fs)  # sample i covers [i/fs, (i+1)/fs)
            regions.append(LeadRegion(
                lead=signals.leads[channel], x0=x0, y0=max(baseline - pitch / 2, FRAME[1]),
                x1=x0 + (t_end - t0) * px_per_second(),
                y1=min(baseline + pitch / 2, FRAME[3]), t0=t0, t1=t_end,
            ))
    _draw_traces(page, polylines)
    for row, baseline in zip(rows, baselines, strict=True):
        for channel, _t0, _t1, x0 in row:
            _label(page, signals.leads[channel], x0 if x0 > TRACE_X0 else TRACE_X0 + 10, baseline)
    _separators(page, rows, baselines)
    draw_header(page, signals.header)
    return finished_page(page, signals.header, tuple(regions), signals.group_index)


def _draw_traces(page: np.ndarray, polylines: list[np.ndarray]) -> None:
    """Black anti-aliased traces about 2 px wide, as on the training pages.

    OpenCV draws thick anti-aliased lines as one filled polygon per segment
    (~13x slower than its 1 px AA line), so the traces are drawn once, 1 px
    and anti-aliased, into an ink mask that a 2 x 2 dilation widens; the ink
    is subtracted from the paper (saturating at black, as ink on paper).
    """
    ink = np.zeros(page.shape[:2], dtype=np.uint8)
    cv2.polylines(ink, polylines, False, 255, 1, cv2.LINE_AA, _SHIFT)
    cv2.subtract(page, cv2.dilate(ink, _INK_KERNEL), dst=page)


def _separators(page: np.ndarray, rows: list[Row], baselines: np.ndarray) -> None:
    """Lead-change marks: one vertical line per column boundary over the 2.5 s rows."""
    grid_rows = [k for k, row in enumerate(rows) if len(row) > 1]
    if not grid_rows:
        return
    reach = min(30.0, ROW_PITCH / 2)
    top = baselines[grid_rows[0]] - reach
    bottom = baselines[grid_rows[-1]] + reach
    xs = {x0 for k in grid_rows for _channel, _t0, _t1, x0 in rows[k] if x0 > TRACE_X0}
    for x in sorted(xs):
        cv2.line(page, (round(x), round(top)), (round(x), round(bottom)),
                 INK, 2, cv2.LINE_8)


def write_page_png(page: Page, path: Path) -> None:
    """Write the page as an RGB PNG (for a person to look at; not in the pipeline)."""
    ok = cv2.imwrite(str(path), cv2.cvtColor(page.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not write PNG {path}")
