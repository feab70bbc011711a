"""Whether a straightened picture is a readable 12-lead ECG page: the reason when it is not.

The detector was trained on 12-lead pages only; shown a photograph of something
else, an empty grid or a 2-lead Holter strip it still draws boxes, and a box is
not evidence (issue 14: "Not interpretable is an answer").  :func:`chart_problem`
looks at the page the detector would read (after :mod:`.straighten`) and names
what is wrong, in words for the SR and the viewer, or returns None:

* **too dark**: the paper (the brightest tenth of the picture) is darker than
  :data:`MIN_PAPER` of 255;
* **no chart**: no chart region (grid, frame or traces closed into one blob
  covering :data:`~ecg_dicom.pages.chart_edges.MIN_CHART_SHARE` of the page);
* **no traces**: trace ink -- pixels dark in *every* channel, less than half as
  bright as the paper around them (a pink, red, green or grey grid is light in at
  least one channel; black traces in none) -- under :data:`MIN_TRACE_SHARE` of the
  chart: an empty grid, or traces too faint or blurred to read (said so when
  there is faint ink where traces would be);
* **not a chart of traces**: trace ink over :data:`MAX_TRACE_SHARE` of the chart
  (a photograph, a dark drawing: traces are thin lines);
* **too few rows**: the rows of traces across the chart (bands of rows where
  trace ink spans most of the width: the baselines) number fewer than
  :data:`MIN_TRACE_ROWS`; a 12-lead page has 3 rows of 4 leads plus 1-3 rhythm
  strips, a 2-lead Holter strip has 2.

Everything is measured on a copy about :data:`~ecg_dicom.pages.ink.WORK_SIZE`
px wide (traces kept by taking the darkest pixel of each block), so a check
costs a few milliseconds whatever the picture's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.chart_edges import chart_region
from ecg_dicom.pages.ink import (
    MIN_LINE_CONTRAST,
    WORK_SIZE,
    darkest_channel,
    ink_levels,
    ink_map,
    line_sharpness,
    shrink,
)
from ecg_dicom.records import Page

#: The paper must be at least this bright (0..255, the 90th percentile of the page).
MIN_PAPER = 90.0
#: Trace ink: darker than this share of the local paper brightness in every channel.
TRACE_DARKNESS = 0.6
#: Faint ink (a blurred or faded trace): darker than this share of the paper.
FAINT_DARKNESS = 0.25
#: Trace ink must cover at least this share of the chart region ...
MIN_TRACE_SHARE = 0.002
#: ... and at most this share (more is a picture, not thin lines).
MAX_TRACE_SHARE = 0.2
#: A row of traces spans at least this share of the chart's width ...
ROW_SPAN = 0.5
#: A row of pixels with ink along more than this share of the width is a ruled line.
STRAIGHT_LINE = 0.9
#: The height of a row's band: the chart's height over this.
ROW_BAND = 24
#: ... and a 12-lead page has at least this many such rows.
MIN_TRACE_ROWS = 3


@dataclass(frozen=True)
class ChartMeasures:
    """What :func:`measure_chart` found (for the reasons and for tuning)."""

    paper: float
    line_contrast: float
    chart_share: float
    trace_share: float
    faint_share: float
    rows: int


def _trace_rows(traces: np.ndarray) -> int:
    """How many bands of rows hold a trace spanning :data:`ROW_SPAN` of the width.

    A row of leads has its baseline (and the waves around it) in a band a few
    millimetres high: each column of the band has trace ink somewhere in it.  The
    span of a band of rows is the share of columns with ink in any of its rows."""
    h, w = traces.shape
    band = max(3, h // ROW_BAND)
    # a black frame or grid line (ink along nearly the whole row) is not a trace
    traces = traces & (traces.mean(axis=1) < STRAIGHT_LINE)[:, None]
    # ink anywhere within +-band/2 rows, per column: a vertical max filter
    near = cv2.dilate(traces.astype(np.uint8), np.ones((band, 1), np.uint8))
    span = near.mean(axis=1)
    spanning = span >= ROW_SPAN
    # count separate runs of spanning rows, merging runs closer than a band
    rows, last = 0, -10 * band
    for y in np.flatnonzero(spanning):
        if y - last > band:
            rows += 1
        last = y
    return rows


def measure_chart(rgb: np.ndarray) -> ChartMeasures:
    """The measures :func:`chart_problem` decides on (module docstring)."""
    if rgb.ndim == 2:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    h, w = rgb.shape[:2]
    factor = max(1, -(-max(h, w) // WORK_SIZE))
    small = shrink(np.ascontiguousarray(rgb[..., :3]), factor)
    darkest = darkest_channel(small)
    paper = float(np.percentile(darkest[::4, ::4], 90))
    levels = ink_levels(ink_map(darkest))
    contrast = line_sharpness(levels[2], 0.0) / max(line_sharpness(levels[2], 45.0), 1e-9)
    found = chart_region(levels[1])
    if found is None:
        return ChartMeasures(paper, contrast, 0.0, 0.0, 0.0, 0)
    x0, y0, x1, y1 = (2 * v for v in found[1])
    r, g, b = cv2.split(small[y0:y1, x0:x1])
    brightest = cv2.max(cv2.max(r, g), b)
    # the paper around each pixel: a closing of the brightest channel removes the traces
    k = max(3, (max(small.shape[:2]) // 50) | 1)
    local = cv2.morphologyEx(brightest, cv2.MORPH_CLOSE,
                             cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    level = brightest.astype(np.float32) / np.maximum(local, 16).astype(np.float32)
    traces = level < TRACE_DARKNESS
    area = float(traces.size)
    return ChartMeasures(
        paper=paper,
        line_contrast=float(contrast),
        chart_share=area / float(darkest.size),
        trace_share=float(traces.sum()) / area,
        faint_share=float((level < 1.0 - FAINT_DARKNESS).sum()) / area,
        rows=_trace_rows(traces),
    )


def chart_problem(rgb_page: np.ndarray) -> str | None:
    """Why ``rgb_page`` (H x W x 3 uint8, straightened) is not a readable 12-lead ECG
    page, in words (no trailing period), or None when it is (module docstring)."""
    m = measure_chart(rgb_page)
    if m.paper < MIN_PAPER:
        return (f"the picture is too dark to read (its brightest paper is {m.paper:.0f} "
                f"of 255, below {MIN_PAPER:.0f})")
    if m.chart_share == 0.0 or m.line_contrast < MIN_LINE_CONTRAST:
        return ("no ECG chart was found on the picture (no grid or frame lines, no rows of "
                "traces): it does not look like a paper ECG")
    if m.trace_share < MIN_TRACE_SHARE:
        if m.faint_share >= 2 * MIN_TRACE_SHARE:
            return ("no dark trace lines on the ECG chart: the traces are too faint or "
                    "blurred to read, or the grid is empty")
        return "the ECG chart holds no traces (an empty grid): there is no signal to read"
    if m.trace_share > MAX_TRACE_SHARE:
        return (f"the picture is not a chart of ECG traces (dark areas cover "
                f"{100 * m.trace_share:.0f} % of it; traces are thin lines)")
    if m.rows == 0:
        return ("no row of traces runs across the ECG chart: the traces are too faint, "
                "blurred or broken to read, or this is not an ECG")
    if m.rows < MIN_TRACE_ROWS:
        return (f"not a 12-lead ECG page: {m.rows} row(s) of traces across the chart "
                f"(a 12-lead page has at least {MIN_TRACE_ROWS}, e.g. a 2-lead strip has 2); "
                "the model reads 12-lead pages only")
    return None


def check_chart(page: Page) -> None:
    """Raise :class:`~ecg_dicom.errors.NotInterpretableError` with the reason (and
    ``page``, to show it) when the picture ``page`` is not a readable 12-lead ECG
    page (:func:`chart_problem`)."""
    reason = chart_problem(page.image)
    if reason is not None:
        raise NotInterpretableError(reason, header=page.header, page=page)
