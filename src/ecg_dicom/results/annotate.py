"""Draw the detector's result onto the page: the picture of the Secondary Capture.

The annotated image is the page the model saw, unchanged, with two bands added
around it (:mod:`ecg_dicom.results.canvas`), so that no text ever hides a part of
the tracing:

* a **top band**: the red "AI result — not for diagnostic use" banner; then the
  decision, large and bold; then who and when
  (:mod:`ecg_dicom.results.captions` words them);
* a **bottom band**: the model name and a short form of its version (the
  weights' checksum).

Each detection is drawn over the chart as a rectangle with its class (as
:data:`~ecg_dicom.results.captions.DISPLAY_NAMES` names it) and confidence;
boxes that do not count for the decision are drawn thin and grey.  Text is drawn
with the shipped Unicode fonts (:mod:`ecg_dicom.results.text`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ecg_dicom.records import NORMAL, NORMAL_CLASS, Classification, Page
from ecg_dicom.results.canvas import Layout, layout_for, to_sc_pixels
from ecg_dicom.results.captions import (
    BANNER_TEXT,
    decision_line,
    display_name,
    is_not_interpretable,
    short_version,
)
from ecg_dicom.results.text import BOLD_FONT, REGULAR_FONT, draw_text, fit, text_width

# RGB colours (the page is RGB, not OpenCV's BGR).
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_BANNER_RED = (190, 20, 20)
_NORMAL_GREEN = (0, 140, 60)
_NOT_COUNTED_GREY = (150, 150, 150)
_CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "ECG HB": (230, 120, 0),
    "History_MI": (140, 40, 200),
    "MI-ECG": (220, 0, 0),
    NORMAL_CLASS: _NORMAL_GREEN,
}
_OTHER_COLOUR = (0, 90, 220)


def _decision_colour(result: Classification) -> tuple[int, int, int]:
    if is_not_interpretable(result):
        return _BLACK
    return _NORMAL_GREEN if result.label == NORMAL else _BANNER_RED


def _row_text(
    draw: ImageDraw.ImageDraw, text: str, row: tuple[int, int], size: int,
    colour: tuple[int, int, int], layout: Layout, width: int, primary: Path = REGULAR_FONT,
) -> None:
    """``text`` left-aligned and vertically centred in the rows ``row`` (y0, y1)."""
    text, size = fit(text, size, width - 2 * layout.margin, primary)
    baseline = row[0] + round((row[1] - row[0]) / 2 + 0.36 * size)
    draw_text(draw, (layout.margin, baseline), text, size, colour, primary)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"the page must be uint8, not {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"the page must be H x W x 3 (RGB), not {image.shape}")


def _tag(
    draw: ImageDraw.ImageDraw,
    text: str,
    anchor: tuple[int, int],
    layout: Layout,
    colour: tuple[int, int, int],
    limits: tuple[int, int],
    canvas_width: int,
) -> None:
    """A filled tag with ``text`` just above ``anchor`` (inside the box when there
    is no room above, so it never covers the top band)."""
    size = layout.tag_size
    pad = max(2, round(4 * layout.scale))
    tw = round(text_width(text, size))
    th = round(1.25 * size)
    x = min(max(anchor[0], 0), max(canvas_width - tw - 2 * pad, 0))
    y_top = anchor[1] - th
    if y_top < limits[0]:
        y_top = anchor[1]
    y_top = min(y_top, max(limits[1] - th, limits[0]))
    draw.rectangle((x, y_top, x + tw + 2 * pad - 1, y_top + th - 1), fill=colour)
    draw_text(draw, (x + pad, y_top + round(0.97 * size)), text, size, _WHITE)


def draw_result(page: Page, result: Classification, identity: str = "") -> np.ndarray:
    """The annotated page (RGB, uint8): the page at offset ``layout_for(page).offset``
    with every detection boxed and labelled, the banner, the decision and
    ``identity`` (:func:`identity_line` of the source) in the top band and the
    model in the bottom band.  Pure: ``page`` is not modified."""
    image = _rgb(page.image)
    layout = layout_for(page)
    height, width = image.shape[:2]
    canvas = np.full((layout.top + height + layout.bottom, width, 3), 255, dtype=np.uint8)
    canvas[layout.top : layout.top + height] = image

    decisive = set(result.decisive)
    # Not-counted boxes first, so the decisive ones are drawn over them.
    ordered = sorted(result.detections, key=lambda d: d in decisive)
    tags: list[tuple[str, tuple[int, int], tuple[int, int, int]]] = []
    for det in ordered:
        x0, y0, x1, y1 = (round(v) for v in to_sc_pixels(det.box, page))
        counted = det in decisive
        colour = _CLASS_COLOURS.get(det.class_name, _OTHER_COLOUR) if counted else (
            _NOT_COUNTED_GREY
        )
        thickness = layout.thickness if counted else max(1, layout.thickness // 2)
        cv2.rectangle(canvas, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thickness)
        text = f"{display_name(det.class_name)} {det.confidence:.2f}"
        tags.append((text if counted else f"{text} (not counted)", (x0, y0), colour))

    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for text, anchor, colour in tags:
        _tag(draw, text, anchor, layout, colour, (layout.top, layout.top + height), width)

    # Top band: red banner, the decision, then whose ECG it is.
    draw.rectangle((0, 0, width - 1, layout.banner - 1), fill=_BANNER_RED)
    banner_size = round(0.6 * layout.banner)
    _row_text(draw, BANNER_TEXT, (0, layout.banner), banner_size, _WHITE, layout, width)
    decision_rows = (layout.banner, layout.banner + layout.decision_row)
    _row_text(draw, decision_line(result), decision_rows, layout.decision_size,
              _decision_colour(result), layout, width, BOLD_FONT)
    if identity:
        _row_text(draw, identity, (decision_rows[1], layout.top), layout.text_size, _BLACK,
                  layout, width)

    # Bottom band: the model.
    model = f"Model: {result.model_name}    version {short_version(result.model_version)}"
    _row_text(draw, model, (layout.top + height, layout.top + height + layout.bottom),
              layout.text_size, _BLACK, layout, width)
    return np.array(picture)
