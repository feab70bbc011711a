"""The page shown for an input that is not interpretable (the SC is built on it).

Either the page the error carries (the traces that could be drawn, the reason
on top), or, for a signal that cannot be drawn at all (flat, not a number,
absurd sampling rate), :func:`blank_page`: the usual paper and frame with the
reason written inside the frame and no trace, so nobody mistakes it for an ECG.
"""

from __future__ import annotations

import cv2

from ecg_dicom.errors import NotInterpretableError
from ecg_dicom.pages.layout import FRAME
from ecg_dicom.pages.render import INK, draw_header, empty_paper, finished_page, fit_text
from ecg_dicom.records import Page

#: Text of a blank page (Hershey fonts: ASCII).
BLANK_TITLE = "NOT INTERPRETABLE - no ECG trace can be drawn"
_BLANK_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BLANK_TITLE_SCALE = 1.2
_BLANK_TEXT_SCALE = 0.8
_THICKNESS = 2


def _wrap(text: str, width: int, scale: float) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` px wide."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and cv2.getTextSize(candidate, _BLANK_FONT, scale, _THICKNESS)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return [_fit(w, width, scale) for w in lines]


def _fit(text: str, width: int, scale: float) -> str:
    return fit_text(text, width, font=_BLANK_FONT, scale=scale, thickness=_THICKNESS)


def blank_page(header: tuple[str, ...], reason: str) -> Page:
    """The page for a waveform whose signal cannot be drawn: the usual page size,
    grid and frame, the header above the frame, and inside the frame
    :data:`BLANK_TITLE` and ``reason`` -- no trace, so nobody mistakes it for an
    ECG.  Pure: the same header and reason give the same pixels."""
    page = empty_paper()
    draw_header(page, header)
    x0, y0, x1, _y1 = FRAME
    width = x1 - x0 - 80
    y = y0 + 120
    title = _fit(BLANK_TITLE, width, _BLANK_TITLE_SCALE)
    cv2.putText(page, title, (x0 + 40, y), _BLANK_FONT, _BLANK_TITLE_SCALE, INK, _THICKNESS,
                cv2.LINE_AA)
    text = reason.encode("ascii", "replace").decode("ascii")
    for line in _wrap(f"Reason: {text}", width, _BLANK_TEXT_SCALE):
        y += 48
        cv2.putText(page, line, (x0 + 40, y), _BLANK_FONT, _BLANK_TEXT_SCALE, INK, _THICKNESS,
                    cv2.LINE_AA)
    return finished_page(page, header)


def not_interpretable_page(exc: NotInterpretableError) -> Page:
    """The page to build the SC of a not-interpretable input on: the one the error
    carries (the traces that could be drawn), else :func:`blank_page`."""
    if isinstance(exc.page, Page):
        return exc.page
    return blank_page(exc.header, exc.reason)
