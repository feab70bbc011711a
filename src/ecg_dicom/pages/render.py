"""Calibrated ECG signals -> the 12-lead page image the model reads (OpenCV).

The page reproduces the geometry of the training pages in
``shared/data/ecg-images`` (one cart's print-outs, 1600 x 1137 px), measured on
them (see docs/rendering.md): a pink chart frame at (49, 204)-(1573, 1097), a
grey dotted grid of 1 mm dots and 5 mm dotted lines anchored at the frame
corner, 5.745 px per grid millimetre, 25 mm/s and 10 mm/mV, four rows whose
baselines are 217.8 px apart, a 1 mV calibration pulse at the start of each
row, lead labels in a serif face and thin black anti-aliased traces.

Layouts (chosen from the leads present):

* all twelve standard leads: 3 rows x 4 columns of 2.5 s (I II III | aVR aVL
  aVF | V1 V2 V3 | V4 V5 V6) plus a 10 s lead II rhythm strip; further leads
  (V7, V3R, ...) go in extra rows of four 2.5 s columns above the strip;
* otherwise, up to six leads: one 10 s row per lead (General/Ambulatory ECG,
  Holter strips); more than six: four 2.5 s columns, filled column by column,
  plus a 10 s strip of lead II (or of the first lead).

Only the first 10 s of a longer recording are drawn; a shorter one leaves the
rest of its row empty.  Every drawn segment is recorded as a LeadRegion so a
box on the page maps back to lead and time.  Header text (patient, date,
speed/gain, filters, the cart's measurements and statements) is written above
the frame, never inside it: the training pages have nothing outside the frame,
so a detector can blank everything outside ``Page.frame``.

What the model can read (:func:`interpretable_page`, the page the service uses):
the detector was trained on 12-lead pages only (3 x 4 columns of 2.5 s and a
10 s rhythm strip), so a recording is interpreted only when its page is one:

* the 12 standard leads are present; a recording of I, II and V1-V6 (the 8
  independent leads many carts store) gets III, aVR, aVL and aVF derived by
  Einthoven's and Goldberger's relations (III = II - I, aVR = -(I + II)/2,
  aVL = I - II/2, aVF = II - I/2), as the carts themselves print them.  Anything
  else -- a 2- or 3-lead Holter, a cath-lab recording of II and V5 -- is drawn
  (one strip per lead, for the people reading the SC) but is *not interpretable*:
  a stacked-strip page is not what the model has ever seen, and a call on it
  would be a guess;
* the recording lasts at least :data:`MIN_TWELVE_LEAD_SECONDS` (9.5 s): the
  last column (V4-V6) shows 7.5-10 s, and every lead must fill at least 2 s of
  its 2.5 s column (two beats at 60 bpm, one at 30 bpm); a shorter recording
  leaves columns empty;
* no lead is flat where it is drawn (peak-to-peak below
  :data:`ecg_dicom.pages.waveform.FLAT_MICROVOLTS`: an electrode off, a lead not
  recorded): the page would lack that lead.

Otherwise :class:`~ecg_dicom.errors.NotInterpretableError` is raised with the
reason and the page drawn so far; :func:`blank_page` is the page for a signal
that cannot be drawn at all (flat, not a number, absurd sampling rate).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.waveform import FLAT_MICROVOLTS
from ecg_dicom.records import STANDARD_LEADS, LeadRegion, Page, Signals

#: Pixels per millimetre of ECG paper, measured on the training pages' grid
#: (FFT of the grid over 15 pages: 5.74-5.75; the whole page is 1600 px for
#: ~279 mm, i.e. the cart's print is A4 landscape scaled by ~1.06).
PX_PER_MM = 5.745
PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
PAGE_SIZE = (1600, 1137)  # width, height in px, as the training pages
FRAME = (49, 204, 1573, 1097)  # x0, y0, x1, y1 of the chart frame, px
#: x where every row's signal starts (after the calibration pulse).
TRACE_X0 = 96.0
#: Calibration pulse: flat lead-in, 1 mV step, flat lead-out (px from row start).
PULSE_X = (69.0, 75.5, 88.5, 94.0)
ROW_PITCH = 217.8  # px between baselines of the four standard rows
STRIP_SECONDS = 10.0
COLUMN_SECONDS = 2.5

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

#: The shortest recording whose 12-lead page the model can read (module docstring).
MIN_TWELVE_LEAD_SECONDS = 3 * COLUMN_SECONDS + 2.0

# (channel index, t0, t1, column x0) per segment of a row
Row = tuple[tuple[int, float, float, float], ...]


def px_per_second() -> float:
    """Horizontal scale: 25 mm/s at the fixed pixel density."""
    return PAPER_SPEED_MM_S * PX_PER_MM


def px_per_microvolt() -> float:
    """Vertical scale: 10 mm/mV at the fixed pixel density."""
    return GAIN_MM_MV * PX_PER_MM / 1000.0


@lru_cache(maxsize=1)
def _paper() -> np.ndarray:
    """The empty grey page: white paper, dotted 1/5 mm grid (built once)."""
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


def _to_rgb(grey: np.ndarray) -> np.ndarray:
    """Grey page -> RGB, with the 2 px pink chart frame painted inside FRAME."""
    page = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    x0, y0, x1, y1 = FRAME
    for rows, cols in (((y0, y0 + 2), (x0, x1 + 1)), ((y1 - 1, y1 + 1), (x0, x1 + 1)),
                       ((y0, y1 + 1), (x0, x0 + 2)), ((y0, y1 + 1), (x1 - 1, x1 + 1))):
        page[rows[0]:rows[1], cols[0]:cols[1]] = FRAME_COLOUR
    return page


def _first_index(leads: tuple[str, ...]) -> dict[str, int]:
    """Lead name -> its first channel (a repeated name's later channels are extras)."""
    return {name: i for i, name in reversed(list(enumerate(leads)))}


def plan_rows(leads: tuple[str, ...]) -> list[Row]:
    """The rows of the page: (channel, t0, t1, x0) per segment (see the module docstring)."""
    first = _first_index(leads)
    standard = [first[n] for n in STANDARD_LEADS if n in first]
    order = standard + [i for i in range(len(leads)) if i not in standard]
    col_w = COLUMN_SECONDS * px_per_second()

    def grid(by_column: list[list[int]], rows: int) -> list[Row]:
        return [
            tuple(
                (col[r], c * COLUMN_SECONDS, (c + 1) * COLUMN_SECONDS, TRACE_X0 + c * col_w)
                for c, col in enumerate(by_column) if r < len(col)
            )
            for r in range(rows)
        ]

    def strip(channel: int) -> Row:
        return ((channel, 0.0, STRIP_SECONDS, TRACE_X0),)

    rhythm = first.get("II", order[0])
    if len(standard) == len(STANDARD_LEADS):
        rows = grid([standard[3 * c:3 * c + 3] for c in range(4)], 3)
        extra = order[12:]
        for k in range(0, len(extra), 4):
            rows += grid([[i] for i in extra[k:k + 4]], 1)
        return [*rows, strip(rhythm)]
    if len(order) <= 6:
        return [strip(i) for i in order]
    per_column = -(-len(order) // 4)
    columns = [order[c * per_column:(c + 1) * per_column] for c in range(4)]
    return [*grid([c for c in columns if c], per_column), strip(rhythm)]


def _baselines(n_rows: int) -> np.ndarray:
    """Baseline y of each row: the training pages' four rows, squeezed for more."""
    _x0, y0, _x1, y1 = FRAME
    pitch = min(ROW_PITCH, (y1 - y0) / (n_rows + 0.1))
    return y0 + pitch * (np.arange(n_rows) + 0.6)


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


def _fit(text: str, width: int) -> str:
    """Cut a header line to ``width`` px (Hershey text cannot wrap)."""
    while text and cv2.getTextSize(text, HEADER_FONT, HEADER_SCALE, 1)[0][0] > width:
        text = text[:-4] + "..." if len(text) > 4 else ""
    return text


def _header(page: np.ndarray, lines: tuple[str, ...]) -> None:
    """Header lines in two columns above the frame (never inside it)."""
    x0, y0, x1, _ = FRAME
    per_column = max(1, (y0 - 16) // HEADER_LINE_PX)
    col_w = (x1 - x0) // 2
    for k, line in enumerate(lines[: 2 * per_column]):
        col, row = divmod(k, per_column)
        x = x0 + col * col_w
        y = 20 + row * HEADER_LINE_PX
        text = _fit(line.encode("ascii", "replace").decode("ascii"), col_w - 12)
        cv2.putText(page, text, (x, y), HEADER_FONT, HEADER_SCALE, INK, 1, cv2.LINE_AA)


def render_page(signals: Signals) -> Page:
    """Draw the signals as the training pages look; regions map pixels to lead/time.

    Pure: the same signals give the same pixels.  The returned ``Page`` records
    ``px_per_mm`` (fixed), the chart ``frame`` and one ``LeadRegion`` per drawn
    segment (x0..x1 shows seconds t0..t1 of the lead).
    """
    page = _paper().copy()
    rows = plan_rows(signals.leads)
    baselines = _baselines(len(rows))
    pitch = float(baselines[1] - baselines[0]) if len(rows) > 1 else ROW_PITCH
    fs = float(signals.sampling_frequency)
    n_samples = signals.data.shape[1]
    polylines: list[np.ndarray] = []
    regions: list[LeadRegion] = []
    for row, baseline in zip(rows, baselines):
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
    for row, baseline in zip(rows, baselines):
        for channel, _t0, _t1, x0 in row:
            _label(page, signals.leads[channel], x0 if x0 > TRACE_X0 else TRACE_X0 + 10, baseline)
    _separators(page, rows, baselines)
    _header(page, signals.header)
    return Page(
        image=_to_rgb(page), source_kind="waveform", px_per_mm=PX_PER_MM, regions=tuple(regions),
        frame=tuple(float(v) for v in FRAME),  # type: ignore[arg-type]
        header=signals.header, source_index=signals.group_index,
    )


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


def with_limb_leads(signals: Signals) -> Signals:
    """``signals`` with III, aVR, aVL and aVF derived from I and II where they are
    missing and V1-V6 are present (the 8 independent leads of a 12-lead ECG)."""
    first = _first_index(signals.leads)
    missing = [n for n in ("III", "aVR", "aVL", "aVF") if n not in first]
    if not missing or "I" not in first or "II" not in first:
        return signals
    if any(f"V{k}" not in first for k in range(1, 7)):
        return signals
    lead_i = signals.data[first["I"]].astype(np.float32)
    lead_ii = signals.data[first["II"]].astype(np.float32)
    derived = {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    return replace(
        signals,
        leads=(*signals.leads, *missing),
        data=np.vstack([signals.data, *(derived[n][None, :] for n in missing)]),
    )


def interpretable_page(signals: Signals) -> Page:
    """The 12-lead page of ``signals`` that the model reads, or
    :class:`NotInterpretableError` with the reason and the page drawn anyway
    (see the module docstring for the rules)."""
    signals = with_limb_leads(signals)
    present = set(signals.leads)
    missing = [n for n in STANDARD_LEADS if n not in present]
    reason = ""
    if missing:
        shown = ", ".join(signals.leads[:8]) + (" ..." if len(signals.leads) > 8 else "")
        lacking = f", missing {', '.join(missing)}" if len(missing) <= 3 else ""
        reason = (
            f"not a 12-lead ECG ({len(signals.leads)} lead(s): {shown}{lacking}); "
            "the model reads 12-lead pages only"
        )
    elif signals.duration < MIN_TWELVE_LEAD_SECONDS:
        reason = (
            f"the recording lasts {signals.duration:.2f} s; a 12-lead page needs at least "
            f"{MIN_TWELVE_LEAD_SECONDS:g} s (its last column shows 7.5-10 s)"
        )
    if reason:
        page = render_page(replace(signals, header=(f"NOT INTERPRETABLE: {reason}",
                                                    *signals.header)))
        raise NotInterpretableError(reason, header=signals.header, page=page)
    page = render_page(signals)
    flat = _flat_leads(signals, page)
    if flat:
        reason = (
            f"lead(s) {', '.join(flat)} show no signal on the page (peak-to-peak below "
            f"{FLAT_MICROVOLTS:g} uV: an electrode off or a lead not recorded); the model "
            "reads complete 12-lead pages"
        )
        page = render_page(replace(signals, header=(f"NOT INTERPRETABLE: {reason}",
                                                    *signals.header)))
        raise NotInterpretableError(reason, header=signals.header, page=page)
    return page


def _flat_leads(signals: Signals, page: Page) -> list[str]:
    """Standard leads drawn flat in at least one of their segments on ``page``."""
    first = _first_index(signals.leads)
    fs = float(signals.sampling_frequency)
    flat: list[str] = []
    for region in page.regions:
        if region.lead not in STANDARD_LEADS or region.lead in flat:
            continue
        i0, i1 = round(region.t0 * fs), max(round(region.t1 * fs), round(region.t0 * fs) + 1)
        if float(np.ptp(signals.data[first[region.lead], i0:i1])) < FLAT_MICROVOLTS:
            flat.append(region.lead)
    return [n for n in STANDARD_LEADS if n in flat]


#: Text of a blank page (Hershey fonts: ASCII).
BLANK_TITLE = "NOT INTERPRETABLE - no ECG trace can be drawn"
_BLANK_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BLANK_TITLE_SCALE = 1.2
_BLANK_TEXT_SCALE = 0.8


def _wrap(text: str, width: int, scale: float, thickness: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` px wide."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and cv2.getTextSize(candidate, _BLANK_FONT, scale, thickness)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return [_fit_to(w, width, scale, thickness) for w in lines]


def _fit_to(text: str, width: int, scale: float, thickness: int) -> str:
    while text and cv2.getTextSize(text, _BLANK_FONT, scale, thickness)[0][0] > width:
        text = text[:-4] + "..." if len(text) > 4 else ""
    return text


def blank_page(header: tuple[str, ...], reason: str) -> Page:
    """The page for a waveform whose signal cannot be drawn: the usual page size,
    grid and frame, the header above the frame, and inside the frame
    :data:`BLANK_TITLE` and ``reason`` -- no trace, so nobody mistakes it for an
    ECG.  Pure: the same header and reason give the same pixels."""
    page = _paper().copy()
    _header(page, header)
    x0, y0, x1, _y1 = FRAME
    width = x1 - x0 - 80
    y = y0 + 120
    title = _fit_to(BLANK_TITLE, width, _BLANK_TITLE_SCALE, 2)
    cv2.putText(page, title, (x0 + 40, y), _BLANK_FONT, _BLANK_TITLE_SCALE, INK, 2, cv2.LINE_AA)
    text = reason.encode("ascii", "replace").decode("ascii")
    for line in _wrap(f"Reason: {text}", width, _BLANK_TEXT_SCALE, 2):
        y += 48
        cv2.putText(page, line, (x0 + 40, y), _BLANK_FONT, _BLANK_TEXT_SCALE, INK, 2, cv2.LINE_AA)
    return Page(
        image=_to_rgb(page), source_kind="waveform", px_per_mm=PX_PER_MM, regions=(),
        frame=tuple(float(v) for v in FRAME),  # type: ignore[arg-type]
        header=header,
    )


def not_interpretable_page(exc: NotInterpretableError) -> Page:
    """The page to build the SC of a not-interpretable input on: the one the error
    carries (the traces that could be drawn), else :func:`blank_page`."""
    if isinstance(exc.page, Page):
        return exc.page
    return blank_page(exc.header, exc.reason)


def write_page_png(page: Page, path: Path) -> None:
    """Write the page as an RGB PNG (for a person to look at; not in the pipeline)."""
    ok = cv2.imwrite(str(path), cv2.cvtColor(page.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not write PNG {path}")
