"""Where things go on the 12-lead page: its geometry, scales and rows (no drawing).

The page reproduces the geometry of the training pages in
``shared/data/ecg-images`` (one cart's print-outs, 1600 x 1137 px), measured on
them (see docs/rendering.md): a chart frame at (49, 204)-(1573, 1097), a grid
anchored at the frame corner, 5.745 px per grid millimetre, 25 mm/s and
10 mm/mV, four rows whose baselines are 217.8 px apart and a 1 mV calibration
pulse at the start of each row.

Layouts (:func:`plan_rows`, chosen from the leads present):

* all twelve standard leads: 3 rows x 4 columns of 2.5 s (I II III | aVR aVL
  aVF | V1 V2 V3 | V4 V5 V6) plus a 10 s lead II rhythm strip; further leads
  (V7, V3R, ...) go in extra rows of four 2.5 s columns above the strip;
* otherwise, up to six leads: one 10 s row per lead (General/Ambulatory ECG,
  Holter strips); more than six: four 2.5 s columns, filled column by column,
  plus a 10 s strip of lead II (or of the first lead).

Only the first 10 s of a longer recording are drawn; a shorter one leaves the
rest of its row empty.
"""

from __future__ import annotations

import numpy as np

from ecg_dicom.records import STANDARD_LEADS

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

# (channel index, t0, t1, column x0) per segment of a row
Row = tuple[tuple[int, float, float, float], ...]


def px_per_second() -> float:
    """Horizontal scale: 25 mm/s at the fixed pixel density."""
    return PAPER_SPEED_MM_S * PX_PER_MM


def px_per_microvolt() -> float:
    """Vertical scale: 10 mm/mV at the fixed pixel density."""
    return GAIN_MM_MV * PX_PER_MM / 1000.0


def first_channels(leads: tuple[str, ...]) -> dict[str, int]:
    """Lead name -> its first channel (a repeated name's later channels are extras)."""
    return {name: i for i, name in reversed(list(enumerate(leads)))}


def plan_rows(leads: tuple[str, ...]) -> list[Row]:
    """The rows of the page: (channel, t0, t1, x0) per segment (see the module docstring)."""
    first = first_channels(leads)
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


def row_baselines(n_rows: int) -> np.ndarray:
    """Baseline y of each row: the training pages' four rows, squeezed for more."""
    _x0, y0, _x1, y1 = FRAME
    pitch = min(ROW_PITCH, (y1 - y0) / (n_rows + 0.1))
    return y0 + pitch * (np.arange(n_rows) + 0.6)
